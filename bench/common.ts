/**
 * Helpers the benchmarks (run.ts: create, verify.ts: verify, stages.ts: the stages
 * end to end) share: environment knobs, per-process CPU bookkeeping, the postmaster's
 * pid, a frozen copy of the build under test, waiting for the other benches, stopping a
 * cluster from an exit hook.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Cluster } from '../test/helpers/cluster.js';
import { activeChild, childrenOf, type ProcSummary, type RunResult } from './measure.js';
import { argvOf } from './timeline.js';

/** One line on stdout (what every bench prints). */
export const log = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};
export const MB = 1024 * 1024;
export const mb = (bytes: number): number => bytes / MB;
/** A number with `digits` decimals, or '-' for none. */
export const fmt = (digits: number) => (n: number | null | undefined): string => (n === null || n === undefined || Number.isNaN(n) ? '-' : n.toFixed(digits));
export const f1 = fmt(1);
export const f2 = fmt(2);
export const f3 = fmt(3);


export function envInt(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

export function cpuMap(list: ProcSummary[]): Record<string, number> {
  return Object.fromEntries(list.filter((p) => p.cpuS > 0).map((p) => [p.comm, Number(p.cpuS.toFixed(2))]));
}

export function foreign(busy: number, r: RunResult): number {
  const own = [...r.tree, ...r.server].reduce((sum, p) => sum + p.cpuS, 0);
  return Math.max(0, busy - own);
}

export function postmasterPid(c: Cluster): number | undefined {
  try {
    return Number(readFileSync(path.join(c.dataDir, 'postmaster.pid'), 'latin1').split('\n')[0]);
  } catch {
    return undefined;
  }
}

export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

/**
 * The CPU part every run record shares: per-process CPU of our command and of the
 * server, the machine's busy CPU-seconds and how much of it was other people's. The
 * quiet-window fields start at 0 and are filled in by the caller that waited.
 */
export function cpuFields(r: RunResult, busy: number) {
  return {
    clientCpu: cpuMap(r.tree),
    serverCpu: cpuMap(r.server),
    machineBusyS: busy,
    foreignCpuS: foreign(busy, r),
    preBusyCores: 0,
    quietWaitS: 0,
  };
}

/**
 * With CONFIG_SCHED_AUTOGROUP (the default on most distributions), CPU is shared between
 * sessions first and nice only ranks processes within a session: the autogroup's own nice
 * is what competes with other people's sessions. Sets it for the session of `pid`.
 */
export function setAutogroupNice(pid: number | 'self', nice: number, log: (message: string) => void): void {
  const file = `/proc/${pid}/autogroup`;
  if (!existsSync(file)) return;
  try {
    writeFileSync(file, String(nice));
  } catch (error) {
    log(`warning: cannot set ${file} to nice ${nice}: ${(error as Error).message}`);
  }
}

/**
 * Renices the server: the postmaster (and its session's autogroup: pg_ctl starts it in a
 * session of its own) and its current children; backends forked later inherit it.
 */
export function reniceServer(c: Cluster, nice: number, log: (message: string) => void): void {
  const pm = postmasterPid(c);
  if (!pm || !nice) return;
  setAutogroupNice(pm, nice, log);
  for (const pid of [pm, ...childrenOf(pm)]) {
    try {
      os.setPriority(pid, nice);
    } catch (error) {
      log(`warning: cannot renice ${pid} to ${nice}: ${(error as Error).message}`);
    }
  }
}

/**
 * Runs `cleanup` (synchronous: temp dirs, the cluster) on exit and on SIGINT/SIGTERM/SIGHUP,
 * which then exit 130. The cluster helper's own hooks stop a server started by startCluster.
 */
export function cleanUpOnExit(cleanup: () => void, log: (message: string) => void): void {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      log(`\n${signal}: stopping, cleaning up`);
      cleanup();
      process.exit(130);
    });
  }
  process.on('exit', cleanup);
}

/** The environment of a measured command: PATH and HOME only (plus NO_COLOR), the connection added by the caller. */
export function baseEnv(): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', NO_COLOR: '1' };
}

/**
 * Other people rebuild dist/ in the tree while a bench runs (npm test's pretest does):
 * copies bin/ + dist/ + package.json (node_modules linked) from `root` into `dir`/build
 * once, so that every run measures the same build. Returns the copy's bin/backupctl.js
 * and a short sha256 of its dist/*.js, for the record.
 */
export function snapshotBuild(root: string, dir: string): { bin: string; distHash: string } {
  const copy = path.join(dir, 'build');
  cpSync(path.join(root, 'bin'), path.join(copy, 'bin'), { recursive: true });
  cpSync(path.join(root, 'dist'), path.join(copy, 'dist'), { recursive: true });
  cpSync(path.join(root, 'package.json'), path.join(copy, 'package.json'));
  symlinkSync(path.join(root, 'node_modules'), path.join(copy, 'node_modules'));
  const hash = createHash('sha256');
  for (const file of filesUnder(path.join(copy, 'dist')).filter((f) => f.endsWith('.js')).sort()) {
    hash.update(path.relative(copy, file)).update(readFileSync(file));
  }
  return { bin: path.join(copy, 'bin', 'backupctl.js'), distHash: hash.digest('hex').slice(0, 16) };
}

/**
 * Stops the cluster (immediate) and removes its directory, synchronously (usable in an
 * exit hook). startCluster's own exit hook does the same, but removes the directory
 * without retrying, and a backend still exiting after an immediate shutdown can make that
 * fail (ENOTEMPTY) and leave a data directory behind.
 */
export function stopClusterSync(c: Cluster): void {
  const tmpDir = path.dirname(c.dataDir);
  const pgCtl = c.bin('pg_ctl');
  const args = ['stop', '-D', c.dataDir, '-m', 'immediate', '-w', '-t', '30'];
  const asRoot = process.getuid?.() === 0;
  if (existsSync(path.join(c.dataDir, 'postmaster.pid'))) {
    spawnSync(asRoot ? 'runuser' : pgCtl, asRoot ? ['-u', 'postgres', '--', pgCtl, ...args] : args, { stdio: 'ignore', cwd: os.tmpdir() });
  }
  try {
    rmSync(tmpDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  } catch (error) {
    process.stderr.write(`warning: could not remove ${tmpDir}: ${(error as Error).message}\n`);
  }
}

/** Pids of the other benchmarks of this project named in `names` (bench/<name>.ts) now running. */
export function otherBenches(names: readonly string[]): number[] {
  const pattern = new RegExp(`(^|/)bench/(${names.join('|')})\\.ts$`);
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const argv = argvOf(Number(name));
    if (argv?.some((a) => pattern.test(a))) out.push(Number(name));
  }
  return out;
}

/**
 * Waits while one of the other benches in `names` runs (two benches on 2 cores spoil
 * both), up to `maxWaitS`; returns the seconds waited.
 */
export async function waitForOtherBenches(names: readonly string[], maxWaitS: number, log: (message: string) => void): Promise<number> {
  const started = performance.now();
  let said = false;
  for (;;) {
    const others = otherBenches(names);
    const waited = (performance.now() - started) / 1000;
    if (others.length === 0 || waited >= maxWaitS) {
      if (others.length) log(`  another bench is still running (pids ${others.join(', ')}) after ${waited.toFixed(0)} s: going on, the runs will be noisy`);
      return waited;
    }
    if (!said) log(`  waiting for another bench to finish (pids ${others.join(', ')}; up to ${maxWaitS} s)`);
    said = true;
    await new Promise((resolve) => setTimeout(resolve, 5000));
  }
}

/** SIGTERMs the measured command and everything below it (/usr/bin/time forwards no signal). */
export function killActive(): void {
  const child = activeChild();
  if (!child?.pid || child.exitCode !== null) return;
  const pids: number[] = [];
  const stack = [child.pid];
  while (stack.length) {
    const pid = stack.pop() as number;
    pids.push(pid);
    stack.push(...childrenOf(pid));
  }
  for (const pid of pids.reverse()) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone
    }
  }
}
