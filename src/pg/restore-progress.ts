import type { TocEntry } from './toc.js';

/**
 * Following a `pg_restore --verbose` run through its stderr, to learn when each table's
 * data is loaded (so that its row count can be taken while pg_restore goes on with
 * indexes and constraints).
 *
 * What pg_restore prints (PostgreSQL 12 to 17, with LC_ALL=C so that it is English):
 * every message starts with `pg_restore: `; its own errors and warnings go on with a level
 * (`error: `, `warning: `, `detail: `, `hint: `, and `fatal: ` before 15); verbose
 * messages have no level (they are pg_log_info, printed only with --verbose). Server
 * notices are info messages too (`pg_restore: NOTICE:  ...`), and every message may go on
 * over further lines without the prefix (`Command was: ...`, a notice's DETAIL).
 *
 * In a parallel restore the leader and the workers write to the same stderr: the prefix
 * (`pg_restore:`, then ` `) and the message are separate writes, so another process's
 * prefix can come between them (`pg_restore:pg_restore: finished item ...`, and a line
 * left without its prefix). The message itself is one write, whole.
 */

/** A message with one of pg_restore's own levels: kept for error reporting. */
const LEVELLED = /^(?:error|fatal|warning|detail|hint): /;
/** `pg_restore:` at the start of a line, and any more prefixes and spaces another process slipped in. */
const PREFIX = /^pg_restore:(?:pg_restore:| )*/;

/** At most this much of one line is looked at or kept. */
const MAX_LINE = 8 * 1024;

/**
 * Splits pg_restore's stderr into verbose messages (given to `onInfo`, without the prefix)
 * and everything else, which is kept (up to `limit` characters) as the text a failure is
 * reported from: what pg_restore would have printed without --verbose.
 */
export class RestoreStderr {
  private partial = '';
  private overflow = false;
  /** The message the current line continues is a verbose one: its continuation lines go too. */
  private inInfo = false;
  private keptChars = 0;
  private readonly keptLines: string[] = [];

  constructor(
    private readonly onInfo: (message: string) => void,
    private readonly limit = 256 * 1024,
  ) {}

  /** Feeds decoded text as it arrives. */
  write(text: string): void {
    let start = 0;
    for (let nl = text.indexOf('\n', start); nl !== -1; nl = text.indexOf('\n', start)) {
      this.append(text.slice(start, nl));
      this.endLine();
      start = nl + 1;
    }
    this.append(text.slice(start));
  }

  /** The output ended: a last line without a newline counts too. */
  end(): void {
    if (this.partial !== '' || this.overflow) this.endLine();
  }

  /** The kept lines, newline-separated (like the stderr execa would have buffered). */
  get kept(): string {
    return this.keptLines.join('\n');
  }

  private append(piece: string): void {
    if (this.overflow || piece === '') return;
    const room = MAX_LINE - this.partial.length;
    if (piece.length > room) {
      this.partial += piece.slice(0, room);
      this.overflow = true;
    } else {
      this.partial += piece;
    }
  }

  private endLine(): void {
    const line = this.partial.endsWith('\r') ? this.partial.slice(0, -1) : this.partial;
    this.partial = '';
    this.overflow = false;
    this.line(line);
  }

  private line(line: string): void {
    const prefix = PREFIX.exec(line);
    if (prefix) {
      const message = line.slice(prefix[0].length);
      this.inInfo = !LEVELLED.test(message);
      if (this.inInfo) {
        this.onInfo(message);
        return;
      }
    } else if (this.inInfo) {
      return;
    }
    if (this.keptChars + line.length + 1 > this.limit) return;
    this.keptChars += line.length + 1;
    this.keptLines.push(line);
  }
}

/** A table's data item that pg_restore has finished: its rows are all loaded and committed. */
export interface DataDone {
  dumpId: number;
  /** The table as pg_restore named it: `schema.name` (serial restore) or the name alone (parallel). */
  label: string;
  qualified: boolean;
  /**
   * No other TABLE DATA item is left: what pg_restore does next is this table's post-data
   * (its primary key first, under an ACCESS EXCLUSIVE lock), so a count of it now would hold
   * up the restore's critical path. RestoreCounter leaves such a table for the end.
   */
  last: boolean;
}

const SERIAL_DATA = /^processing data for table "(.*)"$/s;
/** Messages a serial pg_restore prints when it begins an item (or ends a data item: "enabling triggers"). */
const SERIAL_ITEM =
  /^(?:creating |executing |processing |enabling triggers for |disabling triggers for |setting owner and privileges for |dropping |restoring large object |restored \d+ large object)/;
const LAUNCHING = /^launching item (\d+) TABLE DATA (.*)$/s;
const FINISHED = /^finished item (\d+) TABLE DATA (.*)$/s;

/**
 * Learns from pg_restore's verbose messages which TABLE DATA items are done.
 *
 * - Serial (--jobs 1): items run one at a time in TOC order; `processing data for table
 *   "schema.name"` is printed when a data item starts, so the item is done when pg_restore
 *   prints the start of the next item. The data lines must name the TABLE DATA entries in
 *   TOC order; on the first one that does not, following stops (nothing more is reported).
 * - Parallel (--jobs N): the leader prints `finished item <dumpId> TABLE DATA <name>` once
 *   the worker has committed the item; it counts only after `launching item` of the same
 *   item, and only once.
 *
 * Reports only what is certain; whatever is not reported is counted after pg_restore exits.
 */
export class RestoreProgress {
  private readonly data: TocEntry[];
  private readonly dataIds: Set<number>;
  private next = 0;
  private current: DataDone | null = null;
  private lost = false;
  private readonly launched = new Set<number>();
  private readonly finished = new Set<number>();

  constructor(entries: readonly TocEntry[], private readonly parallel: boolean) {
    this.data = entries.filter((e) => e.type === 'TABLE DATA');
    this.dataIds = new Set(this.data.map((e) => e.dumpId));
  }

  /** One verbose message (without the `pg_restore: ` prefix); returns the data items it shows done. */
  message(message: string): DataDone[] {
    return this.parallel ? this.parallelMessage(message) : this.serialMessage(message);
  }

  private serialMessage(message: string): DataDone[] {
    if (this.lost) return [];
    const data = SERIAL_DATA.exec(message);
    if (data) {
      const done = this.current ? [this.current] : [];
      this.current = null;
      const entry = this.data[this.next];
      const label = data[1] as string;
      if (!entry || !namesEntry(entry, label)) {
        this.lost = true;
        return [];
      }
      this.next += 1;
      this.current = { dumpId: entry.dumpId, label, qualified: true, last: this.next === this.data.length };
      return done;
    }
    if (this.current && SERIAL_ITEM.test(message)) {
      const done = this.current;
      this.current = null;
      return [done];
    }
    return [];
  }

  private parallelMessage(message: string): DataDone[] {
    const launching = LAUNCHING.exec(message);
    if (launching) {
      this.launched.add(Number(launching[1]));
      return [];
    }
    const finished = FINISHED.exec(message);
    if (!finished) return [];
    const dumpId = Number(finished[1]);
    if (!this.dataIds.has(dumpId) || !this.launched.has(dumpId) || this.finished.has(dumpId)) return [];
    this.finished.add(dumpId);
    return [{ dumpId, label: finished[2] as string, qualified: false, last: this.finished.size === this.dataIds.size }];
  }
}

/**
 * Whether `schema.name` (as pg_restore prints a table, unquoted: a dot in either name makes
 * it ambiguous) can be the table of a TOC entry, whose `rest` is `schema name owner`.
 */
function namesEntry(entry: TocEntry, qualified: string): boolean {
  for (let dot = qualified.indexOf('.'); dot !== -1; dot = qualified.indexOf('.', dot + 1)) {
    const head = `${qualified.slice(0, dot)} ${qualified.slice(dot + 1)}`;
    if (entry.ownerless ? entry.rest === head : entry.rest.startsWith(`${head} `)) return true;
  }
  return false;
}
