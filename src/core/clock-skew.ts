/**
 * Backups dated ahead of this host's clock. A sidecar's times come from the clock of the
 * host that made the backup; hosts kept by NTP differ by far less than CLOCK_SKEW_TOLERANCE_MS.
 * Past it, one of the clocks was wrong (the maker's ahead then, or this one's behind now),
 * and whatever goes by the dates cannot trust the backup's: `latest` takes it before the
 * backups made since; status's age check would measure a negative age and its failures
 * check would date the last success in the future, hiding every failed create until then.
 */
import { describeMs } from '../units.js';

export const CLOCK_SKEW_TOLERANCE_MS = 5 * 60_000;

/** How far past `nowMs` a backup finished, when that is more than the tolerance; else null. */
export function datedAheadBy(backup: { finishedAt: string }, nowMs: number): number | null {
  const ahead = Date.parse(backup.finishedAt) - nowMs;
  return ahead > CLOCK_SKEW_TOLERANCE_MS ? ahead : null;
}

/** `X finished 364 d after this host's clock says it is now (at 2027-...)`: the start of the messages that report one. */
export function describeAhead(backup: { id: string; finishedAt: string }, aheadMs: number): string {
  return `${backup.id} finished ${describeMs(aheadMs)} after this host's clock says it is now (at ${backup.finishedAt})`;
}
