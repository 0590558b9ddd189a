import { clockDuration } from '../parse.js';
import type { CommandSpec } from './spec.js';

export const copy: CommandSpec = {
  name: 'copy',
  summary: 'copy backups to another storage (3-2-1), checked at the destination, sidecar written last',
  arguments: [{ syntax: '[id...]', description: 'backup ids (a unique prefix will do), or "latest"; or --all', complete: 'backup' }],
  options: [
    { flags: '--to <path|url>', description: 'the destination storage: a directory or a URL (s3://, azblob://, sftp://)', complete: 'directory' },
    { flags: '--all', description: 'every backup in scope (of --profile, or of every profile); those already there are skipped' },
    { flags: '--dry-run', description: 'show what would be copied; change nothing' },
    { flags: '--wait <duration>', description: "if another run holds the destination profile's lock, wait up to this long instead of exiting 4", parse: clockDuration },
  ],
  details: `The stored bytes are copied as they are (compressed and encrypted: no key is needed),
each file checked against its sidecar on the way and read back at the destination; the
sidecar is written there last, under the destination profile's lock. A backup already at
the destination is skipped; one with the same id and other bytes is refused. A profile's
"copies" setting does this after every create: a failed copy is a warning and a failed run
in the run log (and in "status"), never a failed backup.`,
  examples: [
    { command: 'backupctl copy latest --profile app --to /mnt/offsite/backups' },
    { command: 'backupctl copy --all --profile app --to /mnt/offsite/backups', comment: 'catch up: only what is missing there' },
    { command: 'backupctl copy latest --profile app --to /mnt/offsite/backups --dry-run --json' },
  ],
  async run(ctx, args, options) {
    return (await import('../copy.js')).run(args[0] as string[], options as never, ctx);
  },
};
