import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rename, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStorage } from '../../src/storage/registry.js';
import { ConfigurationError, CredentialsError, HostileEntryError, HostKeyError, NotFoundError, StalledError, StorageError } from '../../src/storage/storage.js';
import { startTcpFaultProxy, type TcpFaultProxy } from '../helpers/fault-proxy.js';
import { sshdUnavailable, startSshd, uniquePrefix, waitForPort, type SshdServer } from '../helpers/storage-servers.js';
import { generatedStream, storageConformance } from './conformance.js';

const MIB = 1024 * 1024;
const unavailable = sshdUnavailable();

/** Every dot-entry (temporaries) left under a local directory that sshd serves. */
async function leftovers(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (current: string, prefix: string) => {
    for (const entry of await readdir(current, { withFileTypes: true }).catch(() => [])) {
      const name = `${prefix}${entry.name}`;
      if (entry.name.startsWith('.')) found.push(name);
      else if (entry.isDirectory()) await walk(path.join(current, entry.name), `${name}/`);
    }
  };
  await walk(dir, '');
  return found;
}

if (unavailable) {
  console.info(`sftp: the SFTP tests are not run: ${unavailable}`);
} else {
  const server: SshdServer = await startSshd();
  afterAll(() => server.stop());
  const url = (dir: string, options: { key?: string; knownHosts?: string; port?: number; extra?: string } = {}) =>
    `sftp://${server.user}@127.0.0.1:${options.port ?? server.port}${dir}?key=${options.key ?? server.keyFile}` +
    `&known-hosts=${options.knownHosts ?? server.knownHostsFile}&agent=none${options.extra ?? ''}`;

  const dir = path.join(server.root, uniquePrefix('conformance'));
  storageConformance('sftp (OpenSSH sshd)', () => openStorage(url(dir), '/'), {
    denied: async () => openStorage(url(dir, { key: server.readOnlyKeyFile }), '/'),
    leftovers: () => leftovers(dir),
    plantStaleTemporary: async (prefix) => {
      // What a put killed midway leaves: its temporary file beside the key, two days old.
      const file = path.join(dir, ...prefix.split('/'), '.tmp-0123456789ab-20261201T000000Z-aaaaaa.dump');
      await writeFile(file, 'half a dump');
      const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000);
      await utimes(file, twoDaysAgo, twoDaysAgo);
      return { bytes: 'half a dump'.length };
    },
  });

  describe('sftp driver: host keys, authentication, stalls', () => {
    it('an unknown host is a HostKeyError naming the fingerprint, with an ssh-keyscan hint', async () => {
      const empty = path.join(server.scratch, 'known_hosts.empty');
      await writeFile(empty, '');
      const storage = openStorage(url(path.join(server.root, 'x'), { knownHosts: empty }), '/');
      const error = await storage.list('').catch((failure: unknown) => failure);
      expect(error).toBeInstanceOf(HostKeyError);
      expect((error as HostKeyError).message).toMatch(/not a known host .*SHA256:/);
      expect((error as HostKeyError).hint).toContain(`ssh-keyscan -p ${server.port} 127.0.0.1`);
      expect((error as HostKeyError).exitCode).toBe(2);
      await storage.close();
    });

    it('a changed host key is refused', async () => {
      const storage = openStorage(url(path.join(server.root, 'x'), { knownHosts: server.wrongKnownHostsFile }), '/');
      const error = await storage.list('').catch((failure: unknown) => failure);
      expect(error).toBeInstanceOf(HostKeyError);
      expect((error as HostKeyError).message).toMatch(/does not match known_hosts/);
      await storage.close();
    });

    it('hashed known_hosts entries (ssh-keygen -H) are understood', async () => {
      const hashed = path.join(server.scratch, 'known_hosts.hashed');
      await writeFile(hashed, await readFile(server.knownHostsFile, 'utf8'));
      execFileSync('ssh-keygen', ['-H', '-f', hashed], { stdio: 'ignore' });
      expect(await readFile(hashed, 'utf8')).toMatch(/^\|1\|/m);
      const storage = openStorage(url(path.join(server.root, uniquePrefix('hashed')), { knownHosts: hashed }), '/');
      await storage.putBytes('a.txt', Buffer.from('hashed entry'));
      expect((await storage.getBytes('a.txt', 100)).toString()).toBe('hashed entry');
      await storage.close();
    });

    it('a key the server does not accept is a CredentialsError; a missing key file a ConfigurationError', async () => {
      const stranger = path.join(server.scratch, 'stranger_ed25519');
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger], { stdio: 'ignore' });
      const storage = openStorage(url(path.join(server.root, 'x'), { key: stranger }), '/');
      const error = await storage.list('').catch((failure: unknown) => failure);
      expect(error).toBeInstanceOf(CredentialsError);
      expect((error as Error).message).toContain(stranger);
      await storage.close();
      const missing = openStorage(url(path.join(server.root, 'x'), { key: path.join(server.scratch, 'no-such-key') }), '/');
      await expect(missing.list('')).rejects.toBeInstanceOf(ConfigurationError);
      await missing.close();
    });

    it('a password comes only from a file or a variable; a missing one is a ConfigurationError, never echoed', async () => {
      const secret = 'correct horse battery staple';
      process.env.SFTP_TEST_PASSWORD = secret;
      try {
        // sshd here refuses passwords: the key still logs in, the password is offered after it and never printed.
        const withPassword = openStorage(url(path.join(server.root, uniquePrefix('pw')), { extra: '&password-env=SFTP_TEST_PASSWORD' }), '/');
        await withPassword.putBytes('a.txt', Buffer.from('key first'));
        await withPassword.close();
        const stranger = path.join(server.scratch, 'stranger2_ed25519');
        execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger], { stdio: 'ignore' });
        const refused = openStorage(url(path.join(server.root, 'x'), { key: stranger, extra: '&password-env=SFTP_TEST_PASSWORD' }), '/');
        const error = await refused.list('').catch((failure: unknown) => failure);
        expect(error).toBeInstanceOf(CredentialsError);
        expect(`${(error as Error).message} ${(error as CredentialsError).hint}`).not.toContain(secret);
        await refused.close();
      } finally {
        delete process.env.SFTP_TEST_PASSWORD;
      }
      const missing = openStorage(url(path.join(server.root, 'x'), { extra: '&password-env=NO_SUCH_VARIABLE_SET' }), '/');
      await expect(missing.list('')).rejects.toBeInstanceOf(ConfigurationError);
      await missing.close();
    });

    it('authenticates through ssh-agent (SSH_AUTH_SOCK)', async () => {
      const socket = path.join(server.scratch, 'agent.sock');
      const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
      try {
        const started = Date.now();
        while (!(await readdir(server.scratch)).includes('agent.sock')) {
          if (Date.now() - started > 10_000) throw new Error('ssh-agent did not create its socket');
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        execFileSync('ssh-add', [server.keyFile], { env: { ...process.env, SSH_AUTH_SOCK: socket }, stdio: 'ignore' });
        const location = `sftp://${server.user}@127.0.0.1:${server.port}${path.join(server.root, uniquePrefix('agent'))}?known-hosts=${server.knownHostsFile}&agent=${socket}`;
        const storage = openStorage(location, '/', {}, { homeDir: server.scratch });
        await storage.putBytes('a.txt', Buffer.from('via agent'));
        expect((await storage.getBytes('a.txt', 100)).toString()).toBe('via agent');
        await storage.close();
      } finally {
        agent.kill();
      }
    });

    it('a FIFO, a symlink or a device where an object should be: HostileEntryError at once (never opened: the server would wait on the FIFO), and list reports them', async () => {
      const root = path.join(server.root, uniquePrefix('hostile'));
      const storage = openStorage(url(root), '/');
      await storage.putBytes('app/good.json', Buffer.from('{}'));
      execFileSync('mkfifo', [path.join(root, 'app', 'fifo.dump')]);
      await symlink('/dev/zero', path.join(root, 'app', 'zero.dump'));
      await symlink(path.join(root, 'app', 'good.json'), path.join(root, 'app', 'link.json'));
      for (const [key, kind] of [['app/fifo.dump', 'fifo'], ['app/zero.dump', 'symlink'], ['app/link.json', 'symlink']] as const) {
        const started = performance.now();
        const read = await storage.get(key).catch((failure: unknown) => failure);
        expect(read, key).toBeInstanceOf(HostileEntryError);
        expect((read as HostileEntryError).kind).toBe(kind);
        expect(performance.now() - started).toBeLessThan(5000);
        expect(await storage.stat(key).catch((failure: unknown) => failure)).toBeInstanceOf(HostileEntryError);
        expect(await storage.getBytes(key, 100).catch((failure: unknown) => failure)).toBeInstanceOf(HostileEntryError);
      }
      const hostile: Array<[string, string]> = [];
      const listed = await storage.list('app', { onHostile: (key, kind) => hostile.push([key, kind]) });
      expect(listed.map((object) => object.key)).toEqual(['app/good.json']);
      expect(hostile.sort()).toEqual([['app/fifo.dump', 'fifo'], ['app/link.json', 'symlink'], ['app/zero.dump', 'symlink']]);
      await storage.close();
    });

    it('a storage path whose directories cannot be made there (/proc/...) is an error naming the directory, not "not found"; the directory list of a sidecar key is reported to onDirectory', async () => {
      const storage = openStorage(url(`/proc/${uniquePrefix('noway')}`), '/');
      const failure = await storage.putBytes('app/x.json', Buffer.from('{}')).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(StorageError);
      expect(failure).not.toBeInstanceOf(NotFoundError);
      expect((failure as StorageError).message).toMatch(/^cannot create directory \/proc\/.* on the SFTP server/);
      await storage.close();
      const root = path.join(server.root, uniquePrefix('dirs'));
      const listing = openStorage(url(root), '/');
      await listing.putBytes('app/20260101T000000Z-abcdef.dump', Buffer.from('x'));
      execFileSync('mkdir', ['-p', path.join(root, 'app', '20260101T000000Z-abcdef.json')]);
      const directories: string[] = [];
      expect((await listing.list('', { onDirectory: (key) => directories.push(key) })).map((object) => object.key)).toEqual(['app/20260101T000000Z-abcdef.dump']);
      expect(directories.sort()).toEqual(['app', 'app/20260101T000000Z-abcdef.json']);
      await listing.close();
    });

    describe('through a proxy that stops forwarding', () => {
      let proxy: TcpFaultProxy;
      let proxyKnownHosts: string;
      beforeAll(async () => {
        proxy = await startTcpFaultProxy({ host: '127.0.0.1', port: server.port });
        await waitForPort(proxy.port, null, 'proxy', () => '');
        // The same host key, known under the proxy's port.
        proxyKnownHosts = path.join(server.scratch, 'known_hosts.proxy');
        const line = (await readFile(server.knownHostsFile, 'utf8')).split('\n').find((entry) => entry.startsWith('[')) as string;
        await writeFile(proxyKnownHosts, `${line.replace(/^\[127\.0\.0\.1\]:\d+/, `[127.0.0.1]:${proxy.port}`)}\n`);
      });
      afterAll(() => proxy.close());

      it('a server that stalls mid-upload fails the put with StalledError; nothing visible, no temporary left', async () => {
        const stallDir = path.join(server.root, uniquePrefix('stall'));
        const storage = openStorage(url(stallDir, { port: proxy.port, knownHosts: proxyKnownHosts, extra: '&stall-timeout=1s&retry-deadline=3s' }), '/');
        proxy.stallAfter(null);
        await storage.open();
        await storage.putBytes('before.txt', Buffer.from('connected'));
        proxy.stallAfter(2 * MIB);
        proxy.resetAll(); // the next connection counts its bytes from zero
        await storage.stat('before.txt'); // retried over that new connection
        const started = Date.now();
        const error = await storage.put('stalled.bin', generatedStream(20 * MIB, 8).stream).catch((failure: unknown) => failure);
        const elapsed = Date.now() - started;
        proxy.stallAfter(null);
        expect(error).toBeInstanceOf(StalledError);
        expect(elapsed).toBeLessThan(20_000);
        await expect(storage.stat('stalled.bin')).rejects.toBeInstanceOf(NotFoundError);
        expect(await leftovers(stallDir)).toEqual([]);
        await storage.close();
      }, 60_000);

      it('a server gone for good (connections refused): one retry deadline, then one attempt for each request that follows', async () => {
        const gone = await startTcpFaultProxy({ host: '127.0.0.1', port: server.port });
        await waitForPort(gone.port, null, 'proxy', () => '');
        const goneKnownHosts = path.join(server.scratch, 'known_hosts.gone');
        await writeFile(goneKnownHosts, (await readFile(proxyKnownHosts, 'utf8')).replace(`[127.0.0.1]:${proxy.port}`, `[127.0.0.1]:${gone.port}`));
        const storage = openStorage(url(path.join(server.root, uniquePrefix('gone')), { port: gone.port, knownHosts: goneKnownHosts, extra: '&retry-deadline=4s' }), '/');
        await storage.putBytes('a.txt', Buffer.from('one'));
        await gone.close(); // its connections closed, new ones refused
        const timed = async (call: () => Promise<unknown>) => {
          const started = Date.now();
          const error = await call().catch((failure: unknown) => failure);
          return { error, ms: Date.now() - started };
        };
        const first = await timed(() => storage.remove('a.txt'));
        expect(first.error).toBeInstanceOf(StorageError);
        // What a failed create does next (the backup's other files, the lock, the run log):
        // a retry deadline each before (3.8 s measured), a few ms now.
        for (const call of [() => storage.remove('b.txt'), () => storage.stat('lock.json'), () => storage.putBytes('runs.jsonl', Buffer.from('x'))]) {
          const next = await timed(call);
          expect(next.error).toBeInstanceOf(StorageError);
          expect(next.ms).toBeLessThan(1_000);
        }
        await storage.close();
      }, 60_000);

      it('a connection reset between requests is retried on a new connection', async () => {
        const storage = openStorage(url(path.join(server.root, uniquePrefix('reset')), { port: proxy.port, knownHosts: proxyKnownHosts }), '/');
        proxy.stallAfter(null);
        await storage.putBytes('a.txt', Buffer.from('one'));
        proxy.resetAll();
        expect((await storage.getBytes('a.txt', 10)).toString()).toBe('one');
        await storage.close();
      });

      it('a connection lost in the middle of a download is picked up where it broke; a file replaced meanwhile fails the read', async () => {
        const dir = path.join(server.root, uniquePrefix('resume'));
        const storage = openStorage(url(dir, { port: proxy.port, knownHosts: proxyKnownHosts, extra: '&retry-deadline=20s' }), '/');
        proxy.stallAfter(null);
        const data = randomBytes(16 * MIB);
        await storage.putBytes('x.bin', data);
        // Reads 2 MiB, drops every connection, reads the rest.
        const readAcrossReset = async (replace?: () => Promise<void>): Promise<Buffer> => {
          const stream = await storage.get('x.bin');
          const chunks: Buffer[] = [];
          let total = 0;
          let dropped = false;
          for await (const chunk of stream as AsyncIterable<Buffer>) {
            chunks.push(chunk);
            total += chunk.length;
            if (!dropped && total >= 2 * MIB) {
              dropped = true;
              await replace?.();
              proxy.resetAll();
            }
          }
          return Buffer.concat(chunks);
        };
        const whole = await readAcrossReset();
        expect(whole.length).toBe(data.length);
        expect(whole.equals(data)).toBe(true);
        const error = await readAcrossReset(async () => {
          await writeFile(path.join(dir, 'x.bin.new'), randomBytes(16 * MIB));
          await utimes(path.join(dir, 'x.bin.new'), new Date(), new Date(Date.now() + 5000));
          await rename(path.join(dir, 'x.bin.new'), path.join(dir, 'x.bin'));
        }).catch((failure: unknown) => failure);
        expect(error).toBeInstanceOf(StorageError);
        expect((error as StorageError).code).toBe('io');
        await storage.close();
      }, 60_000);
    });

    it('an idle connection does not keep the process alive', async () => {
      const script = `
        import { openStorage } from './src/storage/registry.ts';
        const storage = openStorage(${JSON.stringify(url(path.join(server.root, uniquePrefix('idle'))))}, '/');
        await storage.putBytes('a.txt', Buffer.from('x'));
        console.log('done');
      `;
      const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
      const started = Date.now();
      const output = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repo, timeout: 20_000 }).toString();
      expect(output.trim()).toBe('done');
      expect(Date.now() - started).toBeLessThan(15_000);
    }, 30_000);
  });
}
