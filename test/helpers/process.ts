/**
 * Processes for tests of "is the process that wrote this still running?" (judgeWriter,
 * platform/process.ts): a live unrelated process whose pid a record can name, and the
 * identity facts (boot id, start ticks) read straight from /proc, Linux only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** This boot's id (/proc/sys/kernel/random/boot_id). */
export function currentBootId(): string {
  return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
}

/** When `pid` started, in clock ticks since boot: /proc/<pid>/stat field 22 (counted after the comm's last ')'). */
export function startTicksOf(pid: number | 'self'): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
}

/** A live unrelated process (`sleep 30`), its pid and real start ticks; kill it with `child.kill('SIGKILL')` when done. */
export function sleeper(): { child: ChildProcess; pid: number; ticks: number } {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  const pid = child.pid as number;
  return { child, pid, ticks: startTicksOf(pid) };
}

/** A pid that no process has any more (a `true` that has exited). */
export async function deadPid(): Promise<number> {
  const child = spawn('true', { stdio: 'ignore' });
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid as number;
}
