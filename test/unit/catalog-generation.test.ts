/**
 * The catalog generation (catalog-generation.ts) on a store whose listing is paged (an
 * in-memory store declaring pagedList, as S3, Azure and SFTP do): the catalog index stands
 * in for a profile's listing only while no backupctl run has changed the profile since it
 * was made, and every scan through it gives what a listing gives.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Catalog, sidecarKey } from '../../src/catalog/catalog.js';
import { catalogGenerationKey, ChangeTracking, profileOfBackupKey, readGeneration } from '../../src/catalog/catalog-generation.js';
import { catalogIndexKey } from '../../src/catalog/catalog-index.js';
import { serializeSidecar, type Sidecar } from '../../src/catalog/sidecar.js';
import { MemoryStorage } from '../../src/storage/mem.js';
import type { Storage } from '../../src/storage/storage.js';
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
