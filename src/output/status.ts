/**
 * Human and JSON renderings of `status` and `list --failed`. Text from the storage (run
 * log errors, ids) goes through `sanitize` before it reaches the terminal.
 */
import type { RunEntry } from '../catalog/runlog.js';
import type { FailedRunsResult } from '../core/runs.js';
import type { ProfileStatus, StatusResult } from '../core/status.js';
import { formatAge, formatBytes, formatDuration, formatTimestamp, sanitize as t } from './format.js';
import type { Style } from './style.js';
import { renderTable, type Column } from './table.js';

// ---------------------------------------------------------------------------------------
// status

const STATUS_COLUMNS: Column[] = [
  { header: 'PROFILE' },
  { header: 'LAST BACKUP' },
  { header: 'SIZE', align: 'right' },
  { header: 'VS PREVIOUS', align: 'right' },
  { header: 'LAST VERIFICATION' },
  { header: 'FAILED RUNS', align: 'right' },
  { header: 'STATUS' },
];

function lastBackupCell(p: ProfileStatus, style: Style, now: Date): string {
  if (!p.lastBackup) return style.dim('never');
  return `${formatTimestamp(p.lastBackup.finishedAt, { seconds: false })} (${formatAge(new Date(p.lastBackup.finishedAt), now)})`;
}

function ratioCell(p: ProfileStatus): string {
  if (!p.size || p.size.ratio === null) return '-';
  return `x${p.size.ratio.toFixed(2)}`;
}

function verificationCell(p: ProfileStatus, style: Style, now: Date): string {
  const v = p.lastVerification;
  if (!v) return style.dim('never');
  const text = `${v.result} ${v.level} ${formatAge(new Date(v.at), now)}`;
  const others = p.failedVerifications.filter((f) => f.backupId !== v.backupId).length;
  const more = others > 0 ? style.error(` (+${others} FAILED)`) : '';
  return (v.result === 'passed' ? style.ok(text) : style.error(text.replace(/^failed/, 'FAILED'))) + more;
}

function statusRow(p: ProfileStatus, style: Style, now: Date): string[] {
  return [
    t(p.profile),
    lastBackupCell(p, style, now),
    p.lastBackup ? formatBytes(p.lastBackup.bytes) : '-',
    ratioCell(p),
    verificationCell(p, style, now),
    p.failedRunsSinceSuccess === 0 ? '0' : style.warn(String(p.failedRunsSinceSuccess)),
    p.healthy ? style.ok('ok') : style.error('UNHEALTHY'),
  ];
}

export function renderStatus(result: StatusResult, style: Style, now: Date): string {
  const parts: string[] = [];
  if (result.profiles.length === 0) parts.push('No profiles with backups or runs.\n');
  else parts.push(renderTable(STATUS_COLUMNS, result.profiles.map((p) => statusRow(p, style, now)), style));
  const problems = [
    ...result.problems.map((message) => t(message)),
    ...result.profiles.flatMap((p) => p.problems.map((problem) => `${t(p.profile)}: ${t(problem.message)}`)),
  ];
  if (problems.length > 0) parts.push(`\n${problems.map((line) => `${style.error('✗')} ${line}`).join('\n')}\n`);
  const unhealthy = result.profiles.filter((p) => !p.healthy).length;
  const checked = `${result.profiles.length} profile${result.profiles.length === 1 ? '' : 's'} checked`;
  parts.push(
    result.healthy
      ? `\n${style.ok('healthy')}: ${checked}\n`
      : `\n${style.error('UNHEALTHY')}: ${unhealthy === 0 ? 'nothing to check' : `${unhealthy} of ${checked}`}\n`,
  );
  return parts.join('');
}

/** `status --json`: the result as it is, without the warnings (they went to stderr). */
export function statusJson(result: StatusResult): unknown {
  return {
    healthy: result.healthy,
    checkedAt: result.checkedAt,
    problems: result.problems,
    profiles: result.profiles,
  };
}

// ---------------------------------------------------------------------------------------
// list --failed

const RUN_COLUMNS: Column[] = [
  { header: 'FINISHED' },
  { header: 'PROFILE' },
  { header: 'COMMAND' },
  { header: 'RESULT' },
  { header: 'EXIT', align: 'right' },
  { header: 'DURATION', align: 'right' },
  { header: 'ERROR' },
];

function runRow(run: RunEntry, style: Style, now: Date): string[] {
  return [
    `${formatTimestamp(run.finishedAt, { seconds: true })} (${formatAge(new Date(run.finishedAt), now)})`,
    t(run.profile),
    t(run.command),
    run.result === 'interrupted' ? style.warn('interrupted') : style.error('failed'),
    String(run.exitCode),
    run.durationMs === undefined ? '-' : formatDuration(run.durationMs),
    run.error === undefined ? '-' : t(run.error),
  ];
}

export function renderFailedRuns(result: FailedRunsResult, style: Style, now: Date): string {
  if (result.runs.length === 0) return `No failed runs recorded in ${t(result.storage)}.\n`;
  return renderTable(RUN_COLUMNS, result.runs.map((run) => runRow(run, style, now)), style);
}

/** `list --failed --json`: an array of run log entries, newest first. */
export function failedRunsJson(result: FailedRunsResult): unknown {
  return result.runs;
}
