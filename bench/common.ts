/**
 * Helpers both benchmarks (run.ts: create, verify.ts: verify) use: environment knobs,
 * per-process CPU bookkeeping, the postmaster's pid, and listing a build's files.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Cluster } from '../test/helpers/cluster.js';
import type { ProcSummary, RunResult } from './measure.js';

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
