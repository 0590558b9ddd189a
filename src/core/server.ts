import type { Sidecar } from '../catalog/sidecar.js';
import { settingsOf, type ProfileSettings, type ResolvedSettings } from '../config/resolve.js';
import { usageError } from '../errors.js';
import { parseConnectionUrl, resolveConnectionLayers, urlHasPassword, type ConnectionFlags, type ConnectionSettings } from '../pg/connection.js';

/**
 * The server a backup is restored on (verify's throwaway database, restore's target):
 * the URL given on the command line (--verify-url, --target-url) or, failing that, the URL
 * `fromConfig` picks in the backup's profile (verify.server); else the server of the
 * backup's profile, so that `verify <id>` and `restore <id>` need no --profile. `-h`,
 * `-p`, `-U` override single fields. Fields none of these set (user, sslmode...) come
 * from the profile's connection, resolved as for create (config over environment); the
 * config's password only when the role, host and port are still the profile's own
 * (resolveConnectionLayers). One resolution per profile.
 */
export function serverForBackup(
  settings: ResolvedSettings,
  url: { value: string | undefined; flag: string },
  fields: Pick<ConnectionFlags, 'host' | 'port' | 'user'> = {},
  fromConfig: (profile: ProfileSettings) => string | undefined = () => undefined,
): (sidecar: Pick<Sidecar, 'profile'>) => ConnectionSettings {
  if (url.value !== undefined && urlHasPassword(url.value)) {
    throw usageError(`${url.flag} must not contain a password`, "put its password in PGPASSWORD or ~/.pgpass (PGPASSFILE); the profile's passwordFile/passwordEnv is sent only to the profile's own role and server");
  }
  if (url.value !== undefined) parseConnectionUrl(url.value, url.flag); // a bad URL fails before any work
  const resolved = new Map<string, ConnectionSettings>();
  return (sidecar) => {
    const cached = resolved.get(sidecar.profile);
    if (cached) return cached;
    const profile = settingsOf(settings, sidecar.profile);
    const configuredUrl = fromConfig(profile);
    const server = url.value ?? configuredUrl;
    const layers = [settings.defaults, ...(profile.configured ? [settings.own(profile.name) ?? {}] : [])].map((layer) => ({
      ...layer,
      passwordFile: layer.passwordFile === undefined ? undefined : settings.path(layer.passwordFile),
    }));
    const connection = resolveConnectionLayers({
      env: settings.env,
      profile: layers,
      flags: { ...(server !== undefined ? stripped(parseConnectionUrl(server, url.value !== undefined ? url.flag : "the profile's verify.server")) : {}), ...defined(fields) },
    }).settings;
    resolved.set(sidecar.profile, connection);
    return connection;
  };
}

function defined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A server URL as connection flags (host, port, user, database). */
function stripped(fields: ReturnType<typeof parseConnectionUrl>): ConnectionFlags & { password?: string } {
  return defined({ host: fields.host, port: fields.port, user: fields.user, database: fields.database });
}
