import { randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runDir } from '../platform/run-dir.js';
import type { ConnectionSettings } from './connection.js';
import { pgpassLine } from './pgpass.js';

/** Variables that would make a child connect somewhere else, or see a secret, than we intend. */
const STRIPPED = [
  'PGPASSWORD',
  'PGPASSFILE',
  'PGSERVICE',
  'PGSERVICEFILE',
  'DATABASE_URL',
  'PGHOSTADDR',
  'PGHOST',
  'PGPORT',
  'PGUSER',
  'PGDATABASE',
  'PGSSLMODE',
  'PGSSLROOTCERT',
  'PGSSLCERT',
  'PGSSLKEY',
];

export interface ChildEnv {
  /** Environment for pg_dump/pg_restore/psql: libpq variables only, no password. */
  env: Record<string, string>;
  /** Removes the temporary passfile. Idempotent. */
  dispose(): Promise<void>;
}

/**
 * Builds the environment children connect with. The password goes into a temporary
 * passfile (mode 0600, in the run's private 0700 directory, removed by dispose; a killed
 * run's is removed by the next run, see platform/run-dir.ts) named by PGPASSFILE, so it
 * is never in argv (visible in `ps`) nor in the child's environment.
 */
export async function childEnv(
  settings: ConnectionSettings,
  baseEnv: Record<string, string | undefined>,
  database = settings.database,
): Promise<ChildEnv> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(baseEnv)) {
    if (value === undefined || STRIPPED.includes(key)) continue;
    // The profile's passwordEnv (any variable holding the password) stays with us too.
    if (settings.password !== undefined && settings.password !== '' && value === settings.password) continue;
    env[key] = value;
  }
  // Messages in English: the text of a failure picks a hint (never an exit code). LC_ALL
  // would override LC_MESSAGES: its character set is kept as LC_CTYPE.
  if (env.LC_ALL !== undefined) {
    env.LC_CTYPE ??= env.LC_ALL;
    delete env.LC_ALL;
  }
  env.LC_MESSAGES = 'C';
  // pg_dump, pg_dumpall and pg_restore clear statement_timeout once connected, but their
  // first queries run under the database's or role's own (`ALTER DATABASE ... SET
  // statement_timeout = '1ms'` cancels them): cleared at connection start, after the
  // user's own PGOPTIONS.
  env.PGOPTIONS = [env.PGOPTIONS, '-c statement_timeout=0'].filter(Boolean).join(' ');
  env.PGHOST = settings.host;
  env.PGPORT = String(settings.port);
  env.PGUSER = settings.user;
  env.PGDATABASE = database;
  if (settings.sslmode) env.PGSSLMODE = settings.sslmode;
  if (settings.sslrootcert) env.PGSSLROOTCERT = settings.sslrootcert;
  if (settings.sslcert) env.PGSSLCERT = settings.sslcert;
  if (settings.sslkey) env.PGSSLKEY = settings.sslkey;

  let passfile: string | null = null;
  if (settings.password !== undefined) {
    passfile = join(await runDir(), `${randomBytes(6).toString('hex')}.pgpass`);
    const handle = await open(passfile, 'wx', 0o600);
    try {
      await handle.chmod(0o600);
      await handle.writeFile(pgpassLine({ ...settings, database }, settings.password));
    } finally {
      await handle.close();
    }
    env.PGPASSFILE = passfile;
  } else {
    // No password of ours: keep the user's own passfile, as libpq would.
    const userPassfile = baseEnv.PGPASSFILE;
    if (userPassfile) env.PGPASSFILE = userPassfile;
  }
  return {
    env,
    async dispose() {
      if (passfile) {
        const path = passfile;
        passfile = null;
        await rm(path, { force: true });
      }
    },
  };
}

const OFFLINE_KEEP = /^(PATH|HOME|USER|LOGNAME|LANG|LANGUAGE|LC_[A-Z]+|TZ|TMPDIR|LD_LIBRARY_PATH|DYLD_LIBRARY_PATH|PGCLUSTER|PGCLUSTERCONF|PG_CLUSTER_CONF_ROOT|SYSTEMROOT)$/;

/**
 * The environment of a client program that connects to nothing (`--version`,
 * `pg_restore --list`, `pg_restore -f /dev/null`): only what it (or Debian's pg_wrapper)
 * needs to start. Our own environment may hold a password (PGPASSWORD, DATABASE_URL, a
 * profile's passwordEnv), and a child's environment is readable in /proc.
 */
export function offlineEnv(base: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(base)) {
    if (value !== undefined && OFFLINE_KEEP.test(key)) env[key] = value;
  }
  return env;
}
