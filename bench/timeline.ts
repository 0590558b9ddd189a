/**
 * When each client program and each server activity was seen, from a poll of our own
 * process tree and of the postmaster's children (process titles): the phases of a run
 * around pg_restore (bench/verify.ts, bench/stages.ts).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { childrenOf } from './measure.js';

export const spanS = (s: Span | undefined): number | null => (s ? (s.last - s.first) / 1000 : null);
export const secs = (a: number | undefined, b: number | undefined): number | null => (a === undefined || b === undefined ? null : (b - a) / 1000);

export interface Span {
  first: number;
  last: number;
}

/** Both sides' phases around pg_restore: spawn to its first sighting, its own span, its end to exit. */
export function restoreSpans(spawn: number, restore: Span | undefined, end: number): { beforeS: number | null; pgRestoreS: number | null; afterS: number | null } {
  return { beforeS: secs(spawn, restore?.first), pgRestoreS: secs(restore?.first, restore?.last), afterS: secs(restore?.last, end) };
}

export function argvOf(pid: number): string[] | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0+$/, '').split('\0');
  } catch {
    return null;
  }
}

/**
 * What a client process is, from its argv: the program (through Debian's pg_wrapper, a
 * perl script that then execs the binary) and, for pg_restore, what it was asked to do.
 * A shell whose script mentions pg_restore is not pg_restore. zstd: the compression stage's program.
 */
export function clientKind(argv: string[]): { kind: string; program: string } | null {
  let [program = '', ...args] = argv;
  if (path.basename(program).startsWith('perl') && args[0]) [program = '', ...args] = args;
  const base = path.basename(program);
  if (base === 'pg_restore') {
    const has = (...flags: string[]): boolean => args.some((a) => flags.some((f) => a === f || a.startsWith(`${f}=`)));
    if (has('--version', '-V')) return { kind: 'pg_restore --version', program };
    if (has('--list', '-l')) return { kind: 'pg_restore --list', program };
    if (has('--file', '-f')) return { kind: 'pg_restore --file', program };
    return { kind: 'pg_restore', program: argv[0] === program ? program : `${argv[0]} ${program}` };
  }
  if (['createdb', 'dropdb', 'psql', 'pg_dump', 'zstd'].includes(base)) return { kind: base, program };
  return null;
}

/**
 * Polls our process tree (every program a run starts is below us) and the postmaster's
 * children, keeping first/last-seen times (Date.now(), to line up with backupctl's log
 * timestamps) per client program kind and per server activity. Resolution: `pollMs`.
 */
export class Timeline {
  readonly clients = new Map<string, Span>();
  /** Every sighting, per `<target|maintenance|db>:<activity>` (a few thousand at most). */
  readonly server = new Map<string, number[]>();
  /** argv[0] of every pg_restore that restored (to tell pg_wrapper from the real binary). */
  readonly restoreArgv0 = new Set<string>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly postmaster: number | undefined,
    private readonly isTarget: (db: string) => boolean,
    private readonly pollMs = 20,
  ) {}

  private mark(map: Map<string, Span>, key: string, now: number): void {
    const s = map.get(key);
    if (s) s.last = now;
    else map.set(key, { first: now, last: now });
  }

  poll = (): void => {
    const now = Date.now();
    const stack = childrenOf(process.pid);
    while (stack.length) {
      const pid = stack.pop() as number;
      if (pid === this.postmaster) continue;
      const argv = argvOf(pid);
      const kind = argv && clientKind(argv);
      if (kind) {
        this.mark(this.clients, kind.kind, now);
        if (kind.kind === 'pg_restore') this.restoreArgv0.add(kind.program);
      }
      stack.push(...childrenOf(pid));
    }
    if (!this.postmaster) return;
    for (const pid of childrenOf(this.postmaster)) {
      const title = argvOf(pid)?.join(' ');
      const m = title && /^postgres: \S+ (\S+) [\d.:a-f[\]]+\(\d+\) (.*)$/.exec(title);
      if (!m) continue;
      const db = m[1] ?? '';
      const activity = (m[2] ?? '').replace(/ waiting$/, '').trim();
      if (activity === 'idle' || activity === 'authentication' || activity === 'startup' || activity === '') continue;
      const where = this.isTarget(db) ? 'target' : db === 'postgres' || db === 'template1' ? 'maintenance' : db;
      const key = `${where}:${activity}`;
      const seen = this.server.get(key) ?? [];
      if (seen.at(-1) !== now) seen.push(now);
      this.server.set(key, seen);
    }
  };

  /** First and last sighting of a server activity, after `after` when given. */
  serverSpan(key: string, after = -Infinity): Span | undefined {
    const ts = (this.server.get(key) ?? []).filter((t) => t > after);
    const first = ts[0];
    const last = ts.at(-1);
    return first === undefined || last === undefined ? undefined : { first, last };
  }

  start(): void {
    this.poll();
    this.timer = setInterval(this.poll, this.pollMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
