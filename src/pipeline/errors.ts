import { BackupctlError, ExitCode, type ExitCodeValue } from '../errors.js';
import type { Digest } from './digest.js';

/**
 * Stable codes of every error the pipeline raises. Callers branch on `error.code`,
 * never on message text. Only add codes; never rename one.
 *
 * age (see src/pipeline/age/):
 * - AGE_KEY_INVALID: a recipient (`age1...`), identity (`AGE-SECRET-KEY-1...`), identity or
 *   recipients file, or passphrase that cannot be used (the message never quotes a secret).
 * - AGE_HEADER_INVALID: not an age v1 file, or a header (including the 16-byte payload nonce)
 *   that is malformed, non-canonical, incomplete, or refused by the spec (a low-order X25519
 *   share, a scrypt stanza mixed with others, a wrapped key of the wrong length).
 * - AGE_UNSUPPORTED_VERSION: an age header of a version other than v1.
 * - AGE_WORK_FACTOR_TOO_HIGH: a scrypt stanza whose work factor is above the cap (DoS guard).
 * - AGE_NO_IDENTITY: none of the identities given opens any stanza (or none was given).
 * - AGE_BAD_PASSPHRASE: the file is passphrase-encrypted and the passphrase does not open it.
 * - AGE_HEADER_MAC: a file key was unwrapped but the header MAC does not match (tampered header).
 * - AGE_STANZA_DAMAGED: no stanza opens, yet an identity given is one of the X25519
 *   recipients the sidecar records: the header is damaged, the key is right (age/recorded.ts).
 * - AGE_RECIPIENTS_MISMATCH: the header's stanzas (X25519 and scrypt counts, the scrypt work
 *   factor) are not those the sidecar records: the header was swapped or the sidecar edited.
 * - AGE_PAYLOAD_DAMAGED: a payload chunk fails authentication (flipped bytes, a chunk marked
 *   final too early, an empty final chunk).
 * - AGE_TRUNCATED: the payload ends without its final chunk.
 * - AGE_TRAILING_DATA: bytes follow the final chunk.
 *
 * codecs (src/pipeline/codecs/):
 * - CODEC_PROGRAM_MISSING: a codec's program (zstd) is not installed.
 * - CODEC_PROGRAM_FAILED: the program exited non-zero or was killed while encoding.
 * - CODEC_CORRUPT: a compressed stream that does not decode (corrupt or truncated).
 * - CODEC_UNAVAILABLE: a codec this runtime cannot run.
 *
 * stages and chains (src/pipeline/stage.ts, artifact.ts):
 * - STAGE_INVALID: a sidecar's stage records that cannot be decoded (unknown codec or scheme,
 *   malformed record).
 * - STAGE_OPTIONS_INVALID: stage options or a stage list that cannot be built (a bad level, a
 *   second compression stage, encryption before compression).
 * - KEYS_MISSING: an encrypted artifact opened without identities or a passphrase.
 * - DIGEST_MISMATCH: see DigestMismatchError.
 */
export type PipelineErrorCode =
  | 'AGE_KEY_INVALID'
  | 'AGE_HEADER_INVALID'
  | 'AGE_UNSUPPORTED_VERSION'
  | 'AGE_WORK_FACTOR_TOO_HIGH'
  | 'AGE_NO_IDENTITY'
  | 'AGE_BAD_PASSPHRASE'
  | 'AGE_HEADER_MAC'
  | 'AGE_STANZA_DAMAGED'
  | 'AGE_RECIPIENTS_MISMATCH'
  | 'AGE_PAYLOAD_DAMAGED'
  | 'AGE_TRUNCATED'
  | 'AGE_TRAILING_DATA'
  | 'CODEC_PROGRAM_MISSING'
  | 'CODEC_PROGRAM_FAILED'
  | 'CODEC_CORRUPT'
  | 'CODEC_UNAVAILABLE'
  | 'STAGE_INVALID'
  | 'STAGE_OPTIONS_INVALID'
  | 'KEYS_MISSING'
  | 'DIGEST_MISMATCH';

/** Exit code of each error code: 2 = fix the invocation or install something; 3 = the backup is corrupt. */
const EXIT_CODES: Record<PipelineErrorCode, ExitCodeValue> = {
  AGE_KEY_INVALID: ExitCode.USAGE,
  AGE_HEADER_INVALID: ExitCode.VERIFY_FAILED,
  AGE_UNSUPPORTED_VERSION: ExitCode.VERIFY_FAILED,
  AGE_WORK_FACTOR_TOO_HIGH: ExitCode.VERIFY_FAILED,
  AGE_NO_IDENTITY: ExitCode.USAGE,
  AGE_BAD_PASSPHRASE: ExitCode.USAGE,
  AGE_HEADER_MAC: ExitCode.VERIFY_FAILED,
  AGE_STANZA_DAMAGED: ExitCode.VERIFY_FAILED,
  AGE_RECIPIENTS_MISMATCH: ExitCode.VERIFY_FAILED,
  AGE_PAYLOAD_DAMAGED: ExitCode.VERIFY_FAILED,
  AGE_TRUNCATED: ExitCode.VERIFY_FAILED,
  AGE_TRAILING_DATA: ExitCode.VERIFY_FAILED,
  CODEC_PROGRAM_MISSING: ExitCode.USAGE,
  CODEC_PROGRAM_FAILED: ExitCode.FAILED,
  CODEC_CORRUPT: ExitCode.VERIFY_FAILED,
  CODEC_UNAVAILABLE: ExitCode.USAGE,
  STAGE_INVALID: ExitCode.VERIFY_FAILED,
  STAGE_OPTIONS_INVALID: ExitCode.USAGE,
  KEYS_MISSING: ExitCode.USAGE,
  DIGEST_MISMATCH: ExitCode.VERIFY_FAILED,
};

/** Every error raised by src/pipeline/: a BackupctlError (exit code, hint) with a stable `code`. */
export class PipelineError extends BackupctlError {
  readonly code: PipelineErrorCode;

  constructor(code: PipelineErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, { exitCode: EXIT_CODES[code], hint: options.hint, cause: options.cause });
    this.name = 'PipelineError';
    this.code = code;
  }
}

/** The age errors (src/pipeline/age/): a PipelineError whose code starts with `AGE_`. */
export class AgeError extends PipelineError {
  constructor(code: PipelineErrorCode & `AGE_${string}`, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(code, message, options);
    this.name = 'AgeError';
  }
}

/** One difference between what a sidecar expects and what was read. */
export interface DigestDifference {
  /** `stored`: the artifact's bytes as stored; `plaintext`: the decoded bytes (pg_dump's output). */
  digest: 'stored' | 'plaintext';
  field: 'bytes' | 'sha256';
  expected: number | string;
  actual: number | string;
}

/** The bytes read do not match the sidecar's digests; `differences` lists each mismatch. */
export class DigestMismatchError extends PipelineError {
  readonly differences: readonly DigestDifference[];

  constructor(differences: readonly DigestDifference[]) {
    const what = differences.map((d) => `${d.digest} ${d.field === 'bytes' ? 'size' : 'sha256'} ${String(d.actual)} (expected ${String(d.expected)})`);
    super('DIGEST_MISMATCH', `the artifact does not match its sidecar: ${what.join('; ')}`, {
      hint: 'the backup is corrupt or was changed after it was written; use another backup',
    });
    this.name = 'DigestMismatchError';
    this.differences = differences;
  }
}

/** The differences between an expected and an actual digest (empty when they match). */
export function compareDigests(digest: DigestDifference['digest'], expected: Digest, actual: Digest): DigestDifference[] {
  const out: DigestDifference[] = [];
  if (expected.bytes !== actual.bytes) out.push({ digest, field: 'bytes', expected: expected.bytes, actual: actual.bytes });
  if (expected.sha256 !== actual.sha256) out.push({ digest, field: 'sha256', expected: expected.sha256, actual: actual.sha256 });
  return out;
}

/** The `code` of a PipelineError, else undefined. */
export function pipelineErrorCode(error: unknown): PipelineErrorCode | undefined {
  return error instanceof PipelineError ? error.code : undefined;
}
