/**
 * Writes schema/backupctl.schema.json from the zod schema of the configuration file.
 * Run after changing src/config/schema.ts: `npx tsx scripts/write-json-schema.ts`.
 * test/unit/config.test.ts fails while the committed file is out of date.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderJsonSchema } from '../src/config/json-schema.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const target = resolve(root, 'schema', 'backupctl.schema.json');

await mkdir(dirname(target), { recursive: true });
await writeFile(target, renderJsonSchema());
console.log(`wrote ${target}`);
