/**
 * Overlapping `create` runs, as cron makes them: the built binary, two processes at once.
 * A test session holds an ACCESS EXCLUSIVE lock on a table, so whichever run gets the
 * profile lock first is stuck in its dump until the test lets go: the overlap is certain,
 * not a matter of timing.
 */
import { execa } from 'execa';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectJsonError, makeTempDir, parseJsonStdout, readSidecar, removeDirs, sha256File } from '../helpers/backups.js';
import { assertBuilt, baseEnv, BIN, runBin, type CliOutcome } from '../helpers/cli.js';
import { connectProvided, uniqueName } from '../helpers/pg.js';

const cluster = connectProvided();
const db = uniqueName('concurrency');
const dirs: string[] = [];

beforeAll(async () => {
  assertBuilt(); // npm run build first (npm test does it)
  await cluster.createDatabase(db);
  await cluster.query(db, 'CREATE TABLE items AS SELECT g AS id, md5(g::text) AS payload FROM generate_series(1, 5000) AS g');
});

afterAll(async () => {
  await cluster.dropDatabase(db);
  await removeDirs(dirs);
});

/** Holds ACCESS EXCLUSIVE on `items` until release(): every dump of the database waits for it. */
async function blockDumps(): Promise<{ release(): Promise<void> }> {
  const client = new pg.Client({ host: cluster.host, port: cluster.port, user: cluster.user, password: cluster.password, database: db });
  client.on('error', () => undefined); // the database may be dropped (WITH FORCE) under it at teardown
  await client.connect();
  await client.query('BEGIN');
  await client.query('LOCK TABLE items IN ACCESS EXCLUSIVE MODE');
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      await client.query('COMMIT');
      await client.end();
    },
  };
}

async function storageDir(label: string): Promise<{ work: string; storage: string }> {
  const work = await makeTempDir(label);
  dirs.push(work);
  return { work, storage: path.join(work, 'storage') };
}

function create(where: { work: string; storage: string }, extra: string[] = []): Promise<CliOutcome> {
  return runBin(['create', '--json', '--storage', where.storage, ...extra], {
    env: baseEnv(cluster.env(db)) as Record<string, string>,
    cwd: where.work,
  });
}

/** Resolves with the first run to finish (and which one it was). */
function first(runs: Array<Promise<CliOutcome>>): Promise<{ index: number; outcome: CliOutcome }> {
  return Promise.race(runs.map((run, index) => run.then((outcome) => ({ index, outcome }))));
}

async function expectValidBackup(storage: string, id: string): Promise<void> {
  const { sidecar } = await readSidecar(storage, db, id); // schema-validated
  expect(await sha256File(path.join(storage, db, sidecar.artifact.file))).toBe(sidecar.artifact.sha256);
  expect(sidecar.tables.find((t) => t.name === 'items')?.rows).toBe(5000);
}

async function waitFor(condition: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > until) throw new Error('timed out waiting for a condition');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('two concurrent creates of one profile', () => {
  it('exactly one runs; the other exits 4 naming the holder; nothing is corrupted', async () => {
    const where = await storageDir('conc-busy');
    const block = await blockDumps();
    try {
      const runs = [create(where), create(where)];
      const loser = await first(runs);
      expect(loser.outcome.code, loser.outcome.stderr).toBe(4);
      expectJsonError(loser.outcome, 4); // --json: the error is a JSON document on stdout too
      expect(loser.outcome.stderr).toMatch(/error: profile ".*" is busy: locked by "create" \(pid \d+ on host .*, since .*\)/);
      expect(loser.outcome.stderr).toMatch(/hint: .*--wait/);
      await block.release();
      const winner = await runs[1 - loser.index];
      expect(winner?.code, winner?.stderr).toBe(0);
      const id = (parseJsonStdout(winner?.stdout ?? '') as { id: string }).id;
      await expectValidBackup(where.storage, id);
      const files = (await readdir(path.join(where.storage, db))).filter((f) => f !== 'runs.jsonl');
      expect(files.sort()).toEqual([`${id}.dump.zst`, `${id}.globals.sql.zst`, `${id}.json`]); // lock released, nothing else
    } finally {
      await block.release();
    }
  });

  it('with --wait 2min both succeed, one after the other', async () => {
    const where = await storageDir('conc-wait');
    const block = await blockDumps();
    let runs: Array<Promise<CliOutcome>> = [];
    try {
      runs = [create(where, ['--wait', '2min']), create(where, ['--wait', '2min'])];
      // Both are running: one holds the lock (stuck in its dump), the other polls for it.
      await waitFor(() => existsSync(path.join(where.storage, db, 'lock.json')), 30_000);
      await new Promise((resolve) => setTimeout(resolve, 1500));
    } finally {
      await block.release();
    }
    const outcomes = await Promise.all(runs);
    for (const outcome of outcomes) expect(outcome.code, outcome.stderr).toBe(0);
    const waited = outcomes.filter((o) => /is locked by "create" .*; waiting up to/.test(o.stderr));
    expect(waited).toHaveLength(1);
    const ids = outcomes.map((o) => (parseJsonStdout(o.stdout) as { id: string }).id);
    expect(new Set(ids).size).toBe(2);
    for (const id of ids) await expectValidBackup(where.storage, id);
    // One after the other: the later one started after the earlier one finished.
    const sidecars = await Promise.all(ids.map(async (id) => (await readSidecar(where.storage, db, id)).sidecar));
    sidecars.sort((a, b) => Date.parse(a.startedAt) - Date.parse(b.startedAt));
    expect(Date.parse(sidecars[1]?.startedAt as string)).toBeGreaterThanOrEqual(Date.parse(sidecars[0]?.finishedAt as string));
    expect(existsSync(path.join(where.storage, db, 'lock.json'))).toBe(false);
  });

  it("two storages, one database: the database's advisory lock makes the second exit 4", async () => {
    const [a, b] = [await storageDir('conc-adv-a'), await storageDir('conc-adv-b')];
    const block = await blockDumps();
    try {
      const runs = [create(a), create(b)];
      const loser = await first(runs);
      expect(loser.outcome.code, loser.outcome.stderr).toBe(4);
      expect(loser.outcome.stderr).toMatch(
        new RegExp(`error: database postgres@127\\.0\\.0\\.1:\\d+/${db} is busy: another backupctl holds its advisory lock \\("backupctl create host=.* pid=\\d+"`),
      );
      await block.release();
      expect((await runs[1 - loser.index])?.code).toBe(0);
      // The loser left nothing in its storage but (perhaps) its run log.
      const loserStorage = [a, b][loser.index]?.storage as string;
      const left = existsSync(path.join(loserStorage, db)) ? await readdir(path.join(loserStorage, db)) : [];
      expect(left.filter((f) => f !== 'runs.jsonl')).toEqual([]);
    } finally {
      await block.release();
    }
  });

  it('an interrupted create (SIGINT) releases its lock', async () => {
    const where = await storageDir('conc-sigint');
    const block = await blockDumps();
    try {
      const child = execa(process.execPath, [BIN, 'create', '--storage', where.storage], {
        reject: false,
        extendEnv: false,
        env: baseEnv(cluster.env(db)) as Record<string, string>,
        cwd: where.work,
        stdin: 'ignore',
      });
      const lockFile = path.join(where.storage, db, 'lock.json');
      await waitFor(() => existsSync(lockFile), 30_000);
      child.kill('SIGINT');
      const result = await child;
      expect(result.exitCode, String(result.stderr)).toBe(130);
      expect(existsSync(lockFile)).toBe(false);
    } finally {
      await block.release();
    }
    // The database's advisory lock went with the session: the next run goes through.
    const next = await create(where);
    expect(next.code, next.stderr).toBe(0);
  });
});

describe.runIf(process.platform === 'linux')('a lock left by a crashed run whose pid now belongs to another process', () => {
  let sleeper: ChildProcess | undefined;
  afterAll(() => {
    sleeper?.kill('SIGKILL');
  });

  it('status and check report it stale (pid reused), unlock removes it without --force, and create takes it over (it was exit 4 busy for as long as that process ran)', async () => {
    const where = await storageDir('conc-pid-reused');
    // An unrelated live process with the lock's pid, as after a crash and a reboot: same
    // boot id as now (the lock was written in this boot), start ticks not the holder's.
    sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    const pid = sleeper.pid as number;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    await mkdir(path.join(where.storage, db), { recursive: true, mode: 0o700 });
    const lock = { pid, host: hostname(), command: 'create', startedAt: new Date(Date.now() - 3_600_000).toISOString(), token: 'crashed', bootId, startTicks: ticks - 100 };
    await writeFile(path.join(where.storage, db, 'lock.json'), JSON.stringify(lock));

    const status = await runBin(['status', '--json', '--storage', where.storage], { env: baseEnv(cluster.env(db)) as Record<string, string>, cwd: where.work });
    const profile = (parseJsonStdout(status.stdout) as { profiles: Array<{ staleLock: unknown; problems: Array<{ message: string }> }> }).profiles[0];
    expect(profile?.staleLock, status.stderr).toEqual({ command: 'create', pid, host: hostname(), startedAt: lock.startedAt, reason: 'pid-reused' });
    expect(profile?.problems.map((p) => p.message).join('\n')).toContain(`pid reused: ${pid} is another process now`);

    const env = { env: baseEnv(cluster.env(db)) as Record<string, string>, cwd: where.work };
    const check = await runBin(['check', '--json', '--storage', where.storage], env);
    const checks = (parseJsonStdout(check.stdout) as { profiles: Array<{ checks: Array<{ check: string; ok: boolean; detail: string }> }> }).profiles[0]?.checks;
    expect(checks?.find((c) => c.check === 'lock')).toMatchObject({ ok: true, detail: expect.stringMatching(new RegExp(`^free: a stale lock of .* \\(pid reused: ${pid} is another process now\\)`)) as string });
    const unlock = await runBin(['unlock', '--storage', where.storage], env);
    expect(unlock.code, unlock.stderr).toBe(0);
    expect(unlock.stdout).toMatch(new RegExp(`Removed the lock of profile .*its process is no longer running: pid reused: ${pid} is another process now\\)`));
    await writeFile(path.join(where.storage, db, 'lock.json'), JSON.stringify(lock));

    const run = await create(where);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(new RegExp(`warning: took over the stale lock of profile "${db}": "create" \\(pid ${pid} .*\\) is no longer running \\(pid reused: ${pid} is another process now\\)`));
    await expectValidBackup(where.storage, (parseJsonStdout(run.stdout) as { id: string }).id);
    expect(existsSync(path.join(where.storage, db, 'lock.json'))).toBe(false);
    expect(sleeper.exitCode).toBeNull(); // the unrelated process was left alone
  });
});
