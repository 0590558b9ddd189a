import type { Readable } from 'node:stream';
import type { ResultPromise } from 'execa';
import { runGuarded } from './child.js';
import { BackupctlError, ExitCode, InterruptedError } from '../errors.js';
import { redactSecrets } from '../redact.js';

export type DumpFormat = 'custom' | 'directory';

/** What to dump and how: everything that becomes a pg_dump flag. */
export interface DumpOptions {
  format: DumpFormat;
  jobs: number;
  compress: number | string | null;
  schemaOnly: boolean;
  dataOnly: boolean;
  schemas: string[];
  excludeSchemas: string[];
  tables: string[];
  excludeTables: string[];
  lockWaitTimeout: string | null;
}

/**
 * pg_dump's argv. Connection settings are deliberately absent: they reach the child
 * through libpq environment variables and a passfile, so nothing secret (and nothing
 * that differs between runs except the snapshot) is on the command line.
 */
export function pgDumpArgs(options: DumpOptions, snapshot: string | null, directory?: string): string[] {
  const args = [`--format=${options.format}`, '--no-password'];
  if (options.format === 'directory') {
    if (!directory) throw new Error('a directory-format dump needs a target directory');
    args.push(`--file=${directory}`, `--jobs=${options.jobs}`);
  }
  if (snapshot) args.push(`--snapshot=${snapshot}`);
  if (options.compress !== null) args.push(`--compress=${options.compress}`);
  if (options.schemaOnly) args.push('--schema-only');
  if (options.dataOnly) args.push('--data-only');
  args.push(...selectionArgs(options));
  if (options.lockWaitTimeout) args.push(`--lock-wait-timeout=${options.lockWaitTimeout}`);
  return args;
}

/** The filters of a dump (--schema, --exclude-schema, --table, --exclude-table), whatever its format. */
export function selectionArgs(options: Pick<DumpOptions, 'schemas' | 'excludeSchemas' | 'tables' | 'excludeTables'>): string[] {
  return [
    ...options.schemas.map((value) => `--schema=${value}`),
    ...options.excludeSchemas.map((value) => `--exclude-schema=${value}`),
    ...options.tables.map((value) => `--table=${value}`),
    ...options.excludeTables.map((value) => `--exclude-table=${value}`),
  ];
}

/**
 * The oldest pg_dump that can write a `--compress` value: lz4 and zstd came with
 * PostgreSQL 16 (and METHOD[:LEVEL] syntax with 16 too; 0-9 and gzip work everywhere).
 */
export function minimumDumpMajorFor(compress: number | string | null): number {
  if (compress === null || typeof compress === 'number') return 0;
  const method = compress.split(':')[0];
  return method === 'lz4' || method === 'zstd' || compress.includes(':') ? 16 : 0;
}

export interface ChildRun {
  env: Record<string, string>;
  signal?: AbortSignal | undefined;
}

function spawn(path: string, args: string[], run: ChildRun, stdout: 'pipe' | 'ignore'): ResultPromise<{ buffer: { stdout: false; stderr: true } }> {
  // A stuck child must not outlive us: SIGTERM first, SIGKILL 5 s later, to its whole
  // process group (pg_dump --jobs workers), also when backupctl itself is killed (child.ts).
  return runGuarded(path, args, {
    env: run.env,
    extendEnv: false,
    stdin: 'ignore',
    stdout,
    stderr: 'pipe',
    buffer: { stdout: false, stderr: true },
    cancelSignal: run.signal,
    forceKillAfterDelay: 5_000,
    killSignal: 'SIGTERM',
  }) as ResultPromise<{ buffer: { stdout: false; stderr: true } }>;
}

/**
 * Turns a failed child into one line for the user. The exit status decides failure,
 * never the bytes produced: a pg_dump that wrote half an archive and exited 1 failed.
 */
export function childFailure(tool: string, error: unknown, signal?: AbortSignal): BackupctlError {
  if (signal?.aborted) return signal.reason instanceof BackupctlError ? signal.reason : new InterruptedError();
  const e = error as { stderr?: unknown; exitCode?: number; signal?: string; shortMessage?: string; code?: string };
  // ENOENT from spawn; 127 from the launcher of a guarded program (pg/child.ts): not found.
  if (e.code === 'ENOENT' || e.exitCode === 127) {
    return new BackupctlError(`${tool} could not be started (not found)`, {
      exitCode: ExitCode.USAGE,
      hint: 'install the PostgreSQL client, or set pgBinDir in the config, or put its bin directory first on PATH',
      cause: error,
    });
  }
  const stderr = typeof e.stderr === 'string' ? e.stderr : '';
  const line = firstErrorLine(stderr);
  const status = e.signal ? `killed by ${e.signal}` : `exit status ${e.exitCode ?? '?'}`;
  // pg_dump --lock-wait-timeout is a statement timeout around LOCK TABLE: say which lock.
  const lockWait = /canceling statement due to (statement|lock) timeout/.test(stderr) ? /Query was: LOCK TABLE (\S+)/.exec(stderr) : null;
  const text = `${tool} failed (${status})${line ? `: ${line}` : ''}${lockWait ? ` (waiting to lock ${lockWait[1]})` : ''}`;
  // The exit code never depends on what the child printed: what decides (a password, a
  // client's version, privileges) is checked over our own connection first, by SQLSTATE and
  // version numbers. The text only picks a hint (children print in English: LC_MESSAGES=C).
  let hint: string | undefined;
  if (/permission denied for large object/i.test(stderr)) hint = 'dumping large objects needs a superuser or the owner of every one (or lo_compat_privileges on), or leave them out with --table/--schema';
  else if (/permission denied/i.test(stderr)) {
    hint = tool.startsWith('pg_restore')
      ? 'the role lacks a privilege the archive needs (event triggers, some extensions and settings need a superuser): restore as a superuser'
      : 'grant the backup role SELECT on every table and sequence it dumps (or pg_read_all_data), or exclude the table or sequence';
  }
  else if (/could not obtain lock|lock timeout/i.test(stderr) || lockWait) hint = 'another session holds an exclusive lock; raise --lock-wait-timeout or retry later';
  else if (/password authentication failed|no password supplied/i.test(stderr)) hint = "check the password (PGPASSWORD, passfile or the profile's passwordFile)";
  else if (/server version mismatch/i.test(stderr)) hint = 'install a client at least as new as the server, and set pgBinDir or put its bin directory first on PATH';
  return new BackupctlError(text, { exitCode: ExitCode.FAILED, hint, cause: error });
}

/**
 * The signal that ended a client program (`SIGKILL` from the OOM killer, a `kill` by an
 * operator), from a failure or any failure in its cause chain; undefined when it exited.
 */
export function endedBySignal(error: unknown): string | undefined {
  for (let at = error, depth = 0; at !== null && typeof at === 'object' && depth < 8; at = (at as { cause?: unknown }).cause, depth++) {
    const signal = (at as { signal?: unknown }).signal;
    if (typeof signal === 'string' && signal !== '') return signal;
  }
  return undefined;
}

/** The first `error:`/`FATAL:` line of a PostgreSQL client's stderr, trimmed. */
export function firstErrorLine(stderr: string): string {
  const lines = stderr.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  const at = Math.max(0, lines.findIndex((l) => /\b(error|fatal)\b:/i.test(l)));
  const line = (lines[at] ?? '').replace(/^(pg_dump|pg_dumpall|pg_restore|psql):\s*/, '').replace(/^error:\s*/i, '').slice(0, 500);
  // pg_restore names the statement that failed ("Command was: REFRESH MATERIALIZED VIEW
  // ..."): without it, an error raised inside a function says nothing of where it came from.
  const index = lines.findIndex((l, i) => i > at && l.startsWith('Command was: '));
  // A statement over several lines: its first, and an ellipsis for the rest.
  const command = index < 0 ? undefined : `${lines[index] as string}${index + 1 < lines.length && !/^(pg_restore|pg_dump|psql):/.test(lines[index + 1] as string) ? ' …' : ''}`;
  // Its SQL may hold a literal password (CREATE USER MAPPING ... OPTIONS): masked here, as
  // this line reaches the run log and a sidecar's verification record too.
  return command ? `${line} (in: ${redactSecrets(command.slice('Command was: '.length)).slice(0, 200)})` : line;
}

/** The most messages of a successful pg_dump's stderr that are passed on as warnings. */
const MAX_WARNING_LINES = 20;

/**
 * What a pg_dump that succeeded wrote on stderr (it is run without --verbose, so only its
 * warnings: circular foreign keys in a --data-only dump, a table it could not lock in
 * time...), one line each without the program's name, for the backup's warnings.
 */
export function dumpWarnings(stderr: unknown): string[] {
  const lines = String(stderr ?? '')
    .split(/\r?\n/)
    .map((line) => line.trim().replace(/^pg_dump:\s*/, '').replace(/^warning:\s*/i, ''))
    .filter(Boolean);
  // A message's detail and hint lines (LC_MESSAGES=C: see childFailure) belong to it.
  const messages: string[] = [];
  for (const line of lines) {
    if (/^(detail|hint):/i.test(line) && messages.length > 0) messages[messages.length - 1] += ` ${line}`;
    else messages.push(line);
  }
  const kept = messages.slice(0, MAX_WARNING_LINES).map((message) => `pg_dump: ${redactSecrets(message).slice(0, 1000)}`);
  if (messages.length > kept.length) kept.push(`pg_dump: ... and ${messages.length - kept.length} more warning(s)`);
  return kept;
}

/** Starts a custom-format pg_dump writing to stdout; `done` gives its warnings (dumpWarnings). */
export function startCustomDump(pgDump: string, args: string[], run: ChildRun): { stdout: Readable; done: Promise<string[]> } {
  const child = spawn(pgDump, args, run, 'pipe');
  const done = child.then(
    (result) => dumpWarnings(result.stderr),
    (error: unknown) => {
      throw childFailure('pg_dump', error, run.signal);
    },
  );
  done.catch(() => undefined); // observed by the caller; never an unhandled rejection
  if (!child.stdout) throw new Error('pg_dump has no stdout');
  return { stdout: child.stdout, done };
}

/** Runs a directory-format pg_dump to completion; its warnings (dumpWarnings). */
export async function runDirectoryDump(pgDump: string, args: string[], run: ChildRun): Promise<string[]> {
  try {
    return dumpWarnings((await spawn(pgDump, args, run, 'ignore')).stderr);
  } catch (error) {
    throw childFailure('pg_dump', error, run.signal);
  }
}

/**
 * `pg_dumpall --globals-only` (roles, tablespaces) to stdout. Roles without access to
 * pg_authid cannot read password hashes; callers retry with `rolePasswords: false`.
 */
export function startGlobalsDump(pgDumpall: string, database: string, rolePasswords: boolean, run: ChildRun): { stdout: Readable; done: Promise<void> } {
  const args = ['--globals-only', '--no-password', `--database=${database}`];
  if (!rolePasswords) args.push('--no-role-passwords');
  const child = spawn(pgDumpall, args, run, 'pipe');
  const done = child.then(
    () => undefined,
    (error: unknown) => {
      throw childFailure('pg_dumpall', error, run.signal);
    },
  );
  done.catch(() => undefined);
  if (!child.stdout) throw new Error('pg_dumpall has no stdout');
  return { stdout: child.stdout, done };
}
