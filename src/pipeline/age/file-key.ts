import { randomBytes } from 'node:crypto';
import { AgeError } from '../errors.js';
import { verifyHeaderMac, writeHeader, type AgeHeader } from './header.js';
import type { RecipientRecord } from './keys.js';
import { checkRecordedRecipients, unopenedError } from './recorded.js';
import { FILE_KEY_SIZE, type Identity, type Recipient } from './stanza.js';

/** A fresh random file key (never reused across files). */
export function newFileKey(): Buffer {
  return randomBytes(FILE_KEY_SIZE);
}

/**
 * The header that wraps `fileKey` for `recipients`. A passphrase (scrypt) must be the only
 * recipient: age refuses to open a file where it is mixed with others.
 */
export async function headerFor(recipients: readonly Recipient[], fileKey: Buffer): Promise<Buffer> {
  if (recipients.length === 0) throw new AgeError('AGE_KEY_INVALID', 'no recipients to encrypt to');
  if (recipients.some((r) => r.kind === 'scrypt') && recipients.length > 1) {
    throw new AgeError('AGE_KEY_INVALID', 'a passphrase cannot be combined with other recipients (age requires the scrypt stanza to be alone)');
  }
  const stanzas = await Promise.all(recipients.map((recipient) => recipient.wrap(fileKey)));
  return writeHeader(stanzas, fileKey);
}

/**
 * The file key of `header`, from the first identity that unwraps a stanza, with the header
 * MAC verified. Throws AGE_HEADER_INVALID (a scrypt stanza not alone, a malformed stanza),
 * AGE_WORK_FACTOR_TOO_HIGH, AGE_HEADER_MAC, AGE_BAD_PASSPHRASE or AGE_NO_IDENTITY.
 * With `recorded` (the sidecar's recipients; see recorded.ts) the header must match it
 * (else AGE_RECIPIENTS_MISMATCH, before any unwrap), and an X25519 file that a recorded
 * recipient's identity does not open is AGE_STANZA_DAMAGED rather than AGE_NO_IDENTITY.
 */
export async function unwrapFileKey(header: AgeHeader, identities: readonly Identity[], recorded?: readonly RecipientRecord[]): Promise<Buffer> {
  const passphraseFile = header.stanzas.some((s) => s.type === 'scrypt');
  if (passphraseFile && header.stanzas.length !== 1) {
    throw new AgeError('AGE_HEADER_INVALID', 'invalid age header: a scrypt stanza must be the only stanza');
  }
  if (recorded) checkRecordedRecipients(header, recorded);
  for (const identity of identities) {
    const fileKey = await identity.unwrap(header.stanzas);
    if (fileKey) {
      verifyHeaderMac(header, fileKey);
      return fileKey;
    }
  }
  if (passphraseFile && identities.some((i) => i.kind === 'scrypt')) {
    throw new AgeError('AGE_BAD_PASSPHRASE', 'the passphrase does not decrypt this file');
  }
  if (recorded && !passphraseFile) throw unopenedError(identities, recorded);
  const types = [...new Set(header.stanzas.map((s) => s.type))].join(', ');
  throw new AgeError('AGE_NO_IDENTITY', `none of the ${identities.length} identities given can decrypt this file (its stanzas: ${types.slice(0, 200)})`, {
    hint: passphraseFile ? 'this file is encrypted with a passphrase: give the passphrase' : 'give the identity (AGE-SECRET-KEY-1...) of one of the recipients the file was encrypted to',
  });
}
