/**
 * Rekeying: a new header for an existing age file, the payload untouched. The file key is
 * unwrapped with an identity (and the old header's MAC checked), wrapped again for the new
 * recipients, and a new header with a new MAC is written; the bytes after the old header
 * (payload nonce and STREAM chunks) stay byte-for-byte the same.
 *
 * The file key itself does not change: whoever kept the old file, or its file key, can
 * still read the old copy. Rekeying removes access from a dropped identity for the new
 * copy only.
 */
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { AgeError } from '../errors.js';
import { headerFor, unwrapFileKey } from './file-key.js';
import { parseHeader, type AgeHeader } from './header.js';
import type { RecipientRecord } from './keys.js';
import type { Identity, Recipient } from './stanza.js';

export interface HeaderRead {
  header: AgeHeader;
  /** Byte offset of the payload (its 16-byte nonce) in the file: the header's length. */
  payloadOffset: number;
}

function truncated(): AgeError {
  return new AgeError('AGE_HEADER_INVALID', 'invalid age header: the input ends inside the header');
}

/**
 * Reads just the header. From a Buffer: synchronously. From a (paused) Readable: consumes
 * the header's bytes only and leaves the stream at the payload (`payload` is that stream).
 */
export function readHeader(source: Buffer): HeaderRead;
export function readHeader(source: Readable): Promise<HeaderRead & { payload: Readable }>;
export function readHeader(source: Buffer | Readable): HeaderRead | Promise<HeaderRead & { payload: Readable }> {
  if (Buffer.isBuffer(source)) {
    const parsed = parseHeader(source);
    if (!parsed) throw truncated();
    return { header: parsed.header, payloadOffset: parsed.length };
  }
  return readHeaderFromStream(source);
}

function nextEvent(stream: Readable): Promise<'readable' | 'end'> {
  return new Promise((resolve, reject) => {
    const done = (result: 'readable' | 'end' | Error) => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const onReadable = () => done('readable');
    const onEnd = () => done('end');
    const onError = (error: Error) => done(error);
    stream.on('readable', onReadable);
    stream.on('end', onEnd);
    stream.on('error', onError);
  });
}

async function readHeaderFromStream(stream: Readable): Promise<HeaderRead & { payload: Readable }> {
  let buffered: Buffer = Buffer.alloc(0);
  for (;;) {
    const chunk = stream.read() as Buffer | null;
    if (chunk === null) {
      if (stream.readableEnded) throw truncated();
      if ((await nextEvent(stream)) === 'end') throw truncated();
      continue;
    }
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    const parsed = parseHeader(buffered);
    if (parsed) {
      const rest = buffered.subarray(parsed.length);
      if (rest.length > 0) stream.unshift(rest);
      const header: AgeHeader = { ...parsed.header, macInput: Buffer.from(parsed.header.macInput), bytes: Buffer.from(parsed.header.bytes) };
      return { header, payloadOffset: parsed.length, payload: stream };
    }
  }
}

/**
 * A new header that wraps `header`'s file key (unwrapped with one of `identities`, MAC
 * verified) for `recipients`, with a new MAC. Put it in front of the old payload bytes.
 * `recorded`: what the sidecar records of the old header's recipients (see unwrapFileKey).
 */
export async function rewrapHeader(header: AgeHeader, identities: readonly Identity[], recipients: readonly Recipient[], recorded?: readonly RecipientRecord[]): Promise<Buffer> {
  const fileKey = await unwrapFileKey(header, identities, recorded);
  return headerFor(recipients, fileKey);
}

export interface Rekeyed {
  /** The new file: the new header, then the old payload bytes unchanged. */
  output: Readable;
  header: Buffer;
  /** Where the payload started in the old file and starts in the new one. */
  oldPayloadOffset: number;
  newPayloadOffset: number;
}

/** Rekeys a whole file as a stream: `output` is the new file. */
export async function rekey(source: Readable, identities: readonly Identity[], recipients: readonly Recipient[]): Promise<Rekeyed> {
  const { header, payloadOffset, payload } = await readHeader(source);
  const newHeader = await rewrapHeader(header, identities, recipients);
  let first = true;
  const prefix = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      if (first) {
        first = false;
        this.push(newHeader);
      }
      callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      if (first) this.push(newHeader);
      callback();
    },
  });
  pipeline(payload, prefix, () => undefined);
  return { output: prefix, header: newHeader, oldPayloadOffset: payloadOffset, newPayloadOffset: newHeader.length };
}
