import { describeStaleReason, type UnlockResult } from '../core/lock.js';
import type { PrunedItem, PruneReason, PruneResult } from '../core/prune.js';
import { formatAge, formatBytes, formatTimestamp, sanitize as t } from './format.js';
import type { Style } from './style.js';
import { renderTable } from './table.js';

function reasonText(reason: PruneReason, result: PruneResult): string {
  switch (reason) {
    case 'no-rule':
      return 'no rule keeps it';
    case 'newest-successful':
      return 'newest backup';
    case 'newest-verified':
      return 'newest verified backup';
    case 'future':
      return 'dated in the future';
    case 'damaged':
      return 'damaged (artifact missing or of the wrong size; not counted as a good backup)';
    case 'leftover-old':
      return `unfinished (no sidecar), older than ${compactDuration(result.leftoverAgeMs)}`;
    case 'leftover-recent':
      return `unfinished (no sidecar), younger than ${compactDuration(result.leftoverAgeMs)}`;
    default:
      return reason;
  }
}

/** `24h`, `36h`, `3d`, `1h30min`, `30s`: how durations are written on the command line. */
function compactDuration(ms: number): string {
  const units: Array<[string, number]> = [['d', 86_400_000], ['h', 3_600_000], ['min', 60_000], ['s', 1000]];
  if (ms < 2 * 86_400_000) units.shift(); // 24h, 36h rather than 1d, 1d12h
  let rest = ms;
  let text = '';
  for (const [unit, size] of units) {
    if (rest >= size) {
      text += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return text === '' ? `${ms}ms` : text;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * The plan as a table (ID, CREATED, ACTION, REASONS; every backup, newest first, then the
 * unfinished leftovers), then one line: what was (or would be) removed and freed.
 */
export function renderPrune(result: PruneResult, style: Style, now: Date): string {
  const head = `${style.dim('profile')} ${t(result.profile)}  ${style.dim('policy')} ${t(result.policyText)}\n`;
  const temporaries = temporariesLine(result, style);
  if (result.items.length === 0) return `${head}No backups of profile ${t(result.profile)} in ${t(result.storage)}.\n${temporaries}`;
  const rows = result.items.map((item) => pruneRow(item, result, style, now));
  // The table ends with a newline. With 10,000 rows it is ~1 MB: joined to the other lines
  // as it is, not trimmed and joined again (each a copy of it).
  const table = renderTable([{ header: 'ID' }, { header: 'CREATED' }, { header: 'ACTION' }, { header: 'REASONS' }], rows, style);
  const tail: string[] = [];
  const { backups, leftovers, bytes } = result.freed;
  const stale = result.temporaries.files;
  const what = [plural(backups, 'backup'), ...(leftovers > 0 ? [plural(leftovers, 'unfinished leftover')] : []), ...(stale > 0 ? [plural(stale, 'stale temporary file')] : [])]
    .join(', ')
    .replace(/, ([^,]*)$/, ' and $1');
  const kept = result.items.filter((item) => item.kind === 'backup' && item.action === 'keep').length;
  if (result.dryRun) {
    tail.push(`Dry run: would remove ${what}, freeing ${formatBytes(bytes)}; would keep ${plural(kept, 'backup')}. Nothing was changed.`);
  } else {
    tail.push(`Removed ${what}, freed ${formatBytes(bytes)}; kept ${plural(kept, 'backup')}.`);
  }
  for (const error of result.errors) tail.push(`${style.error('error:')} ${t(error)}`);
  return `${head}${table}${temporaries}${tail.join('\n')}\n`;
}

/**
 * The stale temporaries of interrupted writes (a line of their own: they are no backup and
 * have no id), or '' when there are none.
 */
function temporariesLine(result: PruneResult, style: Style): string {
  const { files, bytes, error } = result.temporaries;
  if (error !== undefined) return `${style.warn('warning:')} could not ${result.dryRun ? 'list' : 'remove'} stale temporary files: ${t(error)}\n`;
  if (files === 0) return '';
  const age = compactDuration(result.leftoverAgeMs);
  const size = bytes > 0 ? `, ${formatBytes(bytes)}` : '';
  return `Stale temporary files of interrupted writes (older than ${age}): ${files}${size}, ${result.dryRun ? style.warn('remove') : style.warn('removed')}\n`;
}

/** One row of the plan's table: ID, CREATED (time and age), ACTION, REASONS. */
function pruneRow(item: PrunedItem, result: PruneResult, style: Style, now: Date): string[] {
  const action =
    item.action === 'keep'
      ? style.ok('keep')
      : result.dryRun
        ? style.warn('remove')
        : item.removed
          ? style.warn('removed')
          : style.error('FAILED');
  return [
    style.id(t(item.id)),
    `${formatTimestamp(item.createdAt, { seconds: false })} (${formatAge(new Date(item.createdAt), now)})`,
    action,
    item.reasons.map((reason) => reasonText(reason, result)).join(', '),
  ];
}

/**
 * `--json`: the stale temporaries of interrupted writes, one entry after the backups and
 * leftovers, only when there are any (they have no id: `count` files of `bytes` in all).
 */
export interface PruneJsonTemporaries {
  profile: string;
  kind: 'temporaries';
  action: 'remove';
  reasons: ['temporary-old'];
  count: number;
  bytes: number;
  files: string[];
  removed?: boolean;
}

export interface PruneJsonEntry {
  id: string;
  profile: string;
  kind: 'backup' | 'leftover';
  createdAt: string;
  action: 'keep' | 'remove';
  reasons: PruneReason[];
  bytes: number;
  /** Storage keys (a backup's sidecar first). */
  files: string[];
  /** Only in a real run: whether the entry was removed. */
  removed?: boolean;
  error?: string;
}

/** `--json`: one object per backup and leftover, in the order of the table. */
export function pruneJson(result: PruneResult): Array<PruneJsonEntry | PruneJsonTemporaries> {
  const entries: Array<PruneJsonEntry | PruneJsonTemporaries> = result.items.map((item) => ({
    id: item.id,
    profile: item.profile,
    kind: item.kind,
    createdAt: item.createdAt,
    action: item.action,
    reasons: item.reasons,
    bytes: item.bytes,
    files: item.keys,
    ...(result.dryRun || item.action === 'keep' ? {} : { removed: item.removed }),
    ...(item.error === undefined ? {} : { error: item.error }),
  }));
  const { files, bytes } = result.temporaries;
  if (files > 0) {
    entries.push({
      profile: result.profile,
      kind: 'temporaries',
      action: 'remove',
      reasons: ['temporary-old'],
      count: files,
      bytes,
      files: [],
      ...(result.dryRun ? {} : { removed: true }),
    });
  }
  return entries;
}

export function renderUnlock(result: UnlockResult, style: Style): string {
  if (result.lock === null) return `Profile ${t(result.profile)} is not locked.\n`;
  const info = result.lock.info;
  const holder =
    info === null ? 'an unreadable lock object' : `"${t(info.command)}" (pid ${info.pid} on host ${t(info.host)}, since ${formatTimestamp(info.startedAt)})`;
  const why =
    result.state === 'stale'
      ? `its process is no longer running: ${info !== null && result.reason !== undefined ? describeStaleReason(result.reason, info.pid) : 'pid not running'}`
      : result.state === 'forced'
        ? style.warn('forced: its process is still running')
        : result.state === 'elsewhere'
          ? 'held from another host'
          : 'it could not be read';
  return `${style.ok('Removed')} the lock of profile ${t(result.profile)}, held by ${holder} (${why}).\n`;
}

export function unlockJson(result: UnlockResult): unknown {
  return { profile: result.profile, storage: result.storage, removed: result.removed, state: result.state, ...(result.reason ? { reason: result.reason } : {}), lock: result.lock?.info ?? null };
}
