/**
 * A stage of an artifact's pipeline, after pgBackRest's filters: it has both directions
 * and says what it did, so that the sidecar can list the stages in order and any reader
 * can undo them in reverse.
 *
 *   write:  pg_dump -> [compression] -> [encryption] -> storage     suffix .dump[.zst][.age]
 *   read:   storage -> [decryption] -> [decompression] -> pg_restore
 */
import type { Duplex } from 'node:stream';
import type { RecipientRecord } from './age/keys.js';
import { PipelineError } from './errors.js';

export type StageType = 'compression' | 'encryption';
export type CompressionCodec = 'none' | 'gzip' | 'zstd';

/** The sidecar's record of a compression stage. */
export interface CompressionRecord {
  type: 'compression';
  codec: CompressionCodec;
  /** The codec's level; null for `none`. */
  level: number | null;
  /** zstd: the worker threads used (does not change what is stored). */
  threads?: number;
}

/** The sidecar's record of an encryption stage: recipient fingerprints, never keys. */
export interface EncryptionRecord {
  type: 'encryption';
  scheme: 'age';
  recipients: RecipientRecord[];
}

/** JSON for the sidecar's `artifact.stages[]`, in write order. */
export type StageRecord = CompressionRecord | EncryptionRecord;

export interface Stage {
  readonly type: StageType;
  /** The codec or scheme: `none`, `gzip`, `zstd`, `age`. */
  readonly name: string;
  /** Appended to the artifact's file name: `.zst`, `.gz`, `.age`; empty for `none`. */
  readonly suffix: string;
  /** A new stream that encodes (compresses, encrypts). Throws a PipelineError when it cannot run here. */
  encode(): Duplex;
  /** A new stream that decodes what encode() wrote. */
  decode(): Duplex;
  /**
   * Where the stage can do it, a decoder that writes what it decodes into the open file
   * `fd` itself (a program's stdout), so that the plaintext does not pass through this
   * process; its readable side gives nothing and ends once everything is written. Its
   * failure is no verdict on the data (a full disk fails it as damage does): the caller
   * decides from the stored bytes' digest.
   */
  decodeInto?(fd: number): Duplex;
  record(): StageRecord;
}

/** `base` plus the stages' suffixes, e.g. `.dump` + zstd + age = `.dump.zst.age`. */
export function artifactSuffix(base: string, stages: readonly Pick<Stage, 'suffix'>[]): string {
  return base + stages.map((stage) => stage.suffix).join('');
}

/**
 * Checks a write chain's stages: at most one compression and one encryption stage, and
 * compression first (encrypted bytes do not compress).
 */
export function checkStageOrder(stages: readonly Pick<Stage, 'type' | 'name'>[]): void {
  const types = stages.map((s) => s.type);
  const bad = (message: string) => new PipelineError('STAGE_OPTIONS_INVALID', `invalid stages (${stages.map((s) => s.name).join(', ')}): ${message}`);
  if (types.filter((t) => t === 'compression').length > 1) throw bad('more than one compression stage');
  if (types.filter((t) => t === 'encryption').length > 1) throw bad('more than one encryption stage');
  if (types.indexOf('compression') > types.indexOf('encryption') && types.includes('encryption')) throw bad('compression must come before encryption');
}

const FINGERPRINT = /^x25519:sha256:[0-9a-f]{16}$/;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isLevel(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value);
}

/**
 * Validates the stage records read from a sidecar (untrusted JSON). `undefined` (an old
 * sidecar without stages) is the empty list: the identity chain. Throws STAGE_INVALID.
 */
export function parseStageRecords(value: unknown): StageRecord[] {
  if (value === undefined) return [];
  const invalid = (message: string) => new PipelineError('STAGE_INVALID', `invalid stage records in the sidecar: ${message}`);
  if (!Array.isArray(value)) throw invalid('not a list');
  const records = value.map((item: unknown, i): StageRecord => {
    if (!isObject(item)) throw invalid(`stage ${i} is not an object`);
    if (item.type === 'compression') {
      const { codec, level, threads } = item;
      if (codec !== 'none' && codec !== 'gzip' && codec !== 'zstd') throw invalid(`stage ${i}: unknown compression codec ${JSON.stringify(codec)}`);
      if (codec === 'none' ? level !== null : !isLevel(level)) throw invalid(`stage ${i}: bad level for ${codec}`);
      if (threads !== undefined && !(isLevel(threads) && threads >= 0)) throw invalid(`stage ${i}: bad threads`);
      return { type: 'compression', codec, level: level as number | null, ...(threads === undefined ? {} : { threads: threads as number }) };
    }
    if (item.type === 'encryption') {
      if (item.scheme !== 'age') throw invalid(`stage ${i}: unknown encryption scheme ${JSON.stringify(item.scheme)}`);
      if (!Array.isArray(item.recipients) || item.recipients.length === 0) throw invalid(`stage ${i}: no recipients`);
      const recipients = item.recipients.map((r: unknown): RecipientRecord => {
        if (isObject(r) && r.scheme === 'x25519' && typeof r.fingerprint === 'string' && FINGERPRINT.test(r.fingerprint)) {
          return { scheme: 'x25519', fingerprint: r.fingerprint };
        }
        if (isObject(r) && r.scheme === 'scrypt' && isLevel(r.workFactor)) return { scheme: 'scrypt', workFactor: r.workFactor };
        throw invalid(`stage ${i}: a malformed recipient`);
      });
      return { type: 'encryption', scheme: 'age', recipients };
    }
    throw invalid(`stage ${i}: unknown type ${JSON.stringify(item.type)}`);
  });
  try {
    checkStageOrder(records.map((r) => ({ type: r.type, name: r.type === 'compression' ? r.codec : r.scheme })));
  } catch (error) {
    throw invalid((error as Error).message);
  }
  return records;
}
