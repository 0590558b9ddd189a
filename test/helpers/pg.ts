/**
 * Inside test files: this worker's cluster, started by global-setup.ts.
 *
 *   const pg = connectProvided();
 *   await pg.createDatabase('t_backup_1', fixturePath('tricky.sql'));
 *
 * The test files run one after another on a worker share its cluster: use unique
 * database/role names, and leave cluster-wide state (roles, settings) as you found it.
 */
import { inject } from 'vitest';
import { connectCluster, type ClusterClient } from './cluster.js';
import type { ProvidedPg } from './global-setup.js';
import type { ConnectionSettings } from '../../src/pg/connection.js';

export type ProvidedCluster = ClusterClient;

export function connectProvided(): ProvidedCluster {
  const clusters: ProvidedPg[] | undefined = inject('pgClusters');
  if (!clusters?.length) {
    throw new Error('No PostgreSQL cluster was provided: run the tests through vitest.config.ts (globalSetup).');
  }
  const worker = Number(process.env.VITEST_POOL_ID ?? '1');
  const info = clusters[(worker - 1) % clusters.length];
  if (!info) throw new Error(`No PostgreSQL cluster for test worker ${worker}.`);
  return connectCluster(info);
}

/** A database/role name unique to this test run: `${prefix}_<random>` (lowercase, no quoting needed). */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`.toLowerCase();
}

/** backupctl's own connection settings for one of the cluster's databases (for tests that call src/pg directly). */
export function connectionSettings(cluster: Pick<ClusterClient, 'host' | 'port' | 'user' | 'password'>, database: string): ConnectionSettings {
  return {
    host: cluster.host,
    port: cluster.port,
    user: cluster.user,
    database,
    password: cluster.password,
    passwordSource: 'test',
    sslmode: undefined,
    sslrootcert: undefined,
    sslcert: undefined,
    sslkey: undefined,
  };
}
