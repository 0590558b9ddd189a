import { resolve } from 'node:path';
import { checkStatus, type StatusFlags } from '../core/status.js';
import { writeFileAtomic } from '../core/textfile.js';
import { ExitCode } from '../errors.js';
import { renderPrometheus } from '../output/prometheus.js';
import { renderStatus, statusJson } from '../output/status.js';
import type { CommandContext, CommandResult } from './context.js';

export interface StatusOptions extends StatusFlags {
  /** node_exporter textfile to write (atomically, mode 0644). */
  prometheus?: string | undefined;
}

export async function run(options: StatusOptions, ctx: CommandContext): Promise<CommandResult> {
  const { cwd, reporter } = ctx.runtime;
  const result = await checkStatus({
    settings: ctx.settings,
    runtime: ctx.runtime,
    now: ctx.runtime.now(),
    thresholds: {
      maxAge: options.maxAge,
      maxVerifyAge: options.maxVerifyAge,
      minSizeRatio: options.minSizeRatio,
      allowFailures: options.allowFailures,
    },
  });
  for (const warning of result.warnings) reporter.warn(warning);
  if (options.prometheus !== undefined) {
    const file = resolve(cwd, options.prometheus);
    await writeFileAtomic(file, renderPrometheus(result));
    reporter.debug(`wrote metrics to ${file}`);
  }
  return {
    json: statusJson(result),
    human: (style, now) => renderStatus(result, style, now),
    exitCode: result.healthy ? ExitCode.OK : ExitCode.STATUS_FAILED,
  };
}
