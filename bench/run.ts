/**
 * `npm run bench`: backupctl create vs raw pg_dump, on a throw-away cluster.
 *
 *   BENCH_SMALL_MB=500  BENCH_LARGE_MB=1000  BENCH_RUNS=3  BENCH_WARMUP=1  BENCH_WORKDIR=$TMPDIR
 *   BENCH_QUIET_CORES=0.3  BENCH_QUIET_WAIT_S=20  BENCH_NICE=-10 (root only; 0 to disable)
 *
 * For each size (base: the schema and 1,000 products only, the fixed cost of a run; small;
 * then the same database grown to large): a warm-up of each side
 * (not counted), then BENCH_RUNS rounds of A (raw `pg_dump -Fc -f FILE`) then B
 * (`node bin/backupctl.js create`, custom format, default compression, globals on),
 * both connecting through PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE. Every output is
 * deleted right after it is measured. Results: a table on stdout, bench/RESULTS.md,
 * and a JSON summary as the last line of stdout.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { startCluster, type Cluster } from '../test/helpers/cluster.js';
import { DatasetBuilder, type DatasetInfo } from './dataset.js';
import { activeChild, haveGnuTime, machineBusyS, median, runMeasured, waitForQuiet, type RunResult } from './measure.js';
import { cleanUpOnExit, cpuFields, envInt, f1, f2, f3, filesUnder, log, mb, postmasterPid, reniceServer, setAutogroupNice, snapshotBuild } from './common.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The backupctl under test: a frozen copy of bin/ + dist/ taken at start (see snapshotBuild). */
let BIN = path.join(ROOT, 'bin', 'backupctl.js');
const RESULTS = path.join(ROOT, 'bench', 'RESULTS.md');
const ANALYSIS_MARKER = '<!-- analysis: everything below this line is kept when the bench rewrites this file -->';


const CONFIG = {
  // The issue's data set is >= 500 MB on disk: both measured sizes are.
  smallMb: envInt('BENCH_SMALL_MB', 500),
  largeMb: envInt('BENCH_LARGE_MB', 1000),
  runs: envInt('BENCH_RUNS', 3),
  warmup: envInt('BENCH_WARMUP', 1, 0),
  workdirBase: process.env.BENCH_WORKDIR || os.tmpdir(),
  /** Before each run, wait (up to quietWaitS) for a 1 s window with at most this many busy cores. */
  quietCores: Number(process.env.BENCH_QUIET_CORES ?? 0.3),
  quietWaitS: envInt('BENCH_QUIET_WAIT_S', 20, 0),
  /**
   * Niceness of everything measured: the commands and the PostgreSQL server. The machine
   * is shared (other people's test suites); a negative value keeps their load from
   * deciding our timings. Both sides get the same. Needs root; 0 disables.
   */
  nice: Number(process.env.BENCH_NICE ?? (process.getuid?.() === 0 ? -10 : 0)),
};

/**
 * base: the schema and 1,000 products (no orders or events): what a run costs whatever the
 * database, reported but not held to the ratio target (the targets are for the data set).
 */
type Size = 'base' | 'small' | 'large';

const TARGETS = { ratio: 1.05, rssMb: 120, rssGrowth: { factor: 1.2, plusMb: 10 } };


// ---------------------------------------------------------------------------
// Cleanup, also on failure and Ctrl-C

let cluster: Cluster | null = null;
let workdir: string | null = null;
let builder: DatasetBuilder | null = null;

function cleanupSync(): void {
  const child = activeChild();
  if (child && child.exitCode === null) {
    try {
      // /usr/bin/time forwards nothing: kill what runs under it too (its process group is ours, so target the tree by pid)
      child.kill('SIGTERM');
    } catch {
      // gone
    }
  }
  if (workdir) {
    rmSync(workdir, { recursive: true, force: true });
    workdir = null;
  }
  // The cluster helper's own exit/signal hooks stop the server and remove its directory.
}

cleanUpOnExit(cleanupSync, log);

// ---------------------------------------------------------------------------

interface Machine {
  date: string;
  hostname: string;
  nproc: number;
  cpuModel: string;
  ramGb: number;
  kernel: string;
  node: string;
  postgresServer: string;
  pgDump: string;
  backupctlPgDump: string | null;
  gnuTime: boolean;
  /** sha256 (16 hex) of dist/*.js as measured. */
  distHash: string;
}

interface Phases {
  /** spawn -> "backing up" log line: node startup, config, connect + snapshot, facts, pg_dump/pg_restore discovery. */
  startupS: number | null;
  /** "backing up" -> "dump: done": pg_dump streaming through sha256 into storage (incl. fsync/rename). */
  dumpS: number | null;
  /** "dump: done" -> "completed": TOC read, waiting for row counts, globals, sidecar. */
  afterDumpS: number | null;
  /** "completed" -> process exit. */
  exitS: number | null;
}

interface RunRecord {
  size: Size;
  tool: 'raw' | 'backupctl';
  round: number;
  warmup: boolean;
  wallS: number;
  artifactBytes: number;
  /** raw: pg_dump's; backupctl: node's own (VmHWM polled). */
  peakRssMb: number | null;
  /** /usr/bin/time %M: the command and its waited-for children. */
  timeMaxRssMb: number | null;
  /** pg_dump's own peak RSS (in backupctl runs: the child's). */
  pgDumpRssMb: number | null;
  /** CPU seconds by process name: client side (tree) and server side (backends). */
  clientCpu: Record<string, number>;
  serverCpu: Record<string, number>;
  /** Busy CPU seconds of the whole machine during the run (all cores), from /proc/stat. */
  machineBusyS: number;
  /** machineBusyS minus the CPU of the processes we track: other people's load during the run. */
  foreignCpuS: number;
  /** Busy cores in the 1 s before the run, and how long we waited for quiet. */
  preBusyCores: number;
  quietWaitS: number;
  phases: Phases | null;
  sidecarDurationS: number | null;
}

interface SizeResult {
  size: Size;
  targetMb: number;
  dataset: DatasetInfo;
  uncompressedDumpBytes: number | null;
  runs: RunRecord[];
}





function parsePhases(stderr: string, spawnEpochMs: number, endEpochMs: number): Phases | null {
  const times: Record<string, number> = {};
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as { time?: string; message?: string };
      if (!entry.time || !entry.message) continue;
      const t = Date.parse(entry.time);
      if (entry.message.startsWith('backing up ')) times.start = t;
      else if (entry.message.startsWith('dump: done')) times.dump = t;
      else if (/^backup \S+ completed/.test(entry.message)) times.done = t;
    } catch {
      // not ours
    }
  }
  if (times.start === undefined) return null;
  const s = (a: number | undefined, b: number | undefined): number | null => (a === undefined || b === undefined ? null : (b - a) / 1000);
  return { startupS: s(spawnEpochMs, times.start), dumpS: s(times.start, times.dump), afterDumpS: s(times.dump, times.done), exitS: s(times.done, endEpochMs) };
}


async function runRaw(c: Cluster, size: SizeResult['size'], round: number, warmup: boolean, dir: string): Promise<RunRecord> {
  const file = path.join(dir, `raw-${size}-${round}${warmup ? '-warmup' : ''}.dump`);
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...c.env('bench') };
  const busy0 = machineBusyS();
  const r = await runMeasured(c.bin('pg_dump'), ['-Fc', '-f', file], { env, postmasterPid: postmasterPid(c), nice: CONFIG.nice });
  const busy = machineBusyS() - busy0;
  check(r, 'pg_dump');
  const bytes = statSync(file).size;
  rmSync(file, { force: true });
  const pgDumpSelf = r.tree.find((p) => p.comm === 'pg_dump');
  return {
    size,
    tool: 'raw',
    round,
    warmup,
    wallS: r.wallS,
    artifactBytes: bytes,
    peakRssMb: r.timeMaxRssMb ?? r.selfPeakRssMb,
    timeMaxRssMb: r.timeMaxRssMb,
    pgDumpRssMb: r.timeMaxRssMb ?? pgDumpSelf?.peakRssMb ?? null,
    ...cpuFields(r, busy),
    phases: null,
    sidecarDurationS: null,
  };
}

async function runBackupctl(c: Cluster, size: SizeResult['size'], round: number, warmup: boolean, dir: string): Promise<RunRecord> {
  const storage = path.join(dir, `storage-${size}-${round}${warmup ? '-warmup' : ''}`);
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', NO_COLOR: '1', ...c.env('bench') };
  const args = [BIN, '--storage', storage, '--json', '--log-format', 'json', '--verbose', 'create', '--format', 'custom'];
  const busy0 = machineBusyS();
  const spawnEpoch = Date.now();
  const r = await runMeasured(process.execPath, args, { env, cwd: dir, postmasterPid: postmasterPid(c), nice: CONFIG.nice });
  const endEpoch = Date.now();
  const busy = machineBusyS() - busy0;
  check(r, 'backupctl create');
  const files = filesUnder(storage);
  const artifact = files.find((f) => f.endsWith('.dump'));
  const sidecarFile = files.find((f) => f.endsWith('.json'));
  if (!artifact) throw new Error(`backupctl wrote no .dump artifact into ${storage}: ${files.join(', ')}`);
  let sidecarDurationS: number | null = null;
  if (sidecarFile) {
    const sidecar = JSON.parse(readFileSync(sidecarFile, 'utf8')) as { durationMs?: number; dump?: { format?: string; compress?: unknown } };
    sidecarDurationS = typeof sidecar.durationMs === 'number' ? sidecar.durationMs / 1000 : null;
    if (sidecar.dump?.format !== 'custom' || sidecar.dump.compress !== null) {
      throw new Error(`unexpected dump options in the sidecar: ${JSON.stringify(sidecar.dump)}`);
    }
  }
  const bytes = statSync(artifact).size;
  rmSync(storage, { recursive: true, force: true });
  const pgDump = r.tree.find((p) => p.comm === 'pg_dump');
  const usingLine = /using (\S+) /.exec(r.stderr);
  if (usingLine?.[1]) backupctlPgDump = usingLine[1];
  return {
    size,
    tool: 'backupctl',
    round,
    warmup,
    wallS: r.wallS,
    artifactBytes: bytes,
    peakRssMb: r.selfPeakRssMb,
    timeMaxRssMb: r.timeMaxRssMb,
    pgDumpRssMb: pgDump?.peakRssMb ?? null,
    ...cpuFields(r, busy),
    phases: parsePhases(r.stderr, spawnEpoch, endEpoch),
    sidecarDurationS,
  };
}

let backupctlPgDump: string | null = null;


type Runner = (c: Cluster, size: SizeResult['size'], round: number, warmup: boolean, dir: string) => Promise<RunRecord>;

/** Waits for a quiet machine, then runs. */
async function measureOne(run: Runner, c: Cluster, size: SizeResult['size'], round: number, warmup: boolean, dir: string): Promise<RunRecord> {
  const quiet = CONFIG.quietWaitS > 0 ? await waitForQuiet(CONFIG.quietCores, CONFIG.quietWaitS) : { waitedS: 0, busyCores: NaN };
  const rec = await run(c, size, round, warmup, dir);
  rec.preBusyCores = quiet.busyCores;
  rec.quietWaitS = quiet.waitedS;
  return rec;
}

function check(r: RunResult, what: string): void {
  if (r.exitCode !== 0) {
    throw new Error(`${what} failed (exit ${r.exitCode ?? r.signal}):\n${r.stderr.slice(-4000)}`);
  }
}

function describe(rec: RunRecord): string {
  const ph = rec.phases
    ? ` [startup ${f2(rec.phases.startupS)} | dump ${f2(rec.phases.dumpS)} | after ${f2(rec.phases.afterDumpS)} | exit ${f2(rec.phases.exitS)}]`
    : '';
  return (
    `${rec.warmup ? 'warm-up ' : ''}${rec.tool.padEnd(9)} ${f3(rec.wallS)} s  ${mb(rec.artifactBytes).toFixed(1)} MB  ` +
    `rss ${f1(rec.peakRssMb)} MB (time %M ${f1(rec.timeMaxRssMb)})  busy ${f1(rec.machineBusyS)} cpu-s (foreign ${f1(rec.foreignCpuS)}; before ${f2(rec.preBusyCores)} cores, waited ${f1(rec.quietWaitS)} s)${ph}`
  );
}

function cpuMedians(runs: RunRecord[], key: 'clientCpu' | 'serverCpu'): Record<string, number> {
  const names = new Set(runs.flatMap((r) => Object.keys(r[key])));
  return Object.fromEntries([...names].map((n) => [n, Number(median(runs.map((r) => r[key][n] ?? 0)).toFixed(2))]));
}

interface Row {
  size: string;
  dbMb: number;
  rawS: number;
  backupctlS: number;
  ratio: number;
  backupctlRssMb: number;
  backupctlTimeRssMb: number;
  rawPgDumpRssMb: number;
  rawBytes: number;
  backupctlBytes: number;
  /** Median over rounds of (backupctl - raw) of the same round: backupctl's extra seconds. */
  pairedDiffS: number;
}

function rowsOf(results: SizeResult[]): Row[] {
  return results.map((s) => {
    const raw = s.runs.filter((r) => !r.warmup && r.tool === 'raw');
    const bc = s.runs.filter((r) => !r.warmup && r.tool === 'backupctl');
    const rawS = median(raw.map((r) => r.wallS));
    const backupctlS = median(bc.map((r) => r.wallS));
    return {
      size: s.size,
      dbMb: mb(s.dataset.sizeBytes),
      rawS,
      backupctlS,
      ratio: backupctlS / rawS,
      backupctlRssMb: Math.max(...bc.map((r) => r.peakRssMb ?? 0)),
      backupctlTimeRssMb: Math.max(...bc.map((r) => r.timeMaxRssMb ?? 0)),
      rawPgDumpRssMb: Math.max(...raw.map((r) => r.pgDumpRssMb ?? 0)),
      rawBytes: median(raw.map((r) => r.artifactBytes)),
      backupctlBytes: median(bc.map((r) => r.artifactBytes)),
      pairedDiffS: median(bc.map((b) => b.wallS - (raw.find((r) => r.round === b.round)?.wallS ?? NaN))),
    };
  });
}

function verdicts(rows: Row[]): { name: string; pass: boolean; detail: string }[] {
  const out = rows.filter((r) => r.size !== 'base').map((r) => ({
    name: `ratio ${r.size} <= ${TARGETS.ratio}`,
    pass: r.ratio <= TARGETS.ratio,
    detail: `${f3(r.ratio)} (${f2(r.backupctlS)} s vs ${f2(r.rawS)} s)`,
  }));
  for (const r of rows) {
    out.push({ name: `peak RSS ${r.size} <= ${TARGETS.rssMb} MB`, pass: r.backupctlRssMb <= TARGETS.rssMb, detail: `${f1(r.backupctlRssMb)} MB` });
  }
  const small = rows.find((r) => r.size === 'small');
  const large = rows.find((r) => r.size === 'large');
  if (small && large) {
    const limit = small.backupctlRssMb * TARGETS.rssGrowth.factor + TARGETS.rssGrowth.plusMb;
    out.push({
      name: 'RSS not growing (large <= small*1.2+10 MB)',
      pass: large.backupctlRssMb <= limit,
      detail: `${f1(large.backupctlRssMb)} MB vs limit ${f1(limit)} MB`,
    });
  }
  return out;
}

function table(rows: Row[]): string[] {
  const head = [
    '| size | pg_database_size MB | median raw s | median backupctl s | ratio | median paired Δ s | backupctl node peak RSS MB (max) | /usr/bin/time %M MB (max) | raw pg_dump peak RSS MB | raw artifact MB | backupctl artifact MB |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  return head.concat(
    rows.map(
      (r) =>
        `| ${r.size} | ${r.dbMb.toFixed(0)} | ${f2(r.rawS)} | ${f2(r.backupctlS)} | ${f3(r.ratio)} | ${r.pairedDiffS >= 0 ? '+' : ''}${f2(r.pairedDiffS)} | ${f1(r.backupctlRssMb)} | ${f1(r.backupctlTimeRssMb)} | ${f1(r.rawPgDumpRssMb)} | ${mb(r.rawBytes).toFixed(1)} | ${mb(r.backupctlBytes).toFixed(1)} |`,
    ),
  );
}

function writeResults(machine: Machine, results: SizeResult[], rows: Row[], checks: ReturnType<typeof verdicts>, totalS: number): void {
  const lines: string[] = [];
  lines.push('# backupctl create vs raw pg_dump: results', '');
  lines.push('Generated by `npm run bench` (bench/run.ts). Rerunning rewrites the part above the analysis marker.', '');
  lines.push('## Machine', '');
  lines.push(`- date: ${machine.date}`);
  lines.push(`- CPU: ${machine.nproc} cores (nproc), ${machine.cpuModel}`);
  lines.push(`- RAM: ${machine.ramGb.toFixed(1)} GB`);
  lines.push(`- kernel: ${machine.kernel}`);
  lines.push(`- node: ${machine.node}`);
  lines.push(`- PostgreSQL server: ${machine.postgresServer}`);
  lines.push(`- raw side: \`${machine.pgDump}\``);
  lines.push(`- backupctl chose: \`${machine.backupctlPgDump ?? '?'}\``);
  lines.push(`- backupctl build: bin/ + dist/ as built by \`npm run build\` at the start, copied once into the work dir and run from there (others rebuild dist/ in this tree during the bench); dist sha256 ${machine.distHash}`);
  lines.push(`- peak RSS: ${machine.gnuTime ? '/usr/bin/time -f %M, plus VmHWM of each process polled every 50 ms' : 'VmHWM polled every 50 ms'}`);
  lines.push('');
  lines.push('## Reproduce', '');
  lines.push('```sh', 'npm run bench', '# knobs (defaults shown):', `BENCH_SMALL_MB=500 BENCH_LARGE_MB=1000 BENCH_RUNS=3 BENCH_WARMUP=1 BENCH_QUIET_CORES=0.3 BENCH_QUIET_WAIT_S=20 BENCH_NICE=-10 BENCH_WORKDIR=${os.tmpdir()} npm run bench`, '```', '');
  lines.push(
    `This run: BENCH_SMALL_MB=${CONFIG.smallMb} BENCH_LARGE_MB=${CONFIG.largeMb} BENCH_RUNS=${CONFIG.runs} BENCH_WARMUP=${CONFIG.warmup} ` +
      `BENCH_QUIET_CORES=${CONFIG.quietCores} BENCH_QUIET_WAIT_S=${CONFIG.quietWaitS} BENCH_NICE=${CONFIG.nice}; total ${(totalS / 60).toFixed(1)} min.`,
    '',
  );
  lines.push(
    'Raw: `pg_dump -Fc -f FILE` (the cluster\'s own pg_dump). backupctl: `node bin/backupctl.js --storage DIR --json --log-format json --verbose create --format custom` ' +
      '(default compression, globals on, row counts on). Both get the connection from PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE. ' +
      'Runs alternate raw, backupctl, raw, backupctl... after one unmeasured warm-up of each; every output is deleted after it is measured. ' +
      'Before each run the bench waits (up to BENCH_QUIET_WAIT_S) for a 1 s window with at most BENCH_QUIET_CORES busy cores, because the machine is shared; ' +
      'and (as root) the server and both commands run at nice BENCH_NICE (default -10, the same for both sides; set as process nice and as autogroup nice, since with CONFIG_SCHED_AUTOGROUP sessions compete by their autogroup\'s nice), so that other people\'s test suites do not decide the timings.',
    '',
  );
  lines.push('## Data set', '');
  lines.push('| size | target MB | pg_database_size MB | customers | orders | events | uncompressed dump MB (-Z0) | default-compressed MB | gzip ratio | build s |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const s of results) {
    const row = rows.find((r) => r.size === s.size);
    const ratio = s.uncompressedDumpBytes && row ? s.uncompressedDumpBytes / row.rawBytes : NaN;
    lines.push(
      `| ${s.size} | ${s.targetMb} | ${mb(s.dataset.sizeBytes).toFixed(0)} | ${s.dataset.customers.toLocaleString('en-US')} | ${s.dataset.orders.toLocaleString('en-US')} | ${s.dataset.events.toLocaleString('en-US')} | ${s.uncompressedDumpBytes ? mb(s.uncompressedDumpBytes).toFixed(0) : '-'} | ${row ? mb(row.rawBytes).toFixed(0) : '-'} | ${f2(ratio)} | ${f1(s.dataset.buildS)} |`,
    );
  }
  lines.push('');
  lines.push('## Results (medians)', '');
  lines.push(...table(rows), '');
  lines.push(
    '"median paired Δ" is the median over rounds of backupctl minus the raw run just before it: the seconds backupctl adds. ' +
      'If they are a fixed cost, the ratio target is met once raw pg_dump takes longer than Δ / 0.05: ' +
      rows.map((r) => `${f1(r.pairedDiffS / (TARGETS.ratio - 1))} s (from ${r.size})`).join(', ') +
      '.',
    '',
  );
  lines.push('## Verdict', '');
  for (const c of checks) lines.push(`- ${c.pass ? 'PASS' : 'FAIL'} ${c.name}: ${c.detail}`);
  lines.push('');
  lines.push('## CPU seconds per process (medians over measured runs)', '');
  lines.push('Client side: the command and its children (polled /proc/<pid>/stat). Server side: the PostgreSQL backends that served the run (children of the postmaster). "machine busy" is all cores, from /proc/stat.', '');
  lines.push('| size | tool | wall s | machine busy cpu-s | client CPU s | server CPU s |', '|---|---|---:|---:|---|---|');
  for (const s of results) {
    for (const tool of ['raw', 'backupctl'] as const) {
      const runs = s.runs.filter((r) => !r.warmup && r.tool === tool);
      const fmt = (m: Record<string, number>): string =>
        Object.entries(m)
          .filter(([, v]) => v >= 0.01)
          .sort((a, b) => b[1] - a[1])
          .map(([k, v]) => `${k} ${v.toFixed(2)}`)
          .join(', ');
      lines.push(
        `| ${s.size} | ${tool} | ${f2(median(runs.map((r) => r.wallS)))} | ${f1(median(runs.map((r) => r.machineBusyS)))} | ${fmt(cpuMedians(runs, 'clientCpu'))} | ${fmt(cpuMedians(runs, 'serverCpu'))} |`,
      );
    }
  }
  lines.push('');
  lines.push('## backupctl phases (medians, from its JSON log timestamps)', '');
  lines.push('startup = spawn to "backing up" (node start, config, connect, snapshot, facts, pg_dump + pg_restore discovery); dump = pg_dump streamed through sha256 into storage incl. fsync; after = TOC read + waiting for the row counts + globals (incl. pg_dumpall discovery) + sidecar; exit = "completed" to process exit.', '');
  lines.push('| size | startup s | dump s | after s | exit s | sidecar durationMs s |', '|---|---:|---:|---:|---:|---:|');
  for (const s of results) {
    const runs = s.runs.filter((r) => !r.warmup && r.tool === 'backupctl');
    const m = (k: keyof Phases): number => median(runs.map((r) => r.phases?.[k] ?? NaN));
    lines.push(`| ${s.size} | ${f2(m('startupS'))} | ${f2(m('dumpS'))} | ${f2(m('afterDumpS'))} | ${f2(m('exitS'))} | ${f2(median(runs.map((r) => r.sidecarDurationS ?? NaN)))} |`);
  }
  lines.push('');
  lines.push('## Every run', '');
  lines.push('"foreign cpu-s" is CPU burnt on the machine during the run by processes other than ours (other test suites): a run with a large value is noisy.', '');
  lines.push('| size | order | tool | wall s | artifact bytes | peak RSS MB | time %M MB | pg_dump RSS MB | machine busy cpu-s | foreign cpu-s | startup s | dump s | after s | exit s |');
  lines.push('|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const s of results) {
    s.runs.forEach((r, i) => {
      lines.push(
        `| ${s.size} | ${i + 1}${r.warmup ? ' (warm-up)' : ''} | ${r.tool} | ${f3(r.wallS)} | ${r.artifactBytes} | ${f1(r.peakRssMb)} | ${f1(r.timeMaxRssMb)} | ${f1(r.pgDumpRssMb)} | ${f1(r.machineBusyS)} | ${f1(r.foreignCpuS)} | ${f2(r.phases?.startupS)} | ${f2(r.phases?.dumpS)} | ${f2(r.phases?.afterDumpS)} | ${f2(r.phases?.exitS)} |`,
      );
    });
  }
  lines.push('');

  let analysis = `${ANALYSIS_MARKER}\n\n## Analysis\n\n(not written yet)\n`;
  if (existsSync(RESULTS)) {
    const old = readFileSync(RESULTS, 'utf8');
    const at = old.indexOf(ANALYSIS_MARKER);
    if (at >= 0) analysis = old.slice(at);
  }
  writeFileSync(RESULTS, `${lines.join('\n')}\n${analysis}`);
}

function machineInfo(c: Cluster, serverVersion: string): Machine {
  const cpuModel = os.cpus()[0]?.model ?? 'unknown';
  let nproc = os.availableParallelism();
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  } catch {
    // keep availableParallelism
  }
  return {
    date: new Date().toISOString(),
    hostname: os.hostname(),
    nproc,
    cpuModel,
    ramGb: os.totalmem() / 1024 ** 3,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    postgresServer: serverVersion,
    pgDump: `${c.bin('pg_dump')} (${execFileSync(c.bin('pg_dump'), ['--version'], { encoding: 'utf8' }).trim()})`,
    backupctlPgDump: null,
    gnuTime: haveGnuTime,
    distHash: '',
  };
}

async function uncompressedSize(c: Cluster, dir: string): Promise<number> {
  const file = path.join(dir, 'probe-z0.dump');
  execFileSync(c.bin('pg_dump'), ['-Fc', '-Z0', '-f', file], { env: { ...process.env, ...c.env('bench') }, stdio: ['ignore', 'ignore', 'inherit'] });
  const bytes = statSync(file).size;
  rmSync(file, { force: true });
  return bytes;
}

async function main(): Promise<void> {
  const t0 = performance.now();
  if (!existsSync(path.join(ROOT, 'dist', 'cli.js'))) throw new Error('dist/ is missing: run `npm run build` (npm run bench does)');
  log(`bench: small ${CONFIG.smallMb} MB, large ${CONFIG.largeMb} MB, ${CONFIG.runs} runs each (+${CONFIG.warmup} warm-up), ${os.availableParallelism()} CPUs`);
  workdir = mkdtempSync(path.join(CONFIG.workdirBase, 'backupctl-bench-'));
  log(`work dir ${workdir}`);
  const snapshot = snapshotBuild(ROOT, workdir);
  BIN = snapshot.bin;
  const distHash = snapshot.distHash;
  log(`backupctl under test: a frozen copy of bin/ + dist/ (dist sha256 ${distHash}) at ${BIN}`);
  log('starting a throw-away cluster...');
  cluster = await startCluster({ name: 'bench' });
  const c = cluster;
  log(`PostgreSQL ${c.majorVersion} on ${c.host}:${c.port} (${c.binDir})`);
  if (CONFIG.nice) {
    reniceServer(c, CONFIG.nice, log);
    setAutogroupNice('self', CONFIG.nice, log); // the measured commands run in our session
    log(`server and measured commands run at nice ${CONFIG.nice} (BENCH_NICE)`);
  }
  await c.createDatabase('bench');
  const serverVersion = (await c.query<{ v: string }>('postgres', 'SELECT version() AS v'))[0]?.v ?? '?';
  const machine = machineInfo(c, serverVersion);
  machine.distHash = distHash;
  builder = await DatasetBuilder.connect({ host: c.host, port: c.port, user: c.user, password: c.password, database: 'bench' });

  const results: SizeResult[] = [];
  for (const [size, targetMb] of [
    ['base', 0],
    ['small', CONFIG.smallMb],
    ['large', CONFIG.largeMb],
  ] as const) {
    log('');
    log(`== ${size}: building to >= ${targetMb} MB (pg_database_size)`);
    const dataset = await builder.growTo(targetMb * 1024 * 1024, (l) => log(l));
    log(
      `pg_database_size(bench) = ${mb(dataset.sizeBytes).toFixed(1)} MB (${dataset.sizeBytes} bytes): ` +
        `${dataset.customers} customers, ${dataset.orders} orders, ${dataset.events} events; built in ${dataset.buildS.toFixed(1)} s`,
    );
    const uncompressed = await uncompressedSize(c, workdir);
    log(`uncompressed custom dump (-Z0): ${mb(uncompressed).toFixed(1)} MB`);
    const result: SizeResult = { size, targetMb, dataset, uncompressedDumpBytes: uncompressed, runs: [] };
    results.push(result);
    for (let w = 0; w < CONFIG.warmup; w++) {
      for (const run of [runRaw, runBackupctl]) {
        const rec = await measureOne(run, c, size, w, true, workdir);
        result.runs.push(rec);
        log(`  ${describe(rec)}`);
      }
    }
    for (let round = 1; round <= CONFIG.runs; round++) {
      for (const run of [runRaw, runBackupctl]) {
        const rec = await measureOne(run, c, size, round, false, workdir);
        result.runs.push(rec);
        log(`  [${round}/${CONFIG.runs}] ${describe(rec)}`);
      }
    }
  }
  machine.backupctlPgDump = backupctlPgDump;

  const rows = rowsOf(results);
  const checks = verdicts(rows);
  log('');
  for (const line of table(rows)) log(line);
  log('');
  for (const ch of checks) log(`${ch.pass ? 'PASS' : 'FAIL'}  ${ch.name}: ${ch.detail}`);
  const totalS = (performance.now() - t0) / 1000;
  writeResults(machine, results, rows, checks, totalS);
  log('');
  log(`wrote ${path.relative(ROOT, RESULTS)}`);
  const summary = {
    machine,
    config: CONFIG,
    targets: TARGETS,
    sizes: results.map((s) => ({
      size: s.size,
      targetMb: s.targetMb,
      pgDatabaseSizeBytes: s.dataset.sizeBytes,
      uncompressedDumpBytes: s.uncompressedDumpBytes,
      rows: { customers: s.dataset.customers, orders: s.dataset.orders, events: s.dataset.events },
    })),
    results: rows.map((r) => ({
      size: r.size,
      medianRawS: Number(r.rawS.toFixed(3)),
      medianBackupctlS: Number(r.backupctlS.toFixed(3)),
      ratio: Number(r.ratio.toFixed(4)),
      medianPairedDiffS: Number(r.pairedDiffS.toFixed(3)),
      backupctlPeakRssMb: Number(r.backupctlRssMb.toFixed(1)),
      backupctlTimeMaxRssMb: Number(r.backupctlTimeRssMb.toFixed(1)),
      rawPgDumpPeakRssMb: Number(r.rawPgDumpRssMb.toFixed(1)),
      rawArtifactBytes: r.rawBytes,
      backupctlArtifactBytes: r.backupctlBytes,
    })),
    verdict: { pass: checks.every((ch) => ch.pass), checks },
    runs: results.flatMap((s) => s.runs),
    totalS: Number(totalS.toFixed(1)),
  };
  log(JSON.stringify(summary));
  process.exitCode = summary.verdict.pass ? 0 : 1;
}

try {
  await main();
} catch (error) {
  process.exitCode = 2;
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
} finally {
  await (builder as DatasetBuilder | null)?.close();
  await (cluster as Cluster | null)?.stop();
  cleanupSync();
}
