/**
 * Fault injection: a hostile storage layout, seen through the commands. The storage root is
 * a boundary: nothing below it that is a symlink, a FIFO, a device or a directory where a
 * file belongs is ever followed, read, written or removed; it is reported. And a special
 * file where an artifact belongs never makes a command hang.
 */
import { execa } from 'execa';
import { mkdir, readdir, readFile, stat, symlink, writeFile, copyFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BIN, baseEnv } from '../helpers/cli.js';
import { artifactPath } from '../helpers/backups.js';
import { scratchSetup, tempDir } from '../helpers/failure-kit.js';
import { sshdUnavailable, startSshd, uniquePrefix } from '../helpers/storage-servers.js';

const scratch = scratchSetup('hostile', {
  built: true,
  seed: async () => {
    await cluster.query(db, 'create table t (id int primary key); insert into t select generate_series(1, 100)');
  },
});
const { cluster, db } = scratch;

async function bin(args: string[], options: { timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const result = await execa(process.execPath, [BIN, ...args], {
    env: baseEnv({ ...cluster.env(db), HOME: scratch.cwd }) as Record<string, string>,
    extendEnv: false,
    cwd: scratch.cwd,
    stdin: 'ignore',
    reject: false,
    timeout: options.timeoutMs ?? 60_000,
  });
  return { code: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

async function createIn(storage: string): Promise<string> {
  const run = await bin(['create', '--storage', storage, '--json']);
  expect(run.code, run.stderr).toBe(0);
  return (JSON.parse(run.stdout) as { id: string }).id;
}

/** Every file under `dir` with its size and content hash, to show nothing outside was touched. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of await readdir(dir)) out[name] = (await readFile(path.join(dir, name))).toString('base64').slice(0, 64);
  return out;
}

let storage: string;
let id: string;

beforeAll(async () => {
  storage = await tempDir('hostile-st');
  id = await createIn(storage);
});

describe('writes and deletes never leave the storage', () => {
  it('a profile directory that is a symlink to elsewhere: prune, list and create neither follow nor write there', async () => {
    const elsewhere = await tempDir('elsewhere');
    // Files that look like old backups and temporaries, and a sidecar for one of them.
    await copyFile(await artifactPath(storage, db, id), path.join(elsewhere, '20200101T000000Z-aaaaaa.dump'));
    await writeFile(path.join(elsewhere, '.tmp-0123456789ab-20200101T000000Z-bbbbbb.dump'), 'partial');
    await writeFile(path.join(elsewhere, '20200101T000000Z-cccccc.dump'), 'no sidecar: an old leftover');
    const before = await snapshot(elsewhere);
    await symlink(elsewhere, path.join(storage, 'evil'));
    const pruned = await bin(['prune', '--profile', 'evil', '--keep-last', '1', '--leftover-age', '1s', '--storage', storage]);
    expect(pruned.code).not.toBe(0);
    expect(pruned.stderr).toMatch(/symbolic link/);
    const listed = await bin(['list', '--storage', storage, '--all', '--json']);
    expect((JSON.parse(listed.stdout) as Array<{ profile: string }>).map((b) => b.profile)).not.toContain('evil');
    expect(listed.stderr).toMatch(/evil.*symbolic link|symbolic link.*evil/);
    const created = await bin(['create', '--profile', 'evil', '--storage', storage]);
    expect(created.code).not.toBe(0);
    expect(await snapshot(elsewhere)).toEqual(before);
    await rm(path.join(storage, 'evil'));
  });
});

describe('a backup with a file no one may remove', () => {
  it('delete of a backup whose artifact is a symlink removes nothing of it (exit 1) and says which entry to remove by hand; prune keeps it', async () => {
    const st = await tempDir('hostile-st-del');
    const older = await createIn(st);
    const victim = await createIn(st);
    const newest = await createIn(st);
    const outside = await tempDir('outside-del');
    const artifact = await artifactPath(st, db, victim);
    await copyFile(artifact, path.join(outside, 'copy.dump'));
    await rm(artifact);
    await symlink(path.join(outside, 'copy.dump'), artifact);
    const before = (await readdir(path.join(st, db))).sort();
    const deleted = await bin(['delete', victim, '--storage', st, '--json']);
    expect(deleted.code, deleted.stderr).toBe(1);
    const result = JSON.parse(deleted.stdout) as { backups: Array<{ id: string; removed: boolean; error?: string }> };
    expect(result.backups).toEqual([expect.objectContaining({ id: victim, removed: false, error: expect.stringMatching(/symbolic link.*nothing of the backup was removed/) })]);
    expect((await readdir(path.join(st, db))).sort()).toEqual(before);
    // prune keeps a damaged backup (and says so): the good older one goes, the one with the link stays whole.
    const pruned = await bin(['prune', '--keep-last', '1', '--profile', db, '--storage', st]);
    expect(pruned.code, pruned.stdout + pruned.stderr).toBe(0);
    expect(pruned.stdout).toMatch(new RegExp(`${victim}.*keep +damaged`));
    const backupFiles = (names: string[]) => names.filter((name) => /^\d{8}T/.test(name)).sort();
    expect(backupFiles(await readdir(path.join(st, db)))).toEqual(backupFiles(before).filter((name) => !name.startsWith(older)));
    expect(before.some((name) => name.startsWith(newest))).toBe(true);
    expect(await readFile(path.join(outside, 'copy.dump'))).toBeTruthy(); // never followed
    // Once the link is gone, delete removes the rest.
    await rm(artifact);
    const again = await bin(['delete', victim, '--storage', st]);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect((await readdir(path.join(st, db))).some((name) => name.startsWith(victim))).toBe(false);
  });
});

describe('a sidecar that is not a regular file', () => {
  it.each(['directory', 'FIFO', 'symbolic link'] as const)(
    'a %s at a sidecar\'s key is a damaged backup (status exit 5, verify --all exit 3), and prune never removes its artifact as unfinished',
    async (kind) => {
      const st = await tempDir('hostile-sidecar');
      await createIn(st);
      const victim = await createIn(st);
      const sidecar = path.join(st, db, `${victim}.json`);
      const artifact = await artifactPath(st, db, victim);
      const kept = await readFile(artifact);
      const outside = path.join(await tempDir('outside-sidecar'), 'x.json');
      await copyFile(sidecar, outside);
      await rm(sidecar);
      if (kind === 'directory') await mkdir(sidecar);
      else if (kind === 'FIFO') await execa('mkfifo', [sidecar]);
      else await symlink(outside, sidecar);

      const listed = await bin(['list', '--storage', st, '--json'], { timeoutMs: 20_000 });
      expect(listed.code, listed.stderr).toBe(0);
      expect(listed.stderr).toContain(`${db}/${victim}.json is a ${kind}`);
      const status = await bin(['status', '--storage', st, '--profile', db], { timeoutMs: 20_000 });
      expect(status.code, status.stdout + status.stderr).toBe(5);
      expect(status.stdout + status.stderr).toContain(`the sidecar ${db}/${victim}.json is a ${kind}, not a regular file`);
      const verified = await bin(['verify', '--all', '--level', 'checksum', '--storage', st], { timeoutMs: 20_000 });
      expect(verified.code, verified.stdout + verified.stderr).toBe(3);
      const pruned = await bin(['prune', '--keep-last', '5', '--leftover-age', '1s', '--profile', db, '--storage', st, '--json'], { timeoutMs: 20_000 });
      expect(pruned.code, pruned.stderr).toBe(0);
      expect(await readFile(artifact)).toEqual(kept);
      expect((await stat(sidecar).catch(() => null)) !== null || kind === 'symbolic link').toBe(true);
    },
  );
});

describe('reads never leave the storage', () => {
  it('an artifact that is a symlink to an outside copy of a real dump does not verify (exit 3); nothing is read through it', async () => {
    const other = await tempDir('hostile-st2');
    const victim = await createIn(other);
    const outside = await tempDir('outside');
    const artifact = await artifactPath(other, db, victim);
    await copyFile(artifact, path.join(outside, 'copy.dump'));
    await rm(artifact);
    await symlink(path.join(outside, 'copy.dump'), artifact);
    for (const level of ['checksum', 'restore']) {
      const run = await bin(['verify', victim, '--storage', other, '--level', level, '--json']);
      expect(run.code, run.stderr).toBe(3);
      const outcome = (JSON.parse(run.stdout) as { outcomes: Array<{ result: string; mismatches: string[] }> }).outcomes[0];
      expect(outcome?.mismatches.join(' ')).toMatch(/symbolic link/);
    }
    const restore = await bin(['restore', victim, '--storage', other, '--target-db', `${db}_never`, '--create']);
    expect(restore.code).toBe(3);
    // The failed verifications are recorded in the sidecar, which stays: a hostile entry is not a prune.
    const shown = await bin(['show', victim, '--storage', other, '--json']);
    expect(shown.code, shown.stderr).toBe(0);
    const sidecar = JSON.parse(shown.stdout) as { verifications: Array<{ result: string }> };
    expect(sidecar.verifications.map((v) => v.result)).toEqual(['failed', 'failed']);
  });

  it('a lock.json or runs.jsonl that is a symlink to an outside file is neither followed nor overwritten', async () => {
    const other = await tempDir('hostile-st3');
    await createIn(other);
    const outside = await tempDir('outside2');
    const secret = path.join(outside, 'secret.txt');
    await writeFile(secret, 'do not touch\n');
    const runs = path.join(other, db, 'runs.jsonl');
    await rm(runs);
    await symlink(secret, runs);
    const again = await bin(['create', '--storage', other]);
    expect(again.code, again.stderr).toBe(0); // the backup is made; the run log could not be written
    expect(await readFile(secret, 'utf8')).toBe('do not touch\n');
    await symlink(secret, path.join(other, db, 'lock.json'));
    const locked = await bin(['create', '--storage', other]);
    expect(locked.code).not.toBe(0);
    expect(locked.stderr).toMatch(/symbolic link/);
    expect(await readFile(secret, 'utf8')).toBe('do not touch\n');
    expect((await stat(secret)).isFile()).toBe(true);
  });
});

describe('special files never make a command hang', () => {
  it('an artifact replaced by a FIFO or a symlink to /dev/zero: verify --all --level checksum ends at once, exit 3', async () => {
    const other = await tempDir('hostile-st4');
    const a = await createIn(other);
    const b = await createIn(other);
    const [pathA, pathB] = [await artifactPath(other, db, a), await artifactPath(other, db, b)];
    await rm(pathA);
    await execa('mkfifo', [pathA]);
    await rm(pathB);
    await symlink('/dev/zero', pathB);
    const started = Date.now();
    const run = await bin(['verify', '--all', '--level', 'checksum', '--storage', other, '--json'], { timeoutMs: 20_000 });
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(run.code, run.stderr).toBe(3);
    const outcomes = (JSON.parse(run.stdout) as { outcomes: Array<{ id: string; result: string }> }).outcomes;
    expect(outcomes.map((o) => o.result)).toEqual(['failed', 'failed']);
  });

  it.skipIf(sshdUnavailable())('on SFTP too: a FIFO or a symlink where an artifact or a sidecar belongs ends verify at once (exit 3), and is named', async () => {
    const server = await startSshd();
    try {
      const dir = path.join(server.root, uniquePrefix('hostile'));
      const url = `sftp://${server.user}@127.0.0.1:${server.port}${dir}?key=${server.keyFile}&known-hosts=${server.knownHostsFile}&agent=none`;
      const [a, b, c] = [await createIn(url), await createIn(url), await createIn(url)];
      const [pathA, pathB] = [await artifactPath(dir, db, a), await artifactPath(dir, db, b)];
      await rm(pathA);
      await execa('mkfifo', [pathA]);
      await rm(pathB);
      await symlink('/dev/zero', pathB);
      const sidecarC = path.join(dir, db, `${c}.json`);
      const outside = path.join(server.scratch, 'outside.json');
      await copyFile(sidecarC, outside);
      await rm(sidecarC);
      await symlink(outside, sidecarC);
      const started = Date.now();
      const run = await bin(['verify', '--all', '--level', 'checksum', '--storage', url, '--json'], { timeoutMs: 40_000 });
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(run.code, run.stderr).toBe(3);
      const outcomes = (JSON.parse(run.stdout) as { outcomes: Array<{ id: string; result: string }> }).outcomes;
      expect(Object.fromEntries(outcomes.map((o) => [o.id, o.result]))).toMatchObject({ [a]: 'failed', [b]: 'failed' });
      expect(run.stderr).toContain(`${c}.json`);
      // The server's session processes are not left waiting on the FIFO: a second run ends too.
      const again = await bin(['verify', a, '--level', 'checksum', '--storage', url], { timeoutMs: 40_000 });
      expect(again.code).toBe(3);
      expect(`${again.stdout}${again.stderr}`).toMatch(/FIFO/);
    } finally {
      await server.stop();
    }
  }, 120_000);

  it('a passwordFile that is a FIFO or /dev/zero is exit 2 at once', async () => {
    const dir = await tempDir('hostile-pw');
    const fifo = path.join(dir, 'pw.fifo');
    await execa('mkfifo', [fifo]);
    for (const file of [fifo, '/dev/zero']) {
      const config = path.join(dir, 'backupctl.config.json');
      await writeFile(config, JSON.stringify({ profiles: { app: { host: cluster.host, port: cluster.port, user: cluster.user, database: db, passwordFile: file } } }));
      const started = Date.now();
      const run = await bin(['create', '--config', config, '--storage', storage], { timeoutMs: 20_000 });
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/not a regular file/);
    }
    await mkdir(path.join(dir, 'unused'), { recursive: true });
  });
});
