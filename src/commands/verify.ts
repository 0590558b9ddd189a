import type { Sidecar } from '../catalog/sidecar.js';
import { resolveProfile, resolveStorage, type LoadedConfigRef } from '../core/profile.js';
import type { Runtime } from '../core/runtime.js';
import { verifyBackups, type VerifyLevel } from '../core/verify.js';
import { ExitCode, usageError } from '../errors.js';
import { parseConnectionUrl, urlHasPassword, type ConnectionSettings } from '../pg/connection.js';
import { renderVerify, verifyJson } from '../output/render-verify.js';
import type { CommandContext, CommandResult } from './context.js';

export interface VerifyOptions {
  all?: boolean;
  level: VerifyLevel;
  keep?: boolean;
  jobs?: number;
  tag?: string;
  verifyUrl?: string;
}

/**
 * The server a backup is restored into for verification: --verify-url, else the
 * profile's `verify.server`, else the profile's own server. The backup's profile is used
 * when the config defines it, so `verify <id>` needs no --profile.
 */
export function verificationServer(
  loaded: LoadedConfigRef,
  ctx: { flags: CommandContext['flags']; runtime: Runtime },
  verifyUrl: string | undefined,
): (sidecar: Sidecar) => ConnectionSettings {
  if (verifyUrl !== undefined && urlHasPassword(verifyUrl)) {
    throw usageError('--verify-url must not contain a password', 'use PGPASSWORD, ~/.pgpass or the profile\'s passwordFile');
  }
  const cache = new Map<string, ConnectionSettings>();
  return (sidecar) => {
    const cached = cache.get(sidecar.profile);
    if (cached) return cached;
    const configured = loaded.config.profiles?.[sidecar.profile] !== undefined;
    const profile = resolveProfile({
      loaded,
      flags: { ...ctx.flags, profile: configured ? sidecar.profile : ctx.flags.profile, dbUrl: ctx.flags.dbUrl },
      env: ctx.runtime.env,
      cwd: ctx.runtime.cwd,
    });
    const server = verifyUrl ?? (configured ? loaded.config.profiles?.[sidecar.profile]?.verify?.server : undefined);
    const settings: ConnectionSettings = server
      ? { ...profile.connection, ...definedOnly(parseConnectionUrl(server, verifyUrl ? '--verify-url' : 'verify.server')) }
      : profile.connection;
    cache.set(sidecar.profile, settings);
    return settings;
  };
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export async function run(ref: string | undefined, options: VerifyOptions, ctx: CommandContext): Promise<CommandResult> {
  if (!options.all && ref === undefined) throw usageError('verify needs a backup id, "latest", or --all');
  if (options.all && ref !== undefined) throw usageError('give either a backup id or --all, not both');
  const loaded = await ctx.loadConfig();
  const { env, cwd } = ctx.runtime;
  const profileName = ctx.flags.profile ?? (env.BACKUPCTL_PROFILE || undefined);
  const profileConfig = profileName ? loaded.config.profiles?.[profileName] : undefined;
  const result = await verifyBackups(
    {
      storage: resolveStorage(loaded, ctx.flags, env, cwd, profileConfig),
      ref,
      all: options.all,
      profile: profileName,
      tag: options.tag,
      level: options.level,
      keep: options.keep === true,
      jobs: options.jobs ?? profileConfig?.verify?.jobs ?? loaded.config.defaults?.verify?.jobs ?? 1,
      server: options.level === 'restore' ? verificationServer(loaded, ctx, options.verifyUrl) : null,
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
