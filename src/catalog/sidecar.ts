import type { Sidecar, StageRecordJson, Verification } from './sidecar-schema.js';

export type { Sidecar, StageRecordJson, TableCount, Verification } from './sidecar-schema.js';

/**
 * A sidecar without its per-table row counts: what the catalog index keeps of a backup
 * (catalog-index.ts) and what list, status and prune need. A Sidecar is one too.
 */
export type SidecarSummary = Omit<Sidecar, 'tables'>;

/** The sidecar without `tables` (a new object; the sidecar is not changed). */
export function summaryOf(sidecar: Sidecar): SidecarSummary {
  const { tables: _tables, ...summary } = sidecar;
  return summary;
}

/**
 * The sidecar: `<root>/<profile>/<id>.json`, the catalog entry of one backup.
 *
 * Contract:
 * - It is written LAST, atomically, only when the artifact (and globals) are stored
 *   completely; an artifact without a sidecar is an unfinished backup.
 * - It never holds a password or a key. Hosts and users are recorded; URLs are not.
 * - It is validated on every read (sidecar-schema.ts, loaded only by commands that read
 *   sidecars): it comes from a storage that may have been edited by
 *   hand or by an attacker, so every field that ends up in a path (id, file names) is
 *   checked against a strict pattern, and sizes are bounded.
 * - `schemaVersion` changes only when a reader of the old version would misread the new
 *   one; adding optional fields does not change it.
 */
export const SIDECAR_SCHEMA_VERSION = 2;

/** Sidecars larger than this are refused unread (a hostile file must not exhaust memory). */
export const MAX_SIDECAR_BYTES = 64 * 1024 * 1024;

export class SidecarError extends Error {
  /** Written by a newer backupctl (its schema version is past ours): possibly a sound backup. */
  readonly newerVersion: boolean;
  constructor(
    readonly key: string,
    message: string,
    options: { newerVersion?: boolean } = {},
  ) {
    // One line, whatever the file held: it is printed as a single warning.
    // eslint-disable-next-line no-control-regex
    super(`${key}: ${message}`.replace(/\s*[\r\n]+\s*/g, ' ').replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 1000));
    this.name = 'SidecarError';
    this.newerVersion = options.newerVersion === true;
  }
}

/**
 * The sidecar's bytes. Not validated here: the writer is typed, and the schema check is
 * on every read (tests read back what create and verify write). Keeping zod out of this
 * path keeps it out of `create`'s start-up.
 */
export function serializeSidecar(sidecar: Sidecar): Buffer {
  return Buffer.from(`${JSON.stringify(sidecar, null, 2)}\n`, 'utf8');
}

/** The sidecar's `compression` and `encryption` summaries of a list of stages (the stages are the truth). */
export function stageSummary(stages: readonly StageRecordJson[]): Pick<Sidecar['artifact'], 'compression' | 'encryption'> {
  const compression = stages.find((stage) => stage.type === 'compression');
  const encryption = stages.find((stage) => stage.type === 'encryption');
  return {
    compression: compression ? { codec: compression.codec, level: compression.level } : { codec: 'none', level: null },
    encryption: encryption
      ? { scheme: 'age', recipients: encryption.recipients.map((r) => (r.scheme === 'x25519' ? r.fingerprint : `passphrase (scrypt, work factor ${r.workFactor})`)) }
      : null,
  };
}

const DEPTH: Record<Verification['level'], number> = { checksum: 0, archive: 1, restore: 2 };

/**
 * The verification that stands for a backup: the latest failed one that no later pass at
 * the same or a deeper level has answered, else the latest (by time, not array position);
 * null when never verified. A checksum pass after a failed restore-level verification says
 * only that the bytes are as stored, not that they restore: the failure stands (list,
 * status and prune read it here).
 */
export function standingVerification(verifications: readonly Verification[], dump?: Pick<Sidecar['dump'], 'dataOnly'>): Verification | null {
  const ordered = [...verifications].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  // A data-only backup is verified at level archive at most (restore-level records of it,
  // from before, count as archive-level: an archive pass answers them).
  const cap = dump ? deepestDepth({ dump }) : DEPTH.restore;
  const depth = (v: Verification) => Math.min(DEPTH[v.level], cap);
  let unanswered: Verification[] = [];
  for (const v of ordered) {
    if (v.result === 'failed') unanswered.push(v);
    else unanswered = unanswered.filter((failed) => depth(failed) > depth(v));
  }
  return unanswered.at(-1) ?? ordered.at(-1) ?? null;
}

/**
 * The backup is proven restorable: a verification passed at the deepest level it allows
 * (restore; archive for a --data-only backup, which has no schema to restore into), and no
 * failure stands since (standingVerification). A checksum pass proves the bytes are as
 * stored, not that they restore: it does not count (status --max-verify-age, prune's
 * "newest verified backup").
 */
export function provenRestorable(sidecar: Pick<Sidecar, 'verifications' | 'dump'>): boolean {
  if (standingVerification(sidecar.verifications, sidecar.dump)?.result !== 'passed') return false;
  return sidecar.verifications.some((v) => v.result === 'passed' && DEPTH[v.level] >= deepestDepth(sidecar));
}

/** The latest passing verification that proves the backup restorable (see provenRestorable), or null. */
export function latestProof(sidecar: Pick<Sidecar, 'verifications' | 'dump'>): Verification | null {
  let latest: Verification | null = null;
  for (const v of sidecar.verifications) {
    if (v.result === 'passed' && DEPTH[v.level] >= deepestDepth(sidecar) && (latest === null || Date.parse(v.at) > Date.parse(latest.at))) latest = v;
  }
  return latest;
}

function deepestDepth(sidecar: { dump: Pick<Sidecar['dump'], 'dataOnly'> }): number {
  return sidecar.dump.dataOnly ? DEPTH.archive : DEPTH.restore;
}

/**
 * `schema.name` as SQL would write it: each part double-quoted unless it is a plain
 * lower-case identifier, so that `"a.b".c` and `a."b.c"` read apart.
 */
export function qualifiedName(table: { schema: string; name: string }): string {
  const quote = (part: string) => (/^[a-z_][a-z0-9_$]*$/.test(part) ? part : `"${part.replace(/"/g, '""')}"`);
  return `${quote(table.schema)}.${quote(table.name)}`;
}
