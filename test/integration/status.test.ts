/**
 * `backupctl status` against real backups taken by `create` on the test cluster.
 */
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, modeOf, parseJsonStdout, removeDirs } from '../helpers/backups.js';
import { baseEnv, runBin, runCli } from '../helpers/cli.js';
import { connectProvided, uniqueName } from '../helpers/pg.js';

const cluster = connectProvided();
const dirs: string[] = [];
const db = uniqueName('status');
let work: string;
let storage: string;
let env: Record<string, string | undefined>;
const ids: string[] = [];

interface StatusJson {
  healthy: boolean;
  checkedAt: string;
  problems: string[];
  profiles: Array<{
    profile: string;
    healthy: boolean;
    backups: number;
    lastBackup: { id: string; bytes: number; ageSeconds: number } | null;
    size: { ratio: number | null; previousCount: number } | null;
    lastVerification: unknown;
    failedRunsSinceSuccess: number;
    problems: Array<{ check: string; message: string }>;
  }>;
}

async function create(): Promise<string> {
  const result = await runCli(['create', '--json', '--storage', storage, '--no-globals'], { env, cwd: work });
  expect(result.code, result.stderr).toBe(0);
  return (parseJsonStdout(result.stdout) as { id: string }).id;
}

function status(args: string[], now?: Date) {
  return runCli(['status', '--storage', storage, ...args], { env: baseEnv(), cwd: work, now: now ? () => now : undefined });
}

beforeAll(async () => {
  work = await makeTempDir('status');
  dirs.push(work);
  storage = path.join(work, 'backups');
  env = baseEnv(cluster.env(db));
  await cluster.createDatabase(db);
  await cluster.query(
    db,
    `create table items (id int primary key, payload text);
     insert into items select g, md5(g::text) || md5((g * 7)::text) from generate_series(1, 20000) g;`,
  );
  ids.push(await create());
  ids.push(await create());
});

afterAll(async () => {
  await cluster.dropDatabase(db);
  await removeDirs(dirs);
});

describe('status on real backups', () => {
  it('is healthy (exit 0) right after two backups, and shows them', async () => {
    const result = await status(['--max-age', '1h', '--min-size-ratio', '0.5']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(db);
    expect(result.stdout).toMatch(/healthy: 1 profile checked/);
    expect(result.stderr).toBe('');
  });

  it('--json: one object with profiles and healthy', async () => {
    const result = await status(['--max-age', '1h', '--json']);
    expect(result.code).toBe(0);
    const json = parseJsonStdout(result.stdout) as StatusJson;
    expect(json.healthy).toBe(true);
    expect(json.profiles).toHaveLength(1);
    const [profile] = json.profiles;
    expect(profile).toMatchObject({ profile: db, healthy: true, backups: 2, failedRunsSinceSuccess: 0, problems: [] });
    expect(profile?.lastBackup?.id).toBe(ids[1]);
    expect(profile?.lastBackup?.bytes).toBeGreaterThan(0);
    expect(profile?.size?.previousCount).toBe(1);
    expect(profile?.size?.ratio).toBeGreaterThan(0.9);
    expect(profile?.lastVerification).toBeNull();
  });

  it('is stale (exit 5) when the clock is past --max-age, with the reason', async () => {
    const later = new Date(Date.now() + 2 * 3_600_000);
    const result = await status(['--max-age', '1h', '--json'], later);
    expect(result.code).toBe(5);
    const json = parseJsonStdout(result.stdout) as StatusJson;
    expect(json.healthy).toBe(false);
    expect(json.profiles[0]?.problems).toEqual([
      { check: 'age', message: expect.stringMatching(/^the newest backup \(\S+\) finished (1|2) h ago, more than --max-age 1h$/) },
    ]);
    const human = await status(['--max-age', '1h'], later);
    expect(human.code).toBe(5);
    expect(human.stdout).toContain('UNHEALTHY');
    expect(human.stdout).toContain('more than --max-age 1h');
  });

  it('an unverified profile breaks --max-verify-age', async () => {
    const result = await status(['--max-verify-age', '8d', '--json']);
    expect(result.code).toBe(5);
    const json = parseJsonStdout(result.stdout) as StatusJson;
    expect(json.profiles[0]?.problems.map((p) => p.check)).toEqual(['verification']);
  });

  it('an unknown profile is a usage error (exit 2), not a healthy nothing', async () => {
    const unknown = await status(['--profile', 'nothing_here', '--json']);
    expect(unknown.code).toBe(2);
    expect(parseJsonStdout(unknown.stdout)).toMatchObject({ error: { exitCode: 2, message: expect.stringMatching(/no profile named "nothing_here"/) } });
  });

  it('a configured profile that was never backed up breaks --max-age only', async () => {
    const config = path.join(work, 'never.json');
    await writeFile(config, JSON.stringify({ profiles: { nothing_here: { database: 'nothing_here' } } }));
    const none = await status(['--config', config, '--profile', 'nothing_here', '--json']);
    expect(none.code).toBe(0);
    const stale = await status(['--config', config, '--profile', 'nothing_here', '--max-age', '25h', '--json']);
    expect(stale.code).toBe(5);
    expect((parseJsonStdout(stale.stdout) as StatusJson).profiles[0]).toMatchObject({
      profile: 'nothing_here',
      backups: 0,
      lastBackup: null,
      problems: [{ check: 'age', message: 'no completed backup (--max-age 25h)' }],
    });
  });

  it('--prometheus writes the textfile atomically with mode 0644', async () => {
    const metricsDir = path.join(work, 'textfile');
    await import('node:fs/promises').then((fs) => fs.mkdir(metricsDir));
    const file = path.join(metricsDir, 'backupctl.prom');
    const result = await status(['--max-age', '1h', '--prometheus', file]);
    expect(result.code, result.stderr).toBe(0);
    expect(modeOf(await stat(file))).toBe(0o644);
    expect(await readdir(metricsDir)).toEqual(['backupctl.prom']);
    const text = await readFile(file, 'utf8');
    const label = `{profile="${db}"}`;
    for (const name of [
      'backupctl_last_success_timestamp_seconds',
      'backupctl_last_backup_size_bytes',
      'backupctl_last_backup_duration_seconds',
      'backupctl_last_verification_timestamp_seconds',
      'backupctl_failed_runs_since_success',
      'backupctl_backups_total',
      'backupctl_status_healthy',
    ]) {
      expect(text).toContain(`# HELP ${name} `);
      expect(text).toContain(`# TYPE ${name} gauge`);
      expect(text).toContain(`${name}${label} `);
    }
    expect(text).toContain(`backupctl_backups_total${label} 2\n`);
    expect(text).toContain(`backupctl_status_healthy${label} 1\n`);
    expect(text).toContain(`backupctl_failed_runs_since_success${label} 0\n`);
    expect(text).toContain(`backupctl_last_verification_timestamp_seconds${label} 0\n`);
    const success = Number(new RegExp(`backupctl_last_success_timestamp_seconds\\{profile="${db}"\\} (\\S+)`).exec(text)?.[1]);
    expect(Math.abs(success - Date.now() / 1000)).toBeLessThan(600);

    // An unhealthy run still writes the file (and replaces the old one), then exits 5.
    const stale = await status(['--max-age', '1h', '--prometheus', file], new Date(Date.now() + 2 * 3_600_000));
    expect(stale.code).toBe(5);
    expect(await readFile(file, 'utf8')).toContain(`backupctl_status_healthy${label} 0\n`);
    expect(modeOf(await stat(file))).toBe(0o644);
    expect(await readdir(metricsDir)).toEqual(['backupctl.prom']);
  });

  it('--prometheus into a missing directory is an error (exit 1)', async () => {
    const result = await status(['--prometheus', path.join(work, 'no', 'such', 'dir', 'x.prom')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^error: cannot write .*x\.prom: ENOENT/);
  });

  it('the built binary exits 0 and 5 as well', async () => {
    const ok = await runBin(['status', '--storage', storage, '--max-age', '1h']);
    expect(ok.code, ok.stderr).toBe(0);
    const bad = await runBin(['status', '--storage', storage, '--max-age', '1ms']);
    expect(bad.code).toBe(5);
    const usage = await runBin(['status', '--storage', storage, '--max-age', '25m']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('"min"');
  });

  it('a lock that keeps every create out (another host\'s, 13 days old; an unreadable one) is a failure until it is unlocked', async () => {
    const lockFile = path.join(storage, db, 'lock.json');
    const since = new Date(Date.now() - 13 * 24 * 3_600_000).toISOString();
    await writeFile(lockFile, `${JSON.stringify({ pid: 4242, host: 'gone-host.example', command: 'create', startedAt: since, token: 'ab12' })}\n`);
    // Busy by design: exit 4, no failure of its own.
    const busy = await runCli(['create', '--json', '--storage', storage, '--no-globals'], { env, cwd: work });
    expect(busy.code).toBe(4);
    const held = await status(['--json', '--prometheus', path.join(work, 'lock.prom')]);
    expect(held.code).toBe(5);
    const heldJson = parseJsonStdout(held.stdout) as StatusJson & { profiles: Array<{ blockingLock: unknown }> };
    expect(heldJson.profiles[0]?.blockingLock).toMatchObject({ unreadable: false, host: 'gone-host.example', pid: 4242, command: 'create', startedAt: since });
    expect(heldJson.profiles[0]?.problems).toEqual([{ check: 'failures', message: expect.stringContaining(`backupctl unlock --profile ${db}`) }]);
    expect(await readFile(path.join(work, 'lock.prom'), 'utf8')).toContain(`backupctl_blocking_lock{profile="${db}"} 1\n`);
    // A lock taken an hour ago may belong to a run still working: not reported.
    await writeFile(lockFile, `${JSON.stringify({ pid: 4242, host: 'gone-host.example', command: 'create', startedAt: new Date(Date.now() - 3_600_000).toISOString(), token: 'ab12' })}\n`);
    expect((await status([])).code).toBe(0);

    await writeFile(lockFile, 'not a lock');
    const unreadable = await status(['--json']);
    expect(unreadable.code).toBe(5);
    expect((parseJsonStdout(unreadable.stdout) as { profiles: Array<{ blockingLock: unknown }> }).profiles[0]?.blockingLock).toEqual({ unreadable: true });

    const unlock = await runCli(['unlock', '--storage', storage, '--profile', db], { env: baseEnv(), cwd: work });
    expect(unlock.code, unlock.stderr).toBe(0);
    expect((await status([])).code).toBe(0);
  });

  it('a profile whose only create was killed (a lock of a dead process and partial files, no sidecar, no run log) is found and fails, without --profile', async () => {
    const killedStorage = path.join(work, 'killed-only');
    const folder = path.join(killedStorage, 'newapp');
    await mkdir(folder, { recursive: true });
    const dead = execa(process.execPath, ['-e', '0']);
    await dead;
    const id = '20261203T101402Z-3657b8';
    await writeFile(path.join(folder, 'lock.json'), `${JSON.stringify({ pid: dead.pid, host: hostname(), command: 'create', startedAt: new Date().toISOString(), token: 'cd34' })}\n`);
    await writeFile(path.join(folder, `.tmp-0d608b57dcc8-${id}.dump.zst`), Buffer.alloc(4096));
    await writeFile(path.join(folder, `${id}.globals.sql.zst`), Buffer.alloc(64));
    const result = await runCli(['status', '--storage', killedStorage, '--json'], { env: baseEnv(), cwd: work });
    expect(result.code, result.stdout).toBe(5);
    const json = parseJsonStdout(result.stdout) as StatusJson & { profiles: Array<{ staleLock: unknown }> };
    expect(json.profiles.map((p) => p.profile)).toEqual(['newapp']);
    expect(json.profiles[0]?.staleLock).toMatchObject({ command: 'create', pid: dead.pid });
  });

  it('a much smaller backup breaks --min-size-ratio (shrunken)', async () => {
    await cluster.query(db, 'truncate items');
    ids.push(await create());
    const result = await status(['--min-size-ratio', '0.5', '--json']);
    expect(result.code).toBe(5);
    const json = parseJsonStdout(result.stdout) as StatusJson;
    const [profile] = json.profiles;
    expect(profile?.lastBackup?.id).toBe(ids[2]);
    expect(profile?.size?.ratio).toBeLessThan(0.5);
    expect(profile?.problems.map((p) => p.check)).toEqual(['size']);
    expect(profile?.problems[0]?.message).toContain('less than --min-size-ratio 0.5');
    // Without the threshold the same storage is healthy.
    expect((await status([])).code).toBe(0);
  });
});

describe('status tells the truth about verifications and artifacts', () => {
  const verify = (args: string[]) => runCli(['verify', '--storage', storage, ...args], { env, cwd: work });
  const artifact = (id: string) => path.join(storage, db, `${id}.dump.zst`);

  it('a failed verification stays visible until that backup passes again, whatever other backups do', async () => {
    const [older, newer] = [ids[0] as string, ids[1] as string];
    const original = await readFile(artifact(older));
    const flipped = Buffer.from(original);
    const middle = Math.floor(flipped.length / 2);
    flipped[middle] = (flipped[middle] ?? 0) ^ 0xff;
    await writeFile(artifact(older), flipped);
    expect((await verify([older, '--level', 'checksum'])).code).toBe(3);
    // Another backup passes later: the failure must not disappear (verify --all walks newest first).
    expect((await verify([newer, '--level', 'checksum'])).code).toBe(0);
    expect((await verify(['--all', '--level', 'checksum'])).code).toBe(3);
    const broken = await status(['--json']);
    expect(broken.code).toBe(5);
    const profile = (parseJsonStdout(broken.stdout) as StatusJson & { profiles: Array<{ failedVerifications: Array<{ backupId: string }> }> }).profiles[0];
    expect(profile?.failedVerifications.map((v) => v.backupId)).toEqual([older]);
    expect(profile?.problems).toEqual([{ check: 'verification', message: expect.stringContaining(`the latest verification of ${older}`) }]);

    // Repaired and verified again: healthy.
    await writeFile(artifact(older), original);
    expect((await verify([older, '--level', 'checksum'])).code).toBe(0);
    expect((await status([])).code).toBe(0);
  });

  it('verify runs, passing and failing, are in the run log', async () => {
    const log = (await readFile(path.join(storage, db, 'runs.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { command: string; result: string; exitCode: number });
    const verifies = log.filter((entry) => entry.command === 'verify');
    expect(verifies.map((entry) => [entry.result, entry.exitCode])).toEqual([
      ['failed', 3],
      ['succeeded', 0],
      ['failed', 3],
      ['succeeded', 0],
    ]);
  });

  it('a backup whose artifact is missing is flagged by list, show and status', async () => {
    const gone = ids[1] as string;
    const saved = await readFile(artifact(gone));
    await rm(artifact(gone));
    try {
      const list = await runCli(['list', '--storage', storage, '--json'], { env, cwd: work });
      const listed = (parseJsonStdout(list.stdout) as Array<{ id: string; problems: string[] }>).find((b) => b.id === gone);
      expect(listed?.problems).toEqual([`artifact ${gone}.dump.zst is missing`]);
      const human = await runCli(['list', '--storage', storage], { env, cwd: work });
      expect(human.stdout).toContain('DAMAGED');
      const show = await runCli(['show', gone, '--storage', storage], { env, cwd: work });
      expect(show.stdout).toMatch(/DAMAGED: this backup cannot be restored as it is/);
      const checked = await status(['--json']);
      expect(checked.code).toBe(5);
      const problems = (parseJsonStdout(checked.stdout) as StatusJson).profiles[0]?.problems ?? [];
      expect(problems).toContainEqual({ check: 'artifacts', message: expect.stringContaining(`backup ${gone} cannot be restored as it is`) });
    } finally {
      await writeFile(artifact(gone), saved, { mode: 0o600 });
    }
  });

  it('a sidecar that cannot be read makes status unhealthy, counts as damaged, and fails verify --all (exit 3); nothing is written over it', async () => {
    const broken = ids[0] as string;
    const file = path.join(storage, db, `${broken}.json`);
    const saved = await readFile(file);
    await writeFile(file, '{not json');
    try {
      const checked = await status(['--json']);
      expect(checked.code).toBe(5);
      const profile = (parseJsonStdout(checked.stdout) as StatusJson & { profiles: Array<{ damaged: Array<{ backupId: string }> }> }).profiles[0];
      expect(profile?.damaged.map((d) => d.backupId)).toContain(broken);
      expect(profile?.problems).toContainEqual({ check: 'artifacts', message: expect.stringContaining(`backup ${broken} cannot be restored through backupctl: its sidecar cannot be read`) });
      const all = await verify(['--all', '--level', 'checksum']);
      expect(all.code, all.stdout + all.stderr).toBe(3);
      expect(all.stdout).toContain(broken);
      expect(await readFile(file, 'utf8')).toBe('{not json');
    } finally {
      await writeFile(file, saved, { mode: 0o600 });
    }
    expect((await status([])).code).toBe(0);
  });
});
