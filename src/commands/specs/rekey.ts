import { clockDuration, collect } from '../parse.js';
import { DECRYPT_OPTIONS, type CommandSpec } from './spec.js';

export const rekey: CommandSpec = {
  name: 'rekey',
  summary: 'change the age recipients of encrypted backups without re-encrypting them (the payload stays byte for byte)',
  arguments: [{ syntax: '[id...]', description: 'backup ids (a unique prefix will do), or "latest"; or --all', complete: 'backup' }],
  options: [
    { flags: '--all', description: 'every encrypted backup (of --profile, or of every profile)' },
    { flags: '--add-recipient <age1...>', description: 'a recipient (public key) to add (repeatable)', parse: collect },
    { flags: '--remove-recipient <key>', description: 'a recipient to drop: its age1... key, its fingerprint (x25519:sha256:..., as "show" prints it) or "passphrase" (repeatable)', parse: collect },
    { flags: '--recipients-file <file>', description: 'add the recipients listed in this file, one per line (repeatable)', parse: collect, complete: 'file' },
    ...DECRYPT_OPTIONS,
    { flags: '--dry-run', description: 'show what would change; change nothing' },
    { flags: '--wait <duration>', description: "if another run holds a profile's lock, wait up to this long instead of exiting 4", parse: clockDuration },
  ],
  details: `The file key in each backup's age header is unwrapped with an identity (--identity,
or the profile's encryption.identityFile) and wrapped again for the new set of
recipients: the current ones, minus --remove-recipient, plus --add-recipient and
--recipients-file. Sidecars record fingerprints, not keys, so a recipient that stays must
have its public key known here: in the profile's encryption.recipients or
recipientsFile, as an identity given, or added again. The rekeyed file is written under a new name, the sidecar is switched
to it atomically, then the old file is removed: an interrupted rekey leaves a readable
backup. The globals file is rekeyed with the artifact.

Rekeying cuts off a removed key for the new copy only: whoever kept the old file can still
read it with that key. After a key leaks, take new backups as well.`,
  examples: [
    {
      command: 'backupctl rekey 7f3e9a --passphrase-file /etc/backupctl/app.passphrase --remove-recipient passphrase --add-recipient "$(age-keygen -y /etc/backupctl/2025.key)"',
      comment: 'from a passphrase to a key',
    },
    { command: 'backupctl rekey latest --identity /etc/backupctl/2025.key --add-recipient age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p', comment: 'one more reader' },
    {
      command: 'backupctl rekey --all --profile app --identity /etc/backupctl/2025.key --recipients-file /etc/backupctl/2026.recipients --remove-recipient "$(age-keygen -y /etc/backupctl/2025.key)"',
      comment: 'rotate from the 2025 key to those of 2026',
    },
  ],
  async run(ctx, args, options) {
    return (await import('../rekey.js')).run(args[0] as string[], options as never, ctx);
  },
};
