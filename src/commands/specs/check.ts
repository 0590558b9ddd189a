import type { CommandSpec } from './spec.js';

export const check: CommandSpec = {
  name: 'check',
  summary: 'check that a profile is ready: config, server and credentials, clients, storage read/write, lock, verify server, notifiers',
  options: [],
  details: `Like pgBackRest's check, for a profile (--profile) or every profile of the config. Each
check is real and leaves nothing behind: the server is connected to with the profile's
credentials; the pg_dump, pg_restore and pg_dumpall found must be as new as the server;
a probe object is written to the storage, read back and removed; the lock must be free;
the verify server (verify.server) must take a connection and let a probe database be
created and dropped; scratch databases left by killed runs are reported; notification
targets are connected to (DNS, TCP, TLS) but sent nothing. Exit 0 only when every check
passes, 5 when one fails.`,
  examples: [{ command: 'backupctl check' }, { command: 'backupctl check --profile app --json' }],
  async run(ctx, _args, options) {
    return (await import('../check.js')).run(options as never, ctx);
  },
};
