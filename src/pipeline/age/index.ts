/**
 * age v1 (c2sp.org/age), files readable by the standard `age` tool: X25519 recipients and
 * identities, passphrases (scrypt), streaming encryption and decryption, and rekeying.
 * All cryptography is node:crypto's.
 */
export { decodeBase64, encodeBase64 } from './base64.js';
export { bech32Decode, bech32Encode } from './bech32.js';
export { headerFor, newFileKey, unwrapFileKey } from './file-key.js';
export { checkRecordedRecipients } from './recorded.js';
export { MAX_HEADER_BYTES, parseHeader, verifyHeaderMac, writeHeader, type AgeHeader } from './header.js';
export {
  formatIdentityFile,
  generateIdentity,
  identityFingerprint,
  parseIdentity,
  parseIdentityFile,
  parseRecipient,
  parseRecipientsFile,
  passphraseFromEnv,
  passphraseFromFile,
  passphraseIdentity,
  passphraseRecipient,
  readIdentityFile,
  readRecipientsFile,
  recipientFingerprint,
  recipientRecord,
  type RecipientRecord,
} from './keys.js';
export { readHeader, rekey, rewrapHeader, type HeaderRead, type Rekeyed } from './rekey.js';
export { DEFAULT_WORK_FACTOR, MAX_WORK_FACTOR, PassphraseIdentity, PassphraseRecipient } from './scrypt.js';
export type { Identity, Recipient, Stanza } from './stanza.js';
export { CHUNK_SIZE, decryptStream, DecryptStream, encryptStream, ENCRYPTED_CHUNK_SIZE, NONCE_SIZE } from './stream.js';
export { X25519Identity, X25519Recipient } from './x25519.js';
