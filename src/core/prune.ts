import { backupRef, Catalog, mapLimit, sidecarKey, type Listing, type ScanResult } from '../catalog/catalog.js';
import { SidecarError, summaryOf, type SidecarSummary } from '../catalog/sidecar.js';
import { BackupctlError, ExitCode, InterruptedError, usageError } from '../errors.js';
import { collectGarbage } from '../platform/gc.js';
import { RETENTION_POLICY_KEYS, describePolicy, isEmptyPolicy, validatePolicy, type RetentionPolicy } from '../retention/policy.js';
import { NotFoundError, type Storage } from '../storage/storage.js';
import { HostileEntryError } from '../storage/errors.js';
import { acquireProfileLock } from './lock.js';
import { planPrune, type PruneItem, type PrunePlan } from './prune-plan.js';
import type { Runtime } from './runtime.js';
import { storageError } from './storage-errors.js';

export type { PruneItem, PruneReason } from './prune-plan.js';

/** Unfinished leftovers younger than this are kept (default of --leftover-age). */
export const DEFAULT_LEFTOVER_AGE_MS = 24 * 3_600_000;

/**
 * The policy of a prune run: the profile's `retention` settings, with every rule given on
 * the command line replacing the same rule of the config (key by key; `--keep-daily 0`
 * turns a configured rule off). keep-tags is one key: `--keep-tag` replaces ALL the
 * configured tag groups.
 */
export function effectivePolicy(configured: RetentionPolicy | undefined, flags: RetentionPolicy): RetentionPolicy {
  const policy: RetentionPolicy = {};
  for (const key of RETENTION_POLICY_KEYS) {
    const value = flags[key] ?? configured?.[key];
    if (value !== undefined) (policy as Record<string, unknown>)[key] = value;
  }
  return policy;
}

export interface PruneRequest {
  storage: Storage;
  profile: string;
  policy: RetentionPolicy;
  dryRun: boolean;
  /** A listing of the profile made just before (a dry run plans from it rather than list again). */
  listing?: Listing | undefined;
  /** Unfinished leftovers whose newest file is at least this old are removed. */
  leftoverAgeMs: number;
  /** `--wait`: how long to wait for the profile's lock (default: fail at once, exit 4). */
  waitMs?: number | undefined;
  /** Called once the lock is held (the healthchecks start ping). */
  onLocked?: (() => void) | undefined;
}

export interface PrunedItem extends PruneItem {
  /** A real run: whether every file of the entry is gone. */
  removed: boolean;
  /** A real run: why the entry could not be removed (completely). */
  error?: string;
}

export interface PruneResult {
  profile: string;
  storage: string;
  dryRun: boolean;
  policy: RetentionPolicy;
  /** describePolicy(policy), e.g. "keep-last 3, keep-daily 7". */
  policyText: string;
  leftoverAgeMs: number;
  /** Backups newest first, then leftovers. */
  items: PrunedItem[];
  /** What was removed (a real run) or would be (a dry run); `bytes` includes the stale temporaries'. */
  freed: { backups: number; leftovers: number; bytes: number };
  /**
   * Temporary files (local, SFTP) and incomplete multipart uploads (S3) that writes which
   * never finished left in the profile, older than the leftover age: removed (a real run)
   * or to remove (a dry run). `bytes` as far as the store tells (S3: 0). `error`: they could
   * not be listed or removed (a warning; the rest of the run stands).
   */
  temporaries: { files: number; bytes: number; error?: string };
  /** Sidecars that could not be read: those backups are left alone. */
  warnings: string[];
  /** Removals that failed; the run exits 1 when there are any. */
  errors: string[];
}

/** The policy must be valid and not empty; every problem is reported at once (exit 2). */
export function checkPolicy(policy: RetentionPolicy): void {
  const problems = validatePolicy(policy);
  if (problems.length === 0) return;
  if (isEmptyPolicy(policy) && problems.length === 1) {
    throw usageError(
      'refusing to prune with an empty retention policy: it sets no keep-* rule',
      'set "retention" in the profile\'s config, or pass rules such as --keep-last 7 --keep-daily 14 (see backupctl prune --help)',
    );
  }
  throw usageError(
    `invalid retention policy (${problems.length} problem${problems.length === 1 ? '' : 's'}): ${problems.join('; ')}`,
    'fix the profile\'s "retention" settings or the --keep-* flags',
  );
}

/**
 * Applies the retention policy to one profile. A dry run only plans. A real run holds the
 * profile's lock (busy: exit 4, or waits with waitMs) and removes, oldest first, each
 * backup's sidecar FIRST and then its artifact and globals, so an interrupted prune never
 * leaves a sidecar pointing at nothing; then the old unfinished leftovers.
 */
export async function pruneBackups(request: PruneRequest, runtime: Runtime): Promise<PruneResult> {
  checkPolicy(request.policy);
  const storage = request.storage;
  if (request.dryRun) return planAndApply(storage, request, runtime);
  const lock = await acquireProfileLock({
    storage,
    profile: request.profile,
    command: 'prune',
    waitMs: request.waitMs,
    runtime,
  });
  try {
    request.onLocked?.();
    return await planAndApply(storage, request, runtime);
  } finally {
    await lock.release();
  }
}

async function planAndApply(storage: Storage, request: PruneRequest, runtime: Runtime): Promise<PruneResult> {
  const { reporter } = runtime;
  const catalog = new Catalog(storage, { debug: (message) => reporter.debug(message) });
  const now = runtime.now();
  const scan = async (ignoreIndex: boolean) => {
    try {
      // prune itself lists the profile (a catalog index never stands in for the listing
      // it removes by); a dry run may use the index where it is current.
      return await catalog.summaries(request.profile, { ignoreIndex, fresh: !request.dryRun, listing: ignoreIndex ? undefined : request.listing });
    } catch (error) {
      throw storageError(error, storage.location, 'listing backups', 'read');
    }
  };
  let scanned = await scan(false);
  releaseScanGarbage(scanned);
  let plan = planPrune(scanned.backups, scanned.incomplete, request.policy, now, request.leftoverAgeMs, scanned.damage);
  if (!request.dryRun) {
    // What is removed, and what the safety rules keep, is confirmed from the sidecars
    // themselves: a stale or lying catalog index never decides a removal on its own word.
    const disagree = await unconfirmed(catalog, scanned, plan, now);
    if (disagree.length > 0) {
      reporter.warn(
        `the catalog index of profile "${request.profile}" disagrees with ${disagree.length} sidecar(s) (${disagree.slice(0, 3).join(', ')}${disagree.length > 3 ? ', ...' : ''}): planning again from every sidecar`,
      );
      scanned = await scan(true);
      plan = planPrune(scanned.backups, scanned.incomplete, request.policy, now, request.leftoverAgeMs, scanned.damage);
    }
  }
  for (const warning of scanned.warnings) reporter.warn(`${warning} (left alone by prune)`);
  for (const [key, problems] of scanned.damage) reporter.warn(`backup ${key} is damaged (${problems.join('; ')}): kept, and not counted as a good backup`);

  // Belt and braces over the pure policy: the newest good backup is never removed.
  const newest = newestGood(scanned, now);
  if (newest && plan.items.some((item) => item.kind === 'backup' && item.id === newest.id && item.action === 'remove')) {
    throw new BackupctlError(`internal error: the retention plan would remove the newest backup ${newest.id}; nothing was removed`);
  }

  const items: PrunedItem[] = plan.items.map((item) => Object.assign(item, { removed: false }));
  const result: PruneResult = {
    profile: request.profile,
    storage: storage.location,
    dryRun: request.dryRun,
    policy: request.policy,
    policyText: describePolicy(request.policy),
    leftoverAgeMs: request.leftoverAgeMs,
    items,
    freed: { backups: 0, leftovers: 0, bytes: 0 },
    temporaries: { files: 0, bytes: 0 },
    warnings: scanned.warnings,
    errors: [],
  };
  reporter.info(
    `${request.dryRun ? 'dry run: ' : ''}pruning profile "${request.profile}" in ${storage.location} with ${result.policyText}`,
  );

  // Oldest first: an interrupted run has removed the least valuable backups.
  const removals = items.filter((item) => item.action === 'remove').reverse();
  for (const item of removals) {
    if (request.dryRun) {
      count(result, item);
      continue;
    }
    if (runtime.signal.aborted) throw new InterruptedError();
    const strayOf = item.kind === 'leftover' && items.some((other) => other.kind === 'backup' && other.id === item.id && other.profile === item.profile);
    const failure = await removeItem(storage, item, { unfinished: item.kind === 'leftover' && !strayOf });
    if (failure === null) {
      item.removed = true;
      count(result, item);
      reporter.info(`removed ${strayOf ? 'leftover files of backup' : item.kind === 'leftover' ? 'unfinished backup' : 'backup'} ${item.profile}/${item.id}`);
    } else {
      item.error = failure;
      result.errors.push(`${item.profile}/${item.id}: ${failure}`);
      reporter.warn(`could not remove ${item.profile}/${item.id}: ${failure}`);
    }
  }
  // Temporaries of writes that never finished (a crashed or killed run), as old as a
  // leftover: a dry run counts what the real run would remove.
  const olderThan = new Date(now.getTime() - request.leftoverAgeMs);
  try {
    const stale = await storage.removeStaleTemporaries(request.profile, olderThan, { dryRun: request.dryRun });
    result.temporaries = { files: stale.files, bytes: stale.bytes };
    result.freed.bytes += stale.bytes;
    if (stale.files > 0) reporter.info(`${request.dryRun ? 'would remove' : 'removed'} ${stale.files} stale temporary file(s) of interrupted writes`);
  } catch (error) {
    const message = (error as Error).message;
    result.temporaries = { files: 0, bytes: 0, error: message };
    reporter.warn(`could not ${request.dryRun ? 'list' : 'remove'} stale temporary files: ${message}`);
  }
  return result;
}

/** From this many backups in the profile on, prune collects after reading them (releaseScanGarbage). */
const COLLECT_AFTER_BACKUPS = 1000;

/**
 * A full collection between reading a large catalog and planning. Reading the summaries of
 * 10,000 backups leaves ~20 MB of garbage that V8 keeps to the end of the run, under the
 * plan and the table of every backup that prune then builds on top of them: the catalog
 * index's read buffers (~10 MB outside the heap, each freed only with its small wrapper,
 * which outlives the young-generation collections of the read and so waits for a full
 * one) and the read's other survivors. Measured (prune --dry-run --keep-daily 7
 * --keep-monthly 12 over 10,000 backups, local storage, warm; bench/RESULTS.md): peak RSS
 * ~144 -> ~124 MB on Node 20, ~155 -> ~137 MB on Node 24, for one collection of ~40 ms.
 * Below COLLECT_AFTER_BACKUPS the garbage is a few MB and not worth the ~15 ms. list and
 * status, which only print what they read, stay below prune's peak without it.
 */
function releaseScanGarbage(scanned: ScanResult<SidecarSummary>): void {
  if (scanned.backups.length >= COLLECT_AFTER_BACKUPS) collectGarbage('full');
}

/** The newest good (not damaged) backup, not counting backups from the future. */
function newestGood(scanned: ScanResult<SidecarSummary>, now: Date): SidecarSummary | undefined {
  const good = scanned.backups.filter((b) => !scanned.damage.has(backupRef(b)));
  return good.find((b) => Date.parse(b.startedAt) <= now.getTime()) ?? good[0];
}

/**
 * Re-reads from their sidecars the backups of `plan` whose summaries came from the catalog
 * index and that decide what is removed: every backup to remove, and those kept as the
 * newest successful or newest verified (and the newest good one). Returns those whose
 * sidecar is not what the index said (or is gone, or unreadable), as `<profile>/<id>`.
 */
async function unconfirmed(catalog: Catalog, scanned: ScanResult<SidecarSummary>, plan: PrunePlan, now: Date): Promise<string[]> {
  const byRef = new Map(scanned.backups.map((b) => [backupRef(b), b]));
  const newest = newestGood(scanned, now);
  const deciding = plan.items
    .filter((item) => item.kind === 'backup')
    .filter((item) => item.action === 'remove' || item.reasons.includes('newest-successful') || item.reasons.includes('newest-verified') || item.id === newest?.id)
    .map((item) => `${item.profile}/${item.id}`)
    .filter((ref) => scanned.indexed.has(ref));
  const disagree: string[] = [];
  await mapLimit(deciding, 8, async (ref) => {
    const summary = byRef.get(ref) as SidecarSummary;
    let fresh: SidecarSummary | null = null;
    try {
      fresh = summaryOf(await catalog.read(summary.profile, summary.id));
    } catch (error) {
      // One the storage refused to give is no disagreement to plan around: prune stops (removing nothing).
      if (!(error instanceof SidecarError) && !(error instanceof NotFoundError)) throw storageError(error, catalog.storage.location, `reading backup ${ref}`, 'read');
    }
    if (fresh === null || JSON.stringify(fresh) !== JSON.stringify(summary)) disagree.push(ref);
  });
  return disagree.sort();
}

function count(result: PruneResult, item: PruneItem): void {
  if (item.kind === 'backup') result.freed.backups += 1;
  else result.freed.leftovers += 1;
  result.freed.bytes += item.bytes;
}

/**
 * Removes the keys in order (a backup's sidecar first). When the sidecar cannot be
 * removed, nothing else is touched: the backup stays whole. Returns the failure, or null.
 *
 * The sidecar is removed once more at the end: a `verify` that recorded its result
 * (rewrote the sidecar) while we were deleting the artifact has then either seen the
 * artifact gone (and removed its sidecar itself) or written before this last removal.
 * Either way no sidecar is left pointing at nothing.
 */
export async function removeItem(
  storage: Storage,
  item: Pick<PruneItem, 'kind' | 'keys' | 'profile' | 'id'>,
  options: { unfinished?: boolean } = {},
): Promise<string | null> {
  if (options.unfinished) {
    // Unfinished means no sidecar: anything at the sidecar's key (a directory, a FIFO, a
    // sidecar published since the listing) makes these files a backup's, not leftovers.
    const key = sidecarKey(item.profile, item.id);
    const there = await storage.stat(key).then(
      () => 'there',
      (error: unknown) => (error instanceof NotFoundError ? null : error instanceof HostileEntryError ? 'there' : storageError(error, storage.location, `checking ${key}`).message),
    );
    if (there === 'there') return `something is at its sidecar's key ${key}: its files are not removed as unfinished (inspect that entry)`;
    if (there !== null) return `${there} (nothing removed)`;
  }
  if (item.kind === 'backup') {
    // A file of the backup that no one may remove (a symbolic link, a directory in its
    // place): refused before the sidecar goes, or the backup would be half removed.
    const hostile = await Promise.all(item.keys.slice(1).map((key) => storage.stat(key).then(() => null, (error: unknown) => (error instanceof HostileEntryError ? { key, error } : null))));
    const first = hostile.find((entry) => entry !== null);
    if (first) return `${storageError(first.error, storage.location, `removing ${first.key}`).message} (nothing of the backup was removed: remove that entry by hand, then remove the backup again)`;
  }
  const failures: string[] = [];
  const keys = item.kind === 'backup' && item.keys.length > 1 ? [...item.keys, item.keys[0] as string] : item.keys;
  for (const [index, key] of keys.entries()) {
    try {
      await storage.remove(key);
    } catch (error) {
      const message = storageError(error, storage.location, `removing ${key}`).message;
      if (index === 0 && item.kind === 'backup') return `${message} (the backup was left whole)`;
      failures.push(message);
    }
  }
  return failures.length === 0 ? null : failures.join('; ');
}

/** Exit code of a prune result: 1 when a removal failed. */
export function pruneExitCode(result: PruneResult): number {
  return result.errors.length > 0 ? ExitCode.FAILED : ExitCode.OK;
}
