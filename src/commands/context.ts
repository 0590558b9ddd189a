import type { LoadedConfigRef, GlobalFlags } from '../core/profile.js';
import type { Runtime } from '../core/runtime.js';
import type { Style } from '../output/style.js';

/** What every command gets from the CLI: parsed global flags, config, runtime. */
export interface CommandContext {
  runtime: Runtime;
  flags: GlobalFlags & { json: boolean; verbose: boolean; quiet: boolean };
  loadConfig(): Promise<LoadedConfigRef>;
  /** Asks the operator on a terminal; undefined without one (then destructive work needs --yes). */
  ask?: ((question: string) => Promise<string>) | undefined;
}

/**
 * What a command hands back: machine data for `--json` and a human rendering. The CLI
 * writes exactly one of them to stdout, then exits with `exitCode` (default 0).
 */
export interface CommandResult {
  json: unknown;
  human(style: Style, now: Date): string;
  exitCode?: number;
}
