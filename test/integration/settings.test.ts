/**
 * Settings are resolved once (config/resolve.ts): for one config, every command sees the
 * same profiles, storages and client programs; the config's values for a profile win over
 * the libpq environment; an unknown --profile is exit 2 everywhere.
 */
import { chmod, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, parseJsonStdout, readSidecar, removeDirs } from '../helpers/backups.js';
import { baseEnv, runCli } from '../helpers/cli.js';
import { closedPort } from '../helpers/failure-kit.js';
import { connectProvided, uniqueName } from '../helpers/pg.js';

const cluster = connectProvided();
const app = uniqueName('set_app');
const vault = uniqueName('set_vault');
const dirs: string[] = [];
let dir: string;
let marker: string;
/** Environment of a cron job with stray libpq variables: another database, a wrong port. */
let strayEnv: Record<string, string | undefined>;

const cli = (args: string[], env = strayEnv) => runCli(args, { env, cwd: dir });

beforeAll(async () => {
  dir = await makeTempDir('settings');
  dirs.push(dir);
  await Promise.all([app, vault].map((db) => cluster.createDatabase(db)));
  for (const db of [app, vault]) await cluster.query(db, 'create table t (id int primary key); insert into t select generate_series(1, 42)');
  // A relative pgBinDir whose pg_restore leaves a mark: proves verify and restore use it.
  const bin = path.join(dir, 'clients');
  await mkdir(bin);
  marker = path.join(dir, 'pg_restore-was-used');
  for (const tool of ['pg_dump', 'pg_dumpall', 'psql']) await symlink(cluster.bin(tool), path.join(bin, tool));
  await writeFile(path.join(bin, 'pg_restore'), `#!/bin/sh\n: > '${marker}'\nexec '${cluster.bin('pg_restore')}' "$@"\n`);
  await chmod(path.join(bin, 'pg_restore'), 0o755);
  await writeFile(path.join(dir, 'app.pw'), `${cluster.password}\n`, { mode: 0o600 });
  await writeFile(
    path.join(dir, 'backupctl.config.json'),
    JSON.stringify({
      storage: './backups',
      defaults: { host: cluster.host, port: cluster.port, user: cluster.user, passwordFile: './app.pw', pgBinDir: './clients', globals: false },
      profiles: { app: { database: app }, vault: { database: vault, storage: './vault' } },
    }),
  );
  strayEnv = baseEnv({ PGDATABASE: 'postgres', PGPORT: String(await closedPort()), PGHOST: '127.0.0.1', PGUSER: 'nobody' });
});

afterAll(async () => {
  await Promise.all([app, vault].map((db) => cluster.dropDatabase(db)));
  await removeDirs(dirs);
});

describe('the config wins over the libpq environment', () => {
  it("a sidecar's source database and port are the profile's, whatever PGDATABASE and PGPORT say", async () => {
    for (const profile of ['app', 'vault']) {
      const run = await cli(['create', '--profile', profile, '--json']);
      expect(run.code, run.stderr).toBe(0);
      const out = parseJsonStdout(run.stdout) as { id: string; warnings: string[]; storage: string };
      expect(out.warnings).toEqual([]);
      expect(run.stderr).toMatch(/PGDATABASE=postgres is ignored/);
      const { sidecar } = await readSidecar(out.storage, profile, out.id);
      expect(sidecar.source).toMatchObject({ database: profile === 'app' ? app : vault, port: cluster.port, host: cluster.host, user: cluster.user });
    }
    expect(path.dirname((await stat(path.join(dir, 'backups', 'app'))).isDirectory() ? path.join(dir, 'backups', 'app', 'x') : '')).toBe(path.join(dir, 'backups', 'app'));
    expect((await stat(path.join(dir, 'vault', 'vault'))).isDirectory()).toBe(true);
  });

  it('a flag overrides the profile, and says so in --json warnings', async () => {
    const run = await cli(['create', '--profile', 'app', '--json', '-d', vault]);
    expect(run.code, run.stderr).toBe(0);
    const out = parseJsonStdout(run.stdout) as { warnings: string[]; database: string };
    expect(out.database).toBe(vault);
    expect(out.warnings).toEqual([`the command line overrides profile "app": database is ${vault}, the config says ${app}`]);
  });
});

describe('every command sees the same profiles, storages and clients', () => {
  it('list (no --profile) shows both profiles, each from its own storage; status checks both', async () => {
    const list = await cli(['list', '--json']);
    expect(list.code, list.stderr).toBe(0);
    const profiles = new Set((parseJsonStdout(list.stdout) as Array<{ profile: string }>).map((b) => b.profile));
    expect([...profiles].sort()).toEqual(['app', 'vault']);
    const status = await cli(['status', '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect((parseJsonStdout(status.stdout) as { profiles: Array<{ profile: string; backups: number }> }).profiles.map((p) => [p.profile, p.backups])).toEqual([
      ['app', 2],
      ['vault', 1],
    ]);
  });

  it('verify --all verifies the profile with its own storage too, with the relative pgBinDir of the defaults', async () => {
    const run = await cli(['verify', '--all', '--json']);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    const outcomes = (parseJsonStdout(run.stdout) as { outcomes: Array<{ profile: string; result: string }> }).outcomes;
    expect(outcomes.map((o) => o.profile).sort()).toEqual(['app', 'app', 'vault']);
    expect(outcomes.every((o) => o.result === 'passed')).toBe(true);
    expect((await stat(marker)).isFile()).toBe(true);
  });

  it('show and restore find a backup of the profile with its own storage without --profile', async () => {
    const vaultBackup = await readFile(path.join(dir, 'vault', 'vault'), 'utf8').catch(() => null);
    expect(vaultBackup).toBeNull(); // a directory
    const show = await cli(['show', 'latest', '--profile', 'vault', '--json']);
    expect(show.code, show.stderr).toBe(0);
    const id = (parseJsonStdout(show.stdout) as { id: string }).id;
    const anywhere = await cli(['show', id.slice(-6), '--json']);
    expect(anywhere.code, anywhere.stderr).toBe(0);
    const target = uniqueName('set_restored');
    const restored = await cli(['restore', id, '--target-db', target, '--create']);
    expect(restored.code, restored.stderr).toBe(0);
    expect(await cluster.query(target, 'select count(*)::int as n from t')).toEqual([{ n: 42 }]);
    await cluster.dropDatabase(target);
  });

  it.each([
    ['create'],
    ['list'],
    ['list', '--failed'],
    ['show', 'latest'],
    ['verify', 'latest'],
    ['restore', 'latest', '--dry-run'],
    ['prune', '--keep-last', '1'],
    ['status'],
    ['unlock'],
    ['check'],
  ])('an unknown --profile is exit 2: %s', async (...args) => {
    const run = await cli([...args, '--profile', 'nope', '--json']);
    expect(run.code, run.stderr).toBe(2);
    expect(parseJsonStdout(run.stdout)).toMatchObject({ error: { exitCode: 2, message: expect.stringContaining('"nope"') } });
  });

  it.each([['list'], ['status'], ['prune', '--keep-last', '1'], ['unlock'], ['show', 'latest']])(
    'without a config, an unknown --profile is exit 2 too: %s',
    async (...args) => {
      const bare = await makeTempDir('settings-bare');
      dirs.push(bare);
      const run = await runCli([...args, '--profile', 'nope', '--storage', path.join(dir, 'backups')], { env: baseEnv(), cwd: bare });
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toMatch(/no profile named "nope"/);
    },
  );
});

describe('without a config, a profile is one database\'s series', () => {
  let bare: string;
  let storage: string;
  const libpq = (database: string) => baseEnv({ ...cluster.env(database), PGDATABASE: database });

  beforeAll(async () => {
    bare = await makeTempDir('settings-noconfig');
    dirs.push(bare);
    storage = path.join(bare, 'backups');
    for (const db of [app, vault]) {
      const made = await runCli(['create', '--quiet', '--storage', storage], { env: libpq(db), cwd: bare });
      expect(made.code, made.stderr).toBe(0);
    }
  });

  it('show, verify and restore of "latest" take the newest backup of the database PGDATABASE (or --db-url) names, not of any profile', async () => {
    // vault's backup is the newer one; PGDATABASE names app.
    const shown = await runCli(['show', 'latest', '--json', '--storage', storage], { env: libpq(app), cwd: bare });
    expect(shown.code, shown.stderr).toBe(0);
    expect(parseJsonStdout(shown.stdout)).toMatchObject({ profile: app, database: { name: app } });
    const planned = await runCli(['restore', 'latest', '--target-db', app, '--clean', '--dry-run', '--json', '--storage', storage], { env: libpq(app), cwd: bare });
    expect(planned.code, planned.stderr).toBe(0);
    expect(parseJsonStdout(planned.stdout)).toMatchObject({ plan: { backup: { profile: app } } });
    const byUrl = await runCli(['show', 'latest', '--json', '--storage', storage, '--db-url', `postgres://${cluster.user}@${cluster.host}:${cluster.port}/${vault}`], { env: libpq(app), cwd: bare });
    expect(byUrl.code, byUrl.stderr).toBe(0);
    expect(parseJsonStdout(byUrl.stdout)).toMatchObject({ profile: vault });
    // A database with no backups there: exit 2, saying why, never another database's backup.
    const none = await runCli(['verify', 'latest', '--storage', storage], { env: libpq('postgres'), cwd: bare });
    expect(none.code, none.stderr).toBe(2);
    expect(none.stderr).toMatch(/no backup of database "postgres" \(PGDATABASE\)/);
    // No database named anywhere: any profile's newest, as before.
    const anyProfile = await runCli(['show', 'latest', '--json', '--storage', storage], { env: baseEnv(), cwd: bare });
    expect(anyProfile.code, anyProfile.stderr).toBe(0);
    expect(parseJsonStdout(anyProfile.stdout)).toMatchObject({ profile: vault });
    // ... but restore latest takes the newest backup of the database it restores into, and
    // refuses to guess when that one has none and several databases have.
    const server = baseEnv({ ...cluster.env(app), PGDATABASE: undefined });
    const intoApp = await runCli(['restore', 'latest', '-d', app, '--clean', '--dry-run', '--json', '--storage', storage], { env: server, cwd: bare });
    expect(intoApp.code, intoApp.stderr).toBe(0);
    expect(parseJsonStdout(intoApp.stdout)).toMatchObject({ plan: { backup: { profile: app } } });
    const elsewhere = await runCli(['restore', 'latest', '-d', `${app}_copy`, '--create', '--dry-run', '--storage', storage], { env: server, cwd: bare });
    expect(elsewhere.code, elsewhere.stderr).toBe(2);
    expect(elsewhere.stderr).toMatch(/"latest" is not clear here: there are backups of 2 databases/);
  });

  it('create --profile with no database named anywhere is exit 2 (libpq would take the user\'s name), and writes nothing; naming one is fine', async () => {
    const noDatabase = baseEnv({ ...cluster.env(app), PGDATABASE: undefined });
    const run = await runCli(['create', '--profile', vault, '--json', '--storage', storage], { env: noDatabase, cwd: bare });
    expect(run.code, run.stderr).toBe(2);
    expect(parseJsonStdout(run.stdout)).toMatchObject({
      error: {
        exitCode: 2,
        message: expect.stringContaining(`which database goes into profile "${vault}"? It is not in a config file (none was found from ${bare} up)`),
        hint: expect.stringMatching(/^point at the config with --config or BACKUPCTL_CONFIG \(cron starts in the home directory\)/),
      },
    });
    const listed = await runCli(['list', '--json', '--profile', vault, '--storage', storage], { env: baseEnv(), cwd: bare });
    expect((parseJsonStdout(listed.stdout) as unknown[]).length).toBe(1);
    // A database named (here by PGDATABASE) goes into the profile named for it by --profile.
    const named = await runCli(['create', '--quiet', '--profile', 'shop', '--storage', storage], { env: libpq(app), cwd: bare });
    expect(named.code, named.stderr).toBe(0);
    const shop = await runCli(['list', '--json', '--profile', 'shop', '--storage', storage], { env: baseEnv(), cwd: bare });
    expect(parseJsonStdout(shop.stdout)).toEqual([expect.objectContaining({ profile: 'shop', database: expect.objectContaining({ name: app }) })]);
  });
});
