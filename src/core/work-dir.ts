import { statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, relative } from 'node:path';
import { BackupctlError, errnoCode, InterruptedError } from '../errors.js';
import { PipelineError } from '../pipeline/errors.js';
import { formatBytes } from '../units.js';

export interface WorkDirFailureContext {
  /** The stored object being decoded into the work directory. */
  key?: string | undefined;
  /** The bytes it needs there (the archive's plaintext), when known. */
  needs?: number | undefined;
  /** A custom-format archive (streamed with --jobs 1), not a directory-format tar (always unpacked). */
  custom?: boolean | undefined;
  /**
   * The failure is a decoding stage's that wrote the file itself (zstd), on stored bytes
   * the caller has found sound: zstd reports a full disk only in words, so its failure
   * counts as the work directory's.
   */
  decoding?: boolean | undefined;
  /**
   * The failure is pg_dump's, writing a directory-format dump into the work directory: it
   * reports a full disk only in words, so its failure counts as the work directory's when
   * that has less than NEARLY_FULL_BYTES free.
   */
  dumping?: boolean | undefined;
}

/** Less room than this left after a program failed to write there: it was full. */
const NEARLY_FULL_BYTES = 1024 * 1024;

/**
 * A failure to write into the work directory (the config's `workDir`, else the OS temp
 * directory) as one line that names it, how much room it has and how much was needed:
 * this machine's failure, never a verdict on a backup (exit 1). Storage drivers translate
 * their own ENOSPC (storage-errors.ts), so one that reaches here raw is the work
 * directory's. Any other error is returned as it is.
 */
export async function workDirFailure(error: unknown, workDir: string | undefined, context: WorkDirFailureContext = {}): Promise<unknown> {
  if (context.dumping === true && !(error instanceof InterruptedError)) {
    const dir = workDir ?? tmpdir();
    const free = await freeBytes(dir);
    if (free === null || free >= NEARLY_FULL_BYTES) return error;
    return new BackupctlError(`the work directory ${dir} is full: pg_dump --format=directory could not write the dump there (${formatBytes(free)} free)`, {
      hint: 'free space there, or point "workDir" in the config (or TMPDIR) at a larger disk; --format custom streams into the storage and needs no room there',
      cause: error,
    });
  }
  const decoder = context.decoding === true && error instanceof PipelineError;
  if (error instanceof BackupctlError && !decoder) return error;
  const code = errnoCode(error);
  const noSpace = code === 'ENOSPC' || code === 'EDQUOT';
  if (!noSpace && !decoder) return error;
  // The directory the failed write was in, when the error says (a password file in the
  // OS temp directory while workDir is elsewhere), else the work directory.
  const failedPath = (error as { path?: unknown }).path;
  const base = workDir ?? tmpdir();
  const elsewhere = typeof failedPath === 'string' && failedPath !== '' && !isInside(failedPath, base);
  const dir = elsewhere ? dirname(failedPath) : base;
  const free = await freeBytes(dir);
  const { key, needs } = context;
  const full = noSpace || (free !== null && needs !== undefined && free < needs);
  const room = [free === null ? null : `${formatBytes(free)} free`, needs === undefined ? null : `the archive needs ${formatBytes(needs)}`].filter(Boolean).join(', ');
  const doing = key ? `cannot decode ${key} there` : 'cannot write there';
  const message = full
    ? `${elsewhere ? 'the directory' : 'the work directory'} ${dir} is full: ${doing}${room ? ` (${room})` : ''}`
    : `cannot decode ${key ?? 'the archive'} into the work directory ${dir}: ${(error as Error).message}`;
  const streams =
    context.custom === undefined ? '' : context.custom ? '; with --jobs 1 the archive is streamed and needs almost no room' : ' (a directory-format backup is always unpacked there)';
  return new BackupctlError(message, {
    hint: `free space there, or point "workDir" in the config (or TMPDIR) at a larger disk${streams}`,
    cause: error,
  });
}

function isInside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && !rel.startsWith('..') && !rel.startsWith('/');
}

/** The bytes an unprivileged writer may still use in `dir`'s file system, or null when that cannot be read. */
function freeBytes(dir: string): Promise<number | null> {
  return statfs(dir).then(
    (stats) => stats.bavail * stats.bsize,
    () => null,
  );
}
