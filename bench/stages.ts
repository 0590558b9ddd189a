/**
 * `npm run bench:stages`: the figures of issue 12, measured in one run on one data set:
 * backupctl's stages (pg_dump -Z0 -> zstd -> [age]) end to end against plain pg_dump /
 * pg_restore, on a throw-away cluster with the data set of bench/dataset.ts.
 *
 *   BENCH_STAGES_MB=600 (comma-separated: several sizes, grown in turn: 500,1000)
 *   BENCH_RUNS=3  BENCH_WARMUP=1  BENCH_STAGES_JOBS=1,2  BENCH_WORKDIR=$TMPDIR
 *   BENCH_QUIET_CORES=0.3  BENCH_QUIET_WAIT_S=20  BENCH_NICE=-10 (root only; 0 to disable)
 *   BENCH_OTHER_WAIT_S=1800 (wait while another bench of this project runs)
 *   BENCH_STAGES_RESULTS=bench/RESULTS.md (the file the dated section is appended to)
 *
 * Per size, rounds of (odd rounds in this order, even rounds reversed; first an unmeasured
 * warm-up round):
 *   create   raw        pg_dump -Fc -f FILE                     (pg_dump's own gzip 6)
 *            zstd       backupctl create                        (default: pg_dump -Z0 | zstd -3 -T2)
 *            zstd+age   backupctl create --recipient age1...    (one X25519 recipient)
 * then, per --jobs N, rounds of:
 *   restore  raw        createdb DB && pg_restore --exit-on-error --jobs N -d DB FILE   (then dropdb DB, timed apart)
 *            verify     backupctl verify ID --level restore --jobs N [--identity KEY]   (zstd, zstd+age artifacts)
 *            restore    backupctl restore ID --target-db DB --create --yes --jobs N [--identity KEY]   (then DROP DATABASE, untimed)
 * The first output of each create side (warm-up or not) is kept for the restore rounds:
 * the raw archive, and one backupctl storage per artifact kind.
 *
 * Every run waits for a quiet machine (measure.ts waitForQuiet) and for the project's
 * other benches, runs at nice BENCH_NICE (root), and is measured by measure.ts (wall,
 * /usr/bin/time %M, VmHWM of every process in its tree, CPU per process, the server's
 * backends); for pg_restore the phases around it come from timeline.ts. Results: a table
 * on stdout, a dated section appended to bench/RESULTS.md, and a JSON summary as the last
 * line of stdout.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatIdentityFile, generateIdentity } from '../src/pipeline/age/index.js';
import { startCluster, type Cluster } from '../test/helpers/cluster.js';
import { baseEnv, cleanUpOnExit, cpuFields, envInt, f1, f2, f3, filesUnder, killActive, log, MB, mb, postmasterPid, reniceServer, setAutogroupNice, snapshotBuild, stopClusterSync, waitForOtherBenches } from './common.js';
import { DatasetBuilder, type DatasetInfo } from './dataset.js';
import { haveGnuTime, machineBusyS, median, runMeasured, waitForQuiet, type RunResult } from './measure.js';
import { restoreSpans, secs, Timeline } from './timeline.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let BIN = path.join(ROOT, 'bin', 'backupctl.js');

function intList(name: string, fallback: string): number[] {
  return (process.env[name] || fallback).split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: not a positive integer: ${JSON.stringify(s)}`);
    return n;
  });
}

const CONFIG = {
  sizes: intList('BENCH_STAGES_MB', '600'),
  runs: envInt('BENCH_RUNS', 3),
  warmup: envInt('BENCH_WARMUP', 1, 0),
  jobs: intList('BENCH_STAGES_JOBS', '1,2'),
  workdirBase: process.env.BENCH_WORKDIR || os.tmpdir(),
  quietCores: Number(process.env.BENCH_QUIET_CORES ?? 0.3),
  quietWaitS: envInt('BENCH_QUIET_WAIT_S', 20, 0),
  nice: Number(process.env.BENCH_NICE ?? (process.getuid?.() === 0 ? -10 : 0)),
  otherBenchWaitS: envInt('BENCH_OTHER_WAIT_S', 1800, 0),
  results: path.resolve(process.env.BENCH_STAGES_RESULTS || path.join(ROOT, 'bench', 'RESULTS.md')),
};

/** The goals of issue 12. */
const TARGETS = {
  /** raw pg_dump -Fc time / backupctl create time. */
  createSpeedup: 3,
  /** backupctl's artifact / pg_dump -Fc's. */
  sizeRatio: 1,
  /** encrypted create / unencrypted create. */
  encryptRatio: 1.1,
  /** verify, restore / raw pg_restore (+ dropdb for verify). */
  restoreRatio: 1,
  rssMb: 120,
  rssGrowth: { factor: 1.2, plusMb: 10 },
};
/** Benches that spoil this one's timings when they run at the same time. */
const OTHER_BENCHES = ['run', 'verify', 'profile', 'pipeline'];
/** A run is noisy when other people's processes burnt more than this many cores on average during it. */
const NOISY_CORES = 0.25;


// ---------------------------------------------------------------------------------------
// Cleanup, also on failure and Ctrl-C

let cluster: Cluster | null = null;
let workdir: string | null = null;
let builder: DatasetBuilder | null = null;

function cleanupSync(): void {
  killActive();
  if (workdir) {
    rmSync(workdir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    workdir = null;
  }
  if (cluster) {
    stopClusterSync(cluster);
    cluster = null;
  }
}

cleanUpOnExit(cleanupSync, log);

// ---------------------------------------------------------------------------------------

type CreateSide = 'pg_dump -Fc' | 'create zstd' | 'create zstd+age';
type RestoreSide = 'raw pg_restore' | 'verify zstd' | 'verify zstd+age' | 'restore zstd' | 'restore zstd+age';
type Side = CreateSide | RestoreSide;

const CREATE_SIDES: readonly CreateSide[] = ['pg_dump -Fc', 'create zstd', 'create zstd+age'];
const RESTORE_SIDES: readonly RestoreSide[] = ['raw pg_restore', 'verify zstd', 'verify zstd+age', 'restore zstd', 'restore zstd+age'];

interface Phases {
  /** spawn -> first pg_restore (restoring) seen: backupctl's decode into scratch, TOC read, CREATE DATABASE; raw: createdb. */
  beforeS: number | null;
  pgRestoreS: number | null;
  /** pg_restore's end -> exit: row counts, rename or DROP DATABASE, sidecar record. */
  afterS: number | null;
  /** The zstd program's life (compressing in create, decompressing in verify/restore). */
  zstdS: number | null;
}

interface RunRecord {
  sizeMb: number;
  side: Side;
  /** --jobs of a restore-side run; null for create. */
  jobs: number | null;
  round: number;
  warmup: boolean;
  wallS: number;
  /** create: the artifact's bytes. */
  artifactBytes: number | null;
  /** backupctl: node's own VmHWM; raw: pg_dump's or pg_restore's. */
  peakRssMb: number | null;
  timeMaxRssMb: number | null;
  zstdRssMb: number | null;
  /** pg_dump's (create) or pg_restore's (restore) own peak. */
  pgRssMb: number | null;
  clientCpu: Record<string, number>;
  serverCpu: Record<string, number>;
  machineBusyS: number;
  foreignCpuS: number;
  preBusyCores: number;
  quietWaitS: number;
  noisy: boolean;
  phases: Phases | null;
  /** raw pg_restore: the dropdb that follows it, timed apart (verify drops its database inside its own time). */
  dropS: number | null;
}

interface Kept {
  raw: string;
  zstd: { storage: string; id: string };
  age: { storage: string; id: string };
  plaintextBytes: number | null;
}

interface SizeResult {
  sizeMb: number;
  dataset: DatasetInfo;
  runs: RunRecord[];
  kept: Kept;
}

function check(r: RunResult, what: string): void {
  if (r.exitCode !== 0) throw new Error(`${what} failed (exit ${r.exitCode ?? r.signal}):\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-4000)}`);
}

function peakOf(r: RunResult, comm: string): number | null {
  const seen = r.tree.filter((p) => p.comm === comm);
  return seen.length ? Math.max(...seen.map((p) => p.peakRssMb)) : null;
}

let keyFile = '';
let recipient = '';
let env: { raw: Record<string, string>; backupctl: Record<string, string> } = { raw: {}, backupctl: {} };

/** Runs `argv` measured (nice, /usr/bin/time, VmHWM polling, server backends) with the timeline polled alongside. */
async function measured(c: Cluster, file: string, args: string[], runEnv: Record<string, string>, isTarget: (db: string) => boolean) {
  const pm = postmasterPid(c);
  const tl = new Timeline(pm, isTarget);
  const busy0 = machineBusyS();
  const spawn = Date.now();
  tl.start();
  let r: RunResult;
  try {
    r = await runMeasured(file, args, { env: runEnv, cwd: workdir ?? os.tmpdir(), postmasterPid: pm, nice: CONFIG.nice });
  } finally {
    tl.stop();
  }
  const end = Date.now();
  return { r, tl, spawn, end, busy: machineBusyS() - busy0 };
}

function phasesOf(tl: Timeline, spawn: number, end: number): Phases {
  const restore = tl.clients.get('pg_restore');
  const zstd = tl.clients.get('zstd');
  return { ...restoreSpans(spawn, restore, end), zstdS: secs(zstd?.first, zstd?.last) };
}

function record(base: Pick<RunRecord, 'sizeMb' | 'side' | 'jobs' | 'round' | 'warmup'>, m: Awaited<ReturnType<typeof measured>>, extra: Partial<RunRecord>): RunRecord {
  return {
    ...base,
    wallS: m.r.wallS,
    artifactBytes: null,
    peakRssMb: m.r.selfPeakRssMb,
    timeMaxRssMb: m.r.timeMaxRssMb,
    zstdRssMb: peakOf(m.r, 'zstd'),
    pgRssMb: null,
    ...cpuFields(m.r, m.busy),
    noisy: false,
    phases: null,
    dropS: null,
    ...extra,
  };
}

// ---------------------------------------------------------------------------------------
// create

/** The storage a create run wrote: its artifact, sidecar id and plaintext size. */
function backupIn(storage: string, suffix: string): { artifact: string; id: string; plaintextBytes: number | null } {
  const files = filesUnder(storage);
  const artifact = files.find((f) => f.endsWith(suffix));
  const sidecarFile = files.find((f) => f.endsWith('.json') && !f.includes('.runs') && !f.includes('globals'));
  if (!artifact || !sidecarFile) throw new Error(`backupctl create left no *${suffix} + sidecar in ${storage}: ${files.join(', ')}`);
  const sidecar = JSON.parse(readFileSync(sidecarFile, 'utf8')) as { id: string; artifact: { file: string; plaintext?: { bytes: number } } };
  if (!artifact.endsWith(sidecar.artifact.file)) throw new Error(`sidecar ${sidecarFile} names ${sidecar.artifact.file}, found ${artifact}`);
  return { artifact, id: sidecar.id, plaintextBytes: sidecar.artifact.plaintext?.bytes ?? null };
}

async function runCreate(c: Cluster, side: CreateSide, base: Pick<RunRecord, 'sizeMb' | 'round' | 'warmup'>, kept: Partial<Kept>): Promise<RunRecord> {
  const tag = `${base.sizeMb}-${base.round}${base.warmup ? 'w' : ''}`;
  const rec = { ...base, side, jobs: null };
  const noTarget = (): boolean => false;
  if (side === 'pg_dump -Fc') {
    const file = path.join(workdir as string, `raw-${tag}.dump`);
    const m = await measured(c, c.bin('pg_dump'), ['-Fc', '-f', file], { ...env.raw, ...c.env('bench') }, noTarget);
    check(m.r, 'pg_dump -Fc');
    const bytes = statSync(file).size;
    if (!kept.raw) kept.raw = file;
    else rmSync(file, { force: true });
    const pgDump = peakOf(m.r, 'pg_dump');
    return record(rec, m, { artifactBytes: bytes, peakRssMb: pgDump, pgRssMb: pgDump });
  }
  const encrypted = side === 'create zstd+age';
  const storage = path.join(workdir as string, `storage-${encrypted ? 'age' : 'zstd'}-${tag}`);
  const args = [BIN, '--storage', storage, '--json', '--log-format', 'json', '--verbose', 'create', ...(encrypted ? ['--recipient', recipient] : [])];
  const m = await measured(c, process.execPath, args, env.backupctl, noTarget);
  check(m.r, `backupctl ${args.slice(1).join(' ')}`);
  const suffix = encrypted ? '.dump.zst.age' : '.dump.zst';
  const { artifact, id, plaintextBytes } = backupIn(storage, suffix);
  const bytes = statSync(artifact).size;
  const key = encrypted ? 'age' : 'zstd';
  if (!kept[key]) {
    const into = path.join(workdir as string, `kept-${key}`);
    renameSync(storage, into);
    kept[key] = { storage: into, id };
    kept.plaintextBytes ??= plaintextBytes;
  } else rmSync(storage, { recursive: true, force: true });
  return record(rec, m, { artifactBytes: bytes, pgRssMb: peakOf(m.r, 'pg_dump'), phases: { beforeS: null, pgRestoreS: null, afterS: null, zstdS: phasesOf(m.tl, m.spawn, m.end).zstdS } });
}

// ---------------------------------------------------------------------------------------
// verify, restore, raw pg_restore

async function runRestoreSide(c: Cluster, side: RestoreSide, jobs: number, base: Pick<RunRecord, 'sizeMb' | 'round' | 'warmup'>, kept: Kept): Promise<RunRecord> {
  const tag = `${base.sizeMb}_${jobs}_${base.round}${base.warmup ? 'w' : ''}`;
  const rec = { ...base, side, jobs };
  if (side === 'raw pg_restore') {
    const db = `bench_raw_${tag}`;
    const script = `${c.bin('createdb')} "$DB" && ${c.bin('pg_restore')} --exit-on-error --jobs ${jobs} -d "$DB" "$ARTIFACT"`;
    const m = await measured(c, '/bin/sh', ['-c', script], { ...env.raw, ...c.env('postgres'), DB: db, ARTIFACT: kept.raw }, (name) => name === db);
    check(m.r, 'createdb && pg_restore');
    const drop = await runMeasured(c.bin('dropdb'), [db], { env: { ...env.raw, ...c.env('postgres') }, nice: CONFIG.nice });
    check(drop, 'dropdb');
    const pgRestore = peakOf(m.r, 'pg_restore');
    return record(rec, m, { peakRssMb: pgRestore, pgRssMb: pgRestore, phases: phasesOf(m.tl, m.spawn, m.end), dropS: drop.wallS });
  }
  const encrypted = side.endsWith('+age');
  const backup = encrypted ? kept.age : kept.zstd;
  const identity = encrypted ? ['--identity', keyFile] : [];
  const common = [BIN, '--storage', backup.storage, '--json', '--log-format', 'json', '--verbose'];
  if (side.startsWith('verify')) {
    const args = [...common, 'verify', backup.id, '--level', 'restore', '--jobs', String(jobs), ...identity];
    const m = await measured(c, process.execPath, args, env.backupctl, (name) => name.startsWith('backupctl_verify_'));
    check(m.r, `backupctl ${side}`);
    const out = JSON.parse(m.r.stdout) as { passed?: boolean; outcomes?: unknown };
    if (out.passed !== true) throw new Error(`backupctl ${side}: did not pass: ${JSON.stringify(out.outcomes)}`);
    await dropLike(c, 'backupctl\\_verify\\_%');
    return record(rec, m, { pgRssMb: peakOf(m.r, 'pg_restore'), phases: phasesOf(m.tl, m.spawn, m.end) });
  }
  const db = `bench_restore_${tag}`;
  const args = [...common, 'restore', backup.id, '--target-db', db, '--create', '--yes', '--jobs', String(jobs), ...identity];
  const m = await measured(c, process.execPath, args, env.backupctl, (name) => name === db || name.includes('backupctl'));
  check(m.r, `backupctl ${side}`);
  const rows = await c.query<{ n: string }>(db, 'SELECT count(*)::text AS n FROM orders');
  if (!(Number(rows[0]?.n) > 0)) throw new Error(`backupctl ${side}: ${db} has no orders`);
  await c.dropDatabase(db);
  await dropLike(c, 'backupctl\\_%');
  return record(rec, m, { pgRssMb: peakOf(m.r, 'pg_restore'), phases: phasesOf(m.tl, m.spawn, m.end) });
}

/** Drops databases a run left behind (none expected); returns their names. */
async function dropLike(c: Cluster, like: string): Promise<string[]> {
  const rows = await c.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database WHERE datname LIKE $1', [like]);
  for (const r of rows) {
    log(`  warning: ${r.datname} was left behind: dropping it`);
    await c.dropDatabase(r.datname);
  }
  return rows.map((r) => r.datname);
}

// ---------------------------------------------------------------------------------------

async function measureOne(run: () => Promise<RunRecord>): Promise<RunRecord> {
  const otherS = await waitForOtherBenches(OTHER_BENCHES, CONFIG.otherBenchWaitS, log);
  const quiet = CONFIG.quietWaitS > 0 ? await waitForQuiet(CONFIG.quietCores, CONFIG.quietWaitS) : { waitedS: 0, busyCores: NaN };
  const rec = await run();
  rec.preBusyCores = quiet.busyCores;
  rec.quietWaitS = quiet.waitedS + otherS;
  rec.noisy = rec.foreignCpuS / rec.wallS > NOISY_CORES || quiet.busyCores > CONFIG.quietCores;
  return rec;
}

function describe(rec: RunRecord): string {
  const p = rec.phases;
  const ph = p
    ? ` [${p.pgRestoreS !== null ? `before ${f2(p.beforeS)} | pg_restore ${f2(p.pgRestoreS)} | after ${f2(p.afterS)}` : ''}${p.zstdS !== null ? `${p.pgRestoreS !== null ? '; ' : ''}zstd ${f2(p.zstdS)}` : ''}]`
    : '';
  return (
    `${rec.warmup ? 'warm-up ' : ''}${rec.side.padEnd(16)}${rec.jobs ? ` --jobs ${rec.jobs}` : ''}  ${f3(rec.wallS)} s` +
    `${rec.artifactBytes !== null ? `  ${f1(mb(rec.artifactBytes))} MB` : ''}${rec.dropS !== null ? ` (+ dropdb ${f2(rec.dropS)} s)` : ''}` +
    `  rss ${f1(rec.peakRssMb)} MB (time %M ${f1(rec.timeMaxRssMb)}${rec.zstdRssMb !== null ? `, zstd ${f1(rec.zstdRssMb)}` : ''})` +
    `  busy ${f1(rec.machineBusyS)} cpu-s (foreign ${f1(rec.foreignCpuS)}; before ${f2(rec.preBusyCores)} cores, waited ${f1(rec.quietWaitS)} s)${rec.noisy ? ' NOISY' : ''}${ph}`
  );
}

/** Odd rounds (and the warm-up) in the given order, even rounds reversed: drift and after-effects fall on every side alike. */
function ordered<T>(sides: readonly T[], round: number, warmup: boolean): readonly T[] {
  return warmup || round % 2 === 1 ? sides : [...sides].reverse();
}

function rounds(): { round: number; warmup: boolean }[] {
  return [
    ...Array.from({ length: CONFIG.warmup }, (_, i) => ({ round: i + 1, warmup: true })),
    ...Array.from({ length: CONFIG.runs }, (_, i) => ({ round: i + 1, warmup: false })),
  ];
}

// ---------------------------------------------------------------------------------------
// Report

interface Stat {
  sizeMb: number;
  side: Side;
  jobs: number | null;
  wallS: number;
  runs: number[];
  /** The baseline's median wall (raw pg_dump; raw pg_restore, + its dropdb for verify; unencrypted create for the encrypted one). */
  baselineS: number | null;
  baseline: string;
  /** median(this) / median(baseline); for create zstd: raw / this (the speed-up). */
  ratio: number | null;
  /** Median over rounds of this / baseline in the same round. */
  pairedRatio: number | null;
  artifactMb: number | null;
  peakRssMb: number;
  timeMaxRssMb: number;
  zstdRssMb: number | null;
  pgRssMb: number | null;
  phases: { beforeS: number; pgRestoreS: number; afterS: number; zstdS: number };
  noisy: number;
}

const measuredRuns = (runs: RunRecord[], side: Side, jobs: number | null): RunRecord[] => runs.filter((r) => !r.warmup && r.side === side && r.jobs === jobs);
const medianOf = (values: (number | null)[]): number => {
  const v = values.filter((x): x is number => typeof x === 'number' && !Number.isNaN(x));
  return v.length ? median(v) : NaN;
};
const maxOf = (values: (number | null)[]): number => Math.max(...values.filter((x): x is number => typeof x === 'number'), 0);

function statsOf(s: SizeResult): Stat[] {
  const out: Stat[] = [];
  const wallPlusDrop = (r: RunRecord): number => r.wallS + (r.dropS ?? 0);
  const stat = (side: Side, jobs: number | null, baseSide: Side | null, baseline: string, baseWall: (r: RunRecord) => number, invert = false): Stat => {
    const rs = measuredRuns(s.runs, side, jobs);
    const bs = baseSide ? measuredRuns(s.runs, baseSide, jobs) : [];
    const wallS = median(rs.map((r) => r.wallS));
    const baselineS = bs.length ? median(bs.map(baseWall)) : null;
    const ratioOf = (a: number, b: number): number => (invert ? b / a : a / b);
    const paired = rs.flatMap((r) => {
      const b = bs.find((x) => x.round === r.round);
      return b ? [ratioOf(r.wallS, baseWall(b))] : [];
    });
    return {
      sizeMb: s.sizeMb,
      side,
      jobs,
      wallS,
      runs: rs.map((r) => r.wallS),
      baselineS,
      baseline,
      ratio: baselineS === null ? null : ratioOf(wallS, baselineS),
      pairedRatio: paired.length ? median(paired) : null,
      artifactMb: rs[0]?.artifactBytes != null ? mb(medianOf(rs.map((r) => r.artifactBytes))) : null,
      peakRssMb: maxOf(rs.map((r) => r.peakRssMb)),
      timeMaxRssMb: maxOf(rs.map((r) => r.timeMaxRssMb)),
      zstdRssMb: rs.some((r) => r.zstdRssMb !== null) ? maxOf(rs.map((r) => r.zstdRssMb)) : null,
      pgRssMb: rs.some((r) => r.pgRssMb !== null) ? maxOf(rs.map((r) => r.pgRssMb)) : null,
      phases: {
        beforeS: medianOf(rs.map((r) => r.phases?.beforeS ?? null)),
        pgRestoreS: medianOf(rs.map((r) => r.phases?.pgRestoreS ?? null)),
        afterS: medianOf(rs.map((r) => r.phases?.afterS ?? null)),
        zstdS: medianOf(rs.map((r) => r.phases?.zstdS ?? null)),
      },
      noisy: rs.filter((r) => r.noisy).length,
    };
  };
  out.push(stat('pg_dump -Fc', null, null, '', (r) => r.wallS));
  out.push(stat('create zstd', null, 'pg_dump -Fc', 'pg_dump -Fc (speed-up: raw / this)', (r) => r.wallS, true));
  out.push(stat('create zstd+age', null, 'create zstd', 'create zstd', (r) => r.wallS));
  for (const jobs of CONFIG.jobs) {
    const raw = stat('raw pg_restore', jobs, null, '', (r) => r.wallS);
    raw.baselineS = medianOf(measuredRuns(s.runs, 'raw pg_restore', jobs).map((r) => r.dropS));
    raw.baseline = 'its dropdb';
    out.push(raw);
    out.push(stat('verify zstd', jobs, 'raw pg_restore', 'createdb + pg_restore + dropdb', wallPlusDrop));
    out.push(stat('verify zstd+age', jobs, 'raw pg_restore', 'createdb + pg_restore + dropdb', wallPlusDrop));
    out.push(stat('restore zstd', jobs, 'raw pg_restore', 'createdb + pg_restore', (r) => r.wallS));
    out.push(stat('restore zstd+age', jobs, 'raw pg_restore', 'createdb + pg_restore', (r) => r.wallS));
  }
  return out;
}

interface Verdict {
  name: string;
  pass: boolean;
  detail: string;
}

function verdictsOf(stats: Stat[]): Verdict[] {
  const out: Verdict[] = [];
  const find = (sizeMb: number, side: Side, jobs: number | null = null) => stats.find((s) => s.sizeMb === sizeMb && s.side === side && s.jobs === jobs);
  for (const sizeMb of CONFIG.sizes) {
    const raw = find(sizeMb, 'pg_dump -Fc');
    const zstd = find(sizeMb, 'create zstd');
    const age = find(sizeMb, 'create zstd+age');
    if (raw && zstd) {
      out.push({
        name: `${sizeMb} MB: create (zstd) >= ${TARGETS.createSpeedup}x faster than pg_dump -Fc`,
        pass: (zstd.ratio ?? 0) >= TARGETS.createSpeedup,
        detail: `${f2(zstd.ratio)}x (${f2(raw.wallS)} s vs ${f2(zstd.wallS)} s; per round ${f2(zstd.pairedRatio)}x)`,
      });
      const sizeRatio = (zstd.artifactMb ?? NaN) / (raw.artifactMb ?? NaN);
      out.push({
        name: `${sizeMb} MB: create (zstd) artifact no larger than pg_dump -Fc's`,
        pass: sizeRatio <= TARGETS.sizeRatio,
        detail: `${f3(sizeRatio)}x (${f1(zstd.artifactMb)} MB vs ${f1(raw.artifactMb)} MB)`,
      });
    }
    if (age) {
      out.push({
        name: `${sizeMb} MB: encrypted create <= ${TARGETS.encryptRatio}x the unencrypted one`,
        pass: (age.ratio ?? Infinity) <= TARGETS.encryptRatio,
        detail: `${f3(age.ratio)}x (${f2(age.wallS)} s vs ${f2(age.baselineS)} s; per round ${f3(age.pairedRatio)}x)`,
      });
    }
    for (const jobs of CONFIG.jobs) {
      for (const side of ['verify zstd', 'verify zstd+age', 'restore zstd', 'restore zstd+age'] as const) {
        const st = find(sizeMb, side, jobs);
        if (!st) continue;
        out.push({
          name: `${sizeMb} MB, --jobs ${jobs}: ${side} no slower than ${st.baseline}`,
          pass: (st.ratio ?? Infinity) <= TARGETS.restoreRatio,
          detail: `${f3(st.ratio)}x (${f2(st.wallS)} s vs ${f2(st.baselineS)} s; per round ${f3(st.pairedRatio)}x)`,
        });
      }
    }
    const bc = stats.filter((s) => s.sizeMb === sizeMb && s.side !== 'pg_dump -Fc' && s.side !== 'raw pg_restore');
    const worst = bc.reduce((a, b) => (b.peakRssMb > a.peakRssMb ? b : a), bc[0] as Stat);
    out.push({
      name: `${sizeMb} MB: peak RSS of the backupctl node process <= ${TARGETS.rssMb} MB (every command)`,
      pass: bc.every((s) => s.peakRssMb <= TARGETS.rssMb),
      detail: `max ${f1(worst.peakRssMb)} MB (${worst.side}${worst.jobs ? ` --jobs ${worst.jobs}` : ''})`,
    });
  }
  if (CONFIG.sizes.length > 1) {
    const small = Math.min(...CONFIG.sizes);
    const large = Math.max(...CONFIG.sizes);
    const grown = stats
      .filter((s) => s.sizeMb === large && s.side !== 'pg_dump -Fc' && s.side !== 'raw pg_restore')
      .map((l) => {
        const s = stats.find((x) => x.sizeMb === small && x.side === l.side && x.jobs === l.jobs);
        const limit = (s?.peakRssMb ?? 0) * TARGETS.rssGrowth.factor + TARGETS.rssGrowth.plusMb;
        return { l, s, limit, pass: l.peakRssMb <= limit };
      });
    out.push({
      name: `peak RSS flat with size (${large} MB <= ${small} MB x ${TARGETS.rssGrowth.factor} + ${TARGETS.rssGrowth.plusMb} MB, every command)`,
      pass: grown.every((g) => g.pass),
      detail: grown.map((g) => `${g.l.side}${g.l.jobs ? ` -j${g.l.jobs}` : ''} ${f1(g.s?.peakRssMb)} -> ${f1(g.l.peakRssMb)}`).join('; '),
    });
  }
  return out;
}

function cpuMedians(runs: RunRecord[], key: 'clientCpu' | 'serverCpu'): string {
  const names = new Set(runs.flatMap((r) => Object.keys(r[key])));
  return [...names]
    .map((n) => [n, median(runs.map((r) => r[key][n] ?? 0))] as const)
    .filter(([, v]) => v >= 0.01)
    .sort((a, b) => b[1] - a[1])
    .map(([n, v]) => `${n} ${v.toFixed(2)}`)
    .join(', ');
}

function mainTable(stats: Stat[]): string[] {
  const lines = [
    '| size | --jobs | command | median s | baseline | baseline s | ratio | per-round ratio | artifact MB | node peak RSS MB (max) | time %M MB (max) | zstd peak MB | pg_dump/pg_restore peak MB | noisy runs | runs s |',
    '|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const s of stats) {
    const raw = s.side === 'pg_dump -Fc' || s.side === 'raw pg_restore';
    lines.push(
      `| ${s.sizeMb} | ${s.jobs ?? '-'} | ${s.side} | ${f2(s.wallS)} | ${s.baseline || '-'} | ${f2(s.baselineS)} | ${raw ? '-' : f3(s.ratio)} | ${raw ? '-' : f3(s.pairedRatio)} | ${f1(s.artifactMb)} | ${raw ? '-' : f1(s.peakRssMb)} | ${f1(s.timeMaxRssMb)} | ${f1(s.zstdRssMb)} | ${f1(s.pgRssMb)} | ${s.noisy}/${s.runs.length} | ${s.runs.map(f2).join(', ')} |`,
    );
  }
  return lines;
}

function phaseTable(stats: Stat[]): string[] {
  const lines = ['| size | --jobs | command | wall s | before pg_restore s | pg_restore s | after pg_restore s | zstd s |', '|---:|---:|---|---:|---:|---:|---:|---:|'];
  for (const s of stats.filter((x) => x.jobs !== null)) {
    lines.push(`| ${s.sizeMb} | ${s.jobs} | ${s.side} | ${f2(s.wallS)} | ${f2(s.phases.beforeS)} | ${f2(s.phases.pgRestoreS)} | ${f2(s.phases.afterS)} | ${f2(s.phases.zstdS)} |`);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const t0 = performance.now();
  if (!existsSync(path.join(ROOT, 'dist', 'cli.js'))) throw new Error('dist/ is missing: run `npm run build` (npm run bench:stages does)');
  log(
    `bench:stages: ${CONFIG.sizes.join(', ')} MB, --jobs ${CONFIG.jobs.join(',')}, ${CONFIG.runs} rounds (+${CONFIG.warmup} warm-up), ${os.availableParallelism()} CPUs, ` +
      `quiet <= ${CONFIG.quietCores} cores (wait <= ${CONFIG.quietWaitS} s), nice ${CONFIG.nice}`,
  );
  await waitForOtherBenches(OTHER_BENCHES, CONFIG.otherBenchWaitS, log);
  workdir = mkdtempSync(path.join(CONFIG.workdirBase, 'backupctl-bench-stages-'));
  const w = workdir;
  log(`work dir ${w}`);
  const snapshot = snapshotBuild(ROOT, w);
  BIN = snapshot.bin;
  log(`backupctl under test: frozen copy of bin/ + dist/ (dist sha256 ${snapshot.distHash}) at ${BIN}`);

  const key = generateIdentity();
  keyFile = path.join(w, 'bench.key');
  writeFileSync(keyFile, formatIdentityFile(key.identity));
  chmodSync(keyFile, 0o600);
  recipient = key.recipient.toString();

  log('starting a throw-away cluster...');
  cluster = await startCluster({ name: 'bench-stages' });
  const c = cluster;
  log(`PostgreSQL ${c.majorVersion} on ${c.host}:${c.port} (${c.binDir})`);
  if (CONFIG.nice) {
    reniceServer(c, CONFIG.nice, log);
    setAutogroupNice('self', CONFIG.nice, log);
    log(`server and measured commands run at nice ${CONFIG.nice} (BENCH_NICE)`);
  }
  await c.createDatabase('bench');
  const serverVersion = (await c.query<{ v: string }>('postgres', 'SELECT version() AS v'))[0]?.v ?? '?';
  env = { raw: baseEnv(), backupctl: { ...baseEnv(), ...c.env('bench') } };
  const versions = {
    pgDump: execFileSync(c.bin('pg_dump'), ['--version'], { encoding: 'utf8' }).trim(),
    zstd: execFileSync('zstd', ['--version'], { encoding: 'utf8' }).trim().replace(/^\*+\s*|\s*\*+$/g, ''),
  };

  builder = await DatasetBuilder.connect({ host: c.host, port: c.port, user: c.user, password: c.password, database: 'bench' });
  const results: SizeResult[] = [];
  for (const sizeMb of [...CONFIG.sizes].sort((a, b) => a - b)) {
    log('');
    log(`== ${sizeMb} MB: building the data set (pg_database_size)`);
    const dataset = await builder.growTo(sizeMb * MB, (l) => log(l));
    log(`pg_database_size(bench) = ${f1(mb(dataset.sizeBytes))} MB: ${dataset.customers} customers, ${dataset.orders} orders, ${dataset.events} events (${f1(dataset.buildS)} s)`);
    if (sizeMb >= 500 && dataset.sizeBytes < 500 * MB) throw new Error('data set smaller than 500 MB');
    const runs: RunRecord[] = [];
    const kept: Partial<Kept> = {};

    log('');
    log(`== ${sizeMb} MB: create (raw pg_dump -Fc, backupctl create, backupctl create --recipient)`);
    for (const { round, warmup } of rounds()) {
      for (const side of ordered(CREATE_SIDES, round, warmup)) {
        const rec = await measureOne(() => runCreate(c, side, { sizeMb, round, warmup }, kept));
        runs.push(rec);
        log(`  ${warmup ? '' : `[${round}/${CONFIG.runs}] `}${describe(rec)}`);
      }
    }
    if (!kept.raw || !kept.zstd || !kept.age) throw new Error('no artifacts kept for the restore rounds');
    const k = kept as Kept;
    log(
      `kept for the restores: raw ${f1(mb(statSync(k.raw).size))} MB, zstd ${k.zstd.id}, zstd+age ${k.age.id}; plaintext (pg_dump -Z0) ${k.plaintextBytes === null ? '?' : f1(mb(k.plaintextBytes))} MB`,
    );

    for (const jobs of CONFIG.jobs) {
      log('');
      log(`== ${sizeMb} MB, --jobs ${jobs}: raw createdb + pg_restore, backupctl verify, backupctl restore`);
      for (const { round, warmup } of rounds()) {
        for (const side of ordered(RESTORE_SIDES, round, warmup)) {
          const rec = await measureOne(() => runRestoreSide(c, side, jobs, { sizeMb, round, warmup }, k));
          runs.push(rec);
          log(`  ${warmup ? '' : `[${round}/${CONFIG.runs}] `}${describe(rec)}`);
        }
      }
    }
    results.push({ sizeMb, dataset, runs, kept: k });
    // The artifacts of this size are not needed any more (the next size has its own).
    rmSync(k.raw, { force: true });
    rmSync(k.zstd.storage, { recursive: true, force: true });
    rmSync(k.age.storage, { recursive: true, force: true });
  }
  await builder.close();
  builder = null;

  const stats = results.flatMap(statsOf);
  const verdicts = verdictsOf(stats);
  const table = mainTable(stats);
  const phases = phaseTable(stats);
  log('');
  for (const line of table) log(line);
  log('');
  for (const line of phases) log(line);
  log('');
  for (const v of verdicts) log(`${v.pass ? 'PASS' : 'FAIL'}  ${v.name}: ${v.detail}`);

  const totalS = (performance.now() - t0) / 1000;
  const date = new Date().toISOString();
  const allRuns = results.flatMap((s) => s.runs);
  const cpuLines = ['| size | --jobs | command | machine busy cpu-s | client CPU s | server CPU s |', '|---:|---:|---|---:|---|---|'];
  for (const s of stats) {
    const rs = measuredRuns(allRuns.filter((r) => r.sizeMb === s.sizeMb), s.side, s.jobs);
    cpuLines.push(`| ${s.sizeMb} | ${s.jobs ?? '-'} | ${s.side} | ${f1(median(rs.map((r) => r.machineBusyS)))} | ${cpuMedians(rs, 'clientCpu')} | ${cpuMedians(rs, 'serverCpu')} |`);
  }
  const every = ['| size | # | round | --jobs | command | wall s | artifact MB | dropdb s | peak RSS MB | time %M MB | zstd MB | machine busy cpu-s | foreign cpu-s | busy cores before | waited s | noisy |', '|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|'];
  allRuns.forEach((r, i) => {
    every.push(
      `| ${r.sizeMb} | ${i + 1} | ${r.warmup ? 'warm-up' : r.round} | ${r.jobs ?? '-'} | ${r.side} | ${f3(r.wallS)} | ${r.artifactBytes === null ? '-' : f1(mb(r.artifactBytes))} | ${f2(r.dropS)} | ${f1(r.peakRssMb)} | ${f1(r.timeMaxRssMb)} | ${f1(r.zstdRssMb)} | ${f1(r.machineBusyS)} | ${f1(r.foreignCpuS)} | ${f2(r.preBusyCores)} | ${f1(r.quietWaitS)} | ${r.noisy ? 'yes' : ''} |`,
    );
  });
  const datasets = results.map(
    (s) =>
      `${s.sizeMb} MB: pg_database_size ${f1(mb(s.dataset.sizeBytes))} MB (${s.dataset.customers} customers, ${s.dataset.orders} orders, ${s.dataset.events} events), ` +
      `pg_dump -Z0 plaintext ${s.kept.plaintextBytes === null ? '?' : f1(mb(s.kept.plaintextBytes))} MB`,
  );
  const section = [
    '',
    `## backupctl's stages end to end: create, verify, restore vs pg_dump / pg_restore (npm run bench:stages), ${date.slice(0, 10)}`,
    '',
    `Appended by \`npm run bench:stages\` (bench/stages.ts) on ${date}; ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? '?'}), ${f1(os.totalmem() / 1024 ** 3)} GB RAM, ` +
      `Linux ${os.release()}, node ${process.version}; ${serverVersion.split(' on ')[0]}; ${versions.pgDump}; ${versions.zstd}; backupctl dist sha256 ${snapshot.distHash}; ` +
      `peak RSS: ${haveGnuTime ? '/usr/bin/time %M and ' : ''}VmHWM of every process polled every 50 ms. Total ${f1(totalS / 60)} min.`,
    '',
    '```sh',
    'npm run bench:stages',
    `# this run: BENCH_STAGES_MB=${CONFIG.sizes.join(',')} BENCH_RUNS=${CONFIG.runs} BENCH_WARMUP=${CONFIG.warmup} BENCH_STAGES_JOBS=${CONFIG.jobs.join(',')} BENCH_QUIET_CORES=${CONFIG.quietCores} BENCH_QUIET_WAIT_S=${CONFIG.quietWaitS} BENCH_NICE=${CONFIG.nice}`,
    '```',
    '',
    `Data set (bench/dataset.ts): ${datasets.join('; ')}. ` +
      'create: raw `pg_dump -Fc -f FILE` (gzip 6) vs `backupctl create` (default: `pg_dump -Fc -Z0` through sha256, `zstd -3 -T2`, sha256; row counts and globals as always) ' +
      'and `backupctl create --recipient age1...` (the same plus age to one X25519 recipient). ' +
      'restore side, per --jobs N: raw `createdb DB && pg_restore --exit-on-error --jobs N -d DB FILE` of the kept `pg_dump -Fc` archive (then `dropdb DB`, timed apart), ' +
      '`backupctl verify ID --level restore --jobs N` and `backupctl restore ID --target-db DB --create --yes --jobs N` (`--identity KEY` for the encrypted artifact) of the kept backupctl artifacts. ' +
      'verify is compared with createdb + pg_restore + dropdb (it drops its throwaway database inside its own time), restore with createdb + pg_restore. ' +
      `Medians of ${CONFIG.runs} rounds after ${CONFIG.warmup} warm-up round(s); within a round the sides run in the order above in odd rounds and reversed in even ones. ` +
      `Before every run the bench waits (up to ${CONFIG.quietWaitS} s) for a 1 s window with at most ${CONFIG.quietCores} busy cores and for the project's other benches (the machine is shared with other test suites), ` +
      `and the server and the measured commands run at nice ${CONFIG.nice}. "per-round ratio": median over rounds of the ratio to the baseline run of the same round. ` +
      '"noisy": other processes burnt more than 0.25 cores during the run, or the machine was not quiet before it.',
    '',
    ...table,
    '',
    'Where the restore-side time goes (medians; from a 20 ms poll of the process tree): before pg_restore = spawn to the first pg_restore that restores (backupctl: start-up, decoding the artifact into a scratch file with every digest checked, the TOC read, CREATE DATABASE; raw: createdb); after = its end to exit (backupctl: row counts, rename or DROP DATABASE, the sidecar record); zstd = the zstd program\'s life.',
    '',
    ...phases,
    '',
    'CPU seconds per process (medians; client = the command and its children, server = the backends that served it):',
    '',
    ...cpuLines,
    '',
    ...verdicts.map((v) => `- ${v.pass ? 'PASS' : 'FAIL'} ${v.name}: ${v.detail}`),
    '',
    '<details><summary>Every run</summary>',
    '',
    ...every,
    '',
    '</details>',
    '',
  ].join('\n');
  appendFileSync(CONFIG.results, section);
  log('');
  log(`appended a section to ${path.relative(ROOT, CONFIG.results)}`);
  log(JSON.stringify({ date, config: CONFIG, targets: TARGETS, serverVersion, versions, distHash: snapshot.distHash, datasets: results.map((s) => ({ sizeMb: s.sizeMb, dataset: s.dataset, plaintextBytes: s.kept.plaintextBytes })), stats, verdicts, runs: allRuns, totalS }));
  process.exitCode = verdicts.every((v) => v.pass) ? 0 : 1;
}

try {
  mkdirSync(CONFIG.workdirBase, { recursive: true });
  await main();
} catch (error) {
  process.exitCode = 2;
  process.stderr.write(`bench:stages failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
} finally {
  await (builder as DatasetBuilder | null)?.close();
  const c = cluster as Cluster | null;
  if (c) {
    await c.stop();
    stopClusterSync(c);
    cluster = null;
  }
  cleanupSync();
}
