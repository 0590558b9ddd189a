import { createBackup } from '../core/create.js';
import { resolveProfile, type DumpFlags } from '../core/profile.js';
import { createJson, renderCreate } from '../output/render.js';
import type { CommandContext, CommandResult } from './context.js';

export async function run(options: DumpFlags, ctx: CommandContext): Promise<CommandResult> {
  const loaded = await ctx.loadConfig();
  const profile = resolveProfile({ loaded, flags: { ...ctx.flags, ...options }, env: ctx.runtime.env, cwd: ctx.runtime.cwd });
  const result = await createBackup(profile, ctx.runtime);
  return { json: createJson(result), human: (style) => renderCreate(result, style) };
}
