import { unlockProfile } from '../core/lock.js';
import { resolveProfileTarget } from '../core/target.js';
import { renderUnlock, unlockJson } from '../output/render-prune.js';
import type { CommandContext, CommandResult } from './context.js';

export async function run(options: { force?: boolean }, ctx: CommandContext): Promise<CommandResult> {
  const loaded = await ctx.loadConfig();
  const { env, cwd } = ctx.runtime;
  const target = resolveProfileTarget({ loaded, flags: ctx.flags, env, cwd });
  const result = await unlockProfile({
    storage: target.storage,
    cwd,
    profile: target.name,
    force: options.force === true,
    now: ctx.runtime.now(),
  });
  return { json: unlockJson(result), human: (style) => renderUnlock(result, style) };
}
