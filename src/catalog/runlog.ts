import { z } from 'zod';
import { NotFoundError, type Storage } from '../storage/storage.js';
import { ID_PATTERN, isProfileName, PROFILE_PATTERN } from './id.js';

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
 * - Every line is validated on read; a line that is not a valid entry (hand-edited, cut
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

const isoTime = z.iso.datetime({ offset: true });

export const RunEntrySchema = z.object({
  /** The command that ran: create, verify, prune... */
  command: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/),
  profile: z.string().regex(PROFILE_PATTERN),
  startedAt: isoTime,
  finishedAt: isoTime,
  durationMs: z.number().int().nonnegative().optional(),
  result: z.enum(['succeeded', 'failed', 'interrupted']),
  /** The backup the run created or worked on, when there is one. */
  id: z.string().regex(ID_PATTERN).optional(),
  /** One line: what went wrong (redacted). */
  error: z.string().max(RUNLOG_MAX_ERROR_CHARS).optional(),
  /** The process exit code of the run (see errors.ts ExitCode). */
  exitCode: z.number().int().min(0).max(255),
  /** The machine the run was on. */
  host: z.string().max(255).optional(),
});

export type RunEntry = z.infer<typeof RunEntrySchema>;

export function runlogKey(profile: string): string {
  return `${profile}/${RUNLOG_FILE}`;
}

export interface RunLogContents {
  /** Oldest first. */
  entries: RunEntry[];
  /** Lines that could not be read. */
  skipped: number;
}

/** Parses run log bytes; invalid lines are counted, not fatal. Entries of other profiles are dropped. */
export function parseRunLog(bytes: Buffer, profile: string): RunLogContents {
  const entries: RunEntry[] = [];
  let skipped = 0;
  for (const line of bytes.toString('utf8').split('\n')) {
    if (line.trim() === '') continue;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      skipped += 1;
      continue;
    }
    const parsed = RunEntrySchema.safeParse(raw);
    if (!parsed.success || parsed.data.profile !== profile) {
      skipped += 1;
      continue;
    }
    entries.push(parsed.data);
  }
  return { entries, skipped };
}

export function serializeRunLog(entries: readonly RunEntry[]): Buffer {
  return Buffer.from(entries.map((entry) => `${JSON.stringify(RunEntrySchema.parse(entry))}\n`).join(''), 'utf8');
}

/** The run log of one profile; empty when there is none yet. */
export async function readRunLog(storage: Storage, profile: string): Promise<RunLogContents> {
  if (!isProfileName(profile)) throw new Error(`invalid profile name ${JSON.stringify(profile)}`);
  let bytes: Buffer;
  try {
    bytes = await storage.getBytes(runlogKey(profile), RUNLOG_MAX_BYTES);
  } catch (error) {
    if (error instanceof NotFoundError) return { entries: [], skipped: 0 };
    throw error;
  }
  return parseRunLog(bytes, profile);
}

/** Held for the few milliseconds of a read-modify-write of the run log. */
export const RUNLOG_LOCK_FILE = `${RUNLOG_FILE}.lock`;

/** A run log lock older than this was left by a crashed writer and is taken over. */
const RUNLOG_LOCK_STALE_MS = 10_000;

/**
 * Adds one entry: under a short lock (`<profile>/runs.jsonl.lock`, created with
 * putIfAbsent, so concurrent writers of any process or host take turns), reads the log,
 * adds the entry, keeps the last RUNLOG_MAX_ENTRIES and publishes the whole file
 * atomically with putBytes.
 */
export async function appendRun(storage: Storage, entry: RunEntry, options: { maxEntries?: number } = {}): Promise<void> {
  const max = options.maxEntries ?? RUNLOG_MAX_ENTRIES;
  const valid = RunEntrySchema.parse({
    ...entry,
    error: entry.error === undefined ? undefined : entry.error.slice(0, RUNLOG_MAX_ERROR_CHARS),
  });
  const lockKey = `${valid.profile}/${RUNLOG_LOCK_FILE}`;
  await acquire(storage, lockKey);
  try {
    const { entries } = await readRunLog(storage, valid.profile);
    await storage.putBytes(runlogKey(valid.profile), serializeRunLog([...entries, valid].slice(-max)));
  } finally {
    await storage.remove(lockKey).catch(() => undefined);
  }
}

async function acquire(storage: Storage, key: string): Promise<void> {
  const data = Buffer.from(`${JSON.stringify({ pid: process.pid, at: new Date().toISOString() })}\n`);
  const deadline = Date.now() + 2 * RUNLOG_LOCK_STALE_MS;
  for (;;) {
    if (await storage.putIfAbsent(key, data)) return;
    let age: number;
    try {
      age = Date.now() - (await storage.stat(key)).modifiedAt.getTime();
    } catch (error) {
      if (error instanceof NotFoundError) continue; // released meanwhile
      throw error;
    }
    // Stale (a crashed writer), or held past any sane time (a clock far off): take it over.
    if (age > RUNLOG_LOCK_STALE_MS || Date.now() > deadline) {
      await storage.remove(key);
      continue;
    }
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
