import type { Sidecar } from '../catalog/sidecar.js';
import { resolveProfile, resolveStorage } from '../core/profile.js';
import { planRestore, restoreBackup, type RestorePlan, type RestoreRequest } from '../core/restore.js';
import { usageError } from '../errors.js';
import { parseConnectionUrl, urlHasPassword, type ConnectionSettings } from '../pg/connection.js';
import { renderRestore, renderRestorePlan, restoreJson } from '../output/render-restore.js';
import { plainStyle } from '../output/style.js';
import type { CommandContext, CommandResult } from './context.js';

export interface RestoreOptions {
  targetDb?: string;
  targetUrl?: string;
  create?: boolean;
  clean?: boolean;
  force?: boolean;
  yes?: boolean;
  dryRun?: boolean;
  dropOld?: boolean;
  globals?: boolean;
  schema?: string[];
  table?: string[];
  owner?: boolean;
  acl?: boolean;
  jobs?: number;
  tag?: string;
}

export async function run(ref: string, options: RestoreOptions, ctx: CommandContext): Promise<CommandResult> {
  if (options.targetUrl !== undefined && urlHasPassword(options.targetUrl)) {
    throw usageError('--target-url must not contain a password', 'use PGPASSWORD, ~/.pgpass or the profile\'s passwordFile');
  }
  const loaded = await ctx.loadConfig();
  const { env, cwd } = ctx.runtime;
  const profileName = ctx.flags.profile ?? (env.BACKUPCTL_PROFILE || undefined);
  const profileConfig = profileName ? loaded.config.profiles?.[profileName] : undefined;
  // The target server: --target-url, else the server of the backup's profile (or the flags/env).
  const server = (sidecar: Sidecar): ConnectionSettings => {
    const configured = loaded.config.profiles?.[sidecar.profile] !== undefined;
    const profile = resolveProfile({
      loaded,
      flags: { ...ctx.flags, profile: configured ? sidecar.profile : ctx.flags.profile },
      env,
      cwd,
    });
    if (options.targetUrl === undefined) return profile.connection;
    const fromUrl = Object.fromEntries(Object.entries(parseConnectionUrl(options.targetUrl, '--target-url')).filter(([, v]) => v !== undefined));
    return { ...profile.connection, ...fromUrl };
  };
  const request: RestoreRequest = {
    storage: resolveStorage(loaded, ctx.flags, env, cwd, profileConfig),
    ref,
    profile: profileName,
    tag: options.tag,
    server,
    targetDb: options.targetDb,
    create: options.create === true,
    clean: options.clean === true,
    force: options.force === true,
    dropOld: options.dropOld === true,
    globals: options.globals === true,
    schemas: options.schema ?? [],
    tables: options.table ?? [],
    noOwner: options.owner === false,
    noAcl: options.acl === false,
    jobs: options.jobs ?? 1,
    pgBinDir: profileConfig?.pgBinDir ?? loaded.config.pgBinDir,
    workDir: loaded.config.workDir,
  };
  if (options.dryRun) {
    const plan = await planRestore(request, ctx.runtime);
    return { json: { dryRun: true, plan }, human: (style) => renderRestorePlan(plan, style) };
  }
  const confirm = async (plan: RestorePlan): Promise<void> => {
    if (options.yes) return;
    if (!ctx.ask) {
      throw usageError(
        `refusing a destructive restore of "${plan.target}" without --yes: there is no terminal to ask`,
        'review it with --dry-run, then add --yes',
      );
    }
    const answer = await ctx.ask(
      `${renderRestorePlan(plan, plainStyle)}Type the name of the target database ("${plan.target}") to go ahead: `,
    );
    if (answer.trim() !== plan.target) throw usageError('restore cancelled; nothing was changed');
  };
  const result = await restoreBackup(request, ctx.runtime, confirm);
  return { json: restoreJson(result), human: (style) => renderRestore(result, style) };
}
