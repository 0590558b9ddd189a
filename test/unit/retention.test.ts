import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  applyRetention,
  describePolicy,
  isEmptyPolicy,
  KEEP_REASONS,
  parseDuration,
  tagGroups,
  validatePolicy,
  type RetentionCandidate,
  type RetentionDecision,
  type RetentionPolicy,
} from '../../src/retention/policy.js';
import { isoWeek, localFields, periodKey } from '../../src/retention/periods.js';

// ---------------------------------------------------------------------------------------
// helpers

function backup(
  id: string,
  createdAt: string,
  extra: Partial<Omit<RetentionCandidate, 'id' | 'createdAt'>> = {},
): RetentionCandidate {
  return { id, createdAt: new Date(createdAt), tags: [], status: 'completed', verified: false, ...extra };
}

/** One completed backup a day at `time` (UTC), ids d01, d02... oldest first. */
function dailySeries(startDay: string, count: number, everyDays = 1, time = '03:00:00Z'): RetentionCandidate[] {
  const start = Date.parse(`${startDay}T${time}`);
  return Array.from({ length: count }, (_, i) =>
    backup(`d${String(i + 1).padStart(2, '0')}`, new Date(start + i * everyDays * 86_400_000).toISOString()),
  );
}

/** `id: reason,reason` for kept backups, newest first; removed backups are left out. */
function kept(decisions: RetentionDecision[]): string[] {
  return decisions.filter((d) => d.action === 'keep').map((d) => `${d.id}: ${d.reasons.join(',')}`);
}

function removedIds(decisions: RetentionDecision[]): string[] {
  return decisions.filter((d) => d.action === 'remove').map((d) => d.id);
}

const NOW = new Date('2030-01-01T00:00:00Z');

// ---------------------------------------------------------------------------------------

describe('parseDuration', () => {
  it.each([
    ['7d', { years: 0, months: 0, days: 7, hours: 0, minutes: 0 }],
    ['36h', { years: 0, months: 0, days: 0, hours: 36, minutes: 0 }],
    ['2w', { years: 0, months: 0, days: 14, hours: 0, minutes: 0 }],
    ['1y6m', { years: 1, months: 6, days: 0, hours: 0, minutes: 0 }],
    ['6m', { years: 0, months: 6, days: 0, hours: 0, minutes: 0 }], // as in restic: m is months
    ['1y5m7d2h', { years: 1, months: 5, days: 7, hours: 2, minutes: 0 }],
    ['90min', { years: 0, months: 0, days: 0, hours: 0, minutes: 90 }],
    ['1h30min', { years: 0, months: 0, days: 0, hours: 1, minutes: 30 }],
    ['6mo', { years: 0, months: 6, days: 0, hours: 0, minutes: 0 }],
    ['45min', { years: 0, months: 0, days: 0, hours: 0, minutes: 45 }],
    ['1y2mo3w4d5h6min', { years: 1, months: 2, days: 25, hours: 5, minutes: 6 }],
    [' 3d ', { years: 0, months: 0, days: 3, hours: 0, minutes: 0 }],
    ['0d', { years: 0, months: 0, days: 0, hours: 0, minutes: 0 }],
    // Any order, as restic (its own examples: 1y1d1m, 5d7m, 4h3d9m).
    ['1y1d1m', { years: 1, months: 1, days: 1, hours: 0, minutes: 0 }],
    ['5d7m', { years: 0, months: 7, days: 5, hours: 0, minutes: 0 }],
    ['4h3d9m', { years: 0, months: 9, days: 3, hours: 4, minutes: 0 }],
    ['1d1y', { years: 1, months: 0, days: 1, hours: 0, minutes: 0 }],
    ['12h2d', { years: 0, months: 0, days: 2, hours: 12, minutes: 0 }],
    ['30min1h', { years: 0, months: 0, days: 0, hours: 1, minutes: 30 }],
    ['6m12h', { years: 0, months: 6, days: 0, hours: 12, minutes: 0 }],
    ['3d2w', { years: 0, months: 0, days: 17, hours: 0, minutes: 0 }],
  ])('parses %j', (text, expected) => {
    expect(parseDuration(text)).toEqual(expected);
  });

  it.each([
    ['', /empty/],
    ['7', /cannot read "7"/],
    ['d7', /cannot read "d7"/],
    ['7x', /unknown unit "x"/],
    ['7D', /cannot read "7D"/],
    ['1.5d', /cannot read/],
    ['-1d', /cannot read "-1d"/], // restic parses it, then refuses negative --keep-within* durations
    ['1y-1d', /cannot read "-1d"/],
    ['1h30m', /"m" means months \(as in restic\), so "30m" after hours would be 30 months; write minutes as "min"/],
    ['2d1h5m', /"m" means months/],
    ['30min5m', /"5m" after minutes/],
    ['7 d', /cannot read/],
    ['1d 2h', /cannot read " 2h"/],
    ['2W', /cannot read "2W"/],
    ['99999999d', /too large/],
    // restic lets a repeated unit replace the earlier one ("7d1d" = 1 day); a shorter
    // window than written would remove backups, so backupctl refuses it.
    ['7d1d', /days are given twice/],
    ['2d1y1d', /days are given twice/],
    ['3m1mo', /months are given twice/], // m and mo are one unit
  ])('rejects %j with a clear message', (text, message) => {
    expect(() => parseDuration(text)).toThrow(message);
    expect(() => parseDuration(text)).toThrow(/invalid duration/);
  });
});

describe('validatePolicy, isEmptyPolicy, describePolicy', () => {
  it('accepts sensible policies', () => {
    expect(validatePolicy({ keepLast: 3 })).toEqual([]);
    expect(validatePolicy({ keepDaily: -1, keepWithin: '2w', keepTags: ['pin'], timeZone: 'Europe/Berlin' })).toEqual([]);
  });

  it('reports every problem', () => {
    const problems = validatePolicy({
      keepLast: -2,
      keepDaily: 1.5,
      keepWeekly: Number.NaN,
      keepWithin: '3 days',
      keepTags: [''],
      timeZone: 'Mars/Olympus',
    });
    expect(problems).toHaveLength(6);
    expect(problems.join('\n')).toMatch(/keep-last must be a whole number >= 0, or -1 for unlimited \(got -2\)/);
    expect(problems.join('\n')).toMatch(/keep-daily .* \(got 1.5\)/);
    expect(problems.join('\n')).toMatch(/keep-within: invalid duration "3 days"/);
    expect(problems.join('\n')).toMatch(/time-zone "Mars\/Olympus"/);
  });

  it('reports unknown settings (typos)', () => {
    expect(validatePolicy({ keepDayly: 7, keepLast: 1 } as RetentionPolicy)).toEqual(['unknown retention setting "keepDayly"']);
  });

  it.each<[RetentionPolicy, boolean]>([
    [{}, true],
    [{ keepLast: 0, keepDaily: 0, keepWithin: '0d', keepTags: [], timeZone: 'Europe/Berlin' }, true],
    [{ keepLast: 1 }, false],
    [{ keepYearly: -1 }, false],
    [{ keepWithin: '1h' }, false],
    [{ keepTags: ['x'] }, false],
    [{ keepLast: -5 }, false], // not empty, but invalid
  ])('isEmptyPolicy(%j) is %s', (policy, empty) => {
    expect(isEmptyPolicy(policy)).toBe(empty);
  });

  it.each<[RetentionPolicy, boolean]>([
    [{ keepWithinHourly: '1d' }, false],
    [{ keepWithinDaily: '7d' }, false],
    [{ keepWithinWeekly: '1m' }, false],
    [{ keepWithinMonthly: '1y' }, false],
    [{ keepWithinYearly: '10y' }, false],
    [{ keepWithinDaily: '0d', keepWithinYearly: '0y0m', keepWithin: '0h' }, true],
    [{ keepTags: [['db', 'monthly']] }, false],
    [{ keepWithinDaily: 'soon' }, false], // not empty, but invalid
  ])('isEmptyPolicy(%j) is %s (keep-within-* and tag groups)', (policy, empty) => {
    expect(isEmptyPolicy(policy)).toBe(empty);
    if (!empty) expect(validatePolicy(policy)).not.toContainEqual(expect.stringMatching(/keeps nothing/));
  });

  it('validates keep-within-* durations and tag groups', () => {
    expect(validatePolicy({ keepWithinDaily: '30d', keepWithinMonthly: '1y1d1m', keepTags: ['pin', ['db', 'monthly']] })).toEqual([]);
    const problems = validatePolicy({
      keepWithinHourly: '2 days',
      keepWithinWeekly: '1h30m',
      keepTags: ['db,monthly', [], ['db', ''], 7 as unknown as string],
    });
    expect(problems).toEqual([
      expect.stringMatching(/^keep-within-hourly: invalid duration "2 days"/),
      expect.stringMatching(/^keep-within-weekly: invalid duration "1h30m": "m" means months/),
      'keep-tags: "db,monthly" is not a tag; a group of tags that a backup must all carry is a list: ["db","monthly"]',
      'keep-tags: a tag group must list at least one tag (an empty group would match every backup)',
      'keep-tags must hold non-empty strings (got "")',
      'keep-tags must hold non-empty strings (got 7)',
    ]);
    expect(validatePolicy({ keepTags: 'pin' as unknown as string[] })).toEqual([
      'keep-tags must be a list of tags and tag groups (lists of tags a backup must all carry)',
    ]);
  });

  it('tagGroups reads a plain tag as a group of one', () => {
    expect(tagGroups(['pin', ['db', 'monthly'], ['x']])).toEqual([['pin'], ['db', 'monthly'], ['x']]);
    expect(tagGroups(undefined)).toEqual([]);
  });

  it('refuses 0-for-everything', () => {
    expect(validatePolicy({ keepLast: 0, keepDaily: 0 })).toEqual([expect.stringMatching(/keeps nothing/)]);
  });

  it.each<[RetentionPolicy, string]>([
    [{ keepLast: 3, keepDaily: 7, keepWithin: '2w' }, 'keep-last 3, keep-daily 7, keep-within 2w'],
    [{ keepDaily: 7, keepWeekly: 4, keepMonthly: 12, keepYearly: -1 }, 'keep-daily 7, keep-weekly 4, keep-monthly 12, keep-yearly all'],
    [{ keepHourly: 24, keepTags: ['pin', 'pre-upgrade'], timeZone: 'Europe/Berlin' }, 'keep-hourly 24, keep-tags pin or pre-upgrade, time zone Europe/Berlin'],
    [{ keepLast: 0 }, 'keep nothing (empty policy)'],
    [
      { keepWithin: '1h', keepWithinHourly: '1d', keepWithinDaily: '7d', keepWithinWeekly: '1m', keepWithinMonthly: '1y', keepWithinYearly: '10y' },
      'keep-within 1h, keep-within-hourly 1d, keep-within-daily 7d, keep-within-weekly 1m, keep-within-monthly 1y, keep-within-yearly 10y',
    ],
    [{ keepDaily: 7, keepWithinDaily: '0d', keepWithinMonthly: ' 1y1d1m ' }, 'keep-daily 7, keep-within-monthly 1y1d1m'],
    [{ keepTags: [['db', 'monthly']] }, 'keep-tags db and monthly'],
    [{ keepTags: ['pin', ['db', 'monthly']] }, 'keep-tags pin or (db and monthly)'],
    [{ keepTags: [['pin'], 'x'] }, 'keep-tags pin or x'],
  ])('describePolicy(%j)', (policy, text) => {
    expect(describePolicy(policy)).toBe(text);
  });
});

describe('periods', () => {
  it('uses ISO weeks across a year boundary', () => {
    expect(isoWeek(2020, 12, 31)).toEqual({ weekYear: 2020, week: 53 });
    expect(isoWeek(2021, 1, 3)).toEqual({ weekYear: 2020, week: 53 });
    expect(isoWeek(2021, 1, 4)).toEqual({ weekYear: 2021, week: 1 });
    expect(isoWeek(2019, 12, 30)).toEqual({ weekYear: 2020, week: 1 });
    expect(isoWeek(2024, 12, 30)).toEqual({ weekYear: 2025, week: 1 });
  });

  it('reads local calendar fields in a time zone', () => {
    // 2024-10-27T00:30Z and 01:30Z both read 02:30 in Berlin (CEST, then CET).
    expect(localFields(Date.parse('2024-10-27T00:30:00Z'), 'Europe/Berlin')).toMatchObject({ day: 27, hour: 2, minute: 30 });
    expect(localFields(Date.parse('2024-10-27T01:30:00Z'), 'Europe/Berlin')).toMatchObject({ day: 27, hour: 2, minute: 30 });
    expect(periodKey('daily', localFields(Date.parse('2024-10-26T22:10:00Z'), 'Europe/Berlin'))).toBe('2024-10-27');
    expect(periodKey('daily', localFields(Date.parse('2024-10-26T22:10:00Z'), 'UTC'))).toBe('2024-10-26');
    expect(periodKey('weekly', localFields(Date.parse('2021-01-03T12:00:00Z'), 'UTC'))).toBe('2020-W53');
  });
});

// ---------------------------------------------------------------------------------------

describe('applyRetention: single rules', () => {
  it('returns nothing for no backups', () => {
    expect(applyRetention([], { keepLast: 3 }, NOW)).toEqual([]);
  });

  it('keep-last N keeps the N newest', () => {
    const decisions = applyRetention(dailySeries('2024-01-01', 5), { keepLast: 3 }, NOW);
    expect(decisions.map((d) => d.id)).toEqual(['d05', 'd04', 'd03', 'd02', 'd01']);
    expect(kept(decisions)).toEqual(['d05: last,newest-successful', 'd04: last', 'd03: last']);
    expect(removedIds(decisions)).toEqual(['d02', 'd01']);
    expect(decisions.find((d) => d.id === 'd01')?.reasons).toEqual([]);
  });

  it('keep-last -1 keeps everything', () => {
    expect(removedIds(applyRetention(dailySeries('2024-01-01', 5), { keepLast: -1 }, NOW))).toEqual([]);
  });

  it('keep-hourly keeps the newest backup of each of the N most recent hours', () => {
    const backups = [
      backup('a', '2024-05-01T10:05:00Z'),
      backup('b', '2024-05-01T10:45:00Z'),
      backup('c', '2024-05-01T11:10:00Z'),
      backup('d', '2024-05-01T11:50:00Z'),
      backup('e', '2024-05-01T13:20:00Z'), // no backup in the 12:00 hour
      backup('f', '2024-05-01T13:40:00Z'),
    ];
    expect(kept(applyRetention(backups, { keepHourly: 2 }, NOW))).toEqual(['f: hourly,newest-successful', 'd: hourly']);
    expect(kept(applyRetention(backups, { keepHourly: 3 }, NOW))).toEqual([
      'f: hourly,newest-successful',
      'd: hourly',
      'b: hourly',
    ]);
  });

  it('keep-daily 7 with a backup every 3 days keeps 7 backups reaching back 21 days', () => {
    const backups = dailySeries('2024-01-01', 12, 3); // d01 = Jan 1 ... d12 = Feb 3
    const decisions = applyRetention(backups, { keepDaily: 7 }, NOW);
    expect(kept(decisions)).toEqual([
      'd12: daily,newest-successful',
      'd11: daily',
      'd10: daily',
      'd09: daily',
      'd08: daily',
      'd07: daily',
      'd06: daily',
    ]);
    const newest = decisions[0]!.createdAt.getTime();
    const oldestKept = decisions.filter((d) => d.action === 'keep').at(-1)!.createdAt.getTime();
    expect((newest - oldestKept) / 86_400_000).toBe(18); // within a 21-day window, not just 7 days
  });

  it('keeps the newest backup of each day, several backups a day', () => {
    const backups = [
      backup('mon-1', '2024-01-01T01:00:00Z'),
      backup('mon-2', '2024-01-01T13:00:00Z'),
      backup('tue-1', '2024-01-02T01:00:00Z'),
      backup('tue-2', '2024-01-02T13:00:00Z'),
      backup('wed-1', '2024-01-03T01:00:00Z'),
      backup('wed-2', '2024-01-03T13:00:00Z'),
    ];
    expect(kept(applyRetention(backups, { keepDaily: 2 }, NOW))).toEqual(['wed-2: daily,newest-successful', 'tue-2: daily']);
  });

  it('a rule with count left at the oldest backup keeps that oldest backup too (restic >= 0.15)', () => {
    const backups = [
      backup('mon-1', '2024-01-01T01:00:00Z'),
      backup('mon-2', '2024-01-01T13:00:00Z'),
      backup('tue-1', '2024-01-02T01:00:00Z'),
      backup('tue-2', '2024-01-02T13:00:00Z'),
    ];
    // Two days only, 7 wanted: the newest of each day, plus the oldest backup.
    expect(kept(applyRetention(backups, { keepDaily: 7 }, NOW))).toEqual([
      'tue-2: daily,newest-successful',
      'mon-2: daily',
      'mon-1: daily',
    ]);
    // With the count used up exactly, the oldest is not kept.
    expect(kept(applyRetention(backups, { keepDaily: 2 }, NOW))).toEqual(['tue-2: daily,newest-successful', 'mon-2: daily']);
    // Unlimited always has count left.
    expect(kept(applyRetention(backups, { keepDaily: -1 }, NOW))).toEqual([
      'tue-2: daily,newest-successful',
      'mon-2: daily',
      'mon-1: daily',
    ]);
  });

  it('keep-weekly uses ISO weeks across a year boundary', () => {
    const backups = [
      backup('2020-12-28', '2020-12-28T12:00:00Z'), // Mon, 2020-W53
      backup('2020-12-31', '2020-12-31T12:00:00Z'), // Thu, 2020-W53
      backup('2021-01-03', '2021-01-03T12:00:00Z'), // Sun, 2020-W53
      backup('2021-01-04', '2021-01-04T12:00:00Z'), // Mon, 2021-W01
      backup('2021-01-10', '2021-01-10T12:00:00Z'), // Sun, 2021-W01
      backup('2021-01-11', '2021-01-11T12:00:00Z'), // Mon, 2021-W02
    ];
    expect(kept(applyRetention(backups, { keepWeekly: 3 }, NOW))).toEqual([
      '2021-01-11: weekly,newest-successful',
      '2021-01-10: weekly',
      '2021-01-03: weekly',
    ]);
    // Years are calendar years, not ISO week years: 2020-12-31 is the newest of 2020.
    expect(kept(applyRetention(backups, { keepYearly: 2 }, NOW))).toEqual([
      '2021-01-11: yearly,newest-successful',
      '2020-12-31: yearly',
    ]);
  });

  it('keep-monthly keeps the newest backup of each month', () => {
    const backups = [
      backup('jan-a', '2024-01-05T00:00:00Z'),
      backup('jan-b', '2024-01-31T23:59:59Z'),
      backup('feb-a', '2024-02-01T00:00:00Z'),
      backup('feb-b', '2024-02-29T12:00:00Z'),
      backup('apr', '2024-04-10T12:00:00Z'), // no backup in March
    ];
    expect(kept(applyRetention(backups, { keepMonthly: 3 }, NOW))).toEqual([
      'apr: monthly,newest-successful',
      'feb-b: monthly',
      'jan-b: monthly',
    ]);
  });

  it('keep-yearly -1 keeps the newest of every year and the oldest backup', () => {
    const backups = [
      backup('2022-a', '2022-03-01T00:00:00Z'),
      backup('2022-b', '2022-11-01T00:00:00Z'),
      backup('2023-a', '2023-06-01T00:00:00Z'),
      backup('2024-a', '2024-01-01T00:00:00Z'),
      backup('2024-b', '2024-02-01T00:00:00Z'),
    ];
    expect(kept(applyRetention(backups, { keepYearly: -1 }, NOW))).toEqual([
      '2024-b: yearly,newest-successful',
      '2023-a: yearly',
      '2022-b: yearly',
      '2022-a: yearly',
    ]);
  });

  it('keep-tags keeps every backup with ANY of the tags', () => {
    const backups = [
      backup('a', '2024-01-01T00:00:00Z', { tags: ['pre-upgrade'] }),
      backup('b', '2024-01-02T00:00:00Z', { tags: ['nightly'] }),
      backup('c', '2024-01-03T00:00:00Z', { tags: ['nightly', 'pin'] }),
      backup('d', '2024-01-04T00:00:00Z', { tags: [] }),
      backup('e', '2024-01-05T00:00:00Z', { tags: ['PIN'] }), // tags are case-sensitive
    ];
    expect(kept(applyRetention(backups, { keepTags: ['pin', 'pre-upgrade'] }, NOW))).toEqual([
      'e: newest-successful',
      'c: tag',
      'a: tag',
    ]);
  });
});

describe('applyRetention: keep-within', () => {
  it('measures from the newest backup, not from now, when the schedule stalled for a month', () => {
    const backups = dailySeries('2024-01-01', 31); // Jan 1 .. Jan 31, then nothing
    const now = new Date('2024-03-02T00:00:00Z');
    const decisions = applyRetention(backups, { keepWithin: '7d' }, now);
    // Newest is Jan 31 03:00; Jan 24 03:00 is exactly 7 days before and not "within".
    expect(kept(decisions)).toEqual([
      'd31: within,newest-successful',
      'd30: within',
      'd29: within',
      'd28: within',
      'd27: within',
      'd26: within',
      'd25: within',
    ]);
  });

  it.each<[string, number]>([
    ['36h', 2], // Jan 31 03:00 and Jan 30 03:00; Jan 29 03:00 is 48h back
    ['2w', 14],
    ['1min', 1], // one minute: only the newest
    ['90min', 1],
    ['1m', 31], // one month (restic's m): Dec 31 03:00 is excluded, Jan 1 03:00 is in
    ['1y', 31],
    ['1mo', 31], // Dec 31 03:00 is excluded, Jan 1 03:00 is in
  ])('keep-within %s keeps %i daily backups', (within, count) => {
    const decisions = applyRetention(dailySeries('2024-01-01', 31), { keepWithin: within }, NOW);
    expect(decisions.filter((d) => d.reasons.includes('within'))).toHaveLength(count);
  });

  it('steps months on the calendar (31 March minus 1 month is 29 February)', () => {
    const backups = [
      backup('feb-28', '2024-02-28T12:00:00Z'),
      backup('feb-29-early', '2024-02-29T11:00:00Z'),
      backup('feb-29-late', '2024-02-29T13:00:00Z'),
      backup('mar-31', '2024-03-31T12:00:00Z'),
    ];
    expect(kept(applyRetention(backups, { keepWithin: '1mo' }, NOW))).toEqual([
      'mar-31: within,newest-successful',
      'feb-29-late: within',
    ]);
  });

  it('counts days on the local calendar across a daylight-saving change, hours as absolute time', () => {
    // Berlin 2024-10-27 has 25 hours. The newest is 12:00 CET on the 27th (11:00Z);
    // one calendar day earlier is 12:00 CEST on the 26th (10:00Z): 25 hours.
    const backups = [backup('old', '2024-10-26T10:30:00Z'), backup('new', '2024-10-27T11:00:00Z')];
    const inBerlin = applyRetention(backups, { keepWithin: '1d', timeZone: 'Europe/Berlin' }, NOW);
    expect(kept(inBerlin)).toEqual(['new: within,newest-successful', 'old: within']);
    const inUtc = applyRetention(backups, { keepWithin: '1d' }, NOW);
    expect(removedIds(inUtc)).toEqual(['old']);
    const hours = applyRetention(backups, { keepWithin: '24h', timeZone: 'Europe/Berlin' }, NOW);
    expect(removedIds(hours)).toEqual(['old']);
  });
});

describe('applyRetention: keep-within-hourly/daily/weekly/monthly/yearly', () => {
  it('keeps the newest backup of each period inside the window, measured from the newest backup', () => {
    const backups = [
      backup('a', '2024-05-01T10:05:00Z'),
      backup('b', '2024-05-01T10:45:00Z'),
      backup('c', '2024-05-01T11:10:00Z'),
      backup('d', '2024-05-01T11:50:00Z'),
      backup('e', '2024-05-01T13:20:00Z'), // no backup in the 12:00 hour
      backup('f', '2024-05-01T13:40:00Z'),
    ];
    // The window of 2h starts at 11:40: hours 13 and 11 have a backup in it.
    expect(kept(applyRetention(backups, { keepWithinHourly: '2h' }, NOW))).toEqual(['f: within-hourly,newest-successful', 'd: within-hourly']);
    // 3h reaches 10:40: b is the newest of the 10:00 hour inside the window.
    expect(kept(applyRetention(backups, { keepWithinHourly: '3h' }, NOW))).toEqual([
      'f: within-hourly,newest-successful',
      'd: within-hourly',
      'b: within-hourly',
    ]);
  });

  it('keep-within-daily over a stalled schedule keeps the last days of history, not nothing', () => {
    const backups = dailySeries('2024-01-01', 31); // Jan 1 .. Jan 31 at 03:00, then nothing
    const later = new Date('2024-06-01T00:00:00Z');
    expect(kept(applyRetention(backups, { keepWithinDaily: '3d' }, later))).toEqual([
      'd31: within-daily,newest-successful',
      'd30: within-daily',
      'd29: within-daily', // Jan 28 03:00 is exactly 3 days back: outside
    ]);
  });

  it('differs from keep-daily N when days are missing: the window is time, not a count of days', () => {
    const backups = dailySeries('2024-01-01', 12, 3); // every third day, d12 = Feb 3
    expect(kept(applyRetention(backups, { keepWithinDaily: '7d' }, NOW))).toEqual([
      'd12: within-daily,newest-successful',
      'd11: within-daily',
      'd10: within-daily',
    ]);
    expect(kept(applyRetention(backups, { keepDaily: 3 }, NOW))).toEqual(['d12: daily,newest-successful', 'd11: daily', 'd10: daily']);
    expect(kept(applyRetention(backups, { keepDaily: 7 }, NOW))).toHaveLength(7);
  });

  it('keeps the oldest backup too when the whole history lies inside the window (as restic)', () => {
    const backups = [
      backup('mon-1', '2024-01-01T01:00:00Z'),
      backup('mon-2', '2024-01-01T13:00:00Z'),
      backup('tue-1', '2024-01-02T01:00:00Z'),
      backup('tue-2', '2024-01-02T13:00:00Z'),
    ];
    expect(kept(applyRetention(backups, { keepWithinDaily: '1y' }, NOW))).toEqual([
      'tue-2: within-daily,newest-successful',
      'mon-2: within-daily',
      'mon-1: within-daily',
    ]);
    // A window that does not reach the oldest backup does not keep it (25h: from 1 Jan 12:00).
    expect(kept(applyRetention(backups, { keepWithinDaily: '25h' }, NOW))).toEqual([
      'tue-2: within-daily,newest-successful',
      'mon-2: within-daily',
    ]);
  });

  it('keep-within-weekly uses ISO weeks, keep-within-yearly calendar years', () => {
    const backups = [
      backup('2020-12-28', '2020-12-28T12:00:00Z'), // Mon, 2020-W53
      backup('2020-12-31', '2020-12-31T12:00:00Z'), // Thu, 2020-W53
      backup('2021-01-03', '2021-01-03T12:00:00Z'), // Sun, 2020-W53
      backup('2021-01-04', '2021-01-04T12:00:00Z'), // Mon, 2021-W01
      backup('2021-01-10', '2021-01-10T12:00:00Z'), // Sun, 2021-W01
      backup('2021-01-11', '2021-01-11T12:00:00Z'), // Mon, 2021-W02
    ];
    // 2w from 11 Jan 12:00 starts 28 Dec 12:00 (excluded): 2020-W53's newest is 3 Jan.
    expect(kept(applyRetention(backups, { keepWithinWeekly: '2w' }, NOW))).toEqual([
      '2021-01-11: within-weekly,newest-successful',
      '2021-01-10: within-weekly',
      '2021-01-03: within-weekly',
    ]);
    expect(kept(applyRetention(backups, { keepWithinYearly: '13d' }, NOW))).toEqual([
      '2021-01-11: within-yearly,newest-successful',
      '2020-12-31: within-yearly',
    ]);
  });

  it.each<[string, string, string, string]>([
    // 31 Mar - 1 month is clamped to 29 Feb (Go's AddDate, restic: 2 Mar).
    ['leap year', '2024-03-31T12:00:00Z', '1m', '2024-02-29T12:00:01Z'],
    // Not a leap year: 28 Feb (restic: 3 Mar).
    ['common year', '2023-03-31T12:00:00Z', '1m', '2023-02-28T12:00:01Z'],
    // 31 May - 1 month is 30 Apr (restic: 1 May).
    ['30-day month', '2024-05-31T12:00:00Z', '1mo', '2024-04-30T12:00:01Z'],
    // Months first, clamped, then days: 31 Mar - 1m1d is 28 Feb (restic: 1 Mar).
    ['months and days', '2024-03-31T12:00:00Z', '1m1d', '2024-02-28T12:00:01Z'],
    // The unit order does not matter.
    ['days first', '2024-03-31T12:00:00Z', '1d1m', '2024-02-28T12:00:01Z'],
  ])('keep-within-monthly at a month end (%s)', (_case, newest, within, firstInside) => {
    // One second earlier is the window's start: not "within".
    const atStart = new Date(Date.parse(firstInside) - 1000).toISOString();
    const backups = [backup('out', atStart), backup('in', firstInside), backup('newest', newest)];
    expect(kept(applyRetention(backups, { keepWithinMonthly: within }, NOW))).toEqual([
      'newest: within-monthly,newest-successful',
      'in: within-monthly',
    ]);
    // keep-within uses the same window.
    expect(removedIds(applyRetention(backups, { keepWithin: within }, NOW))).toEqual(['out']);
  });

  it('counts the window in the policy time zone', () => {
    // Newest: 1 Apr 2024 00:30 in Berlin (31 Mar 22:30Z). One month back in Berlin is 1 Mar 00:30 CET
    // (29 Feb 23:30Z); in UTC the newest is 31 Mar 22:30, one month back 29 Feb 22:30Z.
    const backups = [backup('feb', '2024-02-29T23:00:00Z'), backup('mar', '2024-03-15T12:00:00Z'), backup('newest', '2024-03-31T22:30:00Z')];
    expect(kept(applyRetention(backups, { keepWithinMonthly: '1m', timeZone: 'Europe/Berlin' }, NOW))).toEqual([
      'newest: within-monthly,newest-successful', // April in Berlin
      'mar: within-monthly',
    ]);
    expect(kept(applyRetention(backups, { keepWithinMonthly: '1m' }, NOW))).toEqual([
      'newest: within-monthly,newest-successful', // March in UTC
      'feb: within-monthly',
    ]);
  });

  it('ignores future, failed and incomplete backups, and anchors at the newest completed one', () => {
    const now = new Date('2024-01-10T12:00:00Z');
    const backups = [
      ...dailySeries('2024-01-01', 5), // d05 = Jan 5 03:00
      backup('late-failed', '2024-01-08T03:00:00Z', { status: 'failed' }),
      backup('future', '2024-01-11T03:00:00Z'),
    ];
    expect(kept(applyRetention(backups, { keepWithinDaily: '2d' }, now))).toEqual([
      'future: future',
      'late-failed: not-completed',
      'd05: within-daily,newest-successful',
      'd04: within-daily',
    ]);
  });

  it('a window longer than a Date can reach keeps everything in it', () => {
    const backups = dailySeries('2024-01-01', 3);
    expect(kept(applyRetention(backups, { keepWithinYearly: '1000000y', keepWithin: '1000000y' }, NOW))).toEqual([
      'd03: within,within-yearly,newest-successful',
      'd02: within',
      'd01: within,within-yearly', // the oldest, inside the window
    ]);
  });
});

describe('applyRetention: tag groups', () => {
  const backups = [
    backup('db', '2024-01-01T00:00:00Z', { tags: ['db'] }),
    backup('monthly', '2024-01-02T00:00:00Z', { tags: ['monthly'] }),
    backup('db+monthly', '2024-01-03T00:00:00Z', { tags: ['monthly', 'db'] }),
    backup('db+monthly+pin', '2024-01-04T00:00:00Z', { tags: ['db', 'pin', 'monthly'] }),
    backup('pin', '2024-01-05T00:00:00Z', { tags: ['pin'] }),
    backup('none', '2024-01-06T00:00:00Z'),
  ];

  it.each<[string, RetentionPolicy['keepTags'], string[]]>([
    ['a,b: both tags', [['db', 'monthly']], ['db+monthly+pin', 'db+monthly']],
    ['a + b: either tag', ['db', 'monthly'], ['db+monthly+pin', 'db+monthly', 'monthly', 'db']],
    ['a + b as groups of one', [['db'], ['monthly']], ['db+monthly+pin', 'db+monthly', 'monthly', 'db']],
    ['pin or (db and monthly)', ['pin', ['db', 'monthly']], ['pin', 'db+monthly+pin', 'db+monthly']],
    ['three tags', [['db', 'monthly', 'pin']], ['db+monthly+pin']],
    ['a group nothing carries', [['db', 'nightly']], []],
  ])('%s', (_case, keepTags, byTag) => {
    const decisions = applyRetention(backups, { keepTags }, NOW);
    expect(decisions.filter((d) => d.reasons.includes('tag')).map((d) => d.id)).toEqual(byTag);
    expect(decisions.find((d) => d.id === 'none')?.reasons).toEqual(['newest-successful']);
  });
});

describe('applyRetention: time zones and daylight saving', () => {
  it('Europe/Berlin: two backups on the 25-hour autumn day are the same day', () => {
    const backups = [
      backup('sat', '2024-10-26T10:00:00Z'),
      backup('sun-0010', '2024-10-26T22:10:00Z'), // Sun 00:10 CEST
      backup('sun-2350', '2024-10-27T22:50:00Z'), // Sun 23:50 CET, 24h40m later
      backup('mon', '2024-10-28T10:00:00Z'),
    ];
    expect(kept(applyRetention(backups, { keepDaily: 3, timeZone: 'Europe/Berlin' }, NOW))).toEqual([
      'mon: daily,newest-successful',
      'sun-2350: daily',
      'sat: daily',
    ]);
    // In UTC the 00:10 backup falls on Saturday the 26th and is Saturday's newest.
    expect(kept(applyRetention(backups, { keepDaily: 3 }, NOW))).toEqual([
      'mon: daily,newest-successful',
      'sun-2350: daily',
      'sun-0010: daily',
    ]);
  });

  it('Europe/Berlin: the repeated 02:00 hour of the autumn change is one hourly period', () => {
    const backups = [
      backup('h01', '2024-10-26T23:30:00Z'), // 01:30 CEST
      backup('h02-cest', '2024-10-27T00:30:00Z'), // 02:30 CEST
      backup('h02-cet', '2024-10-27T01:30:00Z'), // 02:30 CET
      backup('h03', '2024-10-27T02:30:00Z'), // 03:30 CET
    ];
    expect(kept(applyRetention(backups, { keepHourly: 3, timeZone: 'Europe/Berlin' }, NOW))).toEqual([
      'h03: hourly,newest-successful',
      'h02-cet: hourly',
      'h01: hourly',
    ]);
  });

  it('America/New_York: the 23-hour spring day and the 25-hour autumn day', () => {
    const spring = [
      backup('sat', '2024-03-09T17:00:00Z'),
      backup('sun-0030', '2024-03-10T05:30:00Z'), // Sun 00:30 EST
      backup('sun-2330', '2024-03-11T03:30:00Z'), // Sun 23:30 EDT
      backup('mon', '2024-03-11T16:00:00Z'),
    ];
    expect(kept(applyRetention(spring, { keepDaily: 3, timeZone: 'America/New_York' }, NOW))).toEqual([
      'mon: daily,newest-successful',
      'sun-2330: daily',
      'sat: daily',
    ]);
    const autumn = [
      backup('sat', '2024-11-02T16:00:00Z'),
      backup('sun-0010', '2024-11-03T04:10:00Z'), // Sun 00:10 EDT
      backup('sun-2350', '2024-11-04T04:50:00Z'), // Sun 23:50 EST, 24h40m later
      backup('mon', '2024-11-04T17:00:00Z'),
    ];
    expect(kept(applyRetention(autumn, { keepDaily: 3, timeZone: 'America/New_York' }, NOW))).toEqual([
      'mon: daily,newest-successful',
      'sun-2350: daily',
      'sat: daily',
    ]);
    // Fixed 24-hour days from UTC midnight would split them: in UTC they are Nov 3 and Nov 4.
    expect(kept(applyRetention(autumn, { keepDaily: 3 }, NOW))).toEqual([
      'mon: daily,newest-successful',
      'sun-0010: daily',
      'sat: daily',
    ]);
  });

  it('weeks and months follow the local calendar', () => {
    // Sunday 2021-01-03 23:30 UTC is already Monday 2021-01-04 in Berlin: week 2021-W01.
    const backups = [backup('a', '2021-01-03T12:00:00Z'), backup('b', '2021-01-03T23:30:00Z'), backup('c', '2021-01-05T12:00:00Z')];
    expect(kept(applyRetention(backups, { keepWeekly: 2 }, NOW))).toEqual(['c: weekly,newest-successful', 'b: weekly']);
    expect(kept(applyRetention(backups, { keepWeekly: 2, timeZone: 'Europe/Berlin' }, NOW))).toEqual([
      'c: weekly,newest-successful',
      'a: weekly',
    ]);
  });
});

describe('applyRetention: ordering, ties and safety rules', () => {
  it('orders equal timestamps by id, descending, whatever the input order', () => {
    const backups = [
      backup('b', '2024-01-01T00:00:00Z'),
      backup('c', '2024-01-01T00:00:00Z'),
      backup('a', '2024-01-01T00:00:00Z'),
    ];
    for (const input of [backups, [...backups].reverse()]) {
      const decisions = applyRetention(input, { keepLast: 1 }, NOW);
      expect(decisions.map((d) => d.id)).toEqual(['c', 'b', 'a']);
      expect(kept(decisions)).toEqual(['c: last,newest-successful']);
    }
    // Same day: only the first in that order is the day's newest; 'a' is kept as the oldest.
    expect(kept(applyRetention(backups, { keepDaily: 7 }, NOW))).toEqual(['c: daily,newest-successful', 'a: daily']);
  });

  it('keeps future-dated backups without letting them use up a rule', () => {
    const now = new Date('2024-01-10T12:00:00Z');
    const backups = [...dailySeries('2024-01-01', 5), backup('future', '2024-01-11T03:00:00Z', { verified: true })];
    expect(kept(applyRetention(backups, { keepLast: 2 }, now))).toEqual([
      'future: newest-verified,future', // the only verified backup
      'd05: last,newest-successful',
      'd04: last',
    ]);
    // A backup at exactly `now` is not in the future.
    const atNow = applyRetention([backup('x', now.toISOString())], { keepLast: 1 }, now);
    expect(kept(atNow)).toEqual(['x: last,newest-successful']);
  });

  it('keeps non-completed backups without counting them', () => {
    const backups = [
      backup('c1', '2024-01-01T00:00:00Z'),
      backup('c2', '2024-01-02T00:00:00Z'),
      backup('c3', '2024-01-03T00:00:00Z'),
      backup('failed', '2024-01-04T00:00:00Z', { status: 'failed', tags: ['pin'], verified: true }),
      backup('incomplete', '2024-01-05T00:00:00Z', { status: 'incomplete' }),
      backup('future-failed', '2031-01-01T00:00:00Z', { status: 'failed' }),
    ];
    expect(kept(applyRetention(backups, { keepLast: 2, keepTags: ['pin'] }, NOW))).toEqual([
      'future-failed: future,not-completed',
      'incomplete: not-completed',
      'failed: not-completed',
      'c3: last,newest-successful',
      'c2: last',
    ]);
  });

  it('keeps the newest verified completed backup', () => {
    const backups = [
      backup('v-old', '2024-01-01T00:00:00Z', { verified: true }),
      backup('v', '2024-01-02T00:00:00Z', { verified: true }),
      backup('plain', '2024-01-03T00:00:00Z'),
      backup('v-failed', '2024-01-04T00:00:00Z', { status: 'failed', verified: true }),
      backup('newest', '2024-01-05T00:00:00Z'),
    ];
    expect(kept(applyRetention(backups, { keepLast: 1 }, NOW))).toEqual([
      'newest: last,newest-successful',
      'v-failed: not-completed',
      'v: newest-verified',
    ]);
  });

  it('lists every rule that keeps a backup, in a stable order', () => {
    const backups = dailySeries('2024-01-01', 10).map((b, i) => ({ ...b, tags: i % 3 === 0 ? ['pin'] : [], verified: i === 9 }));
    expect(
      kept(applyRetention(backups, { keepLast: 2, keepDaily: 3, keepWeekly: 2, keepWithin: '4d', keepTags: ['pin'] }, NOW)),
    ).toEqual([
      'd10: last,daily,weekly,within,tag,newest-successful,newest-verified',
      'd09: last,daily,within',
      'd08: daily,within',
      'd07: weekly,within,tag', // Sun 2024-01-07 is the newest of 2024-W01
      'd04: tag',
      'd01: tag',
    ]);
  });

  it('lists the keep-within-* reasons after keep-within and before tag', () => {
    const backups = dailySeries('2024-01-01', 3).map((b) => ({ ...b, tags: ['pin'] }));
    const policy: RetentionPolicy = {
      keepLast: 1,
      keepWithin: '1d',
      keepWithinHourly: '1d',
      keepWithinDaily: '1d',
      keepWithinWeekly: '1d',
      keepWithinMonthly: '1d',
      keepWithinYearly: '1d',
      keepTags: ['pin'],
    };
    expect(kept(applyRetention(backups, policy, NOW))[0]).toBe(
      'd03: last,within,within-hourly,within-daily,within-weekly,within-monthly,within-yearly,tag,newest-successful',
    );
    expect(KEEP_REASONS.slice(KEEP_REASONS.indexOf('within'), KEEP_REASONS.indexOf('tag') + 1)).toEqual([
      'within',
      'within-hourly',
      'within-daily',
      'within-weekly',
      'within-monthly',
      'within-yearly',
      'tag',
    ]);
  });

  it('keeps only what the safety rules keep under an empty policy', () => {
    const backups = dailySeries('2024-01-01', 3);
    expect(kept(applyRetention(backups, {}, NOW))).toEqual(['d03: newest-successful']);
  });

  it('does not mutate its input and returns fresh dates', () => {
    const backups = dailySeries('2024-01-01', 3);
    const copy = structuredClone(backups);
    const decisions = applyRetention(backups, { keepLast: 1 }, NOW);
    expect(backups).toEqual(copy);
    expect(decisions[0]!.createdAt).toEqual(backups[2]!.createdAt);
    expect(decisions[0]!.createdAt).not.toBe(backups[2]!.createdAt);
  });

  it('throws on a malformed policy, duplicate ids and invalid dates', () => {
    const backups = dailySeries('2024-01-01', 2);
    expect(() => applyRetention(backups, { keepDaily: -3 }, NOW)).toThrow(/invalid retention policy: keep-daily/);
    expect(() => applyRetention(backups, { keepWithin: '7x' }, NOW)).toThrow(/unknown unit/);
    expect(() => applyRetention(backups, { keepWithinDaily: '1h30m' }, NOW)).toThrow(/keep-within-daily: invalid duration/);
    expect(() => applyRetention(backups, { keepTags: [[]] }, NOW)).toThrow(/tag group must list at least one tag/);
    expect(() => applyRetention(backups, { keepLast: 1, timeZone: 'Nowhere/City' }, NOW)).toThrow(/time-zone/);
    expect(() => applyRetention([...backups, backups[0]!], { keepLast: 1 }, NOW)).toThrow(/duplicate backup id "d01"/);
    expect(() => applyRetention([backup('bad', 'not a date')], { keepLast: 1 }, NOW)).toThrow(/no valid createdAt/);
    expect(() => applyRetention(backups, { keepLast: 1 }, new Date(Number.NaN))).toThrow(/now/);
  });
});

// ---------------------------------------------------------------------------------------
// Golden files: test/unit/retention-golden/<name>.json. UPDATE_GOLDEN=1 rewrites `expected`.

interface GoldenFile {
  description: string;
  policy: RetentionPolicy;
  now: string;
  backups: (Omit<RetentionCandidate, 'createdAt'> & { createdAt: string })[];
  expected: { id: string; action: 'keep' | 'remove'; reasons: string[] }[];
}

const goldenDir = new URL('./retention-golden/', import.meta.url);
const goldenNames = readdirSync(goldenDir)
  .filter((name) => name.endsWith('.json'))
  .sort();

describe('golden scenarios', () => {
  it('has the scenarios', () => {
    expect(goldenNames.length).toBeGreaterThanOrEqual(8);
  });

  it.each(goldenNames)('%s', (name) => {
    const url = new URL(name, goldenDir);
    const golden = JSON.parse(readFileSync(url, 'utf8')) as GoldenFile;
    const backups = golden.backups.map((b) => ({ ...b, createdAt: new Date(b.createdAt) }));
    const actual = applyRetention(backups, golden.policy, new Date(golden.now)).map(({ id, action, reasons }) => ({
      id,
      action,
      reasons,
    }));
    if (process.env['UPDATE_GOLDEN'] === '1') {
      writeFileSync(url, `${JSON.stringify({ ...golden, expected: actual }, null, 2)}\n`);
      return;
    }
    expect(actual).toEqual(golden.expected);
  });
});
