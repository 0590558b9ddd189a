import { clockDuration, collect, compressValue, formatValue, pgCompressValue, positiveInt, portValue, tagValue } from '../parse.js';
import type { CommandSpec } from './spec.js';

export const create: CommandSpec = {
  name: 'create',
  summary: 'take a backup: pg_dump on an exported snapshot, streamed with sha256 into storage, sidecar written last',
  options: [
    { flags: '-F, --format <format>', description: 'archive format: c|custom or d|directory (directory is implied by --jobs > 1)', parse: formatValue, complete: ['custom', 'directory'] },
    { flags: '-j, --jobs <n>', description: 'parallel pg_dump workers (directory format, stored as one tar)', parse: positiveInt(64) },
    { flags: '-Z, --compress <codec>', description: 'compression of the stored artifact: zstd (default, zstd:1-19), gzip[:1-9] or none', parse: compressValue, complete: ['zstd', 'gzip', 'none'] },
    { flags: '--pg-compress <level>', description: "pg_dump's own compression instead: 0-9, or METHOD[:LEVEL] with a PostgreSQL 16+ pg_dump", parse: pgCompressValue },
    { flags: '--recipient <age1...>', description: 'encrypt to this age recipient (public key), besides the profile\'s (repeatable)', parse: collect },
    { flags: '--recipients-file <file>', description: 'encrypt to the age recipients listed in this file (repeatable)', parse: collect, complete: 'file' },
    { flags: '--passphrase-file <file>', description: 'encrypt with the passphrase in this file (scrypt) instead of to recipients (not both: exit 2)', complete: 'file' },
    { flags: '-n, --schema <pattern>', description: 'dump only matching schemas (repeatable)', parse: collect },
    { flags: '-N, --exclude-schema <pattern>', description: 'skip matching schemas (repeatable)', parse: collect },
    { flags: '-t, --table <pattern>', description: 'dump only matching tables (repeatable)', parse: collect },
    { flags: '-T, --exclude-table <pattern>', description: 'skip matching tables (repeatable)', parse: collect },
    { flags: '-s, --schema-only', description: 'dump only the schema, no data' },
    { flags: '-a, --data-only', description: 'dump only the data, no schema' },
    { flags: '--tag <tag>', description: 'tag the backup (repeatable)', parse: tagValue, complete: 'tag' },
    { flags: '--note <text>', description: 'free text stored in the sidecar' },
    { flags: '--lock-wait-timeout <time>', description: 'fail instead of waiting longer for a table lock (e.g. 30s, 5min, 1500ms)' },
    { flags: '--no-globals', description: 'do not dump roles and tablespaces beside the database' },
    { flags: '--wait <duration>', description: "if another run holds the profile's or the database's lock, wait up to this long (e.g. 30s, 5min, 2h) instead of exiting 4", parse: clockDuration },
    { flags: '-d, --dbname <name|url>', description: 'database to back up: a name, or a postgres:// URL without a password' },
    { flags: '-h, --host <host>', description: 'server host or socket directory' },
    { flags: '-p, --port <port>', description: 'server port', parse: portValue },
    { flags: '-U, --username <user>', description: 'role to connect as' },
  ],
  details: `Connection: the command line (-d, -h, -p, -U, --db-url) wins over the profile's settings,
which win over the libpq environment (PGHOST, PGDATABASE...): a stray PGDATABASE in
cron's environment cannot redirect a configured profile. Without a config, the libpq
environment describes the database and the profile is named after it.

The dump streams through zstd (the zstd program, 2 threads) into <id>.dump.zst, and
through age when the profile names recipients (<id>.dump.zst.age): checksums of both the
archive and the stored bytes go to the sidecar. Restoring without backupctl:
  zstd -dc <id>.dump.zst | pg_restore -d <db>
  age -d -i key.txt <id>.dump.zst.age | zstd -dc | pg_restore -d <db>

A run holds the profile's lock (<storage>/<profile>/lock.json) and the database's
advisory lock; a second run exits 4 (busy), or waits with --wait.`,
  examples: [
    { command: 'PGHOST=db1 PGUSER=backup PGDATABASE=app backupctl create', comment: 'no config: the libpq environment' },
    { command: 'backupctl create --profile app --tag nightly' },
    { command: 'backupctl create --profile app --tag pre-migration --json', comment: 'CI: prints {"id": ...}' },
    { command: "backupctl create --profile app --jobs 4 --exclude-table 'public.audit_*'" },
    { command: "backupctl create -h db1 -p 5432 -U backup -d app -t 'public.orders*'" },
    { command: 'backupctl create --profile app --wait 30min', comment: 'queue behind a running backup' },
    { command: 'backupctl create --profile app --recipients-file /etc/backupctl/recipients.txt', comment: 'encrypted with age to the keys listed' },
    { command: 'backupctl create --profile app --compress zstd:9' },
  ],
  async run(ctx, _args, options) {
    return (await import('../create.js')).run(options as never, ctx);
  },
};
