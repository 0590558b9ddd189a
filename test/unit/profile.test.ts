import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadedConfig } from '../../src/config/load.js';
import { resolveSettings, type SettingsFlags } from '../../src/config/resolve.js';
import type { Config, Profile } from '../../src/config/schema.js';
import { isProfileName } from '../../src/catalog/id.js';
import { profileNameFor, resolveDumpOptions, resolveProfile, type DumpFlags } from '../../src/core/profile.js';
import type { ConnectionFlags } from '../../src/pg/connection.js';
import { BackupctlError, ExitCode } from '../../src/errors.js';
import { redactUrl, resolveConnection, urlHasPassword } from '../../src/pg/connection.js';
import { lookupPgpass } from '../../src/pg/pgpass.js';

const CWD = '/work/here';
const CONFIG_FILE = '/etc/backupctl/backupctl.config.json';

type LoadedConfigRef = LoadedConfig;

function loaded(config: Config, filepath: string | null = CONFIG_FILE): LoadedConfigRef {
  return { config, filepath };
}

function settingsFor(config: LoadedConfigRef, flags: SettingsFlags, env: Record<string, string | undefined>) {
  return resolveSettings({ loaded: config, flags, env, cwd: CWD });
}

/** The storage a run resolves to (the default storage, or a profile's). */
function resolveStorage(config: LoadedConfigRef, flags: SettingsFlags, env: Record<string, string | undefined>, _cwd: string, profile?: Profile): string {
  const withProfile = profile ? loaded({ ...config.config, profiles: { p: profile } }, config.filepath) : config;
  const settings = settingsFor(withProfile, flags, env);
  return profile ? (settings.profiles.get('p')?.storage as string) : settings.storage;
}

const NO_CONFIG = loaded({}, null);

/** The libpq environment of a run without a config file. */
const PG_ENV = { PGHOST: 'db.example.com', PGPORT: '6543', PGUSER: 'backup', PGDATABASE: 'app' };

function resolve(input: { config?: LoadedConfigRef; flags?: SettingsFlags & ConnectionFlags & DumpFlags; env?: Record<string, string | undefined> }) {
  const flags = input.flags ?? {};
  const settings = settingsFor(input.config ?? NO_CONFIG, flags, input.env ?? PG_ENV);
  return resolveProfile(settings, { ...flags, url: flags.url ?? flags.dbUrl });
}

/** The BackupctlError thrown by fn (exit code checked). */
function usage(fn: () => unknown): BackupctlError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(BackupctlError);
    expect((error as BackupctlError).exitCode).toBe(ExitCode.USAGE);
    return error as BackupctlError;
  }
  throw new Error('expected a usage error, got none');
}

const TWO_PROFILES: Config = {
  storage: '../backups',
  defaults: { user: 'backup', port: 5433, format: 'custom', tags: ['prod'], globals: true },
  profiles: {
    app: { host: 'app-db', database: 'app_production', excludeTables: ['public.sessions'], note: 'app note' },
    billing: { host: 'billing-db', database: 'billing', user: 'billing_backup', storage: '/vault', format: 'directory', jobs: 4, globals: false, tags: ['pci'] },
  },
};

describe('resolveProfile: which profile', () => {
  it('without a config: the libpq environment, and a profile named after the database', () => {
    const profile = resolve({});
    expect(profile).toMatchObject({ name: 'app', configured: false, storage: path.resolve(CWD, './backups'), globals: true, tags: [], note: null });
    expect(profile.connection).toMatchObject({ host: 'db.example.com', port: 6543, user: 'backup', database: 'app' });
    expect(profile.dump).toMatchObject({ format: 'custom', jobs: 1 });
  });

  it('names the profile after an awkward database name safely, one name to one profile', () => {
    expect(resolve({ env: { ...PG_ENV, PGDATABASE: 'my db/../x' } }).name).toMatch(/^my_db_\._x-[0-9a-f]{8}$/);
    expect(profileNameFor('my_db')).toBe('my_db');
    expect(profileNameFor('my db')).toMatch(/^my_db-[0-9a-f]{8}$/);
    expect(profileNameFor('..')).toMatch(/^db-[0-9a-f]{8}$/);
    expect(profileNameFor('Ünï')).toMatch(/^n_-[0-9a-f]{8}$/);
    // Names that would clean to the same profile name get different ones.
    const awkward = ['my db', 'my_db', 'my-db', 'my.db', 'my  db', 'продажи', 'склад', '数据', '..', '.', 'x'.repeat(63), 'x'.repeat(64), 'x'.repeat(100), `${'x'.repeat(63)}y`, 'a..b', 'a.b'];
    const names = awkward.map(profileNameFor);
    expect(new Set(names).size).toBe(awkward.length);
    for (const name of names) expect(isProfileName(name), name).toBe(true);
    expect(profileNameFor('x'.repeat(100))).toHaveLength(63);
    // Stable across runs: the next backup of the same database lands in the same profile.
    expect(profileNameFor('продажи')).toBe(profileNameFor('продажи'));
  });

  it('the only profile is chosen without --profile', () => {
    const config = loaded({ profiles: { solo: { host: 'h', database: 'solo_db' } } });
    const profile = resolve({ config, env: {} });
    expect(profile).toMatchObject({ name: 'solo', configured: true });
    expect(profile.connection.database).toBe('solo_db');
  });

  it('several profiles and none chosen is a usage error naming them', () => {
    const error = usage(() => resolve({ config: loaded(TWO_PROFILES), env: {} }));
    expect(error.message).toMatch(/2 profiles.*--profile/);
    expect(error.hint).toContain('app, billing');
  });

  it('an unknown or unsafe profile name is a usage error', () => {
    expect(usage(() => resolve({ config: loaded(TWO_PROFILES), flags: { profile: 'nope' }, env: {} })).hint).toContain('app, billing');
    usage(() => resolve({ config: loaded(TWO_PROFILES), flags: { profile: '../x' }, env: {} }));
  });

  it('--profile > BACKUPCTL_PROFILE > defaultProfile', () => {
    const config = loaded({ ...TWO_PROFILES, defaultProfile: 'app' });
    expect(resolve({ config, env: {} }).name).toBe('app');
    expect(resolve({ config, env: { BACKUPCTL_PROFILE: 'billing' } }).name).toBe('billing');
    expect(resolve({ config, env: { BACKUPCTL_PROFILE: '' } }).name).toBe('app');
    expect(resolve({ config, flags: { profile: 'app' }, env: { BACKUPCTL_PROFILE: 'billing' } }).name).toBe('app');
  });

  it('a profile inherits the defaults and overrides them', () => {
    const app = resolve({ config: loaded(TWO_PROFILES), flags: { profile: 'app' }, env: {} });
    expect(app.connection).toMatchObject({ host: 'app-db', port: 5433, user: 'backup', database: 'app_production' });
    expect(app.dump).toMatchObject({ format: 'custom', jobs: 1, excludeTables: ['public.sessions'] });
    expect(app).toMatchObject({ globals: true, tags: ['prod'], note: 'app note' });
    const billing = resolve({ config: loaded(TWO_PROFILES), flags: { profile: 'billing' }, env: {} });
    expect(billing.connection).toMatchObject({ host: 'billing-db', port: 5433, user: 'billing_backup', database: 'billing' });
    expect(billing.dump).toMatchObject({ format: 'directory', jobs: 4 });
    expect(billing).toMatchObject({ globals: false, tags: ['pci'], storage: '/vault' });
  });

  it('flags beat the profile: dump options, tags (added, deduplicated), note, globals', () => {
    const billing = resolve({
      config: loaded(TWO_PROFILES),
      flags: { profile: 'billing', jobs: 2, tag: ['pci', 'manual'], note: 'by hand', globals: true, excludeTable: ['x.*'] },
      env: {},
    });
    expect(billing.dump).toMatchObject({ format: 'directory', jobs: 2, excludeTables: ['x.*'] });
    expect(billing).toMatchObject({ tags: ['pci', 'manual'], note: 'by hand', globals: true });
    const app = resolve({ config: loaded(TWO_PROFILES), flags: { profile: 'app', globals: false }, env: {} });
    expect(app.globals).toBe(false);
  });

  it('the profile beats the environment, which fills only what the profile leaves unset; flags beat both', () => {
    const env = { PGHOST: 'env-host', PGDATABASE: 'env_db', PGPORT: '7777', PGSSLMODE: 'require' };
    const app = resolve({ config: loaded(TWO_PROFILES), flags: { profile: 'app' }, env });
    expect(app.connection).toMatchObject({ host: 'app-db', port: 5433, user: 'backup', database: 'app_production', sslmode: 'require' });
    expect(app.warnings).toEqual([]);
    expect(app.notes.join('\n')).toMatch(/PGDATABASE=env_db is ignored: profile "app" sets database app_production/);
    expect(app.notes.join('\n')).toMatch(/PGPORT=7777 is ignored/);
    // DATABASE_URL is named, not quoted as if it were the database's name.
    const fromUrl = resolve({ config: loaded(TWO_PROFILES), flags: { profile: 'app' }, env: { DATABASE_URL: 'postgres://u@url-host:5432/url_db' } });
    expect(fromUrl.notes.join('\n')).toMatch(/DATABASE_URL's database url_db is ignored: profile "app" sets database app_production/);
    const flagged = resolve({ config: loaded(TWO_PROFILES), flags: { profile: 'app', dbUrl: 'postgres://flag-user@flag-host:7000/flag_db' }, env });
    expect(flagged.connection).toMatchObject({ host: 'flag-host', port: 7000, user: 'flag-user', database: 'flag_db' });
    // Every override that applies is a warning (and in --json's warnings).
    expect(flagged.warnings).toEqual(expect.arrayContaining([expect.stringMatching(/database is flag_db, the config says app_production/)]));
    // The profile keeps its name (and storage) whatever the connection says.
    expect(flagged.name).toBe('app');
    const short = resolve({ config: loaded(TWO_PROFILES), flags: { profile: 'app', host: 'h2', port: 6000, user: 'u2', database: 'd2' }, env });
    expect(short.connection).toMatchObject({ host: 'h2', port: 6000, user: 'u2', database: 'd2' });
    expect(short.warnings).toHaveLength(4);
  });

  it("a profile's own url wins over the defaults' discrete fields", () => {
    const config = loaded({ defaults: { user: 'backup', port: 5433 }, profiles: { p: { url: 'postgres://owner@own-host:6000/own_db' } } });
    expect(resolve({ config, env: {} }).connection).toMatchObject({ host: 'own-host', port: 6000, user: 'owner', database: 'own_db' });
  });

  it('refuses --db-url with a password, without repeating it', () => {
    for (const url of ['postgres://u:s3cr3t-pw@h/db', 'postgresql://h/db?user=u&password=s3cr3t-pw']) {
      const error = usage(() => resolve({ flags: { dbUrl: url } }));
      expect(error.message).toMatch(/connection URL on the command line must not contain a password/);
      expect(`${error.message} ${error.hint ?? ''}`).not.toContain('s3cr3t-pw');
    }
  });
});

describe('resolveStorage', () => {
  const config = loaded({ storage: './top' });
  it('--storage > profile storage > config storage > BACKUPCTL_STORAGE > ./backups', () => {
    const profile: Profile = { storage: './per-profile' };
    expect(resolveStorage(config, { storage: 'flag' }, { BACKUPCTL_STORAGE: 'env' }, CWD, profile)).toBe('/work/here/flag');
    expect(resolveStorage(config, {}, { BACKUPCTL_STORAGE: 'env' }, CWD, profile)).toBe('/etc/backupctl/per-profile');
    expect(resolveStorage(config, {}, { BACKUPCTL_STORAGE: 'env' }, CWD)).toBe('/etc/backupctl/top');
    expect(resolveStorage(loaded({}), {}, { BACKUPCTL_STORAGE: 'env' }, CWD)).toBe('/work/here/env');
    expect(resolveStorage(config, {}, { BACKUPCTL_STORAGE: '' }, CWD, profile)).toBe('/etc/backupctl/per-profile');
    expect(resolveStorage(config, {}, {}, CWD)).toBe('/etc/backupctl/top');
    expect(resolveStorage(loaded({}), {}, {}, CWD)).toBe('/work/here/backups');
    expect(resolveStorage(NO_CONFIG, {}, {}, CWD)).toBe('/work/here/backups');
    expect(settingsFor(config, {}, { BACKUPCTL_STORAGE: 'env' }).notes.join()).toMatch(/BACKUPCTL_STORAGE is ignored/);
  });

  it('paths from the config are relative to the config file; URLs are kept as they are', () => {
    expect(resolveStorage(loaded({ storage: '../b' }), {}, {}, CWD)).toBe('/etc/b');
    expect(resolveStorage(loaded({ storage: 's3://bucket/prefix' }), {}, {}, CWD)).toBe('s3://bucket/prefix');
    expect(resolveStorage(NO_CONFIG, { storage: 'sftp://u@h/p' }, {}, CWD)).toBe('sftp://u@h/p');
    expect(resolveStorage(NO_CONFIG, { storage: '/abs' }, {}, CWD)).toBe('/abs');
  });
});

describe('resolveDumpOptions', () => {
  it('defaults: custom, one job, everything', () => {
    expect(resolveDumpOptions({}, {}).dump).toEqual({
      format: 'custom',
      jobs: 1,
      compress: 0,
      schemaOnly: false,
      dataOnly: false,
      schemas: [],
      excludeSchemas: [],
      tables: [],
      excludeTables: [],
      lockWaitTimeout: null,
    });
  });

  it('--jobs 2 implies the directory format', () => {
    expect(resolveDumpOptions({ jobs: 2 }, {}).dump).toMatchObject({ format: 'directory', jobs: 2 });
    expect(resolveDumpOptions({ jobs: 2 }, { format: 'custom' }).dump).toMatchObject({ format: 'directory', jobs: 2 });
    expect(resolveDumpOptions({}, { jobs: 3 }).dump).toMatchObject({ format: 'directory', jobs: 3 });
    expect(resolveDumpOptions({ jobs: 1 }, {}).dump).toMatchObject({ format: 'custom', jobs: 1 });
    expect(resolveDumpOptions({ format: 'directory' }, {}).dump).toMatchObject({ format: 'directory', jobs: 1 });
    expect(resolveDumpOptions({ jobs: 1 }, { format: 'directory', jobs: 4 }).dump).toMatchObject({ format: 'directory', jobs: 1 });
  });

  it('--format custom --jobs 2 is a usage error; --format custom overrides a profile\'s jobs', () => {
    expect(usage(() => resolveDumpOptions({ format: 'custom', jobs: 2 }, {})).message).toMatch(/--jobs needs the directory format/);
    expect(resolveDumpOptions({ format: 'custom' }, { format: 'directory', jobs: 4 }).dump).toMatchObject({ format: 'custom', jobs: 1 });
  });

  it('flags beat the profile, lists are replaced rather than merged', () => {
    const profile: Profile = { pgCompress: 'zstd:3', schemas: ['a'], excludeSchemas: ['b'], tables: ['c'], excludeTables: ['d'], lockWaitTimeout: 120000 };
    expect(resolveDumpOptions({}, profile).dump).toMatchObject({ compress: 'zstd:3', schemas: ['a'], excludeSchemas: ['b'], tables: ['c'], excludeTables: ['d'], lockWaitTimeout: '120000' });
    expect(
      resolveDumpOptions({ pgCompress: 0, schema: ['x'], excludeSchema: ['y'], table: ['z'], excludeTable: ['w'], lockWaitTimeout: '5s' }, profile).dump,
    ).toMatchObject({ compress: 0, schemas: ['x'], excludeSchemas: ['y'], tables: ['z'], excludeTables: ['w'], lockWaitTimeout: '5s' });
  });

  it('compression: the zstd stage by default (pg_dump -Z0); pg_dump\'s own only when asked, never both', () => {
    expect(resolveDumpOptions({}, {})).toMatchObject({ dump: { compress: 0 }, compression: { codec: 'zstd' } });
    expect(resolveDumpOptions({ compress: 'gzip:9' }, {})).toMatchObject({ dump: { compress: 0 }, compression: { codec: 'gzip', level: 9 } });
    expect(resolveDumpOptions({ compress: 'none' }, {})).toMatchObject({ dump: { compress: 0 }, compression: { codec: 'none' } });
    expect(resolveDumpOptions({}, { pgCompress: 6 })).toMatchObject({ dump: { compress: 6 }, compression: { codec: 'none' } });
    expect(resolveDumpOptions({}, { compress: 'zstd:19' })).toMatchObject({ dump: { compress: 0 }, compression: { codec: 'zstd', level: 19 } });
    // A flag for one kind overrides the configured other kind.
    expect(resolveDumpOptions({ compress: 'zstd' }, { pgCompress: 6 })).toMatchObject({ dump: { compress: 0 }, compression: { codec: 'zstd' } });
    expect(resolveDumpOptions({ pgCompress: 'lz4' }, { compress: 'gzip' })).toMatchObject({ dump: { compress: 'lz4' }, compression: { codec: 'none' } });
    expect(resolveDumpOptions({ pgCompress: 0 }, {})).toMatchObject({ dump: { compress: 0 }, compression: { codec: 'zstd' } });
    expect(() => resolveDumpOptions({ compress: 'zstd', pgCompress: 6 }, {})).toThrow(/cannot both compress/);
  });

  it('--schema-only with --data-only, and a bad lock wait timeout, are usage errors', () => {
    usage(() => resolveDumpOptions({ schemaOnly: true, dataOnly: true }, {}));
    usage(() => resolveDumpOptions({ schemaOnly: true }, { dataOnly: true }));
    usage(() => resolveDumpOptions({ lockWaitTimeout: '30 seconds' }, {}));
    usage(() => resolveDumpOptions({ lockWaitTimeout: "1s'; drop table x; --" }, {}));
    expect(resolveDumpOptions({ schemaOnly: true }, {}).dump).toMatchObject({ schemaOnly: true, dataOnly: false });
  });
});

describe('resolveConnection', () => {
  let dir: string;
  let goodPgpass: string;
  let openPgpass: string;
  let passwordFile: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'backupctl-profile-'));
    const content = [
      '# comment',
      'other-host:5432:*:backup:not-this-one',
      'db.example.com:6543:app:backup:pgpass-secret',
      'db.example.com:*:*:backup:second-match',
      'localhost:5432:*:sock\\:user:escaped\\:colon\\\\back',
      '*:*:*:*:wildcard-secret',
      '',
    ].join('\n');
    goodPgpass = path.join(dir, 'pgpass-0600');
    await writeFile(goodPgpass, content, { mode: 0o600 });
    await chmod(goodPgpass, 0o600);
    openPgpass = path.join(dir, 'pgpass-0644');
    await writeFile(openPgpass, content, { mode: 0o644 });
    await chmod(openPgpass, 0o644);
    passwordFile = path.join(dir, 'app.password');
    await writeFile(passwordFile, 'file-secret\nsecond line ignored\n', { mode: 0o600 });
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const base = { profile: {} };

  it('flags > profile fields > profile url > DATABASE_URL > PG* variables > defaults', () => {
    const profile = { url: 'postgres://url-user@url-host:1111/url_db', host: 'field-host', database: 'field_db' };
    expect(resolveConnection({ ...base, env: { USER: 'me' }, profile })).toMatchObject({ host: 'field-host', port: 1111, user: 'url-user', database: 'field_db' });
    const pg = { USER: 'me', PGHOST: 'pg-host', PGPORT: '2222', PGUSER: 'pg-user' };
    expect(resolveConnection({ ...base, env: pg, profile })).toMatchObject({ host: 'field-host', port: 1111, user: 'url-user', database: 'field_db' });
    expect(resolveConnection({ ...base, env: pg, profile: { database: 'only_db' } })).toMatchObject({ host: 'pg-host', port: 2222, user: 'pg-user', database: 'only_db' });
    const withUrl = { ...pg, DATABASE_URL: 'postgres://env-user@env-host/env_db' };
    expect(resolveConnection({ ...base, env: withUrl, profile: {} })).toMatchObject({ host: 'env-host', port: 2222, user: 'env-user', database: 'env_db' });
    expect(resolveConnection({ ...base, env: withUrl, profile, flags: { url: 'postgresql://flag-host:3333/flag_db' } })).toMatchObject({
      host: 'flag-host',
      port: 3333,
      user: 'url-user',
      database: 'flag_db',
    });
  });

  it('defaults: port 5432, the OS user, a database named after the user', () => {
    const settings = resolveConnection({ ...base, env: { USER: 'osuser', PGHOST: 'h', PGPASSFILE: '/nonexistent' } });
    expect(settings).toMatchObject({ host: 'h', port: 5432, user: 'osuser', database: 'osuser', password: undefined, passwordSource: undefined });
    const noHost = resolveConnection({ ...base, env: { USER: 'osuser', PGPASSFILE: '/nonexistent' } });
    expect(noHost.host === 'localhost' || noHost.host.startsWith('/')).toBe(true);
  });

  it('rejects a bad port or sslmode from the environment as usage errors', () => {
    usage(() => resolveConnection({ ...base, env: { PGPORT: '99999' } }));
    usage(() => resolveConnection({ ...base, env: { PGSSLMODE: 'sometimes' } }));
    usage(() => resolveConnection({ ...base, env: {}, flags: { url: 'mysql://h/db' } }));
  });

  it('password: the profile\'s passwordFile / passwordEnv > PGPASSWORD > pgpass', () => {
    const env = { ...PG_ENV, PGPASSFILE: goodPgpass };
    expect(resolveConnection({ ...base, env })).toMatchObject({ password: 'pgpass-secret', passwordSource: expect.stringMatching(/password file/) });
    const fromFile = resolveConnection({ ...base, env, profile: { passwordFile } });
    expect(fromFile).toMatchObject({ password: 'file-secret', passwordSource: `passwordFile ${passwordFile}` });
    const fromEnvVar = resolveConnection({ ...base, env: { ...env, APP_PW: 'env-var-secret' }, profile: { passwordEnv: 'APP_PW' } });
    expect(fromEnvVar).toMatchObject({ password: 'env-var-secret', passwordSource: '$APP_PW' });
    const overPgpassword = resolveConnection({ ...base, env: { ...env, PGPASSWORD: 'pgpassword' }, profile: { passwordFile: passwordFile } });
    expect(overPgpassword).toMatchObject({ password: 'file-secret' });
    const fromPgpassword = resolveConnection({ ...base, env: { ...env, PGPASSWORD: 'pgpassword' } });
    expect(fromPgpassword).toMatchObject({ password: 'pgpassword', passwordSource: 'PGPASSWORD' });
    const fromUrl = resolveConnection({ ...base, env: { ...env, DATABASE_URL: 'postgres://u:url-pw@h/d' } });
    expect(fromUrl).toMatchObject({ password: 'url-pw', passwordSource: 'DATABASE_URL' });
  });

  it("the config's password goes only to the profile's own role, host and port; another takes its own from PGPASSWORD or pgpass", () => {
    const env = { ...PG_ENV, PGPASSFILE: goodPgpass };
    const profile = { host: 'db.example.com', port: 6543, user: 'backup', database: 'app', passwordFile };
    // The profile's own server and role (another database is still theirs): the file's password.
    const own = resolveConnection({ env, profile, flags: { database: 'postgres' } });
    expect(own).toMatchObject({ password: 'file-secret' });
    expect(own).not.toHaveProperty('withheldPassword');
    expect(resolveConnection({ env, profile, flags: { url: 'postgres://backup@db.example.com:6543/other' } })).toMatchObject({ password: 'file-secret' });
    // Another role (-U postgres): pgpass's line for it, never the profile's file.
    const superuser = resolveConnection({ env, profile, flags: { user: 'postgres' } });
    expect(superuser).toMatchObject({ user: 'postgres', password: 'wildcard-secret', passwordSource: expect.stringMatching(/password file/) });
    // Another server (a verify server's URL), with PGPASSWORD set: PGPASSWORD.
    const verifyServer = resolveConnection({ env: { ...env, PGPASSWORD: 'pgpassword' }, profile, flags: { url: 'postgres://verify@scratch-db/postgres' } });
    expect(verifyServer).toMatchObject({ host: 'scratch-db', user: 'verify', password: 'pgpassword', passwordSource: 'PGPASSWORD' });
    // Another port, nothing else to go on: no password at all, and the hint's facts.
    const otherPort = resolveConnection({ env: { ...PG_ENV, PGPASSFILE: '/nonexistent' }, profile: { ...profile, passwordEnv: undefined }, flags: { port: 6544 } });
    expect(otherPort).toMatchObject({ password: undefined, passwordSource: undefined, withheldPassword: { source: `passwordFile ${passwordFile}`, owner: 'backup@db.example.com:6543' } });
    // Fields the config leaves to the environment are the profile's too: PGUSER's role gets the file's password.
    expect(resolveConnection({ env: { ...env, PGUSER: 'backup', PGHOST: 'db.example.com' }, profile: { passwordFile }, flags: { user: 'backup' } })).toMatchObject({ password: 'file-secret' });
  });

  it('a missing passwordEnv variable or passwordFile is a usage error that does not leak', () => {
    expect(usage(() => resolveConnection({ ...base, env: PG_ENV, profile: { passwordEnv: 'NOPE' } })).message).toMatch(/NOPE/);
    expect(usage(() => resolveConnection({ ...base, env: PG_ENV, profile: { passwordFile: path.join(dir, 'missing.pw') } })).message).toMatch(
      /cannot read password file/,
    );
    // A FIFO or a device must not hang the run: only regular files are read.
    expect(usage(() => resolveConnection({ ...base, env: PG_ENV, profile: { passwordFile: '/dev/zero' } })).message).toMatch(/not a regular file/);
  });

  it('pgpass: read from PGPASSFILE at mode 0600, ignored at 0644', () => {
    const good = resolveConnection({ ...base, env: { ...PG_ENV, PGPASSFILE: goodPgpass } });
    expect(good.password).toBe('pgpass-secret');
    const open = resolveConnection({ ...base, env: { ...PG_ENV, PGPASSFILE: openPgpass } });
    expect(open.password).toBeUndefined();
    expect(open.passwordSource).toBeUndefined();
    // ~/.pgpass through HOME when PGPASSFILE is not set.
    const home = resolveConnection({ ...base, env: { ...PG_ENV, HOME: '/nonexistent-home' } });
    expect(home.password).toBeUndefined();
  });

  it('pgpass: first matching line wins, wildcards, escapes, a socket directory matches localhost', () => {
    const env = { PGPASSFILE: goodPgpass };
    expect(resolveConnection({ ...base, env: { ...env, PGHOST: 'db.example.com', PGPORT: '1', PGUSER: 'backup', PGDATABASE: 'x' } }).password).toBe('second-match');
    expect(resolveConnection({ ...base, env: { ...env, PGHOST: 'elsewhere', PGUSER: 'anyone', PGDATABASE: 'x' } }).password).toBe('wildcard-secret');
    expect(resolveConnection({ ...base, env: { ...env, PGHOST: '/run/postgresql', PGUSER: 'sock:user', PGDATABASE: 'x' } }).password).toBe('escaped:colon\\back');
  });

  it('lookupPgpass on its own', () => {
    const query = { host: 'h', port: 5432, database: 'd', user: 'u' };
    expect(lookupPgpass('h:5432:d:u:pw', query)).toBe('pw');
    expect(lookupPgpass('h:5432:d:u:pw:with:colons', query)).toBe('pw:with:colons');
    expect(lookupPgpass('h:5433:d:u:pw', query)).toBeUndefined();
    expect(lookupPgpass('malformed line', query)).toBeUndefined();
    expect(lookupPgpass('\r\nh:*:*:u:crlf\r\n', query)).toBe('crlf');
  });
});

describe('redactUrl / urlHasPassword', () => {
  it('masks passwords in the userinfo and the query', () => {
    expect(redactUrl('postgres://u:secret@h:5432/db')).toBe('postgres://u:***@h:5432/db');
    expect(redactUrl('postgresql://h/db?user=u&password=secret&sslmode=require')).toBe('postgresql://h/db?user=u&password=***&sslmode=require');
    expect(redactUrl('postgres://u:p%40ss@h/db')).not.toContain('p%40ss');
  });

  it('leaves URLs without a password alone', () => {
    expect(redactUrl('postgres://u@h:5432/db')).toBe('postgres://u@h:5432/db');
    expect(redactUrl('postgres://h/db?sslmode=require')).toBe('postgres://h/db?sslmode=require');
  });

  it('masks what it can in strings that are not URLs', () => {
    const redacted = redactUrl('postgres://u:sec ret@h/db');
    expect(redacted).not.toContain('sec ret');
    expect(redactUrl('not a url password=hunter2')).not.toContain('hunter2');
  });

  it('urlHasPassword', () => {
    expect(urlHasPassword('postgres://u:p@h/db')).toBe(true);
    expect(urlHasPassword('postgres://h/db?password=p')).toBe(true);
    expect(urlHasPassword('postgres://u@h/db')).toBe(false);
    expect(urlHasPassword('postgres://u:@h/db')).toBe(false);
  });
});
