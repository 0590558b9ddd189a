import type { CheckResult } from '../core/check.js';
import { sanitize as t } from './format.js';
import type { Style } from './style.js';

/** One line per check (`ok` or `FAIL`, what, detail), a hint under a failure, a verdict per profile. */
export function renderCheck(result: CheckResult, style: Style): string {
  const lines: string[] = [];
  for (const profile of result.profiles) {
    lines.push(style.heading(`profile ${t(profile.profile)}`));
    const width = Math.max(...profile.checks.map((c) => c.check.length));
    for (const line of profile.checks) {
      lines.push(`  ${line.ok ? style.ok('ok  ') : style.error('FAIL')}  ${line.check.padEnd(width)}  ${t(line.detail)}`);
      if (!line.ok && line.hint) lines.push(`  ${' '.repeat(4 + 2 + width + 2)}${style.dim('hint:')} ${t(line.hint)}`);
    }
  }
  const failed = result.profiles.filter((p) => !p.ok).map((p) => p.profile);
  lines.push(failed.length === 0 ? style.ok(`all checks passed (${result.profiles.length} profile(s))`) : style.error(`FAILED: ${failed.map((p) => t(p)).join(', ')}`));
  return `${lines.join('\n')}\n`;
}

export function checkJson(result: CheckResult): unknown {
  return result;
}
