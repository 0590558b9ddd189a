/**
 * create against a hot standby (a cluster of its own, made with pg_basebackup -R from a
 * primary started here): no session can read an unlogged table during recovery, and
 * pg_dump dumps only the definition of one there. create used to fail counting its rows;
 * now it completes, records no rows for it (what a restore of the archive holds), and
 * warns, naming the unlogged tables (a partition and an inheritance child too). On the
 * primary the same tables are counted, without the warning. verify of the standby's
 * backup (on the primary, the standby being read-only) passes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, parseJsonStdout, readSidecar, removeDirs } from '../helpers/backups.js';
import { baseEnv, runCli } from '../helpers/cli.js';
import { startCluster, startStandby, type Cluster } from '../helpers/cluster.js';

const DB = 'standby_src';
let primary: Cluster;
let standby: Cluster;
let work: string;

beforeAll(async () => {
  work = await makeTempDir('standby');
  primary = await startCluster({ name: 'primary' });
  await primary.createDatabase(DB);
  await primary.query(
    DB,
    `CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 100);
     CREATE UNLOGGED TABLE unl (x int); INSERT INTO unl SELECT generate_series(1, 5);
     CREATE TABLE p (x int) PARTITION BY RANGE (x);
     CREATE TABLE p_log PARTITION OF p FOR VALUES FROM (0) TO (100);
     CREATE UNLOGGED TABLE p_unl PARTITION OF p FOR VALUES FROM (100) TO (200);
     INSERT INTO p SELECT generate_series(1, 150);
     CREATE TABLE parent (x int); INSERT INTO parent VALUES (1), (2);
     CREATE UNLOGGED TABLE child_unl () INHERITS (parent); INSERT INTO child_unl VALUES (3), (4), (5);
     CHECKPOINT`,
  );
  const started = performance.now();
  standby = await startStandby(primary, { name: 'standby' });
  console.log(`standby built and started in ${Math.round(performance.now() - started)} ms`);
}, 120_000);

afterAll(async () => {
  await standby?.stop();
  await primary?.stop();
  await removeDirs([work]);
});

async function create(cluster: Cluster, profile: string) {
  const run = await runCli(['create', '--json', '--storage', `${work}/backups`, '--profile', profile], { env: baseEnv(cluster.env(DB)), cwd: work });
  expect(run.code, run.stderr).toBe(0);
  const out = parseJsonStdout(run.stdout) as { id: string; warnings: string[] };
  const { sidecar } = await readSidecar(`${work}/backups`, profile, out.id);
  return { run, out, counts: Object.fromEntries(sidecar.tables.map((table) => [table.name, table.rows])) };
}

describe('create on a hot standby', () => {
  it('on the primary, unlogged tables are counted and nothing is said of them', async () => {
    const { run, out, counts } = await create(primary, 'on_primary');
    expect(counts).toEqual({ t: 100, unl: 5, p_log: 99, p_unl: 51, parent: 2, child_unl: 3 });
    expect(out.warnings.filter((warning) => /unlogged/.test(warning))).toEqual([]);
    expect(run.stderr).not.toMatch(/unlogged/);
  });

  it('on the standby: completes, records no rows of the unlogged tables, warns naming them; verify passes', async () => {
    const [recovery] = await standby.query<{ r: boolean }>(DB, 'SELECT pg_is_in_recovery() AS r');
    expect(recovery?.r).toBe(true);
    const { run, out, counts } = await create(standby, 'on_standby');
    // The archive holds no data of an unlogged table: the sidecar lists the tables whose data it holds.
    expect(counts).toEqual({ t: 100, p_log: 99, parent: 2 });
    const warning = out.warnings.find((text) => /unlogged tables have no rows on a standby: pg_dump dumps their definition only/.test(text));
    expect(warning).toBeDefined();
    for (const table of ['public.unl', 'public.p_unl', 'public.child_unl']) expect(warning).toContain(table);
    expect(run.stderr).toContain('unlogged tables have no rows on a standby');

    // Restored (on the primary: the standby is read-only), the unlogged tables are there, empty.
    const verified = await runCli(['verify', 'latest', '--storage', `${work}/backups`, '--profile', 'on_standby', '--verify-url', `postgres://postgres@127.0.0.1:${primary.port}/postgres`], {
      env: baseEnv({ ...standby.env(DB), PGPASSWORD: primary.password }),
      cwd: work,
    });
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  });
});
