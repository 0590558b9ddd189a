import { listBackups } from '../core/list.js';
import { requestedProfile, resolveStorage } from '../core/profile.js';
import { listJson, renderList } from '../output/render.js';
import type { CommandContext, CommandResult } from './context.js';

export interface ListOptions {
  tag?: string;
  since?: Date;
  limit?: number;
  all?: boolean;
}

export async function run(options: ListOptions, ctx: CommandContext): Promise<CommandResult> {
  const loaded = await ctx.loadConfig();
  const { env, cwd, reporter } = ctx.runtime;
  // Without --profile (or BACKUPCTL_PROFILE), list every profile in the storage.
  const profile = ctx.flags.profile ?? (env.BACKUPCTL_PROFILE || undefined);
  const storage = resolveStorage(loaded, ctx.flags, env, cwd, profile ? loaded.config.profiles?.[profile] : undefined);
  const result = await listBackups({ storage, cwd, profile: profile ? requestedProfile(loaded, { profile }, env) : undefined, ...options });
  for (const warning of result.warnings) reporter.warn(warning);
  return { json: listJson(result), human: (style, now) => renderList(result, style, now) };
}
