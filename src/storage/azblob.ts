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
 * - Retries: the SDK's exponential retry policy (timeouts, 5xx, resets, throttling),
 *   with its number of tries derived from retryDeadlineMs; 4xx fail at once.
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
import { backoffDelay, describeCause, guardReadable, isNetworkError, readAll, sleep, StallWatch, type RetryPolicy } from './resilience.js';
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

  constructor(
    private readonly config: AzureLocation,
    private readonly runtime: StorageRuntime,
  ) {
    this.location = config.display;
    this.retry = { deadlineMs: config.retryDeadlineMs, baseDelayMs: 200, maxDelayMs: 10_000 };
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

  /** Two clients: `ops` (each try times out after stallTimeoutMs) and `bulk` (blocks and downloads, watched for stalls). */
  private connect(): Promise<{ ops: ContainerClient; bulk: ContainerClient }> {
    if (this.containers) return Promise.resolve(this.containers);
    this.connecting ??= (async () => {
      const credentials = await this.resolveCredentials();
      const ops = credentials.service({ retryOptions: this.retryOptions(this.config.stallTimeoutMs) }).getContainerClient(this.config.container);
      const bulk = credentials.service({ retryOptions: this.retryOptions(24 * 3600_000) }).getContainerClient(this.config.container);
      try {
        await ops.getProperties();
      } catch (error) {
        const status = restError(error).statusCode;
        // 403 with a SAS limited to blobs (no container rights): go on, blob calls will tell.
        if (!(status === 403 && PERMISSION_CODES.has(codeOf(error)))) throw this.mapError(error, '', 'checking');
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
    if (PERMISSION_CODES.has(code) || status === 403) return new PermissionError(`${what}: access denied (${code || 'HTTP 403'})`, options);
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

  private async call<T>(key: string, doing: string, run: (containers: { ops: ContainerClient; bulk: ContainerClient }) => Promise<T>): Promise<T> {
    const containers = await this.connect();
    try {
      return await run(containers);
    } catch (error) {
      throw this.mapError(error, key, doing);
    }
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
        await ops.getBlockBlobClient(name).upload(data, data.length, {
          blobHTTPHeaders: { blobContentType: 'application/octet-stream' },
          ...(this.config.settings.accessTier ? { tier: this.config.settings.accessTier } : {}),
          abortSignal: controller.signal,
        });
        options.onProgress?.(total);
        return { bytes: total };
      }
      if (pendingBytes > 0) await flush(pendingBytes);
      await Promise.all(inFlight);
      if (signal?.aborted) throw abortError(signal);
      if (failure !== null) throw failure;
      committing = true;
      await ops.getBlockBlobClient(name).commitBlockList(ids, {
        blobHTTPHeaders: { blobContentType: 'application/octet-stream' },
        ...(this.config.settings.accessTier ? { tier: this.config.settings.accessTier } : {}),
        abortSignal: controller.signal,
      });
      options.onProgress?.(total);
      return { bytes: total };
    } catch (error) {
      stop(error);
      const grace = sleep(Math.min(this.config.stallTimeoutMs, 5_000)).then(() => 'grace over');
      await Promise.race([Promise.allSettled([...inFlight]), grace]);
      controller.abort(stopped);
      await Promise.allSettled([...inFlight]);
      await this.discardUncommitted(ops, name);
      if (signal?.aborted) throw abortError(signal);
      if (sourceError !== null) throw sourceError;
      throw this.mapError(failure ?? error, key, 'writing');
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
    const timeout = AbortSignal.timeout(Math.min(this.config.stallTimeoutMs, 30_000));
    try {
      // A listing shows committed blobs only (a property read answers for uncommitted ones on azurite).
      for await (const item of container.listBlobsFlat({ prefix: name, abortSignal: timeout })) {
        if (item.name === name) return; // committed: leave it alone
      }
      await container.getBlobClient(name).deleteIfExists({ abortSignal: timeout });
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
        acknowledge(data.length);
        return;
      } catch (error) {
        if (stop.aborted) throw stop.reason;
        if (!watch.stalled) throw error;
        const delay = backoffDelay(attempt, this.retry);
        if (performance.now() - started + delay > this.retry.deadlineMs) {
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
    await this.call(key, 'writing', ({ ops }) =>
      ops.getBlockBlobClient(name).upload(data, data.length, {
        blobHTTPHeaders: { blobContentType: 'application/octet-stream' },
        ...(this.config.settings.accessTier ? { tier: this.config.settings.accessTier } : {}),
      }),
    );
  }

  async putIfAbsent(key: string, data: Buffer): Promise<boolean> {
    const name = this.blobName(key);
    const token = randomBytes(12).toString('hex');
    const started = performance.now();
    const { ops } = await this.connect();
    const blob = ops.getBlockBlobClient(name);
    for (let attempt = 1; ; attempt++) {
      try {
        await blob.upload(data, data.length, {
          conditions: { ifNoneMatch: '*' },
          metadata: { [TOKEN_METADATA]: token },
          blobHTTPHeaders: { blobContentType: 'application/octet-stream' },
        });
        return true;
      } catch (error) {
        const mapped = this.mapError(error, key, 'writing');
        if (mapped instanceof PreconditionFailedError) {
          // Ours after all when an earlier attempt landed and only its answer was lost.
          const existing = await blob.getProperties().catch(() => null);
          return existing?.metadata?.[TOKEN_METADATA] === token;
        }
        if (mapped instanceof TransientError && performance.now() - started < this.retry.deadlineMs) {
          await sleep(backoffDelay(attempt, this.retry));
          continue;
        }
        throw mapped;
      }
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    const name = this.blobName(key);
    const { signal, range } = options;
    if (signal?.aborted) throw abortError(signal);
    if (range?.length === 0) return Readable.from([]);
    const { bulk } = await this.connect();
    const timeout = AbortSignal.timeout(this.config.stallTimeoutMs);
    const abortSignal = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let body: Readable;
    try {
      const response = await bulk.getBlobClient(name).download(range?.offset ?? 0, range?.length, { abortSignal, maxRetryRequests: 5 });
      body = response.readableStreamBody as Readable;
    } catch (error) {
      if (signal?.aborted) throw abortError(signal);
      if (restError(error).statusCode === 416 || codeOf(error) === 'InvalidRange') return Readable.from([]);
      throw this.mapError(error, key, 'reading', timeout.aborted);
    }
    return guardReadable(body, {
      key,
      signal,
      stallTimeoutMs: this.config.stallTimeoutMs,
      mapError: (error) => this.mapError(error, key, 'reading'),
    });
  }

  async getBytes(key: string, maxBytes: number): Promise<Buffer> {
    const info = await this.stat(key);
    if (info.size > maxBytes) throw new TooLargeError(key, info.size, maxBytes);
    return readAll(await this.get(key), maxBytes, () => new TooLargeError(key, maxBytes + 1, maxBytes));
  }

  async stat(key: string): Promise<ObjectInfo> {
    const name = this.blobName(key);
    const properties = await this.call(key, 'reading', ({ ops }) => ops.getBlobClient(name).getProperties());
    return { key, size: properties.contentLength ?? 0, modifiedAt: properties.lastModified ?? new Date(0), etag: properties.etag };
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ObjectInfo[]> {
    const wanted = normalizePrefix(prefix);
    const listPrefix = this.config.prefix + (wanted === '' ? '' : `${wanted}/`);
    const found: ObjectInfo[] = [];
    await this.call(wanted, 'listing', async ({ ops }) => {
      for await (const page of ops.listBlobsFlat({ prefix: listPrefix }).byPage({ maxPageSize: 1000 })) {
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
    await this.call(wanted, 'listing', async ({ ops }) => {
      names.clear();
      for await (const page of ops.listBlobsByHierarchy('/', { prefix: listPrefix }).byPage({ maxPageSize: 1000 })) {
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
    await this.call(key, 'removing', ({ ops }) => ops.getBlobClient(name).deleteIfExists());
  }

  async checkWritable(prefix: string): Promise<void> {
    const wanted = normalizePrefix(prefix);
    const probe = `${this.config.prefix}${wanted === '' ? '' : `${wanted}/`}.backupctl-write-probe-${randomBytes(6).toString('hex')}`;
    await this.call(wanted, 'writing a probe in', ({ ops }) => ops.getBlockBlobClient(probe).upload(Buffer.alloc(0), 0));
    await this.call(wanted, 'removing a probe in', ({ ops }) => ops.getBlobClient(probe).deleteIfExists());
  }

  /** Nothing to do: uncommitted blocks are invisible and the service discards them. */
  async removeStaleTemporaries(): Promise<{ files: number; bytes: number }> {
    return { files: 0, bytes: 0 };
  }
}
