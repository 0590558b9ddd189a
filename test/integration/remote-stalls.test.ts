/**
 * A storage server that hangs (accepts connections, answers nothing) while `create`
 * uploads, with the built binary, on each remote driver: s3rver and azurite frozen with
 * SIGSTOP, sshd behind a TCP proxy that stops forwarding (SIGSTOP of sshd would not freeze
 * its per-connection processes).
 *
 * The run must fail on its own, soon after the stall is seen: exit 1 with one error line,
 * within 3 x stall-timeout of the freeze (one stall-timeout to notice it, the rest for the
 * last try of the stalled upload and one shared, short clean-up budget), pg_dump gone with
 * it. Once the server answers again, `list` shows no backup of the failed run, anything of
 * it left in the storage was named in a warning, and the next create works (it takes over
 * the lock the failed run could not remove).
 */
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { BlobServiceClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStorage } from '../../src/storage/registry.js';
import { baseEnv, runBin, spawnBin as startBin, type CliOutcome } from '../helpers/cli.js';
import { startTcpFaultProxy, type TcpFaultProxy } from '../helpers/fault-proxy.js';
import { fillRandomText, killedAfterEach, oneErrorLine, processesWithEnv, scratchSetup, waitFor } from '../helpers/failure-kit.js';
import { uniqueName } from '../helpers/pg.js';
import {
  sshdUnavailable,
  startAzurite,
  startS3rver,
  startSshd,
  uniquePrefix,
  waitForPort,
  type AzuriteServer,
  type S3rverServer,
  type SshdServer,
} from '../helpers/storage-servers.js';

const STALL_S = 5;
const SETTINGS = `stall-timeout=${STALL_S}s&retry-deadline=${2 * STALL_S}s`;
const MARKER = 'BACKUPCTL_REMOTE_STALLS';
const big = uniqueName('stall_big');
const scratch = scratchSetup('remote_stalls', {
  built: true,
  seed: async () => {
    await scratch.cluster.createDatabase(big);
    await fillRandomText(scratch.cluster, big, 'payload', 100);
  },
  teardown: () => scratch.cluster.dropDatabase(big),
});
const { cluster } = scratch;

const running = killedAfterEach();

const spawnBin = (args: string[], childEnv: Record<string, string>) => startBin(args, { env: childEnv, cwd: scratch.cwd, running });


interface Store {
  /** The storage URL of a test's own prefix or directory. */
  url(prefix: string): string;
  env: Record<string, string>;
  /** True once the upload of `key` (under `prefix`) is under way on the server. */
  uploading(prefix: string, key: string): Promise<boolean>;
  freeze(): Promise<void> | void;
  thaw(): Promise<void> | void;
}

/** Every key under `url`, through the driver (the server answering again). */
async function keys(url: string, env: Record<string, string>): Promise<string[]> {
  Object.assign(process.env, env); // the driver in this process reads its credentials there
  const storage = openStorage(url, '/');
  try {
    return (await storage.list('')).map((object) => object.key);
  } finally {
    await storage.close();
  }
}

/**
 * The scenario: a create whose store hangs mid-upload fails within 3 x stall-timeout;
 * afterwards nothing of it is listed and the next create works. Returns the seconds from
 * the freeze to the exit.
 */
async function stalledCreate(store: Store): Promise<number> {
  const prefix = uniquePrefix('stalled');
  const url = store.url(prefix);
  const marker = uniqueName('stalled');
  const childEnv = baseEnv({ HOME: scratch.cwd, ...cluster.env(big), ...store.env, [MARKER]: marker }) as Record<string, string>;
  const run = spawnBin(['create', '--storage', url, '--compress', 'none'], childEnv);
  const id = (await waitFor(() => /backing up .* as [^/\s]+\/(\S+)/.exec(run.stderr())?.[1], 'the create to start its dump', 60_000)) as string;
  await waitFor(() => store.uploading(prefix, `${big}/${id}.dump`), 'the upload of the dump to begin', 60_000, 20);
  await store.freeze();
  const frozenAt = Date.now();
  let outcome: CliOutcome | null;
  try {
    // Before the fix, an Azure create waited for as long as the server was frozen.
    outcome = await Promise.race([run.done, delay(90_000).then(() => null)]);
  } finally {
    await store.thaw();
  }
  const seconds = (Date.now() - frozenAt) / 1000;
  console.info(`stall to exit: ${seconds.toFixed(1)} s (stall-timeout ${STALL_S} s)\n${run.stderr()}`);
  expect(outcome, `still running ${seconds.toFixed(0)} s after the server froze:\n${run.stderr()}`).not.toBeNull();
  const failed = outcome as CliOutcome;
  expect(failed.code, failed.stderr).toBe(1);
  expect(seconds, failed.stderr).toBeLessThan(3 * STALL_S);
  oneErrorLine(failed.stderr);
  expect(await processesWithEnv(MARKER, marker), 'pg_dump ended with the run').toEqual([]);

  // The server answers again: nothing of the failed run is listed; what is left was named.
  const env = baseEnv({ HOME: scratch.cwd, ...cluster.env(big), ...store.env }) as Record<string, string>;
  const listed = await runBin(['list', '--storage', url, '--json'], { env, cwd: scratch.cwd });
  expect(listed.code, listed.stderr).toBe(0);
  expect(JSON.parse(listed.stdout)).toEqual([]);
  const left = await keys(url, store.env);
  expect(left).not.toContain(`${big}/${id}.json`);
  for (const key of left.filter((k) => k.startsWith(`${big}/${id}.`))) expect(failed.stderr).toContain(`could not remove ${key} of the failed backup`);
  if (left.includes(`${big}/lock.json`)) expect(failed.stderr).toMatch(/could not remove the lock .*the next run on this host takes it over/);

  const next = await runBin(['create', '--storage', url, '--compress', 'none', '--json'], { env, cwd: scratch.cwd });
  expect(next.code, next.stderr).toBe(0);
  const after = (JSON.parse(next.stdout) as { id: string }).id;
  const again = await runBin(['list', '--storage', url, '--json'], { env, cwd: scratch.cwd });
  expect((JSON.parse(again.stdout) as Array<{ id: string }>).map((backup) => backup.id)).toEqual([after]);
  return seconds;
}

describe('a storage server that hangs during a create', () => {
  describe('s3 (s3rver, SIGSTOP)', () => {
    let server: S3rverServer;
    beforeAll(async () => {
      server = await startS3rver();
    });
    afterAll(async () => {
      if (server?.pid) process.kill(server.pid, 'SIGCONT');
      await server?.stop();
    });

    it('fails with exit 1 within 3 x stall-timeout; nothing listed afterwards, and the next create works', async () => {
      await stalledCreate({
        url: (prefix) => `s3://${server.bucket}/${prefix}?endpoint=${server.endpoint}&region=us-east-1&path-style=true&${SETTINGS}`,
        env: { AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey },
        uploading: async (prefix, key) => (await server.incompleteUploads(`${prefix}/${key}`)).length > 0,
        freeze: () => void process.kill(server.pid as number, 'SIGSTOP'),
        thaw: () => void process.kill(server.pid as number, 'SIGCONT'),
      });
    }, 240_000);
  });

  describe('azblob (azurite, SIGSTOP)', () => {
    let server: AzuriteServer;
    let service: BlobServiceClient;
    beforeAll(async () => {
      server = await startAzurite();
      service = BlobServiceClient.fromConnectionString(server.connectionString);
      await service.getContainerClient('backups').create();
    });
    afterAll(async () => {
      if (server?.pid) process.kill(server.pid, 'SIGCONT');
      await server?.stop();
    });

    it('fails with exit 1 within 3 x stall-timeout (every request has a timeout of its own); nothing listed afterwards, and the next create works', async () => {
      await stalledCreate({
        url: (prefix) => `azblob://backups/${prefix}?endpoint=${server.blobEndpoint}&block-size=1MiB&${SETTINGS}`,
        env: { AZURE_STORAGE_CONNECTION_STRING: server.connectionString },
        uploading: async (prefix, key) => {
          for await (const item of service.getContainerClient('backups').listBlobsFlat({ prefix: `${prefix}/${key}`, includeUncommitedBlobs: true })) {
            if (item.name === `${prefix}/${key}`) return true;
          }
          return false;
        },
        freeze: () => void process.kill(server.pid as number, 'SIGSTOP'),
        thaw: () => void process.kill(server.pid as number, 'SIGCONT'),
      });
    }, 240_000);
  });

  const unavailable = sshdUnavailable();
  describe.skipIf(unavailable !== null)('sftp (sshd behind a proxy that freezes)', () => {
    let server: SshdServer;
    let proxy: TcpFaultProxy;
    let knownHosts: string;
    beforeAll(async () => {
      server = await startSshd();
      proxy = await startTcpFaultProxy({ host: '127.0.0.1', port: server.port });
      await waitForPort(proxy.port, null, 'proxy', () => '');
      // The same host key, known under the proxy's port.
      knownHosts = path.join(server.scratch, 'known_hosts.proxy');
      const line = (await readFile(server.knownHostsFile, 'utf8')).split('\n').find((entry) => entry.startsWith('[')) as string;
      await writeFile(knownHosts, `${line.replace(/^\[127\.0\.0\.1\]:\d+/, `[127.0.0.1]:${proxy.port}`)}\n`);
    });
    afterAll(async () => {
      await proxy?.close();
      await server?.stop();
    });

    it('fails with exit 1 within 3 x stall-timeout; nothing listed afterwards, and the next create works', async () => {
      await stalledCreate({
        url: (prefix) =>
          `sftp://${server.user}@127.0.0.1:${proxy.port}${path.join(server.root, prefix)}?key=${server.keyFile}&known-hosts=${knownHosts}&agent=none&${SETTINGS}`,
        env: {},
        uploading: async (prefix, key) => {
          const dir = path.join(server.root, prefix, path.dirname(key));
          return (await readdir(dir).catch(() => [] as string[])).some((name) => name.startsWith('.tmp-') && name.endsWith(path.basename(key)));
        },
        freeze: () => proxy.freeze(),
        thaw: () => proxy.thaw(),
      });
    }, 240_000);
  });
});

if (sshdUnavailable()) console.info(`remote-stalls: the SFTP case is not run: ${sshdUnavailable()}`);
