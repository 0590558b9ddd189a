/**
 * The codec table: stage names to stages, for writing (from options) and for reading
 * (from the records a sidecar lists).
 */
import { PassphraseIdentity } from '../age/scrypt.js';
import type { Identity } from '../age/stanza.js';
import { PipelineError } from '../errors.js';
import type { CompressionCodec, Stage, StageRecord } from '../stage.js';
import { ageStage } from './age.js';
import { GZIP_DEFAULT_LEVEL, gzipStage } from './gzip.js';
import { noneStage } from './none.js';
import { ZSTD_DEFAULT_LEVEL, zstdStage } from './zstd.js';

export { ageStage, type AgeStageOptions } from './age.js';
export { GZIP_DEFAULT_LEVEL, gzipStage, typedZlibErrors } from './gzip.js';
export { noneStage } from './none.js';
export { requireZstd, ZSTD_DEBIAN_PACKAGE, ZSTD_DEFAULT_LEVEL, ZSTD_DEFAULT_THREADS, zstdStage, type ZstdOptions } from './zstd.js';

export const COMPRESSION_CODECS: readonly CompressionCodec[] = ['none', 'gzip', 'zstd'];
/** The codec of new backups. */
export const DEFAULT_COMPRESSION: CompressionOptions = { codec: 'zstd' };

export interface CompressionOptions {
  codec: CompressionCodec;
  level?: number;
  /** zstd only. */
  threads?: number;
  /** zstd only: the program (default `zstd` on PATH). */
  program?: string;
}

export function compressionStage(options: CompressionOptions = DEFAULT_COMPRESSION): Stage {
  switch (options.codec) {
    case 'none':
      return noneStage();
    case 'gzip':
      return gzipStage({ level: options.level });
    case 'zstd':
      return zstdStage({ level: options.level, threads: options.threads, program: options.program });
    default:
      throw new PipelineError('STAGE_OPTIONS_INVALID', `unknown compression codec ${JSON.stringify(options.codec as unknown)} (known: ${COMPRESSION_CODECS.join(', ')})`);
  }
}

/** Parses `none`, `gzip`, `gzip:9`, `zstd`, `zstd:19` (a `--compress`-style value). */
export function parseCompression(text: string): CompressionOptions {
  const match = /^(none|gzip|zstd)(?::(\d{1,2}))?$/.exec(text.trim());
  if (!match) {
    throw new PipelineError('STAGE_OPTIONS_INVALID', `invalid compression ${JSON.stringify(text)}: use none, gzip[:1-9] or zstd[:1-19]`);
  }
  const codec = match[1] as CompressionCodec;
  if (match[2] === undefined) return { codec };
  if (codec === 'none') throw new PipelineError('STAGE_OPTIONS_INVALID', 'compression none takes no level');
  const level = Number(match[2]);
  compressionStage({ codec, level }); // validates the level
  return { codec, level };
}

export function defaultLevel(codec: CompressionCodec): number | null {
  return codec === 'zstd' ? ZSTD_DEFAULT_LEVEL : codec === 'gzip' ? GZIP_DEFAULT_LEVEL : null;
}

/** What decoding an artifact may need. */
export interface DecodeKeys {
  identities?: readonly Identity[];
  /** A passphrase (from a file or the environment): tried after the identities. */
  passphrase?: string | Uint8Array;
  /** zstd only: the program (default `zstd` on PATH). */
  zstdProgram?: string;
}

/** The identities to try: the X25519 ones, then the passphrase. */
export function decodeIdentities(keys: DecodeKeys): Identity[] {
  const identities = [...(keys.identities ?? [])];
  if (keys.passphrase !== undefined) identities.push(new PassphraseIdentity(keys.passphrase));
  return identities;
}

/**
 * The stage that decodes what `record` (from a sidecar) describes; its record() is that
 * record. Decoding does not depend on the level or the threads a backup was written with.
 */
export function stageFromRecord(record: StageRecord, keys: DecodeKeys = {}): Stage {
  if (record.type === 'encryption') return ageStage({ identities: decodeIdentities(keys), record });
  let stage: Stage;
  switch (record.codec) {
    case 'none':
      stage = noneStage();
      break;
    case 'gzip':
      stage = gzipStage();
      break;
    case 'zstd':
      stage = zstdStage({ program: keys.zstdProgram });
      break;
    default:
      throw new PipelineError('STAGE_INVALID', `unknown compression codec ${JSON.stringify(record.codec as unknown)}`);
  }
  return { ...stage, record: () => record };
}
