/**
 * Damage against a wrong key, from what the sidecar records of an age file's recipients
 * (src/pipeline/age/recorded.ts): a damaged X25519 stanza with a recorded recipient's
 * identity is corrupt (exit 3), a key the sidecar does not record is a wrong key (exit 2);
 * a header whose stanzas are not the recorded ones is corrupt whatever the key. Files made
 * by us and by the standard `age` tool (Debian's age at /usr/bin/age).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeBase64,
  encodeBase64,
  encryptStream,
  formatIdentityFile,
  generateIdentity,
  passphraseIdentity,
  passphraseRecipient,
  readHeader,
  recipientRecord,
  rewrapHeader,
  writeHeader,
  type Identity,
  type RecipientRecord,
  type Stanza,
} from '../../src/pipeline/age/index.js';
import { recordedHeaderProblems } from '../../src/core/age-header.js';
import { ArtifactMissingError } from '../../src/core/archive.js';
import { ageStage } from '../../src/pipeline/codecs/index.js';
import { PipelineError } from '../../src/pipeline/errors.js';
import { MemoryStorage } from '../../src/storage/mem.js';
import { collect, run, runThrough, streamOf } from '../helpers/pipeline.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'backupctl-age-recorded-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const a = generateIdentity();
const b = generateIdentity();
const foreign = generateIdentity();
const plaintext = Buffer.from('a dump, as pg_dump wrote it\n'.repeat(5000));

async function encrypt(recipients: Parameters<typeof encryptStream>[0]): Promise<Buffer> {
  return collect(streamOf(plaintext).pipe(encryptStream(recipients)));
}

/** Decrypts as verify and restore do: the age stage built from the sidecar's record. */
async function open(file: Buffer, identities: Identity[], recorded: RecipientRecord[]): Promise<PipelineError | null> {
  const stage = ageStage({ identities, record: { type: 'encryption', scheme: 'age', recipients: recorded } });
  const { output, error } = await runThrough(file, stage.decode());
  if (error === null) {
    expect(output.equals(plaintext)).toBe(true);
    return null;
  }
  expect(error).toBeInstanceOf(PipelineError);
  expect(output.length, 'no plaintext before the header is judged').toBe(0);
  return error as PipelineError;
}

/** The file with its stanzas changed by `mutate`, the header's MAC line and the payload kept as they were. */
function withStanzas(file: Buffer, mutate: (stanzas: Array<{ type: string; args: string[]; body: Buffer }>) => Stanza[]): Buffer {
  const { header, payloadOffset } = readHeader(file);
  const stanzas = mutate(header.stanzas.map((s) => ({ type: s.type, args: [...s.args], body: Buffer.from(s.body) })));
  const rewritten = writeHeader(stanzas, randomBytes(16));
  const macLine = (bytes: Buffer) => bytes.subarray(bytes.lastIndexOf('\n---') + 1);
  const head = rewritten.subarray(0, rewritten.length - macLine(rewritten).length);
  return Buffer.concat([head, macLine(header.bytes), file.subarray(payloadOffset)]);
}

function flipBody(index: number, at = 5) {
  return (stanzas: Array<{ type: string; args: string[]; body: Buffer }>) => {
    const body = stanzas[index]!.body;
    body[at] = (body[at] as number) ^ 0x01;
    return stanzas;
  };
}

function flipShare(index: number) {
  return (stanzas: Array<{ type: string; args: string[]; body: Buffer }>) => {
    const share = decodeBase64(stanzas[index]!.args[0]!)!;
    share[3] = (share[3] as number) ^ 0x01;
    stanzas[index]!.args[0] = encodeBase64(share);
    return stanzas;
  };
}

const recordsOf = (...recipients: Parameters<typeof recipientRecord>[0][]) => recipients.map(recipientRecord);

describe('an X25519 file whose own stanza is damaged', () => {
  it.each([
    ['a flipped byte of the wrapped file key', flipBody(0)],
    ['a flipped byte of the ephemeral share', flipShare(0)],
  ])('%s: a recorded recipient\'s identity finds it corrupt (exit 3), a foreign one a wrong key (exit 2)', async (_label, damage) => {
    const file = withStanzas(await encrypt([a.recipient, b.recipient]), damage);
    const recorded = recordsOf(a.recipient, b.recipient);
    const own = await open(file, [a.identity], recorded);
    expect(own?.code).toBe('AGE_STANZA_DAMAGED');
    expect(own?.exitCode).toBe(3);
    expect(own?.message).toContain(a.recipient.fingerprint());
    expect(own?.message).not.toMatch(/\n/);
    // A foreign identity next to the recorded one changes nothing.
    expect((await open(file, [foreign.identity, a.identity], recorded))?.code).toBe('AGE_STANZA_DAMAGED');
    // The other recipient's stanza still opens, but the header MAC covers every stanza: damage too.
    expect(await open(file, [b.identity], recorded)).toMatchObject({ code: 'AGE_HEADER_MAC', exitCode: 3 });
    const wrong = await open(file, [foreign.identity], recorded);
    expect(wrong?.code).toBe('AGE_NO_IDENTITY');
    expect(wrong?.exitCode).toBe(2);
    expect(wrong?.hint).toContain(a.recipient.fingerprint());
    expect(wrong?.hint).toContain(b.recipient.fingerprint());
    expect(wrong?.hint).toContain(foreign.recipient.fingerprint());
  });

  it('a file of the standard age tool, its stanza damaged: the same verdicts; age itself cannot open it either', async () => {
    const made = await run('age', ['-r', a.recipient.toString()], { input: plaintext });
    expect(made.code).toBe(0);
    const file = withStanzas(made.stdout, flipBody(0, 20));
    expect((await open(file, [a.identity], recordsOf(a.recipient)))?.code).toBe('AGE_STANZA_DAMAGED');
    expect((await open(file, [foreign.identity], recordsOf(a.recipient)))?.code).toBe('AGE_NO_IDENTITY');
    expect(await open(made.stdout, [a.identity], recordsOf(a.recipient))).toBeNull();
    const damagedFile = path.join(dir, 'damaged.age');
    await writeFile(damagedFile, file);
    const keyFile = path.join(dir, 'a.key');
    await writeFile(keyFile, formatIdentityFile(a.identity), { mode: 0o600 });
    expect((await run('age', ['-d', '-i', keyFile, damagedFile])).code).not.toBe(0);
    expect((await run('age', ['-d', '-i', keyFile, '-o', '/dev/null'], { input: made.stdout })).code).toBe(0);
  });

  it('a header MAC that does not match after the stanza opened is damage (exit 3)', async () => {
    const file = await encrypt([a.recipient]);
    const { header } = readHeader(file);
    const macAt = header.bytes.length - 10; // inside the MAC's base64, before its LF
    const damaged = Buffer.from(file);
    damaged[macAt] = damaged[macAt] === 0x41 ? 0x42 : 0x41;
    const error = await open(damaged, [a.identity], recordsOf(a.recipient));
    expect(['AGE_HEADER_MAC', 'AGE_HEADER_INVALID']).toContain(error?.code);
    expect(error?.exitCode).toBe(3);
  });

  it('without a record (age files outside backupctl) a stanza that does not open stays AGE_NO_IDENTITY', async () => {
    const file = withStanzas(await encrypt([a.recipient]), flipBody(0));
    const { error } = await runThrough(file, ageStage({ identities: [a.identity] }).decode());
    expect((error as PipelineError).code).toBe('AGE_NO_IDENTITY');
  });
});

describe('a header that is not the one the sidecar records', () => {
  it('more or fewer X25519 stanzas than recorded recipients: corrupt (exit 3) before any unwrap, with any key', async () => {
    const two = await encrypt([a.recipient, b.recipient]);
    for (const identities of [[a.identity], [foreign.identity]]) {
      const error = await open(two, identities, recordsOf(a.recipient));
      expect(error?.code).toBe('AGE_RECIPIENTS_MISMATCH');
      expect(error?.exitCode).toBe(3);
      expect(error?.message).toMatch(/header has 2 X25519 stanzas and 0 scrypt stanzas, the sidecar records 1 X25519 recipient and 0 passphrases/);
    }
    expect((await open(await encrypt([a.recipient]), [a.identity], recordsOf(a.recipient, b.recipient)))?.code).toBe('AGE_RECIPIENTS_MISMATCH');
  });

  it('another file\'s header of the same shape put in front of the payload: the recorded identity opens none of it (exit 3)', async () => {
    const mine = await encrypt([a.recipient]);
    const theirs = await encrypt([foreign.recipient]);
    const swapped = Buffer.concat([readHeader(theirs).header.bytes, mine.subarray(readHeader(mine).payloadOffset)]);
    expect((await open(swapped, [a.identity], recordsOf(a.recipient)))?.code).toBe('AGE_STANZA_DAMAGED');
  });

  it('a passphrase: a scrypt stanza where X25519 recipients are recorded, or another work factor, is corrupt; a wrong passphrase stays exit 2', async () => {
    const file = await encrypt([passphraseRecipient('right', { workFactor: 10 })]);
    const withPassphrase = (passphrase: string, recorded: RecipientRecord[]) => open(file, [passphraseIdentity(passphrase)], recorded);
    expect(await withPassphrase('right', [{ scheme: 'scrypt', workFactor: 10 }])).toBeNull();
    expect((await withPassphrase('right', [{ scheme: 'scrypt', workFactor: 11 }]))?.code).toBe('AGE_RECIPIENTS_MISMATCH');
    expect((await withPassphrase('right', recordsOf(a.recipient)))?.code).toBe('AGE_RECIPIENTS_MISMATCH');
    // A wrong passphrase and a damaged salt or body fail alike: nothing recorded tells them apart.
    const wrong = await withPassphrase('wrong', [{ scheme: 'scrypt', workFactor: 10 }]);
    expect(wrong?.code).toBe('AGE_BAD_PASSPHRASE');
    expect(wrong?.exitCode).toBe(2);
  });
});

describe('rekey', () => {
  it('rewrapping holds the old header against the recorded recipients: damage is exit 3, a foreign key exit 2', async () => {
    const file = await encrypt([a.recipient]);
    const damaged = readHeader(withStanzas(file, flipBody(0))).header;
    await expect(rewrapHeader(damaged, [a.identity], [b.recipient], recordsOf(a.recipient))).rejects.toMatchObject({ code: 'AGE_STANZA_DAMAGED', exitCode: 3 });
    await expect(rewrapHeader(readHeader(file).header, [foreign.identity], [b.recipient], recordsOf(a.recipient))).rejects.toMatchObject({ code: 'AGE_NO_IDENTITY', exitCode: 2 });
    await expect(rewrapHeader(readHeader(file).header, [a.identity], [b.recipient], recordsOf(a.recipient, b.recipient))).rejects.toMatchObject({ code: 'AGE_RECIPIENTS_MISMATCH' });
    // The new header has what the new records say: it passes the check it will be held to.
    const rewrapped = await rewrapHeader(readHeader(file).header, [a.identity], [b.recipient, foreign.recipient], recordsOf(a.recipient));
    const next = Buffer.concat([rewrapped, file.subarray(readHeader(file).payloadOffset)]);
    expect(await open(next, [b.identity], recordsOf(b.recipient, foreign.recipient))).toBeNull();
  });
});

describe('the checksum level (no key): recordedHeaderProblems on a store with ranged reads', () => {
  it('reads the header only and names what differs; an unencrypted file is not read; a missing one is ArtifactMissingError', async () => {
    const storage = MemoryStorage.named(`age-recorded-${Date.now()}`);
    const file = await encrypt([a.recipient, b.recipient]);
    await storage.putBytes('app/x.dump.age', file);
    const encrypted = (recorded: RecipientRecord[]) => ({ bytes: file.length, stages: [{ type: 'encryption' as const, scheme: 'age' as const, recipients: recorded }] });
    expect(await recordedHeaderProblems(storage, 'app/x.dump.age', encrypted(recordsOf(a.recipient, b.recipient)))).toEqual([]);
    expect(await recordedHeaderProblems(storage, 'app/x.dump.age', encrypted(recordsOf(a.recipient)))).toEqual([
      expect.stringMatching(/^app\/x\.dump\.age: the age header does not match the sidecar's recipients: the header has 2 X25519 stanzas/),
    ]);
    await storage.putBytes('app/y.dump.age', Buffer.from('not age at all'));
    expect(await recordedHeaderProblems(storage, 'app/y.dump.age', { ...encrypted(recordsOf(a.recipient)), bytes: 14 })).toEqual([expect.stringMatching(/invalid age header/)]);
    expect(await recordedHeaderProblems(storage, 'app/absent', { bytes: 1, stages: [{ type: 'compression', codec: 'none', level: null }] })).toEqual([]);
    await expect(recordedHeaderProblems(storage, 'app/absent', encrypted(recordsOf(a.recipient)))).rejects.toBeInstanceOf(ArtifactMissingError);
  });
});
