import type { DeleteResult } from '../core/delete.js';
import { formatAge, formatBytes, formatTimestamp, sanitize as t } from './format.js';
import type { Style } from './style.js';
import { renderTable } from './table.js';

/** The backups deleted (or, with --dry-run, that would be), and what it freed. */
export function renderDelete(result: DeleteResult, style: Style, now: Date): string {
  const rows = result.backups.map((b) => [
    style.id(t(b.id)),
    t(b.profile),
    `${formatTimestamp(b.createdAt, { seconds: false })} (${formatAge(new Date(b.createdAt), now)})`,
    formatBytes(b.bytes),
    result.dryRun ? 'would remove' : b.removed ? style.ok('removed') : style.error(`FAILED: ${t(b.error ?? '')}`),
  ]);
  const table = renderTable([{ header: 'ID' }, { header: 'PROFILE' }, { header: 'CREATED' }, { header: 'SIZE', align: 'right' }, { header: 'RESULT' }], rows, style);
  const bytes = result.backups.filter((b) => result.dryRun || b.removed).reduce((sum, b) => sum + b.bytes, 0);
  const count = result.backups.filter((b) => result.dryRun || b.removed).length;
  const summary = result.dryRun
    ? `Dry run: would remove ${count} backup(s), freeing ${formatBytes(bytes)}. Nothing was changed.`
    : `Removed ${count} backup(s), freeing ${formatBytes(bytes)}.`;
  // A backup whose sidecar could not be read was removed by its id: say which files that was.
  const unreadable = result.backups
    .filter((b) => b.unreadable !== undefined)
    .map((b) => `${t(b.profile)}/${style.id(t(b.id))}: its sidecar could not be read (${t(b.unreadable as string)}); ${result.dryRun ? 'would remove' : b.removed ? 'removed' : 'to remove'} ${b.keys.map((k) => t(k)).join(', ')}\n`)
    .join('');
  return `${table}${unreadable}${summary}\n`;
}

/** `delete --json`: one entry per backup. */
export function deleteJson(result: DeleteResult): unknown {
  return { dryRun: result.dryRun, backups: result.backups, errors: result.errors };
}
