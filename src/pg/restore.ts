import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { scriptStatements } from './sql-script.js';
import type { Readable, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { BackupctlError } from '../errors.js';
import type { DatabasePropertyKind } from './admin.js';
import { runGuarded } from './child.js';
import { childFailure, firstErrorLine, type ChildRun } from './dump.js';
import { RestoreStderr } from './restore-progress.js';
import { parseTocDependencies, parseTocList, type TocEntry } from './toc.js';

export interface RestoreSelection {
  schemas: string[];
  tables: string[];
  noOwner: boolean;
  noAcl: boolean;
  jobs: number;
  /** One transaction: all or nothing (cannot be combined with jobs > 1). */
  singleTransaction: boolean;
  /** A `--use-list` file that replaces `schemas`/`tables` (see selectionList). */
  useList?: string | undefined;
  /** Everything in the default tablespace (verify: the server need not have the source's tablespaces). */
  noTablespaces?: boolean | undefined;
  /** A data-only load into existing tables: their triggers do not fire (needs a superuser). */
  disableTriggers?: boolean | undefined;
}

/**
 * pg_restore's argv; like pg_dump's, no connection settings (they come through the env).
 * `archive` null: pg_restore reads the archive from its stdin (see runRestore's `input`).
 */
export function pgRestoreArgs(archive: string | null, database: string, selection: RestoreSelection): string[] {
  const args = ['--exit-on-error', '--no-password', `--dbname=${database}`];
  if (selection.jobs > 1) args.push(`--jobs=${selection.jobs}`);
  if (selection.singleTransaction && selection.jobs <= 1) args.push('--single-transaction');
  if (selection.noOwner) args.push('--no-owner');
  if (selection.noAcl) args.push('--no-acl');
  if (selection.noTablespaces) args.push('--no-tablespaces');
  if (selection.disableTriggers) args.push('--disable-triggers');
  if (selection.useList) args.push(`--use-list=${selection.useList}`);
  else {
    for (const schema of selection.schemas) args.push(`--schema=${schema}`);
    for (const table of selection.tables) args.push(`--table=${table}`);
  }
  if (archive !== null) args.push(archive);
  return args;
}

export interface RestoreInput {
  /** Each verbose message of pg_restore (see runRestore). */
  onProgress?: ((message: string) => void) | undefined;
  /**
   * The archive, for pg_restore's stdin (its argv then names no file). See feedStdin: read
   * to its end even when pg_restore needs no more; its failure ends pg_restore.
   */
  input?: Readable | undefined;
}

/**
 * The archive stream fed to pg_restore failed (damage a stage found, the storage): the
 * restore was stopped. Not a verdict on the backup by itself: its cause says what failed.
 */
export class RestoreInputError extends BackupctlError {}

/**
 * Feeds `input` to a child's stdin with back-pressure. When the child stops reading (it
 * exited, or closed its stdin: pg_restore has read what it restores), the rest of `input`
 * is still read and dropped, so that whatever hashes it sees it all. `onFailure` gets
 * an error of `input`; the child's stdin is then closed.
 */
function feedStdin(input: Readable, stdin: Writable, onFailure: (error: unknown) => void): void {
  let open = true;
  const stop = () => {
    if (!open) return;
    open = false;
    input.resume();
  };
  stdin.on('error', stop); // EPIPE: the child is not reading any more
  stdin.on('close', stop);
  input.on('data', (chunk: Buffer) => {
    if (!open) return;
    if (!stdin.write(chunk)) {
      input.pause();
      stdin.once('drain', () => {
        if (open) input.resume();
      });
    }
  });
  input.once('end', () => {
    if (open) stdin.end();
  });
  input.once('error', (error) => {
    onFailure(error);
    stdin.destroy();
  });
}

/**
 * Runs pg_restore into a database. Any error is a failed restore: with --exit-on-error
 * pg_restore stops at the first one, and its exit status, not its output, decides.
 *
 * With `onProgress`, pg_restore runs with --verbose, its messages forced to English (LC_ALL=C,
 * no colours), and each verbose message goes to `onProgress` as it arrives (see
 * RestoreStderr); stderr is read as a stream, and only what pg_restore prints without
 * --verbose is kept (bounded) for the error, which reads as it would without --verbose.
 * Needs pg_restore 12 or later (older ones print no message levels).
 */
export async function runRestore(pgRestore: string, args: string[], run: ChildRun, options: RestoreInput = {}): Promise<void> {
  if (!parallel(args) || options.input) {
    await restoreOnce(pgRestore, args, run, options);
    return;
  }
  // A parallel restore runs in two passes: every table's data is in before the first
  // post-data item (index, constraint, trigger, rule, policy) runs. In one pass pg_restore
  // orders them by the archive's dependencies alone, and PostgreSQL 18's pg_dump gives the
  // NOT VALID NOT NULL constraint of a partitioned table none on its partitions' data: it
  // ran beside their COPY (a deadlock, or a partition's NULL refused), failing a restore
  // that one job finishes (deterministically for an archive written to a pipe, as ours are:
  // it has no data offsets). pg_restore documents the sections as a split of the archive.
  await restoreOnce(pgRestore, ['--section=pre-data', '--section=data', ...args], run, options);
  await restoreOnce(pgRestore, ['--section=post-data', ...args], run, options);
}

/** `--jobs=N` with N > 1 among pg_restore's arguments (see pgRestoreArgs). */
function parallel(args: readonly string[]): boolean {
  return args.some((arg) => arg.startsWith('--jobs=') && Number(arg.slice('--jobs='.length)) > 1);
}

async function restoreOnce(pgRestore: string, args: string[], run: ChildRun, options: RestoreInput): Promise<void> {
  const { input } = options;
  // An input that fails stops pg_restore as an abort would, but is reported as itself.
  const stop = new AbortController();
  let inputFailure: unknown = null;
  const signal = run.signal ? AbortSignal.any([run.signal, stop.signal]) : stop.signal;
  // Given pg_restore's stdin once it runs; none: its stdin is not a pipe.
  const feed = input
    ? (stdin: Writable) =>
        feedStdin(input, stdin, (error) => {
          inputFailure = error;
          stop.abort(error);
        })
    : undefined;
  try {
    if (options.onProgress) {
      await runObservedRestore(pgRestore, args, { env: run.env, signal }, options.onProgress, feed);
      return;
    }
    const child = runGuarded(pgRestore, args, {
      env: run.env,
      extendEnv: false,
      stdin: feed ? 'pipe' : 'ignore',
      stdout: 'ignore',
      cancelSignal: signal,
      forceKillAfterDelay: 5_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    if (feed && child.stdin) feed(child.stdin);
    try {
      await child;
    } catch (error) {
      throw restoreFailure(error, String((error as { stderr?: unknown }).stderr ?? ''), signal);
    }
  } catch (error) {
    // pg_restore failed: the rest of the archive is not needed (a success leaves it being read).
    input?.destroy();
    if (run.signal?.aborted) throw childFailure('pg_restore', error, run.signal);
    if (inputFailure !== null) {
      const cause = inputFailure instanceof Error ? inputFailure.message : String(inputFailure);
      throw new RestoreInputError(`the archive could not be read to its end: ${cause}`, { cause: inputFailure });
    }
    throw error;
  }
}

function restoreFailure(error: unknown, stderr: string, signal: AbortSignal | undefined): BackupctlError {
  const failure = childFailure('pg_restore', error, signal);
  return new BackupctlError(failure.message, {
    exitCode: failure.exitCode,
    hint: restoreFailureHint(stderr, failure.hint),
    cause: error,
  });
}

/** SQLSTATE 53200 (out_of_memory), which "out of shared memory" carries: e.g. the lock table is full. */
const OUT_OF_SHARED_MEMORY = '53200';

/**
 * The hint of a failed pg_restore, from its stderr: its error lines and the fields of the
 * server's error (libpq writes each as `LABEL:  text`, two spaces, whatever the language:
 * DETAIL, HINT...), so PostgreSQL's own HINT is kept. When the server ran out of shared
 * memory for locks (SQLSTATE 53200 where the output has it; otherwise a HINT naming
 * max_locks_per_transaction or max_pred_locks_per_transaction, setting names no
 * translation changes), backupctl's advice comes first: one transaction (--force) locks
 * every table and large object it restores until it commits. `fallback`: the hint when the
 * output has nothing more to say.
 */
export function restoreFailureHint(stderr: string, fallback?: string): string | undefined {
  const all = stderr.split(/\r?\n/);
  const fields = (line: string) => /^[^\s:]+: {2}\S/.test(line);
  const lines = all.filter((l) => /error|fatal|detail/i.test(l) || fields(l)).slice(0, 6);
  // Where libpq writes a SQLSTATE: after the severity in verbose messages ("ERROR:  53200: ..."),
  // or as a field of its own ("SQL state: 53200", "SQLSTATE 53200").
  const code = new RegExp(`(?::  ${OUT_OF_SHARED_MEMORY}:|\\b(?:SQLSTATE|SQL state)[ :=]+${OUT_OF_SHARED_MEMORY}\\b)`, 'i');
  const lockTable =
    all.some((l) => code.test(l)) ||
    all.some((l) => fields(l) && !/^[^:]*\bERROR\b/.test(l) && /\bmax_(?:pred_)?locks_per_transaction\b/.test(l));
  const ours = lockTable
    ? 'the server ran out of shared memory for locks (one transaction locks every table and large object it restores): raise max_locks_per_transaction on the server (it needs a restart), ' +
      'or restore with --clean or into a new database (--create), which are not one transaction'
    : null;
  const theirs = lines.length > 1 ? lines.join('\n') : fallback;
  return ours ? [ours, ...(lines.length > 0 ? lines : [])].join('\n') : theirs;
}

/** The environment of a pg_restore whose messages are parsed: English, no colours. */
function englishEnv(env: Record<string, string>): Record<string, string> {
  const english: Record<string, string> = { ...env, LC_ALL: 'C', LC_MESSAGES: 'C', PG_COLOR: 'never' };
  delete english.LANGUAGE;
  return english;
}

async function runObservedRestore(
  pgRestore: string,
  args: string[],
  run: ChildRun,
  onProgress: (message: string) => void,
  feed: ((stdin: Writable) => void) | undefined,
): Promise<void> {
  const stderr = new RestoreStderr((message) => {
    try {
      onProgress(message);
    } catch {
      // an observer's failure must not disturb the restore
    }
  });
  const child = runGuarded(pgRestore, ['--verbose', ...args], {
    env: englishEnv(run.env),
    extendEnv: false,
    stdin: feed ? 'pipe' : 'ignore',
    stdout: 'ignore',
    stderr: 'pipe',
    buffer: false,
    cancelSignal: run.signal,
    forceKillAfterDelay: 5_000,
  });
  if (feed && child.stdin) feed(child.stdin);
  const read = new Promise<void>((resolve) => {
    const stream = child.stderr;
    if (!stream) return resolve();
    stream.setEncoding('utf8');
    stream.on('data', (text: string) => stderr.write(text));
    stream.once('end', resolve);
    stream.once('close', resolve);
    stream.once('error', () => resolve());
  });
  try {
    await child;
    await read;
    stderr.end();
  } catch (error) {
    // A killed leader's workers may hold stderr open a little longer: wait, but not for ever.
    await Promise.race([read, sleep(2_000, undefined, { ref: false })]);
    stderr.end();
    const kept = stderr.kept;
    // childFailure reads the stderr the child printed; with buffer: false execa has none.
    if (error && typeof error === 'object') Object.assign(error, { stderr: kept });
    throw restoreFailure(error, kept, run.signal);
  }
}

/**
 * Reads a whole archive through to the end without a database (`pg_restore -f
 * /dev/null`): every data block is read and decompressed, so a truncated or corrupted
 * archive fails here, where `pg_restore --list` alone would succeed. `archive` null: from
 * `input` (see runRestore). Resolves with why pg_restore failed, or null.
 */
export async function readArchiveThrough(pgRestore: string, archive: string | null, run: ChildRun, input?: Readable): Promise<string | null> {
  try {
    await runRestore(pgRestore, ['--file=/dev/null', ...(archive === null ? [] : [archive])], run, { input });
    return null;
  } catch (error) {
    if (run.signal?.aborted || error instanceof RestoreInputError) throw error;
    const stderr = String(((error as { cause?: { stderr?: unknown } }).cause ?? {}).stderr ?? '');
    return firstErrorLine(stderr) || (error as Error).message;
  }
}

/** What an archive needs from the server it is restored into. */
export interface ArchiveNeeds {
  /** Owners named in the TOC. */
  roles: string[];
  /** Roles named by the archive's GRANTs (filled by aclRoles; not in the TOC's columns). */
  grantees: string[];
  /** Roles named by its policies and user mappings (filled by policyRoles): needed even with --no-owner --no-acl. */
  referenced: string[];
  extensions: string[];
  /** Object counts by TOC entry type, e.g. TABLE: 11, INDEX: 20. */
  objects: Record<string, number>;
}

/**
 * The owner of a TOC entry: the end of `<namespace> <tag> <owner>`. pg_restore prints names
 * unquoted, so a role name with spaces cannot be told from the tag by splitting; the longest
 * ending that is a known role wins (roles of the server and of the backup's globals), else
 * the last word.
 */
function ownerOf(rest: string, knownRoles: ReadonlySet<string>): string | null {
  const tokens = rest.split(' ').filter(Boolean);
  // `<namespace> <tag> <owner>`: an owner needs at least three words.
  if (tokens.length < 3) return null;
  for (let at = rest.indexOf(' '); at !== -1; at = rest.indexOf(' ', at + 1)) {
    const candidate = rest.slice(at + 1);
    if (knownRoles.has(candidate) && rest.slice(0, at).trim().includes(' ')) return candidate;
  }
  return tokens[tokens.length - 1] as string;
}

export function archiveNeeds(entries: readonly TocEntry[], knownRoles: ReadonlySet<string> = new Set()): ArchiveNeeds {
  const roles = new Set<string>();
  const extensions = new Set<string>();
  const objects: Record<string, number> = {};
  for (const entry of entries) {
    objects[entry.type] = (objects[entry.type] ?? 0) + 1;
    if (entry.type === 'EXTENSION') {
      const name = entry.rest.split(' ').filter(Boolean)[1];
      if (name) extensions.add(name);
      continue;
    }
    // Extensions, casts, comments on extensions, the BLOBS entry... have no owner.
    if (entry.ownerless) continue;
    const owner = ownerOf(entry.rest, knownRoles);
    if (owner) roles.add(owner);
  }
  return { roles: [...roles].sort(), grantees: [], referenced: [], extensions: [...extensions].sort(), objects };
}

/**
 * The dump ids pg_restore selects with `--schema`/`--table` (same flags, `--list`); with
 * tables, also what belongs to them (withTableParts, unless `withParts` is false), and the
 * entries' dependencies it was found with.
 */
export async function selectedEntries(
  pgRestore: string,
  archive: string,
  selection: { schemas: string[]; tables: string[] },
  run: ChildRun,
  options: { withParts?: boolean } = {},
): Promise<{ selected: Set<number>; dependencies: Map<number, number[]> }> {
  const args = ['--list'];
  for (const schema of selection.schemas) args.push(`--schema=${schema}`);
  for (const table of selection.tables) args.push(`--table=${table}`);
  const selected = new Set(parseTocList(await listToc(pgRestore, [...args, archive], run)).map((e) => e.dumpId));
  if (options.withParts === false || selection.tables.length === 0 || selected.size === 0) return { selected, dependencies: new Map() };
  const verbose = await listToc(pgRestore, ['--list', '--verbose', archive], run);
  const dependencies = parseTocDependencies(verbose);
  return { selected: withTableParts(parseTocList(verbose), dependencies, selected), dependencies };
}

async function listToc(pgRestore: string, args: string[], run: ChildRun): Promise<string> {
  try {
    const { stdout } = await execa(pgRestore, args, { env: run.env, extendEnv: false, stdin: 'ignore', cancelSignal: run.signal, maxBuffer: 256 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    throw childFailure('pg_restore --list', error, run.signal);
  }
}

/** The kinds of entry that are part of a table rather than objects of their own. */
const TABLE_PARTS = new Set([
  'TABLE ATTACH',
  'INDEX',
  'INDEX ATTACH',
  'CONSTRAINT',
  'FK CONSTRAINT',
  'CHECK CONSTRAINT',
  'DEFAULT',
  'SEQUENCE',
  'SEQUENCE OWNED BY',
  'SEQUENCE SET',
  'TRIGGER',
  'RULE',
  'POLICY',
  'ROW SECURITY',
  'COMMENT',
  'SECURITY LABEL',
  'ACL',
  'STATISTICS',
  'STATISTICS DATA',
]);

/**
 * A --table selection with what belongs to its tables: pg_restore --table restores a
 * table's definition and rows only, without its primary key, indexes, constraints, column
 * defaults, triggers or policies (the next INSERT of an application then fails). Added:
 * every entry of a kind in TABLE_PARTS whose dependencies are all selected (one at least;
 * a schema, or an entry the archive does not hold, counts as met), to a fixpoint: so a table's owned
 * sequence and the default that draws from it, a foreign key between two selected tables,
 * a selected partition's ATTACH to its selected parent (and its indexes'), comments and
 * privileges on them. Never a sequence, function or type of its own.
 */
export function withTableParts(entries: readonly TocEntry[], dependencies: ReadonlyMap<number, readonly number[]>, selected: ReadonlySet<number>): Set<number> {
  const taken = new Set(selected);
  // A schema is no requirement: the selected tables' schemas are restored with them (selectionList).
  const held = new Set(entries.filter((entry) => entry.type !== 'SCHEMA').map((entry) => entry.dumpId));
  const candidates = entries.filter((entry) => TABLE_PARTS.has(entry.type) && !taken.has(entry.dumpId));
  for (let grew = true; grew; ) {
    grew = false;
    for (const entry of candidates) {
      if (taken.has(entry.dumpId)) continue;
      const needs = (dependencies.get(entry.dumpId) ?? []).filter((id) => held.has(id));
      if (needs.length > 0 && needs.every((id) => taken.has(id))) {
        taken.add(entry.dumpId);
        grew = true;
      }
    }
  }
  return taken;
}

/**
 * The names of a `--schema`/`--table` selection that select nothing in the archive.
 * pg_restore restores nothing for such a name and exits 0: a restore would replace the
 * target with a database lacking what was asked for. Each name is asked on its own, a
 * table with the schemas (pg_restore restores the named tables of the named schemas).
 */
export async function unmatchedSelection(
  pgRestore: string,
  archive: string,
  selection: { schemas: string[]; tables: string[] },
  run: ChildRun,
): Promise<{ schemas: string[]; tables: string[] }> {
  const schemas: string[] = [];
  for (const schema of selection.schemas) {
    if ((await selectedEntries(pgRestore, archive, { schemas: [schema], tables: [] }, run, { withParts: false })).selected.size === 0) schemas.push(schema);
  }
  const tables: string[] = [];
  for (const table of selection.tables) {
    if ((await selectedEntries(pgRestore, archive, { schemas: selection.schemas, tables: [table] }, run, { withParts: false })).selected.size === 0) tables.push(table);
  }
  return { schemas, tables };
}

/**
 * The selected tables whose rows the archive does not hold although it holds rows: a
 * partitioned table keeps its rows in its partitions, which `--table` does not select
 * (one that a selected partition is attached to has some of them: not reported).
 * As `schema.name`, from the TOC.
 */
export function tablesWithoutRows(entries: readonly TocEntry[], selected: ReadonlySet<number>, dependencies: ReadonlyMap<number, readonly number[]> = new Map()): string[] {
  const withRows = new Set(entries.filter((e) => e.type === 'TABLE DATA').map((e) => e.objectOid));
  if (withRows.size === 0) return []; // a schema-only archive: no table has rows
  const attached = new Set(entries.filter((e) => e.type === 'TABLE ATTACH' && selected.has(e.dumpId)).flatMap((e) => dependencies.get(e.dumpId) ?? []));
  return entries
    .filter((e) => e.type === 'TABLE' && selected.has(e.dumpId) && !withRows.has(e.objectOid) && !attached.has(e.dumpId))
    .map((e) => e.rest.replace(/ \S*$/, '').replace(' ', '.'));
}

/**
 * Schemas of the tables in a selection (other than `public`, which every new database
 * has), so that `--table app.orders` into a new database brings its schema along.
 */
export function schemasOfTables(entries: readonly TocEntry[], selected: ReadonlySet<number>): string[] {
  const schemas = new Set<string>();
  for (const entry of entries) {
    if (!selected.has(entry.dumpId) || entry.type !== 'TABLE') continue;
    const schema = entry.rest.split(' ')[0];
    if (schema && schema !== '-' && schema !== 'public') schemas.add(schema);
  }
  return [...schemas];
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * A `--use-list` file for a selection. `pg_restore --schema=X` restores the objects in X
 * but not X itself (its SCHEMA entry is in no schema), so into a new database it fails
 * with "schema X does not exist". The list holds pg_restore's own selection plus the
 * named schemas' own entries (SCHEMA, and the COMMENT/ACL/SECURITY LABEL on them), in
 * archive order, which is the order pg_restore restores a list in.
 */
export function selectionList(entries: readonly TocEntry[], selected: ReadonlySet<number>, schemas: readonly string[]): string {
  const own = new Set<string>();
  for (const schema of schemas) {
    own.add(`- ${schema} `);
    own.add(`- SCHEMA ${schema} `);
    own.add(`- SCHEMA ${quoteIdent(schema)} `);
  }
  const isOwnEntry = (entry: TocEntry): boolean => {
    if (!['SCHEMA', 'COMMENT', 'ACL', 'SECURITY LABEL'].includes(entry.type)) return false;
    const rest = `${entry.rest} `;
    return [...own].some((prefix) => rest.startsWith(prefix) && (entry.type === 'SCHEMA') === !prefix.startsWith('- SCHEMA '));
  };
  const lines = entries
    .filter((entry) => selected.has(entry.dumpId) || isOwnEntry(entry))
    .map((entry) => `${entry.dumpId}; ${entry.catalogOid} ${entry.objectOid} ${entry.type} ${entry.rest}`);
  return `${lines.join('\n')}\n`;
}

const ROLE_NAME = String.raw`"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*`;
const GRANTEES = new RegExp(String.raw`\b(?:TO|FROM|FOR ROLE)\s+((?:${ROLE_NAME})(?:\s*,\s*(?:${ROLE_NAME}))*)`, 'g');
const PSEUDO_ROLES = new Set(['public', 'current_user', 'session_user', 'current_role']);

/** Adds the role a name as pg_dump writes it (quoted or not) stands for, unless it is PUBLIC, CURRENT_USER... */
function addRole(roles: Set<string>, raw: string): void {
  const name = raw.startsWith('"') ? raw.slice(1, -1).replace(/""/g, '"') : raw;
  if (name && !(!raw.startsWith('"') && PSEUDO_ROLES.has(name.toLowerCase()))) roles.add(name);
}

/** Role names in GRANT ... TO, REVOKE ... FROM and ALTER DEFAULT PRIVILEGES FOR ROLE statements. */
export function rolesInAclSql(sql: string): string[] {
  const roles = new Set<string>();
  for (const line of sql.split('\n')) {
    if (!/^\s*(GRANT|REVOKE|ALTER DEFAULT PRIVILEGES)\b/i.test(line)) continue;
    for (const match of line.matchAll(GRANTEES)) {
      for (const raw of (match[1] ?? '').split(/\s*,\s*(?=(?:[^"]*"[^"]*")*[^"]*$)/)) addRole(roles, raw);
    }
  }
  return [...roles].sort();
}

/**
 * Roles the archive's privileges (ACL and DEFAULT ACL entries) name. They are not in the
 * table of contents' owner column: a read-only role that owns nothing would otherwise be
 * found missing only half-way through a restore. Reads just those entries' SQL.
 */
export async function aclRoles(pgRestore: string, archive: string, entries: readonly TocEntry[], listDir: string, run: ChildRun): Promise<string[]> {
  const acl = entries.filter((e) => e.type === 'ACL' || e.type === 'DEFAULT ACL');
  if (acl.length === 0) return [];
  return rolesInAclSql(await entriesSql(pgRestore, archive, acl, join(listDir, 'acl.list'), 'privileges', run));
}

/**
 * Roles named by CREATE POLICY ... TO and CREATE USER MAPPING FOR, as pg_dump writes them
 * (one line each; roles quoted as quote_ident does, listed with ", "). Unlike owners and
 * grantees, no --no-owner or --no-acl leaves these out: a restore needs them to exist.
 */
export function rolesInPolicySql(sql: string): string[] {
  const roles = new Set<string>();
  for (const match of sql.matchAll(POLICY_ROLES)) for (const raw of (match[1] ?? '').match(IDENTS) ?? []) addRole(roles, raw);
  for (const match of sql.matchAll(MAPPING_ROLE)) addRole(roles, match[1] as string);
  return [...roles].sort();
}

/** Roles the archive's policies and user mappings name (see rolesInPolicySql). Reads just those entries' SQL. */
export async function policyRoles(pgRestore: string, archive: string, entries: readonly TocEntry[], listDir: string, run: ChildRun): Promise<string[]> {
  const named = entries.filter((e) => e.type === 'POLICY' || e.type === 'USER MAPPING');
  if (named.length === 0) return [];
  return rolesInPolicySql(await entriesSql(pgRestore, archive, named, join(listDir, 'policies.list'), 'policies', run));
}

/**
 * The tablespaces named by pg_restore's script: pg_dump records an object's tablespace in
 * its TOC entry, and pg_restore writes it as `SET default_tablespace = name;` before the
 * object (`''` for the default one, which is not a tablespace to have).
 */
export function tablespacesInSql(sql: string): string[] {
  const found = new Set<string>();
  for (const match of sql.matchAll(DEFAULT_TABLESPACE)) {
    if (match[1] !== "''") found.add(unquote(match[1] as string));
  }
  return [...found].sort();
}

/**
 * The tablespaces the archive puts objects in (see tablespacesInSql): a server that lacks
 * one fails pg_restore half-way ("invalid value for parameter default_tablespace"), unless
 * it restores with --no-tablespaces. Reads only the definitions of the objects that can
 * have one (tables, indexes, constraints, materialized views), no data.
 */
export async function archiveTablespaces(pgRestore: string, archive: string, entries: readonly TocEntry[], listDir: string, run: ChildRun): Promise<string[]> {
  const placed = entries.filter((e) => TABLESPACE_TYPES.has(e.type));
  if (placed.length === 0) return [];
  return tablespacesInSql(await entriesSql(pgRestore, archive, placed, join(listDir, 'tablespaces.list'), 'tablespaces', run));
}

/** The TOC entry types pg_dump records a tablespace for. */
const TABLESPACE_TYPES = new Set(['TABLE', 'INDEX', 'CONSTRAINT', 'MATERIALIZED VIEW']);

/**
 * The dumped database's own properties as statements for the database `target`: its
 * settings (ALTER DATABASE ... SET, ALTER ROLE ... IN DATABASE ... SET, connection limit),
 * its comment and security labels, and (unless `noAcl`) its privileges (GRANT/REVOKE
 * CONNECT ...). pg_restore applies them only when it creates the database itself
 * (--create), under its dumped name; backupctl creates the database, so they are read from
 * the archive's entries that --create selects and named for `target`. Null when the
 * archive holds none.
 */
export async function databaseProperties(
  pgRestore: string,
  archive: string,
  database: { dumped: string; target: string; noAcl: boolean },
  listDir: string,
  run: ChildRun,
): Promise<{ statements: string[]; entries: number } | null> {
  const ofDatabase = (e: TocEntry) => e.rest.startsWith('- DATABASE ');
  const entries = parseTocList(await listToc(pgRestore, ['--list', '--create', archive], run)).filter(
    (e) => e.type === 'DATABASE PROPERTIES' || ((e.type === 'COMMENT' || e.type === 'SECURITY LABEL' || (e.type === 'ACL' && !database.noAcl)) && ofDatabase(e)),
  );
  if (entries.length === 0) return null;
  const sql = await entriesSql(pgRestore, archive, entries, join(listDir, 'database.list'), 'database properties', run, ['--create']);
  const statements = propertyStatements(sql, database.dumped, database.target);
  return statements.length === 0 ? null : { statements, entries: entries.length };
}

/**
 * Of pg_restore's script of database properties, the statements that set a property of
 * the database `from`, named for `to`. Each statement must be, whole, one of the forms
 * pg_dump writes for them (PROPERTY_FORMS): a setting, a role's setting in the database,
 * the connection limit, a comment, a security label, a GRANT or REVOKE on the database.
 * Nothing else goes through: not the CREATE DATABASE and owner that pg_restore --create
 * writes too (backupctl creates the database and gives its owner itself), not session
 * SETs, not IS_TEMPLATE (a restored copy does not become a template), and nothing a
 * hostile archive might append to a statement.
 */
export function propertyStatements(sql: string, from: string, to: string): string[] {
  const quoted = `"${to.replace(/"/g, '""')}"`;
  const kept: string[] = [];
  for (const statement of scriptStatements(sql)) {
    for (const form of PROPERTY_FORMS) {
      const match = form.exec(statement);
      if (!match || unquote(match[2] as string) !== from) continue;
      kept.push(`${match[1]}${quoted}${match[3]}`);
      break;
    }
  }
  return kept;
}

/**
 * The kinds of database property that statements of propertyStatements set: a replaced
 * target's own property of a kind the backup sets is carried over (the backup's takes its
 * place), not lost.
 */
export function propertyKinds(statements: readonly string[]): Set<DatabasePropertyKind> {
  const kinds = new Set<DatabasePropertyKind>();
  for (const statement of statements) {
    const form = PROPERTY_FORMS.findIndex((f) => f.test(statement));
    if (form >= 0) kinds.add(PROPERTY_KINDS[form] as DatabasePropertyKind);
  }
  return kinds;
}

/** The SQL pg_restore would run for just these entries (their definitions; no table data). */
async function entriesSql(pgRestore: string, archive: string, entries: readonly TocEntry[], list: string, what: string, run: ChildRun, extra: readonly string[] = []): Promise<string> {
  await writeFile(list, `${entries.map((e) => `${e.dumpId}; ${e.catalogOid} ${e.objectOid} ${e.type} ${e.rest}`).join('\n')}\n`, { mode: 0o600 });
  try {
    const { stdout } = await execa(pgRestore, ['--file=-', ...extra, `--use-list=${list}`, archive], {
      env: run.env,
      extendEnv: false,
      stdin: 'ignore',
      cancelSignal: run.signal,
      maxBuffer: 256 * 1024 * 1024,
    });
    return stdout;
  } catch (error) {
    throw childFailure(`pg_restore (${what})`, error, run.signal);
  }
}

const IDENT = String.raw`(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`;
const CREATED_RELATION = new RegExp(
  String.raw`^CREATE (?:UNLOGGED |FOREIGN )?(?:TABLE|VIEW|MATERIALIZED VIEW|SEQUENCE) (${IDENT})\.${IDENT}`,
  'gm',
);
const CREATED_SCHEMA = new RegExp(String.raw`^CREATE SCHEMA (${IDENT});`, 'gm');
const POLICY_ROLES = new RegExp(
  String.raw`^CREATE POLICY ${IDENT} ON ${IDENT}\.${IDENT}(?: AS (?:PERMISSIVE|RESTRICTIVE))?(?: FOR (?:ALL|SELECT|INSERT|UPDATE|DELETE))? TO (${IDENT}(?:, ${IDENT})*)`,
  'gm',
);
const MAPPING_ROLE = new RegExp(String.raw`^CREATE USER MAPPING FOR (${IDENT}) SERVER `, 'gm');
const IDENTS = new RegExp(IDENT, 'g');
const DEFAULT_TABLESPACE = new RegExp(String.raw`^SET default_tablespace = (${IDENT}|'');$`, 'gm');
/** A literal as pg_dump writes one ('...' with '' for a quote; E'' is not used). */
const LITERAL = String.raw`'(?:[^']|'')*'`;
/** A setting's value list: literals and plain words (numbers, identifiers), ", " between them. */
const SETTING = String.raw`[A-Za-z_][A-Za-z0-9_.]* (?:TO|=) (?:${LITERAL}|[A-Za-z0-9_.+-]+)(?:, (?:${LITERAL}|[A-Za-z0-9_.+-]+))*`;
const ROLES = String.raw`${IDENT}(?:, ${IDENT})*`;
/**
 * The whole statements database properties are made of, as pg_dump writes them: group 1
 * up to the database's name, group 2 the name, group 3 the rest (with the `;`).
 */
const PROPERTY_FORMS = [
  String.raw`^(ALTER DATABASE )(${IDENT})( SET ${SETTING};)$`,
  String.raw`^(ALTER DATABASE )(${IDENT})( CONNECTION LIMIT = -?\d+;)$`,
  String.raw`^(ALTER ROLE ${IDENT} IN DATABASE )(${IDENT})( SET ${SETTING};)$`,
  String.raw`^(COMMENT ON DATABASE )(${IDENT})( IS ${LITERAL};)$`,
  String.raw`^(SECURITY LABEL(?: FOR ${IDENT})? ON DATABASE )(${IDENT})( IS ${LITERAL};)$`,
  String.raw`^((?:GRANT|REVOKE(?: GRANT OPTION FOR)?) [A-Z]+(?:,[A-Z]+)* ON DATABASE )(${IDENT})( (?:TO|FROM) ${ROLES}(?: WITH GRANT OPTION)?(?: GRANTED BY ${IDENT})?;)$`,
].map((form) => new RegExp(form));
/** What each of PROPERTY_FORMS sets. */
const PROPERTY_KINDS: readonly DatabasePropertyKind[] = ['settings', 'connlimit', 'settings', 'comment', 'label', 'acl'];

function unquote(ident: string): string {
  return ident.startsWith('"') ? ident.slice(1, -1).replace(/""/g, '"') : ident;
}

/** The schemas an archive's SQL creates, and the schemas of the relations it creates. */
export function schemasInSql(sql: string): { created: string[]; used: string[] } {
  const created = new Set([...sql.matchAll(CREATED_SCHEMA)].map((m) => unquote(m[1] as string)));
  const used = new Set([...sql.matchAll(CREATED_RELATION)].map((m) => unquote(m[1] as string)));
  return { created: [...created].sort(), used: [...used].sort() };
}

/**
 * Schemas the archive's relations live in but that it does not create: `pg_dump --table
 * app.orders` dumps the table, not its schema, so restoring it into a new database fails
 * with "schema app does not exist". These must be created first. (`public` exists in
 * every new database.) Reads the definitions of the archive's schemas and relations only.
 */
async function schemasToCreate(pgRestore: string, archive: string, entries: readonly TocEntry[], listDir: string, run: ChildRun): Promise<string[]> {
  const types = new Set(['SCHEMA', 'TABLE', 'VIEW', 'MATERIALIZED VIEW', 'SEQUENCE', 'FOREIGN TABLE']);
  const relevant = entries.filter((e) => types.has(e.type));
  if (relevant.length === 0) return [];
  const { created, used } = schemasInSql(await entriesSql(pgRestore, archive, relevant, join(listDir, 'schemas.list'), 'schemas', run));
  return used.filter((schema) => schema !== 'public' && !created.includes(schema));
}

/**
 * What a new database needs before an archive is restored into it: the schemas its tables
 * live in that it does not create (`pg_dump --table`: see schemasToCreate), and whether its
 * own `public` goes first. `pg_dump --schema public` writes `CREATE SCHEMA public;`, which
 * fails on a new database's `public` (see admin.ts dropEmptyPublicSchema). A whole
 * database's dump has a SCHEMA public entry too when the schema's owner, comment or
 * privileges differ from a new database's, but only to set those (`ALTER SCHEMA public
 * OWNER TO ...`): the schema must then stay. Told apart by the entry's own SQL. A source
 * database that had no `public` at all (`publicSchema` false, as its sidecar records it)
 * leaves no trace in the archive: its `public` goes too, as pg_restore --create would
 * otherwise bring one back from template0.
 */
export async function schemaSetup(
  pgRestore: string,
  archive: string,
  entries: readonly TocEntry[],
  options: { tablesOnly: boolean; publicSchema: boolean | undefined },
  listDir: string,
  run: ChildRun,
): Promise<{ create: string[]; dropPublic: boolean }> {
  const create = options.tablesOnly ? await schemasToCreate(pgRestore, archive, entries, listDir, run) : [];
  const publicEntry = entries.filter((e) => e.type === 'SCHEMA' && /^- public(\s|$)/.test(e.rest));
  const dropPublic =
    options.publicSchema === false ||
    (publicEntry.length > 0 && schemasInSql(await entriesSql(pgRestore, archive, publicEntry, join(listDir, 'public.list'), 'schema public', run)).created.includes('public'));
  return { create, dropPublic };
}
