/**
 * findBackup (core/scope.ts): a full id is read by its key, in the named profile or in each
 * profile folder of the root (Storage.children), without listing any profile (on an object
 * store with 10,000 backups a listing is 31 pages); `latest` lists recent windows of each
 * profile first. A prefix, a missing id, an id in several profiles or something that is not
 * a regular file goes through the listing, which words the error as always.
 */
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Catalog, sidecarKey } from '../../src/catalog/catalog.js';
import { serializeSidecar } from '../../src/catalog/sidecar.js';
import type { ResolvedSettings } from '../../src/config/resolve.js';
import { findBackup, newestIds, type BackupScope } from '../../src/core/scope.js';
import { BackupctlError } from '../../src/errors.js';
import { LocalStorage } from '../../src/storage/local.js';
import type { Storage } from '../../src/storage/storage.js';
import { sampleSidecar } from '../helpers/sidecar-fixture.js';

const ID = '20261101T000000Z-0a0b0c';
const OTHER = '20261101T010000Z-0d0e0f';
let root: string;

beforeEach(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'backupctl-find-'));
  const storage = new LocalStorage(root);
  for (const id of [ID, OTHER]) {
    await storage.putBytes(sidecarKey('app', id), serializeSidecar(sampleSidecar({ id, profile: 'app' })));
    await storage.putBytes(`app/${id}.dump`, Buffer.from('dump'));
  }
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** A scope over the local storage at `root`, counting its listings. */
function scope(profile: string | undefined): { scope: BackupScope; lists: string[]; startAfters: Array<string | undefined> } {
  const lists: string[] = [];
  const startAfters: Array<string | undefined> = [];
  const inner = new LocalStorage(root);
  const storage = new Proxy(inner, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (property === 'list' && typeof value === 'function') {
        return (prefix: string, ...rest: unknown[]) => {
          lists.push(prefix);
          startAfters.push((rest[0] as { startAfter?: string } | undefined)?.startAfter);
          return (value as (...args: unknown[]) => unknown).call(target, prefix, ...rest);
        };
      }
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  }) as Storage;
  const settings = { profiles: new Map([['app', {}]]) } as unknown as ResolvedSettings;
  return { scope: { settings, runtime: { now: () => new Date() } as BackupScope['runtime'], profile, locations: [{ location: root, storage, catalog: new Catalog(storage) }] }, lists, startAfters };
}

describe('findBackup', () => {
  it('a full id with a profile: the one sidecar is read, nothing is listed', async () => {
    const { scope: s, lists } = scope('app');
    const found = await findBackup(s, ID);
    expect(found.sidecar.id).toBe(ID);
    expect(lists).toEqual([]);
  });

  it('a full id without a profile: looked up in each profile folder by key, nothing is listed', async () => {
    const storage = new LocalStorage(root);
    await storage.putBytes(sidecarKey('db2', OTHER.replace('0d0e0f', '111111')), serializeSidecar(sampleSidecar({ id: OTHER.replace('0d0e0f', '111111'), profile: 'db2' })));
    const anyProfile = scope(undefined);
    expect((await findBackup(anyProfile.scope, ID)).sidecar.id).toBe(ID);
    expect(anyProfile.lists).toEqual([]);
    // The same id in two profiles: the listing words the ambiguity.
    await storage.putBytes(sidecarKey('db2', ID), serializeSidecar(sampleSidecar({ id: ID, profile: 'db2' })));
    const twice = scope(undefined);
    await expect(findBackup(twice.scope, ID)).rejects.toThrow(/several profiles/);
    expect(twice.lists.length).toBeGreaterThan(0);
  });

  it('latest without a profile: the recent window of every profile folder, the newest of them wins', async () => {
    const storage = new LocalStorage(root);
    const idAt = (msAgo: number, tail: string) => `${new Date(Date.now() - msAgo).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${tail}`;
    const older = idAt(7_200_000, 'cccccc');
    const newer = idAt(3_600_000, 'dddddd');
    await storage.putBytes(sidecarKey('app', older), serializeSidecar(sampleSidecar({ id: older, profile: 'app', startedAt: new Date(Date.now() - 7_200_000).toISOString() })));
    await storage.putBytes(sidecarKey('db2', newer), serializeSidecar(sampleSidecar({ id: newer, profile: 'db2', startedAt: new Date(Date.now() - 3_600_000).toISOString() })));
    // A config with several profiles and no defaultProfile: latest is of any profile.
    const anyProfile = scope(undefined);
    const several = { ...anyProfile.scope, settings: { profiles: new Map([['app', {}], ['db2', {}]]) } as unknown as ResolvedSettings };
    const found = await findBackup(several, 'latest');
    expect(`${found.sidecar.profile}/${found.sidecar.id}`).toBe(`db2/${newer}`);
    expect(anyProfile.lists.sort()).toEqual(['app', 'db2']);
    expect(anyProfile.startAfters.every((after) => after !== undefined)).toBe(true);
  });

  it('a prefix, a missing id: through the listing, as before', async () => {
    const prefixed = scope('app');
    expect((await findBackup(prefixed.scope, '20261101T01')).sidecar.id).toBe(OTHER);
    expect(prefixed.lists.length).toBeGreaterThan(0);
    const missing = scope('app');
    await expect(findBackup(missing.scope, '20261101T020000Z-000000')).rejects.toThrow(/not found/);
    expect(missing.lists.length).toBeGreaterThan(0);
  });

  it('a sidecar that is a symlink is not read through: the listing path refuses it as before', async () => {
    const outside = path.join(root, 'outside.json');
    writeFileSync(outside, serializeSidecar(sampleSidecar({ id: '20261101T030000Z-0a0a0a', profile: 'app' })));
    symlinkSync(outside, path.join(root, 'app', '20261101T030000Z-0a0a0a.json'));
    const { scope: s, lists } = scope('app');
    const error = await findBackup(s, '20261101T030000Z-0a0a0a').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackupctlError);
    expect(lists.length).toBeGreaterThan(0);
  });

  it('latest of a profile lists only the recent backups first (ids begin with their time), widening when nothing there is readable', async () => {
    const storage = new LocalStorage(root);
    const idAt = (msAgo: number, tail: string) => `${new Date(Date.now() - msAgo).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${tail}`;
    const recent = idAt(3_600_000, 'bbbbbb');
    await storage.putBytes(sidecarKey('app', recent), serializeSidecar(sampleSidecar({ id: recent, profile: 'app' })));
    const windowed = scope('app');
    expect((await findBackup(windowed.scope, 'latest')).sidecar.id).toBe(recent);
    expect(windowed.startAfters).toHaveLength(1);
    expect(windowed.startAfters[0]! < `app/${recent}`).toBe(true);

    // The newest sidecar unreadable: the next one, found by widening the window.
    writeFileSync(path.join(root, 'app', `${recent}.json`), '{ not json');
    const widened = scope('app');
    const expected = [ID, OTHER].sort().at(-1) as string;
    expect((await findBackup(widened.scope, 'latest')).sidecar.id).toBe(expected);
    expect(widened.startAfters.length).toBeGreaterThan(1);

    // Only a backup older than every window: the whole profile is listed at last.
    for (const id of [ID, OTHER, recent]) rmSync(path.join(root, 'app', `${id}.json`));
    const old = idAt(400 * 86_400_000, 'aaaaaa');
    await storage.putBytes(sidecarKey('app', old), serializeSidecar(sampleSidecar({ id: old, profile: 'app' })));
    const full = scope('app');
    expect((await findBackup(full.scope, 'latest')).sidecar.id).toBe(old);
    expect(full.startAfters.at(-1)).toBeUndefined();
    expect(full.startAfters.slice(0, -1).every((after) => after?.startsWith('app/'))).toBe(true);
  });

  it('newestIds (shell completion): the recent window when it holds enough ids, widened to everything when not; no sidecar is read', async () => {
    const storage = new LocalStorage(root);
    const idAt = (msAgo: number, tail: string) => `${new Date(Date.now() - msAgo).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${tail}`;
    const recent = [idAt(3_600_000, 'aaaaaa'), idAt(7_200_000, 'bbbbbb'), idAt(10_800_000, 'cccccc')];
    const old = idAt(400 * 86_400_000, 'dddddd');
    // Sidecars that cannot be read: completion must not read them.
    for (const id of [...recent, old]) await storage.putBytes(sidecarKey('app', id), Buffer.from('{ not json'));
    const enough = scope('app');
    expect(await newestIds(enough.scope, 2)).toEqual(recent.slice(0, 2));
    expect(enough.startAfters).toHaveLength(1);
    expect(enough.startAfters[0]! < `app/${recent[2]}`).toBe(true);

    const all = scope('app');
    expect(await newestIds(all.scope, 10)).toEqual([...recent, ID, OTHER, old].sort().reverse());
    expect(all.startAfters.at(-1)).toBeUndefined();
    expect(all.startAfters.slice(0, -1).every((after) => after?.startsWith('app/'))).toBe(true);
  });
});
