/**
 * createIfAbsent's write-then-check scheme (stores without a conditional create, such as
 * s3rver): at most one of many concurrent callers creates the key, a created key is never
 * replaced, and a claim left by a dead writer stops nobody for long.
 */
import { mkdtemp, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalStorage } from '../../src/storage/local.js';
import { createIfAbsent } from '../../src/storage/exclusive.js';
import { MemoryStorage } from '../../src/storage/mem.js';
import type { Storage, StorageCapabilities } from '../../src/storage/storage.js';

/** A storage as a store that ignores conditional writes presents itself (every call passed on). */
function withoutConditionalCreate(inner: Storage): Storage {
  const capabilities: StorageCapabilities = { ...inner.capabilities, conditionalCreate: false };
  return new Proxy(inner, {
    get(target, property, receiver) {
      if (property === 'capabilities') return capabilities;
      if (property === 'open') return async () => capabilities;
      if (property === 'putIfAbsent') return () => Promise.reject(new Error('putIfAbsent must not be used'));
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

let n = 0;
const fresh = () => withoutConditionalCreate(MemoryStorage.named(`exclusive-${++n}-${Date.now()}`, ''));

describe('createIfAbsent without a conditional create', () => {
  it('creates once; a second call finds the key and changes nothing', async () => {
    const storage = fresh();
    expect(await createIfAbsent(storage, 'p/lock.json', Buffer.from('first'))).toBe(true);
    expect(await createIfAbsent(storage, 'p/lock.json', Buffer.from('second'))).toBe(false);
    expect((await storage.getBytes('p/lock.json', 100)).toString()).toBe('first');
    // No claim is left behind.
    expect((await storage.list('p/claims')).map((o) => o.key)).toEqual([]);
  });

  it('of 20 concurrent callers, at most one creates the key (rounds of 10)', async () => {
    for (let round = 0; round < 10; round++) {
      const storage = fresh();
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => createIfAbsent(storage, 'p/lock.json', Buffer.from(`writer ${i}`))));
      expect(results.filter(Boolean).length).toBeLessThanOrEqual(1);
      if (results.some(Boolean)) {
        const winner = results.indexOf(true);
        expect((await storage.getBytes('p/lock.json', 100)).toString()).toBe(`writer ${winner}`);
      }
    }
  });

  it('a claim left by a writer that died long ago is removed and ignored', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'backupctl-exclusive-'));
    try {
      const storage = withoutConditionalCreate(new LocalStorage(root));
      await storage.putBytes('p/claims/lock.json.1-dead', Buffer.from('dead'));
      const old = new Date(Date.now() - 60_000);
      await utimes(path.join(root, 'p', 'claims', 'lock.json.1-dead'), old, old);
      expect(await createIfAbsent(storage, 'p/lock.json', Buffer.from('mine'))).toBe(true);
      expect((await storage.list('p/claims')).map((o) => o.key)).toEqual([]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('a live claim of another writer makes it give up', async () => {
    const storage = fresh();
    await storage.putBytes('p/claims/lock.json.2-alive', Buffer.from('other'));
    expect(await createIfAbsent(storage, 'p/lock.json', Buffer.from('mine'))).toBe(false);
    await expect(storage.stat('p/lock.json')).rejects.toThrow();
  });
});
