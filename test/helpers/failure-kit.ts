/**
 * Helpers for the failure-handling and end-to-end tests: the per-file setup (a scratch
 * database and working directory), temp dirs, a session holding a table lock, listing
 * everything a run left in a storage (dot-files included), wrapper pgBinDirs, config
 * files, and the "one error line, at most one hint line" check of stderr.
 */
import { chmod, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { ResultPromise } from 'execa';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { assertBuilt } from './cli.js';
import type { ClusterClient } from './cluster.js';
import { connectProvided, uniqueName } from './pg.js';

const created: string[] = [];

/** A fresh directory under the OS temp dir; removed by `removeTempDirs()`. */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `backupctl-${prefix}-`));
  created.push(dir);
  return dir;
}

export async function removeTempDirs(): Promise<void> {
  const dirs = created.splice(0);
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
}

export interface Scratch {
  /** The cluster started by the global setup. */
  readonly cluster: ClusterClient;
  /** A database of the test file's own (`<prefix>_<random>`). */
  readonly db: string;
  /** A fresh directory with no config file for the search to find; set once `beforeAll` ran. */
  readonly cwd: string;
}

/**
 * The setup the failure and end-to-end test files share; call it once, at the top of the
 * file. Before the file's tests: (with `built`) checks that dist/ is built, makes `cwd`,
 * creates `db`, then runs `seed`. After them: drops `db`, runs `teardown`, then removes
 * every directory made by `tempDir()`.
 */
export function scratchSetup(
  prefix: string,
  options: { built?: boolean; seed?: () => Promise<void>; teardown?: () => Promise<void> } = {},
): Scratch {
  const cluster = connectProvided();
  const db = uniqueName(prefix);
  let cwd: string | undefined;
  beforeAll(async () => {
    if (options.built) assertBuilt();
    cwd = await tempDir('cwd');
    await cluster.createDatabase(db);
    await options.seed?.();
  });
  afterAll(async () => {
    await cluster.dropDatabase(db);
    await options.teardown?.();
    await removeTempDirs();
  });
  return {
    cluster,
    db,
    get cwd(): string {
      if (cwd === undefined) throw new Error('scratchSetup: cwd is made in beforeAll; read it in a hook or a test');
      return cwd;
    },
  };
}

/**
 * A session of `db` holding ACCESS EXCLUSIVE on `table` (in an open transaction) until
 * `release()` rolls it back. `close()` rolls back if still held and disconnects: call it
 * in a `finally`.
 */
export async function holdTableLock(
  cluster: ClusterClient,
  db: string,
  table: string,
): Promise<{ pid: number; release(): Promise<void>; close(): Promise<void> }> {
  const holder = new pg.Client({ host: cluster.host, port: cluster.port, user: cluster.user, password: cluster.password, database: db, application_name: 'lock-holder' });
  holder.on('error', () => undefined);
  await holder.connect();
  let released = false;
  const close = async (): Promise<void> => {
    if (!released) await holder.query('ROLLBACK').catch(() => undefined);
    await holder.end();
  };
  try {
    await holder.query('BEGIN');
    await holder.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
  } catch (error) {
    await close();
    throw error;
  }
  return {
    pid: (holder as unknown as { processID: number }).processID,
    async release() {
      await holder.query('ROLLBACK');
      released = true;
    },
    close,
  };
}

/** Every file (not directory) under `root`, dot-files included, as sorted relative paths. */
export async function listFiles(root: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    for (const entry of entries) {
      const relPath = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) await walk(path.join(dir, entry.name), relPath);
      else found.push(relPath);
    }
  };
  await walk(root, '');
  return found.sort();
}

/**
 * What a failed or interrupted run left in a storage that belongs to a backup: every file
 * but the profile's run log (`<profile>/runs.jsonl`, which records failed runs by design).
 * Sidecars, artifacts, globals, `.tmp-*` temporaries and lock objects all count.
 */
export async function leftovers(root: string): Promise<string[]> {
  return (await listFiles(root)).filter((file) => !/^[^/]+\/runs\.jsonl$/.test(file));
}

/** A TCP port of 127.0.0.1 with nothing listening on it (free when asked). */
export async function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

/** Writes `backupctl.config.json` into `dir` and returns its path. */
export async function writeConfig(dir: string, config: Record<string, unknown>): Promise<string> {
  const file = path.join(dir, 'backupctl.config.json');
  await writeFile(file, `${JSON.stringify(config, null, 2)}\n`);
  return file;
}

/**
 * A pgBinDir with the cluster's real pg_dump, pg_restore, pg_dumpall and psql symlinked,
 * except the programs given in `scripts`, which are written as executable files.
 */
export async function wrapperBinDir(
  cluster: Pick<ClusterClient, 'bin'>,
  scripts: Partial<Record<'pg_dump' | 'pg_restore' | 'pg_dumpall' | 'psql', string>>,
): Promise<string> {
  const dir = await tempDir('bin');
  await chmod(dir, 0o755);
  for (const tool of ['pg_dump', 'pg_restore', 'pg_dumpall', 'psql'] as const) {
    const target = path.join(dir, tool);
    const script = scripts[tool];
    if (script === undefined) {
      await symlink(cluster.bin(tool), target);
    } else {
      await writeFile(target, script);
      await chmod(target, 0o755);
    }
  }
  return dir;
}

/** Single-quotes for /bin/sh. */
export function sh(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * Asserts the shape of a failure on stderr: exactly one `error: ...` line, at most one
 * `hint: ...` line right after it, both last; no stack trace, no warning. Lines before
 * them may only be the run's own progress lines (none at all when `strict`).
 * Returns the error and hint texts.
 */
export function failureLines(stderr: string, options: { strict?: boolean } = {}): { error: string; hint: string | undefined } {
  const lines = stderr.split('\n').filter((line) => line !== '');
  const errorIndexes = lines.flatMap((line, i) => (line.startsWith('error: ') ? [i] : []));
  expect(errorIndexes, `exactly one "error:" line in:\n${stderr}`).toHaveLength(1);
  const at = errorIndexes[0] as number;
  const rest = lines.slice(at + 1);
  expect(rest.length, `at most a hint after the error line in:\n${stderr}`).toBeLessThanOrEqual(1);
  if (rest.length === 1) expect(rest[0], `the line after the error is a hint in:\n${stderr}`).toMatch(/^hint: /);
  if (options.strict) expect(at, `nothing before the error line in:\n${stderr}`).toBe(0);
  for (const line of lines) {
    expect(line, `no warnings beside the error in:\n${stderr}`).not.toMatch(/^warning:/);
    expect(line, 'no stack traces').not.toMatch(/^\s+at\s/);
    expect(line).not.toMatch(/^(Error|TypeError|RangeError|Unhandled)/);
  }
  return { error: (lines[at] as string).slice('error: '.length), hint: rest[0]?.slice('hint: '.length) };
}

/** Fills `table` of `db` with about `megabytes` MB of incompressible-ish text (md5 hex). */
export async function fillRandomText(cluster: ClusterClient, db: string, table: string, megabytes: number): Promise<void> {
  // One row: an id and 8 md5 hashes (256 hex characters) ~ 300 bytes with overhead.
  const rows = Math.ceil((megabytes * 1024 * 1024) / 264);
  await cluster.query(
    db,
    `CREATE TABLE ${table} AS
       SELECT g AS id,
              md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) || md5((g * 17)::text) ||
              md5((g * 19)::text) || md5((g * 23)::text) || md5((g * 29)::text) || md5((g * 31)::text) AS payload
         FROM generate_series(1, ${rows}) AS g`,
  );
}

/** Resolves once `check()` is truthy; fails after `timeoutMs`. */
export async function waitFor<T>(check: () => Promise<T> | T, what: string, timeoutMs = 20_000, everyMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Live processes whose environment holds `NAME=value` (e.g. a per-test marker), with their command name. */
export async function processesWithEnv(name: string, value: string): Promise<Array<{ pid: number; comm: string }>> {
  const needle = `${name}=${value}`;
  const found: Array<{ pid: number; comm: string }> = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const environ = await readFile(`/proc/${entry}/environ`, 'utf8');
      if (!environ.split('\0').includes(needle)) continue;
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      // A zombie ("Z") has exited already; only its parent has yet to reap it.
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state === 'Z') continue;
      const comm = (await readFile(`/proc/${entry}/comm`, 'utf8')).trim();
      found.push({ pid: Number(entry), comm });
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

/**
 * The stderr of a failed run: exactly one `error:` line, then at most hints, no stack
 * trace; `strict`: at most one hint, and no line twice. Returns the error line.
 */
export function oneErrorLine(stderr: string, options: { strict?: boolean } = {}): string {
  const lines = stderr.split('\n').filter((line) => line !== '');
  const errors = lines.filter((line) => line.startsWith('error: '));
  expect(errors, stderr).toHaveLength(1);
  const at = lines.indexOf(errors[0] as string);
  expect(lines.slice(at + 1).every((line) => line.startsWith('hint: ')), stderr).toBe(true);
  if (options.strict) expect(lines.length - at, stderr).toBeLessThanOrEqual(2);
  expect(stderr, 'no stack trace').not.toMatch(/^\s+at\s/m);
  if (options.strict) expect(new Set(lines).size, `no line twice:\n${stderr}`).toBe(lines.length);
  return errors[0] as string;
}

/**
 * The children a test file starts and may leave running (a run it kills, one a failed
 * assertion leaves behind): each is SIGKILLed after every test. Call at the top level.
 */
export function killedAfterEach(): Set<ResultPromise> {
  const running = new Set<ResultPromise>();
  afterEach(() => {
    for (const child of running) child.kill('SIGKILL');
    running.clear();
  });
  return running;
}
