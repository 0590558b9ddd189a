/**
 * The retention policy: which backups to keep, as a pure function of the backup list,
 * the policy and the current time (restic `forget` semantics, see below; restic's
 * internal/data/snapshot_policy.go ApplyPolicy is the reference).
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
 *   days are calendar steps in `timeZone`, a day that does not exist in the target month
 *   is clamped to the month's last day (31 March - 1 month = 29 February; restic's Go
 *   AddDate would give 2 March); hours and minutes are absolute.
 * - keep-within-hourly/daily/weekly/monthly/yearly D: among the backups that keep-within D
 *   would keep (same window, same anchor), the newest backup of each period, as restic's
 *   --keep-within-* flags. Like restic, the oldest backup is kept too when it lies inside
 *   the window (a window rule has no count to use up, so it always has "count left").
 * - keep-tags is a list of tag groups, OR-ed: a backup is kept when it carries EVERY tag
 *   of at least one group. A plain string is a group of one tag, so `["a", "b"]` keeps
 *   backups tagged a OR b (as it always did) and `[["a", "b"]]` keeps those tagged a AND b
 *   (restic: `--keep-tag a,b`); `["a", ["b", "c"]]` is a OR (b AND c).
 * - Safety rules, always on: the newest completed backup ('newest-successful'), the newest
 *   completed and verified backup ('newest-verified') and every backup dated after `now`
 *   ('future') are kept.
 *
 * Future-dated backups (clock skew) are always kept, but they do not use up a counting
 * rule, do not anchor or take part in the keep-within rules and are not "the newest" for
 * the safety rules, so a skewed clock cannot push real backups out of the kept set. A
 * backup kept by several rules lists all of them, in the order of KEEP_REASONS.
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

/**
 * A tag group: a backup matches when it carries every tag of the group. A string is a
 * group of one tag.
 */
export type TagGroup = string | string[];

export interface RetentionPolicy {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  /** A duration such as '7d', '36h', '2w', '1y6m', '90min' (see parseDuration; `m` is months). */
  keepWithin?: string;
  /** The newest backup of each hour within this duration of the newest backup. */
  keepWithinHourly?: string;
  /** The newest backup of each day within this duration of the newest backup. */
  keepWithinDaily?: string;
  /** The newest backup of each ISO week within this duration of the newest backup. */
  keepWithinWeekly?: string;
  /** The newest backup of each month within this duration of the newest backup. */
  keepWithinMonthly?: string;
  /** The newest backup of each year within this duration of the newest backup. */
  keepWithinYearly?: string;
  /**
   * Tag groups, OR-ed; a backup matches a group when it has all of the group's tags.
   * `["a", "b"]`: a or b. `[["a", "b"]]`: a and b. `["a", ["b", "c"]]`: a, or b and c.
   */
  keepTags?: TagGroup[];
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
  | 'within-hourly'
  | 'within-daily'
  | 'within-weekly'
  | 'within-monthly'
  | 'within-yearly'
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
  'within-hourly',
  'within-daily',
  'within-weekly',
  'within-monthly',
  'within-yearly',
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
  /** Weeks are included as 7 days each. */
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

type WithinKey = 'keepWithin' | 'keepWithinHourly' | 'keepWithinDaily' | 'keepWithinWeekly' | 'keepWithinMonthly' | 'keepWithinYearly';

/** The duration rules; `period: null` keeps every backup in the window (keep-within). */
const WITHIN_RULES: readonly { key: WithinKey; flag: string; reason: KeepReason; period: PeriodKind | null }[] = [
  { key: 'keepWithin', flag: 'keep-within', reason: 'within', period: null },
  { key: 'keepWithinHourly', flag: 'keep-within-hourly', reason: 'within-hourly', period: 'hourly' },
  { key: 'keepWithinDaily', flag: 'keep-within-daily', reason: 'within-daily', period: 'daily' },
  { key: 'keepWithinWeekly', flag: 'keep-within-weekly', reason: 'within-weekly', period: 'weekly' },
  { key: 'keepWithinMonthly', flag: 'keep-within-monthly', reason: 'within-monthly', period: 'monthly' },
  { key: 'keepWithinYearly', flag: 'keep-within-yearly', reason: 'within-yearly', period: 'yearly' },
];

/** Every key of RetentionPolicy, in the order describePolicy and the docs list them. */
export const RETENTION_POLICY_KEYS = [
  ...COUNT_RULES.map((r) => r.key),
  ...WITHIN_RULES.map((r) => r.key),
  'keepTags',
  'timeZone',
] as const satisfies readonly (keyof RetentionPolicy)[];

const KNOWN_KEYS = new Set<string>(RETENTION_POLICY_KEYS);

// ---------------------------------------------------------------------------------------
// Durations

const UNIT_HELP =
  'use numbers with units y (years), m or mo (months), w (weeks), d (days), h (hours), ' +
  'min (minutes), in any order, e.g. "1y5m7d2h" or "90min"; as in restic, m means months';

const MAX_DURATION_PART = 1_000_000;

type DurationUnit = 'y' | 'mo' | 'w' | 'd' | 'h' | 'min';
const UNIT_NAME: Record<DurationUnit, string> = {
  y: 'years',
  mo: 'months',
  w: 'weeks',
  d: 'days',
  h: 'hours',
  min: 'minutes',
};

/**
 * Parses a retention duration such as '7d', '36h', '2w', '1y6m', '1y1d1m', '90min'.
 *
 * restic's grammar (internal/data/duration.go ParseDuration): `<digits><unit>` parts in
 * ANY order; units y (years), m (MONTHS), d (days), h (hours). restic lets a unit given
 * twice replace the earlier part ('7d1d' is 1 day); backupctl refuses it. backupctl adds
 * `mo` (months, same unit as `m`), `w` (weeks, 7 days each, a unit of its own: '1w2d' is
 * 9 days) and `min` (minutes). Minutes are never `m`: an `m` part right after an hours or
 * minutes part ('1h30m') is refused, because restic would read it as 30 MONTHS and that is
 * almost never what was meant. Signs, spaces between parts and upper case are refused
 * (restic refuses negative durations for --keep-within* too).
 *
 * Returns weeks folded into days. Throws an Error with a readable message on bad input.
 */
export function parseDuration(text: string): ParsedDuration {
  if (typeof text !== 'string') throw new Error(`invalid duration ${String(text)}: expected a string such as "7d"`);
  const input = text.trim();
  const quoted = JSON.stringify(text);
  if (input === '') throw new Error(`invalid duration ${quoted}: it is empty; ${UNIT_HELP}`);
  const parts: Partial<Record<DurationUnit, number>> = {};
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
    if (rawUnit === 'm' && (previous === 'h' || previous === 'min')) {
      throw new Error(
        `invalid duration ${quoted}: "m" means months (as in restic), so "${digits}m" after ${UNIT_NAME[previous]} ` +
          `would be ${digits} months; write minutes as "min" (e.g. "1h30min"), or put months first (e.g. "6m12h")`,
      );
    }
    const value = Number(digits);
    if (!Number.isSafeInteger(value) || value > MAX_DURATION_PART) {
      throw new Error(`invalid duration ${quoted}: ${digits} ${UNIT_NAME[unit]} is too large`);
    }
    // restic lets a repeated unit silently replace the earlier one ("7d1d" is 1 day): refuse
    // it instead, a retention window must never be shorter than what the operator wrote.
    if (parts[unit] !== undefined) {
      throw new Error(`invalid duration ${quoted}: ${UNIT_NAME[unit]} are given twice; write each unit once (e.g. "8d", not "7d1d")`);
    }
    parts[unit] = value;
    previous = unit;
    position += whole.length;
  }
  return {
    years: parts.y ?? 0,
    months: parts.mo ?? 0,
    days: (parts.w ?? 0) * 7 + (parts.d ?? 0),
    hours: parts.h ?? 0,
    minutes: parts.min ?? 0,
  };
}

function isZeroDuration(d: ParsedDuration): boolean {
  return d.years === 0 && d.months === 0 && d.days === 0 && d.hours === 0 && d.minutes === 0;
}

/**
 * The start of a keep-within window ending at `anchor` (ms): years, months and days back
 * on the calendar of `timeZone` (month ends clamped, see subtractCalendar), then hours and
 * minutes back in absolute time, as restic's `AddDate(-y, -m, -d).Add(-h)`. A backup is in
 * the window when it is strictly later than this instant.
 */
function windowStart(anchor: number, within: ParsedDuration, timeZone: string): number {
  return subtractCalendar(anchor, within, timeZone) - within.hours * 3_600_000 - within.minutes * 60_000;
}

// ---------------------------------------------------------------------------------------
// Tag groups

/** keep-tags as a list of AND groups (each a list of tags), in the given order. */
export function tagGroups(keepTags: readonly TagGroup[] | undefined): string[][] {
  return (keepTags ?? []).map((group) => (typeof group === 'string' ? [group] : [...group]));
}

/** 'a', 'a and b'; with `nested`, groups of several tags are parenthesised. */
function describeGroup(group: readonly string[], nested: boolean): string {
  const text = group.join(' and ');
  return nested && group.length > 1 ? `(${text})` : text;
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
 * True when no keep-* rule is set: every count is absent or 0, every keep-within* duration
 * is absent or zero, keep-tags is absent or empty. Callers refuse to apply an empty policy.
 */
export function isEmptyPolicy(policy: RetentionPolicy): boolean {
  if (COUNT_RULES.some((r) => isCountSet(policy[r.key]))) return false;
  if (WITHIN_RULES.some((r) => isWithinSet(policy[r.key]))) return false;
  if (policy.keepTags !== undefined && (!Array.isArray(policy.keepTags) || policy.keepTags.length > 0)) return false;
  return true;
}

/** The problem of one tag of keep-tags, or undefined. */
function tagProblem(tag: unknown): string | undefined {
  if (typeof tag !== 'string' || tag.trim() === '') {
    return `keep-tags must hold non-empty strings (got ${JSON.stringify(tag)})`;
  }
  if (tag.includes(',')) {
    const group = JSON.stringify(tag.split(',').map((t) => t.trim()));
    return `keep-tags: ${JSON.stringify(tag)} is not a tag; a group of tags that a backup must all carry is a list: ${group}`;
  }
  return undefined;
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
  for (const rule of WITHIN_RULES) {
    const value = policy[rule.key];
    if (value === undefined) continue;
    try {
      parseDuration(value);
    } catch (error) {
      problems.push(`${rule.flag}: ${(error as Error).message}`);
    }
  }
  if (policy.keepTags !== undefined) {
    if (!Array.isArray(policy.keepTags)) {
      problems.push('keep-tags must be a list of tags and tag groups (lists of tags a backup must all carry)');
    } else {
      for (const group of policy.keepTags as unknown[]) {
        if (Array.isArray(group)) {
          if (group.length === 0) {
            problems.push('keep-tags: a tag group must list at least one tag (an empty group would match every backup)');
          }
          for (const tag of group as unknown[]) {
            const problem = tagProblem(tag);
            if (problem !== undefined) problems.push(problem);
          }
        } else {
          const problem = tagProblem(group);
          if (problem !== undefined) problems.push(problem);
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
        'keep-monthly, keep-yearly, keep-within, keep-within-hourly, keep-within-daily, keep-within-weekly, ' +
        'keep-within-monthly, keep-within-yearly or keep-tags',
    );
  }
  return problems;
}

/**
 * One line for logs and dry runs, e.g. 'keep-last 3, keep-daily 7, keep-within 2w,
 * keep-within-daily 30d, keep-tags pin or (db and monthly)'. Tag groups are written with
 * "or" and "and", not commas: on the command line `--keep-tag a,b` means a AND b.
 */
export function describePolicy(policy: RetentionPolicy): string {
  const parts: string[] = [];
  for (const rule of COUNT_RULES) {
    const value = policy[rule.key];
    if (value === undefined || value === 0) continue;
    parts.push(`${rule.flag} ${value === -1 ? 'all' : String(value)}`);
  }
  for (const rule of WITHIN_RULES) {
    const value = policy[rule.key];
    if (isWithinSet(value)) parts.push(`${rule.flag} ${String(value).trim()}`);
  }
  if (Array.isArray(policy.keepTags) && policy.keepTags.length > 0) {
    const groups = tagGroups(policy.keepTags);
    parts.push(`keep-tags ${groups.map((group) => describeGroup(group, groups.length > 1)).join(' or ')}`);
  }
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
  // Only kept backups get a set: of 10,000 backups most are usually removed.
  const reasons = new Map<string, Set<KeepReason>>();
  const keep = (backup: RetentionCandidate, reason: KeepReason): void => {
    const set = reasons.get(backup.id);
    if (set) set.add(reason);
    else reasons.set(backup.id, new Set([reason]));
  };

  const completed = sorted.filter((b) => b.status === 'completed');
  // Completed backups not dated in the future: these take part in the counting and keep-within rules.
  const past = completed.filter((b) => b.createdAt.getTime() <= nowMs);

  // Counting rules: keep-last and the calendar periods. A backup's fields are read once
  // for all rules, kept by its place in `past`.
  const fieldsCache: Array<LocalFields | undefined> = [];
  const fieldsOf = (index: number): LocalFields => {
    let fields = fieldsCache[index];
    if (fields === undefined) {
      fields = localFields((past[index] as RetentionCandidate).createdAt.getTime(), timeZone);
      fieldsCache[index] = fields;
    }
    return fields;
  };
  for (const rule of COUNT_RULES) {
    let remaining = policy[rule.key] ?? 0;
    if (remaining === 0) continue;
    let lastBucket: string | undefined;
    past.forEach((backup, index) => {
      if (remaining === 0) return;
      const bucket = rule.period === null ? String(index) : periodKey(rule.period, fieldsOf(index));
      const isOldest = index === past.length - 1;
      if (bucket !== lastBucket || isOldest) {
        keep(backup, rule.reason);
        lastBucket = bucket;
        if (remaining > 0) remaining -= 1;
      }
    });
  }

  // keep-within and keep-within-hourly..yearly: a window ending at the newest backup (not
  // at `now`); keep-within keeps all of it, the others the newest backup of each period in
  // it, plus the oldest backup when the window reaches back that far (as restic).
  const newest = past[0];
  for (const rule of WITHIN_RULES) {
    const text = policy[rule.key];
    if (text === undefined || newest === undefined) continue;
    const within = parseDuration(text);
    if (isZeroDuration(within)) continue;
    const start = windowStart(newest.createdAt.getTime(), within, timeZone);
    let lastBucket: string | undefined;
    for (let index = 0; index < past.length; index++) {
      const backup = past[index] as RetentionCandidate;
      if (backup.createdAt.getTime() <= start) break; // newest first: the rest is older still
      if (rule.period === null) {
        keep(backup, rule.reason);
        continue;
      }
      const bucket = periodKey(rule.period, fieldsOf(index));
      if (bucket !== lastBucket || index === past.length - 1) {
        keep(backup, rule.reason);
        lastBucket = bucket;
      }
    }
  }

  // keep-tags: every tag of at least one group.
  const groups = tagGroups(policy.keepTags);
  if (groups.length > 0) {
    for (const backup of completed) {
      const tags = new Set(backup.tags);
      if (groups.some((group) => group.every((tag) => tags.has(tag)))) keep(backup, 'tag');
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
    const set = reasons.get(backup.id);
    const list = set === undefined ? [] : KEEP_REASONS.filter((reason) => set.has(reason));
    return {
      id: backup.id,
      createdAt: new Date(backup.createdAt.getTime()),
      action: list.length > 0 ? 'keep' : 'remove',
      reasons: list,
    };
  });
}
