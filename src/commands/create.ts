import { createBackup } from '../core/create.js';
import { resolveProfile, type DumpFlags } from '../core/profile.js';
import { withRunReport } from '../core/report-run.js';
import { profileSettings } from '../core/settings.js';
import { createJson, renderCreate } from '../output/render.js';
import type { CommandContext, CommandResult } from './context.js';

export async function run(options: DumpFlags & { wait?: number }, ctx: CommandContext): Promise<CommandResult> {
  const { wait, ...dumpFlags } = options;
  const loaded = await ctx.loadConfig();
  const profile = resolveProfile({ loaded, flags: { ...ctx.flags, ...dumpFlags }, env: ctx.runtime.env, cwd: ctx.runtime.cwd });
  for (const warning of profile.warnings) ctx.runtime.reporter.warn(warning);
  // Every run is recorded in the profile's run log and notified (see core/report-run.ts).
  const result = await withRunReport(
    {
      command: 'create',
      profile: profile.name,
      storage: profile.storage,
      database: profile.connection.database,
      notify: profileSettings(loaded, profile.name).notify,
    },
    ctx.runtime,
    () => createBackup(profile, ctx.runtime, { waitMs: wait }),
    (created) => ({ id: created.sidecar.id, bytes: created.sidecar.artifact.bytes }),
  );
  return { json: createJson(result), human: (style) => renderCreate(result, style) };
}
