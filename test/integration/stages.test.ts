/**
 * The artifact pipeline through the commands: compression stages (zstd by default, gzip,
 * none, pg_dump's own), age encryption to recipients or a passphrase, restoring without
 * backupctl, damage found before anything is restored, rekeying without touching the
 * payload, and version 1 sidecars (no stages) still read as before.
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { formatIdentityFile, generateIdentity, readHeader } from '../../src/pipeline/age/index.js';
import { parseJsonStdout, readSidecar } from '../helpers/backups.js';
import { baseEnv, runBin, runCli, type CliOutcome } from '../helpers/cli.js';
import { quoteIdent } from '../helpers/cluster.js';
import { scratchSetup, tempDir } from '../helpers/failure-kit.js';
import { uniqueName } from '../helpers/pg.js';

const scratch = scratchSetup('stages', {
  seed: async () => {
    await cluster.query(
      db,
      `create table items (id int primary key, body text);
       insert into items select g, repeat(md5(g::text), 20) from generate_series(1, 3000) g;
       create schema other; create table other.notes (id int, note text);
       insert into other.notes select g, 'note ' || g from generate_series(1, 250) g;
       create role stages_reader;
       grant select on items to stages_reader;`,
    );
  },
  teardown: async () => {
    for (const name of made) await cluster.dropDatabase(name);
    for (const name of [db, ...made]) await cluster.query(name, 'drop owned by stages_reader').catch(() => undefined);
    await cluster.query('postgres', 'drop role if exists stages_reader').catch(() => undefined);
  },
});
const { cluster, db } = scratch;
const made: string[] = [];

let keys: string;
let keyA: { file: string; recipient: string };
let keyB: { file: string; recipient: string };
let passphraseFile: string;

beforeAll(async () => {
  keys = await tempDir('keys');
  const make = async (name: string) => {
    const { identity, recipient } = generateIdentity();
    const file = path.join(keys, `${name}.key`);
    await writeFile(file, formatIdentityFile(identity), { mode: 0o600 });
    return { file, recipient: recipient.toString() };
  };
  keyA = await make('a');
  keyB = await make('b');
  passphraseFile = path.join(keys, 'passphrase.txt');
  await writeFile(passphraseFile, 'correct horse battery staple\n', { mode: 0o600 });
});

function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliOutcome> {
  return runCli(args, { env: baseEnv({ ...cluster.env(db), ...env }), cwd: scratch.cwd });
}

async function create(storage: string, args: string[] = [], env: Record<string, string | undefined> = {}): Promise<string> {
  const run = await cli(['create', '--storage', storage, '--json', ...args], env);
  expect(run.code, run.stderr).toBe(0);
  return (parseJsonStdout(run.stdout) as { id: string }).id;
}

async function sha256File(file: string): Promise<{ bytes: number; sha256: string }> {
  const bytes = await readFile(file);
  return { bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

function targetDb(prefix: string): string {
  const name = uniqueName(prefix);
  made.push(name);
  return name;
}

async function count(database: string, table: string): Promise<number> {
  const [row] = await cluster.query<{ n: string }>(database, `select count(*)::text as n from ${table}`);
  return Number(row?.n);
}

async function verify(storage: string, id: string, level: string, args: string[] = []): Promise<{ code: number; result?: string; problems: string }> {
  const run = await cli(['verify', id, '--storage', storage, '--level', level, '--json', ...args]);
  const outcome = (parseJsonStdout(run.stdout) as { outcomes?: Array<{ result: string; mismatches: string[]; error?: string }> }).outcomes?.[0];
  return { code: run.code, result: outcome?.result, problems: [...(outcome?.mismatches ?? []), outcome?.error ?? '', run.stderr].join('\n') };
}

describe('compression stages', () => {
  it.each([
    { args: [], suffix: '.dump.zst', stages: [{ type: 'compression', codec: 'zstd', level: 3, threads: 2 }], pgCompress: 0 },
    { args: ['--compress', 'zstd:12'], suffix: '.dump.zst', stages: [{ type: 'compression', codec: 'zstd', level: 12, threads: 2 }], pgCompress: 0 },
    { args: ['--compress', 'gzip:9'], suffix: '.dump.gz', stages: [{ type: 'compression', codec: 'gzip', level: 9 }], pgCompress: 0 },
    { args: ['--compress', 'none'], suffix: '.dump', stages: [{ type: 'compression', codec: 'none', level: null }], pgCompress: 0 },
    { args: ['--pg-compress', '6'], suffix: '.dump', stages: [{ type: 'compression', codec: 'none', level: null }], pgCompress: 6 },
    { args: ['--jobs', '2'], suffix: '.dump.tar.zst', stages: [{ type: 'compression', codec: 'zstd', level: 3, threads: 2 }], pgCompress: 0 },
  ])('create $args: a $suffix artifact whose stages and digests the sidecar records; every level verifies; it restores', async ({ args, suffix, stages, pgCompress }) => {
    const storage = await tempDir('st');
    const id = await create(storage, args);
    const { sidecar } = await readSidecar(storage, db, id);
    expect(sidecar.schemaVersion).toBe(2);
    expect(sidecar.artifact.file).toBe(`${id}${suffix}`);
    expect(sidecar.artifact.stages).toEqual(stages);
    expect(sidecar.dump.compress).toBe(pgCompress);
    const stored = path.join(storage, db, sidecar.artifact.file);
    expect({ bytes: sidecar.artifact.bytes, sha256: sidecar.artifact.sha256 }).toEqual(await sha256File(stored));
    // The plaintext digest is that of what the stage's own tool gives back.
    const plain = path.join(await tempDir('plain'), 'archive');
    const codec = stages[0]?.codec;
    if (codec === 'zstd') await execa('zstd', ['-q', '-d', '-c', stored], { stdout: { file: plain } });
    else if (codec === 'gzip') await execa('gzip', ['-d', '-c', stored], { stdout: { file: plain } });
    else await writeFile(plain, await readFile(stored));
    expect(sidecar.artifact.plaintext).toEqual(await sha256File(plain));
    // A custom archive that pg_dump compressed itself has compressed data blocks: 6 is recorded in its header.
    if (pgCompress === 6) {
      const { stdout } = await execa(cluster.bin('pg_restore'), ['--list', plain]);
      expect(stdout).toMatch(/Compression: (6|gzip)/);
    }
    for (const level of ['checksum', 'archive', 'restore']) {
      const verified = await verify(storage, id, level);
      expect(verified.code, verified.problems).toBe(0);
      expect(verified.result).toBe('passed');
    }
    const target = targetDb('stg_rst');
    const restored = await cli(['restore', id, '--storage', storage, '--target-db', target, '--create', '--globals']);
    expect(restored.code, restored.stderr).toBe(0);
    expect(await count(target, 'items')).toBe(3000);
    expect(await count(target, 'other.notes')).toBe(250);
  });

  it('a zstd artifact damaged with its stored digest made to match: verify fails (exit 3) streamed (--jobs 1) and decoded to disk by zstd itself (--jobs 2)', async () => {
    const storage = await tempDir('st-zstd-bad');
    const id = await create(storage);
    const { sidecar, raw } = await readSidecar(storage, db, id);
    const file = path.join(storage, db, sidecar.artifact.file);
    await flip(file, 0.5);
    const json = JSON.parse(raw) as { artifact: { bytes: number; sha256: string } };
    Object.assign(json.artifact, await sha256File(file));
    await writeFile(path.join(storage, db, `${id}.json`), JSON.stringify(json));
    for (const jobs of ['1', '2']) {
      const verified = await verify(storage, id, 'restore', ['--jobs', jobs]);
      expect(verified.code, `--jobs ${jobs}: ${verified.problems}`).toBe(3);
      expect(verified.result).toBe('failed');
      expect(verified.problems, `--jobs ${jobs}`).toMatch(/zstd|artifact plaintext/);
    }
  });

  it('a decoded archive that is not what pg_dump wrote (plaintext digest edited): verify fails (exit 3), restore refuses before any change', async () => {
    const storage = await tempDir('st-plain');
    const id = await create(storage);
    const { raw } = await readSidecar(storage, db, id);
    const json = JSON.parse(raw) as { artifact: { plaintext: { sha256: string } } };
    json.artifact.plaintext.sha256 = 'f'.repeat(64);
    await writeFile(path.join(storage, db, `${id}.json`), JSON.stringify(json));
    for (const level of ['archive', 'restore']) {
      const verified = await verify(storage, id, level);
      expect(verified.code, `${level}: ${verified.problems}`).toBe(3);
      expect(verified.problems).toMatch(/artifact plaintext: sha256 is [0-9a-f]{64}, the sidecar says f{64}/);
    }
    const target = targetDb('stg_plain');
    await cluster.createDatabase(target);
    await cluster.query(target, 'create table precious (x int); insert into precious values (42)');
    const restored = await cli(['restore', id, '--storage', storage, '--target-db', target, '--force', '--yes']);
    expect(restored.code, restored.stderr).toBe(3);
    expect(restored.stderr).toMatch(/corrupt, nothing was changed: artifact plaintext: sha256/);
    expect(await cluster.query(target, "select 1 from pg_tables where tablename = 'items'")).toHaveLength(0);
    expect(await count(target, 'precious')).toBe(1);
  });

  it('a sidecar that says "none" for a zstd artifact (its digests made to match): restore is exit 3 as verify, not 1, the target untouched', async () => {
    const storage = await tempDir('st-claims-none');
    const id = await create(storage);
    const { raw } = await readSidecar(storage, db, id);
    const json = JSON.parse(raw) as { artifact: { bytes: number; sha256: string; stages: unknown[]; compression: unknown; plaintext: unknown } };
    json.artifact.stages = [{ type: 'compression', codec: 'none', level: null }];
    json.artifact.compression = { codec: 'none', level: null };
    json.artifact.plaintext = { bytes: json.artifact.bytes, sha256: json.artifact.sha256 };
    await writeFile(path.join(storage, db, `${id}.json`), JSON.stringify(json));
    const verified = await verify(storage, id, 'archive');
    expect(verified.code, verified.problems).toBe(3);
    const target = targetDb('stg_none');
    await cluster.createDatabase(target);
    await cluster.query(target, 'create table precious (x int); insert into precious values (42)');
    // Exit 1 ("pg_restore --list failed") before: an operator would retry, not pick another backup.
    for (const mode of [['--clean'], ['--force'], ['--clean', '--jobs', '2']]) {
      const restored = await cli(['restore', id, '--storage', storage, '--target-db', target, ...mode, '--yes']);
      expect(restored.code, `${mode.join(' ')}: ${restored.stderr}`).toBe(3);
      expect(restored.stderr).toMatch(/corrupt, nothing was changed: the archive's table of contents is unreadable/);
    }
    expect(await count(target, 'precious')).toBe(1);
  });

  it('refuses a digit for --compress, and both kinds of compression at once (exit 2, nothing written)', async () => {
    const storage = await tempDir('st');
    const digit = await cli(['create', '--storage', storage, '--compress', '6']);
    expect(digit.code).toBe(2);
    expect(digit.stderr).toMatch(/--pg-compress 6/);
    const both = await cli(['create', '--storage', storage, '--compress', 'zstd', '--pg-compress', '6']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/cannot both compress/);
  });

  it('without the zstd program the default create is exit 2 naming the package, before anything is written; gzip still works', async () => {
    const storage = await tempDir('st');
    // A PATH without zstd (the server's client programs come from pgBinDir).
    const env = { PATH: await tempDir('empty-path') };
    const config = path.join(await tempDir('cfg'), 'backupctl.config.json');
    await writeFile(config, JSON.stringify({ pgBinDir: path.dirname(cluster.bin('pg_dump')), storage, profiles: { app: { ...connection(), database: db } } }));
    const run = await runCli(['create', '--config', config, '--profile', 'app'], { env: baseEnv({ ...env, PGPASSWORD: cluster.password }), cwd: scratch.cwd });
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toMatch(/zstd program is not installed/);
    expect(run.stderr).toMatch(/apt-get install zstd/);
    // Nothing but the run log's record of the failed run.
    expect(await readdir(path.join(storage, 'app')).catch(() => [])).toEqual(expect.not.arrayContaining([expect.stringMatching(/^\d{8}T/)]));
    const gzip = await runCli(['create', '--config', config, '--profile', 'app', '--compress', 'gzip'], { env: baseEnv({ ...env, PGPASSWORD: cluster.password }), cwd: scratch.cwd });
    expect(gzip.code, gzip.stderr).toBe(0);
  });
});

function connection(): Record<string, unknown> {
  return { host: cluster.host, port: cluster.port, user: cluster.user };
}

describe('age encryption', () => {
  let storage: string;
  let id: string;

  beforeAll(async () => {
    storage = await tempDir('enc');
    id = await create(storage, ['--recipient', keyA.recipient]);
  });

  it('writes <id>.dump.zst.age and an encrypted globals file, recording fingerprints and never a key', async () => {
    const { raw, sidecar } = await readSidecar(storage, db, id);
    expect(sidecar.artifact.file).toBe(`${id}.dump.zst.age`);
    expect(sidecar.artifact.stages.map((s) => s.type)).toEqual(['compression', 'encryption']);
    expect(sidecar.artifact.encryption?.recipients).toEqual([expect.stringMatching(/^x25519:sha256:[0-9a-f]{16}$/)]);
    expect(sidecar.globals.status === 'included' && sidecar.globals.file).toBe(`${id}.globals.sql.zst.age`);
    expect(raw).not.toContain(keyA.recipient);
    expect(raw).not.toMatch(/AGE-SECRET-KEY/);
    // Nothing readable is stored: the globals file is no SQL, the artifact no pg_dump archive.
    const globals = await readFile(path.join(storage, db, `${id}.globals.sql.zst.age`));
    expect(globals.subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    expect(globals.includes(Buffer.from('CREATE ROLE'))).toBe(false);
  });

  it('restores without backupctl: age -d | zstd -dc | pg_restore', async () => {
    const target = targetDb('stg_age');
    await cluster.createDatabase(target);
    const file = path.join(storage, db, `${id}.dump.zst.age`);
    await execa('age', ['-d', '-i', keyA.file, file])
      .pipe('zstd', ['-q', '-d', '-c'])
      .pipe(cluster.bin('pg_restore'), ['--no-owner', '-d', target], { env: cluster.env(target) });
    expect(await count(target, 'items')).toBe(3000);
    const globals = await execa('age', ['-d', '-i', keyA.file, path.join(storage, db, `${id}.globals.sql.zst.age`)]).pipe('zstd', ['-q', '-d', '-c']);
    expect(String(globals.stdout)).toMatch(/CREATE ROLE stages_reader/);
  });

  it('checksum verifies with no key; beyond it, no key or a wrong one is exit 2 and no verdict; the right one passes', async () => {
    expect((await verify(storage, id, 'checksum')).code).toBe(0);
    const none = await verify(storage, id, 'archive');
    expect(none.code).toBe(2);
    expect(none.result).toBe('error');
    expect(none.problems).toMatch(/encrypted .*nothing to decrypt it with/);
    expect(none.problems).toMatch(/--identity/);
    const wrong = await verify(storage, id, 'archive', ['--identity', keyB.file]);
    expect(wrong.code).toBe(2);
    expect(wrong.result).toBe('error');
    for (const jobs of ['1', '2']) {
      const wrongVerify = await verify(storage, id, 'restore', ['--identity', keyB.file, '--jobs', jobs]);
      expect(wrongVerify.code, wrongVerify.problems).toBe(2);
      expect(wrongVerify.problems).toMatch(/none of the 1 identities given can decrypt this file/);
      // restore says the same, exit 2 (it said "pg_restore --list failed: input file is too
      // short", exit 1, or with --jobs 2 blamed the work directory); --dry-run too.
      for (const extra of [['--create', '--yes'], ['--create', '--dry-run']]) {
        const wrongRestore = await cli(['restore', id, '--storage', storage, '--identity', keyB.file, '--target-db', 'stages_never', '--jobs', jobs, ...extra]);
        expect(wrongRestore.code, wrongRestore.stderr).toBe(2);
        expect(wrongRestore.stderr).toMatch(/none of the 1 identities given can decrypt this file/);
        expect(wrongRestore.stderr).not.toMatch(/work directory|input file is too short/);
      }
    }
    // A directory-format (tar) backup alike: restore used to end silently with exit 13 (an
    // unpack waiting for a stream that had failed before it was handed over).
    const tarStorage = await tempDir('st-tar-age');
    const tarId = await create(tarStorage, ['--format', 'directory', '--jobs', '2', '--recipient', keyA.recipient]);
    for (const jobs of ['1', '2']) {
      const wrongTar = await cli(['restore', tarId, '--storage', tarStorage, '--identity', keyB.file, '--target-db', 'stages_never', '--create', '--yes', '--jobs', jobs]);
      expect(wrongTar.code, wrongTar.stderr).toBe(2);
      expect(wrongTar.stderr).toMatch(/none of the 1 identities given can decrypt this file/);
      const verifiedTar = await verify(tarStorage, tarId, 'restore', ['--identity', keyB.file, '--jobs', jobs]);
      expect(verifiedTar.code, verifiedTar.problems).toBe(2);
    }
    const right = await verify(storage, id, 'restore', ['--identity', keyA.file]);
    expect(right.code, right.problems).toBe(0);
    const { sidecar } = await readSidecar(storage, db, id);
    // Only the checksum and the passing restore are verdicts on the backup.
    expect(sidecar.verifications.map((v) => `${v.level}:${v.result}`)).toEqual(['checksum:passed', 'restore:passed']);
  });

  it('the profile\'s encryption.identityFile decrypts, as --identity does; restore --globals creates the roles', async () => {
    const config = path.join(await tempDir('cfg'), 'backupctl.config.json');
    await writeFile(config, JSON.stringify({ storage, profiles: { [db]: { ...connection(), database: db, encryption: { recipients: [keyA.recipient], identityFile: keyA.file } } } }));
    const run = await runCli(['verify', 'latest', '--config', config, '--level', 'archive'], { env: baseEnv({ PGPASSWORD: cluster.password }), cwd: scratch.cwd });
    expect(run.code, run.stderr).toBe(0);
    // The role is gone from the server (its grants with it): --globals must bring it back.
    for (const name of [db, ...made]) await cluster.query(name, 'drop owned by stages_reader').catch(() => undefined);
    await cluster.query('postgres', 'drop role stages_reader');
    const target = targetDb('stg_glb');
    const restored = await runCli(['restore', 'latest', '--config', config, '--target-db', target, '--create', '--globals'], { env: baseEnv({ PGPASSWORD: cluster.password }), cwd: scratch.cwd });
    expect(restored.code, restored.stderr).toBe(0);
    expect(await cluster.query('postgres', "select 1 from pg_roles where rolname = 'stages_reader'")).toHaveLength(1);
  });

  it.each([
    ['a flipped byte', async (file: string) => flip(file, 0.5)],
    ['a truncation', async (file: string) => writeFile(file, (await readFile(file)).subarray(0, Math.floor((await stat(file)).size * 0.6)))],
    ['a flipped byte in the header', async (file: string) => flip(file, 0, 40)],
  ])('%s: verify fails with exit 3 at every level; restore refuses before touching any database', async (_label, damage) => {
    const copy = await tempDir('enc-bad');
    const other = await create(copy, ['--recipient', keyA.recipient]);
    const { sidecar } = await readSidecar(copy, db, other);
    await damage(path.join(copy, db, sidecar.artifact.file));
    for (const level of ['checksum', 'archive', 'restore']) {
      const verified = await verify(copy, other, level, ['--identity', keyA.file]);
      expect(verified.code, `${level}: ${verified.problems}`).toBe(3);
      expect(verified.result).toBe('failed');
    }
    const target = targetDb('stg_bad');
    const restored = await cli(['restore', other, '--storage', copy, '--identity', keyA.file, '--target-db', target, '--create']);
    expect(restored.code).toBe(3);
    expect(restored.stderr).toMatch(/corrupt, nothing was changed/);
    expect(await cluster.query('postgres', 'select 1 from pg_database where datname = $1', [target])).toHaveLength(0);
  });

  // With --jobs 1 pg_restore reads the archive as it is decoded (core/streamed-archive.ts):
  // damage that only decoding finds comes to light once pg_restore has read it, in the
  // throwaway or staging database, which then goes. The stored digest is made to match
  // here, so the checksum read first cannot see it.
  it.each([
    ['zstd: found while decoding the head', []],
    ['uncompressed: found while pg_restore reads', ['--compress', 'none']],
  ])('damage only decoding finds (stored digest matching; %s): verify fails, restore --create and --clean streamed into staging change nothing (exit 3)', async (_label, args) => {
    const copy = await tempDir('enc-stream');
    const other = await create(copy, ['--recipient', keyA.recipient, ...args]);
    const sidecarFile = path.join(copy, db, `${other}.json`);
    const { sidecar, raw } = await readSidecar(copy, db, other);
    const file = path.join(copy, db, sidecar.artifact.file);
    await flip(file, 0.97);
    const json = JSON.parse(raw) as { artifact: { bytes: number; sha256: string } };
    Object.assign(json.artifact, await sha256File(file));
    await writeFile(sidecarFile, JSON.stringify(json));

    const checksum = await verify(copy, other, 'checksum', ['--identity', keyA.file]);
    expect(checksum.code, checksum.problems).toBe(0);
    for (const level of ['archive', 'restore']) {
      const verified = await verify(copy, other, level, ['--identity', keyA.file]);
      expect(verified.code, `${level}: ${verified.problems}`).toBe(3);
      expect(verified.problems, level).toMatch(/age payload (chunk \d+ )?fails authentication/);
    }
    // This backup's throwaway databases (other test files verify on the same server at the same time).
    expect(await cluster.query('postgres', 'select datname from pg_database where starts_with(datname, $1)', [`backupctl_verify_${other.toLowerCase().replace(/[^a-z0-9]/g, '_')}_`])).toEqual([]);

    const target = targetDb('stg_stream');
    const created = await cli(['restore', other, '--storage', copy, '--identity', keyA.file, '--target-db', target, '--create']);
    expect(created.code, created.stderr).toBe(3);
    expect(created.stderr).toMatch(/corrupt, nothing was changed/);
    expect(await cluster.query('postgres', 'select datname from pg_database where datname like $1', [`${target}%`])).toEqual([]);

    const live = targetDb('stg_stream_live');
    await cluster.createDatabase(live);
    await cluster.query(live, 'create table precious (x int); insert into precious values (42)');
    const replaced = await cli(['restore', other, '--storage', copy, '--identity', keyA.file, '--target-db', live, '--clean', '--yes']);
    expect(replaced.code, replaced.stderr).toBe(3);
    expect(replaced.stderr).toMatch(/corrupt, nothing was changed/);
    expect(await count(live, 'precious')).toBe(1);
    expect(await cluster.query(live, "select 1 from pg_tables where tablename = 'items'")).toHaveLength(0);
    expect(await cluster.query('postgres', 'select datname from pg_database where datname like $1', [`${live}_%`])).toEqual([]);
  });

  it('a plaintext digest that differs is found after a streamed restore, a partial one (--table) and a parallel one (--jobs 2, from a decoded file) included: staging dropped, exit 3', async () => {
    const storage = await tempDir('st-plain-stream');
    const id = await create(storage);
    const sidecarFile = path.join(storage, db, `${id}.json`);
    const { raw } = await readSidecar(storage, db, id);
    const json = JSON.parse(raw) as { artifact: { plaintext: { sha256: string } } };
    json.artifact.plaintext.sha256 = 'e'.repeat(64);
    await writeFile(sidecarFile, JSON.stringify(json));
    for (const selection of [[], ['--table', 'items'], ['--jobs', '2']]) {
      const target = targetDb('stg_pstream');
      const restored = await cli(['restore', id, '--storage', storage, '--target-db', target, '--create', ...selection]);
      expect(restored.code, restored.stderr).toBe(3);
      expect(restored.stderr).toMatch(/corrupt, nothing was changed: artifact plaintext: sha256 is [0-9a-f]{64}, the sidecar says e{64}/);
      expect(await cluster.query('postgres', 'select datname from pg_database where datname like $1', [`${target}%`])).toEqual([]);
    }
    // The same backup with its digest put back restores, the partial restore too.
    await writeFile(sidecarFile, raw);
    const target = targetDb('stg_pstream_ok');
    const restored = await cli(['restore', id, '--storage', storage, '--target-db', target, '--create', '--table', 'items']);
    expect(restored.code, restored.stderr).toBe(0);
    expect(await count(target, 'items')).toBe(3000);
    expect(await cluster.query(target, "select 1 from pg_tables where schemaname = 'other'")).toHaveLength(0);
  });

  it('damage after many good chunks is still found before pg_restore sees a byte (a restore into a live target is refused whole)', async () => {
    const copy = await tempDir('enc-late');
    const other = await create(copy, ['--recipient', keyA.recipient, '--compress', 'none']);
    const { sidecar } = await readSidecar(copy, db, other);
    const file = path.join(copy, db, sidecar.artifact.file);
    await flip(file, 0.97);
    const target = targetDb('stg_live');
    await cluster.createDatabase(target);
    await cluster.query(target, 'create table precious (x int); insert into precious values (42)');
    const restored = await cli(['restore', other, '--storage', copy, '--identity', keyA.file, '--target-db', target, '--force']);
    expect(restored.code).toBe(3);
    // --force restores into the target as it is: had any plaintext reached pg_restore, items would exist now.
    expect(await cluster.query(target, "select 1 from pg_tables where tablename = 'items'")).toHaveLength(0);
    expect(await count(target, 'precious')).toBe(1);
  });
});

describe('a damaged header against a wrong key (the sidecar\'s recipient fingerprints decide)', () => {
  /** A key pair from the standard age-keygen. */
  let keyC: { file: string; recipient: string };

  beforeAll(async () => {
    keyC = { file: path.join(keys, 'c.agekey'), recipient: '' };
    await execa('age-keygen', ['-o', keyC.file]);
    keyC.recipient = (await execa('age-keygen', ['-y', keyC.file])).stdout.trim();
  });

  it.each([
    ['the wrapped file key', 'body' as const],
    ['the ephemeral share', 'share' as const],
  ])('a flipped byte of %s, the digests made to match: the recipient\'s own key is exit 3 (corrupt), a foreign key exit 2 naming the recorded fingerprints', async (_label, where) => {
    const storage = await tempDir('enc-stanza');
    const id = await create(storage, ['--recipient', keyC.recipient]);
    const { sidecar } = await readSidecar(storage, db, id);
    await damageStanza(path.join(storage, db, sidecar.artifact.file), where);
    await matchDigests(storage, id);
    const fingerprint = sidecar.artifact.encryption?.recipients[0] as string;
    for (const [level, jobs] of [['archive', '1'], ['restore', '1'], ['restore', '2']] as const) {
      const own = await verify(storage, id, level, ['--identity', keyC.file, '--jobs', jobs]);
      expect(own.code, `${level} --jobs ${jobs}: ${own.problems}`).toBe(3);
      expect(own.result).toBe('failed');
      expect(own.problems).toContain(`the age header is damaged: the identity given for recipient ${fingerprint} (recorded in the sidecar) opens none of its X25519 stanzas`);
      const foreign = await verify(storage, id, level, ['--identity', keyA.file, '--jobs', jobs]);
      expect(foreign.code, `${level} --jobs ${jobs}: ${foreign.problems}`).toBe(2);
      expect(foreign.result).toBe('error');
      expect(foreign.problems).toMatch(/none of the 1 identities given can decrypt this file/);
      expect(foreign.problems).toContain(fingerprint);
    }
    const target = targetDb('stg_stanza');
    await cluster.createDatabase(target);
    await cluster.query(target, 'create table precious (x int); insert into precious values (42)');
    const restored = await cli(['restore', id, '--storage', storage, '--identity', keyC.file, '--target-db', target, '--force']);
    expect(restored.code, restored.stderr).toBe(3);
    expect(restored.stderr).toMatch(/^error: backup \S+ is corrupt, nothing was changed: .*the age header is damaged/m);
    const wrong = await cli(['restore', id, '--storage', storage, '--identity', keyA.file, '--target-db', target, '--force']);
    expect(wrong.code, wrong.stderr).toBe(2);
    expect(wrong.stderr).toContain(fingerprint);
    expect(await count(target, 'precious')).toBe(1);
    expect(await cluster.query(target, "select 1 from pg_tables where tablename = 'items'")).toHaveLength(0);
  });

  it('a sidecar that records another recipient than the header holds (edited, or the header swapped): exit 3 whatever the key, at every level that reads the header and on restore, before any plaintext', async () => {
    const storage = await tempDir('enc-records');
    const id = await create(storage, ['--recipient', keyA.recipient]);
    const { raw } = await readSidecar(storage, db, id);
    const json = JSON.parse(raw) as { artifact: { stages: Array<{ recipients?: unknown[] }>; encryption: { recipients: string[] } }; globals: { stages: Array<{ recipients?: unknown[] }> } };
    // keyB is recorded as a second recipient (of the artifact and of the globals file): the headers have one X25519 stanza, the sidecar two.
    const bId = await create(storage, ['--recipient', keyB.recipient]);
    const bRecord = (await readSidecar(storage, db, bId)).sidecar.artifact.stages[1] as { recipients: unknown[] };
    json.artifact.stages[1]!.recipients!.push(bRecord.recipients[0]);
    json.globals.stages[1]!.recipients!.push(bRecord.recipients[0]);
    json.artifact.encryption.recipients.push((bRecord.recipients[0] as { fingerprint: string }).fingerprint);
    await writeFile(path.join(storage, db, `${id}.json`), JSON.stringify(json));
    for (const key of [keyA.file, keyB.file]) {
      for (const level of ['checksum', 'archive', 'restore']) {
        const verified = await verify(storage, id, level, ['--identity', key]);
        expect(verified.code, `${level} ${key}: ${verified.problems}`).toBe(3);
        expect(verified.problems).toMatch(/the age header does not match the sidecar's recipients: the header has 1 X25519 stanza and 0 scrypt stanzas, the sidecar records 2 X25519 recipients/);
      }
    }
    const target = targetDb('stg_records');
    await cluster.createDatabase(target);
    await cluster.query(target, 'create table precious (x int); insert into precious values (42)');
    for (const mode of [['--force'], ['--clean', '--yes'], ['--force', '--jobs', '2']]) {
      const restored = await cli(['restore', id, '--storage', storage, '--identity', keyA.file, '--target-db', target, ...mode]);
      expect(restored.code, `${mode.join(' ')}: ${restored.stderr}`).toBe(3);
      expect(restored.stderr).toMatch(/corrupt, nothing was changed: .*the age header does not match the sidecar's recipients/);
    }
    expect(await count(target, 'precious')).toBe(1);
    expect(await cluster.query(target, "select 1 from pg_tables where tablename = 'items'")).toHaveLength(0);
  });

  it('rekey: a damaged stanza of the given identity is exit 3 and the backup is left as it was; after a rekey the sidecar records what the new header holds', async () => {
    const storage = await tempDir('enc-rekey-bad');
    const id = await create(storage, ['--recipient', keyC.recipient]);
    const { sidecar } = await readSidecar(storage, db, id);
    await damageStanza(path.join(storage, db, sidecar.artifact.file), 'body');
    await matchDigests(storage, id);
    const { raw: before } = await readSidecar(storage, db, id);
    const own = await cli(['rekey', id, '--storage', storage, '--identity', keyC.file, '--add-recipient', keyB.recipient]);
    expect(own.code, own.stderr).toBe(3);
    expect(own.stderr).toMatch(/the age header is damaged/);
    const foreign = await cli(['rekey', id, '--storage', storage, '--identity', keyA.file, '--add-recipient', keyB.recipient, '--add-recipient', keyC.recipient]);
    // A key that opens nothing: 2, as verify and restore say it.
    expect(foreign.code, foreign.stderr).toBe(2);
    expect((await readSidecar(storage, db, id)).raw).toBe(before);

    const good = await create(storage, ['--recipient', keyC.recipient]);
    const rekeyed = await cli(['rekey', good, '--storage', storage, '--identity', keyC.file, '--add-recipient', keyA.recipient, '--add-recipient', keyB.recipient]);
    expect(rekeyed.code, rekeyed.stderr).toBe(0);
    const after = (await readSidecar(storage, db, good)).sidecar;
    for (const [file, stages] of [[after.artifact.file, after.artifact.stages], [after.globals.status === 'included' ? after.globals.file : '', after.globals.status === 'included' ? after.globals.stages : []]] as const) {
      const { header } = readHeader(await readFile(path.join(storage, db, file)));
      const recorded = stages.find((stage) => stage.type === 'encryption');
      expect(recorded?.type === 'encryption' && recorded.recipients.length, file).toBe(header.stanzas.filter((s) => s.type === 'X25519').length);
      expect(header.stanzas).toHaveLength(3);
    }
    for (const key of [keyA.file, keyB.file, keyC.file]) expect((await verify(storage, good, 'archive', ['--identity', key])).code, key).toBe(0);
  });
});

/**
 * Replaces one base64 character of the first X25519 stanza, inside its line (so the header
 * stays canonical): in its ephemeral share (`share`) or its body, the wrapped file key.
 */
async function damageStanza(file: string, where: 'share' | 'body'): Promise<void> {
  const bytes = await readFile(file);
  const stanza = bytes.indexOf('-> X25519 ');
  expect(stanza).toBeGreaterThan(0);
  const at = where === 'share' ? stanza + '-> X25519 '.length + 10 : bytes.indexOf(0x0a, stanza) + 1 + 10;
  bytes[at] = bytes[at] === 0x41 ? 0x42 : 0x41;
  await writeFile(file, bytes);
}

/** Makes the sidecar's stored digests those of the artifact as it is now, as a careful attacker (or a bad copy tool) would. */
async function matchDigests(storage: string, id: string): Promise<void> {
  const { sidecar, raw } = await readSidecar(storage, db, id);
  const json = JSON.parse(raw) as { artifact: { bytes: number; sha256: string } };
  Object.assign(json.artifact, await sha256File(path.join(storage, db, sidecar.artifact.file)));
  await writeFile(path.join(storage, db, `${id}.json`), JSON.stringify(json));
}

async function flip(file: string, at: number, offset = 0): Promise<void> {
  const bytes = await readFile(file);
  const index = Math.min(bytes.length - 1, Math.floor(bytes.length * at) + offset);
  bytes[index] = (bytes[index] as number) ^ 0x01;
  await writeFile(file, bytes);
}

describe('a passphrase', () => {
  it('from --passphrase-file encrypts (scrypt) and decrypts; from the profile\'s passphraseEnv too; a wrong one is exit 2', async () => {
    const storage = await tempDir('pass');
    const id = await create(storage, ['--passphrase-file', passphraseFile]);
    const { sidecar } = await readSidecar(storage, db, id);
    expect(sidecar.artifact.stages[1]).toMatchObject({ type: 'encryption', scheme: 'age', recipients: [{ scheme: 'scrypt' }] });
    expect((await verify(storage, id, 'archive', ['--passphrase-file', passphraseFile])).code).toBe(0);
    const wrongFile = path.join(keys, 'wrong.txt');
    await writeFile(wrongFile, 'not it\n');
    const wrong = await verify(storage, id, 'archive', ['--passphrase-file', wrongFile]);
    expect(wrong.code).toBe(2);
    // The standard age tool reads it with the same passphrase (a pty: age reads passphrases from the terminal only).
    const config = path.join(await tempDir('cfg'), 'backupctl.config.json');
    await writeFile(config, JSON.stringify({ storage, profiles: { [db]: { ...connection(), database: db, encryption: { passphraseEnv: 'STAGES_PASSPHRASE' } } } }));
    const env = baseEnv({ PGPASSWORD: cluster.password, STAGES_PASSPHRASE: 'correct horse battery staple' });
    const viaEnv = await runCli(['verify', id, '--config', config, '--level', 'restore', '--json'], { env, cwd: scratch.cwd });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    const unset = await runCli(['verify', id, '--config', config, '--level', 'archive'], { env: baseEnv({ PGPASSWORD: cluster.password }), cwd: scratch.cwd });
    expect(unset.code).toBe(2);
    expect(unset.stderr).toMatch(/--passphrase-file|passphraseEnv/);
  });

  it("--passphrase-file on create sets a profile's recipients aside for that backup (flags win); with a --recipient flag too it is refused (exit 2)", async () => {
    const storage = await tempDir('pass-over');
    const config = path.join(await tempDir('cfg'), 'backupctl.config.json');
    await writeFile(config, JSON.stringify({ storage, profiles: { [db]: { ...connection(), database: db, encryption: { recipients: [keyA.recipient] } } } }));
    const run = await cli(['create', '--config', config, '--json', '--passphrase-file', passphraseFile]);
    expect(run.code, run.stderr).toBe(0);
    const { id, warnings } = parseJsonStdout(run.stdout) as { id: string; warnings: string[] };
    expect(warnings).toEqual([expect.stringMatching(/^--passphrase-file: this backup is encrypted to the passphrase alone, not to profile .*'s recipients/)]);
    const { sidecar } = await readSidecar(storage, db, id);
    expect(sidecar.artifact.stages[1]).toMatchObject({ type: 'encryption', recipients: [{ scheme: 'scrypt' }] });
    expect((await cli(['verify', id, '--config', config, '--level', 'archive', '--passphrase-file', passphraseFile])).code).toBe(0);
    const both = await cli(['create', '--config', config, '--passphrase-file', passphraseFile, '--recipient', keyB.recipient]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/either to recipients or to a passphrase, not both/);
  });

  it('a passphrase file that is a FIFO is exit 2 at once, never a hang', async () => {
    const fifo = path.join(await tempDir('fifo'), 'pass.fifo');
    await execa('mkfifo', [fifo]);
    const started = Date.now();
    const run = await cli(['create', '--storage', await tempDir('st'), '--passphrase-file', fifo]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/not a regular file/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe('rekey', () => {
  it('rewraps the file key: payload bytes identical, the removed identity no longer opens it, the new one does; crash-safe names', async () => {
    const storage = await tempDir('rekey');
    const id = await create(storage, ['--recipient', keyA.recipient]);
    const before = (await readSidecar(storage, db, id)).sidecar;
    const oldFile = path.join(storage, db, before.artifact.file);
    const oldBytes = await readFile(oldFile);
    const oldPayload = oldBytes.subarray(readHeader(oldBytes).payloadOffset);

    const dry = await cli(['rekey', id, '--storage', storage, '--identity', keyA.file, '--add-recipient', keyB.recipient, '--remove-recipient', keyA.recipient, '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(await readFile(oldFile)).toEqual(oldBytes);

    const run = await cli(['rekey', id, '--storage', storage, '--identity', keyA.file, '--add-recipient', keyB.recipient, '--remove-recipient', keyA.recipient, '--json']);
    expect(run.code, run.stderr).toBe(0);
    const after = (await readSidecar(storage, db, id)).sidecar;
    expect(after.artifact.file).toBe(`${id}.k1.dump.zst.age`);
    expect(after.artifact.plaintext).toEqual(before.artifact.plaintext);
    expect(after.artifact.encryption?.recipients).not.toEqual(before.artifact.encryption?.recipients);
    await expect(stat(oldFile)).rejects.toThrow(); // the old file is gone
    const newBytes = await readFile(path.join(storage, db, after.artifact.file));
    expect(newBytes.subarray(readHeader(newBytes).payloadOffset)).toEqual(oldPayload);
    expect({ bytes: after.artifact.bytes, sha256: after.artifact.sha256 }).toEqual(await sha256File(path.join(storage, db, after.artifact.file)));
    expect(after.globals.status === 'included' && after.globals.file).toBe(`${id}.k1.globals.sql.zst.age`);

    expect((await verify(storage, id, 'archive', ['--identity', keyA.file])).code).toBe(2);
    expect((await verify(storage, id, 'restore', ['--identity', keyB.file])).code).toBe(0);
    // The standard age tool agrees: the new key opens it, the old one does not.
    expect((await execa('age', ['-d', '-i', keyB.file, '-o', '/dev/null', path.join(storage, db, after.artifact.file)], { reject: false })).exitCode).toBe(0);
    expect((await execa('age', ['-d', '-i', keyA.file, '-o', '/dev/null', path.join(storage, db, after.artifact.file)], { reject: false })).exitCode).not.toBe(0);
    // Again: the next generation.
    const again = await cli(['rekey', id, '--storage', storage, '--identity', keyB.file, '--add-recipient', keyA.recipient]);
    expect(again.code, again.stderr).toBe(0);
    expect((await readSidecar(storage, db, id)).sidecar.artifact.file).toBe(`${id}.k2.dump.zst.age`);
    expect((await verify(storage, id, 'archive', ['--identity', keyA.file])).code).toBe(0);
    const listed = await cli(['list', '--storage', storage, '--all', '--json']);
    expect(listed.stdout).not.toMatch(/incomplete/);
  });

  it('a payload damaged since the backup is not rekeyed (exit 3): its damage would get a new, matching digest', async () => {
    const storage = await tempDir('rekey-damaged');
    const id = await create(storage, ['--recipient', keyA.recipient]);
    const before = await readFile(path.join(storage, db, `${id}.json`));
    const file = path.join(storage, db, (await readSidecar(storage, db, id)).sidecar.artifact.file);
    const bytes = await readFile(file);
    const at = readHeader(bytes).payloadOffset + 40; // inside the first STREAM chunk: the header still opens
    bytes[at] = (bytes[at] as number) ^ 0x01;
    await writeFile(file, bytes);
    const run = await cli(['rekey', id, '--storage', storage, '--identity', keyA.file, '--add-recipient', keyB.recipient]);
    expect(run.code, run.stderr).toBe(3);
    expect(run.stderr).toMatch(/does not match its sidecar .*: not rekeyed/);
    // Left as it was: the same sidecar, the damaged file, no new one; checksum still says FAILED.
    expect(await readFile(path.join(storage, db, `${id}.json`))).toEqual(before);
    expect(await readFile(file)).toEqual(bytes);
    expect((await readdir(path.join(storage, db))).filter((name) => name.includes('.k1.'))).toEqual([]);
    expect((await verify(storage, id, 'checksum')).code).toBe(3);
  });

  it('a globals file damaged since the backup is not rekeyed either (exit 3, one error, no crash): the artifact rekeyed before it is not left behind', async () => {
    const storage = await tempDir('rekey-damaged-globals');
    const id = await create(storage, ['--recipient', keyA.recipient]);
    const before = await readFile(path.join(storage, db, `${id}.json`));
    const { sidecar } = await readSidecar(storage, db, id);
    expect(sidecar.globals.status).toBe('included');
    // A file small enough to be read whole at once: its digest fails before rekey has
    // rewrapped its header, while nothing reads it yet (was an unhandled 'error', exit 1).
    const file = path.join(storage, db, (sidecar.globals as { file: string }).file);
    const bytes = await readFile(file);
    const at = readHeader(bytes).payloadOffset + 20;
    bytes[at] = (bytes[at] as number) ^ 0x01;
    await writeFile(file, bytes);
    // The built binary: an unhandled 'error' ends its process (in this one, vitest catches it).
    const run = await runBin(['rekey', id, '--storage', storage, '--identity', keyA.file, '--add-recipient', keyB.recipient], { env: baseEnv(cluster.env(db)) as Record<string, string>, cwd: scratch.cwd });
    expect(run.code, run.stderr).toBe(3);
    expect(run.stderr).toMatch(/globals\.sql\S*\.age does not match its sidecar .*: not rekeyed/);
    expect(run.stderr).not.toMatch(/Unhandled|^\s+at /m);
    expect(await readFile(path.join(storage, db, `${id}.json`))).toEqual(before);
    expect((await readdir(path.join(storage, db))).filter((name) => name.includes('.k1.'))).toEqual([]);
  });

  it('refuses what would lock everyone out or drop a key it cannot re-wrap to; unencrypted backups are left alone', async () => {
    const storage = await tempDir('rekey2');
    const id = await create(storage, ['--recipient', keyA.recipient, '--recipient', keyB.recipient]);
    const plain = await create(storage, ['--compress', 'none']);
    const lockout = await cli(['rekey', id, '--storage', storage, '--identity', keyA.file, '--remove-recipient', keyA.recipient, '--remove-recipient', keyB.recipient]);
    expect(lockout.code).toBe(2);
    expect(lockout.stderr).toMatch(/no recipient/);
    // keyB stays, but only its fingerprint is known here: its public key must be given.
    const unknown = await cli(['rekey', id, '--storage', storage, '--identity', keyA.file, '--remove-recipient', keyA.recipient]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/public key is not known/);
    const notEncrypted = await cli(['rekey', plain, '--storage', storage, '--identity', keyA.file, '--add-recipient', keyB.recipient]);
    expect(notEncrypted.code).toBe(2);
    expect(notEncrypted.stderr).toMatch(/not encrypted/);
    const all = await cli(['rekey', '--all', '--storage', storage, '--identity', keyA.file, '--remove-recipient', keyA.recipient, '--add-recipient', keyB.recipient, '--json']);
    expect(all.code, all.stderr).toBe(0);
    expect(parseJsonStdout(all.stdout)).toMatchObject({ notEncrypted: [`${db}/${plain}`], backups: [{ id, result: 'done' }] });
    expect((await readSidecar(storage, db, plain)).sidecar.artifact.file).toBe(`${plain}.dump`);
  });
});

describe('version 1 sidecars (before stages)', () => {
  it('a backup written before stages existed lists, verifies at every level and restores as before', async () => {
    const storage = await tempDir('v1');
    const id = await create(storage, ['--compress', 'none']);
    const file = path.join(storage, db, `${id}.json`);
    const json = JSON.parse(await readFile(file, 'utf8')) as Record<string, Record<string, unknown>>;
    // What the first release wrote: no stages, no plaintext digest, schema version 1.
    json.schemaVersion = 1 as never;
    delete json.artifact!.stages;
    delete json.artifact!.plaintext;
    delete (json.globals as Record<string, unknown>).stages;
    delete (json.globals as Record<string, unknown>).plaintext;
    await writeFile(file, JSON.stringify(json, null, 2));
    const listed = await cli(['list', '--storage', storage, '--json']);
    expect((parseJsonStdout(listed.stdout) as Array<{ id: string }>).map((b) => b.id)).toEqual([id]);
    for (const level of ['checksum', 'archive', 'restore']) expect((await verify(storage, id, level)).code).toBe(0);
    const target = targetDb('stg_v1');
    const restored = await cli(['restore', id, '--storage', storage, '--target-db', target, '--create']);
    expect(restored.code, restored.stderr).toBe(0);
    expect(await count(target, quoteIdent('items'))).toBe(3000);
  });
});
