/**
 * The column order pg_dump cannot keep: an inheritance child (not a partition) is dumped as
 * `CREATE TABLE child (its own columns) INHERITS (parents)`, and PostgreSQL then lays the
 * table out with every parent's columns first (parents in INHERITS order, a column that
 * several parents share where it first came), then the child's columns that no parent has,
 * in their order. A child whose columns are in another order on the source (a column added
 * to the parent after the child existed goes last in the child; `ALTER TABLE ... INHERIT`
 * keeps the child's own order) comes back with the same columns and rows but in that order:
 * `SELECT *` and `INSERT` without a column list see another table. Only pg_dump's
 * --binary-upgrade mode keeps it, which is not for restoring. Partitions are dumped as
 * tables of their own and attached, and keep their order.
 */
import type pg from 'pg';

/** A table in an inheritance tree, as the catalog holds it. */
export interface InheritanceTable {
  oid: number;
  /** Schema-qualified, quoted where needed. */
  name: string;
  /** Its parents' OIDs, in INHERITS order (pg_inherits.inhseqno); empty for a root. */
  parents: number[];
  /** Its columns in order (attnum), dropped ones left out. */
  columns: string[];
  /** In the dump (a filtered dump reads the ancestors of what it selects, for their order). */
  selected?: boolean;
}

/** A child whose restored column order is not its own. */
export interface ReorderedTable {
  name: string;
  columns: string[];
  restored: string[];
}

/**
 * The column order of each table after a restore of pg_dump's archive (see the file's
 * comment). A parent missing from `tables`, or an inheritance cycle (which PostgreSQL
 * refuses), leaves the table as it is: this predicts, for a warning, and must not throw.
 */
export function restoredColumnOrder(tables: readonly InheritanceTable[]): Map<number, string[]> {
  const byOid = new Map(tables.map((table) => [table.oid, table]));
  const done = new Map<number, string[]>();
  const visiting = new Set<number>();
  const order = (table: InheritanceTable): string[] => {
    const known = done.get(table.oid);
    if (known) return known;
    if (visiting.has(table.oid)) return table.columns;
    visiting.add(table.oid);
    let result = table.columns;
    const parents = table.parents.map((oid) => byOid.get(oid));
    if (parents.length > 0 && parents.every((parent) => parent !== undefined)) {
      const merged: string[] = [];
      for (const parent of parents) for (const column of order(parent)) if (!merged.includes(column)) merged.push(column);
      result = [...merged, ...table.columns.filter((column) => !merged.includes(column))];
    }
    visiting.delete(table.oid);
    done.set(table.oid, result);
    return result;
  };
  for (const table of tables) order(table);
  return done;
}

/** The children whose columns a restore puts in another order, in the order given. */
export function reorderedByRestore(tables: readonly InheritanceTable[]): ReorderedTable[] {
  const restored = restoredColumnOrder(tables);
  return tables.flatMap((table) => {
    if (table.selected === false) return [];
    const after = restored.get(table.oid) ?? table.columns;
    return after.every((column, i) => column === table.columns[i]) ? [] : [{ name: table.name, columns: table.columns, restored: after }];
  });
}

/**
 * Every table of an inheritance tree that is not a partition (pg_dump attaches partitions,
 * which keeps their order), with its parents and columns; restricted to the children in
 * `only` when given (a filtered dump), their ancestors still read for their order.
 */
export async function inheritanceTables(client: pg.Client, only?: ReadonlySet<number>): Promise<InheritanceTable[]> {
  const { rows } = await client.query<{ oid: string; name: string; parents: string[] | null; columns: string[] | null; selected: boolean }>(
    `WITH RECURSIVE member(oid) AS (
       SELECT i.inhrelid FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE NOT c.relispartition AND ($1::int8[] IS NULL OR i.inhrelid::int8 = ANY($1::int8[]))
       UNION
       SELECT i.inhparent FROM member m JOIN pg_inherits i ON i.inhrelid = m.oid
     )
     SELECT c.oid::int8 AS oid, format('%I.%I', n.nspname, c.relname) AS name,
            (SELECT array_agg(i.inhparent::int8 ORDER BY i.inhseqno) FROM pg_inherits i WHERE i.inhrelid = c.oid) AS parents,
            (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
            ($1::int8[] IS NULL OR c.oid::int8 = ANY($1::int8[])) AS selected
       FROM member m JOIN pg_class c ON c.oid = m.oid JOIN pg_namespace n ON n.oid = c.relnamespace
      ORDER BY 2`,
    [only ? [...only] : null],
  );
  return rows.map((row) => ({ oid: Number(row.oid), name: row.name, parents: (row.parents ?? []).map(Number), columns: row.columns ?? [], selected: row.selected }));
}

/** The create warning for reorderedByRestore's tables: up to three named with both orders. */
export function reorderedWarning(tables: readonly ReorderedTable[]): string {
  const shown = tables.slice(0, 3).map((table) => `${table.name} (${table.columns.join(', ')}) comes back as (${table.restored.join(', ')})`);
  const more = tables.length > shown.length ? `, and ${tables.length - shown.length} more` : '';
  return (
    `a restore puts the columns of ${tables.length} inheritance child table(s) in another order: ${shown.join('; ')}${more}. ` +
    `pg_dump recreates a child with its parents' columns first (only pg_upgrade keeps the order): the columns and rows are the same, ` +
    `but SELECT * and INSERT or COPY without a column list see the new order`
  );
}
