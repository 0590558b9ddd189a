import { listBackups } from '../core/list.js';
import { listFailedRuns } from '../core/runs.js';
import { backupScope } from '../core/scope.js';
import { ExitCode, usageError } from '../errors.js';
import { listJson, renderList } from '../output/render.js';
import { failedRunsJson, renderFailedRuns } from '../output/status.js';
import type { CommandContext, CommandResult } from './context.js';

/** How many refused sidecars list names one by one. */
const REFUSED_SHOWN = 10;

export interface ListOptions {
  tag?: string;
  since?: (now: Date) => Date;
  limit?: number;
  all?: boolean;
  /** List failed and interrupted runs from the run log instead of backups. */
  failed?: boolean;
}

export async function run(options: ListOptions, ctx: CommandContext): Promise<CommandResult> {
  const { reporter } = ctx.runtime;
  const scope = backupScope(ctx.settings, ctx.runtime);
  const since = options.since ? options.since(ctx.runtime.now()) : undefined;
  if (options.failed) {
    if (options.tag !== undefined || options.all) throw usageError('--failed cannot be combined with --tag or --all', 'failed runs have no tags; use --profile, --since and --limit');
    const runs = await listFailedRuns({ scope, since, limit: options.limit });
    for (const warning of runs.warnings) reporter.warn(warning);
    return { json: failedRunsJson(runs), human: (style, now) => renderFailedRuns(runs, style, now) };
  }
  const result = await listBackups({ scope, tag: options.tag, since, limit: options.limit, all: options.all });
  for (const warning of result.warnings) reporter.warn(warning);
  // Listed as far as it could, but incomplete: exit 1, each refusal named (a few: a storage
  // that refuses every sidecar would otherwise print thousands of lines).
  for (const line of result.refused.slice(0, REFUSED_SHOWN)) reporter.warn(line);
  if (result.refused.length > REFUSED_SHOWN) reporter.warn(`and ${result.refused.length - REFUSED_SHOWN} more sidecar(s) refused alike: not listed`);
  return {
    ...(result.refused.length > 0 ? { exitCode: ExitCode.FAILED } : {}),
    // Built only when asked for (--json): for 10,000 backups it is 10,000 more objects.
    get json() {
      return listJson(result);
    },
    human: (style, now) => renderList(result, style, now),
  };
}
