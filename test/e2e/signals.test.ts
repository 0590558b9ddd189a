/**
 * Interrupting `create` (the built binary, as a shell or a service manager would):
 * SIGINT or SIGTERM while pg_dump runs must end the run with exit 130 within seconds,
 * stop pg_dump (no process left, no pg_dump session left on the server), and remove
 * every file written for the backup.
 */
import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, baseEnv } from '../helpers/cli.js';
import {
  failureLines,
  fillRandomText,
  holdTableLock,
  leftovers,
  listFiles,
  processesWithEnv,
  scratchSetup,
  sh,
  tempDir,
  waitFor,
  wrapperBinDir,
  writeConfig,
} from '../helpers/failure-kit.js';
import { uniqueName } from '../helpers/pg.js';

const MARKER = 'BACKUPCTL_SIGNAL_TEST';
/** pgBinDir whose pg_dump runs the real one and passes its output on slowly (~640 kB/s). */
let slowBin: string;
/** pgBinDir whose pg_dump prints a ready-made archive of public.small and exits 0. */
let cannedBin: string;

const scratch = scratchSetup('sig', {
  built: true,
  seed: async () => {
    // ~4 MB of md5 text: pg_dump writes ~2 MB, which the slow wrapper takes seconds to pass on.
    await fillRandomText(cluster, db, 'public.payload', 4);
    await cluster.query(db, 'CREATE TABLE public.small (id int PRIMARY KEY)');
    slowBin = await wrapperBinDir(cluster, { pg_dump: slowPgDump(cluster.bin('pg_dump')) });
    const canned = path.join(await tempDir('canned'), 'small.dump');
    await execa(cluster.bin('pg_dump'), ['--format=custom', '--table=public.small', `--file=${canned}`], { env: cluster.env(db) });
    cannedBin = await wrapperBinDir(cluster, {
      pg_dump: `#!/bin/sh\nif [ "$1" = "--version" ]; then exec ${sh(cluster.bin('pg_dump'))} --version; fi\nexec cat ${sh(canned)}\n`,
    });
  },
});
const { cluster, db } = scratch;

/**
 * A wrapper in Node: spawns the real pg_dump, forwards its stdout one chunk every 100 ms,
 * and, when terminated, terminates the real pg_dump too (as pg_dump itself would die).
 */
function slowPgDump(real: string): string {
  return `#!${process.execPath}
'use strict';
const { spawn } = require('node:child_process');
const args = process.argv.slice(2);
const version = args[0] === '--version';
const child = spawn(${JSON.stringify(real)}, args, { stdio: ['ignore', version ? 'inherit' : 'pipe', 'inherit'] });
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    child.kill('SIGTERM');
    process.exit(143);
  });
}
child.on('close', (code) => {
  process.exitCode = code === null ? 1 : code;
});
if (child.stdout) {
  child.stdout.on('data', (chunk) => {
    child.stdout.pause();
    process.stdout.write(chunk, () => setTimeout(() => child.stdout.resume(), 100));
  });
}
`;
}

/** backupctl sessions of the test database waiting for a lock (a row count behind LOCK TABLE). */
async function countWaiters(): Promise<number> {
  const rows = await cluster.query<{ n: string }>(
    'postgres',
    `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'backupctl' AND wait_event_type = 'Lock'`,
    [db],
  );
  return Number(rows[0]?.n ?? 0);
}

async function pgDumpSessions(): Promise<number> {
  const rows = await cluster.query<{ n: string }>(
    'postgres',
    `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pg_dump'`,
    [db],
  );
  return Number(rows[0]?.n ?? 0);
}

type Run = Awaited<ReturnType<typeof startCreate>>;
const running = new Set<Run['child']>();

/**
 * Starts `create` with the built binary; resolves once `ready` says so (by default: pg_dump
 * runs and the artifact's temp file exists).
 */
async function startCreate(pgBinDir: string, storage: string, ready?: (marker: string) => Promise<boolean>) {
  const marker = uniqueName('m');
  const config = await writeConfig(await tempDir('cfg'), { pgBinDir });
  const child = execa(process.execPath, [BIN, 'create', '--config', config, '--storage', storage], {
    reject: false,
    extendEnv: false,
    env: baseEnv({ ...cluster.env(db), HOME: scratch.cwd, [MARKER]: marker }) as Record<string, string>,
    cwd: scratch.cwd,
    stdin: 'ignore',
    // Measure how the run itself ends: no SIGKILL from execa 5 s after our signal.
    forceKillAfterDelay: false,
  });
  running.add(child);
  const exited = child.then((result) => result);
  const isReady =
    ready ??
    (async (m: string) => {
      const files = await listFiles(storage);
      if (!files.some((file) => path.basename(file).startsWith('.tmp-') && !file.includes('probe'))) return false;
      return (await processesWithEnv(MARKER, m)).some((p) => p.comm === 'pg_dump');
    });
  // If the run ends before it is ready (it failed), report that rather than a timeout.
  await Promise.race([
    waitFor(() => isReady(marker), 'the run to reach the point where it is interrupted'),
    exited.then((result) => {
      throw new Error(`create ended before it could be interrupted (exit ${result.exitCode}):\n${String(result.stderr)}`);
    }),
  ]);
  return { child, exited, marker };
}

/** Sends `signal` and waits at most `ms` for the run to end (then kills it, and fails). */
async function interrupt(run: Run, signal: NodeJS.Signals, ms = 5_000) {
  const sentAt = Date.now();
  run.child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([
    run.exited,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        run.child.kill('SIGKILL');
        reject(new Error(`create did not end within ${ms} ms of ${signal}`));
      }, ms);
    }),
  ]).finally(() => clearTimeout(timer));
  return { result, elapsed: Date.now() - sentAt };
}

afterEach(() => {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
});

describe.each(['SIGINT', 'SIGTERM'] as const)('create interrupted by %s', (signal) => {
  it('while pg_dump streams: exit 130 within seconds, pg_dump stopped, nothing left', async () => {
    const storage = await tempDir('st');
    const run = await startCreate(slowBin, storage);
    const { marker } = run;
    const { result, elapsed } = await interrupt(run, signal);
    expect(result.exitCode, String(result.stderr)).toBe(130);
    expect(elapsed).toBeLessThan(5_000);
    const { error } = failureLines(String(result.stderr));
    expect(error).toMatch(new RegExp(`interrupted by ${signal}`));
    expect(String(result.stdout)).toBe('');
    // No process of that run is left (pg_dump, its wrapper, anything else).
    await waitFor(async () => (await processesWithEnv(MARKER, marker)).length === 0, 'every process of the run to end', 5_000);
    // The server saw pg_dump go.
    await waitFor(async () => (await pgDumpSessions()) === 0, 'no pg_dump session on the server', 10_000);
    expect(await leftovers(storage)).toEqual([]);
  });

  it('while pg_dump waits for a lock: still exit 130 within seconds, nothing left', async () => {
    const storage = await tempDir('st');
    const lock = await holdTableLock(cluster, db, 'public.small');
    try {
      // The real pg_dump, straight from the server's bin dir: it blocks on LOCK TABLE.
      const run = await startCreate(cluster.binDir, storage);
      const { marker } = run;
      const { result, elapsed } = await interrupt(run, signal);
      expect(result.exitCode, String(result.stderr)).toBe(130);
      expect(elapsed).toBeLessThan(5_000);
      failureLines(String(result.stderr));
      await waitFor(async () => (await processesWithEnv(MARKER, marker)).length === 0, 'every process of the run to end', 5_000);
      expect(await leftovers(storage)).toEqual([]);
      // Our own row counts were cancelled, not left queued behind the lock.
      await waitFor(async () => (await countWaiters()) === 0, 'no row count of the run waiting for the lock it held', 5_000);
      // A backend waiting for a lock notices its client is gone once it gets the lock.
      await lock.release();
      await waitFor(async () => (await pgDumpSessions()) === 0, 'no pg_dump session on the server', 10_000);
    } finally {
      await lock.close();
    }
  });

  it('while rows are still being counted after pg_dump is done: exit 130 within seconds, nothing left', async () => {
    const storage = await tempDir('st');
    const lock = await holdTableLock(cluster, db, 'public.small');
    try {
      // pg_dump "finishes" at once (a ready-made archive, no locks taken); the row count of
      // public.small waits for the lock, with no --lock-wait-timeout to end the wait.
      const run = await startCreate(cannedBin, storage, async () => {
        const files = await listFiles(storage);
        if (!files.some((file) => file.endsWith('.dump.zst') && !path.basename(file).startsWith('.'))) return false;
        return (await countWaiters()) > 0;
      });
      const { result, elapsed } = await interrupt(run, signal);
      expect(result.exitCode, String(result.stderr)).toBe(130);
      expect(elapsed).toBeLessThan(5_000);
      const { error } = failureLines(String(result.stderr));
      expect(error).toMatch(new RegExp(`interrupted by ${signal}`));
      expect(await leftovers(storage)).toEqual([]); // the finished artifact was removed too
      // The abandoned row count was cancelled while the lock is still held: a backend
      // waiting for a lock does not notice that its client went away.
      await waitFor(async () => (await countWaiters()) === 0, 'the abandoned row count to be cancelled', 5_000);
      await lock.release();
    } finally {
      await lock.close();
    }
  });
});

describe('create whose output readers go away (`2>&1 | head -1`, a log shipper that died)', () => {
  it('runs to its end: exit 0, a complete backup, its lock released and its run logged', async () => {
    const storage = await tempDir('st');
    const config = await writeConfig(await tempDir('cfg'), { pgBinDir: cluster.binDir });
    // `true` exits at once: every write to stdout or stderr meets a closed pipe (EPIPE).
    const script = `${sh(process.execPath)} ${sh(BIN)} create --config ${sh(config)} --storage ${sh(storage)} --verbose 2>&1 | true; exit "\${PIPESTATUS[0]}"`;
    const result = await execa('bash', ['-c', script], {
      reject: false,
      extendEnv: false,
      env: baseEnv({ ...cluster.env(db), HOME: scratch.cwd }) as Record<string, string>,
      cwd: scratch.cwd,
      stdin: 'ignore',
    });
    expect(result.exitCode, String(result.stdout)).toBe(0);
    const files = await listFiles(storage);
    const sidecars = files.filter((file) => /\/\d{8}T\d{6}Z-[0-9a-f]{6}\.json$/.test(file));
    expect(sidecars).toHaveLength(1);
    expect(files.some((file) => file.endsWith('.dump.zst'))).toBe(true);
    expect(files.filter((file) => path.basename(file).startsWith('.') || file.endsWith('lock.json'))).toEqual([]);
    const profile = path.dirname(sidecars[0] as string);
    const runs = (await readFile(path.join(storage, profile, 'runs.jsonl'), 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { command: string; result: string });
    expect(runs.at(-1)).toMatchObject({ command: 'create', result: 'succeeded', exitCode: 0 });
  });
});
