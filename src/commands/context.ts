import type { ResolvedSettings } from '../config/resolve.js';
import type { Runtime } from '../core/runtime.js';
import type { Style } from '../output/style.js';

/** The global flags every command sees (after commander has parsed them). */
export interface GlobalFlags {
  profile?: string | undefined;
  storage?: string | undefined;
  dbUrl?: string | undefined;
  json: boolean;
  quiet: boolean;
  verbose: boolean;
}

/** What every command gets from the CLI: the run's settings (resolved once), its global flags, the runtime. */
export interface CommandContext {
  runtime: Runtime;
  flags: GlobalFlags;
  /** Config file + flags + environment + cwd, resolved once by the CLI (config/resolve.ts). */
  settings: ResolvedSettings;
  /** Asks the operator on a terminal; undefined without one (then destructive work needs --yes). */
  ask?: ((question: string) => Promise<string>) | undefined;
}

/**
 * What a command hands back: machine data for `--json` and a human rendering. The CLI
 * writes exactly one of them to stdout (nothing with --quiet when the run succeeded),
 * then exits with `exitCode` (default 0).
 */
export interface CommandResult {
  json: unknown;
  human(style: Style, now: Date): string;
  exitCode?: number;
}
