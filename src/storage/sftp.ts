/**
 * SFTP (`sftp://user@host:port/path`) through ssh2-sftp-client (connection and
 * authentication) and the SFTP channel it opens. The only module that imports
 * ssh2-sftp-client: the registry loads it on first use.
 *
 * - Host keys are verified against ~/.ssh/known_hosts (and /etc/ssh/ssh_known_hosts),
 *   or the file named by `known-hosts=`: plain, hashed and `[host]:port` entries. An
 *   unknown host is a HostKeyError naming the key's fingerprint, with an ssh-keyscan
 *   hint; a changed key is a HostKeyError too. Never a silent accept.
 * - Authentication: the ssh-agent (SSH_AUTH_SOCK, or `agent=`), the key file named by
 *   `key=` or else ~/.ssh/id_ed25519, id_ecdsa, id_rsa; a password only from
 *   `password-file=` or `password-env=`. No secret is ever printed.
 * - put: a temporary file `.tmp-<random>-<name>` beside the key (mode 0600), written
 *   with pipelined requests (bounded: 32 x 64 KiB in flight), fsync@openssh.com when
 *   offered, size checked with stat, then posix-rename@openssh.com over the key (atomic
 *   replace). A write that gets no acknowledgement for stallTimeoutMs ends the
 *   connection: StalledError, and the temporary file is removed over a new connection.
 * - putIfAbsent: written complete under a temporary name, then hardlink@openssh.com
 *   (fails when the key exists): conditionalCreate holds only where the server offers it.
 * - Retries: requests that do not stream (stat, list, remove, putBytes, opening a
 *   download...) are retried over a new connection after a connection failure, with
 *   backoff, until retryDeadlineMs. SSH keepalives detect a dead peer.
 * - After a stall, the storage's StallBudget (resilience.ts) holds every later request
 *   (and connection) to one attempt within a short shared budget until one succeeds: the
 *   clean-up after a stall (the temporary file, removing files, the lock, the run log) is
 *   not one more timeout each against a hung server.
 * - The connection never keeps the process alive while idle.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import SftpClient from 'ssh2-sftp-client';
import type { AnyAuthMethod, AuthenticationType, Client as SshClient, ConnectConfig, FileEntryWithStats, SFTPWrapper, Stats } from 'ssh2';
import {
  abortError,
  ConfigurationError,
  CredentialsError,
  entryKindOf,
  HostileEntryError,
  HostKeyError,
  NoSpaceError,
  NotFoundError,
  PermissionError,
  PreconditionFailedError,
  StalledError,
  StorageError,
  TooLargeError,
  TransientError,
  UnsupportedError,
} from './errors.js';
import { fingerprint, hostEntryName, hostKeyAlgorithms, keyTypeOf, knownKeysFor } from './known-hosts.js';
import type { StorageRuntime } from './registry.js';
import { backoffDelay, describeCause, guardReadable, isNetworkError, readAll, resumableDownload, sleep, StallBudget, within, type RetryPolicy } from './resilience.js';
import type { SftpLocation } from './settings.js';
import {
  assertKey,
  isValidKey,
  normalizePrefix,
  keysAfter,
  type ListOptions,
  sortByKey,
  type GetOptions,
  type ObjectInfo,
  type PutOptions,
  type Storage,
  type StorageCapabilities,
  type StaleTemporariesOptions,
} from './storage.js';

const TEMP_PREFIX = '.tmp-';
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
const WRITE_PIECE = 64 * 1024;
const WRITES_IN_FLIGHT = 32;
const READ_PIECE = 64 * 1024;
const READS_IN_FLIGHT = 8;
/** How long close() waits for the server to end the connection before cutting it off. */
const CLOSE_TIMEOUT_MS = 5_000;

/** SFTP status codes (draft-ietf-secsh-filexfer-02): what ssh2 puts in `error.code`. */
const SFTP = { EOF: 1, NO_SUCH_FILE: 2, PERMISSION_DENIED: 3, FAILURE: 4, NO_CONNECTION: 6, CONNECTION_LOST: 7, OP_UNSUPPORTED: 8 } as const;

function codeOf(error: unknown): number | string | undefined {
  return typeof error === 'object' && error !== null ? (error as { code?: number | string }).code : undefined;
}

/** The connection broke (not the request): retrying over a new connection may work. */
function isConnectionError(error: unknown): boolean {
  const code = codeOf(error);
  return code === SFTP.NO_CONNECTION || code === SFTP.CONNECTION_LOST || isNetworkError(error) || error instanceof ConnectionLost;
}

class ConnectionLost extends Error {
  constructor() {
    super('the SFTP connection was lost');
    this.name = 'ConnectionLost';
  }
}

/** A file opened for reading, as it was when opened. */
interface OpenFile {
  session: Session;
  handle: Buffer;
  size: number;
  /** Modification time (seconds), as fstat gave it. */
  mtime: number;
}

interface Session {
  client: SftpClient;
  sftp: SFTPWrapper;
  /** Absolute remote path of the storage root. */
  root: string;
  extensions: { posixRename: boolean; hardlink: boolean; fsync: boolean; statvfs: boolean };
  alive: boolean;
  /**
   * Rejecters of everything waiting on this connection, called with ConnectionLost when
   * it ends (so nothing hangs). A set, not a race against one long-lived promise: each
   * such race would keep its result reachable until the connection ends.
   */
  waiters: Set<(error: Error) => void>;
  /** Requests sent and not yet answered, and when the server last answered one. */
  pending: number;
  lastAnswer: number;
  /** Set when the watchdog ended the connection: requests were outstanding and none was answered for stallTimeoutMs. */
  stalled: boolean;
  watchdog: NodeJS.Timeout | null;
}

export class SftpStorage implements Storage {
  readonly location: string;
  private caps: StorageCapabilities = {
    atomicPut: true,
    conditionalCreate: false,
    localFiles: false,
    rangeReads: true,
    consistentList: true,
    pagedList: true,
  };
  private session: Session | null = null;
  private connecting: Promise<Session> | null = null;
  private active = 0;
  private readonly madeDirs = new Set<string>();
  private readonly retry: RetryPolicy;
  /** Stalls seen in this run (shared by every request of this storage). */
  private readonly budget: StallBudget;
  /**
   * The server could not be reached until the retry deadline (connections refused or
   * lost), or a connection died mid-write and a new one could not be made: until a
   * request succeeds, requests get one attempt each, so that what follows a failed write
   * (removing the backup's other files, releasing the lock, the run log) fails in
   * seconds, not one more deadline each (a create whose sshd was killed took three
   * deadlines to fail). As on S3 and Azure.
   */
  private unreachable = false;
  /** Connections still in their handshake: close() cuts them off (a hung server never ends one). */
  private readonly handshaking = new Set<SftpClient>();

  constructor(
    private readonly config: SftpLocation,
    private readonly runtime: StorageRuntime,
  ) {
    this.location = config.display;
    this.retry = { deadlineMs: config.retryDeadlineMs, baseDelayMs: 200, maxDelayMs: 10_000 };
    this.budget = new StallBudget(config.stallTimeoutMs);
  }

  get capabilities(): StorageCapabilities {
    return this.caps;
  }

  private home(path: string): string {
    return path.startsWith('~/') ? posix.join(this.runtime.homeDir, path.slice(2)) : path;
  }

  // ---------------------------------------------------------------------------------
  // Connection

  private async readSecret(file: string | undefined, variable: string | undefined, what: string): Promise<string | undefined> {
    if (file !== undefined) {
      try {
        return (await readFile(this.home(file), 'utf8')).replace(/\r?\n$/, '');
      } catch (error) {
        throw new ConfigurationError(`cannot read the ${what} file ${file}`, { cause: error });
      }
    }
    if (variable !== undefined) {
      const value = this.runtime.env[variable];
      if (value === undefined || value === '') throw new ConfigurationError(`the environment variable ${variable} (${what}) is not set`);
      return value;
    }
    return undefined;
  }

  private async knownKeys(): Promise<{ keys: ReturnType<typeof knownKeysFor>; files: string[] }> {
    const { host, port, settings } = this.config;
    const files = settings.knownHostsFile
      ? [this.home(settings.knownHostsFile)]
      : [posix.join(this.runtime.homeDir, '.ssh', 'known_hosts'), '/etc/ssh/ssh_known_hosts'];
    const keys: ReturnType<typeof knownKeysFor> = [];
    for (const file of files) {
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (error) {
        if (settings.knownHostsFile) throw new ConfigurationError(`cannot read the known_hosts file ${file}`, { cause: error });
        continue;
      }
      keys.push(...knownKeysFor(text, host, port));
    }
    return { keys, files };
  }

  private async authMethods(username: string): Promise<{ methods: AnyAuthMethod[]; described: string[] }> {
    const { settings } = this.config;
    const methods: AnyAuthMethod[] = [];
    const described: string[] = [];
    const agent = settings.agent === false ? undefined : (settings.agent ?? this.runtime.env.SSH_AUTH_SOCK);
    if (agent) {
      methods.push({ type: 'agent', username, agent });
      described.push('ssh-agent');
    }
    const passphrase = await this.readSecret(settings.passphraseFile, settings.passphraseEnv, 'key passphrase');
    const keyFiles = settings.keyFile
      ? [this.home(settings.keyFile)]
      : ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((name) => posix.join(this.runtime.homeDir, '.ssh', name));
    for (const file of keyFiles) {
      let key: Buffer;
      try {
        key = await readFile(file);
      } catch (error) {
        if (settings.keyFile) throw new ConfigurationError(`cannot read the private key ${file}`, { cause: error });
        continue;
      }
      methods.push({ type: 'publickey', username, key, ...(passphrase === undefined ? {} : { passphrase }) });
      described.push(file);
    }
    const password = await this.readSecret(settings.passwordFile, settings.passwordEnv, 'password');
    if (password !== undefined) {
      methods.push({ type: 'password', username, password });
      described.push('password');
    }
    return { methods, described };
  }

  private async connectOnce(): Promise<Session> {
    const { host, port } = this.config;
    const username = this.config.user ?? this.runtime.env.USER ?? this.runtime.env.LOGNAME;
    if (!username) throw new ConfigurationError('the sftp:// URL names no user and USER is not set', { hint: 'write sftp://user@host/path' });
    const { keys, files } = await this.knownKeys();
    const { methods, described } = await this.authMethods(username);
    if (methods.length === 0) {
      throw new CredentialsError(`no SSH key or agent found to log in to ${hostEntryName(host, port)}`, {
        hint: 'start ssh-agent (SSH_AUTH_SOCK), create ~/.ssh/id_ed25519, or name a key with key=/path (a password only with password-file= or password-env=)',
      });
    }
    let hostKeyProblem: HostKeyError | null = null;
    let authExhausted = false;
    let level: string | undefined;
    const hostVerifier = (blob: Buffer): boolean => {
      const type = keyTypeOf(blob);
      const print = fingerprint(blob);
      const name = hostEntryName(host, port);
      if (keys.some((known) => known.revoked && known.key.equals(blob))) {
        hostKeyProblem = new HostKeyError(`the host key of ${name} (${type} ${print}) is marked @revoked in known_hosts`);
        return false;
      }
      if (keys.some((known) => !known.revoked && known.key.equals(blob))) return true;
      if (keys.some((known) => !known.revoked)) {
        hostKeyProblem = new HostKeyError(
          `the host key of ${name} does not match known_hosts: the server offered ${type} ${print} (line ${keys.map((k) => k.line).join(', ')} of ${files.join(' or ')} has another key)`,
          { hint: 'if the server was reinstalled, check the new key with its administrator, then replace the entry (ssh-keygen -R); otherwise someone may be intercepting the connection' },
        );
        return false;
      }
      hostKeyProblem = new HostKeyError(`${name} is not a known host (its ${type} key is ${print}); not in ${files.join(' or ')}`, {
        hint: `check the fingerprint with the server's administrator, then add it: ssh-keyscan -p ${port} ${host} >> ~/.ssh/known_hosts (or name another file with known-hosts=/path)`,
      });
      return false;
    };
    let next = 0;
    const authHandler = (_methodsLeft: AuthenticationType[], _partial: boolean, callback: (method: AnyAuthMethod | false) => void) => {
      const method = methods[next++];
      if (!method) authExhausted = true;
      callback(method ?? false);
    };
    const knownTypes = [...new Set(keys.filter((known) => !known.revoked).map((known) => known.type))];
    const connectConfig: ConnectConfig = {
      host,
      port,
      username,
      readyTimeout: this.config.settings.connectTimeoutMs ?? 20_000,
      keepaliveInterval: 0, // our watchdog detects a dead peer (see connectOnce)
      hostVerifier,
      authHandler: authHandler as ConnectConfig['authHandler'],
      ...(knownTypes.length > 0 ? { algorithms: { serverHostKey: hostKeyAlgorithms(knownTypes) as never } } : {}),
    };
    let session: Session | null = null;
    const waiters = new Set<(error: Error) => void>();
    const ended = () => {
      if (session) {
        session.alive = false;
        if (session.watchdog) clearInterval(session.watchdog);
      }
      if (this.session === session) this.session = null;
      for (const fail of waiters) fail(new ConnectionLost());
      waiters.clear();
    };
    const client = new SftpClient('backupctl', { error: ended, end: ended, close: ended });
    client.on('error', (error: Error & { level?: string }) => {
      level ??= error.level;
    });
    // Without its optional native addon (never in the published bundle: scripts/build.mjs),
    // ssh2 sends each encrypted packet in several socket writes; with Nagle's algorithm on,
    // every request then waits for the server's delayed ACK (about 40 ms a round trip,
    // over a second per connection). SSH here is request and response: no Nagle.
    const ssh = sshClientOf(client);
    ssh?.once('connect', () => ssh.setNoDelay(true));
    let sftp: SFTPWrapper;
    this.handshaking.add(client);
    try {
      sftp = (await client.connect(connectConfig)) as unknown as SFTPWrapper;
    } catch (error) {
      await client.end().catch(() => undefined);
      if (hostKeyProblem) throw hostKeyProblem;
      if (authExhausted || level === 'client-authentication') {
        throw new CredentialsError(`${username}@${hostEntryName(host, port)} refused every key offered (${described.join(', ')})`, {
          hint: 'check that the public key is in the server\'s authorized_keys; an encrypted key needs passphrase-file= or passphrase-env=',
        });
      }
      throw new TransientError(`cannot connect to ${hostEntryName(host, port)} (${level ?? describeCause(error)})`, { cause: error });
    } finally {
      this.handshaking.delete(client);
    }
    const extensions = (sftp as unknown as { _extensions?: Record<string, string> })._extensions ?? {};
    const found = {
      posixRename: extensions['posix-rename@openssh.com'] === '1',
      hardlink: extensions['hardlink@openssh.com'] === '1',
      fsync: extensions['fsync@openssh.com'] === '1',
      statvfs: extensions['statvfs@openssh.com'] === '2',
    };
    let root = this.config.path;
    if (!root.startsWith('/')) {
      root = await new Promise<string>((resolve, reject) => sftp.realpath(root === '.' ? '.' : root, (error, path) => (error ? reject(error) : resolve(path)))).catch(
        async (error: unknown) => {
          if (codeOf(error) !== SFTP.NO_SUCH_FILE) throw error;
          const home = await new Promise<string>((resolve, reject) => sftp.realpath('.', (failure, path) => (failure ? reject(failure) : resolve(path))));
          return posix.join(home, this.config.path);
        },
      );
    }
    const live: Session = {
      client,
      sftp,
      root: root.replace(/\/+$/, '') || '/',
      extensions: found,
      alive: true,
      waiters,
      pending: 0,
      lastAnswer: performance.now(),
      stalled: false,
      watchdog: null,
    };
    session = live;
    // The stall watchdog (instead of ssh2's keepalive, whose timer would keep the process alive).
    live.watchdog = setInterval(() => {
      if (live.pending > 0 && performance.now() - live.lastAnswer > this.config.stallTimeoutMs) {
        live.stalled = true;
        this.budget.noteStall();
        this.drop(live);
      }
    }, Math.max(100, Math.min(1000, Math.floor(this.config.stallTimeoutMs / 4))));
    live.watchdog.unref();
    this.caps = { ...this.caps, atomicPut: found.posixRename, conditionalCreate: found.hardlink };
    this.idle(live);
    return live;
  }

  /** The SSH socket must not keep the process alive while no request is in flight. */
  private idle(session: Session): void {
    const socket = socketOf(session.client);
    if (this.active > 0) socket?.ref?.();
    else socket?.unref?.();
  }

  /** The server answered a request: stalls and unreachability are over, requests are retried as usual again. */
  private answered(): void {
    this.unreachable = false;
    this.budget.noteSuccess();
  }

  private async connect(): Promise<Session> {
    if (this.session?.alive) return this.session;
    this.connecting ??= this.connectOnce()
      .then((session) => {
        this.session = session;
        return session;
      })
      .finally(() => {
        this.connecting = null;
      });
    return this.connecting;
  }

  /**
   * Runs one request that does not stream, on a live connection; a connection failure
   * reconnects and retries with backoff until the retry deadline. Other failures are
   * mapped at once.
   */
  private async request<T>(key: string, doing: string, run: (session: Session) => Promise<T>): Promise<T> {
    const started = performance.now();
    const what = `${doing} ${key || 'the storage root'}`;
    this.active += 1;
    try {
      for (let attempt = 1; ; attempt++) {
        const { limit, bounded } = this.budgeted(what, key);
        let session: Session;
        try {
          session = await bounded(this.connect());
        } catch (error) {
          if (!(error instanceof TransientError)) throw error;
          const delay = backoffDelay(attempt, this.retry);
          if (this.unreachable || !this.budget.mayRetry(delay)) throw error;
          if (performance.now() - started + delay > this.retry.deadlineMs) {
            this.unreachable = true;
            throw error;
          }
          await sleep(delay);
          continue;
        }
        this.idle(session);
        try {
          const result = await bounded(untilLost(session, run(session)), () => this.drop(session));
          this.answered();
          return result;
        } catch (error) {
          if (error instanceof StalledError) throw error;
          if (!isConnectionError(error)) {
            if (typeof codeOf(error) === 'number') this.answered(); // an SFTP status: the server answered
            throw await this.mapError(error, key, doing, session);
          }
          this.drop(session);
          const delay = backoffDelay(attempt, this.retry);
          if (this.unreachable || performance.now() - started + delay > this.retry.deadlineMs || !this.budget.mayRetry(delay)) {
            if (session.stalled || limit !== null) {
              throw new StalledError(`${what}: no answer for ${Math.round(this.config.stallTimeoutMs / 1000)} s`, { key, cause: error });
            }
            this.unreachable = true;
            throw new TransientError(`${doing} ${key}: the SFTP connection kept failing until the retry deadline (${describeCause(error)})`, { key, cause: error });
          }
          await sleep(delay);
        }
      }
    } finally {
      this.active -= 1;
      if (this.session) this.idle(this.session);
    }
  }

  /**
   * The stall budget of an attempt starting now (StalledError when it is spent): `bounded`
   * passes a promise through, or, after a stall, fails it with StalledError when the
   * budget's rest has passed (running `onTimeout` first, to end what it waits on).
   */
  private budgeted(what: string, key?: string): { limit: number | null; bounded: <R>(promise: Promise<R>, onTimeout?: () => void) => Promise<R> } {
    const limit = this.budget.begin(what, key);
    const bounded = <R>(promise: Promise<R>, onTimeout?: () => void): Promise<R> => {
      if (limit === null) return promise;
      return within(promise, limit, () => {
        onTimeout?.();
        return new StalledError(`${what}: no answer within the ${Math.round(limit / 100) / 10} s left after the storage stalled`, { key });
      });
    };
    return { limit, bounded };
  }

  private drop(session: Session): void {
    session.alive = false;
    if (session.watchdog) clearInterval(session.watchdog);
    if (this.session === session) this.session = null;
    socketOf(session.client)?.destroy();
    void session.client.end().catch(() => undefined);
  }

  private async mapError(error: unknown, key: string, doing: string, session: Session | null, path?: string): Promise<unknown> {
    if (error instanceof StorageError) return error;
    const code = codeOf(error);
    const what = `${doing} ${key || 'the storage root'}`;
    const options = { key, cause: error };
    if (code === SFTP.NO_SUCH_FILE) return new NotFoundError(key, { cause: error });
    if (code === SFTP.PERMISSION_DENIED) return new PermissionError(`${what}: permission denied`, { ...options, hint: 'check the owner and mode of the directory on the server, and which user the URL logs in as' });
    if (code === SFTP.OP_UNSUPPORTED) return new UnsupportedError(`${what}: the SFTP server does not support this operation`, options);
    if (code === SFTP.FAILURE && session && path && session.extensions.statvfs) {
      // SFTP v3 reports ENOSPC as a plain FAILURE: ask the file system how full it is.
      const free = await statvfsFree(session, posix.dirname(path)).catch(() => null);
      if (free !== null && free < 1024 * 1024) return new NoSpaceError(`${what}: no space left on the server`, options);
    }
    if (isConnectionError(error)) return new TransientError(`${what}: the SFTP connection was lost`, options);
    return new StorageError('io', `${what} failed (SFTP ${describeCause(error)})`, options);
  }

  // ---------------------------------------------------------------------------------
  // Paths

  private pathOf(session: Session, key: string): string {
    assertKey(key);
    return posix.join(session.root, ...key.split('/'));
  }

  private async ensureDirs(session: Session, dir: string): Promise<void> {
    if (dir === session.root && this.madeDirs.has(dir)) return;
    const missing: string[] = [];
    for (let current = dir; ; current = posix.dirname(current)) {
      if (this.madeDirs.has(current)) break;
      const info = await sftpCall<Stats>(session, (cb) => session.sftp.stat(current, cb)).catch((error: unknown) => {
        if (codeOf(error) === SFTP.NO_SUCH_FILE) return null;
        throw error;
      });
      if (info) {
        if (!info.isDirectory()) throw new StorageError('io', `${current} on the SFTP server is not a directory`, { errno: 'ENOTDIR' });
        this.madeDirs.add(current);
        break;
      }
      missing.unshift(current);
      if (posix.dirname(current) === current) break;
    }
    for (const path of missing) {
      await sftpCall<void>(session, (cb) => session.sftp.mkdir(path, { mode: DIR_MODE }, cb)).catch(async (error: unknown) => {
        // Created meanwhile by a concurrent put: fine. Anything else is the real error.
        const info = await sftpCall<Stats>(session, (cb) => session.sftp.stat(path, cb)).catch(() => null);
        if (info?.isDirectory()) return;
        // "No such file" here is a directory that cannot be made where it is (/proc/x), not a
        // missing object: said as such, with the path (a NotFoundError named only the key).
        const code = codeOf(error);
        if (code === SFTP.NO_SUCH_FILE || code === SFTP.FAILURE) {
          throw new StorageError('io', `cannot create directory ${path} on the SFTP server (SFTP ${describeCause(error)})`, {
            cause: error,
            hint: 'check the path in the storage URL: a directory on the way cannot hold new directories, or the server refuses them there',
          });
        }
        throw error;
      });
      this.madeDirs.add(path);
    }
  }

  async open(): Promise<StorageCapabilities> {
    await this.request('', 'connecting to', async () => undefined);
    return this.caps;
  }

  async close(): Promise<void> {
    const session = this.session;
    this.session = null;
    this.madeDirs.clear();
    // A handshake a hung server never answers would keep the process alive until its timeout.
    for (const client of this.handshaking) socketOf(client)?.destroy();
    if (session) {
      session.alive = false;
      if (session.watchdog) clearInterval(session.watchdog);
      // Waiting for the server to close the connection is work in flight: with the idle
      // socket unref'd, nothing else may keep the event loop alive (a CLI run that closes
      // its storages last), and Node would exit (code 13, unsettled await) before the end.
      // A server that never answers the disconnect is cut off after a few seconds.
      const socket = socketOf(session.client);
      socket?.ref();
      const cutOff = setTimeout(() => socket?.destroy(), CLOSE_TIMEOUT_MS);
      await session.client.end().catch(() => undefined);
      clearTimeout(cutOff);
    }
  }

  // ---------------------------------------------------------------------------------
  // Writing

  /**
   * Writes `source` into a new temporary file beside `key` and returns its path and size
   * (flushed when the server can). The file is removed on any failure.
   */
  private async writeTemp(session: Session, key: string, source: Readable | Buffer, options: PutOptions = {}): Promise<{ temp: string; bytes: number }> {
    const final = this.pathOf(session, key);
    await this.ensureDirs(session, posix.dirname(final));
    const temp = posix.join(posix.dirname(final), `${TEMP_PREFIX}${randomBytes(6).toString('hex')}-${posix.basename(final)}`);
    const handle = await sftpCall<Buffer>(session, (cb) => session.sftp.open(temp, 'wx', { mode: FILE_MODE }, cb));
    try {
      const bytes = await writeAll(session, handle, source, options);
      if (session.extensions.fsync) await sftpCall<unknown>(session, (cb) => session.sftp.ext_openssh_fsync(handle, cb));
      await sftpCall<void>(session, (cb) => session.sftp.close(handle, cb));
      const info = await sftpCall<Stats>(session, (cb) => session.sftp.stat(temp, cb));
      if (info.size !== bytes) {
        throw new StorageError('io', `writing ${key}: the server holds ${info.size} bytes of the ${bytes} sent`, { key });
      }
      return { temp, bytes };
    } catch (error) {
      if (session.alive) {
        await sftpCall<void>(session, (cb) => session.sftp.close(handle, cb)).catch(() => undefined);
        await sftpCall<void>(session, (cb) => session.sftp.unlink(temp, cb)).catch(() => undefined);
      } else {
        await this.removeOverNewConnection(temp);
      }
      if (session.stalled) throw new StalledError(`writing ${key}: no acknowledgement for ${Math.round(this.config.stallTimeoutMs / 1000)} s`, { key, cause: error });
      throw error;
    }
  }

  /**
   * After the connection died mid-write: one short attempt to remove the temporary file
   * (after a stall, within the stall budget; none once it is spent).
   */
  private async removeOverNewConnection(path: string): Promise<void> {
    const attempt = (async () => {
      const limit = this.budget.begin(`removing ${path}`) ?? Math.min(this.config.stallTimeoutMs, 15_000);
      const removal = (async () => {
        let session: Session;
        try {
          session = await this.connect();
        } catch (error) {
          // The connection died mid-write and no new one can be made: the server is gone.
          if (error instanceof TransientError) this.unreachable = true;
          throw error;
        }
        await sftpCall<void>(session, (cb) => session.sftp.unlink(path, cb));
        this.answered();
      })();
      await within(removal, limit, () => new Error('timeout'));
    })();
    await attempt.catch(() => {
      this.runtime.warn(`${this.location}: could not remove the temporary file ${path}; prune removes it once it is old`);
    });
  }

  /** Publishes a complete temporary file under `key`: posix-rename replaces atomically. */
  private async publish(session: Session, temp: string, key: string): Promise<void> {
    const final = this.pathOf(session, key);
    if (session.extensions.posixRename) {
      await sftpCall<void>(session, (cb) => session.sftp.ext_openssh_rename(temp, final, cb));
      return;
    }
    // Without posix-rename a plain rename refuses an existing target: remove it first
    // (not atomic; atomicPut is false on such a server).
    await sftpCall<void>(session, (cb) => session.sftp.unlink(final, cb)).catch((error: unknown) => {
      if (codeOf(error) !== SFTP.NO_SUCH_FILE) throw error;
    });
    await sftpCall<void>(session, (cb) => session.sftp.rename(temp, final, cb));
  }

  async put(key: string, source: Readable, options: PutOptions = {}): Promise<{ bytes: number }> {
    assertKey(key);
    const { signal } = options;
    if (signal?.aborted) throw abortError(signal);
    // Read through a pass-through of our own: an abort or a stall stops it, never the caller's stream.
    const feed = new PassThrough();
    // Its errors are seen by whoever reads it (an errored stream throws into for-await),
    // also when it fails before reading starts: never an uncaught 'error' event.
    feed.on('error', () => undefined);
    let sourceError: unknown = null;
    source.on('error', (error) => {
      sourceError = error;
      feed.destroy(error);
    });
    source.pipe(feed);
    const stopFeed = (reason: Error) => {
      source.unpipe(feed);
      feed.destroy(reason);
    };
    const onAbort = () => stopFeed(abortError(signal as AbortSignal));
    signal?.addEventListener('abort', onAbort, { once: true });
    this.active += 1;
    let session: Session | null = null;
    try {
      // After a stall: connecting within the stall budget, and not at all once it is spent.
      session = await this.budgeted(`writing ${key}`, key).bounded(this.connect());
      this.idle(session);
      const live = session;
      const onLost = (error: Error) => stopFeed(error);
      live.waiters.add(onLost);
      feed.once('close', () => live.waiters.delete(onLost));
      const { temp, bytes } = await this.writeTemp(session, key, feed, options);
      try {
        await this.publish(session, temp, key);
      } catch (error) {
        await sftpCall<void>(session as Session, (cb) => (session as Session).sftp.unlink(temp, cb)).catch(() => undefined);
        throw error;
      }
      this.answered();
      options.onProgress?.(bytes);
      return { bytes };
    } catch (error) {
      if (signal?.aborted) throw abortError(signal);
      if (sourceError !== null) throw sourceError;
      if (error instanceof ConnectionLost) throw new TransientError(`writing ${key}: the SFTP connection was lost`, { key, cause: error });
      throw await this.mapError(error, key, 'writing', session, session ? this.pathOf(session, key) : undefined);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      source.unpipe(feed);
      this.active -= 1;
      if (this.session) this.idle(this.session);
    }
  }

  async putBytes(key: string, data: Buffer): Promise<void> {
    assertKey(key);
    await this.request(key, 'writing', async (session) => {
      const { temp } = await this.writeTemp(session, key, data);
      try {
        await this.publish(session, temp, key);
      } catch (error) {
        await sftpCall<void>(session, (cb) => session.sftp.unlink(temp, cb)).catch(() => undefined);
        throw error;
      }
    });
  }

  async putIfAbsent(key: string, data: Buffer): Promise<boolean> {
    assertKey(key);
    await this.connect().catch(() => undefined);
    if (!this.caps.conditionalCreate) {
      throw new UnsupportedError(`${this.location} does not offer hardlink@openssh.com, needed for an atomic create-if-absent`, { key });
    }
    let attempts = 0;
    return this.request(key, 'writing', async (session) => {
      attempts += 1;
      const { temp } = await this.writeTemp(session, key, data);
      try {
        await sftpCall<void>(session, (cb) => session.sftp.ext_openssh_hardlink(temp, this.pathOf(session, key), cb));
        return true;
      } catch (error) {
        const existing = await sftpCall<Stats>(session, (cb) => session.sftp.lstat(this.pathOf(session, key), cb)).catch(() => null);
        if (existing === null) throw error;
        // An earlier attempt lost with its connection may have created it: ours if it holds our bytes.
        if (attempts > 1 && existing.size === data.length) {
          const current = await this.readWhole(session, this.pathOf(session, key), data.length).catch(() => null);
          return current !== null && current.equals(data);
        }
        return false;
      } finally {
        await sftpCall<void>(session, (cb) => session.sftp.unlink(temp, cb)).catch(() => undefined);
      }
    }).catch((error: unknown) => {
      if (error instanceof PreconditionFailedError) return false;
      throw error;
    });
  }

  // ---------------------------------------------------------------------------------
  // Reading

  private async readWhole(session: Session, path: string, limit: number): Promise<Buffer> {
    const handle = await sftpCall<Buffer>(session, (cb) => session.sftp.open(path, 'r', cb));
    try {
      const chunks: Buffer[] = [];
      let total = 0;
      for (;;) {
        const buffer = Buffer.allocUnsafe(READ_PIECE);
        const read = await sftpRead(session, handle, buffer, total);
        if (read === 0) break;
        total += read;
        if (total > limit) throw new TooLargeError(path, total, limit);
        chunks.push(buffer.subarray(0, read));
      }
      return Buffer.concat(chunks, total);
    } finally {
      await sftpCall<void>(session, (cb) => session.sftp.close(handle, cb)).catch(() => undefined);
    }
  }

  /**
   * The file's bytes, streamed. A connection lost in the middle is picked up where it broke
   * (resumableDownload): the file is opened again on a new connection and read on from
   * there, if it is still the one first opened (same size and modification time: every
   * file backupctl writes is renamed into place, so a replaced one has its own time).
   */
  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    assertKey(key);
    const { signal, range } = options;
    if (signal?.aborted) throw abortError(signal);
    if (range?.length === 0) return Readable.from([]);
    const first = await this.openRead(key);
    const start = Math.min(range?.offset ?? 0, first.size);
    const end = range?.length === undefined ? first.size : Math.min(first.size, start + range.length);
    return resumableDownload(
      this.readRange(key, first, start, end, signal),
      async (delivered, stop) => {
        const again = await this.openRead(key);
        if (again.size !== first.size || again.mtime !== first.mtime) {
          this.closeRead(again);
          throw new StorageError('io', `reading ${key}: the file was replaced while it was read`, { key });
        }
        return this.readRange(key, again, start + delivered, end, stop);
      },
      { policy: this.retry, signal },
    );
  }

  /** Opens a file for reading (retried like any request): its session, handle, size and time. */
  private async openRead(key: string): Promise<OpenFile> {
    return this.request(key, 'reading', async (session) => {
      const path = this.pathOf(session, key);
      // Looked at before it is opened: the server's open() follows a symlink and waits on
      // a FIFO for a writer (for ever, and its session process with it).
      const entry = await sftpCall<Stats>(session, (cb) => session.sftp.lstat(path, cb));
      if (entryKindOf(entry) !== 'file') throw new HostileEntryError(key, entryKindOf(entry));
      const handle = await sftpCall<Buffer>(session, (cb) => session.sftp.open(path, 'r', cb));
      const info = await sftpCall<Stats>(session, (cb) => session.sftp.fstat(handle, cb)).catch(async (error: unknown) => {
        await sftpCall<void>(session, (cb) => session.sftp.close(handle, cb)).catch(() => undefined);
        throw error;
      });
      if (!info.isFile()) {
        await sftpCall<void>(session, (cb) => session.sftp.close(handle, cb)).catch(() => undefined);
        throw new HostileEntryError(key, entryKindOf(info));
      }
      return { session, handle, size: info.size, mtime: info.mtime };
    });
  }

  private closeRead(file: OpenFile): void {
    if (file.session.alive) file.session.sftp.close(file.handle, () => undefined);
  }

  /** Bytes `start` .. `end - 1` of an open file, guarded; the file is closed when the stream ends. */
  private readRange(key: string, file: OpenFile, start: number, end: number, signal: AbortSignal | undefined): Readable {
    const { session, handle } = file;
    this.active += 1;
    this.idle(session);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.active -= 1;
      if (session.alive) {
        this.closeRead(file);
        this.idle(session);
      }
    };
    return guardReadable(pipelinedReader(session, handle, start, end), {
      key,
      signal,
      stallTimeoutMs: this.config.stallTimeoutMs,
      mapError: (error) => (isConnectionError(error) ? new TransientError(`reading ${key}: the SFTP connection was lost`, { key, cause: error }) : new StorageError('io', `reading ${key} failed (SFTP ${describeCause(error)})`, { key, cause: error })),
      onClose: release,
    });
  }

  async getBytes(key: string, maxBytes: number): Promise<Buffer> {
    const info = await this.stat(key);
    if (info.size > maxBytes) throw new TooLargeError(key, info.size, maxBytes);
    return readAll(await this.get(key), maxBytes, () => new TooLargeError(key, maxBytes + 1, maxBytes));
  }

  async stat(key: string): Promise<ObjectInfo> {
    assertKey(key);
    const info = await this.request(key, 'reading', (session) => sftpCall<Stats>(session, (cb) => session.sftp.lstat(this.pathOf(session, key), cb)));
    const kind = entryKindOf(info);
    if (kind !== 'file') throw new HostileEntryError(key, kind);
    return { key, size: info.size, modifiedAt: new Date(info.mtime * 1000) };
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ObjectInfo[]> {
    const wanted = normalizePrefix(prefix);
    const found: ObjectInfo[] = [];
    await this.request(wanted, 'listing', async (session) => {
      found.length = 0;
      const walk = async (dir: string, keyPrefix: string): Promise<void> => {
        let entries: FileEntryWithStats[];
        try {
          entries = await sftpCall<FileEntryWithStats[]>(session, (cb) => session.sftp.readdir(dir, cb));
        } catch (error) {
          if (codeOf(error) === SFTP.NO_SUCH_FILE || codeOf(error) === SFTP.FAILURE) return; // missing, or not a directory
          throw error;
        }
        const dirs: Array<[string, string]> = [];
        for (const entry of entries) {
          if (entry.filename.startsWith('.')) continue;
          const key = keyPrefix === '' ? entry.filename : `${keyPrefix}/${entry.filename}`;
          if (!isValidKey(key)) continue;
          // READDIR reports entries as lstat does: a symlink is one, never what it points to.
          const kind = entryKindOf(entry.attrs);
          if (kind === 'directory') {
            options.onDirectory?.(key);
            dirs.push([posix.join(dir, entry.filename), key]);
          }
          else if (kind === 'file') found.push({ key, size: entry.attrs.size, modifiedAt: new Date(entry.attrs.mtime * 1000) });
          else options.onHostile?.(key, kind); // not an object: reported, never followed or read
        }
        await Promise.all(dirs.map(([path, key]) => walk(path, key)));
      };
      await walk(wanted === '' ? session.root : posix.join(session.root, ...wanted.split('/')), wanted);
    });
    return keysAfter(sortByKey(found), options.startAfter);
  }

  async children(prefix: string): Promise<string[]> {
    const wanted = normalizePrefix(prefix);
    return this.request(wanted, 'listing', async (session) => {
      let entries: FileEntryWithStats[];
      try {
        const dir = wanted === '' ? session.root : posix.join(session.root, ...wanted.split('/'));
        entries = await sftpCall<FileEntryWithStats[]>(session, (cb) => session.sftp.readdir(dir, cb));
      } catch (error) {
        if (codeOf(error) === SFTP.NO_SUCH_FILE || codeOf(error) === SFTP.FAILURE) return []; // missing, or not a directory
        throw error;
      }
      const names = entries
        .filter((entry) => !entry.filename.startsWith('.') && entry.attrs.isDirectory())
        .map((entry) => entry.filename)
        .filter((name) => isValidKey(wanted === '' ? name : `${wanted}/${name}`));
      return names.sort();
    });
  }

  async remove(key: string): Promise<void> {
    assertKey(key);
    await this.request(key, 'removing', async (session) => {
      await sftpCall<void>(session, (cb) => session.sftp.unlink(this.pathOf(session, key), cb)).catch((error: unknown) => {
        if (codeOf(error) !== SFTP.NO_SUCH_FILE) throw error;
      });
    });
  }

  async checkWritable(prefix: string): Promise<void> {
    const wanted = normalizePrefix(prefix);
    await this.request(wanted, 'writing a probe in', async (session) => {
      const { temp } = await this.writeTemp(session, wanted === '' ? 'probe' : `${wanted}/probe`, Buffer.alloc(0));
      await sftpCall<void>(session, (cb) => session.sftp.unlink(temp, cb));
    });
  }

  async removeStaleTemporaries(prefix: string, olderThan: Date, options: StaleTemporariesOptions = {}): Promise<{ files: number; bytes: number }> {
    const wanted = normalizePrefix(prefix);
    return this.request(wanted, 'removing temporaries in', async (session) => {
      const dir = wanted === '' ? session.root : posix.join(session.root, ...wanted.split('/'));
      let entries: FileEntryWithStats[];
      try {
        entries = await sftpCall<FileEntryWithStats[]>(session, (cb) => session.sftp.readdir(dir, cb));
      } catch (error) {
        if (codeOf(error) === SFTP.NO_SUCH_FILE) return { files: 0, bytes: 0 };
        throw error;
      }
      let files = 0;
      let bytes = 0;
      for (const entry of entries) {
        if (!entry.filename.startsWith(TEMP_PREFIX) || !entry.attrs.isFile()) continue;
        if (entry.attrs.mtime * 1000 >= olderThan.getTime()) continue;
        if (options.dryRun !== true) {
          await sftpCall<void>(session, (cb) => session.sftp.unlink(posix.join(dir, entry.filename), cb)).catch((error: unknown) => {
            if (codeOf(error) !== SFTP.NO_SUCH_FILE) throw error;
          });
        }
        files += 1;
        bytes += entry.attrs.size;
      }
      return { files, bytes };
    });
  }
}

// -------------------------------------------------------------------------------------
// SFTP request helpers

/** The ssh2 Client under ssh2-sftp-client (`client`: not in its type declarations). */
function sshClientOf(client: SftpClient): SshClient | undefined {
  return (client as unknown as { client?: SshClient }).client;
}

/** The TCP socket under ssh2-sftp-client's ssh2 Client (both private: `client`, `_sock`). */
function socketOf(client: SftpClient): { ref(): void; unref(): void; destroy(): void } | undefined {
  const ssh = (client as unknown as { client?: { _sock?: { ref(): void; unref(): void; destroy(): void } } }).client;
  return ssh?._sock;
}

/**
 * One SFTP request on a session: counted as outstanding until answered (the session's
 * watchdog ends a connection whose outstanding requests get no answer for
 * stallTimeoutMs), and rejected with ConnectionLost if the connection ends first.
 */
function sftpCall<T>(session: Session, start: (callback: (error: Error | undefined | null, value: T) => void) => void): Promise<T> {
  if (!session.alive) return Promise.reject(new ConnectionLost());
  session.pending += 1;
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const settle = (error: Error | null, value?: T) => {
      if (settled) return;
      settled = true;
      session.pending -= 1;
      session.waiters.delete(lost);
      if (error) reject(error);
      else resolve(value as T);
    };
    const lost = (error: Error) => settle(error);
    session.waiters.add(lost);
    try {
      start((error, value) => {
        session.lastAnswer = performance.now();
        settle(error ?? null, value);
      });
    } catch (error) {
      settle(error instanceof Error ? error : new Error(String(error))); // ssh2 throws synchronously when not connected
    }
  });
}

/** `promise`, or ConnectionLost as soon as the connection ends. */
function untilLost<T>(session: Session, promise: Promise<T>): Promise<T> {
  if (!session.alive) {
    promise.catch(() => undefined);
    return Promise.reject(new ConnectionLost());
  }
  return new Promise<T>((resolve, reject) => {
    const lost = (error: Error) => reject(error);
    session.waiters.add(lost);
    promise.then(
      (value) => {
        session.waiters.delete(lost);
        resolve(value);
      },
      (error: unknown) => {
        session.waiters.delete(lost);
        reject(error);
      },
    );
  });
}

function sftpRead(session: Session, handle: Buffer, buffer: Buffer, position: number): Promise<number> {
  return sftpCall<number>(session, (cb) =>
    session.sftp.read(handle, buffer, 0, buffer.length, position, (error: Error | undefined, bytesRead: number) => {
      if (error && codeOf(error) === SFTP.EOF) cb(undefined, 0);
      else cb(error, bytesRead);
    }),
  );
}

function statvfsFree(session: Session, path: string): Promise<number> {
  return sftpCall<{ bavail: number; frsize: number }>(session, (cb) => session.sftp.ext_openssh_statvfs(path, cb)).then((info) => info.bavail * info.frsize);
}

/**
 * Writes a stream (or a buffer) at increasing offsets with up to WRITES_IN_FLIGHT
 * requests outstanding (the session's watchdog notices when none is acknowledged).
 */
async function writeAll(session: Session, handle: Buffer, source: Readable | Buffer, options: PutOptions): Promise<number> {
  let position = 0;
  let acknowledged = 0;
  let failure: unknown = null;
  const pending = new Set<Promise<void>>();
  const send = (piece: Buffer) => {
    const offset = position;
    position += piece.length;
    const request = sftpCall<void>(session, (cb) => session.sftp.write(handle, piece, 0, piece.length, offset, cb)).then(
      () => {
        acknowledged += piece.length;
        options.onProgress?.(acknowledged);
      },
      (error: unknown) => {
        failure ??= error;
      },
    );
    const tracked = request.finally(() => {
      pending.delete(tracked);
    });
    pending.add(tracked);
  };
  const waitForRoom = async () => {
    while (pending.size >= WRITES_IN_FLIGHT && failure === null) await Promise.race(pending);
    if (failure !== null) throw failure;
  };
  const chunks: AsyncIterable<Buffer> | Buffer[] = Buffer.isBuffer(source) ? [source] : (source as AsyncIterable<Buffer>);
  for await (const chunk of chunks) {
    if (options.signal?.aborted) throw abortError(options.signal);
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    for (let offset = 0; offset < buffer.length; offset += WRITE_PIECE) {
      await waitForRoom();
      send(buffer.subarray(offset, offset + WRITE_PIECE));
    }
  }
  while (pending.size > 0) await Promise.race(pending);
  if (failure !== null) throw failure;
  return position;
}

/** Reads [start, end) with READS_IN_FLIGHT requests outstanding, delivered in order. */
function pipelinedReader(session: Session, handle: Buffer, start: number, end: number): Readable {
  let next = start;
  const queue: Array<Promise<Buffer>> = [];
  const fill = () => {
    while (queue.length < READS_IN_FLIGHT && next < end) {
      const size = Math.min(READ_PIECE, end - next);
      const position = next;
      next += size;
      const buffer = Buffer.allocUnsafe(size);
      const read = readFully(session, buffer, handle, position);
      read.catch(() => undefined);
      queue.push(read);
    }
  };
  return new Readable({
    highWaterMark: READ_PIECE * 2,
    read() {
      fill();
      const head = queue.shift();
      if (!head) {
        this.push(null);
        return;
      }
      head.then(
        (chunk) => {
          fill();
          this.push(chunk);
        },
        (error: unknown) => this.destroy(error instanceof Error ? error : new Error(String(error))),
      );
    },
  });
}

/** One piece, re-reading when the server returns less than asked (before the end). */
async function readFully(session: Session, buffer: Buffer, handle: Buffer, position: number): Promise<Buffer> {
  let filled = 0;
  while (filled < buffer.length) {
    const read = await sftpRead(session, handle, buffer.subarray(filled), position + filled);
    if (read === 0) break;
    filled += read;
  }
  return buffer.subarray(0, filled);
}
