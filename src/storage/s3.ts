/**
 * S3 and S3-compatible stores (`s3://bucket/prefix`), through the AWS SDK v3. The only
 * module (with nothing else) that imports @aws-sdk: the registry loads it on first use.
 *
 * - put: our own streaming multipart writer (PartWriter). An object of at most one part
 *   is one PutObject; a larger one is CreateMultipartUpload, parts numbered from 1 with
 *   at most queueSize in flight, then CompleteMultipartUpload with each part's ETag
 *   (storage class and SSE go on PutObject / CreateMultipartUpload). Memory: a pool of
 *   (queueSize + 1) buffers of partSize, allocated once per put and reused (a part is
 *   sent as a view of its buffer, never copied again), plus the stream's chunks; the
 *   source is paused while every buffer is in flight. More than 10,000 parts fail with
 *   TooLargeError before part 10,001 is sent. An object is invisible until its
 *   PutObject / CompleteMultipartUpload succeeds. On failure, abort or stall every
 *   request in flight is aborted, the multipart upload is aborted (AbortMultipartUpload,
 *   retried) and ListMultipartUploads checks it is gone; a server that cannot abort or
 *   list uploads (s3rver) gets a warning, not silence. A failing source's own error is
 *   what the put rejects with.
 * - Retries: the SDK's retry middleware with our strategy: timeouts, 5xx, resets and
 *   throttling are retried with exponential backoff (full jitter, Retry-After honoured)
 *   until retryDeadlineMs after the first attempt; 4xx fail at once.
 * - Stalls: the writing client's sockets time out after stallTimeoutMs without a byte
 *   moving (a slow link is not a stall); a download is watched by guardReadable (a
 *   paused reader is not a stall), with no socket timeout on the reading client. Once a
 *   request stalled, the storage's StallBudget (resilience.ts) holds every later request
 *   to one attempt within a short shared budget until one succeeds: the clean-up after a
 *   stall (aborting the upload, removing files, the lock, the run log) is not one more
 *   timeout each against a hung server.
 * - putIfAbsent: PutObject with If-None-Match: *, only when conditionalCreate holds:
 *   `conditional-create=auto` (default) probes once (write a probe object, then a
 *   conditional write over it must be refused with 412); s3rver and some compatibles
 *   silently overwrite, and then the capability stays false.
 * - Credentials: the SDK's default chain (environment, shared files with `profile`, web
 *   identity, ECS/instance metadata), never the URL; never logged.
 */
import { randomBytes } from 'node:crypto';
import { finished, Readable, Transform, type TransformCallback } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  type CompletedPart,
  CreateMultipartUploadCommand,
  type CreateMultipartUploadCommandOutput,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type UploadPartCommandOutput,
  type ListMultipartUploadsCommandOutput,
  type ServerSideEncryption,
  type StorageClass,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import {
  abortError,
  ConfigurationError,
  CredentialsError,
  NoSpaceError,
  NotFoundError,
  PermissionError,
  PreconditionFailedError,
  StalledError,
  StorageError,
  TooLargeError,
  TransientError,
  UnsupportedError,
} from './errors.js';
import type { StorageRuntime } from './registry.js';
import { answerSignal, backoffDelay, boundedSignal, describeCause, guardReadable, isNetworkError, pinnedDownload, readAll, sleep, StallBudget, type RetryPolicy } from './resilience.js';
import { pieceSizeFor, type S3Location } from './settings.js';
import {
  assertKey,
  isValidKey,
  normalizePrefix,
  keysAfter,
  type ListOptions,
  sortByKey,
  type GetOptions,
  type ObjectInfo,
  type PutOptions,
  type Storage,
  type StorageCapabilities,
  type StaleTemporariesOptions,
} from './storage.js';

const MIB = 1024 * 1024;
const DEFAULT_PART_SIZE = 8 * MIB;
/**
 * Parts in flight. 2, not 4 (lib-storage's default, which put used before): a backup's
 * upload is paced by pg_dump and the stages (tens of MB/s), which two connections carry;
 * each further part costs a part's memory. Measured with lib-storage (bench:remote,
 * create of a 300 MB database to s3rver): node's peak RSS 143-149 MB with 4, 130-138 MB
 * with 2, against a 150 MB target. queue-size= raises it.
 */
const DEFAULT_QUEUE_SIZE = 2;
const MAX_PARTS = 10_000;
/** S3's largest part. */
const MAX_PART_SIZE = 5 * 1024 * MIB;
/** Parts kept in reserve below S3's 10,000 when sizing parts from an expected size. */
const PART_HEADROOM = 9_000;

interface SdkError {
  name?: string;
  code?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  $fault?: 'client' | 'server';
}

function sdkError(error: unknown): SdkError {
  return typeof error === 'object' && error !== null ? (error as SdkError) : {};
}

const CREDENTIAL_ERRORS = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'CredentialsProviderError',
  'InvalidClientTokenId',
  'AuthorizationHeaderMalformed',
]);
const PERMISSION_ERRORS = new Set(['AccessDenied', 'AllAccessDisabled', 'AccountProblem', 'InvalidObjectState']);
const NO_SPACE_ERRORS = new Set(['XMinioStorageFull', 'StorageFull', 'QuotaExceeded', 'XMinioAdminBucketQuotaExceeded']);
const NOT_IMPLEMENTED = new Set(['NotImplemented', 'MethodNotAllowed']);

function statusOf(error: unknown): number | undefined {
  return sdkError(error).$metadata?.httpStatusCode;
}

function nameOf(error: unknown): string {
  const e = sdkError(error);
  return e.name ?? e.Code ?? e.code ?? '';
}

/** Not implemented by this server (s3rver: ListMultipartUploads, AbortMultipartUpload). */
function isNotImplemented(error: unknown): boolean {
  const status = statusOf(error);
  return NOT_IMPLEMENTED.has(nameOf(error)) || status === 501 || status === 405;
}

/**
 * A retry strategy for the SDK's retry middleware: transient errors (timeouts, 5xx,
 * resets, throttling) are retried with backoff until the deadline; others never.
 */
class DeadlineRetryStrategy {
  readonly mode = 'standard';
  /**
   * A request of this client kept failing until the deadline: the store is unreachable.
   * Until one succeeds, requests get one attempt each, so that what follows a failed
   * write (aborting its upload, releasing the lock) fails in seconds, not one more
   * deadline each (a run used to take four deadlines to fail).
   */
  private unreachable = false;

  constructor(
    private readonly policy: RetryPolicy,
    private readonly budget: StallBudget,
  ) {}

  async acquireInitialRetryToken(): Promise<RetryToken> {
    return new RetryToken(this.unreachable ? Number.NEGATIVE_INFINITY : performance.now(), 0, 0);
  }

  async refreshRetryTokenForRetry(token: RetryToken, info: { errorType: string; error?: unknown; retryAfterHint?: Date }): Promise<RetryToken> {
    // 501 Not Implemented / 505: the server will never do it; an abort is the caller's.
    const status = statusOf(info.error);
    if (info.errorType === 'CLIENT_ERROR' || nameOf(info.error) === 'AbortError' || status === 501 || status === 505 || nameOf(info.error) === 'NotImplemented') {
      throw info.error ?? new Error('not retryable');
    }
    // A socket that moved no byte for stallTimeoutMs (or a connection that never came): a stall.
    if (nameOf(info.error) === 'TimeoutError') this.budget.noteStall();
    const attempt = token.getRetryCount() + 1;
    let delay = backoffDelay(attempt, this.policy);
    if (info.retryAfterHint) delay = Math.max(delay, Math.min(this.policy.maxDelayMs, info.retryAfterHint.getTime() - Date.now()));
    // After a stall, a retry only within the stall window (see StallBudget).
    if (!this.budget.mayRetry(delay)) throw info.error ?? new Error('stalled');
    if (performance.now() - token.started + delay > this.policy.deadlineMs) {
      this.unreachable = true;
      throw info.error ?? new Error('retry deadline passed');
    }
    return new RetryToken(token.started, attempt, delay);
  }

  recordSuccess(): void {
    this.unreachable = false;
    this.budget.noteSuccess();
  }
}

class RetryToken {
  constructor(
    readonly started: number,
    private readonly count: number,
    private readonly delay: number,
  ) {}
  getRetryCount(): number {
    return this.count;
  }
  getRetryDelay(): number {
    return this.delay;
  }
}

/**
 * Builds an S3 client with the AWS SDK's NodeVersionSupportWarning switched off for this
 * construction only (the SDK checks once, at the first client): on Node 20 it would
 * print a warning about the SDK's own future releases on the operator's stderr, as if it
 * were ours. Other warnings are untouched.
 */
function quietClient(config: S3ClientConfig): S3Client {
  const variable = 'AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED';
  const previous = process.env[variable];
  process.env[variable] = 'true';
  try {
    return new S3Client(config);
  } finally {
    if (previous === undefined) delete process.env[variable];
    else process.env[variable] = previous;
  }
}

/** How long a CreateMultipartUpload in flight may still answer once its put has failed (see TrackingClient.send). */
const CREATE_GRACE_MS = 5_000;

/**
 * Every request of one put goes through here, so that an abort reaches the requests in
 * flight and the multipart upload ids are known for the cleanup.
 */
class TrackingClient {
  readonly uploadIds = new Set<string>();
  readonly inFlight = new Set<Promise<unknown>>();

  constructor(
    private readonly client: S3Client,
    private readonly signal: AbortSignal,
    /** Throws when the storage's stall budget is spent (StallBudget.begin): the request is not sent. */
    private readonly gate: () => void = () => undefined,
  ) {}

  /** The put's abort signal, CREATE_GRACE_MS late. */
  private graced(): AbortSignal {
    const late = new AbortController();
    const follow = () => setTimeout(() => late.abort(this.signal.reason), CREATE_GRACE_MS).unref();
    if (this.signal.aborted) follow();
    else this.signal.addEventListener('abort', follow, { once: true });
    return late.signal;
  }

  /** S3Client.send of any command (its output is the caller's to type). */
  send(command: object, options: { abortSignal?: AbortSignal } = {}): Promise<unknown> {
    try {
      this.gate();
    } catch (error) {
      return Promise.reject(error as Error);
    }
    // A CreateMultipartUpload gets CREATE_GRACE_MS after the put's abort to answer: cut
    // short at once, the server may still start the upload after the clean-up has listed
    // the key's uploads, leaving one nobody aborts. It answers quickly; the clean-up waits
    // for it (Promise.allSettled of inFlight) and then knows its UploadId.
    const create = command instanceof CreateMultipartUploadCommand;
    const own = create ? this.graced() : this.signal;
    const signal = options.abortSignal ? AbortSignal.any([options.abortSignal, own]) : own;
    const sent = (this.client.send as unknown as (c: object, o: { abortSignal: AbortSignal }) => Promise<unknown>)(command, { abortSignal: signal });
    if (create) {
      void sent.then((output) => {
        const id = (output as { UploadId?: string }).UploadId;
        if (id) this.uploadIds.add(id);
      }, () => undefined);
    }
    this.inFlight.add(sent);
    void sent.finally(() => this.inFlight.delete(sent)).catch(() => undefined);
    return sent;
  }
}

/** What PutObject and CreateMultipartUpload carry besides the key. */
interface ObjectParams {
  Bucket: string;
  Key: string;
  ContentType: string;
  StorageClass?: StorageClass;
  ServerSideEncryption?: ServerSideEncryption;
  SSEKMSKeyId?: string;
}

interface PartWriterOptions {
  /** The storage key, for messages. */
  key: string;
  params: ObjectParams;
  partSize: number;
  /** Parts in flight at most; the pool holds one buffer more (the part being filled). */
  queueSize: number;
  /** S3's limit on parts: data for part maxParts + 1 fails the put with TooLargeError before it is sent. */
  maxParts: number;
  /** CRC32 checksums on parts (the SDK computes them; AWS wants them listed at completion). */
  checksums: boolean;
  onProgress?: ((bytes: number) => void) | undefined;
}

/**
 * One put: the source's bytes are copied into a pool of at most queueSize + 1 part
 * buffers, allocated once (on first need) for this put and reused: one is being filled,
 * the others are parts in flight. A full buffer is sent as a part once more bytes follow
 * (so that an object of at most one part is a single PutObject); while every buffer is
 * in flight the source is paused, and a buffer returns to the pool only when its
 * request has settled (the SDK may send its bytes again on a retry until then). No
 * buffer per part and no concatenation: nothing of a part becomes garbage, so memory is
 * the pool plus the source's own chunks, however large the object.
 *
 * `run` resolves to the object's size once it is visible (PutObject or
 * CompleteMultipartUpload succeeded); on any failure it rejects after aborting the
 * requests in flight (through `abort`), leaving the clean-up to the caller.
 */
class PartWriter {
  /** Bytes taken from the source. */
  bytes = 0;
  /** The source's failure: its error, or ERR_STREAM_PREMATURE_CLOSE when it closed before its end. */
  sourceFailure: unknown = null;

  private readonly pool: Buffer[] = [];
  private allocated = 0;
  private current: Buffer | null = null;
  private filled = 0;
  /** Parts handed to a request so far (the last one's number). */
  private sent = 0;
  private readonly parts: CompletedPart[] = [];
  private readonly sending = new Set<Promise<void>>();
  private uploadId: Promise<string> | null = null;
  private acknowledged = 0;
  private failure: { error: unknown } | null = null;
  private readonly chunks: Buffer[] = [];
  private ended = false;
  private wake: (() => void) | null = null;

  constructor(
    private readonly client: TrackingClient,
    private readonly options: PartWriterOptions,
    private readonly abort: (reason: unknown) => void,
  ) {}

  /** Stops the put with `error` (the first failure wins): requests in flight are aborted. */
  fail(error: unknown): void {
    if (this.failure === null) {
      this.failure = { error };
      this.abort(error);
    }
    this.notify();
  }

  async run(source: Readable): Promise<number> {
    // One chunk at a time: a source that produces synchronously would otherwise emit all
    // it has before the copying loop gets a turn.
    const onData = (chunk: Buffer | string) => {
      source.pause();
      this.chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      this.notify();
    };
    source.on('data', onData);
    const unwatch = finished(source, { writable: false }, (error) => {
      if (error) {
        this.sourceFailure = error;
        this.fail(error);
      } else {
        this.ended = true;
        this.notify();
      }
    });
    try {
      return await this.write(source);
    } catch (error) {
      this.fail(error);
      // Every request of this put has settled before the caller cleans up.
      while (this.sending.size > 0) await this.changed();
      throw this.failure?.error ?? error;
    } finally {
      source.off('data', onData);
      unwatch();
      if (!this.ended) source.pause();
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  /** Resolves at the next event: a chunk, the source's end, a settled request, a failure. */
  private changed(): Promise<void> {
    return new Promise((resolve) => (this.wake = resolve));
  }

  private check(): void {
    if (this.failure !== null) throw this.failure.error;
  }

  private async write(source: Readable): Promise<number> {
    const { partSize } = this.options;
    for (;;) {
      this.check();
      const chunk = this.chunks.shift();
      if (chunk === undefined) {
        if (this.ended) break;
        source.resume();
        await this.changed();
        continue;
      }
      this.bytes += chunk.length;
      let offset = 0;
      while (offset < chunk.length) {
        if (this.current === null || this.filled === partSize) {
          if (this.current !== null) {
            // More bytes follow a full part: it goes now, once a request may start.
            if (this.sent + 1 >= this.options.maxParts) {
              throw new TooLargeError(this.options.key, this.bytes, partSize * this.options.maxParts);
            }
            while (this.sending.size >= this.options.queueSize) {
              await this.changed();
              this.check();
            }
            this.sendPart(this.current, partSize);
          }
          this.current = this.take();
          this.filled = 0;
        }
        const copied = chunk.copy(this.current, this.filled, offset);
        this.filled += copied;
        offset += copied;
      }
    }
    if (this.sent === 0) {
      // At most one part: one PutObject.
      const body = this.current === null ? Buffer.alloc(0) : this.current.subarray(0, this.filled);
      await this.client.send(new PutObjectCommand({ ...this.options.params, Body: body, ContentLength: body.length }));
      return this.bytes;
    }
    if (this.current !== null && this.filled > 0) {
      while (this.sending.size >= this.options.queueSize) {
        await this.changed();
        this.check();
      }
      this.sendPart(this.current, this.filled);
    }
    while (this.sending.size > 0) {
      await this.changed();
      this.check();
    }
    this.check();
    this.parts.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
    await this.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.options.params.Bucket,
        Key: this.options.params.Key,
        UploadId: await (this.uploadId as Promise<string>),
        MultipartUpload: { Parts: this.parts },
      }),
    );
    return this.bytes;
  }

  /** A free buffer of the pool (one is free whenever fewer than queueSize parts are in flight). */
  private take(): Buffer {
    const free = this.pool.pop();
    if (free !== undefined) return free;
    if (this.allocated > this.options.queueSize) throw new Error('internal error: the part buffer pool is empty');
    this.allocated += 1;
    return Buffer.allocUnsafeSlow(this.options.partSize);
  }

  private createUpload(): Promise<string> {
    this.uploadId ??= this.client
      .send(new CreateMultipartUploadCommand({ ...this.options.params, ...(this.options.checksums ? { ChecksumAlgorithm: 'CRC32' as const } : {}) }))
      .then((output) => {
        const id = (output as CreateMultipartUploadCommandOutput).UploadId;
        if (!id) throw new StorageError('io', `writing ${this.options.key}: the server started a multipart upload without an UploadId`, { key: this.options.key });
        return id;
      });
    return this.uploadId;
  }

  /** Sends `buffer`'s first `length` bytes as the next part; the buffer returns to the pool once the request has settled. */
  private sendPart(buffer: Buffer, length: number): void {
    const partNumber = ++this.sent;
    this.current = null;
    const { params, checksums, key } = this.options;
    const request = (async () => {
      const uploadId = await this.createUpload();
      const output = (await this.client.send(
        new UploadPartCommand({
          Bucket: params.Bucket,
          Key: params.Key,
          UploadId: uploadId,
          PartNumber: partNumber,
          Body: buffer.subarray(0, length),
          ContentLength: length,
          ...(checksums ? { ChecksumAlgorithm: 'CRC32' as const } : {}),
        }),
      )) as UploadPartCommandOutput;
      if (!output.ETag) throw new StorageError('io', `writing ${key}: the server answered part ${partNumber} without an ETag`, { key });
      this.parts.push({
        PartNumber: partNumber,
        ETag: output.ETag,
        ...(output.ChecksumCRC32 ? { ChecksumCRC32: output.ChecksumCRC32 } : {}),
        ...(output.ChecksumCRC32C ? { ChecksumCRC32C: output.ChecksumCRC32C } : {}),
        ...(output.ChecksumCRC64NVME ? { ChecksumCRC64NVME: output.ChecksumCRC64NVME } : {}),
        ...(output.ChecksumSHA1 ? { ChecksumSHA1: output.ChecksumSHA1 } : {}),
        ...(output.ChecksumSHA256 ? { ChecksumSHA256: output.ChecksumSHA256 } : {}),
      });
      this.acknowledged += length;
      if (this.failure === null) this.options.onProgress?.(this.acknowledged);
    })();
    const settled = request.then(
      () => undefined,
      (error: unknown) => this.fail(error),
    );
    const tracked = settled.finally(() => {
      this.pool.push(buffer);
      this.sending.delete(tracked);
      this.notify();
    });
    this.sending.add(tracked);
  }
}

export class S3Storage implements Storage {
  readonly location: string;
  private caps: StorageCapabilities;
  private writer: S3Client | null = null;
  private reader: S3Client | null = null;
  private probed: Promise<void> | null = null;
  private readonly bucket: string;
  private readonly root: string;
  private readonly retry: RetryPolicy;
  /** Stalls seen in this run (shared by every client and request of this storage). */
  private readonly budget: StallBudget;
  /** S3's limit on the parts of one upload (tests lower it). */
  maxParts = MAX_PARTS;

  constructor(
    private readonly config: S3Location,
    private readonly runtime: StorageRuntime,
  ) {
    this.location = config.display;
    this.bucket = config.bucket;
    this.root = config.prefix;
    this.retry = { deadlineMs: config.retryDeadlineMs, baseDelayMs: 200, maxDelayMs: 10_000 };
    this.budget = new StallBudget(config.stallTimeoutMs);
    this.caps = {
      atomicPut: true,
      conditionalCreate: config.settings.conditionalCreate === 'on',
      localFiles: false,
      rangeReads: true,
      consistentList: true,
      pagedList: true,
    };
  }

  get capabilities(): StorageCapabilities {
    return this.caps;
  }

  private retryStrategy: DeadlineRetryStrategy | undefined;

  private clientConfig(socketTimeout: number | undefined): S3ClientConfig {
    const { settings } = this.config;
    const env = this.runtime.env;
    const customEndpoint = settings.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
    const region = settings.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? (customEndpoint !== undefined ? 'us-east-1' : undefined);
    const config: S3ClientConfig = {
      forcePathStyle: settings.pathStyle ?? customEndpoint !== undefined,
      // One strategy for every client of this storage: what it learns (unreachable) holds for all.
      retryStrategy: (this.retryStrategy ??= new DeadlineRetryStrategy(this.retry, this.budget)) as unknown as S3ClientConfig['retryStrategy'],
      requestHandler: {
        connectionTimeout: Math.min(this.config.stallTimeoutMs, 30_000),
        ...(socketTimeout === undefined ? {} : { socketTimeout }),
      },
    };
    if (settings.endpoint !== undefined) config.endpoint = settings.endpoint;
    if (region !== undefined) config.region = region;
    // The run's environment, which in tests and embedders may not be process.env: static
    // keys from it come first, as in the SDK's own chain; then the profile it names.
    if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY && settings.profile === undefined) {
      config.credentials = {
        accessKeyId: env.AWS_ACCESS_KEY_ID,
        secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
        ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
      };
    }
    const profile = settings.profile ?? (env.AWS_PROFILE || undefined);
    if (profile !== undefined) config.profile = profile;
    // Non-AWS stores (GCS, older MinIO, B2) refuse the newer default checksum headers;
    // AWS_REQUEST_CHECKSUM_CALCULATION still decides when set.
    if (customEndpoint !== undefined && env.AWS_REQUEST_CHECKSUM_CALCULATION === undefined) {
      config.requestChecksumCalculation = 'WHEN_REQUIRED';
    }
    if (customEndpoint !== undefined && env.AWS_RESPONSE_CHECKSUM_VALIDATION === undefined) {
      config.responseChecksumValidation = 'WHEN_REQUIRED';
    }
    return config;
  }

  /** The clients (built once): one whose sockets time out on a stall, one for downloads (guarded per stream). */
  private async clients(): Promise<{ writer: S3Client; reader: S3Client }> {
    if (this.writer === null || this.reader === null) {
      const writer = quietClient(this.clientConfig(this.config.stallTimeoutMs));
      try {
        await writer.config.region();
      } catch (error) {
        writer.destroy();
        throw new ConfigurationError('no S3 region is configured', {
          hint: 'add region=... to the URL or the config, or set AWS_REGION',
          cause: error,
        });
      }
      // A missing bucket must not look like a missing object (HEAD answers both with a bare 404).
      try {
        await writer.send(new HeadBucketCommand({ Bucket: this.bucket }));
      } catch (error) {
        const status = statusOf(error);
        // 403: credentials without s3:ListBucket may still read and write objects; go on.
        if (status !== 403) {
          writer.destroy();
          if (status === 404 || nameOf(error) === 'NotFound' || nameOf(error) === 'NoSuchBucket') {
            throw new ConfigurationError(`bucket "${this.bucket}" does not exist`, { cause: error, hint: 'create the bucket first, or check the URL and endpoint' });
          }
          throw this.mapError(error, '', 'checking');
        }
      }
      this.writer = writer;
      this.reader = quietClient({ ...this.clientConfig(undefined), credentials: writer.config.credentials });
    }
    return { writer: this.writer, reader: this.reader as S3Client };
  }

  private objectKey(key: string): string {
    assertKey(key);
    return this.root + key;
  }

  /** Maps an SDK error to a storage error; decisions by status code and error name only. */
  private mapError(error: unknown, key: string, doing: string, stalled = false): unknown {
    if (error instanceof StorageError) return error;
    const name = nameOf(error);
    const status = statusOf(error);
    if (name === 'AbortError' && !stalled) return error;
    const what = key === '' ? `${doing} in bucket ${this.bucket}` : `${doing} ${key}`;
    const options = { key, cause: error };
    if (name === 'NoSuchBucket') {
      return new ConfigurationError(`bucket "${this.bucket}" does not exist`, { ...options, hint: 'create the bucket first, or check the URL and endpoint' });
    }
    if (name === 'NoSuchKey' || name === 'NotFound' || (status === 404 && name !== 'NoSuchUpload')) return new NotFoundError(key, { cause: error });
    if (CREDENTIAL_ERRORS.has(name) || status === 401) {
      return new CredentialsError(`${what}: the S3 credentials were refused or not found (${name || `HTTP ${status}`})`, {
        ...options,
        hint: 'set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE (or profile=) with ~/.aws/credentials, or run where instance/web identity credentials exist',
      });
    }
    if (PERMISSION_ERRORS.has(name) || status === 403) {
      return new PermissionError(`${what}: access denied (${name || 'HTTP 403'})`, {
        ...options,
        hint: 'check that the credentials may read, write, list and delete under the prefix (s3:GetObject, s3:PutObject, s3:ListBucket, s3:DeleteObject, s3:AbortMultipartUpload)',
      });
    }
    if (NO_SPACE_ERRORS.has(name) || status === 507) return new NoSpaceError(`${what}: the store is full or over quota (${name || 'HTTP 507'})`, options);
    if (name === 'PreconditionFailed' || status === 412) return new PreconditionFailedError(key, { cause: error });
    if (name === 'TimeoutError' || stalled) {
      return new StalledError(`${what}: no progress for ${Math.round(this.config.stallTimeoutMs / 1000)} s`, options);
    }
    if (sdkError(error).$fault === 'server' || (status !== undefined && status >= 500) || isNetworkError(error)) {
      return new TransientError(`${what} kept failing until the retry deadline (${describeCause(error)})`, options);
    }
    return new StorageError('io', `${what} failed (${describeCause(error)})`, options);
  }

  private async call<T>(key: string, doing: string, run: (client: S3Client, options: { abortSignal?: AbortSignal }) => Promise<T>): Promise<T> {
    const { writer } = await this.clients();
    try {
      return await this.limited(key, doing, (options) => run(writer, options));
    } catch (error) {
      throw this.mapError(error, key, doing);
    }
  }

  /**
   * One request under the stall budget: as usual when no stall was seen; after one,
   * bounded by what remains of the budget (a StalledError when it ran out, or when it was
   * spent before: then nothing is sent). `signal` is the caller's own, kept.
   */
  private async limited<T>(key: string, doing: string, send: (options: { abortSignal?: AbortSignal }) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const what = key === '' ? `${doing} in bucket ${this.bucket}` : `${doing} ${key}`;
    const limit = this.budget.begin(what, key);
    const abortSignal = limit === null ? signal : boundedSignal(limit, signal);
    try {
      return await send(abortSignal ? { abortSignal } : {});
    } catch (error) {
      // An error status is an answer: the server is there (the SDK records only successes).
      const status = statusOf(error);
      if (status !== undefined && status < 500) this.budget.noteSuccess();
      if (limit !== null && abortSignal?.aborted && !signal?.aborted) {
        throw new StalledError(`${what}: no answer within the ${Math.round((limit as number) / 100) / 10} s left after the storage stalled`, { key, cause: error });
      }
      throw error;
    }
  }

  async open(): Promise<StorageCapabilities> {
    await this.clients();
    await this.probeConditionalCreate();
    return this.caps;
  }

  async close(): Promise<void> {
    this.writer?.destroy();
    this.reader?.destroy();
    this.writer = null;
    this.reader = null;
  }

  /**
   * `conditional-create=auto`: writes a probe object, then a conditional write over it;
   * only a 412 proves the server enforces If-None-Match. Any other outcome (an overwrite,
   * an unsupported header, no permission to write) leaves the capability false.
   */
  private probeConditionalCreate(): Promise<void> {
    if (this.config.settings.conditionalCreate !== 'auto' && this.config.settings.conditionalCreate !== undefined) return Promise.resolve();
    this.probed ??= (async () => {
      const { writer } = await this.clients();
      const probe = `${this.root}.backupctl-probe-${randomBytes(6).toString('hex')}`;
      try {
        await writer.send(new PutObjectCommand({ Bucket: this.bucket, Key: probe, Body: Buffer.from('probe 1\n') }));
      } catch {
        return; // cannot write (read-only credentials): no conditional create, which needs writing anyway
      }
      try {
        await writer.send(new PutObjectCommand({ Bucket: this.bucket, Key: probe, Body: Buffer.from('probe 2\n'), IfNoneMatch: '*' }));
        // Handled safely (locks use write-then-check), so a note for --verbose, not a warning on every run.
        this.runtime.debug(
          `${this.location}: the server ignores If-None-Match (a conditional write replaced an existing object); locks use write-then-check`,
        );
      } catch (error) {
        if (statusOf(error) === 412 || nameOf(error) === 'PreconditionFailed') this.caps = { ...this.caps, conditionalCreate: true };
      } finally {
        await writer.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: probe })).catch(() => undefined);
      }
    })();
    return this.probed;
  }

  async put(key: string, source: Readable, options: PutOptions = {}): Promise<{ bytes: number }> {
    const objectKey = this.objectKey(key);
    const { signal } = options;
    if (signal?.aborted) throw abortError(signal);
    const { writer } = await this.clients();
    const { settings } = this.config;
    const partSize = pieceSizeFor(settings.partSizeBytes ?? DEFAULT_PART_SIZE, options.expectedBytes, PART_HEADROOM, MAX_PART_SIZE);
    const started = new Date();
    const controller = new AbortController();
    const tracking = new TrackingClient(writer, controller.signal, () => void this.budget.begin(`writing ${key}`, key));
    // Left in place after the put: a source that fails later never throws an uncaught 'error'.
    let sourceError: unknown = null;
    source.on('error', (error) => {
      sourceError ??= error;
    });
    const calculation = writer.config.requestChecksumCalculation as unknown;
    const checksums = (typeof calculation === 'function' ? await (calculation as () => Promise<string>)() : calculation) === 'WHEN_SUPPORTED';
    const parts = new PartWriter(
      tracking,
      {
        key,
        params: {
          Bucket: this.bucket,
          Key: objectKey,
          ContentType: 'application/octet-stream',
          ...(settings.storageClass ? { StorageClass: settings.storageClass as StorageClass } : {}),
          ...(settings.sse ? { ServerSideEncryption: settings.sse as ServerSideEncryption } : {}),
          ...(settings.sseKmsKeyId ? { SSEKMSKeyId: settings.sseKmsKeyId } : {}),
        },
        partSize,
        queueSize: settings.queueSize ?? DEFAULT_QUEUE_SIZE,
        maxParts: this.maxParts,
        checksums,
        onProgress: options.onProgress,
      },
      (reason) => controller.abort(reason),
    );
    const onAbort = () => parts.fail(abortError(signal as AbortSignal));
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (signal?.aborted) throw abortError(signal);
      // Complete and visible now: PutObject / CompleteMultipartUpload succeeded (every
      // part's content checked by the store's checksums).
      const bytes = await parts.run(source);
      options.onProgress?.(bytes);
      return { bytes };
    } catch (error) {
      controller.abort(error);
      await Promise.allSettled([...tracking.inFlight]);
      await this.cleanUpUploads(objectKey, key, tracking.uploadIds, started);
      if (signal?.aborted) throw abortError(signal);
      if (sourceError !== null) throw sourceError;
      if (parts.sourceFailure !== null) throw parts.sourceFailure;
      if (error instanceof StorageError) throw error;
      throw this.mapError(error, key, 'writing');
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * After a failed put: aborts our multipart uploads (and any other upload of this exact
   * key begun since the put started: one whose CreateMultipartUpload answer was lost),
   * then lists the key's uploads to check none is left. What cannot be done or checked
   * on this server is a warning.
   */
  private async cleanUpUploads(objectKey: string, key: string, uploadIds: ReadonlySet<string>, started: Date): Promise<void> {
    const { writer } = await this.clients();
    const deadline = boundedSignal(Math.max(5_000, Math.min(this.retry.deadlineMs, 60_000)));
    const abortOne = async (uploadId: string): Promise<boolean> => {
      try {
        await this.limited(key, 'aborting the upload of', (options) => writer.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId }), options), deadline);
        return true;
      } catch (error) {
        if (nameOf(error) === 'NoSuchUpload' || statusOf(error) === 404) return true;
        this.runtime.warn(
          `${this.location}: could not abort the incomplete upload of ${key} (${describeCause(error)}); ` +
            'its parts are invisible but use space until it is aborted (prune retries where the server supports listing uploads)',
        );
        return false;
      }
    };
    let warned = false;
    for (const id of uploadIds) if (!(await abortOne(id))) warned = true;
    let listed: ListMultipartUploadsCommandOutput;
    try {
      listed = await this.limited(key, 'listing the uploads of', (options) => writer.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: objectKey }), options), deadline);
    } catch (error) {
      // One warning per failed clean-up: when an abort failed already, the operator knows
      // the upload may be left (a second line for the same cause, a dead server, is noise).
      if (uploadIds.size > 0 && !warned) {
        this.runtime.warn(`${this.location}: cannot check that the upload of ${key} was aborted: the server cannot list multipart uploads (${describeCause(error)})`);
      }
      return;
    }
    const margin = 60_000; // clock skew between this host and the store
    for (const upload of listed.Uploads ?? []) {
      if (upload.Key !== objectKey || !upload.UploadId) continue;
      const ours = uploadIds.has(upload.UploadId) || (upload.Initiated !== undefined && upload.Initiated.getTime() >= started.getTime() - margin);
      if (ours) await abortOne(upload.UploadId);
    }
  }

  async putBytes(key: string, data: Buffer): Promise<void> {
    const objectKey = this.objectKey(key);
    const { settings } = this.config;
    await this.call(key, 'writing', (client, options) =>
      client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: objectKey,
          Body: data,
          ContentLength: data.length,
          ContentType: 'application/octet-stream',
          ...(settings.storageClass ? { StorageClass: settings.storageClass as never } : {}),
          ...(settings.sse ? { ServerSideEncryption: settings.sse } : {}),
          ...(settings.sseKmsKeyId ? { SSEKMSKeyId: settings.sseKmsKeyId } : {}),
        }),
        options,
      ),
    );
  }

  async putIfAbsent(key: string, data: Buffer): Promise<boolean> {
    const objectKey = this.objectKey(key);
    await this.probeConditionalCreate();
    if (!this.caps.conditionalCreate) {
      throw new UnsupportedError(`${this.location} does not enforce conditional writes (If-None-Match)`, {
        key,
        hint: 'use a store that does (AWS S3, MinIO, R2), or set conditional-create=on if you know this one does',
      });
    }
    const { writer } = await this.clients();
    const started = performance.now();
    for (let attempt = 1; ; attempt++) {
      try {
        await this.limited(key, 'writing', (options) =>
          writer.send(new PutObjectCommand({ Bucket: this.bucket, Key: objectKey, Body: data, ContentLength: data.length, IfNoneMatch: '*' }), options),
        );
        return true;
      } catch (error) {
        const status = statusOf(error);
        if (status === 412 || nameOf(error) === 'PreconditionFailed') {
          // The SDK retried our request after an answer was lost: the object may be our
          // own first attempt's. Only then is the existing content compared with ours.
          const attempts = (error as { $metadata?: { attempts?: number } }).$metadata?.attempts ?? 1;
          if (attempts === 1) return false;
          const existing = await this.getBytes(key, data.length).catch(() => null);
          return existing !== null && existing.equals(data);
        }
        // 409 ConditionalRequestConflict: another conditional write of this key is in progress.
        if ((status === 409 || nameOf(error) === 'ConditionalRequestConflict') && performance.now() - started < this.retry.deadlineMs) {
          await sleep(backoffDelay(attempt, this.retry));
          continue;
        }
        throw this.mapError(error, key, 'writing');
      }
    }
  }

  /**
   * The object's bytes, streamed. A connection dropped in the middle is picked up where it
   * broke (resumableDownload): the rest is asked for with a Range from there and If-Match
   * the entity tag of the first answer, so that a resumed read never splices two versions
   * of a key (one replaced meanwhile fails the read).
   */
  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    return pinnedDownload(key, options, this.retry, (part, partSignal, ifMatch) => this.getOnce(key, part, partSignal, ifMatch));
  }

  /** One GetObject (of `range`, if given, and only of the version `ifMatch` names), guarded. */
  private async getOnce(key: string, range: GetOptions['range'], signal: AbortSignal | undefined, ifMatch?: string): Promise<{ body: Readable; etag: string | undefined }> {
    const objectKey = this.objectKey(key);
    const { reader } = await this.clients();
    // Until the answer starts, a stall is a timeout of our own; then guardReadable watches.
    // After a stall, no longer than the stall budget allows (and not at all once it is spent).
    const abortSignal = answerSignal(this.budget, `reading ${key}`, key, signal);
    let body: Readable;
    let etag: string | undefined;
    try {
      const output = await reader.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: objectKey,
          ...(range ? { Range: `bytes=${range.offset}-${range.length === undefined ? '' : range.offset + range.length - 1}` } : {}),
          ...(ifMatch === undefined ? {} : { IfMatch: ifMatch }),
        }),
        { abortSignal },
      );
      body = output.Body as Readable;
      etag = output.ETag;
      if (range) {
        // Some servers (s3rver with bytes=0-0) answer with more than asked: cut it here.
        const served = /^bytes (\d+)-\d+\/\d+$/.exec(output.ContentRange ?? '');
        const start = served ? Number(served[1]) : 0;
        const skip = range.offset - start;
        if (skip < 0) throw new StorageError('io', `reading ${key}: the server sent a range starting at ${start}, not ${range.offset}`, { key });
        const expected = range.length ?? Infinity;
        const length = output.ContentLength ?? Infinity;
        if (skip > 0 || length > expected) body = slice(body, skip, expected);
      }
    } catch (error) {
      if (signal?.aborted) throw abortError(signal);
      if (statusOf(error) === 416 || nameOf(error) === 'InvalidRange') return { body: Readable.from([]), etag: undefined };
      if (error instanceof StorageError) throw error;
      throw this.mapError(error, key, 'reading', abortSignal.aborted); // not the caller's (above): the timeout
    }
    const guarded = guardReadable(body, {
      key,
      signal,
      stallTimeoutMs: this.config.stallTimeoutMs,
      mapError: (error) => this.mapError(error, key, 'reading'),
    });
    return { body: guarded, etag };
  }

  async getBytes(key: string, maxBytes: number): Promise<Buffer> {
    const info = await this.stat(key);
    if (info.size > maxBytes) throw new TooLargeError(key, info.size, maxBytes);
    const stream = await this.get(key);
    return readAll(stream, maxBytes, () => new TooLargeError(key, maxBytes + 1, maxBytes));
  }

  async stat(key: string): Promise<ObjectInfo> {
    const objectKey = this.objectKey(key);
    const head = await this.call(key, 'reading', (client, options) => client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }), options));
    return { key, size: head.ContentLength ?? 0, modifiedAt: head.LastModified ?? new Date(0), etag: head.ETag };
  }

  /**
   * Every page of a ListObjectsV2 under `prefix` (whole segments): `extra` adds StartAfter
   * or Delimiter. Yields the page and the listed prefix (this.root + prefix + '/').
   */
  private async *listPages(wanted: string, extra: { StartAfter?: string; Delimiter?: string }): AsyncGenerator<{ page: ListObjectsV2CommandOutput; listPrefix: string }> {
    const listPrefix = this.root + (wanted === '' ? '' : `${wanted}/`);
    let token: string | undefined;
    do {
      const page = await this.call(wanted, 'listing', (client, options) =>
        client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: listPrefix, ContinuationToken: token, MaxKeys: 1000, ...extra }), options),
      );
      yield { page, listPrefix };
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ObjectInfo[]> {
    const found: ObjectInfo[] = [];
    // StartAfter is ignored with a continuation token; filtered below too (a compatible store may ignore it).
    const extra = options.startAfter !== undefined ? { StartAfter: this.root + options.startAfter } : {};
    for await (const { page } of this.listPages(normalizePrefix(prefix), extra)) {
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined || !object.Key.startsWith(this.root)) continue;
        const key = object.Key.slice(this.root.length);
        if (!isValidKey(key)) continue; // probes and anything not ours
        found.push({ key, size: object.Size ?? 0, modifiedAt: object.LastModified ?? new Date(0), etag: object.ETag });
      }
    }
    return keysAfter(sortByKey(found), options.startAfter);
  }

  async children(prefix: string): Promise<string[]> {
    const wanted = normalizePrefix(prefix);
    const names = new Set<string>();
    for await (const { page, listPrefix } of this.listPages(wanted, { Delimiter: '/' })) {
      for (const common of page.CommonPrefixes ?? []) {
        const name = common.Prefix?.startsWith(listPrefix) ? common.Prefix.slice(listPrefix.length, -1) : '';
        if (isValidKey(wanted === '' ? name : `${wanted}/${name}`) && !name.includes('/')) names.add(name);
      }
    }
    return [...names].sort();
  }

  async remove(key: string): Promise<void> {
    const objectKey = this.objectKey(key);
    try {
      await this.call(key, 'removing', (client, options) => client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey }), options));
    } catch (error) {
      if (error instanceof NotFoundError) return;
      throw error;
    }
  }

  async checkWritable(prefix: string): Promise<void> {
    const wanted = normalizePrefix(prefix);
    const probe = `${this.root}${wanted === '' ? '' : `${wanted}/`}.backupctl-write-probe-${randomBytes(6).toString('hex')}`;
    await this.call(wanted, 'writing a probe', (client, options) => client.send(new PutObjectCommand({ Bucket: this.bucket, Key: probe, Body: Buffer.alloc(0) }), options));
    await this.call(wanted, 'removing a probe', (client, options) => client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: probe }), options));
  }

  /** Aborts incomplete multipart uploads directly under `prefix` begun before `olderThan` (with dryRun: counts them). */
  async removeStaleTemporaries(prefix: string, olderThan: Date, options: StaleTemporariesOptions = {}): Promise<{ files: number; bytes: number }> {
    const wanted = normalizePrefix(prefix);
    const dir = this.root + (wanted === '' ? '' : `${wanted}/`);
    const { writer } = await this.clients();
    let files = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      let page: ListMultipartUploadsCommandOutput;
      try {
        page = await writer.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: dir, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
      } catch (error) {
        if (isNotImplemented(error)) return { files, bytes: 0 }; // s3rver: cannot list, nothing we can do
        throw this.mapError(error, wanted, 'listing incomplete uploads in');
      }
      for (const upload of page.Uploads ?? []) {
        if (!upload.Key || !upload.UploadId || upload.Key.slice(dir.length).includes('/')) continue;
        if (upload.Initiated === undefined || upload.Initiated >= olderThan) continue;
        if (options.dryRun === true) {
          files += 1;
          continue;
        }
        try {
          await writer.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.Key, UploadId: upload.UploadId }));
          files += 1;
        } catch (error) {
          if (nameOf(error) !== 'NoSuchUpload') throw this.mapError(error, wanted, 'aborting an incomplete upload in');
        }
      }
      if (!page.IsTruncated) return { files, bytes: 0 };
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  /** Test support: the multipart uploads left under a key (throws where the server cannot list them). */
  async incompleteUploads(key: string): Promise<string[]> {
    const { writer } = await this.clients();
    const listed = await writer.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.objectKey(key) }));
    return (listed.Uploads ?? []).filter((upload) => upload.Key === this.objectKey(key)).map((upload) => upload.UploadId ?? '');
  }
}

/** Bytes `skip` .. `skip + limit - 1` of a stream (the rest is discarded). */
function slice(source: Readable, skip: number, limit: number): Readable {
  let toSkip = skip;
  let left = limit;
  const cut = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      let data = chunk;
      if (toSkip > 0) {
        const dropped = Math.min(toSkip, data.length);
        toSkip -= dropped;
        data = data.subarray(dropped);
      }
      if (left <= 0 || data.length === 0) {
        callback();
        return;
      }
      const kept = data.subarray(0, Math.min(left, data.length));
      left -= kept.length;
      callback(null, kept);
    },
  });
  source.on('error', (error) => cut.destroy(error));
  cut.on('close', () => source.destroy());
  return source.pipe(cut);
}
