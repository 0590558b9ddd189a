import type { Readable } from 'node:stream';
import { BackupctlError, ExitCode, usageError } from '../errors.js';
import { getHeapStatistics } from 'node:v8';
import { collectGarbage } from '../platform/gc.js';
import { describeKind, HostileEntryError, NotFoundError, PermissionError, sortByKey, StorageError, TooLargeError, type EntryKind, type ObjectInfo, type Storage } from '../storage/storage.js';
import { ID_PATTERN, isProfileName } from './id.js';
import type * as CatalogIndex from './catalog-index.js';
import type { IndexExtras, IndexRead, Stamp } from './catalog-index.js';
import { ensureGeneration, holdsBackupctlObjects, PROFILE_FILES, profileOfBackupKey, readGeneration } from './catalog-generation.js';
import { MAX_SIDECAR_BYTES, serializeSidecar, SidecarError, summaryOf, type Sidecar, type SidecarSummary } from './sidecar.js';

/** `<profile>/<id>.json` */
export function sidecarKey(profile: string, id: string): string {
  return `${profile}/${id}.json`;
}

export function artifactKey(profile: string, file: string): string {
  return `${profile}/${file}`;
}

/** An artifact with no sidecar: an unfinished or interrupted backup. */
export interface IncompleteEntry {
  profile: string;
  id: string;
  file: string;
  bytes: number;
  modifiedAt: string;
}

interface Grouped {
  profile: string;
  id: string;
  sidecar: ObjectInfo | null;
  files: ObjectInfo[];
}

/** Splits `<profile>/<id>.<suffix>` keys into backups; keys of any other shape are not ours. */
/** `<profile>/<id>[.<suffix>]`: the profile, backup id and file name of a backup's key, else null. */
function backupFileOf(key: string, profileOk: (name: string) => boolean = isProfileName): { profile: string; id: string; file: string } | null {
  const slash = key.indexOf('/');
  if (slash <= 0 || key.indexOf('/', slash + 1) >= 0) return null;
  const profile = key.slice(0, slash);
  const file = key.slice(slash + 1);
  if (!file || !profileOk(profile)) return null;
  const dot = file.indexOf('.');
  const id = dot < 0 ? file : file.slice(0, dot);
  return ID_PATTERN.test(id) ? { profile, id, file } : null;
}

function group(objects: readonly ObjectInfo[]): Grouped[] {
  const byId = new Map<string, Grouped>();
  const profileOk = profileNameCheck();
  for (const object of objects) {
    const parsed = backupFileOf(object.key, profileOk);
    if (parsed === null) continue;
    const { profile, id, file } = parsed;
    const key = `${profile}/${id}`;
    let entry = byId.get(key);
    if (!entry) {
      entry = { profile, id, sidecar: null, files: [] };
      byId.set(key, entry);
    }
    if (file.length === id.length + 5 && file.endsWith('.json')) entry.sidecar = object;
    else entry.files.push(object);
  }
  return [...byId.values()];
}

/** isProfileName, remembering the last name checked (a listing holds a profile's keys together). */
function profileNameCheck(): (name: string) => boolean {
  let last = '';
  let lastOk = false;
  return (name) => {
    if (name !== last) {
      last = name;
      lastOk = isProfileName(name);
    }
    return lastOk;
  };
}

/**
 * Runs `fn` over `items`, at most `limit` at a time (reads of sidecars: enough to hide a
 * remote store's latency, few enough not to open thousands of requests at once).
 */
export async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

export interface ScanResult<S extends SidecarSummary = Sidecar> {
  /** Newest first. */
  backups: S[];
  incomplete: IncompleteEntry[];
  /** One line per sidecar that could not be read; the rest still lists. */
  warnings: string[];
  /**
   * The sidecars that are there but cannot be read (not JSON, not valid, too large): each
   * a backup that cannot be restored through backupctl as it is. (One removed meanwhile
   * is not among them.) status counts them as damage; verify --all as failures. A sidecar
   * the storage refuses to give (permission denied, I/O error) is not one of them: the
   * scan fails with the StorageError, and no catalog index is written.
   */
  unreadable: UnreadableSidecar[];
  /**
   * Sidecars the storage refused to give (permission denied), when the caller lists what it
   * can (`tolerateRefused`); otherwise that refusal fails the scan. Nothing is known of such
   * a backup, so it is neither listed nor damage, and no catalog index is written for its
   * profile (the index never records a refusal).
   */
  refused: RefusedSidecar[];
  /**
   * Backups whose files are not what their sidecar records (an artifact or globals file
   * missing, or of another size), by `<profile>/<id>`: one line per problem. Such a backup
   * cannot be restored as it is; prune never counts it as good.
   */
  damage: Map<string, string[]>;
  /** The profiles that have anything in the listing (a sidecar, an artifact, a run log...). */
  profiles: string[];
  /**
   * The backups (by `<profile>/<id>`) whose summary came from the catalog index, not from
   * their sidecar read in this scan: what a command that acts on backups confirms first.
   */
  indexed: Set<string>;
}

export interface UnreadableSidecar {
  profile: string;
  id: string;
  /** SidecarError's message: the key and what is wrong. */
  reason: string;
}

export interface RefusedSidecar {
  profile: string;
  id: string;
  /** The storage's refusal (code `permission`). */
  error: StorageError;
}

/** What a scan notes besides the backups it finds (see ScanResult). */
interface ScanNotes {
  warnings: string[];
  unreadable: UnreadableSidecar[];
  refused: RefusedSidecar[];
  /** Whether a sidecar the storage refuses to give goes into `refused` (else it fails the scan). */
  tolerateRefused: boolean;
}

/** `<profile>/<id>`: the key of a backup in ScanResult.damage. */
export function backupRef(sidecar: Pick<Sidecar, 'profile' | 'id'>): string {
  return `${sidecar.profile}/${sidecar.id}`;
}

/** What is wrong with the stored files of a backup, from a listing of its profile. */
export function damageOf(sidecar: SidecarSummary, files: readonly ObjectInfo[], hostile: ReadonlyMap<string, EntryKind> = new Map()): string[] {
  const problems: string[] = [];
  const check = (what: string, file: string, bytes: number) => {
    const key = artifactKey(sidecar.profile, file);
    const size = files.find((object) => object.key === key)?.size;
    const kind = hostile.get(key);
    if (kind !== undefined) problems.push(`${what} ${file} is ${describeKind(kind)}, not a regular file: never read or followed`);
    else if (size === undefined) problems.push(`${what} ${file} is missing`);
    else if (size !== bytes) problems.push(`${what} ${file} is ${size} bytes, the sidecar says ${bytes}`);
  };
  check('artifact', sidecar.artifact.file, sidecar.artifact.bytes);
  if (sidecar.globals.status === 'included') check('globals file', sidecar.globals.file, sidecar.globals.bytes);
  return problems;
}

/**
 * One listing of a storage (or of one profile): the objects, and the entries skipped as
 * hostile (a symlink, FIFO or device where backupctl writes only regular files), which are
 * reported, never followed or read.
 */
export interface Listing {
  /** What was listed: '' (the whole storage) or a profile. */
  prefix: string;
  objects: ObjectInfo[];
  hostile: Map<string, EntryKind>;
}

/**
 * The part of a listing of the whole storage that a listing of `profile` would give, or
 * null when that listing would not be the same (the profile's directory is itself a
 * hostile entry, which listing the profile reports as an error).
 */
export function narrowListing(listing: Listing, profile: string): Listing | null {
  if (listing.prefix === profile) return listing;
  if (listing.prefix !== '' || listing.hostile.has(profile)) return null;
  const under = `${profile}/`;
  return {
    prefix: profile,
    objects: listing.objects.filter((object) => object.key.startsWith(under)),
    hostile: new Map([...listing.hostile].filter(([key]) => key.startsWith(under))),
  };
}

export interface CatalogOptions {
  /** Debug lines (--verbose): what happened to the catalog index. */
  debug?: ((message: string) => void) | undefined;
}

/** One sidecar in a listing, read (or summarized) for a scan; `indexed` when from the catalog index. */
type Found<S> = [entry: Grouped, sidecar: S, indexed?: boolean];

/** A rebuild that read this many sidecars is followed by one full collection (before the index is written). */
const COLLECT_AFTER_READS = 1000;

/**
 * While an index is rebuilt: a full collection whenever the heap has grown by `slack` since
 * the last one (checked every 50 sidecars read). Each read leaves the whole sidecar (with
 * its tables) and, from S3 or Azure, the SDK's response objects as garbage that survives the
 * young generation; V8 let the old generation reach 3-4x the live set before collecting it:
 * 10,000 sidecars from s3rver peaked at 265-300 MB of RSS with ~60 MB live (the same run
 * under --max-old-space-size=100 peaked at 154 MB). Measured on the heap, not the RSS: the
 * RSS also holds code and the SDK's modules, which no collection gives back. A slack of
 * 16 MB peaked at 158-168 MB there, 6 MB at 147-151 MB (~100 collections of a 60 MB heap
 * over a rebuild of more than a minute); a local rebuild (5 s) took as long with either.
 */
function heapReclaimer(slack = 6 * 1024 * 1024, every = 50): () => void {
  let reads = 0;
  let base = getHeapStatistics().used_heap_size;
  return () => {
    if (++reads % every !== 0 || getHeapStatistics().used_heap_size < base + slack) return;
    collectGarbage('full');
    base = getHeapStatistics().used_heap_size;
  };
}

/** A profile of a paged storage, as Catalog.profileView found it. */
interface ProfileView {
  /** The profile's listing: made now, or the one its catalog index was made from. */
  listing: Listing;
  /** The index, read in place of the listing (`cached`); null when the profile was listed. */
  read: IndexRead | null;
  /** The generation the listing is of (read before listing); null when it could not be had. */
  generation: string | null;
  cached: boolean;
  /** The folder holds nothing of backupctl's (holdsBackupctlObjects): no profile, nothing is written into it. */
  foreign: boolean;
}

/** The backups in a storage, read from their sidecars. */
export class Catalog {
  constructor(
    readonly storage: Storage,
    private readonly options: CatalogOptions = {},
  ) {}

  /** Lists the storage (or one profile), collecting hostile entries instead of failing on them. */
  async listing(profile?: string): Promise<Listing> {
    if (profile !== undefined && !isProfileName(profile)) throw usageError(`invalid profile name ${JSON.stringify(profile)}`);
    const hostile = new Map<string, EntryKind>();
    // A symlink, FIFO or device where backupctl writes only regular files is reported, never
    // followed or read; so is a directory with the name of a backup's file (a sidecar's key
    // taken by a directory must not pass for no sidecar at all).
    const objects = await this.storage.list(profile ?? '', {
      onHostile: (key, kind) => hostile.set(key, kind),
      onDirectory: (key) => {
        if (backupFileOf(key) !== null) hostile.set(key, 'directory');
      },
    });
    return { prefix: profile ?? '', objects, hostile };
  }

  /** Every completed backup of the storage (or of one profile), each sidecar read in full. */
  async scan(profile?: string, options: { listing?: Listing | undefined } = {}): Promise<ScanResult<Sidecar>> {
    const listing = options.listing ?? (await this.listing(profile));
    return this.assemble(listing, false, async (entries, notes) => {
      const found: Array<Found<Sidecar>> = [];
      await mapLimit(entries, 8, async (entry) => {
        const sidecar = await this.readOrWarn(entry, notes);
        if (sidecar) found.push([entry, sidecar]);
      });
      return found;
    });
  }

  /**
   * Every completed backup of the storage (or of one profile) as a summary (the sidecar
   * without `tables`), from each profile's catalog index where its entries hold (see
   * catalog-index.ts), from the sidecars themselves for the rest; the index is then
   * rewritten when it was missing or stale (best effort). `ignoreIndex` reads every sidecar
   * (and rewrites the index).
   */
  async summaries(
    profile?: string,
    options: { listing?: Listing | undefined; ignoreIndex?: boolean; fresh?: boolean; tolerateRefused?: boolean } = {},
  ): Promise<ScanResult<SidecarSummary>> {
    const index = await import('./catalog-index.js');
    let listing = options.listing;
    let folders: string[] | null = null;
    const views = new Map<string, ProfileView>();
    const skipped: string[] = [];
    if (!listing && this.storage.capabilities.pagedList) {
      // A paged listing is costly: each profile's catalog index stands in for it while the
      // profile's generation is the index's (catalog-generation.ts).
      if (profile !== undefined && !isProfileName(profile)) throw usageError(`invalid profile name ${JSON.stringify(profile)}`);
      // A profile that is not there is not listed, and no generation or index is written
      // into it: one with a generation is there; else the root's folders tell (one request,
      // which on some stores walks every key).
      if (profile !== undefined && (await this.hasGeneration(profile))) folders = [profile];
      else {
        const present = await this.profileFolders();
        folders = profile === undefined ? present : present.filter((name) => name === profile);
      }
      const objects: ObjectInfo[] = [];
      const profiles: string[] = [];
      for (const name of folders) {
        let view: ProfileView;
        try {
          view = await this.profileView(index, name, options.fresh === true || options.ignoreIndex === true);
        } catch (error) {
          // A folder of the root this user may not read (another's, lost+found): no profile
          // of ours is readable there; the rest of the storage still lists. A profile named
          // is not passed over.
          if (profile !== undefined || !(error instanceof PermissionError)) throw error;
          skipped.push(`skipped the folder ${name} of ${this.storage.location}: ${error.message}`);
          continue;
        }
        // A folder of something else (no backupctl object): not a profile, not written into.
        if (view.foreign) continue;
        views.set(name, view);
        profiles.push(name);
        objects.push(...view.listing.objects);
      }
      folders = profiles;
      listing = { prefix: profile ?? '', objects: sortByKey(objects), hostile: new Map() };
    }
    listing ??= await this.listing(profile);
    const scanned = listing;
    const result = await this.assemble(scanned, options.tolerateRefused ?? false, async (entries, notes) => {
      const byProfile = new Map<string, Grouped[]>();
      for (const entry of entries) {
        const group = byProfile.get(entry.profile);
        if (group) group.push(entry);
        else byProfile.set(entry.profile, [entry]);
      }
      for (const [name, view] of views) if (!byProfile.has(name)) await this.writeEmptyIndex(index, name, view);
      const found: Array<Found<SidecarSummary>> = [];
      for (const [name, group] of byProfile) found.push(...(await this.profileSummaries(index, name, group, scanned, notes, options.ignoreIndex ?? false, views.get(name))));
      return found;
    });
    // The folders of the root that hold something of backupctl's, though maybe no backup file.
    if (folders !== null && profile === undefined) result.profiles = [...new Set([...result.profiles, ...folders])].sort();
    result.warnings.push(...skipped);
    return result;
  }

  /**
   * One profile of a storage whose listing is paged: its catalog index in place of a
   * listing when the profile's generation is the one the index was made at and `refresh`
   * is false; otherwise a listing, with the generation read (or first written) before it.
   */
  private async profileView(index: typeof CatalogIndex, profile: string, refresh: boolean): Promise<ProfileView> {
    const debug = this.options.debug ?? (() => undefined);
    const generation = await readGeneration(this.storage, profile);
    const foreign = (view: ProfileView): ProfileView => {
      if (holdsBackupctlObjects(profile, view.listing.objects.map((object) => object.key))) return view;
      debug(`the folder ${profile} holds nothing a backupctl run wrote: not a profile, nothing written into it`);
      return { ...view, foreign: true };
    };
    if (!refresh && generation?.settled) {
      const cached = await this.cachedListing(index, profile, generation.token);
      if (cached) return foreign(cached);
    }
    if (generation) return foreign({ listing: await this.listing(profile), read: null, generation: generation.token, cached: false, foreign: false });
    // No marker: a profile of an older backupctl, or a folder of something else. Only a
    // folder that holds something a backupctl run wrote gets one. Its run log (or lock)
    // says so in a request: the marker is then written before the listing, which is
    // recorded with it. Else the listing tells; a marker written after it (backups' files
    // alone: a copy destination of an older backupctl) does not vouch for it, so it is
    // recorded with none, and the next command lists again.
    if (await this.holdsRunFiles(profile)) {
      const written = await ensureGeneration(this.storage, profile, debug);
      return { listing: await this.listing(profile), read: null, generation: written?.token ?? null, cached: false, foreign: false };
    }
    const view = foreign({ listing: await this.listing(profile), read: null, generation: null, cached: false, foreign: false });
    if (!view.foreign) await ensureGeneration(this.storage, profile, debug);
    return view;
  }

  /** Whether the profile's folder holds a run log or a lock (PROFILE_FILES): a stat each, not a listing. */
  private async holdsRunFiles(profile: string): Promise<boolean> {
    for (const file of PROFILE_FILES) {
      try {
        await this.storage.stat(`${profile}/${file}`);
        return true;
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error;
      }
    }
    return false;
  }

  /** The profile's catalog index as its listing, when it was made at `token` and holds one; else null. */
  private async cachedListing(index: typeof CatalogIndex, profile: string, token: string): Promise<ProfileView | null> {
    const debug = this.options.debug ?? (() => undefined);
    const key = index.catalogIndexKey(profile);
    let stream: Readable | null = null;
    try {
      const info = await this.storage.stat(key);
      if (info.size > index.MAX_CACHED_INDEX_BYTES) throw new Error(`larger than ${index.MAX_CACHED_INDEX_BYTES} bytes`);
      stream = await this.storage.get(key);
      const read = await index.readIndex(stream, { profile, writtenAt: info.modifiedAt, maxBytes: index.MAX_CACHED_INDEX_BYTES });
      if (typeof read === 'string') throw new Error(read);
      if (read.generation !== token || read.listing === null) {
        debug(`the catalog index ${key} is not of the profile's current generation: listing profile ${profile}`);
        return null;
      }
      debug(`listing profile ${profile} from its catalog index (generation ${token}): ${read.listing.length} object(s)`);
      return { listing: { prefix: profile, objects: read.listing, hostile: new Map() }, read, generation: token, cached: true, foreign: false };
    } catch (error) {
      if (!(error instanceof NotFoundError)) debug(`ignoring the catalog index ${key}: ${(error as Error).message}; listing profile ${profile}`);
      return null;
    } finally {
      stream?.destroy();
    }
  }

  /** A paged profile listed now with no backup left: its index records the empty listing. */
  private async writeEmptyIndex(index: typeof CatalogIndex, profile: string, view: ProfileView): Promise<void> {
    if (view.cached || view.listing.hostile.size > 0) return;
    if (!view.listing.objects.some((object) => profileOfBackupKey(object.key) === profile)) return;
    await this.writeIndex(index, profile, [], { generation: view.generation, listing: view.listing.objects });
  }

  /** Writes a profile's index (streamed, atomic); best effort: a failure is a debug line. */
  private async writeIndex(index: typeof CatalogIndex, profile: string, kept: ReadonlyArray<{ stamp: Stamp; sidecar: SidecarSummary }>, extras: IndexExtras): Promise<void> {
    const debug = this.options.debug ?? (() => undefined);
    const key = index.catalogIndexKey(profile);
    try {
      // Streamed (an atomic put like putBytes): the index is never one buffer in memory.
      await this.storage.put(key, index.gzipIndex(index.serializeIndexChunks(profile, kept, extras)));
      debug(`wrote the catalog index ${key} (${kept.length} backup(s)${extras.listing ? `, the listing at generation ${extras.generation ?? 'none'}` : ''})`);
    } catch (error) {
      // A cache: a storage we cannot write to (read-only, a symlink in its place) still lists.
      debug(`could not write the catalog index ${key}: ${(error as Error).message}`);
    }
  }

  private async profileSummaries(
    index: typeof CatalogIndex,
    profile: string,
    entries: readonly Grouped[],
    listing: Listing,
    notes: ScanNotes,
    ignoreIndex: boolean,
    view?: ProfileView,
  ): Promise<Array<Found<SidecarSummary>>> {
    const debug = this.options.debug ?? (() => undefined);
    const key = index.catalogIndexKey(profile);
    const listed = new Map(entries.map((entry) => [(entry.sidecar as ObjectInfo).key, { object: entry.sidecar as ObjectInfo, id: entry.id }]));
    let read: IndexRead | null = view?.read ?? null;
    const stored = ignoreIndex || view?.cached ? undefined : listing.objects.find((object) => object.key === key);
    if (stored) {
      const maxBytes = index.maxIndexBytes(entries.map((entry) => entry.sidecar as ObjectInfo));
      let stream: Readable | null = null;
      try {
        if (stored.size > maxBytes) throw new Error(`larger than ${maxBytes} bytes`);
        stream = await this.storage.get(key);
        const parsed = await index.readIndex(stream, { profile, writtenAt: stored.modifiedAt, maxBytes, listed });
        if (typeof parsed === 'string') debug(`ignoring the catalog index ${key}: ${parsed}; rebuilding it from the sidecars`);
        else read = parsed;
      } catch (error) {
        debug(`ignoring the catalog index ${key}: ${(error as Error).message}; rebuilding it from the sidecars`);
      } finally {
        stream?.destroy();
      }
    }

    const found: Array<Found<SidecarSummary>> = [];
    const kept: Array<{ stamp: Stamp; sidecar: SidecarSummary }> = [];
    const unread: Grouped[] = [];
    for (const entry of entries) {
      const stamp = index.stampOf(entry.sidecar as ObjectInfo);
      const summary = read?.usable.get(stamp.key);
      if (summary) {
        found.push([entry, summary, true]);
        kept.push({ stamp, sidecar: summary });
      } else {
        unread.push(entry);
      }
    }
    // Missing, stale, invalid or too recent: from the sidecar. A recent entry read again and
    // found as recorded is no change; anything else is, and so is an entry of a sidecar gone.
    let changed = read === null || [...read.recorded.keys()].some((recordedKey) => !listed.has(recordedKey));
    const reclaim = heapReclaimer();
    const refusedBefore = notes.refused.length;
    await mapLimit(unread, 8, async (entry) => {
      const sidecar = await this.readOrWarn(entry, notes);
      reclaim();
      if (!sidecar) return;
      const summary = summaryOf(sidecar);
      const stamp = index.stampOf(entry.sidecar as ObjectInfo);
      found.push([entry, summary]);
      kept.push({ stamp, sidecar: summary });
      if (!index.unchanged(read, stamp, summary)) changed = true;
    });
    // What the reads left is garbage V8 would keep through the index's write (whose part
    // buffers come on top, 24 MiB on S3): on s3rver, 10,000 sidecars 202 -> 1xx MB.
    if (unread.length >= COLLECT_AFTER_READS) collectGarbage('full');
    if (unread.length > 0) debug(`read ${unread.length} of ${entries.length} sidecar(s) of profile ${profile}${read ? ' that its catalog index had no current entry for' : ' (no usable catalog index)'}`);
    // A paged profile listed now: the index records this listing and the generation read
    // before it, unless it already does.
    const profileObjects = view && !view.cached ? view.listing.objects : null;
    if (profileObjects && !changed) changed = read === null || read.generation !== view?.generation || !index.sameListing(read.listing, profileObjects, profile);
    if (listing.hostile.has(key)) {
      // Reported by assemble() as hostile: never read, followed, replaced or removed.
      debug(`not writing the catalog index ${key}: something that is not a regular file is in its place`);
    } else if (notes.refused.length > refusedBefore) {
      debug(`not writing the catalog index ${key}: the storage refused ${notes.refused.length - refusedBefore} of its sidecar(s)`);
    } else if (changed && (kept.length > 0 || read !== null || profileObjects !== null)) {
      const extras: IndexExtras = view ? { generation: view.generation, listing: view.listing.objects } : {};
      await this.writeIndex(index, profile, kept, extras);
    }
    return found;
  }

  /** Lists the found sidecars as a ScanResult: unfinished backups, damage, warnings, newest first. */
  private async assemble<S extends SidecarSummary>(
    listing: Listing,
    tolerateRefused: boolean,
    fetch: (entries: Grouped[], notes: ScanNotes) => Promise<Array<Found<S>>>,
  ): Promise<ScanResult<S>> {
    const warnings = [...listing.hostile].map(([key, kind]) => `${key} is ${describeKind(kind)}, not written by backupctl: never read, followed or removed; inspect it`);
    const groups = group(listing.objects);
    const incomplete: IncompleteEntry[] = [];
    const unreadable: UnreadableSidecar[] = [];
    const refused: RefusedSidecar[] = [];
    for (const entry of groups) {
      if (entry.sidecar) continue;
      // Something that is not a file where the sidecar goes: a backup whose sidecar cannot
      // be read (damaged), never an unfinished one whose files prune may remove.
      const key = sidecarKey(entry.profile, entry.id);
      const kind = listing.hostile.get(key);
      if (kind !== undefined) {
        unreadable.push({ profile: entry.profile, id: entry.id, reason: `the sidecar ${key} is ${describeKind(kind)}, not a regular file: never read or followed` });
        continue;
      }
      for (const file of entry.files) {
        incomplete.push({
          profile: entry.profile,
          id: entry.id,
          file: file.key.slice(entry.profile.length + 1),
          bytes: file.size,
          modifiedAt: file.modifiedAt.toISOString(),
        });
      }
    }
    const found = await fetch(
      groups.filter((entry) => entry.sidecar !== null),
      { warnings, unreadable, refused, tolerateRefused },
    );
    const damage = new Map<string, string[]>();
    for (const [entry, sidecar] of found) {
      const problems = damageOf(sidecar, entry.files, listing.hostile);
      if (problems.length > 0) damage.set(backupRef(sidecar), problems);
      // Files of the backup's id that its sidecar does not name: a rekey or copy killed
      // before its sidecar switched to them, or after, before the old ones went. Listed as
      // unfinished (prune removes them past --leftover-age), never taken for the backup's.
      const named = new Set([sidecar.artifact.file, ...(sidecar.globals.status === 'included' ? [sidecar.globals.file] : [])]);
      for (const file of entry.files) {
        const name = file.key.slice(entry.profile.length + 1);
        if (named.has(name) || listing.hostile.has(file.key)) continue;
        incomplete.push({ profile: entry.profile, id: entry.id, file: name, bytes: file.size, modifiedAt: file.modifiedAt.toISOString() });
      }
    }
    const backups = sortNewestFirst(
      found.map(([, sidecar]) => sidecar),
      (sidecar) => sidecar,
    );
    incomplete.sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : a.file.localeCompare(b.file)));
    warnings.sort();
    const indexed = new Set(found.filter(([, , fromIndex]) => fromIndex).map(([, sidecar]) => backupRef(sidecar)));
    unreadable.sort((a, b) => (a.reason < b.reason ? -1 : a.reason > b.reason ? 1 : 0));
    refused.sort((a, b) => (a.profile < b.profile ? -1 : a.profile > b.profile ? 1 : a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    return { backups, incomplete, warnings, unreadable, refused, damage, profiles: profilesIn(listing.objects), indexed };
  }

  private async readOrWarn(entry: Grouped, notes: ScanNotes): Promise<Sidecar | null> {
    try {
      return await this.read(entry.profile, entry.id);
    } catch (error) {
      if (error instanceof SidecarError || error instanceof NotFoundError) {
        notes.warnings.push(`skipped ${error.message}`);
        if (error instanceof SidecarError) notes.unreadable.push({ profile: entry.profile, id: entry.id, reason: error.message });
        return null;
      }
      if (notes.tolerateRefused && error instanceof StorageError && error.code === 'permission') {
        notes.refused.push({ profile: entry.profile, id: entry.id, error });
        return null;
      }
      throw error;
    }
  }

  /**
   * Reads and validates one sidecar. SidecarError is a sidecar that is there but is no valid
   * one: not JSON, invalid, too large, or not a regular file (a damaged backup). A sidecar
   * the storage did not give (permission denied, an I/O error, unreachable) says nothing
   * about the backup: that failure goes on as the storage's typed error (StorageError),
   * and so does a missing one (NotFoundError).
   */
  async read(profile: string, id: string): Promise<Sidecar> {
    const key = sidecarKey(profile, id);
    let bytes: Buffer;
    try {
      bytes = await this.storage.getBytes(key, MAX_SIDECAR_BYTES);
    } catch (error) {
      if (error instanceof TooLargeError || error instanceof HostileEntryError) throw new SidecarError(key, error.message);
      throw error;
    }
    // The schema (zod) loads with the first read: `create` only writes.
    const { parseSidecar } = await import('./sidecar-schema.js');
    return parseSidecar(key, bytes, { id, profile });
  }

  /**
   * Reads a sidecar for a command that removes its backup (delete): a sidecar that was read
   * but is not a valid one (not JSON, invalid, too large) comes back as `unreadable` with the
   * reason, for the backup can still be removed by its id. A sidecar that could not be read
   * at all is an error as in readForUse (something that is not a regular file: exit 3; a
   * storage failure: its StorageError): nothing is removed on the strength of a failed read.
   */
  async readForRemoval(profile: string, id: string): Promise<{ sidecar: Sidecar } | { unreadable: string; newerVersion: boolean }> {
    const key = sidecarKey(profile, id);
    let bytes: Buffer;
    try {
      bytes = await this.storage.getBytes(key, MAX_SIDECAR_BYTES);
    } catch (error) {
      if (error instanceof TooLargeError) return { unreadable: new SidecarError(key, `larger than ${MAX_SIDECAR_BYTES} bytes`).message, newerVersion: false };
      if (!(error instanceof HostileEntryError)) throw error;
      throw new BackupctlError(new SidecarError(key, error.message).message, { exitCode: ExitCode.VERIFY_FAILED, cause: error });
    }
    const { parseSidecar } = await import('./sidecar-schema.js');
    try {
      return { sidecar: parseSidecar(key, bytes, { id, profile }) };
    } catch (error) {
      if (error instanceof SidecarError) return { unreadable: error.message, newerVersion: error.newerVersion };
      throw error;
    }
  }

  async write(sidecar: Sidecar): Promise<void> {
    await this.storage.putBytes(sidecarKey(sidecar.profile, sidecar.id), serializeSidecar(sidecar));
  }

  /**
   * Every backup of the storage (or of one profile) that has a sidecar, unread: `{profile, id}`.
   * `startAfter` (a key) leaves out the keys up to it: with a profile's `<profile>/<id>`,
   * the backups that began no later than that id's second.
   */
  async completed(profile?: string, options: { startAfter?: string | undefined } = {}): Promise<Array<{ profile: string; id: string }>> {
    if (profile !== undefined && !isProfileName(profile)) throw usageError(`invalid profile name ${JSON.stringify(profile)}`);
    return group(await this.storage.list(profile ?? '', { startAfter: options.startAfter }))
      .filter((entry) => entry.sidecar !== null)
      .map(({ profile: p, id }) => ({ profile: p, id }));
  }

  /**
   * The folders of the storage root named like profiles, from one request (Storage.children)
   * instead of a listing of every key: where a backup of any profile may be looked up by key
   * or by time. A folder may hold no backup (local storage names empty directories).
   */
  async profileFolders(): Promise<string[]> {
    return (await this.storage.children('')).filter(isProfileName);
  }

  /**
   * The folders of the root that are profiles: those holding something a backupctl run
   * wrote (holdsBackupctlObjects; a run log or lock found with a request or two, else the
   * folder is listed). A folder this user may not read is passed over with a warning.
   */
  async backupctlFolders(): Promise<{ profiles: string[]; warnings: string[] }> {
    const profiles: string[] = [];
    const warnings: string[] = [];
    for (const name of await this.profileFolders()) {
      try {
        if ((await this.holdsRunFiles(name)) || holdsBackupctlObjects(name, (await this.storage.list(name)).map((object) => object.key))) profiles.push(name);
      } catch (error) {
        if (!(error instanceof PermissionError)) throw error;
        warnings.push(`skipped the folder ${name} of ${this.storage.location}: ${error.message}`);
      }
    }
    return { profiles, warnings };
  }

  /** True when the profile has a catalog generation marker (so something in the storage; see catalog-generation.ts). */
  async hasGeneration(profile: string): Promise<boolean> {
    return (await readGeneration(this.storage, profile)) !== null;
  }

  /** The profiles that have anything in the storage (a sidecar, an artifact, a run log...). */
  async profiles(): Promise<string[]> {
    return profilesIn(await this.storage.list(''));
  }

  /**
   * Reads a sidecar for a command that acts on it: one that is there but no valid sidecar
   * (SidecarError) is a corrupt backup (exit 3); one the storage did not give is its
   * StorageError (permission denied, I/O, unreachable: exit 1), never taken for corruption.
   */
  async readForUse(profile: string, id: string): Promise<Sidecar> {
    try {
      return await this.read(profile, id);
    } catch (error) {
      if (error instanceof SidecarError) throw new BackupctlError(error.message, { exitCode: ExitCode.VERIFY_FAILED, cause: error });
      throw error;
    }
  }
}

/** The profiles that have anything in a listing. */
export function profilesIn(objects: readonly ObjectInfo[]): string[] {
  const found = new Set<string>();
  const profileOk = profileNameCheck();
  for (const object of objects) {
    const slash = object.key.indexOf('/');
    if (slash <= 0 || slash === object.key.length - 1 || object.key.indexOf('/', slash + 1) >= 0) continue;
    const profile = object.key.slice(0, slash);
    if (profileOk(profile)) found.add(profile);
  }
  return [...found].sort();
}

/**
 * Sorts newest first: by start time, then by id (descending). Each time is parsed once
 * (a comparator that parses both sides parses 10,000 times 14 of them).
 */
export function sortNewestFirst<T>(items: readonly T[], of: (item: T) => { startedAt: string; id: string }): T[] {
  const keyed = items.map((item) => {
    const { startedAt, id } = of(item);
    return { item, time: Date.parse(startedAt), id };
  });
  keyed.sort((a, b) => b.time - a.time || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  return keyed.map((entry) => entry.item);
}
