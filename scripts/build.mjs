// Builds dist/ as one esbuild bundle of src/cli.ts, split at the command modules'
// dynamic imports, so that `backupctl create` loads only what create needs.
//
// Why a bundle and not tsc's one file per module: Node 20 resolves, reads and compiles
// every ES module separately, and backupctl's dependencies (execa, pg, cosmiconfig,
// commander) are ~150 files. Measured on an empty database: `backupctl create` 0.50 s
// from tsc's output, 0.39 s from this bundle (raw pg_dump: 0.08 s); see bench/RESULTS.md.
// Type checking is `npm run typecheck` (tsc --noEmit); esbuild only strips types.
//
// Every dependency is bundled, ssh2 included (see optionalNativeStubs): the published
// package has no runtime dependencies, and the build fails if the bundle would load any
// package other than Node's built-ins at run time (see checkExternals). `npm pack` builds
// through the prepack script. The licence notices of what is bundled are gathered into
// dist/THIRD-PARTY-NOTICES.txt.
import { isBuiltin } from 'node:module';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
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

/**
 * ssh2 (under ssh2-sftp-client, loaded only by the sftp:// driver) tries two optional
 * native addons, each inside try/catch: `cpu-features` (to order its ciphers) and its own
 * `./crypto/build/Release/sshcrypto.node` (faster AES-GCM and ChaCha20-Poly1305). A .node
 * file cannot be bundled, and shipping one compiled here would tie the package to this
 * machine's CPU and Node ABI. Each is replaced by a module that throws like a missing
 * optional module does (MODULE_NOT_FOUND), so ssh2 takes its pure-JavaScript paths, as it
 * does wherever the addons failed to compile: ciphers from node:crypto (OpenSSL),
 * ChaCha20-Poly1305 in JavaScript plus WebAssembly. Measured over loopback to OpenSSH
 * (256 MiB, aes128-gcm): put 128-135 MB/s and get 123-150 MB/s from the bundle, against
 * 156-195 and 148-169 MB/s with the addon; far above what pg_dump and zstd produce.
 * That path sends a packet in several writes, hence TCP_NODELAY in src/storage/sftp.ts.
 * Any other .node file fails the build, and so does a listed addon that is no longer
 * required (update the list).
 */
const NATIVE_STUBS = [
  { importer: /[\\/]node_modules[\\/]ssh2[\\/]lib[\\/]protocol[\\/]constants\.js$/, request: 'cpu-features' },
  { importer: /[\\/]node_modules[\\/]ssh2[\\/]lib[\\/]protocol[\\/]crypto\.js$/, request: './crypto/build/Release/sshcrypto.node' },
];
const stubbed = new Set();
const optionalNativeStubs = {
  name: 'optional-native-stubs',
  setup(build) {
    const namespace = 'backupctl-missing-optional';
    build.onResolve({ filter: /^cpu-features$|\.node$/ }, (args) => {
      const stub = NATIVE_STUBS.find((entry) => entry.request === args.path && entry.importer.test(args.importer));
      if (!stub) {
        return { errors: [{ text: `${args.importer} requires the native addon ${args.path}: bundle it or stub it (scripts/build.mjs, NATIVE_STUBS)` }] };
      }
      stubbed.add(stub);
      return { path: args.path, namespace };
    });
    build.onLoad({ filter: /.*/, namespace }, (args) => ({
      contents:
        `const error = new Error(${JSON.stringify(`Cannot find module '${args.path}' (a native addon, not bundled into backupctl)`)});\n` +
        `error.code = 'MODULE_NOT_FOUND';\nthrow error;\n`,
      loader: 'js',
    }));
  },
};

/**
 * The only imports a bundle may leave to Node at run time, besides its built-ins: a
 * package here is required only on a path backupctl never takes.
 */
const ALLOWED_EXTERNALS = new Map([
  // cosmiconfig loads a compiler only for a .ts config file; backupctl's search places
  // and loaders are JSON and YAML only (src/config/load.ts).
  ['typescript', 'cosmiconfig, for .ts config files'],
  // pg requires it, inside try/catch, only when `pg.native` is read; backupctl never does.
  ['pg-native', 'pg, for pg.native'],
]);

/** Fails the build when an output file would load, at run time, a package that is not bundled. */
function checkExternals(metafile) {
  const problems = [];
  for (const [output, { imports }] of Object.entries(metafile.outputs)) {
    for (const { path: request, external } of imports) {
      if (external && !isBuiltin(request) && !ALLOWED_EXTERNALS.has(request)) problems.push(`${output}: ${request}`);
    }
  }
  if (problems.length > 0) {
    throw new Error(`the bundle would load these at run time, and the package has no runtime dependencies:\n  ${problems.join('\n  ')}`);
  }
}

/**
 * The licence of every package bundled into dist/ (its LICENSE file, or the licence its
 * package.json names when it ships none), so that the package carries the notices that
 * its bundled dependencies' licences ask for.
 */
async function thirdPartyNotices(metafile) {
  const packages = new Map();
  for (const input of Object.keys(metafile.inputs)) {
    const match = /^(.*node_modules[\\/](?:@[^\\/]+[\\/])?[^\\/@][^\\/]*)[\\/]/.exec(input);
    if (match && !packages.has(match[1])) packages.set(match[1], null);
  }
  const sections = [];
  for (const dir of packages.keys()) {
    const manifest = JSON.parse(await readFile(path.join(root, dir, 'package.json'), 'utf8'));
    const licenseFile = (await readdir(path.join(root, dir))).find((name) => /^(licen[cs]e|copying)(\.|$)/i.test(name));
    const text = licenseFile ? (await readFile(path.join(root, dir, licenseFile), 'utf8')).trim() : `(no licence file shipped; package.json says: ${manifest.license ?? 'nothing'})`;
    sections.push({ id: `${manifest.name}@${manifest.version}`, license: manifest.license ?? '', text });
  }
  // One copy of each distinct text (the Apache-2.0 text alone would be 40 copies).
  const byText = new Map();
  for (const { id, license, text } of sections.sort((a, b) => a.id.localeCompare(b.id))) {
    const ids = byText.get(text) ?? new Set();
    ids.add(license ? `${id} (${license})` : id);
    byText.set(text, ids);
  }
  return (
    `backupctl bundles the following packages into dist/. Their licences follow, each\n` +
    `distinct text once, after the packages it belongs to.\n\n` +
    [...byText].map(([text, ids]) => `${'-'.repeat(78)}\n${[...ids].join('\n')}\n\n${text}\n`).join('\n')
  );
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(root, 'dist');

// Built beside dist/ and swapped in, so that a run of the built binary (another shell's
// test suite) never sees a half-written or missing dist/.
const staging = `${outdir}.${process.pid}.tmp`;
await rm(staging, { recursive: true, force: true });
const result = await build({
  // The metafile's paths are relative to it (thirdPartyNotices reads them).
  absWorkingDir: root,
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
  // Never bundle a compiler (see ALLOWED_EXTERNALS).
  external: ['typescript'],
  // CommonJS dependencies (pg, commander) call require() for Node's built-ins; an ES
  // module has no require, so give the bundle one.
  banner: { js: "import { createRequire as __backupctlRequire } from 'node:module'; const require = __backupctlRequire(import.meta.url);" },
  // And CommonJS's __dirname/__filename, where a dependency reads them: ssh2 reads
  // __dirname as it loads (lib/agent.js, and its WebAssembly Poly1305), so without this
  // every sftp:// run fails with "__dirname is not defined in ES module scope". They name
  // the chunk's directory and file, as in CommonJS.
  define: { __dirname: 'import.meta.dirname', __filename: 'import.meta.filename' },
  logLevel: 'warning',
  legalComments: 'linked',
  metafile: true,
  plugins: [skipCloudflareProbe, optionalNativeStubs],
});
for (const stub of NATIVE_STUBS) {
  if (!stubbed.has(stub)) throw new Error(`ssh2 no longer requires ${stub.request}: remove it from NATIVE_STUBS in scripts/build.mjs`);
}
checkExternals(result.metafile);
await writeFile(path.join(staging, 'THIRD-PARTY-NOTICES.txt'), await thirdPartyNotices(result.metafile));
const previous = `${outdir}.${process.pid}.old`;
await rename(outdir, previous).catch((error) => {
  if (error.code !== 'ENOENT') throw error;
});
await rename(staging, outdir);
await rm(previous, { recursive: true, force: true });
