import path from 'node:path';
import { isStorageUrl, settingsOf, type ResolvedSettings } from '../config/resolve.js';
import { backupsToCatchUp, copiedIds, copyBackups, copyGroup, type CopiedBackup } from '../core/copy.js';
import { withRunReport } from '../core/report-run.js';
import { backupScope, type LocatedBackup } from '../core/scope.js';
import { storageAt } from '../core/storages.js';
import { ExitCode, throwIfAborted, usageError } from '../errors.js';
import { copyJson, renderCopy } from '../output/render-copy.js';
import type { Storage } from '../storage/storage.js';
import type { CreateResult } from '../core/results.js';
import type { CommandContext, CommandResult } from './context.js';

export interface CopyOptions {
  to: string;
  all?: boolean;
  dryRun?: boolean;
  /** Milliseconds. */
  wait?: number;
}

/**
 * A destination as given: a URL as it is, a path from the working directory. Its driver
 * settings (credentials, keys) are the profile's when one is named, as for its own storage.
 */
export function destinationAt(ctx: Pick<CommandContext, 'runtime'> & { settings: ResolvedSettings }, where: string, profile?: string): Storage {
  const location = isStorageUrl(where) ? where : path.resolve(ctx.settings.cwd, where);
  const settings = profile !== undefined ? settingsOf(ctx.settings, profile).storageSettings : ctx.settings.storageSettings(location);
  return storageAt(ctx.runtime, location, settings);
}

/** The destinations of a profile's `copies` as its copy runs record them (a location that cannot be opened: as written). */
export function copyTargets(ctx: Pick<CommandContext, 'runtime'> & { settings: ResolvedSettings }, destinations: readonly string[], profile: string): string[] {
  return destinations.map((where) => {
    try {
      return destinationAt(ctx, where, profile).location;
    } catch {
      return where;
    }
  });
}

/** One profile's copies as a reported run in its run log: `copy`, with the destination. */
export function reportedCopy(ctx: CommandContext, profile: string, storage: Storage, destination: Storage, work: () => Promise<CopiedBackup[]>): Promise<CopiedBackup[]> {
  return withRunReport(
    { command: 'copy', profile, storage, target: destination.location, notify: settingsOf(ctx.settings, profile).notify },
    ctx.runtime,
    async (started) => {
      started();
      return work();
    },
    (done: CopiedBackup[]) => ({
      id: done.length === 1 ? done[0]?.id : undefined,
      bytes: done.reduce((sum, d) => sum + (d.result === 'copied' ? d.bytes : 0), 0),
      copied: copiedIds(done),
    }),
    (done: CopiedBackup[]) => {
      const failed = done.filter((d) => d.result === 'failed');
      return failed.length === 0 ? null : { exitCode: ExitCode.FAILED, error: `could not copy ${failed.map((d) => `${d.id} (${d.error ?? 'failed'})`).join(', ')} to ${destination.location}` };
    },
  );
}

type NewBackupCopy = NonNullable<CreateResult['copies']>[number];

/**
 * The copies a profile's `copies` setting asks for, of one new backup: never throws. Each
 * destination also gets, in the same copy run, the earlier backups a create was to copy
 * there and no copy run did (a failed copy, a create killed while copying: backupsToCatchUp,
 * bounded), reported in `caughtUp`.
 */
export async function copyNewBackup(ctx: CommandContext, backup: LocatedBackup, destinations: readonly string[]): Promise<NewBackupCopy[]> {
  const results: NewBackupCopy[] = [];
  for (const where of destinations) {
    let destination: Storage | null = null;
    try {
      try {
        destination = destinationAt(ctx, where, backup.sidecar.profile);
      } catch (error) {
        // A destination that cannot even be opened (an invalid URL or setting) is a failed
        // copy run like any other, in the run log and so in status, not only a warning.
        const notify = settingsOf(ctx.settings, backup.sidecar.profile).notify;
        await withRunReport({ command: 'copy', profile: backup.sidecar.profile, storage: backup.storage, target: where, notify }, ctx.runtime, () => Promise.reject(error)).catch(() => undefined);
        throw error;
      }
      const target = destination;
      const earlier = await backupsToCatchUp(backup.storage, backup.sidecar.profile, target.location, backup.sidecar.id, ctx.runtime);
      const all = await reportedCopy(ctx, backup.sidecar.profile, backup.storage, target, () => copyGroup([backup, ...earlier], target, ctx.runtime));
      const done = all.find((d) => d.id === backup.sidecar.id);
      const caughtUp = all
        .filter((d) => d.id !== backup.sidecar.id)
        .map((d) => ({ id: d.id, result: d.result === 'planned' ? ('failed' as const) : d.result, ...(d.error ? { error: d.error } : {}) }));
      results.push({
        to: target.location,
        result: done?.result === 'planned' || done === undefined ? 'failed' : done.result,
        ...(done?.error ? { error: done.error } : {}),
        ...(caughtUp.length > 0 ? { caughtUp } : {}),
      });
    } catch (error) {
      throwIfAborted(ctx.runtime.signal); // interrupted: exit 130, the backup itself is complete
      const message = (error as Error).message;
      ctx.runtime.reporter.warn(`could not copy ${backup.sidecar.profile}/${backup.sidecar.id} to ${destination?.location ?? where}: ${message}`);
      results.push({ to: destination?.location ?? where, result: 'failed', error: message });
    }
  }
  return results;
}

export async function run(refs: string[], options: CopyOptions, ctx: CommandContext): Promise<CommandResult> {
  if (!options.to) throw usageError('copy needs a destination: --to <path|url>', 'e.g. backupctl copy latest --to s3://offsite/prod');
  const destination = destinationAt(ctx, options.to, ctx.settings.named);
  const result = await copyBackups(
    { scope: backupScope(ctx.settings, ctx.runtime), refs, all: options.all === true, destination, dryRun: options.dryRun === true, waitMs: options.wait },
    ctx.runtime,
    (profile, storage, work) => (options.dryRun ? work() : reportedCopy(ctx, profile, storage, destination, work)),
  );
  const failed = result.backups.filter((b) => b.result === 'failed');
  // A corrupt source is exit 3, as everywhere a backup is not what its sidecar says.
  const exitCode = failed.some((b) => b.exitCode === ExitCode.VERIFY_FAILED) ? ExitCode.VERIFY_FAILED : failed.length > 0 ? ExitCode.FAILED : ExitCode.OK;
  return { json: copyJson(result), human: (style) => renderCopy(result, style), exitCode };
}
