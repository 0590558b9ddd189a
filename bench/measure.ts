/**
 * Timing, peak RSS and CPU accounting of one command run.
 *
 * - Wall time: from spawn to exit, with process.hrtime (performance.now()).
 * - Peak RSS of the command: `/usr/bin/time -f %M` around it when available. Note that
 *   for a process that itself waits for children (node -> pg_dump), Linux reports the
 *   max over the process and its waited-for descendants; that is why we also
 * - poll the process tree every `pollMs` (default 50 ms): for every process below the
 *   command we keep its own VmHWM (peak RSS, monotonic, so the last value read is right
 *   up to the final <50 ms) and its CPU time (utime+stime from /proc/<pid>/stat). That
 *   gives node's own peak RSS, pg_dump's peak RSS, and who burned the CPU.
 * - Optionally the same for the PostgreSQL server's backends (children of the
 *   postmaster), which is where the COPY and the row counts run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';

const TIME_BIN = '/usr/bin/time';
const CLK_TCK = 100; // Linux USER_HZ, fixed at 100 on every mainstream architecture
const PAGE_KB = 4;

export const haveGnuTime = ((): boolean => {
  if (!existsSync(TIME_BIN)) return false;
  try {
    return readFileSync(TIME_BIN).includes(Buffer.from('%M'));
  } catch {
    return true;
  }
})();

export interface ProcStat {
  pid: number;
  ppid: number;
  comm: string;
  /** utime + stime, in seconds. */
  cpuS: number;
  /** Current RSS in KiB (from /proc/<pid>/stat). */
  rssKb: number;
}

export function readStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < 0) return null;
  const comm = text.slice(open + 1, close);
  const f = text.slice(close + 2).split(' ');
  // f[0]=state f[1]=ppid ... f[11]=utime f[12]=stime ... f[21]=rss (pages)
  return {
    pid,
    ppid: Number(f[1]),
    comm,
    cpuS: (Number(f[11]) + Number(f[12])) / CLK_TCK,
    rssKb: Number(f[21]) * PAGE_KB,
  };
}

/** VmHWM (peak resident set) of a live process, KiB. */
export function readHwmKb(pid: number): number | null {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m?.[1] ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

export function childrenOf(pid: number): number[] {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').trim();
    if (text) return text.split(/\s+/).map(Number);
  } catch {
    // no such process or no CONFIG_PROC_CHILDREN: fall back to a scan
    return scanChildren(pid);
  }
  return [];
}

function scanChildren(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (st?.ppid === pid) out.push(st.pid);
  }
  return out;
}

export interface ProcSummary {
  comm: string;
  /** Number of distinct processes of this name seen. */
  count: number;
  /** Max VmHWM of any one of them, MiB. */
  peakRssMb: number;
  /** Sum of their CPU time (last values seen), seconds. */
  cpuS: number;
}

/** A server process's role from its title: `postgres: checkpointer`, or `backend` plus what it was seen doing. */
function serverTitle(pid: number): string | null {
  try {
    const title = readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0+$/, '').replace(/\0/g, ' ');
    // backend: "postgres: <user> <db> <host>(<port>) <activity>"
    const m = /^postgres: \S+ \S+ [\d.:a-f[\]]+\(\d+\) (.*)$/.exec(title);
    if (m) return `backend:${(m[1] ?? '').split(' ')[0] ?? ''}`;
    return title.replace(/^postgres: /, '');
  } catch {
    return null;
  }
}

interface Seen {
  name: string;
  cpuS: number;
  hwmKb: number;
  baseCpuS: number;
  tags: Set<string>;
}

/** Tracks processes: per pid, the last CPU time and the max VmHWM seen. */
class Tracker {
  private readonly seen = new Map<number, Seen>();

  constructor(private readonly server = false) {}

  observe(pid: number, baseline?: Map<number, number>): void {
    const st = readStat(pid);
    if (!st) return;
    const hwm = readHwmKb(pid) ?? st.rssKb;
    let name = st.comm;
    let tag: string | null = null;
    if (this.server) {
      const title = serverTitle(pid);
      if (title?.startsWith('backend:')) {
        name = 'backend';
        tag = title.slice('backend:'.length);
      } else if (title) name = title;
      else name = this.seen.get(pid)?.name ?? name; // exiting: its title is gone, keep what we knew
    }
    const prev = this.seen.get(pid);
    if (prev) {
      // comm changes after exec (pg_wrapper's perl -> pg_dump): keep the latest
      prev.name = name;
      prev.cpuS = Math.max(prev.cpuS, st.cpuS);
      prev.hwmKb = Math.max(prev.hwmKb, hwm);
      if (tag) prev.tags.add(tag);
    } else {
      this.seen.set(pid, { name, cpuS: st.cpuS, hwmKb: hwm, baseCpuS: baseline?.get(pid) ?? 0, tags: new Set(tag ? [tag] : []) });
    }
  }

  summary(): ProcSummary[] {
    const by = new Map<string, ProcSummary>();
    for (const p of this.seen.values()) {
      // Backends are told apart by what they did: pg_dump's COPYs, backupctl's counts (SELECT)...
      const tags = [...p.tags].filter((t) => t !== 'idle' && t !== 'authentication' && t !== 'startup');
      const key = p.name === 'backend' ? `backend[${tags.includes('COPY') ? 'COPY' : tags.sort().join(',') || 'idle'}]` : p.name;
      const s = by.get(key) ?? { comm: key, count: 0, peakRssMb: 0, cpuS: 0 };
      s.count += 1;
      s.peakRssMb = Math.max(s.peakRssMb, p.hwmKb / 1024);
      s.cpuS += Math.max(0, p.cpuS - p.baseCpuS);
      by.set(key, s);
    }
    return [...by.values()].sort((a, b) => b.cpuS - a.cpuS);
  }
}

export interface RunOptions {
  env: Record<string, string>;
  cwd?: string;
  /** Wrap in /usr/bin/time -f %M (if present). */
  gnuTime?: boolean;
  pollMs?: number;
  /** Postmaster pid: its children (backends) are tracked too, CPU counted from the start. */
  postmasterPid?: number;
  /** Collect stdout/stderr (small outputs only). */
  capture?: boolean;
  /** Run under `nice -n <nice>` (negative: ahead of other people's load; needs root). */
  nice?: number;
}

export interface RunResult {
  wallS: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** /usr/bin/time's %M: the command and its waited-for descendants, MiB; null without GNU time. */
  timeMaxRssMb: number | null;
  /** The command itself (first process below /usr/bin/time), VmHWM-polled, MiB. */
  selfPeakRssMb: number | null;
  /** Processes below the command, by name. */
  tree: ProcSummary[];
  /** The server's backends (children of the postmaster), by name; CPU is the delta over the run. */
  server: ProcSummary[];
}

let active: ChildProcess | null = null;

/** The command currently running, if any (to kill it on Ctrl-C). */
export function activeChild(): ChildProcess | null {
  return active;
}

export async function runMeasured(cmd: string, args: string[], options: RunOptions): Promise<RunResult> {
  const useTime = (options.gnuTime ?? true) && haveGnuTime;
  const marker = '__BENCH_MAXRSS_KB=';
  const [timed, timedArgs] = useTime ? [TIME_BIN, ['-f', `${marker}%M`, cmd, ...args]] : [cmd, args];
  // `nice` execs its command: the pid, and the tree below it, stay the same.
  const [file, argv] = options.nice ? ['nice', ['-n', String(options.nice), timed, ...timedArgs]] : [timed, timedArgs];

  // Backends' CPU before the run, so that long-lived ones (none here, but still) count only the delta.
  const serverBase = new Map<number, number>();
  if (options.postmasterPid) {
    for (const pid of childrenOf(options.postmasterPid)) {
      const st = readStat(pid);
      if (st) serverBase.set(pid, st.cpuS);
    }
  }
  const tree = new Tracker();
  const server = new Tracker(true);

  const started = performance.now();
  const child = spawn(file, argv, {
    env: options.env,
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  active = child;
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    if (options.capture !== false) stdout += d.toString('utf8');
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString('utf8');
  });

  const rootPid = child.pid ?? 0;
  let selfPid: number | null = useTime ? null : rootPid;
  let selfHwmKb = 0;
  const poll = (): void => {
    if (useTime && selfPid === null) selfPid = childrenOf(rootPid)[0] ?? null;
    if (selfPid !== null) selfHwmKb = Math.max(selfHwmKb, readHwmKb(selfPid) ?? 0);
    const stack = useTime ? childrenOf(rootPid) : [rootPid];
    while (stack.length) {
      const pid = stack.pop() as number;
      tree.observe(pid);
      stack.push(...childrenOf(pid));
    }
    if (options.postmasterPid) {
      for (const pid of childrenOf(options.postmasterPid)) server.observe(pid, serverBase);
    }
  };
  const timer = setInterval(poll, options.pollMs ?? 50);
  poll();

  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c, s) => resolve({ code: c, signal: s }));
  });
  const wallS = (performance.now() - started) / 1000;
  clearInterval(timer);
  active = null;

  let timeMaxRssMb: number | null = null;
  if (useTime) {
    const m = new RegExp(`${marker}(\\d+)`).exec(stderr);
    if (m?.[1]) timeMaxRssMb = Number(m[1]) / 1024;
    stderr = stderr.replace(new RegExp(`^.*${marker}\\d+\\s*$`, 'm'), '').trimEnd();
  }
  return {
    wallS,
    exitCode: code,
    signal,
    stdout,
    stderr,
    timeMaxRssMb,
    selfPeakRssMb: selfHwmKb ? selfHwmKb / 1024 : null,
    tree: tree.summary(),
    server: server.summary().filter((s) => s.cpuS > 0 || s.count > 0),
  };
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? (s[(n - 1) / 2] as number) : ((s[n / 2 - 1] as number) + (s[n / 2] as number)) / 2;
}

/** Busy CPU seconds of the whole machine so far (all cores), from /proc/stat. */
export function machineBusyS(): number {
  // cpu  user nice system idle iowait irq softirq steal ...
  const line = readFileSync('/proc/stat', 'latin1').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - idle) / CLK_TCK;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits until the machine is quiet: less than `maxBusyCores` cores busy over a 1 s window
 * (other people's test suites share this machine). Gives up after `maxWaitS` and returns
 * how busy the last window was, so the caller can note a noisy run.
 */
export async function waitForQuiet(maxBusyCores = 0.3, maxWaitS = 120): Promise<{ waitedS: number; busyCores: number }> {
  const started = performance.now();
  let busyCores = 0;
  for (;;) {
    const b0 = machineBusyS();
    const t0 = performance.now();
    await sleep(1000);
    busyCores = (machineBusyS() - b0) / ((performance.now() - t0) / 1000);
    const waitedS = (performance.now() - started) / 1000;
    if (busyCores <= maxBusyCores || waitedS >= maxWaitS) return { waitedS, busyCores };
  }
}
