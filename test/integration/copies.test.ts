/**
 * Copies (3-2-1): a profile's `copies` after every create, and `backupctl copy`. A copy is
 * checked at its destination and its sidecar written last there; a failed copy is a
 * warning and a failed run (in the run log and in status), never a failed backup.
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { ResultPromise } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseJsonStdout, readSidecar } from '../helpers/backups.js';
import { baseEnv, runCli, spawnBin, type CliOutcome } from '../helpers/cli.js';
import { scratchSetup, tempDir } from '../helpers/failure-kit.js';
import { sshdUnavailable, startS3rver, startSshd, uniquePrefix, type S3rverServer } from '../helpers/storage-servers.js';

const scratch = scratchSetup('copies', {
  seed: async () => {
    await cluster.query(db, 'create table t (id int primary key, v text); insert into t select g, md5(g::text) from generate_series(1, 2000) g');
  },
});
const { cluster, db } = scratch;

let s3: S3rverServer;
beforeAll(async () => {
  s3 = await startS3rver();
});
afterAll(async () => {
  await s3?.stop();
});

function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliOutcome> {
  return runCli(args, {
    env: baseEnv({ ...cluster.env(db), AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, ...env }),
    cwd: scratch.cwd,
  });
}

const s3url = (prefix: string) => `s3://${s3.bucket}/${prefix}?endpoint=${s3.endpoint}&region=us-east-1&path-style=true`;

describe("a profile's copies", () => {
  it('every new backup is copied to each; a copy that fails is a warning and a failed run in status, never a failed backup', async () => {
    const dir = await tempDir('copies');
    const primary = path.join(dir, 'primary');
    const offsite = path.join(dir, 'offsite');
    const blocked = path.join(dir, 'blocked');
    await writeFile(blocked, 'a file where a directory should be');
    const remote = s3url(uniquePrefix('copies'));
    const config = path.join(dir, 'backupctl.config.json');
    await writeFile(
      config,
      JSON.stringify({
        storage: primary,
        profiles: { app: { host: cluster.host, port: cluster.port, user: cluster.user, database: db, copies: ['offsite', remote, 'blocked'] } },
      }),
    );
    const run = await cli(['create', '--config', config, '--json']);
    expect(run.code, run.stderr).toBe(0);
    const created = parseJsonStdout(run.stdout) as { id: string; warnings: string[]; copies: Array<{ to: string; result: string; error?: string }> };
    expect(created.copies.map((c) => c.result), JSON.stringify(created.copies)).toEqual(['copied', 'copied', 'failed']);
    expect(created.warnings).toEqual([expect.stringMatching(/^could not copy the backup to .*blocked/)]);
    expect(created.copies[0]?.to).toBe(offsite);
    expect(created.copies[1]?.to).not.toContain(s3.secretAccessKey);
    expect(run.stderr).toMatch(/warning: could not copy .* to .*blocked/);

    // The copies are whole backups: listed, verified at every level, from the copy alone.
    const { sidecar } = await readSidecar(primary, 'app', created.id);
    for (const where of [offsite, remote]) {
      const listed = await cli(['list', '--storage', where, '--json']);
      expect((parseJsonStdout(listed.stdout) as Array<{ id: string; artifact: { sha256: string } }>).map((b) => [b.id, b.artifact.sha256])).toEqual([[created.id, sidecar.artifact.sha256]]);
      const verified = await cli(['verify', created.id, '--storage', where, '--level', 'restore']);
      expect(verified.code, verified.stderr).toBe(0);
    }
    // Nothing of it at the failed destination, and no lock or temporary left anywhere.
    expect((await readdir(path.join(offsite, 'app'))).filter((f) => f.startsWith('.') || f === 'lock.json')).toEqual([]);

    // The run log records each destination's copy; status reports the failing one.
    const log = (await readFile(path.join(primary, 'app', 'runs.jsonl'), 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    const copies = log.filter((entry) => entry.command === 'copy');
    expect(copies.map((entry) => [entry.target, entry.result])).toEqual([
      [offsite, 'succeeded'],
      [expect.stringContaining(`s3://${s3.bucket}/`), 'succeeded'],
      [blocked, 'failed'],
    ]);
    const status = await cli(['status', '--config', config, '--json']);
    expect(status.code).toBe(5);
    expect(status.stdout).toMatch(/copy to [^"]*blocked failed/);

    // A successful copy to another destination does not hide it; one to that destination does.
    const again = await cli(['copy', 'latest', '--config', config, '--to', path.join(dir, 'elsewhere')]);
    expect(again.code, again.stderr).toBe(0);
    expect((await cli(['status', '--config', config])).code).toBe(5);
    await writeFile(path.join(dir, 'README'), 'moved the file out of the way');
    const { rm } = await import('node:fs/promises');
    await rm(blocked);
    const fixed = await cli(['copy', 'latest', '--config', config, '--to', blocked]);
    expect(fixed.code, fixed.stderr).toBe(0);
    const healthy = await cli(['status', '--config', config]);
    expect(healthy.code, healthy.stdout).toBe(0);
  });
});

describe('a copy that failed is not forgotten', () => {
  it('status keeps it standing per backup after a later copy succeeds, until the next create catches it up (only what a create was to copy)', async () => {
    const dir = await tempDir('catch-up');
    const primary = path.join(dir, 'primary');
    const offsite = path.join(dir, 'offsite');
    const { rm } = await import('node:fs/promises');
    const config = path.join(dir, 'backupctl.config.json');
    const writeConfig = (copies: string[]) =>
      writeFile(config, JSON.stringify({ storage: primary, profiles: { app: { host: cluster.host, port: cluster.port, user: cluster.user, database: db, copies } } }));
    type Created = { id: string; warnings: string[]; copies: Array<{ to: string; result: string; caughtUp?: Array<{ id: string; result: string }> }> };
    const create = async () => {
      const made = await cli(['create', '--config', config, '--json']);
      expect(made.code, made.stderr).toBe(0);
      return parseJsonStdout(made.stdout) as Created;
    };
    // Made before the profile copied anywhere: no create was to copy it, none catches it up.
    await writeConfig([]);
    const before = await create();
    await writeConfig([offsite]);
    // The destination fails (a file where its directory should be) for two creates.
    await writeFile(offsite, 'in the way');
    const first = await create();
    const second = await create();
    expect([first.copies[0]?.result, second.copies[0]?.result]).toEqual(['failed', 'failed']);
    await rm(offsite);
    // A later good copy of another backup settles the failed runs, not the backup left behind.
    const other = await cli(['copy', second.id, '--config', config, '--to', offsite]);
    expect(other.code, other.stderr).toBe(0);
    const status = await cli(['status', '--config', config, '--json', '--prometheus', path.join(dir, 'm.prom')]);
    expect(status.code, status.stdout).toBe(5);
    const [app] = (parseJsonStdout(status.stdout) as { profiles: Array<{ uncopied: unknown[]; failedRunsSinceSuccess: number; problems: Array<{ check: string; message: string }> }> }).profiles;
    expect(app?.failedRunsSinceSuccess).toBe(0);
    expect(app?.uncopied).toEqual([{ backupId: first.id, to: offsite }]);
    expect(app?.problems).toEqual([{ check: 'failures', message: expect.stringContaining(`backup ${first.id} was never copied to ${offsite}`) }]);
    expect(await readFile(path.join(dir, 'm.prom'), 'utf8')).toContain('backupctl_uncopied_backups{profile="app"} 1\n');

    // The next create copies its own backup and catches the first up, in one copy run.
    const third = await create();
    expect(third.copies).toEqual([{ to: offsite, result: 'copied', caughtUp: [{ id: first.id, result: 'copied' }] }]);
    const listed = await cli(['list', '--storage', offsite, '--json']);
    expect((parseJsonStdout(listed.stdout) as Array<{ id: string }>).map((b) => b.id).sort()).toEqual([first.id, second.id, third.id].sort());
    expect(listed.stdout).not.toContain(before.id);
    const healthy = await cli(['status', '--config', config]);
    expect(healthy.code, healthy.stdout).toBe(0);
    // The run log records which backups each copy run left at its destination.
    const log = (await readFile(path.join(primary, 'app', 'runs.jsonl'), 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { command: string; copied?: string[] });
    expect(log.filter((entry) => entry.command === 'copy').map((entry) => entry.copied)).toEqual([undefined, undefined, [second.id], [third.id, first.id]]);
  });
});

describe('a run killed while copying', () => {
  const running = new Set<ResultPromise>();
  let silent: Server | null = null;
  afterEach(() => {
    for (const child of running) child.kill('SIGKILL');
  });
  afterAll(() => silent?.close());

  it('status names the destination the newest backup never reached, until the next create catches it up; a destination that cannot be opened is a failed copy run', async () => {
    // A "store" that accepts connections and never answers: the copy hangs, as to a hung server.
    const sockets = new Set<Socket>();
    silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.resume();
    });
    await new Promise<void>((resolve) => silent?.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    const dir = await tempDir('killed-copy');
    const primary = path.join(dir, 'primary');
    const offsite = path.join(dir, 'offsite');
    const config = path.join(dir, 'backupctl.config.json');
    const writeConfig = (copies: string[]) =>
      writeFile(config, JSON.stringify({ storage: primary, profiles: { app: { host: cluster.host, port: cluster.port, user: cluster.user, database: db, copies } } }));
    const prefix = uniquePrefix('killed');
    const place = `s3://${s3.bucket}/${prefix}`;
    await writeConfig([`${place}?endpoint=http://127.0.0.1:${port}&region=us-east-1&path-style=true`]);
    const env = baseEnv({ ...cluster.env(db), AWS_ACCESS_KEY_ID: 'key', AWS_SECRET_ACCESS_KEY: 'secret' }) as Record<string, string>;
    const create = spawnBin(['create', '--config', config], { env, cwd: scratch.cwd, running });
    // The backup is complete and its run recorded before the copies start: killed then.
    const runlog = path.join(primary, 'app', 'runs.jsonl');
    const deadline = Date.now() + 60_000;
    while (!(await readFile(runlog, 'utf8').catch(() => '')).includes('"command":"create"')) {
      expect(Date.now(), create.stderr()).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    create.child.kill('SIGKILL');
    await create.done;

    const status = await cli(['status', '--config', config, '--json']);
    expect(status.code, status.stdout).toBe(5);
    const report = parseJsonStdout(status.stdout) as { profiles: Array<{ lastBackup: { id: string }; uncopied: unknown[]; problems: Array<{ check: string; message: string }> }> };
    const [app] = report.profiles;
    expect(app?.uncopied).toEqual([{ backupId: app?.lastBackup.id, to: place }]);
    expect(app?.problems).toEqual([{ check: 'failures', message: expect.stringContaining(`was never copied to ${place}`) }]);

    // What the run meant to do is what is checked: a destination the config names since is not.
    await writeConfig([offsite]);
    const still = await cli(['status', '--config', config]);
    expect(still.stdout).toContain(`never copied to ${place}`);
    expect(still.stdout).not.toMatch(/never copied to .*offsite/);
    // The store back (here on another endpoint: the same place): the next create copies its
    // own backup and catches up the one the killed run never copied.
    const killedId = app?.lastBackup.id;
    await writeConfig([s3url(prefix)]);
    const next = await cli(['create', '--config', config, '--json']);
    expect(next.code, next.stderr).toBe(0);
    const nextJson = parseJsonStdout(next.stdout) as { copies: Array<{ result: string; caughtUp?: Array<{ id: string; result: string }> }> };
    expect(nextJson.copies).toEqual([expect.objectContaining({ result: 'copied', caughtUp: [{ id: killedId, result: 'copied' }] })]);
    const healthy = await cli(['status', '--config', config]);
    expect(healthy.code, healthy.stdout).toBe(0);

    // A destination that cannot be opened at all fails its copy run like any other failure.
    await writeConfig(['s3://x/app?region=us-east-1']);
    const made = await cli(['create', '--config', config]);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stderr).toMatch(/warning: could not copy .* to s3:\/\/x\/app/);
    const broken = await cli(['status', '--config', config]);
    expect(broken.code).toBe(5);
    expect(broken.stdout).toMatch(/copy to s3:\/\/x\/app\S* failed .*bucket name "x" is not valid/);
    for (const socket of sockets) socket.destroy();
  });
});

describe('a bucket shared with other things', () => {
  it('list and status take only folders holding something of backupctl\'s for profiles, and write nothing into the others', async () => {
    const remote = s3url(uniquePrefix('shared'));
    const made = await cli(['create', '--storage', remote, '--json']);
    expect(made.code, made.stderr).toBe(0);
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey });
    const { openStorage } = await import('../../src/storage/registry.js');
    const storage = openStorage(remote, '/');
    try {
      await storage.putBytes('photos/cat.jpg', Buffer.from('jpg'));
      const listed = await cli(['list', '--storage', remote, '--json']);
      expect(listed.code, listed.stderr).toBe(0);
      expect((parseJsonStdout(listed.stdout) as Array<{ profile: string }>).map((b) => b.profile)).toEqual([db]);
      const status = await cli(['status', '--storage', remote, '--max-age', '1h', '--json']);
      expect(status.code, status.stdout).toBe(0);
      expect((parseJsonStdout(status.stdout) as { profiles: Array<{ profile: string }> }).profiles.map((p) => p.profile)).toEqual([db]);
      expect((await storage.list('photos')).map((object) => object.key)).toEqual(['photos/cat.jpg']);
    } finally {
      await storage.close();
    }
  });
});

describe.skipIf(sshdUnavailable() !== null)('an SFTP directory shared with other things, read by a user who may not write', () => {
  it('list and status list the profile, write nothing, and fail nothing', async () => {
    const server = await startSshd();
    try {
      const dir = path.join(server.root, uniquePrefix('shared'));
      const made = await cli(['create', '--storage', dir, '--json']);
      expect(made.code, made.stderr).toBe(0);
      const { mkdir } = await import('node:fs/promises');
      await mkdir(path.join(dir, 'photos'));
      await writeFile(path.join(dir, 'photos', 'cat.jpg'), 'jpg');
      const before = (await readdir(dir, { recursive: true })).sort();
      const url = `sftp://${server.user}@127.0.0.1:${server.port}${dir}?key=${server.readOnlyKeyFile}&known-hosts=${server.knownHostsFile}&agent=none`;
      for (let i = 0; i < 2; i++) {
        const listed = await cli(['list', '--storage', url, '--json']);
        expect(listed.code, listed.stderr).toBe(0);
        expect((parseJsonStdout(listed.stdout) as Array<{ profile: string }>).map((b) => b.profile)).toEqual([db]);
        const status = await cli(['status', '--storage', url, '--max-age', '1h', '--json']);
        expect(status.code, status.stdout + status.stderr).toBe(0);
        expect((parseJsonStdout(status.stdout) as { profiles: Array<{ profile: string }> }).profiles.map((p) => p.profile)).toEqual([db]);
      }
      expect((await readdir(dir, { recursive: true })).sort()).toEqual(before);
    } finally {
      await server.stop();
    }
  });
});

describe('backupctl copy', () => {
  it('copies what is missing, skips what is there, refuses to overwrite another backup under the same id', async () => {
    const dir = await tempDir('copy');
    const source = path.join(dir, 'source');
    const target = path.join(dir, 'target');
    const create = async () => {
      const made = await cli(['create', '--storage', source, '--json']);
      expect(made.code, made.stderr).toBe(0);
      return (parseJsonStdout(made.stdout) as { id: string }).id;
    };
    const first = await create();
    const second = await create();
    const one = await cli(['copy', first, '--storage', source, '--to', target, '--json']);
    expect(one.code, one.stderr).toBe(0);
    const dry = await cli(['copy', '--all', '--storage', source, '--to', target, '--dry-run', '--json']);
    expect((parseJsonStdout(dry.stdout) as { backups: Array<{ id: string; result: string }> }).backups.map((b) => [b.id, b.result])).toEqual([
      [first, 'present'],
      [second, 'planned'],
    ]);
    const all = await cli(['copy', '--all', '--storage', source, '--to', target, '--json']);
    expect(all.code, all.stderr).toBe(0);
    expect((parseJsonStdout(all.stdout) as { backups: Array<{ result: string }> }).backups.map((b) => b.result)).toEqual(['present', 'copied']);

    // Another backup under the same id at the destination is never overwritten.
    const file = path.join(target, db, `${second}.json`);
    const json = JSON.parse(await readFile(file, 'utf8')) as { artifact: { sha256: string } };
    json.artifact.sha256 = '0'.repeat(64);
    await writeFile(file, JSON.stringify(json));
    const clash = await cli(['copy', second, '--storage', source, '--to', target]);
    expect(clash.code).toBe(1);
    expect(clash.stdout + clash.stderr).toMatch(/refusing to overwrite/);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(json);
  });

  it('a source artifact that is not what its sidecar says is not copied (exit 3: corrupt; nothing left at the destination)', async () => {
    const dir = await tempDir('copy-bad');
    const source = path.join(dir, 'source');
    const target = path.join(dir, 'target');
    const made = await cli(['create', '--storage', source, '--json']);
    const id = (parseJsonStdout(made.stdout) as { id: string }).id;
    const { sidecar } = await readSidecar(source, db, id);
    const artifact = path.join(source, db, sidecar.artifact.file);
    const bytes = await readFile(artifact);
    bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] as number) ^ 0xff;
    await writeFile(artifact, bytes);
    const run = await cli(['copy', id, '--storage', source, '--to', target]);
    expect(run.code).toBe(3);
    expect(run.stdout + run.stderr).toMatch(/not what its sidecar says: .*sha256/);
    expect((await readdir(path.join(target, db)).catch(() => [])).filter((f) => f.startsWith(id))).toEqual([]);
  });

  it('needs --to, and another storage than the source', async () => {
    expect((await cli(['copy', 'latest'])).code).toBe(2);
    const storage = await tempDir('same');
    await cli(['create', '--storage', storage]);
    const same = await cli(['copy', 'latest', '--storage', storage, '--to', storage]);
    expect(same.code).toBe(2);
  });
});
