import { finished, pipeline, type Duplex, type Readable, type Transform } from 'node:stream';
import { stageFromRecord, type DecodeKeys } from './codecs/index.js';
import { DigestStream, type Digest } from './digest.js';
import { compareDigests, DigestMismatchError, type DigestDifference } from './errors.js';
import { reclaimer } from './reclaim.js';
import { checkStageOrder, type Stage, type StageRecord } from './stage.js';

/**
 * The first write chain (kept for src/core/create.ts until it moves to buildWriteChain,
 * below, which also gives the plaintext digest and the stage records):
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

// ---------------------------------------------------------------------------------------
// Stage chains: the write chain and openArtifact (see stage.ts)

/** What a finished write chain vouches for; the sidecar records all three. */
export interface WriteResult {
  /** The source's bytes (pg_dump's output), before any stage. */
  plaintext: Digest;
  /** The bytes handed to storage, after every stage. */
  stored: Digest;
  /** Each stage's record, in write order (the sidecar's `artifact.stages`). */
  stages: StageRecord[];
}

export interface WriteChain {
  /** The stages' suffixes (e.g. `.zst.age`); the caller puts the container's (`.dump`) first. */
  suffix: string;
  /** Hand this to storage.put. */
  output: Readable;
  /** Valid once `output` has ended. */
  result(): WriteResult;
}

/** True when the stages leave the bytes as they are (none, or only `none` compression). */
function isIdentity(stages: readonly { type: string; name: string }[]): boolean {
  return stages.every((stage) => stage.type === 'compression' && stage.name === 'none');
}

/** Closes streams that will never run (without an error: nobody listens to them yet). */
function closeAll(streams: readonly Readable[]): void {
  for (const stream of streams) stream.destroy();
}

/**
 * source -> plaintext digest -> stage encoders in order -> stored digest -> `output`.
 * Node streams end to end: storage's pace reaches the source. An error anywhere destroys
 * the whole chain (the source included), so storage.put fails and a child producing the
 * source sees its stdout closed. A stage that cannot run here (zstd not installed) throws
 * at once, after closing the source. `onProgress` gets the plaintext bytes read so far.
 */
export function buildWriteChain(source: Readable, stages: readonly Stage[], onProgress?: (bytes: number) => void): WriteChain {
  const encoders: Duplex[] = [];
  try {
    checkStageOrder(stages);
    for (const stage of stages) encoders.push(stage.encode());
  } catch (error) {
    closeAll([...encoders, source]);
    throw error;
  }
  const reclaim = reclaimer();
  const plaintext = new DigestStream((bytes) => {
    onProgress?.(bytes);
    reclaim(bytes);
  });
  // Hash once when the stages change nothing.
  const stored = isIdentity(stages) ? plaintext : new DigestStream();
  const chain: Array<Readable | Duplex> = [source, plaintext, ...encoders];
  if (stored !== plaintext) chain.push(stored);
  pipeline(chain as [Readable, ...Duplex[]], () => undefined);
  return {
    suffix: stages.map((stage) => stage.suffix).join(''),
    // The end of the chain: with identity stages (`none`) that is their pass-through, whose
    // bytes are the plaintext digest's.
    output: chain[chain.length - 1] as Readable,
    result: () => ({ plaintext: plaintext.digest(), stored: stored.digest(), stages: stages.map((stage) => stage.record()) }),
  };
}

export interface OpenArtifactOptions extends DecodeKeys {
  /** From the sidecar: the stored bytes' digest, and the plaintext's when it has one. */
  expected: { stored: Digest; plaintext?: Digest | undefined };
  /** Gets the stored bytes read so far. */
  onProgress?: (bytes: number) => void;
  /**
   * False: the plaintext is not hashed here (the caller hashes what it wrote, alongside
   * its next step: core/archive.ts); the stored digest and every stage's own checks still
   * hold before the stream ends. Default true.
   */
  hashPlaintext?: boolean;
  /**
   * With `hashPlaintext: false`: an open file for the plaintext. When the last decoding
   * stage can write into it itself (zstd), it does, and `stream` gives nothing
   * (`OpenedArtifact.intoFile`); otherwise the caller writes `stream` there.
   */
  outputFd?: number | undefined;
}

export interface OpenedArtifact {
  /**
   * The plaintext (what pg_dump wrote). It fails instead of ending when a stage fails
   * (AGE_*, CODEC_*) or a digest does not match (DigestMismatchError). Encrypted chunks
   * are authentic when emitted, but damage further on is only found when reached: to act
   * on nothing unauthenticated, read it all first (authenticateArtifact).
   */
  stream: Readable;
  /**
   * Settles when `stream` has been read to the end: resolves with both digests as read
   * (plaintext null when not hashed: `hashPlaintext: false`), or rejects as the stream fails.
   */
  verified: Promise<{ stored: Digest; plaintext: Digest | null }>;
  /** The plaintext went into `outputFd`, written by the last stage itself. */
  intoFile: boolean;
}

/**
 * One way to read an artifact back, for verify, restore and copy: the stored bytes are
 * hashed, decoded through the stages of `records` in reverse order (an empty list, an old
 * sidecar's, is the identity), the plaintext is hashed, and at the end both digests are
 * checked against `expected`.
 */
export function openArtifact(stored: Readable, records: readonly StageRecord[], options: OpenArtifactOptions): OpenedArtifact {
  const decoders: Duplex[] = [];
  let stages: Stage[];
  let intoFile = false;
  try {
    stages = [...records].reverse().map((record) => stageFromRecord(record, options));
    const last = stages[stages.length - 1];
    const into = options.outputFd !== undefined && options.hashPlaintext === false && last?.decodeInto ? last : null;
    for (const stage of stages) decoders.push(stage === into ? (stage.decodeInto as (fd: number) => Duplex)(options.outputFd as number) : stage.decode());
    intoFile = into !== null;
  } catch (error) {
    closeAll([...decoders, stored]);
    throw error;
  }
  const reclaim = reclaimer();
  const identity = isIdentity(stages);
  const hashPlaintext = identity || options.hashPlaintext !== false;
  // Without a plaintext digest stage the stored digest is checked where it is final: a
  // mismatch then fails the chain before its end, as the plaintext stage's check would.
  const storedDigest = new DigestStream(
    (bytes) => {
      options.onProgress?.(bytes);
      reclaim(bytes);
    },
    identity ? (digest) => check(digest, digest) : hashPlaintext ? undefined : (digest) => check(digest, null),
  );
  const check = (storedActual: Digest, plaintextActual: Digest | null): Error | null => {
    const differences: DigestDifference[] = compareDigests('stored', options.expected.stored, storedActual);
    if (options.expected.plaintext && plaintextActual) differences.push(...compareDigests('plaintext', options.expected.plaintext, plaintextActual));
    return differences.length > 0 ? new DigestMismatchError(differences) : null;
  };
  const plaintextDigest = identity ? storedDigest : hashPlaintext ? new DigestStream(undefined, (digest) => check(storedDigest.digest(), digest)) : null;
  const chain: Array<Readable | Duplex> = [stored, storedDigest, ...decoders];
  if (plaintextDigest && plaintextDigest !== storedDigest) chain.push(plaintextDigest);
  pipeline(chain as [Readable, ...Duplex[]], () => undefined);
  // The end of the chain: with identity stages (`none`), their pass-through.
  const end = chain[chain.length - 1] as Readable;
  const verified = new Promise<{ stored: Digest; plaintext: Digest | null }>((resolve, reject) => {
    finished(end, { writable: false }, (error) => {
      if (error) reject(error);
      else resolve({ stored: storedDigest.digest(), plaintext: plaintextDigest?.digest() ?? null });
    });
  });
  verified.catch(() => undefined); // the stream reports the same failure; awaiting `verified` still rejects
  return { stream: end, verified, intoFile };
}

/**
 * Reads a whole artifact through openArtifact and discards the plaintext: resolves with
 * the digests once everything is authenticated, or rejects with the first failure. Run it
 * before anything acts on the plaintext (a restore into a live database).
 */
export async function authenticateArtifact(stored: Readable, records: readonly StageRecord[], options: OpenArtifactOptions): Promise<{ stored: Digest; plaintext: Digest | null }> {
  const opened = openArtifact(stored, records, options);
  opened.stream.resume();
  return opened.verified;
}
