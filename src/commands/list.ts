import { listBackups } from '../core/list.js';
import { requestedProfile } from '../core/profile.js';
import { listFailedRuns } from '../core/runs.js';
import { usageError } from '../errors.js';
import { listJson, renderList } from '../output/render.js';
import { failedRunsJson, renderFailedRuns } from '../output/status.js';
import { backupScope } from './backup-scope.js';
import type { CommandContext, CommandResult } from './context.js';

export interface ListOptions {
  tag?: string;
  since?: Date;
  limit?: number;
  all?: boolean;
  /** List failed and interrupted runs from the run log instead of backups. */
  failed?: boolean;
}

export async function run(options: ListOptions, ctx: CommandContext): Promise<CommandResult> {
  const loaded = await ctx.loadConfig();
  const { env, cwd, reporter } = ctx.runtime;
  // Without --profile (or BACKUPCTL_PROFILE), list every profile in the storage.
  const { profile, storage } = backupScope(loaded, ctx);
  const selected = profile ? requestedProfile(loaded, { profile }, env) : undefined;
  if (options.failed) {
    if (options.tag !== undefined || options.all) throw usageError('--failed cannot be combined with --tag or --all', 'failed runs have no tags; use --profile, --since and --limit');
    const runs = await listFailedRuns({ storage, cwd, profile: selected, since: options.since, limit: options.limit });
    for (const warning of runs.warnings) reporter.warn(warning);
    return { json: failedRunsJson(runs), human: (style, now) => renderFailedRuns(runs, style, now) };
  }
  const result = await listBackups({ storage, cwd, profile: selected, ...options });
  for (const warning of result.warnings) reporter.warn(warning);
  return { json: listJson(result), human: (style, now) => renderList(result, style, now) };
}
