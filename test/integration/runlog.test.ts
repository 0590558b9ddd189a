/**
 * The run log (`<storage>/<profile>/runs.jsonl`): failed runs are recorded, `list --failed`
 * shows them, `status` counts them; writing it can never fail a backup.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendRun, RUNLOG_LOCK_FILE, type RunEntry } from '../../src/catalog/runlog.js';
import { readRunLog, RunEntrySchema } from '../../src/catalog/runlog-schema.js';
import { LocalStorage } from '../../src/storage/local.js';
import { makeTempDir, parseJsonStdout, removeDirs } from '../helpers/backups.js';
import { baseEnv, runCli } from '../helpers/cli.js';
import { connectProvided, uniqueName } from '../helpers/pg.js';
import { currentBootId, sleeper, startTicksOf } from '../helpers/process.js';
import { writtenByDeadProcess } from '../../src/platform/process.js';

const cluster = connectProvided();
const dirs: string[] = [];
const db = uniqueName('runlog');
const missing = `${db}_missing`;
let work: string;
let storage: string;

function env(): Record<string, string | undefined> {
  return baseEnv({ PGPASSWORD: cluster.password });
}

function url(database: string): string {
  return `postgres://${cluster.user}@${cluster.host}:${cluster.port}/${database}`;
}

function create(profile: string, database: string, extra: string[] = []) {
  return runCli(['create', '--storage', storage, '--profile', profile, '--db-url', url(database), '--no-globals', ...extra], { env: env(), cwd: work });
}

async function runLines(profile: string): Promise<RunEntry[]> {
  const text = await readFile(path.join(storage, profile, 'runs.jsonl'), 'utf8');
  return text.trim().split('\n').map((line) => RunEntrySchema.parse(JSON.parse(line)));
}

beforeAll(async () => {
  work = await makeTempDir('runlog');
  dirs.push(work);
  storage = path.join(work, 'backups');
  await cluster.createDatabase(db);
  await cluster.query(db, 'create table t (id int primary key); insert into t select generate_series(1, 10);');
});

afterAll(async () => {
  await cluster.dropDatabase(db);
  await removeDirs(dirs);
});

describe('the run log', () => {
  it('records a failed create with its exit code and error', async () => {
    const failed = await create('shop', missing);
    expect(failed.code).not.toBe(0);
    const [entry, ...rest] = await runLines('shop');
    expect(rest).toEqual([]);
    expect(entry).toMatchObject({ command: 'create', profile: 'shop', result: 'failed', exitCode: failed.code });
    expect(entry?.error).toContain(missing);
    expect(entry?.error).not.toContain(cluster.password);
    expect(entry?.id).toBeUndefined();
    expect(Date.parse(entry?.finishedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(entry?.startedAt ?? ''));
  });

  it('list --failed shows it (table and --json)', async () => {
    const human = await runCli(['list', '--failed', '--storage', storage], { env: baseEnv(), cwd: work });
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^FINISHED\s+PROFILE\s+COMMAND\s+RESULT\s+EXIT\s+DURATION\s+ERROR$/m);
    expect(human.stdout).toMatch(/shop\s+create\s+failed\s+\d+/);
    expect(human.stdout).toContain(missing);

    const json = await runCli(['list', '--failed', '--json', '--storage', storage, '--profile', 'shop'], { env: baseEnv(), cwd: work });
    expect(json.code).toBe(0);
    const runs = parseJsonStdout(json.stdout) as RunEntry[];
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ command: 'create', profile: 'shop', result: 'failed' });

    const usage = await runCli(['list', '--failed', '--tag', 'x', '--storage', storage], { env: baseEnv(), cwd: work });
    expect(usage.code).toBe(2);
  });

  it('status counts failed runs since the last success (exit 5; --allow-failures: 0)', async () => {
    const result = await runCli(['status', '--storage', storage, '--profile', 'shop', '--json'], { env: baseEnv(), cwd: work });
    expect(result.code).toBe(5);
    const json = parseJsonStdout(result.stdout) as { healthy: boolean; profiles: Array<{ failedRunsSinceSuccess: number; problems: Array<{ check: string; message: string }> }> };
    expect(json.healthy).toBe(false);
    expect(json.profiles[0]?.failedRunsSinceSuccess).toBe(1);
    expect(json.profiles[0]?.problems).toEqual([{ check: 'failures', message: expect.stringContaining(missing) }]);

    const allowed = await runCli(['status', '--storage', storage, '--profile', 'shop', '--allow-failures'], { env: baseEnv(), cwd: work });
    expect(allowed.code).toBe(0);

    // A second failure: two of them now, in the status and in the metrics.
    expect((await create('shop', missing)).code).not.toBe(0);
    const prom = path.join(work, 'shop.prom');
    const again = await runCli(['status', '--storage', storage, '--prometheus', prom], { env: baseEnv(), cwd: work });
    expect(again.code).toBe(5);
    expect(again.stdout).toMatch(/shop: 2 failed runs since the last success/);
    expect(await readFile(prom, 'utf8')).toContain('backupctl_failed_runs_since_success{profile="shop"} 2\n');
  });

  it('a successful backup records a run with its id and clears the failures from status', async () => {
    const ok = await create('shop', db, ['--json']);
    expect(ok.code, ok.stderr).toBe(0);
    const { id } = parseJsonStdout(ok.stdout) as { id: string };
    const lines = await runLines('shop');
    expect(lines.map((l) => l.result)).toEqual(['failed', 'failed', 'succeeded']);
    expect(lines[2]).toMatchObject({ id, exitCode: 0 });
    expect(lines[2]).not.toHaveProperty('error');
    // Who ran it: status asks whether that process still runs (runIsRunning), on Linux by its boot id and start ticks too.
    expect(lines[2]).toMatchObject({ host: hostname(), pid: process.pid, ...(process.platform === 'linux' ? { bootId: currentBootId(), startTicks: startTicksOf('self') } : {}) });

    const status = await runCli(['status', '--storage', storage, '--profile', 'shop', '--max-age', '1h'], { env: baseEnv(), cwd: work });
    expect(status.code, status.stdout).toBe(0);
    // The failures stay in the log.
    const failed = await runCli(['list', '--failed', '--json', '--storage', storage], { env: baseEnv(), cwd: work });
    expect(parseJsonStdout(failed.stdout)).toHaveLength(2);
    // The run log is not a backup.
    const list = await runCli(['list', '--json', '--storage', storage], { env: baseEnv(), cwd: work });
    expect((parseJsonStdout(list.stdout) as Array<{ id: string }>).map((b) => b.id)).toEqual([id]);
  });

  it('a run log that cannot be written is a warning, never a failed backup', async () => {
    await mkdir(path.join(storage, 'blocked', 'runs.jsonl'), { recursive: true }); // a directory where the file goes
    const result = await create('blocked', db, ['--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(parseJsonStdout(result.stdout)).toHaveProperty('id');
    expect(result.stderr).toMatch(/warning: could not record the run in the run log of blocked: /);
  });
});

describe('appendRun', () => {
  const entry = (n: number): RunEntry => ({
    command: 'create',
    profile: 'p',
    startedAt: new Date(Date.UTC(2026, 0, 1, 0, n)).toISOString(),
    finishedAt: new Date(Date.UTC(2026, 0, 1, 0, n, 30)).toISOString(),
    result: n % 2 === 0 ? 'succeeded' : 'failed',
    exitCode: n % 2 === 0 ? 0 : 1,
    ...(n % 2 === 0 ? {} : { error: `failure ${n}` }),
  });

  it('keeps the last entries, skips unreadable lines, survives concurrent writers', async () => {
    const dir = await makeTempDir('runlog-unit');
    dirs.push(dir);
    const store = new LocalStorage(dir);
    for (let n = 0; n < 8; n++) await appendRun(store, entry(n), { maxEntries: 5 });
    let log = await readRunLog(store, 'p');
    expect(log.entries.map((e) => e.error ?? 'ok')).toEqual(['failure 3', 'ok', 'failure 5', 'ok', 'failure 7']);

    // A corrupt line (cut off, hand-edited) is skipped and dropped on the next write.
    const file = path.join(dir, 'p', 'runs.jsonl');
    await writeFile(file, `${await readFile(file, 'utf8')}{"command":"create","prof\nnot json\n`);
    log = await readRunLog(store, 'p');
    expect(log.skipped).toBe(2);
    expect(log.entries).toHaveLength(5);
    await appendRun(store, entry(8), { maxEntries: 5 });
    expect((await readRunLog(store, 'p')).skipped).toBe(0);

    // Writers racing on one profile: every entry ends up in the log.
    await Promise.all([9, 10, 11, 12].map((n) => appendRun(store, entry(n))));
    const after = (await readRunLog(store, 'p')).entries.map((e) => e.startedAt);
    for (const n of [9, 10, 11, 12]) expect(after).toContain(entry(n).startedAt);
  });

  it('its short lock names the writer as the profile lock does: pid and host, and on Linux boot id and start ticks (a claim whose pid was reused is abandoned)', async () => {
    const dir = await makeTempDir('runlog-claim');
    dirs.push(dir);
    const claims: Buffer[] = [];
    const store = new (class extends LocalStorage {
      override async putIfAbsent(key: string, data: Buffer): Promise<boolean> {
        if (key.endsWith(`/${RUNLOG_LOCK_FILE}`)) claims.push(data);
        return super.putIfAbsent(key, data);
      }
    })(dir);
    await appendRun(store, entry(1));
    expect(claims).toHaveLength(1);
    expect(JSON.parse((claims[0] as Buffer).toString('utf8'))).toMatchObject({
      pid: process.pid,
      host: hostname(),
      ...(process.platform === 'linux' ? { bootId: currentBootId(), startTicks: startTicksOf('self') } : {}),
    });
    if (process.platform !== 'linux') return;
    // Such a claim, left by a killed writer whose pid now belongs to a live unrelated process, is abandoned.
    const { child, pid, ticks } = sleeper();
    try {
      const left = (startTicks: number) => Buffer.from(JSON.stringify({ ...JSON.parse((claims[0] as Buffer).toString('utf8')), pid, startTicks }));
      expect(writtenByDeadProcess(left(ticks + 1))).toBe(true);
      expect(writtenByDeadProcess(left(ticks))).toBe(false);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
