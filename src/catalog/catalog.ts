import { BackupctlError, ExitCode, usageError } from '../errors.js';
import { NotFoundError, type ObjectInfo, type Storage } from '../storage/storage.js';
import { ID_PATTERN, isBackupId, isProfileName } from './id.js';
import { MAX_SIDECAR_BYTES, serializeSidecar, SidecarError, type Sidecar } from './sidecar.js';

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
function group(objects: readonly ObjectInfo[]): Grouped[] {
  const byId = new Map<string, Grouped>();
  for (const object of objects) {
    const [profile, file, ...rest] = object.key.split('/');
    if (!profile || !file || rest.length > 0 || !isProfileName(profile)) continue;
    const dot = file.indexOf('.');
    const id = dot < 0 ? file : file.slice(0, dot);
    if (!ID_PATTERN.test(id)) continue;
    const key = `${profile}/${id}`;
    let entry = byId.get(key);
    if (!entry) {
      entry = { profile, id, sidecar: null, files: [] };
      byId.set(key, entry);
    }
    if (file === `${id}.json`) entry.sidecar = object;
    else entry.files.push(object);
  }
  return [...byId.values()];
}

export interface ScanResult {
  /** Newest first. */
  backups: Sidecar[];
  incomplete: IncompleteEntry[];
  /** One line per sidecar that could not be read; the rest still lists. */
  warnings: string[];
}

/** The backups in a storage, read from their sidecars. */
export class Catalog {
  constructor(readonly storage: Storage) {}

  async scan(profile?: string): Promise<ScanResult> {
    if (profile !== undefined && !isProfileName(profile)) throw usageError(`invalid profile name ${JSON.stringify(profile)}`);
    const objects = await this.storage.list(profile ?? '');
    const groups = group(objects);
    const backups: Sidecar[] = [];
    const incomplete: IncompleteEntry[] = [];
    const warnings: string[] = [];
    await mapLimit(groups, 8, async (entry) => {
      if (!entry.sidecar) {
        for (const file of entry.files) {
          incomplete.push({
            profile: entry.profile,
            id: entry.id,
            file: file.key.slice(entry.profile.length + 1),
            bytes: file.size,
            modifiedAt: file.modifiedAt.toISOString(),
          });
        }
        return;
      }
      try {
        backups.push(await this.read(entry.profile, entry.id));
      } catch (error) {
        if (error instanceof SidecarError || error instanceof NotFoundError) warnings.push(`skipped ${error.message}`);
        else throw error;
      }
    });
    backups.sort((a, b) => compareNewestFirst(a.startedAt, a.id, b.startedAt, b.id));
    incomplete.sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : a.file.localeCompare(b.file)));
    warnings.sort();
    return { backups, incomplete, warnings };
  }

  /** Reads and validates one sidecar. */
  async read(profile: string, id: string): Promise<Sidecar> {
    const key = sidecarKey(profile, id);
    let bytes: Buffer;
    try {
      bytes = await this.storage.getBytes(key, MAX_SIDECAR_BYTES);
    } catch (error) {
      if (error instanceof NotFoundError) throw error;
      throw new SidecarError(key, (error as Error).message);
    }
    // The schema (zod) loads with the first read: `create` only writes.
    const { parseSidecar } = await import('./sidecar-schema.js');
    return parseSidecar(key, bytes, { id, profile });
  }

  async write(sidecar: Sidecar): Promise<void> {
    await this.storage.putBytes(sidecarKey(sidecar.profile, sidecar.id), serializeSidecar(sidecar));
  }

  /**
   * Finds a backup by id (in any profile unless one is given) or `latest` (the newest
   * completed backup, narrowed by profile and tag). Not found is a USAGE error.
   */
  async find(ref: string, filter: { profile?: string | undefined; tag?: string | undefined } = {}): Promise<Sidecar> {
    if (ref !== 'latest' && !isBackupId(ref)) {
      throw usageError(`not a backup id: ${JSON.stringify(ref)}`, 'ids look like 20261123T140509Z-1a2b3c; or use "latest"');
    }
    const where = filter.profile ? `profile "${filter.profile}"` : 'any profile';
    if (ref === 'latest') {
      const { backups } = await this.scan(filter.profile);
      const found = backups.find((b) => filter.tag === undefined || b.tags.includes(filter.tag));
      if (!found) {
        throw new BackupctlError(`no completed backup in ${where}${filter.tag ? ` tagged "${filter.tag}"` : ''} at ${this.storage.location}`, {
          exitCode: ExitCode.USAGE,
          hint: 'run "backupctl list" to see what is there',
        });
      }
      return found;
    }
    const groups = group(await this.storage.list(filter.profile ?? '')).filter((g) => g.id === ref && g.sidecar);
    if (groups.length === 0) {
      throw new BackupctlError(`backup ${ref} not found in ${where} at ${this.storage.location}`, {
        exitCode: ExitCode.USAGE,
        hint: 'run "backupctl list" to see the ids (an artifact without a sidecar is not a backup)',
      });
    }
    if (groups.length > 1) {
      throw usageError(`backup id ${ref} exists in several profiles: ${groups.map((g) => g.profile).join(', ')}`, 'choose one with --profile');
    }
    const [only] = groups as [Grouped];
    try {
      return await this.read(only.profile, only.id);
    } catch (error) {
      if (error instanceof SidecarError) throw new BackupctlError(error.message, { exitCode: ExitCode.VERIFY_FAILED, cause: error });
      throw error;
    }
  }
}

function compareNewestFirst(aTime: string, aId: string, bTime: string, bId: string): number {
  const byTime = Date.parse(bTime) - Date.parse(aTime);
  if (byTime !== 0) return byTime;
  return aId < bId ? 1 : aId > bId ? -1 : 0;
}

async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  });
  await Promise.all(workers);
}
