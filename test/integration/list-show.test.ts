/**
 * `backupctl list` and `show` over a storage holding real backups of two profiles, and
 * what they do with unfinished backups and with corrupt or hostile sidecars.
 */
import { cp, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, parseJsonStdout, removeDirs } from '../helpers/backups.js';
import { baseEnv, runCli, type CliOutcome } from '../helpers/cli.js';
import { connectProvided, uniqueName } from '../helpers/pg.js';

const cluster = connectProvided();
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- hostile edits reach into any field, with any type
type Loose = Record<string, any>;
const HOUR = 3_600_000;

const dirs: string[] = [];
const dbA = uniqueName('ls_a');
const dbB = uniqueName('ls_b');
let work: string;
/** The storage all backups of this file go to (copied before any test damages it). */
let storage: string;

/** Backups, oldest first: a1 (3 h ago, tag "old"), a2 (30 min ago, tag "t"), b1 (10 min ago, tags "t", "b"). */
const ids = { a1: '', a2: '', b1: '' };

async function createAt(db: string, msAgo: number, args: string[]): Promise<string> {
  const at = new Date(Date.now() - msAgo);
  const run = await runCli(['create', '--json', '--storage', storage, ...args], {
    env: baseEnv(cluster.env(db)),
    cwd: work,
    now: () => new Date(at),
  });
  expect(run.code, run.stderr).toBe(0);
  return (parseJsonStdout(run.stdout) as { id: string }).id;
}

/** Runs backupctl against `where` (default: the shared storage) from the temp work dir, without any database env. */
function cli(argv: string[], where = storage): Promise<CliOutcome> {
  return runCli([...argv, '--storage', where], { env: baseEnv(), cwd: work });
}

function listedIds(run: CliOutcome): string[] {
  expect(run.code, run.stderr).toBe(0);
  const out = parseJsonStdout(run.stdout);
  expect(Array.isArray(out)).toBe(true);
  const entries = out as Array<{ id?: unknown }>;
  for (const entry of entries) expect(entry.id).toBeTypeOf('string');
  return entries.map((entry) => entry.id as string);
}

/** A copy of the shared storage that a test may damage. */
async function copyOfStorage(): Promise<string> {
  const dir = await makeTempDir('ls-copy');
  dirs.push(dir);
  const copy = path.join(dir, 'storage');
  await cp(storage, copy, { recursive: true });
  return copy;
}

beforeAll(async () => {
  work = await makeTempDir('ls');
  dirs.push(work);
  storage = path.join(work, 'storage');
  for (const db of [dbA, dbB]) {
    await cluster.createDatabase(db);
    await cluster.query(db, 'create table items (id int primary key, label text); insert into items select i, md5(i::text) from generate_series(1, 50) i');
  }
  ids.a1 = await createAt(dbA, 3 * HOUR, ['--tag', 'old', '--no-globals']);
  ids.a2 = await createAt(dbA, HOUR / 2, ['--tag', 't', '--no-globals']);
  ids.b1 = await createAt(dbB, HOUR / 6, ['--tag', 't', '--tag', 'b', '--no-globals']);
});

afterAll(async () => {
  await cluster.dropDatabase(dbA);
  await cluster.dropDatabase(dbB);
  await removeDirs(dirs);
});

describe('list', () => {
  it('shows every backup of every profile, newest first (human output)', async () => {
    const run = await cli(['list']);
    expect(run.code, run.stderr).toBe(0);
    const positions = [ids.b1, ids.a2, ids.a1].map((id) => run.stdout.indexOf(id));
    expect(positions.every((p) => p >= 0)).toBe(true);
    expect(positions).toEqual([...positions].sort((x, y) => x - y));
    expect(run.stdout).toContain(dbA);
    expect(run.stdout).toContain(dbB);
    expect(run.stdout).toMatch(/^ID\s+PROFILE\s+DATABASE/);
    expect(run.stderr).toBe('');
  });

  it('--json: an array of objects with ids, newest first', async () => {
    const run = await cli(['list', '--json']);
    expect(listedIds(run)).toEqual([ids.b1, ids.a2, ids.a1]);
    const [first] = parseJsonStdout(run.stdout) as Array<Record<string, unknown>>;
    expect(first).toMatchObject({ id: ids.b1, profile: dbB, status: 'completed', tags: ['t', 'b'] });
  });

  it('--profile narrows to one profile', async () => {
    expect(listedIds(await cli(['list', '--json', '--profile', dbA]))).toEqual([ids.a2, ids.a1]);
    expect(listedIds(await cli(['list', '--json', '--profile', dbB]))).toEqual([ids.b1]);
    const human = await cli(['list', '--profile', dbA]);
    expect(human.stdout).toContain(ids.a2);
    expect(human.stdout).not.toContain(ids.b1);
  });

  it('--tag, --since and --limit filter', async () => {
    expect(listedIds(await cli(['list', '--json', '--tag', 't']))).toEqual([ids.b1, ids.a2]);
    expect(listedIds(await cli(['list', '--json', '--tag', 'old']))).toEqual([ids.a1]);
    expect(listedIds(await cli(['list', '--json', '--tag', 'none-such']))).toEqual([]);
    expect(listedIds(await cli(['list', '--json', '--since', '1h']))).toEqual([ids.b1, ids.a2]);
    expect(listedIds(await cli(['list', '--json', '--since', '20min']))).toEqual([ids.b1]);
    expect(listedIds(await cli(['list', '--json', '--limit', '1']))).toEqual([ids.b1]);
    expect(listedIds(await cli(['list', '--json', '--profile', dbA, '--limit', '1']))).toEqual([ids.a2]);
    const human = await cli(['list', '--since', '1h']);
    expect(human.stdout).toContain(ids.a2);
    expect(human.stdout).not.toContain(ids.a1);
  });

  it('rejects bad filter values with exit 2', async () => {
    expect((await cli(['list', '--since', 'yesterday'])).code).toBe(2);
    expect((await cli(['list', '--since', '20m'])).code).toBe(2); // a bare m means months in retention rules: refused here
    expect((await cli(['list', '--limit', '0'])).code).toBe(2);
    expect((await cli(['list', '--profile', '../etc'])).code).toBe(2);
  });

  it('says so when the storage holds no backup', async () => {
    const empty = path.join(work, 'empty-storage');
    const run = await cli(['list'], empty);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/No backups/);
    expect(listedIds(await cli(['list', '--json'], empty))).toEqual([]);
  });
});

describe('list: unfinished, corrupt and hostile sidecars', () => {
  it('an artifact without a sidecar is not a backup, but list --all shows it as incomplete', async () => {
    const copy = await copyOfStorage();
    await rm(path.join(copy, dbA, `${ids.a1}.json`));

    expect(listedIds(await cli(['list', '--json'], copy))).toEqual([ids.b1, ids.a2]);
    const human = await cli(['list'], copy);
    expect(human.stdout).not.toContain(ids.a1);

    const all = await cli(['list', '--all', '--json'], copy);
    const entries = parseJsonStdout(all.stdout) as Array<Record<string, unknown>>;
    expect(all.code).toBe(0);
    expect(entries.map((e) => e.id)).toEqual([ids.b1, ids.a2, ids.a1]);
    expect(entries[2]).toMatchObject({ id: ids.a1, profile: dbA, status: 'incomplete', file: `${ids.a1}.dump.zst` });
    expect(entries.filter((e) => e.status === 'incomplete')).toHaveLength(1);

    const allHuman = await cli(['list', '--all'], copy);
    expect(allHuman.stdout).toMatch(/Incomplete/);
    expect(allHuman.stdout).toContain(ids.a1);

    // Neither show nor "latest" treat it as a backup.
    expect((await cli(['show', ids.a1], copy)).code).toBe(2);
  });

  it('a truncated sidecar is named in a warning; the other backups still list, exit 0', async () => {
    const copy = await copyOfStorage();
    const file = path.join(copy, dbB, `${ids.b1}.json`);
    const size = (await readFile(file)).length;
    await truncate(file, Math.floor(size / 2));

    for (const args of [['list'], ['list', '--json']]) {
      const run = await cli(args, copy);
      expect(run.code).toBe(0);
      expect(run.stderr).toMatch(/warn/i);
      expect(run.stderr).toContain(`${dbB}/${ids.b1}.json`);
      expect(run.stdout).not.toContain(ids.b1);
      expect(run.stdout).toContain(ids.a2);
      expect(run.stdout).toContain(ids.a1);
    }
    expect(listedIds(await cli(['list', '--json'], copy))).toEqual([ids.a2, ids.a1]);

    // show names it and fails as a corrupt backup (exit 3); "latest" skips it.
    const show = await cli(['show', ids.b1], copy);
    expect(show.code).toBe(3);
    expect(show.stderr).toContain(`${ids.b1}.json`);
    expect(show.stdout).toBe('');
    const latest = await cli(['show', 'latest', '--json'], copy);
    expect(latest.code).toBe(0);
    expect((parseJsonStdout(latest.stdout) as { id: string }).id).toBe(ids.a2);
  });

  /** A sidecar with a fresh, valid id, whose content is a1's with `edit` applied. */
  const HOSTILE: Array<[string, (sidecar: Loose, id: string) => void]> = [
    ['artifact.file is a path out of the storage', (s, id) => {
      s.id = id;
      s.artifact.file = '../../etc/passwd';
    }],
    ['artifact.file is an absolute path', (s, id) => {
      s.id = id;
      s.artifact.file = '/etc/passwd';
    }],
    ['artifact.file belongs to another backup', (s, id) => {
      s.id = id;
    }],
    ['the id does not match the file name', () => undefined],
    ['the profile does not match the directory', (s, id) => {
      s.id = id;
      s.artifact.file = `${id}.dump`;
      s.profile = 'someone-else';
    }],
    ['a huge byte count', (s, id) => {
      s.id = id;
      s.artifact.file = `${id}.dump`;
      s.artifact.bytes = 1e300;
    }],
    ['a row count of the wrong type', (s, id) => {
      s.id = id;
      s.artifact.file = `${id}.dump`;
      s.tables = [{ schema: 'public', name: 'items', rows: '50' }];
    }],
    ['a negative duration', (s, id) => {
      s.id = id;
      s.artifact.file = `${id}.dump`;
      s.durationMs = -1;
    }],
    ['a newer schema version', (s, id) => {
      s.id = id;
      s.artifact.file = `${id}.dump`;
      s.schemaVersion = 3;
    }],
    ['an empty object', (s) => {
      for (const key of Object.keys(s)) delete s[key];
    }],
  ];

  it.each(HOSTILE)('a hostile sidecar (%s) is rejected with a warning, never followed', async (_label, edit) => {
    const copy = await copyOfStorage();
    const sidecar = JSON.parse(await readFile(path.join(copy, dbA, `${ids.a1}.json`), 'utf8')) as Loose;
    // Newer than every real backup, so that "latest" would pick it if it were accepted.
    const id = '20991231T235959Z-abcdef';
    sidecar.startedAt = '2099-12-31T23:59:59.000Z';
    sidecar.finishedAt = '2099-12-31T23:59:59.000Z';
    edit(sidecar, id);
    const file = path.join(copy, dbA, `${id}.json`);
    await writeFile(file, JSON.stringify(sidecar), { mode: 0o600 });
    const passwd = await readFile('/etc/passwd', 'utf8').catch(() => 'root:x:0:0');

    const run = await cli(['list', '--json'], copy);
    expect(run.code).toBe(0);
    expect(run.stderr).toContain(`${dbA}/${id}.json`);
    expect(listedIds(run)).toEqual([ids.b1, ids.a2, ids.a1]);

    const show = await cli(['show', id], copy);
    expect(show.code).toBe(3);
    expect(show.stderr).toContain(`${id}.json`);
    expect(show.stdout).toBe('');
    expect(show.stderr).not.toContain(passwd.split('\n')[0]);

    // "latest" skips it, although it would be the newest backup.
    const latest = await cli(['show', 'latest', '--profile', dbA, '--json'], copy);
    expect((parseJsonStdout(latest.stdout) as { id: string }).id).toBe(ids.a2);
  });

  it('a sidecar that is a symlink is not followed', async () => {
    const copy = await copyOfStorage();
    const id = '20200101T000000Z-0badf0';
    await symlink('/etc/passwd', path.join(copy, dbA, `${id}.json`));
    await symlink('/etc/passwd', path.join(copy, dbA, `${id}.dump`));
    const run = await cli(['list', '--all', '--json'], copy);
    expect(run.code).toBe(0);
    expect(listedIds(run)).toEqual([ids.b1, ids.a2, ids.a1]);
    expect(run.stdout).not.toContain('root:');
    const show = await cli(['show', id], copy);
    expect(show.code).not.toBe(0);
    expect(show.stdout).not.toContain('root:');
  });
});

describe('show', () => {
  it('show latest: the newest backup of any profile', async () => {
    const run = await cli(['show', 'latest']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(ids.b1);
    expect(run.stdout).toContain(dbB);
    expect(run.stdout).toMatch(/items\s+50/);
  });

  it("latest dated ahead of this host's clock (made while a clock was a year ahead): show warns, status reports it and still catches the stale profile", async () => {
    const where = await copyOfStorage();
    const ahead = new Date(Date.now() + 365 * 24 * HOUR);
    const made = await runCli(['create', '--json', '--storage', where, '--profile', dbA], { env: baseEnv(cluster.env(dbA)), cwd: work, now: () => new Date(ahead) });
    expect(made.code, made.stderr).toBe(0);
    const id = (parseJsonStdout(made.stdout) as { id: string }).id;
    const show = await cli(['show', 'latest', '--json', '--profile', dbA], where);
    expect(show.code, show.stderr).toBe(0);
    expect((parseJsonStdout(show.stdout) as { id: string }).id).toBe(id);
    expect(show.stderr).toMatch(new RegExp(`"latest" is ${id} finished 36[45] d after this host's clock says it is now`));
    // The newest backup with a right time is 30 min old: --max-age 20min must not be fooled by the one a year ahead.
    const status = await cli(['status', '--json', '--profile', dbA, '--max-age', '20min'], where);
    expect(status.code, status.stdout + status.stderr).toBe(5);
    const problems = (parseJsonStdout(status.stdout) as { profiles: Array<{ problems: Array<{ check: string; message: string }> }> }).profiles[0]?.problems ?? [];
    expect(problems.map((p) => p.check)).toEqual(['age', 'clock']);
    expect(problems[0]?.message).toMatch(new RegExp(`^the newest backup \\(${ids.a2}\\) finished`));
    expect(problems[1]?.message).toContain(`backupctl delete ${id} --profile ${dbA} --force`);
  });

  it('latest without --profile is the defaultProfile\'s, or the config\'s only profile\'s: never a newer backup of another profile', async () => {
    const dir = await makeTempDir('ls-default');
    dirs.push(dir);
    const run = async (config: Record<string, unknown>, argv: string[]) => {
      await writeFile(path.join(dir, 'backupctl.config.json'), JSON.stringify({ storage, ...config }));
      return runCli(argv, { env: baseEnv(cluster.env('postgres')), cwd: dir });
    };
    const idOf = (outcome: CliOutcome) => {
      expect(outcome.code, outcome.stderr).toBe(0);
      return (parseJsonStdout(outcome.stdout) as { id: string }).id;
    };
    const two = { profiles: { [dbA]: { database: dbA }, [dbB]: { database: dbB } } };
    // b1 is the newest backup of the storage; the default profile is A.
    expect(idOf(await run({ ...two, defaultProfile: dbA }, ['show', 'latest', '--json']))).toBe(ids.a2);
    expect(idOf(await run({ profiles: { [dbA]: { database: dbA } } }, ['show', 'latest', '--json']))).toBe(ids.a2);
    // --profile still wins, and several profiles without a default mean any profile.
    expect(idOf(await run({ ...two, defaultProfile: dbA }, ['show', 'latest', '--profile', dbB, '--json']))).toBe(ids.b1);
    expect(idOf(await run(two, ['show', 'latest', '--json']))).toBe(ids.b1);
    const plan = await run({ ...two, defaultProfile: dbA }, ['restore', 'latest', '--dry-run', '--json', '--target-db', 'ls_nowhere', '--create']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain(ids.a2);
    expect(plan.stdout).not.toContain(ids.b1);
  });

  it('show latest --profile and --tag narrow it', async () => {
    const byProfile = await cli(['show', 'latest', '--profile', dbA, '--json']);
    expect((parseJsonStdout(byProfile.stdout) as { id: string }).id).toBe(ids.a2);
    const byTag = await cli(['show', 'latest', '--tag', 'old', '--json']);
    expect((parseJsonStdout(byTag.stdout) as { id: string }).id).toBe(ids.a1);
    const human = await cli(['show', 'latest', '--tag', 't']);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(ids.b1);
    const none = await cli(['show', 'latest', '--tag', 'none-such']);
    expect(none.code).toBe(2);
    expect(none.stdout).toBe('');
  });

  it('show <id> finds it in any profile; --json equals the sidecar on disk', async () => {
    const human = await cli(['show', ids.a1]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain(ids.a1);
    expect(human.stdout).toContain('old');

    const run = await cli(['show', ids.a1, '--json']);
    expect(run.code).toBe(0);
    const onDisk = JSON.parse(await readFile(path.join(storage, dbA, `${ids.a1}.json`), 'utf8')) as object;
    // The sidecar, and what is wrong with the backup's files (nothing here).
    expect(parseJsonStdout(run.stdout)).toEqual({ ...onDisk, problems: [] });
  });

  it('show of an unknown id exits 2', async () => {
    const run = await cli(['show', '20200101T000000Z-000000']);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/not found/);
    // The id exists, but not in that profile.
    expect((await cli(['show', ids.b1, '--profile', dbA])).code).toBe(2);
  });

  it.each(['../../x', '../../etc/passwd', '/etc/passwd', `${'20200101T000000Z-000000'}/../x`, ''])(
    'show %j exits 2 without touching the file system outside the storage',
    async (ref) => {
      const run = await cli(['show', ref]);
      expect(run.code).toBe(2);
      expect(run.stdout).toBe('');
    },
  );
});
