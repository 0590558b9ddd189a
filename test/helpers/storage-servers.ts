/**
 * Real storage servers for the storage tests, each on a free port of 127.0.0.1 in a
 * private temp directory, started as a child process (so its memory never counts in a
 * test's RSS) and removed by stop(): s3rver (S3), azurite-blob (Azure Blob) and
 * OpenSSH's sshd (SFTP, with its own config, host key and per-run client keys).
 * Readiness is waited for by polling the port, never by a fixed sleep.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = (relative: string) => path.join(repoRoot, 'node_modules', relative);

/** A port nobody listens on right now (the kernel's choice). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Polls until something accepts connections on the port; fails early when `child` exits. */
export async function waitForPort(port: number, child: ChildProcess | null, what: string, output: () => string, timeoutMs = 30_000): Promise<void> {
  const started = Date.now();
  for (;;) {
    if (child && child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode} before listening on ${port}:\n${output()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() - started > timeoutMs) throw new Error(`${what} did not listen on ${port} within ${timeoutMs} ms:\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface Started {
  child: ChildProcess;
  dir: string;
  output: () => string;
}

function startChild(command: string, args: string[], dir: string, env: Record<string, string> = {}): Started {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir, env: { ...process.env, ...env } });
  let text = '';
  const keep = (chunk: Buffer) => {
    text = (text + chunk.toString('utf8')).slice(-8000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { child, dir, output: () => text };
}

async function stopChild(started: Started): Promise<void> {
  const { child } = started;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
  await rm(started.dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------
// S3: s3rver

export interface S3rverServer {
  endpoint: string;
  port: number;
  bucket: string;
  /** s3rver's data directory (its multipart parts live in `<bucket>/._S3rver_uploads`). */
  dataDir: string;
  accessKeyId: string;
  secretAccessKey: string;
  stop(): Promise<void>;
  /** Multipart uploads left on disk for keys under `prefix` (read from s3rver's data directory). */
  incompleteUploads(prefix: string): Promise<string[]>;
  /** Kills the server with SIGKILL (a crash: no answer to anything in flight), keeping its data; resolves once it is gone. */
  kill(): Promise<void>;
  /** Starts it again after kill(), on the same port and data directory; resolves once it listens. */
  restart(): Promise<void>;
  /** The server process's pid (for the benchmarks' CPU accounting). */
  readonly pid: number | undefined;
}

/**
 * s3rver with the two multipart-upload routes it lacks (AbortMultipartUpload,
 * ListMultipartUploads: see s3rver-server.mjs); `plain: true` runs it as shipped.
 */
export async function startS3rver(options: { bucket?: string; plain?: boolean } = {}): Promise<S3rverServer> {
  const bucket = options.bucket ?? 'backups';
  const dir = await mkdtemp(path.join(os.tmpdir(), 'backupctl-s3rver-'));
  const dataDir = path.join(dir, 'data');
  await mkdir(dataDir);
  const port = await freePort();
  const script = path.join(repoRoot, 'test', 'helpers', 's3rver-server.mjs');
  // s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 keeps in
  // its legacy provider: without it, the second page of a listing is a 500.
  const launch = () => startChild(process.execPath, ['--openssl-legacy-provider', script, dataDir, String(port), bucket], dir, options.plain ? { BACKUPCTL_S3RVER_PLAIN: '1' } : {});
  let started = launch();
  try {
    await waitForPort(port, started.child, 's3rver', started.output);
  } catch (error) {
    await stopChild(started);
    throw error;
  }
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    bucket,
    dataDir,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    stop: () => stopChild(started),
    kill: async () => {
      const { child } = started;
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    },
    restart: async () => {
      started = launch();
      await waitForPort(port, started.child, 's3rver (restarted)', started.output);
    },
    get pid() {
      return started.child.pid;
    },
    incompleteUploads: async (prefix: string) => {
      const dirPath = path.join(dataDir, bucket, '._S3rver_uploads');
      const found: string[] = [];
      for (const id of await readdir(dirPath).catch(() => [] as string[])) {
        const key = await readFile(path.join(dirPath, id, 'key'), 'utf8').catch(() => '');
        if (key.startsWith(prefix)) found.push(`${key} (upload ${id})`);
      }
      return found;
    },
  };
}

// ---------------------------------------------------------------------------------------
// Azure Blob: azurite

/** Azurite's well-known development account (public, documented by Microsoft). */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzuriteServer {
  port: number;
  blobEndpoint: string;
  connectionString: string;
  /** The server process's pid (a test freezes it with SIGSTOP, as a hung server). */
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

export async function startAzurite(): Promise<AzuriteServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'backupctl-azurite-'));
  const port = await freePort();
  const started = startChild(
    process.execPath,
    [bin('azurite/dist/src/blob/main.js'), '--blobHost', '127.0.0.1', '--blobPort', String(port), '--location', dir, '--silent', '--skipApiVersionCheck', '--disableTelemetry'],
    dir,
  );
  try {
    await waitForPort(port, started.child, 'azurite', started.output);
  } catch (error) {
    await stopChild(started);
    throw error;
  }
  const blobEndpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  return {
    port,
    blobEndpoint,
    connectionString: `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${blobEndpoint};`,
    pid: started.child.pid,
    stop: () => stopChild(started),
  };
}

// ---------------------------------------------------------------------------------------
// SFTP: OpenSSH sshd

export const SSHD = '/usr/sbin/sshd';

/** Why sshd cannot run here, or null when it can. */
export function sshdUnavailable(): string | null {
  if (!existsSync(SSHD)) return `${SSHD} is not installed (apt-get install -y openssh-server)`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'sshd needs root to run here (it switches users)';
  return null;
}

export interface SshdServer {
  port: number;
  host: '127.0.0.1';
  user: string;
  /** Private key allowed to log in (read-write). */
  keyFile: string;
  /** Private key whose logins are forced into `internal-sftp -R` (read-only). */
  readOnlyKeyFile: string;
  /** known_hosts holding this server's host key as `[127.0.0.1]:PORT`. */
  knownHostsFile: string;
  /** A known_hosts file whose entry for this server has a different key. */
  wrongKnownHostsFile: string;
  /** An empty directory for the tests, absolute. */
  root: string;
  /** A directory for tests to place files in (keys, empty known_hosts). */
  scratch: string;
  stop(): Promise<void>;
}

function keygen(file: string, comment: string): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], { stdio: 'ignore' });
}

export async function startSshd(): Promise<SshdServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'backupctl-sshd-'));
  await chmod(dir, 0o755);
  const port = await freePort();
  const hostKey = path.join(dir, 'host_ed25519');
  const otherHostKey = path.join(dir, 'other_host_ed25519');
  const clientKey = path.join(dir, 'client_ed25519');
  const readOnlyKey = path.join(dir, 'readonly_ed25519');
  keygen(hostKey, 'backupctl-test-host');
  keygen(otherHostKey, 'backupctl-test-other-host');
  keygen(clientKey, 'backupctl-test-client');
  keygen(readOnlyKey, 'backupctl-test-readonly');
  const authorized = path.join(dir, 'authorized_keys');
  await writeFile(
    authorized,
    `${(await readFile(`${clientKey}.pub`, 'utf8')).trim()}\n` +
      `restrict,command="internal-sftp -R" ${(await readFile(`${readOnlyKey}.pub`, 'utf8')).trim()}\n`,
    // Public keys only: readable by every user, since sshd reads the file as the user
    // logging in (a test logs in as nobody, whose reads a root-owned 0600 file refuses).
    { mode: 0o644 },
  );
  const root = path.join(dir, 'root');
  await mkdir(root, { mode: 0o700 });
  const scratch = path.join(dir, 'scratch');
  await mkdir(scratch, { mode: 0o700 });
  const config = path.join(dir, 'sshd_config');
  await writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${authorized}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'PermitRootLogin prohibit-password',
      'StrictModes no',
      'UsePAM no',
      'Subsystem sftp internal-sftp',
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      'LogLevel ERROR',
      'MaxStartups 100:30:200',
      'MaxSessions 50',
      '',
    ].join('\n'),
  );
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const started = startChild(SSHD, ['-D', '-e', '-f', config], dir);
  try {
    await waitForPort(port, started.child, 'sshd', started.output);
  } catch (error) {
    await stopChild(started);
    throw error;
  }
  const hostLine = (await readFile(`${hostKey}.pub`, 'utf8')).trim().split(' ').slice(0, 2).join(' ');
  const otherLine = (await readFile(`${otherHostKey}.pub`, 'utf8')).trim().split(' ').slice(0, 2).join(' ');
  const knownHostsFile = path.join(dir, 'known_hosts');
  await writeFile(knownHostsFile, `# test\n[127.0.0.1]:${port} ${hostLine}\n`);
  const wrongKnownHostsFile = path.join(dir, 'known_hosts.wrong');
  await writeFile(wrongKnownHostsFile, `[127.0.0.1]:${port} ${otherLine}\n`);
  return {
    port,
    host: '127.0.0.1',
    user: os.userInfo().username,
    keyFile: clientKey,
    readOnlyKeyFile: readOnlyKey,
    knownHostsFile,
    wrongKnownHostsFile,
    root,
    scratch,
    stop: () => stopChild(started),
  };
}

/** A random name for a test's own prefix or directory. */
export function uniquePrefix(label: string): string {
  return `${label}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}
