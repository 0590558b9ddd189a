import { ExitCode } from '../errors.js';
import { verifyExitCode, type VerifyOutcome, type VerifyResult } from '../core/verify.js';
import { formatDuration, sanitize as t } from './format.js';
import type { Style } from './style.js';
import { renderTable } from './table.js';

/** passed, FAILED (the backup's content is wrong), NOT VERIFIED (the check could not be made), skipped (removed meanwhile). */
function verdictOf(o: VerifyOutcome, style: Style): string {
  switch (o.result) {
    case 'passed':
      return style.ok('passed');
    case 'failed':
      return style.error('FAILED');
    case 'error':
      return style.warn('NOT VERIFIED');
    default:
      return style.dim('skipped');
  }
}

function problems(outcome: VerifyOutcome): string[] {
  return [...outcome.mismatches, ...(outcome.error ? [outcome.error] : [])];
}

/** One block per backup for a single verification; a summary table for `--all`. */
export function renderVerify(result: VerifyResult, style: Style): string {
  if (result.outcomes.length === 0) return `No backups to verify in ${t(result.storage)}.\n`;
  const lines: string[] = [];
  if (result.outcomes.length > 1) {
    lines.push(
      renderTable(
        [{ header: 'ID' }, { header: 'PROFILE' }, { header: 'LEVEL' }, { header: 'RESULT' }, { header: 'DURATION', align: 'right' }],
        result.outcomes.map((o) => [
          style.id(o.id),
          t(o.profile),
          o.level,
          verdictOf(o, style),
          formatDuration(o.durationMs),
        ]),
        style,
      ).trimEnd(),
    );
    const count = (verdict: VerifyOutcome['result']) => result.outcomes.filter((o) => o.result === verdict).length;
    const others = [count('error') > 0 ? `, ${count('error')} not verified` : '', count('skipped') > 0 ? `, ${count('skipped')} skipped` : ''].join('');
    lines.push(`${count('passed')} passed, ${count('failed')} failed${others}`);
    for (const outcome of result.outcomes.filter((o) => o.result === 'failed' || o.result === 'error')) {
      lines.push(`${verdictOf(outcome, style)} ${outcome.profile}/${outcome.id}:`);
      for (const problem of problems(outcome)) lines.push(`  - ${t(problem)}`);
    }
  } else {
    const [o] = result.outcomes as [VerifyOutcome];
    const verdict = verdictOf(o, style);
    lines.push(`Verification of ${style.id(o.id)} (${t(o.profile)}, database ${t(o.database)}) at level ${o.level}: ${verdict} in ${formatDuration(o.durationMs)}`);
    for (const problem of problems(o)) lines.push(`  - ${t(problem)}`);
    if (o.serverVersion) lines.push(`  restored on PostgreSQL ${t(o.serverVersion)}`);
  }
  for (const o of result.outcomes) {
    if (o.keptDatabase) lines.push(`kept throwaway database ${o.keptDatabase} for inspection (drop it when done)`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * `passed` says what the exit code says: no backup failed and none could not be checked.
 * A backup removed while the run went on (`skipped`) counts against neither.
 */
export function verifyJson(result: VerifyResult): { storage: string; passed: boolean; outcomes: VerifyOutcome[] } {
  return { storage: result.storage, passed: verifyExitCode(result) === ExitCode.OK, outcomes: result.outcomes };
}
