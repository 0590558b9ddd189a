import { profilesWithRunLog, type RunEntry } from '../catalog/runlog.js';
import { readRunLog } from '../catalog/runlog-schema.js';
import { assertKnownProfile, type BackupScope } from './scope.js';
import { storageError } from './storage-errors.js';

export interface FailedRunsRequest {
  /** The storages to read (each profile's run log lives beside its backups). */
  scope: BackupScope;
  /** Only runs that finished at or after this instant. */
  since?: Date | undefined;
  limit?: number | undefined;
}

export interface FailedRunsResult {
  storage: string;
  /** Failed and interrupted runs, newest first. */
  runs: RunEntry[];
  warnings: string[];
}

/** `list --failed`: the failed and interrupted runs recorded in the run logs. */
export async function listFailedRuns(request: FailedRunsRequest): Promise<FailedRunsResult> {
  const { scope } = request;
  await assertKnownProfile(scope);
  const warnings: string[] = [];
  const runs: RunEntry[] = [];
  for (const { storage } of scope.locations) {
    try {
      const profiles = scope.profile !== undefined ? [scope.profile] : profilesWithRunLog((await storage.list('')).map((o) => o.key));
      for (const profile of profiles) {
        const log = await readRunLog(storage, profile);
        if (log.skipped > 0) warnings.push(`skipped ${log.skipped} unreadable line(s) of ${profile}/runs.jsonl`);
        runs.push(...log.entries.filter((entry) => entry.result === 'failed' || entry.result === 'interrupted'));
      }
    } catch (error) {
      throw storageError(error, storage.location, 'reading the run log', 'read');
    }
  }
  let selected = runs.sort((a, b) => Date.parse(b.finishedAt) - Date.parse(a.finishedAt));
  if (request.since !== undefined) {
    const since = request.since.getTime();
    selected = selected.filter((run) => Date.parse(run.finishedAt) >= since);
  }
  if (request.limit !== undefined) selected = selected.slice(0, request.limit);
  return { storage: scope.locations.map((l) => l.storage.location).join(', '), runs: selected, warnings };
}
