import { showBackup } from '../core/list.js';
import { backupScope } from '../core/scope.js';
import { renderShow, showJson } from '../output/render.js';
import type { CommandContext, CommandResult } from './context.js';

export async function run(ref: string, options: { tag?: string }, ctx: CommandContext): Promise<CommandResult> {
  const result = await showBackup({ scope: backupScope(ctx.settings, ctx.runtime), ref, tag: options.tag });
  return { json: showJson(result), human: (style, now) => renderShow(result, style, now) };
}
