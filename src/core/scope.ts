import { backupRef, Catalog, mapLimit, profilesIn, sidecarKey, sortNewestFirst, type IncompleteEntry, type Listing, type RefusedSidecar, type ScanResult, type UnreadableSidecar } from '../catalog/catalog.js';
import { ID_PATTERN, ID_REF_PATTERN, idStamp, matchIds } from '../catalog/id.js';
import { SidecarError, type Sidecar, type SidecarSummary } from '../catalog/sidecar.js';
import { implicitProfile, settingsOf, storagesInScope, unknownProfile, type ProfileSettings, type ResolvedSettings } from '../config/resolve.js';
import { BackupctlError, ExitCode, usageError } from '../errors.js';
import type { Runtime } from './runtime.js';
import { storageAt } from './storages.js';
import { NotFoundError, StorageError, type Storage } from '../storage/storage.js';
import { storageError } from './storage-errors.js';
import { profileNameFor, profileOfConnection } from './profile-name.js';
import { datedAheadBy, describeAhead } from './clock-skew.js';

/**
 * Where commands over existing backups (list, show, verify, restore, status, delete) look:
 * the storages of the resolved settings (see storagesInScope), narrowed to the profile
 * named by --profile or BACKUPCTL_PROFILE when there is one. An id is found in any of them.
 */
export interface BackupScope {
  settings: ResolvedSettings;
  runtime: StorageRuntime;
  /** The profile the command is narrowed to, if any. */
  profile: string | undefined;
  locations: Array<{ location: string; storage: Storage; catalog: Catalog }>;
}

/** A backup and the storage it lives in. */
export interface LocatedBackup<S extends SidecarSummary = Sidecar> {
  sidecar: S;
  storage: Storage;
  catalog: Catalog;
}

export interface ScopeScan<S extends SidecarSummary = Sidecar> {
  backups: Array<LocatedBackup<S>>;
  incomplete: IncompleteEntry[];
  warnings: string[];
  /** See ScanResult.unreadable, with the storage each is in. */
  unreadable: Array<UnreadableSidecar & { storage: Storage }>;
  /** See ScanResult.refused (only with `tolerateRefused`), with the storage each is in. */
  refused: Array<RefusedSidecar & { storage: Storage }>;
  /** See ScanResult.damage, keyed by `<profile>/<id>`. */
  damage: Map<string, string[]>;
  /** Every profile seen in the storages (with anything in them). */
  profilesFound: string[];
}

type StorageRuntime = Pick<Runtime, 'env' | 'cwd' | 'reporter' | 'now'>;

export function backupScope(settings: ResolvedSettings, runtime: StorageRuntime): BackupScope {
  const locations = storagesInScope(settings).map((location) => {
    // A named profile's own driver settings; otherwise those of the profile whose storage it is.
    const driverSettings = settings.named !== undefined ? settingsOf(settings, settings.named).storageSettings : settings.storageSettings(location);
    const storage = storageAt(runtime, location, driverSettings);
    return { location, storage, catalog: new Catalog(storage, { debug: (message) => runtime.reporter.debug(message) }) };
  });
  return { settings, runtime, profile: settings.named, locations };
}

/**
 * Reads every sidecar in scope, newest first. A named profile that is neither configured
 * nor present in its storage is a usage error (exit 2): a typo must not read as "no backups".
 * With `summaries`, backups come as summaries (sidecars without `tables`) from the catalog
 * index where it holds (Catalog.summaries): for commands that show or weigh backups, never
 * for those that write a sidecar back or act on one.
 */
export async function scanScope(scope: BackupScope, options: { doing?: string; summaries: true; tolerateRefused?: boolean }): Promise<ScopeScan<SidecarSummary>>;
export async function scanScope(scope: BackupScope, options?: { doing?: string; summaries?: false }): Promise<ScopeScan<Sidecar>>;
export async function scanScope(scope: BackupScope, options: { doing?: string; summaries?: boolean; tolerateRefused?: boolean } = {}): Promise<ScopeScan<SidecarSummary>> {
  const result: ScopeScan<SidecarSummary> = { backups: [], incomplete: [], warnings: [], unreadable: [], refused: [], damage: new Map(), profilesFound: [] };
  const found = new Set<string>();
  for (const { storage, catalog } of scope.locations) {
    try {
      const scanned: ScanResult<SidecarSummary> = options.summaries ? await catalog.summaries(scope.profile, { tolerateRefused: options.tolerateRefused ?? false }) : await catalog.scan(scope.profile);
      for (const sidecar of scanned.backups) result.backups.push({ sidecar, storage, catalog });
      result.incomplete.push(...scanned.incomplete);
      result.warnings.push(...scanned.warnings);
      for (const entry of scanned.unreadable) result.unreadable.push({ ...entry, storage });
      for (const entry of scanned.refused) result.refused.push({ ...entry, storage });
      for (const [key, problems] of scanned.damage) result.damage.set(key, problems);
      if (scope.profile === undefined) for (const profile of scanned.profiles) found.add(profile);
    } catch (error) {
      throw storageError(error, storage.location, options.doing ?? 'listing backups', 'read');
    }
  }
  if (scope.profile !== undefined) {
    if (result.backups.length > 0 || result.incomplete.length > 0) found.add(scope.profile);
    else await assertKnownProfile(scope);
  }
  result.profilesFound = [...found].sort();
  result.backups = sortNewestFirst(result.backups, (backup) => backup.sidecar);
  return result;
}

/** A named profile must be configured or have something in its storage. */
export async function assertKnownProfile(scope: BackupScope): Promise<void> {
  const name = scope.profile;
  if (name === undefined || scope.settings.profiles.has(name)) return;
  const profile = settingsOf(scope.settings, name);
  const present = await profilesPresent(storageAt(scope.runtime, profile.storage, profile.storageSettings), name);
  if (!present.includes(name)) throw unknownProfile(scope.settings, name, present);
}

/** assertKnownProfile for a profile named after the connection's database: says where the name came from. */
async function assertDerivedProfile(scope: BackupScope, derived: { name: string; database: string; from: string }): Promise<void> {
  try {
    await assertKnownProfile(scope);
  } catch (error) {
    if (!(error instanceof BackupctlError) || error.exitCode !== ExitCode.USAGE) throw error;
    throw usageError(
      `no backup of database ${JSON.stringify(derived.database)} (${derived.from}) at ${scope.locations.map((l) => l.storage.location).join(', ')}: without a config, "latest" is the newest backup of profile "${derived.name}", named after it`,
      `name the profile with --profile${error.hint?.startsWith('profiles: ') ? ` (${error.hint})` : ''}`,
    );
  }
}

/**
 * A profile that is not in the config (`profile.configured` false) must at least have
 * something in its storage. Returns the profile's listing made to find out, when one was
 * made (not for a storage whose listing is paged: there the root's folders tell, and the
 * catalog lists the profile only when its index cannot stand in for it).
 */
export async function assertProfileExists(profile: ProfileSettings, runtime: StorageRuntime): Promise<Listing | null> {
  if (profile.configured) return null;
  const storage = storageAt(runtime, profile.storage, profile.storageSettings);
  if (storage.capabilities.pagedList) {
    await assertProfileFolder(storage, profile.name);
    return null;
  }
  return assertProfileInStorage(storage, profile.name);
}

/** assertProfileInStorage from the storage root's folders (one request), without listing the profile. */
async function assertProfileFolder(storage: Storage, profile: string): Promise<void> {
  let present: string[];
  try {
    if (await new Catalog(storage).hasGeneration(profile)) return;
    present = await new Catalog(storage).profileFolders();
  } catch (error) {
    throw storageError(error, storage.location, `listing profile ${profile}`, 'read');
  }
  if (!present.includes(profile)) {
    throw usageError(`no profile named "${profile}" in ${storage.location}`, present.length > 0 ? `profiles there: ${present.join(', ')}` : 'the storage holds no backups yet');
  }
}

/**
 * A profile that is not in the config must at least have something in the storage. Returns
 * the listing of the profile made to find out (a dry run may plan from it). Its own prefix
 * is listed first: a profile directory that is a symlink (or a file) is then reported as
 * such, not as an unknown name, and nothing behind it is read; only for the hint of an
 * unknown name is the whole storage listed.
 */
export async function assertProfileInStorage(storage: Storage, profile: string): Promise<Listing> {
  const catalog = new Catalog(storage);
  let listing: Listing;
  let present: string[] = [];
  try {
    listing = await catalog.listing(profile);
    if (!profilesIn(listing.objects).includes(profile)) present = await catalog.profiles();
  } catch (error) {
    throw storageError(error, storage.location, `listing profile ${profile}`, 'read');
  }
  if (!profilesIn(listing.objects).includes(profile)) {
    throw usageError(
      `no profile named "${profile}" in ${storage.location}`,
      present.length > 0 ? `profiles there: ${present.join(', ')}` : 'the storage holds no backups yet',
    );
  }
  return listing;
}

/**
 * The profiles in a storage. When `wanted` is not among them, its own prefix is walked
 * too: a profile directory that is a symlink (or a file) is then reported as such, not
 * as an unknown name, and nothing behind it is read. A storage whose listing is paged
 * names its folders in one request instead (no symlinks there).
 */
async function profilesPresent(storage: Storage, wanted: string): Promise<string[]> {
  try {
    if (storage.capabilities.pagedList) return await new Catalog(storage).profileFolders();
    const present = await new Catalog(storage).profiles();
    if (!present.includes(wanted)) await storage.list(wanted);
    return present;
  } catch (error) {
    throw storageError(error, storage.location, `listing profile ${wanted}`, 'read');
  }
}

/**
 * Finds one backup: `latest` (the newest completed backup in scope, narrowed by `tag`), a
 * whole id, or a unique prefix of an id or of its random part. Not found, and an ambiguous
 * prefix (listing the candidates), are usage errors (exit 2).
 */
export async function findBackup(
  scope: BackupScope,
  ref: string,
  options: { tag?: string | undefined; into?: string | undefined } = {},
): Promise<LocatedBackup> {
  const storages = scope.locations.map((l) => l.storage.location).join(', ');
  if (ref === 'latest') {
    // The profile meant without --profile (defaultProfile, the config's only one; with no
    // profiles in the config, the one named after the database, as for create): the newest
    // backup of another profile is never what `restore latest --clean` should take.
    let derived = scope.profile ?? implicitProfile(scope.settings) ?? (scope.settings.profiles.size === 0 ? profileOfConnection(scope.settings) : undefined);
    if (derived === undefined && scope.settings.profiles.size === 0 && options.into !== undefined) derived = await profileOfTarget(scope, options.into);
    const profile = typeof derived === 'object' ? derived.name : derived;
    const narrowed = profile === scope.profile ? scope : { ...scope, profile };
    if (typeof derived === 'object') await assertDerivedProfile(narrowed, derived);
    else if (narrowed.profile !== undefined) await assertKnownProfile(narrowed);
    const where = narrowed.profile ? `profile "${narrowed.profile}"` : 'any profile';
    const found = options.tag === undefined ? await newestReadable(narrowed) : await newestTagged(narrowed, options.tag);
    if (!found) {
      throw new BackupctlError(`no completed backup in ${where}${options.tag ? ` tagged "${options.tag}"` : ''} at ${storages}`, {
        exitCode: ExitCode.USAGE,
        hint: 'run "backupctl list" to see what is there',
      });
    }
    const ahead = datedAheadBy(found.sidecar, scope.runtime.now().getTime());
    if (ahead !== null) {
      scope.runtime.reporter.warn(`"latest" is ${describeAhead(found.sidecar, ahead)}: a clock was wrong (that host's ahead, or this one's behind), and backups made since may be newer; to be sure, name the backup by its id ("backupctl list")`);
    }
    return found;
  }
  return locateById(scope, ref, (location, profile, id) => readLocated(location, profile, id));
}

/**
 * `restore latest` with no profile named anywhere (no config, no database in --db-url,
 * DATABASE_URL or PGDATABASE): the profile of the database it restores into when that one
 * has backups here; any profile when at most one has; otherwise which database's backup
 * is meant cannot be told, and restoring the newest of any into `into` is refused.
 */
async function profileOfTarget(scope: BackupScope, into: string): Promise<string | undefined> {
  const present = new Set<string>();
  for (const location of scope.locations) {
    try {
      for (const { profile } of await location.catalog.completed()) present.add(profile);
    } catch (error) {
      throw storageError(error, location.storage.location, 'listing the backups', 'read');
    }
  }
  const own = profileNameFor(into);
  if (present.has(own)) return own;
  if (present.size <= 1) return undefined;
  const names = [...present].sort();
  throw usageError(
    `"latest" is not clear here: there are backups of ${names.length} databases (${names.slice(0, 5).join(', ')}${names.length > 5 ? ', ...' : ''}) and none of "${into}"; without a config, "restore latest" takes the newest backup of the database it restores into`,
    `say whose with --profile NAME (or PGDATABASE), or name the backup by its id ("backupctl list")`,
  );
}

/** A backup found by id whose sidecar is there but cannot be read (see Catalog.readForRemoval). */
export interface UnreadableBackup {
  profile: string;
  id: string;
  /** What is wrong with the sidecar (SidecarError's message). */
  reason: string;
  /** The sidecar was written by a newer backupctl (SidecarError.newerVersion). */
  newerVersion: boolean;
  storage: Storage;
  catalog: Catalog;
}

/**
 * findBackup for a command that removes what it finds (delete): `latest` is not taken, and a
 * backup whose sidecar is there but not valid (not JSON, invalid, too large) is found all
 * the same, as an UnreadableBackup: the listing knows its id, and it can be removed by it.
 */
export async function findBackupForRemoval(scope: BackupScope, ref: string): Promise<LocatedBackup | UnreadableBackup> {
  if (ref === 'latest') throw usageError('"latest" cannot be used here: name the backup');
  return locateById(scope, ref, async (location, profile, id): Promise<LocatedBackup | UnreadableBackup> => {
    const read = await location.catalog.readForRemoval(profile, id).catch((error: unknown) => {
      throw asReadFailure(error, location, profile, id);
    });
    if ('sidecar' in read) return { sidecar: read.sidecar, storage: location.storage, catalog: location.catalog };
    return { profile, id, reason: read.unreadable, newerVersion: read.newerVersion, storage: location.storage, catalog: location.catalog };
  });
}

async function readLocated(location: BackupScope['locations'][number], profile: string, id: string): Promise<LocatedBackup> {
  const sidecar = await location.catalog.readForUse(profile, id).catch((error: unknown) => {
    throw asReadFailure(error, location, profile, id);
  });
  return { sidecar, storage: location.storage, catalog: location.catalog };
}

/**
 * A sidecar the storage did not give (permission denied, I/O, unreachable): one line naming
 * the storage and the object (exit 1, 2 for a configuration problem), never a corrupt
 * backup. Anything else (a corrupt sidecar, a missing one) goes on as it is.
 */
function asReadFailure(error: unknown, location: BackupScope['locations'][number], profile: string, id: string): unknown {
  if (!(error instanceof StorageError) || error instanceof NotFoundError) return error;
  return storageError(error, location.storage.location, `reading backup ${profile}/${id}`, 'read');
}

/** A whole id or a unique prefix (see findBackup), opened with `open` once found. */
async function locateById<T>(scope: BackupScope, ref: string, open: (location: BackupScope['locations'][number], profile: string, id: string) => Promise<T>): Promise<T> {
  const storages = scope.locations.map((l) => l.storage.location).join(', ');
  const where = scope.profile ? `profile "${scope.profile}"` : 'any profile';
  if (!ID_REF_PATTERN.test(ref)) {
    throw usageError(`not a backup id: ${JSON.stringify(ref)}`, 'ids look like 20261123T140509Z-1a2b3c (a unique prefix of one, or of its last part, will do); or use "latest"');
  }
  if (ID_PATTERN.test(ref)) {
    const direct = await findByFullId(scope, ref);
    if (direct) return open(direct.location, direct.profile, ref);
  }
  if (scope.profile !== undefined) await assertKnownProfile(scope);
  const candidates: Array<{ profile: string; id: string; location: BackupScope['locations'][number] }> = [];
  for (const location of scope.locations) {
    let entries: Array<{ profile: string; id: string }>;
    try {
      entries = await location.catalog.completed(scope.profile);
    } catch (error) {
      throw storageError(error, location.storage.location, 'looking up backups', 'read');
    }
    for (const entry of entries) candidates.push({ ...entry, location });
  }
  const ids = matchIds(ref, candidates.map((c) => c.id));
  const matches = candidates.filter((c) => ids.includes(c.id));
  if (matches.length === 0) {
    throw new BackupctlError(`backup ${ref} not found in ${where} at ${storages}`, {
      exitCode: ExitCode.USAGE,
      hint: 'run "backupctl list" to see the ids (an artifact without a sidecar is not a backup: "list --all" shows such files, and "prune" removes them once older than --leftover-age)',
    });
  }
  if (matches.length > 1) {
    const sameId = new Set(matches.map((m) => m.id)).size === 1;
    const listed = matches.slice(0, 10).map((m) => `${m.profile}/${m.id}`).join(', ');
    throw usageError(
      sameId ? `backup id ${ref} exists in several profiles: ${listed}` : `backup id prefix "${ref}" is ambiguous: ${listed}${matches.length > 10 ? `, and ${matches.length - 10} more` : ''}`,
      sameId ? 'choose one with --profile' : 'give more characters of the id',
    );
  }
  const [match] = matches as [(typeof matches)[number]];
  return open(match.location, match.profile, match.id);
}

/**
 * The profiles to look in, by storage, without listing their backups: the named one, or
 * the profile folders of each storage (Catalog.profileFolders: one request, where listing
 * a root holding 10,000 backups takes 31 pages on an object store).
 */
async function profilesByLocation(scope: BackupScope): Promise<Map<BackupScope['locations'][number], string[]>> {
  const found = new Map<BackupScope['locations'][number], string[]>();
  for (const location of scope.locations) {
    if (scope.profile !== undefined) {
      found.set(location, [scope.profile]);
      continue;
    }
    try {
      found.set(location, await location.catalog.profileFolders());
    } catch (error) {
      throw storageError(error, location.storage.location, 'listing profiles', 'read');
    }
  }
  return found;
}

/**
 * A full id: its sidecar is looked up by its key (a stat) in each profile to look
 * in (profilesByLocation), instead of listing them: where it is (the caller reads it). Null unless exactly one storage and
 * profile hold it as a regular object: the listing then decides, and words the error (not
 * found, in several profiles, something that is not a file).
 */
async function findByFullId(scope: BackupScope, id: string): Promise<{ location: BackupScope['locations'][number]; profile: string } | null> {
  const found: Array<{ location: BackupScope['locations'][number]; profile: string }> = [];
  let profiles: Map<BackupScope['locations'][number], string[]>;
  try {
    profiles = await profilesByLocation(scope);
  } catch {
    return null;
  }
  for (const [location, names] of profiles) {
    let failed = false;
    await mapLimit(names, 8, async (profile) => {
      try {
        await location.storage.stat(sidecarKey(profile, id));
        found.push({ location, profile });
      } catch (error) {
        if (!(error instanceof NotFoundError)) failed = true;
      }
    });
    if (failed) return null;
  }
  const [match] = found;
  if (found.length !== 1 || !match) return null;
  return match;
}

/** Reads a sidecar for `latest`: null when it cannot be read (or is gone), so that the next one is taken. */
async function readOrSkip(catalog: Catalog, profile: string, id: string): Promise<Sidecar | null> {
  try {
    return await catalog.read(profile, id);
  } catch (error) {
    if (error instanceof SidecarError || error instanceof NotFoundError) return null;
    throw error;
  }
}

/**
 * How far back `latest` looks first in each profile: ids begin with their start time, so a
 * listing that starts after `<profile>/<id of that time>` holds every newer backup (those
 * a clock ahead dated in the future too). On an object store with 10,000 backups that is
 * one page instead of 31. Nothing readable in the window: the next one, then everything.
 */
const LATEST_WINDOWS_MS = [2, 14, 62].map((days) => days * 86_400_000);

type Located = { profile: string; id: string; location: BackupScope['locations'][number] };

/**
 * The completed backups in scope (those with a sidecar; none is read) that start after
 * `now - window`, in key order as a listing gives them; with a null window, everything
 * in scope as listed.
 */
async function completedSince(scope: BackupScope, profiles: Map<BackupScope['locations'][number], string[]>, window: number | null): Promise<Located[]> {
  const entries: Located[] = [];
  for (const location of scope.locations) {
    try {
      if (window === null) {
        for (const entry of await location.catalog.completed(scope.profile)) entries.push({ ...entry, location });
        continue;
      }
      const since = idStamp(new Date(Date.now() - window));
      const windowed: Array<{ profile: string; id: string }> = [];
      await mapLimit(profiles.get(location) ?? [], 8, async (profile) => {
        windowed.push(...(await location.catalog.completed(profile, { startAfter: `${profile}/${since}` })));
      });
      // In key order, as a listing gives them (ties between profiles resolve as with one).
      windowed.sort((a, b) => (a.profile < b.profile ? -1 : a.profile > b.profile ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      for (const entry of windowed) entries.push({ ...entry, location });
    } catch (error) {
      throw storageError(error, location.storage.location, 'listing backups', 'read');
    }
  }
  return entries;
}

/**
 * The newest `limit` ids of completed backups in scope, newest first, for shell completion:
 * no sidecar is read, and the windows of `latest` are widened until `limit` are found (on an
 * object store with 10,000 backups, a page or two per profile instead of the whole listing).
 */
export async function newestIds(scope: BackupScope, limit: number): Promise<string[]> {
  const profiles = await profilesByLocation(scope);
  let ids: string[] = [];
  for (const window of [...LATEST_WINDOWS_MS, null]) {
    ids = [...new Set((await completedSince(scope, profiles, window)).map((entry) => entry.id))].sort().reverse();
    if (ids.length >= limit) break;
  }
  return ids.slice(0, limit);
}

/**
 * `latest`: the newest readable backup in scope, reading as few sidecars as it can. Ids
 * begin with their start time (to the second), so the listing orders them: the sidecars
 * of the newest second are read (usually one) and the newest of those by start time wins,
 * as list orders them; an unreadable one is skipped for the next second down.
 */
async function newestReadable(scope: BackupScope): Promise<LocatedBackup | null> {
  const profiles = await profilesByLocation(scope);
  const windows: Array<number | null> = [...profiles.values()].some((names) => names.length > 0) ? [...LATEST_WINDOWS_MS, null] : [null];
  for (const window of windows) {
    const candidates = await completedSince(scope, profiles, window);
    const found = await newestOf(candidates);
    if (found) return found;
    if (window === null && candidates.length === 0) await assertKnownProfile(scope);
  }
  return null;
}

/** The newest readable backup of `candidates`, reading as few sidecars as it can; null when none is. */
async function newestOf(candidates: Located[]): Promise<LocatedBackup | null> {
  // Stable: for one id in several storages, the first storage in scope comes first (as in list).
  candidates.sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  const SECOND = 'YYYYMMDDTHHMMSSZ'.length;
  for (let start = 0; start < candidates.length; ) {
    let end = start + 1;
    while (end < candidates.length && (candidates[end] as (typeof candidates)[number]).id.slice(0, SECOND) === (candidates[start] as (typeof candidates)[number]).id.slice(0, SECOND)) end += 1;
    const read: LocatedBackup[] = [];
    for (const { profile, id, location } of candidates.slice(start, end)) {
      let sidecar: Sidecar | null;
      try {
        sidecar = await readOrSkip(location.catalog, profile, id);
      } catch (error) {
        throw storageError(error, location.storage.location, `reading backup ${profile}/${id}`, 'read');
      }
      if (sidecar) read.push({ sidecar, storage: location.storage, catalog: location.catalog });
    }
    const [newest] = sortNewestFirst(read, (backup) => backup.sidecar);
    if (newest) return newest;
    start = end;
  }
  return null;
}

/**
 * `latest --tag`: the newest backup carrying the tag, found through the catalog (its index)
 * and confirmed from its own sidecar, which is what the caller gets; one that no longer
 * carries the tag, or cannot be read, is skipped for the next.
 */
async function newestTagged(scope: BackupScope, tag: string): Promise<LocatedBackup | null> {
  const scanned = await scanScope(scope, { summaries: true });
  for (const candidate of scanned.backups) {
    if (!candidate.sidecar.tags.includes(tag)) continue;
    let sidecar: Sidecar | null;
    try {
      sidecar = await readOrSkip(candidate.catalog, candidate.sidecar.profile, candidate.sidecar.id);
    } catch (error) {
      throw storageError(error, candidate.storage.location, `reading backup ${backupRef(candidate.sidecar)}`, 'read');
    }
    if (sidecar?.tags.includes(tag)) return { sidecar, storage: candidate.storage, catalog: candidate.catalog };
  }
  return null;
}

export { backupRef };
