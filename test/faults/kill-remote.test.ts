/**
 * Fault injection on S3 (s3rver): `kill -9` of the built binary while `rekey` and `copy`
 * upload the new file, and of `create --jobs 2` while it uploads the artifact. The kill
 * point is an event, not a delay: s3rver holds a multipart upload of the file being
 * written (so the payload is over one part). Afterwards the sidecar still names complete
 * files that its recorded keys open (the only readable copy is never lost), nothing of
 * the killed run is listed, the next run of the same command succeeds without `unlock`,
 * and `prune --leftover-age` removes the incomplete upload.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatIdentityFile, generateIdentity } from '../../src/pipeline/age/index.js';
import { baseEnv, runBin, spawnBin as startBin } from '../helpers/cli.js';
import { fillRandomText, killedAfterEach, scratchSetup, tempDir, waitFor, writeConfig } from '../helpers/failure-kit.js';
import { startS3rver, uniquePrefix, type S3rverServer } from '../helpers/storage-servers.js';

const scratch = scratchSetup('kill_remote', {
  built: true,
  // Random text: about 12 MB compressed, over s3rver's (and the driver's) 8 MiB part.
  seed: () => fillRandomText(scratch.cluster, scratch.db, 'payload', 24),
});
const { cluster } = scratch;

let server: S3rverServer;
const keys = { old: generateIdentity(), added: generateIdentity() };
let oldKey: string;
const s3url = (prefix: string) => `s3://${server.bucket}/${prefix}?endpoint=${server.endpoint}&region=us-east-1&path-style=true`;

beforeAll(async () => {
  server = await startS3rver();
  oldKey = path.join(await tempDir('kill-remote-keys'), 'old.key');
  await writeFile(oldKey, formatIdentityFile(keys.old.identity), { mode: 0o600 });
});
afterAll(async () => {
  await server?.stop();
});

const running = killedAfterEach();

function env(): Record<string, string> {
  return baseEnv({ HOME: scratch.cwd, ...cluster.env(scratch.db), AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey }) as Record<string, string>;
}

async function bin(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runBin(args, { env: env(), cwd: scratch.cwd });
}

/** An encrypted profile `app` on a fresh prefix, with one backup: its config and the backup's id. */
async function encryptedProfile(label: string): Promise<{ config: string; prefix: string; id: string }> {
  const prefix = uniquePrefix(label);
  const config = await writeConfig(await tempDir(`kill-remote-${label}`), {
    storage: s3url(prefix),
    profiles: { app: { database: scratch.db, encryption: { recipients: [keys.old.recipient.toString()], identityFile: oldKey } } },
  });
  const made = await bin(['create', '--config', config, '--json']);
  expect(made.code, made.stderr).toBe(0);
  return { config, prefix, id: (JSON.parse(made.stdout) as { id: string }).id };
}

/** Starts the binary and SIGKILLs it once s3rver holds a multipart upload of `key`. */
async function killDuringUpload(args: string[], key: string): Promise<void> {
  const run = startBin(args, { env: env(), cwd: scratch.cwd, running });
  await waitFor(
    async () => run.child.exitCode !== null || (await server.incompleteUploads(key)).length > 0,
    `the multipart upload of ${key} to begin`,
    30_000,
    20,
  );
  expect(run.child.exitCode, `the run ended before its upload began:\n${run.stderr()}`).toBeNull();
  run.child.kill('SIGKILL');
  await run.done;
}

/** What `list --json` shows of the storage, by id, with the recorded file of each. */
async function listed(config: string): Promise<Array<{ id: string }>> {
  const out = await bin(['list', '--config', config, '--json']);
  expect(out.code, out.stderr).toBe(0);
  return JSON.parse(out.stdout) as Array<{ id: string }>;
}

describe('kill -9 on S3 while the new file is uploaded', () => {
  it('rekey: the sidecar still names the old file, which the old key opens; the next rekey takes over the lock; prune removes the upload', async () => {
    const { config, prefix, id } = await encryptedProfile('rekey');
    const shown = JSON.parse((await bin(['show', id, '--config', config, '--json'])).stdout) as { artifact: { file: string } };
    const rekey = ['rekey', id, '--config', config, '--add-recipient', keys.added.recipient.toString()];
    await killDuringUpload(rekey, `${prefix}/app/${id}.k1.dump`);

    expect((await listed(config)).map((b) => b.id)).toEqual([id]);
    const after = JSON.parse((await bin(['show', id, '--config', config, '--json'])).stdout) as { artifact: { file: string } };
    expect(after.artifact.file).toBe(shown.artifact.file);
    const checksum = await bin(['verify', id, '--config', config, '--level', 'checksum']);
    expect(checksum.code, checksum.stderr).toBe(0);
    const opened = await bin(['verify', id, '--config', config, '--level', 'archive', '--identity', oldKey]);
    expect(opened.code, opened.stderr).toBe(0);

    const again = await bin(rekey);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/took over the stale lock of profile "app"/);
    const rekeyed = await bin(['verify', id, '--config', config, '--level', 'archive']);
    expect(rekeyed.code, rekeyed.stderr).toBe(0);

    expect(await server.incompleteUploads(`${prefix}/`)).not.toEqual([]);
    const pruned = await bin(['prune', '--config', config, '--keep-last', '5', '--leftover-age', '1s']);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(await server.incompleteUploads(`${prefix}/`)).toEqual([]);
    expect((await listed(config)).map((b) => b.id)).toEqual([id]);
  });

  it('copy --to: the destination lists nothing of it; the next copy succeeds; prune there removes the upload', async () => {
    const { config, id } = await encryptedProfile('copy-src');
    const destPrefix = uniquePrefix('copy-dst');
    const dest = s3url(destPrefix);
    const copy = ['copy', id, '--config', config, '--to', dest];
    await killDuringUpload(copy, `${destPrefix}/app/${id}.dump`);

    const there = await bin(['list', '--storage', dest, '--all', '--json']);
    expect(there.code, there.stderr).toBe(0);
    expect(JSON.parse(there.stdout)).toEqual([]);
    const again = await bin([...copy, '--json']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    const copied = await bin(['verify', id, '--storage', dest, '--level', 'archive', '--identity', oldKey]);
    expect(copied.code, copied.stderr).toBe(0);

    expect(await server.incompleteUploads(`${destPrefix}/`)).not.toEqual([]);
    const pruned = await bin(['prune', '--storage', dest, '--profile', 'app', '--keep-last', '5', '--leftover-age', '1s']);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(await server.incompleteUploads(`${destPrefix}/`)).toEqual([]);
  });

  it('create --jobs 2: no backup listed; the next create takes over the lock; prune removes the upload', async () => {
    const prefix = uniquePrefix('jobs');
    const config = await writeConfig(await tempDir('kill-remote-jobs'), { storage: s3url(prefix), profiles: { app: { database: scratch.db } } });
    await killDuringUpload(['create', '--config', config, '--jobs', '2'], `${prefix}/app/`);
    expect(await listed(config)).toEqual([]);
    const next = await bin(['create', '--config', config, '--jobs', '2', '--json']);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toMatch(/took over the stale lock of profile "app"/);
    const id = (JSON.parse(next.stdout) as { id: string }).id;
    expect((await listed(config)).map((b) => b.id)).toEqual([id]);
    const checksum = await bin(['verify', '--all', '--config', config, '--level', 'checksum']);
    expect(checksum.code, checksum.stderr).toBe(0);
    const pruned = await bin(['prune', '--config', config, '--keep-last', '5', '--leftover-age', '1s']);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(await server.incompleteUploads(`${prefix}/`)).toEqual([]);
  });
});
