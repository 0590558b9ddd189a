/**
 * `backupctl status`: is each profile healthy? The evaluation is a pure function of the
 * profile's sidecars, its run log, the thresholds and `now` (evaluateProfile); the rest of
 * this file finds the profiles and reads their storage.
 *
 * Checks (a profile is healthy when none is broken):
 * - age (--max-age): the newest completed backup finished longer ago than the threshold,
 *   or there is no backup at all. Off unless set.
 * - size (--min-size-ratio): the newest backup is smaller than ratio x the median size of
 *   the previous (up to 5) backups taken with the same dump options (a schema-only backup
 *   is not compared with full ones). No previous backup: nothing to compare, not broken.
 *   Off unless set.
 * - verification: the most recent verification of any backup of the profile failed
 *   (always on); with --max-verify-age, also no backup passed a verification within that
 *   time (never verified counts as too old).
 * - failures: a run (create, verify, prune...) failed or was interrupted after the last
 *   success of the same command; for create, "success" is the newest completed backup or
 *   a succeeded run in the log, whichever finished later. Also each backup missing at a
 *   destination of the profile's `copies` that its create run was to copy it to: the copy
 *   failed, or the run was killed while copying (missingCopies), until a copy run copies
 *   it there or it is gone; and the profile's lock left by a run on this host
 *   whose process is gone; also a lock that keeps every run out (unreadable, or held
 *   longer than lockBoundMs: BlockingLock). On unless --allow-failures.
 * Ages are measured from when a backup finished (its sidecar's finishedAt).
 */
import { Catalog, narrowListing, sortNewestFirst, type Listing } from '../catalog/catalog.js';
import { holdsBackupctlObjects } from '../catalog/catalog-generation.js';
import { isProfileName } from '../catalog/id.js';
import { RUNLOG_FILE, type RunEntry } from '../catalog/runlog.js';
import { readRunLog } from '../catalog/runlog-schema.js';
import { latestProof, provenRestorable, standingVerification, type SidecarSummary } from '../catalog/sidecar.js';
import { parseFixedDuration } from '../config/duration.js';
import type { Profile } from '../config/schema.js';
import { ExitCode, usageError } from '../errors.js';
import { describeMs, formatBytes } from '../units.js';
import type { Runtime } from './runtime.js';
import { storageAt } from './storages.js';
import { settingsOf, storagesInScope, type ResolvedSettings } from '../config/resolve.js';
import { judgeWriter, recordedIdentity, thisProcess, type ProcessFacts } from '../platform/process.js';
import { describeStaleReason, lockLiveness, readLock, type LockInfo, type StaleReason } from './lock.js';
import { assertKnownProfile, backupScope } from './scope.js';
import { storageError } from './storage-errors.js';
import { datedAheadBy, describeAhead } from './clock-skew.js';

/** Who left a profile's lock behind (its token is no one's business). */
type StaleLock = Pick<LockInfo, 'command' | 'pid' | 'host' | 'startedAt'> & {
  /** Why its holder is gone (lockLiveness): its pid is not running, is another process now, or the host rebooted since. */
  reason?: StaleReason | undefined;
};

/**
 * A lock that keeps every run of the profile out (each exits 4, busy, which is no failure by
 * itself): an object at the lock's key that is not a lock (`unreadable`), or a lock held
 * longer than lockBoundMs (a run on another host that died, a hung run). Reported by the
 * failures check until the lock goes (`backupctl unlock`).
 */
export type BlockingLock = { unreadable: true } | (StaleLock & { unreadable: false; ageSeconds: number });

/**
 * How long a profile's lock may be held before status reports it: the profile's max age
 * when set (no backup can be made while it is held), else 24 h (as long as status gives a
 * run on another host to copy its backup: COPY_GRACE_MS).
 */
export function lockBoundMs(thresholds: Pick<StatusThresholds, 'maxAge'>): number {
  return thresholds.maxAge?.ms ?? LOCK_HELD_MAX_MS;
}

/** The bound of lockBoundMs when no max age is set. */
export const LOCK_HELD_MAX_MS = 24 * 3_600_000;

/** How many previous backups the size of the newest is compared with (their median). */
export const SIZE_COMPARE_COUNT = 5;

export interface Threshold {
  /** As given, for messages: "25h". */
  text: string;
  ms: number;
  /** What set it, for messages: the flag (`--max-age`) or the config key (`status.maxAge`). */
  source: string;
}

export interface StatusThresholds {
  maxAge: Threshold | null;
  maxVerifyAge: Threshold | null;
  minSizeRatio: number | null;
  /** Failed runs since the last success are reported but do not break the check. */
  allowFailures: boolean;
}

export const NO_THRESHOLDS: StatusThresholds = { maxAge: null, maxVerifyAge: null, minSizeRatio: null, allowFailures: false };

export type StatusCheck = 'age' | 'size' | 'verification' | 'artifacts' | 'failures' | 'clock';

export interface StatusProblem {
  check: StatusCheck;
  message: string;
}

export interface BackupSummary {
  id: string;
  startedAt: string;
  finishedAt: string;
  ageSeconds: number;
  bytes: number;
  durationMs: number;
  tags: string[];
}

export interface VerificationSummary {
  backupId: string;
  at: string;
  ageSeconds: number;
  level: 'checksum' | 'archive' | 'restore';
  result: 'passed' | 'failed';
  /** The first difference it found (a digest, a row count), when it found one: the cause the rest follows from. */
  mismatch?: string | undefined;
  error?: string | undefined;
}

export interface ProfileStatus {
  profile: string;
  /** Where the profile's backups live (safe to print). */
  storage: string;
  healthy: boolean;
  /** Completed backups in the storage. */
  backups: number;
  /** The newest completed backup. */
  lastBackup: BackupSummary | null;
  /** The newest backup's size against the median of the previous comparable ones. */
  size: { bytes: number; previousMedianBytes: number | null; previousCount: number; ratio: number | null } | null;
  /** The most recent verification of any backup of the profile. */
  lastVerification: VerificationSummary | null;
  /** The most recent verification that passed. */
  lastPassedVerification: VerificationSummary | null;
  /** Backups whose latest verification failed (each stays here until it passes one or is removed). */
  failedVerifications: VerificationSummary[];
  /** Backups whose artifact or globals file is missing or of the wrong size, or whose sidecar cannot be read. */
  damaged: Array<{ backupId: string; problems: string[] }>;
  failedRunsSinceSuccess: number;
  /** Those runs, newest first. */
  failedRuns: RunEntry[];
  /** Backups never copied to a destination of the profile's `copies` that their create run was to copy them to (missingCopies), newest first. */
  uncopied: MissingCopy[];
  /** The profile's lock, left by a run whose process is gone (killed): the next run takes it over. */
  staleLock: StaleLock | null;
  /** The profile's lock when it is unreadable or held longer than lockBoundMs: every run is skipped as busy. */
  blockingLock: BlockingLock | null;
  thresholds: { maxAge: string | null; maxVerifyAge: string | null; minSizeRatio: number | null; allowFailures: boolean };
  /** One per broken check; empty when healthy. */
  problems: StatusProblem[];
}

export interface StatusResult {
  healthy: boolean;
  checkedAt: string;
  profiles: ProfileStatus[];
  /** Problems that belong to no profile (no profile at all while --max-age is set). */
  problems: string[];
  /** Unreadable sidecars or run log lines: reported on stderr, the rest is still checked. */
  warnings: string[];
}

// ---------------------------------------------------------------------------------------
// The pure part

export interface EvaluateInput {
  profile: string;
  storage: string;
  /** The profile's completed backups (any order; summaries will do: `tables` is not used). */
  backups: readonly SidecarSummary[];
  /** The profile's run log (any order). */
  runs: readonly RunEntry[];
  /** Backups whose stored files are not what their sidecar says, by `<profile>/<id>` (Catalog.scan). */
  damage?: ReadonlyMap<string, readonly string[]> | undefined;
  /** Sidecars that are there but cannot be read (Catalog.scan): damaged backups too. */
  unreadable?: ReadonlyArray<{ id: string; reason: string }> | undefined;
  thresholds: StatusThresholds;
  now: Date;
  /** Whether a run's process is still running: null when that cannot be told (another host, an older entry). */
  running?: ((run: RunEntry) => boolean | null) | undefined;
  /** The profile's lock when its holder ran on this host and is gone: a run killed (SIGKILL, OOM) that could record nothing. */
  staleLock?: StaleLock | null | undefined;
  /**
   * The profile's lock as read (null or undefined: none; `holder: null`: an object at the
   * lock's key that is not a lock). Judged against lockBoundMs; a stale lock (above) is
   * reported as such, not again here.
   */
  lock?: { holder: StaleLock | null } | null | undefined;
}

/**
 * How long a create whose process cannot be asked (on another host) is given to copy its
 * backup before status reports the copy missing.
 */
export const COPY_GRACE_MS = 24 * 3_600_000;

/**
 * How many backups never copied to a destination (missingCopies) a create copies there
 * besides its own, newest first: a long outage is caught up over a few runs (or at once
 * with `copy --all`), never by one create that copies for hours.
 */
export const CATCH_UP_MAX = 10;

/** A run's target without its settings (`?endpoint=`, `?stall-timeout=`...): where it wrote. */
export function placeOf(target: string | undefined): string {
  return (target ?? '').split('?')[0] as string;
}

/** A backup its create run was to copy to a destination (`copies`), and no copy run has copied there since. */
export interface MissingCopy {
  backupId: string;
  /** The destination's place (placeOf: without its URL settings). */
  to: string;
}

/**
 * How many ids a copy run records in its run log entry (`copied`). A run that accounted for
 * more records none, and then, when it succeeded, counts as having copied every backup
 * made before it (`copy --all`; see copiedBy).
 */
export const COPIED_IDS_MAX = 100;

/**
 * Whether a copy run accounts for backup `id` at its destination: the run log entry lists
 * it in `copied` (copied there, or found there already, whatever became of the run's other
 * backups), or the run succeeded and was of that backup alone (`id`), or it succeeded and
 * records no ids at all (`copy --all` of more than COPIED_IDS_MAX backups, or an entry of an
 * older backupctl: `copy --all` of everything there was).
 */
function copiedBy(run: RunEntry, id: string): boolean {
  if (run.copied?.includes(id)) return true;
  return run.result === 'succeeded' && (run.id === id || (run.id === undefined && run.copied === undefined));
}

/**
 * The copies the profile's `copies` setting asked for and that were never made: for each
 * backup that a succeeded create run made (the run log names it, `id`) and that still
 * exists (`exists`; every one when not given), each destination of that run's `copies` (as
 * the setting was then) that the profile still copies to (the newest create run's
 * `copies`: a destination dropped or a URL fixed since has nothing standing) and that no copy
 * run to that place has accounted for since the backup was made (copiedBy): the copy
 * failed, found the destination busy, or never ran (the create was killed while copying:
 * SIGKILL, the machine lost). Each stands until a copy run copies that backup there (the
 * next create catches it up, or `backupctl copy`), or the backup is gone (pruned, deleted).
 * A create whose process may still be copying (it is running here, or it ran on another host
 * less than COPY_GRACE_MS ago) and has recorded no copy run to that place yet is given its
 * time. Bounded by the run log: only backups whose create run is among its entries (the last
 * 200 runs) are checked, and a destination added to the config is no problem of the
 * backups made before. Newest backup first.
 */
export function missingCopies(input: Pick<EvaluateInput, 'runs' | 'running' | 'now'> & { exists?: ((id: string) => boolean) | undefined }): MissingCopy[] {
  const creates = input.runs
    .filter((run) => run.command === 'create' && run.result === 'succeeded' && run.copies !== undefined)
    .sort((a, b) => Date.parse(b.finishedAt) - Date.parse(a.finishedAt));
  const newest = creates[0];
  if (newest === undefined) return [];
  const current = new Set((newest.copies ?? []).map(placeOf));
  const copyRuns = input.runs.filter((run) => run.command === 'copy');
  const missing: MissingCopy[] = [];
  const seen = new Set<string>();
  for (const made of creates) {
    const id = made.id;
    if (id === undefined || seen.has(id)) continue;
    seen.add(id);
    if (input.exists && !input.exists(id)) continue;
    const since = Date.parse(made.finishedAt);
    for (const to of new Set((made.copies ?? []).map(placeOf))) {
      if (!current.has(to)) continue;
      const after = copyRuns.filter((run) => placeOf(run.target) === to && Date.parse(run.finishedAt) >= since);
      if (after.some((run) => copiedBy(run, id))) continue;
      // The create's own copy run to this place is recorded: it is done copying there.
      const reported = after.some((run) => run.host !== undefined && run.host === made.host && run.pid !== undefined && run.pid === made.pid);
      if (!reported) {
        const running = input.running?.(made) ?? null;
        if (running === true || (running === null && input.now.getTime() - since < COPY_GRACE_MS)) continue;
      }
      missing.push({ backupId: id, to });
    }
  }
  return missing;
}

/** missingCopies of the newest backup only (its destinations). */
export function uncopiedNewest(newest: SidecarSummary | null, input: Pick<EvaluateInput, 'runs' | 'running' | 'now'>): string[] {
  if (newest === null) return [];
  return missingCopies({ ...input, exists: (id) => id === newest.id }).map((missing) => missing.to);
}

/** Backups are compared by size only with backups of the same contents and encoding. */
function shapeOf(s: SidecarSummary): string {
  const d = s.dump;
  return JSON.stringify([
    d.format,
    d.compress,
    d.schemaOnly,
    d.dataOnly,
    d.schemas,
    d.excludeSchemas,
    d.tables,
    d.excludeTables,
    s.artifact.compression.codec,
    s.artifact.compression.level,
  ]);
}

function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function seconds(ms: number): number {
  return Math.round(ms / 1000);
}

/** Evaluates one profile. Pure: everything it needs is in `input`. */
export function evaluateProfile(input: EvaluateInput): ProfileStatus {
  const { thresholds, now } = input;
  const nowMs = now.getTime();
  const backups = sortNewestFirst(input.backups, (backup) => backup);
  // A backup dated ahead of this host's clock takes no part in what goes by the dates (the
  // newest backup of the age and size checks, the failures check's last success): see
  // clock-skew.ts. The clock check reports it.
  const ahead = backups.flatMap((backup) => {
    const by = datedAheadBy(backup, nowMs);
    return by === null ? [] : [{ backup, by }];
  });
  const aheadOnes = new Set(ahead.map(({ backup }) => backup));
  const onTime = backups.filter((backup) => !aheadOnes.has(backup));
  const newest = onTime[0] ?? null;
  const problems: StatusProblem[] = [];

  // age
  const lastBackup: BackupSummary | null = newest && {
    id: newest.id,
    startedAt: newest.startedAt,
    finishedAt: newest.finishedAt,
    ageSeconds: seconds(nowMs - Date.parse(newest.finishedAt)),
    bytes: newest.artifact.bytes,
    durationMs: newest.durationMs,
    tags: newest.tags,
  };
  if (thresholds.maxAge) {
    if (newest === null) {
      const which = ahead.length === 0 ? 'no completed backup' : `no completed backup dated before this host's clock (${ahead.length} dated after it)`;
      problems.push({ check: 'age', message: `${which} (${thresholds.maxAge.source} ${thresholds.maxAge.text})` });
    } else {
      const age = nowMs - Date.parse(newest.finishedAt);
      if (age > thresholds.maxAge.ms) {
        problems.push({
          check: 'age',
          message: `the newest backup (${newest.id}) finished ${describeMs(age)} ago, more than ${thresholds.maxAge.source} ${thresholds.maxAge.text}`,
        });
      }
    }
  }

  // size
  let size: ProfileStatus['size'] = null;
  if (newest) {
    const shape = shapeOf(newest);
    const previous: SidecarSummary[] = [];
    for (const backup of onTime.slice(1)) {
      if (previous.length === SIZE_COMPARE_COUNT) break;
      if (shapeOf(backup) === shape) previous.push(backup);
    }
    const previousMedian = median(previous.map((b) => b.artifact.bytes));
    const ratio = previousMedian !== null && previousMedian > 0 ? newest.artifact.bytes / previousMedian : null;
    size = { bytes: newest.artifact.bytes, previousMedianBytes: previousMedian, previousCount: previous.length, ratio };
    if (thresholds.minSizeRatio !== null && ratio !== null && previousMedian !== null && ratio < thresholds.minSizeRatio) {
      problems.push({
        check: 'size',
        message:
          `the newest backup (${newest.id}) is ${formatBytes(newest.artifact.bytes)}, ${ratio.toFixed(2)} of the median ` +
          `${formatBytes(previousMedian)} of the previous ${previous.length}, less than --min-size-ratio ${thresholds.minSizeRatio}`,
      });
    }
  }

  // verification: the most recent one of the profile, and each backup's latest
  let lastVerification: VerificationSummary | null = null;
  let lastPassed: VerificationSummary | null = null;
  const failedVerifications: VerificationSummary[] = [];
  const summaryOf = (backupId: string, v: SidecarSummary['verifications'][number]): VerificationSummary => ({
    backupId,
    at: v.at,
    ageSeconds: seconds(nowMs - Date.parse(v.at)),
    level: v.level,
    result: v.result,
    ...(v.mismatches[0] === undefined ? {} : { mismatch: v.mismatches[0] }),
    ...(v.error === undefined ? {} : { error: v.error }),
  });
  for (const backup of backups) {
    for (const v of backup.verifications) {
      if (lastVerification === null || Date.parse(v.at) > Date.parse(lastVerification.at)) lastVerification = summaryOf(backup.id, v);
    }
    // --max-verify-age asks for a proof that a backup restores: a checksum pass is none.
    const proof = provenRestorable(backup) ? latestProof(backup) : null;
    if (proof && (lastPassed === null || Date.parse(proof.at) > Date.parse(lastPassed.at))) lastPassed = summaryOf(backup.id, proof);
    const standing = standingVerification(backup.verifications, backup.dump);
    if (standing?.result === 'failed') failedVerifications.push(summaryOf(backup.id, standing));
  }
  // A failed verification stays visible until that backup passes a later one at the same or
  // a deeper level, or is removed: a passing verify of another backup (verify --all walks
  // newest first), or a checksum pass after a failed restore, must not hide it.
  for (const failed of failedVerifications) {
    const age = nowMs - Date.parse(failed.at);
    problems.push({
      check: 'verification',
      message:
        `the latest verification of ${failed.backupId} (${failed.level}, ${describeMs(age)} ago) failed` +
        ([failed.mismatch, failed.error].some(Boolean) ? `: ${[failed.mismatch, failed.error].filter(Boolean).join('; ')}` : ''),
    });
  }
  if (thresholds.maxVerifyAge) {
    if (lastPassed === null) {
      problems.push({ check: 'verification', message: `no backup has passed a restore-level verification (${thresholds.maxVerifyAge.source} ${thresholds.maxVerifyAge.text}; a checksum pass does not count)` });
    } else {
      const age = nowMs - Date.parse(lastPassed.at);
      if (age > thresholds.maxVerifyAge.ms) {
        problems.push({
          check: 'verification',
          message: `the last passed restore-level verification (${lastPassed.level} of ${lastPassed.backupId}) was ${describeMs(age)} ago, more than ${thresholds.maxVerifyAge.source} ${thresholds.maxVerifyAge.text}`,
        });
      }
    }
  }

  // artifacts
  const damaged: ProfileStatus['damaged'] = [];
  for (const backup of backups) {
    const found = input.damage?.get(`${backup.profile}/${backup.id}`);
    if (found && found.length > 0) {
      damaged.push({ backupId: backup.id, problems: [...found] });
      problems.push({ check: 'artifacts', message: `backup ${backup.id} cannot be restored as it is: ${found.join('; ')}` });
    }
  }
  for (const entry of input.unreadable ?? []) {
    damaged.push({ backupId: entry.id, problems: [`its sidecar cannot be read: ${entry.reason}`] });
    problems.push({ check: 'artifacts', message: `backup ${entry.id} cannot be restored through backupctl: its sidecar cannot be read: ${entry.reason}` });
  }

  // failures
  const failedRuns = failedSinceSuccess(input.runs, onTime);
  if (failedRuns.length > 0 && !thresholds.allowFailures) {
    const latest = failedRuns[0] as RunEntry;
    const count = failedRuns.length === 1 ? '1 failed run' : `${failedRuns.length} failed runs`;
    problems.push({
      check: 'failures',
      message:
        `${count} since the last success; the latest: ${latest.command}${latest.target ? ` to ${latest.target}` : ''} ${latest.result} ${describeMs(nowMs - Date.parse(latest.finishedAt))} ago ` +
        `(exit ${latest.exitCode})${latest.error ? `: ${latest.error}` : ''}`,
    });
  }

  const present = new Set(backups.map((backup) => backup.id));
  const uncopied = missingCopies({ ...input, exists: (id) => present.has(id) });
  if (uncopied.length > 0 && !thresholds.allowFailures) {
    const byPlace = new Map<string, string[]>();
    for (const missing of uncopied) byPlace.set(missing.to, [...(byPlace.get(missing.to) ?? []), missing.backupId]);
    for (const [to, ids] of byPlace) {
      const which = ids.length === 1 ? `backup ${ids[0]} was` : `${ids.length} backups (${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', ...' : ''}) were`;
      problems.push({
        check: 'failures',
        message:
          `${which} never copied to ${to}, though the create run that made ${ids.length === 1 ? 'it' : 'them'} was to copy ${ids.length === 1 ? 'it' : 'them'} there ` +
          `(the copy failed, or the run was killed while copying): the next create copies ${ids.length === 1 ? 'it' : `the newest ${Math.min(ids.length, CATCH_UP_MAX)}`}, ` +
          `or now: backupctl copy ${ids.length === 1 ? ids[0] : `--all --profile ${input.profile}`} --to ${to}`,
      });
    }
  }

  const staleLock = input.staleLock ?? null;
  if (staleLock && !thresholds.allowFailures) {
    problems.push({
      check: 'failures',
      message:
        `a ${staleLock.command} run (pid ${staleLock.pid} on ${staleLock.host}, started ${describeMs(nowMs - Date.parse(staleLock.startedAt))} ago) ended without finishing (${staleLock.reason === 'rebooted' ? 'the host rebooted since' : staleLock.reason === 'pid-reused' ? `killed?; ${describeStaleReason('pid-reused', staleLock.pid)}` : 'killed?'}): ` +
        `its lock is left, and the next run of the profile takes it over; prune removes the partial files it left once they are older than --leftover-age (24 h by default)`,
    });
  }

  // clock
  const [first] = ahead;
  if (first !== undefined) {
    problems.push({
      check: 'clock',
      message:
        `backup ${describeAhead(first.backup, first.by)}${ahead.length > 1 ? `, and ${ahead.length - 1} more backup(s) dated ahead of it` : ''}: ` +
        `the clock of the host that made it was ahead, or this host's is behind; "latest" takes it before the backups made since, ` +
        `and the age and failures checks leave it out. Set the wrong clock right; once backups with right times exist, ` +
        `remove it: backupctl delete ${first.backup.id} --profile ${input.profile} --force`,
    });
  }

  const blockingLock = blockingLockOf(input, staleLock);
  if (blockingLock && !thresholds.allowFailures) {
    const unlock = `backupctl unlock --profile ${input.profile}`;
    problems.push({
      check: 'failures',
      message: blockingLock.unreadable
        ? `the profile's lock (${input.profile}/lock.json) is not a lock backupctl can read: runs are skipped as busy; if no backupctl runs for this profile, ${unlock}`
        : `profile locked by a ${blockingLock.command} run (pid ${blockingLock.pid} on ${blockingLock.host}) since ${blockingLock.startedAt} ` +
          `(${describeMs(blockingLock.ageSeconds * 1000)} ago, more than ${describeMs(lockBoundMs(thresholds))}): runs are skipped as busy; if that run is gone, ${unlock}`,
    });
  }

  return {
    profile: input.profile,
    storage: input.storage,
    healthy: problems.length === 0,
    backups: backups.length,
    lastBackup,
    size,
    lastVerification,
    lastPassedVerification: lastPassed,
    failedVerifications,
    damaged,
    failedRunsSinceSuccess: failedRuns.length,
    failedRuns,
    uncopied,
    staleLock,
    blockingLock,
    thresholds: {
      maxAge: thresholds.maxAge?.text ?? null,
      maxVerifyAge: thresholds.maxVerifyAge?.text ?? null,
      minSizeRatio: thresholds.minSizeRatio,
      allowFailures: thresholds.allowFailures,
    },
    problems,
  };
}

/** The lock of `input` when it keeps the profile's runs out (BlockingLock); null otherwise. */
function blockingLockOf(input: Pick<EvaluateInput, 'lock' | 'thresholds' | 'now'>, staleLock: StaleLock | null): BlockingLock | null {
  const lock = input.lock;
  if (!lock) return null;
  if (lock.holder === null) return { unreadable: true };
  const holder = lock.holder;
  if (staleLock && staleLock.pid === holder.pid && staleLock.host === holder.host && staleLock.startedAt === holder.startedAt) return null;
  const ageMs = input.now.getTime() - Date.parse(holder.startedAt);
  if (!(ageMs > lockBoundMs(input.thresholds))) return null;
  return { unreadable: false, command: holder.command, pid: holder.pid, host: holder.host, startedAt: holder.startedAt, ageSeconds: seconds(ageMs) };
}

/**
 * Failed or interrupted runs that finished after the last success of the same command,
 * newest first. A verify run that failed because a backup's content did (exit 3) is not
 * one: its verdict is in the backup's sidecar, and the verification check reports it for
 * as long as it stands (a backup removed since is no problem any more).
 */
export function failedSinceSuccess(runs: readonly RunEntry[], backups: readonly SidecarSummary[]): RunEntry[] {
  // Runs of a command to one target (a copy's destination) are judged together: a good
  // copy to one storage does not hide a failing copy to another. A target is its place,
  // without the URL's settings (?endpoint=, ?stall-timeout=...): changing a setting to fix
  // a failing copy must not leave the old failure standing for ever.
  const kind = (run: Pick<RunEntry, 'command' | 'target'>) => `${run.command}\u0000${placeOf(run.target)}`;
  const lastSuccess = new Map<string, number>();
  const bump = (key: string, at: number) => {
    if (!Number.isNaN(at) && at > (lastSuccess.get(key) ?? Number.NEGATIVE_INFINITY)) lastSuccess.set(key, at);
  };
  for (const backup of backups) bump(kind({ command: 'create' }), Date.parse(backup.finishedAt));
  for (const run of runs) if (run.result === 'succeeded') bump(kind(run), Date.parse(run.finishedAt));
  // A destination the profile no longer copies to (a later create recorded its copies
  // without it: the setting changed, a mistyped URL was fixed) has no failure standing.
  const creates = runs.filter((run) => run.command === 'create' && run.result === 'succeeded' && run.copies !== undefined);
  const abandoned = (run: RunEntry) =>
    run.command === 'copy' && creates.some((create) => Date.parse(create.finishedAt) > Date.parse(run.finishedAt) && !(create.copies ?? []).some((to) => placeOf(to) === placeOf(run.target)));
  return runs
    .filter((run) => run.result === 'failed' || run.result === 'interrupted')
    .filter((run) => !(run.command === 'verify' && run.exitCode === ExitCode.VERIFY_FAILED))
    // A delete refused (exit 2: the newest good backup without --force, an unknown or
    // ambiguous id) is an operator's command that changed nothing, not a broken schedule:
    // nothing but another delete could ever settle it.
    .filter((run) => !(run.command === 'delete' && run.exitCode === ExitCode.USAGE))
    .filter((run) => !abandoned(run))
    .filter((run) => Date.parse(run.finishedAt) > (lastSuccess.get(kind(run)) ?? Number.NEGATIVE_INFINITY))
    .sort((a, b) => Date.parse(b.finishedAt) - Date.parse(a.finishedAt));
}

// ---------------------------------------------------------------------------------------
// Thresholds: flags over the profile's `status` settings

/** Thresholds given on the command line; undefined means "not given". */
export interface StatusFlags {
  maxAge?: string | undefined;
  maxVerifyAge?: string | undefined;
  minSizeRatio?: number | undefined;
  allowFailures?: boolean | undefined;
}

function threshold(text: string | undefined, what: string): Threshold | null {
  if (text === undefined) return null;
  try {
    return { text, ms: parseFixedDuration(text), source: what };
  } catch (error) {
    throw usageError(`${what}: ${(error as Error).message}`);
  }
}

export function resolveThresholds(flags: StatusFlags, settings: Profile['status']): StatusThresholds {
  return {
    maxAge: threshold(flags.maxAge ?? settings?.maxAge, flags.maxAge !== undefined ? '--max-age' : 'status.maxAge'),
    maxVerifyAge: threshold(flags.maxVerifyAge ?? settings?.maxVerifyAge, flags.maxVerifyAge !== undefined ? '--max-verify-age' : 'status.maxVerifyAge'),
    minSizeRatio: flags.minSizeRatio ?? settings?.minSizeRatio ?? null,
    allowFailures: flags.allowFailures ?? settings?.allowFailures ?? false,
  };
}

// ---------------------------------------------------------------------------------------
// Reading the storage

export interface StatusRequest {
  settings: ResolvedSettings;
  runtime: Pick<Runtime, 'env' | 'cwd' | 'reporter' | 'now'>;
  now: Date;
  thresholds: StatusFlags;
}

interface Target {
  profile: string;
  storage: string;
}

/**
 * The profiles in a storage listing: the folders that hold something a backupctl run wrote
 * (holdsBackupctlObjects: a backup's file, a run log, a lock), as on a paged storage. A
 * profile whose every create was killed (a lock and partial files, no sidecar, no run log
 * entry) is checked, not passed over as if there were nothing.
 */
export function profilesInListing(keys: readonly string[]): string[] {
  const found = new Set<string>();
  for (const key of keys) {
    const slash = key.indexOf('/');
    if (slash <= 0) continue;
    const profile = key.slice(0, slash);
    if (!found.has(profile) && isProfileName(profile) && holdsBackupctlObjects(profile, [key])) found.add(profile);
  }
  return [...found];
}

/**
 * The profiles to check: the one named by --profile / BACKUPCTL_PROFILE (which must be
 * configured or present in its storage); otherwise every profile of the config (in its own
 * storage) and every profile found in the storages in scope. Also the listings made on the
 * way, by storage location, for the scans to reuse.
 */
async function targets(request: StatusRequest): Promise<{ targets: Target[]; listings: Map<string, Listing>; warnings: string[] }> {
  const { settings } = request;
  const scope = backupScope(settings, request.runtime);
  const listings = new Map<string, Listing>();
  if (settings.named !== undefined) {
    await assertKnownProfile(scope);
    return { targets: [{ profile: settings.named, storage: settingsOf(settings, settings.named).storage }], listings, warnings: [] };
  }
  const warnings: string[] = [];
  const found = new Map<string, Target>();
  for (const profile of settings.profiles.values()) found.set(profile.name, { profile: profile.name, storage: profile.storage });
  for (const { location, storage, catalog } of scope.locations) {
    let names: string[];
    try {
      if (storage.capabilities.pagedList) {
        // The root's folders that hold something of backupctl's (a request or two each; a
        // folder of something else in the bucket is no profile); each profile's catalog
        // index stands in for its listing where it can (Catalog.summaries).
        const found = await catalog.backupctlFolders();
        names = found.profiles;
        warnings.push(...found.warnings);
      } else {
        const listing = await catalog.listing();
        listings.set(location, listing);
        names = profilesInListing(listing.objects.map((object) => object.key));
      }
    } catch (error) {
      throw storageError(error, storage.location, 'listing profiles', 'read');
    }
    for (const name of names) {
      if (!found.has(name)) found.set(name, { profile: name, storage: location });
    }
  }
  const sorted = [...found.values()].sort((a, b) => (a.profile < b.profile ? -1 : a.profile > b.profile ? 1 : 0));
  return { targets: sorted, listings, warnings };
}

/**
 * Whether a run's process is still running: asked only on the host it ran on (null
 * elsewhere, or for an entry without a pid), by judgeWriter: with the boot id and start
 * ticks recorded, a run before a reboot or whose pid is another process now is not
 * running; an entry of an older version is judged by its pid alone. No wall clock decides.
 */
export function runIsRunning(run: RunEntry, facts: ProcessFacts = thisProcess): boolean | null {
  if (run.pid === undefined || run.host === undefined || run.host !== facts.hostname) return null;
  return judgeWriter({ pid: run.pid, ...recordedIdentity(run) }, facts) === 'running';
}

/** Reads every profile's sidecars (as summaries, through the catalog index) and run log, and evaluates them. */
export async function checkStatus(request: StatusRequest): Promise<StatusResult> {
  const { settings } = request;
  const warnings: string[] = [];
  const profiles: ProfileStatus[] = [];
  const found = await targets(request);
  warnings.push(...found.warnings);
  for (const target of found.targets) {
    const thresholds = resolveThresholds(request.thresholds, settingsOf(settings, target.profile).status);
    const storage = storageAt(request.runtime, target.storage, settings.storageSettings(target.storage));
    let backups: SidecarSummary[];
    let runs: RunEntry[];
    let damage: Map<string, string[]>;
    let unreadable: ReadonlyArray<{ id: string; reason: string }>;
    let staleLock: StaleLock | null;
    let lockState: EvaluateInput['lock'];
    try {
      // The listing made to find the profiles, when it covers this one (one listing, not two).
      const listed = found.listings.get(target.storage);
      const listing = listed ? (narrowListing(listed, target.profile) ?? undefined) : undefined;
      const catalog = new Catalog(storage, { debug: (message) => request.runtime.reporter.debug(message) });
      const scanned = await catalog.summaries(target.profile, { listing });
      warnings.push(...scanned.warnings);
      backups = scanned.backups;
      damage = scanned.damage;
      unreadable = scanned.unreadable;
      const lock = await readLock(storage, target.profile);
      const held = lock?.info;
      const judged = held ? lockLiveness(held) : null;
      staleLock = held && judged?.state === 'stale' ? { command: held.command, pid: held.pid, host: held.host, startedAt: held.startedAt, reason: judged.why } : null;
      lockState = lock === null ? null : { holder: held ? { command: held.command, pid: held.pid, host: held.host, startedAt: held.startedAt } : null };
      const log = await readRunLog(storage, target.profile);
      if (log.skipped > 0) warnings.push(`skipped ${log.skipped} unreadable line(s) of ${target.profile}/${RUNLOG_FILE}`);
      runs = log.entries;
    } catch (error) {
      throw storageError(error, storage.location, `reading profile ${target.profile}`, 'read');
    }
    profiles.push(evaluateProfile({ profile: target.profile, storage: storage.location, backups, runs, damage, unreadable, thresholds, now: request.now, running: runIsRunning, staleLock, lock: lockState }));
  }
  const problems: string[] = [];
  if (profiles.length === 0) {
    const defaults = resolveThresholds(request.thresholds, settings.defaults.status);
    if (defaults.maxAge) problems.push(`no backups at all in ${storagesInScope(settings).join(', ')} (--max-age ${defaults.maxAge.text})`);
  }
  return {
    healthy: problems.length === 0 && profiles.every((p) => p.healthy),
    checkedAt: request.now.toISOString(),
    profiles,
    problems,
    warnings,
  };
}
