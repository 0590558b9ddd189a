/**
 * `backupctl verify` (restore level) doing its work off the critical path, against the real
 * test cluster (see src/core/verify.ts restoreCheck, src/pg/restore-counts.ts):
 * - CREATE DATABASE runs while pg_restore is chosen and reads the TOC: when the TOC check
 *   then fails, or a failure comes while CREATE DATABASE still runs, or the run is
 *   interrupted, the throwaway database is dropped (--keep too: nothing was restored);
 * - row counts taken while pg_restore runs (as each table's data is loaded) are exact, for
 *   Chinook and tricky.sql, with --jobs 1 and --jobs 2; every table that can be counted
 *   early is, when pg_restore gives the time; a wrong count in the sidecar is still found;
 * - RestoreCounter never counts a table early while another session is writing to it;
 * - MaintenanceConnection drops a database on a fresh connection when its own one broke.
 */
import path from 'node:path';
import { cp, readFile, writeFile } from 'node:fs/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VerifyOutcome } from '../../src/core/verify.js';
import type { ConnectionSettings } from '../../src/pg/connection.js';
import { MaintenanceConnection } from '../../src/pg/admin.js';
import { RestoreCounter } from '../../src/pg/restore-counts.js';
import { parseTocList } from '../../src/pg/toc.js';
import { backUpSamples, makeTempDir, parseJsonStdout, readSidecar, removeDirs } from '../helpers/backups.js';
import { baseEnv, runCli, type CliOutcome } from '../helpers/cli.js';
import { removeTempDirs, sh, tempDir, waitFor, wrapperBinDir, writeConfig } from '../helpers/failure-kit.js';
import { connectionSettings, connectProvided, uniqueName } from '../helpers/pg.js';

const cluster = connectProvided();
const dirs: string[] = [];
const chinook = uniqueName('vov_chinook');
const tricky = uniqueName('vov_tricky');
let work: string;
let storage: string;
const ids = { chinook: '', tricky: '' };

function cli(argv: string[], signal?: AbortSignal): Promise<CliOutcome> {
  return runCli(argv, { env: baseEnv(cluster.env('postgres')), cwd: work, signal });
}

function outcomeOf(run: CliOutcome): VerifyOutcome {
  const out = parseJsonStdout(run.stdout) as { outcomes: VerifyOutcome[] };
  expect(out.outcomes).toHaveLength(1);
  return out.outcomes[0] as VerifyOutcome;
}

async function throwaways(id: string): Promise<string[]> {
  const prefix = `backupctl_verify_${id.toLowerCase().replace(/[^a-z0-9]/g, '_')}_`;
  const rows = await cluster.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [prefix]);
  return rows.map((r) => r.datname);
}

/** A config whose pgBinDir has a pg_restore script (`$REAL` is the cluster's pg_restore); the other programs are the cluster's. */
async function configWithPgRestore(script: string): Promise<string> {
  const bin = await wrapperBinDir(cluster, { pg_restore: `#!/bin/sh\n${script.replace(/\$REAL/g, sh(cluster.bin('pg_restore')))}\n` });
  return writeConfig(await tempDir('vov-cfg'), { pgBinDir: bin });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- hand edits of a sidecar reach into any field
type Loose = Record<string, any>;

/** A copy of the shared storage with one sidecar edited; returns the copy's path. */
async function editSidecar(profile: string, id: string, edit: (s: Loose) => void): Promise<string> {
  const dir = await makeTempDir('vov-copy');
  dirs.push(dir);
  const copy = path.join(dir, 'storage');
  await cp(storage, copy, { recursive: true });
  const file = path.join(copy, profile, `${id}.json`);
  const json = JSON.parse(await readFile(file, 'utf8')) as Loose;
  edit(json);
  await writeFile(file, `${JSON.stringify(json, null, 2)}\n`);
  return copy;
}

beforeAll(async () => {
  work = await makeTempDir('vov');
  dirs.push(work);
  storage = path.join(work, 'storage');
  Object.assign(ids, await backUpSamples(cluster, { chinook, tricky }, storage, work));
});

afterAll(async () => {
  for (const db of [chinook, tricky]) await cluster.dropDatabase(db);
  for (const id of Object.values(ids)) for (const db of await throwaways(id)) await cluster.dropDatabase(db);
  await removeDirs(dirs);
  await removeTempDirs();
});

describe('verify: CREATE DATABASE alongside the TOC check', () => {
  /** pg_restore --list takes 1.5 s: long enough to see the throwaway database created meanwhile. */
  const slowList = 'case "$1" in --list) sleep 1.5 ;; esac\nexec $REAL "$@"';

  it('the TOC check fails after the throwaway database was created: exit 3, the database is dropped (with --keep too)', async () => {
    const where = await editSidecar(chinook, ids.chinook, (s) => {
      s.dump.tocEntries += 1;
    });
    const config = await configWithPgRestore(slowList);
    const expected = (await readSidecar(where, chinook, ids.chinook)).sidecar.dump.tocEntries;
    for (const extra of [[], ['--keep']]) {
      const running = cli(['verify', ids.chinook, '--config', config, '--json', '--storage', where, ...extra]);
      // CREATE DATABASE ran while pg_restore --list was still reading the TOC.
      const seen = await waitFor(async () => (await throwaways(ids.chinook))[0], 'the throwaway database to be created during the TOC read', 10_000);
      expect(seen).toMatch(/^backupctl_verify_/);
      const run = await running;
      expect(run.code, run.stderr).toBe(3);
      const outcome = outcomeOf(run);
      expect(outcome).toMatchObject({ result: 'failed', mismatches: [`table of contents has ${expected - 1} entries, the sidecar says ${expected}`] });
      expect(outcome.keptDatabase).toBeUndefined();
      expect(run.stderr).not.toContain('restoring into throwaway database');
      expect(await throwaways(ids.chinook)).toEqual([]);
    }
  });

  it('a failure while CREATE DATABASE still runs (no usable pg_restore): the database is dropped once created', async () => {
    // Discovery sees only a pg_restore too old for the server: chooseClient fails right
    // after CREATE DATABASE was sent.
    const config = await configWithPgRestore('case "$1" in --version) echo "pg_restore (PostgreSQL) 9.6.24"; exit 0 ;; esac\nexec $REAL "$@"');
    const run = await cli(['verify', ids.chinook, '--config', config, '--storage', storage]);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toMatch(/older than the backup's pg_dump/);
    expect(await throwaways(ids.chinook)).toEqual([]);
  });

  it('interrupted during the TOC read, after CREATE DATABASE: exit 130, the database is dropped', async () => {
    const config = await configWithPgRestore(slowList);
    const controller = new AbortController();
    const running = cli(['verify', ids.tricky, '--config', config, '--storage', storage], controller.signal);
    await waitFor(async () => (await throwaways(ids.tricky)).length === 1, 'the throwaway database to be created', 10_000);
    controller.abort();
    const run = await running;
    expect(run.code, run.stderr).toBe(130);
    expect(await throwaways(ids.tricky)).toEqual([]);
  });
});

describe('verify: row counts taken while pg_restore runs', () => {
  it.each([
    ['Chinook', 1],
    ['Chinook', 2],
    ['tricky.sql', 1],
    ['tricky.sql', 2],
  ] as const)('%s, --jobs %i: passes with the real pg_restore; the database is dropped', async (label, jobs) => {
    const [profile, id] = label === 'Chinook' ? [chinook, ids.chinook] : [tricky, ids.tricky];
    const run = await cli(['verify', id, '--jobs', String(jobs), '--json', '--verbose', '--storage', storage]);
    expect(run.code, run.stderr).toBe(0);
    expect(outcomeOf(run)).toMatchObject({ profile, level: 'restore', result: 'passed', mismatches: [] });
    expect(run.stderr).toMatch(/counted \d+ of \d+ tables while pg_restore ran/);
    expect(await throwaways(id)).toEqual([]);
  });

  it.each([
    // The table whose data is loaded last is counted at the end (its primary key comes next,
    // under a lock our count would hold up). tricky.sql: 24 counted tables, of which 3
    // partitions are counted at the end too; inheritance parents are counted early (their
    // own rows, with ONLY). Materialized views are not counted.
    ['Chinook', 1, 10, 11],
    ['Chinook', 2, 10, 11],
    ['tricky.sql', 1, 20, 24],
    ['tricky.sql', 2, 20, 24],
  ] as const)('%s, --jobs %i, pg_restore slow to exit: every table that may be counted early is (%i of %i; --jobs 2: most), and the counts are exact', async (label, jobs, early, total) => {
    const [profile, id] = label === 'Chinook' ? [chinook, ids.chinook] : [tricky, ids.tricky];
    const config = await configWithPgRestore('case "$1" in --version|--list) exec $REAL "$@" ;; esac\n$REAL "$@"\nstatus=$?\nsleep 1\nexit $status');
    const run = await cli(['verify', id, '--config', config, '--jobs', String(jobs), '--json', '--verbose', '--storage', storage]);
    expect(run.code, run.stderr).toBe(0);
    expect(outcomeOf(run)).toMatchObject({ profile, result: 'passed', mismatches: [] });
    const counted = /counted (\d+) of (\d+) tables while pg_restore ran/.exec(run.stderr);
    expect(Number(counted?.[2])).toBe(total);
    if (jobs === 1) {
      expect(Number(counted?.[1])).toBe(early);
    } else {
      // The leader and the workers share stderr, and one's prefix can land in another's line:
      // a message left without its prefix is not trusted, and its table is counted at the end.
      expect(Number(counted?.[1])).toBeGreaterThan(0);
      expect(Number(counted?.[1])).toBeLessThanOrEqual(early);
    }
  });

  it.each([1, 2])('--jobs %i: a row count edited in the sidecar is found in a table counted early', async (jobs) => {
    const where = await editSidecar(chinook, ids.chinook, (s) => {
      const table = (s.tables as Array<{ name: string; rows: number }>).find((t) => t.name === 'playlist_track');
      if (!table) throw new Error('no playlist_track in the sidecar');
      table.rows += 1;
    });
    const config = await configWithPgRestore('case "$1" in --version|--list) exec $REAL "$@" ;; esac\n$REAL "$@"\nstatus=$?\nsleep 1\nexit $status');
    const run = await cli(['verify', ids.chinook, '--config', config, '--jobs', String(jobs), '--json', '--verbose', '--storage', where]);
    expect(run.code, run.stderr).toBe(3);
    expect(outcomeOf(run).mismatches).toEqual(['public.playlist_track: 8715 rows after restore, 8716 at backup time']);
    expect(run.stderr).toMatch(jobs === 1 ? /counted 10 of 11 tables while pg_restore ran/ : /counted [1-9]\d* of 11 tables while pg_restore ran/);
  });
});

function settings(database: string): ConnectionSettings {
  return connectionSettings(cluster, database);
}

describe('MaintenanceConnection', () => {
  it('one connection for version, CREATE and DROP; DROP falls back to a fresh connection when that one was terminated', async () => {
    const maintenance = await MaintenanceConnection.open(settings('postgres'));
    try {
      const { version, num } = await maintenance.version();
      expect(version).toMatch(/^\d+/);
      expect(num).toBeGreaterThanOrEqual(cluster.majorVersion * 10000);
      const exists = async (name: string) => (await cluster.query('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [name])).length === 1;

      const first = uniqueName('vov_maint');
      await maintenance.createDatabase(first);
      expect(await exists(first)).toBe(true);
      await maintenance.dropDatabase(first);
      expect(await exists(first)).toBe(false);

      const second = uniqueName('vov_maint');
      await maintenance.createDatabase(second);
      // Its session's last statement names the database: end that session.
      const [ended] = await cluster.query<{ ok: boolean }>(
        'postgres',
        "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE query LIKE 'CREATE DATABASE %' AND position($1 in query) > 0",
        [second],
      );
      expect(ended?.ok).toBe(true);
      await maintenance.dropDatabase(second);
      expect(await exists(second)).toBe(false);
    } finally {
      await maintenance.close();
    }
  });
});

describe('RestoreCounter', () => {
  const db = uniqueName('vov_counter');

  afterAll(async () => {
    await cluster.dropDatabase(db);
  });

  it('a report that comes while a COPY/INSERT into the table is still open: not counted early, counted right at the end', async () => {
    await cluster.createDatabase(db);
    await cluster.query(db, 'CREATE TABLE public.t (n int); CREATE TABLE public.u (n int); INSERT INTO public.u SELECT generate_series(1, 5)');
    const toc = parseTocList('10; 0 1 TABLE DATA public t postgres\n11; 0 2 TABLE DATA public u postgres');
    const writer = new pg.Client({ connectionString: cluster.url(db) });
    await writer.connect();
    const counter = new RestoreCounter(settings(db), db, toc);
    try {
      await writer.query('BEGIN');
      await writer.query('INSERT INTO public.t SELECT generate_series(1, 100)');
      // Wrong report for t (its writer is still open), right one for u.
      counter.done([{ dumpId: 10, label: 'public.t', qualified: true, last: false }, { dumpId: 11, label: 'u', qualified: false, last: false }]);
      await waitFor(async () => {
        const [row] = await cluster.query<{ n: string }>(db, "SELECT count(*)::text AS n FROM pg_stat_activity WHERE datname = $1 AND state = 'idle' AND query LIKE 'SELECT count(*)%'", [db]);
        return row?.n === '1';
      }, 'the counter to count u', 10_000);
      await writer.query('COMMIT');
      const counted = await counter.finish();
      expect(counted.map((t) => [t.name, t.rows])).toEqual([
        ['t', 100],
        ['u', 5],
      ]);
      expect(counter.countedEarly).toBe(1);
    } finally {
      await counter.close();
      await writer.end();
    }
  });
});
