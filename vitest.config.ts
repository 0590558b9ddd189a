import { defineConfig } from 'vitest/config';
import { LongestFirstSequencer } from './test/helpers/sequencer.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One real PostgreSQL cluster per worker (see test/helpers/global-setup.ts).
    globalSetup: ['./test/helpers/global-setup.ts'],
    // Byte arrays compared as bytes by toEqual (see the file).
    setupFiles: ['./test/helpers/equality.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Three files at once, each worker with a cluster of its own: most of a test's time is
    // spent waiting on PostgreSQL, child processes and servers, so three workers on a
    // 2-core machine take the suite from ~20 to ~9-10 minutes (fresh-clone .ci/run, both
    // Node versions: ~31 -> ~25 minutes). BACKUPCTL_TEST_WORKERS overrides it (1: one file
    // at a time).
    maxWorkers: Number(process.env.BACKUPCTL_TEST_WORKERS ?? 3),
    // Longest files first, from test/durations.json when vitest's cache has no durations (a fresh clone).
    sequence: { sequencer: LongestFirstSequencer },
    reporters: ['default', ['json', { outputFile: 'test-results.json' }]],
  },
});
