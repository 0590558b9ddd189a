/**
 * A filter program (`zstd -c`, `zstd -dc`) as a Duplex: bytes written go to its stdin,
 * its stdout is what is read. The one file of src/pipeline/ that runs programs (execa;
 * see eslint.config.js).
 *
 * Contract:
 * - Back-pressure both ways: a write completes when the child's stdin accepts it; the
 *   child's stdout is paused while our readable side is full (the child then blocks).
 * - The exit status decides: the readable side ends only after stdout ended AND the child
 *   exited 0. A child that exits non-zero or is killed fails the stream, whatever it wrote.
 * - Destroying the stream (an error anywhere in a pipeline) kills the child (SIGTERM, then
 *   SIGKILL after 2 s) and completes only once it has exited: no orphan is left behind.
 * - A program that is not installed is CODEC_PROGRAM_MISSING, naming the package to install.
 */
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { Duplex } from 'node:stream';
import { execa, type ResultPromise } from 'execa';
import { PipelineError, type PipelineErrorCode } from './errors.js';

export interface ProgramFilterOptions {
  /** The program: a name looked up on PATH, or a path. */
  program: string;
  args: readonly string[];
  /** The tool's name in messages, e.g. `zstd`. */
  tool: string;
  /** The Debian/Ubuntu package that installs it, named in the missing-program error. */
  debianPackage: string;
  /** The code of a non-zero exit: CODEC_PROGRAM_FAILED when encoding, CODEC_CORRUPT when decoding. */
  exitCode: Extract<PipelineErrorCode, 'CODEC_PROGRAM_FAILED' | 'CODEC_CORRUPT'>;
  env?: NodeJS.ProcessEnv;
  /**
   * The child writes its output into this open file instead of to us: the readable side
   * then gives nothing and ends as it would otherwise (exit 0, all input delivered).
   */
  outputFd?: number | undefined;
}

const HIGH_WATER_MARK = 256 * 1024;

export function missingProgram(tool: string, debianPackage: string, program: string): PipelineError {
  return new PipelineError('CODEC_PROGRAM_MISSING', `the ${tool} program is not installed (${program} not found)`, {
    hint: `install it: apt-get install ${debianPackage} (the Debian/Ubuntu package ${debianPackage})`,
  });
}

/** The absolute path of `program` (a name on PATH, or a path), or null when there is none executable. */
export function findProgram(program: string, env: NodeJS.ProcessEnv = process.env): string | null {
  const candidates = program.includes('/') ? [program] : (env.PATH ?? '').split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, program));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return path.resolve(candidate);
    } catch {
      // next
    }
  }
  return null;
}

type Child = ResultPromise<{ stdin: 'pipe'; stdout: 'pipe'; stderr: 'pipe'; buffer: { stdout: false; stderr: true } }>;
type ChildStdout = Child['stdout'] | null;

export class ProgramFilter extends Duplex {
  /** The child's pid (for tests and diagnostics). */
  readonly pid: number | undefined;
  private readonly child: Child;
  /** Settles when the child has exited: null on exit 0, else the error to report. */
  private readonly exited: Promise<PipelineError | null>;
  private stdoutEnded = false;
  private stdinBroken = false;
  private killedByUs = false;

  constructor(private readonly options: ProgramFilterOptions) {
    super({ readableHighWaterMark: HIGH_WATER_MARK, writableHighWaterMark: HIGH_WATER_MARK });
    this.child = execa(options.program, [...options.args], {
      env: options.env,
      stdin: 'pipe',
      // An open file's descriptor: execa passes any, its types only name 3-9.
      stdout: (options.outputFd ?? 'pipe') as 'pipe',
      stderr: 'pipe',
      buffer: { stdout: false, stderr: true },
      // Never outlive us: killed on our exit; SIGKILL 2 s after a SIGTERM it ignores.
      cleanup: true,
      killSignal: 'SIGTERM',
      forceKillAfterDelay: 2_000,
    }) as Child;
    this.pid = this.child.pid;
    this.exited = this.child.then(
      () => null,
      (error: unknown) => this.failure(error),
    );

    const { stdin } = this.child;
    const stdout = this.child.stdout as ChildStdout;
    // EPIPE when the child stops reading: its exit status tells what happened.
    stdin.on('error', () => {
      this.stdinBroken = true;
    });
    if (stdout) {
      stdout.on('data', (chunk: Buffer) => {
        if (!this.push(chunk)) stdout.pause();
      });
      stdout.on('error', () => undefined); // reported through the exit status
      stdout.on('end', () => {
        this.stdoutEnded = true;
      });
      stdout.pause();
    } else this.stdoutEnded = true; // written into options.outputFd

    // A failure is reported at once, even while output is still unread.
    void this.exited.then((failure) => {
      if (failure && !this.destroyed) this.destroy(failure);
    });
    // Success: exit 0, all output read, and all input delivered (stdin finished rather
    // than closed under us: a child that quits early with 0 did not process everything).
    const inputDelivered = new Promise<boolean>((resolve) => {
      stdin.once('finish', () => resolve(true));
      stdin.once('close', () => resolve(false));
    });
    const outputRead = new Promise<void>((resolve) => (stdout ? stdout.once('close', resolve) : resolve()));
    void Promise.all([this.exited, outputRead, inputDelivered]).then(([failure, , delivered]) => {
      if (this.destroyed || failure) return;
      if (!delivered || this.stdinBroken) {
        this.destroy(new PipelineError('CODEC_PROGRAM_FAILED', `${this.options.tool} exited before reading all of its input`));
      } else if (!this.stdoutEnded) this.destroy(new PipelineError(this.options.exitCode, `${this.options.tool}'s output ended early`));
      else this.push(null);
    });
  }

  private failure(error: unknown): PipelineError {
    const e = error as { code?: unknown; exitCode?: number; signal?: string; stderr?: unknown };
    if (e.code === 'ENOENT') return missingProgram(this.options.tool, this.options.debianPackage, this.options.program);
    const stderr = typeof e.stderr === 'string' ? e.stderr : '';
    const line = stderr.split(/\r?\n/).map((l) => l.trim()).find(Boolean)?.slice(0, 300) ?? '';
    const status = e.signal ? `killed by ${e.signal}` : `exit status ${e.exitCode ?? '?'}`;
    // A signal is never a verdict on the data.
    const code = e.signal ? 'CODEC_PROGRAM_FAILED' : this.options.exitCode;
    return new PipelineError(code, `${this.options.tool} failed (${status})${line ? `: ${line}` : ''}`, { cause: error });
  }

  override _read(): void {
    (this.child.stdout as ChildStdout)?.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const { stdin } = this.child;
    if (this.stdinBroken || stdin.destroyed) {
      // The child is gone or stopped reading; the exit status decides how the stream ends.
      this.stdinBroken = true;
      callback();
      return;
    }
    if (stdin.write(chunk)) {
      callback();
      return;
    }
    const done = () => {
      stdin.off('drain', done);
      stdin.off('close', done);
      callback();
    };
    stdin.on('drain', done);
    stdin.on('close', done);
  }

  override _final(callback: (error?: Error | null) => void): void {
    const { stdin } = this.child;
    if (!stdin.destroyed) stdin.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.killedByUs = true;
      this.child.kill('SIGTERM');
    }
    this.child.stdin.destroy();
    (this.child.stdout as ChildStdout)?.destroy();
    // Complete only once the child has exited.
    void this.exited.then(() => callback(error));
  }

  /** Whether the child was killed because the stream was destroyed. */
  get killed(): boolean {
    return this.killedByUs;
  }
}
