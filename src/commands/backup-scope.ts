import type { Sidecar } from '../catalog/sidecar.js';
import type { Profile } from '../config/schema.js';
import { resolveProfile, resolveStorage, type LoadedConfigRef } from '../core/profile.js';
import { usageError } from '../errors.js';
import { parseConnectionUrl, urlHasPassword, type ConnectionSettings } from '../pg/connection.js';
import type { CommandContext } from './context.js';

/**
 * Where commands that work on existing backups (list, show, verify, restore) look: the
 * profile named by --profile or BACKUPCTL_PROFILE, if any (none means every profile in
 * the storage), and the storage resolved as for create.
 */
export function backupScope(
  loaded: LoadedConfigRef,
  ctx: Pick<CommandContext, 'flags' | 'runtime'>,
): { profile: string | undefined; profileConfig: Profile | undefined; storage: string } {
  const { env, cwd } = ctx.runtime;
  const profile = ctx.flags.profile ?? (env.BACKUPCTL_PROFILE || undefined);
  const profileConfig = profile ? loaded.config.profiles?.[profile] : undefined;
  return { profile, profileConfig, storage: resolveStorage(loaded, ctx.flags, env, cwd, profileConfig) };
}

/**
 * The server a backup is restored on (verify's throwaway database, restore's target):
 * `url` when given (--verify-url, --target-url), else the URL `fromConfig` picks in the
 * backup's profile (verify.server), else the server of the backup's profile, so that
 * `verify <id>` and `restore <id>` need no --profile. Fields a URL leaves out (password,
 * user...) come from the profile's connection. One resolution per profile.
 */
export function serverForBackup(
  loaded: LoadedConfigRef,
  ctx: Pick<CommandContext, 'flags' | 'runtime'>,
  url: { value: string | undefined; flag: string },
  fromConfig: (profile: Profile) => string | undefined = () => undefined,
): (sidecar: Sidecar) => ConnectionSettings {
  if (url.value !== undefined && urlHasPassword(url.value)) {
    throw usageError(`${url.flag} must not contain a password`, 'use PGPASSWORD, ~/.pgpass or the profile\'s passwordFile');
  }
  const resolved = new Map<string, ConnectionSettings>();
  return (sidecar) => {
    const cached = resolved.get(sidecar.profile);
    if (cached) return cached;
    const configured = loaded.config.profiles?.[sidecar.profile];
    const profile = resolveProfile({
      loaded,
      flags: { ...ctx.flags, profile: configured ? sidecar.profile : ctx.flags.profile },
      env: ctx.runtime.env,
      cwd: ctx.runtime.cwd,
    });
    const configuredUrl = configured ? fromConfig(configured) : undefined;
    const server = url.value ?? configuredUrl;
    const fields = server === undefined ? {} : parseConnectionUrl(server, url.value !== undefined ? url.flag : 'the profile\'s server URL');
    const settings: ConnectionSettings = {
      ...profile.connection,
      ...Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)),
    };
    resolved.set(sidecar.profile, settings);
    return settings;
  };
}
