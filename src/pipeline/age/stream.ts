/**
 * The age payload as Node Transforms: `encryptStream(recipients)` writes header, nonce and
 * STREAM chunks; `decryptStream(identities)` reads them back. Both honour back-pressure
 * (plain Transforms: a full readable side stops the writes), keep one chunk of their own
 * besides 256 KiB stream buffers, and use node:crypto's ChaCha20-Poly1305.
 *
 * Payload: nonce (16 random bytes); payload key = HKDF-SHA-256(file key, salt = nonce,
 * info = "payload"); plaintext cut in 64 KiB chunks, each sealed with the 12-byte nonce
 * (11-byte big-endian counter || 0x01 for the final chunk, else 0x00). The final chunk is
 * shorter than 64 KiB or full, and empty only when the whole plaintext is.
 *
 * Decryption pushes a chunk's plaintext only after its tag verified, so everything it emits
 * is authentic; but a truncated or damaged file is only known when the damage is reached:
 * consumers that must not act on a partial plaintext (a restore into a live database)
 * authenticate the whole file first.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { AgeError } from '../errors.js';
import { headerFor, newFileKey, unwrapFileKey } from './file-key.js';
import { parseHeader, type AgeHeader } from './header.js';
import type { RecipientRecord } from './keys.js';
import { hkdf, openSealed, TAG_SIZE } from './primitives.js';
import type { Identity, Recipient } from './stanza.js';

export const CHUNK_SIZE = 64 * 1024;
export const ENCRYPTED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE;
export const NONCE_SIZE = 16;

/** The 12-byte STREAM nonce: counter (bytes 0-10, big endian) and the final-chunk flag (byte 11). */
class ChunkNonce {
  readonly bytes = Buffer.alloc(12);
  index = 0;

  next(): void {
    this.index += 1;
    for (let i = 10; i >= 0; i--) {
      const v = ((this.bytes[i] as number) + 1) & 0xff;
      this.bytes[i] = v;
      if (v !== 0) return;
    }
    throw new AgeError('AGE_PAYLOAD_DAMAGED', 'STREAM chunk counter overflow');
  }

  flag(last: boolean): Buffer {
    this.bytes[11] = last ? 1 : 0;
    return this.bytes;
  }
}

function errorOf(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** Encrypts to `recipients`: its output is a complete age v1 file. */
export function encryptStream(recipients: readonly Recipient[]): Transform {
  return new EncryptStream(recipients);
}

class EncryptStream extends Transform {
  private readonly payloadKey: Buffer;
  private readonly nonce = new ChunkNonce();
  private readonly pending = Buffer.allocUnsafe(CHUNK_SIZE);
  private pendingLength = 0;
  /** Header and payload nonce, until pushed. */
  private prelude: Promise<Buffer> | null;

  constructor(recipients: readonly Recipient[]) {
    super({ highWaterMark: 256 * 1024 });
    const fileKey = newFileKey();
    const payloadNonce = randomBytes(NONCE_SIZE);
    this.payloadKey = hkdf(fileKey, payloadNonce, 'payload');
    this.prelude = headerFor(recipients, fileKey).then((header) => Buffer.concat([header, payloadNonce]));
    this.prelude.catch(() => undefined); // reported by the first write or the end
  }

  private withPrelude(then: () => void, callback: TransformCallback): void {
    if (this.prelude === null) {
      then();
      callback();
      return;
    }
    this.prelude.then(
      (bytes) => {
        this.prelude = null;
        this.push(bytes);
        try {
          then();
        } catch (error) {
          callback(errorOf(error));
          return;
        }
        callback();
      },
      (error: unknown) => callback(errorOf(error)),
    );
  }

  private seal(plaintext: Buffer, last: boolean): void {
    const cipher = createCipheriv('chacha20-poly1305', this.payloadKey, this.nonce.flag(last), { authTagLength: TAG_SIZE });
    const ciphertext = cipher.update(plaintext);
    cipher.final();
    if (ciphertext.length > 0) this.push(ciphertext);
    this.push(cipher.getAuthTag());
    this.nonce.next();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.withPrelude(() => this.absorb(chunk), callback);
  }

  private absorb(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      // A full pending chunk with more bytes to come is not the final one.
      if (this.pendingLength === CHUNK_SIZE) {
        this.seal(this.pending, false);
        this.pendingLength = 0;
      }
      if (this.pendingLength === 0 && chunk.length - offset > CHUNK_SIZE) {
        this.seal(chunk.subarray(offset, offset + CHUNK_SIZE), false);
        offset += CHUNK_SIZE;
        continue;
      }
      const n = Math.min(CHUNK_SIZE - this.pendingLength, chunk.length - offset);
      chunk.copy(this.pending, this.pendingLength, offset, offset + n);
      this.pendingLength += n;
      offset += n;
    }
  }

  override _flush(callback: TransformCallback): void {
    this.withPrelude(() => this.seal(this.pending.subarray(0, this.pendingLength), true), callback);
  }
}

/**
 * Decrypts an age v1 file with the first of `identities` that opens it. The stream fails
 * with an AgeError: AGE_HEADER_INVALID (also for a file that ends inside the header or the
 * nonce), AGE_UNSUPPORTED_VERSION, AGE_WORK_FACTOR_TOO_HIGH, AGE_NO_IDENTITY,
 * AGE_BAD_PASSPHRASE, AGE_HEADER_MAC, AGE_PAYLOAD_DAMAGED, AGE_TRUNCATED, AGE_TRAILING_DATA;
 * with `recorded` (the sidecar's recipients) also AGE_RECIPIENTS_MISMATCH and
 * AGE_STANZA_DAMAGED, both before any plaintext (see unwrapFileKey).
 */
export function decryptStream(identities: readonly Identity[], recorded?: readonly RecipientRecord[]): DecryptStream {
  return new DecryptStream(identities, recorded);
}

export class DecryptStream extends Transform {
  private state: 'header' | 'nonce' | 'payload' = 'header';
  private headerBytes: Buffer = Buffer.alloc(0);
  private payloadKey: Buffer | null = null;
  /** Held between the header and a complete nonce. */
  private fileKey: Buffer | null = null;
  private readonly nonce = new ChunkNonce();
  private readonly pending = Buffer.allocUnsafe(ENCRYPTED_CHUNK_SIZE);
  private pendingLength = 0;
  /** A full-size chunk authenticated as the final one: nothing may follow. */
  private finalSeen = false;
  /** The parsed header, once read. */
  header: AgeHeader | null = null;

  constructor(
    private readonly identities: readonly Identity[],
    private readonly recorded?: readonly RecipientRecord[],
  ) {
    super({ highWaterMark: 256 * 1024 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.state !== 'header') {
      try {
        this.absorb(chunk);
      } catch (error) {
        callback(errorOf(error));
        return;
      }
      callback();
      return;
    }
    let parsed: ReturnType<typeof parseHeader>;
    try {
      this.headerBytes = this.headerBytes.length === 0 ? chunk : Buffer.concat([this.headerBytes, chunk]);
      parsed = parseHeader(this.headerBytes);
    } catch (error) {
      callback(errorOf(error));
      return;
    }
    if (parsed === null) {
      callback();
      return;
    }
    const { header, length } = parsed;
    const rest = this.headerBytes.subarray(length);
    this.header = { ...header, macInput: Buffer.from(header.macInput), bytes: Buffer.from(header.bytes) };
    this.headerBytes = Buffer.alloc(0);
    unwrapFileKey(header, this.identities, this.recorded).then(
      (fileKey) => {
        this.fileKey = fileKey;
        this.state = 'nonce';
        try {
          this.absorb(rest);
        } catch (error) {
          callback(errorOf(error));
          return;
        }
        callback();
      },
      (error: unknown) => callback(errorOf(error)),
    );
  }

  private absorb(chunk: Buffer): void {
    let offset = 0;
    if (this.state === 'nonce') {
      const n = Math.min(NONCE_SIZE - this.pendingLength, chunk.length);
      chunk.copy(this.pending, this.pendingLength, 0, n);
      this.pendingLength += n;
      offset = n;
      if (this.pendingLength < NONCE_SIZE) return;
      this.payloadKey = hkdf(this.fileKey as Buffer, this.pending.subarray(0, NONCE_SIZE), 'payload');
      this.fileKey = null;
      this.pendingLength = 0;
      this.state = 'payload';
    }
    while (offset < chunk.length) {
      if (this.finalSeen) {
        throw new AgeError('AGE_TRAILING_DATA', `data follows the final chunk (chunk ${this.nonce.index - 1}) of the age payload`);
      }
      if (this.pendingLength === 0 && chunk.length - offset >= ENCRYPTED_CHUNK_SIZE) {
        this.openFull(chunk.subarray(offset, offset + ENCRYPTED_CHUNK_SIZE));
        offset += ENCRYPTED_CHUNK_SIZE;
        continue;
      }
      const n = Math.min(ENCRYPTED_CHUNK_SIZE - this.pendingLength, chunk.length - offset);
      chunk.copy(this.pending, this.pendingLength, offset, offset + n);
      this.pendingLength += n;
      offset += n;
      if (this.pendingLength === ENCRYPTED_CHUNK_SIZE) {
        this.openFull(this.pending);
        this.pendingLength = 0;
      }
    }
  }

  /** Opens a chunk (ciphertext || tag); null when the tag does not verify. */
  private open(sealed: Buffer, last: boolean): Buffer | null {
    return openSealed(this.payloadKey as Buffer, this.nonce.flag(last), sealed);
  }

  /**
   * A full-size chunk is released as soon as it authenticates, as a middle chunk or as the
   * final one (a file whose length is a multiple of 64 KiB ends with a full final chunk).
   */
  private openFull(sealed: Buffer): void {
    let plaintext = this.open(sealed, false);
    if (plaintext === null) {
      plaintext = this.open(sealed, true);
      if (plaintext === null) throw new AgeError('AGE_PAYLOAD_DAMAGED', `age payload chunk ${this.nonce.index} fails authentication: the file is damaged`);
      this.finalSeen = true;
    }
    this.push(plaintext);
    this.nonce.next();
  }

  override _flush(callback: TransformCallback): void {
    callback(this.finish());
  }

  private finish(): AgeError | null {
    if (this.state === 'header') {
      return new AgeError('AGE_HEADER_INVALID', this.headerBytes.length === 0 ? 'invalid age header: the input is empty' : 'invalid age header: the input ends inside the header');
    }
    if (this.state === 'nonce') return new AgeError('AGE_HEADER_INVALID', 'invalid age header: the input ends before the payload nonce');
    if (this.finalSeen) return null;
    const index = this.nonce.index;
    if (this.pendingLength < TAG_SIZE) {
      return new AgeError('AGE_TRUNCATED', `the age payload ends without its final chunk (after ${index} chunks): the file is truncated`);
    }
    // A short chunk can only be the final one.
    const plaintext = this.open(this.pending.subarray(0, this.pendingLength), true);
    if (plaintext === null) {
      return new AgeError('AGE_PAYLOAD_DAMAGED', `the last chunk (${index}) of the age payload fails authentication: the file is damaged or truncated`);
    }
    if (plaintext.length === 0 && index > 0) {
      return new AgeError('AGE_PAYLOAD_DAMAGED', 'the age payload ends with an empty final chunk, which only an empty file may have');
    }
    if (plaintext.length > 0) this.push(plaintext);
    return null;
  }
}
