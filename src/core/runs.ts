import { profilesWithRunLog, type RunEntry } from '../catalog/runlog.js';
import { readRunLog } from '../catalog/runlog-schema.js';
import { isProfileName } from '../catalog/id.js';
import { usageError } from '../errors.js';
import { openStorage } from '../storage/registry.js';
import { storageError } from './storage-errors.js';

export interface FailedRunsRequest {
  storage: string;
  cwd: string;
  /** One profile; every profile with a run log in the storage when undefined. */
  profile?: string | undefined;
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
  if (request.profile !== undefined && !isProfileName(request.profile)) {
    throw usageError(`invalid profile name ${JSON.stringify(request.profile)}`);
  }
  const storage = openStorage(request.storage, request.cwd);
  const warnings: string[] = [];
  const runs: RunEntry[] = [];
  try {
    const profiles =
      request.profile !== undefined ? [request.profile] : profilesWithRunLog((await storage.list('')).map((o) => o.key));
    for (const profile of profiles) {
      const log = await readRunLog(storage, profile);
      if (log.skipped > 0) warnings.push(`skipped ${log.skipped} unreadable line(s) of ${profile}/runs.jsonl`);
      runs.push(...log.entries.filter((entry) => entry.result !== 'succeeded'));
    }
  } catch (error) {
    throw storageError(error, storage.location, 'reading the run log');
  }
  let selected = runs.sort((a, b) => Date.parse(b.finishedAt) - Date.parse(a.finishedAt));
  if (request.since !== undefined) {
    const since = request.since.getTime();
    selected = selected.filter((run) => Date.parse(run.finishedAt) >= since);
  }
  if (request.limit !== undefined) selected = selected.slice(0, request.limit);
  return { storage: storage.location, runs: selected, warnings };
}
