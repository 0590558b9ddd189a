/**
 * One measured task of bench/pipeline.ts, in a process of its own (bundled by esbuild and
 * run with plain `node`, as the CLI is), so that its peak RSS is its own. Prints one JSON
 * line on stdout.
 *
 *   encode <stage> <input> [output]   stage: zstd:<level>:<threads> | gzip:<level> | age:<recipient>
 *   decode <stage> <input>            stage: zstd | gzip | age:<identity file>
 *   chain-write <input|-> <repeat> <output> <recipient> <records.json> [threads]
 *                                     input (or stdin) `repeat` times -> zstd -3 -T<threads, 2> -> age -> output
 *   chain-read <input> <records.json> <identity file>
 *                                     openArtifact (age -> zstd, both digests checked) -> discard
 */
import { createReadStream, createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { decryptStream, encryptStream, parseRecipient, readIdentityFile } from '../src/pipeline/age/index.js';
import { buildWriteChain, openArtifact, type WriteResult } from '../src/pipeline/artifact.js';
import { ageStage, gzipStage, zstdStage } from '../src/pipeline/codecs/index.js';
import { parseStageRecords } from '../src/pipeline/stage.js';

interface Sample {
  s: number;
  mb: number;
  rssMb: number;
}

const MB = 1024 * 1024;
const started = performance.now();
let progressBytes = 0;
let readProgress = (): number => progressBytes;
const samples: Sample[] = [];
const sample = (): void => {
  samples.push({ s: (performance.now() - started) / 1000, mb: readProgress() / MB, rssMb: process.memoryUsage.rss() / MB });
};
const sampler = setInterval(sample, 200);

function peakRssMb(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function counter(): { sink: Writable; bytes: () => number } {
  let n = 0;
  const sink = new Writable({
    highWaterMark: 64 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      n += chunk.length;
      callback();
    },
  });
  return { sink, bytes: () => n };
}

/**
 * The input: a file (read `repeat` times) or stdin. `progressBytes` follows what was
 * read: from the file stream's own count, or from the chain's onProgress.
 */
function source(path: string, repeat: number): Readable {
  if (path === '-') return process.stdin;
  if (repeat === 1) {
    // 1 MiB reads: with 64 KiB ones, the stage waits on the file (measured: the age stage
    // took 1.2-1.7 s instead of 0.74 s for 560 MB).
    const file = createReadStream(path, { highWaterMark: 1024 * 1024 });
    readProgress = () => file.bytesRead;
    return file;
  }
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let i = 0; i < repeat; i++) {
      for await (const chunk of createReadStream(path, { highWaterMark: 64 * 1024 })) yield chunk as Buffer;
    }
  }
  return Readable.from(chunks(), { objectMode: false });
}

async function encodeStage(spec: string) {
  const [name, a, b] = spec.split(':');
  if (name === 'zstd') return zstdStage({ level: Number(a), threads: Number(b) }).encode();
  if (name === 'gzip') return gzipStage({ level: Number(a) }).encode();
  if (name === 'age') return encryptStream([parseRecipient(spec.slice(4))]);
  throw new Error(`unknown stage ${spec}`);
}

async function decodeStage(spec: string) {
  const [name] = spec.split(':');
  if (name === 'zstd') return zstdStage().decode();
  if (name === 'gzip') return gzipStage().decode();
  if (name === 'age') return decryptStream(await readIdentityFile(spec.slice(4)));
  throw new Error(`unknown stage ${spec}`);
}

function report(result: Record<string, unknown>): void {
  clearInterval(sampler);
  sample();
  process.stdout.write(`${JSON.stringify({ ...result, peakRssMb: peakRssMb(), samples })}\n`);
}

const [task, ...args] = process.argv.slice(2);
switch (task) {
  case 'encode':
  case 'decode': {
    const [spec, input, output] = args as [string, string, string | undefined];
    const stage = task === 'encode' ? await encodeStage(spec) : await decodeStage(spec);
    const out = output ? null : counter();
    const t0 = performance.now();
    await pipeline(source(input, 1), stage, output ? createWriteStream(output) : (out as { sink: Writable }).sink);
    const seconds = (performance.now() - t0) / 1000;
    report({ task, spec, bytesIn: readProgress(), bytesOut: out ? out.bytes() : null, seconds });
    break;
  }
  case 'chain-write': {
    const [input, repeat, output, recipient, recordsFile, threads = '2'] = args as [string, string, string, string, string, string?];
    const t0 = performance.now();
    const stages = [zstdStage({ level: 3, threads: Number(threads) }), ageStage({ recipients: [parseRecipient(recipient)] })];
    const chain = buildWriteChain(source(input, Number(repeat)), stages, (bytes) => {
      progressBytes = bytes;
    });
    await pipeline(chain.output, createWriteStream(output));
    const seconds = (performance.now() - t0) / 1000;
    const result: WriteResult = chain.result();
    writeFileSync(recordsFile, JSON.stringify(result));
    report({ task, seconds, result });
    break;
  }
  case 'chain-read': {
    const [input, recordsFile, identityFile] = args as [string, string, string];
    const written = JSON.parse(readFileSync(recordsFile, 'utf8')) as WriteResult;
    const t0 = performance.now();
    const opened = openArtifact(source(input, 1), parseStageRecords(written.stages), {
      identities: await readIdentityFile(identityFile),
      expected: { stored: written.stored, plaintext: written.plaintext },
    });
    readProgress = () => progressBytes;
    const plaintextCounter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        progressBytes += chunk.length;
        callback(null, chunk);
      },
    });
    const out = counter();
    await pipeline(opened.stream, plaintextCounter, out.sink);
    const digests = await opened.verified;
    const seconds = (performance.now() - t0) / 1000;
    report({ task, seconds, digests, plaintextBytes: out.bytes() });
    break;
  }
  default:
    throw new Error(`unknown task ${String(task)}`);
}
