/**
 * The catalog generation (catalog-generation.ts) on a store whose listing is paged (an
 * in-memory store declaring pagedList, as S3, Azure and SFTP do): the catalog index stands
 * in for a profile's listing only while no backupctl run has changed the profile since it
 * was made, and every scan through it gives what a listing gives.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Catalog, sidecarKey } from '../../src/catalog/catalog.js';
import { catalogGenerationKey, ChangeTracking, holdsBackupctlObjects, profileOfBackupKey, readGeneration } from '../../src/catalog/catalog-generation.js';
import { catalogIndexKey } from '../../src/catalog/catalog-index.js';
import { serializeSidecar, type Sidecar } from '../../src/catalog/sidecar.js';
import { MemoryStorage } from '../../src/storage/mem.js';
import { PermissionError, type Storage } from '../../src/storage/storage.js';
import { sampleSidecar } from '../helpers/sidecar-fixture.js';

const HOUR = 3_600_000;
const PROFILE = 'app';
let name: string;
let store: MemoryStorage;
let counter = 0;

beforeEach(() => {
  name = `generation-${process.pid}-${++counter}`;
  store = MemoryStorage.named(name, '', { pagedList: true });
});
afterEach(() => MemoryStorage.reset(name));

function idAt(at: Date, n: number): string {
  return `${at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${n.toString(16).padStart(6, '0')}`;
}

/** Writes `count` backups (sidecar, artifact, globals) straight into the store, dated an hour back. */
async function seed(count: number, profile = PROFILE, target: Storage = store): Promise<Sidecar[]> {
  const made: Sidecar[] = [];
  const base = Date.parse('2026-10-01T00:00:00Z');
  for (let i = 0; i < count; i++) {
    const at = new Date(base + i * HOUR);
    const id = idAt(at, i + 1);
    const sidecar = sampleSidecar({
      id,
      profile,
      startedAt: at.toISOString(),
      finishedAt: new Date(at.getTime() + 5000).toISOString(),
      artifact: { bytes: 4 },
      globals: { status: 'included', file: `${id}.globals.sql`, bytes: 3, sha256: 'b'.repeat(64), rolePasswords: false, stages: [] },
    });
    await target.putBytes(`${profile}/${id}.dump`, Buffer.from('dump'));
    await target.putBytes(`${profile}/${id}.globals.sql`, Buffer.from('sql'));
    await target.putBytes(sidecarKey(profile, id), serializeSidecar(sidecar));
    made.push(sidecar);
  }
  // The runs that made them left their run log.
  await target.putBytes(`${profile}/runs.jsonl`, Buffer.from(''));
  await backdate();
  return made;
}

/** Dates every object an hour back: older than the index's racy margin. */
async function backdate(): Promise<void> {
  const when = new Date(Date.now() - HOUR);
  for (const object of await store.list('')) store.setModifiedAt(object.key, when);
}

/** The store, counting list() calls by prefix. */
function counting(inner: Storage): { storage: Storage; lists: string[] } {
  const lists: string[] = [];
  const storage = new Proxy(inner, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (property === 'list' && typeof value === 'function') {
        return (prefix: string, ...rest: unknown[]) => {
          lists.push(prefix);
          return (value as (...args: unknown[]) => unknown).call(target, prefix, ...rest);
        };
      }
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { storage, lists };
}

/** What a scan shows, for comparing a scan through the index with one through a listing. */
async function shown(storage: Storage, options: { fresh?: boolean; wholeStorage?: boolean; profile?: string } = {}) {
  const scanned = await new Catalog(storage).summaries(options.wholeStorage ? undefined : (options.profile ?? PROFILE), { fresh: options.fresh === true });
  return {
    ids: scanned.backups.map((backup) => backup.id),
    incomplete: scanned.incomplete.map((entry) => entry.file),
    damage: [...scanned.damage],
    profiles: scanned.profiles,
    warnings: scanned.warnings,
  };
}

describe('catalog generation', () => {
  it('lists a profile once; then its index stands in for the listing, with the same result', async () => {
    await seed(5);
    const first = counting(store);
    const listed = await shown(first.storage);
    expect(first.lists).toEqual([PROFILE]);
    expect(await readGeneration(store, PROFILE)).toMatchObject({ settled: true });

    const second = counting(store);
    const cached = await shown(second.storage);
    expect(second.lists).toEqual([]);
    expect(cached).toEqual(listed);
    expect(cached.ids).toHaveLength(5);
  });

  it('a run that changes the profile makes the next scan list again, and see the change', async () => {
    const made = await seed(4);
    await shown(store);
    const run = new ChangeTracking(store);
    await run.remove(`${PROFILE}/${made[1]!.artifact.file}`);
    expect(await readGeneration(store, PROFILE)).toMatchObject({ settled: false });
    await run.close();
    expect(await readGeneration(store, PROFILE)).toMatchObject({ settled: true });

    const after = counting(store);
    const scanned = await shown(after.storage);
    expect(after.lists).toEqual([PROFILE]);
    expect(scanned.damage.map(([key]) => key)).toEqual([`${PROFILE}/${made[1]!.id}`]);
    const again = counting(store);
    expect(await shown(again.storage)).toEqual(scanned);
    expect(again.lists).toEqual([]);
  });

  it('a run killed before it settled leaves the profile listed by every scan until a run settles it', async () => {
    const made = await seed(3);
    await shown(store);
    const killed = new ChangeTracking(store);
    await killed.putBytes(`${PROFILE}/${made[0]!.id}.dump.k1`, Buffer.from('half'));
    // No close(): the process died.
    for (let i = 0; i < 2; i++) {
      const scan = counting(store);
      expect((await shown(scan.storage)).incomplete).toContain(`${made[0]!.id}.dump.k1`);
      expect(scan.lists).toEqual([PROFILE]);
    }
    const next = new ChangeTracking(store);
    await next.remove(`${PROFILE}/${made[0]!.id}.dump.k1`);
    await next.close();
    await shown(store);
    const settled = counting(store);
    expect((await shown(settled.storage)).incomplete).toEqual([]);
    expect(settled.lists).toEqual([]);
  });

  it('writes of files that are no backup file leave the generation alone', async () => {
    await seed(2);
    await shown(store);
    const before = await readGeneration(store, PROFILE);
    const run = new ChangeTracking(store);
    await run.putBytes(`${PROFILE}/lock.json`, Buffer.from('{}'));
    await run.putBytes(`${PROFILE}/runs.jsonl`, Buffer.from('{}\n'));
    await run.putBytes(catalogIndexKey(PROFILE), Buffer.from('x'));
    await run.remove(`${PROFILE}/lock.json`);
    await run.close();
    expect(await readGeneration(store, PROFILE)).toEqual(before);
    expect(profileOfBackupKey(`${PROFILE}/20261001T000000Z-000001.dump.zst.age`)).toBe(PROFILE);
    expect(profileOfBackupKey(`${PROFILE}/runs.jsonl`)).toBeNull();
    expect(profileOfBackupKey('20261001T000000Z-000001.json')).toBeNull();
  });

  it('what other tools change is seen by a fresh scan (prune), and after the next backupctl change', async () => {
    const made = await seed(3);
    await shown(store);
    await store.remove(sidecarKey(PROFILE, made[2]!.id));
    // The index stands in for the listing: the sidecar removed by hand is not seen...
    expect((await shown(store)).ids).toContain(made[2]!.id);
    // ...by a scan that lists (prune, before it removes anything):
    const fresh = await shown(store, { fresh: true });
    expect(fresh.ids).not.toContain(made[2]!.id);
    expect(fresh.incomplete).toContain(made[2]!.artifact.file);
    // ...and the index it wrote is of the listing it made.
    expect((await shown(store)).ids).toEqual(fresh.ids);
  });

  it('a missing or unreadable marker is never trusted: the first scan writes one before it lists', async () => {
    await seed(2);
    await shown(store);
    await store.putBytes(catalogGenerationKey(PROFILE), Buffer.from('{"format":"backupctl-catalog-generation","token":"nope","settled":true}'));
    const garbled = counting(store);
    await shown(garbled.storage);
    expect(garbled.lists).toEqual([PROFILE]);
    await store.remove(catalogGenerationKey(PROFILE));
    const missing = counting(store);
    await shown(missing.storage);
    expect(missing.lists).toEqual([PROFILE]);
    expect(await readGeneration(store, PROFILE)).toMatchObject({ settled: true });
    const then = counting(store);
    await shown(then.storage);
    expect(then.lists).toEqual([]);
  });

  it('a profile that is not in the storage gets no marker and no index', async () => {
    await seed(1);
    expect((await shown(store, { profile: 'other' })).ids).toEqual([]);
    expect(await store.list('other')).toEqual([]);
  });

  it('a folder holding nothing a backupctl run wrote is no profile: list passes it over and writes nothing into it', async () => {
    await seed(2);
    // Another tool's folder in the same bucket, and one an older backupctl's reader left a marker and an index in.
    await store.putBytes('photos/cat.jpg', Buffer.from('jpg'));
    await store.putBytes('photos/index.json', Buffer.from('{}'));
    await store.putBytes('polluted/notes.txt', Buffer.from('x'));
    await store.putBytes(catalogGenerationKey('polluted'), Buffer.from('{"format":"backupctl-catalog-generation","version":1,"token":"0123456789abcdef01234567","settled":true}\n'));
    await backdate();
    const before = (await store.list('')).map((object) => object.key).filter((key) => !key.startsWith(`${PROFILE}/`));
    for (let i = 0; i < 2; i++) {
      const whole = await shown(store, { wholeStorage: true });
      expect(whole.profiles).toEqual([PROFILE]);
      expect(whole.ids).toHaveLength(2);
      // Named, as status names each folder it checks: nothing, and nothing written.
      expect((await shown(store, { profile: 'photos' })).ids).toEqual([]);
      expect((await shown(store, { profile: 'polluted' })).ids).toEqual([]);
    }
    expect((await store.list('')).map((object) => object.key).filter((key) => !key.startsWith(`${PROFILE}/`))).toEqual(before);
    expect(await new Catalog(store).backupctlFolders()).toEqual({ profiles: [PROFILE], warnings: [] });
    // What makes a folder backupctl's: a backup's file, its lock, its run log; not a marker or index alone.
    expect(holdsBackupctlObjects('x', ['x/20261001T000000Z-000001.dump.zst'])).toBe(true);
    expect(holdsBackupctlObjects('x', ['x/lock.json'])).toBe(true);
    expect(holdsBackupctlObjects('x', ['x/runs.jsonl'])).toBe(true);
    expect(holdsBackupctlObjects('x', ['x/claims/lock.json.1764000000000-ab12cd34ef56'])).toBe(true);
    expect(holdsBackupctlObjects('x', [catalogGenerationKey('x'), catalogIndexKey('x'), 'x/a.json', 'y/runs.jsonl', 'x/sub/runs.jsonl'])).toBe(false);
  });

  it('a folder of a profile with backups but no run log (a copy destination of an older backupctl) gets its marker after the listing, never vouching for it', async () => {
    await seed(2);
    await store.remove(`${PROFILE}/runs.jsonl`);
    const first = counting(store);
    expect((await shown(first.storage)).ids).toHaveLength(2);
    expect(first.lists).toEqual([PROFILE]);
    expect(await readGeneration(store, PROFILE)).toMatchObject({ settled: true });
    // The index it wrote holds no generation: the next scan lists (after the marker), then the index stands in.
    const second = counting(store);
    await shown(second.storage);
    expect(second.lists).toEqual([PROFILE]);
    const third = counting(store);
    await shown(third.storage);
    expect(third.lists).toEqual([]);
  });

  it('a read-only user: the marker and index it cannot write never fail a scan; a folder it may not read is passed over with a warning', async () => {
    await seed(3);
    await store.putBytes('secret/x', Buffer.from('x'));
    const readOnly = MemoryStorage.named(name, '', { readOnly: true, pagedList: true });
    for (let i = 0; i < 2; i++) {
      const scanned = await shown(readOnly, { wholeStorage: true });
      expect(scanned.ids).toHaveLength(3);
      expect(scanned.profiles).toEqual([PROFILE]);
      expect((await shown(readOnly)).ids).toHaveLength(3);
    }
    expect(await readGeneration(store, PROFILE)).toBeNull();
    // A folder whose listing is refused (another user's): the rest still lists.
    const refusing = new Proxy(readOnly, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (property === 'list') {
          return (prefix: string, ...rest: unknown[]) =>
            prefix === 'secret' ? Promise.reject(new PermissionError('listing secret: permission denied', { key: 'secret' })) : (value as (...args: unknown[]) => unknown).call(target, prefix, ...rest);
        }
        if (property === 'stat') {
          return (key: string) => (key.startsWith('secret/') ? Promise.reject(new PermissionError(`reading ${key}: permission denied`, { key })) : target.stat(key));
        }
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const scanned = await shown(refusing, { wholeStorage: true });
    expect(scanned.ids).toHaveLength(3);
    expect(scanned.warnings).toEqual([expect.stringMatching(/^skipped the folder secret of .*permission denied/)]);
    const folders = await new Catalog(refusing).backupctlFolders();
    expect(folders.profiles).toEqual([PROFILE]);
    expect(folders.warnings).toEqual([expect.stringMatching(/^skipped the folder secret .*permission denied/)]);
    // A profile named is not passed over: its error is the command's.
    await expect(new Catalog(refusing).summaries('secret')).rejects.toBeInstanceOf(PermissionError);
  });

  it('the whole storage: each profile through its own index, every profile named', async () => {
    await seed(2, 'app');
    await seed(3, 'db2');
    await store.putBytes('empty/runs.jsonl', Buffer.from('{}\n'));
    const first = counting(store);
    const listed = await shown(first.storage, { wholeStorage: true });
    expect(listed.ids).toHaveLength(5);
    expect(listed.profiles).toEqual(['app', 'db2', 'empty']);
    expect(first.lists.sort()).toEqual(['app', 'db2', 'empty']);
    const second = counting(store);
    expect(await shown(second.storage, { wholeStorage: true })).toEqual(listed);
    expect(second.lists).toEqual(['empty']);
  });

  it('on a storage that is listed every time, a run that changes a profile removes its marker, and writes none', async () => {
    const local = MemoryStorage.named(`${name}-local`);
    try {
      await seed(1, PROFILE, local);
      // A marker left by a command that read the same folder through a paged driver (SFTP).
      await local.putBytes(catalogGenerationKey(PROFILE), Buffer.from('{}'));
      const run = new ChangeTracking(local);
      await run.putBytes(`${PROFILE}/20261002T000000Z-0000ff.dump`, Buffer.from('x'));
      expect(await local.list(catalogGenerationKey(PROFILE))).toEqual([]);
      await run.close();
      expect((await local.list(PROFILE)).map((object) => object.key)).not.toContain(catalogGenerationKey(PROFILE));
      await new Catalog(local).summaries(PROFILE);
      expect((await local.list(PROFILE)).map((object) => object.key)).not.toContain(catalogGenerationKey(PROFILE));
    } finally {
      MemoryStorage.reset(`${name}-local`);
    }
  });

  it('an index of an older generation, or of version 1, is not used and is rewritten', async () => {
    await seed(2);
    await shown(store);
    await store.putBytes(catalogIndexKey(PROFILE), Buffer.from('{"format":"backupctl-catalog-index","version":1,"profile":"app"}\n'));
    const v1 = counting(store);
    await shown(v1.storage);
    expect(v1.lists).toEqual([PROFILE]);
    const then = counting(store);
    await shown(then.storage);
    expect(then.lists).toEqual([]);
  });
});
