import { showBackup } from '../core/list.js';
import { resolveStorage } from '../core/profile.js';
import { renderShow, showJson } from '../output/render.js';
import type { CommandContext, CommandResult } from './context.js';

export async function run(ref: string, options: { tag?: string }, ctx: CommandContext): Promise<CommandResult> {
  const loaded = await ctx.loadConfig();
  const { env, cwd } = ctx.runtime;
  const profile = ctx.flags.profile ?? (env.BACKUPCTL_PROFILE || undefined);
  const storage = resolveStorage(loaded, ctx.flags, env, cwd, profile ? loaded.config.profiles?.[profile] : undefined);
  const result = await showBackup({ storage, cwd, ref, profile, tag: options.tag });
  return { json: showJson(result), human: (style, now) => renderShow(result, style, now) };
}
