/**
 * Semantic colors for everything backupctl prints. This module and reporter.ts are the
 * only places that know about chalk; the rest of the code asks for `style.ok(...)`.
 * A private Chalk instance is built per style: the global chalk is never touched.
 */
import { Chalk, type ChalkInstance } from 'chalk';

export interface Style {
  /** Whether escape codes are emitted at all. */
  readonly color: boolean;
  ok(text: string): string;
  warn(text: string): string;
  error(text: string): string;
  dim(text: string): string;
  bold(text: string): string;
  /** Backup ids. */
  id(text: string): string;
  /** Section headings of `show` and the like. */
  heading(text: string): string;
}

export interface StyleOptions {
  color: boolean;
  /** chalk color level when color is on: 1 = 16 colors (default, all we use), 2 = 256, 3 = truecolor. */
  level?: 1 | 2 | 3;
}

export function createStyle(options: StyleOptions): Style {
  const c: ChalkInstance = new Chalk({ level: options.color ? (options.level ?? 1) : 0 });
  return {
    color: options.color,
    ok: (text) => c.green(text),
    warn: (text) => c.yellow(text),
    error: (text) => c.red(text),
    dim: (text) => c.dim(text),
    bold: (text) => c.bold(text),
    id: (text) => c.cyan(text),
    heading: (text) => c.bold.underline(text),
  };
}

/** A style that never emits escape codes (tests, JSON output, logs). */
export const plainStyle: Style = createStyle({ color: false });

export interface ColorContext {
  /** Whether the stream the text goes to is a terminal. */
  isTTY: boolean | undefined;
  env: Record<string, string | undefined>;
  /** `--no-color` was given. */
  noColorFlag: boolean;
}

/**
 * Whether to color a stream's output:
 * - `--no-color` always wins (the most specific request);
 * - `FORCE_COLOR` set to anything but '', '0' or 'false' turns color on, even when piped
 *   and even with NO_COLOR (as Node itself does);
 * - otherwise color needs a TTY and `NO_COLOR` unset or empty (https://no-color.org).
 */
export function wantsColor({ isTTY, env, noColorFlag }: ColorContext): boolean {
  if (noColorFlag) return false;
  const force = env.FORCE_COLOR;
  if (force !== undefined && force !== '' && force !== '0' && force.toLowerCase() !== 'false') return true;
  const noColor = env.NO_COLOR;
  if (noColor !== undefined && noColor !== '') return false;
  return isTTY === true;
}
