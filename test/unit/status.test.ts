import type { ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunEntry } from '../../src/catalog/runlog.js';
import { parseRunLog } from '../../src/catalog/runlog-schema.js';
import type { Sidecar, Verification } from '../../src/catalog/sidecar.js';
import { parseFixedDuration } from '../../src/config/duration.js';
import {
  evaluateProfile,
  failedSinceSuccess,
  CATCH_UP_MAX,
  missingCopies,
  NO_THRESHOLDS,
  profilesInListing,
  resolveThresholds,
  runIsRunning,
  type StatusCheck,
  type StatusThresholds,
  uncopiedNewest,
} from '../../src/core/status.js';
import { renderPrometheus } from '../../src/output/prometheus.js';
import { Catalog } from '../../src/catalog/catalog.js';
import { appendRun } from '../../src/catalog/runlog.js';
import { backupsToCatchUp } from '../../src/core/copy.js';
import { silentReporter } from '../../src/core/runtime.js';
import { MemoryStorage } from '../../src/storage/mem.js';
import { sampleSidecar } from '../helpers/sidecar-fixture.js';
import { currentBootId, deadPid, sleeper } from '../helpers/process.js';

const NOW = new Date('2026-11-23T12:00:00Z');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function at(msBeforeNow: number): string {
  return new Date(NOW.getTime() - msBeforeNow).toISOString();
}

function idAt(iso: string, n: number): string {
  return `${iso.replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z')}-${n.toString(16).padStart(6, '0')}`;
}

let counter = 0;

/** A completed backup that started `ago` ms before NOW and took 1 minute. */
function backup(ago: number, options: { bytes?: number; verifications?: Verification[]; schemaOnly?: boolean } = {}): Sidecar {
  const startedAt = at(ago);
  const id = idAt(startedAt, ++counter);
  return sampleSidecar({
    id,
    profile: 'app',
    startedAt,
    finishedAt: at(ago - 60_000),
    durationMs: 60_000,
    dump: { schemaOnly: options.schemaOnly ?? false },
    artifact: { file: `${id}.dump`, bytes: options.bytes ?? 1_000_000 },
    globals: { status: 'skipped', reason: 'disabled' },
    verifications: options.verifications ?? [],
  });
}

function verification(ago: number, result: 'passed' | 'failed' = 'passed', level: Verification['level'] = 'restore'): Verification {
  return { at: at(ago), level, result, durationMs: 1000, mismatches: [], ...(result === 'failed' ? { error: 'row counts differ' } : {}) };
}

function run(ago: number, result: RunEntry['result'], command = 'create', exitCode = result === 'succeeded' ? 0 : 1): RunEntry {
  return {
    command,
    profile: 'app',
    startedAt: at(ago + 30_000),
    finishedAt: at(ago),
    durationMs: 30_000,
    result,
    exitCode,
    ...(result === 'succeeded' ? {} : { error: 'connection refused' }),
  };
}

function thresholds(options: { maxAge?: string; maxVerifyAge?: string; minSizeRatio?: number; allowFailures?: boolean } = {}): StatusThresholds {
  return {
    maxAge: options.maxAge ? { text: options.maxAge, ms: parseFixedDuration(options.maxAge), source: '--max-age' } : null,
    maxVerifyAge: options.maxVerifyAge ? { text: options.maxVerifyAge, ms: parseFixedDuration(options.maxVerifyAge), source: '--max-verify-age' } : null,
    minSizeRatio: options.minSizeRatio ?? null,
    allowFailures: options.allowFailures ?? false,
  };
}

const ALL = { maxAge: '25h', maxVerifyAge: '8d', minSizeRatio: 0.5 };

interface Case {
  name: string;
  backups: Sidecar[];
  runs?: RunEntry[];
  thresholds: StatusThresholds;
  broken: StatusCheck[];
}

const CASES: Case[] = [
  {
    name: 'fresh, verified, steady size: healthy',
    backups: [backup(2 * HOUR, { verifications: [verification(HOUR)] }), backup(26 * HOUR), backup(50 * HOUR)],
    thresholds: thresholds(ALL),
    broken: [],
  },
  {
    name: 'stale: the newest backup is older than --max-age',
    backups: [backup(30 * HOUR, { verifications: [verification(HOUR)] }), backup(54 * HOUR)],
    thresholds: thresholds(ALL),
    broken: ['age'],
  },
  {
    name: 'stale but no --max-age: not checked',
    backups: [backup(30 * DAY)],
    thresholds: NO_THRESHOLDS,
    broken: [],
  },
  {
    name: 'never backed up, --max-age given: broken',
    backups: [],
    thresholds: thresholds({ maxAge: '25h' }),
    broken: ['age'],
  },
  {
    name: 'never backed up, no thresholds: reported, not broken',
    backups: [],
    thresholds: NO_THRESHOLDS,
    broken: [],
  },
  {
    name: 'shrunken: less than half the median of the previous five',
    backups: [
      backup(HOUR, { bytes: 400_000, verifications: [verification(HOUR / 2)] }),
      backup(25 * HOUR, { bytes: 1_000_000 }),
      backup(49 * HOUR, { bytes: 1_100_000 }),
      backup(73 * HOUR, { bytes: 900_000 }),
    ],
    thresholds: thresholds(ALL),
    broken: ['size'],
  },
  {
    name: 'shrunken, but no --min-size-ratio: not checked',
    backups: [backup(HOUR, { bytes: 1 }), backup(25 * HOUR, { bytes: 1_000_000 })],
    thresholds: thresholds({ maxAge: '25h' }),
    broken: [],
  },
  {
    name: 'a small schema-only backup is not compared with full ones',
    backups: [
      backup(HOUR, { bytes: 10_000, schemaOnly: true, verifications: [verification(HOUR / 2)] }),
      backup(25 * HOUR, { bytes: 1_000_000 }),
      backup(49 * HOUR, { bytes: 1_000_000 }),
    ],
    thresholds: thresholds(ALL),
    broken: [],
  },
  {
    name: 'the first backup has nothing to compare with',
    backups: [backup(HOUR, { bytes: 5, verifications: [verification(HOUR / 2)] })],
    thresholds: thresholds(ALL),
    broken: [],
  },
  {
    name: 'unverified: never verified with --max-verify-age',
    backups: [backup(HOUR), backup(25 * HOUR)],
    thresholds: thresholds(ALL),
    broken: ['verification'],
  },
  {
    name: 'unverified: the last passed verification is too old',
    backups: [backup(HOUR), backup(10 * DAY, { verifications: [verification(9 * DAY)] })],
    thresholds: thresholds(ALL),
    broken: ['verification'],
  },
  {
    name: 'a failed last verification is broken even without --max-verify-age',
    backups: [backup(HOUR, { verifications: [verification(3 * HOUR / 4), verification(HOUR / 2, 'failed')] })],
    thresholds: NO_THRESHOLDS,
    broken: ['verification'],
  },
  {
    name: "a failed verification stays broken when ANOTHER backup passes later (verify --all walks newest first)",
    backups: [backup(HOUR, { verifications: [verification(HOUR / 2)] }), backup(25 * HOUR, { verifications: [verification(24 * HOUR, 'failed')] })],
    thresholds: thresholds(ALL),
    broken: ['verification'],
  },
  {
    name: 'a failed verification followed by a passed one of the SAME backup is fine',
    backups: [backup(HOUR, { verifications: [verification(HOUR / 2)] }), backup(25 * HOUR, { verifications: [verification(24 * HOUR, 'failed'), verification(2 * HOUR)] })],
    thresholds: thresholds(ALL),
    broken: [],
  },
  {
    name: 'a failed restore-level verification stays broken after a later CHECKSUM or ARCHIVE pass of the same backup',
    backups: [
      backup(HOUR, {
        verifications: [verification(50 * 60_000, 'failed', 'restore'), verification(40 * 60_000, 'passed', 'checksum'), verification(30 * 60_000, 'passed', 'archive')],
      }),
    ],
    thresholds: NO_THRESHOLDS,
    broken: ['verification'],
  },
  {
    name: '--max-verify-age: a recent CHECKSUM pass is no proof that a backup restores',
    backups: [backup(HOUR, { verifications: [verification(HOUR / 2, 'passed', 'checksum'), verification(10 * DAY, 'passed', 'restore')] })],
    thresholds: thresholds(ALL),
    broken: ['verification'],
  },
  {
    name: 'a failed checksum verification is answered by a later restore-level pass',
    backups: [backup(HOUR, { verifications: [verification(50 * 60_000, 'failed', 'checksum'), verification(40 * 60_000, 'passed', 'restore')] })],
    thresholds: NO_THRESHOLDS,
    broken: [],
  },
  {
    name: 'failures since the last success',
    backups: [backup(26 * HOUR, { verifications: [verification(HOUR)] })],
    runs: [run(25 * HOUR, 'succeeded'), run(2 * HOUR, 'failed'), run(HOUR, 'interrupted', 'create', 130)],
    thresholds: thresholds({ maxVerifyAge: '8d' }),
    broken: ['failures'],
  },
  {
    name: 'failures since the last success, --allow-failures',
    backups: [backup(26 * HOUR, { verifications: [verification(HOUR)] })],
    runs: [run(2 * HOUR, 'failed')],
    thresholds: thresholds({ maxVerifyAge: '8d', allowFailures: true }),
    broken: [],
  },
  {
    name: 'failures before the last success do not count',
    backups: [backup(2 * HOUR, { verifications: [verification(HOUR)] })],
    runs: [run(50 * HOUR, 'failed'), run(26 * HOUR, 'failed'), run(2 * HOUR - 60_000, 'succeeded')],
    thresholds: thresholds(ALL),
    broken: [],
  },
  {
    name: 'never backed up and failing: age and failures',
    backups: [],
    runs: [run(3 * HOUR, 'failed'), run(2 * HOUR, 'failed')],
    thresholds: thresholds({ maxAge: '25h' }),
    broken: ['age', 'failures'],
  },
  {
    name: 'a failed prune counts until a prune succeeds, whatever create does',
    backups: [backup(HOUR)],
    runs: [run(5 * HOUR, 'failed', 'prune'), run(HOUR / 2, 'succeeded')],
    thresholds: thresholds({ maxAge: '25h' }),
    broken: ['failures'],
  },
  {
    name: 'stale, shrunken, unverified and failing at once',
    backups: [backup(40 * HOUR, { bytes: 10 }), backup(64 * HOUR), backup(88 * HOUR)],
    runs: [run(HOUR, 'failed')],
    thresholds: thresholds(ALL),
    broken: ['age', 'size', 'verification', 'failures'],
  },
];

describe('evaluateProfile', () => {
  it.each(CASES)('$name', ({ backups, runs, thresholds: t, broken }) => {
    const status = evaluateProfile({ profile: 'app', storage: '/b', backups, runs: runs ?? [], thresholds: t, now: NOW });
    expect(status.problems.map((p) => p.check)).toEqual(broken);
    expect(status.healthy).toBe(broken.length === 0);
    for (const problem of status.problems) expect(problem.message).not.toBe('');
  });

  it('describes the newest backup, its size ratio, the last verification and failures', () => {
    const newest = backup(2 * HOUR, { bytes: 500_000, verifications: [verification(HOUR, 'passed', 'restore')] });
    const backups = [backup(50 * HOUR, { bytes: 1_200_000 }), newest, backup(26 * HOUR, { bytes: 1_000_000 })];
    const failed = run(30 * 60_000, 'failed', 'create', 2);
    const status = evaluateProfile({ profile: 'app', storage: '/b', backups, runs: [failed], thresholds: thresholds(ALL), now: NOW });
    expect(status.backups).toBe(3);
    expect(status.lastBackup).toMatchObject({ id: newest.id, bytes: 500_000, ageSeconds: 2 * 3600 - 60, durationMs: 60_000 });
    expect(status.size).toEqual({ bytes: 500_000, previousMedianBytes: 1_100_000, previousCount: 2, ratio: 500_000 / 1_100_000 });
    expect(status.lastVerification).toMatchObject({ backupId: newest.id, level: 'restore', result: 'passed', ageSeconds: 3600 });
    expect(status.failedRunsSinceSuccess).toBe(1);
    expect(status.failedRuns).toEqual([failed]);
    expect(status.thresholds).toEqual({ maxAge: '25h', maxVerifyAge: '8d', minSizeRatio: 0.5, allowFailures: false });
    expect(status.problems).toEqual([
      { check: 'size', message: expect.stringMatching(/^the newest backup \(\S+\) is 488 KiB, 0\.45 of the median 1\.05 MiB of the previous 2/) },
      { check: 'failures', message: '1 failed run since the last success; the latest: create failed 30 min ago (exit 2): connection refused' },
    ]);
  });

  it('compares with the median of at most five previous backups', () => {
    const sizes = [100, 1_000, 1_000, 1_000, 1_000, 1_000, 1];
    const backups = sizes.map((bytes, i) => backup((i + 1) * DAY, { bytes }));
    const status = evaluateProfile({ profile: 'app', storage: '/b', backups, runs: [], thresholds: thresholds({ minSizeRatio: 0.5 }), now: NOW });
    expect(status.size).toMatchObject({ previousCount: 5, previousMedianBytes: 1_000, ratio: 0.1 });
    expect(status.problems.map((p) => p.check)).toEqual(['size']);
  });

  it('names the age in the message', () => {
    const status = evaluateProfile({
      profile: 'app',
      storage: '/b',
      backups: [backup(30 * HOUR + 60_000)],
      runs: [],
      thresholds: thresholds({ maxAge: '25h' }),
      now: NOW,
    });
    expect(status.problems[0]?.message).toMatch(/finished 30 h ago, more than --max-age 25h$/);
  });
});

describe('evaluateProfile: a backup dated ahead of this host\'s clock', () => {
  // Made while a clock was a year ahead; the backups since (and the failed creates) have right times.
  const ahead = () => backup(-365 * DAY);

  it('does not hide a stale profile: the age check goes by the newest backup not dated ahead', () => {
    const status = evaluateProfile({ profile: 'app', storage: '/b', backups: [backup(3 * DAY + 60_000), ahead()], runs: [], thresholds: thresholds({ maxAge: '25h' }), now: NOW });
    expect(status.problems.map((p) => p.check)).toEqual(['age', 'clock']);
    expect(status.problems[0]?.message).toMatch(/finished 3 d ago, more than --max-age 25h$/);
    expect(status.lastBackup?.ageSeconds).toBe(3 * 86_400);
  });

  it('does not hide the creates that failed since the last backup with a right time', () => {
    const failed = run(HOUR, 'failed');
    const status = evaluateProfile({ profile: 'app', storage: '/b', backups: [backup(2 * DAY), ahead()], runs: [failed], thresholds: NO_THRESHOLDS, now: NOW });
    expect(status.failedRuns).toEqual([failed]);
    expect(status.problems.map((p) => p.check)).toEqual(['failures', 'clock']);
  });

  it('is itself a problem, named with what to do; all backups ahead (this host behind) leave the age check with none', () => {
    const future = ahead();
    const status = evaluateProfile({ profile: 'app', storage: '/b', backups: [future, backup(-400 * DAY)], runs: [], thresholds: thresholds({ maxAge: '25h' }), now: NOW });
    expect(status.healthy).toBe(false);
    expect(status.lastBackup).toBeNull();
    expect(status.problems).toEqual([
      { check: 'age', message: "no completed backup dated before this host's clock (2 dated after it) (--max-age 25h)" },
      {
        check: 'clock',
        message: expect.stringMatching(
          new RegExp(`^backup \\S+ finished 400 d after this host's clock says it is now \\(at \\S+\\), and 1 more backup\\(s\\) dated ahead of it: .* backupctl delete \\S+ --profile app --force$`),
        ),
      },
    ]);
  });

  it('a few minutes ahead (clocks kept by NTP differ by less) is no problem', () => {
    const status = evaluateProfile({ profile: 'app', storage: '/b', backups: [backup(-4 * 60_000)], runs: [run(HOUR, 'failed')], thresholds: thresholds({ maxAge: '25h' }), now: NOW });
    expect(status.problems).toEqual([]);
  });
});

describe('failedSinceSuccess', () => {
  it('counts per command, newest first', () => {
    const runs = [run(10 * HOUR, 'failed', 'verify'), run(5 * HOUR, 'succeeded', 'verify'), run(4 * HOUR, 'failed'), run(3 * HOUR, 'failed', 'verify')];
    expect(failedSinceSuccess(runs, []).map((r) => [r.command, r.finishedAt])).toEqual([
      ['verify', at(3 * HOUR)],
      ['create', at(4 * HOUR)],
    ]);
    // A completed backup that finished later is a success of create.
    expect(failedSinceSuccess(runs, [backup(3.5 * HOUR)]).map((r) => r.command)).toEqual(['verify']);
  });

  it("a failed copy to a destination the profile no longer copies to (a later create recorded its copies without it) is settled", () => {
    const copy = (ago: number, result: RunEntry['result'], target: string) => ({ ...run(ago, result, 'copy'), target });
    const create = (ago: number, copies?: string[]) => ({ ...run(ago, 'succeeded'), ...(copies ? { copies } : {}) });
    const typo = copy(5 * HOUR, 'failed', 's3:/offsite/db');
    // The URL fixed in the config: the next create records the right one.
    expect(failedSinceSuccess([typo, create(4 * HOUR, ['s3://offsite/db?region=eu-west-1'])], []).map((r) => r.target)).toEqual([]);
    // Still among its copies, or an entry from before copies were recorded: it stands.
    expect(failedSinceSuccess([typo, create(4 * HOUR, ['s3:/offsite/db'])], []).map((r) => r.target)).toEqual(['s3:/offsite/db']);
    expect(failedSinceSuccess([typo, create(4 * HOUR)], []).map((r) => r.target)).toEqual(['s3:/offsite/db']);
    // A create before the failure settles nothing.
    expect(failedSinceSuccess([create(6 * HOUR, []), typo], []).map((r) => r.target)).toEqual(['s3:/offsite/db']);
  });

  it('a delete refused for usage (exit 2: the newest good backup without --force, an unknown id) is no failure; a delete that failed (exit 1) is', () => {
    const refused = run(2 * HOUR, 'failed', 'delete', 2);
    const broken = run(1 * HOUR, 'failed', 'delete', 1);
    expect(failedSinceSuccess([refused], [])).toEqual([]);
    expect(failedSinceSuccess([refused, broken], []).map((r) => r.exitCode)).toEqual([1]);
    // Any other command refused for usage still stands (a prune in cron with no policy: retention never runs).
    expect(failedSinceSuccess([run(2 * HOUR, 'failed', 'prune', 2)], []).map((r) => r.command)).toEqual(['prune']);
  });

  it('copies are judged per destination, the place without its URL settings', () => {
    const copy = (ago: number, result: RunEntry['result'], target: string) => ({ ...run(ago, result, 'copy'), target });
    const runs = [
      copy(5 * HOUR, 'failed', 's3://offsite/db?endpoint=http://old:9000'),
      copy(4 * HOUR, 'failed', '/mnt/second'),
      // The same bucket, its endpoint fixed: the failure above is over.
      copy(3 * HOUR, 'succeeded', 's3://offsite/db?endpoint=http://new:9000&stall-timeout=2m'),
    ];
    expect(failedSinceSuccess(runs, []).map((r) => r.target)).toEqual(['/mnt/second']);
  });
});

describe('uncopiedNewest: a run killed while copying its backup', () => {
  const OFFSITE = 's3://offsite/db';
  const VAULT = '/mnt/vault';
  /** The create entry of `b`, which was to copy it to `copies` (as its run recorded them). */
  const made = (b: Sidecar, copies: string[] = [`${OFFSITE}?endpoint=http://127.0.0.1:9000`, VAULT], extra: Partial<RunEntry> = {}): RunEntry => ({
    ...run(Date.parse(NOW.toISOString()) - Date.parse(b.finishedAt), 'succeeded'),
    id: b.id,
    host: 'db1',
    pid: 4242,
    copies,
    ...extra,
  });
  const copy = (ago: number, result: RunEntry['result'], target: string, id?: string): RunEntry => ({ ...run(ago, result, 'copy'), target, ...(id ? { id } : {}) });
  const gone = () => false;

  it('names each destination its create run was to copy it to and no copy run reached since, once that process is gone', () => {
    const newest = backup(2 * HOUR);
    const runs = [made(newest), copy(2 * HOUR - 60_000, 'succeeded', VAULT, newest.id)];
    expect(uncopiedNewest(newest, { runs, running: gone, now: NOW })).toEqual([OFFSITE]);
    // The copy's URL settings are not part of its place.
    const fixed = [...runs, copy(HOUR, 'succeeded', `${OFFSITE}?endpoint=http://127.0.0.1:9001`, newest.id)];
    expect(uncopiedNewest(newest, { runs: fixed, running: gone, now: NOW })).toEqual([]);
  });

  it('a failed, interrupted or busy copy, or a copy of another backup, copied nothing', () => {
    const older = backup(30 * HOUR);
    const newest = backup(2 * HOUR);
    const one = (b: Sidecar) => made(b, [OFFSITE]);
    expect(uncopiedNewest(newest, { runs: [one(newest), copy(HOUR, 'interrupted', OFFSITE, newest.id)], running: gone, now: NOW })).toEqual([OFFSITE]);
    expect(uncopiedNewest(newest, { runs: [one(newest), copy(HOUR, 'failed', OFFSITE, newest.id)], running: gone, now: NOW })).toEqual([OFFSITE]);
    expect(uncopiedNewest(newest, { runs: [one(newest), copy(HOUR, 'busy', OFFSITE, newest.id)], running: gone, now: NOW })).toEqual([OFFSITE]);
    expect(uncopiedNewest(newest, { runs: [one(newest), copy(HOUR, 'succeeded', OFFSITE, older.id)], running: gone, now: NOW })).toEqual([OFFSITE]);
    // `copy --all` (no one id) after it catches everything up.
    expect(uncopiedNewest(newest, { runs: [one(newest), copy(HOUR, 'succeeded', OFFSITE)], running: gone, now: NOW })).toEqual([]);
    // A copy that finished before the backup was made is not one of it.
    expect(uncopiedNewest(newest, { runs: [copy(3 * HOUR, 'succeeded', OFFSITE), one(newest)], running: gone, now: NOW })).toEqual([OFFSITE]);
  });

  it('gives a run that may still be copying its time', () => {
    const newest = backup(2 * HOUR);
    const runs = [made(newest, [OFFSITE])];
    expect(uncopiedNewest(newest, { runs, running: () => true, now: NOW })).toEqual([]);
    // Cannot be asked (another host, an entry without pid): 24 h.
    expect(uncopiedNewest(newest, { runs, running: () => null, now: NOW })).toEqual([]);
    const old = backup(30 * HOUR);
    expect(uncopiedNewest(old, { runs: [made(old, [OFFSITE])], running: () => null, now: NOW })).toEqual([OFFSITE]);
  });

  it('checks nothing a run did not mean to copy (no copies recorded: before this was recorded, or a destination added since), nor without the run or a backup', () => {
    const newest = backup(2 * HOUR);
    expect(uncopiedNewest(newest, { runs: [made(newest, [])], running: gone, now: NOW })).toEqual([]);
    const { copies: _none, ...older } = made(newest);
    expect(uncopiedNewest(newest, { runs: [older], running: gone, now: NOW })).toEqual([]);
    expect(uncopiedNewest(newest, { runs: [], running: gone, now: NOW })).toEqual([]);
    expect(uncopiedNewest(newest, { runs: [made(newest, [OFFSITE], { result: 'failed' })], running: gone, now: NOW })).toEqual([]);
    expect(uncopiedNewest(null, { runs: [], running: gone, now: NOW })).toEqual([]);
  });

  it('is a problem of the failures check, only reported with --allow-failures', () => {
    const newest = backup(2 * HOUR);
    const input = { profile: 'app', storage: '/b', backups: [newest], runs: [made(newest, [OFFSITE])], now: NOW, running: gone };
    const broken = evaluateProfile({ ...input, thresholds: thresholds() });
    expect(broken.uncopied).toEqual([{ backupId: newest.id, to: OFFSITE }]);
    expect(broken.problems).toEqual([{ check: 'failures', message: expect.stringContaining(`backup ${newest.id} was never copied to ${OFFSITE}`) }]);
    expect(broken.problems[0]?.message).toContain(`backupctl copy ${newest.id} --to ${OFFSITE}`);
    const allowed = evaluateProfile({ ...input, thresholds: thresholds({ allowFailures: true }) });
    expect(allowed.uncopied).toHaveLength(1);
    expect(allowed.healthy).toBe(true);
  });
});

describe('missingCopies: every backup a create was to copy, until it is copied or gone', () => {
  const OFFSITE = 's3://offsite/db';
  let pids = 1000;
  const made = (b: Sidecar, copies: string[] = [OFFSITE], pid = ++pids): RunEntry => ({
    ...run(NOW.getTime() - Date.parse(b.finishedAt), 'succeeded'),
    id: b.id,
    host: 'db1',
    pid,
    copies,
  });
  /** A copy run to OFFSITE finished `ago` before NOW, by the create `by` (its host and pid) when given. */
  const copy = (ago: number, result: RunEntry['result'], copied: string[] | undefined, by?: RunEntry): RunEntry => ({
    ...run(ago, result, 'copy'),
    target: `${OFFSITE}?endpoint=http://127.0.0.1:4569`,
    ...(copied === undefined ? {} : { copied }),
    ...(copied?.length === 1 ? { id: copied[0] } : {}),
    ...(by ? { host: by.host, pid: by.pid } : {}),
  });
  const gone = () => false;

  it('a copy that failed stays missing after the next create copies only its own backup (the QA case), until a run copies it', () => {
    const first = backup(5 * HOUR);
    const second = backup(2 * HOUR);
    const madeFirst = made(first);
    const madeSecond = made(second);
    // s3rver killed mid-copy: the copy run of the first backup failed; the next create copied its own.
    const runs = [madeFirst, copy(5 * HOUR - 120_000, 'failed', [], madeFirst), madeSecond, copy(2 * HOUR - 120_000, 'succeeded', [second.id], madeSecond)];
    const input = { profile: 'app', storage: '/b', backups: [first, second], runs, now: NOW, running: gone };
    const result = evaluateProfile({ ...input, thresholds: thresholds() });
    // The failed run is settled by the later good copy; the backup it left uncopied is not.
    expect(result.failedRunsSinceSuccess).toBe(0);
    expect(result.uncopied).toEqual([{ backupId: first.id, to: OFFSITE }]);
    expect(result.healthy).toBe(false);
    expect(result.problems).toEqual([{ check: 'failures', message: expect.stringContaining(`backup ${first.id} was never copied to ${OFFSITE}`) }]);
    expect(renderPrometheus({ healthy: false, checkedAt: NOW.toISOString(), profiles: [result], problems: [], warnings: [] })).toContain('backupctl_uncopied_backups{profile="app"} 1\n');
    // A later copy run that left it there (copied, or found it there) settles it, whatever became of the run's other backups.
    const caughtUp = [...runs, copy(HOUR, 'failed', [first.id])];
    expect(evaluateProfile({ ...input, runs: caughtUp, thresholds: thresholds() }).uncopied).toEqual([]);
    // So does `copy --all` of an older backupctl (no ids, succeeded), and the backup's removal.
    expect(evaluateProfile({ ...input, runs: [...runs, copy(HOUR, 'succeeded', undefined)], thresholds: thresholds() }).uncopied).toEqual([]);
    expect(evaluateProfile({ ...input, backups: [second], thresholds: thresholds() }).uncopied).toEqual([]);
  });

  it('a create killed while copying (no copy run at all) leaves its backup missing once its process is gone, also when not the newest', () => {
    const first = backup(30 * HOUR);
    const second = backup(2 * HOUR);
    const madeSecond = made(second);
    const runs = [made(first), madeSecond, copy(2 * HOUR - 120_000, 'succeeded', [second.id], madeSecond)];
    expect(missingCopies({ runs, running: gone, now: NOW })).toEqual([{ backupId: first.id, to: OFFSITE }]);
    // On another host, unaskable: given 24 h; this one is 30 h old.
    expect(missingCopies({ runs, running: () => null, now: NOW })).toEqual([{ backupId: first.id, to: OFFSITE }]);
    expect(missingCopies({ runs, running: () => true, now: NOW })).toEqual([]);
  });

  it('a run that recorded its own copy run is done copying: no grace for its failure', () => {
    const only = backup(HOUR);
    const m = made(only);
    expect(missingCopies({ runs: [m, copy(HOUR - 60_000, 'failed', [], m)], running: () => true, now: NOW })).toEqual([{ backupId: only.id, to: OFFSITE }]);
    expect(missingCopies({ runs: [m], running: () => true, now: NOW })).toEqual([]);
  });

  it('a destination the profile no longer copies to (the newest create recorded its copies without it) has nothing standing; newest backup first', () => {
    const a = backup(10 * HOUR);
    const b = backup(6 * HOUR);
    const c = backup(2 * HOUR);
    expect(missingCopies({ runs: [made(a), made(b)], running: gone, now: NOW }).map((m) => m.backupId)).toEqual([b.id, a.id]);
    expect(missingCopies({ runs: [made(a), made(b), made(c, ['/mnt/other'])], running: gone, now: NOW })).toEqual([{ backupId: c.id, to: '/mnt/other' }]);
    // A failed create (no backup) asks for nothing, nor does one that recorded no copies.
    expect(missingCopies({ runs: [{ ...made(a), result: 'failed' }], running: gone, now: NOW })).toEqual([]);
  });
});

describe("create's catch-up of earlier copies (backupsToCatchUp)", () => {
  it('takes, newest first, at most CATCH_UP_MAX backups a create was to copy to that destination and none did; passes over the new one and those gone', async () => {
    const name = `catch-up-${process.pid}`;
    const storage = MemoryStorage.named(name);
    try {
      const OFFSITE = 's3://offsite/db';
      const made: Sidecar[] = [];
      for (let i = 0; i < CATCH_UP_MAX + 5; i++) {
        const b = backup((60 - i) * HOUR);
        made.push(b);
        if (i !== 1) await new Catalog(storage).write(b); // the second is gone (pruned)
        await appendRun(storage, { ...run(NOW.getTime() - Date.parse(b.finishedAt), 'succeeded'), id: b.id, host: 'another-host', pid: 10 + i, copies: [`${OFFSITE}?region=x`] });
      }
      // Copied already: the third (a copy run that left it there).
      await appendRun(storage, { ...run(HOUR, 'failed', 'copy'), target: OFFSITE, copied: [made[2]!.id] });
      const warnings: string[] = [];
      const runtime = { now: () => NOW, signal: new AbortController().signal, env: {}, cwd: '/', reporter: { ...silentReporter, warn: (m: string) => warnings.push(m) } };
      const newest = made.at(-1)!;
      const taken = await backupsToCatchUp(storage, 'app', `${OFFSITE}?region=y`, newest.id, runtime);
      const expected = made.slice(0, -1).filter((_, i) => i !== 1 && i !== 2).reverse().slice(0, CATCH_UP_MAX);
      expect(taken.map((b) => b.sidecar.id)).toEqual(expected.map((b) => b.id));
      expect(warnings).toEqual([expect.stringMatching(/^up to \d+ more earlier backup\(s\) of app were never copied to s3:\/\/offsite\/db/)]);
      // Another destination: nothing.
      expect(await backupsToCatchUp(storage, 'app', '/mnt/vault', newest.id, runtime)).toEqual([]);
    } finally {
      MemoryStorage.reset(name);
    }
  });
});

describe('a lock left by a killed run', () => {
  it('is a failure (the run could record nothing), only reported with --allow-failures', () => {
    const staleLock = { pid: 4242, host: 'db1', command: 'prune', startedAt: at(3 * HOUR) };
    const input = { profile: 'app', storage: '/b', backups: [backup(2 * HOUR)], runs: [], now: NOW, staleLock };
    const broken = evaluateProfile({ ...input, thresholds: thresholds() });
    expect(broken.staleLock).toEqual(staleLock);
    expect(broken.problems).toEqual([{ check: 'failures', message: expect.stringMatching(/^a prune run \(pid 4242 on db1, started 3 h ago\) ended without finishing \(killed\?\)/) }]);
    expect(evaluateProfile({ ...input, thresholds: thresholds({ allowFailures: true }) }).healthy).toBe(true);
    expect(evaluateProfile({ ...input, staleLock: null, thresholds: thresholds() }).healthy).toBe(true);
  });

  it('says why its holder is gone when that is known: the host rebooted, or its pid is another process now', () => {
    const message = (reason: 'not-running' | 'pid-reused' | 'rebooted') =>
      evaluateProfile({
        profile: 'app',
        storage: '/b',
        backups: [backup(2 * HOUR)],
        runs: [],
        now: NOW,
        staleLock: { pid: 4242, host: 'db1', command: 'create', startedAt: at(3 * HOUR), reason },
        thresholds: thresholds(),
      }).problems[0]?.message;
    expect(message('rebooted')).toMatch(/^a create run \(pid 4242 on db1, started 3 h ago\) ended without finishing \(the host rebooted since\): its lock is left/);
    expect(message('pid-reused')).toMatch(/ended without finishing \(killed\?; pid reused: 4242 is another process now\): its lock is left/);
    expect(message('not-running')).toMatch(/ended without finishing \(killed\?\): its lock is left/);
  });
});

describe('a lock that keeps every run out', () => {
  const input = { profile: 'app', storage: '/b', backups: [backup(2 * HOUR)], runs: [], now: NOW };
  const holder = (ago: number, host = 'db2') => ({ command: 'create', pid: 4242, host, startedAt: at(ago) });

  it('an unreadable lock object is a failure, with a metric, until it goes', () => {
    const broken = evaluateProfile({ ...input, lock: { holder: null }, thresholds: thresholds() });
    expect(broken.healthy).toBe(false);
    expect(broken.blockingLock).toEqual({ unreadable: true });
    expect(broken.problems).toEqual([{ check: 'failures', message: expect.stringContaining('backupctl unlock --profile app') }]);
    expect(renderPrometheus({ healthy: false, checkedAt: NOW.toISOString(), profiles: [broken], problems: [], warnings: [] })).toContain('backupctl_blocking_lock{profile="app"} 1\n');
    // --allow-failures reports it only; no lock at all is no problem.
    const allowed = evaluateProfile({ ...input, lock: { holder: null }, thresholds: thresholds({ allowFailures: true }) });
    expect([allowed.healthy, allowed.blockingLock]).toEqual([true, { unreadable: true }]);
    const free = evaluateProfile({ ...input, lock: null, thresholds: thresholds() });
    expect([free.healthy, free.blockingLock]).toEqual([true, null]);
    expect(renderPrometheus({ healthy: true, checkedAt: NOW.toISOString(), profiles: [free], problems: [], warnings: [] })).toContain('backupctl_blocking_lock{profile="app"} 0\n');
  });

  it('a lock held longer than 24 h (or the max age, when set) is a failure naming its holder and since when', () => {
    const old = evaluateProfile({ ...input, lock: { holder: holder(13 * DAY) }, thresholds: thresholds() });
    expect(old.healthy).toBe(false);
    expect(old.blockingLock).toEqual({ unreadable: false, ...holder(13 * DAY), ageSeconds: (13 * DAY) / 1000 });
    expect(old.problems).toEqual([
      {
        check: 'failures',
        message: `profile locked by a create run (pid 4242 on db2) since ${at(13 * DAY)} (13 d ago, more than 24 h): runs are skipped as busy; if that run is gone, backupctl unlock --profile app`,
      },
    ]);
    // A run that has held it for 23 h may still be working; with --max-age 6h, 7 h is too long.
    expect(evaluateProfile({ ...input, lock: { holder: holder(23 * HOUR) }, thresholds: thresholds() }).healthy).toBe(true);
    expect(evaluateProfile({ ...input, lock: { holder: holder(5 * HOUR) }, thresholds: thresholds({ maxAge: '6h' }) }).healthy).toBe(true);
    const overMaxAge = evaluateProfile({ ...input, lock: { holder: holder(7 * HOUR) }, thresholds: thresholds({ maxAge: '6h' }) });
    expect(overMaxAge.problems.map((p) => p.check)).toEqual(['failures']);
    // A hung run on this host too (its process is alive: not a stale lock).
    expect(evaluateProfile({ ...input, lock: { holder: holder(2 * DAY, 'db1') }, thresholds: thresholds() }).blockingLock).toMatchObject({ host: 'db1' });
  });

  it('a stale lock (its process gone) is reported once, as stale', () => {
    const stale = holder(2 * DAY, 'db1');
    const result = evaluateProfile({ ...input, staleLock: stale, lock: { holder: stale }, thresholds: thresholds() });
    expect(result.blockingLock).toBeNull();
    expect(result.problems).toHaveLength(1);
    expect(result.problems[0]?.message).toMatch(/^a create run \(pid 4242 on db1/);
  });
});

describe('resolveThresholds', () => {
  it('takes flags over the profile settings, key by key', () => {
    const t = resolveThresholds({ maxAge: '2h' }, { maxAge: '25h', minSizeRatio: 0.3, allowFailures: true });
    expect(t).toEqual({ maxAge: { text: '2h', ms: 2 * HOUR, source: '--max-age' }, maxVerifyAge: null, minSizeRatio: 0.3, allowFailures: true });
    // A threshold from the config is named as the config names it, not as a flag never given.
    expect(resolveThresholds({}, { maxVerifyAge: '8d' }).maxVerifyAge).toEqual({ text: '8d', ms: 8 * 24 * HOUR, source: 'status.maxVerifyAge' });
    expect(resolveThresholds({}, undefined)).toEqual(NO_THRESHOLDS);
  });
});

describe('profilesInListing', () => {
  it('finds the folders that hold something a backupctl run wrote (as on a paged storage), nothing else', () => {
    expect(
      profilesInListing([
        'app/20261123T140509Z-1a2b3c.json',
        'app/20261123T140509Z-1a2b3c.dump',
        'billing/runs.jsonl',
        // Every create killed: partial files and the lock, no sidecar, no run log entry.
        'killed/.tmp-0d608b57dcc8-20261203T101402Z-3657b8.dump.zst',
        'killed/20261203T101402Z-3657b8.globals.sql.zst',
        'killed/lock.json',
        'orphan/20261123T140509Z-1a2b3c.dump',
        'junk/readme.json',
        'junk/.tmp-notes.txt',
        'a/b/c.json',
      ]).sort(),
    ).toEqual(['app', 'billing', 'killed', 'orphan']);
  });
});

describe('renderPrometheus', () => {
  it('writes every family with HELP and TYPE, labels escaped, 0 timestamps for never', () => {
    const fresh = evaluateProfile({
      profile: 'app',
      storage: '/b',
      backups: [backup(2 * HOUR, { verifications: [verification(HOUR)] })],
      runs: [],
      thresholds: NO_THRESHOLDS,
      now: NOW,
    });
    const never = evaluateProfile({ profile: 'we"ird', storage: '/b', backups: [], runs: [run(HOUR, 'failed')], thresholds: NO_THRESHOLDS, now: NOW });
    const text = renderPrometheus({ healthy: false, checkedAt: NOW.toISOString(), profiles: [fresh, never], problems: [], warnings: [] });
    for (const name of [
      'backupctl_last_success_timestamp_seconds',
      'backupctl_last_backup_size_bytes',
      'backupctl_last_backup_duration_seconds',
      'backupctl_last_verification_timestamp_seconds',
      'backupctl_last_verification_success',
      'backupctl_failed_runs_since_success',
      'backupctl_backups_total',
      'backupctl_status_healthy',
    ]) {
      expect(text).toContain(`# HELP ${name} `);
      expect(text).toContain(`# TYPE ${name} gauge\n`);
    }
    const finished = (NOW.getTime() - 2 * HOUR + 60_000) / 1000;
    expect(text).toContain(`backupctl_last_success_timestamp_seconds{profile="app"} ${finished}\n`);
    expect(text).toContain('backupctl_last_success_timestamp_seconds{profile="we\\"ird"} 0\n');
    expect(text).toContain('backupctl_last_backup_size_bytes{profile="app"} 1000000\n');
    expect(text).not.toContain('backupctl_last_backup_size_bytes{profile="we\\"ird"}');
    expect(text).toContain('backupctl_last_backup_duration_seconds{profile="app"} 60\n');
    expect(text).toContain('backupctl_last_verification_success{profile="app"} 1\n');
    expect(text).toContain('backupctl_failed_runs_since_success{profile="we\\"ird"} 1\n');
    expect(text).toContain('backupctl_status_healthy{profile="app"} 1\n');
    expect(text).toContain('backupctl_status_healthy{profile="we\\"ird"} 0\n');
    expect(text.endsWith('\n')).toBe(true);
    // Every sample line is `name{labels} value` or `name value`.
    for (const line of text.split('\n').filter((l) => l !== '' && !l.startsWith('#'))) {
      expect(line).toMatch(/^[a-z_]+(\{profile="(?:[^"\\]|\\.)*"\})? -?[\d.e+]+$/);
    }
  });
});

describe('parseFixedDuration', () => {
  it.each([
    ['25h', 25 * HOUR],
    ['8d', 8 * DAY],
    ['1d12h', 36 * HOUR],
    ['90min', 90 * 60_000],
    ['2w', 14 * DAY],
    ['1500ms', 1500],
  ])('%s', (text, ms) => expect(parseFixedDuration(text)).toBe(ms));

  it.each(['', '25', '25m', '1y', 'h', '0h', '-1h', '1.5h', '25 h'])('refuses %j', (text) => {
    expect(() => parseFixedDuration(text)).toThrow(/invalid duration/);
  });
});

describe('runIsRunning: whether the process of a run in the run log still runs', () => {
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const child of children) child.kill('SIGKILL');
  });
  /** A live unrelated process (`sleep 30`) and its real start ticks, killed after the tests. */
  const live = () => {
    const { child, pid, ticks } = sleeper();
    children.push(child);
    return { pid, ticks };
  };
  const entry = (fields: Partial<RunEntry>): RunEntry => ({ ...run(HOUR, 'succeeded'), host: hostname(), ...fields });

  describe.runIf(process.platform === 'linux')('judged by its boot id and start ticks (Linux)', () => {
    const bootId = currentBootId();

    it('a run whose pid is now an unrelated live process (other start ticks, same boot) is not running: its missing copy is reported at once', () => {
      const { pid, ticks } = live();
      const made = entry({ pid, bootId, startTicks: ticks + 1, copies: ['/mnt/vault'], id: backup(HOUR).id });
      expect(runIsRunning(made)).toBe(false);
      expect(missingCopies({ runs: [made], running: runIsRunning, now: new Date() })).toEqual([{ backupId: made.id, to: '/mnt/vault' }]);
    });

    it('a run recorded before a reboot (another boot id) is not running, though its pid runs', () => {
      const { pid, ticks } = live();
      expect(runIsRunning(entry({ pid, bootId: '00000000-0000-4000-8000-000000000000', startTicks: ticks }))).toBe(false);
    });

    it('a run whose process runs with the recorded start ticks is running', () => {
      const { pid, ticks } = live();
      const made = entry({ pid, bootId, startTicks: ticks, copies: ['/mnt/vault'], id: backup(HOUR).id });
      expect(runIsRunning(made)).toBe(true);
      expect(missingCopies({ runs: [made], running: runIsRunning, now: new Date() })).toEqual([]);
    });

    it('an entry with hostile identity values is read (not skipped) and judged by its pid alone', () => {
      const { pid } = live();
      const line = JSON.stringify({ ...entry({ pid, profile: 'app' }), bootId: { evil: true }, startTicks: 'NaN' });
      const { entries, skipped } = parseRunLog(Buffer.from(`${line}\n`), 'app');
      expect(skipped).toBe(0);
      expect(entries[0]?.bootId).toBeUndefined();
      expect(entries[0]?.startTicks).toBeUndefined();
      expect(runIsRunning(entries[0] as RunEntry)).toBe(true);
    });
  });

  it('an entry of an older version (pid alone) is judged by its pid; one of another host, or without a pid, cannot be told', async () => {
    expect(runIsRunning(entry({ pid: process.pid }))).toBe(true);
    expect(runIsRunning(entry({ pid: await deadPid() }))).toBe(false);
    expect(runIsRunning(entry({ pid: process.pid, host: 'elsewhere.example' }))).toBeNull();
    expect(runIsRunning(entry({}))).toBeNull();
  });
});
