/**
 * Fault injection: a storage that refuses to give a backup's sidecar or artifact (here: a
 * root-owned 0600 file left by a run as root, read by backupctl running as `nobody`). That
 * says nothing about the backup: every command fails as a storage failure (exit 1, one line
 * naming the object and "permission denied"), never as a corrupt backup (exit 3), never
 * skips it for an older one, and removes nothing. A sidecar whose bytes are read but are
 * not a valid one stays a corrupt backup (exit 3).
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { chmod, chown, mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serializeSidecar } from '../../src/catalog/sidecar.js';
import { BIN, baseEnv, runBin, type CliOutcome } from '../helpers/cli.js';
import { failureLines, removeTempDirs, tempDir } from '../helpers/failure-kit.js';
import { sampleSidecar } from '../helpers/sidecar-fixture.js';

const notRoot = typeof process.getuid === 'function' && process.getuid() !== 0;
const skipped = notRoot ? ' (skipped: runuser needs root)' : '';

const OLDEST = '20261031T000000Z-0000c0';
const OLD = '20261101T000000Z-0000a1';
const NEW = '20261102T000000Z-0000b2';
let home: string;

/** The built binary, run as `nobody`. */
async function asNobody(args: string[]): Promise<CliOutcome> {
  const result = await execa('runuser', ['-u', 'nobody', '--', process.execPath, BIN, ...args], {
    reject: false,
    extendEnv: false,
    env: baseEnv({ HOME: home }) as Record<string, string>,
    cwd: home,
    stdin: 'ignore',
  });
  return { code: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

/** A complete backup `id` of profile `app` in `dir` (artifact and sidecar, mode `mode` each, owned by root). */
async function writeBackup(dir: string, id: string, mode: number, sidecarBytes?: Buffer): Promise<void> {
  const artifact = Buffer.from(`the dump of ${id}`);
  const startedAt = `${id.slice(0, 4)}-${id.slice(4, 6)}-${id.slice(6, 8)}T00:00:00Z`;
  const sidecar = sampleSidecar({
    id,
    startedAt,
    finishedAt: startedAt,
    globals: { status: 'skipped', reason: 'not asked for' },
    artifact: { bytes: artifact.length, sha256: createHash('sha256').update(artifact).digest('hex') },
  });
  await writeFile(path.join(dir, `${id}.dump`), artifact, { mode });
  await writeFile(path.join(dir, `${id}.json`), sidecarBytes ?? serializeSidecar(sidecar), { mode });
}

/**
 * A storage root readable by everyone, with a profile `app` (a directory of `owner`) that
 * holds an older readable backup and a newer one whose sidecar (or artifact) is root's, 0600.
 */
async function storageWith(refused: 'sidecar' | 'artifact', owner: 'root' | 'nobody' = 'root'): Promise<{ storage: string; profileDir: string }> {
  const storage = await tempDir(`perm-${refused}`);
  await chmod(storage, 0o755);
  const profileDir = path.join(storage, 'app');
  await mkdir(profileDir, { mode: 0o755 });
  await writeBackup(profileDir, OLD, 0o644);
  await writeBackup(profileDir, NEW, 0o644);
  await chmod(path.join(profileDir, refused === 'sidecar' ? `${NEW}.json` : `${NEW}.dump`), 0o600);
  if (owner === 'nobody') {
    const { stdout } = await execa('id', ['-u', 'nobody']);
    await chown(profileDir, Number(stdout.trim()), 0);
    await chmod(profileDir, 0o700);
  }
  return { storage, profileDir };
}

/** The one error line names the storage, the sidecar and the refusal, says nothing of corruption. */
function expectRefused(run: CliOutcome, what: string, storage: string, key: string): void {
  expect(run.code, `${what}: ${run.stderr}`).toBe(1);
  const { error, hint } = failureLines(run.stderr);
  expect(error, what).toMatch(/permission denied/);
  expect(error, what).toContain(storage);
  expect(error, what).toContain(key);
  expect(error, what).not.toMatch(/corrupt|cannot be read|not valid|damaged/i);
  expect(hint, what).toMatch(/owner and mode/);
}

beforeAll(async () => {
  home = await tempDir('perm-home');
  await chmod(home, 0o755);
});
afterAll(removeTempDirs);

describe('a sidecar the storage refuses to give (root-owned 0600, read as nobody)', () => {
  it.skipIf(notRoot)(`verify, show, status, restore, delete and copy fail as the storage failed (exit 1, naming the sidecar), never "corrupt" (exit 3); list names it and lists the rest (exit 1)${skipped}`, async () => {
    const { storage, profileDir } = await storageWith('sidecar');
    const key = `app/${NEW}.json`;
    const common = ['--storage', storage, '--profile', 'app'];
    expectRefused(await asNobody(['verify', NEW, '--level', 'checksum', ...common]), 'verify <id>', storage, key);
    expectRefused(await asNobody(['show', NEW, ...common]), 'show <id>', storage, key);
    // list names it and lists the rest, exit 1: an incomplete listing.
    const listed = await asNobody(['list', '--json', ...common]);
    expect(listed.code, listed.stderr).toBe(1);
    expect((JSON.parse(listed.stdout) as Array<{ id: string }>).map((backup) => backup.id)).toEqual([OLD]);
    expect(listed.stderr).toMatch(/permission denied/);
    expect(listed.stderr).toContain(key);
    expect(listed.stderr).not.toMatch(/corrupt|cannot be read|not valid|damaged/i);
    const human = await asNobody(['list', ...common]);
    expect(human.code, human.stderr).toBe(1);
    expect(human.stdout).toContain(OLD);
    expect(human.stdout).toMatch(/1 backup is not listed: the storage refused its sidecar .*this listing is incomplete/);
    expectRefused(await asNobody(['status', ...common]), 'status', storage, key);
    expectRefused(await asNobody(['restore', NEW, '--dry-run', ...common]), 'restore <id>', storage, key);
    expectRefused(await asNobody(['delete', NEW, '--dry-run', ...common]), 'delete <id>', storage, key);
    expectRefused(await asNobody(['verify', '--all', '--level', 'checksum', ...common]), 'verify --all', storage, key);
    expectRefused(await asNobody(['copy', NEW, '--to', await tempDir('perm-copy'), ...common]), 'copy <id>', storage, key);
    expect((await readdir(profileDir)).sort()).toEqual([`${OLD}.dump`, `${OLD}.json`, `${NEW}.dump`, `${NEW}.json`].sort());
  });

  it.skipIf(notRoot)(`"latest" is not the older backup behind the one it cannot read: exit 1 naming it${skipped}`, async () => {
    const { storage } = await storageWith('sidecar');
    expectRefused(await asNobody(['verify', 'latest', '--level', 'checksum', '--storage', storage, '--profile', 'app']), 'verify latest', storage, `app/${NEW}.json`);
  });

  for (const indexed of [false, true]) {
    it.skipIf(notRoot)(`prune removes nothing when a sidecar cannot be read${indexed ? ', its catalog index vouching for it' : ''}: exit 1 naming it${skipped}`, async () => {
      // The profile's directory is nobody's: prune could take its lock and remove files;
      // keep-last 1 of the two backups it can read would remove the oldest.
      const { storage, profileDir } = await storageWith('sidecar', 'nobody');
      await writeBackup(profileDir, OLDEST, 0o644);
      const files = async () => (await readdir(profileDir)).filter((name) => name.endsWith('.dump') || name.endsWith('.json')).sort();
      if (indexed) {
        // An index written (by root) while every sidecar was readable: its entries stand in
        // for the sidecars, and prune confirms from the sidecars what it removes.
        const dayAgo = new Date(Date.now() - 86_400_000);
        for (const name of await files()) await utimes(path.join(profileDir, name), dayAgo, dayAgo);
        const listed = await runBin(['list', '--storage', storage, '--profile', 'app'], { env: baseEnv({ HOME: home }) as Record<string, string>, cwd: home });
        expect(listed.code, listed.stderr).toBe(0);
        await chmod(path.join(profileDir, 'catalog-index.json'), 0o644);
      }
      const before = await files();
      expectRefused(await asNobody(['prune', '--keep-last', '1', '--storage', storage, '--profile', 'app']), 'prune', storage, `app/${NEW}.json`);
      expect(await files()).toEqual(before);
    });
  }

  it.skipIf(notRoot)(`an artifact the storage refuses to give: verify is exit 1 naming it, not FAILED (exit 3)${skipped}`, async () => {
    const { storage } = await storageWith('artifact');
    const run = await asNobody(['verify', NEW, '--level', 'checksum', '--storage', storage, '--profile', 'app']);
    expect(run.code, run.stderr + run.stdout).toBe(1);
    expect(run.stdout + run.stderr).toMatch(/permission denied/);
    expect(run.stdout + run.stderr).toContain(`${NEW}.dump`);
    expect(run.stdout + run.stderr).not.toMatch(/FAILED|corrupt/);
  });

  it.skipIf(notRoot)(`a sidecar that is read but is not JSON is still a corrupt backup (exit 3)${skipped}`, async () => {
    const storage = await tempDir('perm-garbled');
    await chmod(storage, 0o755);
    const profileDir = path.join(storage, 'app');
    await mkdir(profileDir, { mode: 0o755 });
    await writeBackup(profileDir, NEW, 0o644, Buffer.from('{"not json'));
    const run = await asNobody(['verify', NEW, '--level', 'checksum', '--storage', storage, '--profile', 'app']);
    expect(run.code, run.stderr).toBe(3);
    expect(failureLines(run.stderr).error).toContain(`app/${NEW}.json`);
  });
});
