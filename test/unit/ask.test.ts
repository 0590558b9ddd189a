/**
 * askOnTerminal (output/ask.ts): the confirmation a destructive restore asks on a terminal.
 * Ctrl-C there is an interrupt (exit 130) like Ctrl-C anywhere else in a run; it used to be
 * readline's "Aborted with Ctrl+C", which ended the run as a failure (exit 1). Ctrl-D is no
 * answer (the caller cancels: exit 2).
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ExitCode, InterruptedError } from '../../src/errors.js';
import { askOnTerminal } from '../../src/output/ask.js';

function terminal() {
  const input = new PassThrough();
  const output = new PassThrough();
  output.resume();
  return { input, output };
}

/** The answer to the question on a fresh terminal where `keys` are typed shortly after it is asked. */
function typed(keys: string): Promise<string> {
  const io = terminal();
  const answer = askOnTerminal('name? ', io);
  setTimeout(() => io.input.write(keys), 20);
  return answer;
}

describe('askOnTerminal', () => {
  it('returns the line typed', async () => {
    await expect(typed('app\r')).resolves.toBe('app');
  });

  it('Ctrl-C is an interrupt: InterruptedError, exit 130', async () => {
    const error = await typed('ap\x03').then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InterruptedError);
    expect((error as InterruptedError).exitCode).toBe(ExitCode.INTERRUPTED);
  });

  it('Ctrl-D is no answer: an empty one', async () => {
    await expect(typed('\x04')).resolves.toBe('');
  });

  it("the run's signal (SIGTERM) ends the question as an interrupt", async () => {
    const io = terminal();
    const controller = new AbortController();
    const answer = askOnTerminal('name? ', { ...io, signal: controller.signal });
    setTimeout(() => controller.abort(new InterruptedError('SIGTERM')), 20);
    await expect(answer).rejects.toThrow(/interrupted by SIGTERM/);
  });
});
