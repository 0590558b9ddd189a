/**
 * Key material of age encryption, from the profile's `encryption` settings and the
 * command line: recipients (public keys) to encrypt new backups to, and identities or a
 * passphrase to read encrypted ones. Keys come from files or the environment, never from
 * argv (a recipient is public and may be given on the command line; an identity or a
 * passphrase never is). Nothing here is ever written to a sidecar, a log or the run log:
 * sidecars record recipient fingerprints only.
 */
import type { EncryptionSettings } from '../config/schema.js';
import { BackupctlError, ExitCode, usageError } from '../errors.js';
import { PassphraseIdentity, PassphraseRecipient, parseIdentityFile, parseRecipient, parseRecipientsFile, type Identity, type Recipient } from '../pipeline/age/index.js';
import type { DecodeKeys } from '../pipeline/codecs/index.js';
import { readSecretFile, type SecretFileError } from '../platform/secret-file.js';

/** Key files are small: a bound keeps a wrong path (a dump, a device) from being read whole. */
const MAX_KEY_FILE_BYTES = 1024 * 1024;

/** Flags that add key material to the profile's `encryption` settings. */
export interface KeyFlags {
  /** `--recipient age1...` (create, rekey's --add-recipient is separate). */
  recipient?: string[] | undefined;
  /** `--recipients-file F`. */
  recipientsFile?: string[] | undefined;
  /** `--identity F`. */
  identity?: string[] | undefined;
  /** `--passphrase-file F`. */
  passphraseFile?: string | undefined;
}

function readKeyFile(path: string, what: string): string {
  try {
    return readSecretFile(path, MAX_KEY_FILE_BYTES).toString('utf8');
  } catch (error) {
    const failure = error as SecretFileError;
    throw usageError(`cannot use ${path} as ${what}: ${failure.detail}`, `check the path given for ${what}`);
  }
}

/** Recipients from `age1...` strings and recipients files. */
export function loadRecipients(strings: readonly string[], files: readonly string[]): Recipient[] {
  const recipients: Recipient[] = [];
  for (const text of strings) {
    try {
      recipients.push(parseRecipient(text));
    } catch (error) {
      throw new BackupctlError(`not an age recipient: ${JSON.stringify(text.slice(0, 80))}`, {
        exitCode: ExitCode.USAGE,
        hint: 'give an X25519 public key as age-keygen prints it ("age1..."); SSH and plugin recipients are not supported',
        cause: error,
      });
    }
  }
  for (const file of files) recipients.push(...parseRecipientsFile(readKeyFile(file, 'a recipients file'), file));
  return recipients;
}

/** Identities from identity files (as age-keygen writes them). */
export function loadIdentities(files: readonly string[]): Identity[] {
  return files.flatMap((file) => parseIdentityFile(readKeyFile(file, 'an identity file'), file));
}

/**
 * The passphrase: `--passphrase-file`, else the profile's passphraseFile, else the
 * variable its passphraseEnv names. The file's final line break is not part of it.
 */
export function loadPassphrase(settings: EncryptionSettings | undefined, flags: KeyFlags, env: Record<string, string | undefined>): Buffer | undefined {
  const file = flags.passphraseFile ?? settings?.passphraseFile;
  if (file !== undefined) {
    let bytes = readKeyFile(file, 'a passphrase file');
    if (bytes.endsWith('\n')) bytes = bytes.slice(0, -1);
    if (bytes.endsWith('\r')) bytes = bytes.slice(0, -1);
    if (bytes === '') throw usageError(`the passphrase file ${file} is empty`);
    return Buffer.from(bytes, 'utf8');
  }
  const name = settings?.passphraseEnv;
  if (name === undefined) return undefined;
  const value = env[name];
  if (value === undefined || value === '') {
    throw usageError(`the passphrase variable ${name} is not set or empty`, `set ${name} in the environment of the run, or change the profile's encryption.passphraseEnv`);
  }
  return Buffer.from(value, 'utf8');
}

/**
 * Who new backups are encrypted to: the profile's recipients and recipients file plus
 * `--recipient` and `--recipients-file`; when there are none, the passphrase (scrypt), if
 * one is configured. `--passphrase-file` without recipient flags: that passphrase alone. An empty list: backups are not encrypted. Read before any lock or
 * connection, so that a bad key file fails the run at once (exit 2).
 */
export function encryptionRecipients(settings: EncryptionSettings | undefined, flags: KeyFlags, env: Record<string, string | undefined>): Recipient[] {
  // --passphrase-file alone on the command line: this backup is encrypted to that
  // passphrase, the profile's recipients set aside (flags win over the config).
  if (flags.passphraseFile !== undefined && (flags.recipient ?? []).length === 0 && (flags.recipientsFile ?? []).length === 0) {
    const passphrase = loadPassphrase(settings, flags, env);
    return passphrase === undefined ? [] : [new PassphraseRecipient(passphrase)];
  }
  const recipients = loadRecipients(
    [...(settings?.recipients ?? []), ...(flags.recipient ?? [])],
    [...(settings?.recipientsFile ? [settings.recipientsFile] : []), ...(flags.recipientsFile ?? [])],
  );
  if (recipients.length > 0) {
    // A configured passphrase then only serves to read older backups made with it.
    if (flags.passphraseFile !== undefined) {
      throw usageError('a backup is encrypted either to recipients or to a passphrase, not both (the age format allows a passphrase only alone)', 'drop --passphrase-file, or the recipients');
    }
    return recipients;
  }
  const passphrase = loadPassphrase(settings, flags, env);
  return passphrase === undefined ? [] : [new PassphraseRecipient(passphrase)];
}

/** What verify, restore, copy and rekey may decrypt with: identity files, then the passphrase. */
export function decryptionKeys(settings: EncryptionSettings | undefined, flags: KeyFlags, env: Record<string, string | undefined>): DecodeKeys {
  const files = [...(flags.identity ?? []), ...identityFilesOf(settings)];
  // An unset passphraseEnv variable is no key rather than an error: identities may do.
  const lenient = settings?.passphraseEnv !== undefined && !env[settings.passphraseEnv] && flags.passphraseFile === undefined && settings.passphraseFile === undefined;
  const passphrase = lenient ? undefined : loadPassphrase(settings, flags, env);
  return { identities: loadIdentities(files), ...(passphrase === undefined ? {} : { passphrase }) };
}

function identityFilesOf(settings: EncryptionSettings | undefined): string[] {
  const value = settings?.identityFile;
  return value === undefined ? [] : typeof value === 'string' ? [value] : value;
}

/** True when `keys` holds anything to decrypt with. */
export function hasKeys(keys: DecodeKeys): boolean {
  return (keys.identities?.length ?? 0) > 0 || keys.passphrase !== undefined;
}

/** The identities (and the passphrase) of `keys` as age identities, for rekeying. */
export function identitiesOf(keys: DecodeKeys): Identity[] {
  return [...(keys.identities ?? []), ...(keys.passphrase === undefined ? [] : [new PassphraseIdentity(keys.passphrase)])];
}
