import { clockDuration } from '../parse.js';
import type { CommandSpec } from './spec.js';

export const del: CommandSpec = {
  name: 'delete',
  aliases: ['rm'],
  summary: 'remove chosen backups (sidecar first, then artifact and globals), under the profile lock',
  arguments: [{ syntax: '<id...>', description: 'backup ids (a unique prefix of one, or of its last part, will do)', complete: 'backup' }],
  options: [
    { flags: '--force', description: 'also remove the newest good backup of a profile' },
    { flags: '--dry-run', description: 'show what would be removed; change nothing' },
    { flags: '--wait <duration>', description: "if another run holds a profile's lock, wait up to this long instead of exiting 4", parse: clockDuration },
  ],
  details: `Every id is found and checked before anything is removed. The newest good backup of a
profile (completed, its artifact present with the recorded size) is refused without
--force; a damaged one can always go. Each backup's sidecar goes first, so an interrupted
delete never leaves a sidecar pointing at nothing. Each profile's part is recorded in its
run log.`,
  examples: [
    { command: 'backupctl delete 1a2b3c --dry-run', comment: 'a unique prefix of the id' },
    { command: 'backupctl delete 1a2b3c 4d5e6f' },
    { command: "backupctl delete $(backupctl list --profile app --tag scratch --json | jq -r '.[].id')" },
  ],
  async run(ctx, args, options) {
    return (await import('../delete.js')).run(args[0] as string[], options as never, ctx);
  },
};
