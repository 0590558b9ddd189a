import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Collector = (options?: { type?: 'minor' }) => void;

let collector: Collector | null | undefined;

/**
 * Runs a garbage collection now: 'minor' (the young generation only) or 'full' (the whole
 * heap: a mark-compact). For the few places where backupctl knows that much memory has
 * just become garbage that V8 would keep until late; each caller says why, with its
 * measurements. V8's collector is reached through `--expose-gc`, set at run time; where it
 * cannot be had, nothing happens.
 *
 * A full collection is `gc()` without options: Node 20's V8 does not know
 * `{ type: 'major' }` and makes it a young-generation collection (`--trace-gc`).
 */
export function collectGarbage(kind: 'minor' | 'full'): void {
  if (collector === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      collector = runInNewContext('gc') as Collector;
    } catch {
      collector = null;
    }
  }
  if (kind === 'minor') collector?.({ type: 'minor' });
  else collector?.();
}
