import { Command, CommanderError, Option } from 'commander';
import type { CommandContext, CommandResult } from './commands/context.js';
import { clockDuration, collect, compressValue, durationValue, keepCount, positiveInt, ratioValue, sinceValue, tagValue } from './commands/parse.js';
import { loadConfig } from './config/load.js';
import type { LoadedConfigRef } from './core/profile.js';
import type { Runtime } from './core/runtime.js';
import { BackupctlError, ExitCode, InterruptedError } from './errors.js';
import { renderError, renderJson } from './output/render.js';
import { createReporter } from './output/reporter.js';
import { createStyle, wantsColor } from './output/style.js';
import { VERSION } from './version.js';

/** Where the CLI reads and writes; the real process by default, captured in tests. */
export interface CliIo {
  env: Record<string, string | undefined>;
  cwd: string;
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  /** Aborted on SIGINT/SIGTERM. */
  signal: AbortSignal;
  now?: () => Date;
  /**
   * Asks the operator a question and returns the answer; absent when there is no
   * terminal to ask (cron, CI, pipes): destructive commands then need --yes.
   */
  ask?: (question: string) => Promise<string>;
}

const EXIT_CODES_HELP = `
Exit codes:
  0    success
  1    the operation failed (server unreachable, pg_dump failed, disk full, ...)
  2    usage or configuration error (bad flag or config, wrong password, missing database, no suitable pg_dump)
  3    verification failed: a backup is corrupt or does not match its sidecar
  4    busy: another run holds the lock of this profile
  5    status check failed (stale or unhealthy)
  130  interrupted (SIGINT/SIGTERM); partial files were removed`;

const ENVIRONMENT_HELP = `
Environment:
  BACKUPCTL_STORAGE, BACKUPCTL_CONFIG, BACKUPCTL_PROFILE   same as --storage, --config, --profile
  PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGPASSFILE PGSSLMODE, DATABASE_URL   libpq conventions
  NO_COLOR   disable colours`;

interface GlobalOptions {
  config?: string;
  profile?: string;
  storage?: string;
  dbUrl?: string;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  color?: boolean;
  logFormat?: 'text' | 'json';
}

type Loader = (ctx: CommandContext) => Promise<CommandResult>;

/** Builds the program. Each action lazy-imports its command module. */
function buildProgram(io: CliIo, dispatch: (loader: Loader) => Promise<void>): Command {
  const program = new Command('backupctl')
    .description('PostgreSQL backups you can bet your company on: pg_dump with checksummed sidecars, verified by restore.')
    .version(VERSION, '-V, --version')
    .option('-c, --config <file>', 'config file (default: search for backupctl.config.json, .backupctlrc*, package.json#backupctl)')
    .option('-p, --profile <name>', 'profile to use (default: the only one, or defaultProfile)')
    .option('-s, --storage <path|url>', 'where backups live (default: ./backups)')
    .option('--db-url <url>', 'database to back up, postgres://user@host:port/db (no password: use PGPASSWORD or ~/.pgpass)')
    .option('--json', 'print machine-readable JSON on stdout, and nothing else')
    .option('-q, --quiet', 'print only warnings and errors on stderr')
    .option('-v, --verbose', 'more detail, and the cause of errors')
    .option('--no-color', 'disable colours (NO_COLOR is honoured too)')
    .addOption(new Option('--log-format <format>', 'stderr log lines').choices(['text', 'json']).default('text'))
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', `${ENVIRONMENT_HELP}\n${EXIT_CODES_HELP}\n\nRun "backupctl <command> --help" for a command's options and examples.`)
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .exitOverride();

  program
    .command('create')
    .description('take a backup: pg_dump on an exported snapshot, streamed with sha256 into storage, sidecar written last')
    .addOption(new Option('--format <format>', 'archive format (directory is implied by --jobs > 1)').choices(['custom', 'directory']))
    .option('-j, --jobs <n>', 'parallel pg_dump workers (directory format, stored as one tar)', positiveInt(64))
    .option('-Z, --compress <level>', "pg_dump's compression: 0-9, or METHOD[:LEVEL] on PostgreSQL 16+ clients", compressValue)
    .option('-t, --tag <tag>', 'tag the backup (repeatable)', tagValue)
    .option('--note <text>', 'free text stored in the sidecar')
    .option('--schema-only', 'dump only the schema, no data')
    .option('--data-only', 'dump only the data, no schema')
    .option('-n, --schema <pattern>', 'dump only matching schemas (repeatable)', collect)
    .option('-N, --exclude-schema <pattern>', 'skip matching schemas (repeatable)', collect)
    .option('--table <pattern>', 'dump only matching tables (repeatable)', collect)
    .option('-T, --exclude-table <pattern>', 'skip matching tables (repeatable)', collect)
    .option('--lock-wait-timeout <time>', 'fail instead of waiting longer for a table lock (e.g. 30s, 5min, 1500ms)')
    .option('--no-globals', 'do not dump roles and tablespaces beside the database')
    .option('--wait <duration>', "if another run holds the profile's or the database's lock, wait up to this long (e.g. 30s, 5min, 2h) instead of exiting 4", clockDuration)
    .addHelpText(
      'after',
      `
A run holds the profile's lock (<storage>/<profile>/lock.json) and the database's
advisory lock; a second run exits 4 (busy), or waits with --wait.

Examples:
  $ PGHOST=db1 PGUSER=backup PGDATABASE=app backupctl create
  $ backupctl create --profile app --tag nightly
  $ backupctl create --tag pre-migration --json          # CI: prints {"id": ...}
  $ backupctl create --jobs 4 --exclude-table 'audit.*'
  $ backupctl create --profile app --wait 30min          # queue behind a running backup
${EXIT_CODES_HELP}`,
    )
    .action((options: Record<string, unknown>, command: Command) => {
      // commander defaults a lone --no-globals to true; "not given" must leave the profile's `globals` in charge.
      const { globals, ...rest } = options;
      const given = command.getOptionValueSource('globals') === 'default' ? rest : { ...rest, globals };
      return dispatch(async (ctx) => (await import('./commands/create.js')).run(given, ctx));
    });

  program
    .command('list')
    .alias('ls')
    .description('list completed backups, newest first, from their sidecars')
    .option('-t, --tag <tag>', 'only backups with this tag')
    .option('--since <when>', 'only backups since a duration ago (36h, 7d) or a date (2026-11-01)', sinceValue)
    .option('--limit <n>', 'at most this many backups', positiveInt(1_000_000))
    .option('-a, --all', 'also show unfinished backups (an artifact without a sidecar)')
    .option('--failed', 'list failed and interrupted runs from the run log instead (time, command, exit code, error)')
    .addHelpText(
      'after',
      `
Examples:
  $ backupctl list
  $ backupctl list --profile app --since 7d
  $ backupctl list --json | jq -r '.[0].id'
  $ backupctl list --failed --since 7d              # runs that failed, from <profile>/runs.jsonl
${EXIT_CODES_HELP}`,
    )
    .action((options: { tag?: string; since?: (now: Date) => Date; limit?: number; all?: boolean; failed?: boolean }) =>
      dispatch(async (ctx) =>
        (await import('./commands/list.js')).run(
          { ...options, since: options.since ? options.since(ctx.runtime.now()) : undefined },
          ctx,
        ),
      ),
    );

  program
    .command('show')
    .description("print one backup's metadata (its sidecar)")
    .argument('<id>', 'a backup id, or "latest"')
    .option('-t, --tag <tag>', 'with "latest": the newest backup with this tag')
    .addHelpText(
      'after',
      `
Examples:
  $ backupctl show latest
  $ backupctl show 20261123T140509Z-1a2b3c --json
  $ backupctl show latest --profile app --tag pre-migration
${EXIT_CODES_HELP}`,
    )
    .action((ref: string, options: { tag?: string }) =>
      dispatch(async (ctx) => (await import('./commands/show.js')).run(ref, options, ctx)),
    );

  program
    .command('verify')
    .description('prove backups: re-hash them, read them through, restore them into a throwaway database and compare row counts')
    .argument('[id]', 'a backup id, or "latest"')
    .option('-a, --all', 'verify every backup (of --profile, or of every profile)')
    .addOption(
      new Option('--level <level>', 'checksum: re-hash; archive: + read the archive to the end; restore: + restore and compare row counts')
        .choices(['checksum', 'archive', 'restore'])
        .default('restore'),
    )
    .option('-j, --jobs <n>', 'parallel pg_restore jobs for the restore level', positiveInt(64))
    .option('--keep', 'keep the throwaway database for inspection and print its name')
    .option('--verify-url <url>', 'restore on this server instead of the profile\'s (no password in it)')
    .option('-t, --tag <tag>', 'with "latest" or --all: only backups with this tag')
    .addHelpText(
      'after',
      `
Every run is recorded in the backup's sidecar; "list" shows the latest result.
The throwaway database is always dropped, on success, failure and Ctrl-C, unless --keep.

Examples:
  $ backupctl verify latest
  $ backupctl verify 20261123T140509Z-1a2b3c --level archive
  $ backupctl verify --all --profile app --level checksum
  $ backupctl verify latest --verify-url postgres://verify@scratch-db/postgres --jobs 4
${EXIT_CODES_HELP}`,
    )
    .action((ref: string | undefined, options: { all?: boolean; level: 'checksum' | 'archive' | 'restore'; jobs?: number; keep?: boolean; verifyUrl?: string; tag?: string }) =>
      dispatch(async (ctx) => (await import('./commands/verify.js')).run(ref, options, ctx)),
    );

  program
    .command('status')
    .description('health for monitoring: newest backup and its age and size, last verification, failed runs; exit 5 when a check is broken')
    .option('--max-age <duration>', 'unhealthy when the newest backup finished longer ago (or there is none), e.g. 25h', durationValue)
    .option('--max-verify-age <duration>', 'unhealthy when no backup passed a verification within this time, e.g. 8d', durationValue)
    .option('--min-size-ratio <ratio>', 'unhealthy when the newest backup is smaller than this fraction of the median of the previous 5, e.g. 0.5', ratioValue)
    .option('--allow-failures', 'report failed runs since the last success without making the profile unhealthy')
    .option('--prometheus <file>', 'also write node_exporter textfile metrics to FILE (atomically, mode 0644)')
    .addHelpText(
      'after',
      `
Without --profile, every profile of the config and every profile in the storage is checked.
Checks (thresholds also come from a profile's "status" config; flags win):
  age           --max-age: the newest backup is older, or there is none
  size          --min-size-ratio: the newest backup is smaller than RATIO x the median of
                the previous (up to 5) backups taken with the same dump options
  verification  the most recent verification failed (always); with --max-verify-age,
                no backup passed a verification within that time
  failures      a run failed after the last success (unless --allow-failures)
Durations: 25h, 8d, 1d12h, 90min, 30s (units w, d, h, min, s, ms).

Examples:
  $ backupctl status --max-age 25h
  $ backupctl status --profile app --max-age 25h --max-verify-age 8d --min-size-ratio 0.5
  $ backupctl status --json | jq '.profiles[] | select(.healthy | not) | .problems'
  $ backupctl status --max-age 25h --prometheus /var/lib/node_exporter/textfile_collector/backupctl.prom
${EXIT_CODES_HELP}`,
    )
    .action(
      (options: { maxAge?: string; maxVerifyAge?: string; minSizeRatio?: number; allowFailures?: boolean; prometheus?: string }) =>
        dispatch(async (ctx) => (await import('./commands/status.js')).run(options, ctx)),
    );

  program
    .command('prune')
    .description('apply the retention policy: remove the backups no rule keeps (and old unfinished leftovers)')
    .option('--keep-last <n>', 'keep the n newest backups', keepCount)
    .option('--keep-hourly <n>', 'keep the newest backup of each of the last n hours that have one (-1: unlimited)', keepCount)
    .option('--keep-daily <n>', 'keep the newest backup of each of the last n days that have one', keepCount)
    .option('--keep-weekly <n>', 'keep the newest backup of each of the last n ISO weeks that have one', keepCount)
    .option('--keep-monthly <n>', 'keep the newest backup of each of the last n months that have one', keepCount)
    .option('--keep-yearly <n>', 'keep the newest backup of each of the last n years that have one', keepCount)
    .option('--keep-within <duration>', 'keep every backup within this long before the NEWEST one (e.g. 14d, 2w, 6m = months, 1y6m, 36h, 90min)')
    .option('--keep-tag <tag>', 'keep every backup with this tag (repeatable)', tagValue)
    .option('--time-zone <zone>', 'IANA time zone of the hourly..yearly periods (default: UTC)')
    .option('-n, --dry-run', 'show what would be kept and removed, and why; change nothing')
    .option('--leftover-age <duration>', 'remove unfinished backups (an artifact without a sidecar) at least this old (default: 24h)', clockDuration)
    .option('--wait <duration>', "if another run holds the profile's lock, wait up to this long (e.g. 5min) instead of exiting 4", clockDuration)
    .addHelpText(
      'after',
      `
The policy comes from the profile's "retention" settings; each --keep-* flag (and
--time-zone) replaces the same setting. A backup is kept when any rule keeps it, and
the output names the rules. The newest backup and the newest verified backup are never
removed; an empty policy is refused. A backup's sidecar is removed first, then its files.
A real run holds the profile's lock (exit 4 when busy, or --wait); --dry-run takes no lock.

Examples:
  $ backupctl prune --profile app --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --dry-run
  $ backupctl prune --profile app                      # the policy of the config
  $ backupctl prune --keep-last 10 --keep-tag pre-migration --json
  $ backupctl prune --keep-within 30d --time-zone Europe/Berlin --wait 10min
${EXIT_CODES_HELP}`,
    )
    .action((options: Record<string, unknown>) =>
      dispatch(async (ctx) => (await import('./commands/prune.js')).run(options, ctx)),
    );

  program
    .command('unlock')
    .description("remove a profile's lock left behind by a run that died (e.g. on another host)")
    .option('--force', 'remove it even when its process is still running on this host')
    .addHelpText(
      'after',
      `
A lock from this host whose process is gone is taken over automatically; a lock from
another host is never guessed stale. Check that no backupctl runs there, then unlock.

Examples:
  $ backupctl unlock --profile app
  $ backupctl unlock --profile app --force
${EXIT_CODES_HELP}`,
    )
    .action((options: { force?: boolean }) =>
      dispatch(async (ctx) => (await import('./commands/unlock.js')).run(options, ctx)),
    );

  program
    .command('restore')
    .description('restore a backup safely: checksum first, staging database, row-count check, then an atomic swap')
    .argument('<id>', 'a backup id, or "latest"')
    .option('-d, --target-db <name>', "database to restore into (default: the backup's database)")
    .option('--target-url <url>', 'restore on this server instead of the profile\'s (no password in it)')
    .option('--create', 'create the target database when it does not exist')
    .option('--clean', 'replace a non-empty target (the old one is kept under a dated name unless --drop-old)')
    .option('--force', 'restore into a non-empty target as it is')
    .option('--drop-old', 'with --clean: drop the replaced database after the swap')
    .option('-y, --yes', 'do not ask before a destructive restore (required without a terminal)')
    .option('--dry-run', 'print the plan and change nothing')
    .option('--globals', 'create the roles and tablespaces of the backup first (existing ones are left as they are)')
    .option('-n, --schema <name>', 'restore only this schema (repeatable)', collect)
    .option('--table <name>', 'restore only this table (repeatable)', collect)
    .option('--no-owner', 'do not restore object ownership')
    .option('--no-acl', 'do not restore privileges (GRANT/REVOKE)')
    .option('-j, --jobs <n>', 'parallel pg_restore jobs', positiveInt(64))
    .option('-t, --tag <tag>', 'with "latest": the newest backup with this tag')
    .addHelpText(
      'after',
      `
Safe by default: the artifact's checksum is checked before any database is touched; a
non-empty target is refused unless --clean or --force; without a terminal, a destructive
restore needs --yes. --clean restores into a staging database, checks every table's row
count, then ends the target's sessions and swaps the names in one transaction: if
anything fails, the target is exactly as it was.

Examples:
  $ backupctl restore latest --target-db app_copy --create
  $ backupctl restore latest --dry-run
  $ backupctl restore 20261123T140509Z-1a2b3c --target-db app --clean --yes
  $ backupctl restore latest --tag pre-migration --clean --yes --jobs 4
${EXIT_CODES_HELP}`,
    )
    .action((ref: string, options: Record<string, unknown>) =>
      dispatch(async (ctx) => (await import('./commands/restore.js')).run(ref, options, ctx)),
    );

  return program;
}

/**
 * Runs the CLI and returns the exit code. This is the one place where errors become
 * exit codes and where anything is written to stdout.
 */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode: number = ExitCode.OK;
  let globals: GlobalOptions = {};
  const styleFor = () =>
    createStyle({ color: wantsColor({ isTTY: io.stderr.isTTY === true, env: io.env, noColorFlag: globals.color === false }) });
  let reporter: ReturnType<typeof createReporter> | null = null;

  const dispatch = async (loader: Loader): Promise<void> => {
    globals = program.opts<GlobalOptions>();
    const style = styleFor();
    reporter = createReporter({
      stream: io.stderr,
      style,
      quiet: globals.quiet === true,
      verbose: globals.verbose === true,
      logFormat: globals.logFormat ?? 'text',
      now: io.now,
    });
    const runtime: Runtime = {
      env: io.env,
      cwd: io.cwd,
      signal: io.signal,
      now: io.now ?? (() => new Date()),
      reporter,
    };
    let loaded: LoadedConfigRef | null = null;
    const ctx: CommandContext = {
      runtime,
      flags: {
        profile: globals.profile,
        storage: globals.storage,
        dbUrl: globals.dbUrl,
        json: globals.json === true,
        quiet: globals.quiet === true,
        verbose: globals.verbose === true,
      },
      loadConfig: async () => (loaded ??= await loadConfig({ cwd: io.cwd, env: io.env, configPath: globals.config })),
      ask: io.ask,
    };
    const result = await loader(ctx);
    reporter.stop();
    if (globals.json) io.stdout.write(renderJson(result.json));
    else {
      const stdoutStyle = createStyle({
        color: wantsColor({ isTTY: io.stdout.isTTY === true, env: io.env, noColorFlag: globals.color === false }),
      });
      const text = result.human(stdoutStyle, runtime.now());
      if (text) io.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    }
    exitCode = result.exitCode ?? ExitCode.OK;
  };

  const program = buildProgram(io, dispatch);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    (reporter as ReturnType<typeof createReporter> | null)?.stop();
    if (error instanceof CommanderError) {
      // Help and --version end with code 0; every parse error is a usage error.
      return error.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    }
    io.stderr.write(renderError(error, styleFor(), globals.verbose === true));
    return error instanceof BackupctlError ? error.exitCode : ExitCode.FAILED;
  }
  return exitCode;
}

/** A question on stderr, the answer from stdin (only used when both are a terminal). */
async function askOnTerminal(question: string): Promise<string> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return await rl.question(question);
  } finally {
    rl.close();
  }
}

/** The process entry point: real streams, real signals. */
export async function main(argv: readonly string[]): Promise<number> {
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupts += 1;
    if (interrupts > 1) process.exit(ExitCode.INTERRUPTED); // second Ctrl-C: leave now
    controller.abort(new InterruptedError(signal));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A closed stdout (`backupctl list | head`) is not an error worth a stack trace.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  });
  try {
    return await run(argv, {
      env: process.env,
      cwd: process.cwd(),
      stdout: process.stdout,
      stderr: process.stderr,
      signal: controller.signal,
      ask: process.stdin.isTTY && process.stderr.isTTY ? askOnTerminal : undefined,
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
