import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * The fields of /proc/<pid>/stat a liveness check needs: the state (field 3) and the start
 * time in clock ticks since boot (field 22). The comm (field 2) is in parentheses and may
 * hold spaces and parentheses itself, so the fields are counted from after the LAST ')'.
 * Null when `text` is not such a line.
 */
export function parseProcStat(text: string): { state: string; startTicks: number } | null {
  const close = text.lastIndexOf(')');
  if (close < 0 || text.indexOf('(') < 0 || text.indexOf('(') > close) return null;
  // After ") ": field 3 (state) is the first, so field 22 (starttime) is the 20th.
  const fields = text.slice(close + 1).trim().split(/\s+/);
  const state = fields[0];
  const start = fields[19];
  if (state === undefined || !/^[A-Za-z]$/.test(state) || start === undefined || !/^\d{1,15}$/.test(start)) return null;
  return { state, startTicks: Number(start) };
}

function readStat(pid: number): { state: string; startTicks: number } | null {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null; // no /proc (not Linux), gone just now, or hidden (hidepid)
  }
}

/**
 * When `pid` started, in clock ticks since this boot (Linux: /proc/<pid>/stat field 22):
 * with the boot id, an identity of a process that no wall-clock step changes and that a
 * later process given the same pid does not share. Null when it cannot be read: no /proc
 * (not Linux), no such process, or one /proc hides from us (mounted with hidepid).
 */
export function processStartTicks(pid: number): number | null {
  return readStat(pid)?.startTicks ?? null;
}

/** This boot's id (Linux: /proc/sys/kernel/random/boot_id, new at every boot); null where there is none. */
export function readBootId(): string | null {
  try {
    const id = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    return isBootId(id) ? id : null;
  } catch {
    return null;
  }
}

/** A boot id as the kernel writes it (a UUID), or one close enough: short, no control characters. */
export function isBootId(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9A-Za-z-]{1,64}$/.test(value);
}

/**
 * True while `pid` is a running process on this host: judgeWriter's last word on whether a
 * lock, a run directory, a scratch database or a run log entry of another run is still its
 * own (callers ask judgeWriter, which first rules out a reboot and a reused pid). A process
 * that exists but belongs to another user (EPERM) is running. A zombie is not: killed
 * (kill -9) but not yet reaped by its parent (in a container whose init reaps late, for
 * seconds), it holds nothing any more, and the next run must not wait for it. Linux says
 * so in /proc/<pid>/stat; elsewhere kill(pid, 0) alone decides.
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  const state = readStat(pid)?.state;
  return state !== 'Z' && state !== 'X';
}

/** The process facts of this host that judging a writer depends on; tests replace them. */
export interface ProcessFacts {
  pid: number;
  hostname: string;
  /** This boot's id; null where there is none (not Linux): then only isAlive decides. */
  bootId: string | null;
  /** True while `pid` is a running process on this host (isProcessAlive). */
  isAlive(pid: number): boolean;
  /** When `pid` started, in clock ticks since boot (processStartTicks); null when unreadable. */
  startTicks(pid: number): number | null;
}

export const thisProcess: ProcessFacts = {
  pid: process.pid,
  hostname: hostname(),
  bootId: readBootId(),
  isAlive: isProcessAlive,
  startTicks: processStartTicks,
};

/** Who wrote a lock, a claim or a breaker, as recorded in it (bootId and startTicks since they are recorded, on Linux). */
export interface WriterIdentity {
  pid: number;
  bootId?: string | undefined;
  startTicks?: number | undefined;
}

/** What `facts` records of itself in what it writes: its pid, and its boot id and start ticks when known. */
export function identityOf(facts: ProcessFacts): WriterIdentity {
  const startTicks = facts.bootId === null ? null : facts.startTicks(facts.pid);
  return { pid: facts.pid, ...(facts.bootId !== null && startTicks !== null ? { bootId: facts.bootId, startTicks } : {}) };
}

/**
 * The writer's bootId and startTicks when both are well-formed, else none (an older
 * backupctl, or hostile values: judged by the pid alone, as before they were recorded).
 */
export function recordedIdentity(value: { bootId?: unknown; startTicks?: unknown }): Pick<WriterIdentity, 'bootId' | 'startTicks'> {
  const { bootId, startTicks } = value;
  if (!isBootId(bootId) || typeof startTicks !== 'number' || !Number.isSafeInteger(startTicks) || startTicks < 0) return {};
  return { bootId, startTicks };
}

/** Whether a writer of this host still runs; when not, why (what a stale lock's warning says). */
export type WriterState = 'running' | 'not-running' | 'pid-reused' | 'rebooted';

/**
 * Judges a writer of THIS host (callers compare the host first). With the boot id and start
 * ticks recorded and this host's boot id known: another boot id means the machine has
 * rebooted since (rebooted); the same boot id and a process `pid` whose start ticks differ
 * means the pid was given to another process (pid-reused). Equal start ticks, no identity
 * recorded (an older backupctl), or no /proc here: kill(pid, 0) decides, as isAlive says
 * (not-running). A pid whose /proc entry cannot be read while kill(pid, 0) finds it (a
 * /proc mounted with hidepid, a process of another user) is not guessed dead: running.
 * No wall clock is read: a clock step never makes a live writer dead.
 */
export function judgeWriter(writer: WriterIdentity, facts: ProcessFacts): WriterState {
  const recorded = recordedIdentity(writer);
  if (recorded.bootId !== undefined && facts.bootId !== null) {
    if (recorded.bootId !== facts.bootId) return 'rebooted';
    const ticks = facts.startTicks(writer.pid);
    if (ticks !== null && ticks !== recorded.startTicks) return 'pid-reused';
  }
  return facts.isAlive(writer.pid) ? 'running' : 'not-running';
}

/** "pid not running", "pid reused: 4242 is another process now", "host rebooted since": why a writer is gone. */
export function describeWriterGone(why: Exclude<WriterState, 'running'>, pid: number): string {
  if (why === 'rebooted') return 'host rebooted since';
  if (why === 'pid-reused') return `pid reused: ${pid} is another process now`;
  return 'pid not running';
}

/**
 * True when `data` (a lock or claim object: JSON with the `pid` and `host` of its writer,
 * and its bootId and startTicks when recorded) was written by another process of this host
 * that no longer runs (judgeWriter): whatever it was doing, it will not finish. Anything
 * else (another host, a live or unknown writer, not JSON) is false: only time tells those apart.
 */
export function writtenByDeadProcess(data: Buffer, facts: ProcessFacts = thisProcess): boolean {
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch {
    return false;
  }
  if (typeof value !== 'object' || value === null) return false;
  const { pid, host: writer, bootId, startTicks } = value as { pid?: unknown; host?: unknown; bootId?: unknown; startTicks?: unknown };
  if (writer !== facts.hostname || typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0 || pid === facts.pid) return false;
  return judgeWriter({ pid, ...recordedIdentity({ bootId, startTicks }) }, facts) !== 'running';
}
