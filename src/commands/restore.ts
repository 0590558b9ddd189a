import { settingsOf } from '../config/resolve.js';
import { planRestore, restoreBackup, type RestorePlan, type RestoreRequest } from '../core/restore.js';
import { backupScope } from '../core/scope.js';
import { serverForBackup } from '../core/server.js';
import { parseConnectionUrl } from '../pg/connection.js';
import { ExitCode, usageError } from '../errors.js';
import { renderRestore, renderRestorePlan, restoreJson } from '../output/render-restore.js';
import { plainStyle } from '../output/style.js';
import type { CommandContext, CommandResult } from './context.js';
import { keysByProfile, type DecryptOptions } from './keys.js';

export interface RestoreOptions extends DecryptOptions {
  targetDb?: string;
  targetUrl?: string;
  host?: string;
  port?: number;
  username?: string;
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
  tablespaces?: boolean;
  jobs?: number;
  tag?: string;
}

export async function run(ref: string, options: RestoreOptions, ctx: CommandContext): Promise<CommandResult> {
  const { settings } = ctx;
  // The target server: --target-url and -h/-p/-U, else the server of the backup's profile.
  const url = options.targetUrl !== undefined ? { value: options.targetUrl, flag: '--target-url' } : { value: ctx.flags.dbUrl, flag: '--db-url' };
  const server = serverForBackup(settings, url, { host: options.host, port: options.port, user: options.username });
  const request: RestoreRequest = {
    scope: backupScope(settings, ctx.runtime),
    ref,
    tag: options.tag,
    server,
    targetDb: targetDatabase(options),
    create: options.create === true,
    clean: options.clean === true,
    force: options.force === true,
    dropOld: options.dropOld === true,
    globals: options.globals === true,
    schemas: options.schema ?? [],
    tables: options.table ?? [],
    noOwner: options.owner === false,
    noAcl: options.acl === false,
    noTablespaces: options.tablespaces === false,
    jobs: options.jobs ?? 1,
    pgBinDir: (profile) => settingsOf(settings, profile).pgBinDir,
    keys: keysByProfile(settings, options),
    workDir: settings.workDir,
  };
  if (options.dryRun) {
    const plan = await planRestore(request, ctx.runtime);
    // The exit code the real run would have at this point: a CI pre-flight can rely on it.
    const refused = plan.refusal !== null || !plan.mode;
    return { json: { dryRun: true, plan }, human: (style) => renderRestorePlan(plan, style), exitCode: refused ? ExitCode.USAGE : ExitCode.OK };
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

/**
 * The database restored into: -d, else the database --target-url names (as pg_restore -d
 * takes a URL's), else the backup's own (undefined here). The global --db-url names the
 * backup's source, never the target.
 */
function targetDatabase(options: RestoreOptions): string | undefined {
  if (options.targetDb !== undefined) return options.targetDb;
  if (options.targetUrl === undefined) return undefined;
  const named = parseConnectionUrl(options.targetUrl, '--target-url').database;
  return named === undefined || named === '' ? undefined : named;
}
