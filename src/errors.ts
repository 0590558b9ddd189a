/**
 * Exit codes are a public contract: crontab wrappers, CI pipelines and monitoring
 * branch on them. Never renumber; only add.
 */
export const ExitCode = {
  OK: 0,
  /** The operation was attempted and failed (server unreachable, pg_dump failed, disk full...). */
  FAILED: 1,
  /** The invocation or configuration is wrong: fix it before retrying (bad flag, bad config, wrong password, missing database, no suitable pg_dump). */
  USAGE: 2,
  /** A backup is corrupt or does not match its sidecar. */
  VERIFY_FAILED: 3,
  /** Another run holds the lock of this profile. */
  BUSY: 4,
  /** `status` found a threshold broken (stale, shrunken, unverified). */
  STATUS_FAILED: 5,
  /** Stopped by SIGINT or SIGTERM; what the run had begun was undone. */
  INTERRUPTED: 130,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export interface BackupctlErrorOptions {
  exitCode?: ExitCodeValue;
  /** What the operator should do next; printed after the message. */
  hint?: string;
  /** Several problems behind one error (every problem of a config file): one line each, after the message. */
  details?: readonly string[];
  cause?: unknown;
}

/**
 * The only error type that reaches the user. Its message is one line that says what
 * went wrong; the hint says what to do next; `--verbose` prints the cause chain.
 * The CLI is the one place that turns it into an exit code.
 */
export class BackupctlError extends Error {
  readonly exitCode: ExitCodeValue;
  readonly hint: string | undefined;
  readonly details: readonly string[];

  constructor(message: string, options: BackupctlErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BackupctlError';
    this.exitCode = options.exitCode ?? ExitCode.FAILED;
    this.hint = options.hint;
    this.details = options.details ?? [];
  }
}

export function usageError(message: string, hint?: string): BackupctlError {
  return new BackupctlError(message, { exitCode: ExitCode.USAGE, hint });
}

/** Raised when the run was stopped by a signal; the CLI maps it to exit 130. */
export class InterruptedError extends BackupctlError {
  constructor(signal = 'SIGINT') {
    super(`interrupted by ${signal}; what the run had begun was undone (partial files, scratch databases)`, { exitCode: ExitCode.INTERRUPTED });
    this.name = 'InterruptedError';
  }
}

/** Throws InterruptedError when the run's signal has fired. Call between steps. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    const reason: unknown = signal.reason;
    throw reason instanceof BackupctlError ? reason : new InterruptedError();
  }
}

/** Node system errors carry a string `code` (ENOENT, ENOSPC...). */
export function errnoCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
