/**
 * An upgrade rehearsal: last night's backup, taken from this machine's PostgreSQL, verified
 * by restore on a server of a newer major version (the embedded PostgreSQL 18 binaries,
 * test/helpers/embedded-postgres.ts), and restored there. pg_restore must be as new as the
 * dump, not as the server.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backUpSamples, makeTempDir, parseJsonStdout, removeDirs } from '../helpers/backups.js';
import { baseEnv, runCli } from '../helpers/cli.js';
import type { Cluster } from '../helpers/cluster.js';
import { startEmbeddedCluster } from '../helpers/embedded-postgres.js';
import { connectProvided, uniqueName } from '../helpers/pg.js';

const cluster = connectProvided();
const dbs = { chinook: uniqueName('upg_chinook'), tricky: uniqueName('upg_tricky') };
const dirs: string[] = [];
let newer: Cluster;
let work: string;
let storage: string;
let ids: { chinook: string; tricky: string };

const cli = (args: string[]) => runCli([...args, '--storage', storage], { env: baseEnv(cluster.env(dbs.chinook)), cwd: work });
const newerUrl = () => `postgres://postgres@127.0.0.1:${newer.port}/postgres`;

beforeAll(async () => {
  work = await makeTempDir('upgrade');
  dirs.push(work);
  storage = path.join(work, 'backups');
  // Same password as the source cluster: the verify server's comes from the same place (PGPASSWORD here).
  [newer] = await Promise.all([
    startEmbeddedCluster({ name: 'upgrade', password: cluster.password }),
    backUpSamples(cluster, dbs, storage, work).then((made) => {
      ids = made;
    }),
  ]);
});

afterAll(async () => {
  await newer?.stop();
  await Promise.all(Object.values(dbs).map((db) => cluster.dropDatabase(db)));
  await removeDirs(dirs);
});

describe('a newer major version as the verify or restore server', () => {
  it('the newer server is really newer', () => {
    expect(newer.majorVersion).toBeGreaterThan(cluster.majorVersion);
  });

  it('verify --verify-url on the newer server passes (custom format), with the pg_restore of the dump', async () => {
    const run = await cli(['verify', ids.chinook, '--verify-url', newerUrl(), '--json']);
    expect(run.code, run.stderr).toBe(0);
    const outcome = (parseJsonStdout(run.stdout) as { outcomes: Array<{ result: string; serverVersion: string }> }).outcomes[0];
    expect(outcome).toMatchObject({ result: 'passed', serverVersion: expect.stringMatching(new RegExp(`^${newer.majorVersion}\\.`)) });
  });

  it('verify on the newer server passes for a directory-format backup of the tricky fixture, with --jobs 2', async () => {
    const run = await cli(['verify', ids.tricky, '--verify-url', newerUrl(), '--jobs', '2']);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`restored on PostgreSQL ${newer.majorVersion}\\.`));
  });

  it('restore --target-url into the newer server works, and the data is there', async () => {
    const target = uniqueName('upg_restored');
    const run = await cli(['restore', ids.chinook, '--target-url', newerUrl(), '--target-db', target, '--create']);
    expect(run.code, run.stderr).toBe(0);
    expect(await newer.query(target, 'select count(*)::int as n from public.track')).toEqual([{ n: 3503 }]);
  });
});
