import { verifyBackups, type VerifyLevel } from '../core/verify.js';
import { ExitCode, usageError } from '../errors.js';
import { renderVerify, verifyJson } from '../output/render-verify.js';
import { backupScope, serverForBackup } from './backup-scope.js';
import type { CommandContext, CommandResult } from './context.js';

export interface VerifyOptions {
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
  const loaded = await ctx.loadConfig();
  const { profile: profileName, profileConfig, storage } = backupScope(loaded, ctx);
  const result = await verifyBackups(
    {
      storage,
      ref,
      all: options.all,
      profile: profileName,
      tag: options.tag,
      level: options.level,
      keep: options.keep === true,
      jobs: options.jobs ?? profileConfig?.verify?.jobs ?? loaded.config.defaults?.verify?.jobs ?? 1,
      // Where the restore level restores: --verify-url, else the profile's verify.server, else its own server.
      server:
        options.level === 'restore'
          ? serverForBackup(loaded, ctx, { value: options.verifyUrl, flag: '--verify-url' }, (profile) => profile.verify?.server)
          : null,
      pgBinDir: profileConfig?.pgBinDir ?? loaded.config.pgBinDir,
      workDir: loaded.config.workDir,
    },
    ctx.runtime,
  );
  const failed = result.outcomes.some((o) => o.result === 'failed');
  return {
    json: verifyJson(result),
    human: (style) => renderVerify(result, style),
    exitCode: failed ? ExitCode.VERIFY_FAILED : ExitCode.OK,
  };
}
