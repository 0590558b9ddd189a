import { positiveInt } from '../parse.js';
import { DECRYPT_OPTIONS, type CommandSpec } from './spec.js';

export const verify: CommandSpec = {
  name: 'verify',
  summary: 'prove backups: re-hash them, read them through, restore them into a throwaway database and compare row counts',
  arguments: [{ syntax: '[id]', description: 'a backup id (or a unique prefix of it), or "latest"', complete: 'backup' }],
  options: [
    { flags: '--all', description: 'verify every backup (of --profile, or of every profile)' },
    {
      flags: '--level <level>',
      description: 'checksum: re-hash; archive: + read the archive to the end; restore: + restore and compare row counts',
      choices: ['checksum', 'archive', 'restore'],
      default: 'restore',
      complete: ['checksum', 'archive', 'restore'],
    },
    { flags: '-j, --jobs <n>', description: 'parallel pg_restore jobs for the restore level', parse: positiveInt(64) },
    { flags: '--keep', description: 'keep the throwaway database for inspection and print its name' },
    { flags: '--verify-url <url>', description: "restore on this server instead of the profile's (no password in it): e.g. the next major version, before an upgrade" },
    { flags: '--tag <tag>', description: 'with "latest" or --all: only backups with this tag', complete: 'tag' },
    ...DECRYPT_OPTIONS,
  ],
  details: `Every run is recorded in the backup's sidecar and in the profile's run log; "list" and
"status" show the latest result. The throwaway database is always dropped, on success,
failure and Ctrl-C, unless --keep. Exit 3 only when a backup's own content is wrong; a
failing verify server, connection or environment is exit 1 and is not recorded as the
backup's verdict.

Upgrade rehearsal: --verify-url pointing at a server of the next major version proves
that last night's backup restores there (pg_restore must be as new as the dump, not as
the server).`,
  examples: [
    { command: 'backupctl verify latest' },
    { command: 'backupctl verify latest --level archive' },
    { command: 'backupctl verify --all --profile app --level checksum', comment: 'cheap daily check of every backup' },
    { command: 'backupctl verify latest --verify-url postgres://verify@scratch-db/postgres --jobs 4' },
  ],
  async run(ctx, args, options) {
    return (await import('../verify.js')).run(args[0] as string | undefined, options as never, ctx);
  },
};
