import type { Profile } from '../config/schema.js';
import { usageError } from '../errors.js';
import { parseConnectionUrl } from '../pg/connection.js';
import { profileNameFor, resolveStorage, selectProfileName, type GlobalFlags, type LoadedConfigRef } from './profile.js';
import { profileSettings } from './settings.js';

/** One profile's storage and settings, resolved without connecting to any database. */
export interface ProfileTarget {
  name: string;
  /** True when the profile is defined in the config file. */
  configured: boolean;
  storage: string;
  /** `defaults` with the profile's own keys on top (see profileSettings). */
  settings: Profile;
}

/**
 * The profile a maintenance command (prune, unlock) works on: `--profile`,
 * BACKUPCTL_PROFILE, `defaultProfile`, or the only profile of the config; without a config
 * profile, the one `create` would use: named after the database of `--db-url`,
 * DATABASE_URL or PGDATABASE. Never connects, never reads a password.
 */
export function resolveProfileTarget(input: {
  loaded: LoadedConfigRef;
  flags: GlobalFlags;
  env: Record<string, string | undefined>;
  cwd: string;
}): ProfileTarget {
  const { loaded, flags, env, cwd } = input;
  const selected = selectProfileName(loaded, flags, env);
  let name = selected.name;
  if (name === undefined) {
    const database = databaseFromEnvironment(flags, env);
    if (database === undefined) {
      throw usageError(
        'which profile? none is configured and none was named',
        'name it with --profile (or BACKUPCTL_PROFILE); "backupctl list" shows the profiles in the storage',
      );
    }
    name = profileNameFor(database);
  }
  // A name made from the database is never configured: the config has no profiles then.
  const configured = selected.configured;
  const settings = profileSettings(loaded, name);
  return {
    name,
    configured,
    storage: resolveStorage(loaded, flags, env, cwd, configured ? settings : undefined),
    settings,
  };
}

function databaseFromEnvironment(flags: GlobalFlags, env: Record<string, string | undefined>): string | undefined {
  if (flags.dbUrl) return parseConnectionUrl(flags.dbUrl, '--db-url').database;
  if (env.DATABASE_URL) {
    const fromUrl = parseConnectionUrl(env.DATABASE_URL, 'DATABASE_URL').database;
    if (fromUrl) return fromUrl;
  }
  return env.PGDATABASE || undefined;
}
