import { BackupctlError, ExitCode, type ExitCodeValue } from '../errors.js';

/**
 * Typed storage errors. Every driver maps its own failures (errno codes, HTTP status
 * codes, S3/Azure error names, SFTP status codes) onto these, so callers decide on
 * `instanceof` or `code`, never on a driver's message text.
 *
 * The codes are stable (logs, JSON output and tests may use them):
 *
 * | code | class | meaning | retried by the driver |
 * |---|---|---|---|
 * | `not-found` | NotFoundError | the key does not exist | no |
 * | `permission` | PermissionError | the store refuses this operation (403, EACCES, SFTP permission denied, read-only) | no |
 * | `no-space` | NoSpaceError | the store is full (ENOSPC, EDQUOT, quota exceeded) | no |
 * | `precondition-failed` | PreconditionFailedError | a conditional write lost (the key exists) | no |
 * | `hostile-entry` | HostileEntryError | local, SFTP: a symlink or a non-regular entry where an object or directory must be | no |
 * | `too-large` | TooLargeError | getBytes: the object is larger than the caller allows | no |
 * | `credentials` | CredentialsError | no credentials found, or the store rejects them | no |
 * | `host-key` | HostKeyError | SFTP: the server's host key is unknown or does not match known_hosts | no |
 * | `config` | ConfigurationError | the location or a setting is wrong (bad URL, missing bucket/container) | no |
 * | `unsupported` | UnsupportedError | the store lacks a capability the call needs | no |
 * | `transient` | TransientError | timeouts, 5xx, resets, throttling: still failing when the retry deadline ran out | yes, then this |
 * | `stalled` | StalledError | no byte acknowledged for `stallTimeoutMs` while data was waiting | no (the put is aborted) |
 * | `io` | StorageError | anything else (the cause says what) | no |
 *
 * Messages never hold a secret (credentials, SAS tokens, passwords), and name the key
 * but not the storage location: callers add the (redacted) location once.
 */
export type StorageErrorCode =
  | 'not-found'
  | 'permission'
  | 'no-space'
  | 'precondition-failed'
  | 'hostile-entry'
  | 'too-large'
  | 'credentials'
  | 'host-key'
  | 'config'
  | 'unsupported'
  | 'transient'
  | 'stalled'
  | 'io';

export interface StorageErrorOptions {
  key?: string | undefined;
  hint?: string | undefined;
  cause?: unknown;
  /** The system error code underneath (ENOSPC, ENOTDIR...), when there is one. */
  errno?: string | undefined;
}

const USAGE_CODES: ReadonlySet<StorageErrorCode> = new Set(['credentials', 'host-key', 'config', 'unsupported']);

/**
 * Base class of every storage failure. A BackupctlError, so one that reaches the CLI
 * unwrapped still prints one line with a hint and the right exit code (2 for
 * configuration problems: credentials, host key, bad location; 1 otherwise).
 */
export class StorageError extends BackupctlError {
  readonly code: StorageErrorCode;
  readonly key: string | undefined;
  readonly errno: string | undefined;

  constructor(code: StorageErrorCode, message: string, options: StorageErrorOptions = {}) {
    super(message, {
      exitCode: (USAGE_CODES.has(code) ? ExitCode.USAGE : ExitCode.FAILED) as ExitCodeValue,
      hint: options.hint,
      cause: options.cause,
    });
    this.name = 'StorageError';
    this.code = code;
    this.key = options.key;
    this.errno = options.errno;
  }

  /** True for failures that the same call might not meet again (the retry budget ran out). */
  get retryable(): boolean {
    return this.code === 'transient' || this.code === 'stalled';
  }
}

/** The key does not exist (also: a get of a key removed meanwhile). */
export class NotFoundError extends StorageError {
  declare readonly key: string;
  constructor(key: string, options: Omit<StorageErrorOptions, 'key'> = {}) {
    super('not-found', `not found: ${key}`, { ...options, key });
    this.name = 'NotFoundError';
  }
}

export class PermissionError extends StorageError {
  constructor(message: string, options: StorageErrorOptions = {}) {
    super('permission', message, {
      hint: 'check the owner and mode of the backup directory (or the permissions of the storage credentials), or choose another --storage',
      ...options,
    });
    this.name = 'PermissionError';
  }
}

export class NoSpaceError extends StorageError {
  constructor(message: string, options: StorageErrorOptions = {}) {
    super('no-space', message, { hint: 'free space or choose another --storage; the partial object was removed', ...options });
    this.name = 'NoSpaceError';
  }
}

/** A conditional write found the key already there. putIfAbsent() turns it into `false`. */
export class PreconditionFailedError extends StorageError {
  constructor(key: string, options: Omit<StorageErrorOptions, 'key'> = {}) {
    super('precondition-failed', `${key} already exists`, { ...options, key });
    this.name = 'PreconditionFailedError';
  }
}

/**
 * Local storage and SFTP (stores of files): a symlink, FIFO, socket, device, or a directory
 * where an object (or a regular directory) must be. Such an entry is never read, written,
 * followed or removed; it is reported with its key.
 */
export class HostileEntryError extends StorageError {
  declare readonly key: string;
  constructor(
    key: string,
    /** What is there. */
    readonly kind: EntryKind,
    /** What should be there: an object (`file`) or a directory on the way to one. */
    readonly expected: 'file' | 'directory' = 'file',
    options: Omit<StorageErrorOptions, 'key'> = {},
  ) {
    const what = `${describeKind(kind)}, not ${expected === 'file' ? 'a regular file' : 'a directory'}`;
    super('hostile-entry', `refusing to use ${key || 'the storage root'}: it is ${what} (never followed, read, written or removed)`, {
      hint: 'something other than backupctl put it there; inspect it and remove it by hand',
      ...options,
      key,
    });
    this.name = 'HostileEntryError';
  }
}

export class TooLargeError extends StorageError {
  constructor(key: string, readonly size: number, readonly limit: number) {
    // The wording "more than the N allowed" is kept for callers of an older release.
    super('too-large', `${key} is ${size} bytes, more than the ${limit} allowed`, { key });
    this.name = 'TooLargeError';
  }
}

export class CredentialsError extends StorageError {
  constructor(message: string, options: StorageErrorOptions = {}) {
    super('credentials', message, options);
    this.name = 'CredentialsError';
  }
}

export class HostKeyError extends StorageError {
  constructor(message: string, options: StorageErrorOptions = {}) {
    super('host-key', message, options);
    this.name = 'HostKeyError';
  }
}

export class ConfigurationError extends StorageError {
  constructor(message: string, options: StorageErrorOptions = {}) {
    super('config', message, options);
    this.name = 'ConfigurationError';
  }
}

export class UnsupportedError extends StorageError {
  constructor(message: string, options: StorageErrorOptions = {}) {
    super('unsupported', message, options);
    this.name = 'UnsupportedError';
  }
}

/** Timeouts, 5xx, connection resets, throttling that outlasted the retry deadline. */
export class TransientError extends StorageError {
  constructor(message: string, options: StorageErrorOptions = {}) {
    super('transient', message, { hint: 'the storage did not answer reliably; check its status and the network, then retry', ...options });
    this.name = 'TransientError';
  }
}

/** Data was waiting to be sent (or a reader was waiting for data) and nothing moved for stallTimeoutMs. */
export class StalledError extends StorageError {
  constructor(message: string, options: StorageErrorOptions = {}) {
    super('stalled', message, {
      hint: 'the storage stopped responding; check the server and the network (the stall timeout is the stall-timeout setting)',
      ...options,
    });
    this.name = 'StalledError';
  }
}

/** What lstat says an entry is. */
export type EntryKind = 'file' | 'directory' | 'symlink' | 'fifo' | 'socket' | 'device' | 'other';

/** What a file system entry is, from its lstat attributes (node:fs Stats, or ssh2's for SFTP). */
export function entryKindOf(info: {
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isBlockDevice(): boolean;
  isCharacterDevice(): boolean;
}): EntryKind {
  if (info.isFile()) return 'file';
  if (info.isDirectory()) return 'directory';
  if (info.isSymbolicLink()) return 'symlink';
  if (info.isFIFO()) return 'fifo';
  if (info.isSocket()) return 'socket';
  if (info.isBlockDevice() || info.isCharacterDevice()) return 'device';
  return 'other';
}

export function describeKind(kind: EntryKind): string {
  switch (kind) {
    case 'file':
      return 'a regular file';
    case 'directory':
      return 'a directory';
    case 'symlink':
      return 'a symbolic link';
    case 'fifo':
      return 'a FIFO';
    case 'socket':
      return 'a socket';
    case 'device':
      return 'a device';
    default:
      return 'not a regular file';
  }
}

/** True for an abort of the caller's signal (never retried, never wrapped). */
export function isAbortError(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'AbortError';
}

/**
 * The error an aborted storage call rejects with: an AbortError (name 'AbortError', code
 * 'ABORT_ERR', as Node's own) whose `cause` is the signal's reason, so callers tell an
 * abort from a storage failure by name and find why in the cause.
 */
export function abortError(signal: AbortSignal): Error {
  const error = new Error('the storage operation was aborted', { cause: signal.reason });
  error.name = 'AbortError';
  (error as Error & { code: string }).code = 'ABORT_ERR';
  return error;
}
