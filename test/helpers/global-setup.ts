/**
 * vitest globalSetup: one throw-away PostgreSQL cluster per test worker.
 *
 * Test files run in parallel (vitest.config.ts), each worker one file at a time, and every
 * worker gets a cluster of its own: files that change cluster-wide state (roles, `restore
 * --globals`, settings) never see each other. A test file gets its worker's cluster with
 * `connectProvided()` from ./pg.ts (vitest numbers its running workers 1..maxWorkers in
 * VITEST_POOL_ID).
 */
import os from 'node:os';
import type { TestProject } from 'vitest/node';
import { startCluster, type ClusterInfo } from './cluster.js';

export type ProvidedPg = ClusterInfo;

declare module 'vitest' {
  export interface ProvidedContext {
    /** Index i is the cluster of the worker whose VITEST_POOL_ID is i + 1. */
    pgClusters: ProvidedPg[];
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // vitest's own default when maxWorkers is unset: cores - 1.
  const workers = Math.max(1, project.globalConfig.maxWorkers ?? os.availableParallelism() - 1);
  const clusters = await Promise.all(
    Array.from({ length: workers }, (_, i) => startCluster({ name: `vitest-w${i + 1}` })),
  );
  project.provide(
    'pgClusters',
    clusters.map((cluster) => ({
      host: cluster.host,
      port: cluster.port,
      user: cluster.user,
      password: cluster.password,
      binDir: cluster.binDir,
      majorVersion: cluster.majorVersion,
      socketDir: cluster.socketDir,
    })),
  );
  return async () => {
    await Promise.all(clusters.map((cluster) => cluster.stop()));
  };
}
