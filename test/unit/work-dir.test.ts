/**
 * workDirFailure: a full disk while writing scratch files is this machine's failure, named
 * by the directory that is full; redactSecrets: what a child echoed is masked.
 */
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { BackupctlError } from '../../src/errors.js';
import { workDirFailure } from '../../src/core/work-dir.js';
import { redactSecrets } from '../../src/redact.js';

const enospc = (path?: string) => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', ...(path ? { path } : {}) });

describe('workDirFailure', () => {
  it('names the work directory when the failed write was in it (or says nothing of a path)', async () => {
    const failure = (await workDirFailure(enospc(), '/var/tmp', { key: 'app/x.dump.zst', needs: 1024, custom: true })) as BackupctlError;
    expect(failure).toBeInstanceOf(BackupctlError);
    expect(failure.message).toMatch(/^the work directory \/var\/tmp is full: cannot decode app\/x\.dump\.zst there \(.* free, the archive needs 1 KiB\)$/);
    expect(failure.hint).toMatch(/with --jobs 1 the archive is streamed/);
    const inside = (await workDirFailure(enospc('/var/tmp/backupctl-0/run/x.dump'), '/var/tmp')) as BackupctlError;
    expect(inside.message).toMatch(/^the work directory \/var\/tmp is full/);
  });

  it('names the directory that is full when the write was elsewhere (a password file in the OS temp directory)', async () => {
    const failure = (await workDirFailure(enospc(`${tmpdir()}/backupctl-0/run/pgpass`), '/srv/big')) as BackupctlError;
    expect(failure.message).toMatch(new RegExp(`^the directory ${tmpdir()}/backupctl-0/run is full`));
  });

  it('leaves every other error as it is', async () => {
    const other = Object.assign(new Error('EACCES'), { code: 'EACCES' });
    expect(await workDirFailure(other, '/var/tmp')).toBe(other);
    const ours = new BackupctlError('x');
    expect(await workDirFailure(ours, '/var/tmp')).toBe(ours);
  });
});

describe('redactSecrets', () => {
  it('masks a URL password, password=..., and SQL password literals', () => {
    expect(redactSecrets('postgres://app:s3cret@db/app')).toBe('postgres://app:***@db/app');
    expect(redactSecrets('host=db password=s3cret user=app')).toBe('host=db password=*** user=app');
    expect(redactSecrets("Command was: CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'app', password 'it''s s3cret');")).toBe(
      "Command was: CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'app', password '***');",
    );
    expect(redactSecrets("ALTER ROLE app PASSWORD 'md5abc'")).toBe("ALTER ROLE app PASSWORD '***'");
  });
});
