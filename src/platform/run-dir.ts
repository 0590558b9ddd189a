/**
 * Every run's private scratch space: `<base>/backupctl-<uid>/run-<host>-<pid>-<random>`,
 * on Linux `run-<host>-<pid>-<random>-<startTicks>-<bootId>` (the run's start time in clock
 * ticks since boot and the boot id, see judgeWriter),
 * directories 0700 whatever the umask, where a run keeps what must not outlive it: the
 * libpq password file its children read, unpacked archives, directory-format dumps
 * before they are packed. `<base>` is the OS temp directory, or the config's workDir for
 * the bulky things.
 *
 * A run removes its directory when it ends. A run killed with SIGKILL cannot, so every run
 * first sweeps the directories of dead runs of this host: no password and no copy of a
 * backup stays on disk past the next run of any command. A run is dead when judgeWriter
 * says so: its pid no longer exists, or (with the identity in the name) the host has
 * rebooted since or the pid is another process now. A name without it (an older
 * backupctl, no /proc) or with values that are not well-formed is judged by the pid alone.
 * No wall clock decides.
 *
 * The per-user parent must be ours: a directory of that name owned by someone else, a
 * symlink, or one open to others is never used (another user could read or swap it).
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, rm, rmdir } from 'node:fs/promises';
import { hostname, tmpdir, userInfo } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { identityOf, judgeWriter, recordedIdentity, thisProcess, type ProcessFacts, type WriterIdentity, type WriterState } from './process.js';

const host = hostname().replace(/[^A-Za-z0-9.-]/g, '_').slice(0, 64) || 'host';
const RUN_PREFIX = `run-${host}-`;

/** `run-<host>-<pid>-<random>`, with `-<startTicks>-<bootId>` when the writer's identity is known. */
function runName(writer: WriterIdentity, random: string): string {
  const identity = writer.bootId !== undefined && writer.startTicks !== undefined ? `-${writer.startTicks}-${writer.bootId}` : '';
  return `${RUN_PREFIX}${writer.pid}-${random}${identity}`;
}

/** Who made a run directory, from its name (after RUN_PREFIX); null when it is no run directory's. */
function writerOfName(rest: string): WriterIdentity | null {
  // The pid first (what older versions read), the random part, then start ticks and boot id (which holds '-').
  const [pidText, , ticksText, ...boot] = rest.split('-');
  const pid = Number(pidText);
  if (!/^\d{1,10}$/.test(pidText ?? '') || !Number.isSafeInteger(pid) || pid <= 0) return null;
  const startTicks = ticksText !== undefined && /^\d{1,15}$/.test(ticksText) ? Number(ticksText) : undefined;
  return { pid, ...recordedIdentity({ bootId: boot.join('-'), startTicks }) };
}

function uid(): number | string {
  try {
    return typeof process.getuid === 'function' ? process.getuid() : userInfo().username;
  } catch {
    return 'user';
  }
}

/** `<base>/backupctl-<uid>`, created 0700 if missing; null when a foreign or unsafe entry holds the name. */
async function userDir(base: string, create: boolean): Promise<string | null> {
  const dir = join(base, `backupctl-${uid()}`);
  if (create) await mkdir(dir, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error;
  });
  let info;
  try {
    info = await lstat(dir);
  } catch {
    return null;
  }
  const mine = typeof process.getuid !== 'function' || info.uid === process.getuid();
  return info.isDirectory() && !info.isSymbolicLink() && mine && (info.mode & 0o077) === 0 ? dir : null;
}

const runs = new Map<string, Promise<string>>();

/**
 * This run's private directory under `base` (default: the OS temp directory), made on
 * first use. Falls back to a fresh mkdtemp directory when the per-user parent is unsafe.
 */
export function runDir(base: string = tmpdir()): Promise<string> {
  let dir = runs.get(base);
  if (!dir) {
    dir = (async () => {
      const name = runName(identityOf(thisProcess), randomBytes(4).toString('hex'));
      // Twice: another run may remove the (empty) parent between our two mkdirs.
      // A configured workDir that does not exist yet is made (an operator names it, e.g. /var/tmp/backupctl).
      await mkdir(base, { recursive: true, mode: 0o700 });
      for (let attempt = 0; ; attempt++) {
        const parent = await userDir(base, true);
        if (parent === null) return mkdtemp(join(base, 'backupctl-run-'));
        try {
          await mkdir(join(parent, name), { mode: 0o700 });
          return join(parent, name);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || attempt > 0) throw error;
        }
      }
    })();
    runs.set(base, dir);
    dir.catch(() => runs.delete(base));
  }
  return dir;
}

/** A new private directory inside this run's directory (e.g. for one unpacked archive). */
export async function scratchDir(base: string | undefined, label: string): Promise<string> {
  return mkdtemp(join(await runDir(base ?? tmpdir()), `${label.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 60)}-`));
}

/** Runs of this process that have not ended (the CLI runs in-process in tests, several at once). */
let active = 0;

/** A run begins: its directories live until the last run of this process ends. */
export function beginRun(): void {
  active += 1;
}

/** A run ended, whatever its outcome: the last one removes the run directories. */
export async function endRun(): Promise<void> {
  active = Math.max(0, active - 1);
  if (active > 0) return;
  const dirs = [...runs.values()];
  runs.clear();
  await Promise.all(
    dirs.map(async (made) => {
      const dir = await made.catch(() => null);
      if (dir === null) return;
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      // The per-user parent too, when no other run uses it (rmdir fails on a non-empty one).
      if (basename(dirname(dir)) === `backupctl-${uid()}`) await rmdir(dirname(dir)).catch(() => undefined);
    }),
  );
}

/** A run directory swept, and why its run is taken for gone (judgeWriter). */
export interface SweptRun {
  path: string;
  /** The pid its name records. */
  pid: number;
  why: Exclude<WriterState, 'running'>;
}

/**
 * Removes what runs of this host that no longer exist (judgeWriter) left under each base:
 * their password files and scratch copies. Never fails the run: returns what it removed.
 * `facts`: this host's process facts (tests replace them).
 */
export async function sweepDeadRuns(bases: ReadonlyArray<string | undefined> = [tmpdir()], facts: ProcessFacts = thisProcess): Promise<SweptRun[]> {
  const removed: SweptRun[] = [];
  for (const base of new Set(bases.filter((b): b is string => b !== undefined))) {
    const parent = await userDir(base, false).catch(() => null);
    if (parent === null) continue;
    const names = await readdir(parent).catch(() => [] as string[]);
    for (const name of names) {
      if (!name.startsWith(RUN_PREFIX)) continue;
      const writer = writerOfName(name.slice(RUN_PREFIX.length));
      if (writer === null) continue;
      // Our own pid: ours (this process's runs share it), unless its identity says an earlier process had it.
      const why = judgeWriter(writer, facts);
      if (why === 'running') continue;
      await rm(join(parent, name), { recursive: true, force: true }).then(
        () => removed.push({ path: join(parent, name), pid: writer.pid, why }),
        () => undefined,
      );
    }
  }
  return removed;
}
