import { createHash, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { AgeError } from '../errors.js';
import { decodeBase64, encodeBase64 } from './base64.js';
import { bech32Decode, bech32Encode } from './bech32.js';
import { hkdf, openZeroNonce, sealZeroNonce, x25519, x25519PrivateKey, x25519PublicKey, x25519RawPrivate, x25519RawPublic } from './primitives.js';
import { FILE_KEY_SIZE, WRAPPED_KEY_SIZE, type Identity, type Recipient, type Stanza } from './stanza.js';

const INFO = 'age-encryption.org/v1/X25519';
const RECIPIENT_HRP = 'age';
const IDENTITY_HRP = 'AGE-SECRET-KEY-';

/** An X25519 recipient: the public key of `age1...`. */
export class X25519Recipient implements Recipient {
  readonly kind = 'x25519';
  readonly publicKey: Buffer;
  private readonly key: KeyObject;

  constructor(publicKey: Uint8Array) {
    this.publicKey = Buffer.from(publicKey);
    this.key = x25519PublicKey(this.publicKey);
  }

  /** Parses `age1...` (lower case, as age writes it); throws AGE_KEY_INVALID. */
  static parse(text: string): X25519Recipient {
    const decoded = bech32Decode(text);
    if (!decoded || decoded.hrp !== RECIPIENT_HRP || decoded.data.length !== 32) {
      throw new AgeError('AGE_KEY_INVALID', `not an age X25519 recipient: ${JSON.stringify(text.slice(0, 80))}`, {
        hint: 'an X25519 recipient is `age1` followed by 58 characters, as printed by `age-keygen -y`',
      });
    }
    return new X25519Recipient(decoded.data);
  }

  toString(): string {
    return bech32Encode(RECIPIENT_HRP, this.publicKey);
  }

  /**
   * Not secret; written to sidecars to tell which keys a backup is encrypted to:
   * `x25519:sha256:` and the first 16 hex digits of SHA-256 over the raw 32-byte public key.
   */
  fingerprint(): string {
    return `x25519:sha256:${createHash('sha256').update(this.publicKey).digest('hex').slice(0, 16)}`;
  }

  async wrap(fileKey: Buffer): Promise<Stanza> {
    const ephemeral = generateKeyPairSync('x25519');
    const share = x25519RawPublic(ephemeral.publicKey);
    const shared = x25519(ephemeral.privateKey, this.key);
    if (!shared) throw new AgeError('AGE_KEY_INVALID', `the X25519 recipient ${this.toString()} is a low-order point`);
    const wrapKey = hkdf(shared, Buffer.concat([share, this.publicKey]), INFO);
    return { type: 'X25519', args: [encodeBase64(share)], body: sealZeroNonce(wrapKey, fileKey) };
  }
}

/** An X25519 identity (`AGE-SECRET-KEY-1...`). The private key stays inside a KeyObject. */
export class X25519Identity implements Identity {
  readonly kind = 'x25519';
  readonly #privateKey: KeyObject;
  readonly recipient: X25519Recipient;

  private constructor(privateKey: KeyObject) {
    this.#privateKey = privateKey;
    this.recipient = new X25519Recipient(x25519RawPublic(privateKey));
  }

  /** A new random identity. */
  static generate(): X25519Identity {
    return new X25519Identity(x25519PrivateKey(randomBytes(32)));
  }

  /** Parses `AGE-SECRET-KEY-1...` (upper case, as age writes it); throws AGE_KEY_INVALID without quoting it. */
  static parse(text: string): X25519Identity {
    const decoded = bech32Decode(text);
    if (!decoded || decoded.hrp !== IDENTITY_HRP || decoded.data.length !== 32) {
      throw new AgeError('AGE_KEY_INVALID', 'not an age X25519 identity (AGE-SECRET-KEY-1..., upper case, as written by age-keygen)');
    }
    return new X25519Identity(x25519PrivateKey(decoded.data));
  }

  /** The `AGE-SECRET-KEY-1...` text: a secret; only for writing a new identity file. */
  encode(): string {
    return bech32Encode(IDENTITY_HRP, x25519RawPrivate(this.#privateKey), true);
  }

  async unwrap(stanzas: readonly Stanza[]): Promise<Buffer | null> {
    for (const stanza of stanzas) {
      if (stanza.type !== 'X25519') continue;
      const share = stanza.args.length === 1 ? decodeBase64(stanza.args[0] as string) : null;
      if (!share || share.length !== 32) {
        throw new AgeError('AGE_HEADER_INVALID', 'malformed X25519 stanza: it needs exactly one argument, a canonical base64 32-byte share');
      }
      if (stanza.body.length !== WRAPPED_KEY_SIZE) throw new AgeError('AGE_HEADER_INVALID', 'malformed X25519 stanza: the wrapped file key is not 32 bytes');
      const shared = x25519(this.#privateKey, x25519PublicKey(share));
      if (!shared) throw new AgeError('AGE_HEADER_INVALID', 'X25519 stanza with a low-order share (all-zero shared secret)');
      const wrapKey = hkdf(shared, Buffer.concat([share, this.recipient.publicKey]), INFO);
      const fileKey = openZeroNonce(wrapKey, stanza.body);
      if (fileKey && fileKey.length === FILE_KEY_SIZE) return fileKey;
    }
    return null;
  }
}
