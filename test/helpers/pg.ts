/**
 * Inside test files: the cluster started by global-setup.ts.
 *
 *   const pg = connectProvided();
 *   await pg.createDatabase('t_backup_1', fixturePath('tricky.sql'));
 *
 * Every test file shares the cluster: use unique database/role names.
 */
import { inject } from 'vitest';
import { connectCluster, type ClusterClient } from './cluster.js';
import type { ProvidedPg } from './global-setup.js';

export type ProvidedCluster = ClusterClient;

export function connectProvided(): ProvidedCluster {
  const info: ProvidedPg | undefined = inject('pg');
  if (!info) {
    throw new Error('No PostgreSQL cluster was provided: run the tests through vitest.config.ts (globalSetup).');
  }
  return connectCluster(info);
}

/** A database/role name unique to this test run: `${prefix}_<random>` (lowercase, no quoting needed). */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`.toLowerCase();
}
