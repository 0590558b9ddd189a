import type { CommandContext, CommandResult } from '../context.js';

/**
 * Commands are declared, not wired by hand: each is one typed definition (its arguments,
 * options, help and examples) from which the CLI builds commander's program, shell
 * completion builds its scripts, and a test runs every example against a real server.
 * The implementation is imported only when the command runs.
 */

/** What shell completion offers for a value. */
export type Completion = 'profile' | 'backup' | 'file' | 'directory' | 'tag' | readonly string[];

export interface OptionSpec {
  /** commander syntax: `-t, --table <pattern>`, `--no-globals`, `--level <level>`. */
  flags: string;
  description: string;
  // `never`: any parser fits, whatever it accumulates (commander passes back what it returned).
  parse?: (value: string, previous: never) => unknown;
  choices?: readonly string[];
  default?: unknown;
  complete?: Completion;
  /** Left out of --help (plumbing for shell completion). */
  hidden?: boolean;
}

export interface ArgumentSpec {
  /** e.g. `<id>`, `[id]`, `<id...>` */
  syntax: string;
  description: string;
  complete?: Completion;
}

export interface Example {
  /** A whole command line, as an operator types it. */
  command: string;
  comment?: string;
}

export interface CommandSpec {
  name: string;
  aliases?: readonly string[];
  summary: string;
  arguments?: readonly ArgumentSpec[];
  options: readonly OptionSpec[];
  /** Help text between the options and the examples. */
  details?: string;
  examples: readonly Example[];
  /** Does the work: imports the implementation and calls it. `args` are the positionals. */
  run(ctx: CommandContext, args: unknown[], options: Record<string, unknown>): Promise<CommandResult>;
}

/** Options that every command accepts (commander's program options). */
export const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  { flags: '--config <file>', description: 'config file (default: search for backupctl.config.json, .backupctlrc*, package.json#backupctl)', complete: 'file' },
  { flags: '--profile <name>', description: 'profile to use (default: defaultProfile, or the only one)', complete: 'profile' },
  { flags: '--storage <path|url>', description: "where backups live (default: the config's storage, else BACKUPCTL_STORAGE, else ./backups)", complete: 'directory' },
  { flags: '--db-url <url>', description: 'database to back up, postgres://user@host:port/db (no password: use PGPASSWORD or ~/.pgpass); verify restores on its server unless --verify-url or the profile\'s verify.server' },
  { flags: '--json', description: 'print one JSON document on stdout (also on failure), and nothing else' },
  { flags: '--quiet', description: 'nothing on stdout when the run succeeds; only warnings and errors on stderr' },
  { flags: '-v, --verbose', description: 'more detail, and the cause of errors' },
  { flags: '--no-color', description: 'disable colours (NO_COLOR is honoured too)' },
  { flags: '--log-format <format>', description: 'stderr log lines: text or json', choices: ['text', 'json'], default: 'text' },
];

/** The key material of commands that read encrypted backups (verify, restore, copy, rekey). */
export const DECRYPT_OPTIONS: readonly OptionSpec[] = [
  { flags: '--identity <file>', description: "an age identity file to decrypt with, besides the profile's encryption.identityFile (repeatable)", parse: (value: string, previous: never) => [...((previous as string[] | undefined) ?? []), value], complete: 'file' },
  { flags: '--passphrase-file <file>', description: 'a file holding the passphrase of passphrase-encrypted backups', complete: 'file' },
];

export const EXIT_CODES_HELP = `Exit codes:
  0    success
  1    the operation failed (server unreachable, pg_dump failed, disk full, a storage that refuses a read or write, ...)
  2    usage or configuration error (bad flag or config, unknown profile or id, wrong password, missing database, no suitable pg_dump)
  3    verification failed: a backup is corrupt or does not match its sidecar (never a storage that refused to read it: 1)
  4    busy: another run holds the lock of this profile (restore: of the target database)
  5    status or check found a problem (stale, unhealthy, not ready)
  130  interrupted (SIGINT/SIGTERM); what the run had begun was undone`;

export const ENVIRONMENT_HELP = `Environment:
  BACKUPCTL_CONFIG, BACKUPCTL_PROFILE   same as --config, --profile
  BACKUPCTL_STORAGE                     the storage when the config names none (--storage wins over both)
  PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGPASSFILE PGSSLMODE, DATABASE_URL
                                        libpq conventions; they fill what the profile leaves unset
  AWS_ACCESS_KEY_ID, AWS_PROFILE, ...   s3:// credentials (the AWS chain); AWS_ENDPOINT_URL_S3
  AZURE_STORAGE_CONNECTION_STRING       azblob:// credentials (or AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN)
  SSH_AUTH_SOCK                         sftp:// keys from the agent (else ~/.ssh/id_*)
  NO_COLOR                              disable colours`;
