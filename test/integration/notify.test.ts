/**
 * Notifications of `create` (webhook, Slack-compatible, healthchecks pings), received by
 * a local HTTP server started here; and notifiers that cannot be reached or never answer,
 * which must only produce a warning.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { makeTempDir, parseJsonStdout, removeDirs } from '../helpers/backups.js';
import { baseEnv, runCli } from '../helpers/cli.js';
import { connectProvided, uniqueName } from '../helpers/pg.js';

const cluster = connectProvided();
const dirs: string[] = [];
const db = uniqueName('notify');
const SECRET = 'tok3n-Sup3rSecret';

interface Received {
  method: string;
  url: string;
  contentType: string | undefined;
  body: string;
  at: number;
}

let server: Server;
let base: string;
let received: Received[] = [];
let work: string;

function handler(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    received.push({
      method: req.method ?? '',
      url: req.url ?? '',
      contentType: req.headers['content-type'],
      body: Buffer.concat(chunks).toString('utf8'),
      at: Date.now(),
    });
    if (req.url?.startsWith('/hang')) return; // never answers
    if (req.url?.startsWith('/error')) {
      res.writeHead(500).end('boom');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
  });
}

async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** A config with a good and a broken profile sharing `notify` through `defaults`. */
async function writeConfig(notify: unknown): Promise<string> {
  const dir = await makeTempDir('notify-cfg');
  dirs.push(dir);
  const file = path.join(dir, 'backupctl.config.json');
  await writeFile(
    file,
    JSON.stringify({
      storage: path.join(work, 'backups'),
      defaults: { host: cluster.host, port: cluster.port, user: cluster.user, globals: false, notify },
      profiles: {
        app: { database: db },
        broken: { database: `${db}_missing` },
      },
    }),
  );
  return file;
}

function env(): Record<string, string | undefined> {
  return baseEnv({ PGPASSWORD: cluster.password });
}

function fullNotify() {
  return {
    webhook: { url: `${base}/hook/${SECRET}?token=${SECRET}` },
    slack: { url: `${base}/slack/T000/B000/${SECRET}` },
    healthchecks: { url: `${base}/hc/${SECRET}` },
    timeoutMs: 2000,
    retries: 1,
  };
}

beforeAll(async () => {
  work = await makeTempDir('notify');
  dirs.push(work);
  await cluster.createDatabase(db);
  await cluster.query(db, 'create table t (id int primary key); insert into t select generate_series(1, 100);');
  server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

beforeEach(() => {
  received = [];
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await cluster.dropDatabase(db);
  await removeDirs(dirs);
});

describe('notifications of create', () => {
  it('a succeeding create: webhook JSON, Slack text, healthchecks start then success', async () => {
    const config = await writeConfig(fullNotify());
    const result = await runCli(['create', '--config', config, '--profile', 'app', '--json'], { env: env(), cwd: work });
    expect(result.code, result.stderr).toBe(0);
    const { id } = parseJsonStdout(result.stdout) as { id: string };

    const hook = received.find((r) => r.url.startsWith('/hook/'));
    expect(hook).toMatchObject({ method: 'POST', contentType: 'application/json', url: `/hook/${SECRET}?token=${SECRET}` });
    const body = JSON.parse(hook?.body ?? '{}') as Record<string, unknown>;
    expect(body).toMatchObject({ event: 'backup.succeeded', profile: 'app', id, database: db, exitCode: 0 });
    expect(body.bytes).toBeGreaterThan(0);
    expect(typeof body.host).toBe('string');
    expect(typeof body.durationMs).toBe('number');
    expect(Date.parse(String(body.finishedAt))).toBeGreaterThanOrEqual(Date.parse(String(body.startedAt)));
    expect(body).not.toHaveProperty('error');

    const slack = received.find((r) => r.url.startsWith('/slack/'));
    expect(slack?.contentType).toBe('application/json');
    const text = (JSON.parse(slack?.body ?? '{}') as { text: string }).text;
    expect(text).toContain(`backup app/${id} succeeded`);

    const pings = received.filter((r) => r.url.startsWith('/hc/')).map((r) => r.url);
    expect(pings).toEqual([`/hc/${SECRET}/start`, `/hc/${SECRET}`]);
    expect(result.stderr).not.toContain(SECRET);
  });

  it('a verify: verify.succeeded with the backup\'s id and database, as the README lists the body\'s fields', async () => {
    const config = await writeConfig({ webhook: { url: `${base}/hook/${SECRET}?token=${SECRET}` }, timeoutMs: 2000, retries: 0 });
    const made = await runCli(['create', '--config', config, '--profile', 'app', '--json'], { env: env(), cwd: work });
    expect(made.code, made.stderr).toBe(0);
    const { id } = parseJsonStdout(made.stdout) as { id: string };
    received = [];
    const result = await runCli(['verify', id, '--config', config, '--profile', 'app', '--level', 'checksum'], { env: env(), cwd: work });
    expect(result.code, result.stderr).toBe(0);
    const body = JSON.parse(received.find((r) => r.url.startsWith('/hook/'))?.body ?? '{}') as Record<string, unknown>;
    expect(body).toMatchObject({ event: 'verify.succeeded', command: 'verify', profile: 'app', id, database: db, exitCode: 0 });
  });

  it('healthchecks follows the backup job: a verify or delete does not ping it unless its commands list them', async () => {
    const config = await writeConfig(fullNotify());
    const made = await runCli(['create', '--config', config, '--profile', 'app', '--json'], { env: env(), cwd: work });
    expect(made.code, made.stderr).toBe(0);
    const { id } = parseJsonStdout(made.stdout) as { id: string };
    received = [];
    const verified = await runCli(['verify', id, '--config', config, '--profile', 'app', '--level', 'checksum'], { env: env(), cwd: work });
    expect(verified.code, verified.stderr).toBe(0);
    const deleted = await runCli(['delete', id, '--config', config, '--profile', 'app', '--force'], { env: env(), cwd: work });
    expect(deleted.code, deleted.stderr).toBe(0);
    // The webhook hears of both; the check, which a stopped backup job must leave silent, of neither.
    expect(received.filter((r) => r.url.startsWith('/hook/')).map((r) => (JSON.parse(r.body) as { event: string }).event)).toEqual([
      'verify.succeeded',
      'delete.succeeded',
    ]);
    expect(received.filter((r) => r.url.startsWith('/hc/'))).toEqual([]);

    const both = await writeConfig({ ...fullNotify(), healthchecks: { url: `${base}/hc/${SECRET}`, commands: ['create', 'verify'] } });
    const again = await runCli(['create', '--config', both, '--profile', 'app', '--json'], { env: env(), cwd: work });
    expect(again.code, again.stderr).toBe(0);
    const second = (parseJsonStdout(again.stdout) as { id: string }).id;
    received = [];
    const verifiedAgain = await runCli(['verify', second, '--config', both, '--profile', 'app', '--level', 'checksum'], { env: env(), cwd: work });
    expect(verifiedAgain.code, verifiedAgain.stderr).toBe(0);
    expect(received.filter((r) => r.url.startsWith('/hc/')).map((r) => r.url)).toEqual([`/hc/${SECRET}/start`, `/hc/${SECRET}`]);
  });

  it('a failing create (wrong database): backup.failed with the error, healthchecks /fail with the error as body', async () => {
    const config = await writeConfig(fullNotify());
    const result = await runCli(['create', '--config', config, '--profile', 'broken'], { env: env(), cwd: work });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`${db}_missing`);

    const hook = received.find((r) => r.url.startsWith('/hook/'));
    const body = JSON.parse(hook?.body ?? '{}') as Record<string, unknown>;
    expect(body).toMatchObject({ event: 'backup.failed', profile: 'broken', database: `${db}_missing`, exitCode: result.code });
    expect(String(body.error)).toContain(`${db}_missing`);
    expect(body).not.toHaveProperty('id');

    const slack = JSON.parse(received.find((r) => r.url.startsWith('/slack/'))?.body ?? '{}') as { text: string };
    expect(slack.text).toMatch(/^:x: backupctl: backup broken failed on .* \(exit \d+\): /);

    const pings = received.filter((r) => r.url.startsWith('/hc/'));
    // The run never held its locks (the database is missing): no start ping, just the failure.
    expect(pings.map((r) => r.url)).toEqual([`/hc/${SECRET}/fail`]);
    expect(pings[0]?.body).toContain(`${db}_missing`);
    expect(result.stderr).not.toContain(SECRET);
  });

  it('events: ["failure"] sends nothing for a success', async () => {
    const config = await writeConfig({ webhook: { url: `${base}/hook/x`, events: ['failure'] }, slack: { url: `${base}/slack/x`, events: ['success'] } });
    const result = await runCli(['create', '--config', config, '--profile', 'app'], { env: env(), cwd: work });
    expect(result.code, result.stderr).toBe(0);
    expect(received.map((r) => r.url)).toEqual(['/slack/x']);
  });

  it('a notifier on a closed port is a warning; the backup still exits 0', async () => {
    const port = await closedPort();
    const config = await writeConfig({
      webhook: { url: `http://127.0.0.1:${port}/hook/${SECRET}` },
      healthchecks: { url: `http://127.0.0.1:${port}/hc/${SECRET}` },
      timeoutMs: 1000,
      retries: 1,
    });
    const result = await runCli(['create', '--config', config, '--profile', 'app', '--json'], { env: env(), cwd: work });
    expect(result.code, result.stderr).toBe(0);
    expect((parseJsonStdout(result.stdout) as { id: string }).id).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{6}$/);
    expect(result.stderr).toContain(`warning: webhook notification to http://127.0.0.1:${port}/… failed after 2 attempts: ECONNREFUSED`);
    expect(result.stderr).toContain(`warning: healthchecks notification to http://127.0.0.1:${port}/… failed`);
    expect(result.stderr).not.toContain(SECRET);
  });

  it('a server that never answers is cut off by the timeout: a warning, exit 0, quickly', async () => {
    const config = await writeConfig({ webhook: { url: `${base}/hang/${SECRET}` }, slack: { url: `${base}/error/${SECRET}` }, timeoutMs: 300, retries: 1 });
    const started = Date.now();
    const result = await runCli(['create', '--config', config, '--profile', 'app'], { env: env(), cwd: work });
    const elapsed = Date.now() - started;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/warning: webhook notification to http:\/\/127\.0\.0\.1:\d+\/… failed after 2 attempts: no answer within 300 ms/);
    expect(result.stderr).toMatch(/warning: slack notification to http:\/\/127\.0\.0\.1:\d+\/… failed after 2 attempts: HTTP 500/);
    expect(result.stderr).not.toContain(SECRET);
    expect(received.filter((r) => r.url.startsWith('/hang/'))).toHaveLength(2);
    expect(received.filter((r) => r.url.startsWith('/error/'))).toHaveLength(2);
    // Two attempts of 300 ms and one pause: far below the default 10 s timeout.
    expect(elapsed).toBeLessThan(15_000);
  });

  it('--log-format json: the warning is one JSON line on stderr, stdout keeps the result', async () => {
    const port = await closedPort();
    const config = await writeConfig({ slack: { url: `http://127.0.0.1:${port}/slack/${SECRET}` }, timeoutMs: 500, retries: 0 });
    const result = await runCli(['--log-format', 'json', 'create', '--config', config, '--profile', 'app', '--json'], { env: env(), cwd: work });
    expect(result.code, result.stderr).toBe(0);
    expect(parseJsonStdout(result.stdout)).toHaveProperty('id');
    const lines = result.stderr.trim().split('\n').map((line) => JSON.parse(line) as { time: string; level: string; message: string });
    expect(lines.length).toBeGreaterThan(1);
    for (const line of lines) expect(Object.keys(line)).toEqual(expect.arrayContaining(['time', 'level', 'message']));
    const warning = lines.find((line) => line.level === 'warn');
    expect(warning?.message).toMatch(/^slack notification to http:\/\/127\.0\.0\.1:\d+\/… failed: ECONNREFUSED/);
    expect(result.stderr).not.toContain(SECRET);
  });
});

describe('a run that finds the profile busy (exit 4)', () => {
  /** A lock of profile "app" held by a live process of this host (the test runner that started this worker). */
  async function holdLock(): Promise<string> {
    const dir = path.join(work, 'backups', 'app');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const file = path.join(dir, 'lock.json');
    await writeFile(file, JSON.stringify({ pid: process.ppid, host: hostname(), command: 'create', startedAt: new Date().toISOString(), token: 'held-by-the-test' }));
    return file;
  }

  it('is not a failed backup: no failure notification and no healthchecks ping by default; recorded as busy; status stays healthy', async () => {
    const lock = await holdLock();
    try {
      const config = await writeConfig(fullNotify());
      const run = await runCli(['create', '--config', config, '--profile', 'app'], { env: env(), cwd: work });
      expect(run.code).toBe(4);
      expect(received).toEqual([]);
      const log = await readFile(path.join(work, 'backups', 'app', 'runs.jsonl'), 'utf8');
      expect(JSON.parse(log.trim().split('\n').at(-1) as string)).toMatchObject({ command: 'create', result: 'busy', exitCode: 4 });
      const status = await runCli(['status', '--config', config, '--profile', 'app', '--json'], { env: env(), cwd: work });
      expect((parseJsonStdout(status.stdout) as { profiles: Array<{ failedRunsSinceSuccess: number }> }).profiles[0]?.failedRunsSinceSuccess).toBe(0);
    } finally {
      await rm(lock, { force: true });
    }
  });

  it('has an event of its own for the targets that ask for it ("busy")', async () => {
    const lock = await holdLock();
    try {
      const config = await writeConfig({ webhook: { url: `${base}/hook/busy`, events: ['failure', 'busy'] }, slack: { url: `${base}/slack/busy`, events: ['busy'] } });
      const run = await runCli(['create', '--config', config, '--profile', 'app'], { env: env(), cwd: work });
      expect(run.code).toBe(4);
      const hook = JSON.parse(received.find((r) => r.url === '/hook/busy')?.body ?? '{}') as Record<string, unknown>;
      expect(hook).toMatchObject({ event: 'backup.busy', profile: 'app', exitCode: 4 });
      const slack = JSON.parse(received.find((r) => r.url === '/slack/busy')?.body ?? '{}') as { text: string };
      expect(slack.text).toMatch(/^:hourglass: backupctl: backup app skipped on .*: the profile is busy/);
    } finally {
      await rm(lock, { force: true });
    }
  });
});

