/**
 * Renderers for stdout: human text for create/list/show, the JSON shapes of `--json`,
 * and the error block for stderr. They return strings; the caller writes them.
 *
 * Everything read from a sidecar is passed through `sanitize` before it reaches the
 * terminal: a sidecar comes from storage and may have been edited by anyone.
 */
import { qualifiedName, standingVerification, type Sidecar, type SidecarSummary, type Verification } from '../catalog/sidecar.js';
import type { CreateResult, IncompleteEntry, ListResult, ShowResult } from '../core/results.js';
import { BackupctlError } from '../errors.js';
import { describeLocale } from '../pg/locale.js';
import {
  formatAge,
  formatBytes,
  formatCount,
  formatDuration,
  formatTimestamp,
  sanitize as t,
} from './format.js';
import type { Style } from './style.js';
import { renderKeyValues, renderTable, type Column } from './table.js';
import { redactSecrets } from '../redact.js';

type Pairs = Array<readonly [string, string]>;

/** The verification that stands for the backup (see standingVerification), or null. */
export function latestVerification(sidecar: SidecarSummary): Verification | null {
  return standingVerification(sidecar.verifications, sidecar.dump);
}

function list(values: string[], empty: string): string {
  return values.length === 0 ? empty : values.map((value) => t(value)).join(', ');
}

function totalRows(sidecar: Sidecar): number {
  return sidecar.tables.reduce((sum, table) => sum + table.rows, 0);
}

function indent(text: string, spaces = 2): string {
  const prefix = ' '.repeat(spaces);
  return text.replace(/^(?=.)/gm, prefix);
}

function section(title: string, body: string, style: Style): string {
  return `${style.heading(title)}\n${body}`;
}

function globalsSummary(sidecar: Sidecar): string {
  const globals = sidecar.globals;
  if (globals.status === 'skipped') return `skipped (${t(globals.reason)})`;
  return `included (${formatBytes(globals.bytes)}${globals.rolePasswords ? '' : ', without role passwords'})`;
}

// ---------------------------------------------------------------------------------------
// create

export function renderCreate(result: CreateResult, style: Style): string {
  const s = result.sidecar;
  const pairs: Pairs = [
    ['profile', t(s.profile)],
    ['database', `${t(s.source.database)} (${t(s.source.host)}:${s.source.port})`],
    ['artifact', `${t(s.artifact.file)} (${formatBytes(s.artifact.bytes)})`],
    ['sha256', t(s.artifact.sha256)],
    ['duration', formatDuration(s.durationMs)],
    ['tables', `${formatCount(s.tables.length)} counted, ${formatCount(totalRows(s))} rows`],
    ['globals', globalsSummary(s)],
    ['tags', list(s.tags, '-')],
    ['storage', t(result.storage)],
  ];
  if (s.artifact.encryption !== null) pairs.splice(4, 0, ['encryption', t(s.artifact.encryption.scheme)]);
  for (const copy of result.copies ?? []) {
    pairs.push(['copy', copy.result === 'failed' ? `${t(copy.to)}: ${style.error('FAILED')} ${t(copy.error ?? '')}` : `${t(copy.to)}: ${copy.result === 'present' ? 'already there' : style.ok('copied')}`]);
    for (const earlier of copy.caughtUp ?? []) {
      const what = earlier.result === 'failed' ? `${style.error('FAILED')} ${t(earlier.error ?? '')}` : earlier.result === 'present' ? 'already there' : style.ok('copied');
      pairs.push(['copy', `${t(copy.to)}: earlier backup ${t(earlier.id)} ${what}`]);
    }
  }
  const head = `Backup ${style.id(t(s.id))} ${style.ok('completed')}\n`;
  const warnings = result.warnings.map((warning) => `${style.warn('warning:')} ${t(warning)}\n`).join('');
  return head + renderKeyValues(pairs, style) + warnings;
}

// ---------------------------------------------------------------------------------------
// list

const LIST_COLUMNS: Column[] = [
  { header: 'ID' },
  { header: 'PROFILE' },
  { header: 'DATABASE' },
  { header: 'CREATED' },
  { header: 'SIZE', align: 'right' },
  { header: 'DURATION', align: 'right' },
  { header: 'TAGS' },
  { header: 'VERIFIED' },
];

const INCOMPLETE_COLUMNS: Column[] = [
  { header: 'PROFILE' },
  { header: 'ID' },
  { header: 'FILE' },
  { header: 'SIZE', align: 'right' },
  { header: 'MODIFIED' },
];

function timeWithAge(iso: string, now: Date, seconds: boolean): string {
  return `${formatTimestamp(iso, { seconds })} (${formatAge(new Date(iso), now)})`;
}

function verifiedCell(sidecar: SidecarSummary, style: Style, now: Date): string {
  const v = latestVerification(sidecar);
  if (v === null) return style.dim('never');
  if (v.result === 'passed') return style.ok(`passed ${v.level} ${formatAge(new Date(v.at), now)}`);
  return style.error(`FAILED ${v.level}`);
}

function listRow(s: SidecarSummary, style: Style, now: Date, problems: readonly string[] | undefined): string[] {
  return [
    style.id(t(s.id)),
    t(s.profile),
    t(s.source.database),
    timeWithAge(s.startedAt, now, false),
    formatBytes(s.artifact.bytes),
    formatDuration(s.durationMs),
    list(s.tags, '-'),
    problems && problems.length > 0 ? style.error('DAMAGED (see below)') : verifiedCell(s, style, now),
  ];
}

function incompleteRow(entry: IncompleteEntry, now: Date): string[] {
  return [
    t(entry.profile),
    t(entry.id),
    t(entry.file),
    formatBytes(entry.bytes),
    timeWithAge(entry.modifiedAt, now, false),
  ];
}

/**
 * The backups table (newest first, as given), then, with `list --all`, the artifacts
 * that have no sidecar. `result.warnings` are not included: report them on stderr.
 */
export function renderList(result: ListResult, style: Style, now: Date): string {
  const parts: string[] = [];
  if (result.backups.length === 0) {
    parts.push(result.filter ? `No backups ${t(result.filter)} in ${t(result.storage)}.\n` : `No backups in ${t(result.storage)}.\n`);
  } else {
    parts.push(renderTable(LIST_COLUMNS, result.backups.map((s) => listRow(s, style, now, result.damage.get(`${s.profile}/${s.id}`))), style));
    const damaged = result.backups.filter((s) => result.damage.has(`${s.profile}/${s.id}`));
    if (damaged.length > 0) {
      parts.push(`\n${style.heading('Damaged (cannot be restored as they are)')}\n`);
      for (const s of damaged) {
        for (const problem of result.damage.get(`${s.profile}/${s.id}`) ?? []) parts.push(`  ${style.error('✗')} ${t(s.profile)}/${t(s.id)}: ${t(problem)}\n`);
      }
    }
  }
  if (result.refused.length > 0) {
    const n = result.refused.length;
    parts.push(`\n${style.error('✗')} ${n} backup${n === 1 ? ' is' : 's are'} not listed: the storage refused ${n === 1 ? 'its sidecar' : 'their sidecars'} (named on stderr); this listing is incomplete\n`);
  }
  if (result.incomplete.length > 0) {
    parts.push(
      `\n${style.heading('Incomplete (no sidecar)')}\n`,
      renderTable(INCOMPLETE_COLUMNS, result.incomplete.map((entry) => incompleteRow(entry, now)), style),
    );
  }
  return parts.join('');
}

// ---------------------------------------------------------------------------------------
// show

function backupSection(result: ShowResult, style: Style, now: Date): string {
  const s = result.sidecar;
  return renderKeyValues(
    [
      ['id', style.id(t(s.id))],
      ['profile', t(s.profile)],
      ['status', style.ok(t(s.status))],
      ['started', timeWithAge(s.startedAt, now, true)],
      ['finished', formatTimestamp(s.finishedAt)],
      ['duration', formatDuration(s.durationMs)],
      ['storage', t(result.storage)],
      ['written by', `${t(s.tool.name)} ${t(s.tool.version)}`],
      ['sidecar version', String(s.schemaVersion)],
    ],
    style,
  );
}

function sourceSection(s: Sidecar, style: Style): string {
  return renderKeyValues(
    [
      ['host', t(s.source.host)],
      ['port', String(s.source.port)],
      ['user', t(s.source.user)],
      ['database', t(s.source.database)],
    ],
    style,
  );
}

function databaseSection(s: Sidecar, style: Style): string {
  return renderKeyValues(
    [
      ['name', t(s.database.name)],
      ['size', `${formatBytes(s.database.sizeBytes)} (${formatCount(s.database.sizeBytes)} bytes)`],
      ['encoding', t(s.database.encoding)],
      ...(s.database.locale ? [['locale', t(describeLocale(s.database.locale))] as [string, string]] : []),
      ['large objects', formatCount(s.database.largeObjects)],
    ],
    style,
  );
}

function engineSection(s: Sidecar, style: Style): string {
  return renderKeyValues(
    [
      ['server', `${t(s.engine.serverVersion)} (${s.engine.serverVersionNum})`],
      ['pg_dump', t(s.engine.pgDumpVersion)],
    ],
    style,
  );
}

function dumpSection(s: Sidecar, style: Style): string {
  const d = s.dump;
  const contents = d.schemaOnly ? 'schema only' : d.dataOnly ? 'data only' : 'schema and data';
  return renderKeyValues(
    [
      ['format', d.format],
      ['compress', d.compress === null ? style.dim("pg_dump's default") : t(String(d.compress))],
      ['jobs', String(d.jobs)],
      ['contents', contents],
      ['schemas', list(d.schemas, 'all')],
      ['exclude schemas', list(d.excludeSchemas, 'none')],
      ['tables', list(d.tables, 'all')],
      ['exclude tables', list(d.excludeTables, 'none')],
      ['lock wait timeout', d.lockWaitTimeout === null ? 'none' : t(d.lockWaitTimeout)],
      ['snapshot', t(d.snapshot)],
      ['TOC entries', formatCount(d.tocEntries)],
      ['large objects', d.largeObjects === undefined ? style.dim('not recorded') : formatCount(d.largeObjects)],
    ],
    style,
  );
}

function artifactSection(s: Sidecar, style: Style): string {
  const a = s.artifact;
  const pairs: Pairs = [
    ['file', t(a.file)],
    ['container', a.container],
    ['size', `${formatBytes(a.bytes)} (${formatCount(a.bytes)} bytes)`],
    ['sha256', t(a.sha256)],
    ['compression', a.compression.level === null ? a.compression.codec : `${a.compression.codec} level ${a.compression.level}`],
  ];
  if (a.encryption === null) {
    pairs.push(['encryption', 'none']);
  } else {
    pairs.push(['encryption', t(a.encryption.scheme)], ['recipients', list(a.encryption.recipients, 'none')]);
  }
  if (a.plaintext && (a.plaintext.sha256 !== a.sha256 || a.plaintext.bytes !== a.bytes)) {
    pairs.push(['archive size', `${formatBytes(a.plaintext.bytes)} (${formatCount(a.plaintext.bytes)} bytes, before the stages)`], ['archive sha256', t(a.plaintext.sha256)]);
  }
  return renderKeyValues(pairs, style);
}

function globalsSection(s: Sidecar, style: Style): string {
  const g = s.globals;
  if (g.status === 'skipped') {
    return renderKeyValues([['status', style.warn('skipped')], ['reason', t(g.reason)]], style);
  }
  return renderKeyValues(
    [
      ['status', 'included'],
      ['file', t(g.file)],
      ['size', `${formatBytes(g.bytes)} (${formatCount(g.bytes)} bytes)`],
      ['sha256', t(g.sha256)],
      ['role passwords', g.rolePasswords ? 'included' : 'not included (the role could not read pg_authid)'],
    ],
    style,
  );
}

function tablesSection(s: Sidecar, style: Style): string {
  if (s.tables.length === 0) return indent(`${style.dim('no tables counted')}\n`);
  const rows = s.tables.map((table) => [t(qualifiedName(table)), formatCount(table.rows)]);
  rows.push([style.bold(`total (${formatCount(s.tables.length)} tables)`), style.bold(formatCount(totalRows(s)))]);
  return indent(renderTable([{ header: 'TABLE' }, { header: 'ROWS', align: 'right' }], rows, style));
}

function verificationsSection(s: Sidecar, style: Style, now: Date): string {
  if (s.verifications.length === 0) return indent(`${style.dim('never verified')}\n`);
  const sorted = [...s.verifications].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  const rows = sorted.map((v) => [
    timeWithAge(v.at, now, true),
    v.level,
    v.result === 'passed' ? style.ok('passed') : style.error('FAILED'),
    formatDuration(v.durationMs),
    v.mismatches.length === 0 ? '-' : formatCount(v.mismatches.length),
    v.serverVersion === undefined ? '-' : t(v.serverVersion),
  ]);
  const table = renderTable(
    [
      { header: 'WHEN' },
      { header: 'LEVEL' },
      { header: 'RESULT' },
      { header: 'DURATION', align: 'right' },
      { header: 'MISMATCHES', align: 'right' },
      { header: 'SERVER' },
    ],
    rows,
    style,
  );
  const details: string[] = [];
  for (const v of sorted) {
    if (v.error === undefined && v.mismatches.length === 0) continue;
    details.push(`${formatTimestamp(v.at)} ${v.level}:`);
    if (v.error !== undefined) details.push(`  ${style.error('error:')} ${t(v.error)}`);
    for (const mismatch of v.mismatches) details.push(`  ${style.warn('mismatch:')} ${t(mismatch)}`);
  }
  return indent(table + (details.length === 0 ? '' : `\n${details.join('\n')}\n`));
}

function labelsSection(s: Sidecar, style: Style): string {
  return renderKeyValues(
    [
      ['tags', list(s.tags, style.dim('none'))],
      ['note', s.note === null ? style.dim('none') : t(s.note)],
    ],
    style,
  );
}

/** Every field of the sidecar, grouped under headings; first what is wrong with its files, if anything. */
export function renderShow(result: ShowResult, style: Style, now: Date): string {
  const s = result.sidecar;
  const damaged = result.problems.length === 0 ? [] : [
    section('DAMAGED: this backup cannot be restored as it is', result.problems.map((p) => `  ${style.error('✗')} ${t(p)}\n`).join(''), style),
  ];
  return [
    ...damaged,
    section('Backup', backupSection(result, style, now), style),
    section('Source', sourceSection(s, style), style),
    section('Database', databaseSection(s, style), style),
    section('Engine', engineSection(s, style), style),
    section('Dump', dumpSection(s, style), style),
    section('Artifact', artifactSection(s, style), style),
    section('Globals', globalsSection(s, style), style),
    section('Tables', tablesSection(s, style), style),
    section('Verifications', verificationsSection(s, style, now), style),
    section('Tags and note', labelsSection(s, style), style),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------
// JSON

export function renderJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** Bytes of JSON text gathered before one write (writeJson). */
const JSON_CHUNK_CHARS = 16 * 1024;

/** Where writeJson writes: a stream (whose back-pressure it honours) or anything with write(). */
export interface JsonSink {
  write(text: string): unknown;
  once?(event: 'drain' | 'close' | 'error', listener: () => void): unknown;
  off?(event: 'drain' | 'close' | 'error', listener: () => void): unknown;
}

/**
 * A JSON array whose elements are made one at a time as they are written (writeJson), so
 * that 10,000 listed backups are not 10,000 more objects alive at once. Anything else that
 * serializes it (JSON.stringify) gets the whole array from toJSON.
 */
export class JsonArray<T> {
  constructor(
    readonly length: number,
    private readonly make: () => Iterable<T>,
  ) {}

  *[Symbol.iterator](): Iterator<T> {
    yield* this.make();
  }

  toJSON(): T[] {
    return [...this];
  }
}

/**
 * Writes renderJson(value), byte for byte, without ever holding all of it: a top-level
 * array (or JsonArray) is written element by element, in chunks (`list --json` over 10,000
 * backups is tens of megabytes of text), waiting for a stream that is full (a pipe to a
 * slow reader) to drain, so that the text is not queued in memory instead. A sink that
 * closes or fails meanwhile ends the wait (the rest is not written).
 */
export async function writeJson(out: JsonSink, value: unknown): Promise<void> {
  const elements = value instanceof JsonArray ? (value as JsonArray<unknown>) : Array.isArray(value) ? (value as unknown[]) : null;
  if (elements === null || elements.length === 0) {
    out.write(renderJson(value));
    return;
  }
  let chunk = '[\n';
  let index = 0;
  for (const element of elements) {
    // What JSON.stringify(array, null, 2) writes for an element: its own text indented one
    // level (a newline inside a JSON string is always escaped), `null` for what has none.
    const text = (JSON.stringify(element, null, 2) as string | undefined) ?? 'null';
    chunk += `${index === 0 ? '' : ',\n'}  ${text.replaceAll('\n', '\n  ')}`;
    index += 1;
    if (chunk.length >= JSON_CHUNK_CHARS) {
      const more = out.write(chunk);
      chunk = '';
      if (more === false && !(await drained(out))) return;
    }
  }
  out.write(`${chunk}\n]\n`);
}

/** Resolves true once `out` drains, false when it closes or fails first. */
function drained(out: JsonSink): Promise<boolean> {
  const { once, off } = out;
  if (!once || !off) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => () => {
      off.call(out, 'drain', onDrain);
      off.call(out, 'close', onEnd);
      off.call(out, 'error', onEnd);
      resolve(ok);
    };
    const onDrain = done(true);
    const onEnd = done(false);
    once.call(out, 'drain', onDrain);
    once.call(out, 'close', onEnd);
    once.call(out, 'error', onEnd);
  });
}

export interface CreateJson {
  id: string;
  profile: string;
  database: string;
  artifact: string;
  bytes: number;
  sha256: string;
  durationMs: number;
  storage: string;
  tags: string[];
  warnings: string[];
  copies: NonNullable<CreateResult['copies']>;
}

export function createJson(result: CreateResult): CreateJson {
  const s = result.sidecar;
  return {
    id: s.id,
    profile: s.profile,
    database: s.source.database,
    artifact: s.artifact.file,
    bytes: s.artifact.bytes,
    sha256: s.artifact.sha256,
    durationMs: s.durationMs,
    storage: result.storage,
    tags: s.tags,
    warnings: result.warnings,
    copies: result.copies ?? [],
  };
}

/**
 * A listed backup: its sidecar without `tables` (the per-table row counts: `show --json`
 * prints them), its latest verification, and what is wrong with its stored files (empty
 * when nothing).
 */
export type ListedBackupJson = SidecarSummary & { verification: Verification | null; problems: string[] };

export interface IncompleteJson {
  id: string;
  profile: string;
  status: 'incomplete';
  file: string;
  bytes: number;
  modifiedAt: string;
}

export type ListJsonEntry = ListedBackupJson | IncompleteJson;

/**
 * Completed backups (as listed, each with its latest verification), then incomplete ones;
 * each element is made as it is written.
 */
export function listJson(result: ListResult): JsonArray<ListJsonEntry> {
  return new JsonArray(result.backups.length + result.incomplete.length, function* (): Generator<ListJsonEntry> {
    for (const s of result.backups) {
      yield { ...s, verification: latestVerification(s), problems: [...(result.damage.get(`${s.profile}/${s.id}`) ?? [])] };
    }
    for (const entry of result.incomplete) {
      yield { id: entry.id, profile: entry.profile, status: 'incomplete', file: entry.file, bytes: entry.bytes, modifiedAt: entry.modifiedAt };
    }
  });
}

/** The sidecar, and `problems`: what is wrong with its stored files (empty when nothing). */
export function showJson(result: ShowResult): Sidecar & { problems: string[] } {
  return { ...result.sidecar, problems: result.problems };
}

// ---------------------------------------------------------------------------------------
// errors

/** Belt and braces: a secret that slipped into a message is masked (see redactSecrets). */
const redact = redactSecrets;

/** A hint or detail line as --log-format json writes it: secrets masked, no control characters. */
export function safeText(text: string): string {
  return t(redact(text));
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'string') return error;
  try {
    return JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}

/** An error's message as the operator sees it: one line, secrets masked, no control characters. */
export function errorMessage(error: unknown): string {
  return oneLine(messageOf(error));
}

function oneLine(text: string): string {
  return t(redact(text).replace(/\s*\r?\n\s*/g, ' ').trim());
}

function multiLine(text: string): string {
  return t(redact(text).trimEnd(), { keepNewlines: true }).replace(/\n/g, '\n  ');
}

function stackFrames(error: Error, style: Style): string[] {
  const stack = error.stack;
  if (stack === undefined) return [];
  const lines = stack.split('\n');
  const frames = lines.filter((line) => /^\s+at /.test(line));
  return (frames.length > 0 ? frames : lines).map((line) => style.dim(`  ${t(line.trim())}`));
}

/**
 * `error: <message>` and, for a BackupctlError with a hint, `hint: <hint>`: never more
 * without `verbose`. With `verbose`: the cause chain, and the stack of the innermost
 * error that is not a BackupctlError (or of the error itself when it is not one).
 */
export function renderError(error: unknown, style: Style, verbose: boolean): string {
  const lines = [`${style.error('error:')} ${oneLine(messageOf(error))}`];
  if (error instanceof BackupctlError) {
    // Indentation kept: a code frame's caret points at its column.
    for (const detail of error.details) lines.push(`  ${t(redact(detail).replace(/\s*\r?\n\s*/g, ' ').trimEnd())}`);
    if (error.hint !== undefined && error.hint !== '') lines.push(`${style.dim('hint:')} ${oneLine(error.hint)}`);
  }
  if (verbose) {
    const seen = new Set<unknown>([error]);
    let innermostForeign: Error | null = error instanceof Error && !(error instanceof BackupctlError) ? error : null;
    let current: unknown = error instanceof Error ? error.cause : undefined;
    while (current !== undefined && !seen.has(current) && seen.size <= 20) {
      seen.add(current);
      lines.push(`${style.dim('cause:')} ${multiLine(messageOf(current))}`);
      if (current instanceof Error && !(current instanceof BackupctlError)) innermostForeign = current;
      current = current instanceof Error ? current.cause : undefined;
    }
    if (innermostForeign !== null) lines.push(...stackFrames(innermostForeign, style));
  }
  return `${lines.join('\n')}\n`;
}
