/**
 * `npm run demo`: a guided tour on a throwaway PostgreSQL.
 *
 * Starts a private cluster in a temp directory (127.0.0.1, a free port), loads sample
 * data it generates itself, then runs the real backupctl binary the way an operator
 * would, printing each command before its output. Everything is removed at the end,
 * also on failure or Ctrl-C.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { startCluster, type Cluster } from '../test/helpers/cluster.js';
import { BIN } from '../test/helpers/cli.js';

const SAMPLE_SQL = `
CREATE SCHEMA shop;
CREATE TYPE shop.order_state AS ENUM ('new', 'paid', 'shipped', 'cancelled');
CREATE TABLE shop.customers (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL,
  email text UNIQUE NOT NULL,
  city text
);
CREATE TABLE shop.orders (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES shop.customers(id),
  state shop.order_state NOT NULL DEFAULT 'new',
  total numeric(12,2) NOT NULL,
  placed_at timestamptz NOT NULL
);
SELECT setseed(0.42);
INSERT INTO shop.customers (name, email, city)
  SELECT 'Customer ' || g, 'customer' || g || '@example.test',
         (ARRAY['Lisboa', 'Zürich', 'Kraków', 'Reykjavík', 'Montréal'])[1 + g % 5]
    FROM generate_series(1, 2000) g;
INSERT INTO shop.orders (customer_id, state, total, placed_at)
  SELECT 1 + (random() * 1999)::int,
         (ARRAY['new', 'paid', 'shipped', 'cancelled']::shop.order_state[])[1 + g % 4],
         round((random() * 500)::numeric, 2),
         now() - (g || ' minutes')::interval
    FROM generate_series(1, 50000) g;
`;

function banner(text: string): void {
  process.stdout.write(`\n\x1b[1m== ${text}\x1b[0m\n`);
}

async function main(): Promise<void> {
  let cluster: Cluster | null = null;
  const work = await mkdtemp(join(tmpdir(), 'backupctl-demo-'));
  const cleanup = async () => {
    await cluster?.stop();
    await rm(work, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    banner('starting a throwaway PostgreSQL');
    cluster = await startCluster({ name: 'demo' });
    process.stdout.write(`PostgreSQL ${cluster.majorVersion} on 127.0.0.1:${cluster.port}\n`);
    await cluster.createDatabase('shop');
    const sqlFile = join(work, 'sample.sql');
    await writeFile(sqlFile, SAMPLE_SQL);
    await execa(cluster.bin('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', sqlFile], { env: cluster.env('shop') });
    process.stdout.write('loaded sample data: shop.customers (2,000 rows), shop.orders (50,000 rows)\n');

    // The operator's environment: libpq variables, and a storage directory.
    const env = { ...cluster.env('shop'), BACKUPCTL_STORAGE: join(work, 'backups'), PATH: process.env.PATH ?? '' };
    const backupctl = async (...args: string[]) => {
      process.stdout.write(`\n$ backupctl ${args.join(' ')}\n`);
      const result = await execa(process.execPath, [BIN, ...args], { env, extendEnv: false, reject: false, stdout: 'inherit', stderr: 'inherit' });
      if (result.exitCode !== 0) throw new Error(`backupctl ${args[0]} exited ${result.exitCode}`);
    };

    banner('back up: pg_dump on an exported snapshot, sha256 while streaming, sidecar last');
    await backupctl('create', '--tag', 'nightly', '--note', 'first backup of the demo');
    await backupctl('create', '--tag', 'pre-migration', '--jobs', '2');

    banner('what is there');
    await backupctl('list');
    await backupctl('show', 'latest');

    banner('prove it: restore the newest backup into a throwaway database and compare row counts');
    await backupctl('verify', 'latest');
    await backupctl('verify', '--all', '--level', 'checksum');

    banner('restore: into a new database, then replace the original safely');
    await backupctl('restore', 'latest', '--target-db', 'shop_copy', '--create');
    await backupctl('restore', 'latest', '--tag', 'nightly', '--clean', '--dry-run');
    await backupctl('restore', 'latest', '--tag', 'nightly', '--clean', '--yes');
    await backupctl('list');

    banner('monitoring: status exits 5 when a check is broken, and writes node_exporter metrics');
    const metrics = join(work, 'backupctl.prom');
    await backupctl('status', '--max-age', '25h', '--max-verify-age', '8d', '--min-size-ratio', '0.5', '--prometheus', metrics);
    process.stdout.write(`\n$ grep -v '^#' ${metrics}\n`);
    process.stdout.write((await readFile(metrics, 'utf8')).split('\n').filter((line) => line !== '' && !line.startsWith('#')).join('\n') + '\n');

    banner('retention: prune keeps what the policy says, and never the newest backup');
    await backupctl('create', '--tag', 'nightly');
    await backupctl('prune', '--keep-last', '2', '--keep-tag', 'pre-migration', '--dry-run');
    await backupctl('prune', '--keep-last', '2', '--keep-tag', 'pre-migration');
    await backupctl('list');

    banner('done: the cluster and the backups are removed');
  } finally {
    await cleanup();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${(error as Error).message}\n`);
  process.exit(1);
});
