/**
 * Helpers for tests that create backups and look at what was stored:
 * temp dirs, sidecar reading, hashing, row counts from the source, and
 * `pg_restore --list` as the reference for an archive's table of contents.
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { SidecarSchema, type Sidecar } from '../../src/catalog/sidecar-schema.js';
import { baseEnv, runCli, type CliOutcome } from './cli.js';
import type { ClusterClient } from './cluster.js';
import { loadChinook, loadTricky } from './fixtures.js';
import { quoteIdent } from './cluster.js';

/**
 * A fresh private temp dir; remember to remove it (see `removeDirs`). It holds a
 * package.json, so that a config search started there stops there (no stray config
 * from a parent directory).
 */
export async function makeTempDir(label: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `backupctl-test-${label}-`));
  await writeFile(path.join(dir, 'package.json'), '{ "private": true }\n');
  return dir;
}

export async function removeDirs(dirs: string[]): Promise<void> {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
}

/** stdout of a `--json` run: must be exactly one JSON value (and whitespace). */
export function parseJsonStdout(stdout: string): unknown {
  return JSON.parse(stdout) as unknown;
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * `create --json --storage <storage> ...args` (in-process, from `cwd`), connected to `db`
 * through the libpq environment; asserts it succeeded and returns the new backup's id.
 */
export async function createBackup(
  cluster: ClusterClient,
  db: string,
  storage: string,
  cwd: string,
  args: string[] = [],
): Promise<string> {
  const run = await runCli(['create', '--json', '--storage', storage, ...args], { env: baseEnv(cluster.env(db)), cwd });
  expect(run.code, run.stderr).toBe(0);
  return (parseJsonStdout(run.stdout) as { id: string }).id;
}

/**
 * The shared storage of the restore and verify tests: loads Chinook into `dbs.chinook` and
 * tricky.sql into `dbs.tricky`, then backs up each into `storage` (tricky with --jobs 2:
 * a tar); returns their ids.
 */
export async function backUpSamples(
  cluster: ClusterClient,
  dbs: { chinook: string; tricky: string },
  storage: string,
  cwd: string,
): Promise<{ chinook: string; tricky: string }> {
  await Promise.all([loadChinook(cluster, dbs.chinook), loadTricky(cluster, dbs.tricky)]);
  const chinook = await createBackup(cluster, dbs.chinook, storage, cwd);
  const tricky = await createBackup(cluster, dbs.tricky, storage, cwd, ['--jobs', '2']);
  return { chinook, tricky };
}

/** Reads `<storage>/<profile>/<id>.json` and validates it with the sidecar schema. */
export async function readSidecar(storage: string, profile: string, id: string): Promise<{ raw: string; sidecar: Sidecar }> {
  const raw = await readFile(path.join(storage, profile, `${id}.json`), 'utf8');
  return { raw, sidecar: SidecarSchema.parse(JSON.parse(raw)) };
}

/** Lines of `pg_restore --list <target>` that are TOC entries (not `;` comments). */
export async function tocLines(cluster: ClusterClient, target: string): Promise<string[]> {
  const { stdout } = await execa(cluster.bin('pg_restore'), ['--list', target], { stdin: 'ignore' });
  return stdout.split('\n').filter((line) => /^\d+;/.test(line));
}

/**
 * Which of `candidates` (`{schema, name}`) have their rows in an archive, read from its TOC
 * lines ("123; 0 16384 TABLE DATA app events postgres"). pg_restore prints names unquoted
 * with their spaces, so lines are matched against the candidates rather than split.
 */
export function tablesWithDataInToc(
  lines: readonly string[],
  candidates: ReadonlyArray<{ schema: string; name: string }>,
): Set<string> {
  const printed = new Set<string>();
  for (const line of lines) {
    const match = /^\d+;\s+\d+\s+\d+\s+(?:TABLE DATA|MATERIALIZED VIEW DATA) (.*) \S+$/.exec(line);
    if (match?.[1]) printed.add(match[1]);
  }
  return new Set(candidates.filter((t) => printed.has(`${t.schema} ${t.name}`)).map(tableKey));
}

/** `schema.name` key used to compare table lists (unquoted, as PostgreSQL stores them). */
export function tableKey(table: { schema: string; name: string }): string {
  return `${table.schema}.${table.name}`;
}

/**
 * Exact row counts of every table pg_dump can hold rows for: ordinary tables and partitions
 * (logged or not), outside the system schemas (not materialized views: an archive holds a
 * REFRESH of theirs, not rows). A table's own rows only (ONLY): a dump's COPY of an
 * inheritance parent holds none of its children's.
 */
export async function sourceTables(cluster: ClusterClient, db: string): Promise<SourceTable[]> {
  const tables = await cluster.query<{ schema: string; name: string; relkind: string }>(
    db,
    `select n.nspname as schema, c.relname as name, c.relkind::text as relkind
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind = 'r'
        and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp_)'
      order by 1, 2`,
  );
  const counted: SourceTable[] = [];
  for (const table of tables) {
    const [row] = await cluster.query<{ n: string }>(
      db,
      `select count(*)::int8::text as n from only ${quoteIdent(table.schema)}.${quoteIdent(table.name)}`,
    );
    counted.push({ schema: table.schema, name: table.name, rows: Number(row?.n) });
  }
  return counted;
}

export interface SourceTable {
  schema: string;
  name: string;
  rows: number;
}

/** `schema.name` -> rows. */
export function countMap(tables: ReadonlyArray<{ schema: string; name: string; rows: number }>): Map<string, number> {
  return new Map(tables.map((t) => [tableKey(t), t.rows]));
}

/** File mode bits (permissions only). */
export function modeOf(stats: { mode: number }): number {
  return stats.mode & 0o777;
}

/**
 * A failed `--json` run: stdout is one JSON document `{"error": {exitCode, message, hint?}}`
 * whose exit code is the run's. Returns the error object.
 */
export function expectJsonError(run: { code: number; stdout: string }, exitCode: number): { exitCode: number; message: string; hint?: string } {
  expect(run.code).toBe(exitCode);
  const parsed = parseJsonStdout(run.stdout) as { error?: { exitCode: number; message: string; hint?: string } };
  expect(parsed.error).toMatchObject({ exitCode, message: expect.any(String) });
  return parsed.error as { exitCode: number; message: string; hint?: string };
}

/** The stored artifact of a backup (its name follows the stages: `.dump`, `.dump.zst`, `.dump.zst.age`), from its sidecar. */
export async function artifactPath(storage: string, profile: string, id: string): Promise<string> {
  const { sidecar } = await readSidecar(storage, profile, id);
  return path.join(storage, profile, sidecar.artifact.file);
}

/** `create --json --no-globals ARGS` through `cli`, which must succeed: the new backup's id and create's warnings. */
export async function createReportingWarnings(cli: (args: string[]) => Promise<CliOutcome>, args: string[]): Promise<{ id: string; warnings: string[] }> {
  const run = await cli(['create', '--json', '--no-globals', ...args]);
  expect(run.code, run.stderr).toBe(0);
  return parseJsonStdout(run.stdout) as { id: string; warnings: string[] };
}
