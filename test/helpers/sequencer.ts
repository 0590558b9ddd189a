/**
 * Test files in order of their expected duration, longest first, so that the workers
 * finish together. vitest's own sequencer orders by the durations in its results cache
 * (node_modules/.vite), which a fresh clone (CI) does not have: it then starts the
 * largest files first, and a small file of long tests started last kept one worker busy
 * ~50 s after the others (fresh-clone run on Node 20: 789 s; the run after it, ordered by
 * the cache: 735 s). test/durations.json holds each file's seconds from a full run; the
 * cache, when it has a file, is newer and wins. A file known to neither goes first, as
 * vitest's own does (it may be long). Refresh the table after a full `npm test`:
 * `node scripts/test-durations.mjs test-results.json > test/durations.json`.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const table = JSON.parse(readFileSync(new URL('../durations.json', import.meta.url), 'utf8')) as Record<string, number>;

export class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const root = this.ctx.config.root;
    const expectedMs = (spec: TestSpecification): number => {
      const path = relative(root, spec.moduleId);
      const cached = this.ctx.cache.getFileTestResults(`${spec.project.name}:${path}`);
      if (cached && !cached.failed) return cached.duration;
      if (cached?.failed) return Number.POSITIVE_INFINITY; // failed last time: first, as vitest does
      const seconds = table[path];
      return seconds === undefined ? Number.POSITIVE_INFINITY : seconds * 1000;
    };
    const keyed = files.map((spec) => ({ spec, ms: expectedMs(spec) }));
    keyed.sort((a, b) => (a.ms === b.ms ? 0 : a.ms > b.ms ? -1 : 1));
    return keyed.map(({ spec }) => spec);
  }
}
