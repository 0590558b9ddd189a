/**
 * An age header held against what the sidecar records of its recipients (fingerprints and
 * work factors, never keys): the only sound basis for telling a damaged header (exit 3)
 * from a key that is not one of the file's (exit 2). The header itself cannot say it: an
 * X25519 stanza does not name its recipient, and a stanza that does not open looks the same
 * whether it was damaged or is someone else's.
 *
 * - The stanza counts (X25519, scrypt) and the scrypt work factor must be the recorded
 *   ones, whatever the keys: else AGE_RECIPIENTS_MISMATCH (the header was swapped or the
 *   sidecar edited). Stanzas of other types are ignored, as age itself ignores them;
 *   backupctl never writes any.
 * - No stanza opens, and an identity given IS a recorded X25519 recipient: its stanza is
 *   damaged (AGE_STANZA_DAMAGED). No identity given is recorded: AGE_NO_IDENTITY, with the
 *   recorded fingerprints in the hint.
 * - A passphrase: a wrong one and a damaged scrypt stanza (salt or body) fail alike and the
 *   sidecar holds nothing that tells them apart, so it stays AGE_BAD_PASSPHRASE (exit 2).
 */
import { AgeError } from '../errors.js';
import type { AgeHeader } from './header.js';
import { identityFingerprint, type RecipientRecord } from './keys.js';
import type { Identity } from './stanza.js';

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

/** Throws AGE_RECIPIENTS_MISMATCH unless `header` has the stanzas `recorded` describes. */
export function checkRecordedRecipients(header: AgeHeader, recorded: readonly RecipientRecord[]): void {
  const x25519 = header.stanzas.filter((s) => s.type === 'X25519').length;
  const scrypt = header.stanzas.filter((s) => s.type === 'scrypt');
  const recordedX25519 = recorded.filter((r) => r.scheme === 'x25519').length;
  const recordedScrypt = recorded.flatMap((r) => (r.scheme === 'scrypt' ? [r.workFactor] : []));
  const problems: string[] = [];
  if (x25519 !== recordedX25519 || scrypt.length !== recordedScrypt.length) {
    problems.push(
      `the header has ${plural(x25519, 'X25519 stanza')} and ${plural(scrypt.length, 'scrypt stanza')}, ` +
        `the sidecar records ${plural(recordedX25519, 'X25519 recipient')} and ${plural(recordedScrypt.length, 'passphrase')}`,
    );
  } else if (scrypt.length === 1 && scrypt[0]?.args[1] !== String(recordedScrypt[0])) {
    problems.push(`the header's scrypt work factor is ${JSON.stringify((scrypt[0]?.args[1] ?? '').slice(0, 20))}, the sidecar records ${String(recordedScrypt[0])}`);
  }
  if (problems.length > 0) {
    throw new AgeError('AGE_RECIPIENTS_MISMATCH', `the age header does not match the sidecar's recipients: ${problems.join('; ')}`, {
      hint: 'the header was replaced or the sidecar edited: the backup cannot be trusted as it is; use another backup',
    });
  }
}

/**
 * Why no identity opened a header of X25519 stanzas that matches `recorded`: damage when an
 * identity given is one of the recorded recipients, else a wrong key.
 */
export function unopenedError(identities: readonly Identity[], recorded: readonly RecipientRecord[]): AgeError {
  const fingerprints = recorded.flatMap((r) => (r.scheme === 'x25519' ? [r.fingerprint] : []));
  const own = identities.map(identityFingerprint).find((f): f is string => f !== null && fingerprints.includes(f));
  if (own !== undefined) {
    return new AgeError('AGE_STANZA_DAMAGED', `the age header is damaged: the identity given for recipient ${own} (recorded in the sidecar) opens none of its X25519 stanzas`, {
      hint: 'the key is right and the file is not: use another backup',
    });
  }
  const given = identities.map(identityFingerprint).filter((f): f is string => f !== null);
  return new AgeError('AGE_NO_IDENTITY', `none of the ${identities.length} identities given can decrypt this file (it is encrypted to ${fingerprints.join(', ').slice(0, 400)})`, {
    hint: `give the identity (AGE-SECRET-KEY-1...) of one of its recipients: ${fingerprints.join(', ').slice(0, 400)}${given.length > 0 ? `; the identities given are ${given.join(', ').slice(0, 400)}` : ''}`,
  });
}
