/**
 * vitest's toEqual compares a Buffer (any Uint8Array) index by index through its generic
 * recursive equality: 42 s of CPU for one 6 MB artifact, most of remote-loop's time on a
 * loaded CI machine. Byte arrays are compared as bytes here instead (Buffer.equals, a
 * memcmp), with the same result: toEqual already treats a Buffer and a Uint8Array of the
 * same bytes as equal, and toStrictEqual still checks the classes apart from this.
 */
import { expect } from 'vitest';

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

expect.addEqualityTesters([
  function sameBytes(a: unknown, b: unknown): boolean | undefined {
    if (!(a instanceof Uint8Array) || !(b instanceof Uint8Array)) return undefined;
    return asBuffer(a).equals(asBuffer(b));
  },
]);
