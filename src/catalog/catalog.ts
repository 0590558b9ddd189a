import { BackupctlError, ExitCode, usageError } from '../errors.js';
import { NotFoundError, type ObjectInfo, type Storage } from '../storage/storage.js';
import { ID_PATTERN, isProfileName } from './id.js';
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
  /**
   * Backups whose files are not what their sidecar records (an artifact or globals file
   * missing, or of another size), by `<profile>/<id>`: one line per problem. Such a backup
   * cannot be restored as it is; prune never counts it as good.
   */
  damage: Map<string, string[]>;
}

/** `<profile>/<id>`: the key of a backup in ScanResult.damage. */
export function backupRef(sidecar: Pick<Sidecar, 'profile' | 'id'>): string {
  return `${sidecar.profile}/${sidecar.id}`;
}

/** What is wrong with the stored files of a backup, from a listing of its profile. */
export function damageOf(sidecar: Sidecar, files: readonly ObjectInfo[]): string[] {
  const sizes = new Map(files.map((file) => [file.key, file.size]));
  const problems: string[] = [];
  const check = (what: string, file: string, bytes: number) => {
    const size = sizes.get(artifactKey(sidecar.profile, file));
    if (size === undefined) problems.push(`${what} ${file} is missing`);
    else if (size !== bytes) problems.push(`${what} ${file} is ${size} bytes, the sidecar says ${bytes}`);
  };
  check('artifact', sidecar.artifact.file, sidecar.artifact.bytes);
  if (sidecar.globals.status === 'included') check('globals file', sidecar.globals.file, sidecar.globals.bytes);
  return problems;
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
    const damage = new Map<string, string[]>();
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
        const sidecar = await this.read(entry.profile, entry.id);
        backups.push(sidecar);
        const problems = damageOf(sidecar, entry.files);
        if (problems.length > 0) damage.set(backupRef(sidecar), problems);
      } catch (error) {
        if (error instanceof SidecarError || error instanceof NotFoundError) warnings.push(`skipped ${error.message}`);
        else throw error;
      }
    });
    backups.sort((a, b) => compareNewestFirst(a.startedAt, a.id, b.startedAt, b.id));
    incomplete.sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : a.file.localeCompare(b.file)));
    warnings.sort();
    return { backups, incomplete, warnings, damage };
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

  /** Every backup of the storage (or of one profile) that has a sidecar, unread: `{profile, id}`. */
  async completed(profile?: string): Promise<Array<{ profile: string; id: string }>> {
    if (profile !== undefined && !isProfileName(profile)) throw usageError(`invalid profile name ${JSON.stringify(profile)}`);
    return group(await this.storage.list(profile ?? ''))
      .filter((entry) => entry.sidecar !== null)
      .map(({ profile: p, id }) => ({ profile: p, id }));
  }

  /** The profiles that have anything in the storage (a sidecar, an artifact, a run log...). */
  async profiles(): Promise<string[]> {
    const found = new Set<string>();
    for (const object of await this.storage.list('')) {
      const [profile, file, ...rest] = object.key.split('/');
      if (profile && file && rest.length === 0 && isProfileName(profile)) found.add(profile);
    }
    return [...found].sort();
  }

  /** Reads a sidecar for a command that acts on it: an unreadable one is a corrupt backup (exit 3). */
  async readForUse(profile: string, id: string): Promise<Sidecar> {
    try {
      return await this.read(profile, id);
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
