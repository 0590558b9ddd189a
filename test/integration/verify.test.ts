/**
 * `backupctl verify` against the real test cluster:
 * - every level passes for a Chinook backup (custom format) and a tricky.sql backup taken
 *   with --jobs 2 (directory format stored as a tar); each run is recorded in the sidecar
 *   and `list` shows the latest result;
 * - corruption is exit 3 with a message naming the backup and what differs (flipped byte,
 *   truncation, missing artifact, edited row count, missing or edited globals), including a
 *   truncated archive whose sidecar was "fixed" to match, which only reading the archive
 *   to the end catches;
 * - the throwaway database never survives (success, failure, SIGINT), unless --keep;
 * - --all, --verify-url, and a backup taken under pgbench load verifying exactly.
 */
import { execa, type ResultPromise } from 'execa';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sidecar } from '../../src/catalog/sidecar.js';
import type { VerifyOutcome } from '../../src/core/verify.js';
import { backUpSamples, createBackup, makeTempDir, parseJsonStdout, readSidecar, removeDirs, sourceTables, tableKey } from '../helpers/backups.js';
import { BIN, assertBuilt, baseEnv, runCli, type CliOutcome } from '../helpers/cli.js';
import { failureLines, fillRandomText, processesWithEnv, removeTempDirs, sh, waitFor, wrapperBinDir, writeConfig } from '../helpers/failure-kit.js';
import { connectProvided, uniqueName } from '../helpers/pg.js';

const cluster = connectProvided();
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- hand edits of a sidecar reach into any field
type Loose = Record<string, any>;
const dirs: string[] = [];
const databases: string[] = [];

const chinook = uniqueName('vfy_chinook');
const tricky = uniqueName('vfy_tricky');
let work: string;
/** Holds one Chinook backup (custom) and one tricky.sql backup (--jobs 2: a tar); copied before a test damages it. */
let storage: string;
const ids = { chinook: '', tricky: '' };

interface VerifyJson {
  storage: string;
  passed: boolean;
  outcomes: VerifyOutcome[];
}

/** backupctl with the cluster's connection in the libpq environment (the profile's server). */
function cli(argv: string[], options: { env?: Record<string, string | undefined> } = {}): Promise<CliOutcome> {
  return runCli(argv, { env: options.env ?? baseEnv(cluster.env('postgres')), cwd: work });
}

function verifyJson(run: CliOutcome): VerifyJson {
  const out = parseJsonStdout(run.stdout) as VerifyJson;
  expect(Array.isArray(out.outcomes)).toBe(true);
  return out;
}

/** A copy of the shared storage that a test may damage. */
async function copyOfStorage(): Promise<string> {
  const dir = await makeTempDir('vfy-copy');
  dirs.push(dir);
  const copy = path.join(dir, 'storage');
  await cp(storage, copy, { recursive: true });
  return copy;
}

function artifactPath(where: string, sidecar: Sidecar): string {
  return path.join(where, sidecar.profile, sidecar.artifact.file);
}

/** Throwaway databases of a backup still on the server (its id is in their name). */
async function throwaways(id: string): Promise<string[]> {
  const prefix = `backupctl_verify_${id.toLowerCase().replace(/[^a-z0-9]/g, '_')}_`;
  const rows = await cluster.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [prefix]);
  return rows.map((r) => r.datname);
}

async function editSidecar(where: string, profile: string, id: string, edit: (s: Loose) => void): Promise<void> {
  const file = path.join(where, profile, `${id}.json`);
  const json = JSON.parse(await readFile(file, 'utf8')) as Loose;
  edit(json);
  await writeFile(file, `${JSON.stringify(json, null, 2)}\n`);
}

/**
 * Damages the archive itself behind consistent digests (what a bug in pg_dump, or a
 * tamperer who also edits the sidecar, would leave): the zstd artifact is decoded, `edit`
 * changes pg_dump's bytes, it is compressed again, and the sidecar's stored and plaintext
 * digests are updated to match. Returns the edited plaintext archive.
 */
async function damageArchive(where: string, profile: string, id: string, edit: (plain: string) => Promise<void>): Promise<string> {
  const { sidecar } = await readSidecar(where, profile, id);
  const file = artifactPath(where, sidecar);
  const plain = `${file}.plain`;
  await execa('zstd', ['-q', '-d', '-f', file, '-o', plain]);
  await edit(plain);
  await execa('zstd', ['-q', '-3', '-f', plain, '-o', file]);
  const [stored, plaintext] = [await sha256(file), await sha256(plain)];
  await editSidecar(where, profile, id, (s) => {
    s.artifact.bytes = stored.bytes;
    s.artifact.sha256 = stored.sha256;
    s.artifact.plaintext = plaintext;
  });
  return plain;
}

async function flipMiddleByte(file: string): Promise<void> {
  const bytes = await readFile(file);
  const at = Math.floor(bytes.length / 2);
  bytes[at] = (bytes[at] as number) ^ 0xff;
  await writeFile(file, bytes);
}

async function sha256(file: string): Promise<{ bytes: number; sha256: string }> {
  const data = await readFile(file);
  return { bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') };
}

beforeAll(async () => {
  work = await makeTempDir('vfy');
  dirs.push(work);
  storage = path.join(work, 'storage');
  databases.push(chinook, tricky);
  Object.assign(ids, await backUpSamples(cluster, { chinook, tricky }, storage, work));
});

afterAll(async () => {
  for (const db of databases) await cluster.dropDatabase(db);
  await removeDirs(dirs);
  await removeTempDirs();
});

describe('verify passes at every level', () => {
  it.each([
    ['Chinook (custom format)', () => ({ profile: chinook, id: ids.chinook, container: 'pg-custom' })],
    ['tricky.sql (--jobs 2: directory format in a tar)', () => ({ profile: tricky, id: ids.tricky, container: 'tar' })],
  ])('%s: checksum, archive and restore pass, each recorded in the sidecar; list shows the latest', async (_label, which) => {
    const { profile, id, container } = which();
    const where = await copyOfStorage();
    const before = (await readSidecar(where, profile, id)).sidecar;
    expect(before.artifact.container).toBe(container);
    expect(before.verifications).toEqual([]);

    const levels = ['checksum', 'archive', 'restore'] as const;
    for (const [i, level] of levels.entries()) {
      const run = await cli(['verify', id, '--level', level, '--json', '--storage', where]);
      expect(run.code, run.stderr).toBe(0);
      const out = verifyJson(run);
      expect(out.passed).toBe(true);
      expect(out.outcomes).toHaveLength(1);
      expect(out.outcomes[0]).toMatchObject({ id, profile, database: profile, level, result: 'passed', mismatches: [] });
      expect(out.outcomes[0]?.error).toBeUndefined();
      if (level === 'restore') expect(out.outcomes[0]?.serverVersion).toMatch(/^\d+/);

      // Appended to the sidecar, which is still valid and otherwise unchanged.
      const { sidecar } = await readSidecar(where, profile, id);
      expect(sidecar.verifications).toHaveLength(i + 1);
      expect(sidecar.verifications[i]).toMatchObject({ level, result: 'passed', mismatches: [] });
      expect(sidecar.verifications[i]?.durationMs).toBeGreaterThanOrEqual(0);
      expect(Date.parse(sidecar.verifications[i]?.at ?? '')).toBeGreaterThan(Date.now() - 120_000);
      expect({ ...sidecar, verifications: [] }).toEqual(before);
      if (level === 'restore') expect(sidecar.verifications[i]?.serverVersion).toMatch(/^\d+/);
    }
    expect(await throwaways(id)).toEqual([]);

    const list = await cli(['list', '--json', '--storage', where, '--profile', profile]);
    expect(list.code, list.stderr).toBe(0);
    const listed = parseJsonStdout(list.stdout) as Array<{ id: string; verification: { level: string; result: string } | null }>;
    expect(listed.find((b) => b.id === id)?.verification).toMatchObject({ level: 'restore', result: 'passed' });

    // The human output says so too.
    const human = await cli(['verify', 'latest', '--profile', profile, '--level', 'checksum', '--storage', where]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain(id);
    expect(human.stdout).toMatch(/checksum: passed/);
  });
});

describe('verify: corruption is exit 3, naming the backup and what differs', () => {
  /** Runs verify (human output) and checks exit 3, the backup's id, and `expected` in the output; returns the recorded verification. */
  async function expectFailure(where: string, profile: string, id: string, level: string, expected: RegExp) {
    const run = await cli(['verify', id, '--level', level, '--storage', where]);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(3);
    expect(run.stdout).toContain(id);
    expect(run.stdout).toMatch(/FAILED/);
    expect(run.stdout).toMatch(expected);
    const json = await cli(['verify', id, '--level', level, '--json', '--storage', where]);
    expect(json.code).toBe(3);
    const out = verifyJson(json);
    expect(out.passed).toBe(false);
    expect(out.outcomes[0]).toMatchObject({ id, level, result: 'failed' });
    const { sidecar } = await readSidecar(where, profile, id);
    const last = sidecar.verifications.at(-1);
    expect(last).toMatchObject({ level, result: 'failed' });
    expect([last?.error ?? '', ...(last?.mismatches ?? [])].join('\n')).toMatch(expected);
    expect(await throwaways(id)).toEqual([]);
    return last;
  }

  it.each([
    ['custom', () => ({ profile: chinook, id: ids.chinook })],
    ['tar', () => ({ profile: tricky, id: ids.tricky })],
  ])('one flipped byte in the middle of the artifact (%s): every level', async (_label, which) => {
    const { profile, id } = which();
    const where = await copyOfStorage();
    const { sidecar } = await readSidecar(where, profile, id);
    await flipMiddleByte(artifactPath(where, sidecar));
    for (const level of ['checksum', 'archive', 'restore']) {
      const last = await expectFailure(where, profile, id, level, /artifact: sha256 is [0-9a-f]{64}, the sidecar says [0-9a-f]{64}/);
      // Same size, other bytes: only the sha256 differs, said once; what reading the
      // damaged bytes then ran into (pg_restore on an archive cut short) is no second finding.
      expect(last?.mismatches.some((m) => m.includes('size'))).toBe(false);
      expect(last?.mismatches).toHaveLength(1);
      expect(last?.error ?? null).toBeNull();
    }
  });

  it.each([
    ['custom', () => ({ profile: chinook, id: ids.chinook })],
    ['tar', () => ({ profile: tricky, id: ids.tricky })],
  ])('a truncated artifact (first half kept, %s): every level', async (_label, which) => {
    const { profile, id } = which();
    const where = await copyOfStorage();
    const { sidecar } = await readSidecar(where, profile, id);
    const file = artifactPath(where, sidecar);
    const half = Math.floor(sidecar.artifact.bytes / 2);
    await truncate(file, half);
    for (const level of ['checksum', 'archive', 'restore']) {
      await expectFailure(where, profile, id, level, new RegExp(`artifact: size is ${half} bytes, the sidecar says ${sidecar.artifact.bytes}`));
    }
  });

  it('a truncated custom archive whose sidecar was updated to match: checksum passes, archive level reads to the end and fails', async () => {
    const where = await copyOfStorage();
    const plain = await damageArchive(where, chinook, ids.chinook, async (file) => truncate(file, Math.floor((await stat(file)).size / 2)));
    // What makes this case: `pg_restore --list` alone still succeeds on the half archive.
    const list = await execa(cluster.bin('pg_restore'), ['--list', plain], { reject: false, stdin: 'ignore' });
    expect(list.exitCode).toBe(0);

    const checksum = await cli(['verify', ids.chinook, '--level', 'checksum', '--storage', where]);
    expect(checksum.code, checksum.stderr).toBe(0);
    await expectFailure(where, chinook, ids.chinook, 'archive', /cannot be read to the end/);
    await expectFailure(where, chinook, ids.chinook, 'restore', /does not restore/);
  });

  it('a truncated tar whose sidecar was updated to match: the archive cannot be unpacked (exit 3, not a crash)', async () => {
    const where = await copyOfStorage();
    await damageArchive(where, tricky, ids.tricky, async (file) => truncate(file, Math.floor((await stat(file)).size / 2)));
    await expectFailure(where, tricky, ids.tricky, 'archive', /cannot be read back: .*tar|cannot be unpacked|TAR_BAD_ARCHIVE|unexpected end/i);
    await expectFailure(where, tricky, ids.tricky, 'restore', /cannot be read back: .*tar|cannot be unpacked|TAR_BAD_ARCHIVE|unexpected end/i);
  });

  it('a deleted artifact: every level', async () => {
    const where = await copyOfStorage();
    const { sidecar } = await readSidecar(where, chinook, ids.chinook);
    await rm(artifactPath(where, sidecar));
    for (const level of ['checksum', 'archive', 'restore']) {
      await expectFailure(where, chinook, ids.chinook, level, new RegExp(`${sidecar.artifact.file.replace(/\./g, '\\.')} is missing`));
    }
  });

  it('a row count edited in the sidecar: the restore level names the table and both counts; the lower levels cannot see it', async () => {
    const where = await copyOfStorage();
    await editSidecar(where, chinook, ids.chinook, (s) => {
      const table = (s.tables as Array<{ name: string; rows: number }>).find((t) => t.name === 'playlist_track');
      if (!table) throw new Error('no playlist_track in the sidecar');
      table.rows += 1;
    });
    for (const level of ['checksum', 'archive']) {
      const run = await cli(['verify', ids.chinook, '--level', level, '--storage', where]);
      expect(run.code, run.stderr).toBe(0);
    }
    const last = await expectFailure(where, chinook, ids.chinook, 'restore', /playlist_track: 8715 rows after restore, 8716 at backup time/);
    expect(last?.mismatches).toEqual(['public.playlist_track: 8715 rows after restore, 8716 at backup time']);
    expect(last?.serverVersion).toMatch(/^\d+/);
  });

  it('a deleted or edited globals file: exit 3 at the checksum level already', async () => {
    const where = await copyOfStorage();
    const { sidecar } = await readSidecar(where, chinook, ids.chinook);
    expect(sidecar.globals.status).toBe('included');
    if (sidecar.globals.status !== 'included') return;
    const globals = path.join(where, chinook, sidecar.globals.file);
    await writeFile(globals, `${await readFile(globals, 'utf8')}CREATE ROLE intruder SUPERUSER;\n`);
    await expectFailure(where, chinook, ids.chinook, 'checksum', /globals: size is \d+ bytes, the sidecar says \d+/);
    await rm(globals);
    await expectFailure(where, chinook, ids.chinook, 'checksum', new RegExp(`globals file ${sidecar.globals.file.replace(/\./g, '\\.')} is missing`));
    await expectFailure(where, chinook, ids.chinook, 'restore', /globals file .* is missing/);
  });
});

describe('verify: the throwaway database', () => {
  it('--keep keeps it, prints its name, and it holds the restored data', async () => {
    const where = await copyOfStorage();
    const run = await cli(['verify', ids.chinook, '--keep', '--storage', where]);
    expect(run.code, run.stderr).toBe(0);
    const match = /kept throwaway database (backupctl_verify_\S+)/.exec(run.stdout);
    expect(match, run.stdout).not.toBeNull();
    const kept = match?.[1] as string;
    databases.push(kept);
    expect(await throwaways(ids.chinook)).toEqual([kept]);
    const [row] = await cluster.query<{ n: string }>(kept, 'SELECT count(*)::text AS n FROM public.playlist_track');
    expect(row?.n).toBe('8715');
    // Not a scratch database any more, nor an unmarked one (what a kill mid-CREATE leaves): it says why it is there.
    const [comment] = await cluster.query<{ c: string }>('postgres', `SELECT shobj_description(oid, 'pg_database') AS c FROM pg_database WHERE datname = $1`, [kept]);
    expect(comment?.c).toMatch(new RegExp(`^backupctl: kept by verify --keep of backup ${chinook}/${ids.chinook} at \\S+; drop it when done$`));
    await cluster.dropDatabase(kept);

    const json = await cli(['verify', ids.chinook, '--keep', '--json', '--storage', where]);
    expect(json.code, json.stderr).toBe(0);
    const keptJson = verifyJson(json).outcomes[0]?.keptDatabase as string;
    expect(keptJson).toMatch(/^backupctl_verify_/);
    databases.push(keptJson);
    expect(await throwaways(ids.chinook)).toEqual([keptJson]);
    await cluster.dropDatabase(keptJson);
  });

  it('is dropped when pg_restore fails (the count-mismatch case is checked above); --keep keeps it even then', async () => {
    const where = await copyOfStorage();
    await damageArchive(where, chinook, ids.chinook, async (file) => truncate(file, Math.floor((await stat(file)).size * 0.8)));
    const run = await cli(['verify', ids.chinook, '--storage', where, '--jobs', '2']);
    expect(run.code, run.stdout).toBe(3);
    expect(run.stdout).toMatch(/the backup does not restore: pg_restore failed/);
    expect(await throwaways(ids.chinook)).toEqual([]);
    // --keep keeps it, for a look at how far the restore got.
    const kept = await cli(['verify', ids.chinook, '--storage', where, '--keep', '--json']);
    expect(kept.code).toBe(3);
    const name = verifyJson(kept).outcomes[0]?.keptDatabase as string;
    expect(name).toMatch(/^backupctl_verify_/);
    databases.push(name);
    expect(await throwaways(ids.chinook)).toEqual([name]);
    await cluster.dropDatabase(name);
  });
});

describe('verify --all', () => {
  it('walks every backup of every profile, prints a summary; exit 0 when all pass, 3 when one fails', async () => {
    const where = await copyOfStorage();
    const ok = await cli(['verify', '--all', '--storage', where]);
    expect(ok.code, `${ok.stdout}\n${ok.stderr}`).toBe(0);
    expect(ok.stdout).toContain(ids.chinook);
    expect(ok.stdout).toContain(ids.tricky);
    expect(ok.stdout).toMatch(/2 passed, 0 failed/);
    for (const [profile, id] of [[chinook, ids.chinook], [tricky, ids.tricky]] as const) {
      expect((await readSidecar(where, profile, id)).sidecar.verifications).toMatchObject([{ level: 'restore', result: 'passed' }]);
      expect(await throwaways(id)).toEqual([]);
    }

    // --profile narrows it to one.
    const one = await cli(['verify', '--all', '--profile', tricky, '--level', 'archive', '--json', '--storage', where]);
    expect(one.code, one.stderr).toBe(0);
    expect(verifyJson(one).outcomes.map((o) => o.id)).toEqual([ids.tricky]);

    const { sidecar } = await readSidecar(where, tricky, ids.tricky);
    await flipMiddleByte(artifactPath(where, sidecar));
    const bad = await cli(['verify', '--all', '--level', 'archive', '--storage', where]);
    expect(bad.code, bad.stdout).toBe(3);
    expect(bad.stdout).toMatch(/1 passed, 1 failed/);
    expect(bad.stdout).toMatch(new RegExp(`FAILED ${tricky}/${ids.tricky}:\\n  - artifact: sha256 is`));
    const json = verifyJson(await cli(['verify', '--all', '--level', 'checksum', '--json', '--storage', where]));
    expect(json.passed).toBe(false);
    expect(Object.fromEntries(json.outcomes.map((o) => [o.id, o.result]))).toEqual({ [ids.chinook]: 'passed', [ids.tricky]: 'failed' });
  });

  it('an id and --all together, or neither, is a usage error', async () => {
    expect((await cli(['verify', '--all', ids.chinook, '--storage', storage])).code).toBe(2);
    expect((await cli(['verify', '--storage', storage])).code).toBe(2);
  });
});

describe('verify --db-url', () => {
  it('with no config and no libpq environment, the global --db-url is the server the restore level uses (as for create)', async () => {
    const where = await copyOfStorage();
    const url = `postgres://${cluster.user}@${cluster.host}:${cluster.port}/postgres`;
    const run = await cli(['verify', ids.chinook, '--db-url', url, '--json', '--storage', where], { env: baseEnv({ PGPASSWORD: cluster.password }) });
    expect(run.code, run.stderr).toBe(0);
    expect(verifyJson(run).outcomes[0]).toMatchObject({ result: 'passed', level: 'restore' });
  });
});

describe('verify --verify-url', () => {
  it('restores on the server of the URL (another maintenance database, password from PGPASSWORD)', async () => {
    const where = await copyOfStorage();
    // No PGHOST/PGPORT/PGUSER: the server can only come from the URL.
    const env = baseEnv({ PGPASSWORD: cluster.password });
    const url = `postgres://${cluster.user}@${cluster.host}:${cluster.port}/template1`;
    const run = await cli(['verify', ids.tricky, '--verify-url', url, '--json', '--storage', where], { env });
    expect(run.code, run.stderr).toBe(0);
    expect(verifyJson(run).outcomes[0]).toMatchObject({ result: 'passed', level: 'restore' });
    expect(await throwaways(ids.tricky)).toEqual([]);

    // Without the password it cannot connect: a usage error, not a verification failure.
    const noPassword = await cli(['verify', ids.tricky, '--verify-url', url, '--storage', where], { env: baseEnv() });
    expect(noPassword.code).toBe(2);
    // A password in the URL is refused, and not printed.
    const withPassword = await cli(
      ['verify', ids.tricky, '--verify-url', `postgres://${cluster.user}:${encodeURIComponent(cluster.password)}@${cluster.host}:${cluster.port}/postgres`, '--storage', where],
      { env },
    );
    expect(withPassword.code).toBe(2);
    expect(withPassword.stderr).not.toContain(cluster.password);
    expect(withPassword.stdout).not.toContain(cluster.password);
  });
});

describe('verify interrupted during the restore level', () => {
  const big = uniqueName('vfy_big');
  let bigStorage: string;
  let bigId: string;
  const MARKER = 'BACKUPCTL_VERIFY_SIGNAL_TEST';

  beforeAll(async () => {
    assertBuilt();
    databases.push(big);
    await cluster.createDatabase(big);
    // ~150 MB of md5 text in one table: pg_restore takes seconds to load it.
    await fillRandomText(cluster, big, 'public.payload', 120);
    bigStorage = path.join(work, 'big-storage');
    bigId = await createBackup(cluster, big, bigStorage, work, ['--no-globals', '--pg-compress', '1']);
  }, 120_000);

  /** verify of the big backup, its processes marked with `marker`; `early()`: why it ended before it was meant to. */
  function startVerify(marker: string) {
    const child = execa(process.execPath, [BIN, 'verify', bigId, '--storage', bigStorage], {
      reject: false,
      extendEnv: false,
      env: baseEnv({ ...cluster.env('postgres'), [MARKER]: marker }) as Record<string, string>,
      cwd: work,
      stdin: 'ignore',
      forceKillAfterDelay: false,
    });
    const exited = child.then((result) => result);
    let ended: string | null = null;
    void exited.then((result) => {
      ended = `verify ended before it could be interrupted (exit ${result.exitCode}):\n${String(result.stderr)}`;
    });
    return { child, exited, early: () => ended };
  }

  it('exits 130, stops pg_restore, and drops the throwaway database within seconds', async () => {
    const marker = uniqueName('m');
    const { child, exited, early } = startVerify(marker);
    // pg_restore runs (a child of this run) and the throwaway database exists.
    await waitFor(async () => {
      if (early()) throw new Error(early() as string);
      const restoring = (await processesWithEnv(MARKER, marker)).some((p) => p.comm === 'pg_restore');
      return restoring && (await throwaways(bigId)).length === 1;
    }, 'pg_restore to run into the throwaway database', 60_000);
    await sleep(300);
    const sentAt = Date.now();
    child.kill('SIGINT');
    const result = await exited;
    expect(result.exitCode, String(result.stderr)).toBe(130);
    expect(Date.now() - sentAt).toBeLessThan(10_000);
    expect(failureLines(String(result.stderr)).error).toMatch(/interrupted by SIGINT/);
    // Gone already when the run has ended; waitFor only to report it clearly.
    await waitFor(async () => (await throwaways(bigId)).length === 0, 'the throwaway database to be dropped', 5_000);
    await waitFor(async () => (await processesWithEnv(MARKER, marker)).length === 0, 'every process of the run to end', 5_000);
    // An interrupted verification is not recorded as a result.
    expect((await readSidecar(bigStorage, big, bigId)).sidecar.verifications).toEqual([]);
  }, 90_000);
});

describe('verify whose pg_restore is killed (the OOM killer)', () => {
  it('NOT VERIFIED (exit 1), not recorded as a failure of the backup; at --jobs 1 (streamed) and 2', async () => {
    // A pg_restore that is SIGKILLed as soon as it is asked to restore (its --list runs).
    const bin = await wrapperBinDir(cluster, {
      pg_restore: `#!/bin/sh\nfor arg in "$@"; do case "$arg" in --dbname=*) kill -9 $$ ;; esac; done\nexec ${sh(cluster.bin('pg_restore'))} "$@"\n`,
    });
    const configDir = await makeTempDir('vfy-killed');
    dirs.push(configDir);
    const config = await writeConfig(configDir, { pgBinDir: bin });
    for (const jobs of ['1', '2']) {
      const run = await cli(['verify', ids.chinook, '--storage', storage, '--config', config, '--jobs', jobs]);
      expect(run.code, run.stdout + run.stderr).toBe(1);
      expect(run.stdout).toMatch(/NOT VERIFIED/);
      expect(run.stdout).toMatch(/pg_restore was killed by SIGKILL/);
    }
    expect((await readSidecar(storage, chinook, ids.chinook)).sidecar.verifications.filter((v) => v.result === 'failed')).toEqual([]);
  });
});

describe('verify: a backup taken under concurrent writes (pgbench)', () => {
  const bench = uniqueName('vfy_bench');

  function pgbench(): string {
    const file = cluster.bin('pgbench');
    if (!existsSync(file)) throw new Error(`pgbench not found at ${file} (install the PostgreSQL contrib package of the server version)`);
    return file;
  }

  async function historyRows(): Promise<number> {
    const [row] = await cluster.query<{ n: string }>(bench, 'SELECT count(*)::text AS n FROM pgbench_history');
    return Number(row?.n);
  }

  beforeAll(async () => {
    databases.push(bench);
    await cluster.createDatabase(bench);
    await execa(pgbench(), ['-i', '-s', '5', '-q', bench], { env: cluster.env(bench), stdin: 'ignore' });
  }, 120_000);

  it('verifies exactly at the restore level', async () => {
    const where = path.join(work, 'bench-storage');
    let load: ResultPromise | undefined;
    try {
      load = execa(pgbench(), ['-n', '-c', '4', '-T', '10', bench], { env: cluster.env(bench), stdin: 'ignore', reject: false });
      const before = await historyRows();
      for (let waited = 0; (await historyRows()) <= before && waited < 10_000; waited += 100) await sleep(100);
      expect(await historyRows(), 'pgbench is writing').toBeGreaterThan(before);
      const id = await createBackup(cluster, bench, where, work, ['--no-globals']);
      const afterCreate = await historyRows();
      const { sidecar } = await readSidecar(where, bench, id);
      const history = sidecar.tables.find((t) => t.name === 'pgbench_history')?.rows ?? -1;
      expect(history).toBeGreaterThan(before);
      expect(history).toBeLessThan(afterCreate);

      // While the load goes on (the source keeps changing), the backup verifies exactly.
      const run = await cli(['verify', id, '--json', '--jobs', '2', '--storage', where]);
      expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
      expect(verifyJson(run).outcomes[0]).toMatchObject({ result: 'passed', level: 'restore', mismatches: [] });
      const result = await load;
      expect(result.exitCode, String(result.stderr)).toBe(0);
      expect(await historyRows()).toBeGreaterThan(history);
      expect(await throwaways(id)).toEqual([]);
      // And the counts it compared are the snapshot's, not the source's now.
      const now = new Map((await sourceTables(cluster, bench)).map((t) => [tableKey(t), t.rows]));
      expect(now.get('public.pgbench_history')).not.toBe(history);
    } finally {
      if (load && load.exitCode === null) load.kill();
      await load?.catch(() => undefined);
    }
  }, 120_000);
});
