/**
 * Pure formatting of sizes, durations, ages and times for human output.
 * No colors, no I/O, no clock: `now` is always passed in.
 */

import { formatBytes } from '../units.js';

export { formatBytes };

/** `850 ms`, `12.4 s`, `3m 05s`, `2h 03m`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  if (ms < 0) return `-${formatDuration(-ms)}`;
  const wholeMs = Math.round(ms);
  if (wholeMs < 1000) return `${wholeMs} ms`;
  const tenths = Math.round(ms / 100);
  if (tenths < 600) return `${(tenths / 10).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)}m ${String(seconds % 60).padStart(2, '0')}s`;
  }
  const minutes = Math.floor(seconds / 60);
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, '0')}m`;
}

/** `just now`, `45 s ago`, `5 min ago`, `3 h ago`, `2 d ago`; `in 5 min` for the future. */
export function formatAge(from: Date, now: Date): string {
  const diff = now.getTime() - from.getTime();
  if (Number.isNaN(diff)) return '?';
  const seconds = Math.floor(Math.abs(diff) / 1000);
  if (seconds < 5) return 'just now';
  let amount: string;
  if (seconds < 60) amount = `${seconds} s`;
  else if (seconds < 3600) amount = `${Math.floor(seconds / 60)} min`;
  else if (seconds < 86_400) amount = `${Math.floor(seconds / 3600)} h`;
  else amount = `${Math.floor(seconds / 86_400)} d`;
  return diff >= 0 ? `${amount} ago` : `in ${amount}`;
}

/** Average throughput: `45.2 MiB/s`; `-` when no time elapsed. */
export function formatRate(bytes: number, ms: number): string {
  if (!(ms > 0) || !Number.isFinite(bytes)) return '-';
  return `${formatBytes((bytes * 1000) / ms)}/s`;
}

/**
 * UTC, readable, sortable: `2026-11-23 14:05:09Z` (or `2026-11-23 14:05Z` without
 * seconds). Text that is not a valid time is returned unchanged.
 */
export function formatTimestamp(iso: string | Date, options: { seconds?: boolean } = {}): string {
  const date = typeof iso === 'string' ? new Date(iso) : iso;
  if (Number.isNaN(date.getTime())) return String(iso);
  const text = date.toISOString(); // 2026-11-23T14:05:09.000Z
  const end = options.seconds === false ? 16 : 19;
  return `${text.slice(0, 10)} ${text.slice(11, end)}Z`;
}

/** Integer with thousands separators: `1,234,567`. */
export function formatCount(n: number): string {
  // Not Intl.NumberFormat: setting ICU up costs ~5 ms of every run that prints a count.
  if (!Number.isFinite(n)) return String(n);
  const digits = String(Math.round(Math.abs(n)));
  return `${n < 0 && Math.round(n) !== 0 ? '-' : ''}${digits.replace(/\B(?=(\d{3})+$)/g, ',')}`;
}

/**
 * Makes text from outside (a sidecar read from storage, an error message) safe to print
 * on a terminal: control characters, which could move the cursor or change the title,
 * are shown escaped (`\x1b`). Newlines and tabs survive only with `keepNewlines`.
 */
export function sanitize(text: string, options: { keepNewlines?: boolean } = {}): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (ch) => {
    if (options.keepNewlines && (ch === '\n' || ch === '\t')) return ch;
    if (ch === '\n') return '\\n';
    if (ch === '\t') return '\\t';
    if (ch === '\r') return '\\r';
    return `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}
