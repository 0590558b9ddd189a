import type { IncompleteEntry } from '../catalog/catalog.js';
import type { Sidecar } from '../catalog/sidecar.js';

/** What `create` returns: the new backup's sidecar and where it was stored. */
export interface CreateResult {
  sidecar: Sidecar;
  /** Storage location (redacted), e.g. `/var/backups/pg`. */
  storage: string;
  warnings: string[];
}

export type { IncompleteEntry } from '../catalog/catalog.js';

export interface ListResult {
  storage: string;
  /** Completed backups, newest first. */
  backups: Sidecar[];
  /** Only filled with `list --all`. */
  incomplete: IncompleteEntry[];
  /** Sidecars that could not be read (named, the rest still lists). */
  warnings: string[];
}

export interface ShowResult {
  storage: string;
  sidecar: Sidecar;
}
