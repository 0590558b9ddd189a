/**
 * Azure Blob Storage (`azblob://container/prefix`), block blobs through
 * @azure/storage-blob. The only module that imports @azure: the registry loads it on
 * first use.
 *
 * - put: blocks of blockSize are staged (stageBlock), `concurrency` at a time, then the
 *   block list is committed: the blob does not exist (or keeps its previous content)
 *   until the commit, so a put is invisible until complete. Memory is bounded by about
 *   (concurrency + 1) x blockSize. This is uploadStream's scheme written out, because
 *   uploadStream neither passes an abort signal to its block uploads nor reports
 *   progress within a block: a stalled block could not be stopped. Here each block
 *   attempt is watched (upload progress events) and aborted after stallTimeoutMs with no
 *   byte moving, then retried within the retry deadline. Blocks of a put that fails are
 *   never committed: invisible, and discarded by the service (after a week, or at the
 *   next commit of that blob).
 * - putIfAbsent: a single upload with If-None-Match: * (409/412 when the blob exists); a
 *   random token in the blob's metadata tells our own earlier attempt (a retry after a
 *   lost answer) from another writer's blob.
 * - Retries: every request that does not stream (properties, listings, removals, small
 *   uploads, the commit) is tried by `attempts` here, not by the SDK: each attempt has a
 *   client-side timeout of stallTimeoutMs without an answer (the SDK's tryTimeoutInMs is
 *   only the server's `timeout=` parameter: a hung server never ends such a request), and
 *   timeouts, 5xx, resets and throttling are tried again with backoff until
 *   retryDeadlineMs; 4xx fail at once. Blocks and downloads keep the SDK's exponential
 *   retry policy, with their own stall watch.
 * - After a stall, the storage's StallBudget (resilience.ts) holds every later request
 *   to one attempt within a short shared budget until one succeeds: the clean-up after a
 *   stall (uncommitted blocks, removing files, the lock, the run log) is not one more
 *   timeout each against a hung server.
 * - Credentials, in this order: a SAS token in the URL; connection-string-file /
 *   connection-string-env; sas-token-file / sas-token-env; account-key-file /
 *   account-key-env; then the environment as Azure's own tools read it:
 *   AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_KEY or
 *   AZURE_STORAGE_SAS_TOKEN. Never printed.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { PassThrough, Readable } from 'node:stream';
import {
  AnonymousCredential,
  BlobServiceClient,
  StorageSharedKeyCredential,
  type BlockBlobClient,
  type ContainerClient,
  type StoragePipelineOptions,
} from '@azure/storage-blob';
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
} from './errors.js';
import type { StorageRuntime } from './registry.js';
import { answerSignal, backoffDelay, boundedSignal, describeCause, guardReadable, isNetworkError, pinnedDownload, readAll, sleep, StallBudget, StallWatch, type RetryPolicy } from './resilience.js';
import { pieceSizeFor, type AzureLocation } from './settings.js';
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
} from './storage.js';

const MIB = 1024 * 1024;
const DEFAULT_BLOCK_SIZE = 8 * MIB;
const DEFAULT_CONCURRENCY = 4;
const MAX_BLOCKS = 50_000;
/** Blocks an expected size is planned for: a tenth of MAX_BLOCKS left for a larger object. */
const BLOCK_HEADROOM = 45_000;
/** The largest block a Put Block takes (service version 2019-12-12 and later). */
const MAX_BLOCK_SIZE = 4000 * MIB;
const TOKEN_METADATA = 'backupctltoken';

interface RestErrorLike {
  name?: string;
  code?: string;
  statusCode?: number;
  details?: { errorCode?: string };
}

function restError(error: unknown): RestErrorLike {
  return typeof error === 'object' && error !== null ? (error as RestErrorLike) : {};
}

/** The service's error code (x-ms-error-code), else the SDK's own code (REQUEST_SEND_ERROR). */
function codeOf(error: unknown): string {
  const e = restError(error);
  return e.details?.errorCode ?? e.code ?? '';
}

const PERMISSION_CODES = new Set([
  'AuthorizationPermissionMismatch',
  'AuthorizationFailure',
  'AuthorizationResourceTypeMismatch',
  'AuthorizationServiceMismatch',
  'AuthorizationProtocolMismatch',
  'AuthorizationSourceIPMismatch',
  'InsufficientAccountPermissions',
  'AccountIsDisabled',
  'BlobImmutableDueToPolicy',
]);
const CREDENTIAL_CODES = new Set(['AuthenticationFailed', 'InvalidAuthenticationInfo', 'NoAuthenticationInformation']);

/** Azurite's well-known development account (`UseDevelopmentStorage=true`), public by design. */
const DEVELOPMENT_STORAGE = {
  AccountName: 'devstoreaccount1',
  AccountKey: 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==',
  BlobEndpoint: 'http://127.0.0.1:10000/devstoreaccount1',
};

/** `Key=value;...` of an Azure connection string (values may contain '='). */
export function parseConnectionString(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const part of text.split(';')) {
    const at = part.indexOf('=');
    if (at <= 0) continue;
    fields[part.slice(0, at).trim()] = part.slice(at + 1).trim();
  }
  if (fields.UseDevelopmentStorage?.toLowerCase() === 'true') return { ...DEVELOPMENT_STORAGE, ...fields };
  return fields;
}

/** Credentials for the service, resolved from files and the environment (never from argv). */
interface Resolved {
  service: (options: StoragePipelineOptions) => BlobServiceClient;
}

export class AzureBlobStorage implements Storage {
  readonly location: string;
  readonly capabilities: StorageCapabilities = {
    atomicPut: true,
    conditionalCreate: true,
    localFiles: false,
    rangeReads: true,
    consistentList: true,
    pagedList: true,
  };
  private containers: { ops: ContainerClient; bulk: ContainerClient } | null = null;
  private connecting: Promise<{ ops: ContainerClient; bulk: ContainerClient }> | null = null;
  private readonly retry: RetryPolicy;
  /** Stalls seen in this run (shared by every request of this storage). */
  private readonly budget: StallBudget;
  /**
   * A request of this storage kept failing until the retry deadline (connections
   * refused or reset, 5xx): the store is unreachable. Until a request succeeds, requests
   * get one attempt each, so that what follows a failed write (discarding its blocks,
   * removing the backup's other files, releasing the lock, the run log) fails in seconds,
   * not one more deadline each (a create whose Azurite was killed took four deadlines to
   * fail: 11.6 min with the default 2 min). As on S3.
   */
  private unreachable = false;

  constructor(
    private readonly config: AzureLocation,
    private readonly runtime: StorageRuntime,
  ) {
    this.location = config.display;
    this.retry = { deadlineMs: config.retryDeadlineMs, baseDelayMs: 200, maxDelayMs: 10_000 };
    this.budget = new StallBudget(config.stallTimeoutMs);
  }

  /** The SDK's retry options: tries enough to fill the retry deadline with exponential backoff. */
  private retryOptions(tryTimeoutInMs: number): StoragePipelineOptions['retryOptions'] {
    let tries = 1;
    let total = 0;
    while (tries < 30) {
      const delay = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * (2 ** tries - 1));
      if (total + delay > this.retry.deadlineMs) break;
      total += delay;
      tries += 1;
    }
    return { maxTries: tries, retryDelayInMs: this.retry.baseDelayMs, maxRetryDelayInMs: this.retry.maxDelayMs, tryTimeoutInMs };
  }

  private async resolveCredentials(): Promise<Resolved> {
    const { settings } = this.config;
    const env = this.runtime.env;
    const fromFile = async (file: string, what: string) => {
      try {
        return (await readFile(file.replace(/^~\//, `${this.runtime.homeDir}/`), 'utf8')).trim();
      } catch (error) {
        throw new ConfigurationError(`cannot read the ${what} file ${file}`, { cause: error });
      }
    };
    const fromEnv = (name: string, what: string) => {
      const value = env[name];
      if (value === undefined || value === '') throw new ConfigurationError(`the environment variable ${name} (${what}) is not set`);
      return value.trim();
    };
    const endpointFor = (account: string | undefined) => {
      const endpoint = settings.endpoint ?? (account ? `https://${account}.blob.core.windows.net` : undefined);
      if (!endpoint) {
        throw new ConfigurationError('the Azure storage account is not known', { hint: 'add account=NAME (or endpoint=URL) to the URL, or set AZURE_STORAGE_ACCOUNT' });
      }
      return endpoint.replace(/\/+$/, '');
    };
    const withSas = (sas: string) => ({
      service: (options: StoragePipelineOptions) =>
        new BlobServiceClient(`${endpointFor(settings.account ?? env.AZURE_STORAGE_ACCOUNT)}?${sas.replace(/^\?/, '')}`, new AnonymousCredential(), options),
    });
    const withConnectionString = (connectionString: string) => {
      const parsed = parseConnectionString(connectionString);
      const account = parsed.AccountName;
      const endpoint =
        settings.endpoint ??
        parsed.BlobEndpoint ??
        (account ? `${parsed.DefaultEndpointsProtocol ?? 'https'}://${account}.blob.${parsed.EndpointSuffix ?? 'core.windows.net'}` : undefined);
      if (!endpoint) throw new ConfigurationError('the Azure connection string names no account or blob endpoint (it is not printed here)');
      const base = endpoint.replace(/\/+$/, '');
      if (parsed.SharedAccessSignature) {
        const sas = parsed.SharedAccessSignature.replace(/^\?/, '');
        return { service: (options: StoragePipelineOptions) => new BlobServiceClient(`${base}?${sas}`, new AnonymousCredential(), options) };
      }
      if (!account || !parsed.AccountKey) {
        throw new ConfigurationError('the Azure connection string has neither AccountName/AccountKey nor SharedAccessSignature (it is not printed here)');
      }
      const credential = new StorageSharedKeyCredential(account, parsed.AccountKey);
      return { service: (options: StoragePipelineOptions) => new BlobServiceClient(base, credential, options) };
    };
    const withKey = (key: string) => {
      const account = settings.account ?? env.AZURE_STORAGE_ACCOUNT;
      if (!account) throw new ConfigurationError('an account key needs the account name', { hint: 'add account=NAME to the URL, or set AZURE_STORAGE_ACCOUNT' });
      return {
        service: (options: StoragePipelineOptions) => new BlobServiceClient(endpointFor(account), new StorageSharedKeyCredential(account, key), options),
      };
    };
    if (this.config.urlSasToken) return withSas(this.config.urlSasToken);
    if (settings.connectionStringFile) return withConnectionString(await fromFile(settings.connectionStringFile, 'connection string'));
    if (settings.connectionStringEnv) return withConnectionString(fromEnv(settings.connectionStringEnv, 'connection string'));
    if (settings.sasTokenFile) return withSas(await fromFile(settings.sasTokenFile, 'SAS token'));
    if (settings.sasTokenEnv) return withSas(fromEnv(settings.sasTokenEnv, 'SAS token'));
    if (settings.accountKeyFile) return withKey(await fromFile(settings.accountKeyFile, 'account key'));
    if (settings.accountKeyEnv) return withKey(fromEnv(settings.accountKeyEnv, 'account key'));
    if (env.AZURE_STORAGE_CONNECTION_STRING) return withConnectionString(env.AZURE_STORAGE_CONNECTION_STRING);
    if (env.AZURE_STORAGE_KEY) return withKey(env.AZURE_STORAGE_KEY);
    if (env.AZURE_STORAGE_SAS_TOKEN) return withSas(env.AZURE_STORAGE_SAS_TOKEN);
    throw new CredentialsError('no Azure storage credentials found', {
      hint: 'set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, or name a file with connection-string-file= / sas-token-file= / account-key-file=',
    });
  }

  /**
   * Two clients: `ops`, whose requests are each one attempt of `attempts` (no retries of
   * the SDK's), and `bulk` (blocks and downloads, watched for stalls, retried by the SDK).
   */
  private connect(): Promise<{ ops: ContainerClient; bulk: ContainerClient }> {
    if (this.containers) return Promise.resolve(this.containers);
    this.connecting ??= (async () => {
      const credentials = await this.resolveCredentials();
      const ops = credentials
        .service({ retryOptions: { maxTries: 1, tryTimeoutInMs: this.config.stallTimeoutMs } })
        .getContainerClient(this.config.container);
      const bulk = credentials.service({ retryOptions: this.retryOptions(24 * 3600_000) }).getContainerClient(this.config.container);
      try {
        await this.attempts('', 'checking', (abortSignal) => ops.getProperties({ abortSignal }));
      } catch (error) {
        const cause = error instanceof PermissionError ? error.cause : null;
        // 403 with a SAS limited to blobs (no container rights): go on, blob calls will tell.
        if (!(restError(cause).statusCode === 403 && PERMISSION_CODES.has(codeOf(cause)))) throw error;
      }
      this.containers = { ops, bulk };
      return this.containers;
    })().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  private blobName(key: string): string {
    assertKey(key);
    return this.config.prefix + key;
  }

  private mapError(error: unknown, key: string, doing: string, stalled = false): unknown {
    if (error instanceof StorageError) return error;
    const e = restError(error);
    if (e.name === 'AbortError' && !stalled) return error;
    const code = codeOf(error);
    const status = e.statusCode;
    const what = key === '' ? `${doing} container ${this.config.container}` : `${doing} ${key}`;
    const options = { key, cause: error };
    if (stalled) return new StalledError(`${what}: no progress for ${Math.round(this.config.stallTimeoutMs / 1000)} s`, options);
    if (code === 'ContainerNotFound') {
      return new ConfigurationError(`container "${this.config.container}" does not exist`, { ...options, hint: 'create the container first, or check the URL and account' });
    }
    if (code === 'BlobNotFound' || status === 404) return new NotFoundError(key, { cause: error });
    if (CREDENTIAL_CODES.has(code) || status === 401) {
      return new CredentialsError(`${what}: the Azure credentials were refused (${code || `HTTP ${status}`})`, {
        ...options,
        hint: 'check AZURE_STORAGE_CONNECTION_STRING / the account key / the SAS token (and its expiry)',
      });
    }
    if (PERMISSION_CODES.has(code) || status === 403) {
      return new PermissionError(`${what}: access denied (${code || 'HTTP 403'})`, {
        ...options,
        hint: 'check that the account key, connection string or SAS token is right (Azurite answers a wrong key this way) and that it may read, write, list and delete in the container',
      });
    }
    if (code === 'BlobAlreadyExists' || code === 'ConditionNotMet' || status === 412) return new PreconditionFailedError(key, { cause: error });
    if (code === 'InvalidBlockList') {
      // Another put of the same blob committed first, which discards every other uncommitted block.
      return new TransientError(`${what}: another writer committed this blob meanwhile (InvalidBlockList); nothing of this put is visible`, options);
    }
    if (status === 507 || code === 'AccountLimitExceeded' || code === 'InsufficientStorage') return new NoSpaceError(`${what}: the account is full (${code || 'HTTP 507'})`, options);
    if ((status !== undefined && status >= 500) || code === 'REQUEST_SEND_ERROR' || status === 408 || status === 429 || isNetworkError(error)) {
      return new TransientError(`${what} kept failing until the retry deadline (${code || describeCause(error)})`, options);
    }
    return new StorageError('io', `${what} failed (${code || describeCause(error)})`, options);
  }

  /** One operation of the `ops` client, tried by `attempts` (its errors mapped to storage errors). */
  private async call<T>(
    key: string,
    doing: string,
    run: (containers: { ops: ContainerClient; bulk: ContainerClient }, abortSignal: AbortSignal, progress: () => void) => Promise<T>,
  ): Promise<T> {
    const containers = await this.connect();
    return this.attempts(key, doing, (abortSignal, progress) => run(containers, abortSignal, progress));
  }

  /**
   * Runs one request that does not stream until it succeeds, fails for good, or the retry
   * deadline passes. Each attempt gets an abort signal of its own: it is aborted when no
   * answer (for a listing: no page, reported through `progress`) came for stallTimeoutMs,
   * so a hung server never holds a call for longer; an attempt after the first also ends
   * with the retry deadline. Such a timeout and transient failures (5xx, resets,
   * throttling) are tried again with backoff; other failures are mapped and thrown at
   * once. After a stall the StallBudget bounds the attempt and allows no retry past its
   * window (and no attempt at all once it is spent). The caller's `signal` aborts at once
   * with an AbortError.
   */
  private async attempts<T>(key: string, doing: string, run: (abortSignal: AbortSignal, progress: () => void) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const what = key === '' ? `${doing} container ${this.config.container}` : `${doing} ${key}`;
    const seconds = Math.round(this.config.stallTimeoutMs / 1000);
    const started = performance.now();
    for (let attempt = 1; ; attempt++) {
      if (signal?.aborted) throw abortError(signal);
      const limit = this.budget.begin(what, key);
      let stalled = false;
      const stop = new AbortController();
      const watch = new StallWatch(this.config.stallTimeoutMs, () => {
        stalled = true;
        stop.abort(new Error('stalled'));
      });
      const bound = Math.min(limit ?? Infinity, attempt > 1 ? this.retry.deadlineMs - (performance.now() - started) : Infinity);
      const abortSignal = bound === Infinity && !signal ? stop.signal : boundedSignal(bound, stop.signal, signal);
      let mapped: unknown;
      watch.busy();
      try {
        const result = await run(abortSignal, () => watch.progress());
        this.answered();
        return result;
      } catch (error) {
        if (signal?.aborted) throw abortError(signal);
        if (stalled) this.budget.noteStall();
        mapped = abortSignal.aborted
          ? new StalledError(`${what}: no answer for ${stalled ? `${seconds} s` : 'the time left'}`, { key, cause: error })
          : this.mapError(error, key, doing);
      } finally {
        watch.stop();
      }
      if (!(mapped instanceof TransientError || mapped instanceof StalledError)) {
        if (restError((mapped as { cause?: unknown }).cause).statusCode !== undefined) this.answered(); // the server answered
        throw mapped;
      }
      const delay = backoffDelay(attempt, this.retry);
      if (this.unreachable || !this.budget.mayRetry(delay)) throw mapped;
      if (performance.now() - started + delay > this.retry.deadlineMs) {
        if (mapped instanceof TransientError) this.unreachable = true;
        throw mapped;
      }
      await sleep(delay, signal);
    }
  }

  /** The server answered a request: stalls and unreachability are over, requests are retried as usual again. */
  private answered(): void {
    this.unreachable = false;
    this.budget.noteSuccess();
  }

  async open(): Promise<StorageCapabilities> {
    await this.connect();
    return this.capabilities;
  }

  async close(): Promise<void> {
    this.containers = null; // the SDK holds no connection that would keep the process alive
  }

  async put(key: string, source: Readable, options: PutOptions = {}): Promise<{ bytes: number }> {
    const name = this.blobName(key);
    const { signal } = options;
    if (signal?.aborted) throw abortError(signal);
    const { ops, bulk } = await this.connect();
    const blob = bulk.getBlockBlobClient(name);
    const blockSize = pieceSizeFor(this.config.settings.blockSizeBytes ?? DEFAULT_BLOCK_SIZE, options.expectedBytes, BLOCK_HEADROOM, MAX_BLOCK_SIZE);
    const concurrency = this.config.settings.concurrency ?? DEFAULT_CONCURRENCY;
    const idPrefix = randomBytes(8).toString('hex');
    const ids: string[] = [];
    const inFlight = new Set<Promise<void>>();
    const controller = new AbortController(); // stops every block of this put
    // Read through a pass-through of our own: stopping it never destroys the caller's stream.
    const feed = new PassThrough();
    // Its errors are seen by whoever reads it (an errored stream throws into for-await),
    // also when it fails before reading starts: never an uncaught 'error' event.
    feed.on('error', () => undefined);
    let sourceError: unknown = null;
    source.on('error', (error) => {
      sourceError = error;
      feed.destroy(error);
    });
    source.pipe(feed);
    // Stopping ends the reading and staging of new blocks. Blocks in flight get a short
    // grace to finish before they are aborted: a block the server receives after our
    // clean-up deleted the blob would linger, uncommitted, until the service drops it.
    let stopped: unknown = null;
    const stop = (reason: unknown) => {
      stopped ??= reason;
      source.unpipe(feed);
      feed.destroy();
    };
    const onAbort = () => {
      stop(abortError(signal as AbortSignal));
      // Nothing may become visible after an abort: a commit (or single upload) in flight is aborted at once.
      if (committing) controller.abort(abortError(signal as AbortSignal));
    };
    let committing = false;
    signal?.addEventListener('abort', onAbort, { once: true });
    let failure: unknown = null;
    let acknowledged = 0;

    const stage = (index: number, data: Buffer) => {
      const id = Buffer.from(`${idPrefix}-${String(index).padStart(6, '0')}`).toString('base64');
      ids[index] = id;
      const task = this.stageBlock(blob, id, data, controller.signal, (bytes) => {
        acknowledged += bytes;
        options.onProgress?.(acknowledged);
      }).catch((error: unknown) => {
        failure ??= error;
        stop(error);
      });
      inFlight.add(task);
      void task.finally(() => inFlight.delete(task));
    };

    try {
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      let index = 0;
      let total = 0;
      const flush = async (size: number) => {
        const whole = Buffer.concat(pending, pendingBytes);
        const block = whole.subarray(0, size);
        const rest = whole.subarray(size);
        pending = rest.length > 0 ? [Buffer.from(rest)] : [];
        pendingBytes = rest.length;
        if (index >= MAX_BLOCKS) throw new TooLargeError(key, total, blockSize * MAX_BLOCKS);
        while (inFlight.size >= concurrency) await Promise.race(inFlight);
        if (failure !== null) throw failure;
        stage(index++, block);
      };
      for await (const chunk of feed) {
        if (stopped !== null) break;
        const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
        pending.push(buffer);
        pendingBytes += buffer.length;
        total += buffer.length;
        while (pendingBytes >= blockSize) await flush(blockSize);
      }
      if (stopped !== null) throw failure ?? stopped;
      if (index === 0) {
        // It fits in one block: one Put Blob, atomic, and no block list to race over.
        const data = Buffer.concat(pending, pendingBytes);
        committing = true;
        await this.attempts(
          key,
          'writing',
          (abortSignal) =>
            ops.getBlockBlobClient(name).upload(data, data.length, {
              blobHTTPHeaders: { blobContentType: 'application/octet-stream' },
              ...(this.config.settings.accessTier ? { tier: this.config.settings.accessTier } : {}),
              abortSignal,
            }),
          controller.signal,
        );
        options.onProgress?.(total);
        return { bytes: total };
      }
      if (pendingBytes > 0) await flush(pendingBytes);
      await Promise.all(inFlight);
      if (signal?.aborted) throw abortError(signal);
      if (failure !== null) throw failure;
      committing = true;
      // Committing the same list again (after an answer was lost) is harmless.
      await this.attempts(
        key,
        'writing',
        (abortSignal) =>
          ops.getBlockBlobClient(name).commitBlockList(ids, {
            blobHTTPHeaders: { blobContentType: 'application/octet-stream' },
            ...(this.config.settings.accessTier ? { tier: this.config.settings.accessTier } : {}),
            abortSignal,
          }),
        controller.signal,
      );
      options.onProgress?.(total);
      return { bytes: total };
    } catch (error) {
      stop(error);
      const mapped = this.mapError(failure ?? error, key, 'writing');
      // A block's retries (the SDK's, sized to the retry deadline) or the commit's kept failing: unreachable.
      if (mapped instanceof TransientError && !signal?.aborted && sourceError === null) this.unreachable = true;
      // After a stall, no longer than the stall budget's window has left.
      const grace = sleep(Math.min(this.config.stallTimeoutMs, 5_000, this.budget.remainingMs() ?? Infinity)).then(() => 'grace over');
      await Promise.race([Promise.allSettled([...inFlight]), grace]);
      controller.abort(stopped);
      await Promise.allSettled([...inFlight]);
      await this.discardUncommitted(ops, name);
      if (signal?.aborted) throw abortError(signal);
      if (sourceError !== null) throw sourceError;
      throw mapped;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * After a failed put: when the blob has no committed version (the put was creating
   * it), its uncommitted blocks are deleted now rather than left for the service's
   * weekly clean-up. A committed blob (the put was replacing it) is never touched: its
   * old content stays, and the service discards the stray blocks. Best effort: a store
   * that cannot delete uncommitted blocks (404) keeps them until then, invisible.
   */
  private async discardUncommitted(container: ContainerClient, name: string): Promise<void> {
    const key = name.slice(this.config.prefix.length);
    try {
      // A listing shows committed blobs only (a property read answers for uncommitted ones on azurite).
      const committed = await this.attempts(key, 'checking', async (abortSignal) => {
        for await (const item of container.listBlobsFlat({ prefix: name, abortSignal })) {
          if (item.name === name) return true;
        }
        return false;
      });
      if (committed) return; // leave it alone
      await this.attempts(key, 'discarding the blocks of', (abortSignal) => container.getBlobClient(name).deleteIfExists({ abortSignal }));
    } catch {
      // best effort: the service discards uncommitted blocks anyway
    }
  }

  /**
   * One block, with stall detection: an attempt whose upload makes no progress for
   * stallTimeoutMs is aborted and retried (backoff) until the retry deadline.
   */
  private async stageBlock(blob: BlockBlobClient, id: string, data: Buffer, stop: AbortSignal, acknowledge: (bytes: number) => void): Promise<void> {
    const started = performance.now();
    for (let attempt = 1; ; attempt++) {
      this.budget.begin('writing a block'); // not tried at all once the stall budget is spent
      const attemptController = new AbortController();
      const onStop = () => attemptController.abort(stop.reason);
      stop.addEventListener('abort', onStop, { once: true });
      const watch = new StallWatch(this.config.stallTimeoutMs, () => attemptController.abort(new Error('stalled')));
      watch.busy();
      let sent = 0;
      try {
        await blob.stageBlock(id, data, data.length, {
          abortSignal: attemptController.signal,
          onProgress: (progress) => {
            if (progress.loadedBytes > sent) {
              sent = progress.loadedBytes;
              watch.progress();
            }
          },
        });
        this.answered();
        acknowledge(data.length);
        return;
      } catch (error) {
        if (stop.aborted) throw stop.reason;
        if (!watch.stalled) throw error;
        this.budget.noteStall();
        const delay = backoffDelay(attempt, this.retry);
        if (performance.now() - started + delay > this.retry.deadlineMs || !this.budget.mayRetry(delay)) {
          throw new StalledError(`writing a block: no progress for ${Math.round(this.config.stallTimeoutMs / 1000)} s`, { cause: error });
        }
        await sleep(delay, stop);
      } finally {
        watch.stop();
        stop.removeEventListener('abort', onStop);
      }
    }
  }

  async putBytes(key: string, data: Buffer): Promise<void> {
    const name = this.blobName(key);
    await this.call(key, 'writing', ({ ops }, abortSignal) =>
      ops.getBlockBlobClient(name).upload(data, data.length, {
        blobHTTPHeaders: { blobContentType: 'application/octet-stream' },
        ...(this.config.settings.accessTier ? { tier: this.config.settings.accessTier } : {}),
        abortSignal,
      }),
    );
  }

  async putIfAbsent(key: string, data: Buffer): Promise<boolean> {
    const name = this.blobName(key);
    const token = randomBytes(12).toString('hex');
    const { ops } = await this.connect();
    const blob = ops.getBlockBlobClient(name);
    try {
      await this.attempts(key, 'writing', (abortSignal) =>
        blob.upload(data, data.length, {
          conditions: { ifNoneMatch: '*' },
          metadata: { [TOKEN_METADATA]: token },
          blobHTTPHeaders: { blobContentType: 'application/octet-stream' },
          abortSignal,
        }),
      );
      return true;
    } catch (error) {
      if (!(error instanceof PreconditionFailedError)) throw error;
      // Ours after all when an earlier attempt landed and only its answer was lost.
      const existing = await this.attempts(key, 'reading', (abortSignal) => blob.getProperties({ abortSignal })).catch(() => null);
      return existing?.metadata?.[TOKEN_METADATA] === token;
    }
  }

  /**
   * The blob's bytes, streamed. The SDK asks for the rest itself when an answer ends
   * early (maxRetryRequests, pinned to the first answer's entity tag), but takes a
   * connection dropped in the middle for an abort of ours: that is picked up here, where
   * it broke (resumableDownload), with If-Match the entity tag of the first answer.
   */
  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    return pinnedDownload(key, options, this.retry, (part, partSignal, ifMatch) => this.getOnce(key, part, partSignal, ifMatch));
  }

  /** One download (of `range`, if given, and only of the version `ifMatch` names), guarded. */
  private async getOnce(key: string, range: GetOptions['range'], signal: AbortSignal | undefined, ifMatch?: string): Promise<{ body: Readable; etag: string | undefined }> {
    const name = this.blobName(key);
    const { bulk } = await this.connect();
    // After a stall, no longer than the stall budget allows (and not at all once it is spent).
    const abortSignal = answerSignal(this.budget, `reading ${key}`, key, signal);
    let body: Readable;
    let etag: string | undefined;
    try {
      const response = await bulk.getBlobClient(name).download(range?.offset ?? 0, range?.length, {
        abortSignal,
        maxRetryRequests: 5,
        ...(ifMatch === undefined ? {} : { conditions: { ifMatch } }),
      });
      body = response.readableStreamBody as Readable;
      etag = response.etag;
    } catch (error) {
      if (signal?.aborted) throw abortError(signal);
      if (restError(error).statusCode === 416 || codeOf(error) === 'InvalidRange') return { body: Readable.from([]), etag: undefined };
      throw this.mapError(error, key, 'reading', abortSignal.aborted); // not the caller's (above): the timeout
    }
    const guarded = guardReadable(body, {
      key,
      signal,
      stallTimeoutMs: this.config.stallTimeoutMs,
      // The SDK's stream reports a connection dropped mid-answer as an AbortError; an
      // abort of the caller's own ends the stream before (guardReadable).
      mapError: (error) =>
        restError(error).name === 'AbortError' && !signal?.aborted
          ? new TransientError(`reading ${key}: the connection was lost in the middle of the answer`, { key, cause: error })
          : this.mapError(error, key, 'reading'),
    });
    return { body: guarded, etag };
  }

  async getBytes(key: string, maxBytes: number): Promise<Buffer> {
    const info = await this.stat(key);
    if (info.size > maxBytes) throw new TooLargeError(key, info.size, maxBytes);
    return readAll(await this.get(key), maxBytes, () => new TooLargeError(key, maxBytes + 1, maxBytes));
  }

  async stat(key: string): Promise<ObjectInfo> {
    const name = this.blobName(key);
    const properties = await this.call(key, 'reading', ({ ops }, abortSignal) => ops.getBlobClient(name).getProperties({ abortSignal }));
    return { key, size: properties.contentLength ?? 0, modifiedAt: properties.lastModified ?? new Date(0), etag: properties.etag };
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ObjectInfo[]> {
    const wanted = normalizePrefix(prefix);
    const listPrefix = this.config.prefix + (wanted === '' ? '' : `${wanted}/`);
    const found: ObjectInfo[] = [];
    await this.call(wanted, 'listing', async ({ ops }, abortSignal, progress) => {
      found.length = 0; // a retry lists again from the start
      for await (const page of ops.listBlobsFlat({ prefix: listPrefix, abortSignal }).byPage({ maxPageSize: 1000 })) {
        progress();
        for (const item of page.segment.blobItems) {
          if (!item.name.startsWith(this.config.prefix)) continue;
          const key = item.name.slice(this.config.prefix.length);
          if (!isValidKey(key)) continue; // probes and anything not ours
          found.push({ key, size: item.properties.contentLength ?? 0, modifiedAt: item.properties.lastModified, etag: item.properties.etag });
        }
      }
    });
    return keysAfter(sortByKey(found), options.startAfter);
  }

  async children(prefix: string): Promise<string[]> {
    const wanted = normalizePrefix(prefix);
    const listPrefix = this.config.prefix + (wanted === '' ? '' : `${wanted}/`);
    const names = new Set<string>();
    await this.call(wanted, 'listing', async ({ ops }, abortSignal, progress) => {
      names.clear();
      for await (const page of ops.listBlobsByHierarchy('/', { prefix: listPrefix, abortSignal }).byPage({ maxPageSize: 1000 })) {
        progress();
        for (const folder of page.segment.blobPrefixes ?? []) {
          const name = folder.name.startsWith(listPrefix) ? folder.name.slice(listPrefix.length, -1) : '';
          if (isValidKey(wanted === '' ? name : `${wanted}/${name}`) && !name.includes('/')) names.add(name);
        }
      }
    });
    return [...names].sort();
  }

  async remove(key: string): Promise<void> {
    const name = this.blobName(key);
    await this.call(key, 'removing', ({ ops }, abortSignal) => ops.getBlobClient(name).deleteIfExists({ abortSignal }));
  }

  async checkWritable(prefix: string): Promise<void> {
    const wanted = normalizePrefix(prefix);
    const probe = `${this.config.prefix}${wanted === '' ? '' : `${wanted}/`}.backupctl-write-probe-${randomBytes(6).toString('hex')}`;
    await this.call(wanted, 'writing a probe in', ({ ops }, abortSignal) => ops.getBlockBlobClient(probe).upload(Buffer.alloc(0), 0, { abortSignal }));
    await this.call(wanted, 'removing a probe in', ({ ops }, abortSignal) => ops.getBlobClient(probe).deleteIfExists({ abortSignal }));
  }

  /** Nothing to do: uncommitted blocks are invisible and the service discards them. */
  async removeStaleTemporaries(): Promise<{ files: number; bytes: number }> {
    return { files: 0, bytes: 0 };
  }
}
