/**
 * Retries with backoff inside a deadline, and stall detection: the parts of the
 * storage contract that every remote driver shares. No SDK in here.
 */
import { Readable } from 'node:stream';
import { abortError, PreconditionFailedError, StalledError, StorageError, TransientError } from './errors.js';

export interface RetryPolicy {
  /** No new attempt starts after this many milliseconds from the first (default 120 s). */
  deadlineMs: number;
  /** First backoff (default 200 ms); doubled each attempt, with full jitter. */
  baseDelayMs: number;
  /** Longest single backoff (default 10 s). */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { deadlineMs: 120_000, baseDelayMs: 200, maxDelayMs: 10_000 };

/** Default stall timeout: no byte acknowledged for this long while data waits fails the transfer. */
export const DEFAULT_STALL_TIMEOUT_MS = 60_000;

/** Backoff before attempt `attempt + 1` (attempt counts from 1): full jitter over base * 2^(attempt-1), capped. */
export function backoffDelay(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(30, attempt - 1));
  return Math.max(1, Math.round(ceiling * (0.5 + random() / 2)));
}

/**
 * Runs `attempt` until it succeeds, fails permanently, or the deadline passes.
 * `isTransient` decides from codes (errno, HTTP status, SDK error names), never text.
 * When the deadline passes, the last error is re-thrown as it is if it is already a
 * StorageError, else wrapped in TransientError (`what` names the operation).
 */
export async function withRetry<T>(
  what: string,
  attempt: (attemptNumber: number) => Promise<T>,
  options: {
    policy: RetryPolicy;
    isTransient: (error: unknown) => boolean;
    signal?: AbortSignal | undefined;
    /** Called before each retry (e.g. to reconnect). */
    beforeRetry?: (error: unknown, attemptNumber: number) => Promise<void> | void;
    now?: () => number;
  },
): Promise<T> {
  const now = options.now ?? (() => performance.now());
  const started = now();
  for (let n = 1; ; n++) {
    if (options.signal?.aborted) throw abortError(options.signal);
    try {
      return await attempt(n);
    } catch (error) {
      if (options.signal?.aborted) throw abortError(options.signal);
      if (!options.isTransient(error)) throw error;
      const delay = backoffDelay(n, options.policy);
      if (now() - started + delay > options.policy.deadlineMs) {
        if (error instanceof StorageError) throw error;
        throw new TransientError(`${what} kept failing for ${Math.round((now() - started) / 1000)} s (${n} attempts): ${describeCause(error)}`, {
          cause: error,
        });
      }
      await sleep(delay, options.signal);
      await options.beforeRetry?.(error, n);
    }
  }
}

/** A short description of a low-level error for a message: its code or name, never its (possibly secret-bearing) text. */
export function describeCause(error: unknown): string {
  if (typeof error !== 'object' || error === null) return String(error);
  const record = error as { code?: unknown; name?: unknown; $metadata?: { httpStatusCode?: unknown } };
  const parts: string[] = [];
  if (typeof record.name === 'string' && record.name !== 'Error') parts.push(record.name);
  if (typeof record.code === 'string' || typeof record.code === 'number') parts.push(String(record.code));
  const status = record.$metadata?.httpStatusCode;
  if (typeof status === 'number') parts.push(`HTTP ${status}`);
  return parts.length > 0 ? parts.join(' ') : 'unknown error';
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError(signal));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal as AbortSignal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** errno codes of a connection that broke or never came: transient. */
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND', 'ESOCKETTIMEDOUT']);

export function isNetworkError(error: unknown, depth = 0): boolean {
  if (typeof error !== 'object' || error === null || depth > 5) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
  return isNetworkError((error as { cause?: unknown }).cause, depth + 1);
}

/**
 * Watches a transfer: `busy()` when data is waiting on the store, `progress()` each time
 * the store acknowledges bytes, `idle()` when nothing is waiting (the producer is slow).
 * If the store stays busy with no progress for `timeoutMs`, `onStall` runs once.
 */
export class StallWatch {
  private timer: NodeJS.Timeout | null = null;
  private fired = false;

  constructor(
    private readonly timeoutMs: number,
    private readonly onStall: () => void,
  ) {}

  get stalled(): boolean {
    return this.fired;
  }

  /** Data is waiting on the store: start the clock unless it runs already. */
  busy(): void {
    if (this.fired || this.timer !== null || this.timeoutMs <= 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.fired = true;
      this.onStall();
    }, this.timeoutMs);
    this.timer.unref?.();
  }

  /** The store acknowledged bytes: restart the clock (still busy). */
  progress(): void {
    if (this.timer === null) return;
    this.timer.refresh();
  }

  /** Nothing is waiting on the store. */
  idle(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  stop(): void {
    this.idle();
    this.fired = true;
  }
}

/** After the stall window is spent: the one short attempt the clean-up still gets (ms, at most the stall timeout). */
export const STALL_GRACE_MS = 2_000;

/**
 * What one storage has learnt about stalls in this run, so that a hung server fails a
 * run in about two stall timeouts rather than one timeout (or retry deadline) for each
 * of the calls that follow the stall: the upload's own clean-up, removing the files of
 * the failed backup, releasing the lock, the run log.
 *
 * A stall (no byte acknowledged for stallTimeoutMs while data waited, or no answer to a
 * request for that long) opens a window of stallTimeoutMs. Until a request of this
 * storage succeeds again (which closes it: the server answers), every call is one
 * attempt: no retries once the window's rest cannot hold the backoff, and a call that
 * does not stream is bounded by the window's rest. Once the window is spent, the first
 * call to come still gets one short attempt (STALL_GRACE_MS, shared by the calls made
 * meanwhile: a server that only stopped taking an upload still gets cleaned up), and
 * calls after it fail at once with StalledError, without a request, until another
 * stallTimeoutMs has passed (then one more short attempt may show the server is back:
 * a long run is not cut off from a server that recovered). What is left (a partial file,
 * a lock) is reclaimed by the next run or prune. Any answer of the server, an error
 * status included, counts as a success.
 * Drivers decide on this object, never on an error's text.
 */
export class StallBudget {
  private windowEnd: number | null = null;
  private graceGiven = false;

  constructor(
    readonly stallTimeoutMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** A stall was seen and no request has succeeded since. */
  get stalled(): boolean {
    return this.windowEnd !== null;
  }

  /** A stall was seen: the first one since the last success opens the window. */
  noteStall(): void {
    if (this.windowEnd !== null || this.stallTimeoutMs <= 0) return;
    this.windowEnd = this.now() + this.stallTimeoutMs;
    this.graceGiven = false;
  }

  /** A request succeeded: the server answers, calls are tried as usual again. */
  noteSuccess(): void {
    this.windowEnd = null;
    this.graceGiven = false;
  }

  /** What remains of the window (ms, 0 when spent); null when no stall was seen. */
  remainingMs(): number | null {
    return this.windowEnd === null ? null : Math.max(0, Math.ceil(this.windowEnd - this.now()));
  }

  /** Whether a failed attempt may be tried again after `delayMs`: always without a stall; after one, only within the window. */
  mayRetry(delayMs: number): boolean {
    return this.windowEnd === null || this.now() + delayMs < this.windowEnd;
  }

  /**
   * For an attempt starting now: how long it may take (ms), or null when no stall was
   * seen (the driver's own limits apply). When the window and its grace are spent, throws
   * StalledError: the call is not tried. `what` names the operation and key, for the message.
   */
  begin(what: string, key?: string): number | null {
    if (this.windowEnd === null) return null;
    const left = Math.ceil(this.windowEnd - this.now()); // whole milliseconds (AbortSignal.timeout takes no fraction)
    if (left > 0) return left;
    // The grace, once per window; again when a stall timeout has passed since the last one.
    if (!this.graceGiven || left <= -this.stallTimeoutMs) {
      this.graceGiven = true;
      const grace = Math.min(this.stallTimeoutMs, STALL_GRACE_MS);
      this.windowEnd = this.now() + grace;
      return grace;
    }
    throw new StalledError(`${what}: not tried, the storage stopped responding earlier in this run`, {
      key,
      hint: 'the storage stopped responding; what this run could not remove is removed by the next run or prune (the stall timeout is the stall-timeout setting)',
    });
  }
}

/**
 * The abort signal of a request whose answer is then streamed (a download): it ends the
 * request when no answer has come for the stall timeout or, after a stall, for what the
 * budget allows (begin()); the caller's `signal` ends it too. Throws as begin() does, or
 * an AbortError when the caller's signal has already fired.
 */
export function answerSignal(budget: StallBudget, what: string, key: string, signal?: AbortSignal): AbortSignal {
  let limit: number | null;
  try {
    limit = budget.begin(what, key);
  } catch (error) {
    if (signal?.aborted) throw abortError(signal);
    throw error;
  }
  return boundedSignal(Math.min(budget.stallTimeoutMs, limit ?? Infinity), signal);
}

/**
 * A signal that fires after `ms` (a TimeoutError, as AbortSignal.timeout's) or when any
 * of `signals` does. Its timer holds it: a timeout signal that only AbortSignal.any refers
 * to is held weakly, and Node may collect it before it fires (a download resumed against a
 * stopped server then waited for ever, until the server came back). The timer does not
 * keep the process alive.
 */
export function boundedSignal(ms: number, ...signals: Array<AbortSignal | undefined>): AbortSignal {
  const controller = new AbortController();
  for (const signal of signals) {
    if (!signal) continue;
    if (signal.aborted) {
      controller.abort(signal.reason);
      return controller.signal;
    }
    signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true, signal: controller.signal });
  }
  if (Number.isFinite(ms)) {
    const timer = setTimeout(() => controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), Math.max(1, Math.ceil(ms)));
    timer.unref();
    controller.signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
  }
  return controller.signal;
}

/**
 * `promise`, or the error of `timedOut()` when it has not settled after `ms` (the work
 * goes on unobserved: the caller ends it, e.g. by dropping the connection, in `timedOut`).
 */
export function within<T>(promise: Promise<T>, ms: number, timedOut: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(timedOut()), Math.max(1, ms));
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error as Error);
      },
    );
  });
}

export interface GuardOptions {
  /** The reader is waiting and nothing arrives for this long: the stream fails with StalledError. 0: never. */
  stallTimeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Maps the source's errors to storage errors. */
  mapError: (error: unknown) => unknown;
  /** The key, for the StalledError message. */
  key: string;
  /** Runs once when the stream ends, fails or is destroyed (close a file handle, release a connection). */
  onClose?: () => void;
}

/**
 * Wraps a download in a Readable that (1) fails with StalledError when the consumer
 * waits for data and none comes for stallTimeoutMs (a paused consumer is never a
 * stall: back-pressure stops the clock), (2) is destroyed with the signal's reason
 * within a second of an abort, (3) reports the source's errors as storage errors.
 */
export function guardReadable(source: Readable, options: GuardOptions): Readable {
  let waiting = false;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    watch.stop();
    options.signal?.removeEventListener('abort', onAbort);
    options.onClose?.();
  };
  const watch = new StallWatch(options.stallTimeoutMs, () => {
    out.destroy(new StalledError(`reading ${options.key}: no data for ${Math.round(options.stallTimeoutMs / 1000)} s`, { key: options.key }));
  });
  const out = new Readable({
    highWaterMark: 64 * 1024,
    read() {
      waiting = true;
      watch.busy();
      source.resume();
    },
    destroy(error, callback) {
      source.destroy();
      close();
      callback(error);
    },
  });
  source.on('data', (chunk: Buffer) => {
    watch.progress();
    if (!out.push(chunk)) {
      waiting = false;
      watch.idle();
      source.pause();
    }
  });
  source.once('end', () => {
    watch.idle();
    out.push(null);
    close();
  });
  source.on('error', (error) => out.destroy(error instanceof StorageError ? error : (options.mapError(error) as Error)));
  source.once('close', () => {
    // A source closed before 'end' without an error (a socket destroyed under it).
    if (!out.readableEnded && !out.destroyed && !source.readableEnded && waiting) {
      out.destroy(new TransientError(`reading ${options.key}: the connection closed before the end of the object`, { key: options.key }));
    }
  });
  out.once('end', close);
  out.once('close', close);
  const onAbort = () => out.destroy(abortError(options.signal as AbortSignal));
  if (options.signal?.aborted) queueMicrotask(onAbort);
  else options.signal?.addEventListener('abort', onAbort, { once: true });
  source.pause();
  return out;
}

/**
 * A download that survives a dropped connection: when the stream of `open(0)` fails with
 * a TransientError (a reset, a connection closed before the end) after it started, the
 * rest is asked for again from the byte reached, `open(delivered)`, after a backoff,
 * until no byte has come for the retry policy's deadline. The consumer sees one stream
 * of the whole, or the last error. Anything else (a stall, see StallBudget; permission;
 * the object changed, which `open` must refuse by pinning its entity tag) fails at once.
 * Back-pressure holds as for the stream itself: a part is asked for only when read.
 */
export function resumableDownload(
  first: Readable,
  open: (delivered: number, signal: AbortSignal) => Promise<Readable>,
  options: { policy: RetryPolicy; signal?: AbortSignal | undefined },
): Readable {
  const closed = new AbortController();
  const stop = options.signal ? AbortSignal.any([options.signal, closed.signal]) : closed.signal;
  async function* parts(): AsyncGenerator<Buffer> {
    let source: Readable | null = first;
    let delivered = 0;
    let failingSince: number | null = null;
    for (let attempt = 1; ; attempt++) {
      try {
        source ??= await open(delivered, stop);
        for await (const chunk of source as AsyncIterable<Buffer>) {
          delivered += chunk.length;
          failingSince = null;
          attempt = 1;
          yield chunk;
        }
        return;
      } catch (error) {
        source = null;
        if (!(error instanceof TransientError) || stop.aborted) throw error;
        failingSince ??= performance.now();
        const delay = backoffDelay(attempt, options.policy);
        if (performance.now() - failingSince + delay > options.policy.deadlineMs) throw error;
        await sleep(delay, stop);
      }
    }
  }
  const out = Readable.from(parts(), { objectMode: false, highWaterMark: 64 * 1024 });
  out.once('close', () => closed.abort());
  return out;
}

/** A byte range of an object, as GetOptions gives it. */
type ByteRange = { offset: number; length?: number | undefined };

/**
 * A download from an HTTP object store (S3, Azure) that resumes where a dropped
 * connection broke it (resumableDownload), each later request pinned to the first
 * answer's entity tag (`once` sends it as If-Match), so that a resumed read never splices
 * two versions of a key: one replaced meanwhile fails the read. Without an entity tag
 * there is nothing to pin to, and the first answer is all there is. An empty range asks
 * for nothing; an aborted `signal` asks for nothing either (AbortError).
 */
export async function pinnedDownload(
  key: string,
  options: { range?: ByteRange | undefined; signal?: AbortSignal | undefined },
  policy: RetryPolicy,
  once: (range: ByteRange | undefined, signal: AbortSignal | undefined, ifMatch?: string) => Promise<{ body: Readable; etag: string | undefined }>,
): Promise<Readable> {
  const { range, signal } = options;
  if (signal?.aborted) throw abortError(signal);
  if (range?.length === 0) return Readable.from([]);
  const first = await once(range, signal);
  const etag = first.etag;
  if (etag === undefined) return first.body;
  return resumableDownload(
    first.body,
    async (delivered, stop) => {
      const rest = { offset: (range?.offset ?? 0) + delivered, length: range?.length === undefined ? undefined : range.length - delivered };
      if (rest.length === 0) return Readable.from([]);
      try {
        return (await once(rest, stop, etag)).body;
      } catch (error) {
        if (error instanceof PreconditionFailedError) throw new StorageError('io', `reading ${key}: the object was replaced while it was read`, { key, cause: error });
        throw error;
      }
    },
    { policy, signal },
  );
}

/** Reads a whole stream into memory, refusing more than `maxBytes` (then destroys it). */
export async function readAll(stream: Readable, maxBytes: number, tooLarge: () => Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const buffer = chunk as Buffer;
    total += buffer.length;
    if (total > maxBytes) {
      stream.destroy();
      throw tooLarge();
    }
    chunks.push(buffer);
  }
  return Buffer.concat(chunks, total);
}
