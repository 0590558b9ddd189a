/**
 * The retention policy: which backups to keep, as a pure function of the backup list,
 * the policy and the current time (restic `forget` semantics, see below).
 *
 * - Backups are sorted newest first; equal timestamps are ordered by id, descending.
 * - Only `completed` backups take part in the rules. Every other candidate is kept with
 *   the reason 'not-completed' (prune deals with leftovers separately) and never uses up
 *   a rule's count.
 * - keep-last N keeps the N newest backups. keep-hourly/daily/weekly/monthly/yearly N walk
 *   from newest to oldest and keep a backup when its period (local calendar fields in
 *   `timeZone`, ISO weeks for weekly) differs from the period of the previous backup kept
 *   by that rule, i.e. the newest backup of each of the N most recent periods that have a
 *   backup. N = -1 means unlimited. As in restic >= 0.15, a rule that still has count left
 *   when the walk reaches the oldest backup keeps that oldest backup too.
 * - keep-within D keeps every backup made less than D before the NEWEST backup (not before
 *   `now`), so a schedule that stalled never wipes out history. Years, months, weeks and
 *   days are calendar steps in `timeZone`; hours and minutes are absolute.
 * - keep-tags keeps every backup that has ANY of the tags.
 * - Safety rules, always on: the newest completed backup ('newest-successful'), the newest
 *   completed and verified backup ('newest-verified') and every backup dated after `now`
 *   ('future') are kept.
 *
 * Future-dated backups (clock skew) are always kept, but they do not use up a counting
 * rule, do not anchor keep-within and are not "the newest" for the safety rules, so a
 * skewed clock cannot push real backups out of the kept set. A backup kept by several
 * rules lists all of them, in the order of KEEP_REASONS.
 */
import { usageError } from '../errors.js';
import { isValidTimeZone, localFields, periodKey, subtractCalendar, type LocalFields, type PeriodKind } from './periods.js';

export interface RetentionCandidate {
  id: string;
  createdAt: Date;
  tags: string[];
  status: 'completed' | 'failed' | 'incomplete';
  verified: boolean;
}

export interface RetentionPolicy {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  /** A duration such as '7d', '36h', '2w', '1y6m', '90min' (see parseDuration; `m` is months). */
  keepWithin?: string;
  keepTags?: string[];
  /** IANA time zone for calendar periods; default 'UTC'. */
  timeZone?: string;
}

export type KeepReason =
  | 'last'
  | 'hourly'
  | 'daily'
  | 'weekly'
  | 'monthly'
  | 'yearly'
  | 'within'
  | 'tag'
  | 'newest-successful'
  | 'newest-verified'
  | 'future'
  | 'not-completed';

/** Every reason, in the order a decision lists them. */
export const KEEP_REASONS: readonly KeepReason[] = [
  'last',
  'hourly',
  'daily',
  'weekly',
  'monthly',
  'yearly',
  'within',
  'tag',
  'newest-successful',
  'newest-verified',
  'future',
  'not-completed',
];

export interface RetentionDecision {
  id: string;
  createdAt: Date;
  action: 'keep' | 'remove';
  /** Why the backup is kept; empty for 'remove'. */
  reasons: KeepReason[];
}

export interface ParsedDuration {
  years: number;
  months: number;
  days: number;
  hours: number;
  minutes: number;
}

type CountKey = 'keepLast' | 'keepHourly' | 'keepDaily' | 'keepWeekly' | 'keepMonthly' | 'keepYearly';

const COUNT_RULES: readonly { key: CountKey; flag: string; reason: KeepReason; period: PeriodKind | null }[] = [
  { key: 'keepLast', flag: 'keep-last', reason: 'last', period: null },
  { key: 'keepHourly', flag: 'keep-hourly', reason: 'hourly', period: 'hourly' },
  { key: 'keepDaily', flag: 'keep-daily', reason: 'daily', period: 'daily' },
  { key: 'keepWeekly', flag: 'keep-weekly', reason: 'weekly', period: 'weekly' },
  { key: 'keepMonthly', flag: 'keep-monthly', reason: 'monthly', period: 'monthly' },
  { key: 'keepYearly', flag: 'keep-yearly', reason: 'yearly', period: 'yearly' },
];

const KNOWN_KEYS = new Set<string>([...COUNT_RULES.map((r) => r.key), 'keepWithin', 'keepTags', 'timeZone']);

// ---------------------------------------------------------------------------------------
// Durations

const UNIT_HELP =
  'use a number followed by a unit: y (years), m or mo (months), w (weeks), d (days), h (hours), ' +
  'min (minutes), e.g. "1y5m7d2h" or "90min"; as in restic, m means months';

const MAX_DURATION_PART = 1_000_000;

type DurationUnit = 'y' | 'mo' | 'w' | 'd' | 'h' | 'min';
const UNIT_RANK: Record<DurationUnit, number> = { y: 0, mo: 1, w: 2, d: 3, h: 4, min: 5 };
const UNIT_NAME: Record<DurationUnit, string> = {
  y: 'years',
  mo: 'months',
  w: 'weeks',
  d: 'days',
  h: 'hours',
  min: 'minutes',
};

/**
 * Parses a duration such as '7d', '36h', '2w', '1y6m', '1y5m7d2h', '90min', '2h30min'.
 * Units, largest first, each at most once: y, m (or mo), w, d, h, min. As in restic, `m`
 * means MONTHS ('6m' is six months); minutes are written `min` ('90min').
 * Weeks are returned as 7 days. Throws an Error with a readable message on bad input.
 */
export function parseDuration(text: string): ParsedDuration {
  if (typeof text !== 'string') throw new Error(`invalid duration ${String(text)}: expected a string such as "7d"`);
  const input = text.trim();
  const quoted = JSON.stringify(text);
  if (input === '') throw new Error(`invalid duration ${quoted}: it is empty; ${UNIT_HELP}`);
  const result: ParsedDuration = { years: 0, months: 0, days: 0, hours: 0, minutes: 0 };
  const part = /(\d+)([a-z]+)/y;
  let previous: DurationUnit | undefined;
  let position = 0;
  while (position < input.length) {
    part.lastIndex = position;
    const match = part.exec(input);
    if (!match) {
      throw new Error(`invalid duration ${quoted}: cannot read "${input.slice(position)}"; ${UNIT_HELP}`);
    }
    const [whole, digits = '', rawUnit = ''] = match;
    let unit: DurationUnit;
    switch (rawUnit) {
      case 'y':
      case 'mo':
      case 'w':
      case 'd':
      case 'h':
      case 'min':
        unit = rawUnit;
        break;
      case 'm':
        unit = 'mo';
        break;
      default:
        throw new Error(`invalid duration ${quoted}: unknown unit "${rawUnit}"; ${UNIT_HELP}`);
    }
    if (previous !== undefined && UNIT_RANK[unit] <= UNIT_RANK[previous]) {
      if (rawUnit === 'm' && UNIT_RANK[previous] >= UNIT_RANK.w) {
        throw new Error(
          `invalid duration ${quoted}: "m" means months (as in restic) and cannot follow ${UNIT_NAME[previous]}; ` +
            `write minutes as "min" (e.g. "1h30min")`,
        );
      }
      throw new Error(
        `invalid duration ${quoted}: ${UNIT_NAME[unit]} after ${UNIT_NAME[previous]}; ` +
          'write each unit once, largest first (e.g. "1y6m", "1d12h")',
      );
    }
    const value = Number(digits);
    if (!Number.isSafeInteger(value) || value > MAX_DURATION_PART) {
      throw new Error(`invalid duration ${quoted}: ${digits} ${UNIT_NAME[unit]} is too large`);
    }
    switch (unit) {
      case 'y':
        result.years = value;
        break;
      case 'mo':
        result.months = value;
        break;
      case 'w':
        result.days += value * 7;
        break;
      case 'd':
        result.days += value;
        break;
      case 'h':
        result.hours = value;
        break;
      case 'min':
        result.minutes = value;
        break;
    }
    previous = unit;
    position += whole.length;
  }
  return result;
}

function isZeroDuration(d: ParsedDuration): boolean {
  return d.years === 0 && d.months === 0 && d.days === 0 && d.hours === 0 && d.minutes === 0;
}

// ---------------------------------------------------------------------------------------
// Validation and description

function isCountSet(value: unknown): boolean {
  return value !== undefined && value !== 0;
}

function isWithinSet(value: unknown): boolean {
  if (value === undefined) return false;
  try {
    return !isZeroDuration(parseDuration(value as string));
  } catch {
    return true; // malformed: validatePolicy reports it
  }
}

/**
 * True when no keep-* rule is set: every count is absent or 0, keep-within is absent or
 * zero, keep-tags is absent or empty. Callers refuse to apply an empty policy.
 */
export function isEmptyPolicy(policy: RetentionPolicy): boolean {
  if (COUNT_RULES.some((r) => isCountSet(policy[r.key]))) return false;
  if (isWithinSet(policy.keepWithin)) return false;
  if (policy.keepTags !== undefined && (!Array.isArray(policy.keepTags) || policy.keepTags.length > 0)) return false;
  return true;
}

function structuralProblems(policy: RetentionPolicy): string[] {
  const problems: string[] = [];
  if (typeof policy !== 'object' || policy === null) return ['the retention policy must be an object'];
  for (const key of Object.keys(policy)) {
    if (!KNOWN_KEYS.has(key)) problems.push(`unknown retention setting "${key}"`);
  }
  for (const rule of COUNT_RULES) {
    const value: unknown = policy[rule.key];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isInteger(value) || (value < 0 && value !== -1)) {
      problems.push(`${rule.flag} must be a whole number >= 0, or -1 for unlimited (got ${JSON.stringify(value)})`);
    }
  }
  if (policy.keepWithin !== undefined) {
    try {
      parseDuration(policy.keepWithin);
    } catch (error) {
      problems.push(`keep-within: ${(error as Error).message}`);
    }
  }
  if (policy.keepTags !== undefined) {
    if (!Array.isArray(policy.keepTags)) {
      problems.push('keep-tags must be a list of tags');
    } else {
      for (const tag of policy.keepTags as unknown[]) {
        if (typeof tag !== 'string' || tag.trim() === '') {
          problems.push(`keep-tags must hold non-empty strings (got ${JSON.stringify(tag)})`);
        }
      }
    }
  }
  if (policy.timeZone !== undefined && !isValidTimeZone(policy.timeZone)) {
    problems.push(`time-zone ${JSON.stringify(policy.timeZone)} is not a known IANA time zone (e.g. "Europe/Berlin")`);
  }
  return problems;
}

/** Every problem of the policy, one readable sentence each; empty when it can be applied. */
export function validatePolicy(policy: RetentionPolicy): string[] {
  const problems = structuralProblems(policy);
  if (typeof policy === 'object' && policy !== null && isEmptyPolicy(policy)) {
    problems.push(
      'the policy keeps nothing: set at least one of keep-last, keep-hourly, keep-daily, keep-weekly, ' +
        'keep-monthly, keep-yearly, keep-within or keep-tags',
    );
  }
  return problems;
}

/** One line for logs and dry runs, e.g. 'keep-last 3, keep-daily 7, keep-within 2w'. */
export function describePolicy(policy: RetentionPolicy): string {
  const parts: string[] = [];
  for (const rule of COUNT_RULES) {
    const value = policy[rule.key];
    if (value === undefined || value === 0) continue;
    parts.push(`${rule.flag} ${value === -1 ? 'all' : String(value)}`);
  }
  if (isWithinSet(policy.keepWithin)) parts.push(`keep-within ${String(policy.keepWithin).trim()}`);
  if (Array.isArray(policy.keepTags) && policy.keepTags.length > 0) parts.push(`keep-tags ${policy.keepTags.join(',')}`);
  if (parts.length === 0) return 'keep nothing (empty policy)';
  const zone = policy.timeZone ?? 'UTC';
  if (zone !== 'UTC') parts.push(`time zone ${zone}`);
  return parts.join(', ');
}

// ---------------------------------------------------------------------------------------
// Applying the policy

function compareNewestFirst(a: RetentionCandidate, b: RetentionCandidate): number {
  const dt = b.createdAt.getTime() - a.createdAt.getTime();
  if (dt !== 0) return dt;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/**
 * Decides, for every backup, whether to keep or remove it. Returns one decision per
 * backup, newest first. Throws a usage error when the policy is malformed (see
 * validatePolicy); an EMPTY policy is not rejected here: it keeps only what the safety
 * rules keep, and callers are expected to refuse it beforehand with isEmptyPolicy.
 */
export function applyRetention(
  backups: readonly RetentionCandidate[],
  policy: RetentionPolicy,
  now: Date,
): RetentionDecision[] {
  const problems = structuralProblems(policy);
  if (problems.length > 0) {
    throw usageError(`invalid retention policy: ${problems.join('; ')}`, 'fix the retention settings of the profile');
  }
  const nowMs = now instanceof Date ? now.getTime() : Number.NaN;
  if (Number.isNaN(nowMs)) throw new Error('applyRetention: `now` is not a valid Date');
  const seen = new Set<string>();
  for (const backup of backups) {
    if (seen.has(backup.id)) throw new Error(`applyRetention: duplicate backup id ${JSON.stringify(backup.id)}`);
    seen.add(backup.id);
    if (!(backup.createdAt instanceof Date) || Number.isNaN(backup.createdAt.getTime())) {
      throw new Error(`applyRetention: backup ${JSON.stringify(backup.id)} has no valid createdAt`);
    }
  }

  const timeZone = policy.timeZone ?? 'UTC';
  const sorted = [...backups].sort(compareNewestFirst);
  const reasons = new Map<string, Set<KeepReason>>(sorted.map((b) => [b.id, new Set<KeepReason>()]));
  const keep = (backup: RetentionCandidate, reason: KeepReason): void => {
    reasons.get(backup.id)?.add(reason);
  };

  const completed = sorted.filter((b) => b.status === 'completed');
  // Completed backups not dated in the future: these take part in the counting rules.
  const past = completed.filter((b) => b.createdAt.getTime() <= nowMs);

  // Counting rules: keep-last and the calendar periods.
  const fieldsCache = new Map<string, LocalFields>();
  const fieldsOf = (b: RetentionCandidate): LocalFields => {
    let fields = fieldsCache.get(b.id);
    if (fields === undefined) {
      fields = localFields(b.createdAt.getTime(), timeZone);
      fieldsCache.set(b.id, fields);
    }
    return fields;
  };
  for (const rule of COUNT_RULES) {
    let remaining = policy[rule.key] ?? 0;
    if (remaining === 0) continue;
    let lastBucket: string | undefined;
    past.forEach((backup, index) => {
      if (remaining === 0) return;
      const bucket = rule.period === null ? String(index) : periodKey(rule.period, fieldsOf(backup));
      const isOldest = index === past.length - 1;
      if (bucket !== lastBucket || isOldest) {
        keep(backup, rule.reason);
        lastBucket = bucket;
        if (remaining > 0) remaining -= 1;
      }
    });
  }

  // keep-within, measured back from the newest backup.
  const newest = past[0];
  if (policy.keepWithin !== undefined && newest !== undefined) {
    const within = parseDuration(policy.keepWithin);
    if (!isZeroDuration(within)) {
      const threshold =
        subtractCalendar(newest.createdAt.getTime(), within, timeZone) -
        within.hours * 3_600_000 -
        within.minutes * 60_000;
      for (const backup of past) {
        if (backup.createdAt.getTime() > threshold) keep(backup, 'within');
      }
    }
  }

  // keep-tags: any of the tags.
  const keepTags = new Set(policy.keepTags ?? []);
  if (keepTags.size > 0) {
    for (const backup of completed) {
      if (backup.tags.some((tag) => keepTags.has(tag))) keep(backup, 'tag');
    }
  }

  // Safety rules.
  const newestSuccessful = past[0] ?? completed[0];
  if (newestSuccessful !== undefined) keep(newestSuccessful, 'newest-successful');
  const newestVerified = past.find((b) => b.verified) ?? completed.find((b) => b.verified);
  if (newestVerified !== undefined) keep(newestVerified, 'newest-verified');
  for (const backup of sorted) {
    if (backup.createdAt.getTime() > nowMs) keep(backup, 'future');
    if (backup.status !== 'completed') keep(backup, 'not-completed');
  }

  return sorted.map((backup) => {
    const set = reasons.get(backup.id) ?? new Set<KeepReason>();
    const list = KEEP_REASONS.filter((reason) => set.has(reason));
    return {
      id: backup.id,
      createdAt: new Date(backup.createdAt.getTime()),
      action: list.length > 0 ? 'keep' : 'remove',
      reasons: list,
    };
  });
}
