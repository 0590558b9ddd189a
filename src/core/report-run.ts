import { hostname } from 'node:os';
import { appendRun, type RunEntry } from '../catalog/runlog.js';
import { BackupctlError, ExitCode, InterruptedError } from '../errors.js';
import { notifyFinish, notifyStart, type NotifyConfig, type RunNotice } from '../notify/notify.js';
import type { Storage } from '../storage/storage.js';
import type { Runtime } from './runtime.js';
import { redactSecrets } from '../redact.js';
import { identityOf, thisProcess } from '../platform/process.js';

/** What the wrapper needs to know about a run before it starts. */
export interface RunMeta {
  /** create, verify, prune... (recorded as the run log's `command`). */
  command: string;
  profile: string;
  /** The storage of the profile, where its run log lives. */
  storage: Storage;
  database?: string | undefined;
  /** Where the run wrote when that is not the profile's storage (a copy's destination): recorded with it. */
  target?: string | undefined;
  /** Where a create copies its backup once it is made (the profile's `copies`): recorded with it. */
  copies?: readonly string[] | undefined;
  notify?: NotifyConfig | null | undefined;
}

/** What a successful run reports about itself. */
export interface RunSummary {
  id?: string | undefined;
  bytes?: number | undefined;
  /** Of a copy: the backups at its destination after it (the run log's `copied`); also recorded when the run failed. */
  copied?: string[] | undefined;
}

/**
 * Runs `fn` as one reported run of a command:
 * - when `fn` says the work has really started (it calls `started()`, e.g. once it holds
 *   the profile's lock): the healthchecks start ping, sent alongside the run, never
 *   delaying it;
 * - after it, whatever happened: one entry in the profile's run log, then the
 *   notifications: success or failure, or, when the run found the profile busy (exit 4:
 *   another run holds the lock and may still be working), the `busy` event, which only
 *   targets that ask for it receive (it is neither a success nor a failure).
 * Neither the run log nor a notification can change the outcome: their failures are
 * warnings, and `fn`'s result or error is passed through unchanged.
 */
export async function withRunReport<T>(
  meta: RunMeta,
  runtime: Runtime,
  fn: (started: () => void) => Promise<T>,
  summarize: (result: T) => RunSummary = () => ({}),
  /** A run can return a result and still have failed (verify found a corrupt backup): say how, or null. */
  judge: (result: T) => { exitCode: number; error: string } | null = () => null,
): Promise<T> {
  const { reporter } = runtime;
  const log = { warn: (m: string) => reporter.warn(m), debug: (m: string) => reporter.debug(m) };
  const startedAt = runtime.now();
  const startedMs = performance.now();
  let started: Promise<void> = Promise.resolve();
  let pinged = false;
  const onStarted = () => {
    if (pinged) return;
    pinged = true;
    started = notifyStart(meta.notify, meta.command, log).catch((e: unknown) => log.warn(`notification failed: ${messageOf(e)}`));
  };

  let outcome: { ok: true; value: T } | { ok: false; error: unknown };
  try {
    outcome = { ok: true, value: await fn(onStarted) };
  } catch (error) {
    outcome = { ok: false, error };
  }

  const finishedAt = runtime.now();
  const durationMs = Math.max(0, Math.round(performance.now() - startedMs));
  const host = hostname();
  const summary = outcome.ok ? safeSummary(summarize, outcome.value) : {};
  const verdict = outcome.ok ? judge(outcome.value) : null;
  const succeeded = outcome.ok && verdict === null;
  const interrupted = !outcome.ok && (outcome.error instanceof InterruptedError || runtime.signal.aborted);
  const exitCode = outcome.ok ? (verdict?.exitCode ?? ExitCode.OK) : exitCodeOf(outcome.error, interrupted);
  const busy = !outcome.ok && exitCode === ExitCode.BUSY;
  const error = outcome.ok ? (verdict ? oneLine(redactSecrets(verdict.error)) : undefined) : oneLine(redactSecrets(messageOf(outcome.error)));
  const entry: RunEntry = {
    command: meta.command,
    profile: meta.profile,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationMs,
    result: succeeded ? 'succeeded' : interrupted ? 'interrupted' : busy ? 'busy' : 'failed',
    id: summary.id,
    ...(summary.copied === undefined ? {} : { copied: summary.copied }),
    ...(meta.target === undefined ? {} : { target: redactSecrets(meta.target) }),
    ...(meta.copies === undefined ? {} : { copies: meta.copies.map((copy) => redactSecrets(copy)) }),
    error,
    exitCode,
    host,
    // pid, and on Linux the boot id and start ticks: status asks whether this process still runs (runIsRunning).
    ...identityOf(thisProcess),
  };

  try {
    await appendRun(meta.storage, entry);
  } catch (failure) {
    const message = `could not record the run in the run log of ${meta.profile}: ${oneLine(redactSecrets(messageOf(failure)))}`;
    // A failed run prints one error line (and a hint): when the storage itself is what
    // failed, the run log cannot be written either, and saying so again only buries the
    // real error. Shown with --verbose.
    if (succeeded) reporter.warn(message);
    else reporter.debug(message);
  }

  const notice: RunNotice = {
    event: `${meta.command === 'create' ? 'backup' : meta.command}.${succeeded ? 'succeeded' : busy ? 'busy' : 'failed'}`,
    command: meta.command,
    profile: meta.profile,
    id: summary.id,
    database: meta.database,
    startedAt: entry.startedAt,
    finishedAt: entry.finishedAt,
    durationMs,
    bytes: summary.bytes,
    error,
    exitCode,
    host,
  };
  await started;
  // An interrupted run still says so, but only once: the operator is waiting to get out.
  await notifyFinish(meta.notify, notice, log, interrupted ? { retries: 0 } : {}).catch((e: unknown) =>
    log.warn(`notification failed: ${messageOf(e)}`),
  );

  if (outcome.ok) return outcome.value;
  throw outcome.error;
}

function safeSummary<T>(summarize: (result: T) => RunSummary, value: T): RunSummary {
  try {
    return summarize(value);
  } catch {
    return {};
  }
}

function exitCodeOf(error: unknown, interrupted: boolean): number {
  if (error instanceof BackupctlError) return error.exitCode;
  return interrupted ? ExitCode.INTERRUPTED : ExitCode.FAILED;
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return typeof error === 'string' ? error : String(error);
}

function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\s*\r?\n\s*/g, ' ').replace(/[\u0000-\u001f\u007f]/g, ' ').trim().slice(0, 2000);
}

