import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { EntryKind } from './errors.js';

export {
  abortError,
  describeKind,
  ConfigurationError,
  CredentialsError,
  HostileEntryError,
  HostKeyError,
  isAbortError,
  NoSpaceError,
  NotFoundError,
  PermissionError,
  PreconditionFailedError,
  StalledError,
  StorageError,
  TooLargeError,
  TransientError,
  UnsupportedError,
  type EntryKind,
  type StorageErrorCode,
} from './errors.js';

/**
 * One stored object. Keys are `/`-separated, relative to the storage root, e.g.
 * `app/20261123T101500Z-1a2b3c.dump`; every segment is a safe name (see assertKey).
 */
export interface ObjectInfo {
  key: string;
  size: number;
  /** When the object was last written, by the store's clock (not this machine's, for remote stores). */
  modifiedAt: Date;
  /** The store's entity tag (S3, Azure), when it has one; changes whenever the content is replaced. */
  etag?: string | undefined;
}

/**
 * What a driver guarantees. Callers read these instead of asking which driver they
 * have; core never branches on a driver.
 *
 * `Storage.capabilities` is known without any I/O and is conservative: a capability
 * that needs a probe (S3's conditional writes) reads false there until `open()` has
 * probed it; `open()` resolves to the final set. Reading the conservative set is always
 * safe (a false `conditionalCreate` just means "use write-then-check").
 */
export interface StorageCapabilities {
  /**
   * put() publishes an object only once it is complete, and replaces an existing key in
   * one step: readers see the old object or the new one, never a partial one. True for
   * every driver (local: temp file + rename; S3: a PUT/multipart upload is invisible
   * until complete; Azure: blocks are invisible until the block list is committed; SFTP:
   * temp file + size check + posix-rename). Kept so that a caller can assert it.
   */
  atomicPut: boolean;
  /**
   * putIfAbsent() is enforced by the store itself: of any number of concurrent callers
   * (any process, any host) exactly one creates the key. True only when that is
   * reliable (local link(2); Azure If-None-Match; SFTP hardlink@openssh.com; S3 only when
   * the server was probed and refused a conditional overwrite, since s3rver and some
   * S3-compatibles silently ignore If-None-Match). When false, putIfAbsent() throws
   * UnsupportedError: build locks with write-then-check instead (write your own object,
   * list, back off if another is older), which needs only put/list/remove.
   */
  conditionalCreate: boolean;
  /** Objects are files on this machine: localPath() returns a path pg_restore can read in place. */
  localFiles: boolean;
  /** get() honours `range` (reads only the requested bytes). */
  rangeReads: boolean;
  /**
   * list() sees a completed put() at once, and no longer sees a completed remove()
   * (read-after-write consistent listing). True for local, S3 (since 2020), Azure, SFTP
   * and mem; the write-then-check lock scheme depends on it.
   */
  consistentList: boolean;
  /**
   * list() costs a request per page of keys and a round trip per request (S3: 1,000 keys
   * a page; Azure: 5,000; SFTP: a READDIR answer of ~100 names): a profile of 10,000
   * backups is tens to hundreds of requests. The catalog then lists a profile only when
   * its cached listing is not known to be current (catalog-generation.ts). False for local
   * storage and memory, whose listing is a directory read: listed every time.
   */
  pagedList: boolean;
}

export interface PutOptions {
  /** Aborting stops the write and removes everything written so far, then rejects with an AbortError whose cause is the signal's reason. */
  signal?: AbortSignal | undefined;
  /**
   * The expected size when known in advance (a hint, not a check): lets S3 pick a part
   * size that keeps a very large object within 10,000 parts.
   */
  expectedBytes?: number | undefined;
  /** Called with the total of bytes the store has acknowledged so far. */
  onProgress?: ((bytes: number) => void) | undefined;
}

export interface GetOptions {
  /** Bytes `offset` .. `offset + length - 1` (to the end when length is unset). Requires rangeReads for efficiency; every driver honours it. */
  range?: { offset: number; length?: number | undefined } | undefined;
  /** Aborting destroys the stream with an AbortError (cause: the signal's reason), or rejects a get that has not returned yet, within a second. */
  signal?: AbortSignal | undefined;
}

export interface ListOptions {
  /**
   * Local storage: called for every entry that is skipped because it is a symlink or
   * not a regular file/directory (see HostileEntryError); such entries are never
   * followed and never listed. Other drivers have no such entries.
   */
  onHostile?: ((key: string, kind: EntryKind) => void) | undefined;
  /**
   * Stores with directories (local, SFTP): called for every directory the listing walks
   * into, empty ones too, so that a caller can tell a directory where it writes only files
   * (a sidecar's key) from nothing at all. Stores of objects have none to report.
   */
  onDirectory?: ((key: string) => void) | undefined;
  /**
   * Only the keys that sort after this one (code unit order): e.g. a profile's backups
   * newer than a time, since ids begin with their start time. A store whose server can do
   * that (S3: StartAfter) is asked to; the others filter what they list. Same result.
   */
  startAfter?: string | undefined;
}

export interface StaleTemporariesOptions {
  /** Count what would be removed; remove nothing. */
  dryRun?: boolean | undefined;
}

/**
 * The storage contract every driver (local, mem, s3, azblob, sftp) meets; the shared
 * conformance suite (test/storage/conformance.ts) checks it against a real server.
 *
 * Keys and prefixes
 * - A key is `/`-separated segments of [A-Za-z0-9_.:-] that do not start with `.` (see
 *   assertKey): dot-names are the drivers' own (temporaries, probes) and never listed.
 * - A prefix is whole segments: list('app') lists `app/...`, never `app2/...`; '' is all.
 *
 * Writing
 * - put() streams: it honours back-pressure (a slow store slows the producer) and
 *   buffers at most a bounded amount (S3: (queueSize + 1) x partSize plus the source's
 *   chunks; Azure: concurrency x blockSize), never the whole object. It is atomic: until it resolves, the key shows
 *   its previous state; on error or abort nothing new is visible under the key,
 *   temporaries are removed (S3: the multipart upload is aborted and checked gone) and
 *   the error is re-thrown; an abort rejects with an AbortError whose cause is the
 *   signal's reason; a failing source rejects with the source's own error.
 * - A store that accepts no byte for `stallTimeoutMs` while data waits fails the put
 *   with StalledError (and cleans up as above); a producer that is merely slow is not a stall.
 * - Objects and the directories holding them are private to the owner (0600/0700 on
 *   POSIX stores), whatever the umask.
 * - putIfAbsent() is an atomic create-if-absent when capabilities.conditionalCreate
 *   (see there); otherwise it throws UnsupportedError.
 *
 * Reading
 * - A missing key is NotFoundError, never a driver-specific error. A get() stream whose
 *   store stops sending while the reader waits fails with StalledError; a paused reader
 *   is never a stall.
 * - list(prefix) returns complete objects only (never a put in progress), sorted by key
 *   (code unit order), however many there are (drivers paginate internally).
 *
 * Removing
 * - remove() of a missing key succeeds (removal is idempotent).
 *
 * Failures
 * - Typed: NotFoundError, PermissionError, NoSpaceError, PreconditionFailedError,
 *   HostileEntryError, CredentialsError, HostKeyError, ConfigurationError,
 *   TransientError, StalledError... (errors.ts lists the codes). Transient failures
 *   (timeouts, 5xx, resets, throttling) are retried with exponential backoff within
 *   `retryDeadlineMs`; permanent ones fail at once. Messages never hold secrets.
 *
 * Lifetime
 * - Drivers connect lazily on first use; close() releases connections (an SFTP session
 *   never keeps the process alive while idle, closed or not).
 */
export interface Storage {
  /** Where this storage points, safe to print (credentials redacted). */
  readonly location: string;
  /** What this driver guarantees (see StorageCapabilities; conservative until open()). */
  readonly capabilities: StorageCapabilities;
  /**
   * Connects (loads the SDK, checks credentials, host keys and the bucket/container,
   * probes capabilities) and resolves to the final capabilities. Idempotent; every other
   * method connects on demand, so commands that only read need not call it. The S3
   * probe (conditional-create=auto) writes and removes one dot-named probe object.
   */
  open(): Promise<StorageCapabilities>;
  /** Releases connections. Idempotent; the storage reopens if used again. */
  close(): Promise<void>;

  put(key: string, source: Readable, options?: PutOptions): Promise<{ bytes: number }>;
  /** put() for small payloads (sidecars, run logs): written, flushed to stable storage, then published. */
  putBytes(key: string, data: Buffer): Promise<void>;
  /**
   * Creates `key` with `data` only if it does not exist yet; true when this call created
   * it. Of concurrent calls for one key, exactly one resolves true; the object is complete
   * when it becomes visible. Throws UnsupportedError unless capabilities.conditionalCreate.
   */
  putIfAbsent(key: string, data: Buffer): Promise<boolean>;
  /** A stream of the object's bytes (or of `range`). NotFoundError when missing. */
  get(key: string, options?: GetOptions): Promise<Readable>;
  /** The whole object, refused with TooLargeError when larger than maxBytes (checked before reading). */
  getBytes(key: string, maxBytes: number): Promise<Buffer>;
  stat(key: string): Promise<ObjectInfo>;
  /** Every object under `prefix` (whole segments), sorted by key. */
  list(prefix: string, options?: ListOptions): Promise<ObjectInfo[]>;
  /**
   * The names of the segments directly under `prefix` ('' is the root) that can hold
   * objects, sorted, without listing those objects: the profiles of a storage root in one
   * request (S3 and Azure: a delimiter listing, which names only segments holding objects;
   * local and SFTP: one directory read, which may name an empty directory). Names that are
   * no valid key segment, dot-names and anything that is not a directory (a symlink on
   * local storage) are left out; list() is what reports those.
   */
  children(prefix: string): Promise<string[]>;
  /** Removes one object; a missing key is not an error. */
  remove(key: string): Promise<void>;
  /** Fails early (before any dump starts) when objects cannot be written under prefix. */
  checkWritable(prefix: string): Promise<void>;
  /**
   * Removes what puts that never finished left behind (a crash, a killed process)
   * directly under `prefix` and older than `olderThan`: temporary files (local, SFTP),
   * incomplete multipart uploads (S3). Returns how many it removed and the bytes freed
   * (when known). A put in progress is younger than any sensible threshold and is left
   * alone. Azure needs nothing: the service discards uncommitted blocks after 7 days.
   * With `dryRun`, removes nothing and returns what it would remove (prune --dry-run).
   * `bytes` counts what the store tells (S3 does not give an incomplete upload's size: 0).
   */
  removeStaleTemporaries(prefix: string, olderThan: Date, options?: StaleTemporariesOptions): Promise<{ files: number; bytes: number }>;
  /**
   * For localFiles stores: the path of a key on this machine, for pg_restore to read in
   * place. Throws HostileEntryError when the path passes through a symlink or names a
   * non-regular entry; a missing key is not checked here (opening it fails with ENOENT).
   */
  localPath?(key: string): string;
  /**
   * For localFiles stores: the object opened for reading, checked as get() checks it (a
   * regular file inside the root, reached through no symlink), with its size. Another
   * program reads it through `/proc/<pid>/fd/<fd>` for as long as the handle is open, so
   * the file it reads is the one that was checked, whatever happens to the path meanwhile.
   */
  openLocalFile?(key: string): Promise<{ handle: FileHandle; size: number }>;
}

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.:-]*$/;

/** True when `key` is a valid key (see assertKey). */
export function isValidKey(key: string): boolean {
  if (key === '' || key.length > MAX_KEY_LENGTH) return false;
  for (const segment of key.split('/')) {
    if (!isValidSegment(segment)) return false;
  }
  return true;
}

/** The longest valid key. */
export const MAX_KEY_LENGTH = 1024;

/** True when `segment` is one valid segment of a key (see assertKey). */
export function isValidSegment(segment: string): boolean {
  return SEGMENT.test(segment) && !segment.includes('..');
}

/** Rejects keys that could escape the storage root or hide as temporaries. */
export function assertKey(key: string): void {
  if (!isValidKey(key)) throw new Error(`unsafe storage key: ${JSON.stringify(key)}`);
}

/** Rejects prefixes that are not '' or a valid key (trailing slashes are allowed and ignored). */
export function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/\/+$/, '');
  if (trimmed !== '') assertKey(trimmed);
  return trimmed;
}

/** The objects whose key sorts after `startAfter` (all of them when it is undefined). */
export function keysAfter<T extends { key: string }>(objects: T[], startAfter: string | undefined): T[] {
  return startAfter === undefined ? objects : objects.filter((object) => object.key > startAfter);
}

/** Sorts objects by key in code unit order (what S3 and Azure return), in place. */
export function sortByKey<T extends { key: string }>(objects: T[]): T[] {
  return objects.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
