/**
 * isProcessAlive (platform/process.ts): what locks, run directories and scratch databases
 * of other runs are judged by. A zombie (exited, not yet reaped) is not alive: after a
 * kill -9 in a container whose init reaps late, the next run must take over at once.
 * judgeWriter: a lock's holder recorded with its boot id and start ticks is gone once the
 * host has rebooted or its pid belongs to another process; parseProcStat reads those ticks.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import {
  isProcessAlive,
  judgeWriter,
  parseProcStat,
  processStartTicks,
  readBootId,
  recordedIdentity,
  thisProcess,
  writtenByDeadProcess,
  type ProcessFacts,
  type WriterIdentity,
} from '../../src/platform/process.js';

const parents: Array<ReturnType<typeof spawn>> = [];
afterEach(() => {
  for (const parent of parents.splice(0)) parent.kill('SIGKILL');
});

describe('isProcessAlive', () => {
  it('this process is alive; a pid that does not exist is not', () => {
    expect(isProcessAlive(process.pid)).toBe(true);
    expect(isProcessAlive(2 ** 22 + 12345)).toBe(false);
  });

  it.runIf(process.platform === 'linux')('a zombie is not alive, while its parent that has not reaped it is', async () => {
    // sh starts a child that exits at once, then becomes `sleep`, which never reaps it.
    const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    parents.push(parent);
    const pid = await new Promise<number>((resolve) => parent.stdout.once('data', (data: Buffer) => resolve(Number(String(data).trim()))));
    const state = () => {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    };
    for (let i = 0; i < 200 && state() !== 'Z'; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(state()).toBe('Z');
    expect(isProcessAlive(pid)).toBe(false);
    expect(isProcessAlive(parent.pid as number)).toBe(true);
  });
});

describe('parseProcStat', () => {
  /** A /proc/<pid>/stat line of `comm` with state `state` and start time `start` (field 22). */
  const line = (comm: string, state: string, start: number) =>
    `4242 (${comm}) ${state} 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 ${start} 3133440 392 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n`;

  it('reads the state (field 3) and the start ticks (field 22)', () => {
    expect(parseProcStat(line('node', 'S', 7377833))).toEqual({ state: 'S', startTicks: 7377833 });
  });

  it('counts the fields after the LAST ")": a comm with spaces, parentheses and digits', () => {
    expect(parseProcStat(line('a b) 1 2 (c', 'R', 99))).toEqual({ state: 'R', startTicks: 99 });
    expect(parseProcStat(line(') ) )', 'Z', 5))).toEqual({ state: 'Z', startTicks: 5 });
    expect(parseProcStat(line('', 'S', 0))).toEqual({ state: 'S', startTicks: 0 });
  });

  it('is null for what is not such a line', () => {
    expect(parseProcStat('')).toBeNull();
    expect(parseProcStat('4242 (node S 1 2 3')).toBeNull(); // no ')'
    expect(parseProcStat('4242 (node) S 1 2 3')).toBeNull(); // too short
    expect(parseProcStat(line('node', 'S', 1).replace(' 0 1 3133440', ' 0 -1 3133440'))).toBeNull(); // negative start
    expect(parseProcStat(line('node', 'SS', 1))).toBeNull();
  });

  it.runIf(process.platform === 'linux')("matches this process's /proc/self/stat, and stays the same", () => {
    const fromProc = parseProcStat(readFileSync('/proc/self/stat', 'utf8'));
    expect(fromProc?.startTicks).toBeGreaterThan(0);
    expect(processStartTicks(process.pid)).toBe(fromProc?.startTicks);
    expect(processStartTicks(2 ** 22 + 12345)).toBeNull();
    expect(readBootId()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(thisProcess.bootId).toBe(readBootId());
  });
});

describe('judgeWriter: is the writer of a lock of this host still running?', () => {
  /** This host in boot "boot-a": pid 100 started at tick 5000 and runs; `alive` and `ticks` say what else runs. */
  function facts(options: { bootId?: string | null; alive?: boolean; ticks?: number | null } = {}): ProcessFacts {
    return {
      pid: 1,
      hostname: 'db1',
      bootId: options.bootId === undefined ? 'boot-a' : options.bootId,
      isAlive: () => options.alive ?? true,
      startTicks: () => (options.ticks === undefined ? 5000 : options.ticks),
    };
  }
  const recorded = { pid: 100, bootId: 'boot-a', startTicks: 5000 };

  it('same boot, same start ticks: kill(pid, 0) decides (a zombie of the holder is not running)', () => {
    expect(judgeWriter(recorded, facts())).toBe('running');
    expect(judgeWriter(recorded, facts({ alive: false }))).toBe('not-running');
  });

  it('same boot, other start ticks: the pid is another process now, alive or not (no slack)', () => {
    expect(judgeWriter(recorded, facts({ ticks: 5001 }))).toBe('pid-reused');
    expect(judgeWriter(recorded, facts({ ticks: 4999 }))).toBe('pid-reused');
  });

  it('another boot id: the host rebooted since, whatever runs as that pid now', () => {
    expect(judgeWriter(recorded, facts({ bootId: 'boot-b' }))).toBe('rebooted');
  });

  it('same boot, /proc/<pid>/stat unreadable: gone (kill says so), or hidden (hidepid, kill finds it): not guessed dead', () => {
    expect(judgeWriter(recorded, facts({ ticks: null, alive: false }))).toBe('not-running');
    expect(judgeWriter(recorded, facts({ ticks: null, alive: true }))).toBe('running');
  });

  it('no identity recorded (an older backupctl) or no /proc here (not Linux): kill(pid, 0) decides', () => {
    expect(judgeWriter({ pid: 100 }, facts({ ticks: 1 }))).toBe('running');
    expect(judgeWriter({ pid: 100 }, facts({ alive: false }))).toBe('not-running');
    expect(judgeWriter(recorded, facts({ bootId: null, ticks: null }))).toBe('running');
    expect(judgeWriter(recorded, facts({ bootId: null, ticks: null, alive: false }))).toBe('not-running');
  });

  it('hostile or partial identities count as none: kill(pid, 0) decides, nothing throws', () => {
    const hostile: Array<Record<string, unknown>> = [
      { bootId: 'boot-b' }, // no start ticks
      { startTicks: 1 }, // no boot id
      { bootId: 7, startTicks: 1 },
      { bootId: 'boot-b', startTicks: '1' },
      { bootId: 'boot-b', startTicks: -1 },
      { bootId: 'boot-b', startTicks: 1.5 },
      { bootId: 'boot-b', startTicks: 2 ** 60 },
      { bootId: '', startTicks: 1 },
      { bootId: 'x'.repeat(65), startTicks: 1 },
      { bootId: 'boot\nb', startTicks: 1 },
      { bootId: { toString: null }, startTicks: { valueOf: null } },
    ];
    for (const identity of hostile) {
      expect(recordedIdentity(identity), JSON.stringify(identity)).toEqual({});
      expect(judgeWriter({ pid: 100, ...(identity as object) } as WriterIdentity, facts({ ticks: 1 }))).toBe('running');
    }
  });

  it('writtenByDeadProcess: a claim of this host whose pid is another process now, or from before a reboot, was abandoned', () => {
    const claim = (value: object) => Buffer.from(JSON.stringify({ host: 'db1', ...recorded, ...value }));
    expect(writtenByDeadProcess(claim({}), facts())).toBe(false);
    expect(writtenByDeadProcess(claim({}), facts({ ticks: 6000 }))).toBe(true);
    expect(writtenByDeadProcess(claim({}), facts({ bootId: 'boot-b' }))).toBe(true);
    expect(writtenByDeadProcess(claim({ host: 'db2' }), facts({ bootId: 'boot-b' }))).toBe(false);
    expect(writtenByDeadProcess(claim({ bootId: undefined }), facts({ ticks: 6000 }))).toBe(false);
  });
});
