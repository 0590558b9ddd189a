/**
 * The profile lock against a real temporary directory: create-if-absent, stale pid
 * takeover on this host (pid gone, pid reused by another process, host rebooted: told by
 * the recorded boot id and start ticks on Linux), locks of other hosts respected, --wait
 * polling then busy (4), release only of our own lock, and `unlock`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquireProfileLock, lockKey, lockRetryJitter, readLock, unlockProfile, type LockHost, type LockInfo } from '../../src/core/lock.js';
import type { Reporter } from '../../src/core/runtime.js';
import { BackupctlError, ExitCode, InterruptedError } from '../../src/errors.js';
import { LocalStorage } from '../../src/storage/local.js';
import { MemoryStorage } from '../../src/storage/mem.js';

let root: string;
let storage: LocalStorage;
const children: ChildProcess[] = [];

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'backupctl-lock-'));
  storage = new LocalStorage(root);
});

afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await rm(root, { recursive: true, force: true });
});

function recorder(): Reporter & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(`info: ${m}`),
    warn: (m) => lines.push(`warn: ${m}`),
    debug: () => undefined,
    progress: () => undefined,
    progressDone: () => undefined,
  };
}

function runtime(reporter: Reporter = recorder(), signal: AbortSignal = new AbortController().signal) {
  return { now: () => new Date(), signal, reporter };
}

/** A pid that is certainly not running: a child that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  const pid = child.pid as number;
  await new Promise((resolve) => child.on('exit', resolve));
  return pid;
}

/** A live process other than this one. */
function livePid(): number {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  children.push(child);
  return child.pid as number;
}

async function writeLock(profile: string, info: Partial<LockInfo>): Promise<void> {
  await mkdir(path.join(root, profile), { recursive: true });
  const full: LockInfo = { pid: 1, host: os.hostname(), command: 'create', startedAt: new Date().toISOString(), token: 'abc', ...info };
  await writeFile(path.join(root, profile, 'lock.json'), JSON.stringify(full));
}

async function lockOnDisk(profile: string): Promise<LockInfo> {
  return JSON.parse(await readFile(path.join(root, profile, 'lock.json'), 'utf8')) as LockInfo;
}

async function busy(promise: Promise<unknown>): Promise<BackupctlError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BackupctlError);
  expect((error as BackupctlError).exitCode).toBe(ExitCode.BUSY);
  return error as BackupctlError;
}

describe('LocalStorage.putIfAbsent', () => {
  it('creates once; concurrent callers: exactly one wins', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => storage.putIfAbsent('app/lock.json', Buffer.from(`{"n":${i}}`))),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    const winner = results.indexOf(true);
    expect(await readFile(path.join(root, 'app', 'lock.json'), 'utf8')).toBe(`{"n":${winner}}`);
    expect((await stat(path.join(root, 'app', 'lock.json'))).mode & 0o777).toBe(0o600);
    expect(await storage.list('app')).toHaveLength(1); // no temporaries left behind
  });
});

describe('acquireProfileLock', () => {
  it('writes pid, host, command and start time, and removes the lock on release', async () => {
    const lock = await acquireProfileLock({ storage, profile: 'app', command: 'create', runtime: runtime() });
    const info = await lockOnDisk('app');
    expect(info).toMatchObject({ pid: process.pid, host: os.hostname(), command: 'create' });
    expect(Date.parse(info.startedAt)).not.toBeNaN();
    await lock.release();
    await lock.release(); // idempotent
    expect(await readLock(storage, 'app')).toBeNull();
  });

  it('fails with exit 4 while another live process of this host holds the lock', async () => {
    const pid = livePid();
    await writeLock('app', { pid, command: 'prune' });
    const error = await busy(acquireProfileLock({ storage, profile: 'app', command: 'create', runtime: runtime() }));
    expect(error.message).toContain(`pid ${pid} on host ${os.hostname()}`);
    expect(error.message).toContain('"prune"');
    expect(error.hint).toMatch(/--wait/);
    expect((await lockOnDisk('app')).pid).toBe(pid); // untouched
  });

  it('a second acquire in the same process is busy too (its own live lock is not stale)', async () => {
    const first = await acquireProfileLock({ storage, profile: 'app', command: 'create', runtime: runtime() });
    await busy(acquireProfileLock({ storage, profile: 'app', command: 'prune', runtime: runtime() }));
    await first.release();
    const second = await acquireProfileLock({ storage, profile: 'app', command: 'prune', runtime: runtime() });
    await second.release();
  });

  it('takes over a stale lock: this host, pid no longer running, with a warning', async () => {
    const pid = await deadPid();
    await writeLock('app', { pid, startedAt: '2026-01-01T00:00:00.000Z' });
    const reporter = recorder();
    const lock = await acquireProfileLock({ storage, profile: 'app', command: 'create', runtime: runtime(reporter) });
    expect((await lockOnDisk('app')).pid).toBe(process.pid);
    expect(reporter.lines.join('\n')).toMatch(new RegExp(`warn: took over the stale lock of profile "app": .*pid ${pid} .*no longer running`));
    await lock.release();
  });

  it('takes over a lock with its own pid but another token (pid reused, e.g. in a container)', async () => {
    await writeLock('app', { pid: process.pid, token: 'from-a-previous-life' });
    const lock = await acquireProfileLock({ storage, profile: 'app', command: 'create', runtime: runtime() });
    expect((await lockOnDisk('app')).token).not.toBe('from-a-previous-life');
    await lock.release();
  });

  describe.runIf(process.platform === 'linux')('holder identity: boot id and start ticks (Linux)', () => {
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    /** A live unrelated process (`sleep 30`) and its real start ticks. */
    function sleeper(): { pid: number; ticks: number } {
      const child = spawn('sleep', ['30'], { stdio: 'ignore' });
      children.push(child);
      const pid = child.pid as number;
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return { pid, ticks: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]) };
    }

    it("records this process's boot id and start ticks (/proc/self/stat field 22)", async () => {
      const lock = await acquireProfileLock({ storage, profile: 'app', command: 'create', runtime: runtime() });
      const own = readFileSync('/proc/self/stat', 'utf8');
      expect(await lockOnDisk('app')).toMatchObject({ bootId, startTicks: Number(own.slice(own.lastIndexOf(')') + 2).split(' ')[19]) });
      expect((await readLock(storage, 'app'))?.info).toMatchObject({ bootId, startTicks: expect.any(Number) as number });
      await lock.release();
    });

    it('takes over a lock whose pid is now an unrelated live process (other start ticks, same boot): pid reused', async () => {
      const { pid, ticks } = sleeper();
      await writeLock('app', { pid, bootId, startTicks: ticks - 1 });
      const reporter = recorder();
      const lock = await acquireProfileLock({ storage, profile: 'app', command: 'create', runtime: runtime(reporter) });
      expect((await lockOnDisk('app')).pid).toBe(process.pid);
      expect(reporter.lines.join('\n')).toMatch(new RegExp(`warn: took over the stale lock of profile "app": .*pid ${pid} .*no longer running \\(pid reused: ${pid} is another process now\\)`));
      await lock.release();
    });

    it('takes over a lock written before a reboot (another boot id), though its pid runs', async () => {
      const { pid, ticks } = sleeper();
      await writeLock('app', { pid, bootId: '00000000-0000-4000-8000-000000000000', startTicks: ticks });
      const reporter = recorder();
      const lock = await acquireProfileLock({ storage, profile: 'app', command: 'create', runtime: runtime(reporter) });
      expect(reporter.lines.join('\n')).toMatch(/warn: took over the stale lock .* no longer running \(host rebooted since\)/);
      await lock.release();
    });

    it('a dead pid is said to be not running', async () => {
      const pid = await deadPid();
      await writeLock('app', { pid, bootId, startTicks: 1 });
      const reporter = recorder();
      const lock = await acquireProfileLock({ storage, profile: 'app', command: 'create', runtime: runtime(reporter) });
      expect(reporter.lines.join('\n')).toMatch(/no longer running \(pid not running\)/);
      await lock.release();
    });

    it('respects a lock whose holder runs with the recorded start ticks (exit 4)', async () => {
      const { pid, ticks } = sleeper();
      await writeLock('app', { pid, bootId, startTicks: ticks });
      await busy(acquireProfileLock({ storage, profile: 'app', command: 'create', runtime: runtime() }));
      expect((await lockOnDisk('app')).pid).toBe(pid);
    });

    it('a lock with hostile identity values is judged by its pid alone, as an older lock: busy while the pid runs', async () => {
      const { pid } = sleeper();
      await writeLock('app', { pid, bootId: { evil: true } as unknown as string, startTicks: 'NaN' as unknown as number });
      await busy(acquireProfileLock({ storage, profile: 'app', command: 'create', runtime: runtime() }));
      const info = (await readLock(storage, 'app'))?.info;
      expect(info?.pid).toBe(pid);
      expect(info?.bootId).toBeUndefined();
      expect(info?.startTicks).toBeUndefined();
    });

    it('unlock removes a lock whose pid was reused without --force, and says why', async () => {
      const { pid, ticks } = sleeper();
      await writeLock('app', { pid, bootId, startTicks: ticks + 1 });
      expect(await unlockProfile({ storage, profile: 'app', force: false, now: new Date() })).toMatchObject({ removed: true, state: 'stale', reason: 'pid-reused' });
    });
  });

  it('the liveness facts come from the injected host: its boot id and start ticks decide', async () => {
    const host = (bootId: string, ticks: number): LockHost => ({ pid: 1, hostname: 'h', bootId, isAlive: () => true, startTicks: () => ticks });
    await writeLock('app', { pid: 4242, host: 'h', bootId: 'boot-a', startTicks: 10 });
    await busy(acquireProfileLock({ storage, profile: 'app', command: 'create', runtime: runtime(), host: host('boot-a', 10) }));
    const reporter = recorder();
    const lock = await acquireProfileLock({ storage, profile: 'app', command: 'create', runtime: runtime(reporter), host: host('boot-b', 10) });
    expect(await lockOnDisk('app')).toMatchObject({ pid: 1, host: 'h', bootId: 'boot-b', startTicks: 10 });
    expect(reporter.lines.join('\n')).toMatch(/pid 4242 .*\(host rebooted since\)/);
    await lock.release();
  });

  it('respects a lock of another host even when its pid does not exist here', async () => {
    const pid = await deadPid();
    await writeLock('app', { pid, host: 'db-backup-2.example.com', startedAt: new Date(Date.now() - 3_600_000).toISOString() });
    const error = await busy(acquireProfileLock({ storage, profile: 'app', command: 'create', runtime: runtime() }));
    expect(error.message).toMatch(new RegExp(`pid ${pid} on host db-backup-2\\.example\\.com, since .*, 1h0\\dm ago`));
    expect(error.hint).toContain('backupctl unlock --profile app');
    expect(error.hint).toContain('db-backup-2.example.com');
    expect((await lockOnDisk('app')).host).toBe('db-backup-2.example.com');
  });

  it('respects an unreadable lock object', async () => {
    await mkdir(path.join(root, 'app'), { recursive: true });
    await writeFile(path.join(root, 'app', 'lock.json'), 'garbage');
    const error = await busy(acquireProfileLock({ storage, profile: 'app', command: 'create', runtime: runtime() }));
    expect(error.message).toMatch(/unreadable lock/);
    expect(error.hint).toContain('backupctl unlock --profile app');
  });

  it('--wait: polls, and gets the lock once the holder releases it', async () => {
    const other: LockHost = { pid: 424242, hostname: 'other-host', bootId: null, isAlive: () => true, startTicks: () => null };
    const holder = await acquireProfileLock({ storage, profile: 'app', command: 'prune', runtime: runtime(), host: other });
    const reporter = recorder();
    const started = Date.now();
    const waiting = acquireProfileLock({ storage, profile: 'app', command: 'create', runtime: runtime(reporter), waitMs: 10_000, pollMs: 50 });
    setTimeout(() => void holder.release(), 300);
    const lock = await waiting;
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(reporter.lines.join('\n')).toMatch(/info: profile "app" is locked by "prune" \(pid 424242 on host other-host.*waiting up to/);
    expect((await lockOnDisk('app')).command).toBe('create');
    await lock.release();
  });

  it('--wait: still busy at the deadline -> exit 4, after about that long', async () => {
    const pid = livePid();
    await writeLock('app', { pid });
    const started = Date.now();
    const error = await busy(
      acquireProfileLock({ storage, profile: 'app', command: 'create', runtime: runtime(), waitMs: 600, pollMs: 100 }),
    );
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(550);
    expect(elapsed).toBeLessThan(5000);
    expect(error.message).toMatch(/^timed out after waiting \d+s: profile "app" is busy/);
    expect((await lockOnDisk('app')).pid).toBe(pid);
  });

  it('an interrupt stops the wait with exit 130', async () => {
    await writeLock('app', { pid: livePid() });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new InterruptedError('SIGINT')), 200);
    const error = await acquireProfileLock({
      storage,
      profile: 'app',
      command: 'create',
      runtime: runtime(recorder(), controller.signal),
      waitMs: 60_000,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InterruptedError);
  });

  it('release leaves a lock alone that is no longer ours (removed and retaken meanwhile)', async () => {
    const reporter = recorder();
    const lock = await acquireProfileLock({ storage, profile: 'app', command: 'create', runtime: runtime(reporter) });
    await storage.remove(lockKey('app'));
    await writeLock('app', { pid: 777, host: 'elsewhere', token: 'theirs' });
    await lock.release();
    expect((await lockOnDisk('app')).token).toBe('theirs');
    expect(reporter.lines.join('\n')).toMatch(/warn: the lock of profile "app" was removed or replaced/);
  });

  it('without a conditional create (write-then-check), two takers in lockstep: one gets the lock, the other is busy (20 rounds)', async () => {
    // In one process on a memory store, both takers' claims, listings and checks interleave
    // step by step: each sees the other's claim and gives up, every round. Retried at
    // once, they would collide until the spin limit and both fail (exit 1).
    for (let round = 0; round < 20; round++) {
      const inner = MemoryStorage.named(`lockstep-${round}-${Date.now()}`, '');
      const capabilities = { ...inner.capabilities, conditionalCreate: false };
      const store = new Proxy(inner, {
        get(target, property, receiver) {
          if (property === 'capabilities') return capabilities;
          if (property === 'open') return async () => capabilities;
          const value: unknown = Reflect.get(target, property, receiver);
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
      const outcomes = await Promise.allSettled([0, 1].map(() => acquireProfileLock({ storage: store, profile: 'app', command: 'create', runtime: runtime() })));
      const won = outcomes.filter((outcome) => outcome.status === 'fulfilled');
      expect(won, `round ${round}`).toHaveLength(1);
      const lost = outcomes.find((outcome) => outcome.status === 'rejected');
      expect((lost?.reason as BackupctlError).exitCode, `round ${round}`).toBe(ExitCode.BUSY);
      await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireProfileLock>>>).value.release();
      expect(await store.list('app')).toEqual([]);
    }
  });
});

describe('acquireProfileLock without a conditional create: claims left behind', () => {
  /** A memory store presented as one that ignores conditional writes (s3rver). */
  function writeThenCheck(): MemoryStorage {
    const inner = MemoryStorage.named(`claims-${Date.now()}-${Math.random()}`, '');
    const capabilities = { ...inner.capabilities, conditionalCreate: false };
    return new Proxy(inner, {
      get(target, property, receiver) {
        if (property === 'capabilities') return capabilities;
        if (property === 'open') return async () => capabilities;
        const value: unknown = Reflect.get(target, property, receiver);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  }
  const claim = (info: Partial<LockInfo>) => Buffer.from(JSON.stringify({ pid: 1, host: os.hostname(), command: 'create', startedAt: new Date().toISOString(), token: 't', ...info }));

  it('a fresh claim of a process of this host that was killed (kill -9 while taking the lock) stops nobody', async () => {
    const store = writeThenCheck();
    await store.putBytes(`app/claims/lock.json.${Date.now()}-dead`, claim({ pid: await deadPid() }));
    const started = performance.now();
    const lock = await acquireProfileLock({ storage: store, profile: 'app', command: 'create', runtime: runtime() });
    expect(performance.now() - started).toBeLessThan(2000);
    expect(await store.list('app/claims')).toEqual([]);
    await lock.release();
  });

  it("a fresh claim of a live process (or of another host) is respected: without --wait, no lock; with --wait, the lock once the claim is gone (past the 20 quick rounds)", async () => {
    const store = writeThenCheck();
    const key = `app/claims/lock.json.${Date.now()}-live`;
    await store.putBytes(key, claim({ pid: livePid() }));
    const error = await acquireProfileLock({ storage: store, profile: 'app', command: 'create', runtime: runtime() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackupctlError);
    await store.putBytes(`app/claims/lock.json.${Date.now()}-elsewhere`, claim({ pid: 4242, host: 'elsewhere' }));
    // The 20 quick rounds take ~5 s; the claims go after 6 s, within --wait.
    const gone = setTimeout(() => void store.list('app/claims').then((objects) => Promise.all(objects.map((o) => store.remove(o.key)))), 6000);
    try {
      const lock = await acquireProfileLock({ storage: store, profile: 'app', command: 'create', runtime: runtime(), waitMs: 15_000 });
      await lock.release();
    } finally {
      clearTimeout(gone);
    }
  }, 20_000);
});

describe('lockRetryJitter', () => {
  it('is random, and its ceiling doubles per spin from 20 ms up to 640 ms', () => {
    expect([1, 2, 3, 6, 20].map((spin) => lockRetryJitter(spin, () => 0.999999))).toEqual([19, 39, 79, 639, 639]);
    expect(lockRetryJitter(4, () => 0)).toBe(0);
  });
});

describe('unlockProfile', () => {
  const now = new Date();

  it('no lock: nothing to do', async () => {
    expect(await unlockProfile({ storage, profile: 'app', force: false, now })).toMatchObject({ removed: false, state: 'none' });
  });

  it('removes a lock of another host', async () => {
    await writeLock('app', { host: 'elsewhere', pid: 12 });
    expect(await unlockProfile({ storage, profile: 'app', force: false, now })).toMatchObject({ removed: true, state: 'elsewhere' });
    expect(await readLock(storage, 'app')).toBeNull();
  });

  it('removes a stale lock of this host', async () => {
    await writeLock('app', { pid: await deadPid() });
    expect(await unlockProfile({ storage, profile: 'app', force: false, now })).toMatchObject({ removed: true, state: 'stale' });
  });

  it('refuses (exit 4) when the holder runs on this host, unless --force', async () => {
    const pid = livePid();
    await writeLock('app', { pid });
    const error = await busy(unlockProfile({ storage, profile: 'app', force: false, now }));
    expect(error.message).toContain(`pid ${pid}`);
    expect(error.hint).toContain('--force');
    expect(await readLock(storage, 'app')).not.toBeNull();
    expect(await unlockProfile({ storage, profile: 'app', force: true, now })).toMatchObject({ removed: true, state: 'forced' });
    expect(await readLock(storage, 'app')).toBeNull();
  });
});
