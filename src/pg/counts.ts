import type pg from 'pg';
import { BackupctlError } from '../errors.js';
import { queryError, quoteIdent, sqlState } from './client.js';

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
}

/**
 * Every table whose rows pg_dump would dump: ordinary tables and partitions (unlogged ones
 * too) and populated materialized views, outside the system schemas, ordered by schema and name.
 */
export async function listCountableTables(client: pg.Client): Promise<CountableTable[]> {
  const { rows } = await client
    .query<{ oid: string; schema: string; name: string; relkind: 'r' | 'm'; ispartition: boolean; haschildren: boolean; rowsecurity: boolean }>(
      `SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind,
              c.relispartition AS ispartition, c.relhassubclass AS haschildren, c.relrowsecurity AS rowsecurity
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE (c.relkind = 'r' OR (c.relkind = 'm' AND c.relispopulated))
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
          -- A table the role cannot read cannot be in a dump it takes (pg_dump would fail on it):
          -- skip it rather than fail a backup that leaves it out (--exclude-table, --table).
          AND has_table_privilege(c.oid, 'SELECT')
        ORDER BY n.nspname, c.relname`,
    )
    .catch((error: unknown) => {
      throw queryError(error, 'cannot list tables');
    });
  return rows.map((r) => ({
    oid: Number(r.oid),
    schema: r.schema,
    name: r.name,
    relkind: r.relkind,
    isPartition: r.ispartition,
    hasChildren: r.haschildren,
    rowSecurity: r.rowsecurity,
  }));
}

/**
 * The rows of one table exactly as a dump holds them. pg_dump's `COPY t TO stdout` copies
 * the table's own rows, never those of its inheritance children (each child is dumped on
 * its own), so a table is counted with ONLY: a plain `count(*)` on an inheritance parent
 * counts its whole tree, and the sidecar would promise rows the dump does not hold.
 * Partitions are leaf tables (a partitioned root has no rows of its own and is not
 * counted); materialized views have no children.
 */
export async function countTable(
  client: pg.Client,
  table: Pick<CountableTable, 'oid' | 'schema' | 'name'> & { relkind?: 'r' | 'm'; rowSecurity?: boolean },
): Promise<CountedTable> {
  const only = table.relkind === 'm' ? '' : 'ONLY ';
  const sql = `SELECT count(*)::int8 AS rows FROM ${only}${quoteIdent(table.schema)}.${quoteIdent(table.name)}`;
  const doing = `cannot count rows of ${quoteIdent(table.schema)}.${quoteIdent(table.name)}`;
  try {
    const { rows } = await client.query<{ rows: string }>(sql);
    return { oid: table.oid, schema: table.schema, name: table.name, rows: Number(rows[0]?.rows ?? 0) };
  } catch (error) {
    // Sessions run with row_security off (client.ts): a policy that would hide rows from
    // this role is an error (42501), never a smaller count.
    if (table.rowSecurity && sqlState(error) === '42501') {
      throw new BackupctlError(`${doing}: the table has row-level security and the role ${client.user ?? ''} does not bypass it`, {
        hint: 'run as a superuser or a role with BYPASSRLS (pg_dump needs the same to dump the table)',
        cause: error,
      });
    }
    throw queryError(error, doing);
  }
}

/**
 * Exact row counts of every table whose rows pg_dump would dump (see listCountableTables),
 * restricted to the OIDs in `only` when given: a filtered dump must not count, and lock,
 * the tables it leaves out. Runs in whatever transaction `client` is in: inside an exported
 * snapshot at backup time, in a freshly restored database at verification time.
 */
export async function countRows(client: pg.Client, signal?: AbortSignal, only?: ReadonlySet<number>): Promise<CountedTable[]> {
  const tables = await listCountableTables(client);
  const counted: CountedTable[] = [];
  for (const table of tables) {
    if (signal?.aborted) break;
    if (only && !only.has(table.oid)) continue;
    counted.push(await countTable(client, table));
  }
  return counted;
}
