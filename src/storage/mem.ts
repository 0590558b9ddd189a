import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { abortError, NotFoundError, PermissionError, TooLargeError, UnsupportedError } from './errors.js';
import {
  assertKey,
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

interface Entry {
  data: Buffer;
  modifiedAt: Date;
  etag: string;
}

type Operation = 'put' | 'putBytes' | 'putIfAbsent' | 'get' | 'stat' | 'list' | 'remove';

const stores = new Map<string, Map<string, Entry>>();

/**
 * An in-process store for fast tests of core logic (`mem://name/prefix`). Every
 * MemoryStorage of one name shares its objects, as separate processes would share a
 * bucket. It meets the whole contract except bounded memory (the objects live in memory).
 * `failNext(op, error)` makes the next call of `op` fail, for tests of error paths.
 */
export class MemoryStorage implements Storage {
  static readonly CAPABILITIES: StorageCapabilities = {
    atomicPut: true,
    conditionalCreate: true,
    localFiles: false,
    rangeReads: true,
    consistentList: true,
    pagedList: false,
  };

  readonly capabilities: StorageCapabilities;
  readonly location: string;
  private readonly faults = new Map<Operation, Error[]>();

  private constructor(
    private readonly objects: Map<string, Entry>,
    private readonly prefix: string,
    name: string,
    private readonly readOnly: boolean,
    pagedList: boolean,
  ) {
    this.location = `mem://${name}/${prefix}`;
    this.capabilities = pagedList ? { ...MemoryStorage.CAPABILITIES, pagedList } : MemoryStorage.CAPABILITIES;
  }

  /**
   * The store named `name` (created empty on first use), seen under `prefix` ('' or
   * ending with '/'). `readOnly`: every write fails with PermissionError, as a store
   * whose credentials may only read. `pagedList`: declares its listing paged, as a remote
   * store's (for tests of what callers do with that capability).
   */
  static named(name: string, prefix = '', options: { readOnly?: boolean; pagedList?: boolean } = {}): MemoryStorage {
    let objects = stores.get(name);
    if (!objects) {
      objects = new Map();
      stores.set(name, objects);
    }
    return new MemoryStorage(objects, prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`, name, options.readOnly === true, options.pagedList === true);
  }

  private writable(key: string): void {
    if (this.readOnly) throw new PermissionError(`writing ${key}: this store is read-only`, { key });
  }

  /** Forgets every object of the store `name`. */
  static reset(name: string): void {
    stores.delete(name);
  }

  /** Dates an object as written at `when` (for tests of logic that weighs how old an object is). */
  setModifiedAt(key: string, when: Date): void {
    const found = this.objects.get(this.prefix + key);
    if (!found) throw new NotFoundError(key);
    found.modifiedAt = when;
  }

  /** The next call of `op` rejects with `error` (queued: several calls queue several failures). */
  failNext(op: Operation, error: Error): void {
    const queue = this.faults.get(op) ?? [];
    queue.push(error);
    this.faults.set(op, queue);
  }

  private fault(op: Operation): void {
    const error = this.faults.get(op)?.shift();
    if (error) throw error;
  }

  private full(key: string): string {
    assertKey(key);
    return this.prefix + key;
  }

  async open(): Promise<StorageCapabilities> {
    return this.capabilities;
  }

  async close(): Promise<void> {}

  async put(key: string, source: Readable, options: PutOptions = {}): Promise<{ bytes: number }> {
    const full = this.full(key);
    this.fault('put');
    this.writable(key);
    const chunks: Buffer[] = [];
    let bytes = 0;
    const { signal } = options;
    const onAbort = () => source.destroy(abortError(signal as AbortSignal));
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (signal?.aborted) throw abortError(signal);
      for await (const chunk of source) {
        const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
        chunks.push(buffer);
        bytes += buffer.length;
        options.onProgress?.(bytes);
      }
      if (signal?.aborted) throw abortError(signal);
    } catch (error) {
      if (signal?.aborted) throw abortError(signal);
      throw error;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    this.objects.set(full, entry(Buffer.concat(chunks, bytes)));
    return { bytes };
  }

  async putBytes(key: string, data: Buffer): Promise<void> {
    const full = this.full(key);
    this.fault('putBytes');
    this.writable(key);
    this.objects.set(full, entry(Buffer.from(data)));
  }

  async putIfAbsent(key: string, data: Buffer): Promise<boolean> {
    const full = this.full(key);
    this.fault('putIfAbsent');
    this.writable(key);
    if (!this.capabilities.conditionalCreate) throw new UnsupportedError('conditional create is not supported');
    if (this.objects.has(full)) return false;
    this.objects.set(full, entry(Buffer.from(data)));
    return true;
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    const full = this.full(key);
    this.fault('get');
    if (options.signal?.aborted) throw abortError(options.signal);
    const found = this.objects.get(full);
    if (!found) throw new NotFoundError(key);
    const start = options.range?.offset ?? 0;
    const end = options.range?.length === undefined ? found.data.length : start + options.range.length;
    const data = found.data.subarray(Math.min(start, found.data.length), Math.min(end, found.data.length));
    // In chunks, so that a consumer sees back-pressure and an abort mid-way.
    const chunkSize = 64 * 1024;
    let offset = 0;
    const stream = new Readable({
      read() {
        if (offset >= data.length) {
          this.push(null);
          return;
        }
        const chunk = data.subarray(offset, offset + chunkSize);
        offset += chunk.length;
        setImmediate(() => this.push(chunk));
      },
    });
    const { signal } = options;
    if (signal) {
      const onAbort = () => stream.destroy(abortError(signal));
      signal.addEventListener('abort', onAbort, { once: true });
      stream.once('close', () => signal.removeEventListener('abort', onAbort));
    }
    return stream;
  }

  async getBytes(key: string, maxBytes: number): Promise<Buffer> {
    const full = this.full(key);
    this.fault('get');
    const found = this.objects.get(full);
    if (!found) throw new NotFoundError(key);
    if (found.data.length > maxBytes) throw new TooLargeError(key, found.data.length, maxBytes);
    return Buffer.from(found.data);
  }

  async stat(key: string): Promise<ObjectInfo> {
    const full = this.full(key);
    this.fault('stat');
    const found = this.objects.get(full);
    if (!found) throw new NotFoundError(key);
    return { key, size: found.data.length, modifiedAt: found.modifiedAt, etag: found.etag };
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ObjectInfo[]> {
    const wanted = normalizePrefix(prefix);
    this.fault('list');
    const start = this.prefix + (wanted === '' ? '' : `${wanted}/`);
    const found: ObjectInfo[] = [];
    for (const [full, object] of this.objects) {
      if (!full.startsWith(start)) continue;
      const key = full.slice(this.prefix.length);
      found.push({ key, size: object.data.length, modifiedAt: object.modifiedAt, etag: object.etag });
    }
    return keysAfter(sortByKey(found), options.startAfter);
  }

  async children(prefix: string): Promise<string[]> {
    const wanted = normalizePrefix(prefix);
    this.fault('list');
    const start = this.prefix + (wanted === '' ? '' : `${wanted}/`);
    const names = new Set<string>();
    for (const full of this.objects.keys()) {
      if (!full.startsWith(start)) continue;
      const rest = full.slice(start.length);
      const slash = rest.indexOf('/');
      if (slash > 0) names.add(rest.slice(0, slash));
    }
    return [...names].sort();
  }

  async remove(key: string): Promise<void> {
    const full = this.full(key);
    this.fault('remove');
    this.writable(key);
    this.objects.delete(full);
  }

  async checkWritable(prefix: string): Promise<void> {
    const wanted = normalizePrefix(prefix);
    this.fault('putBytes');
    this.writable(wanted);
  }

  async removeStaleTemporaries(): Promise<{ files: number; bytes: number }> {
    return { files: 0, bytes: 0 }; // a put publishes in one step: it leaves nothing behind
  }
}

function entry(data: Buffer): Entry {
  return { data, modifiedAt: new Date(), etag: `"${createHash('md5').update(data).digest('hex')}"` };
}
