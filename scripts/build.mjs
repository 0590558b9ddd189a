// Builds dist/ as one esbuild bundle of src/cli.ts, split at the command modules'
// dynamic imports, so that `backupctl create` loads only what create needs.
//
// Why a bundle and not tsc's one file per module: Node 20 resolves, reads and compiles
// every ES module separately, and backupctl's dependencies (execa, pg, cosmiconfig,
// commander) are ~150 files. Measured on an empty database: `backupctl create` 0.50 s
// from tsc's output, 0.39 s from this bundle (raw pg_dump: 0.08 s); see bench/RESULTS.md.
// Type checking is `npm run typecheck` (tsc --noEmit); esbuild only strips types.
import { readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/**
 * pg (lib/stream.js) asks at load time whether it runs in a Cloudflare Worker by
 * constructing a `Response`; on Node 20 that loads Node's whole fetch implementation
 * (undici, ~15 ms of every run). backupctl never runs in a Worker: answer the probe's
 * second test with `false`. If pg changes that code, the build fails here rather than
 * silently paying again.
 */
const skipCloudflareProbe = {
  name: 'pg-skip-cloudflare-probe',
  setup(build) {
    build.onLoad({ filter: /[\\/]node_modules[\\/]pg[\\/]lib[\\/]stream\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      const probe = "typeof Response === 'function'";
      if (!source.includes(probe)) throw new Error(`${args.path}: the Cloudflare probe moved; update scripts/build.mjs`);
      return { contents: source.replace(probe, 'false'), loader: 'js' };
    });
  },
};

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(root, 'dist');

// Built beside dist/ and swapped in, so that a run of the built binary (another shell's
// test suite) never sees a half-written or missing dist/.
const staging = `${outdir}.${process.pid}.tmp`;
await rm(staging, { recursive: true, force: true });
await build({
  entryPoints: [path.join(root, 'src/cli.ts')],
  outdir: staging,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.19',
  sourcemap: true,
  // Chunk names must not depend on content hashes: bin/backupctl.js imports dist/cli.js.
  entryNames: '[name]',
  chunkNames: '[name]-[hash]',
  // cosmiconfig loads TypeScript only for a .ts config file; never bundle a compiler.
  // ssh2 (under ssh2-sftp-client, loaded only by the sftp:// driver) has optional native
  // addons (.node) that cannot be bundled: it stays in node_modules, imported at run time.
  external: ['typescript', 'ssh2-sftp-client', 'ssh2'],
  // CommonJS dependencies (pg, commander) call require() for Node's built-ins; an ES
  // module has no require, so give the bundle one.
  banner: { js: "import { createRequire as __backupctlRequire } from 'node:module'; const require = __backupctlRequire(import.meta.url);" },
  logLevel: 'warning',
  legalComments: 'linked',
  plugins: [skipCloudflareProbe],
});
const previous = `${outdir}.${process.pid}.old`;
await rename(outdir, previous).catch((error) => {
  if (error.code !== 'ENOENT') throw error;
});
await rename(staging, outdir);
await rm(previous, { recursive: true, force: true });
