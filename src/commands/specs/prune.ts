import { clockDuration, keepCount, keepTagValue, keepWithinValue } from '../parse.js';
import type { CommandSpec } from './spec.js';

export const prune: CommandSpec = {
  name: 'prune',
  summary: 'apply the retention policy: remove the backups no rule keeps (and old unfinished leftovers)',
  options: [
    { flags: '--keep-last <n>', description: 'keep the n newest backups', parse: keepCount },
    { flags: '--keep-hourly <n>', description: 'keep the newest backup of each of the last n hours that have one (-1: unlimited)', parse: keepCount },
    { flags: '--keep-daily <n>', description: 'keep the newest backup of each of the last n days that have one', parse: keepCount },
    { flags: '--keep-weekly <n>', description: 'keep the newest backup of each of the last n ISO weeks that have one', parse: keepCount },
    { flags: '--keep-monthly <n>', description: 'keep the newest backup of each of the last n months that have one', parse: keepCount },
    { flags: '--keep-yearly <n>', description: 'keep the newest backup of each of the last n years that have one', parse: keepCount },
    { flags: '--keep-within <duration>', description: 'keep every backup within this long before the NEWEST one (e.g. 14d, 2w, 6m = months, 1y6m, 36h, 90min)' },
    { flags: '--keep-within-hourly <duration>', description: 'keep the newest backup of each hour within this long before the NEWEST backup (e.g. 2d)', parse: keepWithinValue },
    { flags: '--keep-within-daily <duration>', description: 'keep the newest backup of each day within this long before the NEWEST backup (e.g. 30d)', parse: keepWithinValue },
    { flags: '--keep-within-weekly <duration>', description: 'keep the newest backup of each ISO week within this long before the NEWEST backup (e.g. 6m = months)', parse: keepWithinValue },
    { flags: '--keep-within-monthly <duration>', description: 'keep the newest backup of each month within this long before the NEWEST backup (e.g. 2y)', parse: keepWithinValue },
    { flags: '--keep-within-yearly <duration>', description: 'keep the newest backup of each year within this long before the NEWEST backup (e.g. 10y)', parse: keepWithinValue },
    { flags: '--keep-tag <tags>', description: 'keep backups that carry ALL of these comma-separated tags (repeatable: any of the groups)', parse: keepTagValue, complete: 'tag' },
    { flags: '--time-zone <zone>', description: 'IANA time zone of the hourly..yearly periods (default: UTC)' },
    { flags: '--dry-run', description: 'show what would be kept and removed, and why; change nothing' },
    { flags: '--leftover-age <duration>', description: 'remove unfinished backups (an artifact without a sidecar) at least this old (default: 24h)', parse: clockDuration },
    { flags: '--wait <duration>', description: "if another run holds the profile's lock, wait up to this long (e.g. 5min) instead of exiting 4", parse: clockDuration },
  ],
  details: `The policy comes from the profile's "retention" settings; each --keep-* flag (and
--time-zone) replaces the same setting. A backup is kept when any rule keeps it, and
the output names the rules. The newest backup and the newest verified backup are never
removed; a backup whose artifact is missing or damaged is never counted as good; an empty
policy is refused. A backup's sidecar is removed first, then its files. A real run holds
the profile's lock (exit 4 when busy, or --wait); --dry-run takes no lock.`,
  examples: [
    { command: 'backupctl prune --profile app --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --dry-run' },
    { command: 'backupctl prune --profile app', comment: 'the policy of the config' },
    { command: 'backupctl prune --profile app --keep-last 10 --keep-tag pre-migration --json' },
    { command: 'backupctl prune --profile app --keep-within 30d --time-zone Europe/Berlin --wait 10min' },
    { command: 'backupctl prune --profile app --keep-within-daily 7d --keep-within-weekly 2m --keep-within-monthly 1y --dry-run', comment: "restic's --keep-within-*" },
    { command: 'backupctl prune --profile app --keep-last 3 --keep-tag release,production --dry-run', comment: 'tagged release AND production' },
  ],
  async run(ctx, _args, options) {
    return (await import('../prune.js')).run(options as never, ctx);
  },
};
