/**
 * age v1 units: encodings, keys and key files, fingerprints, the header, and the STREAM
 * payload's handling of damage, truncation, trailing data and back-pressure.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bech32Decode,
  bech32Encode,
  CHUNK_SIZE,
  decodeBase64,
  decryptStream,
  encodeBase64,
  encryptStream,
  ENCRYPTED_CHUNK_SIZE,
  formatIdentityFile,
  generateIdentity,
  identityFingerprint,
  parseHeader,
  parseIdentity,
  parseIdentityFile,
  parseRecipient,
  parseRecipientsFile,
  passphraseFromEnv,
  passphraseFromFile,
  passphraseIdentity,
  passphraseRecipient,
  readHeader,
  recipientFingerprint,
  recipientRecord,
  writeHeader,
  X25519Identity,
} from '../../src/pipeline/age/index.js';
import { AgeError, PipelineError } from '../../src/pipeline/errors.js';
import { collect, dumpLikeBytes, runThrough, settled, streamOf } from '../helpers/pipeline.js';

// From the age spec (c2sp.org/age) and age-keygen's format.
const SPEC_IDENTITY = 'AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX';
const SPEC_RECIPIENT = 'age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'backupctl-age-unit-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function codeOf(error: unknown): string | undefined {
  return error instanceof PipelineError ? error.code : undefined;
}

describe('encodings', () => {
  it('base64: unpadded, and only canonical encodings decode', () => {
    expect(encodeBase64(Buffer.from('ab'))).toBe('YWI');
    expect(decodeBase64('YWI')?.toString()).toBe('ab');
    expect(decodeBase64('YWI=')).toBeNull(); // padding
    expect(decodeBase64('YWJ')).toBeNull(); // non-zero unused bits
    expect(decodeBase64('YW I')).toBeNull();
    expect(decodeBase64('Y')).toBeNull();
    expect(decodeBase64('YW-_')).toBeNull(); // URL alphabet
    expect(decodeBase64('')?.length).toBe(0);
  });

  it('bech32: BIP 173 valid strings decode, invalid ones do not', () => {
    for (const valid of ['A12UEL5L', 'a12uel5l', 'abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw', '?1ezyfcl']) {
      expect(bech32Decode(valid), valid).not.toBeNull();
    }
    for (const invalid of ['pzry9x0s0muk', '1pzry9x0s0muk', 'x1b4n0q5v', 'li1dgmt3', 'A1G7SGD8', '10a06t8', '1qzzfhee', 'A12uEL5L']) {
      expect(bech32Decode(invalid), invalid).toBeNull();
    }
  });

  it('bech32: age keys round-trip; identities are upper case, recipients lower case', () => {
    const { identity, recipient } = generateIdentity();
    const text = identity.encode();
    expect(text).toMatch(/^AGE-SECRET-KEY-1[0-9A-Z]{58}$/);
    expect(recipient.toString()).toMatch(/^age1[0-9a-z]{58}$/);
    expect(parseIdentity(text).recipient.toString()).toBe(recipient.toString());
    expect(bech32Encode('age', recipient.publicKey)).toBe(recipient.toString());
  });
});

describe('keys', () => {
  it("the spec's identity gives the spec's recipient", () => {
    expect(parseIdentity(SPEC_IDENTITY).recipient.toString()).toBe(SPEC_RECIPIENT);
    expect(parseRecipient(SPEC_RECIPIENT).toString()).toBe(SPEC_RECIPIENT);
  });

  it('refuses malformed keys with AGE_KEY_INVALID, never quoting an identity', () => {
    const bad = [SPEC_IDENTITY.toLowerCase(), SPEC_IDENTITY.slice(0, -1) + 'Y', SPEC_RECIPIENT, 'AGE-PLUGIN-YUBIKEY-1QQQ'];
    for (const text of bad) {
      const error = (() => {
        try {
          parseIdentity(text);
        } catch (e) {
          return e;
        }
        return null;
      })();
      expect(codeOf(error), text).toBe('AGE_KEY_INVALID');
      expect((error as Error).message).not.toContain(text.slice(16, 40));
    }
    expect(() => parseRecipient(SPEC_RECIPIENT.toUpperCase())).toThrow(AgeError);
    expect(() => parseRecipient(SPEC_IDENTITY)).toThrow(AgeError);
    expect(() => parseRecipient('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAbc')).toThrow(AgeError);
  });

  it('identity files: one per line, # comments and blank lines ignored; errors name the line, not the key', async () => {
    const a = generateIdentity();
    const b = generateIdentity();
    const file = path.join(dir, 'ids.txt');
    await writeFile(file, `${formatIdentityFile(a.identity)}\n# second\n  ${b.identity.encode()}  \r\n`);
    const { readIdentityFile } = await import('../../src/pipeline/age/index.js');
    const ids = await readIdentityFile(file);
    expect(ids.map((i) => i.recipient.toString())).toEqual([a.recipient.toString(), b.recipient.toString()]);

    const broken = `# comment\n${a.identity.encode()}\nAGE-SECRET-KEY-1NOTAKEY\n`;
    expect(() => parseIdentityFile(broken, 'keys.txt')).toThrow(/line 3 of keys\.txt/);
    expect(() => parseIdentityFile('# only comments\n\n')).toThrow(AgeError);
    expect(() => parseIdentityFile('age-encryption.org/v1\n-> scrypt ...')).toThrow(/age-encrypted/);
    await expect(readIdentityFile(path.join(dir, 'missing.txt'))).rejects.toMatchObject({ code: 'AGE_KEY_INVALID' });
  });

  it('recipients files', () => {
    const a = generateIdentity().recipient.toString();
    const b = generateIdentity().recipient.toString();
    expect(parseRecipientsFile(`# team\n${a}\n\n${b}\n`).map(String)).toEqual([a, b]);
    expect(() => parseRecipientsFile(`${a}\nage1bogus\n`, 'r.txt')).toThrow(/line 2 of r\.txt/);
  });

  it('passphrases come from a file (without its final newline) or the environment, never empty', async () => {
    const file = path.join(dir, 'pass.txt');
    await writeFile(file, 'secret words\n');
    expect((await passphraseFromFile(file)).toString()).toBe('secret words');
    await writeFile(file, 'crlf\r\n');
    expect((await passphraseFromFile(file)).toString()).toBe('crlf');
    await writeFile(file, '\n');
    await expect(passphraseFromFile(file)).rejects.toMatchObject({ code: 'AGE_KEY_INVALID' });
    expect(passphraseFromEnv('PASS', { PASS: 'from env' }).toString()).toBe('from env');
    expect(() => passphraseFromEnv('PASS', {})).toThrow(AgeError);
    expect(() => passphraseRecipient('')).toThrow(AgeError);
  });

  it('fingerprints: x25519:sha256:<16 hex>, stable, the same for an identity and its recipient; none for a passphrase', () => {
    const fp = recipientFingerprint(SPEC_RECIPIENT);
    expect(fp).toMatch(/^x25519:sha256:[0-9a-f]{16}$/);
    expect(recipientFingerprint(parseRecipient(SPEC_RECIPIENT))).toBe(fp);
    expect(identityFingerprint(parseIdentity(SPEC_IDENTITY))).toBe(fp);
    expect(recipientFingerprint(generateIdentity().recipient)).not.toBe(fp);
    expect(recipientFingerprint(passphraseRecipient('x'))).toBeNull();
    expect(recipientRecord(parseRecipient(SPEC_RECIPIENT))).toEqual({ scheme: 'x25519', fingerprint: fp });
    expect(recipientRecord(passphraseRecipient('x', { workFactor: 15 }))).toEqual({ scheme: 'scrypt', workFactor: 15 });
    // The record is JSON with no key material in it.
    expect(JSON.stringify(recipientRecord(parseRecipient(SPEC_RECIPIENT)))).not.toContain(SPEC_RECIPIENT.slice(4, 20));
  });

  it('an identity does not show its key when printed or serialized', () => {
    const identity = parseIdentity(SPEC_IDENTITY);
    expect(JSON.stringify(identity)).not.toContain('GFPYYSJZ');
    expect(String(identity)).not.toContain('GFPYYSJZ');
    const pass = passphraseIdentity('hunter2 is my passphrase');
    expect(JSON.stringify(pass)).not.toContain('hunter2');
  });
});

describe('header', () => {
  it('writes stanza bodies wrapped at 64 columns, ending with a shorter (maybe empty) line', async () => {
    const fileKey = Buffer.alloc(16, 7);
    const stanzas = [
      { type: 'test', args: ['a'], body: Buffer.alloc(48, 1) }, // 64 base64 chars: a full line, then an empty one
      { type: 'test', args: [], body: Buffer.alloc(0) },
      { type: 'X25519', args: [encodeBase64(Buffer.alloc(32, 2))], body: Buffer.alloc(32, 3) },
    ];
    const bytes = writeHeader(stanzas, fileKey);
    const lines = bytes.toString('latin1').split('\n');
    expect(lines[0]).toBe('age-encryption.org/v1');
    expect(lines[1]).toBe('-> test a');
    expect(lines[2]).toHaveLength(64);
    expect(lines[3]).toBe('');
    expect(lines[4]).toBe('-> test');
    expect(lines[5]).toBe('');
    const parsed = parseHeader(Buffer.concat([bytes, Buffer.from('payload')]));
    expect(parsed?.length).toBe(bytes.length);
    expect(parsed?.header.stanzas).toEqual(stanzas);
    expect(writeHeader(parsed?.header.stanzas ?? [], fileKey).equals(bytes)).toBe(true);
  });

  it('waits for more bytes on an incomplete header, refuses non-age input at once', () => {
    const { recipient } = generateIdentity();
    const header = writeHeader([{ type: 'X25519', args: [encodeBase64(recipient.publicKey)], body: Buffer.alloc(32) }], Buffer.alloc(16));
    for (let cut = 0; cut < header.length; cut += 7) expect(parseHeader(header.subarray(0, cut))).toBeNull();
    expect(() => parseHeader(Buffer.from('PGDMP\x01\x0e'))).toThrow(expect.objectContaining({ code: 'AGE_HEADER_INVALID' }));
    expect(() => parseHeader(Buffer.from('age-encryption.org/v2\n'))).toThrow(expect.objectContaining({ code: 'AGE_UNSUPPORTED_VERSION' }));
    expect(() => readHeader(header.subarray(0, header.length - 1))).toThrow(expect.objectContaining({ code: 'AGE_HEADER_INVALID' }));
  });

  it('reads the header from a stream and leaves the stream at the payload', async () => {
    const { identity, recipient } = generateIdentity();
    const file = await collect(streamOf(dumpLikeBytes(100_000), 10_000).pipe(encryptStream([recipient])));
    const { header, payloadOffset, payload } = await readHeader(streamOf(file, 13));
    expect(header.bytes.equals(file.subarray(0, payloadOffset))).toBe(true);
    expect((await collect(payload)).equals(file.subarray(payloadOffset))).toBe(true);
    await expect(readHeader(streamOf(file.subarray(0, payloadOffset - 2), 5))).rejects.toMatchObject({ code: 'AGE_HEADER_INVALID' });
    expect(identity.kind).toBe('x25519');
  });
});

describe('STREAM payload', () => {
  const { identity, recipient } = generateIdentity();

  async function encrypt(plaintext: Buffer, pieceSize = 65536): Promise<Buffer> {
    return collect(streamOf(plaintext, pieceSize).pipe(encryptStream([recipient])));
  }

  it.each([0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, 5 * CHUNK_SIZE + 12345])(
    'round-trips %i bytes whatever the input piece sizes',
    async (size) => {
      const plaintext = dumpLikeBytes(size, size + 3);
      for (const piece of [1000, 65536, 200_000]) {
        const file = await encrypt(plaintext, piece);
        const { payloadOffset } = readHeader(file);
        const chunks = Math.max(1, Math.ceil(size / CHUNK_SIZE));
        expect(file.length - payloadOffset).toBe(16 + size + chunks * 16);
        for (const readPiece of [777, ENCRYPTED_CHUNK_SIZE, 1 << 20]) {
          const { output, error } = await runThrough(streamOf(file, readPiece), decryptStream([identity]));
          expect(error).toBeNull();
          expect(output.equals(plaintext)).toBe(true);
        }
      }
    },
  );

  it('a flipped byte anywhere in the payload is AGE_PAYLOAD_DAMAGED; nothing unauthenticated is released', async () => {
    const plaintext = dumpLikeBytes(3 * CHUNK_SIZE + 100, 21);
    const file = await encrypt(plaintext);
    const { payloadOffset } = readHeader(file);
    const start = payloadOffset + 16;
    for (const at of [start, start + 5000, start + ENCRYPTED_CHUNK_SIZE - 1, start + ENCRYPTED_CHUNK_SIZE + 3, file.length - 1]) {
      const damaged = Buffer.from(file);
      damaged[at] = (damaged[at] as number) ^ 0x01;
      const { output, error } = await runThrough(damaged, decryptStream([identity]));
      expect(codeOf(error), `byte ${at}`).toBe('AGE_PAYLOAD_DAMAGED');
      const chunk = Math.floor((at - start) / ENCRYPTED_CHUNK_SIZE);
      expect(output.length).toBe(chunk * CHUNK_SIZE);
      expect(output.equals(plaintext.subarray(0, output.length))).toBe(true);
    }
    // In the nonce: every chunk key changes.
    const badNonce = Buffer.from(file);
    badNonce[payloadOffset] = (badNonce[payloadOffset] as number) ^ 0x80;
    expect(codeOf((await runThrough(badNonce, decryptStream([identity]))).error)).toBe('AGE_PAYLOAD_DAMAGED');
    // In the header: the MAC no longer matches (or the stanza no longer opens).
    const badHeader = Buffer.from(file);
    badHeader[payloadOffset - 10] = badHeader[payloadOffset - 10] === 0x41 ? 0x42 : 0x41;
    expect(['AGE_HEADER_MAC', 'AGE_HEADER_INVALID']).toContain(codeOf((await runThrough(badHeader, decryptStream([identity]))).error));
  });

  it('a truncated file is detected at every length', async () => {
    const plaintext = dumpLikeBytes(2 * CHUNK_SIZE + 10, 23);
    const file = await encrypt(plaintext);
    const { payloadOffset } = readHeader(file);
    const cuts = [0, 10, payloadOffset - 1, payloadOffset, payloadOffset + 15, payloadOffset + 16, payloadOffset + 16 + ENCRYPTED_CHUNK_SIZE, payloadOffset + 16 + 2 * ENCRYPTED_CHUNK_SIZE, file.length - 1];
    for (const cut of cuts) {
      const { error } = await runThrough(file.subarray(0, cut), decryptStream([identity]));
      const expected = cut < payloadOffset + 16 ? 'AGE_HEADER_INVALID' : cut === file.length - 1 ? 'AGE_PAYLOAD_DAMAGED' : 'AGE_TRUNCATED';
      expect(codeOf(error), `cut at ${cut}`).toBe(expected);
    }
  });

  it('data after the final chunk is AGE_TRAILING_DATA (or damage when it joins a short final chunk)', async () => {
    const full = await encrypt(dumpLikeBytes(CHUNK_SIZE, 25));
    expect(codeOf((await runThrough(Buffer.concat([full, Buffer.from('x')]), decryptStream([identity]))).error)).toBe('AGE_TRAILING_DATA');
    const twice = await encrypt(dumpLikeBytes(CHUNK_SIZE, 27));
    const { payloadOffset } = readHeader(twice);
    expect(codeOf((await runThrough(Buffer.concat([twice, twice.subarray(payloadOffset + 16)]), decryptStream([identity]))).error)).toBe('AGE_TRAILING_DATA');
    const short = await encrypt(Buffer.from('short'));
    expect(codeOf((await runThrough(Buffer.concat([short, Buffer.from('tail')]), decryptStream([identity]))).error)).toBe('AGE_PAYLOAD_DAMAGED');
  });

  it('the wrong identity, no identity, a passphrase file without the passphrase', async () => {
    const file = await encrypt(Buffer.from('secret'));
    expect(codeOf((await runThrough(file, decryptStream([generateIdentity().identity]))).error)).toBe('AGE_NO_IDENTITY');
    expect(codeOf((await runThrough(file, decryptStream([]))).error)).toBe('AGE_NO_IDENTITY');
    expect(codeOf((await runThrough(file, decryptStream([passphraseIdentity('x')]))).error)).toBe('AGE_NO_IDENTITY');
    const passFile = await collect(streamOf(Buffer.from('secret')).pipe(encryptStream([passphraseRecipient('pw', { workFactor: 10 })])));
    const noPass = (await runThrough(passFile, decryptStream([identity]))).error;
    expect(codeOf(noPass)).toBe('AGE_NO_IDENTITY');
    expect((noPass as PipelineError).hint).toMatch(/passphrase/);
    expect((await runThrough(passFile, decryptStream([passphraseIdentity('pw')]))).output.toString()).toBe('secret');
  });

  it('refuses to encrypt to a passphrase mixed with other recipients, or to nobody', async () => {
    const mixed = await runThrough(Buffer.from('x'), encryptStream([recipient, passphraseRecipient('pw', { workFactor: 10 })]));
    expect(codeOf(mixed.error)).toBe('AGE_KEY_INVALID');
    expect(codeOf((await runThrough(Buffer.from('x'), encryptStream([]))).error)).toBe('AGE_KEY_INVALID');
  });

  it('every file has a fresh file key and nonce', async () => {
    const a = await encrypt(Buffer.from('same'));
    const b = await encrypt(Buffer.from('same'));
    expect(a.equals(b)).toBe(false);
    expect(a.subarray(readHeader(a).payloadOffset).equals(b.subarray(readHeader(b).payloadOffset))).toBe(false);
  });

  it('honours back-pressure: with a stalled reader, encryption and decryption stop pulling input', async () => {
    for (const chain of [() => [encryptStream([recipient])], () => [encryptStream([recipient]), decryptStream([identity])]]) {
      let produced = 0;
      const input = new Readable({
        read() {
          produced += 65536;
          this.push(Buffer.alloc(65536, 1));
        },
      });
      let writes = 0;
      const stalled = new Writable({
        highWaterMark: 1,
        write() {
          writes += 1; // never calls back
        },
      });
      const streams = chain();
      let tail: Readable = input;
      for (const stream of streams) tail = tail.pipe(stream);
      tail.pipe(stalled);
      // A few buffers per stage, nowhere near what an unbounded stream would take.
      const stalledAt = await settled(() => produced);
      expect(stalledAt).toBeLessThan(4 * 1024 * 1024);
      expect(writes).toBe(1);
      for (const stream of [input, ...streams, stalled]) stream.destroy();
    }
  });

  it('chunk counts: the file size is exact (header + nonce + chunks with tags)', async () => {
    const id = X25519Identity.generate();
    const file = await collect(streamOf(Buffer.alloc(10 * CHUNK_SIZE)).pipe(encryptStream([id.recipient])));
    expect(file.length - readHeader(file).payloadOffset).toBe(16 + 10 * ENCRYPTED_CHUNK_SIZE);
  });
});
