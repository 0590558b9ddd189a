/**
 * The base64 of age headers: RFC 4648 standard alphabet, no `=` padding, canonical only
 * (the unused low bits of the last character are zero). Node's decoder is lenient, so a
 * decoded value is accepted only if it encodes back to exactly the same text.
 */
const ALPHABET = /^[A-Za-z0-9+/]*$/;

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64').replace(/=+$/, '');
}

/** The decoded bytes, or null when `text` is not canonical unpadded base64. */
export function decodeBase64(text: string): Buffer | null {
  if (!ALPHABET.test(text) || text.length % 4 === 1) return null;
  const bytes = Buffer.from(text, 'base64');
  return encodeBase64(bytes) === text ? bytes : null;
}

/** Whether every character of `line` is in the base64 alphabet (an empty line is). */
export function isBase64Line(line: string): boolean {
  return ALPHABET.test(line);
}
