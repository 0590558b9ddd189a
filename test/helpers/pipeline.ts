/**
 * Helpers for the pipeline tests: run bytes through streams, and drive the `age` CLI
 * (Debian's age 1.1.1), also through a pseudo-terminal for passphrases, which age reads
 * from the terminal only.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable, Writable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Bytes that compress somewhat, like a dump: words, numbers and some noise. */
export function dumpLikeBytes(size: number, seed = 1): Buffer {
  const words = ['customer', 'order', 'shipped', 'pending', 'Berlin', 'Tokyo', 'invoice', 'amount', 'status', 'note'];
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  let i = 0;
  while (i < size) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const piece = x % 7 === 0 ? randomBytes(8).toString('hex') : `${words[x % words.length]}\t${x % 100000}\n`;
    i += out.write(piece, i, 'latin1');
  }
  return out;
}

/** `input` cut in pieces of `pieceSize` bytes, as a stream. */
export function streamOf(input: Buffer, pieceSize = 65536): Readable {
  const pieces: Buffer[] = [];
  for (let i = 0; i < input.length; i += pieceSize) pieces.push(input.subarray(i, i + pieceSize));
  return Readable.from(pieces);
}

/** Everything a stream produces (rejects as it fails). */
export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** input -> transforms -> bytes; also what was released before a failure. */
export async function runThrough(input: Buffer | Readable, ...transforms: Duplex[]): Promise<{ output: Buffer; error: unknown }> {
  const chunks: Buffer[] = [];
  let error: unknown = null;
  try {
    await pipeline([
      Buffer.isBuffer(input) ? streamOf(input) : input,
      ...transforms,
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          chunks.push(chunk);
          callback();
        },
      }),
    ]);
  } catch (e) {
    error = e;
  }
  return { output: Buffer.concat(chunks), error };
}

export interface Run {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs a program to completion (never throws on a non-zero exit). */
export function run(file: string, args: string[], options: { input?: Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { encoding: 'buffer', maxBuffer: 1 << 30, env: options.env ?? process.env }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : -1) : 0;
      if (error && code === -1) reject(error);
      else resolve({ code, stdout, stderr: stderr.toString('utf8') });
    });
    if (options.input) child.stdin?.end(options.input);
    else child.stdin?.end();
  });
}

/**
 * Runs `argv` on a pseudo-terminal (python3's pty module) and answers every passphrase
 * prompt with AGE_TEST_PASSPHRASE from the environment (never argv). Output goes to files
 * (`-o`); the terminal carries the prompts only.
 */
const PTY_DRIVER = `
import os, pty, select, sys
answer = os.environ['AGE_TEST_PASSPHRASE'].encode() + b'\\n'
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
seen = b''
while True:
    ready, _, _ = select.select([fd], [], [], 60)
    if not ready:
        os.kill(pid, 9)
        break
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    seen += data
    if b'assphrase' in seen and seen.rstrip().endswith(b':'):
        os.write(fd, answer)
        seen = b''
_, status = os.waitpid(pid, 0)
sys.stderr.write(seen.decode('utf8', 'replace'))
sys.exit(os.waitstatus_to_exitcode(status))
`;

export function runWithPassphrase(argv: string[], passphrase: string): Promise<Run> {
  return run('python3', ['-c', PTY_DRIVER, ...argv], { env: { ...process.env, AGE_TEST_PASSPHRASE: passphrase } });
}

/** Whether a process is still alive (signal 0). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Waits until `value()` stops changing (the same over `stableMs`), at most `maxMs`; returns
 * the settled value. For back-pressure tests: a stalled pipeline stops pulling its source.
 */
export async function settled(value: () => number, stableMs = 500, maxMs = 15_000): Promise<number> {
  const started = Date.now();
  let last = value();
  let since = Date.now();
  while (Date.now() - started < maxMs) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = value();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= stableMs) {
      return now;
    }
  }
  throw new Error(`still changing after ${maxMs} ms (last ${last})`);
}
