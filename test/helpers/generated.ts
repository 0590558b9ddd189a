/** Test data for the storage tests, generated as it is read (no vitest here: scripts use it too). */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';

const MIB = 1024 * 1024;

/** Deterministic incompressible bytes, generated as they are read (nothing on disk, one chunk in memory). */
export function generatedStream(bytes: number, seed: number, chunkSize = MIB): { stream: Readable; sha256: () => string } {
  const hash = createHash('sha256');
  let state = seed >>> 0 || 1;
  let sent = 0;
  let digest: string | null = null;
  const stream = new Readable({
    read() {
      if (sent >= bytes) {
        digest ??= hash.digest('hex');
        this.push(null);
        return;
      }
      const size = Math.min(chunkSize, bytes - sent);
      const chunk = Buffer.allocUnsafe(size);
      const words = Math.floor(size / 4);
      const view = new Uint32Array(chunk.buffer, chunk.byteOffset, words);
      for (let i = 0; i < words; i++) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        view[i] = state >>> 0;
      }
      for (let i = words * 4; i < size; i++) chunk[i] = i & 0xff;
      hash.update(chunk);
      sent += size;
      this.push(chunk);
    },
  });
  return {
    stream,
    sha256: () => {
      if (digest === null) throw new Error('the stream was not read to the end');
      return digest;
    },
  };
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

