import { dropDatabase, scratchDatabases, type ScratchDatabase, type ScratchTag } from '../pg/admin.js';
import type { ConnectionSettings } from '../pg/connection.js';
import { describeWriterGone, identityOf, judgeWriter, thisProcess, type ProcessFacts, type WriterState } from '../platform/process.js';
import type { Runtime } from './runtime.js';

/**
 * Scratch databases (verify's throwaway, restore's staging) of killed runs. Each is marked
 * when created (its COMMENT names the kind, host, pid and start of the run, and on Linux
 * the run's boot id and start ticks: pg/admin.ts), so the next verify or restore on that
 * server finds the ones whose run is gone and drops them. Only runs of this host are
 * judged (a pid means nothing elsewhere), by judgeWriter: the pid is no longer running, or
 * (with the identity recorded) the host has rebooted since or the pid is another process
 * now; a tag of an older version is judged by its pid alone. No wall clock decides for this
 * host. A leftover of another host is reported once it is a day old, never dropped from here.
 */

/** How long the drop of a run's own scratch database is waited for once the run is interrupted (cli.ts gives the whole clean-up 3 s). */
export const INTERRUPTED_DROP_MS = 1_000;

/**
 * Waits for the drop of this run's scratch database, which must go even on Ctrl-C; but once
 * the run is interrupted, for at most INTERRUPTED_DROP_MS: on a server that stopped
 * answering the drop never ends, and the run would pass its grace period with its lock and
 * run log entry undone. Resolves false when it gave up: the database is then a leftover of
 * a dead run, which the next verify or restore on this host drops. Rejects as the drop does.
 */
export function dropWithinGrace(drop: Promise<void>, signal: AbortSignal): Promise<boolean> {
  return new Promise<boolean>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const giveUp = () => {
      timer = setTimeout(() => resolve(false), INTERRUPTED_DROP_MS);
    };
    const settle = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', giveUp);
    };
    if (signal.aborted) giveUp();
    else signal.addEventListener('abort', giveUp, { once: true });
    drop.then(
      () => {
        settle();
        resolve(true);
      },
      (error: unknown) => {
        settle();
        reject(error as Error);
      },
    );
  });
}

/** The tag of a scratch database this run creates. */
export function scratchTag(kind: ScratchTag['kind'], runtime: Pick<Runtime, 'now'>, facts: ProcessFacts = thisProcess): ScratchTag {
  return { kind, host: facts.hostname, ...identityOf(facts), startedAt: runtime.now().toISOString() };
}

/** A leftover of another host is worth a word after this long. */
const FOREIGN_AGE_MS = 24 * 3_600_000;

export interface SweepResult {
  dropped: string[];
  /** Leftovers of other hosts, older than a day: reported, not dropped. */
  foreign: ScratchDatabase[];
}

/** A scratch database's run: gone from this host (and why), or of another host and long quiet. */
export type Leftover = { state: 'dead'; why: Exclude<WriterState, 'running'> } | { state: 'foreign' };

/** Whether a scratch database's run is gone (this host: judgeWriter) or long quiet (another host); null: it may still run. */
export function isLeftover(database: ScratchTag, now: Date, facts: ProcessFacts = thisProcess): Leftover | null {
  if (database.host === facts.hostname) {
    // Our own pid is this process's (its runs share it) unless the identity says an earlier process had it.
    const judged = judgeWriter(database, facts);
    return judged === 'running' ? null : { state: 'dead', why: judged };
  }
  return now.getTime() - Date.parse(database.startedAt) > FOREIGN_AGE_MS ? { state: 'foreign' } : null;
}

/** "pid 4242, 2026-...; pid reused: 4242 is another process now": who left a dead run's scratch database, and why it is gone. */
export function describeLeftover(database: ScratchTag, why: Exclude<WriterState, 'running'>): string {
  return `pid ${database.pid}, ${database.startedAt}; ${describeWriterGone(why, database.pid)}`;
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
    const left = isLeftover(database, now);
    if (left?.state === 'foreign') {
      result.foreign.push(database);
      runtime.reporter.warn(`leftover ${database.kind} database ${database.database} of a run on ${database.host} (pid ${database.pid}, ${database.startedAt}): drop it once that run is surely gone`);
    }
    if (left?.state !== 'dead') continue;
    try {
      // Only while it carries the mark it was found with: a database that took its name since is not a leftover.
      if (!(await dropDatabase(server, database.database, { restored: true, mark: database.mark }))) continue;
      result.dropped.push(database.database);
      runtime.reporter.info(`dropped leftover ${database.kind} database ${database.database} of a run that ended without dropping it (${describeLeftover(database, left.why)})`);
    } catch (error) {
      runtime.reporter.warn(`could not drop leftover database ${database.database}: ${(error as Error).message}`);
    }
  }
  return result;
}
