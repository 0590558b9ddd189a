/**
 * Fault injection: `kill -9` of the built binary at each phase boundary of create, verify
 * and restore. Nothing of the killed run may last: no sidecar of a backup that did not
 * complete, no password file, no client program still running (or committing), no
 * throwaway or staging database, no lock that blocks the next run. The phase is found from
 * the run's own log lines on stderr; wrappers of the client programs (pgBinDir) hold the
 * run at the phase, so the kill lands where it is meant to.
 */
import { execa } from 'execa';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { BIN, baseEnv } from '../helpers/cli.js';
import { killedAfterEach, listFiles, processesWithEnv, scratchSetup, sh, tempDir, waitFor, wrapperBinDir, writeConfig } from '../helpers/failure-kit.js';
import { loadChinook } from '../helpers/fixtures.js';
import { uniqueName } from '../helpers/pg.js';

const MARKER = 'BACKUPCTL_KILL_TEST';
const scratch = scratchSetup('kill', { built: true });
const { cluster } = scratch;
const chinook = uniqueName('kill_chinook');
let storage: string;
let tmp: string;
let config: string;

/** A wrapper script: passes --version and --list through to `real`, otherwise runs `body`. */
/** pg_restore as `body`, but for what only reads the archive (its version, its list, a script of entries to stdout). */
function wrapper(real: string, body: string): string {
  return `#!/bin/sh\ncase "$1" in --version|--list|--file=-) exec ${sh(real)} "$@";; esac\n${body}\n`;
}

function env(marker: string): Record<string, string> {
  // TMPDIR: the run's private directory (its password file) lands where the test can look.
  return baseEnv({ ...cluster.env(chinook), HOME: scratch.cwd, TMPDIR: tmp, [MARKER]: marker }) as Record<string, string>;
}

const running = killedAfterEach();

/**
 * Runs the binary until a stderr line matches `at` (and `ready`, if given, holds), then
 * kills it with SIGKILL. Returns the match and the run's marker (found in the environment
 * of every process it started).
 */
async function killAt(args: string[], at: RegExp, ready?: (marker: string) => Promise<boolean>): Promise<{ match: RegExpExecArray; marker: string }> {
  const marker = uniqueName('k');
  const child = execa(process.execPath, [BIN, ...args], { env: env(marker), extendEnv: false, cwd: scratch.cwd, stdin: 'ignore', reject: false, buffer: false });
  running.add(child);
  let seen = '';
  const matched = new Promise<RegExpExecArray>((resolve, reject) => {
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      seen += text;
      const match = at.exec(seen);
      if (match) resolve(match);
    });
    void child.then((result) => reject(new Error(`the run ended (exit ${result.exitCode}) before ${at}:\n${seen}`)));
  });
  const match = await matched;
  if (ready) await waitFor(() => ready(marker), `the run to be ready to be killed (${at})`);
  child.kill('SIGKILL');
  await child;
  running.delete(child);
  return { match, marker };
}

/** Every process the killed run started is gone within a few seconds (its watchdog's work). */
async function expectNoProcessesOf(marker: string): Promise<void> {
  let left: Array<{ pid: number; comm: string }> = [];
  await waitFor(
    async () => (left = await processesWithEnv(MARKER, marker)).length === 0,
    `the killed run's processes to end`,
    10_000,
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}: ${left.map((p) => `${p.pid} ${p.comm}`).join(', ')}`);
  });
}

/** Password files anywhere under the test's TMPDIR. */
async function passfiles(): Promise<string[]> {
  return (await listFiles(tmp)).filter((file) => file.endsWith('.pgpass'));
}

/** The sidecars in the storage. */
async function sidecars(): Promise<string[]> {
  return (await listFiles(storage)).filter((file) => /\/\d{8}T\d{6}Z-[0-9a-f]{6}\.json$/.test(file));
}

async function bin(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const result = await execa(process.execPath, [BIN, ...args], { env: env(uniqueName('n')), extendEnv: false, cwd: scratch.cwd, stdin: 'ignore', reject: false });
  return { code: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

async function databasesLike(fragment: string): Promise<string[]> {
  const rows = await cluster.query<{ datname: string }>('postgres', 'select datname from pg_database where strpos(datname, $1) > 0', [fragment]);
  return rows.map((row) => row.datname);
}

beforeAll(async () => {
  storage = await tempDir('kill-st');
  tmp = await tempDir('kill-tmp');
  await loadChinook(cluster, chinook);
  config = await writeConfig(await tempDir('kill-cfg'), { storage, profiles: { app: { database: chinook } } });
  const made = await bin(['create', '--config', config, '--json']);
  expect(made.code, made.stderr).toBe(0);
});

describe('kill -9 of create', () => {
  it('while pg_dump runs: no sidecar, pg_dump ends, the next run removes the password file and takes over the lock', async () => {
    const bin1 = await wrapperBinDir(cluster, { pg_dump: wrapper(cluster.bin('pg_dump'), `${sh(cluster.bin('pg_dump'))} "$@" | head -c 20000\nexec sleep 600`) });
    const cfg = await writeConfig(await tempDir('kill-cfg1'), { storage, pgBinDir: bin1, profiles: { app: { database: chinook } } });
    const before = await sidecars();
    const { match, marker } = await killAt(['create', '--config', cfg], /backing up \S+ \(PostgreSQL [^)]+\)\) as app\/(\S+)/, async (m) =>
      (await processesWithEnv(MARKER, m)).some((p) => p.comm === 'sleep'),
    );
    expect(await passfiles()).toHaveLength(1); // the killed run's, for now
    await expectNoProcessesOf(marker);
    // The killed run could record nothing; its lock, left by a process gone, says it.
    const killed = await bin(['status', '--config', config, '--json']);
    expect(killed.code, killed.stdout).toBe(5);
    const [app] = (JSON.parse(killed.stdout) as { profiles: Array<{ staleLock: { command: string } | null; problems: Array<{ check: string; message: string }> }> }).profiles;
    expect(app?.staleLock).toMatchObject({ command: 'create' });
    expect(app?.problems).toEqual([{ check: 'failures', message: expect.stringMatching(/^a create run \(pid \d+ on .*\) ended without finishing \(killed\?\)/) }]);
    expect((await bin(['status', '--config', config, '--allow-failures'])).code).toBe(0);
    const next = await bin(['list', '--config', config]);
    expect(next.code, next.stderr).toBe(0);
    expect(await passfiles()).toEqual([]);
    expect(await sidecars()).toEqual(before);
    expect(await listFiles(storage)).not.toContain(`app/${match[1]}.json`);
    const again = await bin(['create', '--config', config, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/took over the stale lock of profile "app"/);
    expect((await bin(['status', '--config', config])).code).toBe(0);
  });

  it('after the dump, while the globals are dumped: no sidecar (the backup never was), nothing running', async () => {
    const bin2 = await wrapperBinDir(cluster, { pg_dumpall: wrapper(cluster.bin('pg_dumpall'), 'exec sleep 600') });
    const cfg = await writeConfig(await tempDir('kill-cfg2'), { storage, pgBinDir: bin2, profiles: { app: { database: chinook } } });
    const { match, marker } = await killAt(['create', '--config', cfg], /as app\/(\S+)[\s\S]*dump: done/);
    await expectNoProcessesOf(marker);
    expect(await listFiles(storage)).not.toContain(`app/${match[1]}.json`);
    const listed = await bin(['list', '--config', config, '--json']);
    expect((JSON.parse(listed.stdout) as Array<{ id: string }>).map((b) => b.id)).not.toContain(match[1]);
    expect(await passfiles()).toEqual([]);
  });
});

describe('kill -9 of verify', () => {
  it('while pg_restore restores into the throwaway database: the next verify drops it', async () => {
    const slow = await wrapperBinDir(cluster, { pg_restore: wrapper(cluster.bin('pg_restore'), 'exec sleep 600') });
    const cfg = await writeConfig(await tempDir('kill-cfg3'), { storage, pgBinDir: slow, profiles: { app: { database: chinook } } });
    const { match, marker } = await killAt(['verify', 'latest', '--config', cfg], /restoring into throwaway database (\S+)/);
    const throwaway = match[1] as string;
    await expectNoProcessesOf(marker);
    expect(await databasesLike(throwaway)).toEqual([throwaway]);
    const next = await bin(['verify', 'latest', '--config', config]);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toContain(`dropped leftover verify database ${throwaway}`);
    expect(await databasesLike(throwaway)).toEqual([]);
    expect(await passfiles()).toEqual([]);
  });
});

describe('kill -9 of restore', () => {
  it('--force into an existing database (one transaction): pg_restore dies with it and commits nothing', async () => {
    const target = uniqueName('kill_target');
    await cluster.createDatabase(target);
    await cluster.query(target, 'create table keep (id int); insert into keep values (1)');
    // pg_restore starts late: without the watchdog it would run on, and commit, after backupctl died.
    const late = await wrapperBinDir(cluster, { pg_restore: wrapper(cluster.bin('pg_restore'), `sleep 2\nexec ${sh(cluster.bin('pg_restore'))} "$@"`) });
    const cfg = await writeConfig(await tempDir('kill-cfg4'), { storage, pgBinDir: late, profiles: { app: { database: chinook } } });
    const { marker } = await killAt(['restore', 'latest', '--config', cfg, '--target-db', target, '--force', '--yes', '--no-owner'], /restoring app\/\S+ into/);
    await expectNoProcessesOf(marker);
    await new Promise((resolve) => setTimeout(resolve, 4_000)); // longer than the wrapper's wait and the restore
    const tables = await cluster.query<{ t: string }>(target, "select tablename as t from pg_tables where schemaname = 'public' order by 1");
    expect(tables.map((r) => r.t)).toEqual(['keep']);
    await cluster.dropDatabase(target);
  });

  it('--clean while restoring into the staging database: the target is untouched, the next restore drops the staging database', async () => {
    const target = uniqueName('kill_clean');
    await cluster.createDatabase(target);
    await cluster.query(target, 'create table keep (id int); insert into keep values (1)');
    const slow = await wrapperBinDir(cluster, { pg_restore: wrapper(cluster.bin('pg_restore'), 'exec sleep 600') });
    const cfg = await writeConfig(await tempDir('kill-cfg5'), { storage, pgBinDir: slow, profiles: { app: { database: chinook } } });
    const { match, marker } = await killAt(['restore', 'latest', '--config', cfg, '--target-db', target, '--clean', '--yes'], /restoring app\/\S+ into "([^"]+)"/);
    const staging = match[1] as string;
    await expectNoProcessesOf(marker);
    expect(await databasesLike(staging)).toEqual([staging]);
    expect(await cluster.query(target, 'select count(*)::int as n from keep')).toEqual([{ n: 1 }]);
    const copy = uniqueName('kill_copy');
    const next = await bin(['restore', 'latest', '--config', config, '--target-db', copy, '--create']);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toContain(`dropped leftover staging database ${staging}`);
    expect(await databasesLike(staging)).toEqual([]);
    for (const db of [target, copy]) await cluster.dropDatabase(db);
  });
});

describe('kill -9 of restore as the restored database takes the target\'s name', () => {
  /**
   * The database's own properties (its settings, its privileges: REVOKE CONNECT ... FROM
   * PUBLIC, its comment) are part of what the target must be under its final name. A
   * session holding pg_db_role_setting in EXCLUSIVE mode (new sessions still read it) holds
   * the run at the first ALTER DATABASE ... SET, right after the rename; the kill lands there.
   */
  async function killAtProperties(target: string, extra: string[]): Promise<{ source: string; cfg: string }> {
    const source = uniqueName('kill_props');
    await cluster.createDatabase(source);
    await cluster.query(source, 'create table t (id int); insert into t select generate_series(1, 100)');
    await cluster.query('postgres', `alter database "${source}" set work_mem = '7MB'`);
    await cluster.query('postgres', `revoke connect on database "${source}" from public`);
    await cluster.query('postgres', `comment on database "${source}" is 'restored whole'`);
    const cfg = await writeConfig(await tempDir('kill-cfg6'), { storage, profiles: { props: { database: source } } });
    const made = await bin(['create', '--config', cfg, '--json']);
    expect(made.code, made.stderr).toBe(0);
    const holder = new pg.Client({ host: cluster.host, port: cluster.port, user: cluster.user, password: cluster.password, database: 'postgres' });
    holder.on('error', () => undefined);
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query('lock table pg_catalog.pg_db_role_setting in exclusive mode');
      const { marker } = await killAt(['restore', 'latest', '--config', cfg, '--target-db', target, '--yes', ...extra], /restoring props\/\S+ into/, async () => {
        const rows = await cluster.query<{ n: number }>('postgres', "select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like 'ALTER DATABASE%SET work_mem%'");
        return rows[0]?.n === 1;
      });
      await expectNoProcessesOf(marker);
    } finally {
      await holder.query('rollback').catch(() => undefined);
      await holder.end();
    }
    // The killed run's session, woken by the release, finds its client gone.
    await waitFor(async () => (await cluster.query<{ n: number }>('postgres', "select count(*)::int as n from pg_stat_activity where query like 'ALTER DATABASE%SET work_mem%'"))[0]?.n === 0, 'the killed run\'s session to end');
    return { source, cfg };
  }

  /** The target's properties, as the backup's database had them, or null when it does not exist. */
  async function propertiesOf(name: string): Promise<{ acl: string | null; comment: string | null; settings: string[] | null } | null> {
    const rows = await cluster.query<{ acl: string | null; comment: string | null; settings: string[] | null }>(
      'postgres',
      `select d.datacl::text as acl, shobj_description(d.oid, 'pg_database') as comment,
              (select s.setconfig from pg_db_role_setting s where s.setdatabase = d.oid and s.setrole = 0) as settings
         from pg_database d where d.datname = $1`,
      [name],
    );
    return rows[0] ?? null;
  }

  /** Every property of the backup's database: its setting, its comment, and CONNECT revoked from PUBLIC (an ACL without "=c"). */
  function expectWhole(state: Awaited<ReturnType<typeof propertiesOf>>): void {
    expect(state?.settings).toEqual(['work_mem=7MB']);
    expect(state?.comment).toBe('restored whole');
    expect(state?.acl).toEqual(expect.any(String)); // null: the default, PUBLIC may connect
    expect(state?.acl).not.toMatch(/(^|[{,])=[^,}/]*c/);
  }

  it('--create: the target does not exist (the rename is undone with the properties); the next restore makes it whole', async () => {
    const target = uniqueName('kill_new');
    const { source, cfg } = await killAtProperties(target, ['--create']);
    // Before: the target's name held the restored data without REVOKE CONNECT ... FROM PUBLIC.
    expect(await propertiesOf(target)).toBeNull();
    expect(await databasesLike(`${target}_restoring`)).toHaveLength(1);
    const next = await bin(['restore', 'latest', '--config', cfg, '--target-db', target, '--create', '--yes']);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toMatch(/dropped leftover staging database/);
    expectWhole(await propertiesOf(target));
    expect(await databasesLike(`${target}_restoring`)).toEqual([]);
    for (const db of [target, source]) await cluster.dropDatabase(db);
  });

  it('--clean over an existing target: the old one is intact under its name, nothing was swapped', async () => {
    const target = uniqueName('kill_swap');
    await cluster.createDatabase(target);
    await cluster.query(target, 'create table keep (id int); insert into keep values (1)');
    const { source } = await killAtProperties(target, ['--clean']);
    expect(await cluster.query(target, 'select count(*)::int as n from keep')).toEqual([{ n: 1 }]);
    expect(await propertiesOf(target)).toMatchObject({ settings: null, comment: null });
    expect((await databasesLike(target)).filter((name) => name.includes('_old_'))).toEqual([]);
    for (const db of [...(await databasesLike(target)), source]) await cluster.dropDatabase(db);
  });
});

describe('what the kills left on disk', () => {
  it('the run directories of the killed runs are gone after the next run', async () => {
    await bin(['list', '--config', config]);
    const parent = (await readdir(tmp)).find((name) => name.startsWith('backupctl-'));
    const left = parent ? await readdir(path.join(tmp, parent)) : [];
    expect(left).toEqual([]);
  });
});
