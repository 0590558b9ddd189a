import { durationValue, ratioValue } from '../parse.js';
import type { CommandSpec } from './spec.js';

export const status: CommandSpec = {
  name: 'status',
  summary: 'health for monitoring: newest backup and its age and size, verifications, failed runs; exit 5 when a check is broken',
  options: [
    { flags: '--max-age <duration>', description: 'unhealthy when the newest backup finished longer ago (or there is none), e.g. 25h', parse: durationValue },
    { flags: '--max-verify-age <duration>', description: 'unhealthy when no backup passed a restore-level verification within this time (a checksum pass does not count), e.g. 8d', parse: durationValue },
    { flags: '--min-size-ratio <ratio>', description: 'unhealthy when the newest backup is smaller than this fraction of the median of the previous 5, e.g. 0.5', parse: ratioValue },
    { flags: '--allow-failures', description: 'report failed runs since the last success without making the profile unhealthy' },
    { flags: '--prometheus <file>', description: 'also write node_exporter textfile metrics to FILE (atomically, mode 0644)', complete: 'file' },
  ],
  details: `Without --profile, every profile of the config and every profile in the storages is checked.
Checks (thresholds also come from a profile's "status" config; flags win):
  age           --max-age: the newest backup is older, or there is none
  size          --min-size-ratio: the newest backup is smaller than RATIO x the median of
                the previous (up to 5) backups taken with the same dump options
  verification  a backup's latest verification failed (always; until it passes again or
                is removed); with --max-verify-age, no backup passed one within that time
  artifacts     a backup's artifact or globals file is missing or of the wrong size (always)
  failures      a run failed after the last success (unless --allow-failures)
  clock         a backup is dated more than 5 min ahead of this host's clock (always);
                the checks above leave it out, so it cannot hide a stale profile
Durations: 25h, 8d, 1d12h, 90min, 30s (units w, d, h, min, s, ms).`,
  examples: [
    { command: 'backupctl status --max-age 25h' },
    { command: 'backupctl status --profile app --max-age 25h --max-verify-age 8d --min-size-ratio 0.5' },
    { command: "backupctl status --json | jq '.profiles[] | select(.healthy | not) | .problems'" },
    { command: 'backupctl status --max-age 25h --prometheus /var/lib/node_exporter/textfile_collector/backupctl.prom' },
  ],
  async run(ctx, _args, options) {
    return (await import('../status.js')).run(options as never, ctx);
  },
};
