/**
 * The lock of a profile: one object at `<profile>/lock.json` in the profile's storage,
 * created with createIfAbsent (storage/exclusive.ts: atomic create-if-absent), so every backupctl that
 * uses the same storage, on any host, sees it. `create` and `prune` hold it while they
 * work; a second run of the profile fails with exit 4 (busy) naming the holder, or waits
 * for it with `--wait`.
 *
 * Stale locks: a lock written on THIS host whose holder is gone is left over from a crashed
 * run and is taken over, with a warning that says why (judgeWriter, platform/process.ts).
 * On Linux the lock records the holder's boot id and start time in clock ticks since boot,
 * so a holder is gone when the machine has rebooted since (another boot id) or when its
 * pid now belongs to another process (other start ticks): a pid reused after a crash does
 * not keep the lock alive. Without them (a lock of an older backupctl, no /proc), a pid
 * that is no longer running (kill(pid, 0) fails with ESRCH) is gone. No wall clock decides.
 * A lock from another host is never guessed stale (its pid means nothing here): the
 * busy error names the host, pid and age, and `backupctl unlock` removes it once the
 * operator has checked. The lock is released in a `finally`, so also on SIGINT/SIGTERM.
 */
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { BackupctlError, ExitCode, InterruptedError, throwIfAborted } from '../errors.js';
import { AdvisoryLockSession, advisoryLockKey, type AdvisoryLockHolder } from '../pg/advisory-lock.js';
import { describeConnection, type ConnectionSettings } from '../pg/connection.js';
import { createIfAbsent } from '../storage/exclusive.js';
import {
  describeWriterGone,
  identityOf,
  judgeWriter,
  recordedIdentity,
  thisProcess,
  writtenByDeadProcess,
  type ProcessFacts,
  type WriterState,
} from '../platform/process.js';
import { NotFoundError, TooLargeError, type Storage } from '../storage/storage.js';
import { assertProfileInStorage } from './scope.js';
import type { Runtime } from './runtime.js';
import { storageError } from './storage-errors.js';

/** What the lock object holds. */
export interface LockInfo {
  /** Process id of the holder, on `host`. */
  pid: number;
  /** os.hostname() of the holder. */
  host: string;
  /** The command holding it: "create", "prune". */
  command: string;
  /** ISO time the lock was taken. */
  startedAt: string;
  /** Random; tells this holder's lock from a later one (release removes only its own). */
  token: string;
  /**
   * Linux, with startTicks: the holder's boot id (/proc/sys/kernel/random/boot_id). Absent
   * in locks of older versions and where there is no /proc; not well-formed: as absent.
   */
  bootId?: string | undefined;
  /** Linux, with bootId: when the holder started, in clock ticks since boot (/proc/<pid>/stat field 22). */
  startTicks?: number | undefined;
}

/** The process facts the lock depends on (pid, host name, boot id, liveness, start ticks); tests replace them. */
export type LockHost = ProcessFacts;

export const thisHost: LockHost = thisProcess;

/** How long a busy lock is polled between attempts while `--wait` lasts. */
export const LOCK_POLL_MS = 1000;

/** A random pause before taking the lock again after a round nobody won: up to 20, 40, ... 640 ms. */
export function lockRetryJitter(spin: number, random: () => number = Math.random): number {
  return Math.floor(random() * 20 * 2 ** Math.min(5, Math.max(0, spin - 1)));
}

export function lockKey(profile: string): string {
  return `${profile}/lock.json`;
}

/** The lock as read from storage; `info` is null when the object is not a valid lock. */
interface StoredLock {
  raw: Buffer;
  info: LockInfo | null;
}

const MAX_LOCK_BYTES = 64 * 1024;

function parseLock(raw: Buffer): LockInfo | null {
  try {
    const value = JSON.parse(raw.toString('utf8')) as Partial<LockInfo> | null;
    if (
      typeof value === 'object' &&
      value !== null &&
      Number.isSafeInteger(value.pid) &&
      (value.pid as number) > 0 &&
      typeof value.host === 'string' &&
      value.host !== '' &&
      typeof value.command === 'string' &&
      typeof value.startedAt === 'string' &&
      !Number.isNaN(Date.parse(value.startedAt))
    ) {
      return {
        pid: value.pid as number,
        host: value.host,
        command: value.command,
        startedAt: value.startedAt,
        token: typeof value.token === 'string' ? value.token : '',
        ...recordedIdentity(value),
      };
    }
  } catch {
    // not JSON: reported as an unreadable lock
  }
  return null;
}

async function readStoredLock(storage: Storage, profile: string): Promise<StoredLock | null> {
  let raw: Buffer;
  try {
    raw = await storage.getBytes(lockKey(profile), MAX_LOCK_BYTES);
  } catch (error) {
    if (error instanceof NotFoundError) return null;
    if (error instanceof TooLargeError) return { raw: Buffer.alloc(0), info: null };
    throw storageError(error, storage.location, 'reading the lock', 'read');
  }
  return { raw, info: parseLock(raw) };
}

/** The current lock of a profile, or null; `info: null` for an unreadable lock object. */
export async function readLock(storage: Storage, profile: string): Promise<{ info: LockInfo | null } | null> {
  const stored = await readStoredLock(storage, profile);
  return stored === null ? null : { info: stored.info };
}

/** Removes the lock only if it still holds exactly `raw` (a newer lock is left alone). */
async function removeIfUnchanged(storage: Storage, profile: string, raw: Buffer): Promise<boolean> {
  const current = await readStoredLock(storage, profile);
  if (current === null || !current.raw.equals(raw)) return false;
  await storage.remove(lockKey(profile));
  return true;
}

/** The breaker of one stale lock: who may remove it (see breakStaleLock). */
function breakerKey(profile: string, stale: StoredLock, generation: number): string {
  const of = createHash('sha256').update(stale.raw).digest('hex').slice(0, 16);
  return `${lockKey(profile)}.breaker-${of}-${generation}`;
}

/**
 * Removes a stale lock so that exactly one process does it. Reading the lock, finding its
 * holder dead and unlinking it is not atomic: two processes that both read the stale lock
 * could each unlink what the other had just created in its place, and both would hold the
 * profile. So the right to remove one particular stale lock goes to whoever creates its
 * breaker object first (createIfAbsent, keyed by the stale lock's content); the breaker's
 * holder reads the lock again and removes it only if it is still that stale one. A breaker
 * left by a holder that died is passed over (the next generation), never removed by
 * another: only its own holder removes it, when done.
 * Returns true when this process removed the stale lock, false when another one is on it.
 */
async function breakStaleLock(storage: Storage, profile: string, stale: StoredLock, host: LockHost): Promise<boolean> {
  const me = Buffer.from(`${JSON.stringify({ ...identityOf(host), host: host.hostname, at: new Date().toISOString() })}\n`);
  for (let generation = 0; generation < 8; generation++) {
    const key = breakerKey(profile, stale, generation);
    if (await createIfAbsent(storage, key, me, { abandoned: (claim) => writtenByDeadProcess(claim, host) })) {
      try {
        const current = await readStoredLock(storage, profile);
        if (current === null || !current.raw.equals(stale.raw)) return false;
        await storage.remove(lockKey(profile));
        return true;
      } finally {
        await storage.remove(key).catch(() => undefined);
      }
    }
    let holder: Buffer;
    try {
      holder = await storage.getBytes(key, MAX_LOCK_BYTES);
    } catch {
      return false; // gone (its holder just finished: look at the lock again), or unreadable: not guessed dead
    }
    if (!writtenByDeadProcess(holder, host)) return false;
  }
  return false;
}

/** Tokens of the locks this process holds: its own pid in a lock with another token is a reused pid. */
const heldTokens = new Set<string>();

/** Why the holder of a lock of this host is gone: its pid is not running, now belongs to another process, or the host rebooted since. */
export type StaleReason = Exclude<WriterState, 'running'>;

/** A lock's holder: running (here), stale (gone from here, and why), on another host, or unknown (an unreadable lock). */
export type Liveness = { state: 'running' | 'elsewhere' | 'unknown' } | { state: 'stale'; why: StaleReason };

/** Judges the holder of a lock as read: what acquire, unlock, status and check all go by. */
export function lockLiveness(info: LockInfo | null, host: LockHost = thisHost): Liveness {
  if (info === null) return { state: 'unknown' };
  if (info.host !== host.hostname) return { state: 'elsewhere' };
  const judged = judgeWriter(info, host);
  if (info.pid === host.pid && judged !== 'rebooted') {
    // Our own pid: ours while we hold its token; else a lock of an earlier process given this pid.
    return heldTokens.has(info.token) ? { state: 'running' } : { state: 'stale', why: 'pid-reused' };
  }
  return judged === 'running' ? { state: 'running' } : { state: 'stale', why: judged };
}

/** "pid not running", "pid reused: 4242 is another process now", "host rebooted since": why a lock is stale. */
export function describeStaleReason(why: StaleReason, pid: number): string {
  return describeWriterGone(why, pid);
}

/** "3m12s", "2h05m", "4d03h": how long ago. */
export function formatElapsed(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

/** `"create" (pid 4242 on host db1, since 2026-11-23T14:05:09Z, 3m12s ago)` */
export function describeHolder(info: LockInfo, now: Date): string {
  const age = formatElapsed(now.getTime() - Date.parse(info.startedAt));
  return `"${info.command}" (pid ${info.pid} on host ${info.host}, since ${info.startedAt}, ${age} ago)`;
}

function busyError(profile: string, stored: StoredLock, state: Liveness['state'], now: Date, waitedMs: number): BackupctlError {
  const unlock = `backupctl unlock --profile ${profile}`;
  const prefix = waitedMs > 0 ? `timed out after waiting ${formatElapsed(waitedMs)}: ` : '';
  if (stored.info === null) {
    return new BackupctlError(`${prefix}profile "${profile}" is locked by an unreadable lock object (${lockKey(profile)})`, {
      exitCode: ExitCode.BUSY,
      hint: `if no backupctl is running for this profile, remove it with: ${unlock}`,
    });
  }
  const info = stored.info;
  const message = `${prefix}profile "${profile}" is busy: locked by ${describeHolder(info, now)}`;
  const hint =
    state === 'elsewhere'
      ? `wait for it, or retry with --wait DURATION (e.g. --wait 30min); if no backupctl runs as pid ${info.pid} on ${info.host} ` +
        `(check there: it is never guessed stale from here), remove the lock with: ${unlock}`
      : `wait for it to finish, or retry with --wait DURATION (e.g. --wait 30min)`;
  return new BackupctlError(message, { exitCode: ExitCode.BUSY, hint });
}

export interface AcquireLockOptions {
  storage: Storage;
  profile: string;
  /** The command taking the lock, recorded in it ("create", "prune"). */
  command: string;
  /** Wait up to this many milliseconds for a busy lock (polling); 0 or unset: fail at once. */
  waitMs?: number | undefined;
  runtime: Pick<Runtime, 'now' | 'signal' | 'reporter'>;
  /** Overrides for tests. */
  host?: LockHost | undefined;
  pollMs?: number | undefined;
}

/** A held profile lock. release() is idempotent and never throws (it warns). */
export class ProfileLock {
  private released = false;

  constructor(
    private readonly storage: Storage,
    readonly profile: string,
    readonly info: LockInfo,
    private readonly raw: Buffer,
    private readonly reporter: Runtime['reporter'],
  ) {}

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    heldTokens.delete(this.info.token);
    try {
      if (!(await removeIfUnchanged(this.storage, this.profile, this.raw))) {
        this.reporter.warn(`the lock of profile "${this.profile}" was removed or replaced by someone else while this run held it`);
      }
    } catch (error) {
      // Left behind (the storage failed or stopped answering): its holder, this process, is
      // about to end, and a lock whose holder is gone is taken over by the next run here.
      this.reporter.warn(
        `could not remove the lock ${lockKey(this.profile)} (${(error as Error).message}): the next run on this host takes it over once this one has ended (from another host: backupctl unlock)`,
      );
    }
  }
}

/**
 * Takes the lock of a profile: at once, after taking over a stale lock of this host, or
 * (with waitMs) after polling every second until the holder is gone. Busy: a
 * BackupctlError with exit code 4 that names the holder. Aborting the runtime's signal
 * stops a wait with InterruptedError.
 */
export async function acquireProfileLock(options: AcquireLockOptions): Promise<ProfileLock> {
  const { storage, profile, command, runtime } = options;
  const host = options.host ?? thisHost;
  const pollMs = options.pollMs ?? LOCK_POLL_MS;
  const waitMs = Math.max(0, options.waitMs ?? 0);
  const key = lockKey(profile);
  const startedMs = performance.now(); // waits are measured on the monotonic clock
  let announced: string | null = null;
  let spins = 0; // attempts without a pause (a lock that vanished, a stale one taken over)
  for (;;) {
    throwIfAborted(runtime.signal);
    // Rounds nobody won, lock after lock that vanished: with --wait, for as long as it lasts.
    if (++spins > 20 && performance.now() - startedMs >= waitMs) {
      throw new BackupctlError(`cannot take the lock ${lockKey(profile)} in ${storage.location}: it keeps changing under us`, {
        hint: `check what else writes to the storage; "backupctl unlock --profile ${profile}" removes the lock`,
      });
    }
    const { bootId, startTicks } = identityOf(host);
    const info: LockInfo = {
      pid: host.pid,
      host: host.hostname,
      command,
      startedAt: runtime.now().toISOString(),
      token: randomBytes(8).toString('hex'),
      ...(bootId !== undefined ? { bootId, startTicks } : {}),
    };
    const raw = Buffer.from(`${JSON.stringify(info, null, 2)}\n`, 'utf8');
    heldTokens.add(info.token);
    let created: boolean;
    try {
      created = await createIfAbsent(storage, key, raw, { abandoned: (claim) => writtenByDeadProcess(claim, host) });
    } catch (error) {
      heldTokens.delete(info.token);
      throw storageError(error, storage.location, 'creating the lock');
    }
    if (created) return new ProfileLock(storage, profile, info, raw, runtime.reporter);
    heldTokens.delete(info.token);

    const stored = await readStoredLock(storage, profile);
    if (stored === null) {
      // Released between our two calls, or (on a store without a conditional create) two
      // writers claimed at the same moment and both gave up (storage/exclusive.ts). Retried
      // after a random pause that grows with each spin: retried at once, contenders in
      // lockstep would collide again every time and all fail.
      await sleep(lockRetryJitter(spins));
      continue;
    }
    const judged = lockLiveness(stored.info, host);
    const state = judged.state;
    const now = runtime.now();
    if (judged.state === 'stale' && stored.info !== null) {
      const broken = await breakStaleLock(storage, profile, stored, host).catch((error: unknown) => {
        throw storageError(error, storage.location, 'removing a stale lock');
      });
      if (broken) {
        runtime.reporter.warn(
          `took over the stale lock of profile "${profile}": ${describeHolder(stored.info, now)} is no longer running ` +
            `(${describeStaleReason(judged.why, stored.info.pid)})`,
        );
      } else {
        // Another process is taking it over: let it finish, then look again.
        await sleep(20 + Math.floor(Math.random() * 30));
      }
      continue;
    }
    const waited = performance.now() - startedMs;
    if (waited >= waitMs) throw busyError(profile, stored, state, now, waitMs > 0 ? waited : 0);
    const holderToken = stored.info?.token ?? 'unreadable';
    if (holderToken !== announced) {
      const holder = stored.info === null ? 'an unreadable lock object' : describeHolder(stored.info, now);
      // Rounded up: "--wait 3s" waits up to 3s, though a few milliseconds went by already.
      runtime.reporter.info(`profile "${profile}" is locked by ${holder}; waiting up to ${formatElapsed(Math.ceil((waitMs - waited) / 1000) * 1000)}`);
      announced = holderToken;
    }
    try {
      await sleep(Math.min(pollMs, waitMs - waited), undefined, { signal: runtime.signal });
    } catch {
      const reason: unknown = runtime.signal.reason;
      throw reason instanceof BackupctlError ? reason : new InterruptedError();
    }
    spins = 0;
  }
}

export interface UnlockResult {
  profile: string;
  storage: string;
  /** The lock that was there (null: none; `info: null`: an unreadable one). */
  lock: { info: LockInfo | null } | null;
  removed: boolean;
  /** Why it could be removed: the holder is gone, runs elsewhere, or --force. */
  state: 'none' | 'stale' | 'elsewhere' | 'unreadable' | 'forced';
  /** With state "stale": why its holder is gone. */
  reason?: StaleReason | undefined;
}

/**
 * Removes the lock of a profile (after a crash on another host, say). Refuses, with exit 4,
 * when the holder is a running process on this host, unless `force`.
 */
export async function unlockProfile(options: {
  storage: Storage;
  profile: string;
  /** The profile is in the config (one that is not must be in the storage: a typo is exit 2). */
  configured?: boolean | undefined;
  force: boolean;
  now: Date;
  host?: LockHost | undefined;
}): Promise<UnlockResult> {
  const { profile, force, now } = options;
  const storage = options.storage;
  if (options.configured === false) await assertProfileInStorage(storage, profile);
  const host = options.host ?? thisHost;
  const base = { profile, storage: storage.location };
  const stored = await readStoredLock(storage, profile);
  if (stored === null) return { ...base, lock: null, removed: false, state: 'none' };
  const judged = lockLiveness(stored.info, host);
  const state = judged.state;
  if (state === 'running' && !force && stored.info !== null) {
    throw new BackupctlError(`profile "${profile}" is locked by ${describeHolder(stored.info, now)}, which is still running`, {
      exitCode: ExitCode.BUSY,
      hint: `let it finish or stop it (kill ${stored.info.pid}); --force removes the lock anyway, which lets a second run start beside it`,
    });
  }
  try {
    await storage.remove(lockKey(profile));
  } catch (error) {
    throw storageError(error, storage.location, 'removing the lock');
  }
  const why: UnlockResult['state'] =
    state === 'running' ? 'forced' : state === 'unknown' ? 'unreadable' : state === 'elsewhere' ? 'elsewhere' : 'stale';
  return { ...base, lock: { info: stored.info }, removed: true, state: why, ...(judged.state === 'stale' ? { reason: judged.why } : {}) };
}

// ---------------------------------------------------------------------------------------
// The database's advisory lock

/** How long an interrupted run waits on the server to release the database's lock (see cli.ts's grace). */
const INTERRUPTED_RELEASE_MS = 300;

/** A held advisory lock of a database; release() is idempotent and never throws. */
export interface DatabaseLock {
  release(): Promise<void>;
}

function describeAdvisoryHolder(holder: AdvisoryLockHolder | null): string {
  if (holder === null) return '';
  const parts = [holder.applicationName ? `"${holder.applicationName}"` : null, `server pid ${holder.backendPid}`];
  if (holder.clientAddress) parts.push(`from ${holder.clientAddress}`);
  if (holder.since) parts.push(`connected since ${holder.since}`);
  return ` (${parts.filter((part) => part !== null).join(', ')})`;
}

/**
 * The second guard of `create`: pg_try_advisory_lock on a key derived from the database
 * name, held by a dedicated session for the whole backup. The profile lock lives in the
 * storage; this one lives in the database, so two hosts writing to different storages
 * still cannot back up the same database at once. Busy: exit 4 (or poll with waitMs).
 */
export async function acquireDatabaseLock(options: {
  connection: ConnectionSettings;
  command: string;
  waitMs?: number | undefined;
  runtime: Pick<Runtime, 'now' | 'signal' | 'reporter'>;
  host?: LockHost | undefined;
  pollMs?: number | undefined;
}): Promise<DatabaseLock> {
  const { connection, runtime } = options;
  const host = options.host ?? thisHost;
  const pollMs = options.pollMs ?? LOCK_POLL_MS;
  const waitMs = Math.max(0, options.waitMs ?? 0);
  const startedMs = performance.now(); // waits are measured on the monotonic clock
  const key = advisoryLockKey(connection.database);
  const session = await AdvisoryLockSession.open(
    connection,
    key,
    `backupctl ${options.command} host=${host.hostname} pid=${host.pid}`,
  );
  let announced = false;
  try {
    for (;;) {
      throwIfAborted(runtime.signal);
      if (await session.tryLock()) {
        // An interrupted run does not wait on a server that may have stopped answering.
        return { release: () => session.close(runtime.signal.aborted ? INTERRUPTED_RELEASE_MS : undefined) };
      }
      const waited = performance.now() - startedMs;
      if (waited >= waitMs) {
        const holder = describeAdvisoryHolder(await session.holder());
        throw new BackupctlError(
          `${waitMs > 0 ? `timed out after waiting ${formatElapsed(waited)}: ` : ''}database ${describeConnection(connection)} ` +
            `is busy: another backupctl holds its advisory lock${holder}`,
          {
            exitCode: ExitCode.BUSY,
            hint:
              'another host or storage is backing up this database right now; wait for it, ' +
              'or retry with --wait DURATION (e.g. --wait 30min)',
          },
        );
      }
      if (!announced) {
        runtime.reporter.info(
          `database "${connection.database}" is locked by another backupctl${describeAdvisoryHolder(await session.holder())}; ` +
            `waiting up to ${formatElapsed(Math.ceil((waitMs - waited) / 1000) * 1000)}`,
        );
        announced = true;
      }
      try {
        await sleep(Math.min(pollMs, waitMs - waited), undefined, { signal: runtime.signal });
      } catch {
        const reason: unknown = runtime.signal.reason;
        throw reason instanceof BackupctlError ? reason : new InterruptedError();
      }
    }
  } catch (error) {
    await session.close();
    throw error;
  }
}
