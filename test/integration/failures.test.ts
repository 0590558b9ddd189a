/**
 * How `create` fails. Every failure must print exactly one `error:` line (and at most one
 * `hint:` line), end with the documented exit code, and leave nothing in the storage: no
 * sidecar, no artifact, no `.tmp-*` temporary.
 */
import { execa } from 'execa';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, baseEnv, runCli, type CliOutcome } from '../helpers/cli.js';
import {
  closedPort,
  failureLines,
  fillRandomText,
  holdTableLock,
  leftovers,
  listFiles,
  scratchSetup,
  sh,
  tempDir,
  waitFor,
  wrapperBinDir,
  writeConfig,
} from '../helpers/failure-kit.js';
import { uniqueName } from '../helpers/pg.js';

let home: string;

/** `db`: a small database with two tables, shared by the tests that need a reachable one. */
const scratch = scratchSetup('fail', {
  seed: async () => {
    home = await tempDir('home'); // no ~/.pgpass of the machine's user
    await cluster.query(db, `CREATE TABLE public.open_data (id int PRIMARY KEY, label text)`);
    await cluster.query(db, `INSERT INTO public.open_data SELECT g, 'row ' || g FROM generate_series(1, 200) g`);
    await cluster.query(db, `CREATE TABLE public.secret_data (id int PRIMARY KEY, secret text)`);
    await cluster.query(db, `INSERT INTO public.secret_data VALUES (1, 'classified')`);
    // Big enough that pg_dump writes well over 20 kB even compressed.
    await fillRandomText(cluster, db, 'public.filler', 1);
  },
});
const { cluster, db } = scratch;
const major = cluster.majorVersion;

function envFor(database: string, extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return baseEnv({ HOME: home, ...cluster.env(database), ...extra });
}

async function create(args: string[], env: Record<string, string | undefined>): Promise<CliOutcome> {
  return runCli(['create', ...args], { env, cwd: scratch.cwd });
}

async function expectEmptyStorage(storage: string): Promise<void> {
  expect(await leftovers(storage)).toEqual([]);
}

describe('create: connection failures', () => {
  it('connection refused (nothing listening) -> exit 1', async () => {
    const storage = await tempDir('st');
    const port = await closedPort();
    const result = await create(['--storage', storage], envFor('postgres', { PGPORT: String(port) }));
    expect(result.code).toBe(1);
    const { error, hint } = failureLines(result.stderr, { strict: true });
    expect(error).toMatch(/connection refused/);
    expect(error).toContain(`127.0.0.1:${port}`);
    expect(hint).toMatch(/running/);
    expect(result.stdout).toBe('');
    await expectEmptyStorage(storage);
  });

  it('wrong password -> exit 2, and the password is not printed', async () => {
    const storage = await tempDir('st');
    const wrong = `Wr0ng-${uniqueName('pw')}`;
    const result = await create(['--storage', storage], envFor(db, { PGPASSWORD: wrong }));
    expect(result.code).toBe(2);
    const { error, hint } = failureLines(result.stderr, { strict: true });
    expect(error).toMatch(/password authentication failed/);
    expect(hint).toMatch(/PGPASSWORD/);
    expect(result.stderr + result.stdout).not.toContain(wrong);
    await expectEmptyStorage(storage);
    // Nor in what the run recorded (the run log).
    for (const file of await listFiles(storage)) expect(await readFile(path.join(storage, file), 'utf8')).not.toContain(wrong);
  });

  it('database missing -> exit 2', async () => {
    const storage = await tempDir('st');
    const missing = uniqueName('nosuchdb');
    const result = await create(['--storage', storage], envFor(missing));
    expect(result.code).toBe(2);
    const { error } = failureLines(result.stderr, { strict: true });
    expect(error).toContain(`database "${missing}" does not exist`);
    await expectEmptyStorage(storage);
  });

  it('no password given when the server requires one -> exit 2', async () => {
    const storage = await tempDir('st');
    const result = await create(['--storage', storage], envFor(db, { PGPASSWORD: undefined }));
    expect(result.code).toBe(2);
    const { error, hint } = failureLines(result.stderr, { strict: true });
    expect(error).toMatch(/password/);
    expect(hint).toMatch(/PGPASSWORD|pgpass/);
    await expectEmptyStorage(storage);
  });
});

describe('create: privileges', () => {
  const role = uniqueName('noperm');
  const rolePassword = `pw-${uniqueName('r')}`;

  beforeAll(async () => {
    await cluster.createRole(role, rolePassword);
    await cluster.query(db, `GRANT SELECT ON public.open_data, public.filler TO ${role}`);
  });
  afterAll(async () => {
    await cluster.query(db, `REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ${role}`).catch(() => undefined);
    await cluster.query('postgres', `DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
  });

  it('a role that cannot SELECT one table -> exit 1, names the problem, hints at GRANT', async () => {
    const storage = await tempDir('st');
    const result = await create(['--storage', storage, '--quiet'], envFor(db, { PGUSER: role, PGPASSWORD: rolePassword }));
    expect(result.code).toBe(1);
    const { error, hint } = failureLines(result.stderr, { strict: true });
    expect(error).toMatch(/secret_data|permission denied/);
    expect(hint).toMatch(/grant/i);
    await expectEmptyStorage(storage);
  });
});

describe('create: client programs', () => {
  it('pgBinDir without pg_dump -> exit 2, names pg_dump and the package to install', async () => {
    const storage = await tempDir('st');
    const emptyBin = await tempDir('emptybin');
    const config = await writeConfig(await tempDir('cfg'), { pgBinDir: emptyBin });
    const result = await create(['--config', config, '--storage', storage], envFor(db));
    expect(result.code).toBe(2);
    const { error, hint } = failureLines(result.stderr);
    expect(error).toContain('pg_dump');
    expect(error).toContain(emptyBin);
    expect(hint).toContain(`postgresql-client-${major}`);
    await expectEmptyStorage(storage);
  });

  it('a client older than the server -> exit 2, says so, names postgresql-client-<major>', async () => {
    const storage = await tempDir('st');
    const fake = (tool: string) => `#!/bin/sh\nif [ "$1" = "--version" ]; then echo "${tool} (PostgreSQL) 9.6.24"; exit 0; fi\necho "${tool}: must not be run" >&2\nexit 1\n`;
    const oldBin = await wrapperBinDir(cluster, { pg_dump: fake('pg_dump'), pg_restore: fake('pg_restore'), pg_dumpall: fake('pg_dumpall') });
    const config = await writeConfig(await tempDir('cfg'), { pgBinDir: oldBin });
    const result = await create(['--config', config, '--storage', storage], envFor(db));
    expect(result.code).toBe(2);
    const { error, hint } = failureLines(result.stderr);
    expect(error).toMatch(/older than the server/);
    expect(error).toContain('pg_dump');
    expect(hint).toContain(`postgresql-client-${major}`);
    await expectEmptyStorage(storage);
  });
});

describe('create: what the client cannot do', () => {
  it("--pg-compress zstd (pg_dump's own) with a pg_dump older than 16 -> exit 2 before any lock, connection or notification", async () => {
    const storage = await tempDir('st');
    const fake = `#!/bin/sh\nif [ "$1" = "--version" ]; then echo "pg_dump (PostgreSQL) 15.18"; exit 0; fi\necho "pg_dump: must not be run" >&2\nexit 1\n`;
    const bin = await wrapperBinDir(cluster, { pg_dump: fake });
    const hooks: string[] = [];
    const server = http.createServer((request, response) => {
      hooks.push(request.url ?? '');
      response.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const config = await writeConfig(await tempDir('cfg'), {
        pgBinDir: bin,
        profiles: { app: { database: db, notify: { healthchecks: { url: `http://127.0.0.1:${port}/hc` }, webhook: { url: `http://127.0.0.1:${port}/hook` } } } },
      });
      // A server that is not there: connecting would be exit 1, not 2.
      const result = await create(['--config', config, '--storage', storage, '--pg-compress', 'zstd:3'], envFor(db, { PGPORT: String(await closedPort()), PGHOST: '127.0.0.1' }));
      expect(result.code).toBe(2);
      const { error, hint } = failureLines(result.stderr, { strict: true });
      expect(error).toMatch(/--pg-compress zstd:3 needs pg_dump 16 or later/);
      expect(hint).toMatch(/--compress zstd/);
      expect(hooks).toEqual([]);
      await expectEmptyStorage(storage);
    } finally {
      server.close();
    }
  });
});

describe('create: storage failures', () => {
  const notRoot = typeof process.getuid === 'function' && process.getuid() !== 0;
  it.skipIf(notRoot)(`backup directory not writable (run as nobody) -> exit 1 "permission denied"${notRoot ? ' (skipped: runuser needs root)' : ''}`, async () => {
    const parent = await tempDir('ro');
    await chmod(parent, 0o755);
    const storage = path.join(parent, 'storage');
    await mkdir(storage, { mode: 0o755 });
    await chmod(storage, 0o755); // owned by root: nobody may read it, not write it
    const result = await execa('runuser', ['-u', 'nobody', '--', process.execPath, BIN, 'create', '--storage', storage], {
      reject: false,
      extendEnv: false,
      env: envFor(db, { HOME: parent }) as Record<string, string>,
      cwd: parent,
      stdin: 'ignore',
    });
    expect(result.exitCode, result.stderr).toBe(1);
    const { error, hint } = failureLines(result.stderr, { strict: true });
    expect(error).toMatch(/permission denied/);
    expect(error).toContain(storage);
    expect(hint).toMatch(/owner and mode/);
    await expectEmptyStorage(storage);
  });

  it.skipIf(notRoot)(`backup directory not readable (run as nobody): list, show and verify say "cannot read" with a hint, never a raw EACCES${notRoot ? ' (skipped: runuser needs root)' : ''}`, async () => {
    const parent = await tempDir('unreadable');
    await chmod(parent, 0o755);
    const storage = path.join(parent, 'storage');
    await mkdir(path.join(storage, db), { recursive: true, mode: 0o700 });
    await chmod(storage, 0o700); // owned by root: nobody may not even list it
    for (const args of [['list'], ['show', 'latest'], ['verify', 'latest', '--level', 'checksum']]) {
      const result = await execa('runuser', ['-u', 'nobody', '--', process.execPath, BIN, ...args, '--storage', storage, '--profile', db], {
        reject: false,
        extendEnv: false,
        env: envFor(db, { HOME: parent }) as Record<string, string>,
        cwd: parent,
        stdin: 'ignore',
      });
      expect(result.exitCode, `${args.join(' ')}: ${result.stderr}`).toBe(1);
      const { error, hint } = failureLines(result.stderr, { strict: true });
      expect(error).toMatch(new RegExp(`cannot read ${storage.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: permission denied`));
      expect(error).not.toMatch(/EACCES|scandir|write/);
      expect(hint).toMatch(/owner and mode/);
    }
  });

  it('the storage path is a regular file -> exit 1, and the file is left alone', async () => {
    const parent = await tempDir('file');
    const storage = path.join(parent, 'not-a-dir');
    await writeFile(storage, 'keep me\n');
    const result = await create(['--storage', storage], envFor(db));
    expect(result.code).toBe(1);
    const { error } = failureLines(result.stderr, { strict: true });
    expect(error).toContain(storage);
    expect(error).toMatch(/file is in the way/);
    expect(await readFile(storage, 'utf8')).toBe('keep me\n');
    expect(await listFiles(parent)).toEqual(['not-a-dir']);
  });
});

/** Whether this machine lets us mount a tmpfs (root, in a namespace that allows it). */
async function canMountTmpfs(): Promise<string | null> {
  const probe = await tempDir('probe');
  try {
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe]);
  } catch (error) {
    return `cannot mount a tmpfs here: ${(error as { shortMessage?: string }).shortMessage ?? String(error)}`;
  }
  await execa('umount', [probe]);
  return null;
}
const noTmpfs = await canMountTmpfs();

/** A database of 5 MB of random text for the describe block it is called in (when a tmpfs can be mounted). */
function bigDatabase(prefix: string): string {
  const name = uniqueName(prefix);
  beforeAll(async () => {
    if (noTmpfs) return;
    await cluster.createDatabase(name);
    await fillRandomText(cluster, name, 'public.big', 5);
  });
  afterAll(async () => {
    if (!noTmpfs) await cluster.dropDatabase(name);
  });
  return name;
}

describe('create: disk full', () => {
  const bigDb = bigDatabase('full');

  it.skipIf(noTmpfs !== null)(`a 1 MiB tmpfs as storage -> exit 1 "no space left", nothing left${noTmpfs ? ` (skipped: ${noTmpfs})` : ''}`, async () => {
    const mountPoint = await tempDir('tmpfs');
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0755', 'tmpfs', mountPoint]);
    try {
      const result = await create(['--storage', mountPoint], envFor(bigDb));
      expect(result.code).toBe(1);
      const { error, hint } = failureLines(result.stderr);
      expect(error).toMatch(/no space left/);
      expect(hint).toMatch(/free space/);
      await expectEmptyStorage(mountPoint);
    } finally {
      await execa('umount', [mountPoint]);
    }
    const mounts = await readFile('/proc/mounts', 'utf8');
    expect(mounts.split('\n').some((line) => line.split(' ')[1] === mountPoint)).toBe(false);
  });
});

describe('create: locks', () => {
  it('--lock-wait-timeout 1s while another session holds ACCESS EXCLUSIVE -> exit 1 with a lock hint', async () => {
    const storage = await tempDir('st');
    const lock = await holdTableLock(cluster, db, 'public.open_data');
    try {
      const started = Date.now();
      const result = await create(['--storage', storage, '--lock-wait-timeout', '1s'], envFor(db));
      expect(result.code).toBe(1);
      expect(Date.now() - started).toBeLessThan(30_000);
      const { error, hint } = failureLines(result.stderr);
      // backupctl's row counts or pg_dump's own LOCK TABLE, whichever waits out first.
      expect(error, result.stderr).toMatch(/lock/);
      expect(hint, result.stderr).toMatch(/lock/);
      await expectEmptyStorage(storage); // no 0-byte artifact either
    } finally {
      await lock.close();
    }
  });
});

describe('create: a lock held by another session, no --lock-wait-timeout', () => {
  it('says who it waits for (table, mode, holder pid and application), then completes once the lock is released', async () => {
    const storage = await tempDir('st');
    const lock = await holdTableLock(cluster, db, 'public.open_data');
    try {
      const child = execa(process.execPath, [BIN, 'create', '--storage', storage], { env: envFor(db), extendEnv: false, cwd: scratch.cwd, reject: false, stdin: 'ignore' });
      let stderr = '';
      child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = child.then((result) => result);
      await Promise.race([
        waitFor(async () => /pg_dump is waiting for a lock/.test(stderr), 'the lock-wait warning', 30_000),
        exited.then((result) => {
          throw new Error(`create ended while the lock was held (exit ${result.exitCode}):\n${stderr}`);
        }),
      ]);
      await lock.release();
      const result = await exited;
      expect(result.exitCode, stderr).toBe(0);
      expect(stderr).toMatch(new RegExp(`pg_dump is waiting for a lock on public\\.open_data \\(AccessShareLock\\), held by pid ${lock.pid} \\("lock-holder"`));
      expect(stderr).toMatch(/--lock-wait-timeout gives up after a time instead/);
      // Reported once, however long it waits.
      expect(stderr.match(/pg_dump is waiting for a lock on public\.open_data/g)).toHaveLength(1);
    } finally {
      await lock.close();
    }
  });
});

describe('create: pg_dump dies mid-dump', () => {
  const real = () => cluster.bin('pg_dump');
  const versionPassThrough = () => `if [ "$1" = "--version" ]; then exec ${sh(real())} --version; fi\n`;
  const wrappers: Array<[string, () => string, RegExp]> = [
    [
      'exits 1 after 20 kB of output',
      () => `#!/bin/sh\n${versionPassThrough()}${sh(real())} "$@" | head -c 20000\nexit 1\n`,
      /pg_dump failed \(exit status 1\)/,
    ],
    [
      'is killed by SIGKILL after writing everything',
      () => `#!/bin/sh\n${versionPassThrough()}${sh(real())} "$@"\nkill -9 $$\n`,
      /pg_dump failed \(killed by SIGKILL\)/,
    ],
  ];

  it.each(wrappers)('pg_dump %s -> exit 1, no artifact, no sidecar', async (_name, script, message) => {
    const storage = await tempDir('st');
    const bin = await wrapperBinDir(cluster, { pg_dump: script() });
    const config = await writeConfig(await tempDir('cfg'), { pgBinDir: bin });
    const result = await create(['--config', config, '--storage', storage], envFor(db));
    expect(result.code).toBe(1);
    const { error } = failureLines(result.stderr);
    expect(error).toMatch(message);
    await expectEmptyStorage(storage);
  });

  it('pg_dump --jobs 2 (directory format) killed -> exit 1, nothing in the storage nor in workDir', async () => {
    const storage = await tempDir('st');
    const workDir = await tempDir('work');
    const bin = await wrapperBinDir(cluster, { pg_dump: `#!/bin/sh\n${versionPassThrough()}${sh(real())} "$@"\nkill -9 $$\n` });
    const config = await writeConfig(await tempDir('cfg'), { pgBinDir: bin, workDir });
    const result = await create(['--config', config, '--storage', storage, '--jobs', '2'], envFor(db));
    expect(result.code).toBe(1);
    const { error } = failureLines(result.stderr);
    expect(error).toMatch(/pg_dump failed \(killed by SIGKILL\)/);
    await expectEmptyStorage(storage);
    expect(await readdir(workDir)).toEqual([]); // the scratch directory is gone too
  });
});

describe('verify: a scratch disk that is too small', () => {
  const bigDb = bigDatabase('fullv');

  // With --jobs 1 the archive streams into pg_restore: only its head (the TOC) is written
  // to workDir. With --jobs 2 pg_restore needs the decoded archive there: no room is an
  // error of this machine (exit 1, NOT VERIFIED), never a verdict on the backup.
  it.skipIf(noTmpfs !== null)(`a 1 MiB tmpfs as workDir: --jobs 1 verifies, --jobs 2 is exit 1 "the work directory is full", not recorded, a directory-format backup alike for verify and restore; a 4 KiB one fails --jobs 1 alike${noTmpfs ? ` (skipped: ${noTmpfs})` : ''}`, async () => {
    const storage = await tempDir('st');
    const made = await create(['--storage', storage, '--json'], envFor(bigDb));
    expect(made.code, made.stderr).toBe(0);
    const id = (JSON.parse(made.stdout) as { id: string }).id;
    const mountPoint = await tempDir('tmpfs');
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0755', 'tmpfs', mountPoint]);
    try {
      const config = await writeConfig(await tempDir('cfg'), { workDir: mountPoint });
      const verify = (jobs: string) => runCli(['verify', id, '--config', config, '--storage', storage, '--jobs', jobs], { env: envFor(bigDb), cwd: scratch.cwd });
      const streamed = await verify('1');
      expect(streamed.code, streamed.stderr).toBe(0);
      const parallel = await verify('2');
      expect(parallel.code, parallel.stdout + parallel.stderr).toBe(1);
      expect(parallel.stdout + parallel.stderr).toContain(`the work directory ${mountPoint} is full`);
      expect(parallel.stdout + parallel.stderr).toMatch(/point "workDir" in the config .* at a larger disk; with --jobs 1/);
      expect(parallel.stdout).toMatch(/NOT VERIFIED/);
      const sidecar = JSON.parse(await readFile(path.join(storage, bigDb, `${id}.json`), 'utf8')) as { verifications: Array<{ result: string }> };
      expect(sidecar.verifications.map((v) => v.result)).toEqual(['passed']);
      expect(await readdir(mountPoint)).toEqual([]);

      // A directory-format backup is always unpacked into workDir: a full one is this
      // machine's failure for verify (NOT VERIFIED, nothing recorded) and restore (exit 1),
      // never "corrupt" (node-tar's ENOSPC used to be taken for a damaged tar).
      const tarMade = await create(['--storage', storage, '--json', '--format', 'directory'], envFor(bigDb));
      expect(tarMade.code, tarMade.stderr).toBe(0);
      const tarId = (JSON.parse(tarMade.stdout) as { id: string }).id;
      for (const jobs of ['1', '2']) {
        const unpacked = await runCli(['verify', tarId, '--config', config, '--storage', storage, '--jobs', jobs], { env: envFor(bigDb), cwd: scratch.cwd });
        expect(unpacked.code, unpacked.stdout + unpacked.stderr).toBe(1);
        expect(unpacked.stdout).toMatch(/NOT VERIFIED/);
        expect(unpacked.stdout + unpacked.stderr).toContain(`the work directory ${mountPoint} is full`);
        expect(unpacked.stdout + unpacked.stderr).toMatch(/a directory-format backup is always unpacked there/);
      }
      const tarSidecar = JSON.parse(await readFile(path.join(storage, bigDb, `${tarId}.json`), 'utf8')) as { verifications: unknown[] };
      expect(tarSidecar.verifications).toEqual([]);
      const target = `${bigDb}_full_r`;
      const restored = await runCli(['restore', tarId, '--config', config, '--storage', storage, '--target-db', target, '--create', '--yes'], { env: envFor(bigDb), cwd: scratch.cwd });
      expect(restored.code, restored.stderr).toBe(1);
      expect(failureLines(restored.stderr).error).toContain(`the work directory ${mountPoint} is full`);
      expect(restored.stderr).not.toMatch(/corrupt/);
      expect(await cluster.query('postgres', 'SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [target])).toEqual([]);
      expect(await readdir(mountPoint)).toEqual([]);
    } finally {
      await execa('umount', [mountPoint]);
    }
    // Room, but no inode for a new file (a tar of many files): exit 1 at once, nothing
    // left running (it used to hang, zstd blocked on a pipe nobody read).
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=30m,nr_inodes=4,mode=0755', 'tmpfs', mountPoint]);
    try {
      const tarMade = await create(['--storage', storage, '--json', '--format', 'directory'], envFor(bigDb));
      const tarId = (JSON.parse(tarMade.stdout) as { id: string }).id;
      const config = await writeConfig(await tempDir('cfg'), { workDir: mountPoint });
      const started = Date.now();
      const inodes = await runCli(['verify', tarId, '--config', config, '--storage', storage, '--jobs', '2'], { env: envFor(bigDb), cwd: scratch.cwd });
      expect(inodes.code, inodes.stdout + inodes.stderr).toBe(1);
      expect(inodes.stdout).toMatch(/NOT VERIFIED/);
      expect(Date.now() - started).toBeLessThan(20_000);
    } finally {
      await execa('umount', [mountPoint]);
    }
    // Not even room for the head: exit 1 too, not a verdict.
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=4k,mode=0755', 'tmpfs', mountPoint]);
    try {
      const config = await writeConfig(await tempDir('cfg'), { workDir: mountPoint });
      const tiny = await runCli(['verify', id, '--config', config, '--storage', storage], { env: envFor(bigDb), cwd: scratch.cwd });
      expect(tiny.code, tiny.stdout + tiny.stderr).toBe(1);
      expect(tiny.stdout + tiny.stderr).toContain(`the work directory ${mountPoint} is full`);
      const sidecar = JSON.parse(await readFile(path.join(storage, bigDb, `${id}.json`), 'utf8')) as { verifications: Array<{ result: string }> };
      expect(sidecar.verifications.map((v) => v.result)).toEqual(['passed']);
    } finally {
      await execa('umount', [mountPoint]);
    }
  });
});
