/**
 * Fault injection: the server goes away, and storage changes under a running verify.
 * - PostgreSQL stopped mid-verify: exit 1 (the verify server failed), and the good backup
 *   gets no "failed" verdict in its sidecar, so status stays healthy.
 * - prune removing backups while `verify --all` walks them: those are skipped, not failed.
 * - prune never trusts a sidecar blindly: a newer sidecar whose artifact is missing, empty
 *   or cut short is not a good backup and never the reason the only real one is removed.
 * - restore --clean into the database named `postgres`: the swap and the printed rollback
 *   run from template1 (a session inside a database cannot rename it).
 * A cluster of this file's own, so stopping it (or replacing its postgres) disturbs no other test.
 */
import { execa } from 'execa';
import { readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, parseJsonStdout, readSidecar, removeDirs , artifactPath } from '../helpers/backups.js';
import { BIN, baseEnv } from '../helpers/cli.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { leftovers, removeTempDirs, sh, wrapperBinDir, writeConfig } from '../helpers/failure-kit.js';
import { loadChinook } from '../helpers/fixtures.js';

let cluster: Cluster;
const db = 'server_chinook';
const dirs: string[] = [];
let work: string;

async function bin(args: string[], storage: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const result = await execa(process.execPath, [BIN, ...args, '--storage', storage], {
    env: baseEnv({ ...cluster.env(db), HOME: work }) as Record<string, string>,
    extendEnv: false,
    cwd: work,
    stdin: 'ignore',
    reject: false,
  });
  return { code: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

async function create(storage: string): Promise<string> {
  const run = await bin(['create', '--json', '--no-globals'], storage);
  expect(run.code, run.stderr).toBe(0);
  return (parseJsonStdout(run.stdout) as { id: string }).id;
}

beforeAll(async () => {
  work = await makeTempDir('faults-server');
  dirs.push(work);
  cluster = await startCluster({ name: 'faults' });
  await loadChinook(cluster, db);
});

afterAll(async () => {
  await cluster?.stop();
  await removeDirs(dirs);
  await removeTempDirs(); // the wrapper bin directories
});

describe('a good backup is never reported corrupt because of its surroundings', () => {
  it('PostgreSQL stopped mid-verify: exit 1, no failed verdict recorded, status stays healthy', async () => {
    const storage = path.join(work, 'stop');
    const id = await create(storage);
    // pg_restore signals that it started, then waits for the server to be gone before it runs.
    const started = path.join(work, 'pg_restore-started');
    const slow = await wrapperBinDir(cluster, {
      pg_restore: `#!/bin/sh\ncase "$1" in --version|--list) exec ${sh(cluster.bin('pg_restore'))} "$@";; esac\n: > ${sh(started)}\nwhile [ -e ${sh(started)} ]; do sleep 0.1; done\nexec ${sh(cluster.bin('pg_restore'))} "$@"\n`,
    });
    const configDir = await makeTempDir('faults-cfg');
    dirs.push(configDir);
    const config = await writeConfig(configDir, { pgBinDir: slow });
    const run = execa(process.execPath, [BIN, 'verify', id, '--config', config, '--storage', storage, '--json'], {
      env: baseEnv({ ...cluster.env(db), HOME: work }) as Record<string, string>,
      extendEnv: false,
      cwd: work,
      stdin: 'ignore',
      reject: false,
    });
    for (let i = 0; i < 300; i++) {
      if (await readFile(started).then(() => true, () => false)) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await cluster.stop();
    await rm(started, { force: true });
    const result = await run;
    expect(result.exitCode, String(result.stderr)).toBe(1);
    const outcome = (JSON.parse(String(result.stdout)) as { outcomes: Array<{ result: string; error: string }> }).outcomes[0];
    expect(outcome?.result).toBe('error');
    expect(outcome?.error).toMatch(/the verify server failed during the restore/);
    const { sidecar } = await readSidecar(storage, db, id);
    expect(sidecar.verifications).toEqual([]);
    // Back up again: status knows of no failed verification.
    cluster = await startCluster({ name: 'faults2' });
    await loadChinook(cluster, db);
    const status = await bin(['status', '--json'], storage);
    const profile = (JSON.parse(status.stdout) as { profiles: Array<{ failedVerifications: unknown[] }> }).profiles[0];
    expect(profile?.failedVerifications).toEqual([]);
  });
});

describe('storage that changes under a running command', () => {
  it('backups pruned while verify --all walks them are skipped, not failed', async () => {
    const storage = path.join(work, 'pruned');
    const ids = [await create(storage), await create(storage), await create(storage)];
    // Each archive read (--level archive) takes a second: prune has time to act.
    const slow = await wrapperBinDir(cluster, {
      pg_restore: `#!/bin/sh\ncase "$1" in --version|--list) exec ${sh(cluster.bin('pg_restore'))} "$@";; esac\nsleep 1\nexec ${sh(cluster.bin('pg_restore'))} "$@"\n`,
    });
    const configDir = await makeTempDir('faults-cfg2');
    dirs.push(configDir);
    const config = await writeConfig(configDir, { pgBinDir: slow });
    const verify = execa(process.execPath, [BIN, 'verify', '--all', '--level', 'archive', '--config', config, '--storage', storage, '--json'], {
      env: baseEnv({ ...cluster.env(db), HOME: work }) as Record<string, string>,
      extendEnv: false,
      cwd: work,
      stdin: 'ignore',
      reject: false,
    });
    // Prune once verify is at work on the newest backup (it has read every sidecar by then).
    await new Promise<void>((resolve) => {
      let seen = '';
      verify.stderr?.on('data', (chunk: Buffer) => {
        seen += chunk.toString('utf8');
        if (seen.includes(`verifying ${db}/${ids[2] as string}`)) resolve();
      });
    });
    const pruned = await bin(['prune', '--keep-last', '1'], storage);
    expect(pruned.code, pruned.stderr).toBe(0);
    const result = await verify;
    expect(result.exitCode, String(result.stderr)).toBe(0);
    const outcomes = (JSON.parse(String(result.stdout)) as { outcomes: Array<{ id: string; result: string }> }).outcomes;
    expect(outcomes.find((o) => o.id === ids[2])?.result).toBe('passed');
    for (const id of ids.slice(0, 2)) expect(['passed', 'skipped']).toContain(outcomes.find((o) => o.id === id)?.result);
    expect(outcomes.some((o) => o.result === 'skipped')).toBe(true);
  });

  it('a backup deleted while verify <id> checks it is skipped, not passed, and nothing is written back', async () => {
    const storage = path.join(work, 'deleted');
    await create(storage);
    const victim = await create(storage);
    const slow = await wrapperBinDir(cluster, {
      pg_restore: `#!/bin/sh\ncase "$1" in --version|--list) exec ${sh(cluster.bin('pg_restore'))} "$@";; esac\nsleep 2\nexec ${sh(cluster.bin('pg_restore'))} "$@"\n`,
    });
    const configDir = await makeTempDir('faults-cfg3');
    dirs.push(configDir);
    const config = await writeConfig(configDir, { pgBinDir: slow });
    const verify = execa(process.execPath, [BIN, 'verify', victim, '--level', 'archive', '--config', config, '--storage', storage, '--json'], {
      env: baseEnv({ ...cluster.env(db), HOME: work }) as Record<string, string>,
      extendEnv: false,
      cwd: work,
      stdin: 'ignore',
      reject: false,
    });
    await new Promise<void>((resolve) => {
      let seen = '';
      verify.stderr?.on('data', (chunk: Buffer) => {
        seen += chunk.toString('utf8');
        if (seen.includes(`verifying ${db}/${victim}`)) resolve();
      });
    });
    const deleted = await bin(['delete', victim, '--force'], storage);
    expect(deleted.code, deleted.stderr).toBe(0);
    const result = await verify;
    expect(result.exitCode, String(result.stderr)).toBe(0);
    const { passed, outcomes } = JSON.parse(String(result.stdout)) as { passed: boolean; outcomes: Array<{ id: string; result: string; error?: string }> };
    expect(passed, 'passed says what exit 0 says').toBe(true);
    expect(outcomes).toEqual([expect.objectContaining({ id: victim, result: 'skipped', error: 'removed (pruned or deleted) while it was being verified' })]);
    expect(String(result.stderr)).not.toMatch(/could not record/);
    expect(await readdir(path.join(storage, db)).then((names) => names.filter((name) => name.startsWith(victim)))).toEqual([]);
  });

  it.each(['missing', 'empty', 'truncated'] as const)('prune --keep-last 1 keeps the only real backup when the newer one is %s', async (damage) => {
    const storage = path.join(work, `trust-${damage}`);
    const real = await create(storage);
    const fake = await create(storage);
    const artifact = await artifactPath(storage, db, fake);
    if (damage === 'missing') await rm(artifact);
    if (damage === 'empty') await writeFile(artifact, '');
    if (damage === 'truncated') await truncate(artifact, 1000);
    const run = await bin(['prune', '--keep-last', '1', '--json'], storage);
    expect(run.code, run.stderr).toBe(0);
    const items = parseJsonStdout(run.stdout) as Array<{ id: string; action: string; reasons: string[] }>;
    expect(items.find((i) => i.id === real)).toMatchObject({ action: 'keep' });
    expect(items.find((i) => i.id === fake)).toMatchObject({ action: 'keep', reasons: ['damaged'] });
    expect(await readFile(await artifactPath(storage, db, real)).then(() => true)).toBe(true);
    expect(run.stderr).toMatch(new RegExp(`backup ${db}/${fake} is damaged`));
  });
});

/** The server's processes (postmaster and its children): SIGSTOP freezes it as a hung host would. */
async function serverProcesses(): Promise<number[]> {
  const postmaster = Number((await readFile(path.join(cluster.dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  const children = await execa('pgrep', ['-P', String(postmaster)], { reject: false });
  return [postmaster, ...String(children.stdout).split('\n').filter(Boolean).map(Number)];
}

/**
 * Runs `args` with `program` wrapped so that it announces itself and waits (the calls that
 * `waitsFor` matches, a case pattern of its arguments; the others run as they are), freezes
 * the server (SIGSTOP of all its processes) once it does, lets the program go on into the
 * frozen server, sends SIGTERM half a second later, and thaws the server when the run has
 * ended. Returns the run's result and how long after SIGTERM it ended.
 */
async function interruptOnFrozenServer(program: 'pg_dump' | 'pg_restore', waitsFor: string, args: string[], storage: string) {
  const started = path.join(work, `${program}-frozen-${Date.now()}`);
  const real = sh(cluster.bin(program));
  const waiting = await wrapperBinDir(cluster, {
    [program]: `#!/bin/sh\ncase " $* " in ${waitsFor}) ;; *) exec ${real} "$@";; esac\n: > ${sh(started)}\nwhile [ -e ${sh(started)} ]; do sleep 0.05; done\nexec ${real} "$@"\n`,
  });
  const configDir = await makeTempDir('faults-cfg-frozen');
  dirs.push(configDir);
  const config = await writeConfig(configDir, { pgBinDir: waiting });
  const run = execa(process.execPath, [BIN, ...args, '--config', config, '--storage', storage], {
    env: baseEnv({ ...cluster.env(db), HOME: work }) as Record<string, string>,
    extendEnv: false,
    cwd: work,
    stdin: 'ignore',
    reject: false,
  });
  for (let i = 0; i < 600; i++) {
    if (await readFile(started).then(() => true, () => false)) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const frozen = await serverProcesses();
  for (const pid of frozen) process.kill(pid, 'SIGSTOP');
  try {
    await rm(started, { force: true });
    await new Promise((resolve) => setTimeout(resolve, 500)); // the program is connecting to the frozen server
    const sentAt = Date.now();
    run.kill('SIGTERM');
    const result = await run;
    return { result, stderr: String(result.stderr), elapsed: Date.now() - sentAt };
  } finally {
    for (const pid of frozen) process.kill(pid, 'SIGCONT');
  }
}

describe('a server that stops answering', () => {
  it('create interrupted while the server is frozen: exit 130 within the grace, its lock and partial files removed', async () => {
    const storage = path.join(work, 'frozen');
    // The dump (--snapshot=...: the snapshot and the locks are taken by then) waits for the server to be frozen before it connects.
    const { result, stderr, elapsed } = await interruptOnFrozenServer('pg_dump', '*" --snapshot="*', ['create', '--no-globals'], storage);
    expect(result.exitCode, stderr).toBe(130);
    // Stopped by its own clean-up, not by the grace period's last resort...
    expect(stderr).not.toMatch(/stopping took longer/);
    expect(elapsed).toBeLessThan(3_000);
    // ...so nothing is left: no lock for the next run to take over, no partial file.
    expect(await leftovers(storage)).toEqual([]);
    // The server, thawed, serves the next backup.
    await create(storage);
  });

  it('restore interrupted while the server is frozen: exit 130 within the grace; the staging database it had to leave is dropped by the next verify', async () => {
    const storage = path.join(work, 'frozen-restore');
    const id = await create(storage);
    // Only the restore into the staging database (--dbname=...) waits: the reads of the archive before it run as they are.
    const { result, stderr, elapsed } = await interruptOnFrozenServer('pg_restore', '*" --dbname="*', ['restore', id, '--target-db', 'frozen_target', '--create', '--yes'], storage);
    expect(result.exitCode, stderr).toBe(130);
    expect(stderr).not.toMatch(/stopping took longer/);
    expect(elapsed).toBeLessThan(3_000);
    const staging = /left the staging database (\S+): the server did not answer in time/.exec(stderr)?.[1];
    expect(staging, stderr).toBeDefined();
    const exists = async () => (await cluster.query<{ n: string }>('postgres', 'SELECT count(*) AS n FROM pg_database WHERE datname = $1', [staging])).at(0)?.n;
    expect(await exists()).toBe('1');
    // The run is gone: the next verify on this host drops what it left.
    const verified = await bin(['verify', id, '--level', 'restore', '--verbose'], storage);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stderr).toContain(`dropped leftover staging database ${staging as string}`);
    expect(await exists()).toBe('0');
  });
});

describe('restore --clean into the database named postgres', () => {
  it('swaps from template1, and the printed rollback (also from template1) brings the old one back', async () => {
    const storage = path.join(work, 'into-postgres');
    const id = await create(storage);
    await cluster.query('postgres', 'CREATE TABLE marker (x int)');
    const run = await bin(['restore', id, '--target-db', 'postgres', '--clean', '--yes', '--json'], storage);
    expect(run.code, run.stderr).toBe(0);
    const result = parseJsonStdout(run.stdout) as { rollback: string; oldKeptAs: string };
    expect(await cluster.query('postgres', "SELECT to_regclass('public.artist') IS NOT NULL AS restored, to_regclass('public.marker') IS NULL AS replaced")).toEqual([
      { restored: true, replaced: true },
    ]);
    expect(result.rollback).toMatch(/ -d template1 /);
    await execa('sh', ['-c', result.rollback], { env: { ...process.env, ...cluster.env('template1') } });
    expect(await cluster.query('postgres', "SELECT to_regclass('public.marker') IS NOT NULL AS back")).toEqual([{ back: true }]);
  });
});
