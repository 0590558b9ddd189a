/**
 * `backupctl prune` on real backups made with `create` against the test cluster: dry runs
 * change nothing and give reasons, real runs remove sidecar + artifact + globals, the newest
 * backup survives any policy, a held lock stops everything (exit 4), old unfinished
 * leftovers go, and command-line rules override the config's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, parseJsonStdout, readSidecar, removeDirs } from '../helpers/backups.js';
import { baseEnv, runCli, type CliOutcome } from '../helpers/cli.js';
import { connectProvided, uniqueName } from '../helpers/pg.js';

const cluster = connectProvided();
const DAY = 86_400_000;

const dirs: string[] = [];
const children: ChildProcess[] = [];
const db = uniqueName('prune');
/** The profile create gives backups of `db` without a config: named after the database. */
const profile = db;
let template: string;
/** Ids oldest first: 4 days ago, 3, 2, 1 (tagged "pin" on the oldest). */
const ids: string[] = [];

interface PruneEntry {
  id: string;
  kind: 'backup' | 'leftover';
  createdAt: string;
  action: 'keep' | 'remove';
  reasons: string[];
  removed?: boolean;
}

beforeAll(async () => {
  await cluster.createDatabase(db);
  await cluster.query(db, 'CREATE TABLE items AS SELECT g AS id, md5(g::text) AS payload FROM generate_series(1, 2000) AS g');
  const work = await makeTempDir('prune-template');
  dirs.push(work);
  template = path.join(work, 'storage');
  for (const daysAgo of [4, 3, 2, 1]) {
    const at = new Date(Date.now() - daysAgo * DAY);
    const run = await runCli(['create', '--json', '--storage', template, ...(daysAgo === 4 ? ['--tag', 'pin'] : [])], {
      env: baseEnv(cluster.env(db)),
      cwd: work,
      now: () => new Date(at),
    });
    expect(run.code, run.stderr).toBe(0);
    ids.push((parseJsonStdout(run.stdout) as { id: string }).id);
  }
});

afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

afterAll(async () => {
  await cluster.dropDatabase(db);
  await removeDirs(dirs);
});

/** A private copy of the four backups. */
async function freshStorage(): Promise<{ work: string; storage: string }> {
  const work = await makeTempDir('prune');
  dirs.push(work);
  const storage = path.join(work, 'storage');
  await cp(template, storage, { recursive: true });
  return { work, storage };
}

/** prune (or any command) with the profile named by PGDATABASE, as create named it; no database is reachable. */
function cli(argv: string[], where: { work: string; storage: string }, env: Record<string, string> = {}): Promise<CliOutcome> {
  return runCli([...argv, '--storage', where.storage], {
    env: baseEnv({ PGDATABASE: db, PGHOST: '127.0.0.1', PGPORT: '1', ...env }),
    cwd: where.work,
  });
}

/** The files of the profile, but the run log (which records runs) and the catalog index (a cache of the sidecars). */
async function files(storage: string): Promise<string[]> {
  return (await readdir(path.join(storage, profile))).filter((f) => f !== 'runs.jsonl' && f !== 'catalog-index.json').sort();
}

function entries(run: CliOutcome): PruneEntry[] {
  expect(run.code, run.stderr).toBe(0);
  const out = parseJsonStdout(run.stdout);
  expect(Array.isArray(out)).toBe(true);
  return out as PruneEntry[];
}

describe('prune', () => {
  it('--dry-run changes nothing and shows every backup with keep/remove and the reasons', async () => {
    const where = await freshStorage();
    const before = await files(where.storage);
    const human = await cli(['prune', '--keep-last', '2', '--keep-tag', 'pin', '--dry-run'], where);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^ID\s+CREATED\s+ACTION\s+REASONS$/m);
    const line = (id: string) => human.stdout.split('\n').find((l) => l.startsWith(id)) ?? '';
    expect(line(ids[3] as string)).toMatch(/keep\s+keep-last, newest backup$/);
    expect(line(ids[2] as string)).toMatch(/keep\s+keep-last$/);
    expect(line(ids[1] as string)).toMatch(/remove\s+no rule keeps it$/);
    expect(line(ids[0] as string)).toMatch(/keep\s+keep-tag$/);
    expect(human.stdout).toMatch(/Dry run: would remove 1 backup, freeing .*; would keep 3 backups\. Nothing was changed\./);
    expect(human.stdout).toContain('keep-last 2, keep-tags pin');

    const json = entries(await cli(['prune', '--keep-last', '2', '--dry-run', '--json'], where));
    expect(json.map((e) => [e.id, e.action, e.reasons])).toEqual([
      [ids[3], 'keep', ['keep-last', 'newest-successful']],
      [ids[2], 'keep', ['keep-last']],
      [ids[1], 'remove', ['no-rule']],
      [ids[0], 'remove', ['no-rule']],
    ]);
    for (const entry of json) expect(Date.parse(entry.createdAt)).not.toBeNaN();
    expect(await files(where.storage)).toEqual(before);
  });

  it('--keep-last 2 removes the other backups: sidecar, artifact and globals', async () => {
    const where = await freshStorage();
    const run = await cli(['prune', '--keep-last', '2'], where);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`${ids[0]}.*removed\\s+no rule keeps it`));
    expect(run.stdout).toMatch(/Removed 2 backups, freed \d[\d.]* (B|KiB|MiB); kept 2 backups\./);
    const left = await files(where.storage);
    for (const id of [ids[0], ids[1]]) expect(left.filter((f) => f.startsWith(`${id}.`))).toEqual([]);
    for (const id of [ids[2], ids[3]]) {
      expect(left).toEqual(expect.arrayContaining([`${id}.json`, `${id}.dump.zst`, `${id}.globals.sql.zst`]));
      await readSidecar(where.storage, profile, id as string); // still valid
    }
    expect(left).not.toContain('lock.json'); // released
    const listed = await cli(['list', '--json', '--profile', profile], where);
    expect((parseJsonStdout(listed.stdout) as Array<{ id: string }>).map((b) => b.id)).toEqual([ids[3], ids[2]]);
  });

  it('never removes the newest backup, whatever the policy', async () => {
    const where = await freshStorage();
    const json = entries(await cli(['prune', '--keep-tag', 'no-backup-has-this', '--json'], where));
    expect(json.filter((e) => e.action === 'keep').map((e) => [e.id, e.reasons])).toEqual([[ids[3], ['newest-successful']]]);
    expect(json.filter((e) => e.action === 'remove').every((e) => e.removed === true)).toBe(true);
    expect((await files(where.storage)).filter((f) => f.endsWith('.json'))).toEqual([`${ids[3]}.json`]);
  });

  it('removes nothing while another live process holds the profile lock (exit 4), also after --wait', async () => {
    const where = await freshStorage();
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    children.push(holder);
    const lock = { pid: holder.pid, host: os.hostname(), command: 'create', startedAt: new Date().toISOString(), token: 't' };
    await writeFile(path.join(where.storage, profile, 'lock.json'), JSON.stringify(lock));
    const before = await files(where.storage);

    const busy = await cli(['prune', '--keep-last', '1'], where);
    expect(busy.code).toBe(4);
    expect(busy.stdout).toBe('');
    expect(busy.stderr).toMatch(new RegExp(`error: profile "${profile}" is busy: locked by "create" \\(pid ${holder.pid} on host`));
    expect(busy.stderr).toMatch(/hint: .*--wait/);

    const waited = await cli(['prune', '--keep-last', '1', '--wait', '2s'], where);
    expect(waited.code).toBe(4);
    expect(waited.stderr).toMatch(/timed out after waiting [23]s/);
    expect(await files(where.storage)).toEqual(before);

    // The holder dies: its lock is stale and the next prune takes it over.
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.on('exit', resolve));
    const after = await cli(['prune', '--keep-last', '1'], where);
    expect(after.code, after.stderr).toBe(0);
    expect(after.stderr).toMatch(/took over the stale lock/);
    expect((await files(where.storage)).filter((f) => f.endsWith('.json'))).toEqual([`${ids[3]}.json`]);
  });

  it('the lock of another host is respected; unlock removes it', async () => {
    const where = await freshStorage();
    const lock = { pid: 4242, host: 'backup-2.example.com', command: 'prune', startedAt: new Date().toISOString(), token: 't' };
    await writeFile(path.join(where.storage, profile, 'lock.json'), JSON.stringify(lock));
    const busy = await cli(['prune', '--keep-last', '1'], where);
    expect(busy.code).toBe(4);
    expect(busy.stderr).toContain('pid 4242 on host backup-2.example.com');
    expect(busy.stderr).toContain(`backupctl unlock --profile ${profile}`);
    const unlocked = await cli(['unlock'], where);
    expect(unlocked.code, unlocked.stderr).toBe(0);
    expect(unlocked.stdout).toMatch(/Removed the lock of profile .* held by "prune" \(pid 4242 on host backup-2\.example\.com/);
    expect(await files(where.storage)).not.toContain('lock.json');
    expect((await cli(['unlock'], where)).stdout).toMatch(/is not locked/);
  });

  it('removes unfinished leftovers once they are older than --leftover-age, and reports them', async () => {
    const where = await freshStorage();
    const dir = path.join(where.storage, profile);
    const oldId = '20200102T030405Z-0a0b0c';
    const youngId = '20200103T030405Z-0d0e0f';
    for (const file of [`${oldId}.dump`, `${oldId}.globals.sql`, `${youngId}.dump`]) await writeFile(path.join(dir, file), 'partial');
    const threeDaysAgo = new Date(Date.now() - 3 * DAY);
    await utimes(path.join(dir, `${oldId}.dump`), threeDaysAgo, threeDaysAgo);
    await utimes(path.join(dir, `${oldId}.globals.sql`), threeDaysAgo, threeDaysAgo);
    const aMinuteAgo = new Date(Date.now() - 60_000);
    await utimes(path.join(dir, `${youngId}.dump`), aMinuteAgo, aMinuteAgo);

    const dry = await cli(['prune', '--keep-last', '10', '--dry-run'], where);
    expect(dry.stdout).toMatch(new RegExp(`${oldId}.*remove\\s+unfinished \\(no sidecar\\), older than 24h`));
    expect(dry.stdout).toMatch(new RegExp(`${youngId}.*keep\\s+unfinished \\(no sidecar\\), younger than 24h`));
    expect(dry.stdout).toMatch(/would remove 0 backups and 1 unfinished leftover/);

    const json = entries(await cli(['prune', '--keep-last', '10', '--json'], where));
    expect(json.filter((e) => e.kind === 'leftover').map((e) => [e.id, e.action, e.reasons, e.removed])).toEqual([
      [youngId, 'keep', ['leftover-recent'], undefined],
      [oldId, 'remove', ['leftover-old'], true],
    ]);
    const left = await files(where.storage);
    expect(left).toContain(`${youngId}.dump`);
    expect(left.filter((f) => f.startsWith(oldId))).toEqual([]);
    expect(left.filter((f) => f.endsWith('.json'))).toHaveLength(4);

    // A shorter threshold takes the young one too.
    entries(await cli(['prune', '--keep-last', '10', '--leftover-age', '30s', '--json'], where));
    expect((await files(where.storage)).filter((f) => f.startsWith(youngId))).toEqual([]);
  });

  it('files of a backup that its sidecar does not name (a rekey killed before its sidecar switched) are unfinished leftovers: listed, and removed past --leftover-age, the backup untouched', async () => {
    const where = await freshStorage();
    const dir = path.join(where.storage, profile);
    const sidecarFile = (await files(where.storage)).find((f) => f.endsWith('.json')) as string;
    const id = sidecarFile.slice(0, -'.json'.length);
    const before = await files(where.storage);
    const stray = `${id}.k1.dump.zst.age`;
    await writeFile(path.join(dir, stray), 'a rewrapped copy that never became the backup');
    const threeDaysAgo = new Date(Date.now() - 3 * DAY);
    await utimes(path.join(dir, stray), threeDaysAgo, threeDaysAgo);

    const listed = await cli(['list', '--all', '--json'], where);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(stray);
    const json = entries(await cli(['prune', '--keep-last', '10', '--json'], where));
    expect(json.filter((e) => e.kind === 'leftover').map((e) => [e.id, e.action, e.removed])).toEqual([[id, 'remove', true]]);
    expect(json.find((e) => e.kind === 'backup' && e.id === id)?.action).toBe('keep');
    expect(await files(where.storage)).toEqual(before);
    const shown = await cli(['show', id], where);
    expect(shown.code, shown.stderr).toBe(0);
  });

  it('removes temporaries of interrupted writes once they are older than --leftover-age, never a fresh one', async () => {
    const where = await freshStorage();
    const dir = path.join(where.storage, profile);
    const stale = path.join(dir, '.tmp-0123456789ab-20200102T030405Z-0a0b0c.dump');
    const fresh = path.join(dir, '.tmp-ba9876543210-20200103T030405Z-0d0e0f.dump');
    await writeFile(stale, 'half a dump');
    await writeFile(fresh, 'a dump being written');
    const twoDaysAgo = new Date(Date.now() - 2 * DAY);
    await utimes(stale, twoDaysAgo, twoDaysAgo);

    const dry = await cli(['prune', '--keep-last', '10', '--dry-run'], where);
    expect(dry.code, dry.stderr).toBe(0);
    expect(existsSync(stale)).toBe(true); // a dry run changes nothing

    const real = await cli(['prune', '--keep-last', '10'], where);
    expect(real.code, real.stderr).toBe(0);
    expect(real.stderr).toMatch(/removed 1 stale temporary file/);
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(fresh)).toBe(true);
  });

  it('--dry-run lists the stale temporaries the real run removes (count and bytes, human and --json); the real run lists them too, and both count them in what is freed', async () => {
    const where = await freshStorage();
    const dir = path.join(where.storage, profile);
    const stale = path.join(dir, '.tmp-0123456789ab-20261201T000000Z-aaaaaa.dump.zst');
    await writeFile(stale, Buffer.alloc(100_000, 7));
    const twoDaysAgo = new Date(Date.now() - 2 * DAY);
    await utimes(stale, twoDaysAgo, twoDaysAgo);
    type Entry = { kind: string; action: string; count?: number; bytes: number; removed?: boolean; reasons: string[] };
    const temporariesOf = (entries: Entry[]) => entries.filter((entry) => entry.kind === 'temporaries');

    const dryJson = await cli(['prune', '--keep-last', '5', '--dry-run', '--json'], where);
    expect(dryJson.code, dryJson.stderr).toBe(0);
    expect(temporariesOf(parseJsonStdout(dryJson.stdout) as Entry[])).toEqual([
      { profile, kind: 'temporaries', action: 'remove', reasons: ['temporary-old'], count: 1, bytes: 100_000, files: [] },
    ]);
    const dry = await cli(['prune', '--keep-last', '5', '--dry-run'], where);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/Stale temporary files of interrupted writes \(older than 24h\): 1, 97\.7 KiB, remove/);
    expect(dry.stdout).toMatch(/Dry run: would remove 0 backups and 1 stale temporary file, freeing 97\.7 KiB/);
    expect(existsSync(stale)).toBe(true);

    const real = await cli(['prune', '--keep-last', '5', '--json'], where);
    expect(real.code, real.stderr).toBe(0);
    expect(temporariesOf(parseJsonStdout(real.stdout) as Entry[])).toEqual([expect.objectContaining({ kind: 'temporaries', count: 1, bytes: 100_000, removed: true })]);
    expect(existsSync(stale)).toBe(false);

    // The human output of a real run names them as well.
    await writeFile(stale, Buffer.alloc(100_000, 7));
    await utimes(stale, twoDaysAgo, twoDaysAgo);
    const human = await cli(['prune', '--keep-last', '5'], where);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/Stale temporary files of interrupted writes \(older than 24h\): 1, 97\.7 KiB, removed/);
    expect(human.stdout).toMatch(/Removed 0 backups and 1 stale temporary file, freed 97\.7 KiB/);
    expect(existsSync(stale)).toBe(false);
  });

  it('takes the policy from the config; flags override it key by key', async () => {
    const where = await freshStorage();
    const config = {
      storage: './storage',
      profiles: {
        [profile]: { database: db, host: '127.0.0.1', port: 1, retention: { keepLast: 1, keepTags: ['pin'] } },
      },
    };
    await writeFile(path.join(where.work, 'backupctl.config.json'), JSON.stringify(config));
    const run = (argv: string[]) => runCli(argv, { env: baseEnv(), cwd: where.work });

    const fromConfig = entries(await run(['prune', '--dry-run', '--json']));
    expect(fromConfig.filter((e) => e.action === 'keep').map((e) => e.id)).toEqual([ids[3], ids[0]]);

    const overridden = entries(await run(['prune', '--dry-run', '--json', '--keep-last', '3']));
    expect(overridden.filter((e) => e.action === 'keep').map((e) => e.id)).toEqual([ids[3], ids[2], ids[1], ids[0]]);
    const tagOff = entries(await run(['prune', '--dry-run', '--json', '--keep-last', '2', '--keep-tag', 'other']));
    expect(tagOff.filter((e) => e.action === 'keep').map((e) => e.id)).toEqual([ids[3], ids[2]]);

    const real = await run(['prune', '--keep-last', '2', '--keep-tag', 'other']);
    expect(real.code, real.stderr).toBe(0);
    expect((await files(where.storage)).filter((f) => f.endsWith('.json'))).toEqual([`${ids[2]}.json`, `${ids[3]}.json`]);
  });

  it('refuses an empty policy and reports every problem of an invalid one (exit 2)', async () => {
    const where = await freshStorage();
    const before = await files(where.storage);
    const empty = await cli(['prune'], where);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/error: refusing to prune with an empty retention policy/);
    expect(empty.stderr).toMatch(/hint: .*--keep-last/);
    const zero = await cli(['prune', '--keep-last', '0', '--keep-within', '0d'], where);
    expect(zero.code).toBe(2);

    const invalid = await cli(['prune', '--keep-within', '1h30m', '--time-zone', 'Mars/Olympus', '--keep-daily', '3'], where);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toMatch(/invalid retention policy \(2 problems\)/);
    expect(invalid.stderr).toMatch(/"m" means months/);
    expect(invalid.stderr).toMatch(/Mars\/Olympus/);

    const badFlag = await cli(['prune', '--keep-last', 'many'], where);
    expect(badFlag.code).toBe(2);
    expect(await files(where.storage)).toEqual(before);
  });

  it('needs a profile when none can be told, and never a database connection', async () => {
    const where = await freshStorage();
    const run = await runCli(['prune', '--keep-last', '1', '--storage', where.storage], { env: baseEnv(), cwd: where.work });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/which profile\?/);
    // --profile alone is enough (PGPORT=1 above: nothing listens there).
    const named = await runCli(['prune', '--keep-last', '3', '--profile', profile, '--storage', where.storage, '--json'], {
      env: baseEnv(),
      cwd: where.work,
    });
    expect(entries(named).filter((e) => e.action === 'remove').map((e) => e.id)).toEqual([ids[0]]);
  });
});

describe('create and the lock', () => {
  it('create refuses (exit 4) while the profile is locked, and leaves no files behind', async () => {
    const where = await freshStorage();
    const lock = { pid: 4242, host: 'backup-2.example.com', command: 'prune', startedAt: new Date().toISOString(), token: 't' };
    await mkdir(path.join(where.storage, profile), { recursive: true });
    await writeFile(path.join(where.storage, profile, 'lock.json'), JSON.stringify(lock));
    const before = await files(where.storage);
    const run = await runCli(['create', '--storage', where.storage], { env: baseEnv(cluster.env(db)), cwd: where.work });
    expect(run.code).toBe(4);
    expect(run.stderr).toMatch(/is busy: locked by "prune" \(pid 4242 on host backup-2\.example\.com/);
    expect(await files(where.storage)).toEqual(before);
  });
});
