import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { pipeline as pipelineCallback } from 'node:stream';
import { artifactKey } from '../catalog/catalog.js';
import type { Sidecar } from '../catalog/sidecar.js';
import { readToc, type TocEntry } from '../pg/toc.js';
import type { ChildRun } from '../pg/dump.js';
import { openArtifact } from '../pipeline/artifact.js';
import { DigestMismatchError, PipelineError } from '../pipeline/errors.js';
import { DigestStream, type Digest } from '../pipeline/digest.js';
import { scratchDir } from '../platform/run-dir.js';
import type { Storage } from '../storage/storage.js';
import { damageOf, digestMismatches, hashStored, openArchive, openStored, storedAsIs, type LocalArchive, type OpenArchiveOptions } from './archive.js';

export interface StreamedArchiveOptions extends OpenArchiveOptions {
  /**
   * The stored bytes' checksum is read before anything else (restore: before it touches a
   * database). On a storage without local files they are downloaded once, into the run's
   * scratch directory, hashed on the way, and decoded from that copy.
   */
  checksumFirst?: boolean | undefined;
}

/**
 * A custom-format artifact that pg_restore reads from its stdin, decoded on the way, so
 * that decoding (decryption, decompression, the download) overlaps the restore instead of
 * coming before it. For pg_restore with --jobs 1 into a database that is thrown away
 * unless every check passes: verify's throwaway database, restore's staging database. Any
 * other artifact (a directory-format tar, a local one stored as pg_dump wrote it, which
 * pg_restore reads in place) is opened as openArchive does.
 *
 * Contract of the archive returned:
 * - `toc()` decodes the archive's head only: the bytes `pg_restore --list` reads before it
 *   exits, written to `path` as they go by. That head holds the whole table of contents,
 *   so pg_restore can list it again (--schema/--table) and print the definitions of
 *   entries without data (--use-list) from `path`. Call it before anything reads `path`.
 * - `stream.open()` decodes the whole artifact once more, hashing the stored bytes and the
 *   plaintext. A stage that finds damage fails the stream; digests are only final at its
 *   end: nothing decoded is to be trusted before `digest()` and `plaintextProblems()` say
 *   that nothing differs, and they wait for the stream to be read to its end.
 * - `digest()`: the stored bytes as that full read saw them; before or without a complete
 *   full read, the stored object is read (or the local copy hashed) once more instead.
 */
export async function openStreamedArchive(storage: Storage, sidecar: Sidecar, options: StreamedArchiveOptions): Promise<LocalArchive> {
  const asIs = storedAsIs(sidecar.artifact.stages);
  if (sidecar.artifact.container !== 'pg-custom' || (asIs && storage.capabilities.localFiles)) return openArchive(storage, sidecar, options);
  const key = artifactKey(sidecar.profile, sidecar.artifact.file);
  const scratch = await scratchDir(options.workDir, sidecar.id);
  const head = join(scratch, `${sidecar.id}.head.dump`);
  let copy: { path: string; digest: Digest } | null = null;
  /** The complete decode, once stream.open() was called: its digests, or why it failed. */
  let full: Promise<{ stored: Digest; plaintext: Digest | null }> | null = null;
  let rehashed: Promise<Digest> | null = null;
  /** Damage the head's decoding found (before the table of contents was read whole). */
  let headDamage: string | null = null;
  /** The stored object, opened at once so that a missing or hostile one fails here, as with openArchive. */
  let opened: Readable | null = null;
  const dispose = async () => {
    opened?.destroy();
    await full?.catch(() => undefined);
    await rm(scratch, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
  };
  const source = async (): Promise<Readable> => {
    if (copy) return createReadStream(copy.path, { highWaterMark: 1024 * 1024 });
    const first = opened;
    opened = null;
    return first ?? openStored(storage, key);
  };
  const decode = (stored: Readable, hashPlaintext: boolean) =>
    openArtifact(stored, sidecar.artifact.stages, { ...options.keys, expected: { stored: sidecar.artifact }, hashPlaintext });
  try {
    if (options.checksumFirst && !storage.capabilities.localFiles) {
      const path = join(scratch, `${sidecar.id}.stored`);
      const digest = new DigestStream();
      await pipeline(await openStored(storage, key), digest, createWriteStream(path, { mode: 0o600 }), { signal: options.signal });
      copy = { path, digest: digest.digest() };
    } else {
      opened = await openStored(storage, key);
    }
  } catch (error) {
    await dispose().catch(() => undefined);
    throw error;
  }

  const digest = async (): Promise<Digest> => {
    if (full) {
      try {
        return (await full).stored;
      } catch (error) {
        if (options.signal?.aborted) throw error;
        // Damage or a read that stopped: what is stored is hashed again below.
      }
    }
    if (copy) return copy.digest;
    rehashed ??= hashStored(storage, key, options.signal);
    return rehashed;
  };

  const plaintextProblems = async (): Promise<string[]> => {
    if (!full) return headDamage === null ? [] : [headDamage];
    try {
      const read = await full;
      const expected = sidecar.artifact.plaintext;
      return expected && read.plaintext ? digestMismatches('artifact plaintext', expected, read.plaintext) : [];
    } catch (error) {
      if (options.signal?.aborted) throw error;
      // A stored digest that differs is reported from digest(); other damage (a stage
      // that failed its own checks) is reported here. A read cut short says nothing.
      if (error instanceof DigestMismatchError) return [];
      const damage = damageOf(error);
      return damage === null ? [] : [damage];
    }
  };

  const toc = async (pgRestore: string, run: ChildRun): Promise<TocEntry[]> => {
    const decoded = decode(await source(), false);
    const file = createWriteStream(head, { mode: 0o600 });
    const written = finished(file);
    written.catch(() => undefined);
    let fileError: Error | null = null;
    const passing = new PassThrough();
    // Every chunk is in the head file before pg_restore sees it.
    const recorder = new Transform({
      transform(chunk: Buffer, _encoding, callback: TransformCallback) {
        if (file.write(chunk)) callback(null, chunk);
        else file.once('drain', () => callback(null, chunk));
      },
    });
    file.once('error', (error) => {
      fileError = error; // the scratch directory's disk, full or failing
      recorder.destroy(error);
    });
    /** Why the decode stopped, when it did not just stop because pg_restore had the TOC. */
    let decodeError: unknown = null;
    const piped = new Promise<void>((resolve) => {
      pipelineCallback(decoded.stream, recorder, passing, (error) => {
        // Stopped once pg_restore had the TOC: a premature close, not damage.
        if (error && !options.signal?.aborted) {
          headDamage = damageOf(error);
          decodeError = error;
        }
        resolve();
      });
    });
    try {
      return await readToc(pgRestore, passing, run);
    } catch (error) {
      await piped;
      // A stage that could not decode at all (no identity opens the file: exit 2) explains
      // why pg_restore saw no archive; damage is reported by the caller from headDamage.
      throw fileError ?? (decodeError instanceof PipelineError && headDamage === null ? decodeError : error);
    } finally {
      // readToc destroyed `passing` (pg_restore has what it needs): the pipeline stops the
      // decode, and what it found is known once it has; the head is complete once the
      // file is closed.
      await piped;
      file.end();
      await written.catch(() => undefined);
    }
  };

  const open = async (): Promise<Readable> => {
    if (full) throw new Error('the archive stream was opened already');
    const decoded = decode(await source(), true);
    full = decoded.verified;
    full.catch(() => undefined); // awaited through digest() and plaintextProblems()
    return decoded.stream;
  };

  return { path: head, inPlace: false, stream: { open }, toc, digest, plaintextProblems, dispose };
}
