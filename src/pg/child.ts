import type { ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';
import { execa, type Options, type ResultPromise } from 'execa';
import { InterruptedError } from '../errors.js';

/**
 * A PostgreSQL client program that must not outlive backupctl. A pg_restore left running
 * after `kill -9 backupctl` goes on writing into the target and may commit there; a
 * pg_dump --jobs goes on filling a scratch directory nobody will read.
 *
 * So every such program is started by a small /bin/sh launcher, in a process group of its
 * own (its --jobs workers join it), with a pipe from backupctl as file descriptor 3. The
 * launcher leaves a watcher in the background, reading that pipe, then becomes the program
 * (exec). backupctl holds the pipe's other end and writes `done` once the program has
 * exited. If backupctl dies first, however it dies, the kernel closes its end: the
 * watcher's read ends without `done`, and it sends SIGTERM to the group (it ignores that
 * signal itself), then SIGKILL 5 seconds later. The pipe exists before the program does,
 * so there is no moment at which the program runs unwatched.
 *
 * An abort (Ctrl-C, SIGTERM, a failure elsewhere) also ends the whole group, not only the
 * leader: SIGTERM, then SIGKILL 5 seconds later, or half a second later when backupctl
 * itself was interrupted (its clean-up has a second in all, cli.ts). A program's own
 * SIGTERM handler sends the server a cancel request, and waits for it: on a server that
 * stopped answering it waits for ever, and so would the run's clean-up behind it.
 */
const LAUNCHER = [
  '( trap "" TERM INT',
  '  if read -r word <&3 && [ "$word" = done ]; then exit 0; fi',
  '  kill -TERM 0 2>/dev/null; sleep 5; kill -KILL 0 2>/dev/null ) &',
  'exec 3<&-',
  'exec "$@"',
].join('\n');

/** From SIGTERM to SIGKILL of an aborted program's group: after a failure, and after an interrupt. */
const FAILED_KILL_MS = 5_000;
const INTERRUPTED_KILL_MS = 500;

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone already
  }
}

type Stdio = 'pipe' | 'ignore' | 'inherit';

/**
 * execa, for a client program that must die with backupctl (see above). `cancelSignal`
 * ends its whole process group. Options as execa's, with stdin/stdout/stderr given
 * separately (they become `stdio`, with the watcher's pipe as fd 3).
 */
export function runGuarded<O extends Options>(file: string, args: readonly string[], options: O): ResultPromise<O> {
  const { stdin, stdout, stderr, buffer, ...rest } = options as O & { stdin?: Stdio; stdout?: Stdio; stderr?: Stdio; buffer?: unknown };
  const input = (rest as { input?: unknown }).input;
  const stdio = [input !== undefined ? 'pipe' : (stdin ?? 'pipe'), stdout ?? 'pipe', stderr ?? 'pipe', 'pipe'];
  const buffers = typeof buffer === 'object' && buffer !== null ? buffer : { stdout: buffer ?? true, stderr: buffer ?? true };
  const child = execa('/bin/sh', ['-c', LAUNCHER, 'backupctl-guard', file, ...args], {
    ...rest,
    stdio,
    buffer: { ...(buffers as object), fd3: false },
    detached: true,
    cleanup: false,
  } as unknown as O) as unknown as ResultPromise<O>;
  const pid = child.pid;
  if (pid === undefined) return child; // it failed to start: the promise rejects with why
  const process_ = child as unknown as ChildProcess;
  const guard = process_.stdio[3] as Writable | null | undefined;
  guard?.on('error', () => undefined);
  // The program exited (the group's leader): tell the watcher to stand down.
  process_.once('exit', () => guard?.end('done\n'));
  let killer: NodeJS.Timeout | undefined;
  const signal = options.cancelSignal as AbortSignal | undefined;
  const onAbort = () => {
    signalGroup(pid, 'SIGTERM');
    killer = setTimeout(() => signalGroup(pid, 'SIGKILL'), signal?.reason instanceof InterruptedError ? INTERRUPTED_KILL_MS : FAILED_KILL_MS);
    killer.unref();
  };
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  const settled = () => {
    signal?.removeEventListener('abort', onAbort);
    // After an abort the SIGKILL stays due: the leader's --jobs workers may linger.
    if (killer && !signal?.aborted) clearTimeout(killer);
  };
  child.then(settled, settled);
  return child;
}
