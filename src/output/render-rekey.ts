import type { RekeyResult } from '../core/rekey.js';
import { sanitize as t } from './format.js';
import type { Style } from './style.js';
import { renderTable } from './table.js';

const RESULT_WORDS = { done: 'rekeyed', unchanged: 'unchanged', planned: 'would rekey', failed: 'FAILED' } as const;

/** One row per backup: its recipients before and after, and what happened. */
export function renderRekey(result: RekeyResult, style: Style): string {
  if (result.backups.length === 0) return `No encrypted backups to rekey.${result.notEncrypted.length ? ` (${result.notEncrypted.length} not encrypted, left as they are.)` : ''}\n`;
  const rows = result.backups.map((b) => [
    style.id(t(b.id)),
    t(b.profile),
    t(b.before.join(', ')),
    t(b.after.join(', ')),
    b.result === 'failed' ? style.error(`FAILED: ${t(b.error ?? '')}`) : b.result === 'done' ? style.ok(RESULT_WORDS.done) : RESULT_WORDS[b.result],
  ]);
  const table = renderTable([{ header: 'ID' }, { header: 'PROFILE' }, { header: 'BEFORE' }, { header: 'AFTER' }, { header: 'RESULT' }], rows, style);
  const count = (r: keyof typeof RESULT_WORDS) => result.backups.filter((b) => b.result === r).length;
  const summary = result.dryRun
    ? `Dry run: would rekey ${count('planned')} backup(s). Nothing was changed.`
    : `Rekeyed ${count('done')} backup(s)${count('unchanged') ? `, ${count('unchanged')} already as asked` : ''}${count('failed') ? `, ${count('failed')} failed` : ''}.`;
  const skipped = result.notEncrypted.length ? `\n${result.notEncrypted.length} backup(s) are not encrypted and were left as they are.` : '';
  return `${table}${summary}${skipped}\n`;
}

/** `rekey --json`. */
export function rekeyJson(result: RekeyResult): unknown {
  return { dryRun: result.dryRun, backups: result.backups, notEncrypted: result.notEncrypted };
}
