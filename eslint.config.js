// Lint rules that hold the architecture (docs in README "Design"): imports flow
// commands -> core -> {pg, storage, pipeline, catalog, retention}; chalk/ora only in
// output/, execa only in pg/ and src/pipeline/program-filter.ts (and the test helpers),
// pg only in pg/; each storage SDK only in its driver (@aws-sdk and @smithy in
// src/storage/s3*.ts, @azure in src/storage/azblob.ts, ssh2 and ssh2-sftp-client in
// src/storage/sftp.ts), so that the registry can load a driver, and its SDK, only when its
// URL scheme is used.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const restrict = (patterns, paths = []) => ({ 'no-restricted-imports': ['error', { patterns, paths }] });
const onlyInPg = ['execa', 'pg'].map((name) => ({ name, message: `${name} is used only in src/pg/` }));
const storageSdks = [
  { group: ['@aws-sdk/*', '@smithy/*'], message: 'the AWS SDK is imported only in src/storage/s3*.ts (loaded lazily by the registry)' },
  { group: ['@azure/*'], message: '@azure/* is imported only in src/storage/azblob.ts (loaded lazily by the registry)' },
  { group: ['ssh2', 'ssh2-sftp-client'], message: 'ssh2/ssh2-sftp-client are imported only in src/storage/sftp.ts (loaded lazily by the registry)' },
];
const sdksExcept = (allowed) => storageSdks.filter((rule) => !rule.group.some((name) => allowed.includes(name)));
const lowerLayers = [
  { group: ['**/core/*', '**/commands/*', '**/cli.js'], message: 'lower layers must not import core/commands' },
  { group: ['chalk', 'ora'], message: 'terminal styling belongs in src/output/' },
];

export default tseslint.config(
  { ignores: ['dist/', 'dist.*/', 'node_modules/', 'coverage/', '.scratch/', '.bench/', '.demo/', '.cache/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    // The bundle (scripts/build.mjs): `import { z }` binds zod's whole namespace object, so
    // esbuild keeps all of zod, every locale included (755 KB, ~30 ms of start-up to compile);
    // `import * as z` lets it keep only what is used (about 200 KB).
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: "ImportDeclaration[source.value='zod'][importKind!='type'] > ImportSpecifier[imported.name='z']",
          message: "write `import * as z from 'zod'` (see the comment in eslint.config.js)",
        },
      ],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/output/**'],
    rules: restrict([{ group: ['chalk', 'ora'], message: 'terminal styling belongs in src/output/' }, ...storageSdks], onlyInPg),
  },
  { files: ['src/output/**/*.ts'], rules: restrict(storageSdks) },
  { files: ['src/pg/**/*.ts'], rules: restrict([{ group: ['chalk', 'ora'], message: 'terminal styling belongs in src/output/' }, ...storageSdks]) },
  {
    files: ['src/pg/**', 'src/storage/**', 'src/pipeline/**', 'src/catalog/**', 'src/retention/**', 'src/config/**', 'src/notify/**', 'src/platform/**'],
    rules: restrict([
      { group: ['**/core/*', '**/commands/*', '**/cli.js'], message: 'lower layers must not import core/commands' },
      { group: ['chalk', 'ora'], message: 'terminal styling belongs in src/output/' },
      ...storageSdks,
    ]),
  },
  {
    // The block above replaces the whole rule for these layers, dropping "execa and pg only
    // in src/pg/": restate it for every lower layer but pg.
    files: ['src/storage/**', 'src/pipeline/**', 'src/catalog/**', 'src/retention/**', 'src/config/**', 'src/notify/**', 'src/platform/**'],
    rules: restrict([...lowerLayers, ...storageSdks], onlyInPg),
  },
  {
    // The pipeline's one file that runs a program (zstd as a filter): execa, but not pg.
    files: ['src/pipeline/program-filter.ts'],
    rules: restrict([...lowerLayers, ...storageSdks], onlyInPg.filter((path) => path.name !== 'execa')),
  },
  // Each driver may import its own SDK (the blocks above forbid it everywhere else).
  ...[
    ['src/storage/s3*.ts', ['@aws-sdk/*']],
    ['src/storage/azblob.ts', ['@azure/*']],
    ['src/storage/sftp.ts', ['ssh2']],
  ].map(([file, allowed]) => ({
    files: [file],
    rules: restrict(
      [
        { group: ['**/core/*', '**/commands/*', '**/cli.js'], message: 'lower layers must not import core/commands' },
        { group: ['chalk', 'ora'], message: 'terminal styling belongs in src/output/' },
        ...sdksExcept(allowed),
      ],
      onlyInPg,
    ),
  })),
  {
    files: ['src/core/**'],
    rules: restrict(
      [
        { group: ['**/commands/*', '**/cli.js', '**/output/*'], message: 'core returns results; commands and output render them' },
        { group: ['chalk', 'ora'], message: 'terminal styling belongs in src/output/' },
        ...storageSdks,
      ],
      onlyInPg,
    ),
  },
);
