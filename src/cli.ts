import { closestWord } from './closest.js';
import { Command, CommanderError, Option } from 'commander';
import type { CommandContext, CommandResult } from './commands/context.js';
import { COMMANDS } from './commands/specs/index.js';
import { ENVIRONMENT_HELP, EXIT_CODES_HELP, GLOBAL_OPTIONS, type CommandSpec, type OptionSpec } from './commands/specs/spec.js';
import { tmpdir } from 'node:os';
import { loadConfig } from './config/load.js';
import { resolveSettings } from './config/resolve.js';
import type { Runtime } from './core/runtime.js';
import { closeStorages } from './core/storages.js';
import { BackupctlError, ExitCode, InterruptedError } from './errors.js';
import { errorMessage, renderError, renderJson, safeText, writeJson } from './output/render.js';
import { askOnTerminal } from './output/ask.js';
import { createReporter } from './output/reporter.js';
import { createStyle, wantsColor } from './output/style.js';
import { describeWriterGone } from './platform/process.js';
import { beginRun, endRun, sweepDeadRuns } from './platform/run-dir.js';
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

type Dispatch = (spec: CommandSpec, args: unknown[], options: Record<string, unknown>) => Promise<void>;

function optionOf(spec: OptionSpec): Option {
  const option = new Option(spec.flags, spec.description);
  if (spec.parse) option.argParser(spec.parse as (value: string, previous: unknown) => unknown);
  if (spec.choices) option.choices([...spec.choices]);
  if (spec.default !== undefined) option.default(spec.default);
  if (spec.hidden) option.hideHelp();
  return option;
}

function examplesHelp(spec: CommandSpec): string {
  const width = Math.max(...spec.examples.map((e) => e.command.length));
  const lines = spec.examples.map((e) => `  $ ${e.comment ? `${e.command.padEnd(width)}   # ${e.comment}` : e.command}`);
  return `Examples:\n${lines.join('\n')}`;
}

/**
 * Commander's parse error (`error: unknown command 'lsit'` and a `(Did you mean list?)`
 * line) as our one-line message and a hint.
 */
function parseErrorText(text: string): { message: string; hint: string } {
  const [first = '', ...rest] = text.replace(/^error: /, '').trim().split('\n');
  const suggestion = rest.map((line) => line.trim().replace(/^\((.*)\)$/, '$1')).filter(Boolean).join(' ');
  return { message: first, hint: suggestion ? `${suggestion.replace(/^Did/, 'did')} (run with --help for usage)` : 'run with --help for usage' };
}

/** Builds the program from the command definitions (commands/specs/); each runs through `dispatch`. */
function buildProgram(io: CliIo, dispatch: Dispatch): Command {
  const program = new Command('backupctl')
    .description('PostgreSQL backups you can bet your company on: pg_dump with checksummed sidecars, verified by restore.')
    .version(VERSION, '-V, --version')
    // -h is pg_dump's --host: help is --help only.
    .helpOption('--help', 'show help')
    .helpCommand('help [command]', 'show help for a command')
    .configureHelp({ showGlobalOptions: true })
    .addHelpText('after', `\n${ENVIRONMENT_HELP}\n\n${EXIT_CODES_HELP}\n\nRun "backupctl <command> --help" for a command's options and examples.`)
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      // A parse error as every error is written: one `error:` line, then a `hint:` line.
      outputError: (text) => {
        const { message, hint } = parseErrorText(text);
        io.stderr.write(`error: ${message}\nhint: ${hint}\n`);
      },
    })
    .exitOverride();
  for (const option of GLOBAL_OPTIONS) program.addOption(optionOf(option));

  for (const spec of COMMANDS) {
    const command = program.command(spec.name).description(spec.summary);
    for (const alias of spec.aliases ?? []) command.alias(alias);
    for (const argument of spec.arguments ?? []) command.argument(argument.syntax, argument.description);
    for (const option of spec.options) command.addOption(optionOf(option));
    const help = [spec.details, examplesHelp(spec), EXIT_CODES_HELP].filter((part) => part !== undefined);
    command.addHelpText('after', `\n${help.join('\n\n')}`);
    command.action((...received: unknown[]) => {
      const self = received.at(-1) as Command;
      const options = { ...(received.at(-2) as Record<string, unknown>) };
      // A flag that was not given must leave the config in charge: drop commander's implied
      // defaults (--no-globals implies globals: true) unless the definition sets one.
      for (const option of spec.options) {
        const key = new Option(option.flags).attributeName();
        if (option.default === undefined && self.getOptionValueSource(key) === 'default') delete options[key];
      }
      return dispatch(spec, received.slice(0, -2), options);
    });
  }
  return program;
}

/** `--json` anywhere before `--`: known before commander has parsed anything (for its own errors). */
function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
}

/** The JSON document of a failed run, on stdout with --json: `{"error": {exitCode, message, hint}}`. */
function errorJson(exitCode: number, message: string, hint: string | undefined, details: readonly string[] = []): string {
  return renderJson({ error: { exitCode, message, ...(hint ? { hint } : {}), ...(details.length > 0 ? { details } : {}) } });
}

/**
 * Runs the CLI and returns the exit code. This is the one place where errors become
 * exit codes and where anything is written to stdout.
 */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode: number = ExitCode.OK;
  let globals: GlobalOptions = {};
  const json = wantsJson(argv);
  const styleFor = () =>
    createStyle({ color: wantsColor({ isTTY: io.stderr.isTTY === true, env: io.env, noColorFlag: globals.color === false }) });
  let reporter: ReturnType<typeof createReporter> | null = null;

  const dispatch: Dispatch = async (spec, args, options) => {
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
    const flags = {
      profile: globals.profile,
      storage: globals.storage,
      dbUrl: globals.dbUrl,
      json: globals.json === true,
      quiet: globals.quiet === true,
      verbose: globals.verbose === true,
    };
    const loaded = await loadConfig({ cwd: io.cwd, env: io.env, configPath: globals.config });
    const settings = resolveSettings({ loaded, flags, env: io.env, cwd: io.cwd });
    for (const note of settings.notes) reporter.info(note);
    // What runs killed before they could clean up left (a password file, scratch copies).
    for (const swept of await sweepDeadRuns([tmpdir(), settings.workDir])) reporter.debug(`removed ${swept.path}, left by a run that no longer exists (${describeWriterGone(swept.why, swept.pid)})`);
    const ctx: CommandContext = { runtime, flags, settings, ask: io.ask };
    let result: CommandResult;
    try {
      result = await spec.run(ctx, args, options);
    } finally {
      await closeStorages(runtime);
    }
    reporter.stop();
    exitCode = result.exitCode ?? ExitCode.OK;
    if (globals.json) await writeJson(io.stdout, result.json);
    else if (!(globals.quiet && exitCode === ExitCode.OK)) {
      // --quiet: nothing on stdout when the run succeeded (cron mails only failures).
      const stdoutStyle = createStyle({
        color: wantsColor({ isTTY: io.stdout.isTTY === true, env: io.env, noColorFlag: globals.color === false }),
      });
      const text = result.human(stdoutStyle, runtime.now());
      if (text) io.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    }
  };

  const program = buildProgram(io, dispatch);
  // Commander answers `backupctl <typo> --help` with the main help and exit 0: a script that
  // checks a command exists that way would be told yes.
  // So does `backupctl help <typo>` (commander would print the main help, exit 1).
  const first = commandWord(program, argv);
  const word = first === 'help' ? commandWord(program, argv.slice(argv.indexOf('help') + 1)) : argv.includes('--help') ? first : null;
  if (word !== null && !program.commands.some((c) => c.name() === word || c.aliases().includes(word))) {
    const message = `unknown command '${word}'`;
    const meant = closestWord(word, program.commands.flatMap((c) => [c.name(), ...c.aliases()]));
    const hint = meant === undefined ? 'run with --help for usage' : `did you mean ${meant}? (run with --help for usage)`;
    io.stderr.write(`error: ${message}\nhint: ${hint}\n`);
    if (json) io.stdout.write(errorJson(ExitCode.USAGE, message, hint));
    return ExitCode.USAGE;
  }
  beginRun();
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    await endRun();
    (reporter as ReturnType<typeof createReporter> | null)?.stop();
    if (error instanceof CommanderError) {
      // Help and --version end with code 0; every parse error is a usage error.
      if (error.exitCode === 0) return ExitCode.OK;
      if (json) {
        const { message, hint } = parseErrorText(error.message);
        io.stdout.write(errorJson(ExitCode.USAGE, message, hint));
      }
      return ExitCode.USAGE;
    }
    const code = error instanceof BackupctlError ? error.exitCode : ExitCode.FAILED;
    // --log-format json: the error that ends the run is a JSON line too (a log shipper reads every line).
    io.stderr.write(globals.logFormat === 'json' ? errorLogLine(error, code, io.now?.() ?? new Date()) : renderError(error, styleFor(), globals.verbose === true));
    if (json) {
      const known = error instanceof BackupctlError ? error : null;
      io.stdout.write(errorJson(code, errorMessage(error), known?.hint, known?.details));
    }
    return code;
  }
  await endRun();
  return exitCode;
}

/** The error that ends a run as one `--log-format json` line: level "error", the message, hint, details and exit code. */
function errorLogLine(error: unknown, exitCode: number, now: Date): string {
  const known = error instanceof BackupctlError ? error : null;
  const entry = {
    time: now.toISOString(),
    level: 'error',
    message: errorMessage(error),
    ...(known?.hint ? { hint: safeText(known.hint) } : {}),
    ...(known && known.details.length > 0 ? { details: known.details.map(safeText) } : {}),
    exitCode,
  };
  return `${JSON.stringify(entry)}\n`;
}

/** The first word of `argv` that is not a global option or its value (before `--`): the command, if any. */
function commandWord(program: Command, argv: readonly string[]): string | null {
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] as string;
    if (token === '--') return null;
    if (!token.startsWith('-') || token === '-') return token;
    if (token.includes('=')) continue;
    const option = program.options.find((o) => o.long === token || o.short === token);
    if (option && (option.required || option.optional)) i += 1;
  }
  return null;
}

/**
 * After SIGINT/SIGTERM, how long a run may take to stop cleanly before it is ended. Every
 * wait of the clean-up on a PostgreSQL server is bounded well inside it (pg/child.ts,
 * SnapshotSession.abort, the database lock's release), so that a server that stopped
 * answering still leaves no lock and no partial file behind; a storage that hangs may not.
 */
const STOP_GRACE_MS = 3_000;

/** The process entry point: real streams, real signals. */
export async function main(argv: readonly string[]): Promise<number> {
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupts += 1;
    if (interrupts > 1) process.exit(ExitCode.INTERRUPTED); // second Ctrl-C: leave now
    controller.abort(new InterruptedError(signal));
    // Children are stopped and partial files removed on the way out; should anything hang
    // (a read the kernel will not interrupt), leave anyway: what is left behind, the next
    // run removes (platform/run-dir.ts, core/scratch.ts), and children die with us (pg/child.ts).
    setTimeout(() => {
      process.stderr.write(`error: interrupted by ${signal}; stopping took longer than ${STOP_GRACE_MS} ms, exiting now\n`);
      process.exit(ExitCode.INTERRUPTED);
    }, STOP_GRACE_MS).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A reader that went away (`backupctl list | head`, `2>&1 | head -1`, a log shipper that
  // died) loses the rest of the output, nothing else: the run goes on to its end (its files,
  // lock, scratch databases and run log handled as always) and exits with its own code.
  // Unhandled, the EPIPE would kill the process mid-run and leave all of that behind.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
  try {
    const code = await run(argv, {
      env: process.env,
      cwd: process.cwd(),
      stdout: process.stdout,
      stderr: process.stderr,
      signal: controller.signal,
      ask: process.stdin.isTTY && process.stderr.isTTY ? (question: string) => askOnTerminal(question, { signal: controller.signal }) : undefined,
    });
    // Interrupted, the run has done its clean-up; what may still be pending is what it gave
    // up on (a drop or a connect on a server that stopped answering): leave once the output
    // is out, not when that ends.
    if (interrupts > 0) setImmediate(() => process.exit(code)).unref();
    return code;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
