import { unlockProfile } from '../core/lock.js';
import { profileForMaintenance } from '../core/profile.js';
import { renderUnlock, unlockJson } from '../output/render-prune.js';
import type { CommandContext, CommandResult } from './context.js';

export async function run(options: { force?: boolean }, ctx: CommandContext): Promise<CommandResult> {
  const profile = profileForMaintenance(ctx.settings, ctx.flags.dbUrl);
  const result = await unlockProfile({
    storage: profile.storage,
    cwd: ctx.runtime.cwd,
    profile: profile.name,
    configured: profile.configured,
    force: options.force === true,
    now: ctx.runtime.now(),
  });
  return { json: unlockJson(result), human: (style) => renderUnlock(result, style) };
}
