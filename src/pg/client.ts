import { readFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import pg from 'pg';
import { settlesWithin } from '../platform/settles-within.js';
import { BackupctlError, ExitCode } from '../errors.js';
import { describeConnection, type ConnectionSettings } from './connection.js';

/** node-postgres TLS options equivalent to libpq's sslmode. */
function sslOptions(settings: ConnectionSettings): pg.ClientConfig['ssl'] {
  switch (settings.sslmode) {
    case undefined:
    case 'disable':
    case 'allow':
    case 'prefer':
      return false;
    case 'require':
      return { rejectUnauthorized: false };
    case 'verify-ca':
    case 'verify-full': {
      const options: Record<string, unknown> = { rejectUnauthorized: true };
      if (settings.sslrootcert) options.ca = readFileSync(settings.sslrootcert, 'utf8');
      if (settings.sslcert) options.cert = readFileSync(settings.sslcert, 'utf8');
      if (settings.sslkey) options.key = readFileSync(settings.sslkey, 'utf8');
      if (settings.sslmode === 'verify-ca') options.checkServerIdentity = () => undefined;
      return options;
    }
  }
}

const SESSION_SETUP_ATTEMPTS = 5;

/** Opens a SQL session. Connection failures become one clear BackupctlError. */
/** How long Session.end() waits for the server to close the connection before it drops it. */
const END_WAIT_MS = 1_000;

/**
 * A client whose end() never waits long on a server that stopped answering (frozen, or gone
 * from the network without closing): pg's end() sends Terminate and waits for the server
 * to close the socket, for ever if it never does, and every run ends its sessions on the
 * way out, an interrupted one within a grace period (cli.ts). See endClient.
 */
class Session extends pg.Client {
  override end(): Promise<void> {
    return endOrDrop(() => super.end(), this, END_WAIT_MS);
  }
}

export async function connect(settings: ConnectionSettings, database = settings.database): Promise<pg.Client> {
  const client = new Session({
    host: settings.host,
    port: settings.port,
    user: settings.user,
    database,
    password: settings.password,
    ssl: sslOptions(settings),
    application_name: 'backupctl',
    connectionTimeoutMillis: 30_000,
  });
  // An 'error' event after connect (server restart) must not crash the process;
  // the pending query rejects and is reported there.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    throw connectionError(error, { ...settings, database });
  }
  // A database or role timeout of a few milliseconds can cancel the statement that turns
  // it off (57014) on a busy server: it takes effect only once that statement succeeds.
  for (let attempt = 1; ; attempt++) {
    try {
      await client.query(SESSION_SETTINGS);
      return client;
    } catch (error) {
      if (sqlState(error) === '57014' && attempt < SESSION_SETUP_ATTEMPTS) continue;
      await client.end().catch(() => undefined);
      throw queryError(error, `cannot set up a session on ${describeConnection({ ...settings, database })}`);
    }
  }
}

/**
 * What pg_dump and pg_restore set in their own sessions, set in ours (as session settings,
 * not startup options, which a pooler may refuse): a timeout set on the database or the
 * role (`ALTER DATABASE ... SET statement_timeout`) must not cancel a row count of a large
 * table, nor end the transaction that holds the backup's snapshot while pg_dump runs; and
 * row security is off, so that a count is the table's true number of rows or an error
 * (42501, as pg_dump fails), never a number filtered by a policy. Only the settings this
 * server has are set (transaction_timeout is PostgreSQL 17+, idle_session_timeout 14+);
 * statement_timeout first, so that the query that looks them up is not cancelled itself.
 */
const SESSION_SETTINGS = `SET statement_timeout = 0;
SELECT pg_catalog.set_config(name, CASE name WHEN 'row_security' THEN 'off' ELSE '0' END, false)
  FROM pg_catalog.pg_settings
 WHERE name IN ('statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout', 'idle_session_timeout', 'transaction_timeout', 'row_security')`;

/**
 * Ends a session politely (Terminate), or, when the server does not close the connection
 * within `timeoutMs` (a frozen server, a network that dropped), drops the socket: whoever
 * ends a session on the way out of a failed or interrupted run must not wait on the
 * server. Never rejects. The server ends a session whose socket is gone, with its
 * transaction and advisory locks, once it notices.
 */
export function endClient(client: pg.Client, timeoutMs: number): Promise<void> {
  return endOrDrop(() => client.end(), client, timeoutMs);
}

async function endOrDrop(end: () => Promise<void>, client: pg.Client, timeoutMs: number): Promise<void> {
  if (!(await settlesWithin(end(), timeoutMs))) (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

/** The protocol's CancelRequest code (1234 << 16 | 5678). */
const CANCEL_REQUEST_CODE = 80877102;

/**
 * Cancels what `client`'s session is running, as libpq's PQcancel does: a CancelRequest
 * with the session's key, on a connection of its own (no login needed). Closing a session
 * does not stop its query: a backend waiting for another session's lock does not read its
 * socket, so it would wait on, then run the query for no one, and every later lock request
 * on that table queues behind it. Best effort: resolves once the server has closed the
 * cancel connection, or after `timeoutMs`, never rejects.
 */
export function cancelRunning(client: pg.Client, timeoutMs = 2_000): Promise<void> {
  const { processID, secretKey, host, port } = client as unknown as { processID: number | null; secretKey: number | null; host: string; port: number };
  if (processID === null || secretKey === null) return Promise.resolve();
  return new Promise((resolve) => {
    const socket = host.startsWith('/') ? netConnect(`${host}/.s.PGSQL.${port}`) : netConnect(port, host);
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    socket.on('error', done);
    socket.on('close', done);
    socket.on('data', () => undefined);
    socket.on('connect', () => {
      const message = Buffer.alloc(16);
      message.writeInt32BE(16, 0);
      message.writeInt32BE(CANCEL_REQUEST_CODE, 4);
      message.writeInt32BE(processID, 8);
      message.writeInt32BE(secretKey, 12);
      socket.end(message);
    });
  });
}

interface PgErrorLike {
  code?: string;
  message?: string;
  /** The server's HINT, if it gave one ("You might need to increase max_locks_per_transaction."). */
  hint?: string;
}

/** Maps a failure to connect to one line, a hint and an exit code. */
export function connectionError(error: unknown, settings: ConnectionSettings): BackupctlError {
  const where = describeConnection(settings);
  const { code, message = String(error) } = (error ?? {}) as PgErrorLike;
  const make = (text: string, exitCode: 1 | 2, hint?: string) =>
    new BackupctlError(text, { exitCode, hint, cause: error });
  switch (code) {
    case 'ECONNREFUSED':
      return make(`cannot connect to ${where}: connection refused`, ExitCode.FAILED, `is PostgreSQL running and listening on ${settings.host}:${settings.port}?`);
    case 'ENOENT':
      return make(`cannot connect to ${where}: no server socket in ${settings.host}`, ExitCode.FAILED, 'is PostgreSQL running? set PGHOST or the profile\'s host');
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return make(`cannot connect to ${where}: host ${settings.host} not found`, ExitCode.FAILED, 'check the host name (PGHOST, --db-url or the profile\'s host)');
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return make(`cannot connect to ${where}: ${code}`, ExitCode.FAILED, 'check the network path to the server');
    case '28P01':
      return make(`password authentication failed for ${where}`, ExitCode.USAGE, passwordHint(settings));
    case '28000':
      return make(`server refused ${where}: ${message}`, ExitCode.USAGE, 'check pg_hba.conf on the server and the user name');
    case '3D000':
      return make(`database "${settings.database}" does not exist on ${settings.host}:${settings.port}`, ExitCode.USAGE, 'check the database name (PGDATABASE, --db-url or the profile\'s database)');
    case '57P03':
      return make(`server not accepting connections for ${where}: ${message}`, ExitCode.FAILED, 'the server is starting up, shutting down or in recovery: retry later');
    case '53300':
      return make(
        `server not accepting connections for ${where}: ${message}`,
        ExitCode.FAILED,
        'the server (max_connections), the database or the role (CONNECTION LIMIT) allows no more: a backup needs 4 at once (its snapshot, its row counts, pg_dump, pg_dumpall), a verify or restore 2; raise the limit or retry later',
      );
    default:
      if (/client password must be a string|password authentication failed/i.test(message)) {
        return make(`the server asks ${where} for a password and none was given`, ExitCode.USAGE, passwordHint(settings));
      }
      return make(`cannot connect to ${where}: ${message}`, ExitCode.FAILED);
  }
}

/** The hint for a table the backup role may not read (42501 while reading tables). */
export const READ_TABLES_HINT = 'grant the backup role SELECT on every table (or use a role with pg_read_all_data)';

/**
 * Maps an error raised by a query (not the connection) to a BackupctlError. `permission`
 * is the hint for a missing privilege (42501), which depends on what was being done.
 */
export function queryError(error: unknown, doing: string, permission = 'the role lacks a privilege this needs: grant it, or connect as a role that has it'): BackupctlError {
  const { code, message = String(error), hint: serverHint } = (error ?? {}) as PgErrorLike;
  const ours = code === '42501' ? permission : code === '55P03' ? 'another session holds a conflicting lock; raise --lock-wait-timeout or retry later' : undefined;
  // The server's own HINT is kept: it names the setting to change (53200 "out of shared
  // memory": "You might need to increase max_locks_per_transaction.").
  const server = typeof serverHint === 'string' && serverHint.trim() !== '' ? `PostgreSQL: ${serverHint.trim()}` : undefined;
  const hint = [ours, server].filter((part) => part !== undefined).join('; ') || undefined;
  return new BackupctlError(`${doing}: ${message}`, { hint, cause: error });
}

/**
 * The SQLSTATE of an error raised by the server, looked for along the cause chain (our
 * BackupctlErrors carry the driver's error as their cause). Decisions hang on these codes,
 * never on message text, which the server translates.
 */
export function sqlState(error: unknown): string | undefined {
  const seen = new Set<unknown>();
  for (let current = error; current && typeof current === 'object' && !seen.has(current); current = (current as { cause?: unknown }).cause) {
    seen.add(current);
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** Single-quotes a string literal for SQL (standard_conforming_strings on, as every session has it). */
export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** Double-quotes an identifier for SQL. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function passwordHint(settings: ConnectionSettings): string {
  if (settings.passwordSource !== undefined) return `check the password from ${settings.passwordSource}`;
  if (settings.withheldPassword !== undefined) {
    const { source, owner } = settings.withheldPassword;
    return `the config's password (${source}) is only sent to ${owner}: give ${settings.user}'s password for ${settings.host}:${settings.port} in PGPASSWORD or ~/.pgpass (PGPASSFILE)`;
  }
  return "no password was given: set PGPASSWORD, PGPASSFILE/~/.pgpass, or the profile's passwordFile/passwordEnv";
}
