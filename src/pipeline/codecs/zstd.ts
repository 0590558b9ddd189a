/**
 * zstd through the `zstd` program (Debian/Ubuntu package `zstd`), multi-threaded:
 * `zstd -q -<level> -T<threads> -c` to encode, `zstd -q -d -c` to decode. Chosen by
 * measurement over node:zlib's zstd (Node >= 22.15 only), see bench/RESULTS.md: the
 * program is faster single-threaded, scales with -T, and node:zlib's zstd crashed with
 * worker threads on Node 24.
 */
import { findProgram, missingProgram, ProgramFilter } from '../program-filter.js';
import type { Stage } from '../stage.js';
import { integerOption } from './options.js';

export const ZSTD_DEFAULT_LEVEL = 3;
/** Worker threads by default (measured: bench/RESULTS.md, "pipeline stages"). */
export const ZSTD_DEFAULT_THREADS = 2;
export const ZSTD_DEBIAN_PACKAGE = 'zstd';

export interface ZstdOptions {
  /** 1-19 (default 3). */
  level?: number;
  /** Worker threads, 0 = one per core (default 2). */
  threads?: number;
  /** The program: a name on PATH or a path (default `zstd`). */
  program?: string;
  env?: NodeJS.ProcessEnv;
}

/** The zstd program's path; throws CODEC_PROGRAM_MISSING (naming the package) when it is not installed. */
export function requireZstd(program = 'zstd', env: NodeJS.ProcessEnv = process.env): string {
  const found = findProgram(program, env);
  if (!found) throw missingProgram('zstd', ZSTD_DEBIAN_PACKAGE, program);
  return found;
}

export function zstdStage(options: ZstdOptions = {}): Stage {
  const level = integerOption('the zstd level', options.level ?? ZSTD_DEFAULT_LEVEL, 1, 19);
  const threads = integerOption('the zstd threads', options.threads ?? ZSTD_DEFAULT_THREADS, 0, 256);
  const filter = (args: string[], exitCode: 'CODEC_PROGRAM_FAILED' | 'CODEC_CORRUPT', outputFd?: number) =>
    new ProgramFilter({
      program: requireZstd(options.program, options.env),
      args,
      tool: 'zstd',
      debianPackage: ZSTD_DEBIAN_PACKAGE,
      exitCode,
      env: options.env,
      outputFd,
    });
  return {
    type: 'compression',
    name: 'zstd',
    suffix: '.zst',
    encode: () => filter(['-q', `-${level}`, `-T${threads}`, '-c'], 'CODEC_PROGRAM_FAILED'),
    // zstd checks each frame's content checksum and fails on truncated or trailing input.
    decode: () => filter(['-q', '-d', '-c'], 'CODEC_CORRUPT'),
    // Writing the file itself, zstd fails alike for damaged input and for a full or failing
    // disk: its exit is no verdict on the data (the caller decides from the stored digest).
    decodeInto: (fd) => filter(['-q', '-d', '-c'], 'CODEC_PROGRAM_FAILED', fd),
    record: () => ({ type: 'compression', codec: 'zstd', level, threads }),
  };
}

