/**
 * Scratch databases of dead runs (core/scratch.ts): the tag a run records, and which
 * leftovers are a dead run's of this host (judgeWriter: pid gone, pid reused, rebooted),
 * which another host's, and which may still be running. The round trip through a server's
 * COMMENT is in test/integration/operator-commands.test.ts (check's "leftovers").
 */
import type { ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import type { ScratchTag } from '../../src/pg/admin.js';
import type { ProcessFacts } from '../../src/platform/process.js';
import { dropWithinGrace, INTERRUPTED_DROP_MS, isLeftover, scratchTag } from '../../src/core/scratch.js';
import { currentBootId, deadPid, sleeper as spawnSleeper, startTicksOf } from '../helpers/process.js';

const now = new Date();
const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
});

function sleeper(): { pid: number; ticks: number } {
  const { child, pid, ticks } = spawnSleeper();
  children.push(child);
  return { pid, ticks };
}

const tag = (fields: Partial<ScratchTag> & { pid: number }): ScratchTag => ({ kind: 'verify', host: hostname(), startedAt: now.toISOString(), ...fields });

describe.runIf(process.platform === 'linux')('scratch databases: the run judged by its boot id and start ticks (Linux)', () => {
  const bootId = currentBootId();

  it("records this process's pid, boot id and start ticks", () => {
    expect(scratchTag('staging', { now: () => now })).toEqual({ kind: 'staging', host: hostname(), pid: process.pid, bootId, startTicks: startTicksOf('self'), startedAt: now.toISOString() });
  });

  it('a leftover whose pid is now an unrelated live process (other start ticks, same boot) is a dead run\'s: pid reused', () => {
    const { pid, ticks } = sleeper();
    expect(isLeftover(tag({ pid, bootId, startTicks: ticks - 1 }), now)).toEqual({ state: 'dead', why: 'pid-reused' });
  });

  it('a leftover of a run before a reboot (another boot id) is a dead run\'s, though its pid runs', () => {
    const { pid, ticks } = sleeper();
    expect(isLeftover(tag({ pid, bootId: '00000000-0000-4000-8000-000000000000', startTicks: ticks }), now)).toEqual({ state: 'dead', why: 'rebooted' });
  });

  it('the database of a run that still runs with the recorded start ticks is no leftover', () => {
    const { pid, ticks } = sleeper();
    expect(isLeftover(tag({ pid, bootId, startTicks: ticks }), now)).toBeNull();
  });

  it("this process's own database is no leftover; one an earlier process with our pid left is", () => {
    const own = scratchTag('verify', { now: () => now });
    expect(isLeftover(own, now)).toBeNull();
    expect(isLeftover({ ...own, startTicks: (own.startTicks ?? 0) + 1 }, now)).toEqual({ state: 'dead', why: 'pid-reused' });
  });
});

describe('scratch databases of this host and of others', () => {
  it('a tag of an older version (pid alone) is judged by its pid: dead once no process has it', async () => {
    const pid = await deadPid();
    expect(isLeftover(tag({ pid }), now)).toEqual({ state: 'dead', why: 'not-running' });
    expect(isLeftover(tag({ pid: process.pid }), now)).toBeNull();
  });

  it("another host's is never judged by its pid: reported once a day old", () => {
    const other = tag({ pid: 1, host: 'elsewhere.example', startedAt: new Date(now.getTime() - 25 * 3_600_000).toISOString() });
    expect(isLeftover(other, now)).toEqual({ state: 'foreign' });
    expect(isLeftover({ ...other, startedAt: now.toISOString() }, now)).toBeNull();
  });

  it('the injected facts decide: their boot id and start ticks, never a wall clock', () => {
    const facts = (bootId: string, ticks: number): ProcessFacts => ({ pid: 1, hostname: 'h', bootId, isAlive: () => true, startTicks: () => ticks });
    const left = tag({ pid: 4242, host: 'h', bootId: 'boot-a', startTicks: 10, startedAt: '2000-01-01T00:00:00.000Z' });
    expect(isLeftover(left, now, facts('boot-a', 10))).toBeNull();
    expect(isLeftover(left, now, facts('boot-a', 11))).toEqual({ state: 'dead', why: 'pid-reused' });
    expect(isLeftover(left, now, facts('boot-b', 10))).toEqual({ state: 'dead', why: 'rebooted' });
  });
});

describe('dropWithinGrace: a run that is interrupted does not wait on a drop for ever', () => {
  it('waits for the drop while the run goes on, whatever it takes', async () => {
    const controller = new AbortController();
    const drop = new Promise<void>((resolve) => setTimeout(resolve, INTERRUPTED_DROP_MS + 200));
    await expect(dropWithinGrace(drop, controller.signal)).resolves.toBe(true);
  });

  it('once interrupted (before or during the drop), gives up after INTERRUPTED_DROP_MS: false', async () => {
    const never = new Promise<void>(() => undefined);
    const before = new AbortController();
    before.abort();
    const startedAt = performance.now();
    await expect(dropWithinGrace(never, before.signal)).resolves.toBe(false);
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(INTERRUPTED_DROP_MS - 50);
    const during = new AbortController();
    setTimeout(() => during.abort(), 100);
    await expect(dropWithinGrace(never, during.signal)).resolves.toBe(false);
  });

  it('a drop that ends in time is true, one that fails rejects as it does', async () => {
    const aborted = new AbortController();
    aborted.abort();
    await expect(dropWithinGrace(Promise.resolve(), aborted.signal)).resolves.toBe(true);
    await expect(dropWithinGrace(Promise.reject(new Error('42501')), aborted.signal)).rejects.toThrow('42501');
  });
});
