/**
 * node_exporter textfile-collector metrics of `status --prometheus FILE`: the text
 * exposition format, one gauge family per metric with HELP and TYPE lines, one series per
 * profile (label `profile`). A metric that has no value for a profile (no backup yet) is
 * left out for it, except the timestamps, which are 0 ("never"), so that an alert such as
 * `time() - backupctl_last_success_timestamp_seconds > 90000` also fires for a profile
 * that never had a backup.
 */
import type { ProfileStatus, StatusResult } from '../core/status.js';

interface Family {
  name: string;
  help: string;
  value(p: ProfileStatus): number | null;
}

const FAMILIES: Family[] = [
  {
    name: 'backupctl_last_success_timestamp_seconds',
    help: 'Unix time the newest completed backup finished (0: no backup).',
    value: (p) => (p.lastBackup ? Date.parse(p.lastBackup.finishedAt) / 1000 : 0),
  },
  {
    name: 'backupctl_last_backup_size_bytes',
    help: 'Stored size of the newest completed backup, in bytes.',
    value: (p) => p.lastBackup?.bytes ?? null,
  },
  {
    name: 'backupctl_last_backup_duration_seconds',
    help: 'How long the newest completed backup took, in seconds.',
    value: (p) => (p.lastBackup ? p.lastBackup.durationMs / 1000 : null),
  },
  {
    name: 'backupctl_last_verification_timestamp_seconds',
    help: 'Unix time of the most recent verification of any backup of the profile (0: never verified).',
    value: (p) => (p.lastVerification ? Date.parse(p.lastVerification.at) / 1000 : 0),
  },
  {
    name: 'backupctl_last_verification_success',
    help: 'Whether the most recent verification passed (1) or failed (0).',
    value: (p) => (p.lastVerification ? (p.lastVerification.result === 'passed' ? 1 : 0) : null),
  },
  {
    name: 'backupctl_failed_runs_since_success',
    help: 'Failed or interrupted runs since the last success of the same command.',
    value: (p) => p.failedRunsSinceSuccess,
  },
  {
    name: 'backupctl_uncopied_destinations',
    help: 'Destinations of the profile\'s copies that miss a backup its create run was to copy there (the copy failed, or the run was killed while copying).',
    value: (p) => new Set(p.uncopied.map((u) => u.to)).size,
  },
  {
    name: 'backupctl_uncopied_backups',
    help: 'Copies missing: (backup, destination) pairs a create run was to copy and no copy run has copied since (each counts until copied or the backup is gone).',
    value: (p) => p.uncopied.length,
  },
  {
    name: 'backupctl_stale_lock',
    help: 'Whether the profile lock was left by a run on this host whose process is gone (1: killed; the next run takes it over).',
    value: (p) => (p.staleLock ? 1 : 0),
  },
  {
    name: 'backupctl_blocking_lock',
    help: 'Whether the profile lock is unreadable or held longer than status allows (the max age, else 24 h): every run is skipped as busy (1) or not (0).',
    value: (p) => (p.blockingLock ? 1 : 0),
  },
  {
    name: 'backupctl_failed_verifications',
    help: 'Backups whose latest verification failed (each counts until it passes one or is removed).',
    value: (p) => p.failedVerifications.length,
  },
  {
    name: 'backupctl_damaged_backups',
    help: 'Backups whose artifact or globals file is missing or not of the recorded size, or whose sidecar cannot be read.',
    value: (p) => p.damaged.length,
  },
  {
    name: 'backupctl_backups_total',
    help: 'Completed backups in the storage.',
    value: (p) => p.backups,
  },
  {
    name: 'backupctl_status_healthy',
    help: 'Whether every status check of the profile passed (1) or one is broken (0).',
    value: (p) => (p.healthy ? 1 : 0),
  },
];

/** A label value with `\`, `"` and newlines escaped. */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function number(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? '+Inf' : '-Inf';
  return String(value);
}

export function renderPrometheus(result: StatusResult): string {
  const lines: string[] = [];
  for (const family of FAMILIES) {
    lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} gauge`);
    for (const profile of result.profiles) {
      const value = family.value(profile);
      if (value !== null) lines.push(`${family.name}{profile="${escapeLabel(profile.profile)}"} ${number(value)}`);
    }
  }
  lines.push(
    '# HELP backupctl_status_check_timestamp_seconds Unix time this file was written by backupctl status.',
    '# TYPE backupctl_status_check_timestamp_seconds gauge',
    `backupctl_status_check_timestamp_seconds ${number(Date.parse(result.checkedAt) / 1000)}`,
  );
  return `${lines.join('\n')}\n`;
}
