/**
 * Everything works remotely (issue 11, point 7): the built binary, with a clean
 * environment, through the whole loop on each remote driver: create, list, list --json,
 * show, verify at the three levels, restore into a new database (row counts compared with
 * the source), create twice more, prune --keep-last 1 (dry run first), delete, status,
 * check; and at the end nothing but the surviving backup and the run log is left in the
 * store (no lock, no claim, no probe). One loop, parametrized over S3 (s3rver), Azure Blob
 * (azurite) and SFTP (OpenSSH sshd); one storage server per driver, the file's one database.
 *
 * Then, on each driver, what the store holds that must not be trusted (each in a prefix of
 * its own, on the same server): rekey of an encrypted backup whose payload (or globals
 * file) was damaged is exit 3 with nothing new left in the store, multipart uploads and
 * uncommitted blocks included; verify --level checksum reads an encrypted artifact's header
 * with a ranged read and holds it to the sidecar's recipients (a header swapped in, the
 * digests edited to match, is exit 3); a sidecar the store refuses to give (S3 and Azure:
 * a 403 from a proxy in front of the emulator, which have no per-object permissions;
 * SFTP: a root-owned 0600 file, logged in as nobody) is exit 1 naming it for verify, list
 * and prune, and prune removes nothing.
 *
 * Credentials come from the environment or the home directory, never from argv: S3 from
 * AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, Azure from AZURE_STORAGE_CONNECTION_STRING,
 * SFTP from ~/.ssh/id_ed25519 and ~/.ssh/known_hosts of the run's HOME.
 */
import { ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { BlobServiceClient } from '@azure/storage-blob';
import { createHash } from 'node:crypto';
import { chmod, chown, copyFile, mkdir, readdir, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatIdentityFile, generateIdentity, readHeader } from '../../src/pipeline/age/index.js';
import { openStorage } from '../../src/storage/registry.js';
import { baseEnv, runBin, type CliOutcome } from '../helpers/cli.js';
import { startHttpFaultProxy } from '../helpers/fault-proxy.js';
import { failureLines, fillRandomText, scratchSetup, tempDir } from '../helpers/failure-kit.js';
import { uniqueName } from '../helpers/pg.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, sshdUnavailable, startAzurite, startS3rver, startSshd, uniquePrefix } from '../helpers/storage-servers.js';

const scratch = scratchSetup('remote_loop', {
  built: true,
  seed: async () => {
    await scratch.cluster.query(
      scratch.db,
      `CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
       INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 3000) g;
       CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int REFERENCES customers, amount numeric(10,2), placed_at timestamptz);
       INSERT INTO orders SELECT g, 1 + g % 3000, (g % 997) / 7.0, '2026-01-01'::timestamptz - g * interval '1 minute' FROM generate_series(1, 20000) g;
       CREATE SCHEMA audit;
       CREATE TABLE audit.events (id bigserial PRIMARY KEY, payload jsonb);
       INSERT INTO audit.events (payload) SELECT jsonb_build_object('n', g) FROM generate_series(1, 5000) g;
       CREATE TABLE empty_table (id int);`,
    );
    // An artifact of several S3 parts (part-size=5MiB) and Azure blocks (block-size=1MiB).
    await scratch.cluster.createDatabase(big);
    await fillRandomText(scratch.cluster, big, 'payload', 6);
  },
  teardown: async () => {
    for (const name of restored) await scratch.cluster.dropDatabase(name);
    await scratch.cluster.dropDatabase(big);
  },
});
const big = uniqueName('remote_loop_big');
const { cluster } = scratch;
const restored: string[] = [];

/** A remote store as one loop sees it. */
interface Remote {
  /** The --storage URL (no secret in it). */
  url: string;
  /** The credentials, as environment variables of the run. */
  env: Record<string, string>;
  /** Strings that must never appear in any output. */
  secrets: string[];
  /** Every object under the URL's prefix, read through the driver itself. */
  keys(): Promise<string[]>;
  /** The --storage URL of another prefix on the same server (S3: 5 MiB parts; Azure: 1 MiB blocks). */
  at(prefix: string): string;
  /**
   * Everything the server holds under `prefix`, asked of it directly, not through the
   * driver: dot-named temporaries, incomplete multipart uploads, uncommitted blocks included.
   */
  raw(prefix: string): Promise<string[]>;
  /** A place on the same server where the reads of one object can be refused. */
  refusing(): Promise<Refusing>;
  stop(): Promise<void>;
}

interface Refusing {
  url: string;
  raw(): Promise<string[]>;
  /** From now on the server refuses to give `key` (relative to `url`): 403, or EACCES. */
  refuse(key: string): Promise<void>;
  /** Gives `key` again. */
  allow(key: string): Promise<void>;
  /** S3 and Azure: refuses ranged reads of `key` only (what verify's header read is); SFTP cannot. */
  refuseRanged?(key: string): void;
}

interface Driver {
  name: string;
  /** Why the driver's server cannot run here, or null. */
  unavailable: string | null;
  /** Starts the server; `home` is the HOME of every run (SFTP puts its keys there). */
  start(home: string): Promise<Remote>;
}

async function keysThrough(url: string, env: Record<string, string>, home: string): Promise<string[]> {
  const storage = openStorage(url, '/', {}, { env, homeDir: home });
  try {
    return (await storage.list('')).map((object) => object.key);
  } finally {
    await storage.close();
  }
}

/** Every file and directory under `dir` on this machine, dot-names included, as relative paths. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)) + (entry.isDirectory() ? '/' : '')).sort();
}

/** A request of the proxied S3 or Azure server for the object at `objectPath` (`/bucket/key`), reading it. */
const readsOf = (objectPath: string, rangedOnly = false) => (req: IncomingMessage) =>
  (req.method === 'GET' || req.method === 'HEAD') &&
  decodeURIComponent((req.url ?? '').split('?')[0] as string) === objectPath &&
  (!rangedOnly || req.headers.range !== undefined || req.headers['x-ms-range'] !== undefined);

const drivers: Driver[] = [
  {
    name: 's3 (s3rver)',
    unavailable: null,
    async start(home) {
      const server = await startS3rver();
      const at = (prefix: string, endpoint = server.endpoint) => `s3://${server.bucket}/${prefix}?endpoint=${endpoint}&region=us-east-1&path-style=true&part-size=5MiB`;
      const url = at(uniquePrefix('loop'));
      const env = { AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey };
      // The SDK in this process (keysThrough) reads the default chain from process.env.
      Object.assign(process.env, env);
      const client = new S3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey } });
      const raw = async (prefix: string) => {
        const names: string[] = [];
        let token: string | undefined;
        do {
          const page = await client.send(new ListObjectsV2Command({ Bucket: server.bucket, Prefix: `${prefix}/`, ContinuationToken: token }));
          for (const object of page.Contents ?? []) names.push((object.Key as string).slice(prefix.length + 1));
          token = page.NextContinuationToken;
        } while (token);
        const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: server.bucket, Prefix: `${prefix}/` }));
        for (const upload of uploads.Uploads ?? []) names.push(`${(upload.Key as string).slice(prefix.length + 1)} (incomplete multipart upload)`);
        return names.sort();
      };
      // s3rver has no per-object permissions: a proxy in front of it answers S3's 403.
      const proxy = await startHttpFaultProxy({ host: '127.0.0.1', port: server.port });
      const refusing = async (): Promise<Refusing> => {
        const prefix = uniquePrefix('refused');
        const body = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>';
        return {
          url: at(prefix, proxy.endpoint),
          raw: () => raw(prefix),
          refuse: async (key) => proxy.respond(1e9, { status: 403, body }, readsOf(`/${server.bucket}/${prefix}/${key}`)),
          refuseRanged: (key) => proxy.respond(1e9, { status: 403, body }, readsOf(`/${server.bucket}/${prefix}/${key}`, true)),
          allow: async () => proxy.clear(),
        };
      };
      const stop = async () => {
        client.destroy();
        await proxy.close();
        await server.stop();
      };
      return { url, env, secrets: [], keys: () => keysThrough(url, env, home), at, raw, refusing, stop };
    },
  },
  {
    name: 'azblob (azurite)',
    unavailable: null,
    async start(home) {
      const server = await startAzurite();
      const container = 'backups';
      const containerClient = BlobServiceClient.fromConnectionString(server.connectionString).getContainerClient(container);
      await containerClient.create();
      const at = (prefix: string, endpoint = server.blobEndpoint) => `azblob://${container}/${prefix}?endpoint=${endpoint}&block-size=1MiB`;
      const url = at(uniquePrefix('loop'));
      const env = { AZURE_STORAGE_CONNECTION_STRING: server.connectionString };
      const raw = async (prefix: string) => {
        const committed = new Set<string>();
        for await (const item of containerClient.listBlobsFlat({ prefix: `${prefix}/` })) committed.add(item.name);
        const names: string[] = [];
        for await (const item of containerClient.listBlobsFlat({ prefix: `${prefix}/`, includeUncommitedBlobs: true })) {
          names.push(item.name.slice(prefix.length + 1) + (committed.has(item.name) ? '' : ' (uncommitted blocks)'));
        }
        return names.sort();
      };
      // Azurite has no per-blob permissions: a proxy in front of it answers Azure's 403.
      const proxy = await startHttpFaultProxy({ host: '127.0.0.1', port: server.port });
      const refusing = async (): Promise<Refusing> => {
        const prefix = uniquePrefix('refused');
        const code = 'AuthorizationPermissionMismatch';
        const denied = {
          status: 403,
          body: `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>This request is not authorized to perform this operation using this permission.</Message></Error>`,
          headers: { 'x-ms-error-code': code },
        };
        return {
          url: at(prefix, `${proxy.endpoint}/${AZURITE_ACCOUNT}`),
          raw: () => raw(prefix),
          refuse: async (key) => proxy.respond(1e9, denied, readsOf(`/${AZURITE_ACCOUNT}/${container}/${prefix}/${key}`)),
          refuseRanged: (key) => proxy.respond(1e9, denied, readsOf(`/${AZURITE_ACCOUNT}/${container}/${prefix}/${key}`, true)),
          allow: async () => proxy.clear(),
        };
      };
      const stop = async () => {
        await proxy.close();
        await server.stop();
      };
      return { url, env, secrets: [AZURITE_KEY], keys: () => keysThrough(url, env, home), at, raw, refusing, stop };
    },
  },
  {
    name: 'sftp (sshd)',
    unavailable: sshdUnavailable(),
    async start(home) {
      const server = await startSshd();
      // The standard places: ~/.ssh/id_ed25519 and ~/.ssh/known_hosts of the run's HOME.
      await mkdir(path.join(home, '.ssh'), { recursive: true, mode: 0o700 });
      await copyFile(server.keyFile, path.join(home, '.ssh', 'id_ed25519'));
      await copyFile(server.knownHostsFile, path.join(home, '.ssh', 'known_hosts'));
      const at = (prefix: string) => `sftp://${server.user}@127.0.0.1:${server.port}${path.join(server.root, prefix)}`;
      const url = at(uniquePrefix('loop'));
      const refusing = async (): Promise<Refusing> => {
        // sshd logs in as root here, whom no mode refuses: this place is nobody's, and
        // nobody logs in to it; a file made root's and 0600 is then refused (EACCES).
        const dir = path.join(path.dirname(server.root), uniquePrefix('refused'));
        await mkdir(dir, { mode: 0o700 });
        await chown(dir, NOBODY, NOBODY);
        const place = (key: string) => path.join(dir, ...key.split('/'));
        return {
          url: `sftp://nobody@127.0.0.1:${server.port}${dir}`,
          raw: () => filesUnder(dir),
          refuse: async (key) => {
            await chown(place(key), 0, 0);
            await chmod(place(key), 0o600);
          },
          allow: async (key) => chown(place(key), NOBODY, NOBODY),
        };
      };
      return {
        url,
        env: {},
        secrets: [],
        keys: () => keysThrough(url, {}, home),
        at,
        raw: (prefix) => filesUnder(path.join(server.root, prefix)),
        refusing,
        stop: () => server.stop(),
      };
    },
  },
];

/** nobody's uid and gid on Debian. */
const NOBODY = 65534;

interface Listed {
  id: string;
  profile: string;
  verifications: Array<{ level: string; result: string }>;
  artifact: { file: string };
  globals: { status: string; file?: string };
}

const TABLES = ['public.customers', 'public.orders', 'audit.events', 'public.empty_table'];

async function rowCounts(db: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of TABLES) {
    const [row] = await cluster.query<{ n: string }>(db, `SELECT count(*) AS n FROM ${table}`);
    counts[table] = Number(row?.n);
  }
  return counts;
}

describe.each(drivers)('the whole loop on $name', (driver) => {
  let remote: Remote;
  let home: string;
  const ids: string[] = [];

  beforeAll(async () => {
    home = await tempDir('remote-home');
    remote = await driver.start(home);
  });
  afterAll(async () => {
    await remote?.stop();
  });

  /** The built binary with a clean environment: PATH, HOME, the libpq variables and the store's credentials. */
  async function bin(args: string[], url = remote.url, db = scratch.db): Promise<CliOutcome> {
    const env = baseEnv({ HOME: home, ...cluster.env(db), ...remote.env }) as Record<string, string>;
    const out = await runBin([...args, '--storage', url], { env, cwd: scratch.cwd });
    for (const secret of [...remote.secrets, cluster.password]) {
      expect(out.stdout, 'no secret on stdout').not.toContain(secret);
      expect(out.stderr, 'no secret on stderr').not.toContain(secret);
    }
    return out;
  }

  /** Succeeded, with no warning and no stack trace on stderr. */
  function ok(out: CliOutcome): CliOutcome {
    expect(out.code, out.stderr).toBe(0);
    expect(out.stderr, 'no warning').not.toMatch(/^warning:/m);
    expect(out.stderr, "no Node or SDK process warning (the AWS SDK's NodeVersionSupportWarning)").not.toMatch(/\(node:\d+\)|Warning:/);
    expect(out.stderr, 'no stack trace').not.toMatch(/^\s+at\s/m);
    return out;
  }

  const listed = async (): Promise<Listed[]> => JSON.parse(ok(await bin(['list', '--json'])).stdout) as Listed[];

  it.skipIf(driver.unavailable !== null)('create --json prints the new id; list and list --json show it', async () => {
    const created = ok(await bin(['create', '--json']));
    const { id } = JSON.parse(created.stdout) as { id: string };
    ids.push(id);
    expect(created.stderr).toContain(`backup ${id} completed`);
    const human = ok(await bin(['list']));
    expect(human.stdout).toMatch(new RegExp(`^${id}\\s+${scratch.db}\\s`, 'm'));
    expect((await listed()).map((backup) => backup.id)).toEqual([id]);
  });

  it.skipIf(driver.unavailable !== null)('show gives the metadata of the backup', async () => {
    const [id] = ids;
    const out = ok(await bin(['show', id as string]));
    expect(out.stdout).toContain(id);
    expect(out.stdout).toMatch(new RegExp(`${id}\\.dump\\b`));
    expect(out.stdout).toMatch(/public\.orders\s+20,000/);
    expect(out.stdout).toContain(remote.url.split('?')[0]);
  });

  it.skipIf(driver.unavailable !== null)('verify passes at the three levels (checksum, archive, restore), each recorded in the sidecar', async () => {
    const [id] = ids;
    for (const level of ['checksum', 'archive', 'restore']) {
      const out = ok(await bin(['verify', id as string, '--level', level, '--json']));
      const report = JSON.parse(out.stdout) as { passed: boolean; outcomes: Array<{ level: string; result: string }> };
      expect(report.passed).toBe(true);
      expect(report.outcomes).toEqual([expect.objectContaining({ id, level, result: 'passed' })]);
    }
    const [backup] = await listed();
    expect(backup?.verifications.map((v) => `${v.level}:${v.result}`)).toEqual(['checksum:passed', 'archive:passed', 'restore:passed']);
  });

  it.skipIf(driver.unavailable !== null)('restore into a new database: every table has the rows of the source', async () => {
    const [id] = ids;
    const target = uniqueName('remote_restored');
    restored.push(target);
    const out = ok(await bin(['restore', id as string, '--target-db', target, '--create']));
    expect(out.stdout).toContain(`into "${target}"`);
    const source = await rowCounts(scratch.db);
    expect(source['public.orders']).toBe(20_000);
    expect(await rowCounts(target)).toEqual(source);
  });

  it.skipIf(driver.unavailable !== null)('prune --keep-last 1: the dry run changes nothing, then the unverified middle backup goes', async () => {
    for (let i = 0; i < 2; i++) ids.push((JSON.parse(ok(await bin(['create', '--json'])).stdout) as { id: string }).id);
    const [first, second, third] = ids as [string, string, string];
    expect((await listed()).map((backup) => backup.id)).toEqual([third, second, first]);

    type Planned = { id: string; action: string; reasons: string[] };
    const dry = JSON.parse(ok(await bin(['prune', '--keep-last', '1', '--dry-run', '--json'])).stdout) as Planned[];
    const actions = Object.fromEntries(dry.map((entry) => [entry.id, entry.action]));
    // The newest is kept by keep-last; the first, the newest verified backup, is never pruned.
    expect(actions).toEqual({ [third]: 'keep', [second]: 'remove', [first]: 'keep' });
    expect((await listed()).map((backup) => backup.id)).toEqual([third, second, first]);

    const done = JSON.parse(ok(await bin(['prune', '--keep-last', '1', '--json'])).stdout) as Planned[];
    expect(done.filter((entry) => entry.action === 'remove' || entry.action === 'removed').map((entry) => entry.id)).toEqual([second]);
    expect((await listed()).map((backup) => backup.id)).toEqual([third, first]);
  });

  it.skipIf(driver.unavailable !== null)('delete removes a chosen backup', async () => {
    const [first, , third] = ids as [string, string, string];
    const out = ok(await bin(['delete', first]));
    expect(out.stdout).toContain(first);
    expect((await listed()).map((backup) => backup.id)).toEqual([third]);
  });

  it.skipIf(driver.unavailable !== null)('status --max-age 1h is healthy; check passes every check', async () => {
    const [, , third] = ids as [string, string, string];
    const status = JSON.parse(ok(await bin(['status', '--max-age', '1h', '--json'])).stdout) as {
      healthy: boolean;
      profiles: Array<{ profile: string; lastBackup: { id: string } | null }>;
    };
    expect(status.healthy).toBe(true);
    expect(status.profiles).toEqual([expect.objectContaining({ profile: scratch.db, lastBackup: expect.objectContaining({ id: third }) })]);
    expect(ok(await bin(['status', '--max-age', '1h'])).stdout).toMatch(/healthy/);

    const check = JSON.parse(ok(await bin(['check', '--json'])).stdout) as { ok: boolean; profiles: Array<{ checks: Array<{ check: string; ok: boolean }> }> };
    expect(check.ok).toBe(true);
    const checks = check.profiles[0]?.checks ?? [];
    expect(checks.filter((c) => !c.ok)).toEqual([]);
    expect(checks.map((c) => c.check)).toEqual(expect.arrayContaining(['connection', 'client', 'storage', 'lock']));
  });

  it.skipIf(driver.unavailable !== null)('left in the store: the surviving backup, the run log, the catalog index and generation only (no lock, claim or probe)', async () => {
    const [, , third] = ids as [string, string, string];
    const profile = scratch.db;
    const [backup] = await listed();
    expect(backup?.id).toBe(third);
    const catalogFiles = ['catalog-generation.json', 'catalog-index.json', 'runs.jsonl'];
    const files = [backup?.artifact.file, backup?.globals.file, `${third}.json`, ...catalogFiles];
    expect(files.every((file) => file?.startsWith(third) || catalogFiles.includes(file as string)), JSON.stringify(files)).toBe(true);
    expect(await remote.keys()).toEqual(files.map((file) => `${profile}/${file}`).sort());
  });
  describe('what the store holds is not trusted', () => {
    let keyA: { file: string; recipient: string };
    let keyB: { file: string; recipient: string };

    beforeAll(async () => {
      const dir = await tempDir('remote-keys');
      const make = async (name: string) => {
        const { identity, recipient } = generateIdentity();
        const file = path.join(dir, `${name}.key`);
        await writeFile(file, formatIdentityFile(identity), { mode: 0o600 });
        return { file, recipient: recipient.toString() };
      };
      keyA = await make('a');
      keyB = await make('b');
    });

    /** The driver itself, for reading and writing whole objects as they are stored. */
    async function withStorage<T>(url: string, work: (storage: ReturnType<typeof openStorage>) => Promise<T>): Promise<T> {
      const storage = openStorage(url, '/', {}, { env: remote.env, homeDir: home });
      try {
        return await work(storage);
      } finally {
        await storage.close();
      }
    }
    const getObject = (url: string, key: string) => withStorage(url, (storage) => storage.getBytes(key, 64 * 1024 * 1024));
    const putObject = (url: string, key: string, bytes: Buffer) => withStorage(url, (storage) => storage.putBytes(key, bytes));
    const created = (out: CliOutcome) => (JSON.parse(ok(out).stdout) as { id: string }).id;
    const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

    interface StoredSidecar {
      artifact: { file: string; bytes: number; sha256: string };
      globals: { status: string; file: string; bytes: number; sha256: string };
    }

    /** `bytes` with one byte of the age payload flipped (inside its first chunk: the header still opens). */
    function damagedPayload(bytes: Buffer): Buffer {
      const copy = Buffer.from(bytes);
      const at = Math.min(readHeader(copy).payloadOffset + 20, copy.length - 1);
      copy[at] = (copy[at] as number) ^ 0x01;
      return copy;
    }

    it.skipIf(driver.unavailable !== null)('rekey of a backup whose payload was damaged (the globals file, then the artifact): exit 3, nothing new left in the store, the sidecar unchanged', async () => {
      const prefix = uniquePrefix('rekey');
      const url = remote.at(prefix);
      const id = created(await bin(['create', '--json', '--compress', 'none', '--recipient', keyA.recipient], url, big));
      const sidecarKey = `${big}/${id}.json`;
      const sidecar = JSON.parse((await getObject(url, sidecarKey)).toString('utf8')) as StoredSidecar;
      expect(sidecar.globals.status).toBe('included');
      // Several S3 parts, several Azure blocks: what a failed upload would leave behind is there to find.
      expect(sidecar.artifact.bytes).toBeGreaterThan(5.5 * 1024 * 1024);
      const rekey = ['rekey', id, '--identity', keyA.file, '--add-recipient', keyB.recipient];

      // The globals file is rewritten after the artifact: its damage is found once the
      // artifact's new file is complete, which must then go too.
      for (const file of [sidecar.globals.file, sidecar.artifact.file]) {
        const key = `${big}/${file}`;
        const sound = await getObject(url, key);
        const damaged = damagedPayload(sound);
        await putObject(url, key, damaged);
        const before = await remote.raw(prefix);
        const sidecarBefore = await getObject(url, sidecarKey);
        const run = await bin(rekey, url, big);
        expect(run.code, `${file}: ${run.stderr}`).toBe(3);
        expect(run.stderr).toMatch(new RegExp(`${file.replace(/\./g, '\\.')} does not match its sidecar .*: not rekeyed`));
        // Nothing written is left: no .k1. file (the artifact's, complete when the globals
        // file failed, included), no temporary, no incomplete upload, no uncommitted block.
        const after = await remote.raw(prefix);
        expect(after.filter((name) => name.includes('.k1.') || /upload|uncommitted|\/\./.test(name)), `${file}: ${after.join(', ')}`).toEqual([]);
        expect(after.filter((name) => !/(^|\/)(catalog-generation\.json|runs\.jsonl)$/.test(name))).toEqual(before.filter((name) => !/(^|\/)(catalog-generation\.json|runs\.jsonl)$/.test(name)));
        expect(await getObject(url, sidecarKey)).toEqual(sidecarBefore);
        expect(await getObject(url, key)).toEqual(damaged);
        if (file === sidecar.artifact.file) {
          // The damage is still there to find (this records a failed verification in the sidecar).
          const verified = await bin(['verify', id, '--level', 'checksum'], url, big);
          expect(verified.code, verified.stderr + verified.stdout).toBe(3);
        }
        await putObject(url, key, sound);
      }
      // Made sound again, it rekeys.
      const rekeyed = ok(await bin(rekey, url, big));
      expect(rekeyed.stderr).toContain(`rekeyed ${big}/${id}`);
      expect((await remote.raw(prefix)).filter((name) => name.includes('.k1.'))).toHaveLength(2);
    }, 180_000); // 6 MB written, read and rewritten several times through the emulators: 13-16 s alone (it was 45-111 s, past 180 s once, when toEqual compared the 6 MB files index by index: see test/helpers/equality.ts)

    it.skipIf(driver.unavailable !== null)('verify --level checksum reads the header of an encrypted artifact: a sound one passes; another backup\'s header swapped in, the digests edited to match, is exit 3', async () => {
      const prefix = uniquePrefix('header');
      const url = remote.at(prefix);
      const one = created(await bin(['create', '--json', '--recipient', keyA.recipient], url));
      const two = created(await bin(['create', '--json', '--recipient', keyA.recipient, '--recipient', keyB.recipient], url));
      for (const id of [one, two]) {
        const report = JSON.parse(ok(await bin(['verify', id, '--level', 'checksum', '--json'], url)).stdout) as { passed: boolean };
        expect(report.passed, id).toBe(true);
      }
      const sidecarKey = `${scratch.db}/${one}.json`;
      const sidecar = JSON.parse((await getObject(url, sidecarKey)).toString('utf8')) as StoredSidecar;
      const twoSidecar = JSON.parse((await getObject(url, `${scratch.db}/${two}.json`)).toString('utf8')) as StoredSidecar;
      const mine = await getObject(url, `${scratch.db}/${sidecar.artifact.file}`);
      const theirs = await getObject(url, `${scratch.db}/${twoSidecar.artifact.file}`);
      const swapped = Buffer.concat([theirs.subarray(0, readHeader(theirs).payloadOffset), mine.subarray(readHeader(mine).payloadOffset)]);
      await putObject(url, `${scratch.db}/${sidecar.artifact.file}`, swapped);
      sidecar.artifact.bytes = swapped.length;
      sidecar.artifact.sha256 = sha256(swapped);
      await putObject(url, sidecarKey, Buffer.from(JSON.stringify(sidecar)));
      const run = await bin(['verify', one, '--level', 'checksum', '--json'], url);
      expect(run.code, run.stderr + run.stdout).toBe(3);
      const report = JSON.parse(run.stdout) as { outcomes: Array<{ result: string; mismatches: string[] }> };
      expect(report.outcomes[0]?.result).toBe('failed');
      expect(report.outcomes[0]?.mismatches.join('\n')).toMatch(
        /the age header does not match the sidecar's recipients: the header has 2 X25519 stanzas and 0 scrypt stanzas, the sidecar records 1 X25519 recipient/,
      );
    });

    it.skipIf(driver.unavailable !== null)('a sidecar the store refuses to give: verify, verify latest and prune are exit 1 naming it (never corrupt, never an older backup), list names it and lists the rest (exit 1); prune removes nothing, its catalog index vouching for it or not; a refused artifact is exit 1 too', async () => {
      const place = await remote.refusing();
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push(created(await bin(['create', '--json'], place.url)));
      const key = `${scratch.db}/${ids[2]}.json`;
      const backups = async () => (await place.raw()).filter((name) => /\.(json|dump\S*)$/.test(name) && !name.includes('catalog-'));
      const before = await backups();
      expect(before, 'three sidecars and their artifacts').toHaveLength(6);

      const expectRefused = (run: CliOutcome, what: string) => {
        expect(run.code, `${what}: ${run.stderr}`).toBe(1);
        const { error } = failureLines(run.stderr);
        expect(error, what).toMatch(/permission denied/);
        expect(error, what).toContain(key);
        expect(error, what).not.toMatch(/corrupt|cannot be read|not valid|damaged/i);
      };
      await place.refuse(key);
      expectRefused(await bin(['verify', ids[2] as string, '--level', 'checksum'], place.url), 'verify <id>');
      expectRefused(await bin(['verify', 'latest', '--level', 'checksum'], place.url), 'verify latest');
      // list names it and lists the rest, exit 1: an incomplete listing.
      const listed = await bin(['list', '--json'], place.url);
      expect(listed.code, listed.stderr).toBe(1);
      expect((JSON.parse(listed.stdout) as Listed[]).map((backup) => backup.id)).toEqual([ids[1], ids[0]]);
      expect(listed.stderr).toMatch(new RegExp(`permission denied.*${key.replace(/[.]/g, '\\.')}.*not listed`));
      expect(listed.stderr).not.toMatch(/corrupt|cannot be read|not valid|damaged/i);
      expectRefused(await bin(['prune', '--keep-last', '1'], place.url), 'prune');
      expect(await backups()).toEqual(before);

      // An index written while every sidecar was readable stands in for the sidecars.
      await place.allow(key);
      ok(await bin(['list'], place.url));
      await place.refuse(key);
      expectRefused(await bin(['prune', '--keep-last', '1'], place.url), 'prune (indexed)');
      expect(await backups()).toEqual(before);

      // Given again, the same prune removes the two older backups (none is verified).
      await place.allow(key);
      ok(await bin(['prune', '--keep-last', '1'], place.url));
      expect(await backups()).toEqual(before.filter((name) => name.includes(ids[2] as string)));

      // An artifact refused, encrypted (its header is read as well) or not: exit 1 naming it, never FAILED.
      const encrypted = created(await bin(['create', '--json', '--recipient', keyA.recipient], place.url));
      for (const id of [ids[2] as string, encrypted]) {
        const { artifact } = JSON.parse((await getObject(place.url, `${scratch.db}/${id}.json`)).toString('utf8')) as StoredSidecar;
        const artifactKey = `${scratch.db}/${artifact.file}`;
        await place.refuse(artifactKey);
        const run = await bin(['verify', id, '--level', 'checksum'], place.url);
        expect(run.code, `${artifact.file}: ${run.stderr}`).toBe(1);
        expect(run.stdout + run.stderr).toMatch(/permission denied/);
        expect(run.stdout + run.stderr).toContain(artifactKey);
        expect(run.stdout + run.stderr).not.toMatch(/FAILED|corrupt/);
        await place.allow(artifactKey);
      }
      // The encrypted artifact's digest read, and only its header's ranged read refused: the same.
      if (place.refuseRanged) {
        const { artifact } = JSON.parse((await getObject(place.url, `${scratch.db}/${encrypted}.json`)).toString('utf8')) as StoredSidecar;
        const artifactKey = `${scratch.db}/${artifact.file}`;
        place.refuseRanged(artifactKey);
        const run = await bin(['verify', encrypted, '--level', 'checksum'], place.url);
        expect(run.code, run.stderr).toBe(1);
        expect(run.stdout + run.stderr).toMatch(/permission denied/);
        expect(run.stdout + run.stderr).toContain(artifactKey);
        expect(run.stdout + run.stderr).not.toMatch(/FAILED|corrupt/);
        await place.allow(artifactKey);
        ok(await bin(['verify', encrypted, '--level', 'checksum'], place.url));
      }
    });
  });
});
