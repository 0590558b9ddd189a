/**
 * vitest globalSetup: ONE throw-away PostgreSQL cluster for the whole test run.
 * Test files get its connection info with `inject('pg')`, or better a ready-made
 * client with `connectProvided()` from ./pg.ts.
 */
import type { TestProject } from 'vitest/node';
import { startCluster, type ClusterInfo } from './cluster.js';

export type ProvidedPg = ClusterInfo;

declare module 'vitest' {
  export interface ProvidedContext {
    pg: ProvidedPg;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const cluster = await startCluster({ name: 'vitest' });
  const info: ProvidedPg = {
    host: cluster.host,
    port: cluster.port,
    user: cluster.user,
    password: cluster.password,
    binDir: cluster.binDir,
    majorVersion: cluster.majorVersion,
    socketDir: cluster.socketDir,
  };
  project.provide('pg', info);
  return async () => {
    await cluster.stop();
  };
}
