/**
 * `backupctl create` against the real test cluster: what is stored (files, modes,
 * checksums), what the sidecar says (counts, TOC, large objects, source, no secrets),
 * both archive formats, the dump filters, and a backup taken by a non-superuser role.
 */
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { list as tarList, extract as tarExtract } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sidecar } from '../../src/catalog/sidecar.js';
import {
  countMap,
  makeTempDir,
  modeOf,
  parseJsonStdout,
  readSidecar,
  removeDirs,
  sha256File,
  sourceTables,
  tableKey,
  tablesWithDataInToc,
  tocLines,
  type SourceTable,
  expectJsonError,
} from '../helpers/backups.js';
import { baseEnv, runCli, type CliOutcome } from '../helpers/cli.js';
import { quoteIdent } from '../helpers/cluster.js';
import { loadChinook, loadTricky } from '../helpers/fixtures.js';
import { connectProvided, uniqueName } from '../helpers/pg.js';

const cluster = connectProvided();
const ID = /^\d{8}T\d{6}Z-[0-9a-f]{6}$/;

const dirs: string[] = [];
const databases: string[] = [];
const roles: string[] = [];

const chinook = uniqueName('create_chinook');
const tricky = uniqueName('create_tricky');
/** Row counts of every table of each source, read once (the sources are never written to). */
const source = new Map<string, SourceTable[]>();

beforeAll(async () => {
  databases.push(chinook, tricky);
  await Promise.all([loadChinook(cluster, chinook), loadTricky(cluster, tricky)]);
  source.set(chinook, await sourceTables(cluster, chinook));
  source.set(tricky, await sourceTables(cluster, tricky));
});

afterAll(async () => {
  for (const db of databases) await cluster.dropDatabase(db);
  for (const role of roles) await cluster.query('postgres', `DROP ROLE IF EXISTS ${quoteIdent(role)}`);
  await removeDirs(dirs);
});

interface CreateRun extends CliOutcome {
  storage: string;
  work: string;
}

/** `backupctl create --json --storage <fresh dir> ...args`, connected through the libpq environment. */
async function create(db: string, args: string[] = [], env: Record<string, string> = cluster.env(db)): Promise<CreateRun> {
  const work = await makeTempDir('create');
  dirs.push(work);
  const storage = path.join(work, 'storage');
  const outcome = await runCli(['create', '--json', '--storage', storage, ...args], { env: baseEnv(env), cwd: work });
  return { ...outcome, storage, work };
}

/** The id printed by a successful `create --json`; stdout must be ONE JSON object and nothing else. */
function createdId(run: CliOutcome): string {
  expect(run.code, run.stderr).toBe(0);
  const out = parseJsonStdout(run.stdout);
  expect(out).toBeTypeOf('object');
  expect(Array.isArray(out)).toBe(false);
  const id = (out as { id?: unknown }).id;
  expect(id).toMatch(ID);
  return id as string;
}

async function largeObjectCount(db: string): Promise<number> {
  const [row] = await cluster.query<{ n: number }>(db, 'select count(*)::int as n from pg_largeobject_metadata');
  return row?.n ?? -1;
}

/**
 * Everything that must hold for any completed backup: files and modes, checksums,
 * the sidecar's TOC size, large objects, source, no password, and row counts equal to
 * count(*) of exactly the tables whose data the archive holds. Returns the sidecar and
 * the set of tables with data in the archive.
 */
async function checkStoredBackup(opts: {
  run: CreateRun;
  db: string;
  profile?: string;
  user?: string;
  format?: 'custom' | 'directory';
  globals?: boolean;
}): Promise<{ sidecar: Sidecar; raw: string; withData: Set<string>; artifactPath: string; tocTarget: string }> {
  const { run, db } = opts;
  const profile = opts.profile ?? db;
  const format = opts.format ?? 'custom';
  const id = createdId(run);
  const profileDir = path.join(run.storage, profile);

  // Directories 0700; exactly the files of this backup, no temporaries and no lock left behind;
  // every file 0600 (the backup's, and whatever else the run keeps there, e.g. its run log).
  expect(modeOf(await stat(run.storage))).toBe(0o700);
  expect(modeOf(await stat(profileDir))).toBe(0o700);
  // The default pipeline: pg_dump -Z0 through the zstd stage.
  const artifactFile = format === 'directory' ? `${id}.dump.tar.zst` : `${id}.dump.zst`;
  const expectedFiles = [artifactFile, `${id}.json`];
  if (opts.globals !== false) expectedFiles.push(`${id}.globals.sql.zst`);
  const present = await readdir(profileDir);
  expect(present.filter((name) => name.startsWith(id)).sort()).toEqual(expectedFiles.sort());
  expect(present.filter((name) => name.startsWith('.') || name === 'lock.json')).toEqual([]);
  for (const file of present) {
    const info = await stat(path.join(profileDir, file));
    expect(modeOf(info), file).toBe(info.isDirectory() ? 0o700 : 0o600);
  }

  const { raw, sidecar } = await readSidecar(run.storage, profile, id);
  expect(sidecar.id).toBe(id);
  expect(sidecar.profile).toBe(profile);
  expect(sidecar.status).toBe('completed');
  expect(raw).not.toContain(cluster.password);
  expect(sidecar.source).toEqual({ host: cluster.host, port: cluster.port, user: opts.user ?? cluster.user, database: db });
  expect(sidecar.database.name).toBe(db);
  expect(sidecar.database.encoding).toBe('UTF8');
  expect(sidecar.database.sizeBytes).toBeGreaterThan(0);
  expect(sidecar.database.largeObjects).toBe(await largeObjectCount(db));
  expect(sidecar.engine.serverVersionNum).toBeGreaterThanOrEqual(cluster.majorVersion * 10000);
  expect(sidecar.dump.format).toBe(format);

  // The artifact on disk is what the sidecar says.
  const artifactPath = path.join(profileDir, artifactFile);
  expect(sidecar.artifact.file).toBe(artifactFile);
  expect(sidecar.artifact.container).toBe(format === 'directory' ? 'tar' : 'pg-custom');
  expect(sidecar.artifact.bytes).toBe((await stat(artifactPath)).size);
  expect(sidecar.artifact.sha256).toBe(await sha256File(artifactPath));
  expect(sidecar.artifact.stages).toEqual([{ type: 'compression', codec: 'zstd', level: 3, threads: 2 }]);
  expect(sidecar.artifact.compression).toEqual({ codec: 'zstd', level: 3 });
  expect(sidecar.artifact.encryption).toBeNull();
  expect(sidecar.dump.compress).toBe(0);
  // What the zstd program gives back is pg_dump's archive, as the sidecar's plaintext digest says.
  const plainPath = path.join(run.work, `plain-${id}`);
  await execa('zstd', ['-q', '-d', '-c', artifactPath], { stdout: { file: plainPath } });
  expect(sidecar.artifact.plaintext).toEqual({ bytes: (await stat(plainPath)).size, sha256: await sha256File(plainPath) });
  if (sidecar.globals.status === 'included') {
    const globalsPath = path.join(profileDir, sidecar.globals.file);
    expect(sidecar.globals.file).toBe(`${id}.globals.sql.zst`);
    expect(sidecar.globals.bytes).toBe((await stat(globalsPath)).size);
    expect(sidecar.globals.sha256).toBe(await sha256File(globalsPath));
    const sql = String((await execa('zstd', ['-q', '-d', '-c', globalsPath])).stdout);
    expect(sql).toMatch(/CREATE ROLE/);
    expect(sidecar.globals.plaintext?.bytes).toBe(Buffer.byteLength(sql) + 1); // execa strips the final newline
  }

  // The --json summary agrees with the sidecar.
  const summary = parseJsonStdout(run.stdout) as Record<string, unknown>;
  expect(summary).toMatchObject({ id, profile, database: db, artifact: artifactFile, bytes: sidecar.artifact.bytes, sha256: sidecar.artifact.sha256 });

  // TOC entries: what pg_restore --list prints. For a tar, list the extracted directory.
  let tocTarget = plainPath;
  if (format === 'directory') {
    tocTarget = path.join(run.work, 'extracted');
    await mkdir(tocTarget);
    await tarExtract({ file: plainPath, cwd: tocTarget });
  }
  const lines = await tocLines(cluster, tocTarget);
  expect(lines.length).toBeGreaterThan(0);
  expect(sidecar.dump.tocEntries).toBe(lines.length);

  // Row counts: exactly the tables whose data is in the archive, each equal to count(*).
  const tables = source.get(db) ?? (await sourceTables(cluster, db));
  const withData = tablesWithDataInToc(lines, tables);
  const all = countMap(tables);
  const expected = new Map([...all].filter(([key]) => withData.has(key)));
  expect(new Map(sidecar.tables.map((t) => [tableKey(t), t.rows]))).toEqual(expected);
  // ... in a stable order (schema, then name).
  const keys = sidecar.tables.map((t) => [t.schema, t.name] as const);
  const sorted = [...keys].sort(([as, an], [bs, bn]) => (as === bs ? (an < bn ? -1 : an > bn ? 1 : 0) : as < bs ? -1 : 1));
  expect(keys).toEqual(sorted);
  return { sidecar, raw, withData, artifactPath: plainPath, tocTarget };
}

describe('create: custom format', () => {
  it('backs up Chinook: files, modes, sha256, TOC, exact counts of all 11 tables', async () => {
    const run = await create(chinook);
    const { sidecar } = await checkStoredBackup({ run, db: chinook });
    expect(sidecar.tables).toHaveLength(11);
    expect(sidecar.tables.find((t) => t.name === 'playlist_track')).toEqual({ schema: 'public', name: 'playlist_track', rows: 8715 });
    expect(sidecar.database.largeObjects).toBe(0);
    expect(sidecar.globals).toMatchObject({ status: 'included', rolePasswords: true });
    expect(sidecar.dump).toMatchObject({ jobs: 1, schemaOnly: false, dataOnly: false, tables: [], excludeTables: [] });
    expect(sidecar.tags).toEqual([]);
    expect(sidecar.note).toBeNull();
    expect(sidecar.verifications).toEqual([]);
    // Progress and log lines go to stderr, never to stdout.
    expect(run.stderr).toContain(sidecar.id);
  });

  it('backs up tricky.sql with umask 000: still 0600 files and 0700 directories; partitions, matviews, LOs', async () => {
    const previous = process.umask(0);
    let run: CreateRun;
    try {
      expect(process.umask()).toBe(0);
      run = await create(tricky);
    } finally {
      process.umask(previous);
    }
    const { sidecar, withData } = await checkStoredBackup({ run, db: tricky });
    const counts = new Map(sidecar.tables.map((t) => [tableKey(t), t.rows]));
    // Every table with rows to dump is in this full dump.
    expect(withData.size).toBe(source.get(tricky)?.length);
    expect(Object.fromEntries(counts)).toMatchObject({
      'app.events': 10_000,
      'app.cache': 3, // UNLOGGED
      'archive.empty_table': 0,
      'public.nocols': 2, // no columns
      'public.weird.name"quote': 2,
      'public.MixedCase': 2,
      'Ünïcødé Schema.Table With Spaces': 3,
      'sales.measurements_2023': 365,
      'sales.measurements_2024': 366,
      'sales.measurements_default': 10,
    });
    // Materialized views: the archive holds a REFRESH, not rows (populated or not).
    expect(counts.has('app.mv_mood_counts')).toBe(false);
    expect(counts.has('app.mv_unpopulated')).toBe(false);
    expect(counts.has('sales.measurements')).toBe(false); // the partitioned parent holds no rows itself
    expect(sidecar.database.largeObjects).toBe(4);
  });
});

describe('create: directory format (--jobs 2)', () => {
  it('stores one tar with toc.dat first, which pg_restore can list once extracted', async () => {
    const run = await create(tricky, ['--jobs', '2']);
    const { sidecar, artifactPath, tocTarget } = await checkStoredBackup({ run, db: tricky, format: 'directory' });
    expect(sidecar.dump).toMatchObject({ format: 'directory', jobs: 2 });
    const names: string[] = [];
    await tarList({ file: artifactPath, onReadEntry: (entry) => names.push(entry.path) });
    expect(names[0]).toBe('toc.dat');
    expect(names.length).toBeGreaterThan(1);
    expect(names.every((name) => !name.includes('/') && !name.startsWith('.'))).toBe(true);
    expect((await readdir(tocTarget)).sort()).toEqual([...names].sort());
    expect(sidecar.tables.find((t) => t.schema === 'app' && t.name === 'events')?.rows).toBe(10_000);
    expect(sidecar.tables.length).toBe(source.get(tricky)?.length);
  });

  it('refuses --format custom with --jobs 2 (exit 2), writing nothing', async () => {
    const run = await create(tricky, ['--format', 'custom', '--jobs', '2']);
    expect(run.code).toBe(2);
    expectJsonError(run, 2); // --json: the error is a JSON document on stdout too
    expect(run.stderr).toMatch(/--jobs needs the directory format/);
  });
});

describe('create: filters', () => {
  const keysOf = (sidecar: Sidecar) => sidecar.tables.map(tableKey);
  const allKeys = () => (source.get(tricky) ?? []).map(tableKey);

  it('--table: counts only the named tables', async () => {
    const run = await create(tricky, ['--table', 'app.events', '--table', 'public.nocols']);
    const { sidecar } = await checkStoredBackup({ run, db: tricky });
    expect(keysOf(sidecar)).toEqual(['app.events', 'public.nocols']);
    expect(sidecar.dump.tables).toEqual(['app.events', 'public.nocols']);
  });

  it('a --table or --schema that matches nothing is a usage error (exit 2) naming the pattern, with how patterns match; nothing is stored', async () => {
    for (const [args, reason] of [
      [['--table', 'no_such_table'], /--table 'no_such_table' selects no table in database/],
      // Quoted letters keep their case, as in pg_dump: "App" is not app.
      [['--table', 'app."Events"'], /--table 'app."Events"' selects no table/],
      [['--table', '"App".events'], /--table '"App".events' selects no table/],
      // A name without its schema is looked up on the search_path (app is not on it).
      [['--table', 'events'], /--table 'events' selects no table/],
      [['--schema', 'No Such Schema'], /--schema 'No Such Schema' selects no schema in database/],
    ] as const) {
      const run = await create(tricky, [...args]);
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toMatch(reason);
      expect(run.stderr).toMatch(/hint: patterns are pg_dump's/);
      expect(run.stderr).not.toMatch(/input file is too short/);
    }
    // What pg_dump's patterns do match still backs up (unquoted letters fold to lower case).
    for (const pattern of ['App.Events', 'APP.EVENT?']) {
      const matched = await create(tricky, ['--table', pattern]);
      expect(matched.code, matched.stderr).toBe(0);
    }
  });

  it('--exclude-table: counts everything but the excluded table', async () => {
    const run = await create(tricky, ['--exclude-table', 'app.events']);
    const { sidecar } = await checkStoredBackup({ run, db: tricky });
    expect(keysOf(sidecar).sort()).toEqual(allKeys().filter((k) => k !== 'app.events').sort());
    expect(sidecar.dump.excludeTables).toEqual(['app.events']);
  });

  it('--schema: counts only the tables of that schema (partitions included)', async () => {
    const run = await create(tricky, ['--schema', 'sales']);
    const { sidecar } = await checkStoredBackup({ run, db: tricky });
    expect(keysOf(sidecar)).toEqual(['sales.measurements_2023', 'sales.measurements_2024', 'sales.measurements_default']);
    expect(sidecar.dump.schemas).toEqual(['sales']);
  });

  it('--exclude-schema: no table of that schema is counted', async () => {
    const run = await create(tricky, ['--exclude-schema', 'app']);
    const { sidecar } = await checkStoredBackup({ run, db: tricky });
    expect(keysOf(sidecar).sort()).toEqual(allKeys().filter((k) => !k.startsWith('app.')).sort());
    expect(sidecar.dump.excludeSchemas).toEqual(['app']);
  });

  it('--schema-only: records no table counts', async () => {
    const run = await create(tricky, ['--schema-only']);
    const { sidecar, withData } = await checkStoredBackup({ run, db: tricky });
    expect(withData.size).toBe(0);
    expect(sidecar.tables).toEqual([]);
    expect(sidecar.dump.schemaOnly).toBe(true);
  });

  it('--data-only: works, and counts the tables whose data it holds', async () => {
    const run = await create(tricky, ['--data-only']);
    const { sidecar, withData } = await checkStoredBackup({ run, db: tricky });
    expect(sidecar.dump.dataOnly).toBe(true);
    expect(withData.has('app.events')).toBe(true);
    expect(sidecar.tables.find((t) => t.name === 'events')?.rows).toBe(10_000);
  });

  it("pg_dump's warnings are the backup's (circular foreign keys in a --data-only dump), one per message with its detail and hint", async () => {
    const db = uniqueName('create_cycle');
    databases.push(db);
    await cluster.createDatabase(db);
    await cluster.query(
      db,
      `CREATE TABLE a (id int PRIMARY KEY, b int); CREATE TABLE b (id int PRIMARY KEY, a int REFERENCES a);
       ALTER TABLE a ADD FOREIGN KEY (b) REFERENCES b DEFERRABLE`,
    );
    const run = await create(db, ['--data-only']);
    createdId(run);
    const { warnings } = parseJsonStdout(run.stdout) as { warnings: string[] };
    expect(warnings).toEqual([expect.stringMatching(/^pg_dump: there are circular foreign-key constraints among these tables: detail: a detail: b hint: /)]);
    expect(run.stderr).toMatch(/^warning: pg_dump: there are circular foreign-key constraints/m);
    // A full dump of the same database warns of nothing.
    const full = await create(db);
    expect((parseJsonStdout(full.stdout) as { warnings: string[] }).warnings).toEqual([]);
  });

  it('--schema-only with --data-only is a usage error', async () => {
    const run = await create(tricky, ['--schema-only', '--data-only']);
    expect(run.code).toBe(2);
    expectJsonError(run, 2); // --json: the error is a JSON document on stdout too
  });

  it('--tag (repeatable), --note and --no-globals are recorded', async () => {
    const run = await create(chinook, ['--tag', 'nightly', '--tag', 'pre-migration', '--note', 'before v2 schema', '--no-globals']);
    const { sidecar } = await checkStoredBackup({ run, db: chinook, globals: false });
    expect(sidecar.tags).toEqual(['nightly', 'pre-migration']);
    expect(sidecar.note).toBe('before v2 schema');
    expect(sidecar.globals).toEqual({ status: 'skipped', reason: expect.stringContaining('--no-globals') });
    expect((parseJsonStdout(run.stdout) as { tags: string[] }).tags).toEqual(['nightly', 'pre-migration']);
  });

  it('rejects an invalid tag with exit 2', async () => {
    const run = await create(chinook, ['--tag', '../x']);
    expect(run.code).toBe(2);
    expectJsonError(run, 2); // --json: the error is a JSON document on stdout too
  });
});

describe('create: as a non-superuser role', () => {
  it('succeeds; globals are dumped without role passwords', async () => {
    const role = uniqueName('bk_reader');
    const password = randomBytes(12).toString('hex');
    roles.push(role);
    await cluster.createRole(role, password);
    await cluster.query(chinook, `GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${quoteIdent(role)}`);
    await cluster.query(chinook, `GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO ${quoteIdent(role)}`);

    const env = { ...cluster.env(chinook), PGUSER: role, PGPASSWORD: password };
    const run = await create(chinook, [], env);
    const { sidecar, raw } = await checkStoredBackup({ run, db: chinook, user: role });
    expect(raw).not.toContain(password);
    expect(run.stderr).not.toContain(password);
    expect(sidecar.globals).toMatchObject({ status: 'included', rolePasswords: false });
    expect(sidecar.tables).toHaveLength(11);
    // What really happens: pg_dumpall is retried with --no-role-passwords, silently (no warning).
    expect((parseJsonStdout(run.stdout) as { warnings: string[] }).warnings).toEqual([]);
    expect(run.stderr).not.toMatch(/warning/i);
  });

  it('can back up without a table it may not read when that table is excluded; fails cleanly when not', async () => {
    const role = uniqueName('bk_partial');
    const password = randomBytes(12).toString('hex');
    roles.push(role);
    await cluster.createRole(role, password);
    await cluster.query(chinook, `GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${quoteIdent(role)}`);
    await cluster.query(chinook, `REVOKE SELECT ON public.invoice_line FROM ${quoteIdent(role)}`);
    const env = { ...cluster.env(chinook), PGUSER: role, PGPASSWORD: password };

    const excluded = await create(chinook, ['--exclude-table', 'public.invoice_line'], env);
    const { sidecar } = await checkStoredBackup({ run: excluded, db: chinook, user: role });
    expect(sidecar.tables.map((t) => t.name)).not.toContain('invoice_line');
    expect(sidecar.tables).toHaveLength(10);

    const only = await create(chinook, ['--table', 'public.artist'], env);
    const { sidecar: onlyArtist } = await checkStoredBackup({ run: only, db: chinook, user: role });
    expect(onlyArtist.tables).toEqual([{ schema: 'public', name: 'artist', rows: 275 }]);

    const denied = await create(chinook, [], env);
    expect(denied.code).toBe(1);
    expectJsonError(denied, 1); // --json: the error is a JSON document on stdout too
    expect(denied.stderr).toMatch(/permission denied/);
    expect(denied.stderr).not.toContain(password);
    // Nothing of the failed backup is left behind: no artifact, no sidecar, no temporary, no lock.
    const left = await readdir(path.join(denied.storage, chinook)).catch(() => [] as string[]);
    expect(left.filter((name) => ID.test(name.split('.')[0] ?? '') || name.startsWith('.') || name === 'lock.json')).toEqual([]);
  });

  it('sequences it may not read: refused before the dump naming them as sequences, with a hint for sequences; a selection that reaches one fails with it too; --schema-only needs no sequence', async () => {
    const db = uniqueName('create_seqs');
    databases.push(db);
    await cluster.createDatabase(db);
    const role = uniqueName('bk_seq');
    const password = randomBytes(12).toString('hex');
    roles.push(role);
    await cluster.createRole(role, password);
    await cluster.query(db, `CREATE TABLE t (id serial, x int); INSERT INTO t (x) VALUES (1), (2); CREATE SEQUENCE lone_seq;
      GRANT SELECT ON t TO ${quoteIdent(role)}`);
    const env = { ...cluster.env(db), PGUSER: role, PGPASSWORD: password };

    const denied = await create(db, [], env);
    expect(denied.code, denied.stderr).toBe(1);
    expect(denied.stderr).toContain('cannot read 2 sequence(s) pg_dump would dump: sequence public.lone_seq, sequence public.t_id_seq');
    expect(denied.stderr).toMatch(/hint: grant the backup role SELECT on them \(GRANT SELECT ON SEQUENCE\)/);
    expect(denied.stderr).not.toMatch(/every table/);

    // A --table selection is pg_dump's to check: its failure's hint names sequences too.
    const selected = await create(db, ['--table', 'public.t'], env);
    expect(selected.code, selected.stderr).toBe(1);
    expect(selected.stderr).toMatch(/permission denied for sequence t_id_seq/);
    expect(selected.stderr).toMatch(/hint: grant the backup role SELECT on every table and sequence it dumps/);

    const schemaOnly = await create(db, ['--schema-only'], env);
    expect(schemaOnly.code, schemaOnly.stderr).toBe(0);

    await cluster.query(db, `GRANT SELECT ON SEQUENCE t_id_seq TO ${quoteIdent(role)}`);
    const excluded = await create(db, ['--exclude-table', 'public.lone_seq'], env);
    const { sidecar } = await checkStoredBackup({ run: excluded, db, user: role });
    expect(sidecar.tables).toEqual([{ schema: 'public', name: 't', rows: 2 }]);
  });
});

describe('create: config file with two profiles', () => {
  /** A temp dir holding backupctl.config.json (profiles "app" -> Chinook, "billing" -> tricky) and password files. */
  async function configDir(options: { billingPassword?: string } = {}): Promise<string> {
    const dir = await makeTempDir('config');
    dirs.push(dir);
    await mkdir(path.join(dir, 'secrets'), { mode: 0o700 });
    await writeFile(path.join(dir, 'secrets', 'app.pw'), `${cluster.password}\n`, { mode: 0o600 });
    await writeFile(path.join(dir, 'secrets', 'billing.pw'), `${options.billingPassword ?? cluster.password}\n`, { mode: 0o600 });
    const connection = { host: cluster.host, port: cluster.port, user: cluster.user };
    const config = {
      storage: './default-backups',
      profiles: {
        app: { ...connection, database: chinook, passwordFile: 'secrets/app.pw', storage: './app-backups', tags: ['app'] },
        billing: { ...connection, database: tricky, passwordFile: 'secrets/billing.pw', storage: './billing-backups', tags: ['billing'], globals: false },
      },
    };
    await writeFile(path.join(dir, 'backupctl.config.json'), JSON.stringify(config, null, 2));
    return dir;
  }

  it('create --profile billing uses that profile\'s database, storage and passwordFile', async () => {
    const dir = await configDir();
    const run = await runCli(['create', '--profile', 'billing', '--json', '--tag', 'manual'], { env: baseEnv(), cwd: dir });
    const id = createdId(run);
    const storage = path.join(dir, 'billing-backups');
    const { sidecar, raw } = await readSidecar(storage, 'billing', id);
    expect(sidecar.profile).toBe('billing');
    expect(sidecar.source).toEqual({ host: cluster.host, port: cluster.port, user: cluster.user, database: tricky });
    expect(sidecar.tags).toEqual(['billing', 'manual']);
    expect(sidecar.globals.status).toBe('skipped');
    expect(raw).not.toContain(cluster.password);
    expect(modeOf(await stat(storage))).toBe(0o700);
    // Nothing went to the other profile's storage, nor to the top-level one.
    await expect(stat(path.join(dir, 'app-backups'))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(stat(path.join(dir, 'default-backups'))).rejects.toMatchObject({ code: 'ENOENT' });

    // list/show with the same config find it through the profile's storage.
    const listed = await runCli(['list', '--profile', 'billing', '--json'], { env: baseEnv(), cwd: dir });
    expect((parseJsonStdout(listed.stdout) as Array<{ id: string }>).map((b) => b.id)).toEqual([id]);
    const shown = await runCli(['show', 'latest', '--profile', 'billing', '--json'], { env: baseEnv(), cwd: dir });
    expect(parseJsonStdout(shown.stdout)).toEqual({ ...(JSON.parse(raw) as object), problems: [] });
  });

  it('BACKUPCTL_PROFILE chooses the profile too', async () => {
    const dir = await configDir();
    const run = await runCli(['create', '--json', '--no-globals'], { env: baseEnv({ BACKUPCTL_PROFILE: 'app' }), cwd: dir });
    const id = createdId(run);
    const { sidecar } = await readSidecar(path.join(dir, 'app-backups'), 'app', id);
    expect(sidecar.source.database).toBe(chinook);
    expect(sidecar.tables).toHaveLength(11);
  });

  it('several profiles and none chosen is a usage error naming them', async () => {
    const dir = await configDir();
    const run = await runCli(['create', '--json'], { env: baseEnv(), cwd: dir });
    expect(run.code).toBe(2);
    expectJsonError(run, 2); // --json: the error is a JSON document on stdout too
    expect(run.stderr).toContain('app, billing');
    const unknown = await runCli(['create', '--profile', 'nope'], { env: baseEnv(), cwd: dir });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('app, billing');
  });

  it('a wrong password in passwordFile is exit 2, and the password is not printed', async () => {
    const wrong = `wrong-${randomBytes(8).toString('hex')}`;
    const dir = await configDir({ billingPassword: wrong });
    const run = await runCli(['create', '--profile', 'billing'], { env: baseEnv(), cwd: dir });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/password authentication failed/);
    expect(run.stderr).not.toContain(wrong);
    expect(run.stderr).toContain('passwordFile');
  });

  it('--db-url with a password is refused (exit 2) without printing the password', async () => {
    const dir = await configDir();
    for (const env of [baseEnv(), baseEnv(cluster.env(chinook))]) {
      for (const url of [cluster.url(chinook), `postgres://${cluster.host}:${cluster.port}/${chinook}?user=postgres&password=${cluster.password}`]) {
        const run = await runCli(['create', '--profile', 'app', '--db-url', url], { env, cwd: dir });
        expect(run.code).toBe(2);
        expect(run.stdout).toBe('');
        expect(run.stderr).toMatch(/connection URL on the command line must not contain a password/);
        expect(run.stderr).not.toContain(cluster.password);
        const verbose = await runCli(['create', '--verbose', '--db-url', url], { env, cwd: dir });
        expect(verbose.code).toBe(2);
        expect(verbose.stderr).not.toContain(cluster.password);
      }
    }
    await expect(stat(path.join(dir, 'app-backups'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('--db-url without a password works, the password coming from PGPASSWORD', async () => {
    const work = await makeTempDir('dburl');
    dirs.push(work);
    const url = `postgres://${cluster.user}@${cluster.host}:${cluster.port}/${chinook}`;
    const run = await runCli(['create', '--json', '--no-globals', '--db-url', url, '--storage', path.join(work, 's')], {
      env: baseEnv({ PGPASSWORD: cluster.password }),
      cwd: work,
    });
    const id = createdId(run);
    const { sidecar, raw } = await readSidecar(path.join(work, 's'), chinook, id);
    expect(sidecar.source.database).toBe(chinook);
    expect(raw).not.toContain(cluster.password);
  });
});
