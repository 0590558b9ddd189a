import { backupRef } from '../catalog/catalog.js';
import type { Sidecar } from '../catalog/sidecar.js';
import { BackupctlError, ExitCode, throwIfAborted, usageError } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import { acquireProfileLock } from './lock.js';
import { backupKeys } from './prune-plan.js';
import { removeItem } from './prune.js';
import type { Runtime } from './runtime.js';
import { findBackup, scanScope, type BackupScope, type LocatedBackup } from './scope.js';

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
  const found = new Map<string, LocatedBackup>();
  for (const ref of request.refs) {
    const backup = await findBackup(request.scope, ref);
    found.set(`${backup.storage.location}\u0000${backupRef(backup.sidecar)}`, backup);
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
    const protectedOnes = chosen.filter((b) => newestGood.get(`${b.storage.location}\u0000${b.sidecar.profile}`)?.id === b.sidecar.id);
    if (protectedOnes.length > 0) {
      throw new BackupctlError(
        `refusing to delete the newest good backup of a profile: ${protectedOnes.map((b) => backupRef(b.sidecar)).join(', ')}; nothing was removed`,
        { exitCode: ExitCode.USAGE, hint: 'add --force if that is really meant (the profile is then left with older backups only)' },
      );
    }
  }

  const result: DeleteResult = { dryRun: request.dryRun, backups: [], errors: [] };
  const byProfile = new Map<string, LocatedBackup[]>();
  for (const backup of chosen) {
    const key = `${backup.storage.location}\u0000${backup.sidecar.profile}`;
    byProfile.set(key, [...(byProfile.get(key) ?? []), backup]);
  }
  for (const group of byProfile.values()) {
    const { storage, sidecar: first } = group[0] as LocatedBackup;
    const work = async (): Promise<DeletedBackup[]> => {
      const done: DeletedBackup[] = [];
      const lock = request.dryRun ? null : await acquireProfileLock({ storage, profile: first.profile, command: 'delete', waitMs: request.waitMs, runtime });
      try {
        for (const { sidecar } of group) {
          throwIfAborted(runtime.signal);
          const { keys, bytes } = backupKeys(sidecar);
          const entry: DeletedBackup = { id: sidecar.id, profile: sidecar.profile, storage: storage.location, createdAt: sidecar.startedAt, bytes, keys, removed: false };
          if (!request.dryRun) {
            const failure = await removeItem(storage, { kind: 'backup', keys });
            if (failure === null) {
              entry.removed = true;
              runtime.reporter.info(`removed backup ${sidecar.profile}/${sidecar.id}`);
            } else {
              entry.error = failure;
              runtime.reporter.warn(`could not remove ${sidecar.profile}/${sidecar.id}: ${failure}`);
            }
          }
          done.push(entry);
        }
      } finally {
        await lock?.release();
      }
      return done;
    };
    const done = request.dryRun ? await work() : await report(first.profile, storage, work);
    result.backups.push(...done);
    result.errors.push(...done.filter((d) => d.error).map((d) => `${d.profile}/${d.id}: ${d.error as string}`));
  }
  return result;
}
