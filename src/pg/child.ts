import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { execa, type Options, type ResultPromise } from 'execa';

/**
 * A PostgreSQL client program that must not outlive backupctl. A pg_restore left running
 * after `kill -9 backupctl` goes on writing into the target and may commit there; a
 * pg_dump --jobs goes on filling a scratch directory nobody will read.
 *
 * So every such child leads a process group of its own (its --jobs workers are in it),
 * and a watchdog (`/bin/sh`, a few hundred kilobytes) holds the read end of a pipe whose
 * write end only backupctl holds. When backupctl dies, however it dies, the kernel closes
 * that pipe, the watchdog's `read` returns, and it sends SIGTERM to the whole group, then
 * SIGKILL 5 seconds later. When the child ends first, backupctl kills the watchdog, so it
 * can never signal a process group id that the system has handed out again.
 *
 * An abort (Ctrl-C, SIGTERM, a failure elsewhere) also ends the whole group, not only the
 * leader: SIGTERM, then SIGKILL 5 seconds later.
 */
// dash's kill takes no `--`: a negative pid right after the signal names the group. The
// SIGKILL comes only while the group still exists (checked every second, 5 times at most).
const WATCH =
  'read _ignored; kill -TERM -"$1" 2>/dev/null || exit 0; ' +
  'for _ in 1 2 3 4 5; do sleep 1; kill -0 -"$1" 2>/dev/null || exit 0; done; kill -KILL -"$1" 2>/dev/null';

/** Starts the watchdog of process group `pgid`; release() stops it (the group ended on its own). */
export function watchProcessGroup(pgid: number): { release(): void } {
  const watchdog = spawn('/bin/sh', ['-c', WATCH, 'backupctl-watchdog', String(pgid)], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
  });
  watchdog.on('error', () => undefined);
  watchdog.stdin?.on('error', () => undefined);
  // Neither the watchdog nor its pipe may keep backupctl's event loop alive.
  watchdog.unref();
  (watchdog.stdin as Socket | null)?.unref();
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      watchdog.kill('SIGKILL');
    },
  };
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone already
  }
}

/**
 * execa, for a client program that must die with backupctl (see above). `cancelSignal`
 * ends its whole process group. Options as execa's; `detached` and `cleanup` are set here.
 */
export function runGuarded<O extends Options>(file: string, args: readonly string[], options: O): ResultPromise<O> {
  const child = execa(file, args, { ...options, detached: true, cleanup: false } as O) as unknown as ResultPromise<O>;
  const pid = child.pid;
  if (pid === undefined) return child; // it failed to start: the promise rejects with why
  const guard = watchProcessGroup(pid);
  let killer: NodeJS.Timeout | undefined;
  const signal = options.cancelSignal as AbortSignal | undefined;
  const onAbort = () => {
    signalGroup(pid, 'SIGTERM');
    killer = setTimeout(() => signalGroup(pid, 'SIGKILL'), 5_000);
    killer.unref();
  };
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  const settled = () => {
    signal?.removeEventListener('abort', onAbort);
    // After an abort the SIGKILL stays due: the leader's --jobs workers may linger.
    if (killer && !signal?.aborted) clearTimeout(killer);
    guard.release();
  };
  child.then(settled, settled);
  return child;
}
