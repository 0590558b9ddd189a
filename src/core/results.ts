import type { IncompleteEntry } from '../catalog/catalog.js';
import type { Sidecar, SidecarSummary } from '../catalog/sidecar.js';

/** What `create` returns: the new backup's sidecar and where it was stored. */
export interface CreateResult {
  sidecar: Sidecar;
  /** Storage location (redacted), e.g. `/var/backups/pg`. */
  storage: string;
  warnings: string[];
  /** The profile's copies of the new backup (`copies`): one per destination; a failed one never fails the backup. */
  copies?: Array<{
    to: string;
    result: 'copied' | 'present' | 'failed';
    error?: string | undefined;
    /** Earlier backups never copied there that this run copied along (see core/copy.ts backupsToCatchUp). */
    caughtUp?: Array<{ id: string; result: 'copied' | 'present' | 'failed'; error?: string | undefined }> | undefined;
  }>;
}

export type { IncompleteEntry } from '../catalog/catalog.js';

export interface ListResult {
  storage: string;
  /** The --tag/--since filter, when it left out backups that exist (for "none tagged ..."). */
  filter?: string;
  /** Completed backups, newest first: their sidecars without `tables` (`show` has those). */
  backups: SidecarSummary[];
  /** Only filled with `list --all`. */
  incomplete: IncompleteEntry[];
  /** Sidecars that could not be read (named, the rest still lists). */
  warnings: string[];
  /**
   * Sidecars the storage refused to give (permission denied), one line each: those backups
   * are missing from `backups`, so the listing is incomplete (list exits 1).
   */
  refused: string[];
  /** Backups whose stored files are not what their sidecar records, by `<profile>/<id>` (see Catalog.scan). */
  damage: Map<string, string[]>;
}

export interface ShowResult {
  storage: string;
  sidecar: Sidecar;
  /** What is wrong with the backup's stored files (missing, wrong size); empty when they are as recorded. */
  problems: string[];
}
