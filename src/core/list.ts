import { Catalog } from '../catalog/catalog.js';
import { openStorage } from '../storage/registry.js';
import type { ListResult, ShowResult } from './results.js';
import { storageError } from './storage-errors.js';

export interface ListRequest {
  storage: string;
  cwd: string;
  profile?: string | undefined;
  tag?: string | undefined;
  /** Only backups started at or after this instant. */
  since?: Date | undefined;
  limit?: number | undefined;
  /** Also report artifacts that have no sidecar (unfinished backups). */
  all?: boolean | undefined;
}

/** Completed backups from their sidecars, newest first; unreadable sidecars become warnings. */
export async function listBackups(request: ListRequest): Promise<ListResult> {
  const storage = openStorage(request.storage, request.cwd);
  let scanned;
  try {
    scanned = await new Catalog(storage).scan(request.profile);
  } catch (error) {
    throw storageError(error, storage.location, 'listing backups');
  }
  let backups = scanned.backups;
  if (request.tag !== undefined) backups = backups.filter((b) => b.tags.includes(request.tag as string));
  if (request.since !== undefined) {
    const since = request.since.getTime();
    backups = backups.filter((b) => Date.parse(b.startedAt) >= since);
  }
  if (request.limit !== undefined) backups = backups.slice(0, request.limit);
  return {
    storage: storage.location,
    backups,
    incomplete: request.all ? scanned.incomplete : [],
    warnings: scanned.warnings,
  };
}

export interface ShowRequest {
  storage: string;
  cwd: string;
  ref: string;
  profile?: string | undefined;
  tag?: string | undefined;
}

/** One backup's sidecar, by id or `latest`. */
export async function showBackup(request: ShowRequest): Promise<ShowResult> {
  const storage = openStorage(request.storage, request.cwd);
  const sidecar = await new Catalog(storage).find(request.ref, { profile: request.profile, tag: request.tag });
  return { storage: storage.location, sidecar };
}
