import { createHmac, randomBytes } from 'node:crypto';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fingerprint, hostKeyAlgorithms, knownKeysFor } from '../../src/storage/known-hosts.js';
import { LocalStorage } from '../../src/storage/local.js';
import { MemoryStorage } from '../../src/storage/mem.js';
import {
  locationHasSecrets,
  openStorage,
  parseSize,
  parseStorageLocation,
  redactStorageLocation,
  s3Factory,
  schemeOf,
} from '../../src/storage/registry.js';
import { backoffDelay, StallBudget, STALL_GRACE_MS, withRetry } from '../../src/storage/resilience.js';
import { ConfigurationError, StalledError, TransientError } from '../../src/storage/storage.js';

describe('parseStorageLocation', () => {
  it('plain paths and file:// are local, resolved against cwd', () => {
    expect(parseStorageLocation('./backups', '/srv')).toEqual({ scheme: 'file', root: '/srv/backups', display: '/srv/backups' });
    expect(parseStorageLocation('/abs/dir', '/srv')).toMatchObject({ scheme: 'file', root: '/abs/dir' });
    expect(parseStorageLocation('file:///var/backups', '/srv')).toMatchObject({ scheme: 'file', root: '/var/backups' });
    expect(() => parseStorageLocation('file://otherhost/x', '/')).toThrow(ConfigurationError);
    expect(schemeOf('relative/path')).toBe('file');
  });

  it('s3: bucket, prefix, query settings over config settings, timings', () => {
    const parsed = parseStorageLocation(
      's3://my-bucket/some/prefix?endpoint=http://127.0.0.1:9000&region=eu-west-1&path-style=true&storage-class=STANDARD_IA&sse=aws:kms&sse-kms-key-id=alias/x&part-size=16MiB&queue-size=2&stall-timeout=30s&retry-deadline=5min&conditional-create=off',
      '/',
      { s3: { region: 'us-east-1', profile: 'backup' }, stallTimeoutMs: 1000 },
    );
    expect(parsed).toMatchObject({
      scheme: 's3',
      bucket: 'my-bucket',
      prefix: 'some/prefix/',
      stallTimeoutMs: 30_000,
      retryDeadlineMs: 300_000,
      settings: {
        endpoint: 'http://127.0.0.1:9000',
        region: 'eu-west-1',
        pathStyle: true,
        storageClass: 'STANDARD_IA',
        sse: 'aws:kms',
        sseKmsKeyId: 'alias/x',
        profile: 'backup',
        partSizeBytes: 16 * 1024 * 1024,
        queueSize: 2,
        conditionalCreate: 'off',
      },
    });
    expect(parseStorageLocation('s3://bucket', '/')).toMatchObject({ prefix: '', stallTimeoutMs: 60_000, retryDeadlineMs: 120_000 });
  });

  it('reports every problem at once, and never echoes credentials', () => {
    let error: unknown;
    try {
      parseStorageLocation('s3://B/x?regoin=eu&part-size=1MiB&sse=rot13&queue-size=0', '/');
    } catch (failure) {
      error = failure;
    }
    expect(error).toBeInstanceOf(ConfigurationError);
    const message = (error as Error).message;
    for (const part of ['bucket name "B"', 'unknown query parameter "regoin"', '"part-size"', '"sse"', '"queue-size"']) expect(message).toContain(part);
    const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
    for (const location of [`s3://AKIAEXAMPLE:${encodeURIComponent(secret)}@bucket/x`, `sftp://user:${secret}@host/x`]) {
      const thrown = (() => {
        try {
          parseStorageLocation(location, '/');
        } catch (failure) {
          return failure as ConfigurationError;
        }
        return null;
      })();
      expect(thrown).toBeInstanceOf(ConfigurationError);
      expect(`${thrown?.message} ${thrown?.hint}`).not.toContain(secret.slice(0, 10));
    }
  });

  it('azblob: container rules (3-63), SAS in the URL is kept apart and redacted', () => {
    expect(() => parseStorageLocation('azblob://bk/x', '/')).toThrow(/container name "bk"/);
    const parsed = parseStorageLocation('azblob://backups/p?account=acct&sv=2024-01-01&sp=rl&sig=SECRET%2Bsig&concurrency=2', '/');
    expect(parsed).toMatchObject({ scheme: 'azblob', container: 'backups', prefix: 'p/', urlSasToken: 'sv=2024-01-01&sp=rl&sig=SECRET%2Bsig', settings: { account: 'acct', concurrency: 2 } });
    expect(parsed.display).not.toContain('SECRET');
    expect(parsed.display).toContain('(secrets redacted)');
    expect(locationHasSecrets('azblob://backups/p?sig=x')).toBe(true);
    expect(locationHasSecrets('azblob://backups/p?account=x')).toBe(false);
  });

  it('sftp: user, host, port, absolute and home-relative paths, key files', () => {
    expect(parseStorageLocation('sftp://backup@nas.example:2222/srv/backups?key=/etc/backupctl/id_ed25519&known-hosts=~/.ssh/kh&password-env=NAS_PW', '/')).toMatchObject({
      scheme: 'sftp',
      user: 'backup',
      host: 'nas.example',
      port: 2222,
      path: '/srv/backups',
      settings: { keyFile: '/etc/backupctl/id_ed25519', knownHostsFile: '~/.ssh/kh', passwordEnv: 'NAS_PW' },
    });
    expect(parseStorageLocation('sftp://nas/~/backups', '/')).toMatchObject({ path: 'backups', port: 22, user: undefined });
    expect(parseStorageLocation('sftp://nas/~', '/')).toMatchObject({ path: '.' });
    expect(parseStorageLocation('sftp://nas/x?agent=none', '/')).toMatchObject({ settings: { agent: false } });
    expect(() => parseStorageLocation('sftp://nas/x?key=relative/key', '/')).toThrow(/absolute path/);
  });

  it('unknown schemes and unreadable URLs are configuration errors', () => {
    expect(() => parseStorageLocation('gs://bucket/x', '/')).toThrow(/not supported/);
    expect(() => parseStorageLocation('s3://', '/')).toThrow(ConfigurationError);
  });

  it('sizes', () => {
    expect(parseSize('8MiB')).toBe(8 * 1024 * 1024);
    expect(parseSize('16MB')).toBe(16_000_000);
    expect(parseSize('5242880')).toBe(5_242_880);
    expect(parseSize('lots')).toBeNull();
  });
});

describe('redactStorageLocation', () => {
  it('drops passwords and anything that is not a known, non-secret setting', () => {
    expect(redactStorageLocation('/var/backups')).toBe('/var/backups');
    expect(redactStorageLocation('sftp://u:hunter2@h/x')).toBe('sftp://u@h/x');
    expect(redactStorageLocation('s3://b/p?endpoint=http://127.0.0.1:9000&region=us-east-1')).toBe('s3://b/p?endpoint=http://127.0.0.1:9000&region=us-east-1');
    const redacted = redactStorageLocation('azblob://c/p?account=a&sv=1&sig=abc&token=zzz');
    expect(redacted).not.toMatch(/sig=|token=|abc|zzz/);
    expect(redacted).toContain('account=a');
    expect(redactStorageLocation('s3://[secret-ish')).toBe('s3://(unreadable URL)');
  });
});

describe('openStorage', () => {
  it('local and mem are returned as they are (no lazy wrapper; localPath present for local)', () => {
    const local = openStorage('rel', '/tmp');
    expect(local).toBeInstanceOf(LocalStorage);
    expect(local.localPath?.('a/b.dump')).toBe(path.join('/tmp/rel', 'a/b.dump'));
    expect(openStorage('mem://unit/p', '/')).toBeInstanceOf(MemoryStorage);
  });

  it('remote storages are lazy: parsing errors now, no SDK until first use, conservative capabilities first', () => {
    expect(() => openStorage('s3://BAD/x', '/')).toThrow(ConfigurationError);
    const storage = openStorage('s3://bucket/x?endpoint=http://127.0.0.1:1&conditional-create=on', '/');
    expect(storage.location).toBe('s3://bucket/x?endpoint=http://127.0.0.1:1&conditional-create=on');
    expect(storage.capabilities).toEqual({ atomicPut: true, conditionalCreate: true, localFiles: false, rangeReads: true, consistentList: true, pagedList: true });
    expect(storage.localPath).toBeUndefined();
    expect(openStorage('s3://bucket/x', '/').capabilities.conditionalCreate).toBe(false);
    expect(s3Factory.capabilities(s3Factory.parse('s3://bucket/x', '/', {})).conditionalCreate).toBe(false);
  });

  it('settings from the config are merged under the URL query', () => {
    const storage = openStorage('sftp://backup@nas/srv', '/', { sftp: { knownHostsFile: '/etc/kh' }, stallTimeoutMs: 5000 });
    expect(storage.location).toBe('sftp://backup@nas/srv');
  });
});

describe('known_hosts', () => {
  const blob = (type: string) => {
    const name = Buffer.from(type);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(name.length);
    return Buffer.concat([header, name, randomBytes(32)]);
  };
  const ed = blob('ssh-ed25519');
  const rsa = blob('ssh-rsa');
  const hashed = (name: string) => {
    const salt = randomBytes(20);
    return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
  };
  const text = [
    '# comment',
    `nas.example,10.0.0.5 ssh-ed25519 ${ed.toString('base64')}`,
    `[nas.example]:2222 ssh-rsa ${rsa.toString('base64')} comment here`,
    `${hashed('[10.0.0.9]:2022')} ssh-ed25519 ${ed.toString('base64')}`,
    `*.internal,!bad.internal ssh-ed25519 ${ed.toString('base64')}`,
    `@revoked old.example ssh-ed25519 ${ed.toString('base64')}`,
    `@cert-authority *.example ssh-ed25519 ${rsa.toString('base64')}`,
  ].join('\n');

  it('matches plain, [host]:port, hashed, wildcard and negated entries', () => {
    expect(knownKeysFor(text, 'nas.example', 22).map((k) => k.type)).toEqual(['ssh-ed25519']);
    expect(knownKeysFor(text, 'nas.example', 2222).map((k) => k.type)).toEqual(['ssh-rsa']);
    expect(knownKeysFor(text, '10.0.0.5', 22)).toHaveLength(1);
    expect(knownKeysFor(text, '10.0.0.9', 2022)[0]?.key.equals(ed)).toBe(true);
    expect(knownKeysFor(text, '10.0.0.9', 22)).toEqual([]);
    expect(knownKeysFor(text, 'db.internal', 22)).toHaveLength(1);
    expect(knownKeysFor(text, 'bad.internal', 22)).toEqual([]);
    expect(knownKeysFor(text, 'old.example', 22)).toEqual([expect.objectContaining({ revoked: true })]);
  });

  it('fingerprints like ssh-keygen and offers SHA-2 RSA algorithms first', () => {
    expect(fingerprint(ed)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(hostKeyAlgorithms(['ssh-rsa', 'ssh-ed25519'])).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa', 'ssh-ed25519']);
  });
});

describe('retries', () => {
  it('backoff doubles with jitter up to the cap', () => {
    const policy = { deadlineMs: 60_000, baseDelayMs: 100, maxDelayMs: 1000 };
    expect(backoffDelay(1, policy, () => 1)).toBe(100);
    expect(backoffDelay(3, policy, () => 1)).toBe(400);
    expect(backoffDelay(10, policy, () => 1)).toBe(1000);
    expect(backoffDelay(3, policy, () => 0)).toBe(200);
  });

  it('transient failures are retried within the deadline; permanent ones fail at once', async () => {
    let calls = 0;
    const transient = Object.assign(new Error('reset'), { code: 'ECONNRESET' });
    const result = await withRetry(
      'op',
      async () => {
        calls += 1;
        if (calls < 3) throw transient;
        return 'ok';
      },
      { policy: { deadlineMs: 5000, baseDelayMs: 1, maxDelayMs: 5 }, isTransient: (error) => error === transient },
    );
    expect([result, calls]).toEqual(['ok', 3]);

    calls = 0;
    const permanent = new Error('denied');
    await expect(
      withRetry('op', async () => {
        calls += 1;
        throw permanent;
      }, { policy: { deadlineMs: 5000, baseDelayMs: 1, maxDelayMs: 5 }, isTransient: () => false }),
    ).rejects.toBe(permanent);
    expect(calls).toBe(1);

    const started = Date.now();
    const error = await withRetry('listing', async () => {
      throw transient;
    }, { policy: { deadlineMs: 200, baseDelayMs: 20, maxDelayMs: 50 }, isTransient: () => true }).catch((failure: unknown) => failure);
    expect(error).toBeInstanceOf(TransientError);
    expect((error as TransientError).message).toContain('ECONNRESET');
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe('the stall budget', () => {
  it('after a stall: attempts bounded by the window, then one short grace, then none for a stall timeout, until a request succeeds', () => {
    let now = 0;
    const budget = new StallBudget(5000, () => now);
    expect([budget.stalled, budget.begin('op'), budget.mayRetry(60_000)]).toEqual([false, null, true]);
    now = 100;
    budget.noteStall();
    expect(budget.stalled).toBe(true);
    now = 1100;
    expect(budget.begin('op')).toBe(4000);
    expect(budget.mayRetry(3000)).toBe(true);
    expect(budget.mayRetry(4000)).toBe(false);
    budget.noteStall(); // a second stall does not open a new window
    expect(budget.remainingMs()).toBe(4000);
    now = 5100;
    // The window is spent: the first call gets the grace, shared with calls made meanwhile.
    expect(budget.begin('op')).toBe(STALL_GRACE_MS);
    now = 5600;
    expect(budget.begin('op')).toBe(STALL_GRACE_MS - 500);
    now = 5100 + STALL_GRACE_MS;
    const error = (() => {
      try {
        return budget.begin('removing a/b.dump', 'a/b.dump');
      } catch (failure) {
        return failure;
      }
    })();
    expect(error).toBeInstanceOf(StalledError);
    expect((error as StalledError).key).toBe('a/b.dump');
    expect((error as StalledError).message).toMatch(/^removing a\/b\.dump: not tried/);
    // A stall timeout later, one more short attempt (the server may be back).
    now = 5100 + STALL_GRACE_MS + 4999;
    expect(() => budget.begin('op')).toThrow(StalledError);
    now = 5100 + STALL_GRACE_MS + 5000;
    expect(budget.begin('op')).toBe(STALL_GRACE_MS);
    expect(() => {
      now += STALL_GRACE_MS;
      budget.begin('op');
    }).toThrow(StalledError);
    // A success: the server answers, back to normal (and a later stall opens a new window).
    budget.noteSuccess();
    expect([budget.stalled, budget.begin('op'), budget.remainingMs()]).toEqual([false, null, null]);
    budget.noteStall();
    expect(budget.begin('op')).toBe(5000);
  });

  it('the grace is never longer than the stall timeout; a stall timeout of 0 (off) never trips', () => {
    let now = 0;
    const short = new StallBudget(500, () => now);
    short.noteStall();
    now = 600;
    expect(short.begin('op')).toBe(500);
    const off = new StallBudget(0, () => now);
    off.noteStall();
    expect([off.stalled, off.begin('op')]).toEqual([false, null]);
  });
});
