import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import * as z from 'zod';
import { BackupctlError, ExitCode } from '../../src/errors.js';
import { renderJsonSchema } from '../../src/config/json-schema.js';
import { loadConfig } from '../../src/config/load.js';
import { formatKeyPath, formatZodIssues } from '../../src/config/validate.js';
import { ConfigSchema, ProfileSchema } from '../../src/config/schema.js';
import { DEFAULT_STORAGE, TAG_PATTERN } from '../../src/config/values.js';
import { renderError } from '../../src/output/render.js';
import { createStyle } from '../../src/output/style.js';

const plainStyle = createStyle({ color: false });

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const EXAMPLE_PATH = path.join(ROOT, 'backupctl.config.example.json');
const SCHEMA_PATH = path.join(ROOT, 'schema', 'backupctl.schema.json');

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function readExample(): Promise<Json> {
  return JSON.parse(await readFile(EXAMPLE_PATH, 'utf8')) as Json;
}

// ---------------------------------------------------------------------------------------
// Temp project directories: each has a package.json, so the "project" search stops there.

const dirs: string[] = [];

async function project(files: Record<string, string | object> = {}): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'backupctl-config-'));
  dirs.push(dir);
  const all: Record<string, string | object> = { 'package.json': { name: 'fixture', private: true }, ...files };
  for (const [name, content] of Object.entries(all)) {
    const file = path.join(dir, name);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, typeof content === 'string' ? content : `${JSON.stringify(content, null, 2)}\n`);
  }
  return dir;
}

afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** The BackupctlError a load fails with (fails the test if it does not fail that way). */
async function loadError(options: Parameters<typeof loadConfig>[0]): Promise<BackupctlError> {
  try {
    await loadConfig(options);
  } catch (error) {
    expect(error).toBeInstanceOf(BackupctlError);
    return error as BackupctlError;
  }
  throw new Error('expected loadConfig to fail');
}

/** The problems of a config error: one per line (BackupctlError.details). */
function hintLines(error: BackupctlError): string[] {
  return [...error.details];
}

// ---------------------------------------------------------------------------------------
// Walking the zod schema

/** Strips optional/nullable/default wrappers (and the clones .describe() makes of them). */
function unwrap(schema: z.core.$ZodType): z.core.$ZodType {
  let current = schema;
  while (current instanceof z.ZodOptional || current instanceof z.ZodNullable || current instanceof z.ZodDefault) {
    current = current.unwrap() as z.core.$ZodType;
  }
  return current;
}

/** Every object schema reachable from `schema`, with a readable name for messages. */
function objectSchemas(schema: z.core.$ZodType, name: string, out = new Map<z.ZodObject, string>()) {
  const s = unwrap(schema);
  if (s instanceof z.ZodObject) {
    if (out.has(s)) return out;
    out.set(s, name);
    for (const [key, child] of Object.entries(s.shape)) objectSchemas(child as z.core.$ZodType, `${name}.${key}`, out);
  } else if (s instanceof z.ZodRecord) {
    objectSchemas(s.valueType as z.core.$ZodType, `${name}.*`, out);
  } else if (s instanceof z.ZodArray) {
    objectSchemas(s.element as z.core.$ZodType, `${name}[]`, out);
  } else if (s instanceof z.ZodUnion) {
    for (const option of s.options) objectSchemas(option as z.core.$ZodType, name, out);
  }
  return out;
}

/** Records, for each object schema, which of its keys `value` uses where that schema applies. */
function keysUsed(schema: z.core.$ZodType, value: unknown, out = new Map<z.ZodObject, Set<string>>()) {
  const s = unwrap(schema);
  if (s instanceof z.ZodObject && isRecord(value)) {
    const used = out.get(s) ?? new Set<string>();
    out.set(s, used);
    for (const [key, child] of Object.entries(s.shape)) {
      if (Object.hasOwn(value, key)) {
        used.add(key);
        keysUsed(child as z.core.$ZodType, value[key], out);
      }
    }
  } else if (s instanceof z.ZodRecord && isRecord(value)) {
    for (const item of Object.values(value)) keysUsed(s.valueType as z.core.$ZodType, item, out);
  } else if (s instanceof z.ZodArray && Array.isArray(value)) {
    for (const item of value) keysUsed(s.element as z.core.$ZodType, item, out);
  } else if (s instanceof z.ZodUnion) {
    for (const option of s.options) keysUsed(option as z.core.$ZodType, value, out);
  }
  return out;
}

// ---------------------------------------------------------------------------------------

describe('schema', () => {
  it('accepts an empty configuration and applies no defaults itself', () => {
    expect(ConfigSchema.parse({})).toEqual({});
    expect(DEFAULT_STORAGE).toBe('./backups');
  });

  it('validates the example configuration', async () => {
    const example = await readExample();
    const result = ConfigSchema.safeParse(example);
    expect(result.success ? [] : formatZodIssues(result.error)).toEqual([]);
    expect(example.$schema).toBe('./schema/backupctl.schema.json');
    expect(Object.keys(example)[0]).toBe('$schema');
    expect(Object.keys(example.profiles as Json).length).toBeGreaterThanOrEqual(2);
  });

  it('loads the example configuration through loadConfig', async () => {
    const loaded = await loadConfig({ cwd: ROOT, env: {}, configPath: EXAMPLE_PATH });
    expect(loaded.filepath).toBe(EXAMPLE_PATH);
    expect(loaded.config).toEqual(await readExample());
  });

  it('the example uses every key of the schema, at the place the key belongs', async () => {
    const example = await readExample();
    const used = keysUsed(ConfigSchema, example);
    const missing: string[] = [];
    for (const [schema, name] of objectSchemas(ConfigSchema, 'config')) {
      const seen = used.get(schema) ?? new Set<string>();
      for (const key of Object.keys(schema.shape)) if (!seen.has(key)) missing.push(`${name}: ${key}`);
    }
    expect(missing).toEqual([]);
    // The walk did reach the profile schema (through "defaults" and "profiles.*").
    expect(used.get(ProfileSchema)?.size).toBe(Object.keys(ProfileSchema.shape).length);
  });

  it('the example also covers every property of the generated JSON Schema', async () => {
    const jsonSchema = JSON.parse(renderJsonSchema()) as Json;
    const definitions = (jsonSchema.definitions ?? {}) as Record<string, Json>;
    const resolve = (node: Json): Json => {
      const ref = node.$ref ?? (Array.isArray(node.allOf) && node.allOf.length === 1 ? (node.allOf[0] as Json).$ref : undefined);
      return typeof ref === 'string' ? (definitions[ref.replace('#/definitions/', '')] as Json) : node;
    };
    const seen = new Map<Json, Set<string>>();
    const objects = new Set<Json>();
    const walk = (rawNode: Json, value: unknown) => {
      const node = resolve(rawNode);
      if (isRecord(node.properties)) {
        objects.add(node);
        if (!isRecord(value)) return;
        const keys = seen.get(node) ?? new Set<string>();
        seen.set(node, keys);
        for (const [key, child] of Object.entries(node.properties)) {
          if (Object.hasOwn(value, key)) {
            keys.add(key);
            walk(child as Json, value[key]);
          }
        }
      } else if (isRecord(node.additionalProperties) && isRecord(value)) {
        for (const item of Object.values(value)) walk(node.additionalProperties, item);
      }
    };
    walk(jsonSchema, await readExample());
    const missing: string[] = [];
    for (const node of objects) {
      for (const key of Object.keys(node.properties as Json)) {
        if (!seen.get(node)?.has(key)) missing.push(`${String(node.title ?? '?')}: ${key}`);
      }
    }
    expect(missing).toEqual([]);
    // The file and the profile, plus the nested objects of a profile (status, notify...).
    expect(objects.size).toBeGreaterThanOrEqual(2);
  });

  it('every key has a description in the JSON Schema', () => {
    const jsonSchema = JSON.parse(renderJsonSchema()) as Json;
    const objects: [string, Json][] = [
      ['(top level)', jsonSchema],
      ...Object.entries((jsonSchema.definitions ?? {}) as Record<string, Json>),
    ];
    const undocumented: string[] = [];
    const check = (name: string, node: Json) => {
      for (const [key, child] of Object.entries((node.properties ?? {}) as Record<string, Json>)) {
        if (typeof child.description !== 'string' || child.description.trim() === '') undocumented.push(`${name}.${key}`);
        check(`${name}.${key}`, child); // nested objects (a profile's status, notify...)
      }
    };
    for (const [name, node] of objects) check(name, node);
    expect(undocumented).toEqual([]);
    // The file, and each definition (Profile, StorageSettings) has a description of its own.
    expect(objects.map(([, node]) => typeof node.description).every((type) => type === 'string')).toBe(true);
    expect(objects.length).toBeGreaterThanOrEqual(3);
  });

  it('the committed schema/backupctl.schema.json is up to date (npx tsx scripts/write-json-schema.ts)', async () => {
    const committed = await readFile(SCHEMA_PATH, 'utf8');
    const rendered = renderJsonSchema();
    expect(rendered.endsWith('}\n')).toBe(true);
    expect(rendered).toContain('\n  "properties": {\n');
    expect(committed).toBe(rendered);
  });

  it('the JSON Schema uses the same patterns as the zod schema', () => {
    const jsonSchema = JSON.parse(renderJsonSchema()) as { definitions: { Profile: { properties: Json } } };
    const tags = jsonSchema.definitions.Profile.properties.tags as { items: { pattern: string } };
    expect(tags.items.pattern).toBe(TAG_PATTERN.source);
    const port = jsonSchema.definitions.Profile.properties.port as Json;
    expect(port).toMatchObject({ type: 'integer', minimum: 1, maximum: 65535 });
  });

  it('accepts the documented value forms', () => {
    const ok = (profile: Json) => expect(ProfileSchema.safeParse(profile).success, JSON.stringify(profile)).toBe(true);
    const bad = (profile: Json) => expect(ProfileSchema.safeParse(profile).success, JSON.stringify(profile)).toBe(false);
    for (const compress of ['none', 'gzip', 'gzip:1', 'gzip:9', 'zstd', 'zstd:1', 'zstd:19']) ok({ compress });
    for (const compress of [0, 6, 'lz4', 'lz4:1', 'zstd:0', 'zstd:20', 'gzip:0', 'gzip:10', 'none:0', 'brotli', 'zstd:', 'gzip9', true]) bad({ compress });
    for (const pgCompress of [0, 9, 'none', 'gzip', 'gzip:9', 'lz4:1', 'zstd', 'zstd:19']) ok({ pgCompress });
    for (const pgCompress of [-1, 10, 1.5, 'brotli', 'zstd:', 'zstd:100', 'gzip9', true]) bad({ pgCompress });
    // The stage and pg_dump's own compression: one of them compresses, never both.
    ok({ compress: 'none', pgCompress: 6 });
    ok({ compress: 'zstd', pgCompress: 0 });
    bad({ compress: 'zstd', pgCompress: 6 });
    ok({ encryption: { recipients: ['age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p'], identityFile: 'key.txt' } });
    ok({ encryption: { identityFile: ['a.key', 'b.key'], passphraseEnv: 'BACKUP_PASSPHRASE' } });
    bad({ encryption: { recipients: ['age1short'] } });
    bad({ encryption: { recipients: ['ssh-ed25519 AAAA'] } });
    bad({ encryption: { passphraseFile: 'p', passphraseEnv: 'P' } });
    bad({ encryption: { identityFile: [] } });
    bad({ encryption: { key: 'AGE-SECRET-KEY-1...' } });
    for (const lockWaitTimeout of ['30s', '5min', '1500ms', '2h', '250', 0, 60000]) ok({ lockWaitTimeout });
    for (const lockWaitTimeout of ['30 s', '5m', '1.5s', '-1', -5, 1.5, '']) bad({ lockWaitTimeout });
    for (const url of ['postgres://db/app', 'postgresql://u@db:5433/app?sslmode=require']) ok({ url });
    for (const url of ['mysql://db/app', 'db.example.com', 'postgres:/db']) bad({ url });
    for (const port of [1, 5432, 65535]) ok({ port });
    for (const port of [0, 65536, 5432.5, '5432']) bad({ port });
    for (const jobs of [1, 64]) ok({ jobs, format: 'directory' });
    for (const jobs of [0, 65, 2.5]) bad({ jobs });
    ok({ passwordEnv: 'PG_PASSWORD_1' });
    bad({ passwordEnv: '1PASSWORD' });
    bad({ passwordEnv: 'PG-PASSWORD' });
    ok({ tags: ['nightly', 'pci:scope', 'v1.2_x-y'] });
    bad({ tags: ['-nightly'] });
    bad({ tags: ['a'.repeat(65)] });
    bad({ schemas: [''] });
    bad({ sslmode: 'on' });
    bad({ format: 'tar' });
    bad({ passwordFile: '/a', passwordEnv: 'B' });
    bad({ schemaOnly: true, dataOnly: true });
    ok({ schemaOnly: true, dataOnly: false });
    bad({ format: 'custom', jobs: 2 });
  });

  it('checks profile names and that defaultProfile exists', () => {
    expect(ConfigSchema.safeParse({ profiles: { 'app-1.main_x': {} }, defaultProfile: 'app-1.main_x' }).success).toBe(true);
    for (const name of ['-app', 'a b', 'a/b', 'a..b', '', 'x'.repeat(64)]) {
      expect(ConfigSchema.safeParse({ profiles: { [name]: {} } }).success, name).toBe(false);
    }
    expect(ConfigSchema.safeParse({ profiles: { app: {} }, defaultProfile: 'billing' }).success).toBe(false);
  });
});

describe('formatZodIssues', () => {
  it('formats key paths readably', () => {
    expect(formatKeyPath([])).toBe('(top level)');
    expect(formatKeyPath(['profiles', 'app', 'port'])).toBe('profiles.app.port');
    expect(formatKeyPath(['profiles', 'app-2', 'tags', 1])).toBe('profiles.app-2.tags[1]');
    expect(formatKeyPath(['profiles', 'app.v2', 'port'])).toBe('profiles["app.v2"].port');
  });

  it('reports every problem with its key path, one line each', () => {
    const result = ConfigSchema.safeParse({
      profiles: { 'app.v2': { port: 0, tags: ['ok', '-bad'] } },
      workdir: '/tmp',
    });
    expect(result.success).toBe(false);
    if (result.success) return;
    expect(formatZodIssues(result.error)).toEqual([
      'profiles["app.v2"].port: expected an integer between 1 and 65535',
      'profiles["app.v2"].tags[1]: invalid tag: use 1-64 characters from A-Z a-z 0-9 _ . : -, starting with a letter or digit',
      'workdir: unknown key',
    ]);
  });

  it('names the commands a healthchecks check may follow', () => {
    const result = ConfigSchema.safeParse({
      profiles: { app: { notify: { healthchecks: { url: 'https://hc-ping.com/x', commands: ['create', 'prune'] } } } },
      defaults: { notify: { healthchecks: { url: 'https://hc-ping.com/y', commands: [] } } },
    });
    expect(result.success).toBe(false);
    if (result.success) return;
    expect(formatZodIssues(result.error)).toEqual([
      'defaults.notify.healthchecks.commands: list at least one command, or remove the target',
      'profiles.app.notify.healthchecks.commands[1]: expected one of "create", "verify", "copy", "delete", "rekey"',
    ]);
  });
});

describe('loadConfig', () => {
  it('returns the schema defaults and no file when nothing is found', async () => {
    const dir = await project();
    expect(await loadConfig({ cwd: dir, env: {} })).toEqual({ config: ConfigSchema.parse({}), filepath: null });
  });

  it('finds backupctl.config.json, from a subdirectory too', async () => {
    const dir = await project({ 'backupctl.config.json': { storage: '/srv/backups' }, 'src/deep/.keep': '' });
    const fromRoot = await loadConfig({ cwd: dir, env: {} });
    expect(fromRoot).toEqual({ config: { storage: '/srv/backups' }, filepath: path.join(dir, 'backupctl.config.json') });
    const fromDeep = await loadConfig({ cwd: path.join(dir, 'src', 'deep'), env: {} });
    expect(fromDeep.filepath).toBe(path.join(dir, 'backupctl.config.json'));
  });

  it('finds the "backupctl" key of package.json', async () => {
    const dir = await project({
      'package.json': { name: 'shop', private: true, backupctl: { storage: '/srv/pkg', profiles: { app: { port: 6432 } } } },
    });
    const loaded = await loadConfig({ cwd: dir, env: {} });
    expect(loaded).toEqual({
      config: { storage: '/srv/pkg', profiles: { app: { port: 6432 } } },
      filepath: path.join(dir, 'package.json'),
    });
  });

  it('finds .backupctlrc (YAML) when package.json has no "backupctl" key', async () => {
    const dir = await project({
      '.backupctlrc': 'storage: /srv/rc\nprofiles:\n  app:\n    host: db.internal\n    tags: [nightly]\n',
    });
    const loaded = await loadConfig({ cwd: dir, env: {} });
    expect(loaded).toEqual({
      config: { storage: '/srv/rc', profiles: { app: { host: 'db.internal', tags: ['nightly'] } } },
      filepath: path.join(dir, '.backupctlrc'),
    });
  });

  it('finds .backupctlrc.json, .backupctlrc.yaml and .backupctlrc.yml', async () => {
    for (const [name, content] of [
      ['.backupctlrc.json', '{"storage": "/srv/json"}'],
      ['.backupctlrc.yaml', 'storage: /srv/yaml\n'],
      ['.backupctlrc.yml', 'storage: /srv/yml\n'],
    ] as const) {
      const dir = await project({ [name]: content });
      const loaded = await loadConfig({ cwd: dir, env: {} });
      expect(loaded.filepath).toBe(path.join(dir, name));
      expect(loaded.config.storage).toMatch(/^\/srv\//);
    }
  });

  it('in one directory: backupctl.config.json, then the rc files, then package.json#backupctl (as the README lists them)', async () => {
    const dir = await project({
      'package.json': { name: 'x', backupctl: { storage: '/from/package' } },
      '.backupctlrc.json': { storage: '/from/rc' },
      'backupctl.config.json': { storage: '/from/config' },
    });
    expect((await loadConfig({ cwd: dir, env: {} })).config.storage).toBe('/from/config');
    const rcOnly = await project({ 'package.json': { name: 'x', backupctl: { storage: '/from/package' } }, '.backupctlrc.json': { storage: '/from/rc' } });
    expect((await loadConfig({ cwd: rcOnly, env: {} })).config.storage).toBe('/from/rc');
  });

  it('does not search above the project root (the directory with package.json)', async () => {
    const outer = await project({ 'backupctl.config.json': { storage: '/outer' } });
    await writeFile(path.join(outer, 'package.json'), '{"name":"outer"}'); // keeps the outer one a project too
    const inner = path.join(outer, 'inner');
    await mkdir(inner);
    await writeFile(path.join(inner, 'package.json'), '{"name":"inner"}');
    expect(await loadConfig({ cwd: inner, env: {} })).toEqual({ config: {}, filepath: null });
  });

  it('--config beats BACKUPCTL_CONFIG, which beats the search', async () => {
    const dir = await project({
      'backupctl.config.json': { storage: '/from/search' },
      'flag.json': { storage: '/from/flag' },
      'env.yaml': 'storage: /from/env\n',
    });
    const env = { BACKUPCTL_CONFIG: path.join(dir, 'env.yaml') };

    const byFlag = await loadConfig({ cwd: dir, env, configPath: 'flag.json' });
    expect(byFlag).toEqual({ config: { storage: '/from/flag' }, filepath: path.join(dir, 'flag.json') });

    const byEnv = await loadConfig({ cwd: dir, env });
    expect(byEnv).toEqual({ config: { storage: '/from/env' }, filepath: path.join(dir, 'env.yaml') });

    const bySearch = await loadConfig({ cwd: dir, env: {} });
    expect(bySearch.config.storage).toBe('/from/search');

    // An empty BACKUPCTL_CONFIG counts as unset.
    expect((await loadConfig({ cwd: dir, env: { BACKUPCTL_CONFIG: '' } })).config.storage).toBe('/from/search');
  });

  it('resolves a relative BACKUPCTL_CONFIG against cwd', async () => {
    const dir = await project({ 'conf/prod.json': { storage: '/prod' } });
    const loaded = await loadConfig({ cwd: dir, env: { BACKUPCTL_CONFIG: 'conf/prod.json' } });
    expect(loaded.filepath).toBe(path.join(dir, 'conf', 'prod.json'));
  });

  it('an explicit file that does not exist is an error, even when a config would be found', async () => {
    const dir = await project({ 'backupctl.config.json': { storage: '/x' } });

    const byFlag = await loadError({ cwd: dir, env: {}, configPath: 'missing.json' });
    expect(byFlag.exitCode).toBe(ExitCode.USAGE);
    expect(byFlag.message).toBe(`config file not found: ${path.join(dir, 'missing.json')}`);
    expect(byFlag.hint).toContain('--config');

    const byEnv = await loadError({ cwd: dir, env: { BACKUPCTL_CONFIG: '/nonexistent/backupctl.json' } });
    expect(byEnv.exitCode).toBe(ExitCode.USAGE);
    expect(byEnv.message).toContain('/nonexistent/backupctl.json');
    expect(byEnv.hint).toContain('BACKUPCTL_CONFIG');

    const dirGiven = await loadError({ cwd: dir, env: {}, configPath: dir });
    expect(dirGiven.exitCode).toBe(ExitCode.USAGE);
    expect(dirGiven.message).toContain('is a directory');
  });

  it('an explicit package.json without a "backupctl" key is an error', async () => {
    const dir = await project();
    const error = await loadError({ cwd: dir, env: {}, configPath: 'package.json' });
    expect(error.exitCode).toBe(ExitCode.USAGE);
    expect(error.message).toContain('"backupctl"');
  });

  it('broken JSON is a one-line USAGE error naming the file and the position', async () => {
    const dir = await project({ 'backupctl.config.json': '{\n  "storage": "/x",\n  "profiles": {,}\n}\n' });
    const file = path.join(dir, 'backupctl.config.json');
    for (const options of [{ cwd: dir, env: {} }, { cwd: dir, env: {}, configPath: file }]) {
      const error = await loadError(options);
      expect(error.exitCode).toBe(ExitCode.USAGE);
      expect(error.message).not.toContain('\n');
      expect(error.message).toContain(file);
      expect(error.message).toContain('line 3, column 16');
      expect(error.details).toEqual(['3 |   "profiles": {,}', `${' '.repeat(19)}^`]);
      // Rendered with the caret under column 16 of the line (it was flattened onto the hint's line).
      const lines = renderError(error, plainStyle, false).split('\n');
      expect(lines.slice(1, 3)).toEqual(['  3 |   "profiles": {,}', `  ${' '.repeat(19)}^`]);
      expect(lines[2]?.indexOf('^')).toBe((lines[1]?.indexOf('{,}') ?? 0) + 1);
    }
  });

  it('broken YAML is a one-line USAGE error naming the file', async () => {
    const dir = await project({ '.backupctlrc.yaml': 'storage: /x\n  profiles: - a\n' });
    const error = await loadError({ cwd: dir, env: {} });
    expect(error.exitCode).toBe(ExitCode.USAGE);
    expect(error.message).not.toContain('\n');
    expect(error.message).toContain(path.join(dir, '.backupctlrc.yaml'));
  });

  it('reports several problems of one file at once, each with its key path', async () => {
    const dir = await project({
      'backupctl.config.json': {
        storage: '',
        defaultProfile: 'reporting',
        defaults: { passwordFile: '/etc/pw', passwordEnv: 'PGPASSWORD_APP' },
        profiles: {
          app: { port: 70000, sslmode: 'on', compress: 'brotli', schemaOnly: true, dataOnly: true },
          billing: { format: 'custom', jobs: 8, lockWaitTimeout: '5 minutes', tags: ['ok', 'not ok'] },
        },
      },
    });
    const file = path.join(dir, 'backupctl.config.json');
    const error = await loadError({ cwd: dir, env: {} });
    expect(error.exitCode).toBe(ExitCode.USAGE);
    const lines = hintLines(error);
    expect(error.message).toBe(`invalid configuration in ${file} (${lines.length} problems)`);
    expect(lines).toEqual(
      expect.arrayContaining([
        'storage: must not be empty',
        'defaultProfile: no profile named "reporting" (profiles: app, billing)',
        'defaults.passwordEnv: passwordFile and passwordEnv cannot be used together: keep one',
        'profiles.app.port: expected an integer between 1 and 65535',
        'profiles.app.sslmode: expected one of disable, allow, prefer, require, verify-ca, verify-full',
        expect.stringMatching(/^profiles\.app\.compress: expected "zstd"/),
        'profiles.app.dataOnly: schemaOnly and dataOnly cannot both be true',
        'profiles.billing.jobs: jobs > 1 needs format "directory": pg_dump writes in parallel only to a directory',
        expect.stringMatching(/^profiles\.billing\.lockWaitTimeout: expected a PostgreSQL time value/),
        expect.stringMatching(/^profiles\.billing\.tags\[1\]: invalid tag/),
      ]),
    );
    expect(lines).toHaveLength(10);
  });

  it('still reports cross-field problems when a number is not an integer', async () => {
    const dir = await project({
      'backupctl.config.json': { profiles: { app: { port: 5432.5, passwordFile: '/pw', passwordEnv: 'PW' } } },
    });
    const lines = hintLines(await loadError({ cwd: dir, env: {} }));
    expect(lines).toEqual([
      'profiles.app.port: expected an integer between 1 and 65535',
      'profiles.app.passwordEnv: passwordFile and passwordEnv cannot be used together: keep one',
    ]);
  });

  it('rejects unknown keys (typos) with their key path and a suggestion', async () => {
    const dir = await project({
      'backupctl.config.json': {
        stroage: '/x',
        host: 'db',
        defaults: { sslMode: 'require', workDir: '/tmp' },
        profiles: { app: { prot: 5432, databse: 'app', frobnicate: true } },
      },
    });
    const error = await loadError({ cwd: dir, env: {} });
    expect(error.exitCode).toBe(ExitCode.USAGE);
    expect(error.message).toMatch(/\(7 problems\)$/);
    expect(hintLines(error).sort()).toEqual(
      [
        'stroage: unknown key (did you mean "storage"?)',
        'host: unknown key ("host" belongs in "defaults" or in a profile)',
        'defaults.sslMode: unknown key (did you mean "sslmode"?)',
        'defaults.workDir: unknown key ("workDir" is a top-level setting)',
        'profiles.app.prot: unknown key (did you mean "port"?)',
        'profiles.app.databse: unknown key (did you mean "database"?)',
        'profiles.app.frobnicate: unknown key',
      ].sort(),
    );
  });

  it('suggests keys of nested settings too (retention, verify, status, storage settings, encryption)', async () => {
    const dir = await project({
      'backupctl.config.json': {
        storageSettings: { s3: { regin: 'eu-west-1' } },
        defaults: { status: { maxAg: '25h' } },
        profiles: { app: { database: 'app', retention: { keepDialy: 7 }, verify: { sever: 'postgres://v@h/p' }, encryption: { recipientFile: '/x' } } },
      },
    });
    expect(hintLines(await loadError({ cwd: dir, env: {} })).sort()).toEqual(
      [
        'storageSettings.s3.regin: unknown key (did you mean "region"?)',
        'defaults.status.maxAg: unknown key (did you mean "maxAge"?)',
        'profiles.app.retention.keepDialy: unknown key (did you mean "keepDaily"?)',
        'profiles.app.verify.sever: unknown key (did you mean "server"?)',
        'profiles.app.encryption.recipientFile: unknown key (did you mean "recipientsFile"?)',
      ].sort(),
    );
  });

  it('reports invalid profile names and a non-object file', async () => {
    const dir = await project({ 'backupctl.config.json': { profiles: { 'my app': {} } } });
    expect(hintLines(await loadError({ cwd: dir, env: {} }))).toEqual([
      expect.stringMatching(/^profiles\["my app"\]: invalid profile name/),
    ]);

    const arrayDir = await project({ '.backupctlrc.json': '[]' });
    const error = await loadError({ cwd: arrayDir, env: {} });
    expect(error.message).toMatch(/\(1 problem\)$/);
    expect(error.details).toEqual(['(top level): expected an object']);
  });

  it('names the package.json key in the message', async () => {
    const dir = await project({ 'package.json': { name: 'x', backupctl: { storage: 42 } } });
    const error = await loadError({ cwd: dir, env: {} });
    expect(error.message).toBe(`invalid configuration in ${path.join(dir, 'package.json')} ("backupctl" key) (1 problem)`);
    expect(error.details).toEqual(['storage: expected a string']);
  });

  it('an empty config file is an empty configuration', async () => {
    const dir = await project({ '.backupctlrc': '' });
    expect(await loadConfig({ cwd: dir, env: {} })).toEqual({ config: {}, filepath: path.join(dir, '.backupctlrc') });
  });

  it('never runs code: JS/TS config files are refused', async () => {
    const marker = 'ran.txt';
    const dir = await project({
      'backupctl.config.mjs': `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(marker)}, 'x');\nexport default {};\n`,
      '.backupctlrc.js': `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'x');\nmodule.exports = {};\n`,
    });
    // Not searched...
    expect(await loadConfig({ cwd: dir, env: {} })).toEqual({ config: {}, filepath: null });
    // ...and refused when named explicitly.
    for (const name of ['backupctl.config.mjs', '.backupctlrc.js']) {
      const error = await loadError({ cwd: dir, env: {}, configPath: name });
      expect(error.exitCode).toBe(ExitCode.USAGE);
      expect(error.message).toContain('not supported');
    }
    await expect(stat(path.join(dir, marker))).rejects.toThrow();
    await expect(stat(path.join(process.cwd(), marker))).rejects.toThrow();
  });

  it('refuses cosmiconfig "$import"', async () => {
    const dir = await project({
      'base.json': { storage: '/base' },
      'backupctl.config.json': { $import: './base.json', profiles: {} },
    });
    const error = await loadError({ cwd: dir, env: {} });
    expect(error.exitCode).toBe(ExitCode.USAGE);
    expect(error.message).toContain('"$import" is not supported');
  });
});
