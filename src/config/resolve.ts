import { dirname, isAbsolute, resolve } from 'node:path';
import { isProfileName } from '../catalog/id.js';
import { usageError } from '../errors.js';
import type { LoadedConfig } from './load.js';
import type { Profile } from './schema.js';
import type { StorageSettings } from '../storage/registry.js';
import { mergeStorageSettings, toDriverSettings } from './storage-settings.js';
import { DEFAULT_STORAGE } from './values.js';

/**
 * Settings are resolved ONCE per run, here, from the config file, the global flags, the
 * environment and the working directory, and every command works from the result: the
 * same profiles, storages and client directories whichever command asks.
 *
 * Precedence, highest first (PRODUCT.md): command-line flags; the config's values for the
 * profile (its own keys, then the config's `defaults`); the environment; built-in defaults.
 * The environment fills only what the config leaves unset: `BACKUPCTL_STORAGE` is the
 * storage of runs whose config names none, and the libpq variables (resolved later, in
 * core/profile.ts, where connections are made) fill the connection fields a profile
 * leaves out. `--profile` and `BACKUPCTL_PROFILE` choose a profile; they set nothing.
 *
 * Every path is absolute here: paths written in the config file are relative to the file,
 * paths from flags and the environment to the working directory. URLs are kept as given.
 */

/** The global flags that take part in settings. */
export interface SettingsFlags {
  profile?: string | undefined;
  storage?: string | undefined;
  dbUrl?: string | undefined;
}

/** One profile's settings as the run will use them: `defaults` + its own keys, paths absolute. */
export interface ProfileSettings extends Omit<Profile, 'storageSettings'> {
  name: string;
  /** Defined in the config file (false: described by flags and the libpq environment). */
  configured: boolean;
  /** Where this profile's backups live: a storage URL or an absolute path. */
  storage: string;
  /** The driver settings of that storage (the profile's own, else the defaults', else the top level's). */
  storageSettings: StorageSettings;
  /** The clients' directory (the only place looked at when set), absolute. */
  pgBinDir: string | undefined;
}

export interface ResolvedSettings {
  /** The config file, or null when there is none. */
  configFile: string | null;
  cwd: string;
  env: Record<string, string | undefined>;
  /** The storage of every profile that names none of its own (and of profile-less runs). */
  storage: string;
  /** The driver settings of the storage with this location (its profile's, else the top level's). */
  storageSettings(location: string): StorageSettings;
  workDir: string | undefined;
  /** `defaultProfile` of the config. */
  defaultProfile: string | undefined;
  /** The profile named by --profile or BACKUPCTL_PROFILE (validated), if any. */
  named: string | undefined;
  /** The global --db-url, as given (the database a profile-less run is about). */
  dbUrl: string | undefined;
  /** The config's profiles, by name, in the file's order. */
  profiles: ReadonlyMap<string, ProfileSettings>;
  /** Settings a profile not in the config gets: `defaults`, in the default storage. */
  unconfigured(name: string): ProfileSettings;
  /** The config's `defaults` block as written (connection layers need it apart from a profile's own keys). */
  defaults: Profile;
  /** A configured profile's own keys as written, without `defaults`. */
  own(name: string): Profile | undefined;
  /** A path written in the config file, made absolute (relative to the file). */
  path(value: string): string;
  /** Things the operator should hear about (an environment value the config overrides). */
  notes: string[];
}

export function isStorageUrl(value: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(value);
}

/** A storage location from `base`'s point of view: URLs as they are, paths absolute. */
function location(value: string, base: string): string {
  return isStorageUrl(value) ? value : resolve(base, value);
}

function identityFiles(value: string | string[] | undefined): string[] | undefined {
  return value === undefined ? undefined : typeof value === 'string' ? [value] : value;
}

function absolute(value: string | undefined, base: string): string | undefined {
  return value === undefined ? undefined : isAbsolute(value) ? value : resolve(base, value);
}

export function resolveSettings(input: {
  loaded: LoadedConfig;
  flags: SettingsFlags;
  env: Record<string, string | undefined>;
  cwd: string;
}): ResolvedSettings {
  const { loaded, flags, env, cwd } = input;
  const config = loaded.config;
  const base = loaded.filepath ? dirname(loaded.filepath) : cwd;
  const notes: string[] = [];

  const named = flags.profile ?? (env.BACKUPCTL_PROFILE || undefined);
  if (named !== undefined && !isProfileName(named)) {
    throw usageError(`invalid profile name ${JSON.stringify(named)}`, 'profile names use 1-63 letters, digits, "_", "-" and ".", starting with a letter or digit');
  }

  const envStorage = env.BACKUPCTL_STORAGE || undefined;
  const flagStorage = flags.storage !== undefined && flags.storage !== '' ? location(flags.storage, cwd) : undefined;
  const configStorage = config.storage !== undefined ? location(config.storage, base) : undefined;
  const storage = flagStorage ?? configStorage ?? (envStorage !== undefined ? location(envStorage, cwd) : resolve(cwd, DEFAULT_STORAGE));
  if (flagStorage === undefined && configStorage !== undefined && envStorage !== undefined) {
    notes.push(`BACKUPCTL_STORAGE is ignored: the config sets the storage (${configStorage}); --storage overrides the config`);
  }
  const pgBinDir = absolute(config.pgBinDir, base);
  const defaults: Profile = config.defaults ?? {};

  const inConfigDir = (file: string) => resolve(base, file);
  const topSettings = toDriverSettings(mergeStorageSettings([config.storageSettings], inConfigDir));
  const settingsOf = (name: string, own: Profile | undefined): ProfileSettings => {
    const merged: Profile = { ...defaults, ...(own ?? {}) };
    const ownStorage = merged.storage !== undefined ? location(merged.storage, base) : undefined;
    return {
      ...merged,
      name,
      configured: own !== undefined,
      storage: flagStorage ?? ownStorage ?? storage,
      storageSettings:
        defaults.storageSettings || own?.storageSettings
          ? toDriverSettings(mergeStorageSettings([config.storageSettings, defaults.storageSettings, own?.storageSettings], inConfigDir))
          : topSettings,
      pgBinDir: absolute(merged.pgBinDir, base) ?? pgBinDir,
      passwordFile: absolute(merged.passwordFile, base),
      copies: merged.copies?.map((copy) => location(copy, base)),
      encryption: merged.encryption && {
        ...merged.encryption,
        recipientsFile: absolute(merged.encryption.recipientsFile, base),
        identityFile: identityFiles(merged.encryption.identityFile)?.map((file) => resolve(base, file)),
        passphraseFile: absolute(merged.encryption.passphraseFile, base),
      },
    };
  };

  const profiles = new Map<string, ProfileSettings>();
  for (const [name, own] of Object.entries(config.profiles ?? {})) profiles.set(name, settingsOf(name, own));

  return {
    configFile: loaded.filepath,
    cwd,
    env,
    storage,
    storageSettings: (where) => [...profiles.values()].find((p) => p.storage === where && p.storageSettings !== topSettings)?.storageSettings ?? topSettings,
    workDir: absolute(config.workDir, base),
    defaultProfile: config.defaultProfile,
    named,
    dbUrl: flags.dbUrl,
    profiles,
    unconfigured: (name) => settingsOf(name, undefined),
    defaults,
    own: (name) => (Object.hasOwn(config.profiles ?? {}, name) ? config.profiles?.[name] : undefined),
    path: (value) => absolute(value, base) as string,
    notes,
  };
}

/** The settings of `name`: the configured profile, or `defaults` for one the config does not define. */
export function settingsOf(settings: ResolvedSettings, name: string): ProfileSettings {
  return settings.profiles.get(name) ?? settings.unconfigured(name);
}

/**
 * The one profile a command about one profile works on (create, prune, unlock, delete,
 * check): --profile / BACKUPCTL_PROFILE, else `defaultProfile`, else the config's only
 * profile. undefined when none is named and the config defines none (the caller then
 * derives it from the connection). A usage error when the config has several and none is
 * chosen, and when a named profile is not in a config that defines profiles.
 */
export function chosenProfile(settings: ResolvedSettings): ProfileSettings | undefined {
  const names = [...settings.profiles.keys()];
  const name = implicitProfile(settings);
  if (name === undefined) {
    if (names.length > 1) {
      throw usageError(`the config defines ${names.length} profiles; choose one with --profile`, `profiles: ${names.join(', ')}`);
    }
    return undefined;
  }
  const configured = settings.profiles.get(name);
  if (configured) return configured;
  if (names.length > 0) throw unknownProfile(settings, name);
  return settings.unconfigured(name);
}

/**
 * The profile meant when a command is given none: --profile / BACKUPCTL_PROFILE, else
 * `defaultProfile`, else the config's only profile; undefined when that leaves none (a
 * config with several and no default, or none). `latest` is looked for in it.
 */
export function implicitProfile(settings: ResolvedSettings): string | undefined {
  const names = [...settings.profiles.keys()];
  return settings.named ?? settings.defaultProfile ?? (names.length === 1 ? names[0] : undefined);
}

export function unknownProfile(settings: ResolvedSettings, name: string, found: readonly string[] = []): Error {
  const known = [...new Set([...settings.profiles.keys(), ...found])].sort();
  const where = settings.configFile ? `in ${settings.configFile} or in the storage` : 'in the storage';
  return usageError(
    `no profile named "${name}" ${where}`,
    known.length > 0 ? `profiles: ${known.join(', ')}` : 'there are no profiles yet: "backupctl create" makes the first backup',
  );
}

/**
 * The storages that commands over existing backups (list, show, verify, restore, status)
 * look in: with a profile named, its storage; otherwise the default storage and every
 * configured profile's own, each once, in a stable order.
 */
export function storagesInScope(settings: ResolvedSettings): string[] {
  if (settings.named !== undefined) return [settingsOf(settings, settings.named).storage];
  const all = [settings.storage, ...[...settings.profiles.values()].map((profile) => profile.storage)];
  return [...new Set(all)];
}
