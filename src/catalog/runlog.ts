import { identityOf, thisProcess, writtenByDeadProcess } from '../platform/process.js';
import { createIfAbsent } from '../storage/exclusive.js';
import { NotFoundError, type Storage } from '../storage/storage.js';
import { isProfileName } from './id.js';
import type { RunEntry } from './runlog-schema.js';

export type { RunEntry } from './runlog-schema.js';

/**
 * The run log: `<root>/<profile>/runs.jsonl`, one JSON object per line, oldest first, the
 * last RUNLOG_MAX_ENTRIES runs of every command that records itself (create today; verify
 * and prune as they land). A failed run leaves no sidecar, so this is where `status` and
 * `list --failed` learn about it.
 *
 * Contract:
 * - The storage has no append: a run is added by reading the log, adding a line and
 *   publishing the whole file again with putBytes (atomic), under a lock of its own held
 *   for those few milliseconds (see appendRun), so concurrent writers never lose a line.
 * - Writing the run log never changes the outcome of a run: callers turn a failure here
 *   into a warning.
 * - Every line is validated on read (runlog-schema.ts); a line that is not a valid entry (hand-edited, cut
 *   off) is skipped and counted, never fatal.
 * - Entries never hold a password: error texts are redacted before they get here.
 */
export const RUNLOG_FILE = 'runs.jsonl';

/** Entries kept; older ones are dropped when a new one is added. */
export const RUNLOG_MAX_ENTRIES = 200;

/** A run log larger than this is not read (a hostile file must not exhaust memory). */
export const RUNLOG_MAX_BYTES = 4 * 1024 * 1024;

/** Longest error text kept in an entry. */
export const RUNLOG_MAX_ERROR_CHARS = 2000;

export function runlogKey(profile: string): string {
  return `${profile}/${RUNLOG_FILE}`;
}

/** Held for the few milliseconds of a read-modify-write of the run log. */
export const RUNLOG_LOCK_FILE = `${RUNLOG_FILE}.lock`;

/** A run log lock older than this was left by a crashed writer and is taken over. */
const RUNLOG_LOCK_STALE_MS = 10_000;

/**
 * Adds one entry: under a short lock (`<profile>/runs.jsonl.lock`, created with
 * createIfAbsent, so concurrent writers of any process or host take turns), reads the log,
 * adds the entry, keeps the last RUNLOG_MAX_ENTRIES and publishes the whole file
 * atomically with putBytes.
 */
export async function appendRun(storage: Storage, entry: RunEntry, options: { maxEntries?: number } = {}): Promise<void> {
  const max = options.maxEntries ?? RUNLOG_MAX_ENTRIES;
  if (!isProfileName(entry.profile)) throw new Error(`invalid profile name ${JSON.stringify(entry.profile)}`);
  const line = JSON.stringify({ ...entry, error: entry.error?.slice(0, RUNLOG_MAX_ERROR_CHARS) });
  const lockKey = `${entry.profile}/${RUNLOG_LOCK_FILE}`;
  await acquire(storage, lockKey);
  try {
    const kept = await existingLines(storage, entry.profile);
    await storage.putBytes(runlogKey(entry.profile), Buffer.from([...kept, line].slice(-max).map((l) => `${l}\n`).join(''), 'utf8'));
  } finally {
    await storage.remove(lockKey).catch(() => undefined);
  }
}

/**
 * The lines of the current log worth keeping: JSON objects of this profile, as they are.
 * Full validation is the readers' (runlog-schema.ts); this cheap check only drops what
 * could never be an entry (a cut-off line, text), so appending never loads the schema.
 */
async function existingLines(storage: Storage, profile: string): Promise<string[]> {
  let bytes: Buffer;
  try {
    bytes = await storage.getBytes(runlogKey(profile), RUNLOG_MAX_BYTES);
  } catch (error) {
    if (error instanceof NotFoundError) return [];
    throw error;
  }
  return bytes.toString('utf8').split('\n').filter((line) => {
    if (line.trim() === '') return false;
    try {
      const value: unknown = JSON.parse(line);
      return typeof value === 'object' && value !== null && (value as { profile?: unknown }).profile === profile;
    } catch {
      return false;
    }
  });
}

async function acquire(storage: Storage, key: string): Promise<void> {
  // Who holds it (pid, host; boot id and start ticks on Linux): a writer of this host that is gone (judgeWriter) stops nobody.
  const data = Buffer.from(`${JSON.stringify({ ...identityOf(thisProcess), host: thisProcess.hostname, at: new Date().toISOString() })}\n`);
  const abandoned = (claim: Buffer) => writtenByDeadProcess(claim);
  const deadline = Date.now() + 2 * RUNLOG_LOCK_STALE_MS;
  for (;;) {
    if (await createIfAbsent(storage, key, data, { abandoned })) return;
    let held: { age: number; dead: boolean } | null = null;
    try {
      const age = Date.now() - (await storage.stat(key)).modifiedAt.getTime();
      held = { age, dead: abandoned(await storage.getBytes(key, 64 * 1024)) };
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error; // released meanwhile: try again
    }
    // Its writer gone (a kill -9 of this host), stale (a crashed writer of another), or
    // held past any sane time (a clock far off): take it over.
    if (held !== null && (held.dead || held.age > RUNLOG_LOCK_STALE_MS || Date.now() > deadline)) {
      await storage.remove(key);
      continue;
    }
    // No lock, yet no claim won: another writer's claim (storage/exclusive.ts) stands.
    if (held === null && Date.now() > deadline) throw new Error(`the run log ${key} stayed busy for ${(2 * RUNLOG_LOCK_STALE_MS) / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 10 + Math.floor(Math.random() * 40)));
  }
}

/** Profiles of a storage that have a run log (from a listing of the whole storage). */
export function profilesWithRunLog(keys: readonly string[]): string[] {
  const found = new Set<string>();
  for (const key of keys) {
    const [profile, file, ...rest] = key.split('/');
    if (profile && file === RUNLOG_FILE && rest.length === 0 && isProfileName(profile)) found.add(profile);
  }
  return [...found].sort();
}
