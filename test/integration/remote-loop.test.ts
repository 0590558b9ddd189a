/**
 * Everything works remotely (issue 11, point 7): the built binary, with a clean
 * environment, through the whole loop on each remote driver: create, list, list --json,
 * show, verify at the three levels, restore into a new database (row counts compared with
 * the source), create twice more, prune --keep-last 1 (dry run first), delete, status,
 * check; and at the end nothing but the surviving backup and the run log is left in the
 * store (no lock, no claim, no probe). One loop, parametrized over S3 (s3rver), Azure Blob
 * (azurite) and SFTP (OpenSSH sshd); one storage server per driver, the file's one database.
 *
 * Credentials come from the environment or the home directory, never from argv: S3 from
 * AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, Azure from AZURE_STORAGE_CONNECTION_STRING,
 * SFTP from ~/.ssh/id_ed25519 and ~/.ssh/known_hosts of the run's HOME.
 */
import { BlobServiceClient } from '@azure/storage-blob';
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStorage } from '../../src/storage/registry.js';
import { baseEnv, runBin, type CliOutcome } from '../helpers/cli.js';
import { scratchSetup, tempDir } from '../helpers/failure-kit.js';
import { uniqueName } from '../helpers/pg.js';
import { AZURITE_KEY, sshdUnavailable, startAzurite, startS3rver, startSshd, uniquePrefix } from '../helpers/storage-servers.js';

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
  },
  teardown: async () => {
    for (const name of restored) await scratch.cluster.dropDatabase(name);
  },
});
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
  stop(): Promise<void>;
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

const drivers: Driver[] = [
  {
    name: 's3 (s3rver)',
    unavailable: null,
    async start(home) {
      const server = await startS3rver();
      const url = `s3://${server.bucket}/${uniquePrefix('loop')}?endpoint=${server.endpoint}&region=us-east-1&path-style=true`;
      const env = { AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey };
      // The SDK in this process (keysThrough) reads the default chain from process.env.
      Object.assign(process.env, env);
      return { url, env, secrets: [], keys: () => keysThrough(url, env, home), stop: () => server.stop() };
    },
  },
  {
    name: 'azblob (azurite)',
    unavailable: null,
    async start(home) {
      const server = await startAzurite();
      const container = 'backups';
      await BlobServiceClient.fromConnectionString(server.connectionString).getContainerClient(container).create();
      const url = `azblob://${container}/${uniquePrefix('loop')}?endpoint=${server.blobEndpoint}`;
      const env = { AZURE_STORAGE_CONNECTION_STRING: server.connectionString };
      return { url, env, secrets: [AZURITE_KEY], keys: () => keysThrough(url, env, home), stop: () => server.stop() };
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
      const url = `sftp://${server.user}@127.0.0.1:${server.port}${path.join(server.root, uniquePrefix('loop'))}`;
      return { url, env: {}, secrets: [], keys: () => keysThrough(url, {}, home), stop: () => server.stop() };
    },
  },
];

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
  async function bin(args: string[]): Promise<CliOutcome> {
    const env = baseEnv({ HOME: home, ...cluster.env(scratch.db), ...remote.env }) as Record<string, string>;
    const out = await runBin([...args, '--storage', remote.url], { env, cwd: scratch.cwd });
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
});
