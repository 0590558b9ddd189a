/**
 * The age header of a stored encrypted file held against the recipients its sidecar
 * records, with no key (see pipeline/age/recorded.ts): what verify's checksum level can say
 * of a header beyond the file's digest, which a swapped header or an edited sidecar may
 * have been made to match. The levels that decrypt make the same check as they read.
 */
import type { Readable } from 'node:stream';
import type { StageRecordJson } from '../catalog/sidecar.js';
import { checkRecordedRecipients, MAX_HEADER_BYTES, readHeader } from '../pipeline/age/index.js';
import { AgeError } from '../pipeline/errors.js';
import { HostileEntryError, NotFoundError, type Storage } from '../storage/storage.js';
import { ArtifactHostileError, ArtifactMissingError } from './archive.js';
import { storageError } from './storage-errors.js';

/**
 * [] when the file is not encrypted or its header has the recorded stanzas; else what
 * differs (one line). `file.bytes`: its size as recorded, which the caller has checked.
 */
export async function recordedHeaderProblems(
  storage: Storage,
  key: string,
  file: { bytes: number; stages: readonly StageRecordJson[] },
  signal?: AbortSignal,
): Promise<string[]> {
  const encryption = file.stages.find((stage) => stage.type === 'encryption');
  if (!encryption) return [];
  let source: Readable;
  try {
    // The header only (a longer one is refused by the parser): one small ranged read.
    source = await storage.get(key, { range: { offset: 0, length: Math.max(1, Math.min(file.bytes, MAX_HEADER_BYTES + 1)) }, signal });
  } catch (error) {
    if (error instanceof NotFoundError) throw new ArtifactMissingError(key);
    if (error instanceof HostileEntryError) throw new ArtifactHostileError(key, error.message);
    throw storageError(error, storage.location, `reading ${key}`, 'read');
  }
  try {
    const { header } = await readHeader(source);
    checkRecordedRecipients(header, encryption.recipients);
    return [];
  } catch (error) {
    if (error instanceof AgeError) return [`${key}: ${error.message}`];
    if (signal?.aborted) throw error;
    throw storageError(error, storage.location, `reading ${key}`, 'read');
  } finally {
    source.destroy();
  }
}
