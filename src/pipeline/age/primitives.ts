/**
 * The node:crypto calls age needs, in one place: X25519 keys from and to their raw 32
 * bytes (through standard DER wrappers: PKCS#8 and SPKI for OID 1.3.101.110), X25519
 * agreement, HKDF-SHA-256 and ChaCha20-Poly1305 with the all-zero nonce of stanza bodies.
 */
import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, diffieHellman, hkdfSync, type KeyObject } from 'node:crypto';

const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');
const ZERO_NONCE = Buffer.alloc(12);
export const TAG_SIZE = 16;

export function x25519PrivateKey(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new RangeError('an X25519 private key is 32 bytes');
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, raw]), format: 'der', type: 'pkcs8' });
}

export function x25519PublicKey(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new RangeError('an X25519 public key is 32 bytes');
  return createPublicKey({ key: Buffer.concat([SPKI_X25519_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** The raw 32 bytes of an X25519 public key (of a private key: its public half). */
export function x25519RawPublic(key: KeyObject): Buffer {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return Buffer.from(der.subarray(der.length - 32));
}

/** The raw 32 bytes of an X25519 private key. */
export function x25519RawPrivate(key: KeyObject): Buffer {
  const der = key.export({ format: 'der', type: 'pkcs8' });
  return Buffer.from(der.subarray(der.length - 32));
}

/** X25519(privateKey, publicKey); null when the result is refused (all zero: a low-order point). */
export function x25519(privateKey: KeyObject, publicKey: KeyObject): Buffer | null {
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey, publicKey });
  } catch {
    // OpenSSL refuses an all-zero shared secret itself.
    return null;
  }
  return shared.every((b) => b === 0) ? null : shared;
}

export function hkdf(ikm: Uint8Array, salt: Uint8Array, info: string, length = 32): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
}

/** ChaCha20-Poly1305 with the all-zero nonce (stanza bodies): ciphertext || tag. */
export function sealZeroNonce(key: Uint8Array, plaintext: Uint8Array): Buffer {
  const cipher = createCipheriv('chacha20-poly1305', key, ZERO_NONCE, { authTagLength: TAG_SIZE });
  const out = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return out;
}

/** Opens what sealZeroNonce made; null when the tag does not verify. */
export function openZeroNonce(key: Uint8Array, sealed: Uint8Array): Buffer | null {
  return openSealed(key, ZERO_NONCE, sealed);
}

/** Opens ChaCha20-Poly1305 `ciphertext || tag` under `nonce`; null when the tag does not verify. */
export function openSealed(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array): Buffer | null {
  if (sealed.length < TAG_SIZE) return null;
  const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_SIZE });
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
  const plaintext = decipher.update(sealed.subarray(0, sealed.length - TAG_SIZE));
  try {
    decipher.final();
  } catch {
    return null;
  }
  return plaintext;
}
