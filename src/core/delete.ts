import { backupRef, sidecarKey, type Catalog } from '../catalog/catalog.js';
import { idTime } from '../catalog/id.js';
import type { Sidecar } from '../catalog/sidecar.js';
import { BackupctlError, ExitCode, throwIfAborted, usageError } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import { acquireProfileLock } from './lock.js';
import { backupKeys } from './prune-plan.js';
import { removeItem } from './prune.js';
import type { Runtime } from './runtime.js';
import { findBackupForRemoval, scanScope, type BackupScope, type LocatedBackup, type UnreadableBackup } from './scope.js';
import { storageError } from './storage-errors.js';

export interface DeleteRequest {
  scope: BackupScope;
  /** Ids (or unique prefixes) of the backups to remove; `latest` is refused (say which one). */
  refs: string[];
  /** Also the newest good backup of a profile. */
  force: boolean;
  dryRun: boolean;
  /** `--wait`: how long to wait for each profile's lock (default: fail at once, exit 4). */
  waitMs?: number | undefined;
}

export interface DeletedBackup {
  id: string;
  profile: string;
  storage: string;
  createdAt: string;
  bytes: number;
  /** What was (or, with --dry-run, would be) removed, sidecar first. */
  keys: string[];
  removed: boolean;
  error?: string;
  /**
   * Set when the backup's sidecar could not be read (not JSON, invalid, too large): what is
   * wrong with it. Such a backup is removed by its id: its sidecar and every other file
   * named `<id>.*` in its profile (`keys`; regular files only, never anything else).
   */
  unreadable?: string;
}

export interface DeleteResult {
  dryRun: boolean;
  backups: DeletedBackup[];
  /** Removals that failed (exit 1). */
  errors: string[];
}

/**
 * Removes chosen backups: each backup's sidecar first, then its artifact and globals (as
 * prune does, so an interrupted delete never leaves a sidecar pointing at nothing), under
 * the lock of its profile. Every id is found and checked before anything is removed: the
 * newest good backup of a profile (completed, artifact as recorded) is refused without
 * `force`, and so is `latest` (an operator names what they delete).
 */
/** Runs one profile's part of a delete as a reported run (the command wraps it: run log, notifications). */
export type ProfileRun = (profile: string, storage: Storage, work: () => Promise<DeletedBackup[]>) => Promise<DeletedBackup[]>;

export async function deleteBackups(request: DeleteRequest, runtime: Runtime, report: ProfileRun = (_p, _s, work) => work()): Promise<DeleteResult> {
  if (request.refs.length === 0) throw usageError('delete needs at least one backup id');
  if (request.refs.includes('latest')) throw usageError('delete takes backup ids, not "latest"', 'run "backupctl list" and name the backup (a unique prefix of its id will do)');
  const found = new Map<string, Chosen>();
  for (const ref of request.refs) {
    const backup = chosenOf(await findBackupForRemoval(request.scope, ref));
    found.set(`${backup.storage.location}\u0000${backup.profile}/${backup.id}`, backup);
  }
  const chosen = [...found.values()];

  // The newest good backup of each profile involved, from a scan of the scope.
  const scan = await scanScope(request.scope);
  const newestGood = new Map<string, Sidecar>();
  for (const { sidecar, storage } of scan.backups) {
    const key = `${storage.location}\u0000${sidecar.profile}`;
    if (!newestGood.has(key) && !scan.damage.has(backupRef(sidecar))) newestGood.set(key, sidecar);
  }
  if (!request.force) {
    // A sidecar that cannot be read is damage (it can always go), except one written by a
    // newer backupctl: that one may be a sound backup this version cannot read.
    const protectedOnes = chosen.filter((b) =>
      b.unreadable === undefined ? newestGood.get(`${b.storage.location}\u0000${b.profile}`)?.id === b.id : b.unreadable.newerVersion,
    );
    if (protectedOnes.length > 0) {
      const newer = protectedOnes.filter((b) => b.unreadable !== undefined);
      throw new BackupctlError(
        newer.length === protectedOnes.length
          ? `refusing to delete backups written by a newer backupctl: ${protectedOnes.map((b) => `${b.profile}/${b.id}`).join(', ')}; nothing was removed`
          : `refusing to delete the newest good backup of a profile: ${protectedOnes.map((b) => `${b.profile}/${b.id}`).join(', ')}; nothing was removed`,
        {
          exitCode: ExitCode.USAGE,
          hint:
            newer.length === protectedOnes.length
              ? 'a newer backupctl can read them; add --force if they are really to go'
              : 'add --force if that is really meant (the profile is then left with older backups only)',
        },
      );
    }
  }

  const result: DeleteResult = { dryRun: request.dryRun, backups: [], errors: [] };
  const byProfile = new Map<string, Chosen[]>();
  for (const backup of chosen) {
    const key = `${backup.storage.location}\u0000${backup.profile}`;
    byProfile.set(key, [...(byProfile.get(key) ?? []), backup]);
  }
  for (const group of byProfile.values()) {
    const { storage, profile } = group[0] as Chosen;
    const work = async (): Promise<DeletedBackup[]> => {
      const done: DeletedBackup[] = [];
      const lock = request.dryRun ? null : await acquireProfileLock({ storage, profile, command: 'delete', waitMs: request.waitMs, runtime });
      try {
        for (const backup of group) {
          throwIfAborted(runtime.signal);
          const { keys, bytes } = backup.unreadable === undefined ? backupKeys(backup.sidecar) : await filesOfId(backup.unreadable);
          const entry: DeletedBackup = { id: backup.id, profile, storage: storage.location, createdAt: backup.createdAt, bytes, keys, removed: false };
          if (backup.unreadable !== undefined) entry.unreadable = backup.unreadable.reason;
          if (!request.dryRun) {
            const failure = await removeItem(storage, { kind: 'backup', keys, profile, id: backup.id });
            if (failure === null) {
              entry.removed = true;
              runtime.reporter.info(
                backup.unreadable === undefined
                  ? `removed backup ${profile}/${backup.id}`
                  : `removed backup ${profile}/${backup.id}, whose sidecar could not be read: ${keys.join(', ')}`,
              );
            } else {
              entry.error = failure;
              runtime.reporter.warn(`could not remove ${profile}/${backup.id}: ${failure}`);
            }
          }
          done.push(entry);
        }
      } finally {
        await lock?.release();
      }
      return done;
    };
    const done = request.dryRun ? await work() : await report(profile, storage, work);
    result.backups.push(...done);
    result.errors.push(...done.filter((d) => d.error).map((d) => `${d.profile}/${d.id}: ${d.error as string}`));
  }
  return result;
}

/** A backup chosen for removal: read from its sidecar, or known only by its id (`unreadable`). */
type Chosen = { profile: string; id: string; createdAt: string; storage: LocatedBackup['storage'] } & (
  | { sidecar: Sidecar; unreadable?: undefined }
  | { sidecar?: undefined; unreadable: UnreadableBackup }
);

function chosenOf(found: LocatedBackup | UnreadableBackup): Chosen {
  if ('sidecar' in found) return { profile: found.sidecar.profile, id: found.sidecar.id, createdAt: found.sidecar.startedAt, storage: found.storage, sidecar: found.sidecar };
  return { profile: found.profile, id: found.id, createdAt: idTime(found.id).toISOString(), storage: found.storage, unreadable: found };
}

/**
 * What belongs to a backup whose sidecar cannot be read: its sidecar first, then every
 * other object of the profile that the catalog counts as of that id (`<id>` or `<id>.*`,
 * see catalog.ts group()), from a listing of the profile. Entries that are not regular
 * objects (a symlink, FIFO or device on local storage or SFTP) are never among them; a
 * sidecar that is one is refused.
 */
async function filesOfId(backup: UnreadableBackup): Promise<{ keys: string[]; bytes: number }> {
  const { profile, id, storage } = backup;
  const catalog: Catalog = backup.catalog;
  let listing: Awaited<ReturnType<Catalog['listing']>>;
  try {
    listing = await catalog.listing(profile);
  } catch (error) {
    throw storageError(error, storage.location, `listing profile ${profile}`, 'read');
  }
  const sidecar = sidecarKey(profile, id);
  if (listing.hostile.has(sidecar) || !listing.objects.some((object) => object.key === sidecar)) {
    throw new BackupctlError(`${sidecar} is not a regular file in ${storage.location}: nothing was removed`, {
      exitCode: ExitCode.VERIFY_FAILED,
      hint: 'inspect it: backupctl never removes what it did not write',
    });
  }
  const keys = [sidecar];
  let bytes = 0;
  const prefix = `${profile}/${id}`;
  for (const object of listing.objects) {
    if (object.key === sidecar || listing.hostile.has(object.key)) continue;
    const name = object.key.slice(profile.length + 1);
    if (!object.key.startsWith(`${profile}/`) || name.includes('/')) continue;
    if (object.key !== prefix && !object.key.startsWith(`${prefix}.`)) continue;
    keys.push(object.key);
    bytes += object.size;
  }
  return { keys, bytes };
}
