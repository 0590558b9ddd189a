import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One real PostgreSQL cluster for the whole run (see test/helpers/global-setup.ts).
    globalSetup: ['./test/helpers/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // vitest runs cores - 1 files at once: one on a 2-core machine. The test files spend
    // most of their time waiting for PostgreSQL, child processes and storage servers, so
    // three at once there took the whole suite from ~20 to ~12 minutes (measured, 2 cores).
    maxWorkers: Math.max(3, availableParallelism() - 1),
    reporters: ['default', ['json', { outputFile: 'test-results.json' }]],
  },
});
