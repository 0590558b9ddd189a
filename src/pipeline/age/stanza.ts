/** A recipient stanza of an age header: `-> type args...` and a body. */
export interface Stanza {
  /** The type (first argument), e.g. `X25519`, `scrypt`. */
  readonly type: string;
  /** The arguments after the type. */
  readonly args: readonly string[];
  readonly body: Buffer;
}

/** The 16-byte file key wrapped in each stanza. */
export const FILE_KEY_SIZE = 16;
/** A stanza body that wraps a file key: ChaCha20-Poly1305(file key) = 16 + 16 bytes. */
export const WRAPPED_KEY_SIZE = 32;

/** Wraps the file key for one recipient. */
export interface Recipient {
  readonly kind: 'x25519' | 'scrypt';
  wrap(fileKey: Buffer): Promise<Stanza>;
}

/**
 * Unwraps the file key from the stanzas addressed to it. Resolves null when none is (a
 * stanza of its type that does not open counts as not addressed to it); throws an AgeError
 * (AGE_HEADER_INVALID...) when a stanza of its type is malformed.
 */
export interface Identity {
  readonly kind: 'x25519' | 'scrypt';
  unwrap(stanzas: readonly Stanza[]): Promise<Buffer | null>;
}
