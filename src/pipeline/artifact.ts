import { pipeline, type Readable, type Transform } from 'node:stream';
import { DigestStream, type Digest } from './digest.js';
import { reclaimer } from './reclaim.js';

/**
 * The write chain of an artifact, after pgBackRest's filter chains:
 *
 *   source bytes -> [compress] -> [encrypt] -> hash of stored bytes -> storage
 *
 * Each optional stage contributes a file-name suffix (and, through its caller, its
 * sidecar facts); adding a stage (zstd, age) means adding it to `stages` and nothing
 * else. An error anywhere destroys the whole chain, so the consumer's put fails and
 * the producer (pg_dump's stdout) is closed.
 */
export interface ArtifactStage {
  /** Appended to the artifact file name, e.g. `.zst`, `.age`. */
  suffix: string;
  transform(): Transform;
}

export interface ArtifactChain {
  /** File name suffix after `<id>`, e.g. `.dump`. */
  suffix: string;
  /** Hand this to storage.put. */
  output: Readable;
  /** Digest of the stored bytes, valid once `output` has ended. */
  stored(): Digest;
}

export function buildArtifactChain(
  source: Readable,
  baseSuffix: string,
  stages: readonly ArtifactStage[],
  onProgress?: (bytes: number) => void,
): ArtifactChain {
  const transforms = stages.map((stage) => stage.transform());
  const reclaim = reclaimer();
  const digest = new DigestStream((bytes) => {
    onProgress?.(bytes);
    reclaim(bytes);
  });
  const suffix = baseSuffix + stages.map((stage) => stage.suffix).join('');
  // Errors surface through `output` (consumed by storage.put); the callback only
  // keeps a failed chain from becoming an unhandled error.
  pipeline([source, ...transforms, digest], () => undefined);
  return { suffix, output: digest, stored: () => digest.digest() };
}

/** source -> transform with errors propagated both ways; returns the transform. */
export function pipeThrough<T extends Transform>(source: Readable, transform: T): T {
  pipeline(source, transform, () => undefined);
  return transform;
}
