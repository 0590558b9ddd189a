import { createWriteStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open as openFile, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { artifactKey } from '../catalog/catalog.js';
import { scratchDir } from '../platform/run-dir.js';
import type { Sidecar, StageRecordJson } from '../catalog/sidecar.js';
import { errnoCode, ExitCode } from '../errors.js';
import { authenticateArtifact, openArtifact } from '../pipeline/artifact.js';
import type { DecodeKeys } from '../pipeline/codecs/index.js';
import { DigestMismatchError, PipelineError } from '../pipeline/errors.js';
import { digestOf, DigestStream, hashFile, hashHandle, type Digest } from '../pipeline/digest.js';
import { HostileEntryError, NotFoundError, type Storage } from '../storage/storage.js';
import { storageError } from './storage-errors.js';
import { workDirFailure } from './work-dir.js';
import type { ChildRun } from '../pg/dump.js';
import { readToc, type TocEntry } from '../pg/toc.js';

/** An artifact made readable by pg_restore on this machine, with the digest of its stored bytes. */
export interface LocalArchive {
  /**
   * A custom-format file or a directory-format directory. For an archive pg_restore reads
   * from its stdin (`stream`), the decoded head of the archive, written by `toc()`: enough
   * for pg_restore to list the entries and print those without data, nothing more.
   */
  path: string;
  /** True when pg_restore reads the stored file itself (its digest may still be running). */
  inPlace: boolean;
  /**
   * Set when pg_restore is to read the archive from its stdin, decoded as it goes
   * (core/streamed-archive.ts): `open()` gives that stream, once.
   */
  stream: { open(): Promise<Readable> } | null;
  /** The archive's table of contents (`pg_restore --list`); the first read of `path`. */
  toc(pgRestore: string, run: ChildRun): Promise<TocEntry[]>;
  /**
   * sha256 and size of the bytes as stored. Computed while unpacking or downloading; for
   * a custom-format archive used in place, it is still being computed when openArchive
   * returns, so a caller may run pg_restore alongside it (restore awaits it first); for a
   * streamed one, computed by the stream.
   */
  digest(): Promise<Digest>;
  /**
   * What differs between the decoded archive and the sidecar's plaintext digest, or what
   * damage decoding found: for an artifact decoded into a custom-format file, that file is
   * hashed alongside whatever the caller does next (restore awaits it before it changes
   * anything; verify with its verdict); for a streamed one, the stream's findings;
   * everything else was checked before openArchive returned. [] when nothing differs.
   */
  plaintextProblems(): Promise<string[]>;
  /** Removes whatever was unpacked or downloaded. */
  dispose(): Promise<void>;
}

/**
 * Where the backup's file should be, the storage holds something backupctl never writes
 * (a symlink, a FIFO, a device, a directory): it is not read. The backup cannot be
 * trusted as it is: a verification fails (exit 3) and a restore is refused.
 */
export class ArtifactHostileError extends Error {
  constructor(readonly key: string, readonly reason: string) {
    super(reason);
    this.name = 'ArtifactHostileError';
  }
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

/**
 * Everything that differs between the archive as read and its sidecar: the stored bytes'
 * size and sha256, the plaintext's, and damage a stage found. Waits for a streamed
 * archive to be read to its end.
 */
export async function archiveProblems(sidecar: Sidecar, archive: Pick<LocalArchive, 'digest' | 'plaintextProblems'>): Promise<string[]> {
  const [stored, plaintext] = await Promise.all([archive.digest(), archive.plaintextProblems()]);
  // Stored bytes that are not the ones written explain whatever decoding them then found.
  const mismatches = digestMismatches('artifact', sidecar.artifact, stored);
  return mismatches.length > 0 ? mismatches : plaintext;
}

/** Differences between what the sidecar promises and what was read. */
export function digestMismatches(what: string, expected: { bytes: number; sha256: string }, actual: Digest): string[] {
  const problems: string[] = [];
  if (actual.bytes !== expected.bytes) problems.push(`${what}: size is ${actual.bytes} bytes, the sidecar says ${expected.bytes}`);
  if (actual.sha256 !== expected.sha256) problems.push(`${what}: sha256 is ${actual.sha256}, the sidecar says ${expected.sha256}`);
  return problems;
}

/** The stored object as a stream; missing: ArtifactMissingError, not a regular file: ArtifactHostileError. */
export async function openStored(storage: Storage, key: string): Promise<Readable> {
  try {
    return await storage.get(key);
  } catch (error) {
    if (error instanceof NotFoundError) throw new ArtifactMissingError(key);
    if (error instanceof HostileEntryError) throw new ArtifactHostileError(key, error.message);
    throw storageError(error, storage.location, `reading ${key}`, 'read');
  }
}

/** A local object opened through the storage's checks (never a symlink, FIFO or device); missing: ArtifactMissingError. */
async function openLocal(storage: Storage, key: string): Promise<{ handle: FileHandle; size: number } | null> {
  if (!storage.capabilities.localFiles || !storage.openLocalFile) return null;
  try {
    return await storage.openLocalFile(key);
  } catch (error) {
    if (error instanceof NotFoundError) throw new ArtifactMissingError(key);
    if (error instanceof HostileEntryError) throw new ArtifactHostileError(key, error.message);
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
  return digestOf(await openStored(storage, key));
}

/**
 * A path another program can open to read exactly the file behind `handle` (Linux: the
 * process's file descriptor in /proc), or null where there is no such thing.
 */
function pathOfHandle(handle: FileHandle): string | null {
  const path = `/proc/${process.pid}/fd/${handle.fd}`;
  return existsSync(path) ? path : null;
}

export interface OpenArchiveOptions {
  workDir?: string | undefined;
  signal?: AbortSignal | undefined;
  /** What an encrypted or compressed artifact is decoded with (see core/stages.ts readKeys). */
  keys?: DecodeKeys | undefined;
}

/** True when the stages leave the stored bytes as pg_dump wrote them (version 1 sidecars have none). */
export function storedAsIs(stages: readonly StageRecordJson[]): boolean {
  return stages.every((stage) => stage.type === 'compression' && stage.codec === 'none');
}

/**
 * Makes the artifact of `sidecar` readable by pg_restore, hashing it in the same pass:
 * a custom-format archive on local storage that no stage changed is used in place (and
 * read once to hash it); anything else is streamed into a private scratch directory
 * (decoded through its stages, whose digests are all checked before this returns; a tar
 * is unpacked there). The caller compares the digest with the sidecar before trusting
 * the archive. Nothing decoded is used before it is all authenticated: decryption
 * releases plaintext chunk by chunk, and damage further on is only found at the end.
 */
export async function openArchive(storage: Storage, sidecar: Sidecar, options: OpenArchiveOptions): Promise<LocalArchive> {
  const key = artifactKey(sidecar.profile, sidecar.artifact.file);
  const asIs = storedAsIs(sidecar.artifact.stages);
  if (sidecar.artifact.container === 'pg-custom' && asIs) {
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
      return { path, inPlace: true, stream: null, toc: tocOf(path), digest: () => digest, plaintextProblems: async () => [], dispose };
    }
    await local?.handle.close();
  }
  const scratch = await scratchDir(options.workDir, sidecar.id);
  let hashing: Promise<unknown> = Promise.resolve();
  let file: FileHandle | null = null;
  /** The last stage writes the decoded file itself (see the catch below). */
  let intoFile = false;
  const custom = sidecar.artifact.container !== 'tar';
  // A tar extractor that was stopped may still be finishing a file: retry rather than fail.
  const dispose = async () => {
    await hashing.catch(() => undefined);
    await rm(scratch, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
  };
  // A custom-format file is hashed after it is written, alongside the caller's next step
  // (the plaintext digest is most of the decoding's CPU); a tar has no one file to hash.
  const expectedPlaintext = sidecar.artifact.plaintext;
  const hashAfter = !asIs && sidecar.artifact.container === 'pg-custom' && expectedPlaintext !== undefined;
  /** Every stream of the decode, destroyed on failure: a stage's child (zstd, blocked on a full pipe) must not outlive it. */
  const streams: Readable[] = [];
  let opened: ReturnType<typeof openArtifact> | null = null;
  try {
    const source = await openStored(storage, key);
    streams.push(source);
    // A custom-format archive goes into one file, opened here so that the last stage may
    // write it itself (zstd: the plaintext then never passes through this process).
    const path = custom ? join(scratch, `${sidecar.id}.dump`) : join(scratch, 'dump');
    file = custom ? await openFile(path, 'wx', 0o600) : null;
    // Made before the decode starts: no await may come between opening the decode and
    // reading it, or a failure in between (no identity opens the file) goes unheard.
    if (!file) await mkdir(path, { mode: 0o700 });
    const decoded = asIs
      ? null
      : openArtifact(source, sidecar.artifact.stages, {
          ...options.keys,
          expected: { stored: sidecar.artifact, plaintext: hashAfter ? undefined : expectedPlaintext },
          hashPlaintext: !hashAfter,
          outputFd: hashAfter ? file?.fd : undefined,
        });
    opened = decoded;
    intoFile = decoded?.intoFile ?? false;
    const digest = decoded ? null : new DigestStream();
    const plaintext: Readable = decoded ? decoded.stream : source.pipe(digest as DigestStream);
    streams.push(plaintext);
    if (!decoded) source.on('error', (error) => (digest as DigestStream).destroy(error));
    if (!file) {
      await unpack(plaintext, path, options.signal);
    } else {
      // Written by zstd itself, the stream only ends (empty) once the file is complete.
      const sink = decoded?.intoFile ? new Writable({ write: (_chunk, _encoding, callback) => callback() }) : createWriteStream('', { fd: file.fd, autoClose: false });
      await pipeline(plaintext, sink, { signal: options.signal });
      await file.close();
      file = null;
    }
    const stored = decoded ? (await decoded.verified).stored : (digest as DigestStream).digest();
    let plaintextProblems: Promise<string[]> = Promise.resolve([]);
    if (hashAfter) {
      plaintextProblems = hashFile(path, options.signal).then((digest) => digestMismatches('artifact plaintext', expectedPlaintext as Digest, digest));
      plaintextProblems.catch(() => undefined); // awaited by the caller
      hashing = plaintextProblems;
    }
    const problems = plaintextProblems;
    return { path, inPlace: false, stream: null, toc: tocOf(path), digest: async () => stored, plaintextProblems: () => problems, dispose };
  } catch (thrown) {
    for (const stream of streams) stream.destroy();
    // A stage's own failure (no identity opens the file, damage it found) explains what
    // followed from it (a tar extractor that got no archive): it is the error to judge.
    const cause = opened ? await opened.verified.then(() => null, (failure: unknown) => failure) : null;
    const error = cause instanceof PipelineError || (cause !== null && damageOf(cause) !== null) ? cause : thrown;
    // What is left, if anything, goes with the run's directory when the run ends.
    await file?.close().catch(() => undefined);
    await dispose().catch(() => undefined);
    if (options.signal?.aborted) throw thrown;
    // Damage (a tar that does not unpack, a stage that finds corruption, a digest that
    // differs): hash what is stored for the report.
    const damage = damageOf(error);
    if (damage !== null) throw new ArchiveUnreadableError(key, damage, await hashStored(storage, key, options.signal));
    // A stage that cannot decode (no identity opens the header, a passphrase that does not
    // fit) on bytes that differ from what was stored: that is damage, not a key problem.
    if (error instanceof PipelineError) {
      const stored = await hashStored(storage, key, options.signal);
      if (stored.sha256 !== sidecar.artifact.sha256 || stored.bytes !== sidecar.artifact.bytes) throw new ArchiveUnreadableError(key, error.message, stored);
      // zstd writing the file itself fails alike on damage and on a full scratch disk: a
      // decode that writes nothing tells them apart (damage is a verdict, the disk is not).
      if (intoFile) {
        const decodeError = await authenticateArtifact(await openStored(storage, key), sidecar.artifact.stages, {
          ...options.keys,
          expected: { stored: sidecar.artifact, plaintext: expectedPlaintext },
        }).then(
          () => null,
          (failure: unknown) => failure ?? new Error('decoding failed'),
        );
        if (decodeError === null) throw await workDirFailure(error, options.workDir, { key, needs: expectedPlaintext?.bytes, custom, decoding: true });
        const found = damageOf(decodeError);
        if (found !== null) throw new ArchiveUnreadableError(key, found, stored);
        // It does not decode without writing either (no identity opens it...): that is the error.
        throw error;
      }
    }
    throw await workDirFailure(error, options.workDir, { key, needs: expectedPlaintext?.bytes, custom });
  }
}

/** An archive's table of contents, read from the file or directory at `path`. */
function tocOf(path: string): LocalArchive['toc'] {
  return (pgRestore, run) => readToc(pgRestore, path, run);
}

/**
 * The reason an artifact is damaged, when `error` says it is: a tar that does not unpack,
 * a stage that finds corruption (age authentication, zstd checksums), a digest that
 * differs from the sidecar's. Null for everything else (a missing key, the storage).
 */
export function damageOf(error: unknown): string | null {
  if (error instanceof UnpackError) return error.message;
  if (error instanceof DigestMismatchError) return error.message;
  if (error instanceof PipelineError && error.exitCode === ExitCode.VERIFY_FAILED) return error.message;
  return null;
}

/** Files a command reads whole (the globals script): bounded. */
const MAX_TEXT_FILE_BYTES = 64 * 1024 * 1024;

/**
 * A small stored file (the globals script) read whole and decoded through its stages;
 * its stored and plaintext digests are checked against `expected` before it is returned.
 * Missing: ArtifactMissingError; damaged or not matching: ArchiveUnreadableError.
 */
export async function readStoredFile(
  storage: Storage,
  key: string,
  expected: { bytes: number; sha256: string; stages: readonly StageRecordJson[]; plaintext?: Digest | undefined },
  keys: DecodeKeys | undefined,
): Promise<Buffer> {
  let stored: Buffer;
  try {
    stored = await storage.getBytes(key, MAX_TEXT_FILE_BYTES);
  } catch (error) {
    if (error instanceof NotFoundError) throw new ArtifactMissingError(key);
    if (error instanceof HostileEntryError) throw new ArtifactHostileError(key, error.message);
    throw storageError(error, storage.location, `reading ${key}`, 'read');
  }
  const storedDigest = { bytes: stored.length, sha256: createHash('sha256').update(stored).digest('hex') };
  const differs = digestMismatches(key, expected, storedDigest);
  if (differs.length > 0) throw new ArchiveUnreadableError(key, differs.join('; '), storedDigest);
  if (storedAsIs(expected.stages)) return stored;
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    const decoded = openArtifact(Readable.from([stored]), expected.stages, { ...keys, expected: { stored: storedDigest, plaintext: expected.plaintext } });
    for await (const chunk of decoded.stream) {
      size += (chunk as Buffer).length;
      if (size > MAX_TEXT_FILE_BYTES) throw new ArchiveUnreadableError(key, `decodes to more than ${MAX_TEXT_FILE_BYTES} bytes`, storedDigest);
      chunks.push(chunk as Buffer);
    }
    await decoded.verified;
  } catch (error) {
    const damage = damageOf(error);
    if (damage !== null) throw new ArchiveUnreadableError(key, damage, storedDigest);
    throw error;
  }
  return Buffer.concat(chunks);
}

/**
 * source -> tar unpack into `dir`. node-tar refuses absolute paths and `..` (a hostile
 * archive cannot write outside `dir`); `close` fires once every file is written. On a
 * failure the extractor is stopped and given a moment to finish the file it is writing,
 * so that nothing is written into `dir` after this rejects.
 */
async function unpack(source: Readable, dir: string, signal?: AbortSignal): Promise<void> {
  const { extract: tarExtract } = await import('tar'); // loaded only for directory-format backups
  return new Promise((resolve, reject) => {
    const sink = tarExtract({ cwd: dir, strict: true });
    let failure: Error | null = null;
    const fail = (error: unknown) => {
      if (failure) return;
      failure = error instanceof Error ? error : new Error(String(error));
      source.unpipe(sink);
      source.destroy();
      // The extractor closes once the file it was writing is done; when it never does (it
      // had nothing), the timer settles: it keeps the process alive until then, or a run
      // with nothing else pending would end with the promise unsettled (exit 13, no word).
      const timer = setTimeout(() => reject(failure as Error), 2_000);
      sink.once('close', () => {
        clearTimeout(timer);
        reject(failure as Error);
      });
      sink.end();
    };
    signal?.addEventListener('abort', () => fail(signal.reason), { once: true });
    source.on('error', fail);
    // Failed before it was handed over (its 'error' went by already): that failure it is.
    if (source.destroyed) fail(source.errored ?? new Error('the archive stream ended before it was read'));
    // A full disk is the work directory's (see workDirFailure); anything else the tar
    // extractor meets (a bad header, a path it refuses, ENOENT...) is the archive's.
    const full = (error: unknown) => errnoCode(error) === 'ENOSPC' || errnoCode(error) === 'EDQUOT';
    sink.on('error', (error: unknown) => fail(full(error) ? error : new UnpackError(error instanceof Error ? error.message : String(error))));
    sink.on('close', () => {
      if (!failure) resolve();
    });
    source.pipe(sink);
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
