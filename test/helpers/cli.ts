/**
 * Running backupctl from tests.
 *
 * - runCli: in-process, through src/cli.ts `run` (fast; stdout/stderr captured; env is
 *   exactly what you pass, never the test process's own).
 * - runBin: the built binary (bin/backupctl.js -> dist/), as users and cron run it.
 * - spawnBin: the built binary, started and left running (for faults injected meanwhile).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { execa, type Options, type ResultPromise } from 'execa';
import { run } from '../../src/cli.js';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = join(REPO_ROOT, 'bin', 'backupctl.js');

export interface CliOutcome {
  code: number;
  stdout: string;
  stderr: string;
}

class Capture extends Writable {
  text = '';
  isTTY = false;
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.text += chunk.toString('utf8');
    callback();
  }
}

/** Minimal environment for a child or in-process run: PATH and HOME, no PG* of the test process. */
export function baseEnv(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', ...extra };
}

export async function runCli(
  argv: string[],
  options: { env?: Record<string, string | undefined>; cwd?: string; signal?: AbortSignal; now?: () => Date } = {},
): Promise<CliOutcome> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await run(argv, {
    env: options.env ?? baseEnv(),
    cwd: options.cwd ?? process.cwd(),
    stdout,
    stderr,
    signal: options.signal ?? new AbortController().signal,
    now: options.now,
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

export function assertBuilt(): void {
  if (!existsSync(join(REPO_ROOT, 'dist', 'cli.js'))) {
    throw new Error('dist/ is missing: run "npm run build" first (npm test does it through pretest)');
  }
}

export async function runBin(argv: string[], options: Options = {}): Promise<CliOutcome> {
  assertBuilt();
  const result = await execa(process.execPath, [BIN, ...argv], {
    reject: false,
    extendEnv: false,
    env: baseEnv() as Record<string, string>,
    stdin: 'ignore',
    ...options,
  });
  return { code: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

/**
 * Starts the built binary and leaves it running: `done` settles with its outcome, and
 * `stderr()` is what it has written to stderr so far. `running` (the test file's set,
 * whose afterEach kills what is left) holds the child until it ends.
 */
export function spawnBin(args: string[], options: { env: Record<string, string>; cwd: string; running: Set<ResultPromise> }) {
  assertBuilt();
  const child = execa(process.execPath, [BIN, ...args], { env: options.env, extendEnv: false, cwd: options.cwd, stdin: 'ignore', reject: false });
  options.running.add(child);
  let text = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    text += chunk;
  });
  const done: Promise<CliOutcome> = child.then((result) => {
    options.running.delete(child);
    return { code: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
  });
  return { child, done, stderr: () => text };
}
