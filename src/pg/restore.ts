import { execa } from 'execa';
import { BackupctlError } from '../errors.js';
import { childFailure, firstErrorLine, type ChildRun } from './dump.js';
import type { TocEntry } from './toc.js';

export interface RestoreSelection {
  schemas: string[];
  tables: string[];
  noOwner: boolean;
  noAcl: boolean;
  jobs: number;
  /** One transaction: all or nothing (cannot be combined with jobs > 1). */
  singleTransaction: boolean;
}

/** pg_restore's argv; like pg_dump's, no connection settings (they come through the env). */
export function pgRestoreArgs(archive: string, database: string, selection: RestoreSelection): string[] {
  const args = ['--exit-on-error', '--no-password', `--dbname=${database}`];
  if (selection.jobs > 1) args.push(`--jobs=${selection.jobs}`);
  if (selection.singleTransaction && selection.jobs <= 1) args.push('--single-transaction');
  if (selection.noOwner) args.push('--no-owner');
  if (selection.noAcl) args.push('--no-acl');
  for (const schema of selection.schemas) args.push(`--schema=${schema}`);
  for (const table of selection.tables) args.push(`--table=${table}`);
  args.push(archive);
  return args;
}

/**
 * Runs pg_restore into a database. Any error is a failed restore: with --exit-on-error
 * pg_restore stops at the first one, and its exit status, not its output, decides.
 */
export async function runRestore(pgRestore: string, args: string[], run: ChildRun): Promise<void> {
  try {
    await execa(pgRestore, args, {
      env: run.env,
      extendEnv: false,
      stdin: 'ignore',
      stdout: 'ignore',
      cancelSignal: run.signal,
      forceKillAfterDelay: 5_000,
      cleanup: true,
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (error) {
    const failure = childFailure('pg_restore', error, run.signal);
    const stderr = String((error as { stderr?: unknown }).stderr ?? '');
    const lines = stderr.split(/\r?\n/).filter((l) => /error|fatal|detail/i.test(l)).slice(0, 5);
    throw new BackupctlError(failure.message, {
      exitCode: failure.exitCode,
      hint: lines.length > 1 ? lines.join('\n') : failure.hint,
      cause: error,
    });
  }
}

/**
 * Reads a whole archive through to the end without a database (`pg_restore -f
 * /dev/null`): every data block is read and decompressed, so a truncated or corrupted
 * archive fails here, where `pg_restore --list` alone would succeed.
 */
export async function readArchiveThrough(pgRestore: string, archive: string, run: ChildRun): Promise<string | null> {
  try {
    await execa(pgRestore, ['--file=/dev/null', archive], {
      env: run.env,
      extendEnv: false,
      stdin: 'ignore',
      stdout: 'ignore',
      cancelSignal: run.signal,
      cleanup: true,
    });
    return null;
  } catch (error) {
    if (run.signal?.aborted) throw childFailure('pg_restore', error, run.signal);
    const stderr = String((error as { stderr?: unknown }).stderr ?? '');
    return firstErrorLine(stderr) || (error as Error).message;
  }
}

/** What an archive needs from the server it is restored into. */
export interface ArchiveNeeds {
  /** Owners named in the TOC. */
  roles: string[];
  extensions: string[];
  /** Object counts by TOC entry type, e.g. TABLE: 11, INDEX: 20. */
  objects: Record<string, number>;
}

export function archiveNeeds(entries: readonly TocEntry[]): ArchiveNeeds {
  const roles = new Set<string>();
  const extensions = new Set<string>();
  const objects: Record<string, number> = {};
  for (const entry of entries) {
    objects[entry.type] = (objects[entry.type] ?? 0) + 1;
    const tokens = entry.rest.split(' ').filter(Boolean);
    if (entry.type === 'EXTENSION') {
      const name = tokens[1];
      if (name) extensions.add(name);
      continue;
    }
    // `<namespace> <tag> <owner>`: the owner is the last token when there are three or more.
    if (tokens.length >= 3) roles.add(tokens[tokens.length - 1] as string);
  }
  return { roles: [...roles].sort(), extensions: [...extensions].sort(), objects };
}
