import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';

export interface Digest {
  bytes: number;
  sha256: string;
}

/**
 * A pass-through stage that hashes and counts what flows through it. Put one where the
 * bytes are the ones you want to vouch for: right before storage for the stored digest,
 * right after pg_dump for the plaintext digest when later stages change the bytes.
 */
export class DigestStream extends Transform {
  private readonly hash = createHash('sha256');
  private count = 0;
  private result: Digest | null = null;

  /**
   * `onEnd`, when given, runs once the digest is final and before the stream ends: an error
   * it returns fails the stream instead (so a consumer never sees a clean end).
   */
  constructor(
    private readonly onProgress?: (bytes: number) => void,
    private readonly onEnd?: (digest: Digest) => Error | null,
  ) {
    super({ highWaterMark: 256 * 1024 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.count += chunk.length;
    this.onProgress?.(this.count);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.result = { bytes: this.count, sha256: this.hash.digest('hex') };
    callback(this.onEnd?.(this.result) ?? null);
  }

  get bytes(): number {
    return this.count;
  }

  /** The final digest; only valid once the stream has ended. */
  digest(): Digest {
    if (!this.result) throw new Error('digest read before the stream ended');
    return this.result;
  }
}

/** Hashes a whole stream (used by verify to re-hash a stored artifact). */
export async function digestOf(source: AsyncIterable<Buffer>): Promise<Digest> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of source) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { bytes, sha256: hash.digest('hex') };
}

/**
 * sha256 and size of an open file, read with positioned reads from its start (so another
 * reader of the same file is not disturbed) through one reused 1 MiB buffer: no garbage
 * per chunk, so memory stays flat however large the file.
 */
export async function hashHandle(handle: FileHandle, signal?: AbortSignal): Promise<Digest> {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(1024 * 1024);
  let bytes = 0;
  for (;;) {
    signal?.throwIfAborted();
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, bytes);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    bytes += bytesRead;
  }
  return { bytes, sha256: hash.digest('hex') };
}

/** hashHandle of the file at `path`. */
export async function hashFile(path: string, signal?: AbortSignal): Promise<Digest> {
  const handle = await open(path, 'r');
  try {
    return await hashHandle(handle, signal);
  } finally {
    await handle.close();
  }
}
