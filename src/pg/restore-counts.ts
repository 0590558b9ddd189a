import type pg from 'pg';
import { connect } from './client.js';
import type { ConnectionSettings } from './connection.js';
import { countTable, listCountableTables, type CountableTable, type CountedTable } from './counts.js';
import type { DataDone } from './restore-progress.js';
import type { TocEntry } from './toc.js';

/**
 * Row counts of a database being restored, taken while pg_restore runs: a table is counted,
 * on a connection of its own, one table at a time, as soon as pg_restore has finished its
 * TABLE DATA item (nothing else in a restore adds or removes rows: post-data is indexes,
 * constraints, triggers, policies, and REFRESH of materialized views). `finish` counts the
 * rest once pg_restore has exited, and returns exactly what countRows would return then.
 *
 * Counted only at the end: the table whose data pg_restore loads last (its primary key is
 * built right after, and would wait for the count's lock), partitions (a data item loaded
 * through the partition root may route rows into any partition), and every table whose
 * TOC entry cannot be matched to exactly one table of the database. Materialized views are
 * not counted at all (see listCountableTables).
 */
export class RestoreCounter {
  private readonly connecting: Promise<pg.Client>;
  private readonly queue: DataDone[] = [];
  private running: Promise<void> | null = null;
  private stopped = false;
  /** dumpId of a TABLE DATA entry -> the table it loads; made at the first report (pre-data is done by then). */
  private tables: Map<number, CountableTable> | null = null;
  private readonly early = new Map<number, CountedTable>();
  private fresh: pg.Client | null = null;
  private used = 0;

  constructor(
    private readonly settings: ConnectionSettings,
    private readonly database: string,
    private readonly entries: readonly TocEntry[],
  ) {
    this.connecting = connect(settings, database);
    this.connecting.catch(() => undefined);
  }

  /** Of the counts `finish` returned, how many were taken while pg_restore ran (for diagnostics). */
  get countedEarly(): number {
    return this.used;
  }

  /** pg_restore has finished these data items (the last one is counted at the end: see DataDone.last). */
  done(items: readonly DataDone[]): void {
    const early = items.filter((item) => !item.last);
    if (this.stopped || early.length === 0) return;
    this.queue.push(...early);
    if (!this.running) this.running = this.drain();
  }

  private async drain(): Promise<void> {
    await Promise.resolve(); // `running` is set before the loop looks at `stopped`
    try {
      for (let item = this.queue.shift(); item && !this.stopped; item = this.queue.shift()) {
        await this.countEarly(item);
      }
    } catch {
      // The connection failed or was closed: the rest is counted by finish (which reports errors).
      this.stopped = true;
    } finally {
      this.running = null;
    }
  }

  private async countEarly(item: DataDone): Promise<void> {
    const client = await this.connecting;
    this.tables ??= matchTables(this.entries, await listCountableTables(client));
    const table = this.tables.get(item.dumpId);
    if (!table || this.early.has(table.oid)) return;
    if (item.label !== (item.qualified ? `${table.schema}.${table.name}` : table.name)) return;
    // Belt and braces: should a report ever come while the item's COPY still runs, that
    // session holds ROW EXCLUSIVE on the table, and the table is left for the end. Checked
    // first, counted after (in a later snapshot), so a COPY that commits in between is seen.
    const { rows } = await client.query<{ busy: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks
                       WHERE locktype = 'relation' AND relation = $1::oid AND mode = 'RowExclusiveLock' AND granted
                         AND pid <> pg_catalog.pg_backend_pid()
                         AND database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())) AS busy`,
      [table.oid],
    );
    if (rows[0]?.busy !== false || this.stopped) return;
    const counted = await countTable(client, table, 'restored').catch((error: unknown) => {
      if (isConnectionError(error)) throw error;
      return null; // counted again at the end, where an error is reported
    });
    if (counted) this.early.set(table.oid, counted);
  }

  /**
   * pg_restore has exited successfully: waits for the count under way, then counts every
   * table not counted yet, in countRows' order. Stops early (returning what it has) when
   * `signal` fires, like countRows.
   */
  async finish(signal?: AbortSignal): Promise<CountedTable[]> {
    this.stopped = true;
    await this.running;
    const client = await this.connecting.catch(async () => {
      // Connecting failed while pg_restore ran: try once more, and report that failure.
      this.fresh = await connect(this.settings, this.database);
      return this.fresh;
    });
    const counted: CountedTable[] = [];
    for (const table of await listCountableTables(client)) {
      if (signal?.aborted) break;
      // Still the same table, still one that may be counted early (as the catalog stands now).
      const early = this.early.get(table.oid);
      const usable = early && early.schema === table.schema && early.name === table.name && earlyCountable(table);
      if (usable) this.used += 1;
      counted.push(usable ? early : await countTable(client, table, 'restored'));
    }
    return counted;
  }

  /** Closes the connections. Idempotent; never throws. */
  async close(): Promise<void> {
    this.stopped = true;
    this.queue.length = 0;
    const client = await this.connecting.catch(() => null);
    await Promise.all([client?.end().catch(() => undefined), this.fresh?.end().catch(() => undefined)]);
    this.fresh = null;
    await this.running;
  }
}

function earlyCountable(table: CountableTable): boolean {
  // An inheritance parent is counted with ONLY (see countTable): its children's loads do not change it.
  return table.relkind === 'r' && !table.isPartition && !/[\r\n]/.test(table.schema + table.name);
}

function isConnectionError(error: unknown): boolean {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  const code = typeof cause?.code === 'string' ? cause.code : '';
  // No SQLSTATE (a socket error, "Connection terminated"), or the server ended the session.
  return code === '' || code.startsWith('08') || code.startsWith('57P');
}

/**
 * The table each TABLE DATA entry loads, for the tables whose count may be taken early
 * (see RestoreCounter). pg_restore --list prints `schema name owner` unquoted, so an entry
 * is matched by its leading words; an entry that two tables could match, and a table that
 * two entries could match, are left out. Names with a line break are left out too (the list
 * prints it as a space).
 */
export function matchTables(entries: readonly TocEntry[], tables: readonly CountableTable[]): Map<number, CountableTable> {
  const byHead = new Map<string, CountableTable[]>();
  for (const table of tables) {
    if (!earlyCountable(table)) continue;
    const head = `${table.schema} ${table.name}`;
    byHead.set(head, [...(byHead.get(head) ?? []), table]);
  }
  const matched = new Map<number, CountableTable>();
  const entriesOf = new Map<number, number>();
  for (const entry of entries) {
    if (entry.type !== 'TABLE DATA') continue;
    const candidates: CountableTable[] = [];
    for (let space = entry.rest.indexOf(' '); space !== -1; space = entry.rest.indexOf(' ', space + 1)) {
      candidates.push(...(byHead.get(entry.rest.slice(0, space)) ?? []));
    }
    if (entry.ownerless) candidates.push(...(byHead.get(entry.rest) ?? []));
    if (candidates.length !== 1) continue;
    const table = candidates[0] as CountableTable;
    matched.set(entry.dumpId, table);
    entriesOf.set(table.oid, (entriesOf.get(table.oid) ?? 0) + 1);
  }
  for (const [dumpId, table] of matched) {
    if ((entriesOf.get(table.oid) ?? 0) > 1) matched.delete(dumpId);
  }
  return matched;
}
