/**
 * The CLI's Reporter: progress and log lines on stderr (never stdout, which carries the
 * result). On a terminal, long phases show an ora spinner; elsewhere throttled plain
 * lines; with `logFormat: 'json'` one JSON object per line and no spinner.
 */
import type { Ora, default as oraFactory } from 'ora';
import type { Reporter } from '../core/runtime.js';
import { formatBytes, formatDuration, formatRate, sanitize } from './format.js';
import type { Style } from './style.js';

export interface ReporterOptions {
  stream: NodeJS.WritableStream & { isTTY?: boolean };
  style: Style;
  /** Suppresses info and progress; warnings always show. */
  quiet: boolean;
  /** Shows debug lines. */
  verbose: boolean;
  logFormat: 'text' | 'json';
  now?: () => Date;
}

export type CliReporter = Reporter & {
  /** Stops the spinner, if any (on exit and on error). Safe to call more than once. */
  stop(): void;
  /** Resolves once the spinner library is loaded (it loads lazily, only on a terminal). */
  ready(): Promise<void>;
};

/** Spinner text updates at most this often. */
export const SPINNER_UPDATE_MS = 100;
/** Without a terminal (and in JSON logs), a progress line at most this often per phase. */
export const PLAIN_PROGRESS_MS = 10_000;

type Level = 'info' | 'warn' | 'debug' | 'progress';

interface PhaseState {
  startedAt: number;
  /** When the last progress line (or spinner text) was written; the phase start at first. */
  lastEmit: number;
}

/**
 * A spinner needs a real terminal: cursor movement, and a known width. ora divides by
 * `columns` to count the lines to clear, so a pty that reports 0 columns (`script`, some
 * CI runners) would make it loop forever: such terminals get plain lines instead.
 */
function canSpin(stream: ReporterOptions['stream']): boolean {
  const tty = stream as { isTTY?: boolean; columns?: unknown; cursorTo?: unknown; clearLine?: unknown };
  return (
    tty.isTTY === true &&
    typeof tty.columns === 'number' &&
    tty.columns > 0 &&
    typeof tty.cursorTo === 'function' &&
    typeof tty.clearLine === 'function'
  );
}

export function createReporter(options: ReporterOptions): CliReporter {
  const { stream, style, quiet, verbose, logFormat } = options;
  const now = options.now ?? (() => new Date());
  const json = logFormat === 'json';
  const tty = !json && canSpin(stream);
  const phases = new Map<string, PhaseState>();
  let spinner: Ora | null = null;
  let spinnerPhase: string | null = null;
  // ora (and what it pulls in) is loaded only where a spinner can show: it is several
  // megabytes of memory a cron run or a pipe never needs.
  let ora: typeof oraFactory | null = null;
  const oraLoaded: Promise<void> =
    tty && !quiet
      ? import('ora').then(
          (module) => {
            ora = module.default;
          },
          () => undefined,
        )
      : Promise.resolve();

  /** Writes whole lines, keeping a running spinner below them. */
  const write = (text: string): void => {
    if (spinner?.isSpinning) {
      spinner.clear();
      stream.write(text);
      spinner.render();
    } else {
      stream.write(text);
    }
  };

  const emitJson = (level: Level, message: string, extra: { phase?: string; bytes?: number } = {}): void => {
    write(`${JSON.stringify({ time: now().toISOString(), level, message, ...extra })}\n`);
  };

  const text = (message: string): string => sanitize(message, { keepNewlines: true });

  const phaseState = (phase: string, at: number): PhaseState => {
    let state = phases.get(phase);
    if (state === undefined) {
      state = { startedAt: at, lastEmit: at };
      phases.set(phase, state);
    }
    return state;
  };

  const stopSpinner = (): void => {
    if (spinner !== null) {
      spinner.stop();
      spinner = null;
      spinnerPhase = null;
    }
  };

  const spinnerText = (phase: string, bytes: number, elapsed: number): string => {
    const rate = formatRate(bytes, elapsed);
    return `${text(phase)}: ${formatBytes(bytes)}${rate === '-' ? '' : ` (${rate})`}`;
  };

  return {
    info(message) {
      if (quiet) return;
      if (json) emitJson('info', message);
      else write(`${text(message)}\n`);
    },

    warn(message) {
      if (json) emitJson('warn', message);
      else write(`${style.warn('warning:')} ${text(message)}\n`);
    },

    debug(message) {
      if (!verbose) return;
      if (json) emitJson('debug', message);
      else write(`${style.dim(`debug: ${text(message)}`)}\n`);
    },

    progress(phase, bytes) {
      if (quiet) return;
      const at = now().getTime();
      const isNew = !phases.has(phase);
      const state = phaseState(phase, at);
      if (tty) {
        if (spinner === null || spinnerPhase !== phase) {
          if (ora === null) return; // still loading: the next update shows the spinner
          stopSpinner();
          spinner = ora({
            stream,
            isEnabled: true,
            // Raw-mode stdin would outlive a crash and swallow the operator's Ctrl+C handling.
            discardStdin: false,
            color: style.color ? 'cyan' : false,
            text: spinnerText(phase, bytes, 0),
          }).start();
          spinnerPhase = phase;
          state.lastEmit = at;
        } else if (at - state.lastEmit >= SPINNER_UPDATE_MS) {
          spinner.text = spinnerText(phase, bytes, at - state.startedAt);
          state.lastEmit = at;
        }
        return;
      }
      if (isNew || at - state.lastEmit < PLAIN_PROGRESS_MS) return;
      state.lastEmit = at;
      const message = `${phase}: ${formatBytes(bytes)}`;
      if (json) emitJson('progress', message, { phase, bytes });
      else write(`${text(message)}\n`);
    },

    progressDone(phase, bytes) {
      const at = now().getTime();
      const state = phases.get(phase);
      phases.delete(phase);
      if (spinnerPhase === phase) stopSpinner();
      if (quiet) return;
      const elapsed = state === undefined ? null : at - state.startedAt;
      const timing =
        elapsed === null
          ? ''
          : ` in ${formatDuration(elapsed)}${formatRate(bytes, elapsed) === '-' ? '' : ` (${formatRate(bytes, elapsed)})`}`;
      const message = `${phase}: done, ${formatBytes(bytes)}${timing}`;
      if (json) emitJson('info', message, { phase, bytes });
      else write(`${text(message)}\n`);
    },

    stop() {
      stopSpinner();
    },

    ready() {
      return oraLoaded;
    },
  };
}
