/**
 * Every ```sh block of README.md runs, as written, with `bash -eo pipefail` in the operator
 * world of test/helpers/operator-world.ts (the built binary on PATH, a config with the
 * profile `app`, the libpq environment of the test cluster), in the order a reader meets
 * them. The host names, buckets, paths and credentials the README uses are mapped onto the
 * test cluster and onto real storage servers started here (s3rver for S3 and its
 * compatibles, Azurite for Azure Blob Storage, sshd for SFTP): `rewrite` is the only change
 * made to a block before it runs. A block that cannot run in a test does not belong in a
 * `sh` fence (use `text`, `ini`, `yaml`...): there is no list of exceptions here.
 *
 * What a block needs to find first (backups to delete, an encrypted backup to rekey, a
 * second server to restore onto) is prepared by the hook of its section, as
 * help-examples.test.ts prepares the examples of a command.
 *
 * The CI recipe ("a backup before a migration, restored if the migration fails"), as a
 * script and as the `run:` steps of its GitHub Actions YAML, also runs in worlds of its own:
 * with a migration that succeeds, one that fails, and a server that is down (a closed
 * port), where it must fail before the migration and never write an empty `id=`.
 */
import { generateBlobSASQueryParameters, ContainerSASPermissions, BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { chmod, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDirs } from '../helpers/backups.js';
import { assertBuilt, REPO_ROOT } from '../helpers/cli.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { makeOperatorWorld, type OperatorWorld } from '../helpers/operator-world.js';
import { connectProvided } from '../helpers/pg.js';
import {
  AZURITE_ACCOUNT,
  AZURITE_KEY,
  freePort,
  sshdUnavailable,
  startAzurite,
  startS3rver,
  startSshd,
  type AzuriteServer,
  type S3rverServer,
  type SshdServer,
} from '../helpers/storage-servers.js';

const cluster = connectProvided();
const ID = /^\d{8}T\d{6}Z-[0-9a-f]{6}$/;

// ---------------------------------------------------------------------------------------
// The README, cut into fenced blocks under their headings

interface Block {
  lang: string;
  text: string;
  /** The nearest heading above the block, without its #s. */
  heading: string;
  /** 1-based line of the opening fence. */
  line: number;
}

function fencedBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  let heading = '';
  let open: { lang: string; line: number; lines: string[] } | null = null;
  markdown.split('\n').forEach((line, index) => {
    if (open) {
      if (/^```\s*$/.test(line)) {
        blocks.push({ lang: open.lang, text: open.lines.join('\n'), heading, line: open.line });
        open = null;
      } else open.lines.push(line);
      return;
    }
    const fence = /^```(\S*)\s*$/.exec(line);
    if (fence) open = { lang: fence[1] ?? '', line: index + 1, lines: [] };
    else if (/^#{1,6} /.test(line)) heading = line.replace(/^#+ /, '').trim();
  });
  if (open) throw new Error(`README.md: the fence opened on line ${(open as { line: number }).line} is never closed`);
  return blocks;
}

const README = await readFile(path.join(REPO_ROOT, 'README.md'), 'utf8');
const blocks = fencedBlocks(README);
const shBlocks = blocks.filter((b) => b.lang === 'sh');
const CI_HEADING = 'CI: a backup before a migration, restored if the migration fails';
const ciScript = blocks.find((b) => b.heading === CI_HEADING && b.lang === 'sh');
const ciActions = blocks.find((b) => b.heading === CI_HEADING && b.lang === 'yaml');

// ---------------------------------------------------------------------------------------
// GitHub Actions, as much of it as the recipe uses: steps in order, `if:` with the status
// functions and step outcomes, `${{ steps.<id>.outputs.<name> }}`, $GITHUB_OUTPUT.

interface Step {
  name?: string;
  id?: string;
  if?: string;
  shell?: string;
  run: string;
}

/** The steps of a YAML list of steps (`- name: ...`), with `run: |` blocks; anything else is an error. */
function parseSteps(yaml: string): Step[] {
  const steps: Array<Record<string, string>> = [];
  const lines = yaml.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === '' || line.trim().startsWith('#')) continue;
    const item = /^- (.*)$/.exec(line);
    if (item) steps.push({});
    const body = item ? (item[1] as string) : /^ {2}(\S.*)$/.exec(line)?.[1];
    const step = steps.at(-1);
    if (body === undefined || step === undefined) throw new Error(`unexpected line in the GitHub Actions recipe: ${line}`);
    const pair = /^([a-z-]+):\s*(.*)$/.exec(body);
    if (!pair) throw new Error(`unexpected line in the GitHub Actions recipe: ${line}`);
    const key = pair[1] as string;
    let value = (pair[2] as string).trim();
    if (value === '|') {
      const collected: string[] = [];
      while (i + 1 < lines.length && (/^ {4}/.test(lines[i + 1] as string) || (lines[i + 1] as string).trim() === '')) collected.push((lines[++i] as string).slice(4));
      value = `${collected.join('\n').trimEnd()}\n`;
    } else if (/^'.*'$|^".*"$/.test(value)) value = value.slice(1, -1);
    step[key] = value;
  }
  return steps.map((step) => {
    if (step.run === undefined) throw new Error(`a step without run: ${JSON.stringify(step)}`);
    if (step.shell !== undefined && step.shell !== 'bash') throw new Error(`only shell: bash is emulated, not ${step.shell}`);
    return step as unknown as Step;
  });
}

type Outcome = 'success' | 'failure' | 'skipped';

function evaluateIf(expression: string | undefined, failed: boolean, outcomes: Map<string, Outcome>): boolean {
  const text = expression ?? 'success()';
  // Without a status function, GitHub implies success() &&.
  const terms = /\b(success|failure|always|cancelled)\(\)/.test(text) ? text.split('&&') : ['success()', ...text.split('&&')];
  return terms.every((raw) => {
    const term = raw.trim();
    if (term === 'success()') return !failed;
    if (term === 'failure()') return failed;
    if (term === 'always()') return true;
    if (term === 'cancelled()') return false;
    const match = /^steps\.([\w-]+)\.outcome\s*(==|!=)\s*'(\w+)'$/.exec(term);
    if (!match) throw new Error(`unsupported expression in the GitHub Actions recipe: ${term}`);
    const equal = outcomes.get(match[1] as string) === match[3];
    return match[2] === '==' ? equal : !equal;
  });
}

interface JobResult {
  failed: boolean;
  steps: Array<{ name: string; outcome: Outcome; code?: number; stdout?: string; stderr?: string; outputFile?: string }>;
  outputs: Map<string, Record<string, string>>;
}

/** Runs the steps as a GitHub runner would, each `run:` with `bash -eo pipefail` in the world. */
async function runJob(world: OperatorWorld, steps: Step[], rewrite: (text: string) => string, env: Record<string, string>): Promise<JobResult> {
  let failed = false;
  const outcomes = new Map<string, Outcome>();
  const outputs = new Map<string, Record<string, string>>();
  const result: JobResult = { failed: false, steps: [], outputs };
  for (const [index, step] of steps.entries()) {
    const name = step.name ?? `step ${index + 1}`;
    if (!evaluateIf(step.if, failed, outcomes)) {
      if (step.id) outcomes.set(step.id, 'skipped');
      result.steps.push({ name, outcome: 'skipped' });
      continue;
    }
    const script = step.run.replace(/\$\{\{\s*(.*?)\s*\}\}/g, (_, expression: string) => {
      const match = /^steps\.([\w-]+)\.outputs\.([\w-]+)$/.exec(expression);
      if (!match) throw new Error(`unsupported expression in the GitHub Actions recipe: ${expression}`);
      return outputs.get(match[1] as string)?.[match[2] as string] ?? '';
    });
    const outputFile = path.join(world.dir, `github-output-${index}`);
    await writeFile(outputFile, '');
    const run = await world.run(rewrite(script), { env: { ...env, GITHUB_OUTPUT: outputFile } });
    const outcome: Outcome = run.code === 0 ? 'success' : 'failure';
    if (outcome === 'failure') failed = true;
    if (step.id) {
      outcomes.set(step.id, outcome);
      const written = await readFile(outputFile, 'utf8');
      outputs.set(step.id, Object.fromEntries(written.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])));
    }
    result.steps.push({ name, outcome, code: run.code, stdout: run.stdout, stderr: run.stderr, outputFile });
  }
  result.failed = failed;
  return result;
}

// ---------------------------------------------------------------------------------------
// The world the README's blocks run in

let world: OperatorWorld;
let s3: S3rverServer;
let azurite: AzuriteServer;
let sshd: SshdServer | null = null;
let sas = '';
/** The "new server" of the restore-without-backupctl recipes. */
let second: Cluster | null = null;
/** The environment of a shell in which an operator runs the README's commands. */
let shellEnv: Record<string, string>;

const noSshd = sshdUnavailable();

/** The README's storage URLs and credentials, mapped onto the servers started here. */
function storageRewrite(text: string): string {
  const s3Url = (_: string, bucket: string, prefix: string, query = '') =>
    `s3://${s3.bucket}/${bucket}/${prefix}${query.replace(/([?&]endpoint=)[^&]*/, `$1${s3.endpoint}`)}`;
  const azUrl = (_: string, where: string, query: string | undefined) =>
    query ? `azblob://${where}${query.replace(/([?&]endpoint=)[^&]*/, `$1${azurite.blobEndpoint}`)}` : `azblob://${where}?endpoint=${azurite.blobEndpoint}`;
  let out = text
    .replace(/\bAWS_ACCESS_KEY_ID=\S+/g, `AWS_ACCESS_KEY_ID=${s3.accessKeyId}`)
    .replace(/\bAWS_SECRET_ACCESS_KEY=\S+/g, `AWS_SECRET_ACCESS_KEY=${s3.secretAccessKey}`)
    .replace(/s3:\/\/([a-z0-9.-]+)\/([^?'"\s]*)(\?[^'"\s]*)?/g, s3Url)
    .replace(/\bAZURE_STORAGE_CONNECTION_STRING='DefaultEndpointsProtocol=[^']*'/g, `AZURE_STORAGE_CONNECTION_STRING='${azurite.connectionString}'`)
    .replace(/\bAZURE_STORAGE_ACCOUNT=\S+/g, `AZURE_STORAGE_ACCOUNT=${AZURITE_ACCOUNT}`)
    .replace(/\bAZURE_STORAGE_SAS_TOKEN='[^']*'/g, `AZURE_STORAGE_SAS_TOKEN='${sas}'`)
    .replace(/azblob:\/\/([^?'"\s]+)(\?[^'"\s]*)?/g, azUrl)
    .replace(/\/var\/backups\/postgres\b/g, world.storage);
  if (sshd) {
    const { user, host, port, root } = sshd;
    out = out
      .replace(/ssh-keyscan -p 2222 nas\.example\.com/g, `ssh-keyscan -p ${port} ${host}`)
      // An absolute path on the NAS lands below the test server's own directory.
      .replace(/sftp:\/\/backup@nas\.example\.com:2222\/(~\/)?/g, (_, home: string | undefined) => `sftp://${user}@${host}:${port}/${home ?? `${root.slice(1)}/`}`);
  }
  return out;
}

const rewrite = (text: string) => storageRewrite(world.rewrite(text));

/** Drops the databases a world made (and the `<name>_old_<time>` ones restore --clean kept), removes its directory. */
async function disposeWorld(w: OperatorWorld, on: Pick<Cluster, 'query' | 'dropDatabase'> = cluster): Promise<void> {
  const names = await on.query<{ datname: string }>('postgres', 'select datname from pg_database where starts_with(datname, $1)', ['opw_']);
  for (const { datname } of names) if ([w.db, ...w.made].some((db) => datname.startsWith(db))) await on.dropDatabase(datname);
  await removeDirs([w.dir]);
}

async function backupsOf(w: OperatorWorld, args = '--profile app'): Promise<Array<{ id: string; tags: string[]; artifact: { file: string; container: string; encryption: unknown } }>> {
  const listed = await w.run(`backupctl list ${args} --json`, { env: shellEnv });
  expect(listed.code, listed.stderr).toBe(0);
  return JSON.parse(listed.stdout) as Array<{ id: string; tags: string[]; artifact: { file: string; container: string; encryption: unknown } }>;
}

async function create(args: string): Promise<string> {
  const run = await world.run(rewrite(`backupctl create --profile app --json ${args} | jq -er .id`), { env: shellEnv });
  expect(run.code, run.stderr).toBe(0);
  return run.stdout.trim();
}

/** A migration for the CI recipe: it records that it ran, changes the database, and succeeds or fails. */
async function writeMigration(w: OperatorWorld, outcome: 'succeeds' | 'fails'): Promise<void> {
  const sql = outcome === 'succeeds' ? 'alter table public.orders add column if not exists note text' : 'drop table public.orders cascade';
  await writeFile(
    path.join(w.dir, 'migrate.sh'),
    `#!/bin/sh\nset -e\ntouch migrated\npsql -X -q -v ON_ERROR_STOP=1 -d '${w.db}' -c '${sql}'\n${outcome === 'fails' ? 'echo "migration 42 failed" >&2\nexit 1\n' : ''}`,
    { mode: 0o755 },
  );
}

/** What a section's blocks need before the first of them runs; `cd` is where they run. */
const prepare: Record<string, () => Promise<{ cd?: string; env?: Record<string, string> } | void>> = {
  // "With no configuration at all": a directory no config file is found from.
  async 'Quick start'() {
    const bare = path.join(world.dir, 'no-config');
    await mkdir(bare, { recursive: true });
    await writeFile(path.join(bare, 'package.json'), '{}\n');
    return { cd: bare };
  },
  // Two throwaway backups tagged scratch, then a newer one: the newest good backup stays.
  async delete() {
    await create('--tag scratch');
    await create('--tag scratch');
    await create('');
  },
  // An encrypted backup (to the 2025 key) is the newest.
  async rekey() {
    await create('--recipients-file /etc/backupctl/recipients.txt');
  },
  // The sftp:// examples: the server's key is the operator's ~/.ssh key and /etc/backupctl/id_ed25519.
  async Examples() {
    if (!sshd) return;
    await mkdir(path.join(world.dir, '.ssh'), { recursive: true, mode: 0o700 });
    await copyFile(sshd.keyFile, path.join(world.dir, '.ssh', 'id_ed25519'));
    await chmod(path.join(world.dir, '.ssh', 'id_ed25519'), 0o600);
    await copyFile(sshd.keyFile, path.join(world.dir, 'etc-backupctl', 'id_ed25519'));
    await chmod(path.join(world.dir, 'etc-backupctl', 'id_ed25519'), 0o600);
  },
  // A new server (same superuser password: the roles file sets it again), and the backups
  // the recipes name: a zstd one, one encrypted to ops.key, a directory-format one.
  async 'Restoring without backupctl'() {
    const backups = await backupsOf(world);
    const pick = (what: string, test: (b: (typeof backups)[number]) => boolean) => {
      const found = backups.find(test);
      if (!found) throw new Error(`no ${what} backup in the world for the restore-without-backupctl recipes: ${JSON.stringify(backups.map((b) => b.artifact.file))}`);
      return found.id;
    };
    world.alias('20261123T021500Z-4c1d2e', pick('zstd', (b) => b.artifact.file.endsWith('.dump.zst')));
    world.alias('20261124T021500Z-9e1f00', pick('encrypted', (b) => b.tags.includes('encrypted') && b.artifact.file.endsWith('.dump.zst.age')));
    world.alias('20261125T021500Z-7d3a11', pick('directory-format', (b) => b.artifact.file.endsWith('.dump.tar.zst')));
    second = await startCluster({ name: 'readme-new-server', password: cluster.password });
    return { env: { PGHOST: second.host, PGPORT: String(second.port), PGUSER: second.user } };
  },
  async [CI_HEADING]() {
    await writeMigration(world, 'succeeds');
  },
};

/** What the first block of a section must print, beyond exiting 0. */
const expectOutput: Record<string, { stdout?: RegExp; stderr?: RegExp }> = {
  'Restoring without backupctl': { stdout: /^\s*500\s*$/m }, // select count(*) from orders, on the new server
  'Which setting wins': { stderr: /PGDATABASE=other is ignored: profile "app" sets database \S+ \(the config wins over the environment/ },
  [CI_HEADING]: { stdout: /^pre-migration backup: \d{8}T\d{6}Z-[0-9a-f]{6}$/m },
};

beforeAll(async () => {
  assertBuilt();
  world = await makeOperatorWorld(cluster);
  [s3, azurite, sshd] = await Promise.all([startS3rver(), startAzurite(), noSshd ? Promise.resolve(null) : startSshd()]);
  const service = BlobServiceClient.fromConnectionString(azurite.connectionString);
  await service.getContainerClient('backups').create();
  sas = generateBlobSASQueryParameters(
    { containerName: 'backups', permissions: ContainerSASPermissions.parse('racwdl'), expiresOn: new Date(Date.now() + 3_600_000) },
    new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
  ).toString();
  const tmp = path.join(world.dir, 'tmp');
  await mkdir(tmp);
  shellEnv = {
    PGHOST: cluster.host,
    PGPORT: String(cluster.port),
    PGUSER: cluster.user,
    TMPDIR: tmp,
    // "AWS" is s3rver here, and so is the instance role.
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
  };
}, 180_000);

afterAll(async () => {
  await second?.stop();
  await Promise.all([s3?.stop(), azurite?.stop(), sshd?.stop()]);
  if (world) await disposeWorld(world);
});

describe('README.md', () => {
  it('has sh blocks, and the CI recipe as a script and as GitHub Actions steps', () => {
    expect(shBlocks.length).toBeGreaterThan(20);
    expect(ciScript, 'the CI recipe as a sh block').toBeDefined();
    expect(ciActions, 'the CI recipe as GitHub Actions YAML').toBeDefined();
    expect(parseSteps(ciActions?.text ?? '').length).toBeGreaterThanOrEqual(3);
  });

  it('the CI recipe takes the id with jq -er (fails on null), never inside an echo', () => {
    for (const recipe of [ciScript?.text ?? '', ciActions?.text ?? '']) {
      expect(recipe).toMatch(/--json \| jq -er \.id\)/);
      expect(recipe).not.toMatch(/echo\s+"[^"\n]*\$\(backupctl/);
      expect(recipe).not.toMatch(/jq -r \.id/);
    }
  });

  const seen = new Set<string>();
  let context: { cd?: string; env?: Record<string, string> } = {};
  it.for(shBlocks.map((block) => ({ ...block, title: `line ${block.line} (${block.heading}): ${block.text.split('\n')[0]?.slice(0, 60) ?? ''}` })))(
    'runs the sh block of $title',
    { timeout: 120_000 },
    async (block, test) => {
      if (!seen.has(block.heading)) {
        seen.add(block.heading);
        context = (await prepare[block.heading]?.()) ?? {};
      }
      if (noSshd && /sftp:\/\/|ssh-keyscan/.test(block.text)) test.skip(`sshd cannot run here: ${noSshd}`);
      const script = `${context.cd ? `cd '${context.cd}'\n` : ''}${rewrite(block.text)}`;
      // A backup the block says it made must be in the storage it names: asked afterwards in
      // the same shell (with the credentials the block exported).
      const storages = [...rewrite(block.text).matchAll(/backupctl create [^\n]*?--storage ('[^']*'|\S+)/g)].map((m) => m[1] as string);
      const checks = storages.map((where, i) => `\necho "readme-check ${i} $(backupctl list --storage ${where} --json | jq length)"`).join('');
      const run = await world.run(`${script}${checks}`, { env: { ...shellEnv, ...context.env } });
      expect(run.code, `README.md line ${block.line}:\n${script}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`).toBe(0);
      const wanted = block.line === shBlocks.find((b) => b.heading === block.heading)?.line ? expectOutput[block.heading] : undefined;
      if (wanted?.stdout) expect(run.stdout).toMatch(wanted.stdout);
      if (wanted?.stderr) expect(run.stderr).toMatch(wanted.stderr);
      storages.forEach((where, i) => {
        const listed = new RegExp(`^readme-check ${i} (\\d+)$`, 'm').exec(run.stdout)?.[1];
        expect(Number(listed), `backups in ${where}:\n${run.stderr}`).toBeGreaterThan(0);
      });
    },
  );

  it('the recipes left their backups where they said', async () => {
    // Quick start: ./backups/<database> of the directory without a config.
    const bare = await backupsOf(world, `--storage '${path.join(world.dir, 'no-config', 'backups')}'`);
    expect(bare.length).toBeGreaterThan(0);
    // copy: the offsite directory holds copies of the profile's backups.
    const offsite = await backupsOf(world, `--storage '${path.join(world.dir, 'offsite')}'`);
    expect(offsite.length).toBeGreaterThan(0);
    // delete: the scratch backups are gone.
    const app = await backupsOf(world);
    expect(app.filter((b) => b.tags.includes('scratch'))).toEqual([]);
    // The restore-without-backupctl recipes restored onto the new server, and only there.
    for (const name of ['app_restored', 'app_decrypted', 'app_parallel']) {
      const real = world.rewrite(`createdb ${name}`).split(' ')[1] as string;
      const rows = await second?.query<{ n: number }>(real, 'select count(*)::int as n from public.orders');
      expect(rows, name).toEqual([{ n: 500 }]);
      expect(await cluster.query('postgres', 'select 1 from pg_database where datname = $1', [real])).toEqual([]);
    }
  });
});

// ---------------------------------------------------------------------------------------
// The CI recipe, three ways, each in a world of its own that is removed afterwards

describe('the CI recipe: a backup before a migration, restored if the migration fails', () => {
  type Server = 'up' | 'down';

  async function ciWorld(server: Server, migration: 'succeeds' | 'fails'): Promise<OperatorWorld> {
    const w = await makeOperatorWorld(cluster);
    if (server === 'down') {
      // The same config, pointed at a port nothing listens on.
      const config = JSON.parse(await readFile(w.config, 'utf8')) as { defaults: { port: number } };
      config.defaults.port = await freePort();
      await writeFile(w.config, JSON.stringify(config, null, 2));
    }
    await writeMigration(w, migration);
    return w;
  }

  const ciEnv = () => ({ PGHOST: cluster.host, PGPORT: String(cluster.port), PGUSER: cluster.user });
  const ordersCount = async (w: OperatorWorld) =>
    (await cluster.query<{ n: number }>(w.db, "select count(*)::int as n from public.orders").catch(() => [{ n: -1 }]))[0]?.n;

  describe.each(['script', 'GitHub Actions'] as const)('as %s', (form) => {
    async function runRecipe(w: OperatorWorld): Promise<{ failed: boolean; code: number; stdout: string; stderr: string; ids: string[]; job?: JobResult }> {
      if (form === 'script') {
        const run = await w.run(w.rewrite(ciScript?.text ?? ''), { env: ciEnv() });
        const ids = [...run.stdout.matchAll(/^pre-migration backup: (.*)$/gm)].map((m) => m[1] as string);
        return { failed: run.code !== 0, ...run, ids };
      }
      const job = await runJob(w, parseSteps(ciActions?.text ?? ''), (text) => w.rewrite(text), ciEnv());
      const ids: string[] = [];
      for (const step of job.steps) {
        if (!step.outputFile) continue;
        for (const line of (await readFile(step.outputFile, 'utf8')).split('\n')) if (line.startsWith('id=')) ids.push(line.slice(3));
      }
      const all = (key: 'stdout' | 'stderr') => job.steps.map((s) => `--- ${s.name}: ${s.outcome}\n${s[key] ?? ''}`).join('\n');
      return { failed: job.failed, code: job.failed ? 1 : 0, stdout: all('stdout'), stderr: all('stderr'), ids, job };
    }

    it('the server is up and the migration succeeds: exit 0, one pre-migration backup, its id passed on', async () => {
      const w = await ciWorld('up', 'succeeds');
      try {
        const run = await runRecipe(w);
        expect(run.failed, `${run.stdout}\n${run.stderr}`).toBe(false);
        expect(run.ids).toHaveLength(1);
        expect(run.ids[0]).toMatch(ID);
        expect(existsSync(path.join(w.dir, 'migrated'))).toBe(true);
        const backups = await backupsOf(w);
        expect(backups.map((b) => b.id)).toEqual(run.ids);
        expect(backups[0]?.tags).toContain('pre-migration');
        if (run.job) expect(run.job.steps.map((s) => s.outcome)).toEqual(['success', 'success', 'skipped']);
      } finally {
        await disposeWorld(w);
      }
    });

    it('the migration fails: the pre-migration backup is restored over it, and the recipe fails', async () => {
      const w = await ciWorld('up', 'fails');
      try {
        const run = await runRecipe(w);
        expect(run.failed, `${run.stdout}\n${run.stderr}`).toBe(true);
        expect(run.ids).toHaveLength(1);
        expect(run.ids[0]).toMatch(ID);
        expect(existsSync(path.join(w.dir, 'migrated'))).toBe(true);
        expect(await ordersCount(w)).toBe(500); // dropped by the migration, back from the backup
        if (run.job) expect(run.job.steps.map((s) => s.outcome)).toEqual(['success', 'failure', 'success']);
        else expect(run.stderr).toContain(`migration failed: restoring ${run.ids[0] as string}`);
      } finally {
        await disposeWorld(w);
      }
    });

    it('the server is down: the recipe fails before the migration, and no id (empty or not) is passed on', async () => {
      const w = await ciWorld('down', 'succeeds');
      try {
        const run = await runRecipe(w);
        expect(run.failed, `${run.stdout}\n${run.stderr}`).toBe(true);
        expect(run.ids).toEqual([]);
        expect(run.stdout).not.toMatch(/^pre-migration backup:/m);
        expect(existsSync(path.join(w.dir, 'migrated'))).toBe(false);
        expect(run.stderr).toMatch(/cannot connect|connection refused/);
        expect(await backupsOf(w)).toEqual([]);
        if (run.job) expect(run.job.steps.map((s) => s.outcome)).toEqual(['failure', 'skipped', 'skipped']);
      } finally {
        await disposeWorld(w);
      }
    });
  });
});
