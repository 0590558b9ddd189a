import type pg from 'pg';
import { BackupctlError } from '../errors.js';
import { cancelRunning, connect, endClient, queryError, quoteIdent, quoteLiteral, READ_TABLES_HINT } from './client.js';
import { countRowsInSnapshot, inRecovery, listCountableTables, planCounts, type CountedTable } from './counts.js';
import { castNeeds, type CastNeed } from './cast-needs.js';
import { inheritanceTables, reorderedByRestore, type ReorderedTable } from './column-order.js';
import { localeOf, type DatabaseLocale } from './locale.js';
import type { ConnectionSettings } from './connection.js';

export type { CountedTable } from './counts.js';

/** What SnapshotSession.countRows found. */
export interface SnapshotCounts {
  /** Every table pg_dump would dump the rows of, in the listing's order, with its count. */
  tables: CountedTable[];
  /**
   * The unlogged tables among them, schema-qualified and quoted where needed, when the server
   * is in recovery: pg_dump dumps their definition only, so they are recorded with 0 rows
   * (what a restore of the archive holds) without being counted (see planCounts).
   */
  unloggedOnStandby: string[];
}

export interface DatabaseFacts {
  serverVersion: string;
  serverVersionNum: number;
  sizeBytes: number;
  encoding: string;
  locale: DatabaseLocale;
  largeObjects: number;
  /** The database has a schema named public (see the sidecar's database.publicSchema). */
  publicSchema: boolean;
  /** The role may read pg_authid (superusers): pg_dumpall can include role passwords. */
  canReadRolePasswords: boolean;
  /** The database's owner (a role name). */
  owner: string;
}

/**
 * A REPEATABLE READ transaction whose snapshot is exported for pg_dump --snapshot.
 * While it stays open, everything read here (row counts, sizes) sees exactly the data
 * pg_dump sees, however busy the database is. Close it only after pg_dump has finished.
 * The row counts run on a second session of their own, in transactions that import the
 * snapshot (see countRowsInSnapshot): a backup holds one more connection than pg_dump's.
 */

/** What a relation of a filtered dump may use that the dump does not hold (see dependencies). */
export type DependencyKind = 'type' | 'sequence' | 'function' | 'table' | 'view' | 'materialized view' | 'foreign table' | 'server' | 'access method';
export class SnapshotSession {
  private ended = false;

  private constructor(
    private readonly client: pg.Client,
    /** The session that counts rows, in batches of transactions importing the snapshot. */
    private readonly counter: pg.Client,
    readonly snapshotId: string,
    /**
     * The session's server process, that of the row counts, and the snapshot's xmin (32-bit,
     * as pg_stat_activity.backend_xmin shows it; every session that imports the snapshot has
     * it): what lock-waits.ts looks for.
     */
    readonly backend: { sessionPid: number; countsPid: number; xmin: string | null },
    private readonly lockWaitTimeout: string | undefined,
  ) {}

  static async open(settings: ConnectionSettings, options: { lockWaitTimeout?: string | undefined } = {}): Promise<SnapshotSession> {
    const client = await connect(settings);
    let counter: pg.Client | undefined;
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      if (options.lockWaitTimeout) {
        // Same limit as pg_dump's: our counts take the same ACCESS SHARE locks.
        await client.query(`SET LOCAL lock_timeout = ${quoteLiteral(options.lockWaitTimeout)}`);
      }
      const result = await client.query<{ snapshot: string; pid: number; xmin: string | null }>(
        'SELECT pg_export_snapshot() AS snapshot, pg_backend_pid() AS pid, (txid_snapshot_xmin(txid_current_snapshot()) % 4294967296)::text AS xmin',
      );
      const row = result.rows[0];
      if (!row?.snapshot) throw new Error('pg_export_snapshot() returned nothing');
      counter = await connect(settings);
      const countsPid = (await counter.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid ?? 0;
      return new SnapshotSession(client, counter, row.snapshot, { sessionPid: row.pid, countsPid, xmin: row.xmin }, options.lockWaitTimeout);
    } catch (error) {
      await client.end().catch(() => undefined);
      await counter?.end().catch(() => undefined);
      throw error instanceof BackupctlError ? error : queryError(error, 'cannot open a snapshot');
    }
  }

  /**
   * Facts of the database, as of the snapshot. Not its name: current_database() sends the
   * shared catalog's bytes converted as if they were in this database's encoding, so a
   * non-ASCII name (written in UTF-8) arrives from a LATIN1 database as mojibake. The name
   * the session connected with is the database's name (it matched the catalog bytewise).
   */
  async facts(): Promise<DatabaseFacts> {
    try {
      const { rows } = await this.client.query<{
        server_version: string;
        server_version_num: string;
        size: string;
        encoding: string;
        large_objects: string;
        public_schema: boolean;
        role_passwords: boolean;
        owner: string;
        raw_owner: Buffer;
        db: Record<string, unknown>;
      }>(`SELECT current_setting('server_version') AS server_version,
                 current_setting('server_version_num') AS server_version_num,
                 pg_database_size(current_database())::text AS size,
                 pg_encoding_to_char(encoding) AS encoding,
                 (SELECT count(*) FROM pg_largeobject_metadata)::text AS large_objects,
                 EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public') AS public_schema,
                 has_table_privilege('pg_catalog.pg_authid', 'SELECT') AS role_passwords,
                 pg_get_userbyid(d.datdba) AS owner,
                 -- the same name's bytes, unconverted (see ownerName)
                 convert_to(pg_get_userbyid(d.datdba)::text, current_setting('server_encoding')) AS raw_owner,
                 -- the locale columns differ between versions (datlocprovider 15+,
                 -- daticulocale 15-16, datlocale 17+, daticurules 16+): taken as a whole row
                 to_jsonb(d) AS db
            FROM pg_database d WHERE datname = current_database()`);
      const row = rows[0];
      if (!row) throw new Error('current database not found in pg_database');
      return {
        serverVersion: row.server_version,
        serverVersionNum: Number(row.server_version_num),
        sizeBytes: Number(row.size),
        encoding: row.encoding,
        locale: localeOf(row.db),
        largeObjects: Number(row.large_objects),
        publicSchema: row.public_schema,
        canReadRolePasswords: row.role_passwords,
        owner: ownerName(row.owner, row.raw_owner),
      };
    } catch (error) {
      throw queryError(error, 'cannot read database facts');
    }
  }

  /**
   * Of the tables a filtered dump selects (`only`), the partitioned tables and inheritance
   * parents whose partitions or children, at any depth, it leaves out: their rows are not
   * in the dump, which surprises whoever wrote `--table parent` (or `--schema` of a parent
   * whose partitions live in another schema). One warning line per such table, naming up to
   * three of the tables left out (the leaves that hold rows: a partitioned table in the
   * middle holds none), and what to select too (those in the middle first, without which a
   * leaf does not restore); `filter` names the options in the lines, `remedy` what to say:
   * select the tables (--table), their schemas or tables (--schema), or exclude less.
   */
  async partialTrees(only: ReadonlySet<number>, filter = '--table', remedy: 'table' | 'schema' | 'exclude' = 'table'): Promise<string[]> {
    if (only.size === 0) return [];
    try {
      const { rows } = await this.client.query<{ name: string; partitioned: boolean; left_out: string; examples: string[]; needed: string[]; needed_count: string }>(
        `WITH RECURSIVE tree(root, rel) AS (
           SELECT i.inhparent, i.inhrelid FROM pg_inherits i WHERE i.inhparent::int8 = ANY($1::int8[])
           UNION
           SELECT t.root, i.inhrelid FROM tree t JOIN pg_inherits i ON i.inhparent = t.rel
         ), missing AS (
           SELECT DISTINCT t.root, t.rel, format('%I.%I', n.nspname, c.relname) AS name, c.relkind <> 'p' AS leaf
             FROM tree t JOIN pg_class c ON c.oid = t.rel JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE NOT (t.rel::int8 = ANY($1::int8[]))
         )
         SELECT format('%I.%I', n.nspname, c.relname) AS name, c.relkind = 'p' AS partitioned, count(*) FILTER (WHERE m.leaf)::int8 AS left_out,
                (array_agg(m.name ORDER BY m.name) FILTER (WHERE m.leaf))[1:3] AS examples,
                -- what to select besides: the partitioned tables in between first (a leaf restores only under its parent)
                (array_agg(m.name ORDER BY m.leaf, m.name))[1:5] AS needed, count(*)::int8 AS needed_count
           FROM missing m
           JOIN pg_class c ON c.oid = m.root
           JOIN pg_namespace n ON n.oid = c.relnamespace
          GROUP BY 1, 2 HAVING count(*) FILTER (WHERE m.leaf) > 0 ORDER BY 1`,
        [[...only]],
      );
      return rows.map((row) => {
        const count = Number(row.left_out);
        const named = `${row.examples.join(', ')}${count > row.examples.length ? `, and ${count - row.examples.length} more` : ''}`;
        const selectThem =
          remedy === 'table'
            ? `select them too (${row.needed.map((name) => `--table '${name}'`).join(' ')}${Number(row.needed_count) > row.needed.length ? ' ...' : ''})`
            : remedy === 'schema'
              ? 'select their schemas or tables too'
              : 'if they belong in the backup, exclude less';
        const several = filter.includes(' and '); // "--schema and --exclude-table leave out"
        return row.partitioned
          ? `${row.name} is partitioned and ${filter} ${several ? 'leave' : 'leaves'} out ${count} of its partitions (${named}): their rows are not in this backup; ${selectThem}`
          : `${row.name} has ${count} inheritance ${count === 1 ? 'child' : 'children'} (${named}) that ${filter} ${remedy === 'exclude' ? (several ? 'leave out' : 'leaves out') : several ? 'do not select' : 'does not select'}: the backup holds the parent's own rows only`;
      });
    } catch (error) {
      throw queryError(error, 'cannot read the inheritance tree of the selected tables', READ_TABLES_HINT);
    }
  }

  /**
   * What the relations of a filtered dump (`only`: its tables, views, materialized views
   * and foreign tables) use that lives outside them: the types of their columns (enums,
   * domains, composites, extension types, arrays of them), the sequences their defaults
   * draw from (unless owned by one of them: pg_dump takes those along), the functions of
   * their triggers and defaults, the tables they inherit from (or are partitions of) and
   * that their foreign keys reference, the relations and functions a view or materialized
   * view reads, the server of a foreign table and a table access method of the database's
   * own (both outside any schema: no --table or --schema dump holds them). The caller
   * keeps those the archive does not hold: without them, the backup restores only into a
   * database that has them. Best effort: none when the query fails.
   */
  async dependencies(only: ReadonlySet<number>): Promise<Array<{ table: string; kind: DependencyKind; name: string; oid: number; extension: number | null }>> {
    if (only.size === 0) return [];
    try {
      const { rows } = await this.client.query<{ table: string; kind: DependencyKind; name: string; oid: string; extension: string | null }>(
        `SELECT used."table", used.kind, used.name, used.oid, member.refobjid::int8 AS extension FROM (
         SELECT DISTINCT a.attrelid::regclass::text AS table, 'type' AS kind, format_type(base.oid, NULL) AS name,
                -- a table's row type is held as its TABLE entry (the class), a standalone composite type as a TYPE
                CASE WHEN base.typrelid <> 0 AND (SELECT r.relkind FROM pg_class r WHERE r.oid = base.typrelid) <> 'c'
                     THEN base.typrelid ELSE base.oid END::int8 AS oid,
                CASE WHEN base.typrelid <> 0 AND (SELECT r.relkind FROM pg_class r WHERE r.oid = base.typrelid) <> 'c'
                     THEN 'pg_class' ELSE 'pg_type' END::regclass AS catalog
           FROM pg_attribute a
           JOIN pg_type t ON t.oid = a.atttypid
           JOIN pg_type base ON base.oid = CASE WHEN t.typelem <> 0 AND t.typlen = -1 THEN t.typelem ELSE t.oid END
           JOIN pg_namespace n ON n.oid = base.typnamespace
          WHERE a.attrelid::int8 = ANY($1::int8[]) AND a.attnum > 0 AND NOT a.attisdropped
            AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND NOT (base.typrelid::int8 = ANY($1::int8[]))
         UNION
         SELECT DISTINCT ad.adrelid::regclass::text, 'sequence', d.refobjid::regclass::text, d.refobjid::int8, 'pg_class'::regclass
           FROM pg_attrdef ad
           JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_class'::regclass
           JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
          WHERE ad.adrelid::int8 = ANY($1::int8[])
            AND NOT EXISTS (SELECT 1 FROM pg_depend o WHERE o.classid = 'pg_class'::regclass AND o.objid = s.oid
                             AND o.deptype IN ('a', 'i') AND o.refobjid::int8 = ANY($1::int8[]))
         UNION
         -- the functions of its triggers and of its column defaults (not the system's)
         SELECT DISTINCT t.tgrelid::regclass::text, 'function', p.oid::regprocedure::text, p.oid::int8, 'pg_proc'::regclass
           FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE t.tgrelid::int8 = ANY($1::int8[]) AND NOT t.tgisinternal AND n.nspname NOT IN ('pg_catalog', 'information_schema')
         UNION
         SELECT DISTINCT ad.adrelid::regclass::text, 'function', p.oid::regprocedure::text, p.oid::int8, 'pg_proc'::regclass
           FROM pg_attrdef ad
           JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_proc'::regclass
           JOIN pg_proc p ON p.oid = d.refobjid JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE ad.adrelid::int8 = ANY($1::int8[]) AND n.nspname NOT IN ('pg_catalog', 'information_schema')
         UNION
         -- the parent it inherits from or is a partition of (CREATE TABLE ... INHERITS, ATTACH PARTITION)
         SELECT DISTINCT i.inhrelid::regclass::text, 'table', i.inhparent::regclass::text, i.inhparent::int8, 'pg_class'::regclass
           FROM pg_inherits i
          WHERE i.inhrelid::int8 = ANY($1::int8[]) AND NOT (i.inhparent::int8 = ANY($1::int8[]))
         UNION
         -- the tables its foreign keys reference (an inherited constraint is the parent's)
         SELECT DISTINCT f.conrelid::regclass::text, 'table', f.confrelid::regclass::text, f.confrelid::int8, 'pg_class'::regclass
           FROM pg_constraint f
          WHERE f.contype = 'f' AND f.conrelid::int8 = ANY($1::int8[]) AND NOT (f.confrelid::int8 = ANY($1::int8[]))
            AND f.conparentid = 0
         UNION
         -- the relations a view or materialized view reads (its rule's dependencies)
         SELECT DISTINCT r.ev_class::regclass::text,
                CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table' WHEN 'S' THEN 'sequence' ELSE 'table' END,
                c.oid::regclass::text, c.oid::int8, 'pg_class'::regclass
           FROM pg_rewrite r
           JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
           JOIN pg_class c ON c.oid = d.refobjid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE r.ev_class::int8 = ANY($1::int8[]) AND d.refobjid <> r.ev_class AND NOT (c.oid::int8 = ANY($1::int8[]))
            AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
            AND n.nspname NOT IN ('pg_catalog', 'information_schema')
         UNION
         -- the functions a view or materialized view calls (not the system's)
         SELECT DISTINCT r.ev_class::regclass::text, 'function', p.oid::regprocedure::text, p.oid::int8, 'pg_proc'::regclass
           FROM pg_rewrite r
           JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_proc'::regclass
           JOIN pg_proc p ON p.oid = d.refobjid JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE r.ev_class::int8 = ANY($1::int8[]) AND n.nspname NOT IN ('pg_catalog', 'information_schema')
         UNION
         -- the server of a foreign table
         SELECT DISTINCT ft.ftrelid::regclass::text, 'server', quote_ident(s.srvname), s.oid::int8, 'pg_foreign_server'::regclass
           FROM pg_foreign_table ft JOIN pg_foreign_server s ON s.oid = ft.ftserver
          WHERE ft.ftrelid::int8 = ANY($1::int8[])
         UNION
         -- a table access method the database created (heap is the system's)
         SELECT DISTINCT c.oid::regclass::text, 'access method', quote_ident(am.amname), am.oid::int8, 'pg_am'::regclass
           FROM pg_class c JOIN pg_am am ON am.oid = c.relam
          WHERE c.oid::int8 = ANY($1::int8[]) AND c.relam <> 0 AND am.oid >= 16384
         ) used("table", kind, name, oid, catalog)
         -- the extension the object belongs to, if any: CREATE EXTENSION makes it
         LEFT JOIN pg_depend member ON member.classid = used.catalog AND member.objid = used.oid::oid AND member.deptype = 'e'
          ORDER BY 1, 2, 3`,
        [[...only]],
      );
      return rows.map((row) => ({ table: row.table, kind: row.kind, name: row.name, oid: Number(row.oid), extension: row.extension === null ? null : Number(row.extension) }));
    } catch {
      // Only for warnings (names a SQL_ASCII database cannot send as UTF-8...): none then.
      return [];
    }
  }

  /**
   * Tables that belong to an extension without being one of its configuration tables
   * (pg_extension_config_dump), and that hold rows by the planner's estimate: pg_dump
   * never dumps them (CREATE EXTENSION is to make them again, empty), so their rows are
   * in no backup. `ALTER EXTENSION ... ADD TABLE` on a table of one's own does this.
   * Best effort, for a warning: none when the query fails.
   */
  async extensionTablesWithRows(): Promise<Array<{ table: string; extension: string; rows: number }>> {
    try {
      const { rows } = await this.client.query<{ table: string; extension: string; rows: string }>(
        `SELECT format('%I.%I', n.nspname, c.relname) AS table, e.extname AS extension, c.reltuples::int8 AS rows
           FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
           JOIN pg_extension e ON e.oid = d.refobjid
          WHERE c.relkind = 'r' AND c.reltuples > 0 AND NOT (c.oid = ANY (coalesce(e.extconfig, '{}'::oid[])))
          ORDER BY 1`,
      );
      return rows.map((row) => ({ table: row.table, extension: row.extension, rows: Number(row.rows) }));
    } catch {
      return [];
    }
  }

  /** The types and functions the archive's casts (pg_cast OIDs) use, as of the snapshot (see cast-needs.ts). */
  async castDependencies(casts: ReadonlySet<number>): Promise<CastNeed[]> {
    return castNeeds(this.client, casts);
  }

  /**
   * Inheritance children (of `only`, a filtered dump's tables, when given) whose columns a
   * restore of pg_dump's archive puts in another order (see column-order.ts), as of the
   * snapshot. Best effort, for a warning: none when the query fails.
   */
  async reorderedColumns(only?: ReadonlySet<number>): Promise<ReorderedTable[]> {
    try {
      return reorderedByRestore(await inheritanceTables(this.client, only));
    } catch {
      return [];
    }
  }

  /**
   * Tables a whole-database pg_dump would lock and read, and (unless `sequences` is false:
   * a --schema-only dump reads no sequence's value) sequences whose value it would read,
   * that this role may not read (pg_dump would fail on the first one, after minutes of
   * work): found here, by privilege, before the dump starts. Sequences need SELECT: pg_dump
   * reads `last_value` from them, and from PostgreSQL 18 through pg_get_sequence_data(),
   * which answers a row of NULLs without SELECT (USAGE is not enough, whatever its first
   * documentation said), so such a dump would lack the value. Objects of extensions are left out, as pg_dump
   * leaves them out. Each is named with its kind: `table public.t`, `sequence public.s`.
   */
  async unreadableRelations(options: { sequences: boolean }): Promise<Array<{ kind: 'table' | 'sequence'; name: string }>> {
    try {
      const { rows } = await this.client.query<{ kind: 'table' | 'sequence'; name: string }>(
        `SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END AS kind, format('%I.%I', n.nspname, c.relname) AS name
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE (c.relkind IN ('r', 'p') OR (c.relkind = 'S' AND $1::bool))
            AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
            AND NOT CASE WHEN c.relkind <> 'S' THEN has_table_privilege(c.oid, 'SELECT')
                         ELSE has_sequence_privilege(c.oid, 'SELECT') END
            AND NOT EXISTS (SELECT 1 FROM pg_depend d
                             WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
          ORDER BY c.relkind = 'S', 2`,
        [options.sequences],
      );
      return rows;
    } catch (error) {
      throw queryError(error, 'cannot check which tables and sequences the role may read', READ_TABLES_HINT);
    }
  }

  /**
   * Exact row counts, as of the exported snapshot, of every table whose rows pg_dump would
   * dump (see listCountableTables), restricted to the OIDs in `only` when given: a filtered
   * dump must not count, and lock, the tables it leaves out. Listed in the snapshot here,
   * counted on the counting session in batches of `batchTables` (see countRowsInSnapshot).
   */
  async countRows(signal?: AbortSignal, only?: ReadonlySet<number>, batchTables?: number): Promise<SnapshotCounts> {
    const tables = (await listCountableTables(this.client)).filter((table) => !only || only.has(table.oid));
    const { count, empty } = planCounts(tables, await inRecovery(this.client));
    const counted = new Map((await countRowsInSnapshot(this.counter, this.snapshotId, count, { batchTables, lockWaitTimeout: this.lockWaitTimeout, signal })).map((table) => [table.oid, table]));
    for (const table of empty) counted.set(table.oid, { oid: table.oid, schema: table.schema, name: table.name, rows: 0 });
    return {
      // Stopped by `signal`, some were not counted: those are left out.
      tables: tables.flatMap((table) => counted.get(table.oid) ?? []),
      unloggedOnStandby: empty.map((table) => `${quoteName(table.schema)}.${quoteName(table.name)}`),
    };
  }

  /** Ends the transaction. Safe to call more than once. */
  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.client.query('COMMIT').catch(() => undefined);
    await this.client.end().catch(() => undefined);
    await this.counter.end().catch(() => undefined);
  }

  /**
   * Drops the session at once, without queueing a COMMIT behind a query that may never
   * finish (a row count waiting for another session's lock): a failed or interrupted run
   * must end now, and leave no query running on the server (see cancelRunning). The
   * transaction is read-only, so nothing is lost. Safe to call more than once, and before
   * or after close().
   */
  async abort(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    // Bounded throughout: on a server that stopped answering, an interrupted run still ends
    // within its grace period (cli.ts), its files and lock removed.
    await Promise.all([cancelRunning(this.client, ABORT_WAIT_MS), cancelRunning(this.counter, ABORT_WAIT_MS)]);
    await Promise.all([endClient(this.client, ABORT_WAIT_MS), endClient(this.counter, ABORT_WAIT_MS)]);
  }
}

/** How long abort() waits for the server at each step (cancel, then end). */
const ABORT_WAIT_MS = 300;

/** A name as format('%I') writes it: double-quoted unless it is a plain lower-case identifier. */
function quoteName(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : quoteIdent(name);
}

/**
 * A role name from the shared catalog, which holds the bytes of whichever database's
 * session wrote it, most often UTF-8: a non-UTF-8 database (LATIN1) sends them converted
 * as if in its own encoding ('Lät' becomes 'LÃ¤t'). Its bytes as they are, when they are
 * valid UTF-8; else the text the server sent.
 */
function ownerName(text: string, raw: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    return text;
  }
}
