import { chosenProfile, type ProfileSettings, type ResolvedSettings } from '../config/resolve.js';
import type { Profile } from '../config/schema.js';
import { profileNameFor, profileOfConnection } from './profile-name.js';
import { usageError } from '../errors.js';
import { parseConnectionUrl, resolveConnectionLayers, urlHasPassword, type ConnectionFlags, type ConnectionSettings, type ProfileConnection } from '../pg/connection.js';
import type { DumpOptions } from '../pg/dump.js';
import { pgCompressIsOff, type EncryptionSettings } from '../config/schema.js';
import { DEFAULT_COMPRESSION, parseCompression, type CompressionOptions } from '../pipeline/codecs/index.js';

/** Flags of `create` that shape the dump; undefined means "not given". */
export interface DumpFlags {
  format?: 'custom' | 'directory' | undefined;
  jobs?: number | undefined;
  /** The artifact's compression stage: zstd[:N], gzip[:N], none. */
  compress?: string | undefined;
  /** pg_dump's own --compress. */
  pgCompress?: number | string | undefined;
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

/** Flags of `create` (and of the readers) that add key material: see core/keys.ts. */
export type { KeyFlags } from './keys.js';

/** One profile with every layer applied: what a backup run needs to know. */
export interface ResolvedProfile {
  name: string;
  /** True when the profile comes from the config file, false when built from flags/env. */
  configured: boolean;
  /** Overrides that applied (a flag over the config's value): printed, and in `--json`'s warnings. */
  warnings: string[];
  /** Environment values the config took precedence over: printed as information. */
  notes: string[];
  storage: string;
  pgBinDir: string | undefined;
  workDir: string | undefined;
  connection: ConnectionSettings;
  dump: DumpOptions;
  /** The artifact's compression stage (pg_dump's own compression is `dump.compress`). */
  compression: CompressionOptions;
  /** The profile's age settings (paths absolute); the flags' key material is added by the command. */
  encryption: EncryptionSettings | undefined;
  globals: boolean;
  tags: string[];
  note: string | null;
  /** The profile's settings as configured (notify, retention, status, verify...). */
  settings: ProfileSettings;
}

/** The longest note a sidecar holds (its schema's bound on free text). */
export const MAX_NOTE_CHARS = 20_000;

export { profileNameFor };

/** The config's connection layers of a profile, lowest first: `defaults`, then its own keys. */
function connectionLayers(settings: ResolvedSettings, profile: ProfileSettings): ProfileConnection[] {
  const defaults = settings.defaults;
  const own = profile.configured ? settings.own(profile.name) : undefined;
  const absolute = (layer: Profile | undefined): ProfileConnection => ({
    ...layer,
    passwordFile: layer?.passwordFile === undefined ? undefined : settings.path(layer.passwordFile),
  });
  return [absolute(defaults), ...(own ? [absolute(own)] : [])];
}

/** Refuses connection flags that would put a password on a command line. */
export function checkConnectionFlags(flags: ConnectionFlags): void {
  if (flags.url !== undefined && urlHasPassword(flags.url)) {
    throw usageError(
      'the connection URL on the command line must not contain a password: command lines are visible to every user of the machine',
      "put the password in PGPASSWORD, ~/.pgpass (or PGPASSFILE), DATABASE_URL, or the profile's passwordFile",
    );
  }
}

/**
 * Picks and resolves the profile of a backup run. With a config file that has profiles,
 * the profile must be one of them (chosen by flag, env, defaultProfile, or being the only
 * one). Without profiles, the run is described by flags and the libpq environment and
 * the profile is named after the database. Precedence: flags > the config's values for
 * the profile > the environment > defaults (see config/resolve.ts and resolveConnectionLayers).
 */
export function resolveProfile(settings: ResolvedSettings, flags: ConnectionFlags & DumpFlags = {}): ResolvedProfile {
  checkConnectionFlags(flags);
  const chosen = chosenProfile(settings);
  const provisional = chosen ?? settings.unconfigured('default');
  const resolution = resolveConnectionLayers({ flags, env: settings.env, profile: connectionLayers(settings, provisional) });
  const connection = resolution.settings;
  const profile = chosen ?? settings.unconfigured(profileNameFor(connection.database));
  const databaseNamed = flags.database !== undefined || (flags.url !== undefined && parseConnectionUrl(flags.url, '--db-url').database !== undefined) || profileOfConnection(settings) !== undefined;
  if (!profile.configured && profile.name !== profileNameFor(connection.database) && !databaseNamed) {
    // A profile the config does not define, and no database named anywhere: libpq's
    // default (the user's name) would go into a profile named for something else.
    throw usageError(
      `which database goes into profile "${profile.name}"? It is not in ${settings.configFile ?? `a config file (none was found from ${settings.cwd} up)`}, and no database is named (libpq's default would be ${JSON.stringify(connection.database)})`,
      settings.configFile
        ? `name the database (--db-url, -d, PGDATABASE or DATABASE_URL), or define profile "${profile.name}" with its database in ${settings.configFile}`
        : `point at the config with --config or BACKUPCTL_CONFIG (cron starts in the home directory), or name the database (--db-url, -d, PGDATABASE or DATABASE_URL)`,
    );
  }
  const { dump, compression } = resolveDumpOptions(flags, profile);
  const note = flags.note ?? profile.note ?? null;
  if (note !== null && note.length > MAX_NOTE_CHARS) throw usageError(`the note is ${note.length} characters; at most ${MAX_NOTE_CHARS} are kept with a backup`);
  const tags = [...new Set([...(profile.tags ?? []), ...(flags.tag ?? [])])];
  const warnings = resolution.overridden.map(
    (o) => `the command line overrides profile "${profile.name}": ${o.field} is ${o.value}, the config says ${o.configured}`,
  );
  const notes = resolution.ignoredEnv.map(
    (o) =>
      `${o.variable === 'DATABASE_URL' ? `DATABASE_URL's ${o.field} ${o.value}` : `${o.variable}=${o.value}`} is ignored: profile "${profile.name}" sets ${o.field} ${o.configured} (the config wins over the environment; a flag overrides it)`,
  );
  return {
    name: profile.name,
    configured: profile.configured,
    warnings,
    notes,
    storage: profile.storage,
    pgBinDir: profile.pgBinDir,
    workDir: settings.workDir,
    connection,
    dump,
    compression,
    encryption: profile.encryption,
    globals: flags.globals ?? profile.globals ?? true,
    tags,
    note,
    settings: profile,
  };
}

/**
 * The profile a maintenance command (prune, unlock, delete) works on, without connecting
 * or reading a password: the chosen profile, else the one `create` would use.
 */
export function profileForMaintenance(settings: ResolvedSettings): ProfileSettings {
  const chosen = chosenProfile(settings);
  if (chosen) return chosen;
  const derived = profileOfConnection(settings);
  if (derived === undefined) {
    throw usageError(
      'which profile? none is configured and none was named',
      'name it with --profile (or BACKUPCTL_PROFILE); "backupctl list" shows the profiles in the storage',
    );
  }
  return settings.unconfigured(derived.name);
}

/**
 * Flags over profile over defaults; --jobs > 1 implies the directory format. Compression:
 * the artifact's stage (`compress`, zstd by default) or pg_dump's own (`pgCompress`), not
 * both; a flag for one turns off the other's configured value.
 */
export function resolveDumpOptions(flags: DumpFlags, profile: Omit<Profile, 'storageSettings'>): { dump: DumpOptions; compression: CompressionOptions } {
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
  const compression = resolveCompression(flags, profile);
  const dump: DumpOptions = {
    format,
    jobs: format === 'directory' ? (jobs ?? 1) : 1,
    compress: compression.pgCompress,
    schemaOnly,
    dataOnly,
    schemas: flags.schema ?? profile.schemas ?? [],
    excludeSchemas: flags.excludeSchema ?? profile.excludeSchemas ?? [],
    tables: flags.table ?? profile.tables ?? [],
    excludeTables: flags.excludeTable ?? profile.excludeTables ?? [],
    lockWaitTimeout: lockWaitTimeout === undefined ? null : String(lockWaitTimeout),
  };
  return { dump, compression: compression.stage };
}

function resolveCompression(flags: DumpFlags, profile: Omit<Profile, 'storageSettings'>): { stage: CompressionOptions; pgCompress: number | string } {
  if (flags.compress !== undefined && flags.compress !== 'none' && flags.pgCompress !== undefined && !pgCompressIsOff(flags.pgCompress)) {
    throw usageError('--compress and --pg-compress cannot both compress (compressed bytes do not compress again)', 'keep one of them');
  }
  // A flag for one kind of compression overrides the configured value of the other.
  const stageText = flags.compress ?? (flags.pgCompress !== undefined ? undefined : profile.compress);
  const pg = flags.pgCompress ?? (flags.compress !== undefined ? undefined : profile.pgCompress);
  const pgOn = pg !== undefined && !pgCompressIsOff(pg);
  const stage = stageText !== undefined ? parseCompression(stageText) : pgOn ? { codec: 'none' as const } : DEFAULT_COMPRESSION;
  // pg_dump compresses only when asked to; otherwise the stage does (or nothing does).
  return { stage, pgCompress: pgOn && stage.codec === 'none' ? pg : 0 };
}
