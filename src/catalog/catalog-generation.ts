/**
 * The catalog generation: `<root>/<profile>/catalog-generation.json`, what tells a command
 * whether the listing cached in the profile's catalog index (catalog-index.ts) is still
 * the storage's, so that a storage whose listing is paged (S3, Azure, SFTP:
 * StorageCapabilities.pagedList) is not listed by every `list`, `status` or
 * `prune --dry-run` (a profile of 10,000 backups is 30,000 keys: 30 requests on S3).
 * Contract:
 *
 * - Every run that writes or removes a backup's file (a key `<profile>/<id>...`: artifact,
 *   globals, sidecar) writes the marker unsettled, with a new token, before its first such
 *   change to the profile, and settled, with another new token, when the run closes its
 *   storages (ChangeTracking below). A run killed in between leaves the marker unsettled.
 * - A command that lists a profile reads the marker before it lists; the index it then
 *   writes records the token it read. A later command uses the index's listing in place of
 *   a listing only when the marker is settled and holds that token: any backupctl run that
 *   changed the profile since, finished or not, makes it list again.
 * - A missing or unreadable marker (a storage written by an older backupctl, or copied
 *   by other tools) is never trusted: the first command that lists a profile writes a
 *   settled one after that listing (which is then recorded with no generation, never
 *   trusted: the next command lists again, after the marker), and only into a folder that
 *   holds something of backupctl's (holdsBackupctlObjects): a folder of something else in
 *   the same bucket or directory is not a profile, and a read-only command never writes
 *   there (nor uses a marker or index found there: see PROFILE_FILES). A marker that cannot be written (a read-only user) costs listings, never fails a
 *   command.
 * - Local storage and memory are listed every time (pagedList false) and get no marker;
 *   a run that changes a profile there removes the profile's marker, before its first
 *   change and again when it ends, since the same directory may be read over SFTP.
 * - What other tools change (a lifecycle rule, a manual delete) is seen once backupctl
 *   next changes the profile, and at once by `prune`, which always lists before it removes
 *   anything; commands that act on one backup read its sidecar and files themselves.
 */
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { GetOptions, ListOptions, ObjectInfo, PutOptions, StaleTemporariesOptions, Storage, StorageCapabilities } from '../storage/storage.js';
import { ID_PATTERN, isProfileName } from './id.js';

export const CATALOG_GENERATION_FILE = 'catalog-generation.json';
const FORMAT = 'backupctl-catalog-generation';
const MAX_BYTES = 4096;

/** `<profile>/catalog-generation.json` */
export function catalogGenerationKey(profile: string): string {
  return `${profile}/${CATALOG_GENERATION_FILE}`;
}

export interface Generation {
  token: string;
  /** False from a run's first change of the profile until it ends (or forever, if it was killed). */
  settled: boolean;
}

function newToken(): string {
  return randomBytes(12).toString('hex');
}

/** The marker as stored, or null when it is missing, unreadable or not one (never trusted then). */
export async function readGeneration(storage: Storage, profile: string): Promise<Generation | null> {
  let raw: unknown;
  try {
    raw = JSON.parse((await storage.getBytes(catalogGenerationKey(profile), MAX_BYTES)).toString('utf8'));
  } catch {
    return null;
  }
  if (typeof raw !== 'object' || raw === null) return null;
  const { format, token, settled } = raw as Record<string, unknown>;
  if (format !== FORMAT || typeof token !== 'string' || !/^[0-9a-f]{24}$/.test(token) || typeof settled !== 'boolean') return null;
  return { token, settled };
}

/** Writes a new marker (a new token) and returns it. */
export async function writeGeneration(storage: Storage, profile: string, settled: boolean): Promise<Generation> {
  const generation = { token: newToken(), settled };
  const body = { format: FORMAT, version: 1, ...generation, writtenAt: new Date().toISOString() };
  await storage.putBytes(catalogGenerationKey(profile), Buffer.from(`${JSON.stringify(body)}\n`, 'utf8'));
  return generation;
}

/**
 * The profile's marker, or a settled one written now when there is none (best effort: null
 * when it cannot be written, a read-only storage; never throws). The caller has found the
 * folder to be backupctl's (holdsBackupctlObjects).
 */
export async function ensureGeneration(storage: Storage, profile: string, debug: (message: string) => void): Promise<Generation | null> {
  const found = await readGeneration(storage, profile);
  if (found) return found;
  try {
    return await writeGeneration(storage, profile, true);
  } catch (error) {
    debug(`could not write ${catalogGenerationKey(profile)}: ${(error as Error).message}; the catalog index will not stand in for a listing`);
    return null;
  }
}

/**
 * What the runs of a profile leave in its folder besides backups' files: its lock
 * (core/lock.ts), run log and the run log's lock (runlog.ts). Not the catalog index and
 * this marker: reading commands write those (an older backupctl wrote them into any folder
 * of the root), so they prove nothing.
 */
export const PROFILE_FILES: readonly string[] = ['lock.json', 'runs.jsonl', 'runs.jsonl.lock'];

/**
 * Whether a folder's listing (keys `<profile>/...`) holds anything a backupctl run wrote: a
 * backup's file (a sidecar, an artifact, a globals file, an unfinished one), a file of
 * PROFILE_FILES, or a claim of its lock (storage/exclusive.ts). A folder holding none is no
 * profile (whatever marker or index a reader left there): `list` and `status` pass it over,
 * and nothing is written into it by a command that only reads.
 */
export function holdsBackupctlObjects(profile: string, keys: Iterable<string>): boolean {
  const own = new Set(PROFILE_FILES.map((file) => `${profile}/${file}`));
  const claims = `${profile}/claims/lock.json.`;
  for (const key of keys) {
    if (own.has(key) || key.startsWith(claims) || profileOfBackupKey(key) === profile) return true;
  }
  return false;
}

/** The profile whose backup a key names (`<profile>/<id>` or `<profile>/<id>.<suffix>`), or null. */
export function profileOfBackupKey(key: string): string | null {
  const slash = key.indexOf('/');
  if (slash <= 0 || key.indexOf('/', slash + 1) >= 0) return null;
  const file = key.slice(slash + 1);
  const dot = file.indexOf('.');
  if (!ID_PATTERN.test(dot < 0 ? file : file.slice(0, dot))) return null;
  const profile = key.slice(0, slash);
  return isProfileName(profile) ? profile : null;
}

/**
 * A storage whose writes and removals of backups' files keep each profile's catalog
 * generation (see above): the storage every command of a run uses (core/storages.ts).
 * On a paged storage the marker is written unsettled before the change (a failure to
 * write it fails the change: a reader could otherwise trust a listing that misses it) and
 * settled on close() (a failure there leaves it unsettled: readers list, which is safe).
 * Elsewhere the marker is removed, before and after, on a best-effort basis.
 */
export class ChangeTracking implements Storage {
  /** Profiles changed in this run, by name: the unsettled marker's write (shared by concurrent changes). */
  private readonly begun = new Map<string, Promise<unknown>>();
  readonly localPath?: Storage['localPath'];
  readonly openLocalFile?: Storage['openLocalFile'];

  constructor(
    private readonly inner: Storage,
    private readonly debug: (message: string) => void = () => undefined,
  ) {
    if (inner.localPath) this.localPath = inner.localPath.bind(inner);
    if (inner.openLocalFile) this.openLocalFile = inner.openLocalFile.bind(inner);
  }

  get location(): string {
    return this.inner.location;
  }
  get capabilities(): StorageCapabilities {
    return this.inner.capabilities;
  }

  /** Marks the profile of `key` unsettled before its first change in this run. */
  private async changing(key: string): Promise<void> {
    const profile = profileOfBackupKey(key);
    if (profile === null) return;
    let begun = this.begun.get(profile);
    if (!begun) {
      begun = this.inner.capabilities.pagedList ? writeGeneration(this.inner, profile, false) : this.forget(profile);
      this.begun.set(profile, begun);
      // A failed write is retried by the next change (and fails that one too).
      begun.catch(() => this.begun.delete(profile));
    }
    await begun;
  }

  /** Removes the profile's marker of a storage that is not paged (best effort). */
  private async forget(profile: string): Promise<void> {
    try {
      await this.inner.remove(catalogGenerationKey(profile));
    } catch (error) {
      this.debug(`could not remove ${catalogGenerationKey(profile)}: ${(error as Error).message}`);
    }
  }

  /** Settles every profile this run changed. Never throws: an unsettled marker only costs listings. */
  async settle(): Promise<void> {
    const profiles = [...this.begun.keys()];
    this.begun.clear();
    for (const profile of profiles) {
      if (!this.inner.capabilities.pagedList) {
        await this.forget(profile);
        continue;
      }
      try {
        await writeGeneration(this.inner, profile, true);
      } catch (error) {
        this.debug(`could not settle ${catalogGenerationKey(profile)}: ${(error as Error).message}; commands will list profile ${profile} until a run settles it`);
      }
    }
  }

  open(): Promise<StorageCapabilities> {
    return this.inner.open();
  }
  async close(): Promise<void> {
    await this.settle();
    await this.inner.close();
  }
  async put(key: string, source: Readable, options?: PutOptions): Promise<{ bytes: number }> {
    await this.changing(key);
    return this.inner.put(key, source, options);
  }
  async putBytes(key: string, data: Buffer): Promise<void> {
    await this.changing(key);
    return this.inner.putBytes(key, data);
  }
  async putIfAbsent(key: string, data: Buffer): Promise<boolean> {
    await this.changing(key);
    return this.inner.putIfAbsent(key, data);
  }
  async remove(key: string): Promise<void> {
    await this.changing(key);
    return this.inner.remove(key);
  }
  get(key: string, options?: GetOptions): Promise<Readable> {
    return this.inner.get(key, options);
  }
  getBytes(key: string, maxBytes: number): Promise<Buffer> {
    return this.inner.getBytes(key, maxBytes);
  }
  stat(key: string): Promise<ObjectInfo> {
    return this.inner.stat(key);
  }
  list(prefix: string, options?: ListOptions): Promise<ObjectInfo[]> {
    return this.inner.list(prefix, options);
  }
  children(prefix: string): Promise<string[]> {
    return this.inner.children(prefix);
  }
  checkWritable(prefix: string): Promise<void> {
    return this.inner.checkWritable(prefix);
  }
  removeStaleTemporaries(prefix: string, olderThan: Date, options?: StaleTemporariesOptions): Promise<{ files: number; bytes: number }> {
    return this.inner.removeStaleTemporaries(prefix, olderThan, options);
  }
}
