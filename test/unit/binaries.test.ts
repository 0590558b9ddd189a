/**
 * Client program discovery: parsing `--version`, choosing the client for a server, and
 * the rule that a configured pgBinDir is the only place looked at.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupctlError, ExitCode } from '../../src/errors.js';
import {
  candidateDirs,
  chooseClient,
  discoverClients,
  findClient,
  parseClientVersion,
  serverMajor,
  type ClientBinary,
} from '../../src/pg/binaries.js';

describe('parseClientVersion', () => {
  it.each([
    ['pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)', '15.18 (Debian 15.18-0+deb12u1)', 15],
    ['pg_dump (PostgreSQL) 17.2', '17.2', 17],
    ['pg_dump (PostgreSQL) 9.6.24', '9.6.24', 9],
    ['pg_restore (PostgreSQL) 16.4 (Ubuntu 16.4-1.pgdg22.04+1)', '16.4 (Ubuntu 16.4-1.pgdg22.04+1)', 16],
    ['pg_dump (PostgreSQL) 18beta1', '18beta1', 18],
    ['pg_dump (PostgreSQL) 17.2\n', '17.2', 17],
    ['psql (PostgreSQL) 10.23', '10.23', 10],
  ])('%j -> %s (major %i)', (output, version, major) => {
    expect(parseClientVersion(output)).toEqual({ version, major });
  });

  it.each([
    [''],
    ['command not found'],
    ['pg_dump 15.4'],
    ['pg_dump (PostgreSQL)'],
    ['pg_dump (PostgreSQL) x.y'],
    ['mysqldump  Ver 10.19 Distrib 10.11.6-MariaDB'],
    ['\u0000\u0001garbage\u00ff'],
  ])('garbage %j -> null', (output) => {
    expect(parseClientVersion(output)).toBeNull();
  });
});

describe('serverMajor', () => {
  it.each([
    [150018, 15],
    [90624, 9],
    [90600, 9],
    [100000, 10],
    [170002, 17],
    [180000, 18],
  ])('%i -> %i', (num, major) => {
    expect(serverMajor(num)).toBe(major);
  });
});

function client(major: number, dir: string, tool: ClientBinary['tool'] = 'pg_dump'): ClientBinary {
  return { tool, path: `${dir}/${tool}`, version: `${major}.1`, major };
}

describe('chooseClient', () => {
  it('picks the closest major at least as new as the server', () => {
    const found = [client(17, '/a'), client(15, '/b'), client(16, '/c'), client(14, '/d')];
    expect(chooseClient('pg_dump', found, 15).path).toBe('/b/pg_dump');
    expect(chooseClient('pg_dump', found, 16).path).toBe('/c/pg_dump');
    expect(chooseClient('pg_dump', found, 17).path).toBe('/a/pg_dump');
  });

  it('takes a newer client when none matches the server exactly', () => {
    expect(chooseClient('pg_dump', [client(18, '/new'), client(14, '/old'), client(17, '/mid')], 15).path).toBe('/mid/pg_dump');
  });

  it('among equal majors, the first found wins (PATH order)', () => {
    expect(chooseClient('pg_dump', [client(16, '/first'), client(16, '/second')], 16).path).toBe('/first/pg_dump');
  });

  it('a 9.x server is served by any modern client', () => {
    expect(chooseClient('pg_dump', [client(16, '/x'), client(15, '/y')], serverMajor(90624)).path).toBe('/y/pg_dump');
  });

  function thrown(fn: () => unknown): BackupctlError {
    try {
      fn();
    } catch (error) {
      expect(error).toBeInstanceOf(BackupctlError);
      return error as BackupctlError;
    }
    throw new Error('expected a BackupctlError');
  }

  it('every client older than the server: a usage error naming the package to install', () => {
    const error = thrown(() => chooseClient('pg_dump', [client(9, '/old'), client(14, '/less-old')], 15));
    expect(error.exitCode).toBe(ExitCode.USAGE);
    expect(error.message).toMatch(/older than the server/);
    expect(error.message).toContain('PostgreSQL 15');
    expect(error.message).toContain('/old/pg_dump is 9');
    expect(error.hint).toContain('postgresql-client-15');
    expect(error.hint).toContain('pgBinDir');
    // A run without a config file (--db-url in a cron line) can only be helped through PATH.
    expect(error.hint).toMatch(/or put its bin directory first on PATH$/);
    // The distribution may not ship that major version: the hint names the PGDG repository too.
    expect(error.hint).toContain('apt.postgresql.org');
  });

  it('no client at all: a usage error naming the tool, where it looked, and the package', () => {
    const error = thrown(() => chooseClient('pg_restore', [], 17, 'pgBinDir /opt/pg/bin'));
    expect(error.exitCode).toBe(ExitCode.USAGE);
    expect(error.message).toBe('pg_restore was not found in pgBinDir /opt/pg/bin (the server is PostgreSQL 17)');
    expect(error.hint).toContain('postgresql-client-17');
    expect(error.hint).toContain('postgresql@17');
  });

  it("for a backup's archive, the major is named as the pg_dump that wrote it, not as the server", () => {
    const missing = thrown(() => chooseClient('pg_restore', [], 15, 'pgBinDir /opt/pg18/bin', 'archive'));
    expect(missing.message).toBe('pg_restore was not found in pgBinDir /opt/pg18/bin (the backup was written by pg_dump 15)');
    const old = thrown(() => chooseClient('pg_restore', [{ tool: 'pg_restore', path: '/usr/bin/pg_restore', major: 13, version: '13.4' } as never], 15, undefined, 'archive'));
    expect(old.message).toMatch(/^every pg_restore found is older than the backup's pg_dump \(pg_dump 15\)/);
    const any = thrown(() => chooseClient('psql', [], 0));
    expect(any.message).toBe('psql was not found in PATH or the usual install locations');
    expect(any.hint).toContain('postgresql-client ');
  });
});

describe('discovery on disk', () => {
  let root: string;
  let configured: string;
  let onPath: string;
  let broken: string;
  const envFile = () => path.join(root, 'version-env');

  async function fakeTool(dir: string, tool: string, versionLine: string, exitCode = 0): Promise<void> {
    const file = path.join(dir, tool);
    await writeFile(
      file,
      `#!/bin/sh\nif [ "$1" = "--version" ]; then printf '%s' "\${PGPASSWORD:-none}" > '${envFile()}'; echo '${versionLine}'; exit ${exitCode}; fi\nexit 1\n`,
    );
    await chmod(file, 0o755);
  }

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'backupctl-binaries-'));
    configured = path.join(root, 'configured');
    onPath = path.join(root, 'onpath');
    broken = path.join(root, 'broken');
    for (const dir of [configured, onPath, broken]) await mkdir(dir);
    await fakeTool(configured, 'pg_dump', 'pg_dump (PostgreSQL) 16.4');
    await fakeTool(onPath, 'pg_dump', 'pg_dump (PostgreSQL) 17.2');
    await fakeTool(broken, 'pg_dump', 'pg_dump (PostgreSQL) 17.2', 3);
    await writeFile(path.join(onPath, 'pg_restore'), 'not executable');
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('a configured pgBinDir is the only directory looked at', async () => {
    expect(await candidateDirs({ pgBinDir: configured, path: onPath })).toEqual([configured]);
    const found = await discoverClients('pg_dump', { pgBinDir: configured, path: onPath });
    expect(found).toEqual([{ tool: 'pg_dump', path: path.join(configured, 'pg_dump'), version: '16.4', major: 16 }]);
  });

  it('a pgBinDir with a client too old is an error, even with a fitting one on PATH', async () => {
    await expect(findClient('pg_dump', 17, { pgBinDir: configured, path: onPath })).rejects.toMatchObject({
      exitCode: ExitCode.USAGE,
      message: expect.stringMatching(/older than the server/),
    });
  });

  it('an empty pgBinDir is an error that says where it looked', async () => {
    await expect(findClient('pg_dump', 15, { pgBinDir: path.join(root, 'nothing-here'), path: onPath })).rejects.toMatchObject({
      exitCode: ExitCode.USAGE,
      message: expect.stringContaining(`pg_dump was not found in pgBinDir ${path.join(root, 'nothing-here')}`),
    });
  });

  it('without pgBinDir, PATH comes first; non-executable and failing copies are skipped', async () => {
    const dirs = await candidateDirs({ path: [onPath, broken, configured].join(path.delimiter) });
    expect(dirs.slice(0, 3)).toEqual([onPath, broken, configured]);
    const found = await discoverClients('pg_dump', { path: [onPath, broken, configured].join(path.delimiter) });
    const ours = found.filter((c) => c.path.startsWith(root));
    expect(ours.map((c) => c.path)).toEqual([path.join(onPath, 'pg_dump'), path.join(configured, 'pg_dump')]);
    expect(await discoverClients('pg_restore', { pgBinDir: onPath })).toEqual([]);
  });

  it('`--version` runs without the password in its environment', async () => {
    const saved = process.env.PGPASSWORD;
    process.env.PGPASSWORD = 'unit-test-secret';
    try {
      await discoverClients('pg_dump', { pgBinDir: configured });
    } finally {
      if (saved === undefined) delete process.env.PGPASSWORD;
      else process.env.PGPASSWORD = saved;
    }
    expect(await readFile(envFile(), 'utf8')).toBe('none');
  });
});
