import type { CopyResult } from '../core/copy.js';
import { formatBytes, sanitize as t } from './format.js';
import type { Style } from './style.js';
import { renderTable } from './table.js';

/** One row per backup: where from, its size, what happened. */
export function renderCopy(result: CopyResult, style: Style): string {
  if (result.backups.length === 0) return `No backups to copy.\n`;
  const rows = result.backups.map((b) => [
    style.id(t(b.id)),
    t(b.profile),
    formatBytes(b.bytes),
    b.result === 'failed' ? style.error(`FAILED: ${t(b.error ?? '')}`) : b.result === 'copied' ? style.ok('copied') : b.result === 'present' ? 'already there' : 'would copy',
  ]);
  const table = renderTable([{ header: 'ID' }, { header: 'PROFILE' }, { header: 'SIZE', align: 'right' }, { header: 'RESULT' }], rows, style);
  const count = (r: string) => result.backups.filter((b) => b.result === r).length;
  const summary = result.dryRun
    ? `Dry run: would copy ${count('planned')} backup(s) to ${t(result.to)}. Nothing was changed.`
    : `Copied ${count('copied')} backup(s) to ${t(result.to)}${count('present') ? `, ${count('present')} already there` : ''}${count('failed') ? `, ${count('failed')} failed` : ''}.`;
  return `${table}${summary}\n`;
}

/** `copy --json`. */
export function copyJson(result: CopyResult): unknown {
  return { dryRun: result.dryRun, to: result.to, backups: result.backups };
}
