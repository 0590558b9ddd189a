/**
 * Calendar helpers for the retention policy: local calendar fields in an IANA time
 * zone (through Intl.DateTimeFormat, so daylight-saving changes follow the calendar,
 * not fixed 24-hour steps), period buckets, ISO weeks, and calendar subtraction.
 * Pure: no clock, no I/O.
 */

export interface LocalFields {
  year: number;
  /** 1..12 */
  month: number;
  /** 1..31 */
  day: number;
  /** 0..23 */
  hour: number;
  minute: number;
  second: number;
}

export type PeriodKind = 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly';

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (formatter === undefined) {
    // Throws RangeError for an unknown time zone.
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone,
      calendar: 'gregory',
      numberingSystem: 'latn',
      hourCycle: 'h23',
      era: 'short',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

/** True when `timeZone` is an IANA zone (or alias) this runtime knows. */
export function isValidTimeZone(timeZone: string): boolean {
  if (typeof timeZone !== 'string' || timeZone.trim() === '') return false;
  try {
    formatterFor(timeZone);
    return true;
  } catch {
    return false;
  }
}

/**
 * The wall-clock fields of `instant` in UTC, from Date's own UTC fields: the same as
 * ICU's proleptic Gregorian calendar gives (astronomical years: 1 BC is 0), without ICU,
 * whose formatToParts costs ~8 µs and leaves a few MB of native memory behind over the
 * 10,000 backups a retention policy may walk. Null for an instant outside Date's range.
 */
function utcFields(instant: number): LocalFields | null {
  const date = new Date(instant);
  if (Number.isNaN(date.getTime())) return null;
  return {
    year: date.getUTCFullYear(),
    month: date.getUTCMonth() + 1,
    day: date.getUTCDate(),
    hour: date.getUTCHours(),
    minute: date.getUTCMinutes(),
    second: date.getUTCSeconds(),
  };
}

/** The wall-clock fields of `instant` (ms since epoch) in `timeZone`. */
export function localFields(instant: number, timeZone: string): LocalFields {
  // 'UTC', the default zone, without ICU; an invalid instant goes on to ICU's RangeError.
  const utc = timeZone === 'UTC' ? utcFields(instant) : null;
  if (utc !== null) return utc;
  const fields: LocalFields = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0 };
  let bc = false;
  for (const part of formatterFor(timeZone).formatToParts(instant)) {
    switch (part.type) {
      case 'year':
        fields.year = Number(part.value);
        break;
      case 'month':
        fields.month = Number(part.value);
        break;
      case 'day':
        fields.day = Number(part.value);
        break;
      case 'hour':
        // Some engines print midnight as "24" despite h23.
        fields.hour = Number(part.value) % 24;
        break;
      case 'minute':
        fields.minute = Number(part.value);
        break;
      case 'second':
        fields.second = Number(part.value);
        break;
      case 'era':
        bc = part.value === 'BC' || part.value === 'B';
        break;
      default:
        break;
    }
  }
  if (bc) fields.year = 1 - fields.year;
  return fields;
}

/** Date.UTC for a possibly out-of-range year (Date.UTC maps 0..99 to 1900..1999). */
function utcMillis(year: number, month: number, day: number, hour = 0, minute = 0, second = 0): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute, second, 0);
  return d.getTime();
}

/** Offset of `timeZone` from UTC at `instant`, in ms (Berlin in summer: +7_200_000). */
export function zoneOffset(instant: number, timeZone: string): number {
  const f = localFields(instant, timeZone);
  const wholeSecond = Math.floor(instant / 1000) * 1000;
  return utcMillis(f.year, f.month, f.day, f.hour, f.minute, f.second) - wholeSecond;
}

/** ISO 8601 week: Monday start, the week-numbering year may differ from the calendar year. */
export function isoWeek(year: number, month: number, day: number): { weekYear: number; week: number } {
  const date = new Date(utcMillis(year, month, day));
  const dayOfWeek = date.getUTCDay() || 7; // Monday 1 .. Sunday 7
  // The Thursday of this week decides the week-numbering year.
  date.setUTCDate(date.getUTCDate() + 4 - dayOfWeek);
  const weekYear = date.getUTCFullYear();
  const firstOfYear = utcMillis(weekYear, 1, 1);
  const week = Math.floor((date.getTime() - firstOfYear) / 86_400_000 / 7) + 1;
  return { weekYear, week };
}

function pad(n: number, width = 2): string {
  const s = String(Math.abs(n)).padStart(width, '0');
  return n < 0 ? `-${s}` : s;
}

/** A string naming the period of `fields`; two instants share a period when their keys are equal. */
export function periodKey(kind: PeriodKind, fields: LocalFields): string {
  switch (kind) {
    case 'hourly':
      return `${pad(fields.year, 4)}-${pad(fields.month)}-${pad(fields.day)}T${pad(fields.hour)}`;
    case 'daily':
      return `${pad(fields.year, 4)}-${pad(fields.month)}-${pad(fields.day)}`;
    case 'weekly': {
      const { weekYear, week } = isoWeek(fields.year, fields.month, fields.day);
      return `${pad(weekYear, 4)}-W${pad(week)}`;
    }
    case 'monthly':
      return `${pad(fields.year, 4)}-${pad(fields.month)}`;
    case 'yearly':
      return pad(fields.year, 4);
  }
}

function daysInMonth(year: number, month: number): number {
  return new Date(utcMillis(year, month + 1, 1) - 86_400_000).getUTCDate();
}

/**
 * The instant at which the wall clock of `timeZone` shows `fields`. A wall time that
 * occurs twice (autumn change) or never (spring gap) resolves to the EARLIER candidate,
 * which, for a retention threshold, keeps more rather than less.
 */
export function wallTimeToInstant(fields: LocalFields, timeZone: string): number {
  const asUtc = utcMillis(fields.year, fields.month, fields.day, fields.hour, fields.minute, fields.second);
  const offsets = new Set<number>([
    zoneOffset(asUtc - 86_400_000, timeZone),
    zoneOffset(asUtc, timeZone),
    zoneOffset(asUtc + 86_400_000, timeZone),
  ]);
  const candidates = [...offsets].map((offset) => asUtc - offset);
  const valid = candidates.filter((t) => asUtc - zoneOffset(t, timeZone) === t);
  return Math.min(...(valid.length > 0 ? valid : candidates));
}

/** The earliest instant a Date can hold (about 271,822 BC). */
const MIN_DATE_MS = -8.64e15;

/**
 * `instant` moved back by whole years, months and days on the calendar of `timeZone`
 * (the wall-clock time of day is kept). A day that does not exist in the target month
 * is clamped to its last day: 31 March minus one month is 28/29 February, and 31 March
 * minus 1 month and 1 day is 27/28 February (months first, clamped, then days). Go's
 * AddDate, which restic uses, normalises instead (31 March - 1 month = 2 or 3 March), so
 * this instant is never later than restic's: a keep-within window here is never shorter.
 * A target before the range of Date (e.g. 1000000 years back) gives -Infinity.
 */
export function subtractCalendar(
  instant: number,
  amount: { years: number; months: number; days: number },
  timeZone: string,
): number {
  if (amount.years === 0 && amount.months === 0 && amount.days === 0) return instant;
  const f = localFields(instant, timeZone);
  const totalMonths = f.year * 12 + (f.month - 1) - amount.years * 12 - amount.months;
  const year = Math.floor(totalMonths / 12);
  const month = totalMonths - year * 12 + 1;
  const day = Math.min(f.day, daysInMonth(year, month));
  // Subtracting days through Date.UTC normalises across month and year ends.
  const shifted = new Date(utcMillis(year, month, day) - amount.days * 86_400_000);
  // A day of margin for the time zone offset that wallTimeToInstant probes around it.
  if (!(shifted.getTime() > MIN_DATE_MS + 2 * 86_400_000)) return Number.NEGATIVE_INFINITY;
  const target: LocalFields = {
    year: shifted.getUTCFullYear(),
    month: shifted.getUTCMonth() + 1,
    day: shifted.getUTCDate(),
    hour: f.hour,
    minute: f.minute,
    second: f.second,
  };
  const subSecond = instant - Math.floor(instant / 1000) * 1000;
  return wallTimeToInstant(target, timeZone) + subSecond;
}
