/**
 * Interoperability with the standard `age` tool (Debian's age 1.1.1 at /usr/bin/age):
 * what we encrypt, age decrypts byte for byte, and the other way round; X25519 with one or
 * several recipients, recipients files, passphrases (age reads those from a terminal only:
 * driven through a pty), and rekeyed files.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decryptStream,
  encryptStream,
  formatIdentityFile,
  generateIdentity,
  parseIdentityFile,
  passphraseIdentity,
  passphraseRecipient,
  readHeader,
  readIdentityFile,
  rekey,
  type X25519Identity,
} from '../../src/pipeline/age/index.js';
import { PipelineError } from '../../src/pipeline/errors.js';
import { collect, dumpLikeBytes, run, runThrough, runWithPassphrase, streamOf } from '../helpers/pipeline.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'backupctl-age-interop-'));
  const version = await run('age', ['--version']);
  expect(version.stdout.toString().trim()).toBe('1.1.1');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function identityFile(name: string, identity: X25519Identity): Promise<string> {
  const file = path.join(dir, `${name}.key`);
  await writeFile(file, formatIdentityFile(identity), { mode: 0o600 });
  return file;
}

/** A key pair made by age-keygen: the file, and our parse of it. */
async function ageKeygen(name: string): Promise<{ file: string; identity: X25519Identity; recipient: string }> {
  const file = path.join(dir, `${name}.agekey`);
  const made = await run('age-keygen', ['-o', file]);
  expect(made.code).toBe(0);
  const [identity] = await readIdentityFile(file);
  const recipient = (await run('age-keygen', ['-y', file])).stdout.toString().trim();
  expect(identity?.recipient.toString()).toBe(recipient);
  return { file, identity: identity as X25519Identity, recipient };
}

async function encryptOurs(plaintext: Buffer, recipients: Parameters<typeof encryptStream>[0]): Promise<Buffer> {
  return collect(streamOf(plaintext).pipe(encryptStream(recipients)));
}

async function decryptOurs(file: Buffer, identities: Parameters<typeof decryptStream>[0]): Promise<Buffer> {
  const { output, error } = await runThrough(file, decryptStream(identities));
  if (error) throw error;
  return output;
}

const SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536 + 5, 1_000_003];

describe('ours -> age', () => {
  it.each(SIZES)('age -d -i decrypts %i bytes encrypted by us, byte for byte', async (size) => {
    const { identity, recipient } = generateIdentity();
    const key = await identityFile(`ours-${size}`, identity);
    const plaintext = dumpLikeBytes(size, size + 1);
    const encrypted = path.join(dir, `ours-${size}.age`);
    await writeFile(encrypted, await encryptOurs(plaintext, [recipient]));
    const out = await run('age', ['-d', '-i', key, encrypted]);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout.equals(plaintext)).toBe(true);
  });

  it('several recipients: each one identity opens it with age', async () => {
    const pairs = [generateIdentity(), generateIdentity(), generateIdentity()];
    const plaintext = dumpLikeBytes(300_000, 7);
    const encrypted = path.join(dir, 'multi.age');
    await writeFile(encrypted, await encryptOurs(plaintext, pairs.map((p) => p.recipient)));
    for (const [i, pair] of pairs.entries()) {
      const out = await run('age', ['-d', '-i', await identityFile(`multi-${i}`, pair.identity), encrypted]);
      expect(out.code).toBe(0);
      expect(out.stdout.equals(plaintext)).toBe(true);
    }
    const stranger = await run('age', ['-d', '-i', await identityFile('stranger', generateIdentity().identity), encrypted]);
    expect(stranger.code).not.toBe(0);
  });

  it('to an age-keygen key', async () => {
    const key = await ageKeygen('keygen-a');
    const plaintext = dumpLikeBytes(100_000, 3);
    const encrypted = path.join(dir, 'to-keygen.age');
    await writeFile(encrypted, await encryptOurs(plaintext, [key.identity.recipient]));
    const out = await run('age', ['-d', '-i', key.file, encrypted]);
    expect(out.code).toBe(0);
    expect(out.stdout.equals(plaintext)).toBe(true);
  });

  it('passphrase: age -d (passphrase typed on a terminal) decrypts ours', async () => {
    const plaintext = dumpLikeBytes(200_000, 11);
    const encrypted = path.join(dir, 'pass-ours.age');
    const decrypted = path.join(dir, 'pass-ours.out');
    await writeFile(encrypted, await encryptOurs(plaintext, [passphraseRecipient('correct horse battery staple', { workFactor: 14 })]));
    const out = await runWithPassphrase(['age', '-d', '-o', decrypted, encrypted], 'correct horse battery staple');
    expect(out.code).toBe(0);
    expect((await readFile(decrypted)).equals(plaintext)).toBe(true);
    const wrong = await runWithPassphrase(['age', '-d', '-o', `${decrypted}.wrong`, encrypted], 'not the passphrase');
    expect(wrong.code).not.toBe(0);
  });
});

describe('age -> ours', () => {
  it.each(SIZES)('we decrypt %i bytes encrypted by age -r, byte for byte', async (size) => {
    const key = await ageKeygen(`theirs-${size}`);
    const plaintext = dumpLikeBytes(size, size + 5);
    const input = path.join(dir, `theirs-${size}.plain`);
    await writeFile(input, plaintext);
    const encrypted = await run('age', ['-r', key.recipient, input]);
    expect(encrypted.code).toBe(0);
    expect((await decryptOurs(encrypted.stdout, [key.identity])).equals(plaintext)).toBe(true);
  });

  it('age -R with a recipients file of two: either identity opens it with us; a third does not', async () => {
    const a = await ageKeygen('recipients-a');
    const b = await ageKeygen('recipients-b');
    const recipientsFile = path.join(dir, 'recipients.txt');
    await writeFile(recipientsFile, `# two recipients\n${a.recipient}\n\n${b.recipient}\n`);
    const plaintext = dumpLikeBytes(150_000, 9);
    const encrypted = await run('age', ['-R', recipientsFile], { input: plaintext });
    expect(encrypted.code).toBe(0);
    expect((await decryptOurs(encrypted.stdout, [a.identity])).equals(plaintext)).toBe(true);
    expect((await decryptOurs(encrypted.stdout, [b.identity])).equals(plaintext)).toBe(true);
    // Several identities: the one that matches is found whatever its place.
    expect((await decryptOurs(encrypted.stdout, [generateIdentity().identity, b.identity])).equals(plaintext)).toBe(true);
    await expect(decryptOurs(encrypted.stdout, [generateIdentity().identity])).rejects.toMatchObject({ code: 'AGE_NO_IDENTITY' });
  });

  it('an identity file with several keys and comments, as age -i takes it', async () => {
    const a = await ageKeygen('idfile-a');
    const b = await ageKeygen('idfile-b');
    const combined = `${await readFile(a.file, 'utf8')}\n# the second one\n${await readFile(b.file, 'utf8')}`;
    const identities = parseIdentityFile(combined, 'combined');
    expect(identities.map((i) => i.recipient.toString())).toEqual([a.recipient, b.recipient]);
    const encrypted = await run('age', ['-r', b.recipient], { input: Buffer.from('payload') });
    expect((await decryptOurs(encrypted.stdout, identities)).toString()).toBe('payload');
  });

  it('passphrase: we decrypt what age -p (passphrase typed on a terminal) encrypted', async () => {
    const plaintext = dumpLikeBytes(120_000, 13);
    const input = path.join(dir, 'pass-theirs.plain');
    const encrypted = path.join(dir, 'pass-theirs.age');
    await writeFile(input, plaintext);
    const out = await runWithPassphrase(['age', '-p', '-o', encrypted, input], 'tr0ub4dor&3 but longer');
    expect(out.code).toBe(0);
    const file = await readFile(encrypted);
    const { header } = readHeader(file);
    expect(header.stanzas.map((s) => [s.type, s.args[1]])).toEqual([['scrypt', '18']]);
    expect((await decryptOurs(file, [passphraseIdentity('tr0ub4dor&3 but longer')])).equals(plaintext)).toBe(true);
    await expect(decryptOurs(file, [passphraseIdentity('wrong')])).rejects.toMatchObject({ code: 'AGE_BAD_PASSPHRASE' });
    // A cap below the file's work factor refuses it before any scrypt work.
    await expect(decryptOurs(file, [passphraseIdentity('tr0ub4dor&3 but longer', { maxWorkFactor: 17 })])).rejects.toMatchObject({
      code: 'AGE_WORK_FACTOR_TOO_HIGH',
    });
  });
});

describe('rekey', () => {
  async function rekeyed(file: Buffer, identities: Parameters<typeof rekey>[1], recipients: Parameters<typeof rekey>[2]) {
    const result = await rekey(streamOf(file, 1000), identities, recipients);
    return { ...result, bytes: await collect(result.output) };
  }

  it('rewraps the file key for new recipients: the payload bytes are identical, the new identity opens it, the removed one no longer does, age opens it', async () => {
    const oldKey = await ageKeygen('rekey-old');
    const newKey = await ageKeygen('rekey-new');
    const kept = generateIdentity();
    const plaintext = dumpLikeBytes(400_000, 17);
    const original = await encryptOurs(plaintext, [oldKey.identity.recipient, kept.recipient]);

    const result = await rekeyed(original, [oldKey.identity], [newKey.identity.recipient, kept.recipient]);
    expect(result.oldPayloadOffset).toBe(readHeader(original).payloadOffset);
    expect(result.newPayloadOffset).toBe(readHeader(result.bytes).payloadOffset);
    expect(result.bytes.subarray(result.newPayloadOffset).equals(original.subarray(result.oldPayloadOffset))).toBe(true);
    expect(result.bytes.subarray(0, result.newPayloadOffset).equals(result.header)).toBe(true);

    expect((await decryptOurs(result.bytes, [newKey.identity])).equals(plaintext)).toBe(true);
    expect((await decryptOurs(result.bytes, [kept.identity])).equals(plaintext)).toBe(true);
    await expect(decryptOurs(result.bytes, [oldKey.identity])).rejects.toMatchObject({ code: 'AGE_NO_IDENTITY' });

    const file = path.join(dir, 'rekeyed.age');
    await writeFile(file, result.bytes);
    const byAge = await run('age', ['-d', '-i', newKey.file, file]);
    expect(byAge.code).toBe(0);
    expect(byAge.stdout.equals(plaintext)).toBe(true);
    expect((await run('age', ['-d', '-i', oldKey.file, file])).code).not.toBe(0);
  });

  it('rekeys a file age made, and from X25519 to a passphrase and back', async () => {
    const key = await ageKeygen('rekey-theirs');
    const plaintext = dumpLikeBytes(70_000, 19);
    const original = (await run('age', ['-r', key.recipient], { input: plaintext })).stdout;

    const toPassphrase = await rekeyed(original, [key.identity], [passphraseRecipient('rotate me', { workFactor: 12 })]);
    expect(toPassphrase.bytes.subarray(toPassphrase.newPayloadOffset).equals(original.subarray(toPassphrase.oldPayloadOffset))).toBe(true);
    const passFile = path.join(dir, 'rekeyed-pass.age');
    await writeFile(passFile, toPassphrase.bytes);
    const byAge = await runWithPassphrase(['age', '-d', '-o', `${passFile}.out`, passFile], 'rotate me');
    expect(byAge.code).toBe(0);
    expect((await readFile(`${passFile}.out`)).equals(plaintext)).toBe(true);

    const back = generateIdentity();
    const toX25519 = await rekeyed(toPassphrase.bytes, [passphraseIdentity('rotate me')], [back.recipient]);
    expect((await decryptOurs(toX25519.bytes, [back.identity])).equals(plaintext)).toBe(true);
  });

  it('refuses without an identity that opens the file, and refuses a tampered header', async () => {
    const { identity, recipient } = generateIdentity();
    const original = await encryptOurs(Buffer.from('x'.repeat(1000)), [recipient]);
    await expect(rekeyed(original, [generateIdentity().identity], [recipient])).rejects.toMatchObject({ code: 'AGE_NO_IDENTITY' });
    // Add a stanza to the header without updating the MAC.
    const { payloadOffset } = readHeader(original);
    const text = original.subarray(0, payloadOffset).toString('latin1');
    const tampered = Buffer.concat([Buffer.from(text.replace('\n---', '\n-> extra\n\n---'), 'latin1'), original.subarray(payloadOffset)]);
    const error = await rekeyed(tampered, [identity], [recipient]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PipelineError);
    expect((error as PipelineError).code).toBe('AGE_HEADER_MAC');
  });
});
