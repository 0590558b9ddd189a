import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { BlobServiceClient, ContainerSASPermissions, generateBlobSASQueryParameters, StorageSharedKeyCredential } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStorage } from '../../src/storage/registry.js';
import { ConfigurationError, CredentialsError, NotFoundError, PermissionError, StalledError, TransientError } from '../../src/storage/storage.js';
import { startHttpFaultProxy, type HttpFaultProxy } from '../helpers/fault-proxy.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, uniquePrefix } from '../helpers/storage-servers.js';
import { generatedStream, storageConformance } from './conformance.js';

const MIB = 1024 * 1024;
const server = await startAzurite();
afterAll(() => server.stop());
const container = 'backups';
const service = BlobServiceClient.fromConnectionString(server.connectionString);
await service.getContainerClient(container).create();
process.env.AZURE_STORAGE_CONNECTION_STRING = server.connectionString;

/** A SAS allowing only reading and listing: every write is refused with 403. */
const readOnlySas = generateBlobSASQueryParameters(
  { containerName: container, permissions: ContainerSASPermissions.parse('rl'), expiresOn: new Date(Date.now() + 3600_000) },
  new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
).toString();

/** Blobs under `prefix` that exist only as uncommitted blocks (what a failed put could leave). */
async function uncommitted(prefix: string): Promise<string[]> {
  const client = service.getContainerClient(container);
  const committed = new Set<string>();
  for await (const item of client.listBlobsFlat({ prefix })) committed.add(item.name);
  const found: string[] = [];
  for await (const item of client.listBlobsFlat({ prefix, includeUncommitedBlobs: true })) {
    if (!committed.has(item.name)) found.push(`${item.name} (uncommitted blocks)`);
  }
  return found;
}

const prefix = uniquePrefix('conformance');
const url = (name: string, extra = '') => `azblob://${container}/${name}?endpoint=${server.blobEndpoint}&block-size=4MiB${extra}`;
storageConformance('azblob (azurite)', () => openStorage(url(prefix), '/'), {
  denied: async () => {
    const storage = openStorage(`${url(prefix)}&${readOnlySas}`, '/');
    expect(storage.location).not.toContain('sig=');
    return storage;
  },
  leftovers: () => uncommitted(`${prefix}/`),
});

const external = process.env.BACKUPCTL_TEST_AZBLOB_URL;
if (external) {
  const target = new URL(external);
  target.pathname = `${target.pathname.replace(/\/$/, '')}/${uniquePrefix('conformance')}`;
  storageConformance('azblob (BACKUPCTL_TEST_AZBLOB_URL)', () => openStorage(target.href, '/'));
} else {
  console.info('azblob: the conformance suite against real Azure is not run: set BACKUPCTL_TEST_AZBLOB_URL=azblob://container/prefix?account=NAME and AZURE_STORAGE_CONNECTION_STRING (or a key/SAS) to run it');
}

describe('azblob driver: credentials, stalls, retries', () => {
  let proxy: HttpFaultProxy;
  beforeAll(async () => {
    proxy = await startHttpFaultProxy({ host: '127.0.0.1', port: server.port });
  });
  afterAll(() => proxy.close());
  const viaProxy = (name: string, extra = '') => `azblob://${container}/${name}?endpoint=${proxy.endpoint}/${AZURITE_ACCOUNT}&block-size=1MiB${extra}`;

  it('reads the connection string from a file or a named variable; none at all is a CredentialsError with a hint', async () => {
    const saved = process.env.AZURE_STORAGE_CONNECTION_STRING;
    delete process.env.AZURE_STORAGE_CONNECTION_STRING;
    try {
      const none = openStorage(url(uniquePrefix('nocreds')), '/');
      const error = await none.list('').catch((failure: unknown) => failure);
      expect(error).toBeInstanceOf(CredentialsError);
      expect((error as CredentialsError).hint).toContain('AZURE_STORAGE_CONNECTION_STRING');
      process.env.MY_AZURE_CS = server.connectionString;
      const named = openStorage(`${url(uniquePrefix('named'))}&connection-string-env=MY_AZURE_CS`, '/');
      await named.putBytes('a.txt', Buffer.from('named variable'));
      expect((await named.getBytes('a.txt', 100)).toString()).toBe('named variable');
      process.env.AZURE_STORAGE_ACCOUNT = AZURITE_ACCOUNT;
      process.env.AZURE_STORAGE_KEY = AZURITE_KEY;
      const byKey = openStorage(url(uniquePrefix('bykey')), '/');
      await byKey.putBytes('b.txt', Buffer.from('account key'));
      expect((await byKey.getBytes('b.txt', 100)).toString()).toBe('account key');
    } finally {
      process.env.AZURE_STORAGE_CONNECTION_STRING = saved;
      delete process.env.MY_AZURE_CS;
      delete process.env.AZURE_STORAGE_ACCOUNT;
      delete process.env.AZURE_STORAGE_KEY;
    }
  });

  it('a wrong account key is refused with a typed 403, exit 2 or 1, the key never printed; a missing container is a ConfigurationError', async () => {
    const saved = process.env.AZURE_STORAGE_CONNECTION_STRING;
    const wrongKey = Buffer.alloc(64, 7).toString('base64');
    process.env.AZURE_STORAGE_CONNECTION_STRING = (saved as string).replace(AZURITE_KEY, wrongKey);
    try {
      const wrong = openStorage(url(uniquePrefix('wrongkey')), '/');
      const error = await wrong.putBytes('x', Buffer.from('x')).catch((failure: unknown) => failure);
      // Azure says AuthenticationFailed (CredentialsError); azurite says AuthorizationFailure (PermissionError).
      expect(error instanceof CredentialsError || error instanceof PermissionError).toBe(true);
      expect(`${(error as Error).message} ${(error as PermissionError).hint}`).not.toContain(wrongKey);
    } finally {
      process.env.AZURE_STORAGE_CONNECTION_STRING = saved;
    }
    const missing = openStorage(`azblob://no-such-container/x?endpoint=${server.blobEndpoint}`, '/');
    await expect(missing.stat('a')).rejects.toBeInstanceOf(ConfigurationError);
  });

  it('retries 503 and resets, then succeeds; a 403 is not retried', async () => {
    const storage = openStorage(viaProxy(uniquePrefix('retry'), '&retry-deadline=20s'), '/');
    await storage.open();
    proxy.clear();
    proxy.respond(2, { status: 503, body: '<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>busy</Message></Error>', headers: { 'x-ms-error-code': 'ServerBusy' } }, (req) => req.method === 'PUT');
    proxy.reset(1, (req) => req.method === 'PUT');
    await storage.putBytes('r.bin', Buffer.from('after retries'));
    expect((await storage.getBytes('r.bin', 100)).toString()).toBe('after retries');
    proxy.respond(100, { status: 403, body: '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationPermissionMismatch</Code><Message>no</Message></Error>', headers: { 'x-ms-error-code': 'AuthorizationPermissionMismatch' } }, (req) => req.method === 'PUT');
    const before = proxy.requests.length;
    await expect(storage.putBytes('denied.bin', Buffer.from('x'))).rejects.toBeInstanceOf(PermissionError);
    expect(proxy.requests.slice(before).filter((line) => line.startsWith('PUT'))).toHaveLength(1);
    proxy.clear();
  });

  it('an unreachable store (every connection reset): the write fails after one retry deadline, and what follows gets one attempt each until a request succeeds', async () => {
    const name = uniquePrefix('unreachable');
    const storage = openStorage(viaProxy(name, '&retry-deadline=2s'), '/');
    await storage.putBytes('here.txt', Buffer.from('before'));
    proxy.clear();
    proxy.reset(100_000);
    const timed = async (call: () => Promise<unknown>) => {
      const started = Date.now();
      const error = await call().catch((failure: unknown) => failure);
      return { error, ms: Date.now() - started };
    };
    try {
      // Blocks (the SDK's retries, sized to the deadline), as a create's upload.
      const put = await timed(() => storage.put('big.bin', generatedStream(3 * MIB, 5).stream));
      expect(put.error).toBeInstanceOf(TransientError);
      // Then the clean-up a failed create does: removing the backup's files, the lock.
      // Measured: 1.96 s for the first of them before (a retry deadline each), a few ms now.
      for (const call of [() => storage.remove('other.bin'), () => storage.stat('lock.json'), () => storage.putBytes('runs.jsonl', Buffer.from('x'))]) {
        const next = await timed(call);
        expect(next.error).toBeInstanceOf(TransientError);
        expect(next.ms).toBeLessThan(1_000);
      }
    } finally {
      proxy.clear();
    }
    // Once a request gets an answer, requests are retried as before.
    expect((await storage.getBytes('here.txt', 100)).toString()).toBe('before');
    proxy.reset(1, (req) => req.method === 'PUT');
    await storage.putBytes('after.txt', Buffer.from('after'));
    expect((await storage.getBytes('after.txt', 100)).toString()).toBe('after');
    await storage.remove('here.txt');
    await storage.remove('after.txt');
    expect(await uncommitted(`${name}/`)).toEqual([]);
  }, 60_000);

  it('a download whose connection drops in the middle resumes where it broke (the SDK asks for the rest), bytes intact', async () => {
    const storage = openStorage(viaProxy(uniquePrefix('resume'), '&retry-deadline=20s'), '/');
    await storage.open();
    const data = randomBytes(6 * MIB);
    await storage.putBytes('x.bin', data);
    proxy.clear();
    const before = proxy.requests.length;
    const isGet = (req: IncomingMessage) => req.method === 'GET' && (req.url ?? '').includes('/x.bin');
    proxy.cut(2, 1 * MIB, isGet);
    const read = await storage.getBytes('x.bin', 10 * MIB);
    expect(read.equals(data)).toBe(true);
    const gets = proxy.headers.slice(before).filter((_, i) => proxy.requests[before + i]?.startsWith('GET'));
    expect(gets).toHaveLength(3);
    expect(gets[1]?.['x-ms-range'] ?? gets[1]?.range).toMatch(/^bytes=[1-9]\d*-/);
    proxy.clear();
    await storage.close();
  });

  it('a stalled block is retried; a server that keeps stalling fails the put with StalledError, nothing visible', async () => {
    const name = uniquePrefix('stall');
    const storage = openStorage(viaProxy(name, '&stall-timeout=1s&retry-deadline=3s'), '/');
    await storage.open();
    proxy.clear();
    proxy.stall(1, 256 * 1024, (req) => req.method === 'PUT' && (req.url ?? '').includes('comp=block&'));
    await storage.put('once.bin', generatedStream(3 * MIB, 3).stream);
    expect((await storage.stat('once.bin')).size).toBe(3 * MIB);
    proxy.clear();
    proxy.stall(1000, 256 * 1024, (req) => req.method === 'PUT' && (req.url ?? '').includes('comp=block&'));
    const started = Date.now();
    const error = await storage.put('forever.bin', generatedStream(3 * MIB, 4).stream).catch((failure: unknown) => failure);
    proxy.clear();
    expect(error).toBeInstanceOf(StalledError);
    expect(Date.now() - started).toBeLessThan(15_000);
    await expect(storage.stat('forever.bin')).rejects.toBeInstanceOf(NotFoundError);
    expect(await uncommitted(`${name}/`)).toEqual([]);
  }, 60_000);

  it('a hung server (SIGSTOP): every request ends on its own, within the stall budget; once it answers again, so does the storage', async () => {
    const storage = openStorage(url(uniquePrefix('hung'), '&stall-timeout=1s&retry-deadline=3s'), '/');
    await storage.putBytes('here.txt', Buffer.from('before'));
    process.kill(server.pid as number, 'SIGSTOP');
    try {
      const timed = async (call: () => Promise<unknown>) => {
        const started = Date.now();
        const error = await call().catch((failure: unknown) => failure);
        return { error, ms: Date.now() - started };
      };
      // The SDK's tryTimeoutInMs is only the server's timeout= parameter: these used to wait for as long as the server was stopped.
      const stat = await timed(() => storage.stat('here.txt'));
      expect(stat.error).toBeInstanceOf(StalledError);
      expect(stat.ms).toBeLessThan(3_000); // a stall timeout, then one more try within the stall window
      const removal = await timed(() => storage.remove('here.txt'));
      expect(removal.error).toBeInstanceOf(StalledError);
      expect(removal.ms).toBeLessThan(2_000); // the one short grace after the window
      const listing = await timed(() => storage.list(''));
      expect(listing.error).toBeInstanceOf(StalledError);
      expect((listing.error as StalledError).message).toContain('not tried');
      expect(listing.ms).toBeLessThan(500);
    } finally {
      process.kill(server.pid as number, 'SIGCONT');
    }
    // A stall timeout later, a request is tried again: the server answers, and everything works.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await expect(storage.stat('missing.txt')).rejects.toBeInstanceOf(NotFoundError);
    await storage.putBytes('after.txt', Buffer.from('after'));
    expect((await storage.getBytes('after.txt', 100)).toString()).toBe('after');
  }, 60_000);

  it('a failed put over an existing blob keeps the old content', async () => {
    const storage = openStorage(url(uniquePrefix('keep')), '/');
    await storage.putBytes('k.bin', Buffer.from('old'));
    const failure = new Error('source failed');
    let sent = 0;
    const source = new Readable({
      read() {
        if (sent >= 6 * MIB) {
          this.destroy(failure);
          return;
        }
        sent += MIB;
        this.push(Buffer.alloc(MIB, 2));
      },
    });
    await expect(storage.put('k.bin', source)).rejects.toBe(failure);
    expect((await storage.getBytes('k.bin', 10)).toString()).toBe('old');
  });
});
