import type pg from 'pg';
import { settlesWithin } from '../platform/settles-within.js';
import { connect, endClient } from './client.js';
import type { ConnectionSettings } from './connection.js';

/** A backup's sessions (SnapshotSession.backend): the snapshot's, the row counts' (when apart), and the snapshot's xmin. */
export interface BackupSessions {
  sessionPid: number;
  countsPid?: number | undefined;
  xmin: string | null;
}

/** A session of the backup waiting for a lock another session holds. */
export interface LockWait {
  /** Who waits: pg_dump, or backupctl's own row counts. */
  waiter: 'pg_dump' | 'the row counts';
  /** The relation waited for (schema-qualified, quoted where needed), or null for another kind of lock. */
  relation: string | null;
  /** The lock mode asked for, e.g. AccessShareLock. */
  mode: string;
  blocker: { pid: number; applicationName: string | null; user: string | null; state: string | null; transactionStart: string | null };
}

/**
 * The lock waits of a backup's sessions: its snapshot session (`sessionPid`), the session
 * that counts its rows (`countsPid`), and the
 * pg_dump sessions that imported its snapshot (application_name pg_dump, and the
 * snapshot's xmin, which a session that imported it shares), each with who blocks it.
 */
export async function lockWaits(client: pg.Client, backup: BackupSessions): Promise<LockWait[]> {
  const { rows } = await client.query<{
    waiter: string;
    relation: string | null;
    mode: string;
    pid: number;
    application_name: string | null;
    usename: string | null;
    state: string | null;
    xact_start: Date | null;
  }>(
    `SELECT CASE WHEN w.pid IN ($1, $3) THEN 'the row counts' ELSE 'pg_dump' END AS waiter,
            (SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = l.relation) AS relation, l.mode,
            b.pid, b.application_name, b.usename::text, b.state, b.xact_start
       FROM pg_stat_activity w
       JOIN pg_locks l ON l.pid = w.pid AND NOT l.granted
       CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS blocking(pid)
       JOIN pg_stat_activity b ON b.pid = blocking.pid
      WHERE w.datname = current_database()
        AND (w.pid IN ($1, $3) OR (w.application_name = 'pg_dump' AND $2::text IS NOT NULL AND w.backend_xmin::text = $2::text))
      ORDER BY 1, 2, 4`,
    [backup.sessionPid, backup.xmin, backup.countsPid ?? backup.sessionPid],
  );
  return rows.map((row) => ({
    waiter: row.waiter === 'pg_dump' ? 'pg_dump' : 'the row counts',
    relation: row.relation,
    mode: row.mode,
    blocker: {
      pid: row.pid,
      applicationName: row.application_name || null,
      user: row.usename,
      state: row.state,
      transactionStart: row.xact_start ? row.xact_start.toISOString() : null,
    },
  }));
}

/** How long stop() waits for a look in progress, then for its session to end. */
const STOP_WAIT_MS = 300;

/**
 * Watches a backup for lock waits while it runs: pg_dump waits without a word for a lock
 * another session holds (an ALTER TABLE, a transaction left open), forever when there is
 * no --lock-wait-timeout, while a cron job holds the profile's lock. A first look after
 * `firstMs`, then every `everyMs`, on a session of its own opened at the first look (none
 * for a backup that is done before). Each wait (who, what, held by whom) is reported once.
 * Best effort: a failure to look is reported at debug level and ends the watch.
 */
export function watchLockWaits(options: {
  settings: ConnectionSettings;
  backup: BackupSessions;
  report: (wait: LockWait) => void;
  debug: (message: string) => void;
  firstMs?: number;
  everyMs?: number;
}): { stop(): Promise<void> } {
  const { firstMs = 5_000, everyMs = 15_000 } = options;
  const seen = new Set<string>();
  let client: pg.Client | null = null;
  let stopped = false;
  let looking: Promise<void> = Promise.resolve();
  let stopping: Promise<void> | null = null;
  let timer: NodeJS.Timeout | undefined;
  const look = async () => {
    try {
      const session = client ?? (await connect(options.settings));
      if (stopped) {
        if (session !== client) await endClient(session, STOP_WAIT_MS); // connected after stop()
        return;
      }
      client = session;
      for (const wait of await lockWaits(client, options.backup)) {
        const key = `${wait.waiter}|${wait.relation}|${wait.mode}|${wait.blocker.pid}`;
        if (seen.has(key)) continue;
        seen.add(key);
        if (!stopped) options.report(wait);
      }
      if (!stopped) timer = setTimeout(() => (looking = look()), everyMs).unref();
    } catch (error) {
      options.debug(`could not look for lock waits: ${(error as Error).message}`);
    }
  };
  timer = setTimeout(() => (looking = look()), firstMs).unref();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      // A look stuck on a server that stopped answering (its connect or query) is not
      // waited for past a moment: the run it watched is over. Its session, once connected,
      // sees `stopped` and is ended at once. Idempotent: a second call waits for the first.
      stopping ??= (async () => {
        await settlesWithin(looking, STOP_WAIT_MS);
        if (client) await endClient(client, STOP_WAIT_MS);
      })();
      return stopping;
    },
  };
}

/** One line for an operator: who waits for what, and who holds it. */
export function describeLockWait(wait: LockWait): string {
  const what = wait.relation ?? 'a lock';
  const b = wait.blocker;
  const holder = [b.applicationName ? `"${b.applicationName}"` : null, b.user ? `user ${b.user}` : null, b.state, b.transactionStart ? `in a transaction since ${b.transactionStart}` : null]
    .filter(Boolean)
    .join(', ');
  return `${wait.waiter} ${wait.waiter === 'pg_dump' ? 'is' : 'are'} waiting for ${wait.relation ? `a lock on ${what}` : what} (${wait.mode}), held by pid ${b.pid}${holder ? ` (${holder})` : ''}: the backup goes on once it is released`;
}
