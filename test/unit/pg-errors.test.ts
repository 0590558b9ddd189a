/**
 * How failures of PostgreSQL connections, queries and client programs become one line,
 * a hint and an exit code (1: the operation failed; 2: fix the invocation or config;
 * 130: interrupted). Messages never carry the password.
 */
import { describe, expect, it } from 'vitest';
import { BackupctlError, ExitCode, InterruptedError } from '../../src/errors.js';
import { connectionError, queryError, READ_TABLES_HINT } from '../../src/pg/client.js';
import type { ConnectionSettings } from '../../src/pg/connection.js';
import { childFailure, firstErrorLine } from '../../src/pg/dump.js';
import { restoreFailureHint } from '../../src/pg/restore.js';

const PASSWORD = 'hunter2-Secret';

function settings(overrides: Partial<ConnectionSettings> = {}): ConnectionSettings {
  return {
    host: 'db.example.com',
    port: 5433,
    user: 'backup',
    database: 'app',
    password: PASSWORD,
    passwordSource: 'PGPASSWORD',
    sslmode: undefined,
    sslrootcert: undefined,
    sslcert: undefined,
    sslkey: undefined,
    ...overrides,
  };
}

/** A node-postgres / Node socket error as thrown by client.connect(). */
function pgError(code: string | undefined, message: string): Error {
  return Object.assign(new Error(message), code === undefined ? {} : { code });
}

function noSecret(error: BackupctlError): void {
  expect(error.message).not.toContain(PASSWORD);
  expect(error.hint ?? '').not.toContain(PASSWORD);
  expect(error.message).not.toContain('\n');
}

describe('connectionError', () => {
  it.each([
    ['ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.5:5433', ExitCode.FAILED, /^cannot connect to backup@db\.example\.com:5433\/app: connection refused$/, /db\.example\.com:5433/],
    ['ENOENT', 'connect ENOENT /run/postgresql/.s.PGSQL.5433', ExitCode.FAILED, /no server socket/, /running/],
    ['ENOTFOUND', 'getaddrinfo ENOTFOUND db.example.com', ExitCode.FAILED, /host db\.example\.com not found/, /host name/],
    ['EAI_AGAIN', 'getaddrinfo EAI_AGAIN db.example.com', ExitCode.FAILED, /not found/, /host name/],
    ['ETIMEDOUT', 'connect ETIMEDOUT', ExitCode.FAILED, /ETIMEDOUT/, /network/],
    ['EHOSTUNREACH', 'connect EHOSTUNREACH', ExitCode.FAILED, /EHOSTUNREACH/, /network/],
    ['28P01', 'password authentication failed for user "backup"', ExitCode.USAGE, /^password authentication failed for backup@db\.example\.com:5433\/app$/, /check the password from PGPASSWORD/],
    ['28000', 'no pg_hba.conf entry for host "10.0.0.9", user "backup", database "app", no encryption', ExitCode.USAGE, /server refused .*pg_hba\.conf entry/, /pg_hba\.conf/],
    ['3D000', 'database "app" does not exist', ExitCode.USAGE, /^database "app" does not exist on db\.example\.com:5433$/, /database name/],
    ['57P03', 'the database system is starting up', ExitCode.FAILED, /not accepting connections.*starting up/, /starting up, shutting down or in recovery: retry later/],
    ['53300', 'sorry, too many clients already', ExitCode.FAILED, /too many clients/, /CONNECTION LIMIT.*needs 4 at once.*retry later/],
  ] as const)('%s -> exit %i', (code, message, exitCode, text, hint) => {
    const error = connectionError(pgError(code, message), settings());
    expect(error).toBeInstanceOf(BackupctlError);
    expect(error.exitCode).toBe(exitCode);
    expect(error.message).toMatch(text);
    expect(error.hint).toMatch(hint);
    expect(error.cause).toBeInstanceOf(Error);
    noSecret(error);
  });

  it('a wrong password with no password given says so in the hint', () => {
    const error = connectionError(pgError('28P01', 'password authentication failed'), settings({ password: undefined, passwordSource: undefined }));
    expect(error.exitCode).toBe(ExitCode.USAGE);
    expect(error.hint).toMatch(/no password was given/);
  });

  it("a connection the config's password was withheld from (another role or server) says whose it is", () => {
    const withheld = settings({ user: 'postgres', password: undefined, passwordSource: undefined, withheldPassword: { source: 'passwordFile /etc/app.pw', owner: 'backup@db:5432' } });
    for (const error of [connectionError(pgError('28P01', 'password authentication failed'), withheld), connectionError(pgError(undefined, 'SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string'), withheld)]) {
      expect(error.exitCode).toBe(ExitCode.USAGE);
      expect(error.hint).toMatch(/passwordFile \/etc\/app\.pw\) is only sent to backup@db:5432: give postgres's password .* in PGPASSWORD or ~\/\.pgpass/);
    }
  });

  it.each([
    'SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string',
    'password authentication failed for user "backup"',
  ])('no password where the server wants one (%s) -> exit 2', (message) => {
    const error = connectionError(pgError(undefined, message), settings({ password: undefined, passwordSource: undefined }));
    expect(error.exitCode).toBe(ExitCode.USAGE);
    expect(error.message).toMatch(/asks .* for a password and none was given/);
    expect(error.hint).toMatch(/PGPASSWORD/);
  });

  it('anything else -> exit 1 with the driver message', () => {
    const error = connectionError(pgError('EPROTO', 'something odd happened'), settings());
    expect(error.exitCode).toBe(ExitCode.FAILED);
    expect(error.message).toBe('cannot connect to backup@db.example.com:5433/app: something odd happened');
    noSecret(error);
  });

  it('a non-Error value is still one line', () => {
    const error = connectionError('boom', settings());
    expect(error.exitCode).toBe(ExitCode.FAILED);
    expect(error.message).toContain('boom');
  });

  it('an IPv6 host is bracketed in the description', () => {
    const error = connectionError(pgError('ECONNREFUSED', 'x'), settings({ host: '::1' }));
    expect(error.message).toContain('backup@[::1]:5433/app');
  });
});

describe('queryError', () => {
  it('permission denied (42501) -> exit 1 with the hint its caller gives (a GRANT while reading tables), else a general one', () => {
    expect(queryError(pgError('42501', 'permission denied to create database'), 'cannot create database "x"').hint).toMatch(/lacks a privilege/);
    const error = queryError(pgError('42501', 'permission denied for table secret_data'), 'cannot count rows of "public"."secret_data"', READ_TABLES_HINT);
    expect(error.exitCode).toBe(ExitCode.FAILED);
    expect(error.message).toBe('cannot count rows of "public"."secret_data": permission denied for table secret_data');
    expect(error.hint).toMatch(/grant/i);
  });

  it('lock timeout (55P03) -> exit 1 with a lock hint', () => {
    const error = queryError(pgError('55P03', 'canceling statement due to lock timeout'), 'cannot count rows of "public"."t"');
    expect(error.exitCode).toBe(ExitCode.FAILED);
    expect(error.hint).toMatch(/lock/);
  });

  it("the server's HINT is kept: alone (out of shared memory, 53200), or after ours", () => {
    const withHint = (code: string, message: string, hint: string) => Object.assign(pgError(code, message), { hint });
    const memory = queryError(withHint('53200', 'out of shared memory', 'You might need to increase max_locks_per_transaction.'), 'cannot count rows of "public"."t"', READ_TABLES_HINT);
    expect(memory.exitCode).toBe(ExitCode.FAILED);
    expect(memory.hint).toBe('PostgreSQL: You might need to increase max_locks_per_transaction.');
    const permission = queryError(withHint('42501', 'permission denied for table t', 'Ask the owner.'), 'cannot count rows of "public"."t"', READ_TABLES_HINT);
    expect(permission.hint).toBe(`${READ_TABLES_HINT}; PostgreSQL: Ask the owner.`);
  });

  it('anything else -> exit 1, no hint', () => {
    const error = queryError(pgError('XX000', 'internal error'), 'cannot read database facts');
    expect(error.exitCode).toBe(ExitCode.FAILED);
    expect(error.hint).toBeUndefined();
  });
});

/** The error execa rejects with when a child fails. */
function execaFailure(fields: { exitCode?: number; signal?: string; stderr?: string; code?: string }): Error {
  return Object.assign(new Error('Command failed'), fields);
}

describe('firstErrorLine', () => {
  it('takes the first error line and strips the program and "error:" prefixes', () => {
    const stderr = [
      'pg_dump: warning: there are circular foreign-key constraints on this table:',
      'pg_dump: error: query failed: ERROR:  permission denied for table secret_data',
      'pg_dump: detail: Query was: LOCK TABLE public.secret_data IN ACCESS SHARE MODE',
    ].join('\n');
    expect(firstErrorLine(stderr)).toBe('query failed: ERROR:  permission denied for table secret_data');
  });

  it('finds FATAL lines', () => {
    expect(firstErrorLine('psql: FATAL:  role "x" does not exist\n')).toBe('FATAL:  role "x" does not exist');
  });

  it('without an error line, the first non-empty line', () => {
    expect(firstErrorLine('\n  something went wrong  \nmore\n')).toBe('something went wrong');
  });

  it('empty stderr -> empty string', () => {
    expect(firstErrorLine('')).toBe('');
  });

  it('CRLF line ends and pg_restore/pg_dumpall prefixes', () => {
    expect(firstErrorLine('pg_restore: error: could not read input file: end of file\r\n')).toBe('could not read input file: end of file');
    expect(firstErrorLine('pg_dumpall: error: query failed: ERROR:  permission denied for table pg_authid')).toBe(
      'query failed: ERROR:  permission denied for table pg_authid',
    );
  });

  it('names the statement pg_restore was running ("Command was:"), for an error raised inside a function', () => {
    const stderr = [
      'pg_restore: error: could not execute query: ERROR:  relation "events" does not exist',
      'LINE 1: SELECT count(*) FROM events',
      'QUERY:  SELECT count(*) FROM events',
      'CONTEXT:  SQL function "n_events" during startup',
      'Command was: REFRESH MATERIALIZED VIEW public.mv;',
    ].join('\n');
    expect(firstErrorLine(stderr)).toBe('could not execute query: ERROR:  relation "events" does not exist (in: REFRESH MATERIALIZED VIEW public.mv;)');
  });

  it('is at most 500 characters', () => {
    expect(firstErrorLine(`pg_dump: error: ${'x'.repeat(2000)}`)).toHaveLength(500);
  });
});

describe('childFailure', () => {
  it.each([
    [
      'permission denied',
      'pg_dump: error: query failed: ERROR:  permission denied for table secret_data\npg_dump: detail: Query was: LOCK TABLE public.secret_data IN ACCESS SHARE MODE\n',
      ExitCode.FAILED,
      /permission denied for table secret_data/,
      /grant/i,
    ],
    [
      'a lock timeout',
      'pg_dump: error: query failed: ERROR:  canceling statement due to lock timeout\npg_dump: detail: Query was: LOCK TABLE public.t IN ACCESS SHARE MODE\n',
      ExitCode.FAILED,
      /lock timeout/,
      /lock-wait-timeout/,
    ],
    [
      // pg_dump --lock-wait-timeout is a statement_timeout around its LOCK TABLE statements.
      '--lock-wait-timeout running out',
      'pg_dump: error: query failed: ERROR:  canceling statement due to statement timeout\npg_dump: detail: Query was: LOCK TABLE public.artist IN ACCESS SHARE MODE\n',
      ExitCode.FAILED,
      /statement timeout \(waiting to lock public\.artist\)/,
      /lock-wait-timeout/,
    ],
    [
      'could not obtain lock',
      'pg_dump: error: could not obtain lock on relation "public.t"\n',
      ExitCode.FAILED,
      /could not obtain lock/,
      /lock/,
    ],
    [
      'a wrong password',
      'pg_dump: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed for user "backup"\n',
      ExitCode.FAILED, // decided over backupctl's own connection first, by SQLSTATE; the text only picks the hint
      /password authentication failed/,
      /password/,
    ],
    [
      'no password',
      'pg_dump: error: connection to server at "127.0.0.1", port 5432 failed: fe_sendauth: no password supplied\n',
      ExitCode.FAILED, // decided over backupctl's own connection first, by SQLSTATE; the text only picks the hint
      /no password supplied/,
      /password/,
    ],
    [
      'a server version mismatch',
      'pg_dump: error: aborting because of server version mismatch\npg_dump: detail: server version: 17.2; pg_dump version: 15.8\n',
      ExitCode.FAILED, // decided over backupctl's own connection first, by SQLSTATE; the text only picks the hint
      /server version mismatch/,
      /at least as new as the server/,
    ],
  ] as const)('%s -> exit %i', (_name, stderr, exitCode, text, hint) => {
    const error = childFailure('pg_dump', execaFailure({ exitCode: 1, stderr }));
    expect(error.exitCode).toBe(exitCode);
    expect(error.message).toMatch(/^pg_dump failed \(exit status 1\): /);
    expect(error.message).toMatch(text);
    expect(error.message).not.toContain('\n');
    expect(error.hint).toMatch(hint);
  });

  it('an unknown failure -> exit 1, no hint', () => {
    const error = childFailure('pg_dump', execaFailure({ exitCode: 1, stderr: 'pg_dump: error: something else\n' }));
    expect(error.exitCode).toBe(ExitCode.FAILED);
    expect(error.message).toBe('pg_dump failed (exit status 1): something else');
    expect(error.hint).toBeUndefined();
  });

  it('no stderr: the exit status alone', () => {
    expect(childFailure('pg_dump', execaFailure({ exitCode: 1, stderr: '' })).message).toBe('pg_dump failed (exit status 1)');
  });

  it('killed by a signal says so', () => {
    const error = childFailure('pg_dumpall', execaFailure({ signal: 'SIGKILL', stderr: '' }));
    expect(error.exitCode).toBe(ExitCode.FAILED);
    expect(error.message).toBe('pg_dumpall failed (killed by SIGKILL)');
  });

  it('a program that cannot be started (ENOENT) -> exit 2', () => {
    const error = childFailure('pg_restore', execaFailure({ code: 'ENOENT' }));
    expect(error.exitCode).toBe(ExitCode.USAGE);
    expect(error.message).toMatch(/pg_restore could not be started/);
    expect(error.hint).toMatch(/install|pgBinDir/);
  });

  it('when the run was interrupted, the interruption is the error (exit 130), whatever the child said', () => {
    const controller = new AbortController();
    const interrupted = new InterruptedError('SIGTERM');
    controller.abort(interrupted);
    const error = childFailure('pg_dump', execaFailure({ signal: 'SIGTERM', stderr: 'pg_dump: error: terminated' }), controller.signal);
    expect(error).toBe(interrupted);
    expect(error.exitCode).toBe(ExitCode.INTERRUPTED);
  });

  it('when the other half of the work failed first, its error is reported', () => {
    const controller = new AbortController();
    const first = new BackupctlError('cannot count rows of "public"."t": permission denied', { hint: 'grant' });
    controller.abort(first);
    expect(childFailure('pg_dump', execaFailure({ signal: 'SIGTERM' }), controller.signal)).toBe(first);
  });

  it('an abort with a foreign reason is an interruption', () => {
    const controller = new AbortController();
    controller.abort(new Error('whatever'));
    const error = childFailure('pg_dump', execaFailure({ signal: 'SIGTERM' }), controller.signal);
    expect(error).toBeInstanceOf(InterruptedError);
    expect(error.exitCode).toBe(ExitCode.INTERRUPTED);
  });
});

describe('restoreFailureHint (pg_restore stderr)', () => {
  const outOfLocks = [
    'pg_restore: error: could not execute query: ERROR:  out of shared memory',
    'HINT:  You might need to increase "max_locks_per_transaction".',
    'Command was: CREATE TABLE public.t4097 (id integer);',
    '',
  ].join('\n');

  it('keeps PostgreSQL\'s HINT line (it was dropped)', () => {
    const hint = restoreFailureHint([
      'pg_restore: error: could not execute query: ERROR:  function public.missing() does not exist',
      'HINT:  No function matches the given name and argument types. You might need to add explicit type casts.',
      'Command was: SELECT public.missing();',
    ].join('\n'));
    expect(hint).toMatch(/^HINT: {2}No function matches/m);
    expect(hint).not.toMatch(/Command was/);
  });

  it('out of shared memory for locks: our advice first (max_locks_per_transaction, --clean or --create), then the server\'s lines with its HINT', () => {
    const hint = restoreFailureHint(outOfLocks) ?? '';
    const lines = hint.split('\n');
    expect(lines[0]).toMatch(/raise max_locks_per_transaction/);
    expect(lines[0]).toMatch(/--clean or into a new database \(--create\), which are not one transaction/);
    expect(lines).toContain('HINT:  You might need to increase "max_locks_per_transaction".');
    expect(lines.some((l) => l.includes('ERROR:  out of shared memory'))).toBe(true);
  });

  it('recognised by SQLSTATE 53200 when the output has it, and by the setting the HINT names in any language, not by the English words', () => {
    expect(restoreFailureHint('pg_restore: error: could not execute query: ERROR:  53200: kein gemeinsamer Speicher mehr\n')).toMatch(/^.*raise max_locks_per_transaction/);
    const german = [
      'pg_restore: Fehler: konnte Anfrage nicht ausführen: FEHLER:  kein gemeinsamer Speicher mehr',
      'TIPP:  Sie müssen möglicherweise »max_locks_per_transaction« erhöhen.',
    ].join('\n');
    const hint = restoreFailureHint(german) ?? '';
    expect(hint.split('\n')[0]).toMatch(/raise max_locks_per_transaction/);
    expect(hint).toContain('TIPP:  Sie müssen möglicherweise »max_locks_per_transaction« erhöhen.');
    // The words alone decide nothing.
    expect(restoreFailureHint('pg_restore: error: could not execute query: ERROR:  out of shared memory\n', 'fallback')).toBe('fallback');
    // Another error whose text happens to hold the digits is not it.
    expect(restoreFailureHint('pg_restore: error: could not execute query: ERROR:  relation "t53200" does not exist\nCommand was: x\n', 'fallback')).toBe('fallback');
  });

  it('without anything more to say: the fallback', () => {
    expect(restoreFailureHint('pg_restore: error: could not read input file: end of file\n', 'the fallback')).toBe('the fallback');
    expect(restoreFailureHint('', undefined)).toBeUndefined();
  });
});
