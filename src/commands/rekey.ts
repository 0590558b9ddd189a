import path from 'node:path';
import { settingsOf } from '../config/resolve.js';
import { loadRecipients } from '../core/keys.js';
import { rekeyBackups, rekeyExitCode, type RekeyedBackup } from '../core/rekey.js';
import { withRunReport } from '../core/report-run.js';
import { backupScope } from '../core/scope.js';
import { rekeyJson, renderRekey } from '../output/render-rekey.js';
import type { CommandContext, CommandResult } from './context.js';
import { keysByProfile, type DecryptOptions } from './keys.js';

export interface RekeyOptions extends DecryptOptions {
  all?: boolean;
  addRecipient?: string[];
  removeRecipient?: string[];
  recipientsFile?: string[];
  dryRun?: boolean;
  /** Milliseconds. */
  wait?: number;
}

export async function run(refs: string[], options: RekeyOptions, ctx: CommandContext): Promise<CommandResult> {
  const { settings } = ctx;
  const recipientsFiles = (options.recipientsFile ?? []).map((file) => path.resolve(settings.cwd, file));
  const result = await rekeyBackups(
    {
      scope: backupScope(settings, ctx.runtime),
      refs,
      all: options.all === true,
      add: loadRecipients(options.addRecipient ?? [], recipientsFiles),
      remove: options.removeRecipient ?? [],
      known: (profile) => {
        const encryption = settingsOf(settings, profile).encryption;
        return loadRecipients(encryption?.recipients ?? [], encryption?.recipientsFile ? [encryption.recipientsFile] : []);
      },
      keys: keysByProfile(settings, options),
      dryRun: options.dryRun === true,
      waitMs: options.wait,
    },
    ctx.runtime,
    (profile, storage, work) =>
      withRunReport(
        { command: 'rekey', profile, storage, notify: settingsOf(settings, profile).notify },
        ctx.runtime,
        async (started) => {
          const done = await work();
          started();
          return done;
        },
        (done: RekeyedBackup[]) => ({ id: done.length === 1 ? done[0]?.id : undefined }),
        (done: RekeyedBackup[]) => {
          const failed = done.filter((d) => d.result === 'failed');
          return failed.length === 0 ? null : { exitCode: rekeyExitCode(done), error: `could not rekey ${failed.map((d) => d.id).join(', ')}` };
        },
      ),
  );
  return { json: rekeyJson(result), human: (style) => renderRekey(result, style), exitCode: rekeyExitCode(result.backups) };
}
