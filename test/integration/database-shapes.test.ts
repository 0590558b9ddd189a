/**
 * Databases as operators have them, beyond the samples: settings and ownership that
 * pg_dump and pg_restore handle themselves and backupctl's own sessions must too.
 * - the `public` schema owned by another role: its archive entry only sets the owner
 *   (no CREATE SCHEMA), so the new database's `public` must stay: verify passes and
 *   restore brings the owner back;
 * - a database-level statement_timeout (pg_dump turns it off in its session): the row
 *   counts of create and verify are not cancelled by it;
 * - FORCE ROW LEVEL SECURITY, verified by the table owner without BYPASSRLS: the counts
 *   run with row_security off, never a smaller count read as data loss; the verifying role
 *   owns the throwaway database's table, which is counted with FORCE off in a transaction
 *   that is rolled back: verified;
 * - a logical-replication subscription (restored disabled, never connected): the verify
 *   throwaway database holding it is still dropped, and nothing is left behind; restore
 *   --clean --drop-old over a database holding one (DROP DATABASE refuses it) says the old
 *   database is kept, with its rollback and a drop command that detaches the subscription
 *   first (it used to report nothing kept);
 * - a LATIN1 database, a libc locale other than the server's default, an ICU database:
 *   the sidecar records the locale, verify's throwaway and restore's staging database are
 *   created with it (a LATIN1 archive could not be restored into the server's UTF-8
 *   default at all; an ICU database came back sorting by another collation); a sidecar
 *   from before the locale was recorded falls back to the C locale, with a warning; a
 *   LATIN1 database whose name and owner are not ASCII: the sidecar records them as they
 *   are (current_database() sends them converted as if LATIN1), and restore targets it;
 * - a target with settings of its own (ALTER DATABASE ... SET, REVOKE CONNECT, a connection
 *   limit, a comment), which pg_restore brings back only when it creates the database
 *   itself: restore --clean says so (plan and warning) and keeps the old database, even an
 *   empty one, so that nothing of them is lost unannounced;
 * - large objects: the sidecar records how many the archive holds (none in a `--table`
 *   dump, though the database has some), and verify and restore compare that number with
 *   the restored database's: an archive that lost them is FAILED, exit 3;
 * - a SQL_ASCII database whose schema and table names hold bytes that are not UTF-8 (the
 *   server refuses to send them as UTF-8 text): create counts those tables by OID, verify
 *   and restore pass, and the restored names keep their bytes;
 * - a database without a `public` schema (pg_dump leaves no trace of it, and a new database
 *   has one): the sidecar records it, and restore --create does not bring one back;
 * - a stale materialized view (its table changed since the last REFRESH): the archive holds
 *   a REFRESH, not its rows, so its count is neither recorded nor compared (it used to be a
 *   false FAILED verdict, and a refused restore); a sidecar from before that still verifies;
 * - a --table backup whose table uses a type it does not hold: it cannot restore on its
 *   own, which is no verdict on it (NOT VERIFIED, exit 1, not recorded, never FAILED);
 *   create warns of that, also for a view or materialized view reading a table left out,
 *   a foreign table's server and a table access method (no --schema dump holds these);
 * - an --exclude-schema backup holds every cast the database made (casts are in no schema),
 *   also one whose type and function it left out: create names it, verify says NOT VERIFIED;
 * - a --data-only backup: verified at level archive (there is no schema to restore into),
 *   refused by restore into a new database, and loaded with --force with the target's
 *   triggers off (an audit trigger used to log every row a second time);
 * - a table in a tablespace the verify server lacks: verify restores without tablespaces;
 * - a partitioned table with a row trigger (an audit trigger): a parallel restore (verify
 *   --jobs 2, restore -j 2) loads all data before any post-data item, so the trigger, which
 *   pg_restore may otherwise create before a partition's COPY, never fires on it (it was a
 *   false FAILED verdict);
 * - a table hash-partitioned on an enum: pg_dump loads it through the root, and the new
 *   database's enum OIDs route the rows into other partitions, so its partitions are
 *   compared as one total (they were a false FAILED verdict, and a refused restore).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackup, makeTempDir, readSidecar, removeDirs } from '../helpers/backups.js';
import { baseEnv, runCli } from '../helpers/cli.js';
import { quoteIdent } from '../helpers/cluster.js';
import { connectProvided, uniqueName } from '../helpers/pg.js';

const cluster = connectProvided();
const dirs: string[] = [];
const databases: string[] = [];
const roles: string[] = [];
let work: string;
let storage: string;

function newDb(prefix: string): string {
  const name = uniqueName(prefix);
  databases.push(name);
  return name;
}

/** verify (level restore) passes with --jobs 1 and with --jobs 2. */
async function verifiesWithJobs(id: string, db: string): Promise<void> {
  for (const jobs of ['1', '2']) {
    const verified = await cli(['verify', id, '--profile', db, '--jobs', jobs]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  }
}

/** restore --create of the backup into a new database: its name. */
async function restoredAsNew(id: string, db: string, prefix: string): Promise<string> {
  const target = newDb(prefix);
  const restored = await cli(['restore', id, '--profile', db, '--target-db', target, '--create', '--yes']);
  expect(restored.code, restored.stderr).toBe(0);
  return target;
}

/** A new database (dropped after the file), empty but for what a new one has. */
async function databaseWith(prefix: string): Promise<string> {
  const db = newDb(prefix);
  await cluster.createDatabase(db);
  return db;
}

function newRole(prefix: string): string {
  const name = uniqueName(prefix);
  roles.push(name);
  return name;
}

function cli(argv: string[], env: Record<string, string | undefined> = baseEnv(cluster.env('postgres'))) {
  return runCli([...argv, '--storage', storage], { env, cwd: work });
}

beforeAll(async () => {
  work = await makeTempDir('shapes');
  dirs.push(work);
  storage = `${work}/backups`;
});

afterAll(async () => {
  const all = await cluster.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database');
  for (const { datname } of all) {
    if (databases.some((db) => datname === db || datname.startsWith(`${db}_restoring_`) || datname.startsWith(`${db}_old_`))) await cluster.dropDatabase(datname);
  }
  for (const role of roles) await cluster.query('postgres', `DROP ROLE IF EXISTS ${quoteIdent(role)}`);
  await removeDirs(dirs);
});

describe('database shapes', () => {
  it('a public schema owned by another role: verify passes, restore keeps the schema and its owner', async () => {
    const owner = newRole('shp_owner');
    await cluster.createRole(owner, 'unused-password', 'NOLOGIN');
    const db = await databaseWith('shp_pubowner');
    await cluster.query(db, `ALTER SCHEMA public OWNER TO ${quoteIdent(owner)}; CREATE TABLE public.t (x int); INSERT INTO public.t SELECT generate_series(1, 50)`);
    const id = await createBackup(cluster, db, storage, work, ['--profile', db]);

    await verifiesWithJobs(id, db);
    const target = await restoredAsNew(id, db, 'shp_pubowner_r');
    const [row] = await cluster.query<{ owner: string; rows: string }>(
      target,
      "SELECT nspowner::regrole::text AS owner, (SELECT count(*) FROM public.t)::text AS rows FROM pg_namespace WHERE nspname = 'public'",
    );
    expect(row).toEqual({ owner, rows: '50' });
  });

  it('restore --create gives the new database the backup\'s database owner when that role exists (it owns public since PostgreSQL 15); --no-owner, or a missing role, leaves it to the restoring role', async () => {
    const owner = newRole('shp_dbowner');
    await cluster.createRole(owner, 'dbo-pw', 'LOGIN');
    const db = await databaseWith('shp_dbowner');
    await cluster.query('postgres', `ALTER DATABASE ${quoteIdent(db)} OWNER TO ${quoteIdent(owner)}`);
    await cluster.query(db, 'CREATE TABLE public.t (x int); INSERT INTO public.t VALUES (1)');
    const id = await createBackup(cluster, db, storage, work, ['--profile', db]);
    expect((await readSidecar(storage, db, id)).sidecar.database).toMatchObject({ owner });
    const ownerOf = async (target: string) =>
      (await cluster.query<{ owner: string }>('postgres', 'SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1', [target]))[0]?.owner;

    const target = await restoredAsNew(id, db, 'shp_dbowner_r');
    expect(await ownerOf(target)).toBe(owner);
    // The owner may create tables in public, as in the source.
    const asOwner = baseEnv({ ...cluster.env(target), PGUSER: owner, PGPASSWORD: 'dbo-pw' });
    await execa(cluster.bin('psql'), ['-X', '-v', 'ON_ERROR_STOP=1', '-qc', 'CREATE TABLE public.mine (y int)'], { env: asOwner as Record<string, string>, extendEnv: false });

    const plain = newDb('shp_dbowner_n');
    const noOwner = await cli(['restore', id, '--profile', db, '--target-db', plain, '--create', '--yes', '--no-owner']);
    expect(noOwner.code, noOwner.stderr).toBe(0);
    expect(await ownerOf(plain)).toBe(cluster.user);

    // A sidecar whose owner role is not on this server: the plan says so; the restoring role owns it.
    const file = `${storage}/${db}/${id}.json`;
    const edited = JSON.parse(await readFile(file, 'utf8')) as { database: { owner: string } };
    edited.database.owner = 'no_such_role_here';
    await writeFile(file, `${JSON.stringify(edited, null, 2)}\n`);
    const other = newDb('shp_dbowner_m');
    const missing = await cli(['restore', id, '--profile', db, '--target-db', other, '--create', '--yes']);
    expect(missing.code, missing.stderr).toBe(0);
    expect(missing.stdout + missing.stderr).toMatch(/database owner no_such_role_here does not exist/);
    expect(await ownerOf(other)).toBe(cluster.user);
  });

  it('a database-level statement_timeout cancels neither the row counts of create nor those of verify', async () => {
    const db = await databaseWith('shp_timeout');
    // 300,000 rows take far longer than 1 ms to count.
    await cluster.query(db, 'CREATE TABLE big (id int); INSERT INTO big SELECT generate_series(1, 300000)');
    await cluster.query('postgres', `ALTER DATABASE ${quoteIdent(db)} SET statement_timeout = '1ms'`);
    const id = await createBackup(cluster, db, storage, work, ['--profile', db]);
    const { sidecar } = await readSidecar(storage, db, id);
    expect(sidecar.tables).toEqual([{ schema: 'public', name: 'big', rows: 300000 }]);
    const verified = await cli(['verify', id, '--profile', db]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  });

  it('FORCE ROW LEVEL SECURITY verified by the owner without BYPASSRLS: verified (the throwaway database\'s table is counted with FORCE off in a transaction rolled back); a superuser verifies it', async () => {
    const owner = newRole('shp_rls');
    await cluster.createRole(owner, 'rls-pw', 'CREATEDB');
    const db = await databaseWith('shp_rls');
    await cluster.query(
      db,
      `ALTER DATABASE ${quoteIdent(db)} OWNER TO ${quoteIdent(owner)};
       CREATE TABLE public.s (id int, who text);
       INSERT INTO public.s SELECT g, 'x' FROM generate_series(1, 300) g;
       ALTER TABLE public.s OWNER TO ${quoteIdent(owner)};
       ALTER TABLE public.s ENABLE ROW LEVEL SECURITY;
       ALTER TABLE public.s FORCE ROW LEVEL SECURITY;
       CREATE POLICY p ON public.s USING (who = current_user)`,
    );
    const id = await createBackup(cluster, db, storage, work, ['--profile', db]);
    const { sidecar } = await readSidecar(storage, db, id);
    expect(sidecar.tables).toEqual([{ schema: 'public', name: 's', rows: 300 }]);

    const asOwner = baseEnv({ ...cluster.env('postgres'), PGUSER: owner, PGPASSWORD: 'rls-pw' });
    // It owns the restored table (verify restores --no-owner); this was NOT VERIFIED, with a
    // hint about pg_dump, before.
    const byOwner = await cli(['verify', id, '--profile', db], asOwner);
    expect(byOwner.code, byOwner.stdout + byOwner.stderr).toBe(0);
    expect(byOwner.stdout).not.toMatch(/NOT VERIFIED/);
    expect((await readSidecar(storage, db, id)).sidecar.verifications).toHaveLength(1);

    const verified = await cli(['verify', id, '--profile', db]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  });

  it('a subscription: verify passes and drops its throwaway database, the publisher untouched', async () => {
    const db = await databaseWith('shp_sub');
    const env = cluster.env('postgres');
    const conninfo = `host=${env.PGHOST} port=${env.PGPORT} dbname=postgres user=${env.PGUSER}`;
    await cluster.query(db, 'CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a VALUES (1)');
    const sub = uniqueName('shp_s');
    await cluster.query(db, `CREATE SUBSCRIPTION ${quoteIdent(sub)} CONNECTION '${conninfo}' PUBLICATION nopub WITH (connect = false)`);
    try {
      const id = await createBackup(cluster, db, storage, work, ['--profile', db]);
      const verified = await cli(['verify', id, '--profile', db]);
      expect(verified.code, verified.stdout + verified.stderr).toBe(0);
      expect(verified.stderr).not.toMatch(/could not drop/);
      const throwaway = `backupctl_verify_${id.toLowerCase().replace('-', '_')}_`;
      const left = await cluster.query('postgres', 'SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [throwaway]);
      expect(left).toEqual([]);
      // Only the source's own subscription is left on the server.
      const subs = await cluster.query<{ subname: string }>('postgres', 'SELECT subname FROM pg_subscription');
      expect(subs.map((row) => row.subname)).toEqual([sub]);
    } finally {
      await cluster.query(db, `ALTER SUBSCRIPTION ${quoteIdent(sub)} DISABLE; ALTER SUBSCRIPTION ${quoteIdent(sub)} SET (slot_name = NONE); DROP SUBSCRIPTION ${quoteIdent(sub)}`);
    }
  });

  it('restore --clean --drop-old over a database holding a subscription: the old one, which DROP DATABASE refuses, is said to be kept, with a drop command that works', async () => {
    const db = await databaseWith('shp_subdrop');
    const env = cluster.env('postgres');
    const conninfo = `host=${env.PGHOST} port=${env.PGPORT} dbname=postgres user=${env.PGUSER}`;
    await cluster.query(db, 'CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a VALUES (1), (2)');
    const sub = uniqueName('shp_sd');
    await cluster.query(db, `CREATE SUBSCRIPTION ${quoteIdent(sub)} CONNECTION '${conninfo}' PUBLICATION nopub WITH (connect = false)`);
    const target = newDb('shp_subdrop_t');
    const detach = async (database: string) =>
      cluster.query(database, `ALTER SUBSCRIPTION ${quoteIdent(sub)} DISABLE; ALTER SUBSCRIPTION ${quoteIdent(sub)} SET (slot_name = NONE); DROP SUBSCRIPTION ${quoteIdent(sub)}`);
    try {
      const id = await createBackup(cluster, db, storage, work, ['--profile', db]);
      const created = await cli(['restore', id, '--profile', db, '--target-db', target, '--create', '--yes']);
      expect(created.code, created.stderr).toBe(0);
      // The target now holds the restored subscription: --drop-old cannot drop it once replaced.
      const replaced = await cli(['restore', id, '--profile', db, '--target-db', target, '--clean', '--drop-old', '--yes', '--json']);
      expect(replaced.code, replaced.stderr).toBe(0);
      const result = JSON.parse(replaced.stdout) as { oldKeptAs: string | null; rollback: string | null; dropOld: string | null };
      const left = await cluster.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [`${target}_old_`]);
      expect(left).toHaveLength(1);
      expect(result.oldKeptAs).toBe(left[0]?.datname);
      expect(result.rollback).toContain('RENAME TO');
      expect(replaced.stderr).toMatch(new RegExp(`could not be dropped and is kept: .*it holds subscriptions \\(${sub}\\)`));
      // The command given drops it.
      await execa('sh', ['-c', result.dropOld as string], { env: { ...process.env, ...env } });
      expect(await cluster.query('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [result.oldKeptAs])).toEqual([]);
    } finally {
      const kept = await cluster.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [`${target}_old_`]);
      for (const database of [db, target, ...kept.map((row) => row.datname)]) await detach(database).catch(() => undefined);
    }
  });

  it('a partitioned table with an audit trigger: verify --jobs 2 passes and restore -j 2 loads every partition before the trigger exists (it used to fire on their COPY: FAILED)', async () => {
    const db = await databaseWith('shp_trigpart');
    await cluster.query(
      db,
      `CREATE TABLE audit_log (id bigserial, t text);
       CREATE TABLE m (id int, v text) PARTITION BY RANGE (id);
       CREATE TABLE m_0 PARTITION OF m FOR VALUES FROM (0) TO (2000); CREATE TABLE m_1 PARTITION OF m FOR VALUES FROM (2000) TO (4000);
       CREATE TABLE m_2 PARTITION OF m FOR VALUES FROM (4000) TO (6000); CREATE TABLE m_3 PARTITION OF m FOR VALUES FROM (6000) TO (8000);
       INSERT INTO m SELECT g, repeat('x', 100) FROM generate_series(0, 7999) g;
       CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO audit_log (t) VALUES (NEW.id::text); RETURN NEW; END$$;
       CREATE TRIGGER m_audit BEFORE INSERT ON m FOR EACH ROW EXECUTE FUNCTION audit()`,
    );
    const id = await createBackup(cluster, db, storage, work, ['--profile', db]);
    const verified = await cli(['verify', id, '--profile', db, '--jobs', '2']);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    const target = newDb('shp_trigpart_r');
    const restored = await cli(['restore', id, '--profile', db, '--target-db', target, '--create', '--yes', '--jobs', '2']);
    expect(restored.code, restored.stderr).toBe(0);
    const counts = 'SELECT (SELECT count(*) FROM m)::int AS m, (SELECT count(*) FROM audit_log)::int AS audit, (SELECT count(*) FROM pg_trigger WHERE tgname = $$m_audit$$)::int AS triggers';
    expect(await cluster.query(target, counts)).toEqual([{ m: 8000, audit: 0, triggers: 5 }]);
  });

  it('a LATIN1 database: the locale is recorded, verify passes, restore --create brings back encoding, locale and bytes', async () => {
    const db = newDb('shp_latin1');
    await cluster.query('postgres', `CREATE DATABASE ${quoteIdent(db)} TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C'`);
    await cluster.query(db, "CREATE TABLE t (s text); INSERT INTO t VALUES ('café'), ('Ünïcödé'), ('plain')");
    const id = await createBackup(cluster, db, storage, work, ['--profile', db]);
    const { sidecar } = await readSidecar(storage, db, id);
    expect(sidecar.database).toMatchObject({ encoding: 'LATIN1', locale: { provider: 'libc', collate: 'C', ctype: 'C', locale: null } });
    for (const jobs of ['1', '2']) {
      const verified = await cli(['verify', id, '--profile', db, '--jobs', jobs]);
      expect(verified.code, verified.stdout + verified.stderr).toBe(0);
      expect(verified.stderr).not.toMatch(/C locale/);
    }
    const target = await restoredAsNew(id, db, 'shp_latin1_r');
    const [row] = await cluster.query<{ encoding: string; collate: string; bytes: string }>(
      target,
      "SELECT pg_encoding_to_char(encoding) AS encoding, datcollate AS collate, (SELECT string_agg(encode(convert_to(s, 'LATIN1'), 'hex'), ',' ORDER BY s) FROM t) AS bytes FROM pg_database WHERE datname = current_database()",
    );
    const [source] = await cluster.query<{ bytes: string }>(db, "SELECT string_agg(encode(convert_to(s, 'LATIN1'), 'hex'), ',' ORDER BY s) AS bytes FROM t");
    expect(row).toEqual({ encoding: 'LATIN1', collate: 'C', bytes: source?.bytes });
  });

  it('a LATIN1 database: a --table with a character outside ASCII is refused with a pattern that works (? for it, outside quotes); restore -t says why it cannot select one', async () => {
    const db = newDb('shp_latin1_t');
    await cluster.query('postgres', `CREATE DATABASE ${quoteIdent(db)} TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C'`);
    await cluster.query(db, 'CREATE TABLE "Tàble" (x int); INSERT INTO "Tàble" VALUES (1), (2); CREATE TABLE other (x int)');
    const refused = await runCli(['create', '--json', '--storage', storage, '--profile', db, '--table', '"Tàble"'], { env: baseEnv(cluster.env(db)), cwd: work });
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr).toMatch(/encoding is LATIN1/);
    expect(refused.stderr).toContain(`--table '"T"?"ble"'`);
    // The pattern the hint gives works.
    const id = await createBackup(cluster, db, storage, work, ['--profile', db, '--table', '"T"?"ble"']);
    const { sidecar } = await readSidecar(storage, db, id);
    expect(sidecar.tables).toEqual([{ schema: 'public', name: 'Tàble', rows: 2 }]);
    const whole = await createBackup(cluster, db, storage, work, ['--profile', db]);
    const selected = await cli(['restore', whole, '--profile', db, '--target-db', newDb('shp_latin1_t_r'), '--create', '--table', 'Tàble']);
    expect(selected.code).toBe(2);
    expect(selected.stderr).toMatch(/database is LATIN1: pg_restore matches names in that encoding/);
  });

  it('a LATIN1 database with a non-ASCII name and owner: the sidecar records the real names (not as converted from LATIN1), and restore targets the real database', async () => {
    // current_database() in a LATIN1 database sends the shared catalog's UTF-8 bytes as if
    // LATIN1: 'Lät db' came back as 'LÃ¤t db', and restore made a database of that name.
    const db = newDb('Lät db');
    const owner = newRole('rölle');
    await cluster.createRole(owner, 'unused-password', 'NOLOGIN');
    await cluster.query('postgres', `CREATE DATABASE ${quoteIdent(db)} TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C' OWNER ${quoteIdent(owner)}`);
    await cluster.query(db, "CREATE TABLE t (s text); INSERT INTO t VALUES ('café'), ('plain')");
    const profile = uniqueName('shp_latin1_name');
    const id = await createBackup(cluster, db, storage, work, ['--profile', profile]);
    const shown = await cli(['show', id, '--profile', profile, '--json']);
    expect(shown.code, shown.stderr).toBe(0);
    const sidecar = (JSON.parse(shown.stdout) as { sidecar?: { database: Record<string, unknown> }; database?: Record<string, unknown> });
    const database = sidecar.sidecar?.database ?? sidecar.database;
    expect(database).toMatchObject({ name: db, owner, encoding: 'LATIN1' });

    await cluster.query(db, "INSERT INTO t VALUES ('after the backup')");
    const restored = await cli(['restore', 'latest', '--profile', profile, '--clean', '--yes', '--json']);
    expect(restored.code, restored.stderr).toBe(0);
    const names = (await cluster.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database')).map((row) => row.datname);
    expect(names.filter((name) => name.includes('Ã'))).toEqual([]);
    const rows = await cluster.query<{ s: string }>(db, 'SELECT s FROM t ORDER BY s');
    expect(rows.map((row) => row.s)).toEqual(['café', 'plain']);
    const [after] = await cluster.query<{ owner: string }>('postgres', 'SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1', [db]);
    expect(after?.owner).toBe(owner);
  });

  it('a sidecar from before the locale was recorded: a LATIN1 backup still verifies, in a C-locale throwaway database, with a warning', async () => {
    const db = newDb('shp_latin1_old');
    await cluster.query('postgres', `CREATE DATABASE ${quoteIdent(db)} TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C'`);
    await cluster.query(db, "CREATE TABLE t (s text); INSERT INTO t VALUES ('café')");
    const id = await createBackup(cluster, db, storage, work, ['--profile', db]);
    const file = `${storage}/${db}/${id}.json`;
    const old = JSON.parse(await readFile(file, 'utf8')) as { database: Record<string, unknown> };
    delete old.database.locale;
    await writeFile(file, `${JSON.stringify(old, null, 2)}\n`);
    const verified = await cli(['verify', id, '--profile', db]);
    const server = await cluster.query<{ collate: string }>('postgres', "SELECT datcollate AS collate FROM pg_database WHERE datname = 'template0'");
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    // Created with the server's default locale when it fits LATIN1, with C (and a warning) when not.
    if (!/^(C|POSIX)$/.test(server[0]?.collate ?? '')) expect(verified.stderr).toMatch(/created with the C locale/);
  });

  it('a libc locale other than the server default, and an ICU database: restore --create keeps them', async () => {
    const libc = newDb('shp_locale_c');
    await cluster.query('postgres', `CREATE DATABASE ${quoteIdent(libc)} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'`);
    const icu = newDb('shp_icu');
    await cluster.query('postgres', `CREATE DATABASE ${quoteIdent(icu)} TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'sv-SE' LOCALE 'C'`);
    for (const db of [libc, icu]) {
      await cluster.query(db, "CREATE TABLE w (s text); INSERT INTO w VALUES ('z'), ('ä'), ('a'), ('ö'), ('o'), ('Z'), ('B')");
      const id = await createBackup(cluster, db, storage, work, ['--profile', db]);
      const target = newDb(`${db.slice(0, 12)}_r`);
      const restored = await cli(['restore', id, '--profile', db, '--target-db', target, '--create', '--yes']);
      expect(restored.code, restored.stderr).toBe(0);
      const describe = (name: string) =>
        cluster.query<{ provider: string; collate: string; icu: string | null; sorted: string }>(
          name,
          "SELECT datlocprovider::text AS provider, datcollate AS collate, daticulocale AS icu, (SELECT string_agg(s, ' ' ORDER BY s) FROM w) AS sorted FROM pg_database WHERE datname = current_database()",
        );
      expect(await describe(target)).toEqual(await describe(db));
    }
    // Swedish order puts ä and ö after z; C order puts upper case first.
    expect((await cluster.query<{ sorted: string }>(icu, "SELECT string_agg(s, ' ' ORDER BY s) AS sorted FROM w"))[0]?.sorted).toBe('a B o z Z ä ö');
  });

  it('restore --clean over a target with settings of its own: those of kinds the backup sets are carried over (the backup\'s take their place, no warning); the plan and a warning name the others, the old database keeps them', async () => {
    const db = await databaseWith('shp_dbset');
    await cluster.query(db, 'CREATE TABLE t (x int); INSERT INTO t VALUES (1)');
    const own = `ALTER DATABASE ${quoteIdent(db)} SET search_path = app, public; COMMENT ON DATABASE ${quoteIdent(db)} IS 'the app db'; REVOKE CONNECT, TEMPORARY ON DATABASE ${quoteIdent(db)} FROM PUBLIC; ALTER DATABASE ${quoteIdent(db)} CONNECTION LIMIT 50`;
    await cluster.query('postgres', own);
    const id = await createBackup(cluster, db, storage, work, ['--profile', db]);
    const settingsOf = (name: string) =>
      cluster.query<{ limit: number; acl: boolean; comment: string | null; settings: string }>(
        'postgres',
        `SELECT datconnlimit AS limit, datacl IS NOT NULL AS acl, shobj_description(d.oid, 'pg_database') AS comment,
                (SELECT count(*) FROM pg_db_role_setting s WHERE s.setdatabase = d.oid)::text AS settings
           FROM pg_database d WHERE datname = $1`,
        [name],
      );

    // The backup has every kind the target has: nothing is lost.
    const plan = await cli(['restore', id, '--profile', db, '--clean', '--dry-run']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).not.toMatch(/NOT carried over/);
    const replaced = await cli(['restore', id, '--profile', db, '--clean', '--yes']);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(replaced.stderr).not.toMatch(/not carried over/);
    const old = /The previous ".*" is kept as "(.*)"\./.exec(replaced.stdout)?.[1] as string;
    expect(old).toMatch(new RegExp(`^${db}_old_`));
    databases.push(old);
    expect(await settingsOf(db)).toEqual([{ limit: 50, acl: true, comment: 'the app db', settings: '1' }]);
    expect(await settingsOf(old)).toEqual([{ limit: 50, acl: true, comment: 'the app db', settings: '1' }]);

    // --no-acl leaves the backup's privileges out: the target's own are not carried over, and said so.
    const expected = /has privileges \(GRANT\/REVOKE \.\.\. ON DATABASE\), which a restore does not bring back/;
    const noAcl = await cli(['restore', id, '--profile', db, '--clean', '--no-acl', '--dry-run']);
    expect(noAcl.stdout).toMatch(expected);
    expect(noAcl.stdout).not.toMatch(/a comment, which/);

    // An empty target with a property the restore does not bring is kept too (it used to be dropped).
    const empty = newDb('shp_dbset_empty');
    await cluster.createDatabase(empty);
    await cluster.query('postgres', `REVOKE TEMPORARY ON DATABASE ${quoteIdent(empty)} FROM PUBLIC`);
    const overEmpty = await cli(['restore', id, '--profile', db, '--target-db', empty, '--clean', '--yes', '--no-acl']);
    expect(overEmpty.code, overEmpty.stderr).toBe(0);
    expect(overEmpty.stderr).toMatch(expected);
    const keptEmpty = /The previous ".*" is kept as "(.*)"\./.exec(overEmpty.stdout)?.[1] as string;
    expect(keptEmpty).toMatch(new RegExp(`^${empty}_old_`));
    expect((await settingsOf(keptEmpty))[0]?.acl).toBe(true);
  });

  it("restore --create gives the new database the backup's database settings, privileges, connection limit and comment (pg_restore gives them only to a database it creates); --no-acl leaves the privileges out", async () => {
    const db = await databaseWith('shp_dbprops');
    const app = newRole('shp_props_app');
    await cluster.query('postgres', `CREATE ROLE ${quoteIdent(app)}`);
    await cluster.query(db, 'CREATE TABLE t (id int); INSERT INTO t VALUES (1)');
    for (const statement of [
      `ALTER DATABASE ${quoteIdent(db)} SET search_path = app, public`,
      `ALTER DATABASE ${quoteIdent(db)} SET work_mem = '8MB'`,
      `ALTER ROLE ${quoteIdent(app)} IN DATABASE ${quoteIdent(db)} SET statement_timeout = '5s'`,
      `ALTER DATABASE ${quoteIdent(db)} CONNECTION LIMIT 9`,
      `REVOKE CONNECT ON DATABASE ${quoteIdent(db)} FROM PUBLIC`,
      `GRANT CONNECT ON DATABASE ${quoteIdent(db)} TO ${quoteIdent(app)}`,
      `COMMENT ON DATABASE ${quoteIdent(db)} IS 'it''s the\napp: DATABASE ${db} itself'`,
    ]) {
      await cluster.query('postgres', statement);
    }
    const id = await createBackup(cluster, db, storage, work, ['--profile', db]);
    const propertiesOf = async (name: string) => ({
      database: await cluster.query<{ limit: number; acl: string | null; comment: string | null }>(
        'postgres',
        `SELECT datconnlimit AS limit, datacl::text AS acl, shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1`,
        [name],
      ),
      settings: (
        await cluster.query<{ role: string | null; config: string[] }>(
          'postgres',
          `SELECT r.rolname AS role, s.setconfig AS config FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
             LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE d.datname = $1`,
          [name],
        )
      ).sort((a, b) => String(a.role).localeCompare(String(b.role))),
    });
    const source = await propertiesOf(db);
    expect(source.database[0]?.comment).toContain(`DATABASE ${db} itself`);

    const dry = await cli(['restore', id, '--profile', db, '--target-db', newDb('shp_dbprops_dry'), '--create', '--dry-run']);
    expect(dry.stdout).toMatch(/give ".*" the backup's database settings, privileges and comment/);
    const target = await restoredAsNew(id, db, 'shp_dbprops_r');
    const restored = await propertiesOf(target);
    expect(restored.settings).toEqual(source.settings);
    expect(restored.database[0]?.limit).toBe(9);
    expect(restored.database[0]?.comment).toBe(source.database[0]?.comment);
    expect(restored.database[0]?.acl).toContain(`${app}=c/`);
    expect(restored.database[0]?.acl).not.toMatch(/(^|[{,])=[A-Za-z]*c/); // CONNECT revoked from PUBLIC

    const noAcl = newDb('shp_dbprops_noacl');
    const withoutAcl = await cli(['restore', id, '--profile', db, '--target-db', noAcl, '--create', '--yes', '--no-acl']);
    expect(withoutAcl.code, withoutAcl.stderr).toBe(0);
    const bare = await propertiesOf(noAcl);
    expect(bare.settings).toEqual(source.settings);
    expect(bare.database[0]?.acl).toBeNull();
  });

  it('restore --create: a property the server refuses (a GRANT to a role dropped since) is a warning; the others are applied in the same transaction as the rename', async () => {
    const db = await databaseWith('shp_refused');
    const gone = newRole('shp_gone');
    await cluster.query('postgres', `CREATE ROLE ${quoteIdent(gone)}`);
    await cluster.query(db, 'CREATE TABLE t (id int); INSERT INTO t VALUES (1)');
    for (const statement of [
      `ALTER DATABASE ${quoteIdent(db)} SET work_mem = '6MB'`,
      `GRANT CONNECT ON DATABASE ${quoteIdent(db)} TO ${quoteIdent(gone)}`,
      `COMMENT ON DATABASE ${quoteIdent(db)} IS 'kept'`,
    ]) {
      await cluster.query('postgres', statement);
    }
    const id = await createBackup(cluster, db, storage, work, ['--profile', db]);
    await cluster.query('postgres', `DROP OWNED BY ${quoteIdent(gone)}; DROP ROLE ${quoteIdent(gone)}`);
    const target = newDb('shp_refused_r');
    const run = await cli(['restore', id, '--profile', db, '--target-db', target, '--create', '--yes']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(new RegExp(`^warning: not all of the backup's database settings, privileges and comment were carried over: cannot apply "GRANT CONNECT ON DATABASE .*${gone}`, 'm'));
    const [row] = await cluster.query<{ comment: string | null; settings: string[] | null }>(
      'postgres',
      `SELECT shobj_description(d.oid, 'pg_database') AS comment, (SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0) AS settings
         FROM pg_database d WHERE d.datname = $1`,
      [target],
    );
    expect(row).toEqual({ comment: 'kept', settings: ['work_mem=6MB'] });
  });

  it('large objects: counted in the archive (none with --table), compared by verify and restore', async () => {
    const db = await databaseWith('shp_lo');
    await cluster.query(
      db,
      `CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 10);
       SELECT lo_from_bytea(0, convert_to('one', 'UTF8')); SELECT lo_from_bytea(0, ''::bytea); SELECT lo_from_bytea(0, '\\x00ff'::bytea)`,
    );
    const whole = await createBackup(cluster, db, storage, work, ['--profile', db]);
    expect((await readSidecar(storage, db, whole)).sidecar).toMatchObject({ database: { largeObjects: 3 }, dump: { largeObjects: 3 } });
    const tableOnly = await createBackup(cluster, db, storage, work, ['--profile', db, '--table', 'public.t']);
    expect((await readSidecar(storage, db, tableOnly)).sidecar).toMatchObject({ database: { largeObjects: 3 }, dump: { largeObjects: 0 } });
    for (const id of [whole, tableOnly]) {
      const verified = await cli(['verify', id, '--profile', db]);
      expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    }
    const target = await restoredAsNew(whole, db, 'shp_lo_r');
    expect(await cluster.query(target, 'SELECT count(*)::int AS n FROM pg_largeobject_metadata')).toEqual([{ n: 3 }]);

    // A sidecar from before the number was recorded has the database's: compared only when
    // the archive holds large objects, so the --table backup still passes.
    const edit = async (id: string, change: (dump: Record<string, unknown>) => void) => {
      const file = `${storage}/${db}/${id}.json`;
      const sidecar = JSON.parse(await readFile(file, 'utf8')) as { dump: Record<string, unknown> };
      change(sidecar.dump);
      await writeFile(file, `${JSON.stringify(sidecar, null, 2)}\n`);
    };
    await edit(tableOnly, (dump) => delete dump.largeObjects);
    const old = await cli(['verify', tableOnly, '--profile', db]);
    expect(old.code, old.stdout + old.stderr).toBe(0);

    // An archive with fewer large objects than recorded fails verify and is refused by restore.
    await edit(whole, (dump) => (dump.largeObjects = 4));
    const failed = await cli(['verify', whole, '--profile', db]);
    expect(failed.code, failed.stdout + failed.stderr).toBe(3);
    expect(failed.stdout + failed.stderr).toMatch(/large objects: 3 after restore, 4 at backup time/);
    const refused = await cli(['restore', whole, '--profile', db, '--target-db', newDb('shp_lo_r2'), '--create', '--yes']);
    expect(refused.code, refused.stdout + refused.stderr).toBe(3);
    expect(refused.stderr).toMatch(/large objects: 3 after restore, 4 at backup time/);
  });

  it('a SQL_ASCII database with names that are not UTF-8: create, verify and restore keep the tables and their bytes', async () => {
    const db = newDb('shp_sqlascii');
    await cluster.query('postgres', `CREATE DATABASE ${quoteIdent(db)} TEMPLATE template0 ENCODING 'SQL_ASCII' LOCALE 'C'`);
    // psql sends the bytes as they are (client encoding SQL_ASCII); Latin-1 é and ï.
    const sql = Buffer.concat([
      Buffer.from('CREATE SCHEMA "sch'), Buffer.from([0xe9]), Buffer.from('ma"; CREATE TABLE "sch'), Buffer.from([0xe9]),
      Buffer.from('ma"."caf'), Buffer.from([0xe9]), Buffer.from('" (s text); INSERT INTO "sch'), Buffer.from([0xe9]),
      Buffer.from('ma"."caf'), Buffer.from([0xe9]), Buffer.from(`" SELECT 'row ' || g FROM generate_series(1, 7) g;\n`),
      // Two names that differ only in a byte that is not UTF-8: kept apart.
      Buffer.from('CREATE TABLE public."caf'), Buffer.from([0xe8]), Buffer.from('" (x int); INSERT INTO public."caf'), Buffer.from([0xe8]), Buffer.from('" VALUES (1), (2), (3);\n'),
      Buffer.from('CREATE TABLE public."caf'), Buffer.from([0xe9]), Buffer.from('" (x int);\n'),
      Buffer.from('CREATE TABLE public."na'), Buffer.from([0xef]), Buffer.from('ve" (x int); INSERT INTO public."na'), Buffer.from([0xef]),
      Buffer.from('ve" VALUES (1), (2);\nCREATE TABLE public.plain (x int); INSERT INTO public.plain VALUES (1);\n'),
      // A name that spells the escape of another literally (valid UTF-8: kept as it is).
      Buffer.from('CREATE TABLE public."caf\\xe8" (x int); INSERT INTO public."caf\\xe8" SELECT generate_series(1, 5);\n'),
    ]);
    await execa(cluster.bin('psql'), ['-X', '-v', 'ON_ERROR_STOP=1', '-q', '-d', db], { input: sql, env: { ...cluster.env(db), PGCLIENTENCODING: 'SQL_ASCII' } });
    const id = await createBackup(cluster, db, storage, work, ['--profile', db]);
    const { sidecar } = await readSidecar(storage, db, id);
    // Two tables recorded as caf\xe8, in the server's order of their bytes (the literal backslash first): compared rank by rank.
    expect(sidecar.tables).toEqual([
      { schema: 'public', name: 'caf\\xe8', rows: 5 },
      { schema: 'public', name: 'caf\\xe8', rows: 3 },
      { schema: 'public', name: 'caf\\xe9', rows: 0 },
      { schema: 'public', name: 'na\\xefve', rows: 2 },
      { schema: 'public', name: 'plain', rows: 1 },
      { schema: 'sch\\xe9ma', name: 'caf\\xe9', rows: 7 },
    ]);
    await verifiesWithJobs(id, db);
    const target = await restoredAsNew(id, db, 'shp_sqlascii_r');
    const names = await cluster.query<{ name: string }>(
      target,
      `SELECT encode(convert_to(format('%s.%s', n.nspname, c.relname), 'SQL_ASCII'), 'hex') AS name
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`,
    );
    const hex = (text: string) => Buffer.from(text, 'latin1').toString('hex');
    expect(names.map((row) => row.name).sort()).toEqual(
      [hex('public.caf\\xe8'), hex('public.caf\u00e8'), hex('public.caf\u00e9'), hex('public.na\u00efve'), hex('public.plain'), hex('sch\u00e9ma.caf\u00e9')].sort(),
    );
  });

  it('a database without a public schema: restore --create and --clean do not bring one back', async () => {
    const db = await databaseWith('shp_nopublic');
    await cluster.query(db, 'DROP SCHEMA public; CREATE SCHEMA app; CREATE TABLE app.t (x int); INSERT INTO app.t VALUES (1), (2)');
    const id = await createBackup(cluster, db, storage, work, ['--profile', db]);
    expect((await readSidecar(storage, db, id)).sidecar.database.publicSchema).toBe(false);
    const verified = await cli(['verify', id, '--profile', db]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    const schemasOf = async (name: string) =>
      (await cluster.query<{ nspname: string }>(name, "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1")).map((row) => row.nspname);
    const target = await restoredAsNew(id, db, 'shp_nopublic_r');
    expect(await schemasOf(target)).toEqual(['app']);
    const replaced = await cli(['restore', id, '--profile', db, '--target-db', target, '--clean', '--drop-old', '--yes']);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(await schemasOf(target)).toEqual(['app']);

    // A database that has public (the default) keeps it.
    const withPublic = newDb('shp_public');
    await cluster.createDatabase(withPublic);
    await cluster.query(withPublic, 'CREATE SCHEMA app; CREATE TABLE app.t (x int)');
    const other = await createBackup(cluster, withPublic, storage, work, ['--profile', withPublic]);
    expect((await readSidecar(storage, withPublic, other)).sidecar.database.publicSchema).toBe(true);
    const target2 = newDb('shp_public_r');
    const restored = await cli(['restore', other, '--profile', withPublic, '--target-db', target2, '--create', '--yes']);
    expect(restored.code, restored.stderr).toBe(0);
    expect(await schemasOf(target2)).toEqual(['app', 'public']);
  });

  it('a stale materialized view: not counted, verify passes and restore --create refreshes it', async () => {
    const db = await databaseWith('shp_mv');
    await cluster.query(
      db,
      `CREATE TABLE events (id serial, v int); INSERT INTO events (v) SELECT generate_series(1, 100);
       CREATE MATERIALIZED VIEW mv_stale AS SELECT * FROM events;
       INSERT INTO events (v) SELECT generate_series(1, 50)`,
    );
    const id = await createBackup(cluster, db, storage, work, ['--profile', db]);
    expect((await readSidecar(storage, db, id)).sidecar.tables).toEqual([{ schema: 'public', name: 'events', rows: 150 }]);
    await verifiesWithJobs(id, db);
    const target = await restoredAsNew(id, db, 'shp_mv_r');
    expect(await cluster.query(target, 'SELECT count(*)::int AS n FROM mv_stale')).toEqual([{ n: 150 }]);

    // A sidecar written when materialized views were counted (100 rows at backup time).
    const file = `${storage}/${db}/${id}.json`;
    const old = JSON.parse(await readFile(file, 'utf8')) as { tables: unknown[] };
    old.tables = [...old.tables, { schema: 'public', name: 'mv_stale', rows: 100 }];
    await writeFile(file, `${JSON.stringify(old, null, 2)}\n`);
    const verifiedOld = await cli(['verify', id, '--profile', db]);
    expect(verifiedOld.code, verifiedOld.stdout + verifiedOld.stderr).toBe(0);
    await restoredAsNew(id, db, 'shp_mv_r2');
  });

  it('a table hash-partitioned on an enum (pg_dump loads it through the root, the rows land in other partitions): verify passes, restore --create brings every row back', async () => {
    const db = await databaseWith('shp_hash');
    await cluster.query(
      db,
      `CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'ecstatic');
       CREATE TABLE feelings (id int, m mood) PARTITION BY HASH (m);
       CREATE TABLE feelings0 PARTITION OF feelings FOR VALUES WITH (modulus 4, remainder 0);
       CREATE TABLE feelings1 PARTITION OF feelings FOR VALUES WITH (modulus 4, remainder 1);
       CREATE TABLE feelings2 PARTITION OF feelings FOR VALUES WITH (modulus 4, remainder 2);
       CREATE TABLE feelings3 PARTITION OF feelings FOR VALUES WITH (modulus 4, remainder 3);
       INSERT INTO feelings SELECT g, (enum_range(NULL::mood))[1 + g % 4] FROM generate_series(1, 1000) g;
       CREATE TABLE plain (id int); INSERT INTO plain SELECT generate_series(1, 10)`,
    );
    const id = await createBackup(cluster, db, storage, work, ['--profile', db]);
    await verifiesWithJobs(id, db);
    const target = await restoredAsNew(id, db, 'shp_hash_r');
    const count = `SELECT (SELECT count(*)::int FROM feelings) AS feelings, (SELECT count(*)::int FROM plain) AS plain`;
    expect(await cluster.query(target, count)).toEqual([{ feelings: 1000, plain: 10 }]);

    // Rows lost from the tree are still found: compared as a whole, not let through.
    const file = `${storage}/${db}/${id}.json`;
    const sidecar = JSON.parse(await readFile(file, 'utf8')) as { tables: Array<{ name: string; rows: number }> };
    for (const table of sidecar.tables) if (table.name === 'feelings1') table.rows += 5;
    await writeFile(file, `${JSON.stringify(sidecar, null, 2)}\n`);
    const failed = await cli(['verify', id, '--profile', db, '--json']);
    expect(failed.code).toBe(3);
    expect(failed.stdout).toMatch(/public\.feelings: 1000 rows in its partitions after restore, 1005 at backup time/);
  });

  it('a role named by a policy and a user mapping, missing on the server: verify says NOT VERIFIED (not recorded), restore refuses up front naming it; once it exists both pass', async () => {
    const db = await databaseWith('shp_policy');
    const reader = newRole('shp_reader');
    await cluster.query('postgres', `CREATE ROLE ${quoteIdent(reader)}`);
    await cluster.query(
      db,
      `CREATE EXTENSION IF NOT EXISTS postgres_fdw;
       CREATE SERVER elsewhere FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', dbname 'nowhere');
       CREATE USER MAPPING FOR ${quoteIdent(reader)} SERVER elsewhere OPTIONS (user 'nobody');
       CREATE TABLE notes (id int, body text); INSERT INTO notes SELECT g, 'n' || g FROM generate_series(1, 20) g;
       ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
       CREATE POLICY readers ON notes FOR SELECT TO ${quoteIdent(reader)} USING (true)`,
    );
    const id = await createBackup(cluster, db, storage, work, ['--profile', db]);
    // The role goes (with what depends on it, here the source database).
    await cluster.dropDatabase(db);
    await cluster.query('postgres', `DROP ROLE ${quoteIdent(reader)}`);

    const verified = await cli(['verify', id, '--profile', db]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(1);
    expect(verified.stdout).toMatch(/NOT VERIFIED/);
    expect(verified.stdout + verified.stderr).toContain(`the verify server lacks roles the backup's policies or user mappings name: ${reader}`);
    expect((await readSidecar(storage, db, id)).sidecar.verifications).toEqual([]);
    const target = newDb('shp_policy_r');
    for (const flags of [[], ['--no-owner', '--no-acl']]) {
      const refused = await cli(['restore', id, '--profile', db, '--target-db', target, '--create', '--yes', ...flags]);
      expect(refused.code, refused.stderr).toBe(2);
      expect(refused.stderr).toContain(`the archive needs roles the target server lacks: ${reader}`);
      expect(refused.stderr).toMatch(/named by the backup's policies or user mappings/);
      expect(refused.stderr).not.toMatch(/--no-owner --no-acl/);
    }

    await cluster.query('postgres', `CREATE ROLE ${quoteIdent(reader)}`);
    const passed = await cli(['verify', id, '--profile', db]);
    expect(passed.code, passed.stdout + passed.stderr).toBe(0);
    await restoredAsNew(id, db, 'shp_policy_r2');
  });

  it('a --table backup of a table whose type lives outside it: NOT VERIFIED (exit 1, not recorded), never FAILED', async () => {
    const db = await databaseWith('shp_tabletype');
    await cluster.query(
      db,
      `CREATE TYPE mood AS ENUM ('ok', 'sad'); CREATE SEQUENCE shared_ids; CREATE TYPE pair AS (a int, b int);
       CREATE TABLE c (m mood, ms mood[], d int, id bigint DEFAULT nextval('shared_ids'), s serial, p pair); INSERT INTO c VALUES ('ok', '{ok}', 1), ('sad', '{}', 2);
       CREATE TABLE other (x int); CREATE TABLE uses_other (o other);
       CREATE FUNCTION c_touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
       CREATE TRIGGER c_touch BEFORE INSERT ON c FOR EACH ROW EXECUTE FUNCTION c_touch()`,
    );
    // create says so: the types and the sequence the table uses (not its own serial's).
    const made = await runCli(['create', '--json', '--storage', storage, '--profile', db, '--table', 'c', '--table', 'uses_other', '--table', 'other'], { env: baseEnv(cluster.env(db)), cwd: work });
    expect(made.code, made.stderr).toBe(0);
    const { id, warnings } = JSON.parse(made.stdout) as { id: string; warnings: string[] };
    expect(warnings).toEqual([
      expect.stringMatching(/^c uses function c_touch\(\), sequence shared_ids, type mood, type pair, which this backup does not hold: it restores only into a database that has them$/),
    ]);
    const verified = await cli(['verify', id, '--profile', db]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(1);
    expect(verified.stdout).toMatch(/NOT VERIFIED/);
    expect(verified.stdout + verified.stderr).toMatch(/does not restore on its own/);
    expect(verified.stdout + verified.stderr).toMatch(/--level archive/);
    expect((await readSidecar(storage, db, id)).sidecar.verifications).toEqual([]);
    const archive = await cli(['verify', id, '--profile', db, '--level', 'archive']);
    expect(archive.code, archive.stdout + archive.stderr).toBe(0);
  });

  it('an --exclude-* backup whose tables need what it leaves out: create warns, verify says NOT VERIFIED (exit 1, not recorded), never FAILED', async () => {
    const db = await databaseWith('shp_exclude');
    await cluster.query(
      db,
      `CREATE EXTENSION IF NOT EXISTS citext; CREATE SCHEMA other;
       CREATE TABLE public.animal (id int, name citext); CREATE TABLE other.cat (lives int) INHERITS (public.animal);
       CREATE TABLE other.tagged (t citext); INSERT INTO other.cat VALUES (1, 'tom', 9); INSERT INTO other.tagged VALUES ('A')`,
    );
    for (const filter of [['--exclude-schema', 'public'], ['--exclude-table', 'public.animal']]) {
      const made = await runCli(['create', '--json', '--storage', storage, '--profile', db, ...filter], { env: baseEnv(cluster.env(db)), cwd: work });
      expect(made.code, made.stderr).toBe(0);
      const { id, warnings } = JSON.parse(made.stdout) as { id: string; warnings: string[] };
      // The parent is missing; citext is not: the dump holds CREATE EXTENSION citext.
      expect(warnings, filter.join(' ')).toEqual([expect.stringMatching(/^other\.cat uses table animal, which this backup does not hold/)]);
      const verified = await cli(['verify', id, '--profile', db]);
      expect(verified.code, verified.stdout + verified.stderr).toBe(1);
      expect(verified.stdout).toMatch(/NOT VERIFIED/);
      expect(verified.stdout + verified.stderr).toMatch(/does not restore on its own/);
      expect((await readSidecar(storage, db, id)).sidecar.verifications).toEqual([]);
    }
    // Excluding what nothing needs: no warning, and it verifies.
    const made = await runCli(['create', '--json', '--storage', storage, '--profile', db, '--exclude-table', 'other.tagged'], { env: baseEnv(cluster.env(db)), cwd: work });
    expect(made.code, made.stderr).toBe(0);
    const { id, warnings } = JSON.parse(made.stdout) as { id: string; warnings: string[] };
    expect(warnings).toEqual([]);
    const verified = await cli(['verify', id, '--profile', db]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  });

  it('a --schema backup of views, a foreign table and a table of an access method, that need what no --schema dump holds: create warns of each, verify says NOT VERIFIED', async () => {
    const db = await databaseWith('shp_viewdeps');
    await cluster.query(
      db,
      `CREATE SCHEMA other; CREATE TABLE public.t (x int); INSERT INTO public.t VALUES (1), (2);
       CREATE VIEW other.v AS SELECT x FROM public.t; CREATE MATERIALIZED VIEW other.mv AS SELECT x FROM public.t;
       CREATE FOREIGN DATA WRAPPER shp_w; CREATE SERVER shp_s FOREIGN DATA WRAPPER shp_w; CREATE FOREIGN TABLE other.f (x int) SERVER shp_s;
       CREATE ACCESS METHOD shp_heap TYPE TABLE HANDLER heap_tableam_handler; CREATE TABLE other.h (x int) USING shp_heap; INSERT INTO other.h VALUES (3)`,
    );
    const create = async (filter: string[]) => {
      const made = await runCli(['create', '--json', '--storage', storage, '--profile', db, ...filter], { env: baseEnv(cluster.env(db)), cwd: work });
      expect(made.code, made.stderr).toBe(0);
      return JSON.parse(made.stdout) as { id: string; warnings: string[] };
    };
    // Servers and access methods are outside any schema: no --schema dump holds them.
    const outside = [
      expect.stringMatching(/^other\.f uses server shp_s, which this backup does not hold/),
      expect.stringMatching(/^other\.h uses access method shp_heap, which this backup does not hold/),
    ];
    const { id, warnings } = await create(['--schema', 'other']);
    expect(warnings.sort()).toEqual([
      ...outside,
      expect.stringMatching(/^other\.mv uses table t, which this backup does not hold/),
      expect.stringMatching(/^other\.v uses table t, which this backup does not hold/),
    ]);
    const verified = await cli(['verify', id, '--profile', db]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(1);
    expect(verified.stdout).toMatch(/NOT VERIFIED/);
    // With the table's schema too, the views are whole; the server and the access method are still missing.
    expect((await create(['--schema', 'other', '--schema', 'public'])).warnings.sort()).toEqual(outside);
    // The whole database holds them all.
    expect((await create([])).warnings).toEqual([]);
  });

  it('an --exclude-schema backup holds every cast the database made, also one whose type and function it left out: create warns of it (it did not), verify says NOT VERIFIED', async () => {
    const db = await databaseWith('shp_casts');
    await cluster.query(
      db,
      `CREATE SCHEMA kept; CREATE TABLE kept.t (x int); CREATE SCHEMA gone;
       CREATE TYPE gone.money2 AS (units int);
       CREATE FUNCTION gone.int_to_money2(int) RETURNS gone.money2 LANGUAGE sql IMMUTABLE AS 'SELECT ROW($1)::gone.money2';
       CREATE CAST (int AS gone.money2) WITH FUNCTION gone.int_to_money2(int);
       CREATE TYPE kept.kind AS ENUM ('a'); CREATE CAST (text AS kept.kind) WITH INOUT`,
    );
    const made = await runCli(['create', '--json', '--storage', storage, '--profile', db, '--exclude-schema', 'gone'], { env: baseEnv(cluster.env(db)), cwd: work });
    expect(made.code, made.stderr).toBe(0);
    const { id, warnings } = JSON.parse(made.stdout) as { id: string; warnings: string[] };
    // The cast of kept.kind needs nothing the backup lacks: not named.
    expect(warnings).toEqual([
      'cast (integer AS gone.money2) uses function gone.int_to_money2(integer), type gone.money2, which this backup does not hold: it restores only into a database that has them',
    ]);
    const verified = await cli(['verify', id, '--profile', db]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(1);
    expect(verified.stdout).toMatch(/NOT VERIFIED/);
  });

  it('verify as a role that is not a superuser, of a backup only a superuser can restore: NOT VERIFIED (exit 1, not recorded); as a superuser it passes', async () => {
    const role = newRole('shp_nosuper');
    await cluster.createRole(role, 'ns-pw', 'LOGIN CREATEDB');
    const db = await databaseWith('shp_nosuper');
    await cluster.query(
      db,
      `CREATE TABLE t (x int); INSERT INTO t VALUES (1);
       CREATE FUNCTION note_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN END$$;
       CREATE EVENT TRIGGER note_ddl ON ddl_command_end EXECUTE FUNCTION note_ddl()`,
    );
    const id = await createBackup(cluster, db, storage, work, ['--profile', db]);
    const asRole = baseEnv({ ...cluster.env('postgres'), PGUSER: role, PGPASSWORD: 'ns-pw' });
    const run = await cli(['verify', id, '--profile', db], asRole);
    expect(run.code, run.stdout + run.stderr).toBe(1);
    expect(run.stdout).toMatch(/NOT VERIFIED/);
    expect(run.stdout + run.stderr).toMatch(/who is not a superuser/);
    expect((await readSidecar(storage, db, id)).sidecar.verifications).toEqual([]);
    const asSuperuser = await cli(['verify', id, '--profile', db]);
    expect(asSuperuser.code, asSuperuser.stdout + asSuperuser.stderr).toBe(0);
  });

  it('a --data-only backup: verified at level archive; restore refuses a new database and loads into the schema with triggers off', async () => {
    const db = await databaseWith('shp_dataonly');
    const schema = `CREATE TABLE public.audit (id serial, what text);
       CREATE TABLE public.orders (id int PRIMARY KEY, v int);
       CREATE FUNCTION public.trg_audit() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO public.audit (what) VALUES (TG_OP || ' ' || NEW.id); RETURN NEW; END$$;
       CREATE TRIGGER orders_audit AFTER INSERT ON public.orders FOR EACH ROW EXECUTE FUNCTION public.trg_audit()`;
    await cluster.query(db, schema);
    await cluster.query(db, 'INSERT INTO public.orders SELECT g, g FROM generate_series(1, 100) g');
    const id = await createBackup(cluster, db, storage, work, ['--profile', db, '--data-only']);
    const verified = await cli(['verify', id, '--profile', db]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    expect(verified.stdout).toMatch(/at level archive: passed/);
    expect(verified.stderr).toMatch(/--data-only backup, with no schema to restore into: checked at level archive/);
    expect((await readSidecar(storage, db, id)).sidecar.verifications.map((v) => [v.level, v.result])).toEqual([['archive', 'passed']]);

    const fresh = await cli(['restore', id, '--profile', db, '--target-db', newDb('shp_dataonly_new'), '--create', '--yes']);
    expect(fresh.code, fresh.stdout + fresh.stderr).toBe(2);
    expect(fresh.stderr).toMatch(/is --data-only: it holds rows but no tables/);
    const target = newDb('shp_dataonly_t');
    await cluster.createDatabase(target);
    await cluster.query(target, schema);
    const loaded = await cli(['restore', id, '--profile', db, '--target-db', target, '--force', '--yes']);
    expect(loaded.code, loaded.stdout + loaded.stderr).toBe(0);
    expect(await cluster.query(target, 'SELECT (SELECT count(*) FROM orders)::int AS orders, (SELECT count(*) FROM audit)::int AS audit')).toEqual([{ orders: 100, audit: 100 }]);
  });

  it('a table in a tablespace the verify server no longer has: verify restores it into the default tablespace', async () => {
    const location = await makeTempDir('shp-ts');
    dirs.push(location);
    if (process.getuid?.() === 0) await execa('chown', ['postgres', location]);
    const tablespace = uniqueName('shp_ts');
    await cluster.query('postgres', `CREATE TABLESPACE ${quoteIdent(tablespace)} LOCATION '${location}'`);
    const db = await databaseWith('shp_ts');
    try {
      await cluster.query(db, `CREATE TABLE t (x int) TABLESPACE ${quoteIdent(tablespace)}; INSERT INTO t SELECT generate_series(1, 10)`);
      await createBackup(cluster, db, storage, work, ['--profile', db, '--no-globals']);
      await cluster.query(db, 'ALTER TABLE t SET TABLESPACE pg_default');
    } finally {
      await cluster.query('postgres', `DROP TABLESPACE ${quoteIdent(tablespace)}`);
    }
    const verified = await cli(['verify', 'latest', '--profile', db]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  });

  it('verify as a role that may not create databases: NOT VERIFIED with a CREATEDB hint (it said to grant SELECT on tables)', async () => {
    const role = newRole('shp_nocreatedb');
    await cluster.createRole(role, 'nc-pw', 'LOGIN');
    const db = await databaseWith('shp_nocreatedb');
    await cluster.query(db, 'CREATE TABLE t (x int); INSERT INTO t VALUES (1)');
    const id = await createBackup(cluster, db, storage, work, ['--profile', db]);
    const asRole = baseEnv({ ...cluster.env('postgres'), PGUSER: role, PGPASSWORD: 'nc-pw' });
    const run = await cli(['verify', id, '--profile', db], asRole);
    expect(run.code, run.stdout + run.stderr).toBe(1);
    expect(run.stdout).toMatch(/NOT VERIFIED/);
    expect(run.stdout + run.stderr).toMatch(/needs CREATEDB/);
    expect(run.stdout + run.stderr).not.toMatch(/SELECT on every table/);
    expect((await readSidecar(storage, db, id)).sidecar.verifications).toEqual([]);
  });

  it('restore --clean over a target that refuses connections (ALLOW_CONNECTIONS false, users kept out): replaced, the old one still refusing them', async () => {
    const db = await databaseWith('shp_noconn');
    await cluster.query(db, 'CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 5)');
    const id = await createBackup(cluster, db, storage, work, ['--profile', db]);
    await cluster.query(db, 'INSERT INTO t VALUES (6)');
    await cluster.query('postgres', `ALTER DATABASE ${quoteIdent(db)} ALLOW_CONNECTIONS false`);
    const plan = await cli(['restore', id, '--profile', db, '--clean', '--dry-run']);
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/refuses connections \(ALLOW_CONNECTIONS false\): taken as not empty/);
    const refused = await cli(['restore', id, '--profile', db, '--yes']);
    expect(refused.code, refused.stdout + refused.stderr).toBe(2);
    expect(refused.stderr).toMatch(/it refuses connections, so it is taken as not empty/);
    const replaced = await cli(['restore', id, '--profile', db, '--clean', '--yes']);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(await cluster.query(db, 'SELECT count(*)::int AS n FROM t')).toEqual([{ n: 5 }]);
    const old = /The previous ".*" is kept as "(.*)"\./.exec(replaced.stdout)?.[1] as string;
    databases.push(old);
    expect(await cluster.query('postgres', 'SELECT datallowconn FROM pg_database WHERE datname = $1', [old])).toEqual([{ datallowconn: false }]);
  });

  it('a table of ours added to an extension (ALTER EXTENSION ... ADD TABLE): pg_dump leaves its rows out, and create says so', async () => {
    const db = await databaseWith('shp_extmember');
    await cluster.query(db, "CREATE EXTENSION hstore; CREATE TABLE cfg (k text, v text); INSERT INTO cfg VALUES ('a', 'b'), ('c', 'd'); ALTER EXTENSION hstore ADD TABLE cfg; ANALYZE cfg");
    const made = await runCli(['create', '--json', '--storage', storage, '--profile', db], { env: baseEnv(cluster.env(db)), cwd: work });
    expect(made.code, made.stderr).toBe(0);
    const { warnings } = JSON.parse(made.stdout) as { warnings: string[] };
    expect(warnings).toEqual([expect.stringMatching(/^public\.cfg belongs to extension hstore and holds about 2 row\(s\), which pg_dump leaves out/)]);
  });
});
