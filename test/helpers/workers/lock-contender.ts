/**
 * One contender of the lock race test (test/integration/lock-race.test.ts): waits for
 * "go" on stdin, tries once to take the profile's lock, and when it wins holds it for
 * HOLD_MS, then prints `won <startedMs> <releasedMs>`; when the lock is busy it prints `busy`.
 */
import { acquireProfileLock } from '../../../src/core/lock.js';
import { silentReporter } from '../../../src/core/runtime.js';
import { BackupctlError, ExitCode } from '../../../src/errors.js';
import { LocalStorage } from '../../../src/storage/local.js';

const [root, profile, holdMs] = process.argv.slice(2) as [string, string, string];
const storage = new LocalStorage(root);
const runtime = { now: () => new Date(), signal: new AbortController().signal, reporter: silentReporter };

process.stdin.once('data', async () => {
  try {
    const lock = await acquireProfileLock({ storage, profile, command: 'prune', runtime });
    const won = Date.now();
    await new Promise((resolve) => setTimeout(resolve, Number(holdMs)));
    const released = Date.now();
    await lock.release();
    process.stdout.write(`won ${won} ${released}\n`);
  } catch (error) {
    process.stdout.write(error instanceof BackupctlError && error.exitCode === ExitCode.BUSY ? 'busy\n' : `error ${(error as Error).message}\n`);
  }
  process.exit(0);
});
process.stdout.write('ready\n');
