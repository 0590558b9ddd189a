/**
 * A sidecar the storage does not give (permission denied, an I/O error: S3/Azure 403, SFTP
 * permission denied, EACCES, EIO) says nothing about the backup: Catalog reads end with the
 * storage's typed error (exit 1), never with a SidecarError (a corrupt backup, exit 3), and a
 * scan records nothing of it in the catalog index. A sidecar read but not valid stays one.
 * An artifact or lock refused is likewise a read that failed, named as such.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Catalog, sidecarKey } from '../../src/catalog/catalog.js';
import { catalogIndexKey } from '../../src/catalog/catalog-index.js';
import { hashStored } from '../../src/core/archive.js';
import { readLock } from '../../src/core/lock.js';
import { serializeSidecar, SidecarError } from '../../src/catalog/sidecar.js';
import { ExitCode } from '../../src/errors.js';
import { MemoryStorage } from '../../src/storage/mem.js';
import { NotFoundError, PermissionError, StorageError, type Storage } from '../../src/storage/storage.js';
import { sampleSidecar } from '../helpers/sidecar-fixture.js';

const NAME = 'catalog-read-errors';
const PROFILE = 'app';
const IDS = ['20261101T000000Z-0000a1', '20261102T000000Z-0000b2'];
const REFUSED = IDS[1] as string;

let store: MemoryStorage;

/** `storage`, whose getBytes and get of `key` fail with what `refusal` makes while `refusal` is set. */
function refusing(storage: Storage, key: string, refusal: { error: (() => Error) | null }): Storage {
  return new Proxy(storage, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (property === 'getBytes' || property === 'get') {
        return (asked: string, ...rest: unknown[]) =>
          asked === key && refusal.error ? Promise.reject(refusal.error()) : (value as (...args: unknown[]) => unknown).call(target, asked, ...rest);
      }
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

const permission = () => new PermissionError(`reading ${sidecarKey(PROFILE, REFUSED)}: access denied (AccessDenied)`, { key: sidecarKey(PROFILE, REFUSED) });
const io = () => new StorageError('io', `reading ${sidecarKey(PROFILE, REFUSED)} failed (EIO)`, { key: sidecarKey(PROFILE, REFUSED), errno: 'EIO' });

async function seed(storage: Storage): Promise<void> {
  for (const [i, id] of IDS.entries()) {
    const at = `2026-11-0${i + 1}T00:00:00Z`;
    await storage.putBytes(`${PROFILE}/${id}.dump`, Buffer.alloc(100));
    await storage.putBytes(`${PROFILE}/${id}.globals.sql`, Buffer.alloc(10));
    await storage.putBytes(sidecarKey(PROFILE, id), serializeSidecar(sampleSidecar({ id, startedAt: at, finishedAt: at, artifact: { bytes: 100 }, globals: { status: 'included', file: `${id}.globals.sql`, bytes: 10, sha256: 'b'.repeat(64), rolePasswords: false, stages: [] } })));
  }
}

beforeEach(async () => {
  MemoryStorage.reset(NAME);
  store = MemoryStorage.named(NAME);
  await seed(store);
});
afterEach(() => MemoryStorage.reset(NAME));

describe('reading one sidecar', () => {
  for (const [what, make, code] of [['permission denied', permission, 'permission'], ['an I/O error', io, 'io']] as const) {
    it(`${what}: read, readForUse and readForRemoval end with the StorageError (exit 1), never a SidecarError (exit 3)`, async () => {
      const catalog = new Catalog(refusing(store, sidecarKey(PROFILE, REFUSED), { error: make }));
      for (const reading of [() => catalog.read(PROFILE, REFUSED), () => catalog.readForUse(PROFILE, REFUSED), () => catalog.readForRemoval(PROFILE, REFUSED)]) {
        const error = await reading().then(
          () => null,
          (failure: unknown) => failure,
        );
        expect(error).toBeInstanceOf(StorageError);
        expect(error).not.toBeInstanceOf(SidecarError);
        expect((error as StorageError).code).toBe(code);
        expect((error as StorageError).exitCode).toBe(ExitCode.FAILED);
      }
    });
  }

  it('a sidecar read but not JSON is still corrupt: SidecarError, exit 3 for readForUse, "unreadable" for readForRemoval', async () => {
    await store.putBytes(sidecarKey(PROFILE, REFUSED), Buffer.from('{"not json'));
    const catalog = new Catalog(store);
    await expect(catalog.read(PROFILE, REFUSED)).rejects.toBeInstanceOf(SidecarError);
    await expect(catalog.readForUse(PROFILE, REFUSED)).rejects.toMatchObject({ exitCode: ExitCode.VERIFY_FAILED });
    expect(await catalog.readForRemoval(PROFILE, REFUSED)).toMatchObject({ unreadable: expect.stringContaining(sidecarKey(PROFILE, REFUSED)) });
    await expect(catalog.read(PROFILE, '20261103T000000Z-0000c3')).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('scanning a profile', () => {
  for (const paged of [false, true]) {
    it(`${paged ? 'a paged store' : 'a store listed every time'}: a refused sidecar fails scan and summaries with the PermissionError, is never counted unreadable, and leaves no catalog index behind`, async () => {
      const base = MemoryStorage.named(NAME, '', { pagedList: paged });
      const refusal: { error: (() => Error) | null } = { error: permission };
      const catalog = new Catalog(refusing(base, sidecarKey(PROFILE, REFUSED), refusal));
      await expect(catalog.scan(PROFILE)).rejects.toBeInstanceOf(PermissionError);
      await expect(catalog.summaries(PROFILE)).rejects.toBeInstanceOf(PermissionError);
      await expect(base.stat(catalogIndexKey(PROFILE))).rejects.toBeInstanceOf(NotFoundError);
      // Readable again (the owner fixed): both backups, nothing damaged, from the sidecars.
      refusal.error = null;
      const scanned = await catalog.summaries(PROFILE);
      expect(scanned.backups.map((b) => b.id)).toEqual([...IDS].reverse());
      expect(scanned.unreadable).toEqual([]);
      expect(scanned.warnings).toEqual([]);
    });

    it(`${paged ? 'a paged store' : 'a store listed every time'}: summaries for list (tolerateRefused) give the rest and the refusal, write no catalog index, and an I/O error still fails`, async () => {
      const base = MemoryStorage.named(NAME, '', { pagedList: paged });
      const refusal: { error: (() => Error) | null } = { error: permission };
      const catalog = new Catalog(refusing(base, sidecarKey(PROFILE, REFUSED), refusal));
      const scanned = await catalog.summaries(PROFILE, { tolerateRefused: true });
      expect(scanned.backups.map((b) => b.id)).toEqual([IDS[0]]);
      expect(scanned.refused.map(({ profile, id, error }) => [profile, id, error.code])).toEqual([[PROFILE, REFUSED, 'permission']]);
      expect(scanned.unreadable).toEqual([]);
      expect(scanned.damage.size).toBe(0);
      await expect(base.stat(catalogIndexKey(PROFILE))).rejects.toBeInstanceOf(NotFoundError);
      refusal.error = io;
      await expect(catalog.summaries(PROFILE, { tolerateRefused: true })).rejects.toMatchObject({ code: 'io' });
    });
  }
});

describe('reading an artifact or the lock', () => {
  it('refused: "cannot read <storage>: permission denied reading <key>" (exit 1), never "cannot write"', async () => {
    for (const [key, reading] of [
      [`${PROFILE}/${REFUSED}.dump`, (storage: Storage) => hashStored(storage, `${PROFILE}/${REFUSED}.dump`)],
      [`${PROFILE}/lock.json`, (storage: Storage) => readLock(storage, PROFILE)],
    ] as const) {
      await store.putBytes(`${PROFILE}/lock.json`, Buffer.from('{}'));
      const storage = refusing(store, key, { error: () => new PermissionError(`reading ${key}: access denied (AccessDenied)`, { key }) });
      const error = (await reading(storage).then(
        () => null,
        (failure: unknown) => failure,
      )) as Error & { exitCode?: number };
      expect(error?.message).toMatch(new RegExp(`^cannot read mem://${NAME}/: permission denied reading ${key} while`));
      expect(error.exitCode).toBe(ExitCode.FAILED);
    }
  });
});
