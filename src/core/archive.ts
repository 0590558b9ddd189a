import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { artifactKey } from '../catalog/catalog.js';
import { scratchDir } from '../platform/run-dir.js';
import type { Sidecar } from '../catalog/sidecar.js';
import { errnoCode } from '../errors.js';
import { digestOf, DigestStream, hashFile, type Digest } from '../pipeline/digest.js';
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

/** Re-hashes a stored object without keeping it (a local file through one reused buffer). */
export async function hashStored(storage: Storage, key: string, signal?: AbortSignal): Promise<Digest> {
  if (storage.localPath) {
    const path = storage.localPath(key);
    try {
      return await hashFile(path, signal);
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') throw new ArtifactMissingError(key);
      if (signal?.aborted) throw error;
      throw storageError(error, storage.location, `reading ${key}`);
    }
  }
  return digestOf(await open(storage, key));
}

/**
 * Makes the artifact of `sidecar` readable by pg_restore, hashing it in the same pass:
 * a custom-format archive on local storage is used in place (and read once to hash
 * it); anything else is streamed into a private scratch directory (a tar is unpacked
 * there). The caller compares the digest with the sidecar before trusting the archive.
 */
export async function openArchive(storage: Storage, sidecar: Sidecar, options: { workDir?: string | undefined; signal?: AbortSignal }): Promise<LocalArchive> {
  const key = artifactKey(sidecar.profile, sidecar.artifact.file);
  if (sidecar.artifact.container === 'pg-custom' && storage.localPath) {
    await storage.stat(key).catch((error: unknown) => {
      throw error instanceof NotFoundError ? new ArtifactMissingError(key) : storageError(error, storage.location, `reading ${key}`);
    });
    const digest = hashStored(storage, key, options.signal);
    digest.catch(() => undefined); // awaited by the caller
    return { path: storage.localPath(key), digest, inPlace: true, dispose: async () => undefined };
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

/** Runs `fn` with a private (0700) scratch directory of this run (under workDir, else the OS temp dir), removed afterwards. */
export async function withScratchDir<T>(workDir: string | undefined, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await scratchDir(workDir, 'scratch');
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
