/**
 * Reading a small secret file (a password, a passphrase, an age identity or recipients
 * file) without being fooled by what stands at its path: it must be a regular file (a
 * symlink to one is fine: Kubernetes mounts secrets that way). A FIFO or a device would
 * hang or read forever, so the file is opened non-blocking, checked with fstat, and read
 * up to a bound.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

export type SecretFileProblem = 'not-regular' | 'too-large' | 'unreadable';

export class SecretFileError extends Error {
  constructor(
    readonly path: string,
    readonly problem: SecretFileProblem,
    readonly detail: string,
  ) {
    super(`${path}: ${detail}`);
    this.name = 'SecretFileError';
  }
}

/** The file's bytes; throws SecretFileError. */
export function readSecretFile(path: string, maxBytes: number): Buffer {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const info = fstatSync(fd);
    if (!info.isFile()) throw new SecretFileError(path, 'not-regular', 'not a regular file');
    if (info.size > maxBytes) throw new SecretFileError(path, 'too-large', `${info.size} bytes, more than the ${maxBytes} such a file may hold`);
    const buffer = Buffer.alloc(info.size);
    let read = 0;
    while (read < buffer.length) {
      const n = readSync(fd, buffer, read, buffer.length - read, read);
      if (n === 0) break;
      read += n;
    }
    return buffer.subarray(0, read);
  } catch (error) {
    if (error instanceof SecretFileError) throw error;
    throw new SecretFileError(path, 'unreadable', (error as NodeJS.ErrnoException).code ?? (error as Error).message);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
