import { homedir } from 'node:os';
import { ChangeTracking } from '../catalog/catalog-generation.js';
import { openStorage, type StorageSettings } from '../storage/registry.js';
import type { Storage } from '../storage/storage.js';
import type { Runtime } from './runtime.js';

/**
 * The storages a run opens, one per location and settings, shared by every part of the
 * run (an SFTP session or an S3 client is set up once) and closed when the run ends.
 * Each keeps the catalog generation of the profiles the run changes (ChangeTracking),
 * settled when the run closes it.
 */
const pools = new WeakMap<object, Map<string, Storage>>();

type StorageRuntime = Pick<Runtime, 'env' | 'cwd' | 'reporter'>;

/** The storage at `location` (a path or URL) for this run, opened on first use. */
export function storageAt(runtime: StorageRuntime, location: string, settings: StorageSettings = {}): Storage {
  let pool = pools.get(runtime);
  if (!pool) {
    pool = new Map();
    pools.set(runtime, pool);
  }
  const key = `${location}\u0000${JSON.stringify(settings)}`;
  let storage = pool.get(key);
  if (!storage) {
    const debug = (message: string) => runtime.reporter.debug(message);
    const opened = openStorage(location, runtime.cwd, settings, {
      env: runtime.env as NodeJS.ProcessEnv,
      homeDir: runtime.env.HOME || homedir(),
      warn: (message) => runtime.reporter.warn(message),
      debug,
    });
    storage = new ChangeTracking(opened, debug);
    pool.set(key, storage);
  }
  return storage;
}

/** Closes every storage this run opened (SFTP sessions, HTTP agents). Never throws. */
export async function closeStorages(runtime: object): Promise<void> {
  const pool = pools.get(runtime);
  if (!pool) return;
  pools.delete(runtime);
  await Promise.all([...pool.values()].map((storage) => storage.close().catch(() => undefined)));
}
