/**
 * Run directories of dead runs (platform/run-dir.ts): swept when their writer is gone, as
 * judged by judgeWriter: on Linux the name records the run's start ticks and boot id, so a
 * directory whose pid now belongs to an unrelated live process is swept too; one whose
 * process runs with the recorded ticks, or an older one recording the pid alone while it
 * runs, is kept.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readBootId } from '../../src/platform/process.js';
import { beginRun, endRun, runDir, sweepDeadRuns } from '../../src/platform/run-dir.js';
import { currentBootId, deadPid, sleeper as spawnSleeper, startTicksOf } from '../helpers/process.js';

/** The name's host part, as run-dir.ts makes it. */
const host = os.hostname().replace(/[^A-Za-z0-9.-]/g, '_').slice(0, 64) || 'host';
const children: ChildProcess[] = [];
const bases: string[] = [];

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  for (const base of bases) await rm(base, { recursive: true, force: true });
});

/** A live unrelated process (`sleep 30`) and its real start ticks, killed after the tests. */
function sleeper(): { pid: number; ticks: number } {
  const { child, pid, ticks } = spawnSleeper();
  children.push(child);
  return { pid, ticks };
}

/** A base directory with the per-user parent run-dir.ts sweeps. */
async function base(): Promise<{ base: string; parent: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'backupctl-rundir-test-'));
  bases.push(dir);
  const parent = path.join(dir, `backupctl-${process.getuid?.() ?? 'user'}`);
  await mkdir(parent, { mode: 0o700 });
  return { base: dir, parent };
}

describe.runIf(process.platform === 'linux')('run directories: the writer judged by its boot id and start ticks (Linux)', () => {
  const bootId = currentBootId();

  it("a new run directory's name records this process's pid, start ticks and boot id", async () => {
    const { base: where } = await base();
    beginRun();
    try {
      const dir = await runDir(where);
      expect(path.basename(dir)).toMatch(new RegExp(`^run-${host.replace(/\./g, '\\.')}-${process.pid}-[0-9a-f]{8}-${startTicksOf('self')}-${bootId}$`));
      // Our own directory is never swept while we run.
      await sweepDeadRuns([where]);
      expect(existsSync(dir)).toBe(true);
    } finally {
      await endRun();
    }
  });

  it('sweeps the directory of a run whose pid is now an unrelated live process (other start ticks) or that ran before a reboot; keeps the one of a running writer', async () => {
    const { base: where, parent } = await base();
    const { pid, ticks } = sleeper();
    const names = {
      reused: `run-${host}-${pid}-aaaaaaaa-${ticks + 1}-${bootId}`,
      rebooted: `run-${host}-${pid}-bbbbbbbb-${ticks}-00000000-0000-4000-8000-000000000000`,
      running: `run-${host}-${pid}-cccccccc-${ticks}-${bootId}`,
      // An older backupctl's: the pid alone, which runs.
      older: `run-${host}-${pid}-dddddddd`,
      // Hostile identity values: judged by the pid alone, as an older one.
      hostile: `run-${host}-${pid}-eeeeeeee-1e9-${bootId}`,
    };
    for (const name of Object.values(names)) await mkdir(path.join(parent, name), { mode: 0o700 });
    const removed = await sweepDeadRuns([where]);
    expect((await readdir(parent)).sort()).toEqual([names.running, names.older, names.hostile].sort());
    expect(removed.map((r) => [path.basename(r.path), r.why]).sort()).toEqual([
      [names.reused, 'pid-reused'],
      [names.rebooted, 'rebooted'],
    ]);
    expect(children.at(-1)?.exitCode).toBeNull(); // the unrelated process was left alone
  });
});

describe('run directories of dead runs', () => {
  it('sweeps the directory of a pid no longer running, old name or new', async () => {
    const { base: where, parent } = await base();
    const gone = { pid: await deadPid() };
    const bootId = readBootId();
    const names = [`run-${host}-${gone.pid}-aaaaaaaa`, ...(bootId === null ? [] : [`run-${host}-${gone.pid}-bbbbbbbb-12345-${bootId}`])];
    for (const name of names) await mkdir(path.join(parent, name), { mode: 0o700 });
    const removed = await sweepDeadRuns([where]);
    expect(await readdir(parent)).toEqual([]);
    expect(removed.map((r) => r.why)).toEqual(names.map(() => 'not-running'));
  });
});
