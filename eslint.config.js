// Lint rules that hold the architecture (docs in README "Design"): imports flow
// commands -> core -> {pg, storage, pipeline, catalog, retention}; chalk/ora only in
// output/, execa only in pg/ and src/pipeline/program-filter.ts (and the test helpers),
// pg only in pg/.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const restrict = (patterns, paths = []) => ({ 'no-restricted-imports': ['error', { patterns, paths }] });
const onlyInPg = ['execa', 'pg'].map((name) => ({ name, message: `${name} is used only in src/pg/` }));
const lowerLayers = [
  { group: ['**/core/*', '**/commands/*', '**/cli.js'], message: 'lower layers must not import core/commands' },
  { group: ['chalk', 'ora'], message: 'terminal styling belongs in src/output/' },
];

export default tseslint.config(
  { ignores: ['dist/', 'dist.*/', 'node_modules/', 'coverage/', '.scratch/', '.bench/', '.demo/'] },
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
    rules: restrict([{ group: ['chalk', 'ora'], message: 'terminal styling belongs in src/output/' }], onlyInPg),
  },
  { files: ['src/pg/**/*.ts'], rules: restrict([{ group: ['chalk', 'ora'], message: 'terminal styling belongs in src/output/' }]) },
  {
    files: ['src/pg/**', 'src/storage/**', 'src/pipeline/**', 'src/catalog/**', 'src/retention/**', 'src/config/**', 'src/notify/**'],
    rules: restrict([
      { group: ['**/core/*', '**/commands/*', '**/cli.js'], message: 'lower layers must not import core/commands' },
      { group: ['chalk', 'ora'], message: 'terminal styling belongs in src/output/' },
    ]),
  },
  {
    // The block above replaces the whole rule for these layers, dropping "execa and pg only
    // in src/pg/": restate it for every lower layer but pg.
    files: ['src/storage/**', 'src/pipeline/**', 'src/catalog/**', 'src/retention/**', 'src/config/**', 'src/notify/**', 'src/platform/**'],
    rules: restrict(lowerLayers, onlyInPg),
  },
  {
    // The pipeline's one file that runs a program (zstd as a filter): execa, but not pg.
    files: ['src/pipeline/program-filter.ts'],
    rules: restrict(lowerLayers, onlyInPg.filter((path) => path.name !== 'execa')),
  },
  {
    files: ['src/core/**'],
    rules: restrict(
      [
        { group: ['**/commands/*', '**/cli.js', '**/output/*'], message: 'core returns results; commands and output render them' },
        { group: ['chalk', 'ora'], message: 'terminal styling belongs in src/output/' },
      ],
      onlyInPg,
    ),
  },
);
