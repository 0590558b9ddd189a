import { Transform, type TransformCallback } from 'node:stream';

/**
 * Passes bytes through, but ends only once `done` resolves, and fails the stream if it
 * rejects. Put it right after a child's stdout: the child's EOF is not success; its
 * exit status is. A consumer that publishes on end (an atomic put) therefore never
 * publishes the output of a child that failed.
 */
export function gateOnExit(done: Promise<unknown>): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      done.then(
        () => callback(),
        (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
      );
    },
  });
}
