/**
 * `npm run bench:catalog`: the commands that read the catalog (list, list --json, show
 * latest, show <id>, status, prune --dry-run, completion ids) over one profile holding
 * many backups, on a local storage and on s3rver.
 *
 *   BENCH_CATALOG_N=10000 (backups: hourly, ending now)   BENCH_RUNS=3 (warm runs per command)
 *   BENCH_CATALOG_S3_RUNS=$BENCH_RUNS (warm runs on s3rver, where one run may take minutes)
 *   BENCH_CATALOG_S3=1 (0: local only)   BENCH_CATALOG_UPLOADS=32 (parallel uploads into s3rver)
 *   BENCH_QUIET_CORES=0.5  BENCH_QUIET_WAIT_S=10  BENCH_WORKDIR=$TMPDIR
 *   BENCH_CATALOG_LABEL=after (names this run in the section)
 *   BENCH_CATALOG_COMMANDS="show latest --profile,show <id> --profile" (only these rows; default all)
 *   BENCH_CATALOG_JSON=<file> (also write the summary there)
 *   BENCH_CATALOG_KEEP=<dir> (copy the generated local storage there, for measurements by hand)
 *   BENCH_CATALOG_BASELINE=<file> (the summary of an earlier run, e.g. before a change:
 *     its figures are shown beside this run's)
 *   BENCH_CATALOG_RESULTS=bench/RESULTS.md (the file the dated section is appended to; "-": none)
 *
 * 1. Generates N fake but valid backups of profile `app`: version 2 sidecars that pass the
 *    schema (50 tables with row counts, zstd stages, globals, tags, a verification on
 *    some), each with a tiny artifact and globals file of the sizes its sidecar records
 *    (so nothing reads as damaged), hourly over the months before now, plus a run log.
 *    Written into a local directory, and uploaded (in parallel, through backupctl's own
 *    S3 driver) into s3rver (test/helpers/storage-servers.ts).
 * 2. Times each command with the built binary (a frozen copy of bin/ + dist/), on each
 *    storage: one "cold" run with no catalog index in the storage (what the first run after
 *    an upgrade, or after the index is lost, costs), then BENCH_RUNS warm runs; peak RSS
 *    from /usr/bin/time %M and VmHWM polling (bench/measure.ts). Every output is checked
 *    (list --json has N entries, show prints the right id, prune keeps what it should).
 * Results: a table on stdout, a dated section appended to bench/RESULTS.md, and a JSON
 * summary as the last line of stdout.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serializeSidecar, type Sidecar } from '../src/catalog/sidecar.js';
import { parseSidecar } from '../src/catalog/sidecar-schema.js';
import { openStorage } from '../src/storage/registry.js';
import type { Storage } from '../src/storage/storage.js';
import { startS3rver, type S3rverServer } from '../test/helpers/storage-servers.js';
import { cleanUpOnExit, envInt, f1, f2, log, snapshotBuild } from './common.js';
import { activeChild, haveGnuTime, median, runMeasured, waitForQuiet, type RunResult } from './measure.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PROFILE = 'app';
/** Caches a run may leave in the profile (removed before a cold run); absent before the index existed. */
const CACHE_KEYS = [`${PROFILE}/catalog-index.json`];
const HOUR = 3_600_000;

const CONFIG = {
  n: envInt('BENCH_CATALOG_N', 10_000),
  runs: envInt('BENCH_RUNS', 3),
  s3Runs: envInt('BENCH_CATALOG_S3_RUNS', envInt('BENCH_RUNS', 3)),
  s3: process.env.BENCH_CATALOG_S3 !== '0',
  uploads: envInt('BENCH_CATALOG_UPLOADS', 32),
  quietCores: Number(process.env.BENCH_QUIET_CORES ?? 0.5),
  quietWaitS: envInt('BENCH_QUIET_WAIT_S', 10, 0),
  workdirBase: process.env.BENCH_WORKDIR || os.tmpdir(),
  label: process.env.BENCH_CATALOG_LABEL || 'this run',
  json: process.env.BENCH_CATALOG_JSON ? path.resolve(process.env.BENCH_CATALOG_JSON) : null,
  baseline: process.env.BENCH_CATALOG_BASELINE ? path.resolve(process.env.BENCH_CATALOG_BASELINE) : null,
  results: process.env.BENCH_CATALOG_RESULTS === '-' ? null : path.resolve(process.env.BENCH_CATALOG_RESULTS || path.join(ROOT, 'bench', 'RESULTS.md')),
};
/** Issue 11, point 9. */
const TARGETS = { localS: 1, s3S: 3, peakRssMb: 150 };


let workdir: string | null = null;
let s3: S3rverServer | null = null;

cleanUpOnExit(() => {
  const child = activeChild();
  if (child && child.exitCode === null) child.kill('SIGTERM');
  if (workdir) rmSync(workdir, { recursive: true, force: true });
  workdir = null;
}, log);

// ---------------------------------------------------------------------------------------
// The backups

/** `YYYYMMDDTHHMMSSZ-xxxxxx` for `at`, with a random part derived from `i` (reproducible). */
function idAt(at: Date, i: number): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
  return `${stamp}-${createHash('sha256').update(String(i)).digest('hex').slice(0, 6)}`;
}

const TABLES = Array.from({ length: 50 }, (_, j) => ({
  schema: j < 40 ? 'public' : 'audit',
  name: ['customers', 'orders', 'order_items', 'products', 'invoices', 'payments', 'shipments', 'events', 'sessions', 'carts'][j % 10] + (j < 10 ? '' : `_${Math.floor(j / 10)}`),
}));

interface Generated {
  sidecar: Sidecar;
  /** The bytes of the sidecar, the artifact and the globals file, by key. */
  files: Array<{ key: string; data: Buffer }>;
}

/**
 * Backup `i` of `n` (0 = oldest), started `n - i` hours and a few minutes before `now`.
 * Tags: `hourly` on every one, `nightly` on the 02:00 one, `pre-migration` on every 500th.
 * Verifications: the nightly ones get a passed checksum verification, every 7th nightly a
 * passed restore verification too; one old nightly a month failed once before it passed
 * (a restore-level pass after the failure, as status requires).
 */
function generate(i: number, n: number, now: Date): Generated {
  const started = new Date(Math.floor((now.getTime() - (n - i) * HOUR - 7 * 60_000) / 1000) * 1000);
  const id = idAt(started, i);
  const durationMs = 40_000 + ((i * 7919) % 20_000);
  const finished = new Date(started.getTime() + durationMs);
  const artifact = randomBytes(96 + (i % 160));
  const globals = randomBytes(40 + (i % 24));
  const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
  const stages = [{ type: 'compression' as const, codec: 'zstd' as const, level: 3, threads: 2 }];
  const nightly = started.getUTCHours() === 2;
  const tags = ['hourly', ...(nightly ? ['nightly'] : []), ...(i % 500 === 250 ? ['pre-migration'] : [])];
  const verifications: Sidecar['verifications'] = [];
  if (nightly) {
    const at = (minutes: number) => new Date(finished.getTime() + minutes * 60_000).toISOString();
    const failedOnce = i % (24 * 30) < 24;
    if (failedOnce) {
      verifications.push({ at: at(30), level: 'restore', result: 'failed', durationMs: 61_000, serverVersion: '16.4', mismatches: ['public.orders: 1200311 rows recorded, 1200310 restored'], error: 'row counts differ' });
    }
    verifications.push({ at: at(45), level: 'checksum', result: 'passed', durationMs: 2_100, mismatches: [] });
    // A failed restore verification stands until a restore-level pass (catalog/sidecar.ts).
    if (failedOnce || Math.floor(i / 24) % 7 === 0) verifications.push({ at: at(60), level: 'restore', result: 'passed', durationMs: 95_000, serverVersion: '16.4', mismatches: [] });
  }
  const growth = 1 + i / n;
  const sidecar: Sidecar = {
    schemaVersion: 2,
    id,
    profile: PROFILE,
    status: 'completed',
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    durationMs,
    tool: { name: 'backupctl', version: '0.1.0' },
    engine: { serverVersion: '16.4 (Debian 16.4-1.pgdg120+2)', serverVersionNum: 160004, pgDumpVersion: 'pg_dump (PostgreSQL) 16.4 (Debian 16.4-1.pgdg120+2)' },
    source: { host: 'db-primary.internal.example.com', port: 5432, user: 'backup', database: 'shop' },
    database: { name: 'shop', sizeBytes: Math.round(2_400_000_000 * growth), encoding: 'UTF8', largeObjects: 0 },
    dump: {
      format: 'custom',
      compress: 0,
      jobs: 1,
      schemaOnly: false,
      dataOnly: false,
      schemas: [],
      excludeSchemas: [],
      tables: [],
      excludeTables: ['public.sessions'],
      lockWaitTimeout: '30s',
      snapshot: `00000003-${(0x1b + i).toString(16).toUpperCase().padStart(8, '0')}-1`,
      tocEntries: 231,
    },
    artifact: {
      file: `${id}.dump.zst`,
      container: 'pg-custom',
      bytes: artifact.length,
      sha256: sha(artifact),
      stages,
      plaintext: { bytes: artifact.length * 4, sha256: sha(Buffer.concat([artifact, artifact])) },
      compression: { codec: 'zstd', level: 3 },
      encryption: null,
    },
    globals: {
      status: 'included',
      file: `${id}.globals.sql.zst`,
      bytes: globals.length,
      sha256: sha(globals),
      rolePasswords: true,
      stages,
      plaintext: { bytes: globals.length * 3, sha256: sha(Buffer.concat([globals, globals])) },
    },
    tables: TABLES.map((t, j) => ({ ...t, rows: Math.round((1000 + j * 37_123) * growth) + (i % 97) })),
    tags,
    note: null,
    verifications,
  };
  const data = serializeSidecar(sidecar);
  // Every 1000th is checked against the schema the commands read it with.
  if (i % 1000 === 0) parseSidecar(`${PROFILE}/${id}.json`, data, { id, profile: PROFILE });
  return {
    sidecar,
    files: [
      { key: `${PROFILE}/${id}.json`, data },
      { key: `${PROFILE}/${sidecar.artifact.file}`, data: artifact },
      { key: `${PROFILE}/${id}.globals.sql.zst`, data: globals },
    ],
  };
}

/** The last 200 runs of the profile: hourly creates, the nightly verify and prune; all succeeded. */
function runLog(sidecars: readonly Sidecar[]): Buffer {
  const lines: string[] = [];
  for (const s of sidecars.slice(-150)) {
    lines.push(JSON.stringify({ command: 'create', profile: PROFILE, startedAt: s.startedAt, finishedAt: s.finishedAt, durationMs: s.durationMs, result: 'succeeded', id: s.id, exitCode: 0, host: 'db-backup-1' }));
    if (s.tags.includes('nightly')) {
      const at = new Date(Date.parse(s.finishedAt) + 40 * 60_000);
      lines.push(JSON.stringify({ command: 'verify', profile: PROFILE, startedAt: at.toISOString(), finishedAt: new Date(at.getTime() + 90_000).toISOString(), durationMs: 90_000, result: 'succeeded', id: s.id, exitCode: 0, host: 'db-backup-1' }));
    }
  }
  return Buffer.from(`${lines.slice(-200).join('\n')}\n`);
}

interface Storages {
  local: string;
  s3: string | null;
  /** The ids, oldest first. */
  ids: string[];
  /** What prune --dry-run --keep-daily 7 --keep-monthly 12 must keep, at least (newest of the last 7 days). */
  generateS: number;
  uploadS: number | null;
  sidecarBytes: number;
}

async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

async function makeStorages(dir: string, now: Date): Promise<Storages> {
  const t0 = performance.now();
  const local = path.join(dir, 'local');
  mkdirSync(path.join(local, PROFILE), { recursive: true, mode: 0o700 });
  chmodSync(local, 0o700);
  const ids: string[] = [];
  const sidecars: Sidecar[] = [];
  let sidecarBytes = 0;
  const all: Array<{ key: string; data: Buffer }> = [];
  for (let i = 0; i < CONFIG.n; i++) {
    const g = generate(i, CONFIG.n, now);
    ids.push(g.sidecar.id);
    sidecars.push({ ...g.sidecar, tables: [] });
    sidecarBytes += (g.files[0] as { data: Buffer }).data.length;
    for (const file of g.files) {
      writeFileSync(path.join(local, file.key), file.data, { mode: 0o600 });
      if (CONFIG.s3) all.push(file);
    }
  }
  const runs = { key: `${PROFILE}/runs.jsonl`, data: runLog(sidecars) };
  writeFileSync(path.join(local, runs.key), runs.data, { mode: 0o600 });
  all.push(runs);
  const generateS = (performance.now() - t0) / 1000;
  if (process.env.BENCH_CATALOG_KEEP) cpSync(local, path.resolve(process.env.BENCH_CATALOG_KEEP), { recursive: true });
  log(`generated ${CONFIG.n} backups (${(sidecarBytes / CONFIG.n / 1024).toFixed(1)} KiB per sidecar, ${CONFIG.n * 3 + 1} files) in ${local} in ${generateS.toFixed(1)} s`);

  let s3url: string | null = null;
  let uploadS: number | null = null;
  if (CONFIG.s3) {
    s3 = await startS3rver();
    s3url = `s3://${s3.bucket}/bench?endpoint=${s3.endpoint}&region=us-east-1&path-style=true`;
    const storage: Storage = openStorage(s3url, dir, {}, { env: s3Env(s3) });
    const t1 = performance.now();
    let done = 0;
    await mapLimit(all, CONFIG.uploads, async (file) => {
      await storage.putBytes(file.key, file.data);
      done += 1;
      if (done % 5000 === 0) log(`  uploaded ${done}/${all.length}`);
    });
    await storage.close();
    uploadS = (performance.now() - t1) / 1000;
    log(`uploaded ${all.length} objects into s3rver (${CONFIG.uploads} at a time) in ${uploadS.toFixed(1)} s`);
  }
  return { local, s3: s3url, ids, generateS, uploadS, sidecarBytes };
}

function s3Env(server: S3rverServer): Record<string, string> {
  return { AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey, AWS_REGION: 'us-east-1' };
}

// ---------------------------------------------------------------------------------------
// The commands

interface Command {
  name: string;
  args: (ids: readonly string[]) => string[];
  /** Throws when the output is not what the storage holds. */
  check: (r: RunResult, ids: readonly string[]) => void;
}

const newest = (ids: readonly string[]) => ids[ids.length - 1] as string;
/** A backup from the middle: `show <id>` of an old backup. */
const middle = (ids: readonly string[]) => ids[Math.floor(ids.length / 2)] as string;

function expectText(r: RunResult, what: string, ok: boolean): void {
  if (!ok) throw new Error(`${what}: unexpected output (exit ${r.exitCode}): ${r.stdout.slice(0, 500)} ${r.stderr.slice(0, 1000)}`);
}

const ALL_COMMANDS: Command[] = [
  {
    name: 'list',
    args: () => ['list'],
    check: (r, ids) => expectText(r, 'list', r.stdout.split('\n').filter((line) => line.startsWith('20')).length === ids.length && r.stdout.indexOf(newest(ids)) < r.stdout.indexOf(middle(ids))),
  },
  {
    name: 'list --json',
    args: () => ['list', '--json'],
    check: (r, ids) => {
      const out = JSON.parse(r.stdout) as Array<{ id: string }>;
      expectText(r, 'list --json', out.length === ids.length && out[0]?.id === newest(ids));
    },
  },
  {
    name: 'show latest',
    args: () => ['show', 'latest'],
    check: (r, ids) => expectText(r, 'show latest', r.stdout.includes(newest(ids)) && r.stdout.includes('order_items')),
  },
  {
    name: 'show <id>',
    args: (ids) => ['show', middle(ids)],
    check: (r, ids) => expectText(r, 'show <id>', r.stdout.includes(middle(ids)) && r.stdout.includes('order_items')),
  },
  {
    // With a profile, `latest` lists the last days first and a whole id is read by its key.
    name: 'show latest --profile',
    args: () => ['show', 'latest', '--profile', PROFILE],
    check: (r, ids) => expectText(r, 'show latest --profile', r.stdout.includes(newest(ids)) && r.stdout.includes('order_items')),
  },
  {
    name: 'show <id> --profile',
    args: (ids) => ['show', middle(ids), '--profile', PROFILE],
    check: (r, ids) => expectText(r, 'show <id> --profile', r.stdout.includes(middle(ids)) && r.stdout.includes('order_items')),
  },
  {
    name: 'status',
    args: () => ['status'],
    check: (r) => expectText(r, 'status', /^app\s.*\sok$/m.test(r.stdout) && r.stdout.includes('healthy: 1 profile checked')),
  },
  {
    name: 'prune --dry-run',
    args: () => ['prune', '--dry-run', '--profile', PROFILE, '--keep-daily', '7', '--keep-monthly', '12'],
    // Every backup is a row (keep or remove); the newest is kept.
    check: (r, ids) => expectText(r, 'prune --dry-run', r.stdout.split('\n').filter((line) => /\b20\d{6}T\d{6}Z-[0-9a-f]{6}\b/.test(line)).length >= ids.length && r.stdout.includes(newest(ids))),
  },
  {
    name: 'completion ids',
    args: () => ['completion', '--values', 'ids'],
    check: (r, ids) => expectText(r, 'completion ids', r.stdout.split('\n')[0] === newest(ids)),
  },
];

const ONLY = (process.env.BENCH_CATALOG_COMMANDS ?? '').split(',').map((name) => name.trim()).filter(Boolean);
const COMMANDS = ONLY.length ? ALL_COMMANDS.filter((command) => ONLY.includes(command.name)) : ALL_COMMANDS;
if (ONLY.length && COMMANDS.length !== ONLY.length) throw new Error(`BENCH_CATALOG_COMMANDS: unknown names in ${ONLY.join(', ')}`);

interface Measured {
  storage: 'local' | 's3rver';
  command: string;
  /** Index absent at the start of the run. */
  cold: boolean;
  wallS: number;
  /** Peak RSS of the node process (VmHWM polled; /usr/bin/time %M when higher). */
  peakRssMb: number;
  exitCode: number | null;
  stdoutBytes: number;
}

let BIN = '';

async function removeCaches(where: string, dir: string): Promise<void> {
  const env = s3 ? s3Env(s3) : {};
  const storage = openStorage(where, dir, {}, { env });
  for (const key of CACHE_KEYS) await storage.remove(key);
  await storage.close();
}

async function measure(kind: 'local' | 's3rver', where: string, command: Command, ids: readonly string[], cold: boolean, dir: string): Promise<Measured> {
  if (cold) await removeCaches(where, dir);
  if (CONFIG.quietWaitS > 0) await waitForQuiet(CONFIG.quietCores, CONFIG.quietWaitS);
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: path.join(dir, 'home'), NO_COLOR: '1', ...(kind === 's3rver' && s3 ? s3Env(s3) : {}) };
  const r = await runMeasured(process.execPath, [BIN, '--storage', where, ...command.args(ids)], { env, cwd: dir });
  if (r.exitCode !== 0) throw new Error(`${command.name} on ${kind} failed (exit ${r.exitCode ?? r.signal}): ${r.stderr.slice(0, 2000)}`);
  command.check(r, ids);
  return {
    storage: kind,
    command: command.name,
    cold,
    wallS: r.wallS,
    peakRssMb: Math.max(r.selfPeakRssMb ?? 0, r.timeMaxRssMb ?? 0),
    exitCode: r.exitCode,
    stdoutBytes: Buffer.byteLength(r.stdout),
  };
}

// ---------------------------------------------------------------------------------------
// Report

interface Row {
  storage: 'local' | 's3rver';
  command: string;
  coldS: number;
  coldRssMb: number;
  /** Median of the warm runs. */
  warmS: number;
  warmRuns: number[];
  /** Max over the warm runs. */
  warmRssMb: number;
  stdoutMb: number;
}

interface Summary {
  label: string;
  date: string;
  machine: string;
  config: typeof CONFIG;
  distHash: string;
  gitHead: string;
  rows: Row[];
  measured: Measured[];
  generateS: number;
  uploadS: number | null;
  sidecarKiB: number;
  totalS: number;
}

function rowsOf(measured: readonly Measured[]): Row[] {
  const rows: Row[] = [];
  for (const storage of ['local', 's3rver'] as const) {
    for (const command of COMMANDS) {
      const mine = measured.filter((m) => m.storage === storage && m.command === command.name);
      const cold = mine.find((m) => m.cold);
      const warm = mine.filter((m) => !m.cold);
      if (!cold || warm.length === 0) continue;
      rows.push({
        storage,
        command: command.name,
        coldS: cold.wallS,
        coldRssMb: cold.peakRssMb,
        warmS: median(warm.map((m) => m.wallS)),
        warmRuns: warm.map((m) => m.wallS),
        warmRssMb: Math.max(...warm.map((m) => m.peakRssMb)),
        stdoutMb: (cold.stdoutBytes ?? 0) / 1024 / 1024,
      });
    }
  }
  return rows;
}

function verdicts(rows: readonly Row[]): Array<{ pass: boolean; text: string }> {
  const out: Array<{ pass: boolean; text: string }> = [];
  for (const row of rows) {
    const limit = row.storage === 'local' ? TARGETS.localS : TARGETS.s3S;
    out.push({ pass: row.warmS <= limit, text: `${row.command} on ${row.storage} <= ${limit} s: ${f2(row.warmS)} s (cold: ${f2(row.coldS)} s)` });
    const rss = Math.max(row.warmRssMb, row.coldRssMb);
    out.push({ pass: rss <= TARGETS.peakRssMb, text: `${row.command} on ${row.storage} peak RSS <= ${TARGETS.peakRssMb} MB: ${f1(rss)} MB` });
  }
  return out;
}

function section(summary: Summary, baseline: Summary | null): string {
  const lines: string[] = [];
  lines.push('', `## catalog commands over ${CONFIG.n} backups (npm run bench:catalog), ${summary.date.slice(0, 10)}: ${summary.label}`, '');
  lines.push(
    `Appended by \`npm run bench:catalog\` (bench/catalog.ts) on ${summary.date}; ${summary.machine}; git ${summary.gitHead}, dist sha256 ${summary.distHash}. ` +
      `Total ${(summary.totalS / 60).toFixed(1)} min.`,
    '',
    '```sh',
    'npm run bench:catalog',
    `# this run: BENCH_CATALOG_N=${CONFIG.n} BENCH_RUNS=${CONFIG.runs} BENCH_CATALOG_S3_RUNS=${CONFIG.s3Runs} BENCH_CATALOG_S3=${CONFIG.s3 ? 1 : 0} BENCH_QUIET_CORES=${CONFIG.quietCores} BENCH_QUIET_WAIT_S=${CONFIG.quietWaitS}${ONLY.length ? ` BENCH_CATALOG_COMMANDS="${ONLY.join(',')}"` : ''}`,
    '```',
    '',
    `One profile, ${CONFIG.n} backups an hour apart (${(CONFIG.n / 24 / 30.4).toFixed(1)} months), each a version 2 sidecar of ${summary.sidecarKiB.toFixed(1)} KiB ` +
      '(50 tables, zstd stages, globals, tags, a few verifications) with a tiny artifact and globals file of the recorded sizes, and a run log of 200 entries; ' +
      `generated in ${f1(summary.generateS)} s${summary.uploadS === null ? '' : `, uploaded into s3rver in ${f1(summary.uploadS)} s`}. ` +
      'Each command is the built binary (`node bin/backupctl.js --storage <local dir | s3://bucket/prefix?endpoint=...>`), its output checked. ' +
      '"cold": the first run with no catalog index in the storage; "warm": the median of the runs after it. Peak RSS: the node process (VmHWM polled every 50 ms, and /usr/bin/time %M).',
    '',
  );
  const before = (row: Row) => baseline?.rows.find((b) => b.storage === row.storage && b.command === row.command);
  const header = baseline
    ? `| storage | command | ${baseline.label} s | ${baseline.label} peak RSS MB | cold s | warm s | warm runs (s) | peak RSS MB | stdout MB |`
    : '| storage | command | cold s | warm s | warm runs (s) | peak RSS MB | stdout MB |';
  lines.push(header, `|${header.split('|').slice(1, -1).map(() => '---').join('|')}|`);
  for (const row of summary.rows) {
    const b = before(row);
    const rss = Math.max(row.warmRssMb, row.coldRssMb);
    const mine = `${f2(row.coldS)} | ${f2(row.warmS)} | ${row.warmRuns.map(f2).join(', ')} | ${f1(rss)} | ${f1(row.stdoutMb)}`;
    lines.push(baseline ? `| ${row.storage} | ${row.command} | ${b ? f2(b.warmS) : '-'} | ${b ? f1(Math.max(b.warmRssMb, b.coldRssMb)) : '-'} | ${mine} |` : `| ${row.storage} | ${row.command} | ${mine} |`);
  }
  lines.push('');
  for (const v of verdicts(summary.rows)) lines.push(`- ${v.pass ? 'PASS' : 'FAIL'} ${v.text}`);
  return `${lines.join('\n')}\n`;
}

/** The commit the run measured (with "+changes" when the work tree differs from it), or "?" without git. */
function gitHead(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${head}+changes` : head;
  } catch {
    return '?';
  }
}

async function main(): Promise<void> {
  const t0 = performance.now();
  if (!existsSync(path.join(ROOT, 'dist', 'cli.js'))) throw new Error('dist/ is missing: run `npm run build` (npm run bench:catalog does)');
  workdir = mkdtempSync(path.join(CONFIG.workdirBase, 'backupctl-bench-catalog-'));
  mkdirSync(path.join(workdir, 'home'));
  const snapshot = snapshotBuild(ROOT, workdir);
  BIN = snapshot.bin;
  const distHash = snapshot.distHash;
  log(`work dir ${workdir}; backupctl under test: a frozen copy of bin/ + dist/ (dist sha256 ${distHash})`);
  const now = new Date();
  const storages = await makeStorages(workdir, now);
  const measured: Measured[] = [];
  const targets: Array<['local' | 's3rver', string]> = [['local', storages.local]];
  if (storages.s3) targets.push(['s3rver', storages.s3]);
  for (const [kind, where] of targets) {
    log('');
    log(`== ${kind}`);
    for (const command of COMMANDS) {
      for (let round = 0; round <= (kind === 'local' ? CONFIG.runs : CONFIG.s3Runs); round++) {
        const m = await measure(kind, where, command, storages.ids, round === 0, workdir);
        measured.push(m);
        log(`  ${command.name.padEnd(16)} ${round === 0 ? 'cold' : `warm ${round}`}: ${f2(m.wallS)} s, peak RSS ${f1(m.peakRssMb)} MB, stdout ${(m.stdoutBytes / 1024).toFixed(0)} KiB`);
      }
    }
  }
  const rows = rowsOf(measured);
  const cpu = os.cpus()[0]?.model.trim() ?? '?';
  const summary: Summary = {
    label: CONFIG.label,
    date: new Date().toISOString(),
    machine: `${os.availableParallelism()} cores (${cpu}), ${(os.totalmem() / 1024 ** 3).toFixed(1)} GB RAM, Linux ${os.release()}, node ${process.version}${haveGnuTime ? '' : ', no /usr/bin/time'}`,
    config: CONFIG,
    distHash,
    gitHead: gitHead(),
    rows,
    measured,
    generateS: storages.generateS,
    uploadS: storages.uploadS,
    sidecarKiB: storages.sidecarBytes / CONFIG.n / 1024,
    totalS: (performance.now() - t0) / 1000,
  };
  const baseline = CONFIG.baseline ? (JSON.parse(readFileSync(CONFIG.baseline, 'utf8')) as Summary) : null;
  const text = section(summary, baseline);
  log(text);
  if (CONFIG.results) {
    appendFileSync(CONFIG.results, text);
    log(`appended a section to ${path.relative(ROOT, CONFIG.results)}`);
  }
  if (CONFIG.json) writeFileSync(CONFIG.json, `${JSON.stringify(summary, null, 2)}\n`);
  log(JSON.stringify({ ...summary, measured: undefined }));
}

try {
  await main();
} catch (error) {
  process.exitCode = 2;
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
} finally {
  await (s3 as S3rverServer | null)?.stop();
}
