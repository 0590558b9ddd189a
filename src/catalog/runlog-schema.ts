import * as z from 'zod';
import { NotFoundError, type Storage } from '../storage/storage.js';
import { ID_PATTERN, isProfileName, PROFILE_PATTERN } from './id.js';
import { RUNLOG_MAX_BYTES, RUNLOG_MAX_ERROR_CHARS, runlogKey } from './runlog.js';

/** The run log's entries (contract: runlog.ts), validated line by line on read. */
const isoTime = z.iso.datetime({ offset: true });

export const RunEntrySchema = z.object({
  /** The command that ran: create, verify, prune... */
  command: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/),
  profile: z.string().regex(PROFILE_PATTERN),
  startedAt: isoTime,
  finishedAt: isoTime,
  durationMs: z.number().int().nonnegative().optional(),
  /** `busy`: the run found the profile locked by another run (exit 4) and did nothing. */
  result: z.enum(['succeeded', 'failed', 'interrupted', 'busy']),
  /** Where the run wrote, when that is not the profile's storage (a copy's destination, redacted). */
  target: z.string().max(1000).optional(),
  /** Where a create was to copy its backup next (the profile's `copies`, redacted): status checks them. */
  copies: z.array(z.string().max(1000)).max(16).optional(),
  /**
   * Of a copy run: the backups it left at its destination (copied, or found there already),
   * also when others of the run failed; left out past COPIED_IDS_MAX (core/status.ts) ids.
   * Status and the next create's copy step judge per backup what was copied where by it.
   */
  copied: z.array(z.string().regex(ID_PATTERN)).max(100).optional(),
  /** The backup the run created or worked on, when there is one. */
  id: z.string().regex(ID_PATTERN).optional(),
  /** One line: what went wrong (redacted). */
  error: z.string().max(RUNLOG_MAX_ERROR_CHARS).optional(),
  /** The process exit code of the run (see errors.ts ExitCode). */
  exitCode: z.number().int().min(0).max(255),
  /** The machine the run was on. */
  host: z.string().max(255).optional(),
  /** The run's process id on `host` (status asks whether a create is still copying its backup). */
  pid: z.number().int().positive().optional(),
  /**
   * Linux, with startTicks: the boot id of `host` when the run started; with it, status tells a
   * process given the run's pid since (or a reboot) from the run itself (judgeWriter). Absent
   * in entries of older versions; a value that is not well-formed is dropped, not the entry.
   */
  bootId: z.string().max(64).optional().catch(undefined),
  /** Linux, with bootId: when the run's process started, in clock ticks since boot. */
  startTicks: z.number().int().nonnegative().optional().catch(undefined),
});

export type RunEntry = z.infer<typeof RunEntrySchema>;

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
