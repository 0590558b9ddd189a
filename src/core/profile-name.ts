/**
 * The name of the profile of a run without configured profiles: its database's. Kept apart
 * from core/profile.ts (which loads the pipeline and execa) for the commands over existing
 * backups, which need the name only.
 */
import { createHash } from 'node:crypto';
import { PROFILE_PATTERN } from '../catalog/id.js';
import type { ResolvedSettings } from '../config/resolve.js';
import { parseConnectionUrl } from '../pg/connection.js';

/**
 * A database name turned into a profile name (for runs without a config file), one to one:
 * a name that is already a profile name is kept; any other gets the characters a profile
 * name may hold and a suffix from a hash of the whole name (`my db` -> `my_db-3b2f9a1c`),
 * so that `my db` and `my_db`, or two names of only non-ASCII letters, never share a
 * profile (and `latest` or `prune` of one never takes the other's backups).
 */
export function profileNameFor(database: string): string {
  // (isProfileName's test, without its type guard: it would narrow the rest to never)
  if (PROFILE_PATTERN.test(database) && !database.includes('..')) return database;
  const cleaned = database.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[^A-Za-z0-9]+/, '').replace(/\.\.+/g, '.').slice(0, 54).replace(/[.]+$/, '');
  const suffix = createHash('sha256').update(database, 'utf8').digest('hex').slice(0, 8);
  return `${cleaned === '' ? 'db' : cleaned}-${suffix}`;
}

/**
 * The profile a run works on when no profile is chosen and the config defines none: the
 * one `create` uses, named after the database of --db-url, DATABASE_URL or PGDATABASE
 * (`from` says which); undefined when none of them names a database. Read without
 * connecting or reading a password.
 */
export function profileOfConnection(settings: ResolvedSettings): { name: string; database: string; from: string } | undefined {
  const sources: Array<[string, () => string | undefined]> = [
    ['--db-url', () => (settings.dbUrl ? parseConnectionUrl(settings.dbUrl, '--db-url').database : undefined)],
    ['DATABASE_URL', () => (settings.env.DATABASE_URL ? parseConnectionUrl(settings.env.DATABASE_URL, 'DATABASE_URL').database : undefined)],
    ['PGDATABASE', () => settings.env.PGDATABASE || undefined],
  ];
  for (const [from, read] of sources) {
    const database = read();
    if (database !== undefined) return { name: profileNameFor(database), database, from };
  }
  return undefined;
}
