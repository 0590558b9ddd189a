import { profileForMaintenance } from '../core/profile.js';
import { DEFAULT_LEFTOVER_AGE_MS, effectivePolicy, pruneBackups, pruneExitCode } from '../core/prune.js';
import { withRunReport } from '../core/report-run.js';
import { assertProfileExists } from '../core/scope.js';
import { storageAt } from '../core/storages.js';
import { pruneJson, renderPrune } from '../output/render-prune.js';
import type { RetentionPolicy, TagGroup } from '../retention/policy.js';
import type { CommandContext, CommandResult } from './context.js';

export interface PruneOptions {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  keepWithin?: string;
  keepWithinHourly?: string;
  keepWithinDaily?: string;
  keepWithinWeekly?: string;
  keepWithinMonthly?: string;
  keepWithinYearly?: string;
  /**
   * `--keep-tag` groups (parse.ts keepTagValue): a backup is kept when it carries every tag
   * of one group. A plain string is a group of one tag, so a list of single tags (what
   * tagValue collects) still means "any of these tags".
   */
  keepTag?: TagGroup[];
  timeZone?: string;
  dryRun?: boolean;
  /** Milliseconds. */
  leftoverAge?: number;
  /** Milliseconds. */
  wait?: number;
}

export async function run(options: PruneOptions, ctx: CommandContext): Promise<CommandResult> {
  const profile = profileForMaintenance(ctx.settings);
  const flags: RetentionPolicy = {
    keepLast: options.keepLast,
    keepHourly: options.keepHourly,
    keepDaily: options.keepDaily,
    keepWeekly: options.keepWeekly,
    keepMonthly: options.keepMonthly,
    keepYearly: options.keepYearly,
    keepWithin: options.keepWithin,
    keepWithinHourly: options.keepWithinHourly,
    keepWithinDaily: options.keepWithinDaily,
    keepWithinWeekly: options.keepWithinWeekly,
    keepWithinMonthly: options.keepWithinMonthly,
    keepWithinYearly: options.keepWithinYearly,
    keepTags: options.keepTag,
    timeZone: options.timeZone,
  };
  // A profile that is not in the config must be in the storage: checked before the run is
  // reported, so that a typo leaves no run log (and no directory) behind.
  const listed = await assertProfileExists(profile, ctx.runtime);
  const storage = storageAt(ctx.runtime, profile.storage, profile.storageSettings);
  const prune = (started?: () => void) =>
    pruneBackups(
      {
        storage,
        profile: profile.name,
        policy: effectivePolicy(profile.retention, flags),
        dryRun: options.dryRun === true,
        // A dry run takes no lock: the listing just made is as current as another one would be.
        listing: options.dryRun ? listed ?? undefined : undefined,
        leftoverAgeMs: options.leftoverAge ?? DEFAULT_LEFTOVER_AGE_MS,
        waitMs: options.wait,
        onLocked: started,
      },
      ctx.runtime,
    );
  // A real prune is a run of its own in the profile's run log (status counts failed ones); a dry run is not.
  const result = options.dryRun
    ? await prune()
    : await withRunReport({ command: 'prune', profile: profile.name, storage }, ctx.runtime, prune);
  return { json: pruneJson(result), human: (style, now) => renderPrune(result, style, now), exitCode: pruneExitCode(result) };
}
