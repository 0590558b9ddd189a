// Prints test/durations.json from a vitest JSON report in the repository's root: each test
// file's seconds (path relative to the root), longest first. Used by test/helpers/sequencer.ts.
// Usage: node scripts/test-durations.mjs test-results.json > test/durations.json
import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';

const reportPath = process.argv[2];
if (!reportPath) {
  console.error('usage: node scripts/test-durations.mjs <vitest JSON report>');
  process.exit(2);
}
const report = JSON.parse(readFileSync(reportPath, 'utf8'));
// The report is written in the repository's root (vitest.config.ts: test-results.json).
const root = dirname(resolve(reportPath));
const rows = report.testResults
  .map((file) => [relative(root, file.name), Math.round((file.endTime - file.startTime) / 100) / 10])
  .sort((a, b) => b[1] - a[1]);
process.stdout.write(`${JSON.stringify(Object.fromEntries(rows), null, 2)}\n`);
