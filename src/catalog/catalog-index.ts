/**
 * The catalog index: `<root>/<profile>/catalog-index.json`, a cache of the profile's
 * sidecars without their `tables`, so that list, status, prune and `latest --tag` need
 * not read every sidecar. Contract:
 *
 * - Sidecars are the one source of truth. The index is never the only record of a backup:
 *   a backup is listed because its sidecar is in the storage's listing, and a sidecar the
 *   index has no (usable) entry for is read. The index is rebuilt from the sidecars when it
 *   is missing, unreadable or stale, and writing it is best effort: a failure is a debug
 *   line, and a read-only storage lists as before (reading every sidecar).
 * - Never trusted blindly. An entry is used only for a sidecar of this profile that the
 *   listing shows now, with the size, modification time (and entity tag, where the store
 *   has them) recorded when the entry was read from it, and modified at least
 *   RACY_MARGIN_MS before the index itself was written (by the store's clock: a sidecar
 *   rewritten within one tick of a coarse clock could otherwise keep both its size and its
 *   time). Entries are validated like sidecars (the sidecar schema without `tables`, tied
 *   to the id and profile of their key); a corrupt, oversized, foreign or hostile index is
 *   ignored and rebuilt, an invalid entry is read again from its sidecar.
 * - prune confirms from the sidecars themselves what it removes (core/prune.ts).
 * - Written atomically and streamed (Storage.put of serializeIndexChunks through gzip;
 *   plain indexes of earlier versions are read too), one JSON document a line: a header
 *   `{"format":"backupctl-catalog-index","version":2,"profile":"app","entries":10000,"generation":"<token>"|null,"listing":true|false}`,
 *   then one entry a line, sorted by key:
 *   `{"key":"app/<id>.json","size":6548,"modifiedAt":<ms>,"etag":null,"sidecar":{...}}`.
 *   Its name is no backup id, so the catalog never takes it for a backup's file.
 * - The listing it was made from (version 2, `"listing":true`, written for storages whose
 *   listing is paged): the profile's other backup files as lines without `sidecar`
 *   (`{"key":"app/<id>.dump.zst","size":...,"modifiedAt":...,"etag":...}`), and the catalog
 *   generation read before that listing (catalog-generation.ts). While the profile's marker
 *   is settled at that generation, the index stands in for a listing of the profile; its
 *   entries are then checked against their own stamps. Version 1 indexes are read as before
 *   (entries only) and rewritten.
 *
 * zod is loaded with this module: catalog.ts imports it only when it lists backups.
 */
import { pipeline, Readable } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import * as z from 'zod';
import { sortByKey, type ObjectInfo } from '../storage/storage.js';
import { profileOfBackupKey } from './catalog-generation.js';
import { ID_PATTERN, PROFILE_PATTERN } from './id.js';
import type { SidecarSummary } from './sidecar.js';
import { parseSidecarSummary } from './sidecar-schema.js';

export const CATALOG_INDEX_FILE = 'catalog-index.json';
export const CATALOG_INDEX_FORMAT = 'backupctl-catalog-index';
export const CATALOG_INDEX_VERSION = 2;
/** Versions read: 1 (entries only) and 2. */
const READABLE_VERSIONS = [1, 2] as const;

/**
 * An entry is trusted only when its sidecar was last modified at least this long before
 * the index was written: S3 and SFTP report times in whole seconds.
 */
export const RACY_MARGIN_MS = 1000;

/** `<profile>/catalog-index.json` */
export function catalogIndexKey(profile: string): string {
  return `${profile}/${CATALOG_INDEX_FILE}`;
}

/**
 * The most an index may weigh before it is refused unread: its entries are the profile's
 * sidecars without `tables` in compact JSON, so never much more than the sidecars
 * themselves (defaults a hand-written sidecar left out, and the key/size/time of each).
 */
export function maxIndexBytes(sidecars: readonly ObjectInfo[]): number {
  let total = 1024 * 1024;
  for (const object of sidecars) total += object.size + 1024;
  return total;
}

/** What the index records of a sidecar as listed: its key, size, time (ms) and entity tag. */
export interface Stamp {
  key: string;
  size: number;
  modifiedAt: number;
  etag: string | null;
}

/**
 * The stamp of an entry as read (untrusted JSON), or null when it is not one: checked by
 * hand, not with zod, as it is checked for every entry of every run (10,000 schema parses
 * of four fields cost more than the rest of the line's handling).
 */
function stampIn(raw: object): Stamp | null {
  const { key, size, modifiedAt, etag } = raw as Record<string, unknown>;
  if (typeof key !== 'string' || key.length > 1024) return null;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return null;
  if (typeof modifiedAt !== 'number' || !Number.isSafeInteger(modifiedAt)) return null;
  if (etag !== null && (typeof etag !== 'string' || etag.length > 1024)) return null;
  return { key, size, modifiedAt, etag };
}

const HeaderSchema = z.object({
  format: z.literal(CATALOG_INDEX_FORMAT),
  version: z.union(READABLE_VERSIONS.map((version) => z.literal(version)) as [z.ZodLiteral<1>, z.ZodLiteral<2>]),
  profile: z.string().regex(PROFILE_PATTERN),
  generation: z.string().max(64).nullable().optional(),
  listing: z.boolean().optional(),
});

/**
 * The most an index read in place of a listing may weigh (there is no listing to size it
 * by): an index of 10,000 backups with its listing is ~20 MB. A larger one is not used;
 * the profile is listed instead.
 */
export const MAX_CACHED_INDEX_BYTES = 256 * 1024 * 1024;

/** True when the listing an index recorded is `objects`' backup files of `profile`, stamp for stamp. */
export function sameListing(recorded: readonly ObjectInfo[] | null, objects: readonly ObjectInfo[], profile: string): boolean {
  if (recorded === null) return false;
  const now = objects.filter((object) => profileOfBackupKey(object.key) === profile);
  if (now.length !== recorded.length) return false;
  const byKey = new Map(recorded.map((object) => [object.key, stampOf(object)]));
  return now.every((object) => {
    const was = byKey.get(object.key);
    return was !== undefined && sameStamp(was, stampOf(object));
  });
}

export function stampOf(object: ObjectInfo): Stamp {
  return { key: object.key, size: object.size, modifiedAt: object.modifiedAt.getTime(), etag: object.etag ?? null };
}

function sameStamp(a: Stamp, b: Stamp): boolean {
  return a.key === b.key && a.size === b.size && a.modifiedAt === b.modifiedAt && a.etag === b.etag;
}

/** An index as read, against the listing of its profile's sidecars. */
export interface IndexRead {
  /** The summaries of the usable entries, by sidecar key. */
  usable: Map<string, SidecarSummary>;
  /**
   * Every well-formed entry's stamp by key; for an entry not used although its stamp is
   * current (too recent, or invalid), also what it held, so that a sidecar read again and
   * found as recorded is no change.
   */
  recorded: Map<string, { stamp: Stamp; sidecar?: unknown }>;
  /** The catalog generation the index was made at (version 2), or null. */
  generation: string | null;
  /**
   * The listing the index was made from (version 2 with `"listing":true`): every entry and
   * listing line as an object, sorted by key; null when the index holds no listing.
   */
  listing: ObjectInfo[] | null;
}

/**
 * Reads an index (one JSON document a line: the header, then one entry a line; read as a
 * stream and parsed line by line, so that it is never one large buffer or string) against
 * `listed`: the profile's sidecars as listed now, by key. An index that is not of this
 * format, version and profile, or larger than `maxBytes`, is refused (the reason is
 * returned, for a debug line); malformed lines and entries of other profiles are dropped.
 * `writtenAt` is the index's own modification time (from the same listing).
 *
 * Without `listed`, the index stands in for the listing (its generation is current, see
 * catalog-generation.ts): each entry is checked against its own stamp, and the listing
 * lines are returned as `listing`.
 */
export async function readIndex(
  source: AsyncIterable<Uint8Array | string>,
  options: { profile: string; writtenAt: Date; maxBytes: number; listed?: ReadonlyMap<string, { object: ObjectInfo; id: string }> | undefined },
): Promise<IndexRead | string> {
  const { profile, listed } = options;
  const usable = new Map<string, SidecarSummary>();
  const recorded = new Map<string, { stamp: Stamp; sidecar?: unknown }>();
  const limit = options.writtenAt.getTime() - RACY_MARGIN_MS;
  let header: boolean | string = false;
  let generation: string | null = null;
  let listing: ObjectInfo[] | null = null;
  const line = (text: string): void => {
    if (text.trim() === '') return;
    const raw = parseLine(text);
    if (header === false) {
      const parsed = HeaderSchema.safeParse(raw);
      if (!parsed.success) header = `not a catalog index of version ${READABLE_VERSIONS.join(' or ')}`;
      else if (parsed.data.profile !== profile) header = `the index of profile ${JSON.stringify(parsed.data.profile)}, not of ${profile}`;
      else {
        header = true;
        if (parsed.data.version === 2) {
          generation = parsed.data.generation ?? null;
          if (parsed.data.listing === true) listing = [];
        }
      }
      return;
    }
    if (typeof raw !== 'object' || raw === null) return;
    const stamp = stampIn(raw);
    if (stamp === null || !stamp.key.startsWith(`${profile}/`)) return;
    const key = stamp.key;
    const sidecar = (raw as { sidecar?: unknown }).sidecar;
    if (listing !== null && profileOfBackupKey(key) === profile) listing.push(objectOf(stamp));
    if (sidecar === undefined) return;
    const now = listed ? listed.get(key) : ownEntry(stamp, profile);
    if (now === undefined || !sameStamp(stamp, stampOf(now.object))) {
      recorded.set(key, { stamp });
      return;
    }
    let summary: SidecarSummary | null = null;
    if (stamp.modifiedAt <= limit) {
      try {
        summary = parseSidecarSummary(key, sidecar, { id: now.id, profile });
      } catch {
        summary = null;
      }
    }
    if (summary) {
      usable.set(key, summary);
      recorded.set(key, { stamp });
    } else {
      recorded.set(key, { stamp, sidecar });
    }
  };

  // The pieces of the line not yet ended, joined once when it ends: a hostile index that is
  // one enormous line read in small chunks must not be copied again for every chunk.
  let pieces: Buffer[] = [];
  let total = 0;
  for await (const piece of decoded(source)) {
    // Drivers' streams give Buffers; anything else is viewed as one (or encoded) the same.
    const chunk = typeof piece === 'string' ? Buffer.from(piece, 'utf8') : Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    total += chunk.length;
    if (total > options.maxBytes) return `larger than ${options.maxBytes} bytes`;
    let at = 0;
    for (let end = chunk.indexOf(10); end >= 0 && typeof header !== 'string'; end = chunk.indexOf(10, at)) {
      line(pieces.length > 0 ? Buffer.concat([...pieces, chunk.subarray(at, end)]).toString('utf8') : chunk.toString('utf8', at, end));
      pieces = [];
      at = end + 1;
    }
    if (typeof header === 'string') return header;
    if (at < chunk.length) pieces.push(chunk.subarray(at));
  }
  if (pieces.length > 0) line(Buffer.concat(pieces).toString('utf8'));
  if (typeof header === 'string') return header;
  if (header === false) return 'empty';
  return { usable, recorded, generation, listing: listing === null ? null : sortByKey(listing) };
}

/** The size of the pieces the index is inflated in (see decoded). */
const INFLATE_PIECE_BYTES = 64 * 1024;

/**
 * The index's lines from its stored bytes: gzip (what serializeIndexChunks is written
 * through, see gzipIndex) or plain (indexes written before). `maxBytes` bounds the decoded
 * bytes, so a small hostile gzip cannot expand without limit: the reader stops pulling.
 */
async function* decoded(source: AsyncIterable<Uint8Array | string>): AsyncGenerator<Uint8Array | string> {
  const iterator = source[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done) return;
  const head = first.value;
  async function* whole(): AsyncGenerator<Uint8Array | string> {
    yield head;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  }
  if (typeof head === 'string' || head.length < 2 || head[0] !== 0x1f || head[1] !== 0x8b) {
    yield* whole();
    return;
  }
  // pipeline() destroys both on a failure of either, and the failure ends the iteration.
  // Pieces of 64 KiB (zlib's default is 16): each piece is a trip through the thread pool,
  // and a warm `list` of 10,000 backups waited on ~1,000 of them (1.39-1.58 s -> 1.22-1.32 s).
  const gunzip = pipeline(Readable.from(whole(), { objectMode: false }), createGunzip({ chunkSize: INFLATE_PIECE_BYTES }), () => undefined);
  try {
    yield* gunzip;
  } finally {
    gunzip.destroy();
  }
}

/**
 * The stream written as a profile's index: serializeIndexChunks through gzip (level 1: the
 * lines of 10,000 summaries, 17 MB, weigh ~1.5 MB, which is what S3's upload buffers, a
 * download and a disk hold of it).
 */
export function gzipIndex(chunks: Iterable<Buffer>): Readable {
  return pipeline(Readable.from(chunks, { objectMode: false }), createGzip({ level: 1 }), () => undefined);
}

function objectOf(stamp: Stamp): ObjectInfo {
  return { key: stamp.key, size: stamp.size, modifiedAt: new Date(stamp.modifiedAt), ...(stamp.etag === null ? {} : { etag: stamp.etag }) };
}

/** An entry as its own listing: `<profile>/<id>.json` of a valid id, or undefined. */
function ownEntry(stamp: Stamp, profile: string): { object: ObjectInfo; id: string } | undefined {
  const file = stamp.key.slice(profile.length + 1);
  if (!file.endsWith('.json')) return undefined;
  const id = file.slice(0, -'.json'.length);
  return ID_PATTERN.test(id) ? { object: objectOf(stamp), id } : undefined;
}

/** True when a sidecar read again (as `stamp`, giving `summary`) is what the index recorded of it. */
export function unchanged(read: IndexRead | null, stamp: Stamp, summary: SidecarSummary): boolean {
  const old = read?.recorded.get(stamp.key);
  return old !== undefined && old.sidecar !== undefined && sameStamp(old.stamp, stamp) && JSON.stringify(old.sidecar) === JSON.stringify(summary);
}

/**
 * What an index records besides its entries: the catalog generation it was made at, and
 * (for a storage whose listing is paged) the listing: the profile's objects, of which the
 * backup files without an entry are written as listing lines.
 */
export interface IndexExtras {
  generation?: string | null;
  listing?: readonly ObjectInfo[] | null;
}

/** The index's bytes: a header line, then one entry a line, sorted by key (serializeIndexChunks, joined). */
export function serializeIndex(profile: string, entries: ReadonlyArray<{ stamp: Stamp; sidecar: SidecarSummary }>, extras: IndexExtras = {}): Buffer {
  return Buffer.concat([...serializeIndexChunks(profile, entries, extras)]);
}

/**
 * The index's bytes in pieces of about `chunkBytes`, made as they are asked for: written
 * through Storage.put, an index of 10,000 entries (17 MB) is never one string or buffer,
 * nor 10,000 lines held at once. The pieces stay under V8's large-object size (128 KiB):
 * larger ones are allocated where only a full collection frees them, and the 70 pieces of
 * 256 KiB an index of 10,000 entries made were all still there at the end of a rebuild.
 */
export function* serializeIndexChunks(
  profile: string,
  entries: ReadonlyArray<{ stamp: Stamp; sidecar: SidecarSummary }>,
  extras: IndexExtras = {},
  chunkBytes = 64 * 1024,
): Generator<Buffer> {
  const lines: Array<{ stamp: Stamp; sidecar?: SidecarSummary }> = [...entries];
  if (extras.listing) {
    const withEntry = new Set(entries.map((entry) => entry.stamp.key));
    for (const object of extras.listing) {
      if (!withEntry.has(object.key) && profileOfBackupKey(object.key) === profile) lines.push({ stamp: stampOf(object) });
    }
  }
  const sorted = lines.sort((a, b) => (a.stamp.key < b.stamp.key ? -1 : a.stamp.key > b.stamp.key ? 1 : 0));
  const header = { format: CATALOG_INDEX_FORMAT, version: CATALOG_INDEX_VERSION, profile, entries: entries.length, generation: extras.generation ?? null, listing: Boolean(extras.listing) };
  let chunk = `${JSON.stringify(header)}\n`;
  for (const { stamp, sidecar } of sorted) {
    chunk += `${JSON.stringify({ key: stamp.key, size: stamp.size, modifiedAt: stamp.modifiedAt, etag: stamp.etag, ...(sidecar ? { sidecar } : {}) })}\n`;
    if (chunk.length >= chunkBytes) {
      yield Buffer.from(chunk, 'utf8');
      chunk = '';
    }
  }
  if (chunk !== '') yield Buffer.from(chunk, 'utf8');
}

function parseLine(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
