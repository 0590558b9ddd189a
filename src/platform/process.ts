import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * True while `pid` is a running process on this host: what makes a lock, a run directory
 * or a scratch database of another run still its own. A process that exists but belongs to
 * another user (EPERM) is running. A zombie is not: killed (kill -9) but not yet reaped by
 * its parent (in a container whose init reaps late, for seconds), it holds nothing any more,
 * and the next run must not wait for it. Linux says so in /proc/<pid>/stat; elsewhere
 * kill(pid, 0) alone decides.
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

function isZombie(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false; // no /proc (not Linux), or gone just now: kill(pid, 0) decided
  }
  // `pid (comm) state ...`: comm may hold spaces and parentheses, the state follows the last ')'.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state === 'Z' || state === 'X';
}

/**
 * True when `data` (a lock or claim object: JSON with the `pid` and `host` of its writer)
 * was written by another process of this host that no longer runs: whatever it was
 * doing, it will not finish. Anything else (another host, a live or unknown writer, not JSON) is
 * false: only time tells those apart.
 */
export function writtenByDeadProcess(
  data: Buffer,
  host: { pid: number; hostname: string; isAlive(pid: number): boolean } = { pid: process.pid, hostname: hostname(), isAlive: isProcessAlive },
): boolean {
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch {
    return false;
  }
  if (typeof value !== 'object' || value === null) return false;
  const { pid, host: writer } = value as { pid?: unknown; host?: unknown };
  return writer === host.hostname && typeof pid === 'number' && Number.isSafeInteger(pid) && pid > 0 && pid !== host.pid && !host.isAlive(pid);
}
