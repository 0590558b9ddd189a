import { artifactKey, sidecarKey, type IncompleteEntry } from '../catalog/catalog.js';
import { provenRestorable, type SidecarSummary } from '../catalog/sidecar.js';
import { applyRetention, type KeepReason, type RetentionCandidate, type RetentionDecision, type RetentionPolicy } from '../retention/policy.js';

/**
 * Why an entry of a prune plan is kept or removed. The keep-* reasons name the rule that
 * keeps a backup; a backup kept by several rules lists them all.
 * - newest-successful / newest-verified / future: safety rules, always on;
 * - damaged: the backup's artifact or globals file is missing or not of the recorded size:
 *   it is never counted as a good backup by any rule (so it can never be the reason another
 *   backup is removed), and it is kept for the operator to look at (`backupctl delete` removes it);
 * - no-rule: no rule keeps the backup (it is removed);
 * - leftover-old: an unfinished backup (artifact without sidecar) older than the threshold (removed);
 * - leftover-recent: an unfinished backup younger than the threshold (kept: it may still be written).
 */
export type PruneReason =
  | 'keep-last'
  | 'keep-hourly'
  | 'keep-daily'
  | 'keep-weekly'
  | 'keep-monthly'
  | 'keep-yearly'
  | 'keep-within'
  | 'keep-within-hourly'
  | 'keep-within-daily'
  | 'keep-within-weekly'
  | 'keep-within-monthly'
  | 'keep-within-yearly'
  | 'keep-tag'
  | 'newest-successful'
  | 'newest-verified'
  | 'future'
  | 'not-completed'
  | 'damaged'
  | 'no-rule'
  | 'leftover-old'
  | 'leftover-recent';

const FROM_KEEP_REASON: Record<KeepReason, PruneReason> = {
  last: 'keep-last',
  hourly: 'keep-hourly',
  daily: 'keep-daily',
  weekly: 'keep-weekly',
  monthly: 'keep-monthly',
  yearly: 'keep-yearly',
  within: 'keep-within',
  'within-hourly': 'keep-within-hourly',
  'within-daily': 'keep-within-daily',
  'within-weekly': 'keep-within-weekly',
  'within-monthly': 'keep-within-monthly',
  'within-yearly': 'keep-within-yearly',
  tag: 'keep-tag',
  'newest-successful': 'newest-successful',
  'newest-verified': 'newest-verified',
  future: 'future',
  'not-completed': 'not-completed',
};

export interface PruneItem {
  /** A completed backup (from its sidecar), or an unfinished one (artifact without sidecar). */
  kind: 'backup' | 'leftover';
  id: string;
  profile: string;
  /** A backup's start time; a leftover's newest file modification time. */
  createdAt: string;
  action: 'keep' | 'remove';
  reasons: PruneReason[];
  /** Storage keys of the entry, in removal order: a backup's sidecar FIRST, then artifact and globals. */
  keys: string[];
  /** Bytes of the artifact and globals (a backup), or of the files (a leftover). */
  bytes: number;
}

export interface PrunePlan {
  policy: RetentionPolicy;
  /** Backups newest first, then leftovers newest first. */
  items: PruneItem[];
}

/** The backup is proven restorable (see provenRestorable): a checksum pass alone does not count. */
export function isVerified(sidecar: SidecarSummary): boolean {
  return provenRestorable(sidecar);
}

/** A backup's storage keys in removal order (its sidecar FIRST, then artifact and globals) and their bytes. */
export function backupKeys(sidecar: SidecarSummary): { keys: string[]; bytes: number } {
  const keys = [sidecarKey(sidecar.profile, sidecar.id)];
  let bytes = 0;
  // parseSidecar already refuses file names of another backup; checked again: prune deletes.
  const own = (file: string) => file.startsWith(`${sidecar.id}.`) && !file.includes('/');
  if (own(sidecar.artifact.file)) {
    keys.push(artifactKey(sidecar.profile, sidecar.artifact.file));
    bytes += sidecar.artifact.bytes;
  }
  if (sidecar.globals.status === 'included' && own(sidecar.globals.file)) {
    keys.push(artifactKey(sidecar.profile, sidecar.globals.file));
    bytes += sidecar.globals.bytes;
  }
  return { keys, bytes };
}

/** The plan's entry of a backup, from the retention policy's decision on it. */
function backupItem(sidecar: SidecarSummary, decision: RetentionDecision, isDamaged: (s: SidecarSummary) => boolean): PruneItem {
  const { keys, bytes } = backupKeys(sidecar);
  let reasons: PruneReason[];
  if (decision.action === 'remove') reasons = ['no-rule'];
  else if (isDamaged(sidecar)) reasons = ['damaged'];
  else reasons = decision.reasons.map((reason) => FROM_KEEP_REASON[reason]);
  return { kind: 'backup', id: sidecar.id, profile: sidecar.profile, createdAt: sidecar.startedAt, action: decision.action, reasons, keys, bytes };
}

/**
 * What prune does, as a pure function: every completed backup with keep/remove and the
 * reasons (the retention policy, see applyRetention), and every unfinished leftover
 * (removed when its newest file is at least `leftoverAgeMs` old). Changes nothing.
 */
export function planPrune(
  sidecars: readonly SidecarSummary[],
  incomplete: readonly IncompleteEntry[],
  policy: RetentionPolicy,
  now: Date,
  leftoverAgeMs: number,
  damage: ReadonlyMap<string, readonly string[]> = new Map(),
): PrunePlan {
  const byId = new Map<string, SidecarSummary>();
  for (const sidecar of sidecars) byId.set(sidecar.id, sidecar);
  const isDamaged = (s: SidecarSummary) => (damage.get(`${s.profile}/${s.id}`)?.length ?? 0) > 0;
  const candidates: RetentionCandidate[] = sidecars.map((s) => ({
    id: s.id,
    createdAt: new Date(s.startedAt),
    tags: s.tags,
    // A damaged backup is not a good one: it takes no part in the rules (see PruneReason).
    status: isDamaged(s) ? 'failed' : s.status,
    verified: isVerified(s),
  }));
  const items: PruneItem[] = applyRetention(candidates, policy, now).map((decision) =>
    backupItem(byId.get(decision.id) as SidecarSummary, decision, isDamaged),
  );

  const leftovers = new Map<string, { profile: string; id: string; keys: string[]; bytes: number; newest: number }>();
  for (const entry of incomplete) {
    const group = `${entry.profile}/${entry.id}`;
    let leftover = leftovers.get(group);
    if (!leftover) {
      leftover = { profile: entry.profile, id: entry.id, keys: [], bytes: 0, newest: Number.NEGATIVE_INFINITY };
      leftovers.set(group, leftover);
    }
    leftover.keys.push(artifactKey(entry.profile, entry.file));
    leftover.bytes += entry.bytes;
    leftover.newest = Math.max(leftover.newest, Date.parse(entry.modifiedAt));
  }
  const leftoverItems = [...leftovers.values()]
    .sort((a, b) => b.newest - a.newest || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
    .map((leftover): PruneItem => {
      const old = now.getTime() - leftover.newest >= leftoverAgeMs;
      return {
        kind: 'leftover',
        id: leftover.id,
        profile: leftover.profile,
        createdAt: new Date(leftover.newest).toISOString(),
        action: old ? 'remove' : 'keep',
        reasons: [old ? 'leftover-old' : 'leftover-recent'],
        keys: leftover.keys.sort(),
        bytes: leftover.bytes,
      };
    });
  return { policy, items: [...items, ...leftoverItems] };
}
