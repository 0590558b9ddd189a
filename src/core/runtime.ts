/**
 * What a core operation may use of the outside world. The CLI builds one per run;
 * tests build their own. Core code never reads process.env, process.cwd() or the clock
 * directly, and never writes to stdout: it returns a result and reports events here.
 */
export interface Reporter {
  /** A step of the work began or ended (one human line, or one JSON log line). */
  info(message: string): void;
  /** Something the operator should know that does not fail the run. */
  warn(message: string): void;
  /** Detail shown only with --verbose. */
  debug(message: string): void;
  /** Bytes moved so far in a long phase; rendered as a spinner on a TTY, throttled lines otherwise. */
  progress(phase: string, bytes: number): void;
  /** The long phase ended. */
  progressDone(phase: string, bytes: number): void;
}

export interface Runtime {
  env: Record<string, string | undefined>;
  cwd: string;
  /** Fires on SIGINT/SIGTERM: stop children, remove partial files, throw InterruptedError. */
  signal: AbortSignal;
  now(): Date;
  reporter: Reporter;
}

export const silentReporter: Reporter = {
  info: () => undefined,
  warn: () => undefined,
  debug: () => undefined,
  progress: () => undefined,
  progressDone: () => undefined,
};
