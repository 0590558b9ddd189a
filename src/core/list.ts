import { artifactKey, damageOf } from '../catalog/catalog.js';
import type { Sidecar } from '../catalog/sidecar.js';
import { HostileEntryError, NotFoundError, type EntryKind, type ObjectInfo } from '../storage/storage.js';
import type { ListResult, ShowResult } from './results.js';
import { findBackup, scanScope, type BackupScope } from './scope.js';
import { storageError } from './storage-errors.js';

export interface ListRequest {
  scope: BackupScope;
  tag?: string | undefined;
  /** Only backups started at or after this instant. */
  since?: Date | undefined;
  limit?: number | undefined;
  /** Also report artifacts that have no sidecar (unfinished backups). */
  all?: boolean | undefined;
}

function describeScope(scope: BackupScope): string {
  return scope.locations.map((l) => l.storage.location).join(', ');
}

/**
 * Completed backups from their sidecars (as summaries, without `tables`: through the
 * catalog index, see Catalog.summaries), newest first; unreadable sidecars become warnings.
 */
export async function listBackups(request: ListRequest): Promise<ListResult> {
  // A sidecar the storage refuses is named, and the rest still lists: an operator looking
  // for a backup to restore is not left with nothing because of one file's mode.
  const scanned = await scanScope(request.scope, { summaries: true, tolerateRefused: true });
  let backups = scanned.backups.map((b) => b.sidecar);
  if (request.tag !== undefined) backups = backups.filter((b) => b.tags.includes(request.tag as string));
  if (request.since !== undefined) {
    const since = request.since.getTime();
    backups = backups.filter((b) => Date.parse(b.startedAt) >= since);
  }
  if (request.limit !== undefined) backups = backups.slice(0, request.limit);
  const filters = [request.tag !== undefined ? `tagged "${request.tag}"` : null, request.since !== undefined ? `since ${request.since.toISOString()}` : null].filter((f) => f !== null);
  return {
    storage: describeScope(request.scope),
    ...(filters.length > 0 && scanned.backups.length > 0 ? { filter: filters.join(', ') } : {}),
    backups,
    incomplete: request.all ? scanned.incomplete : [],
    warnings: scanned.warnings,
    refused: scanned.refused.map(({ profile, id, error, storage }) => {
      const failure = storageError(error, storage.location, `reading backup ${profile}/${id}`, 'read');
      return `${failure.message}: not listed`;
    }),
    damage: scanned.damage,
  };
}

export interface ShowRequest {
  scope: BackupScope;
  ref: string;
  tag?: string | undefined;
}

/** One backup's sidecar, by id (or a unique prefix) or `latest`, with what is wrong with its files. */
export async function showBackup(request: ShowRequest): Promise<ShowResult> {
  const found = await findBackup(request.scope, request.ref, { tag: request.tag });
  const files: ObjectInfo[] = [];
  const hostile = new Map<string, EntryKind>();
  for (const file of storedFiles(found.sidecar)) {
    try {
      files.push(await found.storage.stat(artifactKey(found.sidecar.profile, file)));
    } catch (error) {
      if (error instanceof HostileEntryError) hostile.set(error.key, error.kind);
      else if (!(error instanceof NotFoundError)) throw storageError(error, found.storage.location, `reading ${file}`, 'read');
    }
  }
  const problems = damageOf(found.sidecar, files, hostile);
  return { storage: found.storage.location, sidecar: found.sidecar, problems };
}

/** The files a backup's sidecar says are stored beside it. */
export function storedFiles(sidecar: Sidecar): string[] {
  return [sidecar.artifact.file, ...(sidecar.globals.status === 'included' ? [sidecar.globals.file] : [])];
}
