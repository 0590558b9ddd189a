import type pg from 'pg';
import { connect, queryError } from './client.js';
import { countRows, type CountedTable } from './counts.js';
import type { ConnectionSettings } from './connection.js';

export type { CountedTable } from './counts.js';

export interface DatabaseFacts {
  serverVersion: string;
  serverVersionNum: number;
  database: string;
  sizeBytes: number;
  encoding: string;
  largeObjects: number;
}

/**
 * A REPEATABLE READ transaction whose snapshot is exported for pg_dump --snapshot.
 * While it stays open, everything read here (row counts, sizes) sees exactly the data
 * pg_dump sees, however busy the database is. Close it only after pg_dump has finished.
 */
export class SnapshotSession {
  private ended = false;

  private constructor(
    private readonly client: pg.Client,
    readonly snapshotId: string,
  ) {}

  static async open(settings: ConnectionSettings, options: { lockWaitTimeout?: string | undefined } = {}): Promise<SnapshotSession> {
    const client = await connect(settings);
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      if (options.lockWaitTimeout) {
        // Same limit as pg_dump's: our counts take the same ACCESS SHARE locks.
        await client.query(`SET LOCAL lock_timeout = ${quoteLiteral(options.lockWaitTimeout)}`);
      }
      const result = await client.query<{ snapshot: string }>('SELECT pg_export_snapshot() AS snapshot');
      const snapshot = result.rows[0]?.snapshot;
      if (!snapshot) throw new Error('pg_export_snapshot() returned nothing');
      return new SnapshotSession(client, snapshot);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw queryError(error, 'cannot open a snapshot');
    }
  }

  async facts(): Promise<DatabaseFacts> {
    try {
      const { rows } = await this.client.query<{
        server_version: string;
        server_version_num: string;
        database: string;
        size: string;
        encoding: string;
        large_objects: string;
      }>(`SELECT current_setting('server_version') AS server_version,
                 current_setting('server_version_num') AS server_version_num,
                 current_database() AS database,
                 pg_database_size(current_database())::text AS size,
                 pg_encoding_to_char(encoding) AS encoding,
                 (SELECT count(*) FROM pg_largeobject_metadata)::text AS large_objects
            FROM pg_database WHERE datname = current_database()`);
      const row = rows[0];
      if (!row) throw new Error('current database not found in pg_database');
      return {
        serverVersion: row.server_version,
        serverVersionNum: Number(row.server_version_num),
        database: row.database,
        sizeBytes: Number(row.size),
        encoding: row.encoding,
        largeObjects: Number(row.large_objects),
      };
    } catch (error) {
      throw queryError(error, 'cannot read database facts');
    }
  }

  /** Exact row counts of every table, as of the exported snapshot (see countRows). */
  countRows(signal?: AbortSignal, only?: ReadonlySet<number>): Promise<CountedTable[]> {
    return countRows(this.client, signal, only);
  }

  /** Ends the transaction. Safe to call more than once. */
  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.client.query('COMMIT').catch(() => undefined);
    await this.client.end().catch(() => undefined);
  }

  /**
   * Drops the session at once, without queueing a COMMIT behind a query that may never
   * finish (a row count waiting for another session's lock): a failed or interrupted run
   * must end now. The transaction is read-only, so nothing is lost. Safe to call more
   * than once, and before or after close().
   */
  async abort(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.client.end().catch(() => undefined);
  }
}

function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
