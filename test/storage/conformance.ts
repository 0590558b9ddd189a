/**
 * The storage contract (src/storage/storage.ts), checked against a real server. Every
 * driver's test file is a few lines: start the server, then
 * `storageConformance('s3 (s3rver)', () => storage, hooks)`.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  NotFoundError,
  PermissionError,
  StorageError,
  TooLargeError,
  UnsupportedError,
  type Storage,
} from '../../src/storage/storage.js';
import { generatedStream, sha256 } from '../helpers/generated.js';

export { generatedStream, sha256 } from '../helpers/generated.js';

const MIB = 1024 * 1024;

export interface ConformanceHooks {
  /** A storage on the same server (same prefix) whose writes the server refuses: expects PermissionError. */
  denied?: () => Promise<Storage>;
  /** What unfinished puts left under the storage's prefix (temporary files, incomplete uploads); must end up empty. */
  leftovers?: () => Promise<string[]>;
  /**
   * Leaves what a put killed midway leaves directly under `prefix` (a temporary file dated two
   * days back, an incomplete multipart upload); resolves to its size as removeStaleTemporaries
   * counts it. Without it, only the dry run's "removes nothing" is checked.
   */
  plantStaleTemporary?: (prefix: string) => Promise<{ bytes: number }>;
  /** Size of the streamed round trip (default 110 MiB). */
  bigBytes?: number;
  /** RSS growth allowed while streaming it (default 100 MB); null when the driver keeps objects in memory (mem). */
  maxRssGrowth?: number | null;
  /** Bytes sent before an abort; large enough to reach the store's multipart/block path (default 12 MiB). */
  abortAfterBytes?: number;
  /** Runs after the suite (close the storage, stop a server). */
  teardown?: () => Promise<void>;
}

async function hashStream(stream: Readable): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  await pipeline(stream, async function* (source) {
    for await (const chunk of source) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    yield* [];
  });
  return { sha256: hash.digest('hex'), bytes };
}

async function readAllOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * V8 frees Buffers (external memory) lazily: up to about 64 MiB of dropped chunks and
 * parts wait for the next GC, whatever the object size. To measure what a driver holds,
 * the sampler collects garbage before each sample (gc exposed through the V8 flag).
 */
const collectGarbage: () => void = (() => {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : () => undefined;
  } catch {
    return () => undefined;
  }
})();

/** Samples RSS while `run` runs; returns its result and the largest growth over the start. */
async function withRss<T>(run: () => Promise<T>): Promise<{ result: T; growth: number }> {
  collectGarbage();
  const base = process.memoryUsage.rss();
  let peak = base;
  const timer = setInterval(() => {
    collectGarbage();
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 50);
  try {
    const result = await run();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { result, growth: peak - base };
  } finally {
    clearInterval(timer);
  }
}

async function mapLimit<T>(items: readonly T[], limit: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await run(items[next++] as T);
    }),
  );
}

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function expectMissing(storage: Storage, key: string): Promise<void> {
  await expect(storage.stat(key)).rejects.toBeInstanceOf(NotFoundError);
  const listed = await storage.list(key.split('/').slice(0, -1).join('/'));
  expect(listed.map((object) => object.key)).not.toContain(key);
}

export function storageConformance(name: string, makeStorage: () => Promise<Storage> | Storage, hooksOrFactory: ConformanceHooks | (() => ConformanceHooks) = {}): void {
  describe(`storage conformance: ${name}`, () => {
    let storage: Storage;
    let hooks: ConformanceHooks;
    const bigBytes = () => hooks.bigBytes ?? 110 * MIB;

    beforeAll(async () => {
      hooks = typeof hooksOrFactory === 'function' ? hooksOrFactory() : hooksOrFactory;
      storage = await makeStorage();
      await storage.open();
    });
    afterAll(async () => {
      await storage?.close();
      await hooks?.teardown?.();
    });

    it('declares an atomic put, a redacted location and consistent capabilities', async () => {
      const caps = await storage.open();
      expect(caps.atomicPut).toBe(true);
      expect(caps.consistentList).toBe(true);
      expect(typeof storage.location).toBe('string');
      expect(storage.location).not.toMatch(/sig=|password|secret|AccountKey/i);
      expect(caps.localFiles).toBe(typeof storage.localPath === 'function');
    });

    it('put/get/stat round trip of a small object; putBytes replaces atomically', async () => {
      const before = Date.now();
      const { bytes } = await storage.put('basic/one.bin', Readable.from([Buffer.from('hello '), Buffer.from('world')]));
      expect(bytes).toBe(11);
      expect((await readAllOf(await storage.get('basic/one.bin'))).toString()).toBe('hello world');
      const info = await storage.stat('basic/one.bin');
      expect(info.key).toBe('basic/one.bin');
      expect(info.size).toBe(11);
      // The store's clock, allowing for skew and coarse timestamps.
      expect(Math.abs(info.modifiedAt.getTime() - before)).toBeLessThan(5 * 60_000);
      await storage.putBytes('basic/one.bin', Buffer.from('replaced'));
      expect((await storage.getBytes('basic/one.bin', 100)).toString()).toBe('replaced');
      const after = await storage.stat('basic/one.bin');
      expect(after.size).toBe(8);
      if (info.etag !== undefined) expect(after.etag).not.toBe(info.etag);
      // An empty object is an object.
      await storage.putBytes('basic/empty.bin', Buffer.alloc(0));
      expect((await storage.stat('basic/empty.bin')).size).toBe(0);
      expect(await storage.getBytes('basic/empty.bin', 10)).toEqual(Buffer.alloc(0));
    });

    it(`streams a large object both ways with bounded memory (sha256 equal)`, async () => {
      const size = bigBytes();
      const source = generatedStream(size, 42);
      const up = await withRss(() => storage.put('big/object.bin', source.stream, { expectedBytes: size }));
      expect(up.result.bytes).toBe(size);
      expect((await storage.stat('big/object.bin')).size).toBe(size);
      const down = await withRss(async () => hashStream(await storage.get('big/object.bin')));
      expect(down.result).toEqual({ sha256: source.sha256(), bytes: size });
      const limit = hooks.maxRssGrowth === undefined ? 100 * 1000 * 1000 : hooks.maxRssGrowth;
      if (limit === null) {
        console.info(`${name}: RSS growth not bounded by contract (objects live in memory): up ${(up.growth / MIB).toFixed(1)} MiB`);
      } else {
        console.info(`${name}: ${(size / MIB).toFixed(0)} MiB round trip, RSS growth up ${(up.growth / MIB).toFixed(1)} MiB, down ${(down.growth / MIB).toFixed(1)} MiB`);
        expect(up.growth).toBeLessThan(limit);
        expect(down.growth).toBeLessThan(limit);
      }
    }, 180_000);

    it('reads ranges', async () => {
      const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
      await storage.putBytes('range/data.bin', data);
      expect(await readAllOf(await storage.get('range/data.bin', { range: { offset: 100, length: 50 } }))).toEqual(data.subarray(100, 150));
      expect(await readAllOf(await storage.get('range/data.bin', { range: { offset: 990 } }))).toEqual(data.subarray(990));
      expect(await readAllOf(await storage.get('range/data.bin', { range: { offset: 0, length: 1 } }))).toEqual(data.subarray(0, 1));
      expect(await readAllOf(await storage.get('range/data.bin', { range: { offset: 10, length: 0 } }))).toEqual(Buffer.alloc(0));
    });

    it('an aborted put leaves nothing visible and no temporaries or incomplete uploads', async () => {
      const partial = hooks.abortAfterBytes ?? 12 * MIB;
      let pushed = 0;
      let pulledAfterLast = false;
      const source = new Readable({
        read() {
          if (pushed >= partial) {
            pulledAfterLast = true; // everything we had was taken: the producer now "hangs"
            return;
          }
          const chunk = Buffer.alloc(Math.min(MIB, partial - pushed), pushed & 0xff);
          pushed += chunk.length;
          this.push(chunk);
        },
      });
      const controller = new AbortController();
      let acknowledged = 0;
      const putting = storage.put('abort/object.bin', source, {
        signal: controller.signal,
        onProgress: (bytes) => (acknowledged = bytes),
      });
      putting.catch(() => undefined);
      await until(() => pulledAfterLast, 60_000, 'the put to take every byte offered');
      const reason = new Error('stop, test abort');
      const started = Date.now();
      controller.abort(reason);
      const aborted = await putting.then(
        () => null,
        (error: unknown) => error as Error,
      );
      expect(aborted?.name).toBe('AbortError');
      expect(aborted?.cause).toBe(reason);
      expect(Date.now() - started).toBeLessThan(10_000);
      console.info(`${name}: aborted after ${(pushed / MIB).toFixed(0)} MiB offered, ${(acknowledged / MIB).toFixed(1)} MiB acknowledged`);
      await expectMissing(storage, 'abort/object.bin');
      if (hooks.leftovers) expect(await hooks.leftovers()).toEqual([]);
    }, 90_000);

    it("a source that fails mid-way fails the put with the source's own error, leaving nothing", async () => {
      const failure = new Error('pg_dump died');
      let pushed = 0;
      const source = new Readable({
        read() {
          if (pushed >= 3 * MIB) {
            this.destroy(failure);
            return;
          }
          pushed += MIB;
          this.push(Buffer.alloc(MIB, 7));
        },
      });
      await expect(storage.put('abort/failed-source.bin', source)).rejects.toBe(failure);
      await expectMissing(storage, 'abort/failed-source.bin');
      if (hooks.leftovers) expect(await hooks.leftovers()).toEqual([]);
    }, 60_000);

    it('an aborted put does not replace the object already under its key', async () => {
      await storage.putBytes('abort/kept.bin', Buffer.from('old content'));
      const controller = new AbortController();
      let pulled = 0;
      const source = new Readable({
        read() {
          if (pulled >= 2 * MIB) return;
          pulled += MIB;
          this.push(Buffer.alloc(MIB, 1));
        },
      });
      const putting = storage.put('abort/kept.bin', source, { signal: controller.signal });
      putting.catch(() => undefined);
      await until(() => pulled >= 2 * MIB, 30_000, 'bytes to be taken');
      controller.abort(new Error('abort'));
      await expect(putting).rejects.toMatchObject({ name: 'AbortError' });
      expect((await storage.getBytes('abort/kept.bin', 100)).toString()).toBe('old content');
    }, 60_000);

    it('8 concurrent puts of different keys all land whole; concurrent puts of one key leave exactly one of them', async () => {
      const sizes = Array.from({ length: 8 }, (_, i) => Math.round((i + 1) * 0.9 * MIB) + i);
      const expected = new Map<string, string>();
      await Promise.all(
        sizes.map(async (size, i) => {
          const source = generatedStream(size, 1000 + i, 256 * 1024);
          await storage.put(`concurrent/object-${i}.bin`, source.stream);
          expected.set(`concurrent/object-${i}.bin`, source.sha256());
        }),
      );
      for (const [key, digest] of expected) {
        expect(await hashStream(await storage.get(key))).toEqual({ sha256: digest, bytes: sizes[Number(/-(\d+)\./.exec(key)?.[1])] });
      }
      // Concurrent puts of one key: each succeeds or fails with a typed error (Azure: a
      // commit discards the other writers' uncommitted blocks); what is left is one of the
      // successful ones, whole.
      const variants = [0, 1, 2, 3].map((i) => Buffer.alloc(MIB + i * 1000, 65 + i));
      const outcomes = await Promise.allSettled(variants.map((data) => storage.put('concurrent/same.bin', Readable.from([data]))));
      for (const outcome of outcomes) if (outcome.status === 'rejected') expect(outcome.reason).toBeInstanceOf(StorageError);
      const landed = variants.filter((_, i) => outcomes[i]?.status === 'fulfilled');
      expect(landed.length).toBeGreaterThan(0);
      const final = await storage.getBytes('concurrent/same.bin', 10 * MIB);
      expect(landed.map(sha256)).toContain(sha256(final));
    }, 120_000);

    it('lists more than 1,000 keys under a prefix: complete, sorted, whole segments only', async () => {
      const keys = Array.from({ length: 1100 }, (_, i) => `many/k-${String(i).padStart(5, '0')}.json`);
      await mapLimit(keys, 32, (key) => storage.putBytes(key, Buffer.from(key)));
      await storage.putBytes('many2/not-this.json', Buffer.from('x'));
      await storage.putBytes('manyx', Buffer.from('x'));
      await storage.putBytes('many/sub/deeper.json', Buffer.from('deeper'));
      const started = Date.now();
      const listed = await storage.list('many');
      const elapsed = Date.now() - started;
      const names = listed.map((object) => object.key);
      expect(names).toEqual([...keys, 'many/sub/deeper.json'].sort());
      expect(listed.find((object) => object.key === 'many/k-00007.json')?.size).toBe('many/k-00007.json'.length);
      expect(await storage.list('many/')).toHaveLength(1101);
      const all = (await storage.list('')).map((object) => object.key);
      expect(all).toEqual([...all].sort());
      expect(all).toEqual(expect.arrayContaining(['many2/not-this.json', 'manyx', 'many/k-01099.json']));
      expect(await storage.list('no-such-prefix')).toEqual([]);
      // startAfter: the keys after it, past a page boundary, between keys, before and past them all.
      const after = (await storage.list('many', { startAfter: 'many/k-00049.json' })).map((object) => object.key);
      expect(after).toEqual([...keys.slice(50), 'many/sub/deeper.json'].sort());
      expect((await storage.list('many', { startAfter: 'many/k-01098' })).map((object) => object.key)).toEqual(['many/k-01098.json', 'many/k-01099.json', 'many/sub/deeper.json']);
      expect(await storage.list('many', { startAfter: 'a' })).toHaveLength(1101);
      expect(await storage.list('many', { startAfter: 'many/zzz' })).toEqual([]);
      console.info(`${name}: listed ${listed.length} keys in ${elapsed} ms`);
    }, 180_000);

    it('children names the segments under a prefix that hold objects, without their objects', async () => {
      // Each folder holds an object of its own: s3rver's delimiter listing does not see a
      // folder whose objects are all deeper (a profile's always are at its top).
      for (const key of ['kids/app/a.json', 'kids/app/b.json', 'kids/db-2/c.json', 'kids/db-2/x/deep.json', 'kids/top.json', 'kids2/d.json', 'kids2/other/c.json']) {
        await storage.putBytes(key, Buffer.from(key));
      }
      expect(await storage.children('kids')).toEqual(['app', 'db-2']);
      expect(await storage.children('kids/')).toEqual(['app', 'db-2']);
      expect(await storage.children('kids/db-2')).toEqual(['x']);
      expect(await storage.children('kids/app')).toEqual([]);
      expect(await storage.children('kids/top.json')).toEqual([]);
      expect(await storage.children('no-such-prefix')).toEqual([]);
      const root = await storage.children('');
      expect(root).toEqual(expect.arrayContaining(['kids', 'kids2']));
      expect(root).toEqual([...root].sort());
      // A put in progress is no folder on object stores; its temporaries are never named.
      expect(root.some((name) => name.startsWith('.'))).toBe(false);
    });

    it('remove is idempotent; a removed object is gone from stat, get and list', async () => {
      await storage.putBytes('remove/me.bin', Buffer.from('bye'));
      await storage.remove('remove/me.bin');
      await expectMissing(storage, 'remove/me.bin');
      await expect(storage.get('remove/me.bin')).rejects.toBeInstanceOf(NotFoundError);
      await storage.remove('remove/me.bin');
      await storage.remove('remove/never-existed.bin');
      await storage.remove('no-such-dir/never-existed.bin');
    });

    it('a missing object is NotFoundError (with its key) from get, getBytes and stat', async () => {
      for (const attempt of [() => storage.get('missing/x.bin'), () => storage.getBytes('missing/x.bin', 10), () => storage.stat('missing/x.bin')]) {
        const error = await attempt().then(
          () => null,
          (failure: unknown) => failure,
        );
        expect(error).toBeInstanceOf(NotFoundError);
        expect((error as NotFoundError).key).toBe('missing/x.bin');
        expect((error as NotFoundError).code).toBe('not-found');
      }
    });

    it('getBytes refuses an object larger than allowed (TooLargeError) before reading it', async () => {
      await storage.putBytes('limits/big.bin', Buffer.alloc(5000, 1));
      await expect(storage.getBytes('limits/big.bin', 4999)).rejects.toBeInstanceOf(TooLargeError);
      expect((await storage.getBytes('limits/big.bin', 5000)).length).toBe(5000);
    });

    it('permission denied is PermissionError', async (context) => {
      if (!hooks.denied) {
        console.info(`${name}: no way to make this server deny a write here; permission mapping not checked`);
        context.skip();
        return;
      }
      const denied = await hooks.denied();
      try {
        await expect(denied.putBytes('denied/x.bin', Buffer.from('x'))).rejects.toBeInstanceOf(PermissionError);
        await expect(denied.put('denied/y.bin', Readable.from([Buffer.from('y')]))).rejects.toBeInstanceOf(PermissionError);
      } finally {
        await denied.close();
      }
    }, 60_000);

    it('putIfAbsent: exactly one of concurrent creators wins when conditionalCreate; UnsupportedError otherwise', async () => {
      const caps = await storage.open();
      const attempts = Array.from({ length: 10 }, (_, i) => Buffer.from(`{"writer":${i}}`));
      if (!caps.conditionalCreate) {
        await expect(storage.putIfAbsent('cond/lock.json', attempts[0] as Buffer)).rejects.toBeInstanceOf(UnsupportedError);
        console.info(`${name}: conditionalCreate is false; putIfAbsent refuses (locks use write-then-check)`);
        return;
      }
      const results = await Promise.all(attempts.map((data) => storage.putIfAbsent('cond/lock.json', data)));
      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = attempts[results.indexOf(true)] as Buffer;
      expect(await storage.getBytes('cond/lock.json', 1000)).toEqual(winner);
      expect(await storage.putIfAbsent('cond/lock.json', Buffer.from('late'))).toBe(false);
      await storage.remove('cond/lock.json');
      expect(await storage.putIfAbsent('cond/lock.json', Buffer.from('after removal'))).toBe(true);
      const listed = (await storage.list('cond')).map((object) => object.key);
      expect(listed).toEqual(['cond/lock.json']); // no temporaries left visible
    }, 60_000);

    it('an abort stops a get within a second (before and while streaming)', async () => {
      await storage.put('abortget/object.bin', generatedStream(12 * MIB, 9).stream);
      const already = new AbortController();
      already.abort(new Error('already aborted'));
      const early = await storage.get('abortget/object.bin', { signal: already.signal }).catch((error: unknown) => error as Error);
      expect(early).toMatchObject({ name: 'AbortError', cause: already.signal.reason });

      const controller = new AbortController();
      const stream = await storage.get('abortget/object.bin', { signal: controller.signal });
      const first = await new Promise<Buffer>((resolve, reject) => {
        stream.once('data', resolve);
        stream.once('error', reject);
      });
      expect(first.length).toBeGreaterThan(0);
      stream.pause(); // a reader that stopped reading: the abort must still end the stream
      const ended = new Promise<unknown>((resolve) => {
        stream.once('error', resolve);
        stream.once('close', () => resolve('closed'));
      });
      const started = Date.now();
      controller.abort(new Error('stop reading'));
      const outcome = await ended;
      expect(Date.now() - started).toBeLessThan(1000);
      expect(stream.destroyed).toBe(true);
      if (outcome instanceof Error) expect(outcome).toMatchObject({ name: 'AbortError', cause: controller.signal.reason });
    }, 60_000);

    it('refuses keys that could escape the root or hide as temporaries', async () => {
      for (const key of ['../evil', 'a/../../evil', '/abs', '.hidden', 'a/.tmp-x', 'a//b', '']) {
        await expect(storage.putBytes(key, Buffer.from('x'))).rejects.toThrow(/unsafe storage key/);
      }
      await expect(storage.list('../')).rejects.toThrow(/unsafe storage key/);
    });

    it('checkWritable passes; removeStaleTemporaries never touches complete objects and leaves nothing behind', async () => {
      await storage.checkWritable('stale');
      await storage.putBytes('stale/kept.bin', Buffer.from('keep'));
      const result = await storage.removeStaleTemporaries('stale', new Date(Date.now() + 3600_000));
      expect(result.files).toBeGreaterThanOrEqual(0);
      expect(result.bytes).toBeGreaterThanOrEqual(0);
      expect((await storage.list('stale')).map((object) => object.key)).toEqual(['stale/kept.bin']);
      if (hooks.leftovers) expect(await hooks.leftovers()).toEqual([]);
    });

    it('removeStaleTemporaries with dryRun counts what it would remove and removes nothing; the real call then removes that', async () => {
      await storage.putBytes('staledry/kept.bin', Buffer.from('keep'));
      const planted = hooks.plantStaleTemporary ? await hooks.plantStaleTemporary('staledry') : null;
      const olderThan = new Date(Date.now() + 3600_000);
      const dry = await storage.removeStaleTemporaries('staledry', olderThan, { dryRun: true });
      if (planted) {
        expect(dry).toEqual({ files: 1, bytes: planted.bytes });
        if (hooks.leftovers) expect(await hooks.leftovers()).toHaveLength(1); // still there
      } else {
        expect(dry).toEqual({ files: 0, bytes: 0 });
      }
      expect((await storage.list('staledry')).map((object) => object.key)).toEqual(['staledry/kept.bin']);
      expect(await storage.removeStaleTemporaries('staledry', olderThan)).toEqual(dry);
      expect(await storage.removeStaleTemporaries('staledry', olderThan, { dryRun: true })).toEqual({ files: 0, bytes: 0 });
      expect((await storage.list('staledry')).map((object) => object.key)).toEqual(['staledry/kept.bin']);
      if (hooks.leftovers) expect(await hooks.leftovers()).toEqual([]);
    });
  });
}
