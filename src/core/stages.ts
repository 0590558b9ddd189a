/**
 * The stages a profile's new backups go through (compression, then encryption), built
 * before any lock or connection so that a missing zstd program or a bad key file fails
 * the run at once (exit 2), and what readers need to undo them.
 */
import { ageStage, compressionStage, requireZstd, type CompressionOptions, type DecodeKeys } from '../pipeline/codecs/index.js';
import type { Stage } from '../pipeline/stage.js';
import type { EncryptionSettings } from '../config/schema.js';
import type { Sidecar } from '../catalog/sidecar.js';
import { usageError } from '../errors.js';
import { decryptionKeys, encryptionRecipients, hasKeys, type KeyFlags } from './keys.js';

/** Where programs are looked for when the environment has no PATH (`env -i` in a crontab). */
const FALLBACK_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The environment children and program lookups get: PATH always set. */
export function programEnv(env: Record<string, string | undefined>): NodeJS.ProcessEnv {
  return { ...env, PATH: env.PATH || FALLBACK_PATH };
}

/** The write stages of new backups: the compression stage (none is the identity), then age when there are recipients. */
export function writeStages(
  compression: CompressionOptions,
  encryption: EncryptionSettings | undefined,
  flags: KeyFlags,
  env: Record<string, string | undefined>,
): Stage[] {
  const withPath = programEnv(env);
  const program = compression.codec === 'zstd' ? requireZstd(compression.program, withPath) : undefined;
  const stages: Stage[] = [compressionStage({ ...compression, ...(program ? { program } : {}) })];
  const recipients = encryptionRecipients(encryption, flags, env);
  if (recipients.length > 0) stages.push(ageStage({ recipients }));
  return stages;
}

/**
 * What a reader decodes with: the profile's identities and passphrase (and the flags'),
 * and the zstd program when one is installed (a backup that needs it and finds none
 * fails with CODEC_PROGRAM_MISSING when it is read, naming the package).
 */
export function readKeys(encryption: EncryptionSettings | undefined, flags: KeyFlags, env: Record<string, string | undefined>): DecodeKeys {
  let zstdProgram: string | undefined;
  try {
    zstdProgram = requireZstd(undefined, programEnv(env));
  } catch {
    zstdProgram = undefined;
  }
  return { ...decryptionKeys(encryption, flags, env), ...(zstdProgram ? { zstdProgram } : {}) };
}

/**
 * Refuses (exit 2) to read an encrypted backup with nothing to decrypt it with, naming
 * where keys come from; the backup itself is not in question.
 */
export function assertDecryptable(sidecar: Sidecar, keys: DecodeKeys | undefined): void {
  const encryption = sidecar.artifact.stages.find((stage) => stage.type === 'encryption');
  if (!encryption || (keys && hasKeys(keys))) return;
  const passphrase = encryption.recipients.some((r) => r.scheme === 'scrypt');
  throw usageError(
    `backup ${sidecar.profile}/${sidecar.id} is encrypted (age, ${passphrase ? 'to a passphrase' : `recipients ${encryption.recipients.map((r) => (r.scheme === 'x25519' ? r.fingerprint : 'passphrase')).join(', ')}`}): nothing to decrypt it with`,
    passphrase
      ? "give --passphrase-file FILE, or set the profile's encryption.passphraseFile or passphraseEnv"
      : "give --identity FILE (the private key of one of its recipients), or set the profile's encryption.identityFile",
  );
}
