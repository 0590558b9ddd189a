import type { CommandSpec } from './spec.js';

export const show: CommandSpec = {
  name: 'show',
  summary: "print one backup's metadata (its sidecar)",
  arguments: [{ syntax: '<id>', description: 'a backup id (or a unique prefix of it), or "latest"', complete: 'backup' }],
  options: [{ flags: '--tag <tag>', description: 'with "latest": the newest backup with this tag', complete: 'tag' }],
  examples: [
    { command: 'backupctl show latest' },
    { command: 'backupctl show latest --profile app --tag pre-migration' },
    { command: 'backupctl show latest --json' },
  ],
  async run(ctx, args, options) {
    return (await import('../show.js')).run(args[0] as string, options as never, ctx);
  },
};
