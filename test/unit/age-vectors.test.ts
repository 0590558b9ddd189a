/**
 * The age test vectors of C2SP/CCTV (test/fixtures/age-vectors, see its LICENSE): every
 * vendored vector is decrypted, and the outcome must be the one the vector expects, with
 * the plaintext released before any failure matching the vector's payload hash.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decryptStream, parseHeader, PassphraseIdentity, writeHeader, X25519Identity, type Identity } from '../../src/pipeline/age/index.js';
import { PipelineError } from '../../src/pipeline/errors.js';

const DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'age-vectors');

interface Vector {
  name: string;
  expect: string;
  payload: string | undefined;
  fileKey: string | undefined;
  identities: string[];
  passphrases: string[];
  file: Buffer;
}

function loadVector(name: string): Vector {
  const raw = readFileSync(path.join(DIR, name));
  const split = raw.indexOf('\n\n');
  const fields = raw.subarray(0, split).toString('utf8').split('\n');
  const values = (key: string) => fields.filter((l) => l.startsWith(`${key}: `)).map((l) => l.slice(key.length + 2));
  const body = raw.subarray(split + 2);
  return {
    name,
    expect: values('expect')[0] ?? '?',
    payload: values('payload')[0],
    fileKey: values('file key')[0],
    identities: values('identity'),
    passphrases: values('passphrase'),
    file: values('compressed')[0] === 'zlib' ? inflateSync(body) : body,
  };
}

/** The class of failure each error code stands for, in the vectors' terms. */
const CLASS_OF: Record<string, string> = {
  AGE_HEADER_INVALID: 'header failure',
  AGE_UNSUPPORTED_VERSION: 'header failure',
  AGE_WORK_FACTOR_TOO_HIGH: 'header failure',
  AGE_NO_IDENTITY: 'no match',
  AGE_BAD_PASSPHRASE: 'no match',
  AGE_HEADER_MAC: 'HMAC failure',
  AGE_PAYLOAD_DAMAGED: 'payload failure',
  AGE_TRUNCATED: 'payload failure',
  AGE_TRAILING_DATA: 'payload failure',
};

/** Feeds `file` in odd-sized pieces (so chunk and header boundaries fall anywhere). */
async function decrypt(file: Buffer, identities: Identity[]): Promise<{ released: Buffer; error: unknown }> {
  const released: Buffer[] = [];
  const pieces: Buffer[] = [];
  for (let i = 0; i < file.length; i += 4093) pieces.push(file.subarray(i, i + 4093));
  let error: unknown = null;
  try {
    await pipeline(
      Readable.from(pieces),
      decryptStream(identities),
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          released.push(chunk);
          callback();
        },
      }),
    );
  } catch (e) {
    error = e;
  }
  return { released: Buffer.concat(released), error };
}

const names = readdirSync(DIR).filter((n) => n !== 'LICENSE').sort();

describe('age test vectors (C2SP/CCTV)', () => {
  it('are all here', () => {
    expect(names.length).toBe(92);
  });

  for (const name of names) {
    it(name, async () => {
      const v = loadVector(name);
      const identities: Identity[] = [...v.identities.map((text) => X25519Identity.parse(text)), ...v.passphrases.map((p) => new PassphraseIdentity(p))];
      const { released, error } = await decrypt(v.file, identities);
      if (error !== null && !(error instanceof PipelineError)) throw error;
      const outcome = error === null ? 'success' : (CLASS_OF[error.code] ?? error.code);
      expect(outcome, error instanceof Error ? error.message : 'no error').toBe(v.expect);
      if (v.expect === 'success' || v.expect === 'payload failure') {
        expect(createHash('sha256').update(released).digest('hex')).toBe(v.payload);
      } else {
        expect(released.length).toBe(0);
      }
      // A header that parsed and whose MAC is right is rewritten byte for byte from its stanzas.
      if (v.expect === 'success' || v.expect === 'payload failure' || v.expect === 'no match') {
        const parsed = parseHeader(v.file);
        expect(parsed).not.toBeNull();
        if (parsed && v.fileKey) {
          expect(writeHeader(parsed.header.stanzas, Buffer.from(v.fileKey, 'hex')).equals(parsed.header.bytes)).toBe(true);
        }
      }
    });
  }
});
