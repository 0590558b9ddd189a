import { readFileSync } from 'node:fs';

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
