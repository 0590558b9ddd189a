import { unlockProfile } from '../core/lock.js';
import { profileForMaintenance } from '../core/profile.js';
import { storageAt } from '../core/storages.js';
import { renderUnlock, unlockJson } from '../output/render-prune.js';
import type { CommandContext, CommandResult } from './context.js';

export async function run(options: { force?: boolean }, ctx: CommandContext): Promise<CommandResult> {
  const profile = profileForMaintenance(ctx.settings);
  const result = await unlockProfile({
    storage: storageAt(ctx.runtime, profile.storage, profile.storageSettings),
    profile: profile.name,
    configured: profile.configured,
    force: options.force === true,
    now: ctx.runtime.now(),
  });
  return { json: unlockJson(result), human: (style) => renderUnlock(result, style) };
}
