/**
 * The operator's commands beyond the backup loop: delete, short ids, check, completion.
 */
import { execa } from 'execa';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectJsonError, makeTempDir, parseJsonStdout, removeDirs } from '../helpers/backups.js';
import { baseEnv, BIN, runCli } from '../helpers/cli.js';
import { closedPort, listFiles } from '../helpers/failure-kit.js';
import { connectProvided, uniqueName } from '../helpers/pg.js';
import { currentBootId, sleeper } from '../helpers/process.js';
import { REPLACED_COMMENT_PREFIX } from '../../src/pg/admin.js';

const cluster = connectProvided();
const db = uniqueName('opcmd');
const dirs: string[] = [];
let dir: string;
let storage: string;
const ids: string[] = [];

const cli = (args: string[], env: Record<string, string | undefined> = baseEnv({ PGPASSWORD: cluster.password })) => runCli(args, { env, cwd: dir });

async function writeConfig(extra: Record<string, unknown> = {}): Promise<void> {
  await writeFile(
    path.join(dir, 'backupctl.config.json'),
    JSON.stringify({ storage, profiles: { app: { host: cluster.host, port: cluster.port, user: cluster.user, database: db, ...extra } } }),
  );
}

beforeAll(async () => {
  dir = await makeTempDir('opcmd');
  dirs.push(dir);
  storage = path.join(dir, 'backups');
  await cluster.createDatabase(db);
  await cluster.query(db, 'create table t (id int primary key); insert into t select generate_series(1, 10)');
  await writeConfig();
  for (let i = 0; i < 4; i++) {
    const run = await cli(['create', '--json']);
    expect(run.code, run.stderr).toBe(0);
    ids.push((parseJsonStdout(run.stdout) as { id: string }).id);
  }
});

afterAll(async () => {
  await cluster.dropDatabase(db);
  await removeDirs(dirs);
});

describe('short ids', () => {
  it('a unique prefix of the random part or of the whole id finds the backup', async () => {
    const id = ids[0] as string;
    for (const ref of [id.slice(17), id.slice(17, 21), id]) {
      const run = await cli(['show', ref, '--json']);
      expect(run.code, `${ref}: ${run.stderr}`).toBe(0);
      expect((parseJsonStdout(run.stdout) as { id: string }).id).toBe(id);
    }
  });

  it('an ambiguous prefix is exit 2, listing the candidates', async () => {
    const run = await cli(['show', ids[0]?.slice(0, 4) as string, '--json']);
    const error = expectJsonError(run, 2);
    expect(error.message).toMatch(/is ambiguous/);
    for (const id of ids) expect(error.message).toContain(id);
  });
});

describe('delete', () => {
  it('refuses the newest good backup without --force, and "latest"; nothing is removed', async () => {
    const before = await listFiles(storage);
    expectJsonError(await cli(['delete', ids[3] as string, '--json']), 2);
    expectJsonError(await cli(['delete', 'latest', '--json']), 2);
    expect(await listFiles(storage)).toEqual(before);
  });

  it('--dry-run lists and removes nothing; a real run removes sidecar, artifact and globals and records the run', async () => {
    const victim = ids[0] as string;
    const before = await listFiles(storage);
    const dry = await cli(['delete', victim.slice(17), '--dry-run', '--json']);
    expect(dry.code, dry.stderr).toBe(0);
    expect((parseJsonStdout(dry.stdout) as { backups: Array<{ id: string; removed: boolean }> }).backups).toEqual([expect.objectContaining({ id: victim, removed: false })]);
    expect(await listFiles(storage)).toEqual(before);
    const real = await cli(['delete', victim.slice(17)]);
    expect(real.code, real.stderr).toBe(0);
    expect(real.stdout).toMatch(/Removed 1 backup/);
    expect((await listFiles(storage)).filter((f) => f.includes(victim))).toEqual([]);
    const log = (await readFile(path.join(storage, 'app', 'runs.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { command: string; id?: string; result: string });
    expect(log.at(-1)).toMatchObject({ command: 'delete', id: victim, result: 'succeeded' });
  });

  it('is busy (exit 4) while another run holds the profile lock', async () => {
    const lock = path.join(storage, 'app', 'lock.json');
    await writeFile(lock, JSON.stringify({ pid: process.ppid, host: hostname(), command: 'create', startedAt: new Date().toISOString(), token: 'held' }));
    try {
      expectJsonError(await cli(['delete', ids[1] as string, '--json']), 4);
    } finally {
      await writeFile(lock, '');
      await (await import('node:fs/promises')).rm(lock);
    }
  });

  it('--force removes the newest good backup too', async () => {
    const run = await cli(['delete', ids[3] as string, '--force', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const listed = parseJsonStdout((await cli(['list', '--json'])).stdout) as Array<{ id: string }>;
    expect(listed.map((b) => b.id)).toEqual([ids[2], ids[1]]);
  });

  interface DeleteJson {
    dryRun: boolean;
    backups: Array<{ id: string; profile: string; keys: string[]; bytes: number; removed: boolean; unreadable?: string }>;
  }

  it('a backup whose sidecar is not valid JSON is found by a prefix of its id and removed with every file of its id (it is damage: no --force); status is healthy again', async () => {
    const id = '20261201T000000Z-abcdef';
    const app = path.join(storage, 'app');
    await writeFile(path.join(app, `${id}.json`), '{not json');
    await writeFile(path.join(app, `${id}.dump.zst`), Buffer.alloc(1000, 1));
    await writeFile(path.join(app, `${id}.globals.sql.zst`), Buffer.alloc(10, 2));
    const before = await listFiles(storage);
    expect((await cli(['status', '--json'])).code).toBe(5); // the unreadable sidecar is damage

    const dry = await cli(['delete', 'abcdef', '--dry-run', '--json']);
    expect(dry.code, dry.stderr).toBe(0);
    const planned = parseJsonStdout(dry.stdout) as DeleteJson;
    expect(planned.backups).toEqual([
      expect.objectContaining({ id, profile: 'app', removed: false, bytes: 1010, keys: [`app/${id}.json`, `app/${id}.dump.zst`, `app/${id}.globals.sql.zst`] }),
    ]);
    expect(planned.backups[0]?.unreadable).toMatch(/not valid JSON/);
    expect(await listFiles(storage)).toEqual(before);

    const real = await cli(['delete', 'abcdef']);
    expect(real.code, real.stderr).toBe(0);
    expect(real.stdout).toMatch(/its sidecar could not be read \(.*not valid JSON.*\); removed app\/20261201T000000Z-abcdef\.json, app\/20261201T000000Z-abcdef\.dump\.zst, app\/20261201T000000Z-abcdef\.globals\.sql\.zst/);
    expect(real.stdout).toMatch(/Removed 1 backup/);
    expect((await listFiles(storage)).filter((f) => f.includes(id))).toEqual([]);
    const status = await cli(['status', '--json']);
    expect(status.code, status.stdout).toBe(0);
  });

  it('a whole id with --profile --force: an invalid sidecar goes with its files; files of other ids and entries that are not regular files stay', async () => {
    const id = '20200202T000000Z-abcdef';
    const app = path.join(storage, 'app');
    const outside = path.join(dir, 'outside.bin');
    await writeFile(outside, 'not ours');
    await writeFile(path.join(app, `${id}.json`), JSON.stringify({ schemaVersion: 1, id }));
    await writeFile(path.join(app, `${id}.dump`), Buffer.alloc(100, 1));
    await symlink(outside, path.join(app, `${id}.dump.age`)); // hostile: never followed or removed
    await writeFile(path.join(app, '20200202T000000Z-abcdef0.dump'), 'not of that id');
    await writeFile(path.join(app, '20200202T000000Z-fedcba.dump'), 'another id');
    try {
      const run = await cli(['delete', id, '--profile', 'app', '--force', '--json']);
      expect(run.code, run.stderr).toBe(0);
      const result = parseJsonStdout(run.stdout) as DeleteJson;
      expect(result.backups).toEqual([expect.objectContaining({ id, removed: true, keys: [`app/${id}.json`, `app/${id}.dump`] })]);
      expect(result.backups[0]?.unreadable).toMatch(/invalid sidecar/);
      expect(existsSync(path.join(app, `${id}.json`))).toBe(false);
      expect(existsSync(path.join(app, `${id}.dump`))).toBe(false);
      expect((await readdir(app)).filter((name) => name.startsWith('20200202T')).sort()).toEqual([`${id}.dump.age`, '20200202T000000Z-abcdef0.dump', '20200202T000000Z-fedcba.dump'].sort());
      expect(await readFile(outside, 'utf8')).toBe('not ours');
    } finally {
      for (const name of [`${id}.dump.age`, '20200202T000000Z-abcdef0.dump', '20200202T000000Z-fedcba.dump']) await rm(path.join(app, name), { force: true });
    }
  });
});

describe('check', () => {
  let hooks: Server;
  let hits = 0;
  beforeAll(async () => {
    hooks = createServer((_req, res) => {
      hits += 1;
      res.end('ok');
    });
    await new Promise<void>((resolve) => hooks.listen(0, '127.0.0.1', resolve));
  });
  afterAll(() => new Promise<void>((resolve) => hooks.close(() => resolve())));

  it('passes for a sound profile: one line per check, exit 0; notifiers are connected to but sent nothing', async () => {
    const port = (hooks.address() as AddressInfo).port;
    await writeConfig({
      verify: { server: `postgres://${cluster.user}@${cluster.host}:${cluster.port}/postgres` },
      notify: { webhook: { url: `http://127.0.0.1:${port}/hook` }, healthchecks: { url: `http://127.0.0.1:${port}/hc/uuid` } },
    });
    const run = await cli(['check']);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    for (const check of ['config', 'connection', 'client', 'storage', 'lock', 'verify-server', 'leftovers', 'notify']) {
      expect(run.stdout).toMatch(new RegExp(`^  ok +${check} `, 'm'));
    }
    expect(hits).toBe(0);
    expect((await listFiles(storage)).filter((f) => f.includes('probe'))).toEqual([]);
  });

  it('a copy destination that cannot be used is named in its FAIL line, with a hint', async () => {
    const fileInTheWay = path.join(dir, 'copy-blocker');
    await writeFile(fileInTheWay, 'x');
    const bad = path.join(fileInTheWay, 'sub');
    await writeConfig({ copies: [bad] });
    try {
      const run = await cli(['check', '--json']);
      expect(run.code).toBe(5);
      const checks = (parseJsonStdout(run.stdout) as { profiles: Array<{ checks: Array<{ check: string; ok: boolean; detail: string; hint?: string }> }> }).profiles[0]?.checks ?? [];
      const copies = checks.find((c) => c.check === 'copies');
      expect(copies).toMatchObject({ ok: false, detail: expect.stringContaining(bad), hint: `fix or replace "${bad}" in the profile's copies` });
    } finally {
      await writeConfig();
    }
  });

  it('a profile without backups yet: the probe goes to the storage root (and a copy destination\'s), no empty profile folder is left, and the line says so', async () => {
    const fresh = path.join(dir, 'fresh-storage');
    const copyTo = path.join(dir, 'fresh-copies');
    await writeConfig({ copies: [copyTo] });
    const run = await cli(['check', '--storage', fresh]);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toMatch(/^ {2}ok +storage .*written, read back and removed a probe object \(nothing of profile app there yet/m);
    expect(await readdir(fresh)).toEqual([]);
    expect(await readdir(copyTo)).toEqual([]);
    await writeConfig();
    const listed = await cli(['list', '--storage', fresh, '--json']);
    expect(parseJsonStdout(listed.stdout)).toEqual([]);
  });

  it('a profile the config does not define is a usage error (exit 2), as in every command', async () => {
    await writeConfig();
    const run = await cli(['check', '--profile', 'nope']);
    expect(run.code, run.stdout + run.stderr).toBe(2);
    expect(run.stderr).toMatch(/error: no profile named "nope"/);
    expect(run.stderr).toMatch(/hint: profiles: app/);
  });

  it("another host's leftover is named with that host in the hint: it is never dropped from here", async () => {
    await writeConfig();
    const leftover = `backupctl_verify_${uniqueName('foreign')}`;
    await cluster.query('postgres', `CREATE DATABASE ${leftover}`);
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3_600_000).toISOString();
    await cluster.query('postgres', `COMMENT ON DATABASE ${leftover} IS 'backupctl scratch ${JSON.stringify({ kind: 'verify', host: 'db-backup-2', pid: 4242, startedAt: twoDaysAgo })}'`);
    try {
      const run = await cli(['check', '--json']);
      expect(run.code).toBe(5);
      const checks = (parseJsonStdout(run.stdout) as { profiles: Array<{ checks: Array<{ check: string; ok: boolean; detail: string; hint?: string }> }> }).profiles[0]?.checks ?? [];
      const leftovers = checks.find((c) => c.check === 'leftovers');
      expect(leftovers?.detail).toContain(`${leftover} (verify, pid 4242 on db-backup-2)`);
      expect(leftovers?.hint).toBe('those of db-backup-2 are dropped by a verify or restore there, or by hand once you know their run is gone');
    } finally {
      await cluster.dropDatabase(leftover);
    }
  });

  /** `check --json`, which must fail (exit 5): its leftovers line. */
  async function failedLeftovers(): Promise<{ check: string; ok: boolean; detail: string; hint?: string } | undefined> {
    const run = await cli(['check', '--json']);
    expect(run.code, run.stderr).toBe(5);
    const checks = (parseJsonStdout(run.stdout) as { profiles: Array<{ checks: Array<{ check: string; ok: boolean; detail: string; hint?: string }> }> }).profiles[0]?.checks ?? [];
    return checks.find((c) => c.check === 'leftovers');
  }

  /** Of `names`, the databases still there after a verify (which sweeps the leftovers it may drop). */
  async function leftAfterVerify(names: string[]): Promise<string[]> {
    const verified = await cli(['verify', 'latest']);
    expect(verified.code, verified.stderr).toBe(0);
    const left = await cluster.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database WHERE datname = ANY($1) ORDER BY datname', [names]);
    return left.map((r) => r.datname);
  }

  it('a database named as a scratch database but never marked (a run killed while the server created it) is reported, and never dropped', async () => {
    await writeConfig();
    const unmarked = [`backupctl_verify_${uniqueName('killed')}_0a1b2c`, `${uniqueName('app')}_restoring_20261203_120000`];
    for (const name of unmarked) await cluster.query('postgres', `CREATE DATABASE ${name}`);
    try {
      const leftovers = await failedLeftovers();
      expect(leftovers?.ok).toBe(false);
      expect(leftovers?.detail).toMatch(/^named as a verify or restore scratch database but not marked as one, so never dropped by backupctl: /);
      for (const name of unmarked) expect(leftovers?.detail).toContain(name);
      expect(leftovers?.hint).toMatch(/drop them by hand/);
      expect(await leftAfterVerify(unmarked)).toEqual([...unmarked].sort());
    } finally {
      for (const name of unmarked) await cluster.dropDatabase(name);
    }
  });

  it('a database a restore replaced and was to drop, left by a run stopped before the drop, is reported (with the unmarked ones), and never dropped', async () => {
    await writeConfig();
    const replaced = `${uniqueName('app')}_old_20261203_120000`;
    const unmarked = `backupctl_verify_${uniqueName('killed')}_0a1b2c`;
    for (const name of [replaced, unmarked]) await cluster.query('postgres', `CREATE DATABASE ${name}`);
    const note = `${REPLACED_COMMENT_PREFIX}app/20261203T120000Z-abcdef at 2026-12-03T12:00:00.000Z (pid 4242 on ${hostname()}), which was to drop it (--drop-old); that restore stopped before it could`;
    await cluster.query('postgres', `COMMENT ON DATABASE ${replaced} IS '${note}'`);
    try {
      const leftovers = await failedLeftovers();
      expect(leftovers?.ok).toBe(false);
      expect(leftovers?.detail).toContain(`named as a verify or restore scratch database but not marked as one, so never dropped by backupctl: ${unmarked} on `);
      expect(leftovers?.detail).toMatch(
        new RegExp(`; replaced by a restore that stopped before it dropped them, never dropped by backupctl: ${replaced} on \\S+ \\(restore of backup app/20261203T120000Z-abcdef at 2026-12-03T12:00:00.000Z \\(pid 4242 on [^)]+\\)\\)$`),
      );
      expect(leftovers?.hint).toMatch(/unless a verify or restore is starting right now, drop them by hand .*; unless that restore is finishing right now, drop them by hand/);
      expect(await leftAfterVerify([replaced, unmarked])).toEqual([replaced, unmarked].sort());
    } finally {
      for (const name of [replaced, unmarked]) await cluster.dropDatabase(name);
    }
  });

  it('fails (exit 5) on each broken piece, with a hint: password, storage, lock, leftovers, notifier', async () => {
    await writeConfig({ notify: { slack: { url: `http://127.0.0.1:${await closedPort()}/slack` } } });
    // A leftover throwaway database of a dead verify run of this host.
    const leftover = `backupctl_verify_${uniqueName('left')}`;
    await cluster.query('postgres', `CREATE DATABASE ${leftover}`);
    const exited = execa('true');
    await exited;
    const dead = exited.pid as number;
    await cluster.query('postgres', `COMMENT ON DATABASE ${leftover} IS 'backupctl scratch ${JSON.stringify({ kind: 'verify', host: hostname(), pid: dead, startedAt: new Date().toISOString() })}'`);
    const lock = path.join(storage, 'app', 'lock.json');
    await writeFile(lock, JSON.stringify({ pid: process.ppid, host: hostname(), command: 'prune', startedAt: new Date().toISOString(), token: 'held' }));
    try {
      const run = await cli(['check', '--json']);
      expect(run.code).toBe(5);
      const checks = (parseJsonStdout(run.stdout) as { ok: boolean; profiles: Array<{ checks: Array<{ check: string; ok: boolean; detail: string }> }> }).profiles[0]?.checks ?? [];
      const failedOnes = checks.filter((c) => !c.ok).map((c) => c.check);
      expect(failedOnes).toEqual(['lock', 'leftovers', 'notify']);
      expect(checks.find((c) => c.check === 'leftovers')?.detail).toContain(leftover);
      const wrong = await cli(['check'], baseEnv({ PGPASSWORD: 'wrong' }));
      expect(wrong.code).toBe(5);
      expect(wrong.stdout).toMatch(/FAIL +connection +password authentication failed/);
      expect(wrong.stdout).toMatch(/hint: /);
    } finally {
      await (await import('node:fs/promises')).rm(lock, { force: true });
      await cluster.dropDatabase(leftover);
    }
    await writeConfig();
    const fileInTheWay = path.join(dir, 'not-a-dir');
    await writeFile(fileInTheWay, 'x');
    const storageFail = await cli(['check', '--storage', fileInTheWay]);
    expect(storageFail.code).toBe(5);
    expect(storageFail.stdout).toMatch(/FAIL +storage/);
  });

  it.runIf(process.platform === 'linux')('a scratch database whose pid is now an unrelated live process is a dead run\'s: check reports it, verify drops it; one whose process runs with the recorded start ticks is left', async () => {
    await writeConfig();
    const { child, pid, ticks } = sleeper();
    const bootId = currentBootId();
    const mark = (tag: Record<string, unknown>) => `'backupctl scratch ${JSON.stringify({ kind: 'verify', host: hostname(), pid, startedAt: new Date().toISOString(), ...tag })}'`;
    const made = {
      // After a kill -9 and a reboot, or a long uptime: the pid given to another process.
      reused: { name: `backupctl_verify_${uniqueName('reused')}`, tag: { bootId, startTicks: ticks - 1 } },
      running: { name: `backupctl_verify_${uniqueName('running')}`, tag: { bootId, startTicks: ticks } },
      // Hostile identity values: judged by the pid alone, which runs.
      hostile: { name: `backupctl_verify_${uniqueName('hostile')}`, tag: { bootId: { evil: true }, startTicks: 'NaN' } },
    };
    for (const { name, tag } of Object.values(made)) {
      await cluster.query('postgres', `CREATE DATABASE ${name}`);
      await cluster.query('postgres', `COMMENT ON DATABASE ${name} IS ${mark(tag)}`);
    }
    try {
      const run = await cli(['check', '--json']);
      expect(run.code, run.stderr).toBe(5);
      const checks = (parseJsonStdout(run.stdout) as { profiles: Array<{ checks: Array<{ check: string; ok: boolean; detail: string }> }> }).profiles[0]?.checks ?? [];
      const leftovers = checks.find((c) => c.check === 'leftovers');
      expect(leftovers?.ok).toBe(false);
      expect(leftovers?.detail).toContain(`${made.reused.name} (verify, pid ${pid} on ${hostname()}: pid reused: ${pid} is another process now)`);
      expect(leftovers?.detail).not.toContain(made.running.name);
      expect(leftovers?.detail).not.toContain(made.hostile.name);
      const verified = await cli(['verify', 'latest']);
      expect(verified.code, verified.stderr).toBe(0);
      expect(verified.stderr).toMatch(new RegExp(`dropped leftover verify database ${made.reused.name} of a run that ended without dropping it \\(pid ${pid}, .*; pid reused: ${pid} is another process now\\)`));
      const left = await cluster.query<{ datname: string }>('postgres', `SELECT datname FROM pg_database WHERE datname = ANY($1) ORDER BY datname`, [Object.values(made).map((m) => m.name)]);
      expect(left.map((r) => r.datname)).toEqual([made.running.name, made.hostile.name].sort());
      expect(child.exitCode).toBeNull(); // the unrelated process was left alone
    } finally {
      child.kill('SIGKILL');
      for (const { name } of Object.values(made)) await cluster.dropDatabase(name);
    }
  });
});

/**
 * Runs an interactive zsh on a pseudo-terminal (python3's pty module): argv[1] first, then,
 * once the prompt shows (zle reads raw: a TAB completes), argv[2] and TAB; then the line is
 * erased (^U) and the shell left.
 */
const ZSH_DRIVER = `
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp('zsh', ['zsh', '-f', '-i'])
def read():
    try:
        return os.read(fd, 65536)
    except OSError:
        return b''
# The prompt, not the echo of this line.
os.write(fd, sys.argv[1].encode() + b"; PS1='<re''ady>'\\n")
seen = b''
while b'<ready>' not in seen:
    chunk = read()
    if not chunk:
        sys.exit('zsh ended before its prompt')
    seen += chunk
os.write(fd, sys.argv[2].encode() + b'\\t\\x15exit\\n')
while read():
    pass
os.waitpid(pid, 0)
`;

describe('completion', () => {
  async function script(shell: string): Promise<string> {
    const run = await cli(['completion', shell]);
    expect(run.code, run.stderr).toBe(0);
    const file = path.join(dir, `completion.${shell}`);
    await writeFile(file, run.stdout);
    return file;
  }
  const shellEnv = () => {
    const binDir = path.join(dir, 'bin');
    return { PATH: `${binDir}:${process.env.PATH ?? ''}`, HOME: dir, PGPASSWORD: cluster.password };
  };
  /** What _backupctl puts in COMPREPLY for these words (the last one is the word completed). */
  const bashComplete = async (file: string, words: string[]) => {
    const array = words.map((w) => `'${w}'`).join(' ');
    const result = await execa('bash', ['-c', `source '${file}'; COMP_WORDS=(${array}); COMP_CWORD=${words.length - 1}; _backupctl; printf '%s\\n' "\${COMPREPLY[@]}"`], {
      cwd: dir,
      env: shellEnv(),
      extendEnv: false,
    });
    return String(result.stdout).split('\n').filter(Boolean);
  };
  /** The candidates fish offers for this line, in its order, without descriptions. */
  const fishComplete = async (file: string, line: string) => {
    const quoted = `'${line.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
    const result = await execa('fish', ['-c', `source '${file}'; complete -C ${quoted}`], { cwd: dir, env: shellEnv(), extendEnv: false });
    return String(result.stdout).split('\n').filter(Boolean).map((candidate) => candidate.split('\t')[0]);
  };
  /**
   * The matches zsh's completion system adds for `line` and TAB, in an interactive zsh on a
   * pseudo-terminal with the script in $fpath: compadd is wrapped to write the matches of
   * each call that adds some (-O, -A and -D calls only filter) to a file.
   */
  const zshComplete = async (file: string, line: string) => {
    const functions = path.join(dir, 'zfunc');
    const log = path.join(dir, 'zsh-matches');
    await mkdir(functions, { recursive: true });
    await writeFile(path.join(functions, '_backupctl'), await readFile(file));
    await rm(log, { force: true });
    const setup = `fpath=('${functions}' $fpath); autoload -U compinit; compinit -u
compadd() { if [[ \${@[1,(i)(-|--)]} == *-(O|A|D)\\ * ]]; then builtin compadd "$@"; return; fi; local -a hits; builtin compadd -A hits "$@"; print -rl -- $hits >> '${log}'; builtin compadd "$@" }`;
    await execa('python3', ['-c', ZSH_DRIVER, setup, line], { cwd: dir, env: { ...shellEnv(), TERM: 'xterm' }, extendEnv: false, timeout: 30_000 });
    return existsSync(log) ? (await readFile(log, 'utf8')).split('\n').filter(Boolean) : [];
  };
  /** What `show <TAB>` offers in the main config's storage: "latest", then ids newest first. */
  const appIds = () => ['latest', ...[ids[2], ids[1]].sort().reverse()];
  // A second config (billing.config.json) with profiles app and billing, in a storage of its
  // own, one backup each, and profile tags of its own.
  const billingConfig = 'billing.config.json';
  let billingStorage: string;
  let billingId: string;
  let billingIds: string[];
  beforeAll(async () => {
    const { chmod } = await import('node:fs/promises');
    await mkdir(path.join(dir, 'bin'), { recursive: true });
    await writeFile(path.join(dir, 'bin', 'backupctl'), `#!/bin/sh\nexec '${process.execPath}' '${BIN}' "$@"\n`);
    await chmod(path.join(dir, 'bin', 'backupctl'), 0o755);
    billingStorage = path.join(dir, 'billing-backups');
    const connection = { host: cluster.host, port: cluster.port, user: cluster.user, database: db };
    await writeFile(path.join(dir, billingConfig), JSON.stringify({ storage: billingStorage, profiles: { app: connection, billing: { ...connection, tags: ['monthly'] } } }));
    const made: string[] = [];
    for (const profile of ['app', 'billing']) {
      const run = await cli(['create', '--config', billingConfig, '--profile', profile, '--json']);
      expect(run.code, run.stderr).toBe(0);
      made.push((parseJsonStdout(run.stdout) as { id: string }).id);
    }
    billingId = made[1] as string;
    billingIds = ['latest', ...[...made].sort().reverse()];
    await writeFile(path.join(dir, 'recipients.txt'), 'age1example\n');
  });

  it('bash: commands, options, choices, profiles from the config and backup ids', async () => {
    const file = await script('bash');
    const complete = (words: string[]) => bashComplete(file, words);
    expect(await complete(['backupctl', 'ver'])).toEqual(['verify']);
    expect(await complete(['backupctl', 'create', '--exclude-s'])).toEqual(['--exclude-schema']);
    expect(await complete(['backupctl', 'verify', '--level', ''])).toEqual(['checksum', 'archive', 'restore']);
    expect(await complete(['backupctl', 'list', '--profile', ''])).toEqual(['app']);
    // Newest id first; two taken in the same second order by their random part.
    expect(await complete(['backupctl', 'show', ''])).toEqual(appIds());
  });

  it('bash: the command is found after global options that take a value (--opt VALUE, --opt=VALUE, which bash splits at "=")', async () => {
    const file = await script('bash');
    const complete = (words: string[]) => bashComplete(file, words);
    expect(await complete(['backupctl', '--profile', 'app', 'ver'])).toEqual(['verify']);
    expect(await complete(['backupctl', '--profile', 'app', ''])).toContain('show');
    expect(await complete(['backupctl', '--profile', 'app', 'show', ''])).toEqual(appIds());
    expect(await complete(['backupctl', '--config', 'backupctl.config.json', 'show', ''])).toEqual(appIds());
    expect(await complete(['backupctl', '--storage', storage, 'show', ''])).toEqual(appIds());
    expect(await complete(['backupctl', '--log-format', 'json', 'show', ''])).toEqual(appIds());
    expect(await complete(['backupctl', '--log-format', 'json', 'verify', '--level', ''])).toEqual(['checksum', 'archive', 'restore']);
    expect(await complete(['backupctl', '-v', '--log-format', '=', 'json', '--db-url', 'postgres://x/y', 'show', '--t'])).toEqual(['--tag']);
    expect(await complete(['backupctl', '--log-format=json', 'show', ''])).toEqual(appIds());
    // The value after "=": `--log-format=<TAB>`, `--log-format=t<TAB>`.
    expect(await complete(['backupctl', '--log-format', '='])).toEqual(['text', 'json']);
    expect(await complete(['backupctl', 'show', '--log-format', '=', 't'])).toEqual(['text']);
  });

  it('bash: ids, tags and profiles follow the line\'s --config, --storage and --profile, before or after the command', async () => {
    const file = await script('bash');
    const complete = (words: string[]) => bashComplete(file, words);
    expect(await complete(['backupctl', '--config', billingConfig, 'show', ''])).toEqual(billingIds);
    expect(await complete(['backupctl', 'show', '--config', billingConfig, ''])).toEqual(billingIds);
    expect(await complete(['backupctl', '--storage', billingStorage, 'show', ''])).toEqual(billingIds);
    expect(await complete(['backupctl', 'show', '--storage', '=', billingStorage, ''])).toEqual(billingIds);
    expect(await complete(['backupctl', 'show', '--config', billingConfig, '--profile', 'billing', ''])).toEqual(['latest', billingId]);
    expect(await complete(['backupctl', '--config', '=', billingConfig, '--profile', '=', 'billing', 'show', ''])).toEqual(['latest', billingId]);
    expect(await complete(['backupctl', `--config=${billingConfig}`, 'delete', '--profile=billing', ''])).toEqual(['latest', billingId]);
    expect(await complete(['backupctl', '--config', billingConfig, 'list', '--tag', ''])).toEqual(['monthly']);
    // Profiles: those of the line's config and storage (its --profile, being completed, aside).
    expect(await complete(['backupctl', '--config', billingConfig, 'list', '--profile', ''])).toEqual(['app', 'billing']);
    expect(await complete(['backupctl', '--profile', 'app', '--storage', billingStorage, 'list', '--profile', ''])).toEqual(['app', 'billing']);
    // A value is handed over as one word, never evaluated.
    expect(await complete(['backupctl', '--config', '$(touch pwned)', 'show', ''])).toEqual(['latest']);
    expect(existsSync(path.join(dir, 'pwned'))).toBe(false);
  });

  it('bash: file names for the file options of every command (one option defined differently by two commands)', async () => {
    const file = await script('bash');
    const complete = (words: string[]) => bashComplete(file, words);
    for (const command of ['create', 'rekey']) expect(await complete(['backupctl', command, '--recipients-file', 'recip']), command).toEqual(['recipients.txt']);
    for (const command of ['create', 'verify', 'restore', 'rekey']) {
      expect(await complete(['backupctl', command, '--passphrase-file', 'recip']), command).toEqual(['recipients.txt']);
    }
    expect(await complete(['backupctl', 'status', '--prometheus', 'recip'])).toEqual(['recipients.txt']);
    // A name with a space is one candidate; --config and --storage complete paths too.
    await mkdir(path.join(dir, 'conf dir'), { recursive: true });
    await writeFile(path.join(dir, 'conf dir', 'my config.json'), '{}');
    expect(await complete(['backupctl', '--config', 'conf'])).toEqual(['conf dir']);
    expect(await complete(['backupctl', 'list', '--config', 'conf dir/my'])).toEqual(['conf dir/my config.json']);
    expect(await complete(['backupctl', '--storage', 'conf'])).toEqual(['conf dir']);
  });

  it('fish: the same, through complete -C', async () => {
    const file = await script('fish');
    const result = await execa('fish', ['-c', `source '${file}'; complete -C 'backupctl ver'; complete -C 'backupctl prune --keep-t'`], { cwd: dir, env: shellEnv(), extendEnv: false });
    expect(String(result.stdout)).toMatch(/^verify\t/m);
    expect(String(result.stdout)).toMatch(/^--keep-tag\t/m);
  });

  it('fish: ids newest first and "latest" first, as backupctl lists them (not sorted by fish)', async () => {
    const file = await script('fish');
    expect(await fishComplete(file, 'backupctl show ')).toEqual(appIds());
  });

  it('fish: ids, tags and profiles follow the line\'s --config, --storage and --profile', async () => {
    const file = await script('fish');
    expect(await fishComplete(file, `backupctl --config ${billingConfig} show `)).toEqual(billingIds);
    expect(await fishComplete(file, `backupctl show --storage '${billingStorage}' `)).toEqual(billingIds);
    expect(await fishComplete(file, `backupctl show --config ${billingConfig} --profile billing `)).toEqual(['latest', billingId]);
    expect(await fishComplete(file, `backupctl --config=${billingConfig} show --profile=billing `)).toEqual(['latest', billingId]);
    expect(await fishComplete(file, `backupctl --config ${billingConfig} list --tag `)).toEqual(['monthly']);
    expect(await fishComplete(file, `backupctl --storage ${billingStorage} list --profile `)).toEqual(['app', 'billing']);
    expect(await fishComplete(file, `backupctl --config '$(touch pwned)' show `)).toEqual(['latest']);
    // Command names after a global option's value (not taken for the command).
    expect(await fishComplete(file, `backupctl --profile billing ver`)).toEqual(['verify']);
    expect(await fishComplete(file, `backupctl --profile billing show ver`)).toEqual([]);
    expect(existsSync(path.join(dir, 'pwned'))).toBe(false);
  });

  it('fish: file names for the file options of create, rekey and verify', async () => {
    const file = await script('fish');
    for (const line of ['create --recipients-file', 'create --passphrase-file', 'rekey --recipients-file', 'verify --passphrase-file']) {
      expect(await fishComplete(file, `backupctl ${line} recip`), line).toEqual(['recipients.txt']);
    }
  });

  it('zsh: ids, tags and profiles follow the line\'s --config, --storage and --profile (unquoted), before or after the command', async () => {
    const file = await script('zsh');
    const complete = (line: string) => zshComplete(file, line);
    expect(await complete('backupctl show ')).toEqual([...appIds().slice(1), 'latest']);
    expect(await complete(`backupctl --config ${billingConfig} show `)).toEqual([...billingIds.slice(1), 'latest']);
    expect(await complete(`backupctl show --storage "${billingStorage}" `)).toEqual([...billingIds.slice(1), 'latest']);
    expect(await complete(`backupctl --config ${billingConfig} show --profile billing `)).toEqual([billingId, 'latest']);
    expect(await complete(`backupctl --config=${billingConfig} --profile=billing show `)).toEqual([billingId, 'latest']);
    expect(await complete(`backupctl --config ${billingConfig} list --tag `)).toEqual(['monthly']);
    expect(await complete(`backupctl --storage ${billingStorage} list --profile `)).toEqual(['app', 'billing']);
    expect(await complete(`backupctl --config '$(touch pwned)' show `)).toEqual(['latest']);
    expect(existsSync(path.join(dir, 'pwned'))).toBe(false);
  });

  it('zsh: file names for the file options of create and rekey', async () => {
    const text = await readFile(await script('zsh'), 'utf8');
    for (const [command, option] of [['create', 'recipients-file'], ['create', 'passphrase-file'], ['rekey', 'recipients-file']]) {
      const arm = text.slice(text.indexOf(`\n    ${command})`), text.indexOf(' ;;', text.indexOf(`\n    ${command})`)));
      expect(arm, `${command} --${option}`).toMatch(new RegExp(`'--${option}=\\[[^']*\\]:file:_files'`));
    }
  });

  it('zsh: values come from backupctl whatever compadd options _arguments puts before the action words', async () => {
    const file = await script('zsh');
    // The script's value helper alone (its last line would start completing), with compadd
    // replaced by one that prints what it was given.
    const helper = `source <(sed -n '/^_backupctl_values()/,/^}/p' '${file}'); compadd() { print -r -- "options: \${@[1,-3]}"; print -rl -- "\${values[@]}" }`;
    const result = await execa('zsh', ['-c', `${helper}; _backupctl_values -J -default- -X '%Bbackup%b' ids latest; _backupctl_values profiles`], {
      cwd: dir,
      env: shellEnv(),
      extendEnv: false,
    });
    const lines = String(result.stdout).split('\n').filter(Boolean);
    const known = (await execa('backupctl', ['completion', '--values', 'ids'], { cwd: dir, env: shellEnv(), extendEnv: false })).stdout.split('\n').filter(Boolean);
    expect(known.length).toBeGreaterThan(0);
    expect(lines).toEqual(['options: -J -default- -X %Bbackup%b', ...known, 'latest', 'options: ', 'app']);
  });

  it('zsh: the script parses, and defines every command', async () => {
    const file = await script('zsh');
    await execa('zsh', ['-n', file]);
    const text = await readFile(file, 'utf8');
    for (const command of ['create', 'list', 'verify', 'restore', 'prune', 'delete', 'check', 'completion']) expect(text).toContain(`'${command}:`);
  });

  it('an unknown shell is exit 2', async () => {
    expect((await cli(['completion', 'tcsh'])).code).toBe(2);
  });
});
