import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { BackupctlError, ExitCode, usageError } from '../errors.js';
import { lookupPgpass } from './pgpass.js';

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

export interface ResolveConnectionInput {
  /** `--db-url` (never with a password: refused before we get here). */
  flagUrl?: string | undefined;
  env: Record<string, string | undefined>;
  profile: ProfileConnection;
  /** Base directory for relative paths in the profile (the config file's directory). */
  configDir: string;
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

function readPasswordFile(path: string): string {
  try {
    const content = readFileSync(path, 'utf8');
    const line = content.split(/\r?\n/)[0] ?? '';
    if (line === '') throw usageError(`password file ${path} is empty`);
    return line;
  } catch (error) {
    if (error instanceof BackupctlError) throw error;
    throw usageError(`cannot read password file ${path}: ${(error as Error).message}`, 'check the profile\'s passwordFile');
  }
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

/**
 * Resolves where to connect. Precedence, highest first: `--db-url`; the environment
 * (DATABASE_URL, then the libpq PG* variables for what it leaves out); the profile
 * (its url, then its discrete fields); libpq's defaults. The password comes from, in
 * order: the URL or PGPASSWORD of the winning layer, the profile's passwordEnv or
 * passwordFile, then the libpq password file (PGPASSFILE or ~/.pgpass).
 */
export function resolveConnection(input: ResolveConnectionInput): ConnectionSettings {
  const { env, profile } = input;
  const profileLayer: Partial = {
    ...(profile.url ? parseConnectionUrl(profile.url, 'profile url') : {}),
    ...defined({
      host: profile.host,
      port: profile.port,
      user: profile.user,
      database: profile.database,
      sslmode: profile.sslmode,
    }),
  };
  if (profile.passwordEnv) {
    const value = env[profile.passwordEnv];
    if (value === undefined || value === '') {
      throw usageError(`environment variable ${profile.passwordEnv} (the profile's passwordEnv) is not set`);
    }
    profileLayer.password = value;
  } else if (profile.passwordFile) {
    profileLayer.password = readPasswordFile(resolve(input.configDir, profile.passwordFile));
  }
  const envLayer: Partial = {
    ...defined(fromEnv(env)),
    ...(env.DATABASE_URL ? defined(parseConnectionUrl(env.DATABASE_URL, 'DATABASE_URL')) : {}),
  };
  const flagLayer: Partial = input.flagUrl ? defined(parseConnectionUrl(input.flagUrl, '--db-url')) : {};
  const merged: Partial = { ...defined(profileLayer), ...envLayer, ...flagLayer };

  const port = merged.port ?? 5432;
  const user = merged.user ?? safeUserName(env);
  const database = merged.database ?? user;
  const host = merged.host ?? defaultHost(port);
  let password = merged.password;
  let passwordSource: string | undefined;
  if (password !== undefined) {
    passwordSource =
      flagLayer.password !== undefined ? '--db-url'
      : envLayer.password !== undefined ? (env.DATABASE_URL && parseConnectionUrl(env.DATABASE_URL, 'DATABASE_URL').password ? 'DATABASE_URL' : 'PGPASSWORD')
      : profile.passwordEnv ? `$${profile.passwordEnv}`
      : profile.passwordFile ? `passwordFile ${profile.passwordFile}`
      : 'the profile url';
  } else {
    password = readPgpass(env, { host, port, database, user });
    if (password !== undefined) passwordSource = 'the password file (PGPASSFILE or ~/.pgpass)';
  }
  return {
    host,
    port,
    user,
    database,
    password,
    passwordSource,
    sslmode: merged.sslmode,
    sslrootcert: merged.sslrootcert,
    sslcert: merged.sslcert,
    sslkey: merged.sslkey,
  };
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
