import { checkProfiles } from '../core/check.js';
import { ExitCode } from '../errors.js';
import { checkJson, renderCheck } from '../output/render-check.js';
import type { CommandContext, CommandResult } from './context.js';

export async function run(_options: Record<string, never>, ctx: CommandContext): Promise<CommandResult> {
  const result = await checkProfiles(ctx.settings, ctx.runtime, { dbUrl: ctx.flags.dbUrl });
  return { json: checkJson(result), human: (style) => renderCheck(result, style), exitCode: result.ok ? ExitCode.OK : ExitCode.STATUS_FAILED };
}
