import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One real PostgreSQL cluster for the whole run (see test/helpers/global-setup.ts).
    globalSetup: ['./test/helpers/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // One file at a time on a 2-core machine (vitest's default, cores - 1). Three at once
    // took the suite from ~20 to ~11-13 minutes there, but the files share one cluster:
    // roles one file had just dropped were back (most likely another file's `restore
    // --globals` of a backup whose globals held them). Not until files get clusters of their own.
    reporters: ['default', ['json', { outputFile: 'test-results.json' }]],
  },
});
