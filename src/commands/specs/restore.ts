import { collect, positiveInt, portValue } from '../parse.js';
import { DECRYPT_OPTIONS, type CommandSpec } from './spec.js';

export const restore: CommandSpec = {
  name: 'restore',
  summary: 'restore a backup safely: checksum first, staging database, row-count check, then an atomic swap',
  arguments: [{ syntax: '<id>', description: 'a backup id (or a unique prefix of it), or "latest"', complete: 'backup' }],
  options: [
    { flags: '-d, --target-db <name>', description: "database to restore into (default: the backup's database)" },
    { flags: '--target-url <url>', description: "restore on this server instead of the profile's; the database it names is the target unless -d (no password in it)" },
    { flags: '-h, --host <host>', description: 'target server host (overrides the profile\'s and --target-url\'s)' },
    { flags: '-p, --port <port>', description: 'target server port', parse: portValue },
    { flags: '-U, --username <user>', description: 'role to restore as' },
    { flags: '-C, --create', description: 'create the target database when it does not exist' },
    { flags: '-c, --clean', description: 'replace a non-empty target (the old one is kept under a dated name unless --drop-old)' },
    { flags: '--force', description: 'restore into a non-empty target as it is' },
    { flags: '--drop-old', description: 'with --clean: drop the replaced database after the swap' },
    { flags: '--yes', description: 'do not ask before a destructive restore (required without a terminal)' },
    { flags: '--dry-run', description: 'print the plan and change nothing' },
    { flags: '--globals', description: 'create the roles and tablespaces of the backup first (existing ones are left as they are)' },
    { flags: '-n, --schema <name>', description: 'restore only this schema (repeatable)', parse: collect },
    { flags: '-t, --table <name>', description: 'restore only this table (repeatable)', parse: collect },
    { flags: '-O, --no-owner', description: 'do not restore object ownership' },
    { flags: '-x, --no-acl', description: 'do not restore privileges (GRANT/REVOKE)' },
    { flags: '--no-tablespaces', description: "put everything in the target's default tablespace (a restore that needs tablespaces the server lacks is refused without it)" },
    { flags: '-j, --jobs <n>', description: 'parallel pg_restore jobs', parse: positiveInt(64) },
    { flags: '--tag <tag>', description: 'with "latest": the newest backup with this tag', complete: 'tag' },
    ...DECRYPT_OPTIONS,
  ],
  details: `Safe by default: the artifact's checksum is checked before any database is touched; a
non-empty target is refused unless --clean or --force; without a terminal, a destructive
restore needs --yes. --clean restores into a staging database, checks every table's row
count, then ends the target's sessions and swaps the names in one transaction: if
anything fails, the target is exactly as it was.`,
  examples: [
    { command: 'backupctl restore latest --target-db app_copy --create', comment: 'a copy next to production' },
    { command: 'backupctl restore latest --clean --dry-run', comment: 'the plan; exit 2 if the real run would be refused' },
    { command: 'backupctl restore latest --target-db app --clean --yes', comment: 'replace; the old one is kept' },
    { command: 'backupctl restore latest --tag pre-migration --target-db app --clean --yes --jobs 4' },
    { command: 'backupctl restore latest -d app_orders -C -t orders -O -x' },
    { command: 'backupctl restore latest --target-url postgres://admin@staging-db:5432/app_staging --create', comment: 'a copy on another server; the URL names the database' },
  ],
  async run(ctx, args, options) {
    return (await import('../restore.js')).run(args[0] as string, options as never, ctx);
  },
};
