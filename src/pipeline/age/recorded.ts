/**
 * An age header held against what the sidecar records of its recipients (fingerprints and
 * work factors, never keys): the only sound basis for telling a damaged header (exit 3)
 * from a key that is not one of the file's (exit 2). The header itself cannot say it: an
 * X25519 stanza does not name its recipient, and a stanza that does not open looks the same
 * whether it was damaged or is someone else's.
 *
 * - No stanza opens, and an identity given IS a recorded X25519 recipient: its stanza is
 *   damaged (AGE_STANZA_DAMAGED). No identity given is recorded: AGE_NO_IDENTITY, with the
 *   recorded fingerprints in the hint.
 * - A passphrase: a wrong one and a damaged scrypt stanza (salt or body) fail alike and the
 *   sidecar holds nothing that tells them apart, so it stays AGE_BAD_PASSPHRASE (exit 2).
 */
import { AgeError } from '../errors.js';
import { identityFingerprint, type RecipientRecord } from './keys.js';
import type { Identity } from './stanza.js';

/**
 * Why no identity opened a header of X25519 stanzas recorded in `recorded`: damage when an
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
