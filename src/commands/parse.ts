import { InvalidArgumentError } from 'commander';
import { parseFixedDuration } from '../config/duration.js';
import { COMPRESS_PATTERN, PG_COMPRESS_PATTERN, TAG_PATTERN } from '../config/values.js';
import { parseDuration } from '../retention/policy.js';

/** Option parsers for commander: they throw InvalidArgumentError, which the CLI maps to exit 2. */
export function positiveInt(max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isInteger(n) || n < 1 || n > max) {
      throw new InvalidArgumentError(`expected a whole number from 1 to ${max}`);
    }
    return n;
  };
}

/** `--compress`: a level 0-9, or pg_dump's METHOD[:LEVEL] (PostgreSQL 16+ clients). */
/** `--compress`: the artifact's compression stage. */
export function compressValue(value: string): string {
  if (COMPRESS_PATTERN.test(value)) return value;
  if (/^\d$/.test(value) || /^lz4/.test(value)) {
    throw new InvalidArgumentError(`expected zstd[:1-19], gzip[:1-9] or none; pg_dump's own compression is --pg-compress ${value}`);
  }
  throw new InvalidArgumentError('expected zstd (zstd:1 to zstd:19), gzip (gzip:1 to gzip:9) or none');
}

/** `--pg-compress`: pg_dump's own --compress value. */
export function pgCompressValue(value: string): number | string {
  if (/^\d$/.test(value)) return Number(value);
  if (PG_COMPRESS_PATTERN.test(value)) return value;
  throw new InvalidArgumentError('expected a level 0-9, or METHOD[:LEVEL] with METHOD none, gzip, lz4 or zstd');
}

export function tagValue(value: string, previous: string[] = []): string[] {
  if (!TAG_PATTERN.test(value)) {
    throw new InvalidArgumentError('tags start with a letter or digit and use letters, digits, "_", ".", ":" and "-" (64 at most)');
  }
  return [...previous, value];
}

export function collect(value: string, previous: string[] = []): string[] {
  if (value === '') throw new InvalidArgumentError('must not be empty');
  return [...previous, value];
}

/**
 * `--since`: a duration back from now (`90min`, `36h`, `7d`, `2w`; the fixed durations
 * of config/duration.ts) or a date/time (`2026-11-01`, `2026-11-01T12:00:00Z`). Returns a
 * function of `now` so tests can pin it.
 */
export function sinceValue(value: string): (now: Date) => Date {
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value)) {
    const date = new Date(value.length === 10 ? `${value}T00:00:00Z` : value);
    if (!Number.isNaN(date.getTime())) return () => date;
  }
  let ms: number;
  try {
    ms = parseFixedDuration(value);
  } catch (error) {
    throw new InvalidArgumentError(`${(error as Error).message}, or a date like 2026-11-01`);
  }
  return (now) => new Date(now.getTime() - ms);
}

/**
 * `--wait`, `--leftover-age`: a fixed duration such as `30s`, `5min`, `2h`, `1h30min`, `7d`
 * (see config/duration.ts; a bare `m` is refused, it means months in retention rules),
 * in milliseconds. `0` is accepted and means "no time at all".
 */
export function clockDuration(value: string): number {
  if (value.trim() === '0') return 0;
  try {
    return parseFixedDuration(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

/** `--keep-*` counts: a whole number >= 0, or -1 (or "unlimited") for no limit. */
export function keepCount(value: string): number {
  if (value === 'unlimited' || value === 'all') return -1;
  if (!/^(-1|\d{1,7})$/.test(value)) throw new InvalidArgumentError('expected a whole number >= 0, or -1 for unlimited');
  return Number(value);
}

/**
 * `--keep-tag` (repeatable), restic's syntax: one use is one tag group, its tags separated
 * by commas, and a backup matches the group when it carries ALL of them; the uses are
 * OR-ed. `--keep-tag a,b` keeps backups tagged a and b; `--keep-tag a --keep-tag b` keeps
 * backups tagged a or b. Spaces around tags are trimmed (as restic); an empty tag is
 * refused (restic reads `--keep-tag ''` as "untagged snapshots"; backupctl has no such
 * rule). Returns the groups so far plus this one, for RetentionPolicy.keepTags.
 */
export function keepTagValue(value: string, previous: string[][] = []): string[][] {
  const group = value.split(',').map((tag) => tag.trim());
  if (group.some((tag) => tag === '')) {
    throw new InvalidArgumentError('expected a tag, or several separated by commas (a,b: backups that carry both); a tag must not be empty');
  }
  const bad = group.find((tag) => !TAG_PATTERN.test(tag));
  if (bad !== undefined) {
    throw new InvalidArgumentError(
      `invalid tag ${JSON.stringify(bad)}: tags start with a letter or digit and use letters, digits, "_", ".", ":" and "-" (64 at most)`,
    );
  }
  return [...previous, group];
}

/**
 * `--keep-within`, `--keep-within-hourly` ... `--keep-within-yearly`: a retention duration
 * (retention/policy.ts parseDuration: y, m = months, w, d, h, min, in any order), checked
 * here so that a typo fails before anything is read, and kept as given (the policy holds
 * the text; describePolicy shows it).
 */
export function keepWithinValue(value: string): string {
  try {
    parseDuration(value);
  } catch (error) {
    // commander already quotes the value: drop parseDuration's own 'invalid duration "x": '.
    throw new InvalidArgumentError((error as Error).message.replace(/^invalid duration "(?:[^"\\]|\\.)*": /, ''));
  }
  return value;
}

/** `--max-age 25h`, `--max-verify-age 8d`: a fixed duration (see config/duration.ts), kept as given. */
export function durationValue(value: string): string {
  try {
    parseFixedDuration(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
  return value;
}

/** `--min-size-ratio 0.5`: a number from 0 to 1. */
export function ratioValue(value: string): number {
  const n = Number(value);
  if (!/^\d*\.?\d+$/.test(value) || !Number.isFinite(n) || n < 0 || n > 1) {
    throw new InvalidArgumentError('expected a number from 0 to 1, e.g. 0.5');
  }
  return n;
}

/** `-p, --port`: 1-65535. */
export function portValue(value: string): number {
  const n = Number(value);
  if (!/^\d{1,5}$/.test(value) || n < 1 || n > 65535) throw new InvalidArgumentError('expected a port number from 1 to 65535');
  return n;
}

/** `-F, --format`: pg_dump's letters or names (c, custom, d, directory). */
export function formatValue(value: string): 'custom' | 'directory' {
  if (value === 'c' || value === 'custom') return 'custom';
  if (value === 'd' || value === 'directory') return 'directory';
  throw new InvalidArgumentError('expected c|custom or d|directory (backupctl stores archives pg_restore can read; plain and tar are not offered)');
}
