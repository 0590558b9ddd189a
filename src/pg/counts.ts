import type pg from 'pg';
import { BackupctlError } from '../errors.js';
import { queryError, quoteIdent, quoteLiteral, READ_TABLES_HINT, sqlState } from './client.js';

/** Row count of one table, keyed by OID so it can be matched with an archive's TOC. */
export interface CountedTable {
  oid: number;
  schema: string;
  name: string;
  rows: number;
}

/** A table countRows counts, with what decides whether its count may be taken before a restore ends. */
export interface CountableTable {
  oid: number;
  schema: string;
  name: string;
  /** `r` (table or partition) or `m` (populated materialized view). */
  relkind: 'r' | 'm';
  /** A partition: a TABLE DATA item loaded through the partition root may route rows into it. */
  isPartition: boolean;
  /** Has inheritance children: a plain `count(*)` would include their rows (countTable uses ONLY). */
  hasChildren: boolean;
  /** Row-level security is on: counting (with row_security off) needs a role that bypasses it. */
  rowSecurity: boolean;
  /**
   * The schema or table name is not valid UTF-8 (a SQL_ASCII database, which stores any
   * bytes): `schema` and `name` hold it with `\xNN` in place of those bytes, so the table
   * is counted by its OID (countByOid).
   */
  byOid: boolean;
  /** An unlogged table (relpersistence `u`): a server in recovery cannot read its rows (see planCounts). */
  unlogged: boolean;
}

/**
 * A name as the listing returns it: text, or (in a SQL_ASCII database) its raw bytes,
 * which the server does not convert and refuses to send as UTF-8 text when they are not.
 */
function nameOf(text: string | null, raw: Buffer | null): { name: string; exact: boolean } {
  if (raw === null) return { name: text ?? '', exact: true };
  const strict = new TextDecoder('utf-8', { fatal: true });
  try {
    return { name: strict.decode(raw), exact: true };
  } catch {
    // Each byte that is not part of a valid UTF-8 sequence becomes `\xNN`: two names that
    // differ only in such bytes stay apart (U+FFFD for each would make them one).
    let name = '';
    for (let i = 0; i < raw.length; ) {
      const lead = raw[i] as number;
      const length = lead < 0x80 ? 1 : lead >> 5 === 6 ? 2 : lead >> 4 === 14 ? 3 : lead >> 3 === 30 ? 4 : 0;
      if (length > 0 && i + length <= raw.length) {
        try {
          name += strict.decode(raw.subarray(i, i + length));
          i += length;
          continue;
        } catch {
          // not a valid sequence: escaped below
        }
      }
      name += `\\x${lead.toString(16).padStart(2, '0')}`;
      i += 1;
    }
    return { name, exact: false };
  }
}

/**
 * Every table whose rows pg_dump would dump: ordinary tables and partitions (unlogged ones
 * too), outside the system schemas, ordered by schema and name. Not materialized views:
 * an archive holds no rows of theirs, only a REFRESH that computes them again from the
 * restored tables (and functions, and the clock), so their counts may rightly differ.
 */
export async function listCountableTables(client: pg.Client): Promise<CountableTable[]> {
  const { rows } = await client
    .query<{
      oid: string;
      schema: string | null;
      name: string | null;
      raw_schema: Buffer | null;
      raw_name: Buffer | null;
      relkind: 'r' | 'm';
      ispartition: boolean;
      haschildren: boolean;
      rowsecurity: boolean;
      unlogged: boolean;
    }>(
      `SELECT c.oid::int8 AS oid, CASE WHEN NOT raw THEN n.nspname END AS schema, CASE WHEN NOT raw THEN c.relname END AS name,
              CASE WHEN raw THEN convert_to(n.nspname::text, 'SQL_ASCII') END AS raw_schema, CASE WHEN raw THEN convert_to(c.relname::text, 'SQL_ASCII') END AS raw_name,
              c.relkind::text AS relkind,
              c.relispartition AS ispartition, c.relhassubclass AS haschildren, c.relrowsecurity AS rowsecurity,
              c.relpersistence = 'u' AS unlogged
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
              (SELECT current_setting('server_encoding') = 'SQL_ASCII' AS raw) AS encoding
        WHERE c.relkind = 'r'
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
          -- A table the role cannot read cannot be in a dump it takes (pg_dump would fail on it):
          -- skip it rather than fail a backup that leaves it out (--exclude-table, --table).
          AND has_table_privilege(c.oid, 'SELECT')
        ORDER BY n.nspname, c.relname`,
    )
    .catch((error: unknown) => {
      throw queryError(error, 'cannot list tables', READ_TABLES_HINT);
    });
  return rows.map((r) => {
    const schema = nameOf(r.schema, r.raw_schema);
    const name = nameOf(r.name, r.raw_name);
    return {
      oid: Number(r.oid),
      schema: schema.name,
      name: name.name,
      relkind: r.relkind,
      isPartition: r.ispartition,
      hasChildren: r.haschildren,
      rowSecurity: r.rowsecurity,
      byOid: !schema.exact || !name.exact,
      unlogged: r.unlogged,
    };
  });
}

/**
 * The rows of one table exactly as a dump holds them. pg_dump's `COPY t TO stdout` copies
 * the table's own rows, never those of its inheritance children (each child is dumped on
 * its own), so a table is counted with ONLY: a plain `count(*)` on an inheritance parent
 * counts its whole tree, and the sidecar would promise rows the dump does not hold.
 * Partitions are leaf tables (a partitioned root has no rows of its own and is not
 * counted); materialized views have no children.
 */
/**
 * Where countTable counts. `source`: the database backed up (pg_dump needs the same access
 * to dump the table). `restored`: a database backupctl restored into (verify's throwaway,
 * restore's staging database), outside any transaction: a table the counting role owns
 * with FORCE ROW LEVEL SECURITY (a restore with --no-owner makes the role its owner) is
 * counted in a transaction that turns FORCE off and is rolled back, so nothing changes.
 */
export type CountPlace = 'source' | 'restored';

export async function countTable(
  client: pg.Client,
  table: Pick<CountableTable, 'oid' | 'schema' | 'name'> & { relkind?: 'r' | 'm'; rowSecurity?: boolean; byOid?: boolean },
  place: CountPlace = 'source',
): Promise<CountedTable> {
  const only = table.relkind === 'm' ? '' : 'ONLY ';
  const doing = `cannot count rows of ${quoteIdent(table.schema)}.${quoteIdent(table.name)}`;
  const count = async () =>
    table.byOid
      ? await countByOid(client, table.oid, only)
      : Number((await client.query<{ rows: string }>(`SELECT count(*)::int8 AS rows FROM ${only}${quoteIdent(table.schema)}.${quoteIdent(table.name)}`)).rows[0]?.rows ?? 0);
  try {
    return { oid: table.oid, schema: table.schema, name: table.name, rows: await count() };
  } catch (error) {
    // Sessions run with row_security off (client.ts): a policy that would hide rows from
    // this role is an error (42501), never a smaller count.
    if (table.rowSecurity && sqlState(error) === '42501') {
      if (place === 'restored') {
        const rows = await countOwnForced(client, table.oid, count).catch((retryError: unknown) => {
          throw queryError(retryError, doing, READ_TABLES_HINT);
        });
        if (rows !== null) return { oid: table.oid, schema: table.schema, name: table.name, rows };
      }
      throw new BackupctlError(`${doing}: the table has row-level security and the role ${client.user ?? ''} does not bypass it`, {
        hint:
          place === 'restored'
            ? 'restore as a superuser or a role with BYPASSRLS, or with --no-owner so that the restoring role owns the table (its rows are counted after every restore)'
            : 'run as a superuser or a role with BYPASSRLS (pg_dump needs the same to dump the table)',
        cause: error,
      });
    }
    throw queryError(error, doing, READ_TABLES_HINT);
  }
}

/**
 * The count of a table of a restored database that the role owns (or has the privileges
 * of its owner) with FORCE ROW LEVEL SECURITY: in a transaction that turns FORCE off (an
 * owner is then exempt from the table's policies), counts, and is rolled back. null when
 * the table is not such a table (the role does not bypass its policies at all).
 */
async function countOwnForced(client: pg.Client, oid: number, count: () => Promise<number>): Promise<number | null> {
  if (!Number.isSafeInteger(oid) || oid <= 0) throw new Error(`not a table OID: ${oid}`);
  const { rows } = await client.query<{ ours: boolean }>(
    `SELECT c.relforcerowsecurity AND pg_catalog.pg_has_role(c.relowner, 'USAGE') AS ours FROM pg_catalog.pg_class c WHERE c.oid = $1::oid`,
    [oid],
  );
  if (rows[0]?.ours !== true) return null;
  await client.query('BEGIN');
  try {
    await client.query(`DO $force$ BEGIN EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', ${oid}::oid::regclass); END $force$`);
    return await count();
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
  }
}

/**
 * A table whose name the client cannot write (see CountableTable.byOid), counted by the
 * server: its OID is turned into the name there. A DO block runs in a read-only
 * transaction, inside the snapshot, and hands the count back through a setting.
 */
async function countByOid(client: pg.Client, oid: number, only: string): Promise<number> {
  if (!Number.isSafeInteger(oid) || oid <= 0) throw new Error(`not a table OID: ${oid}`);
  await client.query(
    `DO $count$ DECLARE n int8; BEGIN
       EXECUTE format('SELECT count(*) FROM ${only}%s', ${oid}::oid::regclass) INTO n;
       PERFORM set_config('backupctl.rows', n::text, false);
     END $count$`,
  );
  const { rows } = await client.query<{ rows: string }>("SELECT current_setting('backupctl.rows') AS rows");
  return Number(rows[0]?.rows ?? 0);
}

/**
 * Exact row counts of every table whose rows pg_dump would dump (see listCountableTables),
 * restricted to the OIDs in `only` when given: a filtered dump must not count, and lock,
 * the tables it leaves out. Runs in whatever transaction `client` is in: inside an exported
 * snapshot at backup time, in a freshly restored database at verification time.
 */
export async function countRows(client: pg.Client, signal?: AbortSignal, only?: ReadonlySet<number>, place: CountPlace = 'source'): Promise<CountedTable[]> {
  const tables = await listCountableTables(client);
  const counted: CountedTable[] = [];
  for (const table of tables) {
    if (signal?.aborted) break;
    if (only && !only.has(table.oid)) continue;
    counted.push(await countTable(client, table, place));
  }
  return counted;
}

/**
 * How many tables one transaction of countRowsInSnapshot counts. Each count takes an
 * ACCESS SHARE lock that lasts until its transaction ends, beside the one pg_dump holds on
 * the same table until it finishes; the server's lock table is shared by every session and
 * sized max_locks_per_transaction x (max_connections + max_prepared_transactions) (64 x 100
 * by default): a database with thousands of tables that pg_dump alone can dump ran it out
 * ("out of shared memory", 53200) when one transaction counted them all.
 */
export const COUNT_BATCH_TABLES = 100;

export interface SnapshotCountOptions {
  /** Tables per transaction (COUNT_BATCH_TABLES): tests make it small. */
  batchTables?: number | undefined;
  /** pg_dump's --lock-wait-timeout, for the counts' own lock requests. */
  lockWaitTimeout?: string | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Exact row counts of `tables` as of an exported snapshot, counted over `client` (a session
 * of its own, in no transaction) in batches: each batch is a new REPEATABLE READ transaction
 * that imports the snapshot (SET TRANSACTION SNAPSHOT: valid while the exporting transaction
 * stays open), so every count sees exactly what pg_dump sees, and commits, which releases
 * its locks before the next batch takes its own. Stops between tables when `signal` aborts.
 */
export async function countRowsInSnapshot(client: pg.Client, snapshot: string, tables: readonly CountableTable[], options: SnapshotCountOptions = {}): Promise<CountedTable[]> {
  const size = Math.max(1, options.batchTables ?? COUNT_BATCH_TABLES);
  const counted: CountedTable[] = [];
  for (let start = 0; start < tables.length && !options.signal?.aborted; start += size) {
    await inSnapshot(client, snapshot, options.lockWaitTimeout, async () => {
      for (const table of tables.slice(start, start + size)) {
        if (options.signal?.aborted) break;
        counted.push(await countTable(client, table));
      }
    });
  }
  return counted;
}

/** Runs `work` in a read-only REPEATABLE READ transaction that imports `snapshot`, then commits (rolls back on failure). */
async function inSnapshot(client: pg.Client, snapshot: string, lockWaitTimeout: string | undefined, work: () => Promise<void>): Promise<void> {
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    // First in the transaction: a snapshot is imported before any query.
    await client.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(snapshot)}`);
    if (lockWaitTimeout) await client.query(`SET LOCAL lock_timeout = ${quoteLiteral(lockWaitTimeout)}`);
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw queryError(error, "cannot import the backup's snapshot to count rows");
  }
  try {
    await work();
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error instanceof BackupctlError ? error : queryError(error, 'cannot count rows');
  }
}

/**
 * Which tables are counted, and which hold no rows in the dump whatever they hold: on a
 * server in recovery (a hot standby), no session can read an unlogged table (0A000), and
 * pg_dump dumps its definition only (it turns on --no-unlogged-table-data there), so a
 * restore of that archive holds 0 rows of it: it is not counted (its count would fail),
 * and 0 is what it holds. Unlogged partitions and inheritance children alike: each is a
 * table of its own. On a primary every table is counted.
 */
export function planCounts<T extends Pick<CountableTable, 'unlogged'>>(tables: readonly T[], inRecovery: boolean): { count: T[]; empty: T[] } {
  if (!inRecovery) return { count: [...tables], empty: [] };
  return { count: tables.filter((table) => !table.unlogged), empty: tables.filter((table) => table.unlogged) };
}

/** Whether the server is in recovery (a hot standby): see planCounts. */
export async function inRecovery(client: pg.Client): Promise<boolean> {
  try {
    const { rows } = await client.query<{ recovery: boolean }>('SELECT pg_is_in_recovery() AS recovery');
    return rows[0]?.recovery === true;
  } catch (error) {
    throw queryError(error, 'cannot tell whether the server is in recovery');
  }
}
