/**
 * Where does backupctl's time go? `tsx bench/profile.ts` (after `npm run build`).
 *
 *   BENCH_PROFILE_MB=150,600  BENCH_PROFILE_RUNS=3  BENCH_QUIET_CORES=0.3  BENCH_QUIET_WAIT_S=20  BENCH_NICE=-10
 *
 * On a throw-away cluster with the bench's data set, runs these experiments round-robin
 * (one of each per round, so drift hits all of them alike) and prints medians:
 *
 *   raw              pg_dump -Fc -f FILE (the cluster's own pg_dump)
 *   raw+counts       the same, while this process counts every table's rows in a
 *                    REPEATABLE READ transaction, exactly as backupctl does (one count(*) after another)
 *   counts           the counts alone
 *   node-import      node importing dist/cli.js and the create command's chunk, nothing else
 *   backupctl        node bin/backupctl.js create --format custom (as the bench runs it)
 *   bc:noglobals     ... with --no-globals
 *   bc:noglobals,nocount  ... and no row counts
 *   bc:pgBinDir      ... with a config file setting pgBinDir to the cluster's bin dir
 *                    (discovery limited to one directory)
 *   bc:semi1         ... with NODE_OPTIONS=--max-semi-space-size=1 (a small V8 young generation)
 *   bc:coalesce      ... with pg_dump's 4 KiB pipe writes coalesced into 1 MiB chunks
 *                    before the sha256 and file-write stages
 *   bc:coalesce,semi1  both
 *
 * Variants are patched into scratch copies of dist/ (src/ and dist/ are not touched);
 * a patch that no longer applies (the code moved on) fails loudly.
 *
 * Nothing here is part of `npm run bench`; it backs the analysis in bench/RESULTS.md.
 */
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startCluster, type Cluster } from '../test/helpers/cluster.js';
import { DatasetBuilder } from './dataset.js';
import { machineBusyS, median, runMeasured, waitForQuiet, type RunResult } from './measure.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SIZES = (process.env.BENCH_PROFILE_MB ?? '150,600').split(',').map(Number);
const RUNS = Number(process.env.BENCH_PROFILE_RUNS ?? 3);
const QUIET_CORES = Number(process.env.BENCH_QUIET_CORES ?? 0.3);
const QUIET_WAIT_S = Number(process.env.BENCH_QUIET_WAIT_S ?? 20);
const NICE = Number(process.env.BENCH_NICE ?? (process.getuid?.() === 0 ? -10 : 0));

const log = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

let cluster: Cluster | null = null;
let scratch: string | null = null;
const cleanup = (): void => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  scratch = null;
};
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    cleanup();
    process.exit(130);
  });
}

interface Sample {
  wallS: number;
  client: Record<string, number>;
  server: Record<string, number>;
  busyS: number;
  foreignS: number;
  rssMb: number | null;
  phases: Record<string, number>;
}

function summarize(r: RunResult, busyS: number, phases: Record<string, number> = {}): Sample {
  const client: Record<string, number> = {};
  for (const p of r.tree) client[p.comm] = (client[p.comm] ?? 0) + p.cpuS;
  const server: Record<string, number> = {};
  for (const p of r.server) server[p.comm] = (server[p.comm] ?? 0) + p.cpuS;
  const own = [...r.tree, ...r.server].reduce((s, p) => s + p.cpuS, 0);
  return { wallS: r.wallS, client, server, busyS, foreignS: Math.max(0, busyS - own), rssMb: r.selfPeakRssMb, phases };
}

/** Phase boundaries from backupctl's JSON log (ms resolution). */
function phasesOf(stderr: string, spawnMs: number, endMs: number): Record<string, number> {
  const t: Record<string, number> = {};
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const e = JSON.parse(line) as { time: string; message: string };
      const at = Date.parse(e.time);
      if (e.message.startsWith('backing up ')) t.start = at;
      else if (e.message.startsWith('dump: done')) t.dump = at;
      else if (/^backup \S+ completed/.test(e.message)) t.done = at;
    } catch {
      // not JSON
    }
  }
  const out: Record<string, number> = {};
  if (t.start !== undefined) out.startup = (t.start - spawnMs) / 1000;
  if (t.start !== undefined && t.dump !== undefined) out.dump = (t.dump - t.start) / 1000;
  if (t.dump !== undefined && t.done !== undefined) out.after = (t.done - t.dump) / 1000;
  if (t.done !== undefined) out.exit = (endMs - t.done) / 1000;
  return out;
}

function postmasterPid(c: Cluster): number {
  return Number(readFileSync(path.join(c.dataDir, 'postmaster.pid'), 'latin1').split('\n')[0]);
}

async function countAll(c: Cluster, ready?: () => Promise<void>): Promise<number> {
  const client = new pg.Client({ host: c.host, port: c.port, user: c.user, password: c.password, database: 'bench' });
  await client.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    await client.query('SELECT pg_export_snapshot()');
    await ready?.();
    const t0 = performance.now();
    const { rows } = await client.query<{ schema: string; name: string }>(
      `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE (c.relkind = 'r' OR (c.relkind = 'm' AND c.relispopulated))
          AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
        ORDER BY 1, 2`,
    );
    for (const t of rows) await client.query(`SELECT count(*) FROM "${t.schema}"."${t.name}"`);
    const s = (performance.now() - t0) / 1000;
    await client.query('COMMIT');
    return s;
  } finally {
    await client.end();
  }
}

interface Patch {
  /** The bundle chunk to patch: the first dist/*.js whose code matches this. */
  file: RegExp;
  from: RegExp;
  to: string;
}

/** What-if variants of the compiled code, applied to a scratch copy only. */
const NO_COUNT: Patch = { file: /session\.countRows\(/, from: /session\.countRows\([^)]*\)/, to: 'Promise.resolve([])' };
/** Coalesces pg_dump's 4 KiB pipe writes into 1 MiB chunks before hashing and writing. */
const COALESCE: Patch[] = [
  {
    file: /pipeline\(\[source, \.\.\.transforms, digest\]/,
    from: /pipeline\(\[source, \.\.\.transforms, digest\]/,
    to: 'pipeline([source, coalesce(), ...transforms, digest]',
  },
  {
    file: /pipeline\(\[source, coalesce\(\), \.\.\.transforms, digest\]/,
    from: /^/,
    to: `import { Transform as CoalesceTransform } from 'node:stream';
function coalesce(limit = 1 << 20) {
  let parts = [];
  let size = 0;
  return new CoalesceTransform({
    transform(chunk, _encoding, callback) {
      parts.push(chunk);
      size += chunk.length;
      if (size < limit) return callback();
      const out = Buffer.concat(parts, size);
      parts = [];
      size = 0;
      callback(null, out);
    },
    flush(callback) {
      if (size === 0) return callback();
      callback(null, Buffer.concat(parts, size));
    },
  });
}
`,
  },
];

/**
 * A frozen copy of bin/ + dist/ (node_modules linked; others rebuild dist/ in this tree),
 * with `patches` applied to the copy. Returns the copy's root.
 */
function copyBuild(dir: string, name: string, patches: Patch[] = []): string {
  const root = path.join(dir, name);
  mkdirSync(root);
  cpSync(path.join(ROOT, 'bin'), path.join(root, 'bin'), { recursive: true });
  cpSync(path.join(ROOT, 'dist'), path.join(root, 'dist'), { recursive: true });
  cpSync(path.join(ROOT, 'package.json'), path.join(root, 'package.json'));
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(root, 'node_modules'));
  for (const patch of patches) {
    const chunk = readdirSync(path.join(root, 'dist')).find(
      (name) => name.endsWith('.js') && patch.file.test(readFileSync(path.join(root, 'dist', name), 'utf8')),
    );
    if (!chunk) throw new Error(`variant ${name}: no dist/*.js matches ${patch.file}`);
    const file = path.join(root, 'dist', chunk);
    const js = readFileSync(file, 'utf8');
    const patched = js.replace(patch.from, patch.to);
    if (patched === js) throw new Error(`variant ${name}: ${patch.from} not found in dist/${chunk}`);
    writeFileSync(file, patched);
  }
  return root;
}

type Experiment = { name: string; run: (c: Cluster, dir: string) => Promise<Sample> };

function backupctl(name: string, bin: string, opts: { pgBinDir?: boolean; noGlobals?: boolean; nodeOptions?: string }): Experiment {
  return {
    name,
    async run(c, dir) {
      const cwd = mkdtempSync(path.join(dir, 'bc-'));
      if (opts.pgBinDir) writeFileSync(path.join(cwd, 'backupctl.config.json'), JSON.stringify({ pgBinDir: c.binDir }));
      const storage = path.join(cwd, 'storage');
      const args = [bin, '--storage', storage, '--json', '--log-format', 'json', '--verbose', 'create', '--format', 'custom'];
      if (opts.noGlobals) args.push('--no-globals');
      const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', NO_COLOR: '1', ...c.env('bench') };
      if (opts.nodeOptions) env.NODE_OPTIONS = opts.nodeOptions;
      const b0 = machineBusyS();
      const spawnMs = Date.now();
      const r = await runMeasured(process.execPath, args, { env, cwd, postmasterPid: postmasterPid(c), nice: NICE });
      const endMs = Date.now();
      const busy = machineBusyS() - b0;
      if (r.exitCode !== 0) throw new Error(`${name} failed: ${r.stderr}`);
      rmSync(cwd, { recursive: true, force: true });
      return summarize(r, busy, phasesOf(r.stderr, spawnMs, endMs));
    },
  };
}

const experiments = (builds: Record<string, string>): Experiment[] => {
  const base = builds.base as string;
  const bin = (name: string): string => path.join(builds[name] as string, 'bin', 'backupctl.js');
  return [
  {
    name: 'raw',
    async run(c, dir) {
      const file = path.join(dir, 'raw.dump');
      const b0 = machineBusyS();
      const r = await runMeasured(c.bin('pg_dump'), ['-Fc', '-f', file], { env: { PATH: process.env.PATH ?? '', ...c.env('bench') }, postmasterPid: postmasterPid(c), nice: NICE });
      const busy = machineBusyS() - b0;
      if (r.exitCode !== 0) throw new Error(r.stderr);
      statSync(file);
      rmSync(file);
      return summarize(r, busy);
    },
  },
  {
    name: 'raw+counts',
    async run(c, dir) {
      const file = path.join(dir, 'raw.dump');
      let release!: () => void;
      const started = new Promise<void>((resolve) => (release = resolve));
      let countS = 0;
      const counting = countAll(c, () => started).then((s) => (countS = s));
      // give the counting session its snapshot first, as backupctl does
      await new Promise((resolve) => setTimeout(resolve, 50));
      const b0 = machineBusyS();
      const dump = runMeasured(c.bin('pg_dump'), ['-Fc', '-f', file], { env: { PATH: process.env.PATH ?? '', ...c.env('bench') }, postmasterPid: postmasterPid(c), nice: NICE });
      release();
      const r = await dump;
      await counting;
      const busy = machineBusyS() - b0;
      if (r.exitCode !== 0) throw new Error(r.stderr);
      rmSync(file);
      return summarize(r, busy, { counts: countS });
    },
  },
  {
    name: 'counts',
    async run(c) {
      const b0 = machineBusyS();
      const t0 = performance.now();
      const s = await countAll(c);
      return { wallS: (performance.now() - t0) / 1000, client: {}, server: {}, busyS: machineBusyS() - b0, foreignS: 0, rssMb: null, phases: { counts: s } };
    },
  },
  {
    name: 'node-import',
    async run() {
      // dist/ is one bundle split at the commands' dynamic imports: the create chunk is create-<hash>.js.
      const createChunk = readdirSync(path.join(base, 'dist')).find((name) => /^create-[A-Z0-9]+\.js$/.test(name));
      if (!createChunk) throw new Error('no create chunk in dist/');
      const code = `await import(${JSON.stringify(path.join(base, 'dist', 'cli.js'))}); await import(${JSON.stringify(path.join(base, 'dist', createChunk))});`;
      const b0 = machineBusyS();
      const r = await runMeasured(process.execPath, ['--input-type=module', '-e', code], { env: { PATH: process.env.PATH ?? '' }, nice: NICE });
      if (r.exitCode !== 0) throw new Error(r.stderr);
      return summarize(r, machineBusyS() - b0);
    },
  },
  backupctl('backupctl', bin('base'), {}),
  backupctl('bc:noglobals', bin('base'), { noGlobals: true }),
  backupctl('bc:noglobals,nocount', bin('nocount'), { noGlobals: true }),
  backupctl('bc:pgBinDir', bin('base'), { pgBinDir: true }),
  backupctl('bc:semi1', bin('base'), { nodeOptions: '--max-semi-space-size=1' }),
  backupctl('bc:coalesce', bin('coalesce'), {}),
  backupctl('bc:coalesce,semi1', bin('coalesce'), { nodeOptions: '--max-semi-space-size=1' }),
];
};

function fmt(m: Record<string, number>): string {
  return Object.entries(m)
    .filter(([, v]) => v >= 0.01)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v.toFixed(2)}`)
    .join(', ');
}

function medianOf(samples: Sample[], pick: (s: Sample) => Record<string, number>): Record<string, number> {
  const keys = new Set(samples.flatMap((s) => Object.keys(pick(s))));
  return Object.fromEntries([...keys].map((k) => [k, median(samples.map((s) => pick(s)[k] ?? 0))]));
}

async function main(): Promise<void> {
  scratch = mkdtempSync(path.join(os.tmpdir(), 'backupctl-profile-'));
  const builds = {
    base: copyBuild(scratch, 'base'),
    nocount: copyBuild(scratch, 'nocount', [NO_COUNT]),
    coalesce: copyBuild(scratch, 'coalesce', COALESCE),
  };
  cluster = await startCluster({ name: 'profile' });
  const c = cluster;
  if (NICE) {
    const pm = postmasterPid(c);
    for (const pid of [pm, ...readFileSync(`/proc/${pm}/task/${pm}/children`, 'latin1').trim().split(/\s+/).map(Number)]) os.setPriority(pid, NICE);
    // autogroups: nice ranks processes only within a session; these rank our sessions against others'
    for (const pid of [String(pm), 'self']) {
      try {
        writeFileSync(`/proc/${pid}/autogroup`, String(NICE));
      } catch {
        // no CONFIG_SCHED_AUTOGROUP
      }
    }
  }
  await c.createDatabase('bench');
  const builder = await DatasetBuilder.connect({ host: c.host, port: c.port, user: c.user, password: c.password, database: 'bench' });
  const all: Record<string, unknown> = {};
  try {
    for (const sizeMb of SIZES) {
      const info = await builder.growTo(sizeMb * 1024 * 1024, (l) => log(l));
      log(`\n== pg_database_size ${(info.sizeBytes / 1048576).toFixed(0)} MB, ${RUNS} rounds`);
      const exps = experiments(builds);
      const samples = new Map<string, Sample[]>(exps.map((e) => [e.name, []]));
      for (let round = 0; round <= RUNS; round++) {
        for (const e of exps) {
          await waitForQuiet(QUIET_CORES, QUIET_WAIT_S);
          const s = await e.run(c, scratch);
          if (round > 0) samples.get(e.name)?.push(s); // round 0 is a warm-up
          log(`  ${round === 0 ? 'warm-up' : `[${round}/${RUNS}]`} ${e.name.padEnd(30)} ${s.wallS.toFixed(3)} s  foreign ${s.foreignS.toFixed(1)} cpu-s  ${fmt(s.phases)}`);
        }
      }
      log('');
      log('| experiment | median wall s | machine busy cpu-s | client CPU s | server CPU s | phases (s) | node peak RSS MB |');
      log('|---|---:|---:|---|---|---|---:|');
      const rows: Record<string, unknown>[] = [];
      for (const e of exps) {
        const ss = samples.get(e.name) ?? [];
        const row = {
          experiment: e.name,
          wallS: median(ss.map((s) => s.wallS)),
          walls: ss.map((s) => Number(s.wallS.toFixed(3))),
          busyS: median(ss.map((s) => s.busyS)),
          client: medianOf(ss, (s) => s.client),
          server: medianOf(ss, (s) => s.server),
          phases: medianOf(ss, (s) => s.phases),
          rssMb: Math.max(...ss.map((s) => s.rssMb ?? 0)),
        };
        rows.push(row);
        log(`| ${e.name} | ${row.wallS.toFixed(2)} | ${row.busyS.toFixed(1)} | ${fmt(row.client)} | ${fmt(row.server)} | ${fmt(row.phases)} | ${row.rssMb ? row.rssMb.toFixed(1) : '-'} |`);
      }
      all[String(sizeMb)] = { pgDatabaseSizeBytes: info.sizeBytes, rows };
    }
  } finally {
    await builder.close();
  }
  log(JSON.stringify(all));
}

try {
  await main();
} catch (error) {
  process.exitCode = 1;
  process.stderr.write(`profile failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
} finally {
  await (cluster as Cluster | null)?.stop();
  cleanup();
}
