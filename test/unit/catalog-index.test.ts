/**
 * The catalog index (`<profile>/catalog-index.json`) on a real local storage: it spares
 * list/status/prune the read of every sidecar, and is never believed over the sidecars:
 * stale, missing, corrupt, oversized, foreign, forged and hostile indexes each give exactly
 * what reading every sidecar gives.
 */
import { mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Catalog, sidecarKey } from '../../src/catalog/catalog.js';
import { catalogIndexKey, readIndex, serializeIndex, serializeIndexChunks, stampOf } from '../../src/catalog/catalog-index.js';
import { serializeSidecar, summaryOf, type Sidecar } from '../../src/catalog/sidecar.js';
import { LocalStorage } from '../../src/storage/local.js';
import type { Storage } from '../../src/storage/storage.js';
import { baseEnv, runCli } from '../helpers/cli.js';
import { sampleSidecar } from '../helpers/sidecar-fixture.js';

const HOUR = 3_600_000;
const PROFILE = 'app';
let root: string;
let storage: LocalStorage;

beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'backupctl-catalog-index-'));
  storage = new LocalStorage(root);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** `20261101T000000Z-000001` style ids, `hoursAgo` before a fixed point. */
function idAt(at: Date, n: number): string {
  return `${at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${n.toString(16).padStart(6, '0')}`;
}

/** Writes `count` complete backups (sidecar, artifact, globals), an hour apart, files dated an hour back. */
async function seed(count: number): Promise<Sidecar[]> {
  const made: Sidecar[] = [];
  const base = Date.parse('2026-10-01T00:00:00Z');
  for (let i = 0; i < count; i++) {
    const at = new Date(base + i * HOUR);
    const id = idAt(at, i + 1);
    const sidecar = sampleSidecar({
      id,
      startedAt: at.toISOString(),
      finishedAt: new Date(at.getTime() + 5000).toISOString(),
      tags: i % 3 === 0 ? ['nightly'] : [],
      artifact: { bytes: 4 },
      globals: { status: 'included', file: `${id}.globals.sql`, bytes: 3, sha256: 'b'.repeat(64), rolePasswords: false, stages: [] },
      tables: [{ schema: 'public', name: 't', rows: i }],
    });
    await storage.putBytes(`${PROFILE}/${id}.dump`, Buffer.from('dump'));
    await storage.putBytes(`${PROFILE}/${id}.globals.sql`, Buffer.from('sql'));
    await writeSidecar(sidecar);
    made.push(sidecar);
  }
  return made;
}

/** Writes a sidecar and dates its file an hour back (older than the index's racy margin). */
async function writeSidecar(sidecar: Sidecar, age = HOUR): Promise<void> {
  await storage.putBytes(sidecarKey(sidecar.profile, sidecar.id), serializeSidecar(sidecar));
  const when = new Date(Date.now() - age);
  utimesSync(path.join(root, PROFILE, `${sidecar.id}.json`), when, when);
}

/** The storage, counting the objects read (get and getBytes) by key. */
function counting(inner: Storage): { storage: Storage; reads: string[] } {
  const reads: string[] = [];
  const storage = new Proxy(inner, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if ((property === 'get' || property === 'getBytes') && typeof value === 'function') {
        return (key: string, ...rest: unknown[]) => {
          reads.push(key);
          return (value as (...args: unknown[]) => unknown).call(target, key, ...rest);
        };
      }
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { storage, reads };
}

/** What reading every sidecar gives, as summaries, newest first. */
async function truth(): Promise<unknown[]> {
  return (await new Catalog(storage).scan(PROFILE)).backups.map(summaryOf);
}

const indexPath = () => path.join(root, PROFILE, 'catalog-index.json');
/** The index's lines as text: written gzip-compressed; a plain one (as tests forge them, and earlier versions wrote) as it is. */
const indexText = (): string => {
  const bytes = readFileSync(indexPath());
  return (bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes).toString('utf8');
};

/** Dates the index file now (as a run writing it now would). */
function touchIndex(): void {
  const now = new Date();
  utimesSync(indexPath(), now, now);
}

describe('catalog index', () => {
  it('is written by the first listing and spares the next one every sidecar read', async () => {
    await seed(40);
    const debug: string[] = [];
    const first = await new Catalog(storage, { debug: (m) => debug.push(m) }).summaries(PROFILE);
    expect(first.backups).toHaveLength(40);
    expect(first.indexed.size).toBe(0);
    expect(debug.join('\n')).toMatch(/wrote the catalog index app\/catalog-index\.json \(40 backup/);
    expect(indexText().split('\n')[0]).toContain('"format":"backupctl-catalog-index"');

    const { storage: counted, reads } = counting(storage);
    const second = await new Catalog(counted).summaries(PROFILE);
    expect(reads).toEqual([catalogIndexKey(PROFILE)]);
    expect(second.indexed.size).toBe(40);
    expect(second.backups).toEqual(await truth());
    // Summaries carry no per-table counts; show reads the sidecar for those.
    expect(second.backups[0]).not.toHaveProperty('tables');
  });

  it('a sidecar changed since the index was written is read again, and the index rewritten', async () => {
    const made = await seed(10);
    await new Catalog(storage).summaries(PROFILE);
    const changed = { ...(made[4] as Sidecar), tags: ['changed-later'] };
    await writeSidecar(changed, 0);
    const { storage: counted, reads } = counting(storage);
    const after = await new Catalog(counted).summaries(PROFILE);
    expect(reads.sort()).toEqual([catalogIndexKey(PROFILE), sidecarKey(PROFILE, changed.id)].sort());
    expect(after.backups.find((b) => b.id === changed.id)?.tags).toEqual(['changed-later']);
    expect(after.backups).toEqual(await truth());
    expect(indexText()).toContain('changed-later');
  });

  it('a backup whose sidecar is gone is not listed, whatever the index says; a new one is listed without an entry', async () => {
    const made = await seed(6);
    await new Catalog(storage).summaries(PROFILE);
    const gone = made[2] as Sidecar;
    await storage.remove(sidecarKey(PROFILE, gone.id));
    const extra = sampleSidecar({ id: idAt(new Date('2026-12-01T00:00:00Z'), 99), startedAt: '2026-12-01T00:00:00Z', finishedAt: '2026-12-01T00:00:05Z', artifact: { bytes: 4 } });
    await storage.putBytes(`${PROFILE}/${extra.id}.dump`, Buffer.from('dump'));
    await storage.putBytes(`${PROFILE}/${extra.id}.globals.sql`, Buffer.alloc(1024));
    await writeSidecar(extra);
    const after = await new Catalog(storage).summaries(PROFILE);
    const ids = after.backups.map((b) => b.id);
    expect(ids).not.toContain(gone.id);
    expect(ids[0]).toBe(extra.id);
    expect(after.backups).toEqual(await truth());
    // The unfinished files of the backup without a sidecar are leftovers, as without an index.
    expect(after.incomplete.map((e) => e.id)).toContain(gone.id);
    expect(indexText()).not.toContain(gone.id);
  });

  it('a sidecar written within the racy margin of the index is always read from the sidecar', async () => {
    const made = await seed(3);
    const recent = made[1] as Sidecar;
    await writeSidecar(recent, 0); // now: as new as the index about to be written
    await new Catalog(storage).summaries(PROFILE);
    const { storage: counted, reads } = counting(storage);
    await new Catalog(counted).summaries(PROFILE);
    expect(reads).toContain(sidecarKey(PROFILE, recent.id));
    expect(reads).toHaveLength(2);
  });

  for (const [name, bytes] of [
    ['garbage', Buffer.from('\u0000\u0001 not json at all\n{{{\n')],
    ['an empty file', Buffer.alloc(0)],
    ['a future version', Buffer.from('{"format":"backupctl-catalog-index","version":99,"profile":"app"}\n')],
    ['the index of another profile', Buffer.from('{"format":"backupctl-catalog-index","version":1,"profile":"other"}\n')],
    ['a damaged gzip stream', Buffer.concat([gzipSync(Buffer.from('{"format":"backupctl-catalog-index","version":2,"profile":"app"}\n')).subarray(0, 20), Buffer.from('damage')])],
    ['a gzip of the index of another profile', gzipSync(Buffer.from('{"format":"backupctl-catalog-index","version":2,"profile":"other","entries":0,"generation":null,"listing":false}\n'))],
  ] as const) {
    it(`an index that is ${name} is ignored and rebuilt from the sidecars`, async () => {
      await seed(8);
      writeFileSync(indexPath(), bytes);
      const debug: string[] = [];
      const after = await new Catalog(storage, { debug: (m) => debug.push(m) }).summaries(PROFILE);
      expect(after.backups).toEqual(await truth());
      expect(after.indexed.size).toBe(0);
      expect(after.warnings).toEqual([]);
      expect(debug.join('\n')).toMatch(/wrote the catalog index/);
      expect(indexText()).toMatch(/^\{"format":"backupctl-catalog-index","version":2,"profile":"app","entries":8,"generation":null,"listing":false\}/);
    });
  }

  it('an oversized index is refused unread', async () => {
    await seed(2);
    writeFileSync(indexPath(), `${'{"format":"backupctl-catalog-index","version":1,"profile":"app"}\n'}${' '.repeat(3 * 1024 * 1024)}\n`);
    const debug: string[] = [];
    const after = await new Catalog(storage, { debug: (m) => debug.push(m) }).summaries(PROFILE);
    expect(after.backups).toEqual(await truth());
    expect(debug.join('\n')).toMatch(/ignoring the catalog index app\/catalog-index\.json: larger than \d+ bytes/);
  });

  it('a small gzip that decodes past the bound is refused once the bound is reached', async () => {
    await seed(2);
    const bomb = gzipSync(Buffer.from(`${'{"format":"backupctl-catalog-index","version":2,"profile":"app"}\n'}${' '.repeat(64 * 1024 * 1024)}\n`));
    expect(bomb.length).toBeLessThan(128 * 1024);
    writeFileSync(indexPath(), bomb);
    const debug: string[] = [];
    const before = process.memoryUsage().rss;
    const after = await new Catalog(storage, { debug: (m) => debug.push(m) }).summaries(PROFILE);
    expect(after.backups).toEqual(await truth());
    expect(debug.join('\n')).toMatch(/ignoring the catalog index app\/catalog-index\.json: larger than \d+ bytes/);
    // Stopped near the bound (~1 MB here), never the 64 MB the gzip holds.
    expect(process.memoryUsage().rss - before).toBeLessThan(48 * 1024 * 1024);
  });

  it('entries that fail the sidecar schema, or name another backup, are read from their sidecars', async () => {
    const made = await seed(5);
    await new Catalog(storage).summaries(PROFILE);
    const lines = indexText().trimEnd().split('\n');
    const victim = (made[0] as Sidecar).id;
    const other = (made[1] as Sidecar).id;
    const forged = lines.map((line) => {
      if (line.includes(`"app/${victim}.json"`)) {
        const entry = JSON.parse(line);
        entry.sidecar.artifact.sha256 = 'not a digest';
        return JSON.stringify(entry);
      }
      if (line.includes(`"app/${other}.json"`)) {
        const entry = JSON.parse(line);
        entry.sidecar.id = victim; // an entry that claims to be another backup
        return JSON.stringify(entry);
      }
      return line;
    });
    writeFileSync(indexPath(), `${forged.join('\n')}\n`);
    touchIndex();
    const { storage: counted, reads } = counting(storage);
    const after = await new Catalog(counted).summaries(PROFILE);
    expect(reads.sort()).toEqual([catalogIndexKey(PROFILE), sidecarKey(PROFILE, victim), sidecarKey(PROFILE, other)].sort());
    expect(after.backups).toEqual(await truth());
  });

  it('entries whose stamp is malformed are read from their sidecars', async () => {
    const made = await seed(7);
    await new Catalog(storage).summaries(PROFILE);
    const forge: Array<(entry: Record<string, unknown>) => void> = [
      (entry) => (entry.size = -1),
      (entry) => (entry.size = 6548.5),
      (entry) => (entry.modifiedAt = String(entry.modifiedAt)),
      (entry) => (entry.etag = 5),
      (entry) => delete entry.etag,
      (entry) => (entry.size = Number.MAX_SAFE_INTEGER + 2),
    ];
    const victims = made.slice(0, forge.length).map((s) => s.id);
    const lines = indexText().trimEnd().split('\n').map((line) => {
      const at = victims.findIndex((id) => line.includes(`"app/${id}.json"`));
      if (at < 0) return line;
      const entry = JSON.parse(line) as Record<string, unknown>;
      (forge[at] as (entry: Record<string, unknown>) => void)(entry);
      return JSON.stringify(entry);
    });
    writeFileSync(indexPath(), `${lines.join('\n')}\n`);
    touchIndex();
    const { storage: counted, reads } = counting(storage);
    const after = await new Catalog(counted).summaries(PROFILE);
    expect(reads.sort()).toEqual([catalogIndexKey(PROFILE), ...victims.map((id) => sidecarKey(PROFILE, id))].sort());
    expect(after.indexed.size).toBe(made.length - victims.length);
    expect(after.backups).toEqual(await truth());
  });

  it('is written through a streamed put, in chunks that join into the one document the reader reads', async () => {
    const made = await seed(30);
    const puts: string[] = [];
    const putBytes: string[] = [];
    const watched = new Proxy(storage, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return (key: string, ...rest: unknown[]) => {
          if (property === 'put') puts.push(key);
          if (property === 'putBytes') putBytes.push(key);
          return (value as (...args: unknown[]) => unknown).call(target, key, ...rest);
        };
      },
    });
    await new Catalog(watched).summaries(PROFILE);
    expect(puts).toEqual([catalogIndexKey(PROFILE)]);
    expect(putBytes).toEqual([]);

    const listing = await storage.list(PROFILE);
    const entries = made.map((sidecar) => ({
      stamp: stampOf(listing.find((o) => o.key === sidecarKey(PROFILE, sidecar.id)) as (typeof listing)[number]),
      sidecar: summaryOf(sidecar),
    }));
    const chunks = [...serializeIndexChunks(PROFILE, entries, {}, 2048)];
    expect(chunks.length).toBeGreaterThan(5);
    const whole = Buffer.concat(chunks);
    expect(whole.equals(serializeIndex(PROFILE, entries))).toBe(true);
    // What the listing run wrote is the same document (entries sorted by key, one a line).
    expect(gunzipSync(readFileSync(indexPath())).equals(whole)).toBe(true);
    const listed = new Map(listing.filter((o) => o.key.endsWith('.json') && o.key !== catalogIndexKey(PROFILE)).map((o) => [o.key, { object: o, id: o.key.slice(4, -5) }]));
    const read = await readIndex(Readable.from(chunks), { profile: PROFILE, writtenAt: new Date(), maxBytes: 64 * 1024 * 1024, listed });
    expect(typeof read).toBe('object');
    expect((read as { usable: Map<string, unknown> }).usable.size).toBe(30);
  });

  it('a symlink in place of the index is reported, never followed, replaced or removed', async () => {
    await seed(3);
    const outside = path.join(root, '..', `outside-${path.basename(root)}.json`);
    writeFileSync(outside, 'secret outside the storage\n');
    try {
      symlinkSync(outside, indexPath());
      const after = await new Catalog(storage).summaries(PROFILE);
      expect(after.backups).toEqual(await truth());
      expect(after.warnings.join('\n')).toMatch(/app\/catalog-index\.json is a symbolic link/);
      expect(readFileSync(outside, 'utf8')).toBe('secret outside the storage\n');
      expect(readFileSync(indexPath(), 'utf8')).toBe('secret outside the storage\n');
    } finally {
      rmSync(outside, { force: true });
    }
  });

  it('a storage that refuses writes still lists, reading every sidecar', async () => {
    await seed(4);
    const readOnly = new Proxy(storage, {
      get(target, property, receiver) {
        if (property === 'putBytes' || property === 'put') return () => Promise.reject(Object.assign(new Error('read-only storage'), { code: 'EROFS' }));
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const debug: string[] = [];
    const after = await new Catalog(readOnly, { debug: (m) => debug.push(m) }).summaries(PROFILE);
    expect(after.backups).toEqual(await truth());
    expect(debug.join('\n')).toMatch(/could not write the catalog index/);
  });

  it('prune confirms from the sidecars what a forged index would make it remove', async () => {
    const made = await seed(6);
    const newest = made[made.length - 1] as Sidecar;
    const oldest = made[0] as Sidecar;
    await new Catalog(storage).summaries(PROFILE);
    // The index now claims the oldest backup is the newest one: keep-last 1 by its word
    // would remove the real newest backup.
    const lines = indexText().trimEnd().split('\n').map((line) => {
      if (!line.includes(`"app/${oldest.id}.json"`)) return line;
      const entry = JSON.parse(line);
      entry.sidecar.startedAt = '2026-11-30T00:00:00.000Z';
      entry.sidecar.finishedAt = '2026-11-30T00:00:05.000Z';
      return JSON.stringify(entry);
    });
    writeFileSync(indexPath(), `${lines.join('\n')}\n`);
    touchIndex();
    const listed = await new Catalog(storage).summaries(PROFILE);
    expect(listed.backups[0]?.id).toBe(oldest.id); // list believes the cache, which is what caches do

    const env = baseEnv({ PGHOST: '127.0.0.1', PGPORT: '1', PGDATABASE: PROFILE });
    const dry = await runCli(['prune', '--profile', PROFILE, '--storage', root, '--keep-last', '1', '--dry-run', '--json'], { env, cwd: root });
    expect(dry.code, dry.stderr).toBe(0);
    const run = await runCli(['prune', '--profile', PROFILE, '--storage', root, '--keep-last', '1', '--json'], { env, cwd: root });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain(`the catalog index of profile "app" disagrees with 1 sidecar(s) (app/${oldest.id}): planning again from every sidecar`);
    const left = (await new Catalog(storage).scan(PROFILE)).backups.map((b) => b.id);
    expect(left).toEqual([newest.id]);
    // The index the prune left behind tells the truth again.
    const { storage: counted, reads } = counting(storage);
    const after = await new Catalog(counted).summaries(PROFILE);
    expect(after.backups.map((b) => b.id)).toEqual([newest.id]);
    expect(reads).toEqual([catalogIndexKey(PROFILE)]);
  });

  it('reads a hostile index that is one enormous line, in small chunks, in linear time', { timeout: 10_000 }, async () => {
    const header = Buffer.from('{"format":"backupctl-catalog-index","version":1,"profile":"app"}\n');
    const filler = Buffer.alloc(16 * 1024, 0x61); // 'a' without a newline: 2,560 chunks of one 40 MiB line
    async function* chunks() {
      yield header;
      for (let i = 0; i < 2560; i++) yield filler;
    }
    const read = await readIndex(chunks(), { profile: PROFILE, writtenAt: new Date(), maxBytes: 64 * 1024 * 1024, listed: new Map() });
    expect(typeof read).toBe('object');
    expect((read as { usable: Map<string, unknown> }).usable.size).toBe(0);
  });
});
