import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyRetention,
  isEmptyPolicy,
  type RetentionCandidate,
  type RetentionDecision,
  type RetentionPolicy,
  type TagGroup,
} from '../../src/retention/policy.js';
import { localFields, periodKey, type PeriodKind } from '../../src/retention/periods.js';

const NOW = new Date('2023-06-01T12:00:00Z');
const START = Date.parse('2020-06-01T00:00:00Z');
const END = Date.parse('2023-09-01T00:00:00Z'); // some backups are dated after NOW
const TAGS = ['pin', 'nightly', 'weekly', 'pre-upgrade'] as const;
// A few shared instants so that equal timestamps occur often; one is exactly NOW.
const SHARED_TIMES = [Date.parse('2023-05-31T23:30:00Z'), NOW.getTime(), Date.parse('2022-10-30T01:30:00Z')];

const createdAtArb = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: START, max: END }) },
  { weight: 1, arbitrary: fc.constantFrom(...SHARED_TIMES) },
);

const candidateArb: fc.Arbitrary<RetentionCandidate> = fc.record({
  id: fc.string({ minLength: 1, maxLength: 6 }),
  createdAt: createdAtArb.map((ms) => new Date(ms)),
  tags: fc.subarray([...TAGS]),
  status: fc.oneof(
    { weight: 4, arbitrary: fc.constant('completed' as const) },
    { weight: 1, arbitrary: fc.constantFrom('failed' as const, 'incomplete' as const) },
  ),
  verified: fc.boolean(),
});

const historyArb = fc.uniqueArray(candidateArb, { maxLength: 60, selector: (b) => b.id });

const countArb = fc.oneof({ weight: 1, arbitrary: fc.constant(-1) }, { weight: 5, arbitrary: fc.integer({ min: 0, max: 12 }) });

// Durations in any unit order, months written m and mo.
const withinArb = fc.constantFrom('90min', '36h', '7d', '2w', '1mo', '1y6m', '3d12h', '12h3d', '1y1d1m', '1m14d', '1d2h', '0d');
// A tag, or an AND group of tags.
const tagGroupArb: fc.Arbitrary<TagGroup> = fc.oneof(fc.constantFrom(...TAGS), fc.subarray([...TAGS], { minLength: 1, maxLength: 3 }));
const tagGroupsArb = fc.array(tagGroupArb, { minLength: 1, maxLength: 3 });

const ruleArbs = {
  keepLast: countArb,
  keepHourly: countArb,
  keepDaily: countArb,
  keepWeekly: countArb,
  keepMonthly: countArb,
  keepYearly: countArb,
  keepWithin: withinArb,
  keepWithinHourly: withinArb,
  keepWithinDaily: withinArb,
  keepWithinWeekly: withinArb,
  keepWithinMonthly: withinArb,
  keepWithinYearly: withinArb,
  keepTags: tagGroupsArb,
};
type RuleKey = keyof typeof ruleArbs;
const RULE_KEYS = Object.keys(ruleArbs) as RuleKey[];

const timeZoneArb = fc.constantFrom('UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Australia/Lord_Howe');

const anyPolicyArb: fc.Arbitrary<RetentionPolicy> = fc.record(
  { ...ruleArbs, timeZone: timeZoneArb },
  { requiredKeys: [] },
);
const policyArb = anyPolicyArb.filter((p) => !isEmptyPolicy(p));

function keptIds(decisions: RetentionDecision[]): Set<string> {
  return new Set(decisions.filter((d) => d.action === 'keep').map((d) => d.id));
}

/** Newest first, ties by id descending: the documented order. */
function newest(backups: RetentionCandidate[]): RetentionCandidate | undefined {
  return [...backups].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))[0];
}

const RUNS = { numRuns: 300 };

describe('applyRetention properties', () => {
  it('keeps the newest completed backup, the newest verified completed backup and every future backup', () => {
    fc.assert(
      fc.property(historyArb, policyArb, (backups, policy) => {
        const kept = keptIds(applyRetention(backups, policy, NOW));
        const completed = backups.filter((b) => b.status === 'completed');
        const newestCompleted = newest(completed);
        if (newestCompleted) expect(kept.has(newestCompleted.id)).toBe(true);
        const newestVerified = newest(completed.filter((b) => b.verified));
        if (newestVerified) expect(kept.has(newestVerified.id)).toBe(true);
        for (const b of backups) {
          if (b.createdAt.getTime() > NOW.getTime()) expect(kept.has(b.id)).toBe(true);
          if (b.status !== 'completed') expect(kept.has(b.id)).toBe(true);
        }
      }),
      RUNS,
    );
  });

  it('keeps the safety set even under a policy that keeps almost nothing', () => {
    const minimalPolicyArb = fc.constantFrom<RetentionPolicy>(
      { keepTags: ['no-such-tag'] },
      { keepTags: [['pin', 'no-such-tag']] }, // an AND group nothing carries
      { keepLast: 1 },
      { keepWithin: '1min' },
      { keepWithinDaily: '1min' },
      { keepWithinYearly: '1min' },
    );
    fc.assert(
      fc.property(historyArb, minimalPolicyArb, (backups, policy) => {
        const decisions = applyRetention(backups, policy, NOW);
        const kept = keptIds(decisions);
        const completed = backups.filter((b) => b.status === 'completed');
        const past = completed.filter((b) => b.createdAt.getTime() <= NOW.getTime());
        const safety = new Set(
          [newest(past) ?? newest(completed), newest(past.filter((b) => b.verified)) ?? newest(completed.filter((b) => b.verified))]
            .filter((b) => b !== undefined)
            .map((b) => b.id),
        );
        for (const b of backups) {
          if (b.status !== 'completed' || b.createdAt.getTime() > NOW.getTime()) safety.add(b.id);
        }
        for (const id of safety) expect(kept.has(id)).toBe(true);
        // With a tag rule that matches nothing, nothing but the safety set is kept.
        if (policy.keepTags) expect([...kept].sort()).toEqual([...safety].sort());
      }),
      RUNS,
    );
  });

  it('returns exactly one decision per input, newest first, with reasons exactly when kept', () => {
    fc.assert(
      fc.property(historyArb, policyArb, (backups, policy) => {
        const decisions = applyRetention(backups, policy, NOW);
        expect(decisions.map((d) => d.id).sort()).toEqual(backups.map((b) => b.id).sort());
        for (const d of decisions) {
          if (d.action === 'keep') expect(d.reasons.length).toBeGreaterThan(0);
          else expect(d.reasons).toEqual([]);
          expect(new Set(d.reasons).size).toBe(d.reasons.length);
        }
        for (let i = 1; i < decisions.length; i++) {
          const prev = decisions[i - 1]!;
          const cur = decisions[i]!;
          const dt = prev.createdAt.getTime() - cur.createdAt.getTime();
          expect(dt > 0 || (dt === 0 && prev.id > cur.id)).toBe(true);
        }
      }),
      RUNS,
    );
  });

  it('is deterministic and independent of the input order', () => {
    const arb = historyArb.chain((backups) =>
      fc.tuple(
        fc.constant(backups),
        fc.shuffledSubarray(backups, { minLength: backups.length, maxLength: backups.length }),
        policyArb,
      ),
    );
    fc.assert(
      fc.property(arb, ([backups, shuffled, policy]) => {
        const first = applyRetention(backups, policy, NOW);
        expect(applyRetention(backups, policy, NOW)).toEqual(first);
        expect(applyRetention(shuffled, policy, NOW)).toEqual(first);
      }),
      RUNS,
    );
  });

  it('keep-last N keeps at least min(N, number of completed backups)', () => {
    fc.assert(
      fc.property(historyArb, policyArb, countArb, (backups, policy, n) => {
        const decisions = applyRetention(backups, { ...policy, keepLast: n }, NOW);
        const completed = backups.filter((b) => b.status === 'completed');
        const keptCompleted = decisions.filter((d) => d.action === 'keep' && completed.some((b) => b.id === d.id));
        const wanted = n === -1 ? completed.length : Math.min(n, completed.length);
        expect(keptCompleted.length).toBeGreaterThanOrEqual(wanted);
      }),
      RUNS,
    );
  });

  it('is monotonic: adding a rule never removes a backup that was kept', () => {
    const arb = fc.tuple(historyArb, policyArb, fc.constantFrom(...RULE_KEYS)).chain(([backups, policy, key]) =>
      fc.tuple(fc.constant(backups), fc.constant(policy), fc.constant(key), ruleArbs[key] as fc.Arbitrary<unknown>),
    );
    fc.assert(
      fc.property(arb, ([backups, policy, key, value]) => {
        if (policy[key] !== undefined) return; // only ADD a rule
        const before = keptIds(applyRetention(backups, policy, NOW));
        const after = keptIds(applyRetention(backups, { ...policy, [key]: value }, NOW));
        for (const id of before) expect(after.has(id)).toBe(true);
      }),
      RUNS,
    );
  });

  it('is monotonic in counts and tags: raising a count or adding a tag never removes a kept backup', () => {
    const countKeys = ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'] as const;
    fc.assert(
      fc.property(
        historyArb,
        policyArb,
        fc.constantFrom(...countKeys),
        fc.integer({ min: 0, max: 12 }),
        fc.integer({ min: 0, max: 12 }),
        fc.constantFrom(...TAGS),
        (backups, policy, key, a, b, tag) => {
          const [low, high] = a <= b ? [a, b] : [b, a];
          const lowKept = keptIds(applyRetention(backups, { ...policy, [key]: low }, NOW));
          for (const higher of [high, -1]) {
            const highKept = keptIds(applyRetention(backups, { ...policy, [key]: higher }, NOW));
            for (const id of lowKept) expect(highKept.has(id)).toBe(true);
          }
          const moreTags = keptIds(applyRetention(backups, { ...policy, keepTags: [...(policy.keepTags ?? []), tag] }, NOW));
          for (const id of keptIds(applyRetention(backups, policy, NOW))) expect(moreTags.has(id)).toBe(true);
        },
      ),
      RUNS,
    );
  });

  it('a counting rule keeps between 1 and N backups (the oldest is kept only while count is left)', () => {
    const periodKeys = ['keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'] as const;
    const reasonOf = { keepHourly: 'hourly', keepDaily: 'daily', keepWeekly: 'weekly', keepMonthly: 'monthly', keepYearly: 'yearly' } as const;
    fc.assert(
      fc.property(historyArb, fc.constantFrom(...periodKeys), fc.integer({ min: 1, max: 12 }), timeZoneArb, (backups, key, n, timeZone) => {
        const decisions = applyRetention(backups, { [key]: n, timeZone }, NOW);
        const byRule = decisions.filter((d) => d.reasons.includes(reasonOf[key]));
        const eligible = backups.filter((b) => b.status === 'completed' && b.createdAt.getTime() <= NOW.getTime());
        expect(byRule.length).toBeLessThanOrEqual(Math.min(n, eligible.length));
        expect(byRule.length).toBeGreaterThanOrEqual(Math.min(1, eligible.length));
      }),
      RUNS,
    );
  });
  it('a tag group matches fewer backups as it grows, more groups match more', () => {
    const tagged = (backups: RetentionCandidate[], keepTags: TagGroup[]) =>
      new Set(applyRetention(backups, { keepTags }, NOW).filter((d) => d.reasons.includes('tag')).map((d) => d.id));
    fc.assert(
      fc.property(historyArb, fc.subarray([...TAGS], { minLength: 1 }), fc.constantFrom(...TAGS), (backups, group, extra) => {
        const narrow = tagged(backups, [[...group, extra]]);
        const wide = tagged(backups, [group]);
        const either = tagged(backups, [group, extra]);
        for (const id of narrow) expect(wide.has(id)).toBe(true);
        for (const id of wide) expect(either.has(id)).toBe(true);
        // Exactly the completed backups that carry every tag of the group.
        const expected = backups.filter((b) => b.status === 'completed' && group.every((t) => b.tags.includes(t))).map((b) => b.id);
        expect([...wide].sort()).toEqual(expected.sort());
      }),
      RUNS,
    );
  });

  it('keep-within-P D keeps the newest backup of each period among those keep-within D keeps, and the oldest if it is among them', () => {
    const rules: [keyof RetentionPolicy, PeriodKind, string][] = [
      ['keepWithinHourly', 'hourly', 'within-hourly'],
      ['keepWithinDaily', 'daily', 'within-daily'],
      ['keepWithinWeekly', 'weekly', 'within-weekly'],
      ['keepWithinMonthly', 'monthly', 'within-monthly'],
      ['keepWithinYearly', 'yearly', 'within-yearly'],
    ];
    fc.assert(
      fc.property(historyArb, fc.constantFrom(...rules), withinArb, timeZoneArb, (backups, [key, period, reason], within, timeZone) => {
        const window = applyRetention(backups, { keepWithin: within, timeZone }, NOW).filter((d) => d.reasons.includes('within'));
        const eligible = applyRetention(backups, { keepLast: -1, timeZone }, NOW).filter((d) => d.reasons.includes('last'));
        const oldest = eligible.at(-1)?.id;
        const expected = new Set<string>();
        const periods = new Set<string>();
        for (const d of window) {
          const bucket = periodKey(period, localFields(d.createdAt.getTime(), timeZone));
          if (!periods.has(bucket) || d.id === oldest) expected.add(d.id);
          periods.add(bucket);
        }
        const actual = applyRetention(backups, { [key]: within, timeZone }, NOW)
          .filter((d) => d.reasons.includes(reason as never))
          .map((d) => d.id);
        expect(actual.sort()).toEqual([...expected].sort());
      }),
      RUNS,
    );
  });

  it('a longer keep-within-* window never removes a backup a shorter one keeps', () => {
    const keys = ['keepWithin', 'keepWithinHourly', 'keepWithinDaily', 'keepWithinWeekly', 'keepWithinMonthly', 'keepWithinYearly'] as const;
    const unitArb = fc.constantFrom('h', 'd', 'w', 'm', 'y');
    fc.assert(
      fc.property(
        historyArb,
        fc.constantFrom(...keys),
        unitArb,
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 0, max: 40 }),
        timeZoneArb,
        (backups, key, unit, short, more, timeZone) => {
          const shorter = keptIds(applyRetention(backups, { [key]: `${short}${unit}`, timeZone }, NOW));
          const longer = keptIds(applyRetention(backups, { [key]: `${short + more}${unit}`, timeZone }, NOW));
          for (const id of shorter) expect(longer.has(id)).toBe(true);
        },
      ),
      RUNS,
    );
  });
});

describe('localFields', () => {
  // 'UTC' is read from Date's UTC fields, without ICU; 'Etc/UTC' (the same zone) through ICU.
  it('reads the same fields for UTC as ICU does, across the whole range of Date', () => {
    const instantArb = fc.oneof(
      fc.integer({ min: -8.64e15, max: 8.64e15 }),
      fc.integer({ min: -62_198_755_200_000, max: -62_135_596_800_000 }), // around year 1 (1 BC is year 0)
      fc.integer({ min: START, max: END }),
    );
    fc.assert(
      fc.property(instantArb, (instant) => {
        expect(localFields(instant, 'UTC')).toEqual(localFields(instant, 'Etc/UTC'));
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses an instant outside the range of Date, for UTC too', () => {
    expect(() => localFields(8.64e15 + 1, 'UTC')).toThrow(RangeError);
    expect(() => localFields(Number.NaN, 'UTC')).toThrow(RangeError);
  });
});
