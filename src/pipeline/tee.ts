import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';

/**
 * Passes every chunk through and also offers it to a side reader (`side`, a Readable to
 * hand to whoever wants a look: `pg_restore --list` reading the archive's table of
 * contents while it is being stored). The side reader may stop early: once `side` is
 * destroyed (or fails), it gets nothing more, and the main flow goes on untouched. While
 * it reads, its pace counts too, so memory stays bounded either way.
 */
export function teeToSide(): { transform: Transform; side: Readable } {
  const side = new PassThrough({ highWaterMark: 1024 * 1024 });
  let open = true;
  let waiting: (() => void) | null = null;
  const close = () => {
    open = false;
    const resume = waiting;
    waiting = null;
    resume?.();
  };
  side.on('close', close);
  side.on('error', close);
  const transform = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      this.push(chunk);
      if (!open || side.write(chunk)) {
        callback();
        return;
      }
      waiting = () => callback();
      side.once('drain', () => {
        const resume = waiting;
        waiting = null;
        resume?.();
      });
    },
    flush(callback: TransformCallback) {
      if (open) side.end();
      callback();
    },
    destroy(error, callback) {
      if (open) side.destroy();
      callback(error);
    },
  });
  return { transform, side };
}
