import { randomBytes, scrypt } from 'node:crypto';
import { AgeError } from '../errors.js';
import { decodeBase64, encodeBase64 } from './base64.js';
import { openZeroNonce, sealZeroNonce } from './primitives.js';
import { FILE_KEY_SIZE, WRAPPED_KEY_SIZE, type Identity, type Recipient, type Stanza } from './stanza.js';

const SALT_LABEL = Buffer.from('age-encryption.org/v1/scrypt');
/** age's default: N = 2^18 (256 MiB, about a second). */
export const DEFAULT_WORK_FACTOR = 18;
/**
 * The highest work factor decrypted by default, as age itself: 2^22 needs 4 GiB and many
 * seconds; above it a hostile file could stall or exhaust the machine.
 */
export const MAX_WORK_FACTOR = 22;

function toPassphrase(passphrase: string | Uint8Array): Buffer {
  const bytes = typeof passphrase === 'string' ? Buffer.from(passphrase, 'utf8') : Buffer.from(passphrase);
  if (bytes.length === 0) throw new AgeError('AGE_KEY_INVALID', 'the passphrase is empty');
  return bytes;
}

function checkWorkFactor(workFactor: number, max: number): void {
  if (!Number.isInteger(workFactor) || workFactor < 1 || workFactor > max) {
    throw new AgeError('AGE_KEY_INVALID', `the scrypt work factor must be an integer from 1 to ${max}, got ${workFactor}`);
  }
}

function deriveWrapKey(passphrase: Buffer, salt: Buffer, workFactor: number): Promise<Buffer> {
  const N = 2 ** workFactor;
  // scrypt needs 128 * N * r bytes; maxmem must exceed it (node's default is 32 MiB).
  const maxmem = 128 * N * 8 + 16 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    scrypt(passphrase, Buffer.concat([SALT_LABEL, salt]), 32, { N, r: 8, p: 1, maxmem }, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

/** Encrypts to a passphrase (scrypt). It must be the file's only recipient. */
export class PassphraseRecipient implements Recipient {
  readonly kind = 'scrypt';
  readonly #passphrase: Buffer;
  readonly workFactor: number;

  constructor(passphrase: string | Uint8Array, options: { workFactor?: number } = {}) {
    this.#passphrase = toPassphrase(passphrase);
    this.workFactor = options.workFactor ?? DEFAULT_WORK_FACTOR;
    checkWorkFactor(this.workFactor, 30);
  }

  async wrap(fileKey: Buffer): Promise<Stanza> {
    const salt = randomBytes(16);
    const key = await deriveWrapKey(this.#passphrase, salt, this.workFactor);
    return { type: 'scrypt', args: [encodeBase64(salt), String(this.workFactor)], body: sealZeroNonce(key, fileKey) };
  }
}

/** Decrypts with a passphrase; refuses work factors above `maxWorkFactor` (default 22, as age). */
export class PassphraseIdentity implements Identity {
  readonly kind = 'scrypt';
  readonly #passphrase: Buffer;
  readonly maxWorkFactor: number;

  constructor(passphrase: string | Uint8Array, options: { maxWorkFactor?: number } = {}) {
    this.#passphrase = toPassphrase(passphrase);
    this.maxWorkFactor = options.maxWorkFactor ?? MAX_WORK_FACTOR;
    checkWorkFactor(this.maxWorkFactor, 30);
  }

  async unwrap(stanzas: readonly Stanza[]): Promise<Buffer | null> {
    for (const stanza of stanzas) {
      if (stanza.type !== 'scrypt') continue;
      // The header-level rule (a scrypt stanza must be alone) is checked by the caller.
      const [saltText = '', workText = ''] = stanza.args;
      const salt = stanza.args.length === 2 ? decodeBase64(saltText) : null;
      if (!salt || salt.length !== 16) throw new AgeError('AGE_HEADER_INVALID', 'malformed scrypt stanza: it needs a canonical base64 16-byte salt and a work factor');
      if (!/^[1-9][0-9]*$/.test(workText)) throw new AgeError('AGE_HEADER_INVALID', 'malformed scrypt stanza: the work factor is not a decimal number');
      const workFactor = Number(workText);
      if (workFactor > this.maxWorkFactor) {
        throw new AgeError('AGE_WORK_FACTOR_TOO_HIGH', `the scrypt work factor ${workText.slice(0, 20)} is above the limit of ${this.maxWorkFactor}`, {
          hint: 'a file encrypted with an unusually high work factor: check where it comes from',
        });
      }
      if (stanza.body.length !== WRAPPED_KEY_SIZE) throw new AgeError('AGE_HEADER_INVALID', 'malformed scrypt stanza: the wrapped file key is not 32 bytes');
      const key = await deriveWrapKey(this.#passphrase, salt, workFactor);
      const fileKey = openZeroNonce(key, stanza.body);
      if (fileKey && fileKey.length === FILE_KEY_SIZE) return fileKey;
    }
    return null;
  }
}
