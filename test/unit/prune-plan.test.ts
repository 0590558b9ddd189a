/**
 * planPrune: the pure half of prune. Examples, then a property test over generated
 * histories, leftovers and policies: the safety rules hold whatever the input.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { IncompleteEntry } from '../../src/catalog/catalog.js';
import type { Sidecar } from '../../src/catalog/sidecar.js';
import { effectivePolicy, removeItem } from '../../src/core/prune.js';
import { MemoryStorage } from '../../src/storage/mem.js';
import { NotFoundError } from '../../src/storage/storage.js';
import { planPrune } from '../../src/core/prune-plan.js';
import { isEmptyPolicy, type RetentionPolicy } from '../../src/retention/policy.js';
import { sampleSidecar } from '../helpers/sidecar-fixture.js';

const NOW = new Date('2026-06-01T12:00:00Z');
const DAY = 86_400_000;
const HOUR = 3_600_000;

function idAt(ms: number, n: number): string {
  const iso = new Date(ms).toISOString(); // 2026-06-01T12:00:00.000Z
  const stamp = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  return `${stamp}-${n.toString(16).padStart(6, '0')}`;
}

function sidecar(ms: number, n: number, extra: { tags?: string[]; verified?: 'passed' | 'failed' | null; globals?: boolean } = {}): Sidecar {
  const id = idAt(ms, n);
  const at = new Date(ms).toISOString();
  return sampleSidecar({
    id,
    profile: 'app',
    startedAt: at,
    finishedAt: at,
    artifact: { file: `${id}.dump`, bytes: 1000 + n },
    globals:
      extra.globals === false
        ? { status: 'skipped', reason: 'disabled' }
        : { status: 'included', file: `${id}.globals.sql`, bytes: 10, sha256: '0'.repeat(64), rolePasswords: true, stages: [] },
    tags: extra.tags ?? [],
    verifications:
      extra.verified == null
        ? []
        : [{ at, level: 'restore', result: extra.verified, durationMs: 1, mismatches: [] }],
  });
}

function leftover(ms: number, n: number, file = 'dump', ageMs = NOW.getTime() - ms): IncompleteEntry {
  const id = idAt(ms, n);
  return { profile: 'app', id, file: `${id}.${file}`, bytes: 500, modifiedAt: new Date(NOW.getTime() - ageMs).toISOString() };
}

describe('planPrune', () => {
  const daily = Array.from({ length: 5 }, (_, i) => sidecar(NOW.getTime() - (i + 1) * DAY, i + 1)); // newest first

  it('keeps by the rules, removes the rest; a backup is sidecar first, then artifact and globals', () => {
    const plan = planPrune(daily, [], { keepLast: 2 }, NOW, DAY);
    expect(plan.items.map((i) => [i.action, i.reasons.join(',')])).toEqual([
      ['keep', 'keep-last,newest-successful'],
      ['keep', 'keep-last'],
      ['remove', 'no-rule'],
      ['remove', 'no-rule'],
      ['remove', 'no-rule'],
    ]);
    const removed = plan.items[2];
    expect(removed?.keys).toEqual([`app/${removed?.id}.json`, `app/${removed?.id}.dump`, `app/${removed?.id}.globals.sql`]);
    expect(removed?.bytes).toBe(1003 + 10);
  });

  it('never removes the newest verified backup, and names the reason', () => {
    const history = daily.map((s, i) => (i === 3 ? { ...sidecar(Date.parse(s.startedAt), 4, { verified: 'passed' }) } : s));
    history[1] = sidecar(Date.parse(daily[1]?.startedAt as string), 2, { verified: 'failed' });
    const plan = planPrune(history, [], { keepLast: 1 }, NOW, DAY);
    expect(plan.items.filter((i) => i.action === 'keep').map((i) => [i.id, i.reasons])).toEqual([
      [daily[0]?.id, ['keep-last', 'newest-successful']],
      [daily[3]?.id, ['newest-verified']],
    ]);
  });

  it('a backup whose latest verification failed is not "verified"', () => {
    const s = sidecar(NOW.getTime() - 3 * DAY, 9);
    s.verifications = [
      { at: '2026-05-30T00:00:00Z', level: 'restore', result: 'passed', durationMs: 1, mismatches: [] },
      { at: '2026-05-31T00:00:00Z', level: 'checksum', result: 'failed', durationMs: 1, mismatches: [] },
    ];
    const plan = planPrune([daily[0] as Sidecar, s], [], { keepLast: 1 }, NOW, DAY);
    expect(plan.items[1]?.action).toBe('remove');
  });

  it('a checksum pass does not make a backup "verified"; one that passed restore keeps that proof through a later checksum pass', () => {
    const checksumOnly = sidecar(NOW.getTime() - 2 * DAY, 8);
    checksumOnly.verifications = [{ at: '2026-05-31T00:00:00Z', level: 'checksum', result: 'passed', durationMs: 1, mismatches: [] }];
    const restored = sidecar(NOW.getTime() - 3 * DAY, 9);
    restored.verifications = [
      { at: '2026-05-30T00:00:00Z', level: 'restore', result: 'passed', durationMs: 1, mismatches: [] },
      { at: '2026-05-31T00:00:00Z', level: 'checksum', result: 'passed', durationMs: 1, mismatches: [] },
    ];
    const plan = planPrune([daily[0] as Sidecar, checksumOnly, restored], [], { keepLast: 1 }, NOW, DAY);
    expect(plan.items.map((i) => [i.id, i.action, i.reasons])).toEqual([
      [daily[0]?.id, 'keep', ['keep-last', 'newest-successful']],
      [checksumOnly.id, 'remove', ['no-rule']],
      [restored.id, 'keep', ['newest-verified']],
    ]);
  });

  it('removes leftovers older than the threshold, keeps younger ones; one entry per id', () => {
    const old = NOW.getTime() - 3 * DAY;
    const young = NOW.getTime() - HOUR;
    const plan = planPrune(
      daily,
      [leftover(old, 100), leftover(old, 100, 'globals.sql', 2 * DAY), leftover(young, 101)],
      { keepLast: 10 },
      NOW,
      DAY,
    );
    const leftovers = plan.items.filter((i) => i.kind === 'leftover');
    expect(leftovers.map((i) => [i.id, i.action, i.reasons[0], i.keys.length, i.bytes])).toEqual([
      [idAt(young, 101), 'keep', 'leftover-recent', 1, 500],
      [idAt(old, 100), 'remove', 'leftover-old', 2, 1000],
    ]);
    // Age counts from the newest file of the leftover.
    expect(leftovers[1]?.createdAt).toBe(new Date(NOW.getTime() - 2 * DAY).toISOString());
  });
});

describe('planPrune: keep-within-* and tag groups', () => {
  // Every 6 hours for 10 days, newest first: 12:00, 06:00, 00:00, 18:00 the day before...
  const sixHourly = Array.from({ length: 40 }, (_, i) =>
    sidecar(NOW.getTime() - (i + 1) * 6 * HOUR, i + 1, { tags: i === 20 ? ['db', 'monthly'] : i === 30 ? ['db'] : [] }),
  );

  it('names the keep-within-* rules as keep-within-hourly ... keep-within-yearly', () => {
    const plan = planPrune(
      sixHourly,
      [],
      { keepWithin: '6h', keepWithinHourly: '12h', keepWithinDaily: '2d', keepWithinWeekly: '1d', keepWithinMonthly: '1d', keepWithinYearly: '1d' },
      NOW,
      DAY,
    );
    const kept = plan.items.filter((i) => i.action === 'keep').map((i) => `${i.createdAt.slice(5, 13)} ${i.reasons.join(',')}`);
    expect(kept).toEqual([
      '06-01T06 keep-within,keep-within-hourly,keep-within-daily,keep-within-weekly,keep-within-monthly,keep-within-yearly,newest-successful',
      '06-01T00 keep-within-hourly',
      // Sunday 31 May: another day, ISO week and month than Monday 1 June, inside the 1d window.
      '05-31T18 keep-within-daily,keep-within-weekly,keep-within-monthly',
      '05-30T18 keep-within-daily',
    ]);
    expect(plan.items.filter((i) => i.action === 'remove').every((i) => i.reasons.join() === 'no-rule')).toBe(true);
  });

  it('keeps by tag group: both tags, or either', () => {
    const tagged = (keepTags: RetentionPolicy['keepTags']) =>
      planPrune(sixHourly, [], { keepTags }, NOW, DAY)
        .items.filter((i) => i.reasons.includes('keep-tag'))
        .map((i) => i.id);
    expect(tagged([['db', 'monthly']])).toEqual([sixHourly[20]?.id]);
    expect(tagged(['db', 'monthly'])).toEqual([sixHourly[20]?.id, sixHourly[30]?.id]);
  });
});

describe('effectivePolicy', () => {
  it('flags replace the configured rules key by key', () => {
    expect(
      effectivePolicy({ keepDaily: 7, keepWeekly: 4, timeZone: 'Europe/Berlin' }, { keepDaily: 2, keepLast: undefined, keepTags: ['x'] }),
    ).toEqual({ keepDaily: 2, keepWeekly: 4, keepTags: ['x'], timeZone: 'Europe/Berlin' });
    expect(effectivePolicy(undefined, {})).toEqual({});
  });

  it('takes the keep-within-* rules from flags and config; --keep-tag replaces all configured tag groups', () => {
    expect(
      effectivePolicy(
        { keepWithinDaily: '30d', keepWithinMonthly: '1y', keepTags: ['pre-migration', ['db', 'monthly']] },
        { keepWithinDaily: '7d', keepWithinHourly: '2d', keepTags: [['release', 'production']] },
      ),
    ).toEqual({ keepWithinHourly: '2d', keepWithinDaily: '7d', keepWithinMonthly: '1y', keepTags: [['release', 'production']] });
    expect(effectivePolicy({ keepWithinWeekly: '1y', keepWithinYearly: '10y' }, { keepWithinWeekly: '0d' })).toEqual({
      keepWithinWeekly: '0d',
      keepWithinYearly: '10y',
    });
  });
});

// ---------------------------------------------------------------------------------------
// Properties

const START = NOW.getTime() - 800 * DAY;
const END = NOW.getTime() + 3 * DAY; // a few backups from the future (clock skew)

const sidecarArb = fc
  .record({
    ms: fc.integer({ min: START, max: END }).map((ms) => Math.floor(ms / 1000) * 1000),
    tags: fc.subarray(['pin', 'nightly']),
    verified: fc.constantFrom<'passed' | 'failed' | null>('passed', 'failed', null, null),
    globals: fc.boolean(),
  })
  .map(({ ms, ...extra }) => ({ ms, extra }));

const historyArb = fc
  .array(sidecarArb, { maxLength: 40 })
  .map((entries) => entries.map(({ ms, extra }, n) => sidecar(ms, n + 1, extra)));

const leftoversArb = fc
  .array(fc.record({ ms: fc.integer({ min: START, max: NOW.getTime() }), age: fc.integer({ min: 0, max: 10 * DAY }) }), {
    maxLength: 8,
  })
  .map((entries) => entries.map(({ ms, age }, n) => leftover(ms, 0x100000 + n, 'dump', age)));

const countArb = fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 6 }));
const policyArb: fc.Arbitrary<RetentionPolicy> = fc
  .record(
    {
      keepLast: countArb,
      keepDaily: countArb,
      keepWeekly: countArb,
      keepMonthly: countArb,
      keepWithin: fc.constantFrom('90min', '2d', '2w', '1m', '1y'),
      keepWithinHourly: fc.constantFrom('6h', '1d', '1d1m'),
      keepWithinDaily: fc.constantFrom('3d', '2w', '1m1y'),
      keepWithinWeekly: fc.constantFrom('1m', '3m'),
      keepWithinMonthly: fc.constantFrom('6m', '1y'),
      keepWithinYearly: fc.constantFrom('2y', '10y'),
      keepTags: fc.constantFrom<RetentionPolicy['keepTags']>(['pin'], [['pin', 'nightly']], ['nightly', ['pin']]),
      timeZone: fc.constantFrom('UTC', 'Europe/Berlin', 'America/New_York'),
    },
    { requiredKeys: [] },
  )
  .filter((p) => !isEmptyPolicy(p));

describe('planPrune properties', () => {
  it('never removes the newest backup or the newest verified one; removes only what it may', () => {
    fc.assert(
      fc.property(historyArb, leftoversArb, policyArb, fc.integer({ min: 0, max: 5 * DAY }), (history, incomplete, policy, leftoverAge) => {
        const plan = planPrune(history, incomplete, policy, NOW, leftoverAge);
        const past = history.filter((s) => Date.parse(s.startedAt) <= NOW.getTime());
        const newestFirst = (list: Sidecar[]) =>
          [...list].sort((a, b) => Date.parse(b.startedAt) - Date.parse(a.startedAt) || (a.id < b.id ? 1 : -1))[0];
        const newest = newestFirst(past);
        const newestVerified = newestFirst(
          past.filter((s) => s.verifications.length > 0 && s.verifications.every((v) => v.result === 'passed')),
        );
        const action = new Map(plan.items.filter((i) => i.kind === 'backup').map((i) => [i.id, i]));
        expect(action.size).toBe(history.length);
        if (newest) expect(action.get(newest.id)?.action).toBe('keep');
        if (newestVerified) expect(action.get(newestVerified.id)?.action).toBe('keep');
        for (const s of history) {
          const item = action.get(s.id);
          if (Date.parse(s.startedAt) > NOW.getTime()) expect(item?.action).toBe('keep');
          const pinned = policy.keepTags?.some((group) => (typeof group === 'string' ? group === 'pin' : group.join() === 'pin'));
          if (s.tags.includes('pin') && pinned) expect(item?.action).toBe('keep');
          if (s.tags.includes('pin') && s.tags.includes('nightly') && policy.keepTags !== undefined) expect(item?.action).toBe('keep');
          // Every key belongs to the backup, and the sidecar goes first.
          expect(item?.keys[0]).toBe(`app/${s.id}.json`);
          for (const key of item?.keys ?? []) expect(key.startsWith(`app/${s.id}.`)).toBe(true);
          expect(item?.reasons.length).toBeGreaterThan(0);
          if (item?.action === 'remove') expect(item.reasons).toEqual(['no-rule']);
        }
        for (const item of plan.items.filter((i) => i.kind === 'leftover')) {
          const age = NOW.getTime() - Date.parse(item.createdAt);
          expect(item.action).toBe(age >= leftoverAge ? 'remove' : 'keep');
        }
        // History non-empty: something is always kept.
        if (past.length > 0) expect(plan.items.some((i) => i.kind === 'backup' && i.action === 'keep')).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('removeItem: an unfinished backup', () => {
  it('is not removed when something is at its sidecar\'s key (published since the listing, or unreadable), and is once nothing is', async () => {
    const storage = MemoryStorage.named(`prune-remove-${process.pid}-${Date.now()}`);
    const id = '20260101T000000Z-abcdef';
    await storage.putBytes(`app/${id}.dump.zst`, Buffer.from('dump'));
    await storage.putBytes(`app/${id}.json`, Buffer.from('{}'));
    const leftover = { kind: 'leftover' as const, profile: 'app', id, keys: [`app/${id}.dump.zst`] };
    expect(await removeItem(storage, leftover, { unfinished: true })).toMatch(/something is at its sidecar's key app\/20260101T000000Z-abcdef\.json: its files are not removed/);
    expect((await storage.stat(`app/${id}.dump.zst`)).size).toBe(4);
    await storage.remove(`app/${id}.json`);
    expect(await removeItem(storage, leftover, { unfinished: true })).toBeNull();
    await expect(storage.stat(`app/${id}.dump.zst`)).rejects.toBeInstanceOf(NotFoundError);
  });
});
