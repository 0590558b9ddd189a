import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { resumableDownload } from '../../src/storage/resilience.js';
import { PermissionError, TransientError } from '../../src/storage/storage.js';

const policy = { deadlineMs: 2_000, baseDelayMs: 1, maxDelayMs: 5 };

/** A source of `data` from `from` that fails with `error` after `failAfter` bytes (never, when undefined). */
function source(data: Buffer, from: number, failAfter?: number, error: Error = new TransientError('reset')): Readable {
  const part = data.subarray(from, failAfter === undefined ? undefined : from + failAfter);
  return Readable.from(
    (async function* () {
      for (let at = 0; at < part.length; at += 1000) yield part.subarray(at, at + 1000);
      if (failAfter !== undefined) throw error;
    })(),
    { objectMode: false },
  );
}

async function readAllOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe('resumableDownload', () => {
  const data = Buffer.from(Array.from({ length: 25_000 }, (_, i) => i % 251));

  it('asks for the rest from the byte reached after each transient failure: the bytes come out whole, once', async () => {
    const asked: number[] = [];
    const stream = resumableDownload(source(data, 0, 7_000), async (delivered) => {
      asked.push(delivered);
      return asked.length === 1 ? source(data, delivered, 5_000) : source(data, delivered);
    }, { policy });
    expect((await readAllOf(stream)).equals(data)).toBe(true);
    expect(asked).toEqual([7_000, 12_000]);
  });

  it('a failure that is not transient fails at once, and so does one from the reopening', async () => {
    let reopened = 0;
    const denied = resumableDownload(source(data, 0, 3_000, new PermissionError('denied')), async (delivered) => {
      reopened++;
      return source(data, delivered);
    }, { policy });
    await expect(readAllOf(denied)).rejects.toBeInstanceOf(PermissionError);
    expect(reopened).toBe(0);
    const replaced = resumableDownload(source(data, 0, 3_000), async () => {
      throw new PermissionError('replaced');
    }, { policy });
    await expect(readAllOf(replaced)).rejects.toBeInstanceOf(PermissionError);
  });

  it('no byte for the retry deadline: the last transient error, after a bounded time', async () => {
    const started = Date.now();
    let reopened = 0;
    const stream = resumableDownload(source(data, 0, 1_000), async () => {
      reopened++;
      throw new TransientError('still down');
    }, { policy: { deadlineMs: 300, baseDelayMs: 20, maxDelayMs: 50 } });
    const error = await readAllOf(stream).catch((failure: unknown) => failure);
    expect(error).toBeInstanceOf(TransientError);
    expect((error as Error).message).toBe('still down');
    expect(reopened).toBeGreaterThan(1);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('the caller aborting during the backoff ends the stream with an AbortError, and nothing is reopened after', async () => {
    const controller = new AbortController();
    let reopened = 0;
    const stream = resumableDownload(source(data, 0, 1_000), async (delivered) => {
      reopened++;
      return source(data, delivered);
    }, { policy: { deadlineMs: 60_000, baseDelayMs: 10_000, maxDelayMs: 10_000 }, signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    const error = await readAllOf(stream).catch((failure: unknown) => failure);
    expect((error as Error).name).toBe('AbortError');
    expect(reopened).toBe(0);
  });
});
