/**
 * Helpers both benchmarks (run.ts: create, verify.ts: verify) use: environment knobs,
 * per-process CPU bookkeeping, the postmaster's pid, and listing a build's files.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Cluster } from '../test/helpers/cluster.js';
import { childrenOf, type ProcSummary, type RunResult } from './measure.js';

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
