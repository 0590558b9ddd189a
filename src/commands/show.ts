import { showBackup } from '../core/list.js';
import { renderShow, showJson } from '../output/render.js';
import { backupScope } from './backup-scope.js';
import type { CommandContext, CommandResult } from './context.js';

export async function run(ref: string, options: { tag?: string }, ctx: CommandContext): Promise<CommandResult> {
  const loaded = await ctx.loadConfig();
  const { profile, storage } = backupScope(loaded, ctx);
  const { cwd } = ctx.runtime;
  const result = await showBackup({ storage, cwd, ref, profile, tag: options.tag });
  return { json: showJson(result), human: (style, now) => renderShow(result, style, now) };
}
