/**
 * Exactness under load: while pgbench writes to the database, `create` must dump and
 * count one and the same snapshot. Restoring the artifact must give, for every table,
 * exactly the row count recorded in the sidecar, although pgbench_history keeps growing
 * during the whole run.
 */
import { execa, type ResultPromise } from 'execa';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, parseJsonStdout, readSidecar, removeDirs, sourceTables, tableKey } from '../helpers/backups.js';
import { baseEnv, runCli } from '../helpers/cli.js';
import { connectProvided, uniqueName } from '../helpers/pg.js';

const cluster = connectProvided();
const PGBENCH_SECONDS = 15;

const db = uniqueName('consistency');
const restored = uniqueName('consistency_restored');
const dirs: string[] = [];

function pgbenchPath(): string {
  const file = cluster.bin('pgbench');
  if (!existsSync(file)) {
    throw new Error(
      `pgbench not found at ${file}: this test needs it to put the database under load. ` +
        'Install the PostgreSQL contrib/client package of the server version (Debian: apt-get install postgresql-contrib).',
    );
  }
  return file;
}

async function historyRows(database: string): Promise<number> {
  const [row] = await cluster.query<{ n: string }>(database, 'select count(*)::text as n from pgbench_history');
  return Number(row?.n);
}

beforeAll(async () => {
  await cluster.createDatabase(db);
  await execa(pgbenchPath(), ['-i', '-s', '5', '-q', db], { env: cluster.env(db), stdin: 'ignore' });
}, 120_000);

afterAll(async () => {
  await cluster.dropDatabase(db);
  await cluster.dropDatabase(restored);
  await removeDirs(dirs);
});

describe('create under concurrent writes (pgbench)', () => {
  it(
    'records counts of the very snapshot it dumps: a restore matches them exactly',
    async () => {
      const work = await makeTempDir('consistency');
      dirs.push(work);
      const storage = path.join(work, 'storage');

      let bench: ResultPromise | undefined;
      try {
        // -n: no vacuum before the run (that would take locks); -c 4 clients for 15 s.
        bench = execa(pgbenchPath(), ['-n', '-c', '4', '-T', String(PGBENCH_SECONDS), db], {
          env: cluster.env(db),
          stdin: 'ignore',
          reject: false,
        });
        // Let the load start: history grows only while transactions commit.
        const before = await historyRows(db);
        for (let waited = 0; (await historyRows(db)) <= before && waited < 10_000; waited += 100) await sleep(100);
        expect(await historyRows(db), 'pgbench is writing').toBeGreaterThan(before);

        const run = await runCli(['create', '--json', '--no-globals', '--storage', storage], { env: baseEnv(cluster.env(db)), cwd: work });
        expect(run.code, run.stderr).toBe(0);
        const id = (parseJsonStdout(run.stdout) as { id: string }).id;
        const afterCreate = await historyRows(db);

        const benchResult = await bench;
        expect(benchResult.exitCode, String(benchResult.stderr)).toBe(0);
        expect(benchResult.isTerminated).toBe(false);
        const atEnd = await historyRows(db);

        const { sidecar } = await readSidecar(storage, db, id);
        const counts = new Map(sidecar.tables.map((t) => [tableKey(t), t.rows]));
        expect([...counts.keys()].sort()).toEqual([
          'public.pgbench_accounts',
          'public.pgbench_branches',
          'public.pgbench_history',
          'public.pgbench_tellers',
        ]);
        expect(counts.get('public.pgbench_accounts')).toBe(500_000);
        expect(counts.get('public.pgbench_branches')).toBe(5);
        expect(counts.get('public.pgbench_tellers')).toBe(50);
        const historyInBackup = counts.get('public.pgbench_history') ?? -1;
        // The load went on during the backup and after it: the snapshot is a point in between.
        expect(historyInBackup).toBeGreaterThan(before);
        expect(historyInBackup).toBeLessThan(afterCreate);
        expect(atEnd).toBeGreaterThan(historyInBackup);

        // Restore without backupctl (zstd -dc | pg_restore, the cluster's own) and count every table.
        await cluster.createDatabase(restored);
        await execa('zstd', ['-q', '-d', '-c', path.join(storage, db, sidecar.artifact.file)]).pipe(cluster.bin('pg_restore'), ['--no-owner', '--exit-on-error', '-d', restored], {
          env: cluster.env(restored),
        });
        const after = await sourceTables(cluster, restored);
        expect(new Map(after.map((t) => [tableKey(t), t.rows]))).toEqual(counts);
        // The balances still add up: each pgbench transaction is in the snapshot whole, or not at all.
        const [sums] = await cluster.query<{ accounts: string; tellers: string; branches: string; history: string }>(
          restored,
          `select (select sum(abalance) from pgbench_accounts)::text as accounts,
                  (select sum(tbalance) from pgbench_tellers)::text as tellers,
                  (select sum(bbalance) from pgbench_branches)::text as branches,
                  (select coalesce(sum(delta), 0) from pgbench_history)::text as history`,
        );
        expect(sums).toEqual({ accounts: sums?.history, tellers: sums?.history, branches: sums?.history, history: sums?.history });
      } finally {
        if (bench && bench.exitCode === null) bench.kill();
        await bench?.catch(() => undefined);
      }
    },
    (PGBENCH_SECONDS + 90) * 1000,
  );
});
