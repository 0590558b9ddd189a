import { positiveInt, sinceValue } from '../parse.js';
import type { CommandSpec } from './spec.js';

export const list: CommandSpec = {
  name: 'list',
  aliases: ['ls'],
  summary: 'list completed backups, newest first, from their sidecars',
  options: [
    { flags: '--tag <tag>', description: 'only backups with this tag', complete: 'tag' },
    { flags: '--since <when>', description: 'only backups since a duration ago (36h, 7d) or a date (2026-11-01)', parse: sinceValue },
    { flags: '--limit <n>', description: 'at most this many backups', parse: positiveInt(1_000_000) },
    { flags: '--all', description: 'also show unfinished backups (an artifact without a sidecar)' },
    { flags: '--failed', description: 'list failed and interrupted runs from the run log instead (time, command, exit code, error)' },
  ],
  details: `Without --profile, every profile of the config and every profile found in the storages.
A backup whose artifact is missing or of the wrong size is flagged. A sidecar the storage
refuses to give (permission denied) is named on stderr and the rest is listed: exit 1.`,
  examples: [
    { command: 'backupctl list' },
    { command: 'backupctl list --profile app --since 7d' },
    { command: "backupctl list --json | jq -r '.[0].id'" },
    { command: 'backupctl list --failed --since 7d', comment: 'runs that failed, from <profile>/runs.jsonl' },
  ],
  async run(ctx, _args, options) {
    return (await import('../list.js')).run(options as never, ctx);
  },
};
