import { dirname, resolve } from 'node:path';
import { isProfileName } from '../catalog/id.js';
import type { Config, Profile } from '../config/schema.js';
import { DEFAULT_STORAGE } from '../config/values.js';
import { usageError } from '../errors.js';
import { parseConnectionUrl, resolveConnection, urlHasPassword, type ConnectionSettings } from '../pg/connection.js';
import type { DumpOptions } from '../pg/dump.js';

/** Flags of `create` that shape the dump; undefined means "not given". */
export interface DumpFlags {
  format?: 'custom' | 'directory' | undefined;
  jobs?: number | undefined;
  compress?: number | string | undefined;
  schemaOnly?: boolean | undefined;
  dataOnly?: boolean | undefined;
  schema?: string[] | undefined;
  excludeSchema?: string[] | undefined;
  table?: string[] | undefined;
  excludeTable?: string[] | undefined;
  lockWaitTimeout?: string | undefined;
  globals?: boolean | undefined;
  tag?: string[] | undefined;
  note?: string | undefined;
}

export interface GlobalFlags {
  profile?: string | undefined;
  storage?: string | undefined;
  dbUrl?: string | undefined;
}

export interface LoadedConfigRef {
  config: Config;
  filepath: string | null;
}

/** One profile with every layer applied: what a backup run needs to know. */
export interface ResolvedProfile {
  name: string;
  /** True when the profile comes from the config file, false when built from flags/env. */
  configured: boolean;
  /** Things the operator should hear about (e.g. the environment overriding the profile's database). */
  warnings: string[];
  storage: string;
  pgBinDir: string | undefined;
  workDir: string | undefined;
  connection: ConnectionSettings;
  dump: DumpOptions;
  globals: boolean;
  tags: string[];
  note: string | null;
}

function configDir(loaded: LoadedConfigRef, cwd: string): string {
  return loaded.filepath ? dirname(loaded.filepath) : cwd;
}

/**
 * Where backups live: `--storage` > BACKUPCTL_STORAGE > the profile's storage > the
 * config's storage > ./backups. Paths from the config file are relative to the file;
 * paths from flags and the environment are relative to the working directory.
 */
export function resolveStorage(
  loaded: LoadedConfigRef,
  flags: GlobalFlags,
  env: Record<string, string | undefined>,
  cwd: string,
  profile?: Profile,
): string {
  const fromConfig = profile?.storage ?? loaded.config.storage;
  const value = flags.storage ?? env.BACKUPCTL_STORAGE;
  if (value !== undefined && value !== '') return isUrl(value) ? value : resolve(cwd, value);
  if (fromConfig) return isUrl(fromConfig) ? fromConfig : resolve(configDir(loaded, cwd), fromConfig);
  return resolve(cwd, DEFAULT_STORAGE);
}

function isUrl(value: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(value);
}

/** The profile named by --profile / BACKUPCTL_PROFILE / defaultProfile, if any. */
export function requestedProfile(loaded: LoadedConfigRef, flags: GlobalFlags, env: Record<string, string | undefined>): string | undefined {
  const name = flags.profile ?? (env.BACKUPCTL_PROFILE || undefined) ?? loaded.config.defaultProfile;
  if (name !== undefined && !isProfileName(name)) {
    throw usageError(`invalid profile name ${JSON.stringify(name)}`, 'profile names use letters, digits, "_", "-" and "."');
  }
  return name;
}

/**
 * The profile a run is about: the one named by --profile / BACKUPCTL_PROFILE /
 * defaultProfile, else the config's only profile; undefined when none is named and the
 * config has no profiles. A usage error when the config has several and none is named.
 * `configured`: the name is one of the config's profiles.
 */
export function selectProfileName(
  loaded: LoadedConfigRef,
  flags: GlobalFlags,
  env: Record<string, string | undefined>,
): { name: string | undefined; configured: boolean } {
  const profiles = loaded.config.profiles ?? {};
  const names = Object.keys(profiles);
  let name = requestedProfile(loaded, flags, env);
  if (name === undefined && names.length === 1) name = names[0];
  if (name === undefined && names.length > 1) {
    throw usageError(`the config defines ${names.length} profiles; choose one with --profile`, `profiles: ${names.join(', ')}`);
  }
  return { name, configured: name !== undefined && Object.hasOwn(profiles, name) };
}

/** A database name turned into a profile name (for runs without a config file). */
export function profileNameFor(database: string): string {
  const cleaned = database.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[^A-Za-z0-9]+/, '').replace(/\.\.+/g, '.').slice(0, 63);
  return cleaned === '' ? 'default' : cleaned;
}

/**
 * Picks and resolves the profile of a backup run. With a config file that has profiles,
 * the profile must be one of them (chosen by flag, env, defaultProfile, or being the only
 * one). Without profiles, the run is described by flags and the libpq environment and
 * the profile is named after the database.
 */
export function resolveProfile(input: {
  loaded: LoadedConfigRef;
  flags: GlobalFlags & DumpFlags;
  env: Record<string, string | undefined>;
  cwd: string;
}): ResolvedProfile {
  const { loaded, flags, env, cwd } = input;
  const profiles = loaded.config.profiles ?? {};
  const names = Object.keys(profiles);
  const { name, configured } = selectProfileName(loaded, flags, env);
  if (name !== undefined && !configured && names.length > 0) {
    throw usageError(`no profile named "${name}" in ${loaded.filepath ?? 'the config'}`, `profiles: ${names.join(', ')}`);
  }
  if (flags.dbUrl !== undefined && urlHasPassword(flags.dbUrl)) {
    throw usageError(
      '--db-url must not contain a password: command lines are visible to every user of the machine',
      'put the password in PGPASSWORD, ~/.pgpass (or PGPASSFILE), DATABASE_URL, or the profile\'s passwordFile',
    );
  }
  const profile: Profile = { ...(loaded.config.defaults ?? {}), ...(configured && name ? profiles[name] : {}) };
  const connection = resolveConnection({
    flagUrl: flags.dbUrl,
    env,
    profile,
    configDir: configDir(loaded, cwd),
  });
  const dump = resolveDumpOptions(flags, profile);
  const tags = [...new Set([...(profile.tags ?? []), ...(flags.tag ?? [])])];
  const warnings = configured && name ? environmentOverrides(name, profile, connection, flags.dbUrl !== undefined) : [];
  return {
    name: name ?? profileNameFor(connection.database),
    configured,
    warnings,
    storage: resolveStorage(loaded, flags, env, cwd, configured ? profile : undefined),
    pgBinDir: resolvePath(profile.pgBinDir ?? loaded.config.pgBinDir, configDir(loaded, cwd)),
    workDir: resolvePath(loaded.config.workDir, configDir(loaded, cwd)),
    connection,
    dump,
    globals: flags.globals ?? profile.globals ?? true,
    tags,
    note: flags.note ?? profile.note ?? null,
  };
}

/**
 * The environment outranks the config file (flags > env > config), which is what CI
 * wants; but a stray PGDATABASE in cron's environment silently backing up another
 * database under a configured profile's name is a trap, so say it out loud.
 */
function environmentOverrides(name: string, profile: Profile, connection: ConnectionSettings, fromFlag: boolean): string[] {
  const configuredUrl = profile.url ? parseConnectionUrl(profile.url, 'profile url') : {};
  const expected = {
    database: profile.database ?? configuredUrl.database,
    host: profile.host ?? configuredUrl.host,
    port: profile.port ?? configuredUrl.port,
    user: profile.user ?? configuredUrl.user,
  };
  const source = fromFlag ? '--db-url' : 'the environment (PG* variables or DATABASE_URL)';
  return (Object.keys(expected) as Array<keyof typeof expected>)
    .filter((key) => expected[key] !== undefined && expected[key] !== connection[key])
    .map((key) => `${source} overrides profile "${name}": ${key} is ${connection[key]}, the config says ${expected[key]}`);
}

function resolvePath(value: string | undefined, base: string): string | undefined {
  return value === undefined ? undefined : resolve(base, value);
}

/** Flags over profile over defaults; --jobs > 1 implies the directory format. */
export function resolveDumpOptions(flags: DumpFlags, profile: Profile): DumpOptions {
  const jobs = flags.jobs ?? profile.jobs;
  const explicitFormat = flags.format ?? profile.format;
  // Only a conflict between two flags is an error: `--format custom` alone overrides a profile's jobs.
  if (flags.format === 'custom' && flags.jobs !== undefined && flags.jobs > 1) {
    throw usageError('--jobs needs the directory format: pg_dump cannot write a custom-format archive in parallel', 'drop --format custom, or use --jobs 1');
  }
  const format = flags.jobs !== undefined && flags.jobs > 1 && flags.format === undefined ? 'directory' : (explicitFormat ?? (jobs !== undefined && jobs > 1 ? 'directory' : 'custom'));
  const schemaOnly = flags.schemaOnly ?? profile.schemaOnly ?? false;
  const dataOnly = flags.dataOnly ?? profile.dataOnly ?? false;
  if (schemaOnly && dataOnly) throw usageError('--schema-only and --data-only cannot be used together');
  const lockWaitTimeout = flags.lockWaitTimeout ?? profile.lockWaitTimeout;
  if (lockWaitTimeout !== undefined && !/^\d+(ms|s|min|h)?$/.test(String(lockWaitTimeout))) {
    throw usageError(`--lock-wait-timeout must look like 30s, 5min, 1500ms or a number of milliseconds, got ${lockWaitTimeout}`);
  }
  return {
    format,
    jobs: format === 'directory' ? (jobs ?? 1) : 1,
    compress: flags.compress ?? profile.compress ?? null,
    schemaOnly,
    dataOnly,
    schemas: flags.schema ?? profile.schemas ?? [],
    excludeSchemas: flags.excludeSchema ?? profile.excludeSchemas ?? [],
    tables: flags.table ?? profile.tables ?? [],
    excludeTables: flags.excludeTable ?? profile.excludeTables ?? [],
    lockWaitTimeout: lockWaitTimeout === undefined ? null : String(lockWaitTimeout),
  };
}
