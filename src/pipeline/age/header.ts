/**
 * The age v1 header: parsing (strict and canonical, per c2sp.org/age), writing, and its MAC.
 *
 *   age-encryption.org/v1
 *   -> X25519 <base64 share>
 *   <base64 body, 64 columns per line, ending with a line shorter than 64>
 *   --- <base64 HMAC-SHA-256>
 *
 * The payload (16-byte nonce, then STREAM chunks) starts right after the MAC line's LF.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { AgeError } from '../errors.js';
import { decodeBase64, encodeBase64, isBase64Line } from './base64.js';
import { hkdf } from './primitives.js';
import type { Stanza } from './stanza.js';

const VERSION_LINE = 'age-encryption.org/v1';
const VERSION_PREFIX = 'age-encryption.org/';
const LF = 0x0a;
const COLUMNS = 64;
/** A header larger than this is refused (about 10,000 X25519 recipients). */
export const MAX_HEADER_BYTES = 1024 * 1024;

export interface AgeHeader {
  readonly stanzas: readonly Stanza[];
  readonly mac: Buffer;
  /** The header's bytes from the version line up to and including `---`: what the MAC covers. */
  readonly macInput: Buffer;
  /** The whole header, MAC line and its LF included. */
  readonly bytes: Buffer;
}

function invalid(message: string): AgeError {
  return new AgeError('AGE_HEADER_INVALID', `invalid age header: ${message}`);
}

function isVchars(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

/**
 * Parses the header at the start of `buffer`. Returns null when `buffer` ends before the
 * header does (feed more bytes; at end of input that is AGE_HEADER_INVALID); throws an
 * AgeError as soon as the bytes seen cannot start a valid v1 header.
 */
export function parseHeader(buffer: Buffer): { header: AgeHeader; length: number } | null {
  // Refuse non-age input at once, without waiting for a line feed that may never come.
  const seen = buffer.subarray(0, VERSION_PREFIX.length).toString('latin1');
  if (!VERSION_PREFIX.startsWith(seen)) throw invalid('not an age file (no "age-encryption.org/" version line)');

  let pos = 0;
  const nextLine = (): string | null => {
    const end = buffer.indexOf(LF, pos);
    if (end === -1) {
      if (buffer.length > MAX_HEADER_BYTES) throw invalid(`larger than ${MAX_HEADER_BYTES} bytes`);
      return null;
    }
    const line = buffer.subarray(pos, end).toString('latin1');
    pos = end + 1;
    return line;
  };

  const version = nextLine();
  if (version === null) return null;
  if (version !== VERSION_LINE) {
    const rest = version.slice(VERSION_PREFIX.length);
    if (version.startsWith(VERSION_PREFIX) && isVchars(rest)) {
      throw new AgeError('AGE_UNSUPPORTED_VERSION', `unsupported age format version ${JSON.stringify(rest.slice(0, 40))} (only v1 is known)`);
    }
    throw invalid('malformed version line');
  }

  const stanzas: Stanza[] = [];
  for (;;) {
    const lineStart = pos;
    const line = nextLine();
    if (line === null) return null;
    if (line.startsWith('---')) {
      if (!line.startsWith('--- ')) throw invalid('malformed MAC line');
      const mac = decodeBase64(line.slice(4));
      if (!mac || mac.length !== 32) throw invalid('the MAC is not a canonical base64 32-byte value');
      if (stanzas.length === 0) throw invalid('no recipient stanzas');
      return {
        header: {
          stanzas,
          mac,
          macInput: buffer.subarray(0, lineStart + 3),
          bytes: buffer.subarray(0, pos),
        },
        length: pos,
      };
    }
    if (!line.startsWith('-> ')) throw invalid('expected a stanza ("-> ") or the MAC line ("--- ")');
    const args = line.slice(3).split(' ');
    if (!args.every(isVchars)) throw invalid('a stanza argument is empty or has characters outside printable ASCII');
    let body = '';
    for (;;) {
      const bodyLine = nextLine();
      if (bodyLine === null) return null;
      if (bodyLine.length > COLUMNS || !isBase64Line(bodyLine)) throw invalid('a stanza body line is not base64 of at most 64 columns');
      body += bodyLine;
      if (bodyLine.length < COLUMNS) break;
    }
    const decoded = decodeBase64(body);
    if (!decoded) throw invalid('a stanza body is not canonical base64');
    stanzas.push({ type: args[0] as string, args: args.slice(1), body: decoded });
  }
}

/** HMAC key = HKDF-SHA-256(ikm = file key, salt = empty, info = "header"). */
export function headerMac(fileKey: Buffer, macInput: Buffer): Buffer {
  return createHmac('sha256', hkdf(fileKey, Buffer.alloc(0), 'header')).update(macInput).digest();
}

/** Throws AGE_HEADER_MAC unless the header's MAC is right for `fileKey`. */
export function verifyHeaderMac(header: AgeHeader, fileKey: Buffer): void {
  if (!timingSafeEqual(headerMac(fileKey, header.macInput), header.mac)) {
    throw new AgeError('AGE_HEADER_MAC', 'the age header MAC does not match: the header was changed or damaged');
  }
}

/** The header for `stanzas`, with its MAC and the final LF. */
export function writeHeader(stanzas: readonly Stanza[], fileKey: Buffer): Buffer {
  let text = `${VERSION_LINE}\n`;
  for (const stanza of stanzas) {
    const args = [stanza.type, ...stanza.args];
    if (!args.every(isVchars)) throw new RangeError('a stanza argument must be non-empty printable ASCII');
    text += `-> ${args.join(' ')}\n`;
    const body = encodeBase64(stanza.body);
    // Full 64-column lines, then a shorter (possibly empty) final line.
    for (let i = 0; i + COLUMNS <= body.length; i += COLUMNS) text += `${body.slice(i, i + COLUMNS)}\n`;
    text += `${body.slice(body.length - (body.length % COLUMNS))}\n`;
  }
  text += '---';
  const macInput = Buffer.from(text, 'latin1');
  return Buffer.concat([macInput, Buffer.from(` ${encodeBase64(headerMac(fileKey, macInput))}\n`, 'latin1')]);
}
