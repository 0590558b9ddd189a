/**
 * Copies of backups to other storages (3-2-1): the stored bytes as they are (compressed,
 * encrypted: a copy host needs no key), each file streamed from the source into the
 * destination, its digest checked on the way and then again by reading it back at the
 * destination; the sidecar is written there last, as `create` does. Until then the copy
 * does not exist at the destination; on any failure what was written there is removed.
 *
 * A copy runs under the destination profile's lock, so that a prune there never sees half
 * of it. A backup already at the destination with the same stored bytes is left alone; one
 * with the same id and other bytes is refused (never overwritten).
 */
import { artifactKey, backupRef, Catalog } from '../catalog/catalog.js';
import { readRunLog } from '../catalog/runlog-schema.js';
import { redactSecrets } from '../redact.js';
import type { Sidecar } from '../catalog/sidecar.js';
import { BackupctlError, ExitCode, throwIfAborted, usageError } from '../errors.js';
import { DigestStream, type Digest } from '../pipeline/digest.js';
import { NotFoundError, type Storage } from '../storage/storage.js';
import { digestMismatches, hashStored } from './archive.js';
import { acquireProfileLock } from './lock.js';
import { storedFiles } from './list.js';
import type { Runtime } from './runtime.js';
import { findBackup, scanScope, type BackupScope, type LocatedBackup } from './scope.js';
import { CATCH_UP_MAX, COPIED_IDS_MAX, missingCopies, placeOf, runIsRunning } from './status.js';
import { storageError } from './storage-errors.js';

export interface CopiedBackup {
  id: string;
  profile: string;
  from: string;
  to: string;
  /** Stored bytes of its files. */
  bytes: number;
  /** copied; present: already there, byte for byte; planned: a dry run; failed: see `error`. */
  result: 'copied' | 'present' | 'planned' | 'failed';
  error?: string;
  /** Of a failed copy: 3 when the source is not what its sidecar says (corrupt), else 1. */
  exitCode?: number;
}

export interface CopyRequest {
  scope: BackupScope;
  /** Ids (or unique prefixes) or `latest`; empty with `all`. */
  refs: string[];
  all: boolean;
  destination: Storage;
  dryRun: boolean;
  waitMs?: number | undefined;
}

export interface CopyResult {
  dryRun: boolean;
  to: string;
  backups: CopiedBackup[];
}

/** Runs one profile's part as a reported run (the command wraps it: run log, notifications). */
export type ProfileRun = (profile: string, storage: Storage, work: () => Promise<CopiedBackup[]>) => Promise<CopiedBackup[]>;

/** Finds the backups asked for, then copies them, profile by profile. */
export async function copyBackups(request: CopyRequest, runtime: Runtime, report: ProfileRun = (_p, _s, work) => work()): Promise<CopyResult> {
  if (request.all === (request.refs.length > 0)) throw usageError('copy needs backup ids (or "latest"), or --all (not both)');
  const chosen: LocatedBackup[] = [];
  if (request.all) {
    chosen.push(...(await scanScope(request.scope)).backups.reverse()); // oldest first
  } else {
    for (const ref of request.refs) {
      const found = await findBackup(request.scope, ref);
      if (!chosen.some((b) => b.sidecar.id === found.sidecar.id && b.storage === found.storage)) chosen.push(found);
    }
  }
  for (const backup of chosen) {
    if (backup.storage.location === request.destination.location) {
      throw usageError(`backup ${backupRef(backup.sidecar)} is in ${request.destination.location} already: copy to another storage`);
    }
  }
  const byProfile = new Map<string, LocatedBackup[]>();
  for (const backup of chosen) {
    const key = `${backup.storage.location}\u0000${backup.sidecar.profile}`;
    byProfile.set(key, [...(byProfile.get(key) ?? []), backup]);
  }
  const result: CopyResult = { dryRun: request.dryRun, to: request.destination.location, backups: [] };
  for (const group of byProfile.values()) {
    const { storage, sidecar } = group[0]!;
    result.backups.push(...(await report(sidecar.profile, storage, () => copyGroup(group, request.destination, runtime, request))));
  }
  return result;
}

/** Copies backups of one profile into `destination`, holding the destination profile's lock. */
export async function copyGroup(
  group: readonly LocatedBackup[],
  destination: Storage,
  runtime: Runtime,
  options: { dryRun?: boolean; waitMs?: number | undefined } = {},
): Promise<CopiedBackup[]> {
  const done: CopiedBackup[] = [];
  if (group.length === 0) return done;
  const profile = group[0]!.sidecar.profile;
  if (!options.dryRun) {
    try {
      await destination.checkWritable(profile);
    } catch (error) {
      throw storageError(error, destination.location, 'checking the destination');
    }
  }
  const lock = options.dryRun ? null : await acquireProfileLock({ storage: destination, profile, command: 'copy', waitMs: options.waitMs, runtime });
  try {
    for (const backup of group) {
      throwIfAborted(runtime.signal);
      const entry: CopiedBackup = {
        id: backup.sidecar.id,
        profile,
        from: backup.storage.location,
        to: destination.location,
        bytes: storedBytes(backup.sidecar),
        result: 'planned',
      };
      done.push(entry);
      try {
        entry.result = (await alreadyThere(backup.sidecar, destination)) ? 'present' : options.dryRun ? 'planned' : await copyOne(backup, destination, runtime);
        if (entry.result === 'copied') runtime.reporter.info(`copied ${backupRef(backup.sidecar)} to ${destination.location}`);
      } catch (error) {
        // Interrupted (SIGINT/SIGTERM): exit 130 as every command, not the driver's abort error.
        throwIfAborted(runtime.signal);
        if (!(error instanceof BackupctlError)) throw error;
        entry.result = 'failed';
        entry.error = error.message;
        entry.exitCode = error.exitCode;
        runtime.reporter.warn(`could not copy ${backupRef(backup.sidecar)} to ${destination.location}: ${error.message}`);
      }
    }
  } finally {
    await lock?.release();
  }
  return done;
}

function storedBytes(sidecar: Sidecar): number {
  return sidecar.artifact.bytes + (sidecar.globals.status === 'included' ? sidecar.globals.bytes : 0);
}

/**
 * True when the destination holds this backup already (its sidecar, with the same stored
 * digest, and its artifact at the recorded size); a different backup under the same id is
 * refused.
 */
async function alreadyThere(sidecar: Sidecar, destination: Storage): Promise<boolean> {
  let there: Sidecar;
  try {
    there = await new Catalog(destination).read(sidecar.profile, sidecar.id);
  } catch (error) {
    if (error instanceof NotFoundError) return false;
    throw storageError(error, destination.location, `reading ${sidecar.profile}/${sidecar.id}.json`, 'read');
  }
  if (there.artifact.sha256 !== sidecar.artifact.sha256 || there.artifact.file !== sidecar.artifact.file) {
    throw new BackupctlError(`${destination.location} holds another backup ${backupRef(sidecar)} (other bytes): refusing to overwrite it`, {
      exitCode: ExitCode.FAILED,
      hint: 'look at both with "backupctl show"; remove the one at the destination with "backupctl delete" if it is wrong',
    });
  }
  try {
    const info = await destination.stat(artifactKey(sidecar.profile, there.artifact.file));
    return info.size === there.artifact.bytes;
  } catch (error) {
    if (error instanceof NotFoundError) return false;
    throw storageError(error, destination.location, `reading ${there.artifact.file}`, 'read');
  }
}

/** Files first (each checked twice), the sidecar last; on failure nothing of it stays at the destination. */
async function copyOne(backup: LocatedBackup, destination: Storage, runtime: Runtime): Promise<'copied'> {
  const sidecar = await backup.catalog.readForUse(backup.sidecar.profile, backup.sidecar.id);
  const expected: Record<string, { bytes: number; sha256: string }> = { [sidecar.artifact.file]: sidecar.artifact };
  if (sidecar.globals.status === 'included') expected[sidecar.globals.file] = sidecar.globals;
  const written: string[] = [];
  try {
    for (const file of storedFiles(sidecar)) {
      const key = artifactKey(sidecar.profile, file);
      const want = expected[file]!;
      written.push(key);
      const sent = await stream(backup.storage, destination, key, runtime.signal, want.bytes);
      const differs = digestMismatches(file, want, sent);
      if (differs.length > 0) {
        throw new BackupctlError(`the source copy of ${backupRef(sidecar)} is not what its sidecar says: ${differs.join('; ')}`, {
          exitCode: ExitCode.VERIFY_FAILED,
          hint: `run "backupctl verify ${sidecar.id} --level checksum" on the source`,
        });
      }
      // Read back where it landed: what the destination holds, not what was sent.
      const landed = await hashStored(destination, key, runtime.signal).catch((error: unknown) => {
        throw storageError(error, destination.location, `reading back ${file}`, 'read');
      });
      const wrong = digestMismatches(`${file} at the destination`, want, landed);
      if (wrong.length > 0) throw new BackupctlError(`the copy of ${backupRef(sidecar)} differs once stored: ${wrong.join('; ')}`, { exitCode: ExitCode.FAILED });
    }
    throwIfAborted(runtime.signal);
    await new Catalog(destination).write(sidecar).catch((error: unknown) => {
      throw storageError(error, destination.location, 'writing the sidecar');
    });
    return 'copied';
  } catch (error) {
    await Promise.all(written.map((key) => destination.remove(key).catch(() => undefined)));
    throw error;
  }
}

/** source.get -> digest -> destination.put; the digest of the bytes sent. */
async function stream(source: Storage, destination: Storage, key: string, signal: AbortSignal, expectedBytes: number): Promise<Digest> {
  let input;
  try {
    input = await source.get(key);
  } catch (error) {
    throw storageError(error, source.location, `reading ${key}`, 'read');
  }
  const digest = new DigestStream();
  input.on('error', (error) => digest.destroy(error));
  try {
    await destination.put(key, input.pipe(digest), { signal, expectedBytes });
  } catch (error) {
    input.destroy();
    if (signal.aborted) throw error;
    // A source that failed mid-way is a read error there, not a write error here.
    if (input.errored) throw storageError(input.errored, source.location, `reading ${key}`, 'read');
    throw storageError(error, destination.location, `writing ${key}`);
  }
  return digest.digest();
}

/** The run log's `copied` of a copy run: the backups at the destination after it, none past COPIED_IDS_MAX (status.ts). */
export function copiedIds(done: readonly CopiedBackup[]): string[] | undefined {
  const ids = done.filter((d) => d.result === 'copied' || d.result === 'present').map((d) => d.id);
  return ids.length > COPIED_IDS_MAX ? undefined : ids;
}

/**
 * The backups of `profile` that a create run was to copy to `destination` and that no copy
 * run has copied there (status.ts missingCopies, from the profile's run log), besides
 * `except` (the new backup), newest first, at most CATCH_UP_MAX: what a create's copy step
 * catches up along with its own backup, so that a copy that failed or was killed is not
 * forgotten once a later one succeeds. A backup gone since (pruned) is passed over; the run
 * log or a sidecar that cannot be read is a warning, never a failed copy of the new backup.
 */
export async function backupsToCatchUp(source: Storage, profile: string, destination: string, except: string, runtime: Runtime): Promise<LocatedBackup[]> {
  let missing: string[];
  try {
    const { entries } = await readRunLog(source, profile);
    const place = placeOf(redactSecrets(destination));
    missing = missingCopies({ runs: entries, running: runIsRunning, now: runtime.now() })
      .filter((m) => m.to === place && m.backupId !== except)
      .map((m) => m.backupId);
  } catch (error) {
    runtime.reporter.warn(`could not read the run log of ${profile} to catch up earlier copies to ${destination}: ${(error as Error).message}`);
    return [];
  }
  const catalog = new Catalog(source);
  const found: LocatedBackup[] = [];
  for (const id of missing) {
    if (found.length === CATCH_UP_MAX) {
      runtime.reporter.warn(
        `up to ${missing.length - found.length} more earlier backup(s) of ${profile} were never copied to ${destination}: the next creates copy ${CATCH_UP_MAX} a run, or now: backupctl copy --all --profile ${profile} --to <destination>`,
      );
      break;
    }
    try {
      found.push({ sidecar: await catalog.read(profile, id), storage: source, catalog });
    } catch (error) {
      if (error instanceof NotFoundError) continue; // pruned or deleted since: nothing to copy
      runtime.reporter.warn(`cannot catch up the copy of ${profile}/${id} to ${destination}: ${(error as Error).message}`);
    }
  }
  return found;
}
