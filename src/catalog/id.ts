import { randomBytes } from 'node:crypto';

/**
 * A backup id: `YYYYMMDDTHHMMSSZ-xxxxxx`, the UTC start time plus six random hex digits.
 * Sorting ids as strings sorts backups by time; ids are safe in file names and URLs,
 * and every id read from a user or a file is checked against ID_PATTERN before it is
 * used to build a path.
 */
export const ID_PATTERN = /^(\d{8}T\d{6}Z)-([0-9a-f]{6})$/;

export function newBackupId(now: Date = new Date()): string {
  return `${idStamp(now)}-${randomBytes(3).toString('hex')}`;
}

/** `YYYYMMDDTHHMMSSZ`: how the id of a backup started at `when` begins. */
export function idStamp(when: Date): string {
  return when.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

export function isBackupId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value);
}

/** The start time encoded in an id. */
export function idTime(id: string): Date {
  const match = ID_PATTERN.exec(id);
  if (!match?.[1]) throw new Error(`not a backup id: ${JSON.stringify(id)}`);
  const s = match[1];
  return new Date(
    `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13, 15)}Z`,
  );
}

/** Profile names become directory names: keep them to a safe alphabet. */
export const PROFILE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export function isProfileName(value: unknown): value is string {
  return typeof value === 'string' && PROFILE_PATTERN.test(value) && !value.includes('..');
}

/** What a user may type where an id is taken: `latest`, a whole id, or a prefix of one. */
export const ID_REF_PATTERN = /^[0-9A-Za-z-]{1,23}$/;

/**
 * The ids that `ref` names: the id itself, or every id that `ref` is a prefix of, either of
 * the whole id (`20261123T14`) or of its random part (`1a2b`), as git and restic take
 * short ids. The caller decides what none or several matches mean.
 */
export function matchIds(ref: string, ids: Iterable<string>): string[] {
  const lower = ref.toLowerCase();
  const exact: string[] = [];
  const byPrefix: string[] = [];
  for (const id of ids) {
    if (id === ref) exact.push(id);
    else if (id.toLowerCase().startsWith(lower) || (id.slice(17).startsWith(lower) && lower.length >= 1)) byPrefix.push(id);
  }
  return exact.length > 0 ? exact : [...new Set(byPrefix)].sort();
}
