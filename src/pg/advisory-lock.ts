import { createHash } from 'node:crypto';
import type pg from 'pg';
import { settlesWithin } from '../platform/settles-within.js';
import { connect, endClient, queryError } from './client.js';
import type { ConnectionSettings } from './connection.js';

/**
 * The advisory-lock key of a database: the first 8 bytes of sha256("backupctl:" + name),
 * as a signed 64-bit integer. Fixed for a database name, whichever host or storage a
 * backupctl runs from, so every backupctl backing up that database asks for the same lock.
 */
export function advisoryLockKey(database: string): bigint {
  return createHash('sha256').update(`backupctl:${database}`, 'utf8').digest().readBigInt64BE(0);
}

/** Who holds the lock, as far as pg_stat_activity lets this role see. */
export interface AdvisoryLockHolder {
  /** Server process id of the holding session. */
  backendPid: number;
  /** The holder's application_name, e.g. "backupctl create host=db1 pid=4242". */
  applicationName: string | null;
  clientAddress: string | null;
  /** When the holding session connected (ISO time), if visible. */
  since: string | null;
}

/**
 * A dedicated session that holds `pg_try_advisory_lock(key)` (session level) while a
 * backup runs. The lock goes away with the session: when released, when the process
 * dies, or when the connection drops. Other sessions are never blocked by it: it only
 * keeps a second backupctl from backing up the same database at the same time.
 */
export class AdvisoryLockSession {
  private held = false;

  private constructor(
    private readonly client: pg.Client,
    readonly key: bigint,
  ) {}

  /** Connects; `label` becomes the session's application_name (what a busy run reports). */
  static async open(settings: ConnectionSettings, key: bigint, label: string): Promise<AdvisoryLockSession> {
    const client = await connect(settings);
    try {
      await client.query("SELECT set_config('application_name', $1, false)", [label.slice(0, 63)]);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw queryError(error, 'cannot prepare the advisory lock session');
    }
    return new AdvisoryLockSession(client, key);
  }

  /** One attempt, never waits: true when this session now holds the lock. */
  async tryLock(): Promise<boolean> {
    try {
      const { rows } = await this.client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [
        this.key.toString(),
      ]);
      this.held = rows[0]?.locked === true;
      return this.held;
    } catch (error) {
      throw queryError(error, 'cannot take the advisory lock');
    }
  }

  /** The session holding the lock (null when free or not visible). */
  async holder(): Promise<AdvisoryLockHolder | null> {
    try {
      const { rows } = await this.client.query<{
        pid: number;
        application_name: string | null;
        client_addr: string | null;
        backend_start: Date | null;
      }>(
        `SELECT l.pid, a.application_name, a.client_addr::text AS client_addr, a.backend_start
           FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.classid = (($1::bigint >> 32) & 4294967295)::oid
            AND l.objid = ($1::bigint & 4294967295)::oid
            AND l.objsubid = 1
          LIMIT 1`,
        [this.key.toString()],
      );
      const row = rows[0];
      if (!row) return null;
      return {
        backendPid: row.pid,
        applicationName: row.application_name || null,
        clientAddress: row.client_addr,
        since: row.backend_start ? row.backend_start.toISOString() : null,
      };
    } catch {
      return null; // the lock report is a courtesy; never fail a run over it
    }
  }

  /**
   * Unlocks and closes the session; never throws, and never waits on the server past
   * `waitMs` in all (a frozen server: the socket is dropped, which ends the session and its
   * lock on the server's side once it notices).
   */
  async close(waitMs = 5_000): Promise<void> {
    const deadline = performance.now() + waitMs;
    if (this.held) {
      this.held = false;
      await settlesWithin(this.client.query('SELECT pg_advisory_unlock($1::bigint)', [this.key.toString()]), waitMs);
    }
    await endClient(this.client, Math.max(0, deadline - performance.now()));
  }
}
