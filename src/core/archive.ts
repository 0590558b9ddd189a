import { createWriteStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { artifactKey } from '../catalog/catalog.js';
import { scratchDir } from '../platform/run-dir.js';
import type { Sidecar } from '../catalog/sidecar.js';
import { digestOf, DigestStream, type Digest } from '../pipeline/digest.js';
import { NotFoundError, type Storage } from '../storage/storage.js';
import { storageError } from './storage-errors.js';

/** An artifact made readable by pg_restore on this machine, with the digest of its stored bytes. */
export interface LocalArchive {
  /** A custom-format file or a directory-format directory. */
  path: string;
  /**
   * sha256 and size of the bytes as stored. Computed while unpacking or downloading; for
   * a custom-format archive used in place, it is still being computed when openArchive
   * returns, so a caller may run pg_restore alongside it (restore awaits it first).
   */
  digest: Promise<Digest>;
  /** True when pg_restore reads the stored file itself (its digest may still be running). */
  inPlace: boolean;
  /** Removes whatever was unpacked or downloaded. */
  dispose(): Promise<void>;
}

export class ArtifactMissingError extends Error {
  constructor(readonly key: string) {
    super(`artifact ${key} is missing`);
    this.name = 'ArtifactMissingError';
  }
}

/**
 * The stored artifact is there but cannot be unpacked (a truncated or damaged tar):
 * corruption, not an operational failure. Carries the digest of the stored bytes, so the
 * caller can say what differs from the sidecar.
 */
export class ArchiveUnreadableError extends Error {
  constructor(readonly key: string, readonly reason: string, readonly digest: Digest) {
    super(`artifact ${key} cannot be unpacked: ${reason}`);
    this.name = 'ArchiveUnreadableError';
  }
}

/** A failure of the tar parser itself (as opposed to reading the storage or an abort). */
class UnpackError extends Error {}

/** Differences between what the sidecar promises and what was read. */
export function digestMismatches(what: string, expected: { bytes: number; sha256: string }, actual: Digest): string[] {
  const problems: string[] = [];
  if (actual.bytes !== expected.bytes) problems.push(`${what}: size is ${actual.bytes} bytes, the sidecar says ${expected.bytes}`);
  if (actual.sha256 !== expected.sha256) problems.push(`${what}: sha256 is ${actual.sha256}, the sidecar says ${expected.sha256}`);
  return problems;
}

async function open(storage: Storage, key: string) {
  try {
    return await storage.get(key);
  } catch (error) {
    if (error instanceof NotFoundError) throw new ArtifactMissingError(key);
    throw storageError(error, storage.location, `reading ${key}`);
  }
}

/** A local object opened through the storage's checks (never a symlink, FIFO or device); missing: ArtifactMissingError. */
async function openLocal(storage: Storage, key: string): Promise<{ handle: FileHandle; size: number } | null> {
  if (!storage.capabilities.localFiles || !storage.openLocalFile) return null;
  try {
    return await storage.openLocalFile(key);
  } catch (error) {
    if (error instanceof NotFoundError) throw new ArtifactMissingError(key);
    throw storageError(error, storage.location, `reading ${key}`, 'read');
  }
}

/** Re-hashes a stored object without keeping it (a local file through one reused buffer). */
export async function hashStored(storage: Storage, key: string, signal?: AbortSignal): Promise<Digest> {
  const local = await openLocal(storage, key);
  if (local) {
    try {
      return await hashHandle(local.handle, signal);
    } catch (error) {
      if (signal?.aborted) throw error;
      throw storageError(error, storage.location, `reading ${key}`, 'read');
    } finally {
      await local.handle.close().catch(() => undefined);
    }
  }
  return digestOf(await open(storage, key));
}

/**
 * A path another program can open to read exactly the file behind `handle` (Linux: the
 * process's file descriptor in /proc), or null where there is no such thing.
 */
function pathOfHandle(handle: FileHandle): string | null {
  const path = `/proc/${process.pid}/fd/${handle.fd}`;
  return existsSync(path) ? path : null;
}

/**
 * Makes the artifact of `sidecar` readable by pg_restore, hashing it in the same pass:
 * a custom-format archive on local storage is used in place (and read once to hash
 * it); anything else is streamed into a private scratch directory (a tar is unpacked
 * there). The caller compares the digest with the sidecar before trusting the archive.
 */
export async function openArchive(storage: Storage, sidecar: Sidecar, options: { workDir?: string | undefined; signal?: AbortSignal }): Promise<LocalArchive> {
  const key = artifactKey(sidecar.profile, sidecar.artifact.file);
  if (sidecar.artifact.container === 'pg-custom') {
    // In place: pg_restore reads the very file that was checked (opened without following
    // a link, a regular file inside the root), through this process's descriptor of it.
    const local = await openLocal(storage, key);
    const path = local ? pathOfHandle(local.handle) : null;
    if (local && path) {
      const digest = hashHandle(local.handle, options.signal);
      digest.catch(() => undefined); // awaited by the caller
      const dispose = async () => {
        await digest.catch(() => undefined);
        await local.handle.close().catch(() => undefined);
      };
      return { path, digest, inPlace: true, dispose };
    }
    await local?.handle.close();
  }
  const scratch = await scratchDir(options.workDir, sidecar.id);
  const dispose = () => rm(scratch, { recursive: true, force: true });
  try {
    const source = await open(storage, key);
    const digest = new DigestStream();
    if (sidecar.artifact.container === 'tar') {
      const dir = join(scratch, 'dump');
      await mkdir(dir, { mode: 0o700 });
      await unpack(source, digest, dir, options.signal);
      return { path: dir, digest: Promise.resolve(digest.digest()), inPlace: false, dispose };
    }
    const file = join(scratch, sidecar.artifact.file);
    await pipeline(source, digest, createWriteStream(file, { mode: 0o600 }), { signal: options.signal });
    return { path: file, digest: Promise.resolve(digest.digest()), inPlace: false, dispose };
  } catch (error) {
    await dispose();
    // A damaged tar: hash what is stored (the tar parser stopped reading it) for the report.
    if (error instanceof UnpackError) throw new ArchiveUnreadableError(key, error.message, await hashStored(storage, key));
    throw error;
  }
}

/**
 * source -> digest -> tar unpack into `dir`. node-tar refuses absolute paths and `..`
 * (a hostile archive cannot write outside `dir`); `close` fires once every file is written.
 */
async function unpack(source: Readable, digest: DigestStream, dir: string, signal?: AbortSignal): Promise<void> {
  const { extract: tarExtract } = await import('tar'); // loaded only for directory-format backups
  return new Promise((resolve, reject) => {
    const sink = tarExtract({ cwd: dir, strict: true });
    const fail = (error: unknown) => {
      source.destroy();
      reject(error instanceof Error ? error : new Error(String(error)));
    };
    signal?.addEventListener('abort', () => fail(signal.reason), { once: true });
    source.on('error', fail);
    digest.on('error', fail);
    sink.on('error', (error: unknown) => fail(new UnpackError(error instanceof Error ? error.message : String(error))));
    sink.on('close', () => resolve());
    source.pipe(digest).pipe(sink);
  });
}

/**
 * sha256 and size of an open file, read with positioned reads from its start (so another
 * reader of the same file is not disturbed) through one reused 1 MiB buffer.
 */
export async function hashHandle(handle: FileHandle, signal?: AbortSignal): Promise<Digest> {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(1024 * 1024);
  let bytes = 0;
  for (;;) {
    signal?.throwIfAborted();
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, bytes);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    bytes += bytesRead;
  }
  return { bytes, sha256: hash.digest('hex') };
}

/** Runs `fn` with a private (0700) scratch directory of this run (under workDir, else the OS temp dir), removed afterwards. */
export async function withScratchDir<T>(workDir: string | undefined, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await scratchDir(workDir, 'scratch');
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
