/**
 * Compression stages: none, gzip (node:zlib), zstd (the zstd program as a child): round
 * trips, the standard tools read what we write, corrupt input and failing programs are
 * typed errors, children never outlive their stream, back-pressure reaches the source.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compressionStage, gzipStage, noneStage, parseCompression, requireZstd, stageFromRecord, zstdStage } from '../../src/pipeline/codecs/index.js';
import { PipelineError } from '../../src/pipeline/errors.js';
import { ProgramFilter } from '../../src/pipeline/program-filter.js';
import { parseStageRecords } from '../../src/pipeline/stage.js';
import { alive, dumpLikeBytes, run, runThrough, settled } from '../helpers/pipeline.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'backupctl-codecs-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function codeOf(error: unknown): string | undefined {
  return error instanceof PipelineError ? error.code : undefined;
}

async function script(name: string, body: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, `#!/bin/sh\n${body}\n`);
  await chmod(file, 0o755);
  return file;
}

const plaintext = dumpLikeBytes(3_000_000, 31);

describe.each([
  ['none', noneStage(), ''],
  ['gzip', gzipStage({ level: 6 }), '.gz'],
  ['zstd', zstdStage({ level: 3, threads: 2 }), '.zst'],
])('%s', (name, stage, suffix) => {
  it('round-trips, and compresses', async () => {
    expect(stage.name).toBe(name);
    expect(stage.suffix).toBe(suffix);
    const encoded = await runThrough(plaintext, stage.encode());
    expect(encoded.error).toBeNull();
    if (name !== 'none') expect(encoded.output.length).toBeLessThan(plaintext.length / 2);
    const decoded = await runThrough(encoded.output, stage.decode());
    expect(decoded.error).toBeNull();
    expect(decoded.output.equals(plaintext)).toBe(true);
    const empty = await runThrough(Buffer.alloc(0), stage.encode());
    expect((await runThrough(empty.output, stage.decode())).output.length).toBe(0);
  });

  it('the standard tool reads what we write', async () => {
    if (name === 'none') return;
    const encoded = (await runThrough(plaintext, stage.encode())).output;
    const out = await run(name, ['-dc'], { input: encoded });
    expect(out.code).toBe(0);
    expect(out.stdout.equals(plaintext)).toBe(true);
  });

  it('corrupt or truncated input is CODEC_CORRUPT', async () => {
    if (name === 'none') return;
    const encoded = (await runThrough(plaintext, stage.encode())).output;
    const flipped = Buffer.from(encoded);
    flipped[Math.floor(flipped.length / 2)] = (flipped[Math.floor(flipped.length / 2)] as number) ^ 0xff;
    for (const bad of [flipped, encoded.subarray(0, encoded.length - 100), randomBytes(5000), Buffer.concat([encoded, Buffer.from('trailing garbage!')])]) {
      if (name === 'gzip' && bad.length > encoded.length) continue; // zlib ignores what follows the last gzip member
      const { error } = await runThrough(bad, stage.decode());
      expect(codeOf(error)).toBe('CODEC_CORRUPT');
      expect((error as PipelineError).exitCode).toBe(3);
    }
  });
});

describe('zstd through the program', () => {
  it('decodeInto: zstd writes the plaintext into the open file itself; the stream gives nothing and ends once it is written; damage fails it, as no verdict (a full disk would too)', async () => {
    const stage = zstdStage();
    const encoded = (await runThrough(plaintext, stage.encode())).output;
    const target = path.join(dir, 'into.dump');
    const file = await open(target, 'w', 0o600);
    try {
      const { output, error } = await runThrough(encoded, (stage.decodeInto as (fd: number) => ProgramFilter)(file.fd));
      expect(error).toBeNull();
      expect(output.length).toBe(0);
    } finally {
      await file.close();
    }
    expect((await readFile(target)).equals(plaintext)).toBe(true);
    const flipped = Buffer.from(encoded);
    flipped[Math.floor(flipped.length / 2)] = (flipped[Math.floor(flipped.length / 2)] as number) ^ 0xff;
    const damaged = await open(path.join(dir, 'damaged.dump'), 'w', 0o600);
    try {
      const { error } = await runThrough(flipped, (stage.decodeInto as (fd: number) => ProgramFilter)(damaged.fd));
      expect(codeOf(error)).toBe('CODEC_PROGRAM_FAILED');
    } finally {
      await damaged.close();
    }
  });

  it('records its codec, level and threads; default level 3', () => {
    expect(zstdStage().record()).toEqual({ type: 'compression', codec: 'zstd', level: 3, threads: 2 });
    expect(zstdStage({ level: 19, threads: 1 }).record()).toEqual({ type: 'compression', codec: 'zstd', level: 19, threads: 1 });
    expect(() => zstdStage({ level: 22 })).toThrow(expect.objectContaining({ code: 'STAGE_OPTIONS_INVALID' }));
    expect(() => gzipStage({ level: 0 })).toThrow(expect.objectContaining({ code: 'STAGE_OPTIONS_INVALID' }));
  });

  it('a missing program is CODEC_PROGRAM_MISSING, naming the Debian package', async () => {
    const stage = zstdStage({ program: 'zstd-is-not-installed-here' });
    let error: unknown = null;
    try {
      stage.encode();
    } catch (e) {
      error = e;
    }
    expect(codeOf(error)).toBe('CODEC_PROGRAM_MISSING');
    expect((error as PipelineError).hint).toMatch(/apt-get install zstd/);
    expect((error as PipelineError).exitCode).toBe(2);
    expect(() => requireZstd('zstd', { PATH: dir })).toThrow(expect.objectContaining({ code: 'CODEC_PROGRAM_MISSING' }));
    expect(requireZstd()).toMatch(/\/zstd$/);
    // Found when checked, gone when started: the spawn failure is the same typed error.
    const filter = new ProgramFilter({ program: path.join(dir, 'vanished-zstd'), args: [], tool: 'zstd', debianPackage: 'zstd', exitCode: 'CODEC_PROGRAM_FAILED' });
    expect(codeOf((await runThrough(Buffer.from('x'), filter)).error)).toBe('CODEC_PROGRAM_MISSING');
  });

  it('a program that exits non-zero fails the stream even after writing all its output', async () => {
    const liar = await script('liar-zstd', 'cat; echo "zstd: something went wrong" >&2; exit 1');
    const { output, error } = await runThrough(Buffer.from('hello world'), zstdStage({ program: liar }).encode());
    expect(output.toString()).toBe('hello world');
    expect(codeOf(error)).toBe('CODEC_PROGRAM_FAILED');
    expect((error as Error).message).toMatch(/exit status 1\): zstd: something went wrong/);
    // Decoding: a non-zero exit means the input did not decode.
    expect(codeOf((await runThrough(Buffer.from('x'), zstdStage({ program: liar }).decode())).error)).toBe('CODEC_CORRUPT');
    const killed = await script('killed-zstd', 'kill -9 $$');
    const byKill = (await runThrough(Buffer.from('x'), zstdStage({ program: killed }).decode())).error;
    expect(codeOf(byKill)).toBe('CODEC_PROGRAM_FAILED');
    expect((byKill as Error).message).toMatch(/SIGKILL/);
    const quitter = await script('quitter-zstd', 'head -c 10; exit 0');
    expect(codeOf((await runThrough(randomBytes(1 << 20), zstdStage({ program: quitter }).encode())).error)).toBe('CODEC_PROGRAM_FAILED');
  });

  it('destroying the stream kills the child, and completes only once it is gone', async () => {
    const encoder = zstdStage().encode() as ProgramFilter;
    const pid = encoder.pid as number;
    expect(alive(pid)).toBe(true);
    encoder.write(randomBytes(100_000));
    await new Promise((resolve) => setTimeout(resolve, 50));
    await new Promise<void>((resolve) => {
      encoder.once('close', () => resolve());
      encoder.destroy();
    });
    expect(encoder.killed).toBe(true);
    expect(alive(pid)).toBe(false);
  });

  it('an error elsewhere in the pipeline kills the child', async () => {
    const encoder = zstdStage().encode() as ProgramFilter;
    const pid = encoder.pid as number;
    let sent = 0;
    const failing = new Readable({
      read() {
        sent += 1;
        if (sent === 20) this.destroy(new Error('the source failed'));
        else this.push(randomBytes(65536));
      },
    });
    const { error } = await runThrough(failing, encoder);
    expect((error as Error).message).toBe('the source failed');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(alive(pid)).toBe(false);
  });

  it('back-pressure reaches the source: with a stalled reader zstd stops reading', async () => {
    let produced = 0;
    const input = new Readable({
      read() {
        produced += 65536;
        this.push(randomBytes(65536));
      },
    });
    const encoder = zstdStage().encode() as ProgramFilter;
    const stalled = new Writable({
      highWaterMark: 1,
      write() {
        // never calls back
      },
    });
    input.pipe(encoder).pipe(stalled);
    // Pipe buffers and zstd's own job buffers, then nothing more.
    expect(await settled(() => produced)).toBeLessThan(64 * 1024 * 1024);
    input.destroy();
    encoder.destroy();
    await new Promise((resolve) => encoder.once('close', resolve));
    expect(alive(encoder.pid as number)).toBe(false);
  });
});

describe('the codec table', () => {
  it('parses --compress-style values', () => {
    expect(parseCompression('zstd')).toEqual({ codec: 'zstd' });
    expect(parseCompression('zstd:19')).toEqual({ codec: 'zstd', level: 19 });
    expect(parseCompression('gzip:9')).toEqual({ codec: 'gzip', level: 9 });
    expect(parseCompression('none')).toEqual({ codec: 'none' });
    for (const bad of ['zstd:20', 'gzip:0', 'none:1', 'lz4', 'zstd:', '']) {
      expect(() => parseCompression(bad), bad).toThrow(expect.objectContaining({ code: 'STAGE_OPTIONS_INVALID' }));
    }
    expect(compressionStage().name).toBe('zstd');
  });

  it('builds the decoding stage from a sidecar record, whatever level and threads it was written with', async () => {
    const written = zstdStage({ level: 19, threads: 1 });
    const encoded = (await runThrough(plaintext, written.encode())).output;
    const reader = stageFromRecord(written.record());
    expect(reader.record()).toEqual(written.record());
    expect((await runThrough(encoded, reader.decode())).output.equals(plaintext)).toBe(true);
  });

  it('validates stage records read from a sidecar', () => {
    const good = [
      { type: 'compression', codec: 'zstd', level: 3, threads: 2 },
      { type: 'encryption', scheme: 'age', recipients: [{ scheme: 'x25519', fingerprint: 'x25519:sha256:0123456789abcdef' }] },
    ];
    expect(parseStageRecords(good)).toEqual(good);
    expect(parseStageRecords(undefined)).toEqual([]);
    expect(parseStageRecords([])).toEqual([]);
    const bad: unknown[] = [
      'zstd',
      [{ type: 'compression', codec: 'lz4', level: 1 }],
      [{ type: 'compression', codec: 'none', level: 3 }],
      [{ type: 'compression', codec: 'gzip', level: '6' }],
      [{ type: 'encryption', scheme: 'gpg', recipients: [] }],
      [{ type: 'encryption', scheme: 'age', recipients: [] }],
      [{ type: 'encryption', scheme: 'age', recipients: [{ scheme: 'x25519', fingerprint: 'AGE-SECRET-KEY-1...' }] }],
      [good[1], good[0]],
      [good[0], good[0]],
      [null],
    ];
    for (const value of bad) {
      expect(() => parseStageRecords(value), JSON.stringify(value)).toThrow(expect.objectContaining({ code: 'STAGE_INVALID' }));
    }
  });
});
