import { InterruptedError } from '../errors.js';

/**
 * A question on `output`, the answer from `input`: a terminal (both are, or nothing asks).
 * Ctrl-C at the question is an interrupt, as anywhere else in a run: InterruptedError (exit
 * 130, what the run had begun undone), not readline's AbortError, which would end the run as
 * a failure (exit 1). Ctrl-D (end of input) leaves the question unanswered: the answer is
 * empty, so the caller's "not confirmed" applies (restore: cancelled, exit 2). The run's
 * `signal` (SIGTERM) ends the question as an interrupt too.
 */
export async function askOnTerminal(
  question: string,
  { input = process.stdin, output = process.stderr, signal }: { input?: NodeJS.ReadableStream; output?: NodeJS.WritableStream; signal?: AbortSignal } = {},
): Promise<string> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input, output, terminal: true });
  try {
    return await new Promise<string>((resolve, reject) => {
      // With a listener, readline emits Ctrl-C here instead of rejecting the question.
      rl.once('SIGINT', () => reject(new InterruptedError('SIGINT')));
      const onAbort = () => reject(signal?.reason instanceof InterruptedError ? signal.reason : new InterruptedError());
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      // Rejected only when the interface closes unanswered (Ctrl-D), or after one of the above.
      rl.question(question).then(resolve, () => resolve(''));
    });
  } finally {
    rl.close();
  }
}
