import { settingsOf } from '../config/resolve.js';
import { backupScope } from '../core/scope.js';
import { serverForBackup } from '../core/server.js';
import { verifyBackups, verifyExitCode, type VerifyLevel } from '../core/verify.js';
import { usageError } from '../errors.js';
import { renderVerify, verifyJson } from '../output/render-verify.js';
import type { CommandContext, CommandResult } from './context.js';
import { keysByProfile, type DecryptOptions } from './keys.js';

export interface VerifyOptions extends DecryptOptions {
  all?: boolean;
  level: VerifyLevel;
  keep?: boolean;
  jobs?: number;
  tag?: string;
  verifyUrl?: string;
}

export async function run(ref: string | undefined, options: VerifyOptions, ctx: CommandContext): Promise<CommandResult> {
  if (!options.all && ref === undefined) throw usageError('verify needs a backup id, "latest", or --all');
  if (options.all && ref !== undefined) throw usageError('give either a backup id or --all, not both');
  const { settings } = ctx;
  const result = await verifyBackups(
    {
      scope: backupScope(settings, ctx.runtime),
      ref,
      all: options.all,
      tag: options.tag,
      level: options.level,
      keep: options.keep === true,
      jobs: (profile) => options.jobs ?? settingsOf(settings, profile).verify?.jobs ?? 1,
      // Where the restore level restores: --verify-url, else the profile's verify.server, else its own
      // server (which the global --db-url overrides, as it does for create).
      server:
        options.level === 'restore'
          ? serverForBackup(settings, { value: options.verifyUrl, flag: '--verify-url' }, {}, (profile) => profile.verify?.server ?? ctx.flags.dbUrl)
          : null,
      pgBinDir: (profile) => settingsOf(settings, profile).pgBinDir,
      keys: keysByProfile(settings, options),
      workDir: settings.workDir,
      notify: (profile) => settingsOf(settings, profile).notify,
    },
    ctx.runtime,
  );
  return { json: verifyJson(result), human: (style) => renderVerify(result, style), exitCode: verifyExitCode(result) };
}
