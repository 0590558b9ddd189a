import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { BackupctlError, ExitCode, usageError } from '../errors.js';
import { lookupPgpass } from './pgpass.js';
import { readSecretFile, type SecretFileError } from '../platform/secret-file.js';

export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

/**
 * Everything needed to reach one database, resolved once per run. The password is held
 * here and handed to children only through a temporary 0600 passfile (never argv, never
 * output); `describe*` functions below never include it.
 */
export interface ConnectionSettings {
  /** Host name, IP address, or a Unix socket directory (starts with `/`). */
  host: string;
  port: number;
  user: string;
  database: string;
  password: string | undefined;
  /** Where the password came from, for error hints (never the password itself). */
  passwordSource: string | undefined;
  /**
   * The config's password, when this connection was not given it because it goes to
   * another role or server than the profile's: where it is and whose it is, for hints.
   */
  withheldPassword?: { source: string; owner: string } | undefined;
  sslmode: SslMode | undefined;
  sslrootcert: string | undefined;
  sslcert: string | undefined;
  sslkey: string | undefined;
}

/** Connection fields as written in a profile (config file). */
export interface ProfileConnection {
  url?: string | undefined;
  host?: string | undefined;
  port?: number | undefined;
  user?: string | undefined;
  database?: string | undefined;
  passwordFile?: string | undefined;
  passwordEnv?: string | undefined;
  sslmode?: SslMode | undefined;
}

interface Partial {
  host?: string | undefined;
  port?: number | undefined;
  user?: string | undefined;
  database?: string | undefined;
  password?: string | undefined;
  sslmode?: SslMode | undefined;
  sslrootcert?: string | undefined;
  sslcert?: string | undefined;
  sslkey?: string | undefined;
}

const SSL_MODES: readonly SslMode[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];

/** Parses a postgres:// or postgresql:// URL into connection fields (libpq URI syntax). */
export function parseConnectionUrl(url: string, origin: string): Partial {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw usageError(`${origin} is not a valid URL: ${redactUrl(url)}`, 'expected postgres://user@host:5432/database');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw usageError(`${origin} must start with postgres:// or postgresql://`, `got ${redactUrl(url)}`);
  }
  const params = parsed.searchParams;
  const result: Partial = {};
  const host = params.get('host') ?? decodeURIComponent(parsed.hostname.replace(/^\[|\]$/g, ''));
  if (host) result.host = host;
  const port = params.get('port') ?? parsed.port;
  if (port) result.port = parsePort(port, origin);
  const user = params.get('user') ?? decodeURIComponent(parsed.username);
  if (user) result.user = user;
  const password = params.get('password') ?? decodeURIComponent(parsed.password);
  if (password) result.password = password;
  const database = params.get('dbname') ?? decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  if (database) result.database = database;
  const sslmode = params.get('sslmode');
  if (sslmode) result.sslmode = parseSslMode(sslmode, origin);
  for (const key of ['sslrootcert', 'sslcert', 'sslkey'] as const) {
    const value = params.get(key);
    if (value) result[key] = value;
  }
  return result;
}

function parsePort(value: string, origin: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw usageError(`${origin}: port must be 1-65535, got ${value}`);
  return port;
}

function parseSslMode(value: string, origin: string): SslMode {
  if (!(SSL_MODES as readonly string[]).includes(value)) {
    throw usageError(`${origin}: sslmode must be one of ${SSL_MODES.join(', ')}, got ${value}`);
  }
  return value as SslMode;
}

/** True when a URL carries a password, which must not be given on a command line. */
export function urlHasPassword(url: string): boolean {
  try {
    const parsed = new URL(url);
    return parsed.password !== '' || parsed.searchParams.has('password');
  } catch {
    return false;
  }
}

/** The URL with any password replaced by `***`: safe to print and log. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    if (parsed.searchParams.has('password')) parsed.searchParams.set('password', '***');
    return parsed.toString();
  } catch {
    return url.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@').replace(/(password=)[^&]*/gi, '$1***');
  }
}

function fromEnv(env: Record<string, string | undefined>): Partial {
  const result: Partial = {};
  if (env.PGHOST) result.host = env.PGHOST;
  if (env.PGPORT) result.port = parsePort(env.PGPORT, 'PGPORT');
  if (env.PGUSER) result.user = env.PGUSER;
  if (env.PGDATABASE) result.database = env.PGDATABASE;
  if (env.PGPASSWORD) result.password = env.PGPASSWORD;
  if (env.PGSSLMODE) result.sslmode = parseSslMode(env.PGSSLMODE, 'PGSSLMODE');
  if (env.PGSSLROOTCERT) result.sslrootcert = env.PGSSLROOTCERT;
  if (env.PGSSLCERT) result.sslcert = env.PGSSLCERT;
  if (env.PGSSLKEY) result.sslkey = env.PGSSLKEY;
  return result;
}

function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/** libpq's default when no host is given: the usual socket directories, else localhost. */
function defaultHost(port: number): string {
  for (const dir of ['/var/run/postgresql', '/run/postgresql', '/tmp']) {
    if (existsSync(join(dir, `.s.PGSQL.${port}`))) return dir;
  }
  return 'localhost';
}

/** A password file larger than this is not a password file. */
const MAX_PASSWORD_FILE_BYTES = 64 * 1024;

/**
 * The first line of a password file. It must be a regular file (a symlink to one is fine:
 * Kubernetes mounts secrets that way): opening a FIFO or a device would hang or read
 * forever, so it is opened non-blocking, checked with fstat, and read to a bound.
 */
function readPasswordFile(path: string): string {
  const hint = "point the profile's passwordFile at a file holding the password";
  let bytes: Buffer;
  try {
    bytes = readSecretFile(path, MAX_PASSWORD_FILE_BYTES);
  } catch (error) {
    const failure = error as SecretFileError;
    if (failure.problem === 'not-regular') throw usageError(`password file ${path} is not a regular file`, hint);
    if (failure.problem === 'too-large') throw usageError(`password file ${path} is ${failure.detail}: not a password file`, "check the profile's passwordFile");
    throw usageError(`cannot read password file ${path}: ${failure.detail}`, "check the profile's passwordFile");
  }
  const line = bytes.toString('utf8').split(/\r?\n/)[0] ?? '';
  if (line === '') throw usageError(`password file ${path} is empty`);
  return line;
}

function readPgpass(env: Record<string, string | undefined>, query: { host: string; port: number; database: string; user: string }): string | undefined {
  const path = env.PGPASSFILE ?? join(env.HOME ?? homedir(), '.pgpass');
  try {
    const info = statSync(path);
    if (!info.isFile() || (info.mode & 0o077) !== 0) return undefined; // libpq ignores a readable-by-others file
    return lookupPgpass(readFileSync(path, 'utf8'), query);
  } catch {
    return undefined;
  }
}

/** The connection flags of a run: `--db-url`, `-d/--dbname`, `-h/--host`, `-p/--port`, `-U/--username`. */
export interface ConnectionFlags {
  /** `--db-url`, or a connection URI given to `-d` (never with a password: refused before we get here). */
  url?: string | undefined;
  host?: string | undefined;
  port?: number | undefined;
  user?: string | undefined;
  database?: string | undefined;
}

export interface ResolveConnectionInput {
  flags?: ConnectionFlags | undefined;
  env: Record<string, string | undefined>;
  /**
   * The config's layers for the profile, lowest first (the config's `defaults`, then the
   * profile's own keys), with passwordFile paths already absolute.
   */
  profile: ProfileConnection | readonly ProfileConnection[];
}

/** What won, and what the operator should hear about. */
export interface ConnectionResolution {
  settings: ConnectionSettings;
  /** Fields the command line set over a different value of the config. */
  overridden: Array<{ field: ReportedField; value: string; configured: string }>;
  /** Environment variables whose value the config's took precedence over. */
  ignoredEnv: Array<{ variable: string; value: string; field: ReportedField; configured: string }>;
}

type ReportedField = 'host' | 'port' | 'user' | 'database';
const REPORTED_FIELDS: readonly ReportedField[] = ['host', 'port', 'user', 'database'];

interface Layer {
  fields: Partial;
  /** Where the layer's password comes from, for hints (never the password). */
  passwordSource?: string | undefined;
}

function profileLayer(profile: ProfileConnection, env: Record<string, string | undefined>): Layer {
  const fields: Partial = {
    ...(profile.url ? defined(parseConnectionUrl(profile.url, 'profile url')) : {}),
    ...defined({ host: profile.host, port: profile.port, user: profile.user, database: profile.database, sslmode: profile.sslmode }),
  };
  let passwordSource = fields.password !== undefined ? 'the profile url' : undefined;
  if (profile.passwordEnv) {
    const value = env[profile.passwordEnv];
    if (value === undefined || value === '') {
      throw usageError(`environment variable ${profile.passwordEnv} (the profile's passwordEnv) is not set`);
    }
    fields.password = value;
    passwordSource = `$${profile.passwordEnv}`;
  } else if (profile.passwordFile) {
    fields.password = readPasswordFile(profile.passwordFile);
    passwordSource = `passwordFile ${profile.passwordFile}`;
  }
  return { fields, passwordSource };
}

const PG_VARIABLES: Record<ReportedField, string> = { host: 'PGHOST', port: 'PGPORT', user: 'PGUSER', database: 'PGDATABASE' };

function environmentLayer(env: Record<string, string | undefined>): Layer & { origin: (field: ReportedField) => string } {
  const fromUrl = env.DATABASE_URL ? defined(parseConnectionUrl(env.DATABASE_URL, 'DATABASE_URL')) : {};
  const fields: Partial = { ...defined(fromEnv(env)), ...fromUrl };
  return {
    fields,
    origin: (field) => (fromUrl[field] !== undefined ? 'DATABASE_URL' : PG_VARIABLES[field]),
    passwordSource: fields.password === undefined ? undefined : fromUrl.password !== undefined ? 'DATABASE_URL' : 'PGPASSWORD',
  };
}

function flagLayer(flags: ConnectionFlags | undefined): Partial {
  if (!flags) return {};
  return {
    ...(flags.url ? defined(parseConnectionUrl(flags.url, '--db-url')) : {}),
    ...defined({ host: flags.host, port: flags.port, user: flags.user, database: flags.database }),
  };
}

/**
 * Resolves where to connect. Precedence, highest first: the command line (`--db-url`,
 * `-d`, `-h`, `-p`, `-U`); the config (the profile's own keys over the config's
 * `defaults`; in each, its `url` first, then its discrete fields); the environment
 * (DATABASE_URL over the libpq PG* variables), which fills only what the config leaves
 * unset; libpq's defaults. The password comes from the config when it names one
 * (passwordEnv, passwordFile or a url with a password, the profile's own over the
 * defaults'), else from DATABASE_URL or PGPASSWORD, else from the libpq password file
 * (PGPASSFILE or ~/.pgpass). The config's password goes only to the role, host and port
 * the config itself resolves to: a command line that changes one of them (another role,
 * another server) does not get it.
 */
export function resolveConnectionLayers(input: ResolveConnectionInput): ConnectionResolution {
  const { env } = input;
  const layers: readonly ProfileConnection[] = Array.isArray(input.profile) ? input.profile : [input.profile as ProfileConnection];
  const configured: Layer = { fields: {} };
  for (const layer of layers.map((profile) => profileLayer(profile, env))) {
    configured.fields = { ...configured.fields, ...layer.fields };
    if (layer.passwordSource !== undefined) configured.passwordSource = layer.passwordSource;
  }
  const environment = environmentLayer(env);
  const flags = flagLayer(input.flags);
  const merged: Partial = { ...environment.fields, ...configured.fields, ...flags };

  const port = merged.port ?? 5432;
  const user = merged.user ?? safeUserName(env);
  const database = merged.database ?? user;
  const host = merged.host ?? defaultHost(port);
  // The config's password is the profile's role's on the profile's server: a connection
  // the command line points at another role, host or port (-U postgres, --target-url,
  // a verify server) never gets it, and takes its own from PGPASSWORD or the password file.
  const own = { ...environment.fields, ...configured.fields };
  const ownPort = own.port ?? 5432;
  const elsewhere = user !== (own.user ?? safeUserName(env)) || port !== ownPort || host !== (own.host ?? defaultHost(ownPort));
  const configPassword = elsewhere ? undefined : configured.fields.password;
  const withheldPassword =
    elsewhere && configured.fields.password !== undefined
      ? { source: configured.passwordSource ?? 'the config', owner: `${own.user ?? safeUserName(env)}@${own.host ?? defaultHost(ownPort)}:${ownPort}` }
      : undefined;
  let password = configPassword ?? environment.fields.password;
  let passwordSource = configPassword !== undefined ? configured.passwordSource : environment.passwordSource;
  if (password === undefined) {
    password = readPgpass(env, { host, port, database, user });
    passwordSource = password !== undefined ? 'the password file (PGPASSFILE or ~/.pgpass)' : undefined;
  }

  const overridden: ConnectionResolution['overridden'] = [];
  const ignoredEnv: ConnectionResolution['ignoredEnv'] = [];
  for (const field of REPORTED_FIELDS) {
    const fromConfig = configured.fields[field];
    if (fromConfig === undefined) continue;
    const fromFlag = flags[field];
    if (fromFlag !== undefined && fromFlag !== fromConfig) overridden.push({ field, value: String(fromFlag), configured: String(fromConfig) });
    const fromEnvironment = environment.fields[field];
    if (fromFlag === undefined && fromEnvironment !== undefined && fromEnvironment !== fromConfig) {
      ignoredEnv.push({ variable: environment.origin(field), value: String(fromEnvironment), field, configured: String(fromConfig) });
    }
  }
  return {
    settings: {
      host,
      port,
      user,
      database,
      password,
      passwordSource,
      ...(withheldPassword !== undefined && password === undefined ? { withheldPassword } : {}),
      sslmode: merged.sslmode,
      sslrootcert: merged.sslrootcert,
      sslcert: merged.sslcert,
      sslkey: merged.sslkey,
    },
    overridden,
    ignoredEnv,
  };
}

/** resolveConnectionLayers, the settings only. */
export function resolveConnection(input: ResolveConnectionInput): ConnectionSettings {
  return resolveConnectionLayers(input).settings;
}

function safeUserName(env: Record<string, string | undefined>): string {
  try {
    return env.USER ?? env.LOGNAME ?? userInfo().username;
  } catch {
    throw new BackupctlError('cannot tell which database user to connect as', {
      exitCode: ExitCode.USAGE,
      hint: 'set PGUSER, --db-url or the profile\'s user',
    });
  }
}

/** `user@host:port/database`: what we print and record. Never a password. */
export function describeConnection(settings: ConnectionSettings): string {
  const host = settings.host.includes(':') ? `[${settings.host}]` : settings.host;
  return `${settings.user}@${host}:${settings.port}/${settings.database}`;
}
