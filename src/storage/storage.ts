import type { Readable } from 'node:stream';

/**
 * One stored object. Keys are `/`-separated, relative to the storage root, e.g.
 * `app/20261123T101500Z-1a2b3c.dump`; every segment is a safe name (see assertKey).
 */
export interface ObjectInfo {
  key: string;
  size: number;
  modifiedAt: Date;
}

export interface StorageCapabilities {
  /** put() publishes with a rename, so readers never see a partial object. */
  atomicPut: boolean;
  /** Objects are files on this machine (pg_restore can read them in place). */
  localFiles: boolean;
}

export interface PutOptions {
  /** Aborting stops the write and removes everything written so far. */
  signal?: AbortSignal;
}

/**
 * The storage contract every driver (local, s3, sftp) must meet; the shared
 * conformance suite in test/ checks it against a real server.
 *
 * - put() streams: it honours back-pressure (a slow store slows the producer) and never
 *   buffers the whole object. It is atomic: until it resolves, the key does not exist;
 *   on error or abort nothing is left under the key (temporaries are removed) and the
 *   error is re-thrown. An existing key is replaced only by a complete new object.
 * - Objects and the directories holding them are private to the owner (0600/0700 on
 *   POSIX stores), whatever the umask.
 * - A missing key is reported as NotFoundError, never as a driver-specific error.
 * - list(prefix) returns complete objects only (never a put in progress), in key order.
 * - remove() of a missing key succeeds (removal is idempotent).
 * - putIfAbsent() is an atomic create-if-absent: of any number of concurrent calls for one
 *   key (from any process or host using the store), exactly one resolves true and writes
 *   its data; the others resolve false and change nothing. The object is complete when
 *   it becomes visible (readers never see a partial one). Locks are built on it.
 */
export interface Storage {
  /** Where this storage points, safe to print (credentials redacted). */
  readonly location: string;
  readonly capabilities: StorageCapabilities;
  put(key: string, source: Readable, options?: PutOptions): Promise<{ bytes: number }>;
  /** put() for small payloads (sidecars): written, flushed to stable storage, then published. */
  putBytes(key: string, data: Buffer): Promise<void>;
  /** Creates `key` with `data` only if it does not exist yet; true when this call created it. */
  putIfAbsent(key: string, data: Buffer): Promise<boolean>;
  get(key: string): Promise<Readable>;
  getBytes(key: string, maxBytes: number): Promise<Buffer>;
  stat(key: string): Promise<ObjectInfo>;
  list(prefix: string): Promise<ObjectInfo[]>;
  remove(key: string): Promise<void>;
  /** Fails early (before any dump starts) when objects cannot be written under prefix. */
  checkWritable(prefix: string): Promise<void>;
  /**
   * Removes the temporaries of puts that never finished (a crash, a killed process)
   * directly under `prefix` and last modified before `olderThan`; returns how many bytes
   * it freed. A put in progress is younger than any sensible threshold and is left alone.
   */
  removeStaleTemporaries(prefix: string, olderThan: Date): Promise<{ files: number; bytes: number }>;
  /** For localFiles stores: the path of a key on this machine. */
  localPath?(key: string): string;
}

export class NotFoundError extends Error {
  constructor(readonly key: string) {
    super(`not found: ${key}`);
    this.name = 'NotFoundError';
  }
}

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.:-]*$/;

/** Rejects keys that could escape the storage root or hide as temporaries. */
export function assertKey(key: string): void {
  const segments = key.split('/');
  for (const segment of segments) {
    if (!SEGMENT.test(segment) || segment === '..' || segment.includes('..')) {
      throw new Error(`unsafe storage key: ${JSON.stringify(key)}`);
    }
  }
}
