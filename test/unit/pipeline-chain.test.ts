/**
 * The write chain and openArtifact: digests of the plaintext and of the stored bytes, stage
 * records and suffixes, reading back through every combination of stages, and everything
 * that must fail (digest mismatches, damage, missing keys) failing with a typed error.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatIdentityFile, generateIdentity, passphraseRecipient } from '../../src/pipeline/age/index.js';
import { authenticateArtifact, buildWriteChain, openArtifact } from '../../src/pipeline/artifact.js';
import { ageStage, compressionStage, gzipStage, noneStage, zstdStage } from '../../src/pipeline/codecs/index.js';
import type { Digest } from '../../src/pipeline/digest.js';
import { DigestMismatchError, PipelineError } from '../../src/pipeline/errors.js';
import { artifactSuffix, type Stage, type StageRecord } from '../../src/pipeline/stage.js';
import { collect, dumpLikeBytes, run, settled, streamOf } from '../helpers/pipeline.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'backupctl-chain-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const { identity, recipient } = generateIdentity();
const plaintext = dumpLikeBytes(2_500_000, 41);
const plainDigest: Digest = { bytes: plaintext.length, sha256: createHash('sha256').update(plaintext).digest('hex') };

function digestOf(bytes: Buffer): Digest {
  return { bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

function codeOf(error: unknown): string | undefined {
  return error instanceof PipelineError ? error.code : undefined;
}

async function write(stages: Stage[], input: Buffer = plaintext) {
  let progress = 0;
  const chain = buildWriteChain(streamOf(input), stages, (bytes) => {
    progress = bytes;
  });
  const stored = await collect(chain.output);
  return { chain, stored, result: chain.result(), progress };
}

async function read(stored: Buffer, records: StageRecord[], expected: { stored: Digest; plaintext?: Digest }, keys: Parameters<typeof openArtifact>[2] extends infer O ? Omit<O, 'expected'> : never = {}) {
  const opened = openArtifact(streamOf(stored), records, { ...keys, identities: keys.identities ?? [identity], expected });
  let output: Buffer | null = null;
  let streamError: unknown = null;
  try {
    output = await collect(opened.stream);
  } catch (error) {
    streamError = error;
  }
  const verified = await opened.verified.then(
    (digests) => ({ digests, error: null as unknown }),
    (error: unknown) => ({ digests: null, error }),
  );
  return { output, streamError, ...verified };
}

const COMBINATIONS: Array<[string, () => Stage[], string]> = [
  ['no stages (an old sidecar)', () => [], ''],
  ['none', () => [noneStage()], ''],
  ['gzip', () => [gzipStage()], '.gz'],
  ['zstd', () => [zstdStage()], '.zst'],
  ['age', () => [ageStage({ recipients: [recipient] })], '.age'],
  ['zstd + age', () => [zstdStage(), ageStage({ recipients: [recipient, generateIdentity().recipient] })], '.zst.age'],
  ['none + age', () => [noneStage(), ageStage({ recipients: [recipient] })], '.age'],
  ['gzip + age (passphrase)', () => [gzipStage({ level: 1 }), ageStage({ recipients: [passphraseRecipient('pw', { workFactor: 10 })] })], '.gz.age'],
];

describe.each(COMBINATIONS)('%s', (_name, stages, suffix) => {
  it('writes: suffix, both digests, the records; reads back through openArtifact with both digests checked', async () => {
    const { chain, stored, result, progress } = await write(stages());
    expect(chain.suffix).toBe(suffix);
    expect(result.plaintext).toEqual(plainDigest);
    expect(result.stored).toEqual(digestOf(stored));
    expect(progress).toBe(plaintext.length);
    expect(result.stages.map((r) => (r.type === 'compression' ? r.codec : r.scheme))).toEqual(stages().map((s) => s.name));
    for (const record of result.stages) expect(JSON.stringify(record)).not.toMatch(/AGE-SECRET|age1/);

    const back = await read(stored, result.stages, { stored: result.stored, plaintext: result.plaintext }, { passphrase: 'pw' });
    expect(back.streamError).toBeNull();
    expect(back.error).toBeNull();
    expect(back.output?.equals(plaintext)).toBe(true);
    expect(back.digests).toEqual({ stored: result.stored, plaintext: result.plaintext });
  });

  it('a wrong stored digest fails the stream instead of ending it, listing what differs', async () => {
    const { stored, result } = await write(stages());
    const wrong = { bytes: result.stored.bytes + 1, sha256: result.stored.sha256 };
    const back = await read(stored, result.stages, { stored: wrong, plaintext: result.plaintext }, { passphrase: 'pw' });
    expect(back.streamError).toBeInstanceOf(DigestMismatchError);
    expect(back.error).toBe(back.streamError);
    expect((back.streamError as DigestMismatchError).differences).toEqual([{ digest: 'stored', field: 'bytes', expected: wrong.bytes, actual: result.stored.bytes }]);
    expect((back.streamError as DigestMismatchError).exitCode).toBe(3);
  });

  it('a wrong plaintext digest is reported as such', async () => {
    const { stored, result } = await write(stages());
    const wrong = { bytes: result.plaintext.bytes, sha256: '0'.repeat(64) };
    const back = await read(stored, result.stages, { stored: result.stored, plaintext: wrong }, { passphrase: 'pw' });
    expect((back.error as DigestMismatchError).differences).toEqual([{ digest: 'plaintext', field: 'sha256', expected: wrong.sha256, actual: result.plaintext.sha256 }]);
  });

  it('a changed stored byte is caught (by a stage, or by the digests)', async () => {
    const { stored, result } = await write(stages());
    const damaged = Buffer.from(stored);
    damaged[Math.floor(damaged.length * 0.7)] = (damaged[Math.floor(damaged.length * 0.7)] as number) ^ 0x10;
    const back = await read(damaged, result.stages, { stored: result.stored, plaintext: result.plaintext }, { passphrase: 'pw' });
    expect(['AGE_PAYLOAD_DAMAGED', 'CODEC_CORRUPT', 'DIGEST_MISMATCH']).toContain(codeOf(back.error));
    const truncated = await read(stored.subarray(0, stored.length - 1000), result.stages, { stored: result.stored }, { passphrase: 'pw' });
    expect(['AGE_PAYLOAD_DAMAGED', 'AGE_TRUNCATED', 'CODEC_CORRUPT', 'DIGEST_MISMATCH']).toContain(codeOf(truncated.error));
  });
});

describe('write chain', () => {
  it('identity stages (none, alone or before age) pass far more than the buffers hold, both ways', async () => {
    const big = dumpLikeBytes(8 * 1024 * 1024);
    for (const stages of [[noneStage()], [noneStage(), ageStage({ recipients: [recipient] })]]) {
      const chain = buildWriteChain(streamOf(big), stages);
      // Piped into a writable, as storage.put does.
      const chunks: Buffer[] = [];
      const sink = new Writable({
        write(chunk: Buffer, _encoding, callback) {
          chunks.push(chunk);
          callback();
        },
      });
      await pipeline(chain.output, sink);
      const stored = Buffer.concat(chunks);
      const result = chain.result();
      expect(result.plaintext.bytes).toBe(big.length);
      const opened = openArtifact(streamOf(stored), result.stages, { identities: [identity], expected: { stored: result.stored, plaintext: result.plaintext } });
      expect((await collect(opened.stream)).equals(big)).toBe(true);
      await opened.verified;
    }
  });

  it('suffixes follow the stages: .dump, .dump.zst, .dump.zst.age', () => {
    expect(artifactSuffix('.dump', [])).toBe('.dump');
    expect(artifactSuffix('.dump', [zstdStage()])).toBe('.dump.zst');
    expect(artifactSuffix('.dump', [zstdStage(), ageStage({ recipients: [recipient] })])).toBe('.dump.zst.age');
    expect(artifactSuffix('.dump.tar', [compressionStage({ codec: 'none' })])).toBe('.dump.tar');
  });

  it('records: codec and level, recipient fingerprints (never keys)', async () => {
    const { result } = await write([zstdStage({ level: 5, threads: 1 }), ageStage({ recipients: [recipient] })], Buffer.from('x'));
    expect(result.stages).toEqual([
      { type: 'compression', codec: 'zstd', level: 5, threads: 1 },
      { type: 'encryption', scheme: 'age', recipients: [{ scheme: 'x25519', fingerprint: recipient.fingerprint() }] },
    ]);
  });

  it('refuses stages in the wrong order or twice, and closes the source', async () => {
    for (const stages of [[ageStage({ recipients: [recipient] }), zstdStage()], [zstdStage(), gzipStage()]]) {
      const source = streamOf(plaintext);
      expect(() => buildWriteChain(source, stages)).toThrow(expect.objectContaining({ code: 'STAGE_OPTIONS_INVALID' }));
      expect(source.destroyed).toBe(true);
    }
    const source = streamOf(plaintext);
    expect(() => buildWriteChain(source, [zstdStage({ program: 'no-such-zstd' })])).toThrow(expect.objectContaining({ code: 'CODEC_PROGRAM_MISSING' }));
    expect(source.destroyed).toBe(true);
  });

  it('a failing source fails the output', async () => {
    let n = 0;
    const source = new Readable({
      read() {
        n += 1;
        if (n === 5) this.destroy(new Error('pg_dump died'));
        else this.push(Buffer.alloc(65536, n));
      },
    });
    const chain = buildWriteChain(source, [zstdStage(), ageStage({ recipients: [recipient] })]);
    await expect(collect(chain.output)).rejects.toThrow('pg_dump died');
  });

  it('back-pressure from storage reaches the source through zstd and age', async () => {
    let produced = 0;
    const source = new Readable({
      read() {
        produced += 65536;
        this.push(dumpLikeBytes(65536, produced));
      },
    });
    const chain = buildWriteChain(source, [zstdStage(), ageStage({ recipients: [recipient] })]);
    const stalled = new Writable({
      highWaterMark: 1,
      write() {
        // storage that never acknowledges
      },
    });
    chain.output.pipe(stalled);
    // It stops: pipe buffers, zstd's jobs and a few stream buffers, then nothing more.
    expect(await settled(() => produced)).toBeLessThan(128 * 1024 * 1024);
    source.destroy();
    chain.output.destroy();
  });
});

describe('openArtifact', () => {
  it('an encrypted artifact without keys is KEYS_MISSING, at once', async () => {
    const { stored, result } = await write([zstdStage(), ageStage({ recipients: [recipient] })], Buffer.from('x'));
    const source = streamOf(stored);
    expect(() => openArtifact(source, result.stages, { expected: { stored: result.stored } })).toThrow(expect.objectContaining({ code: 'KEYS_MISSING' }));
    expect(source.destroyed).toBe(true);
    const back = await read(stored, result.stages, { stored: result.stored }, { identities: [generateIdentity().identity] });
    expect(codeOf(back.error)).toBe('AGE_NO_IDENTITY');
  });

  it('an old sidecar (no stages, no plaintext digest) reads as the identity chain', async () => {
    const back = await read(plaintext, [], { stored: plainDigest });
    expect(back.output?.equals(plaintext)).toBe(true);
    expect(back.digests).toEqual({ stored: plainDigest, plaintext: plainDigest });
    const wrong = await read(plaintext.subarray(1), [], { stored: plainDigest });
    expect((wrong.error as DigestMismatchError).differences.map((d) => d.field)).toEqual(['bytes', 'sha256']);
  });

  it('authenticateArtifact reads everything first and resolves with the digests', async () => {
    const { stored, result } = await write([zstdStage(), ageStage({ recipients: [recipient] })]);
    await expect(authenticateArtifact(streamOf(stored), result.stages, { identities: [identity], expected: { stored: result.stored, plaintext: result.plaintext } })).resolves.toEqual({
      stored: result.stored,
      plaintext: result.plaintext,
    });
    const damaged = Buffer.from(stored);
    damaged[damaged.length - 5] = (damaged[damaged.length - 5] as number) ^ 1;
    await expect(authenticateArtifact(streamOf(damaged), result.stages, { identities: [identity], expected: { stored: result.stored } })).rejects.toMatchObject({
      code: 'AGE_PAYLOAD_DAMAGED',
    });
  });

  it('a backup restores without backupctl: age -d -i KEY FILE | zstd -dc', async () => {
    const { stored } = await write([zstdStage(), ageStage({ recipients: [recipient] })]);
    const file = path.join(dir, 'backup.dump.zst.age');
    const key = path.join(dir, 'backup.key');
    await writeFile(file, stored);
    await writeFile(key, formatIdentityFile(identity), { mode: 0o600 });
    const out = await run('bash', ['-c', 'set -o pipefail; age -d -i "$1" "$2" | zstd -dc', 'restore', key, file]);
    expect(out.code).toBe(0);
    expect(out.stdout.equals(plaintext)).toBe(true);
  });
});
