import type { RestorePlan, RestoreResult } from '../core/restore.js';
import { describeLocale } from '../pg/locale.js';
import { formatBytes, formatDuration, formatTimestamp, sanitize as t } from './format.js';
import type { Style } from './style.js';
import { renderKeyValues } from './table.js';

function targetDescription(plan: RestorePlan): string {
  const s = plan.targetState;
  if (!s.exists) return 'does not exist';
  if (s.objects === 0) return `exists, empty${s.sessions ? `, ${s.sessions} session(s)` : ''}`;
  if (s.objects === null) return `exists, refuses connections (ALLOW_CONNECTIONS false): taken as not empty, ${s.sessions} session(s)`;
  return `exists, ${s.objects} objects, ${s.sessions} session(s)`;
}

/** The plan, as --dry-run prints it and as the confirmation shows it. */
export function renderRestorePlan(plan: RestorePlan, style: Style): string {
  const objects = Object.entries(plan.archive.objects)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([type, n]) => `${n} ${type.toLowerCase()}`)
    .join(', ');
  const lines = [
    style.heading(`Restore plan for ${plan.backup.profile}/${plan.backup.id}`),
    renderKeyValues(
      [
        ['backup', `${t(plan.backup.database)} taken ${formatTimestamp(plan.backup.createdAt)} (${formatBytes(plan.backup.bytes)})`],
        ['server', t(plan.server)],
        ['target', `"${t(plan.target)}": ${targetDescription(plan)}`],
        ['archive', `${plan.archive.entries} TOC entries: ${objects || 'none'}`],
        ['missing roles', plan.missing.roles.length ? style.warn(plan.missing.roles.map((x) => t(x)).join(', ')) : 'none'],
        ['missing extensions', plan.missing.extensions.length ? style.warn(plan.missing.extensions.map((x) => t(x)).join(', ')) : 'none'],
        ['missing tablespaces', plan.missing.tablespaces.length ? style.warn(plan.missing.tablespaces.map((x) => t(x)).join(', ')) : 'none'],
        ...(plan.databaseLocale
          ? [['staging database', `${plan.databaseLocale.from === 'target' ? "the target's" : "the backup's"} encoding and locale: ${t(plan.databaseLocale.encoding)}${plan.databaseLocale.locale ? `, ${t(describeLocale(plan.databaseLocale.locale))}` : ''}${plan.databaseLocale.differences.length ? ` (${plan.databaseLocale.differences.map((x) => t(x)).join(', ')}, as the target)` : ''}`] as [string, string]]
          : []),
        ['globals', plan.globals.requested ? (plan.globals.available ? `restore roles first: ${plan.globals.roles.map((x) => t(x)).join(', ') || 'none'}` : 'requested, but the backup has none') : 'not restored (--globals restores them)'],
      ],
      style,
    ).trimEnd(),
  ];
  if (plan.refusal) {
    lines.push(`${style.error('refused:')} ${t(plan.refusal)}`);
    if (plan.refusalHint) lines.push(`hint: ${t(plan.refusalHint)}`);
  } else {
    lines.push(plan.destructive ? style.warn('Steps (destructive):') : 'Steps:');
    plan.steps.forEach((step, i) => lines.push(`  ${i + 1}. ${t(step)}`));
  }
  return `${lines.join('\n')}\n`;
}

export function renderRestore(result: RestoreResult, style: Style): string {
  const plan = result.plan;
  const lines = [
    `${style.ok('Restored')} ${style.id(plan.backup.id)} into "${t(plan.target)}" on ${t(plan.server)} in ${formatDuration(result.durationMs)}` +
      (result.countsChecked ? ' (row counts match the backup)' : ''),
  ];
  for (const skipped of result.globalsSkipped) lines.push(`  ${t(skipped)} already existed and was left as it is`);
  if (result.oldKeptAs) {
    lines.push(`The previous "${t(plan.target)}" is kept as "${t(result.oldKeptAs)}".`);
    if (result.rollback) lines.push(`To roll back:        ${t(result.rollback)}`);
    if (result.dropOld) lines.push(`Once you are sure:   ${t(result.dropOld)}`);
  }
  return `${lines.join('\n')}\n`;
}

export function restoreJson(result: RestoreResult): Record<string, unknown> {
  return {
    id: result.plan.backup.id,
    target: result.plan.target,
    mode: result.plan.mode,
    durationMs: result.durationMs,
    oldKeptAs: result.oldKeptAs,
    countsChecked: result.countsChecked,
    globalsSkipped: result.globalsSkipped,
    rollback: result.rollback,
    dropOld: result.dropOld,
    plan: result.plan,
  };
}
