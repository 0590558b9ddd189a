/**
 * `backupctl restore` against the real test cluster:
 * - round trip for Chinook and tricky.sql: the restored schema (pg_dump --schema-only,
 *   normalised), every table's contents (an ordered hash per table, partitions included),
 *   sequences and large objects equal the source's;
 * - safety: a non-empty target is refused unless --clean/--force; a destructive restore
 *   without a terminal needs --yes; --clean swaps atomically, keeps the old database and
 *   prints a rollback that works; --drop-old, --force, --dry-run (human and JSON);
 * - failures half-way (pg_restore failing or killed, an archive that errors) leave the
 *   target as it was and no staging database; missing roles are refused before any
 *   change, and --globals creates them; the checksum is checked before any database is
 *   touched;
 * - --schema/--table selection, and the CI flow `create --tag pre-migration` then
 *   `restore latest --tag pre-migration --clean --yes`.
 */
import { execa } from 'execa';
import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { globalsNames } from '../../src/pg/globals.js';
import { backUpSamples, createBackup, makeTempDir, parseJsonStdout, readSidecar, removeDirs } from '../helpers/backups.js';
import { baseEnv, runCli, type CliOutcome } from '../helpers/cli.js';
import { quoteIdent, quoteLiteral } from '../helpers/cluster.js';
import { closedPort, failureLines, removeTempDirs, sh, tempDir, wrapperBinDir, writeConfig } from '../helpers/failure-kit.js';
import { loadChinook } from '../helpers/fixtures.js';
import { connectProvided, uniqueName } from '../helpers/pg.js';

const cluster = connectProvided();
const dirs: string[] = [];
const databases: string[] = [];
const roles: string[] = [];

const chinook = uniqueName('rst_chinook');
const tricky = uniqueName('rst_tricky');
let work: string;
/** One Chinook backup (custom format) and one tricky.sql backup (--jobs 2: a tar). */
let storage: string;
const ids = { chinook: '', tricky: '' };
/** Fingerprints of the sources, taken once (they are never written to). */
const sources = new Map<string, Fingerprint>();

/** A new database name for this file; dropped (with its staging/old/failed relatives) at the end. */
function newDb(prefix: string): string {
  const name = uniqueName(prefix);
  databases.push(name);
  return name;
}

function cli(argv: string[], options: { env?: Record<string, string | undefined>; cwd?: string } = {}): Promise<CliOutcome> {
  return runCli(argv, { env: options.env ?? baseEnv(cluster.env('postgres')), cwd: options.cwd ?? work });
}

/** `restore <ref> --storage <storage> ...args`. */
function restore(ref: string, args: string[], options: { where?: string; env?: Record<string, string | undefined>; cwd?: string } = {}): Promise<CliOutcome> {
  return cli(['restore', ref, '--storage', options.where ?? storage, ...args], options);
}

// ---------------------------------------------------------------------------
// What a database holds

interface Fingerprint {
  /** pg_dump --schema-only --no-owner --no-acl, normalised. */
  schema: string;
  /** `schema.table` -> md5 of its rows in order (ordinary tables, partitions, partitioned parents, populated matviews). */
  tables: Record<string, string>;
  sequences: Record<string, string | null>;
  /** oid -> md5 of the contents. */
  largeObjects: Record<string, string>;
}

function normaliseSchema(dump: string): string {
  return dump
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('--') && !/^\\(un)?restrict\b/.test(line) && !line.startsWith('SET '))
    .join('\n');
}

async function schemaDump(db: string): Promise<string> {
  const { stdout } = await execa(cluster.bin('pg_dump'), ['--schema-only', '--no-owner', '--no-acl', db], { env: cluster.env(db), stdin: 'ignore' });
  return normaliseSchema(stdout);
}

async function fingerprint(db: string): Promise<Fingerprint> {
  const relations = await cluster.query<{ schema: string; name: string }>(
    db,
    `SELECT n.nspname AS schema, c.relname AS name
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE (c.relkind IN ('r', 'p') OR (c.relkind = 'm' AND c.relispopulated))
        AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
      ORDER BY 1, 2`,
  );
  const tables: Record<string, string> = {};
  for (const { schema, name } of relations) {
    const [row] = await cluster.query<{ h: string | null; n: string }>(
      db,
      `SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) AS h, count(*)::text AS n FROM ${quoteIdent(schema)}.${quoteIdent(name)} t`,
    );
    tables[`${schema}.${name}`] = `${row?.n}:${row?.h ?? 'empty'}`;
  }
  const sequences: Record<string, string | null> = {};
  for (const row of await cluster.query<{ schema: string; name: string; v: string | null }>(
    db,
    'SELECT schemaname AS schema, sequencename AS name, last_value::text AS v FROM pg_sequences ORDER BY 1, 2',
  )) {
    sequences[`${row.schema}.${row.name}`] = row.v;
  }
  const largeObjects: Record<string, string> = {};
  for (const row of await cluster.query<{ oid: string; h: string }>(db, 'SELECT oid::text AS oid, md5(lo_get(oid)) AS h FROM pg_largeobject_metadata ORDER BY oid')) {
    largeObjects[row.oid] = row.h;
  }
  return { schema: await schemaDump(db), tables, sequences, largeObjects };
}

async function databaseExists(name: string): Promise<boolean> {
  const rows = await cluster.query('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  return rows.length === 1;
}

/** Databases whose name starts with `<target>_` and the word (restoring, old, failed). */
async function relatives(target: string, word: 'restoring' | 'old' | 'failed'): Promise<string[]> {
  const rows = await cluster.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1', [
    `${target}_${word}`,
  ]);
  return rows.map((r) => r.datname);
}

/** A non-empty database that is not the backup: a table with a few rows and a function. */
async function makeOccupied(name: string): Promise<Fingerprint> {
  await cluster.createDatabase(name);
  await cluster.query(
    name,
    `CREATE TABLE public.local_notes (id int PRIMARY KEY, note text);
     INSERT INTO public.local_notes SELECT g, 'note ' || g FROM generate_series(1, 25) g;
     CREATE FUNCTION public.answer() RETURNS int LANGUAGE sql AS 'SELECT 42';`,
  );
  return fingerprint(name);
}

/** The source's fingerprint, taken once. */
function source(db: string): Fingerprint {
  const found = sources.get(db);
  if (!found) throw new Error(`no fingerprint of ${db}`);
  return found;
}

beforeAll(async () => {
  work = await makeTempDir('rst');
  dirs.push(work);
  storage = path.join(work, 'storage');
  databases.push(chinook, tricky);
  Object.assign(ids, await backUpSamples(cluster, { chinook, tricky }, storage, work));
  sources.set(chinook, await fingerprint(chinook));
  sources.set(tricky, await fingerprint(tricky));
}, 120_000);

afterAll(async () => {
  const all = await cluster.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database');
  for (const { datname } of all) {
    if (databases.some((db) => datname === db || datname.startsWith(`${db}_restoring_`) || datname.startsWith(`${db}_old_`) || datname.startsWith(`${db}_failed`))) {
      await cluster.dropDatabase(datname);
    }
  }
  for (const role of roles) await cluster.query('postgres', `DROP ROLE IF EXISTS ${quoteIdent(role)}`);
  await removeDirs(dirs);
  await removeTempDirs();
});

// ---------------------------------------------------------------------------

describe('restore: round trip', () => {
  it('Chinook: schema, every table, sequences equal the source', async () => {
    const target = newDb('rst_rt_chinook');
    const run = await restore(ids.chinook, ['--target-db', target, '--create']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`Restored ${ids.chinook} into "${target}".*row counts match the backup`));
    const restored = await fingerprint(target);
    const expected = source(chinook);
    expect(Object.keys(restored.tables)).toHaveLength(11);
    expect(restored.schema).toBe(expected.schema);
    expect(restored.tables).toEqual(expected.tables);
    expect(restored.sequences).toEqual(expected.sequences);
    expect(restored.largeObjects).toEqual({});
    expect(await relatives(target, 'restoring')).toEqual([]);
    expect(await relatives(target, 'old')).toEqual([]);
  });

  it('tricky.sql (a tar, restored with --jobs 2): schema, every table and partition, sequences, large objects equal the source', async () => {
    const target = newDb('rst_rt_tricky');
    const run = await restore(ids.tricky, ['--target-db', target, '--create', '--jobs', '2', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const out = parseJsonStdout(run.stdout) as { id: string; target: string; mode: string; countsChecked: boolean; oldKeptAs: string | null; rollback: string | null };
    expect(out).toMatchObject({ id: ids.tricky, target, mode: 'create', countsChecked: true, oldKeptAs: null, rollback: null });
    const restored = await fingerprint(target);
    const expected = source(tricky);
    expect(restored.schema).toBe(expected.schema);
    expect(restored.tables).toEqual(expected.tables);
    // Partitions and their parent are there, each with its rows.
    expect(Object.keys(restored.tables)).toEqual(expect.arrayContaining(['sales.measurements', 'sales.measurements_2023', 'sales.measurements_2024', 'sales.measurements_default']));
    expect(restored.sequences).toEqual(expected.sequences);
    expect(Object.keys(restored.largeObjects)).toHaveLength(4);
    expect(restored.largeObjects).toEqual(expected.largeObjects);
    expect(await relatives(target, 'restoring')).toEqual([]);
  });
});

describe('restore: safety', () => {
  it('a non-empty target without flags is refused (exit 2) and unchanged', async () => {
    const target = newDb('rst_busy');
    const before = await makeOccupied(target);
    const run = await restore(ids.chinook, ['--target-db', target]);
    expect(run.code).toBe(2);
    const { error, hint } = failureLines(run.stderr);
    expect(error).toMatch(new RegExp(`target database "${target}" is not empty .*nothing was changed`));
    expect(hint).toMatch(/--clean/);
    expect(await fingerprint(target)).toEqual(before);
    expect(await relatives(target, 'restoring')).toEqual([]);
  });

  it('a target holding no table or function, only types, a text search configuration, a foreign server, a publication, a collation, is not empty: refused (exit 2), nothing dropped', async () => {
    for (const [i, ddl] of [
      "CREATE TYPE public.mood AS ENUM ('ok', 'sad'); CREATE DOMAIN public.positive AS int CHECK (VALUE > 0)",
      'CREATE TEXT SEARCH CONFIGURATION public.simple_copy (COPY = pg_catalog.simple)',
      'CREATE FOREIGN DATA WRAPPER qa_fdw; CREATE SERVER qa_server FOREIGN DATA WRAPPER qa_fdw',
      'CREATE PUBLICATION qa_pub',
      `CREATE COLLATION public.c_copy (LOCALE = 'C')`,
    ].entries()) {
      const target = newDb(`rst_onlytypes${i}`);
      await cluster.createDatabase(target);
      await cluster.query(target, ddl);
      const dry = await restore(ids.chinook, ['--target-db', target, '--dry-run']);
      expect(dry.code, ddl).toBe(2);
      const run = await restore(ids.chinook, ['--target-db', target, '--yes']);
      expect(run.code, ddl).toBe(2);
      expect(failureLines(run.stderr).error).toMatch(new RegExp(`target database "${target}" is not empty .*nothing was changed`));
      expect(await databaseExists(target)).toBe(true);
      expect(await relatives(target, 'old')).toEqual([]);
    }
  });

  it('--clean with --table or --schema is refused (exit 2): the target would hold only the selection; nothing changed', async () => {
    const target = newDb('rst_clean_sel');
    const before = await makeOccupied(target);
    for (const selection of [['--table', 'album'], ['--schema', 'public']]) {
      const run = await restore(ids.chinook, ['--target-db', target, '--clean', '--drop-old', '--yes', ...selection]);
      expect(run.code, selection.join(' ')).toBe(2);
      const { error, hint } = failureLines(run.stderr);
      expect(error).toMatch(/--clean replaces the whole database .* would hold only what is selected/);
      expect(hint).toMatch(/--create/);
      expect(await fingerprint(target)).toEqual(before);
      expect(await relatives(target, 'restoring')).toEqual([]);
      expect(await relatives(target, 'old')).toEqual([]);
    }
  });

  it('a second restore into a target another restore is working on is exit 4 (the server\'s advisory lock on the name), nothing changed; free again once it ends', async () => {
    const target = newDb('rst_locked');
    const before = await makeOccupied(target);
    // What a running restore holds (lockRestoreTarget): a session of another run.
    const holder = new pg.Client({ host: cluster.host, port: cluster.port, user: cluster.user, password: cluster.password, database: 'postgres' });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1::int4, hashtext($2))', [0x62637472, target]);
      const run = await restore(ids.chinook, ['--target-db', target, '--clean', '--yes']);
      expect(run.code, run.stderr).toBe(4);
      expect(failureLines(run.stderr).error).toMatch(new RegExp(`another restore into "${target}" is running .*nothing was changed`));
      expect(await fingerprint(target)).toEqual(before);
      expect(await relatives(target, 'restoring')).toEqual([]);
      // A dry run takes no lock.
      expect((await restore(ids.chinook, ['--target-db', target, '--clean', '--dry-run'])).code).toBe(0);
    } finally {
      await holder.end();
    }
    const after = await restore(ids.chinook, ['--target-db', target, '--clean', '--drop-old', '--yes']);
    expect(after.code, after.stderr).toBe(0);
  });

  it('a target that does not exist needs --create (exit 2), and nothing is created', async () => {
    const target = newDb('rst_absent');
    const run = await restore(ids.chinook, ['--target-db', target]);
    expect(run.code).toBe(2);
    expect(failureLines(run.stderr).hint).toMatch(/--create/);
    expect(await databaseExists(target)).toBe(false);
    expect(await relatives(target, 'restoring')).toEqual([]);
  });

  it('a target name longer than PostgreSQL keeps (63 bytes) is refused (exit 2), nothing created under the cut name', async () => {
    for (const target of ['x'.repeat(70), 'ü'.repeat(40)]) {
      const run = await restore(ids.chinook, ['--target-db', target, '--create', '--yes']);
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toContain(`the target database name is ${Buffer.byteLength(target)} bytes long`);
      let cut = target;
      while (Buffer.byteLength(cut) > 63) cut = cut.slice(0, -1);
      expect(await databaseExists(cut)).toBe(false);
    }
  });

  it('--clean without a terminal and without --yes exits 2 and changes nothing; --clean with --force is a usage error', async () => {
    const target = newDb('rst_noyes');
    const before = await makeOccupied(target);
    const run = await restore(ids.chinook, ['--target-db', target, '--clean']);
    expect(run.code).toBe(2);
    const { error, hint } = failureLines(run.stderr);
    expect(error).toMatch(/without --yes/);
    expect(hint).toMatch(/--dry-run/);
    const both = await restore(ids.chinook, ['--target-db', target, '--clean', '--force', '--yes']);
    expect(both.code).toBe(2);
    expect(await fingerprint(target)).toEqual(before);
    expect(await relatives(target, 'restoring')).toEqual([]);
    expect(await relatives(target, 'old')).toEqual([]);
  });

  it('--clean --yes replaces it, keeps the old one under the printed name, and the printed rollback works', async () => {
    const target = newDb('rst_clean');
    const before = await makeOccupied(target);
    const run = await restore(ids.chinook, ['--target-db', target, '--clean', '--yes']);
    expect(run.code, run.stderr).toBe(0);
    const kept = /The previous "[^"]+" is kept as "([^"]+)"/.exec(run.stdout)?.[1];
    expect(kept, run.stdout).toMatch(new RegExp(`^${target}_old_\\d{8}_\\d{6}$`));
    const rollback = /To roll back:\s+(.+)$/m.exec(run.stdout)?.[1];
    expect(rollback, run.stdout).toBeDefined();
    // Every printed command names the server (-h -p -U), never a password.
    const dropOld = /Once you are sure:\s+(.+)$/m.exec(run.stdout)?.[1];
    for (const command of [rollback, dropOld]) {
      expect(command).toContain(`-h ${cluster.host} -p ${cluster.port} -U ${cluster.user} -d postgres`);
      expect(command).not.toContain(cluster.password);
    }

    // The target is the backup now; the old one is intact under its new name.
    const now = await fingerprint(target);
    expect(now.tables).toEqual(source(chinook).tables);
    expect(now.schema).toBe(source(chinook).schema);
    expect(await fingerprint(kept as string)).toEqual(before);
    expect(await relatives(target, 'restoring')).toEqual([]);

    // The rollback, run as printed, on a host whose libpq environment points elsewhere (another
    // cluster's port): the command's own -h/-p/-U must reach this server. The password comes from PGPASSWORD.
    const rolled = await execa('sh', ['-c', rollback as string], {
      env: { PGPASSWORD: cluster.password, PGHOST: '/nonexistent', PGPORT: '1', PGUSER: 'nobody', PATH: `${cluster.binDir}:${process.env.PATH ?? ''}` },
      extendEnv: false,
      stdin: 'ignore',
      reject: false,
    });
    expect(rolled.exitCode, String(rolled.stderr)).toBe(0);
    expect(await fingerprint(target)).toEqual(before);
    expect(await databaseExists(kept as string)).toBe(false);
    const failed = await relatives(target, 'failed');
    expect(failed).toHaveLength(1);
    expect((await fingerprint(failed[0] as string)).tables).toEqual(source(chinook).tables);
  });

  it('--clean --yes --drop-old drops the replaced database (JSON says so, no rollback offered)', async () => {
    const target = newDb('rst_dropold');
    await makeOccupied(target);
    const run = await restore(ids.chinook, ['--target-db', target, '--clean', '--yes', '--drop-old', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const out = parseJsonStdout(run.stdout) as { mode: string; oldKeptAs: string | null; rollback: string | null; countsChecked: boolean };
    expect(out).toMatchObject({ mode: 'replace', oldKeptAs: null, rollback: null, countsChecked: true });
    expect((await fingerprint(target)).tables).toEqual(source(chinook).tables);
    expect(await relatives(target, 'old')).toEqual([]);
    expect(await relatives(target, 'restoring')).toEqual([]);
  });

  it('an existing empty target is replaced without --clean, and the empty one is dropped', async () => {
    const target = newDb('rst_empty');
    await cluster.createDatabase(target);
    const run = await restore(ids.chinook, ['--target-db', target, '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(parseJsonStdout(run.stdout)).toMatchObject({ mode: 'replace-empty', oldKeptAs: null });
    expect((await fingerprint(target)).tables).toEqual(source(chinook).tables);
    expect(await relatives(target, 'old')).toEqual([]);
  });

  it('--force --yes restores into an existing target as it is (its own objects stay)', async () => {
    const target = newDb('rst_force');
    const before = await makeOccupied(target);
    const noYes = await restore(ids.chinook, ['--target-db', target, '--force']);
    expect(noYes.code).toBe(2);
    expect(await fingerprint(target)).toEqual(before);

    const run = await restore(ids.chinook, ['--target-db', target, '--force', '--yes', '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(parseJsonStdout(run.stdout)).toMatchObject({ mode: 'into-existing', oldKeptAs: null });
    const after = await fingerprint(target);
    expect(after.tables).toEqual({ ...source(chinook).tables, 'public.local_notes': before.tables['public.local_notes'] });
    expect(await relatives(target, 'restoring')).toEqual([]);
  });

  it('--dry-run prints the plan (target state, object counts, missing roles) and changes nothing; --json too', async () => {
    const target = newDb('rst_dry');
    const before = await makeOccupied(target);
    const run = await restore(ids.chinook, ['--target-db', target, '--clean', '--dry-run']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`Restore plan for ${chinook}/${ids.chinook}`);
    expect(run.stdout).toMatch(new RegExp(`target\\s+"${target}": exists, \\d+ objects`));
    expect(run.stdout).toMatch(/11 table, 11 table data/);
    expect(run.stdout).toMatch(/11 fk constraint/);
    expect(run.stdout).toMatch(/missing roles\s+none/);
    expect(run.stdout).toMatch(/Steps \(destructive\):/);
    expect(run.stdout).toMatch(/keep the current ".*" as ".*_old_/);

    const json = await restore(ids.chinook, ['--target-db', target, '--clean', '--dry-run', '--json']);
    expect(json.code, json.stderr).toBe(0);
    const out = parseJsonStdout(json.stdout) as { dryRun: boolean; plan: Record<string, unknown> & { targetState: { objects: number } } };
    expect(out.dryRun).toBe(true);
    const plan = out.plan;
    expect(plan).toMatchObject({
      target,
      mode: 'replace',
      refusal: null,
      destructive: true,
      targetState: { exists: true, sessions: 0 },
      missing: { roles: [], extensions: [] },
      archive: { objects: { TABLE: 11, 'TABLE DATA': 11, 'FK CONSTRAINT': 11 } },
    });
    expect(plan.staging).toMatch(new RegExp(`^${target}_restoring_`));
    expect(plan.targetState.objects).toBeGreaterThan(0);

    // Without --clean the plan says why it would be refused, with the real run's exit 2; nothing changed.
    const refused = await restore(ids.chinook, ['--target-db', target, '--dry-run', '--json']);
    expect(refused.code).toBe(2);
    expect((parseJsonStdout(refused.stdout) as { plan: { refusal: string } }).plan.refusal).toMatch(/is not empty/);

    expect(await fingerprint(target)).toEqual(before);
    expect(await relatives(target, 'restoring')).toEqual([]);
    expect(await relatives(target, 'old')).toEqual([]);
    // A dry run for a target that does not exist creates nothing either.
    const absent = newDb('rst_dry_absent');
    const create = await restore(ids.chinook, ['--target-db', absent, '--create', '--dry-run', '--json']);
    expect(create.code, create.stderr).toBe(0);
    expect((parseJsonStdout(create.stdout) as { plan: { mode: string; targetState: { exists: boolean } } }).plan).toMatchObject({ mode: 'create', targetState: { exists: false } });
    expect(await databaseExists(absent)).toBe(false);
  });
});

describe('restore: failures leave the target as it was', () => {
  /** A pgBinDir (through a config file) whose pg_restore is `script`; the others are the cluster's. */
  async function configWithPgRestore(script: string): Promise<string> {
    const bin = await wrapperBinDir(cluster, { pg_restore: script });
    return writeConfig(await tempDir('rst-cfg'), { pgBinDir: bin });
  }

  /** Passes --version, --list and -f /dev/null to the real pg_restore; restores with `body` otherwise. */
  function wrapper(body: string): string {
    const real = sh(cluster.bin('pg_restore'));
    return `#!/bin/sh
for a in "$@"; do
  case "$a" in --version|--list|-l|--file=*) exec ${real} "$@" ;; esac
done
${body.replace(/\$REAL/g, real)}
`;
  }

  it('pg_restore that restores everything, then fails: exit 1, target unchanged, no staging database', async () => {
    const config = await configWithPgRestore(wrapper('$REAL "$@" || exit $?\necho "pg_restore: error: simulated failure after the restore" >&2\nexit 1'));
    const target = newDb('rst_fail');
    const before = await makeOccupied(target);
    const run = await restore(ids.chinook, ['--config', config, '--target-db', target, '--clean', '--yes']);
    expect(run.code, run.stderr).toBe(1);
    expect(failureLines(run.stderr).error).toMatch(/pg_restore failed/);
    expect(run.stderr).toMatch(/simulated failure/);
    expect(await fingerprint(target)).toEqual(before);
    expect(await relatives(target, 'restoring')).toEqual([]);
    expect(await relatives(target, 'old')).toEqual([]);

    // Into a new database: it does not appear.
    const fresh = newDb('rst_fail_new');
    const created = await restore(ids.chinook, ['--config', config, '--target-db', fresh, '--create']);
    expect(created.code).toBe(1);
    expect(await databaseExists(fresh)).toBe(false);
    expect(await relatives(fresh, 'restoring')).toEqual([]);
  });

  it('pg_restore killed half-way (SIGKILL after part of the archive): exit 1, target unchanged, no staging database', async () => {
    const config = await configWithPgRestore(
      wrapper(`for a in "$@"; do last="$a"; done
list=$(mktemp)
$REAL --list "$last" | grep -v '^;' | head -n 20 > "$list"
$REAL --use-list="$list" "$@"
rm -f "$list"
kill -KILL $$`),
    );
    const target = newDb('rst_kill');
    const before = await makeOccupied(target);
    const run = await restore(ids.chinook, ['--config', config, '--target-db', target, '--clean', '--yes']);
    expect(run.code, run.stderr).toBe(1);
    expect(failureLines(run.stderr).error).toMatch(/pg_restore failed \(killed by SIGKILL\)/);
    expect(await fingerprint(target)).toEqual(before);
    expect(await relatives(target, 'restoring')).toEqual([]);
    expect(await relatives(target, 'old')).toEqual([]);
  });

  it('--force into a target where the archive errors half-way (a conflicting table): one transaction, nothing changed', async () => {
    const target = newDb('rst_conflict');
    await makeOccupied(target);
    // Chinook's tables are restored in name order: "album" and "artist" come first, then "customer" conflicts.
    await cluster.query(target, 'CREATE TABLE public.customer (whatever int)');
    const before = await fingerprint(target);
    const run = await restore(ids.chinook, ['--target-db', target, '--force', '--yes']);
    expect(run.code).toBe(1);
    const { error, hint } = failureLines(run.stderr);
    expect(`${error}\n${hint}`).toMatch(/relation "customer" already exists/);
    expect(await fingerprint(target)).toEqual(before);
  });

  it('a flipped byte: exit 3 before any database is touched; target unchanged, nothing created', async () => {
    const dir = await makeTempDir('rst-flip');
    dirs.push(dir);
    const where = path.join(dir, 'storage');
    await cp(storage, where, { recursive: true });
    const { sidecar } = await readSidecar(where, chinook, ids.chinook);
    const file = path.join(where, chinook, sidecar.artifact.file);
    const bytes = await readFile(file);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] as number) ^ 0x01;
    await writeFile(file, bytes);

    const target = newDb('rst_flip');
    const before = await makeOccupied(target);
    const run = await restore(ids.chinook, ['--target-db', target, '--clean', '--yes'], { where });
    expect(run.code).toBe(3);
    const { error } = failureLines(run.stderr);
    expect(error).toContain(ids.chinook);
    expect(error).toMatch(/corrupt, nothing was changed: artifact: sha256 is/);
    expect(await fingerprint(target)).toEqual(before);
    expect(await relatives(target, 'restoring')).toEqual([]);

    // No server is even contacted: a server that does not listen makes no difference.
    const port = await closedPort();
    const offline = await restore(ids.chinook, ['--target-url', `postgres://${cluster.user}@127.0.0.1:${port}/postgres`, '--target-db', target, '--clean', '--yes'], { where });
    expect(offline.code).toBe(3);
    expect(failureLines(offline.stderr).error).toMatch(/corrupt/);
    // A tar flipped the same way: same answer (the tar is checked before it is unpacked into use).
    const { sidecar: trickySidecar } = await readSidecar(where, tricky, ids.tricky);
    const tar = path.join(where, tricky, trickySidecar.artifact.file);
    const tarBytes = await readFile(tar);
    const middle = Math.floor(tarBytes.length / 2);
    tarBytes[middle] = (tarBytes[middle] as number) ^ 0x01;
    await writeFile(tar, tarBytes);
    const fresh = newDb('rst_flip_new');
    const tarRun = await restore(ids.tricky, ['--target-db', fresh, '--create'], { where });
    expect(tarRun.code).toBe(3);
    expect(await databaseExists(fresh)).toBe(false);
  });
});

describe('restore: --target-url', () => {
  it('the database the URL names is the target (not the backup\'s); -d still wins', async () => {
    const named = newDb('rst_url');
    const url = `postgres://${cluster.user}@${cluster.host}:${cluster.port}/${named}`;
    const plan = await restore(ids.chinook, ['--target-url', url, '--create', '--dry-run', '--json']);
    expect(plan.code, plan.stderr).toBe(0);
    expect((parseJsonStdout(plan.stdout) as { plan: { target: string } }).plan.target).toBe(named);
    const run = await restore(ids.chinook, ['--target-url', url, '--create']);
    expect(run.code, run.stderr).toBe(0);
    expect(await databaseExists(named)).toBe(true);
    const other = newDb('rst_url_d');
    const explicit = await restore(ids.chinook, ['--target-url', url, '-d', other, '--create', '--dry-run', '--json']);
    expect((parseJsonStdout(explicit.stdout) as { plan: { target: string } }).plan.target).toBe(other);
  });
});

describe('restore: roles', () => {
  const owner = uniqueName('rst_owner');
  /** Owns nothing, only granted SELECT: named by the archive's GRANTs, not by the TOC's owner column. */
  const reader = uniqueName('rst_reader');
  const db = newDb('rst_owned');
  let where: string;
  let id: string;
  let rolesBefore: Set<string>;

  beforeAll(async () => {
    roles.push(owner, reader);
    await cluster.createRole(owner, 'unused-password', 'NOLOGIN');
    await cluster.createRole(reader, 'unused-password', 'NOLOGIN');
    await cluster.createDatabase(db);
    await cluster.query(
      db,
      `CREATE TABLE public.owned (id int PRIMARY KEY, v text);
       INSERT INTO public.owned SELECT g, 'v' || g FROM generate_series(1, 10) g;
       ALTER TABLE public.owned OWNER TO ${quoteIdent(owner)};
       CREATE EXTENSION IF NOT EXISTS citext;
       CREATE TABLE public.plain (c citext);
       INSERT INTO public.plain VALUES ('A'), ('b');
       CREATE CAST (int4 AS citext) WITH INOUT;
       GRANT SELECT ON public.plain TO ${quoteIdent(reader)};`,
    );
    const dir = await makeTempDir('rst-roles');
    dirs.push(dir);
    where = path.join(dir, 'storage');
    id = await createBackup(cluster, db, where, work);
    // The role goes away (the source database with it).
    await cluster.dropDatabase(db);
    await cluster.query('postgres', `DROP ROLE ${quoteIdent(owner)}`);
    await cluster.query('postgres', `DROP ROLE ${quoteIdent(reader)}`);
    rolesBefore = new Set((await cluster.query<{ rolname: string }>('postgres', 'SELECT rolname FROM pg_roles')).map((r) => r.rolname));
  });

  afterAll(async () => {
    // --globals may have brought back roles of other test files that existed at backup time: drop those too
    // (only roles of the backup's globals that were gone before, never a role another test made since).
    const { sidecar } = await readSidecar(where, db, id);
    if (sidecar.globals.status !== 'included') return;
    const inGlobals = globalsNames(await readFile(path.join(where, db, sidecar.globals.file), 'utf8')).roles;
    const after = new Set((await cluster.query<{ rolname: string }>('postgres', 'SELECT rolname FROM pg_roles')).map((r) => r.rolname));
    for (const role of inGlobals) {
      if (!rolesBefore.has(role) && after.has(role)) roles.push(role);
    }
  });

  it('missing roles (owners and grantees) are refused before any change, naming them; extensions and casts are not taken for roles', async () => {
    const target = newDb('rst_roles_refused');
    const dry = await restore(id, ['--target-db', target, '--create', '--dry-run', '--json'], { where });
    expect(dry.code, dry.stderr).toBe(2);
    const plan = (parseJsonStdout(dry.stdout) as { plan: { missing: { roles: string[]; extensions: string[] }; refusal: string } }).plan;
    expect(plan.missing).toEqual({ roles: [owner, reader], extensions: [], tablespaces: [] });
    expect(plan.refusal).toContain(owner);
    expect(plan.refusal).toContain(reader);

    const run = await restore(id, ['--target-db', target, '--create'], { where });
    expect(run.code).toBe(2);
    const { error, hint } = failureLines(run.stderr);
    expect(error).toMatch(new RegExp(`needs roles the target server lacks: ${owner}, ${reader}; nothing was changed`));
    expect(hint).toMatch(/--globals/);
    expect(await databaseExists(target)).toBe(false);
    expect(await relatives(target, 'restoring')).toEqual([]);

    // --no-owner still needs the grantee; --no-acl still needs the owner.
    const ownerOnly = await restore(id, ['--target-db', target, '--create', '--no-owner', '--dry-run', '--json'], { where });
    expect((parseJsonStdout(ownerOnly.stdout) as { plan: { missing: { roles: string[] } } }).plan.missing.roles).toEqual([reader]);
    const aclOnly = await restore(id, ['--target-db', target, '--create', '--no-acl', '--dry-run', '--json'], { where });
    expect((parseJsonStdout(aclOnly.stdout) as { plan: { missing: { roles: string[] } } }).plan.missing.roles).toEqual([owner]);

    // --no-owner --no-acl needs no role.
    const noOwner = newDb('rst_roles_noowner');
    const plain = await restore(id, ['--target-db', noOwner, '--create', '--no-owner', '--no-acl'], { where });
    expect(plain.code, plain.stderr).toBe(0);
    const [row] = await cluster.query<{ owner: string }>(noOwner, "SELECT tableowner AS owner FROM pg_tables WHERE tablename = 'owned'");
    expect(row?.owner).toBe(cluster.user);
  });

  it('--globals creates the role from the backup first; existing roles are reported as skipped', async () => {
    const target = newDb('rst_roles_globals');
    const run = await restore(id, ['--target-db', target, '--create', '--globals'], { where });
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`role ${cluster.user} already existed and was left as it is`));
    const [row] = await cluster.query<{ owner: string }>(target, "SELECT tableowner AS owner FROM pg_tables WHERE tablename = 'owned'");
    expect(row?.owner).toBe(owner);
    const [count] = await cluster.query<{ n: string }>(target, 'SELECT count(*)::text AS n FROM public.owned');
    expect(count?.n).toBe('10');
    const json = await restore(id, ['--target-db', newDb('rst_roles_globals2'), '--create', '--globals', '--json'], { where });
    expect(json.code, json.stderr).toBe(0);
    expect((parseJsonStdout(json.stdout) as { globalsSkipped: string[] }).globalsSkipped).toEqual(expect.arrayContaining([`role ${cluster.user}`, `role ${owner}`, `role ${reader}`]));
    const [grant] = await cluster.query<{ ok: boolean }>(target, `SELECT has_table_privilege(${quoteLiteral(reader)}, 'public.plain', 'SELECT') AS ok`);
    expect(grant?.ok).toBe(true);
  });
});

describe('restore: as a role that is not a superuser', () => {
  it('ownership it cannot give is refused before any change, with the --no-owner --no-acl hint; with them the restore works', async () => {
    const restorer = uniqueName('rst_plain_user');
    const password = 'restorer-pw';
    roles.push(restorer);
    await cluster.createRole(restorer, password, 'CREATEDB');
    const env = baseEnv({ ...cluster.env('postgres'), PGUSER: restorer, PGPASSWORD: password });
    const target = newDb('rst_nonsuper');
    // The Chinook backup's objects belong to the superuser that made them.
    const refused = await restore(ids.chinook, ['--target-db', target, '--create'], { env });
    expect(refused.code).toBe(2);
    const { error, hint } = failureLines(refused.stderr);
    expect(error).toMatch(new RegExp(`restoring ownership needs membership in roles that ${restorer} is not a member of: ${cluster.user}; nothing was changed`));
    expect(hint).toMatch(/--no-owner --no-acl/);
    expect(await databaseExists(target)).toBe(false);

    const done = await restore(ids.chinook, ['--target-db', target, '--create', '--no-owner', '--no-acl'], { env });
    expect(done.code, done.stderr).toBe(0);
    const [row] = await cluster.query<{ owner: string }>(target, "SELECT tableowner AS owner FROM pg_tables WHERE tablename = 'track'");
    expect(row?.owner).toBe(restorer);
  });

  it('--clean of a database it does not own is refused before restoring anything (the swap renames it), exit 2, nothing created; as a member of the owner it works', async () => {
    const restorer = uniqueName('rst_not_owner');
    const password = 'restorer-pw';
    roles.push(restorer);
    await cluster.createRole(restorer, password, 'CREATEDB');
    const env = baseEnv({ ...cluster.env('postgres'), PGUSER: restorer, PGPASSWORD: password });
    const target = newDb('rst_notowned');
    await cluster.createDatabase(target);
    await cluster.query(target, 'CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)');

    const refused = await restore(ids.chinook, ['--target-db', target, '--clean', '--yes', '--no-owner', '--no-acl'], { env });
    expect(refused.code, refused.stderr).toBe(2);
    const { error, hint } = failureLines(refused.stderr);
    expect(error).toMatch(new RegExp(`${restorer} cannot swap a restored database into the place of "${target}": renaming a database needs a superuser, or its owner \\(${cluster.user}\\) with CREATEDB; nothing was changed`));
    expect(hint).toMatch(/restore as a superuser \(-U postgres/);
    expect(refused.stderr).not.toMatch(/restoring .* into/);
    expect(await relatives(target, 'restoring')).toEqual([]);
    expect(await relatives(target, 'old')).toEqual([]);
    expect(await cluster.query(target, 'SELECT id FROM kept')).toEqual([{ id: 1 }]);

    // A member of the owning role has its privileges: the swap is allowed.
    const owner = uniqueName('rst_owner_role');
    roles.push(owner);
    await cluster.createRole(owner, 'unused-pw', 'NOLOGIN');
    await cluster.query('postgres', `ALTER DATABASE ${quoteIdent(target)} OWNER TO ${quoteIdent(owner)}; GRANT ${quoteIdent(owner)} TO ${quoteIdent(restorer)}`);
    const done = await restore(ids.chinook, ['--target-db', target, '--clean', '--yes', '--drop-old', '--no-owner', '--no-acl'], { env });
    expect(done.code, done.stderr).toBe(0);
    expect(await cluster.query(target, "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'track'")).toEqual([{ n: 1 }]);
  });
});

describe('restore: selection', () => {
  it('--schema restores only that schema, itself included (into a new database)', async () => {
    const target = newDb('rst_schema');
    const run = await restore(ids.tricky, ['--target-db', target, '--create', '--schema', 'app']);
    expect(run.code, run.stderr).toBe(0);
    const restored = await fingerprint(target);
    const expected = Object.fromEntries(Object.entries(source(tricky).tables).filter(([key]) => key.startsWith('app.')));
    expect(Object.keys(expected).length).toBeGreaterThan(5);
    expect(restored.tables).toEqual(expected);
    const schemas = await cluster.query<{ nspname: string; comment: string | null }>(
      target,
      "SELECT nspname, obj_description(oid, 'pg_namespace') AS comment FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema' ORDER BY 1",
    );
    expect(schemas.map((s) => s.nspname)).toEqual(['app', 'public']);
    expect(schemas[0]?.comment).toBeTruthy();
    expect(restored.largeObjects).toEqual({});
  });

  it('--schema with a quoted, non-ASCII schema name', async () => {
    const target = newDb('rst_schema_u');
    const run = await restore(ids.tricky, ['--target-db', target, '--create', '--schema', 'Ünïcødé Schema', '--jobs', '2']);
    expect(run.code, run.stderr).toBe(0);
    const restored = await fingerprint(target);
    expect(restored.tables).toEqual(Object.fromEntries(Object.entries(source(tricky).tables).filter(([key]) => key.startsWith('Ünïcødé Schema.'))));
  });

  it('--table restores only those tables', async () => {
    const target = newDb('rst_table');
    const run = await restore(ids.chinook, ['--target-db', target, '--create', '--table', 'album', '--table', 'artist']);
    expect(run.code, run.stderr).toBe(0);
    const restored = await fingerprint(target);
    expect(restored.tables).toEqual({ 'public.album': source(chinook).tables['public.album'], 'public.artist': source(chinook).tables['public.artist'] });
  });

  it('--table brings what belongs to the tables: primary keys, indexes, foreign keys between them (not to a table left out), a serial\'s sequence and default, comments', async () => {
    const target = newDb('rst_table_parts');
    const run = await restore(ids.chinook, ['--target-db', target, '--create', '--table', 'album', '--table', 'artist', '--table', 'track']);
    expect(run.code, run.stderr).toBe(0);
    const constraints = await cluster.query<{ name: string }>(target, "SELECT conname AS name FROM pg_constraint WHERE conrelid IN ('album'::regclass, 'artist'::regclass, 'track'::regclass) ORDER BY 1");
    // track's foreign keys to genre, media_type and (from invoice_line) are left out with those tables.
    expect(constraints.map((c) => c.name)).toEqual(['album_artist_id_fkey', 'album_pkey', 'artist_pkey', 'track_album_id_fkey', 'track_pkey']);
    const indexes = await cluster.query<{ name: string }>(target, "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'album' ORDER BY 1");
    expect(indexes.map((i) => i.name)).toEqual(['album_artist_id_idx', 'album_pkey']);

    // A column whose default draws from a sequence the table owns: the sequence, at the
    // value it had, and the default; unique and check constraints. Not the trigger, whose
    // function is no part of the table.
    const owned = newDb('rst_table_owned');
    const withSequence = await restore(ids.tricky, ['--target-db', owned, '--create', '--schema', 'app', '--table', 'products']);
    expect(withSequence.code, withSequence.stderr).toBe(0);
    const sequenceState = "SELECT last_value::text AS last, is_called AS called, (SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'app.products'::regclass AND adnum = 1) AS def FROM app.products_id_seq";
    const [restoredSequence] = await cluster.query(owned, sequenceState);
    expect(restoredSequence).toEqual((await cluster.query(tricky, sequenceState))[0]);
    const checks = await cluster.query<{ name: string }>(owned, "SELECT conname AS name FROM pg_constraint WHERE conrelid = 'app.products'::regclass ORDER BY 1");
    expect(checks.map((c) => c.name)).toEqual(['price_non_negative', 'products_pkey', 'products_sku_key', 'stock_sane']);
  });

  it('--table of a partitioned table and of its partitions: attached again, every row, no warning', async () => {
    const target = newDb('rst_table_part_all');
    const run = await restore(ids.tricky, ['--target-db', target, '--create', '--schema', 'sales', '--table', 'measurements', '--table', 'measurements_2023', '--table', 'measurements_2024', '--table', 'measurements_default']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).not.toMatch(/no rows of its own/);
    const [restored] = await cluster.query<{ n: number; partitions: number }>(
      target,
      "SELECT (SELECT count(*)::int FROM sales.measurements) AS n, (SELECT count(*)::int FROM pg_inherits WHERE inhparent = 'sales.measurements'::regclass) AS partitions",
    );
    const [original] = await cluster.query<{ n: number }>(tricky, 'SELECT count(*)::int AS n FROM sales.measurements');
    expect(restored).toEqual({ n: original?.n, partitions: 3 });
  });

  it('--table of a table whose enum and domain are outside the selection: exit 1, the hint says where such a restore works (before pg_restore\'s own lines, when it has any); no database left', async () => {
    const target = newDb('rst_needs_type');
    const run = await restore(ids.tricky, ['--target-db', target, '--create', '--schema', 'app', '--table', 'customers', '--json']);
    expect(run.code, run.stderr).toBe(1);
    const { error } = parseJsonStdout(run.stdout) as { error: { message: string; hint: string } };
    expect(error.message).toMatch(/pg_restore failed .*type "app\.\w+" does not exist/); // app.email, a domain, or app.mood, an enum
    expect(error.hint).toMatch(/^a --table or --schema restore brings the selected tables and what belongs to them, not the types, functions, sequences, extensions or parent tables they use from outside the selection: restore into a database that has them \(--force\), select their schemas too, or restore the whole backup into a new database(\n|$)/);
    expect(await cluster.query('postgres', 'SELECT datname FROM pg_database WHERE datname LIKE $1', [`${target}%`])).toEqual([]);
  });

  it('--table of a table outside public brings its schema into a new database', async () => {
    const target = newDb('rst_table_schema');
    const run = await restore(ids.tricky, ['--target-db', target, '--create', '--table', 'events']);
    expect(run.code, run.stderr).toBe(0);
    const restored = await fingerprint(target);
    expect(restored.tables).toEqual({ 'app.events': source(tricky).tables['app.events'] });
  });
});

describe('restore: a selection that selects nothing', () => {
  it('--table/--schema naming nothing in the backup: exit 2 before anything changes (it used to replace the target with an empty database), --dry-run alike', async () => {
    const target = newDb('rst_sel_none');
    await loadChinook(cluster, target);
    const before = await fingerprint(target);
    for (const [selection, hint] of [
      [['--table', 'no_such_table'], /"backupctl show .*" lists the backup's tables/],
      [['--table', 'public.album'], /--schema public --table album/],
      [['--schema', 'no_such_schema'], /case-sensitive/],
      [['--schema', 'public', '--table', 'events'], /lists the backup's tables/], // events is in schema app
    ] as const) {
      for (const extra of [['--dry-run'], ['--yes']]) {
        const run = await restore(ids.chinook, ['--target-db', target, '--clean', '--drop-old', ...selection, ...extra]);
        expect(run.code, run.stdout + run.stderr).toBe(2);
        expect(run.stdout + run.stderr).toMatch(/nothing to restore for (table|schema) "/);
        expect(run.stdout + run.stderr).toMatch(hint);
      }
    }
    expect(await fingerprint(target)).toEqual(before);
    const staging = await cluster.query('postgres', 'SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [`${target}_`]);
    expect(staging).toEqual([]);
  });

  it('--table of a partitioned table: restored with a warning that its rows are in its partitions', async () => {
    const target = newDb('rst_sel_part');
    const run = await restore(ids.tricky, ['--target-db', target, '--create', '--table', 'measurements']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/warning: no rows restored \(the table itself is\): sales\.measurements: no rows of its own in the backup \(a partitioned table keeps its rows in its partitions/);
  });
});

describe('restore: CI flow', () => {
  it('create --tag pre-migration, a migration, then restore latest --tag pre-migration --clean --yes brings the old state back', async () => {
    const app = newDb('rst_ci');
    await loadChinook(cluster, app);
    const dir = await makeTempDir('rst-ci');
    dirs.push(dir);
    const where = path.join(dir, 'storage');
    const pre = await fingerprint(app);

    const created = await runCli(['create', '--tag', 'pre-migration', '--json', '--storage', where], { env: baseEnv(cluster.env(app)), cwd: dir });
    expect(created.code, created.stderr).toBe(0);
    const id = (parseJsonStdout(created.stdout) as { id: string }).id;
    // A later untagged backup must not be the one restored.
    await cluster.query(app, "INSERT INTO public.genre (genre_id, name) VALUES (9001, 'Between backups')");
    await createBackup(cluster, app, where, work);

    // The "migration".
    await cluster.query(
      app,
      `ALTER TABLE public.artist ADD COLUMN country text;
       UPDATE public.artist SET country = 'unknown';
       DROP TABLE public.playlist_track;
       DELETE FROM public.invoice_line WHERE invoice_line_id % 2 = 0;`,
    );
    expect((await fingerprint(app)).schema).not.toBe(pre.schema);

    const run = await runCli(['restore', 'latest', '--tag', 'pre-migration', '--target-db', app, '--clean', '--yes', '--json', '--storage', where], {
      env: baseEnv(cluster.env(app)),
      cwd: dir,
    });
    expect(run.code, run.stderr).toBe(0);
    const out = parseJsonStdout(run.stdout) as { id: string; mode: string; oldKeptAs: string };
    expect(out).toMatchObject({ id, mode: 'replace' });
    expect(await fingerprint(app)).toEqual(pre);
    // The migrated database is kept for a look, then dropped by the test.
    expect(out.oldKeptAs).toMatch(new RegExp(`^${app}_old_`));
    const [row] = await cluster.query<{ n: string }>(out.oldKeptAs, "SELECT count(*)::text AS n FROM information_schema.columns WHERE table_name = 'artist' AND column_name = 'country'");
    expect(row?.n).toBe('1');
  });
});

/** A database's encoding and locale, whatever the server's version (daticulocale 15-16, datlocale 17+). */
async function encodingOf(db: string): Promise<{ encoding: string; provider: string; collate: string; icu: string | null }> {
  const [row] = await cluster.query<{ encoding: string; db: Record<string, unknown> }>(
    'postgres',
    'SELECT pg_encoding_to_char(encoding) AS encoding, to_jsonb(d) AS db FROM pg_database d WHERE datname = $1',
    [db],
  );
  const d = row?.db ?? {};
  return {
    encoding: row?.encoding ?? '',
    provider: String(d.datlocprovider ?? 'c'),
    collate: String(d.datcollate),
    icu: ((d.datlocale ?? d.daticulocale) as string | null | undefined) ?? null,
  };
}

describe('restore: an existing target keeps its encoding and locale', () => {
  it('a LATIN1 backup restored into an empty UTF8 ICU target (createdb -E UTF8 -T template0): the target stays UTF8 and ICU, the text is right; the plan says so', async () => {
    const source = newDb('rst_latin1_src');
    await cluster.query('postgres', `CREATE DATABASE ${quoteIdent(source)} TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C'`);
    await cluster.query(source, "CREATE TABLE words (id int PRIMARY KEY, w text); INSERT INTO words VALUES (1, 'café'), (2, 'Straße'), (3, 'Ærø')");
    const dir = await makeTempDir('rst-latin1');
    dirs.push(dir);
    const where = path.join(dir, 'storage');
    const id = await createBackup(cluster, source, where, work);

    const target = newDb('rst_conv_utf8');
    await cluster.query('postgres', `CREATE DATABASE ${quoteIdent(target)} TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'sv-SE' LOCALE 'C'`);
    const before = await encodingOf(target);
    expect(before).toMatchObject({ encoding: 'UTF8', provider: 'i' });

    const dry = await restore(id, ['--target-db', target, '--dry-run', '--json'], { where });
    expect(dry.code, dry.stderr).toBe(0);
    const plan = (parseJsonStdout(dry.stdout) as { plan: { mode: string; databaseLocale: { from: string; encoding: string; differences: string[] }; steps: string[] } }).plan;
    expect(plan.mode).toBe('replace-empty');
    expect(plan.databaseLocale).toMatchObject({ from: 'target', encoding: 'UTF8' });
    expect(plan.databaseLocale.differences).toEqual(expect.arrayContaining(['encoding LATIN1 -> UTF8', expect.stringMatching(/^locale C -> icu sv-SE/)]));
    expect(plan.steps.join('\n')).toMatch(/with the target's encoding and locale \(encoding LATIN1 -> UTF8, .*as the target\)/);
    const human = await restore(id, ['--target-db', target, '--dry-run'], { where });
    expect(human.stdout).toMatch(/encoding LATIN1 -> UTF8/);

    const run = await restore(id, ['--target-db', target], { where });
    expect(run.code, run.stderr).toBe(0);
    expect(await encodingOf(target)).toEqual(before);
    expect(await cluster.query(target, 'SELECT w FROM words ORDER BY id')).toEqual([{ w: 'café' }, { w: 'Straße' }, { w: 'Ærø' }]);

    // A new database (--create) still gets the backup's.
    const fresh = newDb('rst_conv_new');
    const created = await restore(id, ['--target-db', fresh, '--create'], { where });
    expect(created.code, created.stderr).toBe(0);
    expect(await encodingOf(fresh)).toMatchObject({ encoding: 'LATIN1', provider: 'c', collate: 'C' });
  });

  it('a UTF8 backup with text LATIN1 cannot hold, restored into an empty LATIN1 target: fails, the target unchanged (still LATIN1, empty), no staging database', async () => {
    const source = newDb('rst_utf8_src');
    await cluster.query('postgres', `CREATE DATABASE ${quoteIdent(source)} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'`);
    await cluster.query(source, "CREATE TABLE words (id int PRIMARY KEY, w text); INSERT INTO words VALUES (1, 'Łódź ā')");
    const dir = await makeTempDir('rst-utf8');
    dirs.push(dir);
    const where = path.join(dir, 'storage');
    const id = await createBackup(cluster, source, where, work);

    const target = newDb('rst_conv_latin1');
    await cluster.query('postgres', `CREATE DATABASE ${quoteIdent(target)} TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C'`);
    const run = await restore(id, ['--target-db', target], { where });
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toMatch(/the backup's database was UTF8/);
    expect(await encodingOf(target)).toMatchObject({ encoding: 'LATIN1' });
    expect(await cluster.query(target, "SELECT count(*)::int AS n FROM pg_class WHERE relname = 'words'")).toEqual([{ n: 0 }]);
    expect(await relatives(target, 'restoring')).toEqual([]);
    expect(await relatives(target, 'old')).toEqual([]);
  });
});

describe('restore: the target\'s own database properties', () => {
  it('--clean of a database with a comment: no "not carried over" warning when the backup has a comment (it is applied); the warning stays when the backup has none', async () => {
    const source = newDb('rst_commented_src');
    await cluster.createDatabase(source);
    await cluster.query(source, 'CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)');
    await cluster.query('postgres', `COMMENT ON DATABASE ${quoteIdent(source)} IS 'from the backup'`);
    const dir = await makeTempDir('rst-comment');
    dirs.push(dir);
    const where = path.join(dir, 'storage');
    const id = await createBackup(cluster, source, where, work);
    const comment = async (db: string) =>
      (await cluster.query<{ c: string | null }>('postgres', "SELECT shobj_description(oid, 'pg_database') AS c FROM pg_database WHERE datname = $1", [db]))[0]?.c;

    const odd = newDb('rst_odd');
    await makeOccupied(odd);
    await cluster.query('postgres', `COMMENT ON DATABASE ${quoteIdent(odd)} IS 'the current one'`);
    const dry = await restore(id, ['--target-db', odd, '--clean', '--dry-run', '--json'], { where });
    expect((parseJsonStdout(dry.stdout) as { plan: { notCarriedOver: string | null } }).plan.notCarriedOver).toBeNull();
    const run = await restore(id, ['--target-db', odd, '--clean', '--yes'], { where });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).not.toMatch(/not carried over/);
    expect(await comment(odd)).toBe('from the backup');

    // The Chinook backup's database has no comment: the current one's is lost, and said so.
    expect(await comment(chinook)).toBeNull();
    const other = newDb('rst_odd_nocomment');
    await makeOccupied(other);
    await cluster.query('postgres', `COMMENT ON DATABASE ${quoteIdent(other)} IS 'the current one'`);
    const lost = await restore(ids.chinook, ['--target-db', other, '--clean', '--yes'], {});
    expect(lost.code, lost.stderr).toBe(0);
    expect(lost.stderr).toMatch(new RegExp(`not carried over by this restore: the current "${other}" has a comment, which a restore does not bring back`));
  });
});

describe('restore: tablespaces the server lacks', () => {
  it('a backup with a table in a tablespace the server no longer has: refused before any change (exit 2, --dry-run too) with the --no-tablespaces hint; --no-tablespaces restores it into the default tablespace', async () => {
    const location = await makeTempDir('rst-ts');
    dirs.push(location);
    if (process.getuid?.() === 0) await execa('chown', ['postgres', location]);
    const tablespace = uniqueName('rst_ts');
    const source = newDb('rst_ts_src');
    await cluster.query('postgres', `CREATE TABLESPACE ${quoteIdent(tablespace)} LOCATION '${location}'`);
    const dir = await makeTempDir('rst-ts-storage');
    dirs.push(dir);
    const where = path.join(dir, 'storage');
    let id: string;
    try {
      await cluster.createDatabase(source);
      await cluster.query(source, `CREATE TABLE t (x int PRIMARY KEY USING INDEX TABLESPACE ${quoteIdent(tablespace)}) TABLESPACE ${quoteIdent(tablespace)}; INSERT INTO t SELECT generate_series(1, 10)`);
      id = await createBackup(cluster, source, where, work, ['--no-globals']);
    } finally {
      await cluster.dropDatabase(source);
      await cluster.query('postgres', `DROP TABLESPACE ${quoteIdent(tablespace)}`);
    }

    const target = newDb('rst_ts_target');
    const dry = await restore(id, ['--target-db', target, '--create', '--dry-run', '--json'], { where });
    expect(dry.code, dry.stderr).toBe(2);
    const plan = (parseJsonStdout(dry.stdout) as { plan: { missing: { tablespaces: string[] }; refusal: string } }).plan;
    expect(plan.missing.tablespaces).toEqual([tablespace]);
    expect(plan.refusal).toContain(tablespace);
    const human = await restore(id, ['--target-db', target, '--create', '--dry-run'], { where });
    expect(human.code).toBe(2);
    expect(human.stdout).toMatch(new RegExp(`missing tablespaces\\s+${tablespace}`));

    const refused = await restore(id, ['--target-db', target, '--create'], { where });
    expect(refused.code).toBe(2);
    const { error, hint } = failureLines(refused.stderr);
    expect(error).toMatch(new RegExp(`tablespaces the target server lacks: ${tablespace}; nothing was changed`));
    expect(hint).toMatch(/--no-tablespaces/);
    expect(await databaseExists(target)).toBe(false);
    expect(await relatives(target, 'restoring')).toEqual([]);

    const done = await restore(id, ['--target-db', target, '--create', '--no-tablespaces'], { where });
    expect(done.code, done.stderr).toBe(0);
    expect(await cluster.query(target, "SELECT count(*)::int AS n, (SELECT reltablespace FROM pg_class WHERE relname = 't')::int AS ts FROM t")).toEqual([{ n: 10, ts: 0 }]);
  });
});

describe('restore: row-level security', () => {
  it('a table with FORCE ROW LEVEL SECURITY, restored by a role that is not a superuser with --create -O -x (it owns the restored table): every row, the table still FORCEs', async () => {
    const owner = uniqueName('rst_rls_owner');
    const restorer = uniqueName('rst_rls_restorer');
    const password = 'rls-pw';
    roles.push(owner, restorer);
    await cluster.createRole(owner, 'unused-password', 'NOLOGIN');
    await cluster.createRole(restorer, password, 'CREATEDB');
    const source = newDb('rst_rls_src');
    await cluster.createDatabase(source);
    await cluster.query(
      source,
      `CREATE TABLE public.secret (id int PRIMARY KEY, v text);
       INSERT INTO public.secret SELECT g, 'v' || g FROM generate_series(1, 12) g;
       ALTER TABLE public.secret OWNER TO ${quoteIdent(owner)};
       ALTER TABLE public.secret ENABLE ROW LEVEL SECURITY;
       ALTER TABLE public.secret FORCE ROW LEVEL SECURITY;
       CREATE POLICY nobody ON public.secret USING (false);`,
    );
    const dir = await makeTempDir('rst-rls');
    dirs.push(dir);
    const where = path.join(dir, 'storage');
    const id = await createBackup(cluster, source, where, work);

    const env = baseEnv({ ...cluster.env('postgres'), PGUSER: restorer, PGPASSWORD: password });
    const target = newDb('rst_rls_target');
    const run = await restore(id, ['--target-db', target, '--create', '-O', '-x'], { where, env });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/row counts match the backup/);
    expect(await cluster.query(target, 'SELECT count(*)::int AS n FROM public.secret')).toEqual([{ n: 12 }]);
    // The count's ALTER TABLE ... NO FORCE was rolled back.
    expect(await cluster.query(target, "SELECT relforcerowsecurity AS force, pg_get_userbyid(relowner) AS owner FROM pg_class WHERE relname = 'secret'")).toEqual([
      { force: true, owner: restorer },
    ]);
  });
});
