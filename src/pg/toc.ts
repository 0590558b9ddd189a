import type { Readable } from 'node:stream';
import { execa } from 'execa';
import { childFailure, type ChildRun } from './dump.js';

/** One line of `pg_restore --list`: `dumpId; catalogOid objectOid TYPE ...`. */
export interface TocEntry {
  dumpId: number;
  catalogOid: number;
  objectOid: number;
  /** e.g. `TABLE DATA`, `MATERIALIZED VIEW DATA`, `BLOBS`, `SCHEMA`. */
  type: string;
  /** The rest of the line (schema, name, owner), as pg_restore printed it. */
  rest: string;
  /** The entry has no owner (pg_restore printed an empty one): extensions, casts, comments on extensions... */
  ownerless: boolean;
}

const TOC_TYPES = [
  'DATABASE PROPERTIES',
  'MATERIALIZED VIEW DATA',
  'MATERIALIZED VIEW',
  'TABLE DATA',
  'TABLE ATTACH',
  'INDEX ATTACH',
  'FK CONSTRAINT',
  'CHECK CONSTRAINT',
  'DEFAULT ACL',
  'SEQUENCE SET',
  'SEQUENCE OWNED BY',
  'FOREIGN TABLE',
  'FOREIGN DATA WRAPPER',
  'USER MAPPING',
  'EVENT TRIGGER',
  'OPERATOR CLASS',
  'OPERATOR FAMILY',
  'ACCESS METHOD',
  'SHELL TYPE',
  'PROCEDURAL LANGUAGE',
  'ROW SECURITY',
  'SECURITY LABEL',
  'PUBLICATION TABLES IN SCHEMA',
  'PUBLICATION TABLE',
  'TEXT SEARCH CONFIGURATION',
  'TEXT SEARCH DICTIONARY',
  'TEXT SEARCH PARSER',
  'TEXT SEARCH TEMPLATE',
  'LARGE OBJECTS',
  'STATISTICS DATA',
  'BLOB METADATA',
  'BLOBS',
  'BLOB',
];

/** Parses `pg_restore --list` output; comment lines (`;`) are skipped. */
export function parseTocList(text: string): TocEntry[] {
  const entries: TocEntry[] = [];
  for (const line of text.split(/\r?\n/)) {
    const match = /^(\d+);\s+(\d+)\s+(\d+)\s+(.*)$/.exec(line);
    if (!match) continue;
    const body = match[4] ?? '';
    const known = TOC_TYPES.find((type) => body.startsWith(`${type} `) || body === type);
    const type = known ?? body.split(' ')[0] ?? '';
    entries.push({
      dumpId: Number(match[1]),
      catalogOid: Number(match[2]),
      objectOid: Number(match[3]),
      type,
      rest: body.slice(type.length).trim(),
      // `%s %s %s` with an empty owner leaves a trailing space.
      ownerless: body.endsWith(' '),
    });
  }
  return entries;
}

/**
 * The dependencies of each entry (dump ids), from `pg_restore --list --verbose`, which
 * prints them on a comment line after the entry: `;\tdepends on: 215 214`.
 */
export function parseTocDependencies(text: string): Map<number, number[]> {
  const dependencies = new Map<number, number[]>();
  let current: number | null = null;
  for (const line of text.split(/\r?\n/)) {
    const entry = /^(\d+);\s/.exec(line);
    if (entry) {
      current = Number(entry[1]);
      continue;
    }
    const depends = /^;\s+depends on:((?:\s+\d+)+)\s*$/.exec(line);
    if (depends && current !== null) dependencies.set(current, (depends[1] ?? '').trim().split(/\s+/).map(Number));
  }
  return dependencies;
}

/**
 * The archive holds large objects: pg_dump leaves them all out of a `--schema`, `--table`
 * or `--schema-only` dump, and puts all of them (in the dump's snapshot) in any other.
 * `BLOB`/`BLOBS` up to PostgreSQL 16, `BLOB METADATA`/`LARGE OBJECTS` from 17.
 */
export function holdsLargeObjects(entries: readonly TocEntry[]): boolean {
  return entries.some((e) => e.type === 'BLOB' || e.type === 'BLOBS' || e.type === 'BLOB METADATA' || e.type === 'LARGE OBJECTS');
}

/** OIDs of the tables and materialized views whose rows the archive holds. */
export function tablesWithData(entries: readonly TocEntry[]): Set<number> {
  return new Set(
    entries.filter((e) => e.type === 'TABLE DATA' || e.type === 'MATERIALIZED VIEW DATA').map((e) => e.objectOid),
  );
}

/**
 * Reads an archive's table of contents. `source` is either a path pg_restore can open
 * (a directory-format dump) or a stream of a custom-format archive: pg_restore reads
 * only the header and TOC from it and exits, and the stream is then dropped.
 */
export async function readToc(pgRestore: string, source: string | Readable, run: ChildRun): Promise<TocEntry[]> {
  const fromStream = typeof source !== 'string';
  const child = execa(pgRestore, fromStream ? ['--list'] : ['--list', source], {
    env: run.env,
    extendEnv: false,
    stdin: fromStream ? 'pipe' : 'ignore',
    cancelSignal: run.signal,
    maxBuffer: 256 * 1024 * 1024,
  });
  if (fromStream) {
    const stdin = child.stdin;
    // pg_restore closes its stdin once it has the TOC: that EPIPE is expected. A source
    // that fails ends pg_restore's input (it then fails too, rather than wait for more).
    stdin?.on('error', () => undefined);
    source.on('error', () => stdin?.destroy());
    if (stdin) source.pipe(stdin);
  }
  try {
    const { stdout } = await child;
    return parseTocList(stdout);
  } catch (error) {
    throw childFailure('pg_restore --list', error, run.signal);
  } finally {
    if (fromStream) source.destroy();
  }
}

/**
 * OIDs of the tables, foreign tables and materialized views a filtered dump will contain,
 * learned from a schema-only dump with the same filters on the same snapshot (cheap: no
 * data). Lets the row counts skip, and not lock, what --table/--exclude-table/--schema
 * leave out (a foreign table is never counted: pg_dump dumps no rows of one), and tells
 * the partitions and children a dump holds from those it leaves out (a foreign partition
 * the filters keep is not left out, though its rows are on another server).
 */
export async function tablesSelectedBy(
  pgDump: string,
  pgRestore: string,
  selection: { snapshot: string; filters: string[]; lockWaitTimeout: string | null },
  run: ChildRun,
): Promise<Set<number>> {
  // A custom-format schema-only dump to stdout, whatever the real dump's format (a
  // directory-format dump's --file and --jobs have no place here).
  const args = ['--format=custom', '--schema-only', '--no-password', `--snapshot=${selection.snapshot}`, ...selection.filters];
  if (selection.lockWaitTimeout) args.push(`--lock-wait-timeout=${selection.lockWaitTimeout}`);
  const dump = execa(pgDump, args, { env: run.env, extendEnv: false, stdin: 'ignore', cancelSignal: run.signal });
  try {
    const { stdout } = await dump.pipe(pgRestore, ['--list'], { env: run.env, extendEnv: false, cancelSignal: run.signal, maxBuffer: 256 * 1024 * 1024 });
    return new Set(
      parseTocList(stdout)
        .filter((e) => e.type === 'TABLE' || e.type === 'FOREIGN TABLE' || e.type === 'MATERIALIZED VIEW')
        .map((e) => e.objectOid),
    );
  } catch (error) {
    // pg_dump's own failure (a pattern that matches nothing, a lock, a permission) says
    // why; pg_restore then only saw an empty input.
    const dumped = await dump.then(
      () => null,
      (dumpError: unknown) => dumpError,
    );
    // pg_dump killed by SIGPIPE only saw pg_restore go first: then pg_restore's reason counts.
    const ownFailure = dumped !== null && (dumped as { signal?: unknown }).signal !== 'SIGPIPE';
    throw ownFailure ? childFailure('pg_dump', dumped, run.signal) : childFailure('pg_restore --list', error, run.signal);
  }
}
