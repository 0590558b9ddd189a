import { deleteBackups, type DeletedBackup } from '../core/delete.js';
import { withRunReport } from '../core/report-run.js';
import { backupScope } from '../core/scope.js';
import { settingsOf } from '../config/resolve.js';
import { ExitCode } from '../errors.js';
import { deleteJson, renderDelete } from '../output/render-delete.js';
import type { CommandContext, CommandResult } from './context.js';

export interface DeleteOptions {
  force?: boolean;
  dryRun?: boolean;
  /** Milliseconds. */
  wait?: number;
}

export async function run(refs: string[], options: DeleteOptions, ctx: CommandContext): Promise<CommandResult> {
  const result = await deleteBackups(
    { scope: backupScope(ctx.settings, ctx.runtime), refs, force: options.force === true, dryRun: options.dryRun === true, waitMs: options.wait },
    ctx.runtime,
    // Each profile's part is a run of its own in that profile's run log, and notified.
    (profile, storage, work) =>
      withRunReport(
        { command: 'delete', profile, storage, notify: settingsOf(ctx.settings, profile).notify },
        ctx.runtime,
        async (started) => {
          const done = await work();
          started();
          return done;
        },
        (done: DeletedBackup[]) => ({ id: done.length === 1 ? done[0]?.id : undefined, bytes: done.reduce((sum, d) => sum + (d.removed ? d.bytes : 0), 0) }),
        (done: DeletedBackup[]) => {
          const failed = done.filter((d) => d.error);
          return failed.length === 0 ? null : { exitCode: ExitCode.FAILED, error: `could not remove ${failed.map((d) => d.id).join(', ')}` };
        },
      ),
  );
  return {
    json: deleteJson(result),
    human: (style, now) => renderDelete(result, style, now),
    exitCode: result.errors.length > 0 ? ExitCode.FAILED : ExitCode.OK,
  };
}
