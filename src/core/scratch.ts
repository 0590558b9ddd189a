import { hostname } from 'node:os';
import { dropDatabase, scratchDatabases, type ScratchDatabase, type ScratchTag } from '../pg/admin.js';
import type { ConnectionSettings } from '../pg/connection.js';
import { isProcessAlive } from '../platform/process.js';
import type { Runtime } from './runtime.js';

/**
 * Scratch databases (verify's throwaway, restore's staging) of killed runs. Each is marked
 * when created (its COMMENT names the kind, host, pid and start of the run: pg/admin.ts),
 * so the next verify or restore on that server finds the ones whose run is gone and drops
 * them. Only runs of this host are judged (a pid means nothing elsewhere); a leftover of
 * another host is reported once it is a day old, never dropped from here.
 */

/** The tag of a scratch database this run creates. */
export function scratchTag(kind: ScratchTag['kind'], runtime: Pick<Runtime, 'now'>): ScratchTag {
  return { kind, host: hostname(), pid: process.pid, startedAt: runtime.now().toISOString() };
}

/** A leftover of another host is worth a word after this long. */
const FOREIGN_AGE_MS = 24 * 3_600_000;

export interface SweepResult {
  dropped: string[];
  /** Leftovers of other hosts, older than a day: reported, not dropped. */
  foreign: ScratchDatabase[];
}

/** Whether a scratch database's run is gone (this host) or long quiet (another host). */
export function isLeftover(database: ScratchTag, now: Date): 'dead' | 'foreign' | null {
  if (database.host === hostname()) return database.pid !== process.pid && !isProcessAlive(database.pid) ? 'dead' : null;
  return now.getTime() - Date.parse(database.startedAt) > FOREIGN_AGE_MS ? 'foreign' : null;
}

/**
 * Drops the scratch databases that runs of this host killed before they could (on the
 * server about to be used). Never fails the run: a sweep that cannot list or drop is a
 * warning.
 */
export async function sweepScratchDatabases(server: ConnectionSettings, runtime: Pick<Runtime, 'now' | 'reporter'>): Promise<SweepResult> {
  const result: SweepResult = { dropped: [], foreign: [] };
  let found: ScratchDatabase[];
  try {
    found = await scratchDatabases(server);
  } catch (error) {
    runtime.reporter.debug(`could not look for leftover scratch databases: ${(error as Error).message}`);
    return result;
  }
  const now = runtime.now();
  for (const database of found) {
    const state = isLeftover(database, now);
    if (state === 'foreign') {
      result.foreign.push(database);
      runtime.reporter.warn(`leftover ${database.kind} database ${database.database} of a run on ${database.host} (pid ${database.pid}, ${database.startedAt}): drop it once that run is surely gone`);
    }
    if (state !== 'dead') continue;
    try {
      await dropDatabase(server, database.database, { restored: true });
      result.dropped.push(database.database);
      runtime.reporter.info(`dropped leftover ${database.kind} database ${database.database} of a run that ended without dropping it (pid ${database.pid}, ${database.startedAt})`);
    } catch (error) {
      runtime.reporter.warn(`could not drop leftover database ${database.database}: ${(error as Error).message}`);
    }
  }
  return result;
}
