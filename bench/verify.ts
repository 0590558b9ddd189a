/**
 * `npm run bench:verify`: backupctl verify vs raw `createdb && pg_restore && dropdb`, on a
 * throw-away cluster with the create bench's data set (bench/dataset.ts).
 *
 *   BENCH_VERIFY_MB=600  BENCH_RUNS=7  BENCH_WARMUP=1  BENCH_VERIFY_JOBS=1,2  BENCH_WORKDIR=$TMPDIR
 *   BENCH_QUIET_CORES=0.3  BENCH_QUIET_WAIT_S=20  BENCH_NICE=-10 (root only; 0 to disable)
 *   BENCH_VERIFY_COMPONENTS=1 (0: skip the components measured alone)
 *   BENCH_VERIFY_RESULTS=bench/RESULTS.md (where the section goes)
 *   BENCH_OTHER_WAIT_S=1800 (wait while bench/run.ts or bench/profile.ts runs: two benches on 2 cores spoil both)
 *
 * Builds the data set to >= BENCH_VERIFY_MB MiB (pg_database_size), takes ONE backup with
 * `node bin/backupctl.js create --format custom` into a temp storage, then, per round and
 * per --jobs N, one run of each side, in ABBA order (raw first in odd rounds and in the
 * warm-up, backupctl first in even rounds: drift and whatever a run leaves to the next one
 * fall on both sides alike):
 *   raw        sh -c 'createdb DB && pg_restore --exit-on-error --no-owner --no-acl --jobs N -d DB ARTIFACT && dropdb DB'
 *              (the cluster's own binaries; the whole sequence is timed)
 *   backupctl  node bin/backupctl.js --storage DIR verify ID --jobs N (default level: restore)
 * Each run is timed (wall), its peak RSS measured (measure.ts: /usr/bin/time %M and VmHWM
 * polling), and its phases are taken from a 20 ms poll of our process tree and of the
 * server's backends (process titles) plus backupctl's JSON log timestamps. Afterwards the
 * parts of verify are measured alone (node start, re-hash, TOC read, CREATE DATABASE,
 * row counts in a freshly restored database, DROP DATABASE). Results: a table on stdout,
 * a section of bench/RESULTS.md below the analysis marker, and a JSON summary as the
 * last line of stdout.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startCluster, quoteIdent, type Cluster } from '../test/helpers/cluster.js';
import { countRows } from '../src/pg/counts.js';
import { hashFile } from '../src/pipeline/digest.js';
import { DatasetBuilder, type DatasetInfo } from './dataset.js';
import {
  haveGnuTime,
  machineBusyS,
  median,
  runMeasured,
  waitForQuiet,
  type RunResult,
} from './measure.js';
import { baseEnv, cleanUpOnExit, cpuFields, envInt, f1, f2, f3, filesUnder, killActive, log, mb, postmasterPid, reniceServer, setAutogroupNice, snapshotBuild, stopClusterSync, waitForOtherBenches as waitForOthers } from './common.js';
import { restoreSpans, secs, spanS, Timeline } from './timeline.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let BIN = path.join(ROOT, 'bin', 'backupctl.js');
/** BENCH_VERIFY_RESULTS: another file to write the section into (a copy, for a trial run). */
const RESULTS = path.resolve(process.env.BENCH_VERIFY_RESULTS || path.join(ROOT, 'bench', 'RESULTS.md'));
const ANALYSIS_MARKER = '<!-- analysis: everything below this line is kept when the bench rewrites this file -->';
const SECTION = '## verify vs createdb + pg_restore + dropdb';


const CONFIG = {
  mb: envInt('BENCH_VERIFY_MB', 600),
  runs: envInt('BENCH_RUNS', 7),
  warmup: envInt('BENCH_WARMUP', 1, 0),
  jobs: (process.env.BENCH_VERIFY_JOBS || '1,2').split(',').map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_VERIFY_JOBS: not a positive integer: ${JSON.stringify(s)}`);
    return n;
  }),
  workdirBase: process.env.BENCH_WORKDIR || os.tmpdir(),
  quietCores: Number(process.env.BENCH_QUIET_CORES ?? 0.3),
  quietWaitS: envInt('BENCH_QUIET_WAIT_S', 20, 0),
  nice: Number(process.env.BENCH_NICE ?? (process.getuid?.() === 0 ? -10 : 0)),
  components: process.env.BENCH_VERIFY_COMPONENTS !== '0',
  /** Wait (up to this long) while the create bench or the profiler runs: two benches on 2 cores spoil both. */
  otherBenchWaitS: envInt('BENCH_OTHER_WAIT_S', 1800, 0),
};

const TARGET_RATIO = 1.1;
/** A run is flagged noisy when other people's processes burnt more than this many cores on average during it. */
const NOISY_CORES = 0.25;
const POLL_MS = 20;


// ---------------------------------------------------------------------------
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
  rawPgRestore: string;
  backupctlPgRestore: string[];
  gnuTime: boolean;
  distHash: string;
}

interface Phases {
  /** Both sides: spawn -> first pg_restore (restoring) seen; pg_restore's life; its end -> exit. */
  beforeS: number | null;
  pgRestoreS: number | null;
  afterS: number | null;
  /** backupctl only: spawn -> "verifying" log line (node start, config, catalog). */
  startupS?: number | null;
  /** "verifying" -> "restoring into" (from the log, always there): globals + artifact re-hash, server version, discovery, TOC read, CREATE DATABASE. */
  checksS?: number | null;
  /** "verifying" -> first `pg_restore --version`: globals, opening the artifact (and its re-hash if awaited there), server version. */
  hashS?: number | null;
  /** first `pg_restore --version` -> first `pg_restore --list`: pg_restore discovery (PATH scan, --version of candidates). */
  discoveryS?: number | null;
  /** `pg_restore --list` seen (TOC read). */
  tocS?: number | null;
  /** end of --list -> "restoring into" log line: server version query, passfile, CREATE DATABASE. */
  createS?: number | null;
  /** CREATE DATABASE seen on the server (both sides). */
  createDbSeenS?: number | null;
  /** end of pg_restore -> first DROP DATABASE seen: connect, list tables, count(*) of each. */
  countsS?: number | null;
  /** the count(*) backend on the throwaway database, first -> last seen. */
  countSelectS?: number | null;
  /** DROP DATABASE seen on the server. */
  dropS?: number | null;
  /** end of DROP DATABASE -> exit: sidecar record, output, exit. */
  tailS?: number | null;
  /** raw only: createdb and dropdb as seen. */
  createdbS?: number | null;
  dropdbS?: number | null;
}

interface RunRecord {
  tool: 'raw' | 'backupctl';
  jobs: number;
  round: number;
  warmup: boolean;
  wallS: number;
  /** backupctl: its own durationMs in the verification record (verifyOne start -> outcome, before the drop). */
  reportedS: number | null;
  /** backupctl: node's own VmHWM; raw: pg_restore's. */
  peakRssMb: number | null;
  /** /usr/bin/time %M: the command and its waited-for descendants. */
  timeMaxRssMb: number | null;
  pgRestoreRssMb: number | null;
  clientCpu: Record<string, number>;
  serverCpu: Record<string, number>;
  machineBusyS: number;
  foreignCpuS: number;
  preBusyCores: number;
  quietWaitS: number;
  noisy: boolean;
  phases: Phases;
  leftoverDatabases: string[];
}



function check(r: RunResult, what: string): void {
  if (r.exitCode !== 0) {
    throw new Error(`${what} failed (exit ${r.exitCode ?? r.signal}):\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-4000)}`);
  }
}


async function leftovers(c: Cluster, like: string): Promise<string[]> {
  const rows = await c.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database WHERE datname LIKE $1', [like]);
  for (const r of rows) await c.dropDatabase(r.datname);
  return rows.map((r) => r.datname);
}

const backupctlArgv0 = new Set<string>();

async function runRaw(c: Cluster, jobs: number, round: number, warmup: boolean, artifact: string): Promise<RunRecord> {
  const db = `bench_raw_${jobs}_${round}${warmup ? '_w' : ''}`;
  const script = `${c.bin('createdb')} "$DB" && ${c.bin('pg_restore')} --exit-on-error --no-owner --no-acl --jobs ${jobs} -d "$DB" "$ARTIFACT" && ${c.bin('dropdb')} "$DB"`;
  const env = { ...baseEnv(), ...c.env('postgres'), DB: db, ARTIFACT: artifact };
  const pm = postmasterPid(c);
  const tl = new Timeline(pm, (name) => name === db);
  const busy0 = machineBusyS();
  const spawn = Date.now();
  tl.start();
  let r: RunResult;
  try {
    r = await runMeasured('/bin/sh', ['-c', script], { env, postmasterPid: pm, nice: CONFIG.nice });
  } finally {
    tl.stop();
  }
  const end = Date.now();
  const busy = machineBusyS() - busy0;
  const left = await leftovers(c, db);
  check(r, 'createdb && pg_restore && dropdb');
  const restore = tl.clients.get('pg_restore');
  const pgRestore = r.tree.find((p) => p.comm === 'pg_restore');
  const createdb = tl.clients.get('createdb');
  const dropdb = tl.clients.get('dropdb');
  return {
    tool: 'raw',
    jobs,
    round,
    warmup,
    wallS: r.wallS,
    reportedS: null,
    peakRssMb: pgRestore?.peakRssMb ?? null,
    timeMaxRssMb: r.timeMaxRssMb,
    pgRestoreRssMb: pgRestore?.peakRssMb ?? null,
    ...cpuFields(r, busy),
    noisy: false,
    phases: {
      ...restoreSpans(spawn, restore, end),
      createdbS: secs(createdb?.first, createdb?.last),
      createDbSeenS: spanS(tl.serverSpan('maintenance:CREATE DATABASE')),
      dropS: spanS(tl.serverSpan('maintenance:DROP DATABASE')),
      dropdbS: secs(dropdb?.first, dropdb?.last),
    },
    leftoverDatabases: left,
  };
}

function logTimes(stderr: string): Record<string, number> {
  const times: Record<string, number> = {};
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as { time?: string; message?: string };
      if (!entry.time || !entry.message) continue;
      const t = Date.parse(entry.time);
      if (entry.message.startsWith('verifying ')) times.verifying = t;
      else if (entry.message.startsWith('restoring into throwaway database')) times.restoring = t;
    } catch {
      // not a log line of ours
    }
  }
  return times;
}

async function runBackupctl(c: Cluster, jobs: number, round: number, warmup: boolean, storage: string, id: string): Promise<RunRecord> {
  const env = { ...baseEnv(), ...c.env('bench') };
  const args = [BIN, '--storage', storage, '--json', '--log-format', 'json', '--verbose', 'verify', id, '--jobs', String(jobs)];
  const pm = postmasterPid(c);
  const tl = new Timeline(pm, (name) => name.startsWith('backupctl_verify_'));
  const busy0 = machineBusyS();
  const spawn = Date.now();
  tl.start();
  let r: RunResult;
  try {
    r = await runMeasured(process.execPath, args, { env, cwd: workdir ?? os.tmpdir(), postmasterPid: pm, nice: CONFIG.nice });
  } finally {
    tl.stop();
  }
  const end = Date.now();
  const busy = machineBusyS() - busy0;
  const left = await leftovers(c, 'backupctl\\_verify\\_%');
  check(r, 'backupctl verify');
  let reportedS: number | null = null;
  try {
    const out = JSON.parse(r.stdout) as { passed?: boolean; outcomes?: { result?: string; durationMs?: number; mismatches?: string[]; error?: string }[] };
    if (out.passed !== true) throw new Error(`verification did not pass: ${JSON.stringify(out.outcomes)}`);
    reportedS = typeof out.outcomes?.[0]?.durationMs === 'number' ? out.outcomes[0].durationMs / 1000 : null;
  } catch (error) {
    throw new Error(`backupctl verify: unexpected output (${(error as Error).message}):\n${r.stdout.slice(0, 2000)}`, { cause: error });
  }
  for (const a of tl.restoreArgv0) backupctlArgv0.add(a);
  const t = logTimes(r.stderr);
  const restore = tl.clients.get('pg_restore');
  const version = tl.clients.get('pg_restore --version');
  const list = tl.clients.get('pg_restore --list');
  // pg_restore's own connections run a SELECT or two at start: only sightings after it count.
  const drop = tl.serverSpan('maintenance:DROP DATABASE', restore?.last);
  const select = tl.serverSpan('target:SELECT', restore?.last);
  const pgRestore = r.tree.find((p) => p.comm === 'pg_restore');
  return {
    tool: 'backupctl',
    jobs,
    round,
    warmup,
    wallS: r.wallS,
    reportedS,
    peakRssMb: r.selfPeakRssMb,
    timeMaxRssMb: r.timeMaxRssMb,
    pgRestoreRssMb: pgRestore?.peakRssMb ?? null,
    ...cpuFields(r, busy),
    noisy: false,
    phases: {
      ...restoreSpans(spawn, restore, end),
      startupS: secs(spawn, t.verifying),
      checksS: secs(t.verifying, t.restoring),
      hashS: secs(t.verifying, version?.first ?? list?.first),
      discoveryS: version ? secs(version.first, list?.first) : null,
      tocS: secs(list?.first, list?.last),
      createS: secs(list?.last, t.restoring),
      createDbSeenS: spanS(tl.serverSpan('maintenance:CREATE DATABASE')),
      countsS: secs(restore?.last, drop?.first ?? end),
      countSelectS: secs(select?.first, select?.last),
      dropS: secs(drop?.first, drop?.last),
      tailS: secs(drop?.last, end),
    },
    leftoverDatabases: left,
  };
}

type Runner = () => Promise<RunRecord>;

/** Benches that spoil this one's timings when they run at the same time. */
const OTHER_BENCHES = ['run', 'profile', 'stages'];
const waitForOtherBenches = (): Promise<number> => waitForOthers(OTHER_BENCHES, CONFIG.otherBenchWaitS, log);


async function measureOne(run: Runner): Promise<RunRecord> {
  const otherS = await waitForOtherBenches();
  const quiet = CONFIG.quietWaitS > 0 ? await waitForQuiet(CONFIG.quietCores, CONFIG.quietWaitS) : { waitedS: 0, busyCores: NaN };
  const rec = await run();
  rec.preBusyCores = quiet.busyCores;
  rec.quietWaitS = quiet.waitedS + otherS;
  rec.noisy = rec.foreignCpuS / rec.wallS > NOISY_CORES || quiet.busyCores > CONFIG.quietCores;
  return rec;
}

function describe(rec: RunRecord): string {
  const p = rec.phases;
  const detail =
    rec.tool === 'backupctl'
      ? ` [startup ${f2(p.startupS)} | checks ${f2(p.checksS)} (pre-discovery ${f2(p.hashS)} | discovery ${f2(p.discoveryS)} | toc ${f2(p.tocS)} | createdb ${f2(p.createS)}) | pg_restore ${f2(p.pgRestoreS)} | counts ${f2(p.countsS)} | drop ${f2(p.dropS)} | tail ${f2(p.tailS)}; CREATE DATABASE seen ${f2(p.createDbSeenS)}]`
      : ` [before ${f2(p.beforeS)} | pg_restore ${f2(p.pgRestoreS)} | after ${f2(p.afterS)}; createdb ${f2(p.createdbS)}, CREATE DATABASE seen ${f2(p.createDbSeenS)}, DROP DATABASE seen ${f2(p.dropS)}, dropdb ${f2(p.dropdbS)}]`;
  return (
    `${rec.warmup ? 'warm-up ' : ''}${rec.tool.padEnd(9)} --jobs ${rec.jobs}  ${f3(rec.wallS)} s  rss ${f1(rec.peakRssMb)} MB (time %M ${f1(rec.timeMaxRssMb)})  ` +
    `busy ${f1(rec.machineBusyS)} cpu-s (foreign ${f1(rec.foreignCpuS)}; before ${f2(rec.preBusyCores)} cores, waited ${f1(rec.quietWaitS)} s)${rec.noisy ? ' NOISY' : ''}${detail}` +
    (rec.leftoverDatabases.length ? `  LEFTOVER ${rec.leftoverDatabases.join(',')}` : '')
  );
}

// ---------------------------------------------------------------------------
// Components measured alone

interface Component {
  name: string;
  what: string;
  values: number[];
}

async function timeIt<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const v = await fn();
  return [(performance.now() - t0) / 1000, v];
}

async function measureComponents(c: Cluster, artifact: string, expectedSha: string): Promise<Component[]> {
  const comps = new Map<string, Component>();
  const add = (name: string, what: string, v: number): void => {
    const comp = comps.get(name) ?? { name, what, values: [] };
    comp.values.push(v);
    comps.set(name, comp);
  };
  const env = { ...baseEnv(), ...c.env('bench') };
  const offline = baseEnv();
  const settings = { host: c.host, port: c.port, user: c.user, password: c.password };
  for (let round = 1; round <= CONFIG.runs; round++) {
    await waitForOtherBenches();
    await waitForQuiet(CONFIG.quietCores, CONFIG.quietWaitS);
    const start = await runMeasured(process.execPath, [BIN, '--version'], { env, capture: true, nice: CONFIG.nice });
    add('node start', '`node bin/backupctl.js --version` (process start + CLI load)', start.wallS);

    const [hashS, digest] = await timeIt(() => hashFile(artifact));
    if (digest.sha256 !== expectedSha) throw new Error('component re-hash: sha256 differs from the sidecar');
    add('re-hash', `sha256 of the ${mb(digest.bytes).toFixed(0)} MB artifact with backupctl's hashFile (src/pipeline/digest.ts), in this process, page cache warm`, hashS);

    const list = await runMeasured(c.bin('pg_restore'), ['--list', artifact], { env: offline, capture: false, nice: CONFIG.nice });
    check(list, 'pg_restore --list');
    add('TOC read', '`pg_restore --list` (cluster binary)', list.wallS);
    const version = await runMeasured(c.bin('pg_restore'), ['--version'], { env: offline, capture: true, nice: CONFIG.nice });
    add('pg_restore --version', '`pg_restore --version` (cluster binary): the one discovery probe verify runs (Debian\'s pg_wrapper in /usr/bin is skipped)', version.wallS);

    const db = `bench_components_${round}`;
    const maint = new pg.Client({ ...settings, database: 'postgres' });
    await maint.connect();
    try {
      const [createS] = await timeIt(() => maint.query(`CREATE DATABASE ${quoteIdent(db)} TEMPLATE template0 ENCODING 'UTF8'`));
      add('CREATE DATABASE', 'CREATE DATABASE ... TEMPLATE template0 (as verify does)', createS);
      const restore = await runMeasured(c.bin('pg_restore'), ['--exit-on-error', '--no-owner', '--no-acl', '-d', db, artifact], {
        env: { ...baseEnv(), ...c.env(db) },
        nice: CONFIG.nice,
      });
      check(restore, 'pg_restore (components)');
      add('pg_restore --jobs 1', 'pg_restore into that database (cluster binary)', restore.wallS);
      for (const pass of ['first', 'second'] as const) {
        const client = new pg.Client({ ...settings, database: db });
        const [countS, counted] = await timeIt(async () => {
          await client.connect();
          try {
            return await countRows(client);
          } finally {
            await client.end();
          }
        });
        add(
          `row counts (${pass})`,
          `connect + list tables + count(*) of each (backupctl's countRows), ${pass} time after the restore${pass === 'first' ? ' (sets hint bits on every freshly restored page)' : ''}; ${counted.length} tables`,
          countS,
        );
      }
      const [dropS] = await timeIt(() => maint.query(`DROP DATABASE ${quoteIdent(db)} WITH (FORCE)`));
      add('DROP DATABASE', 'DROP DATABASE ... WITH (FORCE)', dropS);
    } finally {
      await maint.query(`DROP DATABASE IF EXISTS ${quoteIdent(db)} WITH (FORCE)`).catch(() => undefined);
      await maint.end().catch(() => undefined);
    }
    log(`  components round ${round}: ${[...comps.values()].map((k) => `${k.name} ${f3(k.values.at(-1))}`).join(', ')}`);
  }
  return [...comps.values()];
}



function machineInfo(c: Cluster, serverVersion: string, distHash: string): Machine {
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
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    ramGb: os.totalmem() / 1024 ** 3,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    postgresServer: serverVersion,
    rawPgRestore: `${c.bin('pg_restore')} (${execFileSync(c.bin('pg_restore'), ['--version'], { encoding: 'utf8' }).trim()})`,
    backupctlPgRestore: [],
    gnuTime: haveGnuTime,
    distHash,
  };
}

interface Row {
  jobs: number;
  rawS: number;
  backupctlS: number;
  ratio: number;
  rawRuns: number[];
  backupctlRuns: number[];
  quietRatio: number | null;
  /** Median over rounds of backupctl/raw of the same round (adjacent runs: drift cancels). */
  pairedRatio: number;
  /** Medians of pg_restore's own span, and of the rest (wall - that span): the fixed cost around the restore. */
  rawRestoreS: number;
  backupctlRestoreS: number;
  rawOutsideS: number;
  backupctlOutsideS: number;
  backupctlRssMb: number;
  backupctlTimeRssMb: number;
  pgRestoreRssMb: number;
}

function measured(runs: RunRecord[], tool: RunRecord['tool'], jobs: number): RunRecord[] {
  return runs.filter((r) => !r.warmup && r.tool === tool && r.jobs === jobs);
}

function rowsOf(runs: RunRecord[]): Row[] {
  return CONFIG.jobs.map((jobs) => {
    const raw = measured(runs, 'raw', jobs);
    const bc = measured(runs, 'backupctl', jobs);
    const rawS = median(raw.map((r) => r.wallS));
    const backupctlS = median(bc.map((r) => r.wallS));
    const qRaw = raw.filter((r) => !r.noisy);
    const qBc = bc.filter((r) => !r.noisy);
    return {
      jobs,
      rawS,
      backupctlS,
      ratio: backupctlS / rawS,
      rawRuns: raw.map((r) => r.wallS),
      backupctlRuns: bc.map((r) => r.wallS),
      quietRatio: qRaw.length && qBc.length ? median(qBc.map((r) => r.wallS)) / median(qRaw.map((r) => r.wallS)) : null,
      pairedRatio: median(
        bc.flatMap((b) => {
          const a = raw.find((r) => r.round === b.round);
          return a ? [b.wallS / a.wallS] : [];
        }),
      ),
      rawRestoreS: phaseMedian(raw, 'pgRestoreS'),
      backupctlRestoreS: phaseMedian(bc, 'pgRestoreS'),
      rawOutsideS: median(raw.map((r) => r.wallS - (r.phases.pgRestoreS ?? NaN)).filter((v) => !Number.isNaN(v))),
      backupctlOutsideS: median(bc.map((r) => r.wallS - (r.phases.pgRestoreS ?? NaN)).filter((v) => !Number.isNaN(v))),
      backupctlRssMb: Math.max(...bc.map((r) => r.peakRssMb ?? 0)),
      backupctlTimeRssMb: Math.max(...bc.map((r) => r.timeMaxRssMb ?? 0)),
      pgRestoreRssMb: Math.max(...[...raw, ...bc].map((r) => r.pgRestoreRssMb ?? 0)),
    };
  });
}

function phaseMedian(runs: RunRecord[], key: keyof Phases): number {
  const vals = runs.map((r) => r.phases[key]).filter((v): v is number => typeof v === 'number');
  return vals.length ? median(vals) : NaN;
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

interface Backup {
  id: string;
  artifact: string;
  bytes: number;
  sha256: string;
  tocEntries: number;
  tables: number;
  createWallS: number;
}

interface Report {
  machine: Machine;
  dataset: DatasetInfo;
  tableSizes: { name: string; rows: number; heapMb: number; totalMb: number }[];
  backup: Backup;
  runs: RunRecord[];
  rows: Row[];
  speedups: { tool: string; j1: number; jN: number; jobs: number; speedup: number }[];
  components: Component[];
  verdicts: { name: string; pass: boolean; detail: string }[];
  totalS: number;
  /** Rows of earlier runs' history, from RESULTS.md. */
  history: string[];
}

function section(rep: Report): string {
  const { machine, dataset, backup, runs, rows, tableSizes } = rep;
  const L: string[] = [];
  L.push(SECTION, '');
  L.push('Generated by `npm run bench:verify` (bench/verify.ts). Rerunning replaces this section and leaves the rest of the file alone.', '');
  L.push('### Machine', '');
  L.push(`- date: ${machine.date}`);
  L.push(`- CPU: ${machine.nproc} cores (nproc), ${machine.cpuModel}; RAM ${machine.ramGb.toFixed(1)} GB; ${machine.kernel}; node ${machine.node}`);
  L.push(`- PostgreSQL server: ${machine.postgresServer} (throw-away cluster from test/helpers/cluster.ts: fsync=off, local TCP)`);
  L.push(`- raw side: \`${machine.rawPgRestore}\`, with the same directory's createdb and dropdb`);
  L.push(`- backupctl's pg_restore (argv[0] of the restoring process as seen): ${machine.backupctlPgRestore.map((p) => `\`${p}\``).join(', ') || '?'}`);
  L.push(`- backupctl build: frozen copy of bin/ + dist/ taken at start (dist sha256 ${machine.distHash})`);
  L.push(`- peak RSS: ${machine.gnuTime ? '/usr/bin/time -f %M (the command and its waited-for descendants) and ' : ''}VmHWM of each process polled every 50 ms (bench/measure.ts)`);
  L.push('');
  L.push('### Reproduce', '');
  L.push('```sh', 'npm run bench:verify', '# knobs (defaults shown):');
  L.push(`BENCH_VERIFY_MB=600 BENCH_RUNS=7 BENCH_WARMUP=1 BENCH_VERIFY_JOBS=1,2 BENCH_QUIET_CORES=0.3 BENCH_QUIET_WAIT_S=20 BENCH_NICE=-10 BENCH_VERIFY_COMPONENTS=1 BENCH_OTHER_WAIT_S=1800 BENCH_WORKDIR=${os.tmpdir()} npm run bench:verify`);
  L.push('```', '');
  L.push(
    `This run: BENCH_VERIFY_MB=${CONFIG.mb} BENCH_RUNS=${CONFIG.runs} BENCH_WARMUP=${CONFIG.warmup} BENCH_VERIFY_JOBS=${CONFIG.jobs.join(',')} ` +
      `BENCH_QUIET_CORES=${CONFIG.quietCores} BENCH_QUIET_WAIT_S=${CONFIG.quietWaitS} BENCH_NICE=${CONFIG.nice} BENCH_OTHER_WAIT_S=${CONFIG.otherBenchWaitS}; total ${(rep.totalS / 60).toFixed(1)} min.`,
    '',
  );
  L.push(
    'One backup is taken with `node bin/backupctl.js --storage DIR create --format custom` of the create bench\'s data set (bench/dataset.ts). ' +
      'Then, per round and per `--jobs N`, one run of each side in ABBA order (raw first in the warm-up and in odd rounds, backupctl first in even rounds): raw = `sh -c \'createdb DB && pg_restore --exit-on-error --no-owner --no-acl --jobs N -d DB ARTIFACT && dropdb DB\'` ' +
      '(the cluster\'s binaries, the artifact read in place from the storage; the whole sequence timed), and backupctl = ' +
      '`node bin/backupctl.js --storage DIR --json --log-format json --verbose verify ID --jobs N` (level restore: re-hash, TOC read, throwaway database, ' +
      'pg_restore --exit-on-error --no-owner --no-acl, count(*) of every table against the sidecar, drop, verification record written to the sidecar). ' +
      'Both connect through PGHOST/PGPORT/PGUSER/PGPASSWORD. Each side gets one unmeasured warm-up per N. ' +
      'Before each run the bench waits while bench/run.ts or bench/profile.ts runs (up to BENCH_OTHER_WAIT_S, default 1800), then (up to BENCH_QUIET_WAIT_S) for a 1 s window with at most BENCH_QUIET_CORES busy cores; as root, the server and both commands run at nice BENCH_NICE (process and autogroup), the same for both sides. ' +
      `A run is marked noisy when other processes burnt more than ${NOISY_CORES} cores on average during it ("foreign cpu-s" / wall) or the quiet wait gave up; medians include noisy runs, the "quiet-only ratio" column leaves them out.`,
    '',
  );
  L.push('### Data set and backup', '');
  L.push('| pg_database_size MB | customers | orders | events | build s | artifact MB | TOC entries | tables counted | backup id | create wall s |');
  L.push('|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|');
  L.push(
    `| ${mb(dataset.sizeBytes).toFixed(0)} | ${dataset.customers.toLocaleString('en-US')} | ${dataset.orders.toLocaleString('en-US')} | ${dataset.events.toLocaleString('en-US')} | ${f1(dataset.buildS)} | ${mb(backup.bytes).toFixed(1)} | ${backup.tocEntries} | ${backup.tables} | ${backup.id} | ${f2(backup.createWallS)} |`,
    '',
  );
  L.push('Tables of the source database (pg_relation_size = heap; total = with TOAST and indexes): pg_restore --jobs parallelises across tables and indexes, not within one.', '');
  L.push('| table | rows | heap MB | total MB |', '|---|---:|---:|---:|');
  for (const t of tableSizes) L.push(`| ${t.name} | ${t.rows.toLocaleString('en-US')} | ${f1(t.heapMb)} | ${f1(t.totalMb)} |`);
  L.push('');
  L.push('### Results (medians of wall seconds)', '');
  L.push(`| --jobs | median raw s | median backupctl s | ratio backupctl/raw | target | quiet-only ratio | backupctl node peak RSS MB (max) | /usr/bin/time %M MB (max) | pg_restore peak RSS MB (max) |`);
  L.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    L.push(
      `| ${r.jobs} | ${f2(r.rawS)} | ${f2(r.backupctlS)} | ${f3(r.ratio)} | <= ${TARGET_RATIO.toFixed(2)} ${r.ratio <= TARGET_RATIO ? 'PASS' : 'FAIL'} | ${f3(r.quietRatio)} | ${f1(r.backupctlRssMb)} | ${f1(r.backupctlTimeRssMb)} | ${f1(r.pgRestoreRssMb)} |`,
    );
  }
  L.push('');
  L.push(
    'Context for the ratio (not the verdict): the median of the per-round ratios (each backupctl run over the raw run of the same round and --jobs, run next to it), and the medians of pg_restore\'s own span and of everything outside it (wall minus that span) on each side.',
    '',
  );
  L.push('| --jobs | median per-round ratio | raw: pg_restore s | backupctl: pg_restore s | raw: outside pg_restore s | backupctl: outside pg_restore s | difference outside s |', '|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    L.push(`| ${r.jobs} | ${f3(r.pairedRatio)} | ${f2(r.rawRestoreS)} | ${f2(r.backupctlRestoreS)} | ${f2(r.rawOutsideS)} | ${f2(r.backupctlOutsideS)} | ${f2(r.backupctlOutsideS - r.rawOutsideS)} |`);
  }
  L.push('');
  if (rep.speedups.length) {
    L.push('| side | median --jobs 1 s | median --jobs N s | N | speedup |', '|---|---:|---:|---:|---:|');
    for (const s of rep.speedups) L.push(`| ${s.tool} | ${f2(s.j1)} | ${f2(s.jN)} | ${s.jobs} | ${f2(s.speedup)}x |`);
    L.push('');
  }
  L.push('### Verdict', '');
  for (const v of rep.verdicts) L.push(`- ${v.pass ? 'PASS' : 'FAIL'} ${v.name}: ${v.detail}`);
  L.push('');
  L.push('### Where the time goes (medians of the measured runs, seconds)', '');
  L.push(
    `From a ${POLL_MS} ms poll of our process tree (pg_restore's life, createdb, dropdb) and of the server's backend titles (the throwaway database's count(*) SELECTs, DROP DATABASE), ` +
      'and backupctl\'s JSON log lines ("verifying", "restoring into throwaway database"); each boundary is good to about one poll interval. ' +
      'before = spawn to first pg_restore (restoring) seen; pg_restore = its first to last sighting; after = its end to exit. ' +
      'backupctl: startup = spawn to "verifying"; checks = "verifying" to "restoring into" from the log (always measured: everything from the re-hash to CREATE DATABASE); within it, when the poll caught the short processes: pre-discovery = "verifying" to the first `pg_restore --version` (globals check, opening the artifact, server version query; and the artifact\'s re-hash in builds that finish it before going on); ' +
      'discovery = pg_restore discovery up to `pg_restore --list`; toc = `--list` seen; createdb = end of `--list` to "restoring into" (server version, passfile, CREATE DATABASE); CREATE DATABASE seen = that statement as seen on the server (both sides); ' +
      'counts = end of pg_restore to the first DROP DATABASE seen (connect, list tables, count(*) of each); count SELECTs = the SELECT on the throwaway database as seen; drop = DROP DATABASE seen; tail = its end to exit (sidecar record, output).',
    '',
  );
  L.push('| --jobs | side | wall | before | pg_restore | after | startup | checks | pre-discovery | discovery | toc | createdb | CREATE DATABASE seen | counts | count SELECTs | drop (DROP DATABASE seen) | tail | createdb program (raw) | dropdb program (raw) |');
  L.push('|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const jobs of CONFIG.jobs) {
    for (const tool of ['raw', 'backupctl'] as const) {
      const rs = measured(runs, tool, jobs);
      const m = (k: keyof Phases): string => f2(phaseMedian(rs, k));
      L.push(
        `| ${jobs} | ${tool} | ${f2(median(rs.map((r) => r.wallS)))} | ${m('beforeS')} | ${m('pgRestoreS')} | ${m('afterS')} | ${m('startupS')} | ${m('checksS')} | ${m('hashS')} | ${m('discoveryS')} | ${m('tocS')} | ${m('createS')} | ${m('createDbSeenS')} | ${m('countsS')} | ${m('countSelectS')} | ${m('dropS')} | ${m('tailS')} | ${m('createdbS')} | ${m('dropdbS')} |`,
      );
    }
  }
  L.push('');
  L.push('CPU seconds per process (medians; client = the command and its children, server = the backends that served it):', '');
  L.push('| --jobs | side | machine busy cpu-s | client CPU s | server CPU s |', '|---:|---|---:|---|---|');
  for (const jobs of CONFIG.jobs) {
    for (const tool of ['raw', 'backupctl'] as const) {
      const rs = measured(runs, tool, jobs);
      L.push(`| ${jobs} | ${tool} | ${f1(median(rs.map((r) => r.machineBusyS)))} | ${cpuMedians(rs, 'clientCpu')} | ${cpuMedians(rs, 'serverCpu')} |`);
    }
  }
  L.push('');
  if (rep.components.length) {
    L.push('### Components measured alone', '');
    L.push(`After the series, ${CONFIG.runs} rounds of each (quiet wait before each round; same artifact, same cluster):`, '');
    L.push('| component | what | median s | every run s |', '|---|---|---:|---|');
    for (const comp of rep.components) L.push(`| ${comp.name} | ${comp.what} | ${f3(median(comp.values))} | ${comp.values.map((v) => f3(v)).join(', ')} |`);
    L.push('');
  }
  L.push(HISTORY, '');
  L.push(
    'One line per run of `npm run bench:verify` (kept when the section is rewritten). "dist sha256" identifies the backupctl build measured: src/ changes between runs. ' +
      '"per-round ratio" is the median of each backupctl run over the raw run of the same round and --jobs (run next to it; before 2026-11-29T23:43Z always just before it); "outside pg_restore" is the median of wall minus pg_restore\'s own span.',
    '',
  );
  L.push(...HISTORY_HEAD, ...rep.history, historyRow(rep), '');
  L.push('### Every run', '');
  L.push('| # | round | --jobs | tool | wall s | verify durationMs s | node/pg_restore peak RSS MB | time %M MB | pg_restore RSS MB | machine busy cpu-s | foreign cpu-s | busy cores before | waited s | noisy | before s | pg_restore s | after s |');
  L.push('|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|');
  runs.forEach((r, i) => {
    L.push(
      `| ${i + 1} | ${r.warmup ? 'warm-up' : r.round} | ${r.jobs} | ${r.tool} | ${f3(r.wallS)} | ${f2(r.reportedS)} | ${f1(r.peakRssMb)} | ${f1(r.timeMaxRssMb)} | ${f1(r.pgRestoreRssMb)} | ${f1(r.machineBusyS)} | ${f1(r.foreignCpuS)} | ${f2(r.preBusyCores)} | ${f1(r.quietWaitS)} | ${r.noisy ? 'yes' : ''} | ${f2(r.phases.beforeS)} | ${f2(r.phases.pgRestoreS)} | ${f2(r.phases.afterS)} |`,
    );
  });
  L.push('');
  return L.join('\n');
}

const HISTORY = '### Every run of this bench so far';
const HISTORY_HEAD = [
  '| date | dist sha256 | this run | ratio per --jobs: backupctl/raw (median raw s / median backupctl s) | per-round ratio | outside pg_restore, backupctl - raw s | noisy runs | verdict |',
  '|---|---|---|---|---|---|---|---|',
];

/** One line of the history table for this run. */
function historyRow(rep: Report): string {
  const measuredRuns = rep.runs.filter((r) => !r.warmup);
  const per = (fn: (r: Row) => string): string => rep.rows.map((r) => `${r.jobs}: ${fn(r)}`).join('; ');
  return (
    `| ${rep.machine.date} | ${rep.machine.distHash} | ${CONFIG.mb} MB, ${CONFIG.runs} runs | ${per((r) => `${f3(r.ratio)} (${f2(r.rawS)} / ${f2(r.backupctlS)})`)} | ` +
    `${per((r) => f3(r.pairedRatio))} | ${per((r) => `+${f2(r.backupctlOutsideS - r.rawOutsideS)}`)} | ${measuredRuns.filter((r) => r.noisy).length}/${measuredRuns.length} | ` +
    `${rep.verdicts.map((v) => (v.pass ? 'PASS' : 'FAIL')).join(' ')} |`
  );
}

/** The history rows of the section now in RESULTS.md (kept across reruns). */
function previousHistory(): string[] {
  if (!existsSync(RESULTS)) return [];
  const old = readFileSync(RESULTS, 'utf8');
  const at = old.indexOf(`\n${SECTION}\n`);
  if (at < 0) return [];
  const h = old.indexOf(`\n${HISTORY}\n`, at);
  if (h < 0) return [];
  const rows: string[] = [];
  for (const line of old.slice(h + HISTORY.length + 2).split('\n').slice(0)) {
    if (line.startsWith('#')) break;
    if (/^\| \d{4}-/.test(line)) rows.push(line);
  }
  return rows;
}

/** Puts the section below the analysis marker (replacing an earlier run's section), never above it. */
function writeSection(text: string): void {
  const old = existsSync(RESULTS) ? readFileSync(RESULTS, 'utf8') : '';
  const marker = old.indexOf(ANALYSIS_MARKER);
  const from = Math.max(marker, 0);
  const at = old.indexOf(`\n${SECTION}\n`, from);
  let out: string;
  if (at >= 0) {
    const next = old.slice(at + 1 + SECTION.length).search(/\n## /);
    const end = next >= 0 ? at + 1 + SECTION.length + next + 1 : old.length;
    out = `${old.slice(0, at + 1)}${text}\n${old.slice(end)}`;
  } else {
    out = `${old.trimEnd()}\n\n${text}`;
  }
  writeFileSync(RESULTS, out.endsWith('\n') ? out : `${out}\n`);
}

async function takeBackup(c: Cluster, storage: string): Promise<Backup> {
  const env = { ...baseEnv(), ...c.env('bench') };
  const r = await runMeasured(process.execPath, [BIN, '--storage', storage, '--json', 'create', '--format', 'custom'], { env, cwd: workdir ?? os.tmpdir(), nice: CONFIG.nice });
  check(r, 'backupctl create');
  const files = filesUnder(storage);
  const artifact = files.find((f) => f.endsWith('.dump'));
  const sidecarFile = files.find((f) => f.endsWith('.json') && !f.includes('.runs'));
  if (!artifact || !sidecarFile) throw new Error(`backupctl create left no .dump + .json in ${storage}: ${files.join(', ')}`);
  const sidecar = JSON.parse(readFileSync(sidecarFile, 'utf8')) as {
    id: string;
    artifact: { bytes: number; sha256: string; container: string };
    dump: { tocEntries: number; format: string };
    tables: unknown[];
  };
  if (sidecar.dump.format !== 'custom') throw new Error(`expected a custom-format backup, got ${sidecar.dump.format}`);
  return {
    id: sidecar.id,
    artifact,
    bytes: statSync(artifact).size,
    sha256: sidecar.artifact.sha256,
    tocEntries: sidecar.dump.tocEntries,
    tables: sidecar.tables.length,
    createWallS: r.wallS,
  };
}

/** ABBA: raw first in the warm-up and in odd rounds, backupctl first in even rounds. */
function sideOrder(round: number, warmup: boolean): readonly RunRecord['tool'][] {
  return warmup || round % 2 === 1 ? ['raw', 'backupctl'] : ['backupctl', 'raw'];
}

async function main(): Promise<void> {
  const t0 = performance.now();
  if (!existsSync(path.join(ROOT, 'dist', 'cli.js'))) throw new Error('dist/ is missing: run `npm run build` (npm run bench:verify does)');
  log(
    `bench:verify: ${CONFIG.mb} MB, --jobs ${CONFIG.jobs.join(',')}, ${CONFIG.runs} runs each (+${CONFIG.warmup} warm-up), ${os.availableParallelism()} CPUs, ` +
      `quiet <= ${CONFIG.quietCores} cores (wait <= ${CONFIG.quietWaitS} s), nice ${CONFIG.nice}`,
  );
  await waitForOtherBenches();
  workdir = mkdtempSync(path.join(CONFIG.workdirBase, 'backupctl-bench-verify-'));
  log(`work dir ${workdir}`);
  const snapshot = snapshotBuild(ROOT, workdir);
  BIN = snapshot.bin;
  const distHash = snapshot.distHash;
  log(`backupctl under test: frozen copy of bin/ + dist/ (dist sha256 ${distHash}) at ${BIN}`);
  log('starting a throw-away cluster...');
  cluster = await startCluster({ name: 'bench-verify' });
  const c = cluster;
  log(`PostgreSQL ${c.majorVersion} on ${c.host}:${c.port} (${c.binDir})`);
  if (CONFIG.nice) {
    reniceServer(c, CONFIG.nice, log);
    setAutogroupNice('self', CONFIG.nice, log);
    log(`server and measured commands run at nice ${CONFIG.nice} (BENCH_NICE)`);
  }
  await c.createDatabase('bench');
  const serverVersion = (await c.query<{ v: string }>('postgres', 'SELECT version() AS v'))[0]?.v ?? '?';
  const machine = machineInfo(c, serverVersion, distHash);

  log('');
  log(`== building the data set to >= ${CONFIG.mb} MB (pg_database_size)`);
  builder = await DatasetBuilder.connect({ host: c.host, port: c.port, user: c.user, password: c.password, database: 'bench' });
  const dataset = await builder.growTo(CONFIG.mb * 1024 * 1024, (l) => log(l));
  await builder.close();
  builder = null;
  log(
    `pg_database_size(bench) = ${mb(dataset.sizeBytes).toFixed(1)} MB (${dataset.sizeBytes} bytes): ` +
      `${dataset.customers} customers, ${dataset.orders} orders, ${dataset.events} events; built in ${dataset.buildS.toFixed(1)} s`,
  );
  const tableSizes = (
    await c.query<{ name: string; rows: string; heap: string; total: string }>(
      'bench',
      `SELECT c.relname AS name, c.reltuples::int8::text AS rows, pg_relation_size(c.oid)::text AS heap, pg_total_relation_size(c.oid)::text AS total
         FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace ORDER BY pg_total_relation_size(c.oid) DESC`,
    )
  ).map((r) => ({ name: r.name, rows: Number(r.rows), heapMb: mb(Number(r.heap)), totalMb: mb(Number(r.total)) }));
  for (const t of tableSizes) log(`  ${t.name}: ${t.rows} rows, heap ${f1(t.heapMb)} MB, total ${f1(t.totalMb)} MB`);
  if (dataset.sizeBytes < 500 * 1024 * 1024 && CONFIG.mb >= 500) throw new Error('data set smaller than 500 MB');

  log('');
  log('== one backup: backupctl create --format custom');
  const storage = path.join(workdir, 'storage');
  mkdirSync(storage);
  const backup = await takeBackup(c, storage);
  log(`backup ${backup.id}: ${mb(backup.bytes).toFixed(1)} MB, ${backup.tocEntries} TOC entries, ${backup.tables} tables counted; create took ${f2(backup.createWallS)} s`);

  log('');
  log('== runs (raw = createdb && pg_restore && dropdb; backupctl = verify)');
  const runs: RunRecord[] = [];
  const rounds = [...Array.from({ length: CONFIG.warmup }, (_, i) => ({ round: i + 1, warmup: true })), ...Array.from({ length: CONFIG.runs }, (_, i) => ({ round: i + 1, warmup: false }))];
  for (const { round, warmup } of rounds) {
    for (const jobs of CONFIG.jobs) {
      for (const tool of sideOrder(round, warmup)) {
        const rec = await measureOne(() =>
          tool === 'raw' ? runRaw(c, jobs, round, warmup, backup.artifact) : runBackupctl(c, jobs, round, warmup, storage, backup.id),
        );
        runs.push(rec);
        log(`  ${warmup ? '' : `[${round}/${CONFIG.runs}] `}${describe(rec)}`);
      }
    }
  }
  machine.backupctlPgRestore = [...backupctlArgv0];

  let components: Component[] = [];
  if (CONFIG.components) {
    log('');
    log('== components measured alone');
    components = await measureComponents(c, backup.artifact, backup.sha256);
  }

  const rows = rowsOf(runs);
  const speedups: Report['speedups'] = [];
  const j1 = rows.find((r) => r.jobs === 1);
  for (const r of rows.filter((x) => x.jobs !== 1)) {
    if (!j1) break;
    speedups.push({ tool: 'raw', j1: j1.rawS, jN: r.rawS, jobs: r.jobs, speedup: j1.rawS / r.rawS });
    speedups.push({ tool: 'backupctl', j1: j1.backupctlS, jN: r.backupctlS, jobs: r.jobs, speedup: j1.backupctlS / r.backupctlS });
  }
  const verdicts = rows.map((r) => ({
    name: `ratio --jobs ${r.jobs} <= ${TARGET_RATIO.toFixed(2)}`,
    pass: r.ratio <= TARGET_RATIO,
    detail: `${f3(r.ratio)} (${f2(r.backupctlS)} s vs ${f2(r.rawS)} s; quiet runs only: ${f3(r.quietRatio)})`,
  }));
  const left = runs.filter((r) => r.tool === 'backupctl' && r.leftoverDatabases.length);
  verdicts.push({
    name: 'no throwaway database survives a verify',
    pass: left.length === 0,
    detail: left.length ? `${left.length} runs left ${left.flatMap((r) => r.leftoverDatabases).join(', ')}` : `none left after ${runs.filter((r) => r.tool === 'backupctl').length} verifies`,
  });

  log('');
  log('| --jobs | median raw s | median backupctl s | ratio | quiet-only ratio | backupctl node peak RSS MB | time %M MB |');
  log('|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) log(`| ${r.jobs} | ${f2(r.rawS)} | ${f2(r.backupctlS)} | ${f3(r.ratio)} | ${f3(r.quietRatio)} | ${f1(r.backupctlRssMb)} | ${f1(r.backupctlTimeRssMb)} |`);
  for (const r of rows) {
    log(
      `--jobs ${r.jobs}: per-round ratio ${f3(r.pairedRatio)}; pg_restore ${f2(r.rawRestoreS)} s raw vs ${f2(r.backupctlRestoreS)} s backupctl; ` +
        `outside pg_restore ${f2(r.rawOutsideS)} s raw vs ${f2(r.backupctlOutsideS)} s backupctl`,
    );
  }
  for (const s of speedups) log(`speedup --jobs ${s.jobs} over --jobs 1, ${s.tool}: ${f2(s.speedup)}x (${f2(s.j1)} s -> ${f2(s.jN)} s)`);
  for (const v of verdicts) log(`${v.pass ? 'PASS' : 'FAIL'}  ${v.name}: ${v.detail}`);

  const totalS = (performance.now() - t0) / 1000;
  const report: Report = { machine, dataset, tableSizes, backup, runs, rows, speedups, components, verdicts, totalS, history: previousHistory() };
  writeSection(section(report));
  log('');
  log(`wrote the "${SECTION.slice(3)}" section of ${path.relative(ROOT, RESULTS)}`);
  log(JSON.stringify({ config: CONFIG, targetRatio: TARGET_RATIO, ...report, verdict: { pass: verdicts.every((v) => v.pass) } }));
  process.exitCode = verdicts.every((v) => v.pass) ? 0 : 1;
}

try {
  await main();
} catch (error) {
  process.exitCode = 2;
  process.stderr.write(`bench:verify failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
} finally {
  await (builder as DatasetBuilder | null)?.close();
  // Any database a failed run left behind goes with the cluster.
  const c = cluster as Cluster | null;
  if (c) {
    await c.stop();
    stopClusterSync(c); // the directory, if stop() could not remove it
    cluster = null;
  }
  cleanupSync();
}
