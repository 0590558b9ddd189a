import type { CommandSpec } from './spec.js';

export const unlock: CommandSpec = {
  name: 'unlock',
  summary: "remove a profile's lock left behind by a run that died (e.g. on another host)",
  options: [{ flags: '--force', description: 'remove it even when its process is still running on this host' }],
  details: `A lock from this host whose process is gone is taken over automatically; a lock from
another host is never guessed stale. Check that no backupctl runs there, then unlock.`,
  examples: [{ command: 'backupctl unlock --profile app' }, { command: 'backupctl unlock --profile app --force' }],
  async run(ctx, _args, options) {
    return (await import('../unlock.js')).run(options as never, ctx);
  },
};
