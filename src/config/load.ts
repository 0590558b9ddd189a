import { stat } from 'node:fs/promises';
import path from 'node:path';
import { cosmiconfig, defaultLoaders, type Loader } from 'cosmiconfig';
import type { z } from 'zod';
import { BackupctlError, ExitCode, errnoCode, usageError } from '../errors.js';
import { ConfigSchema, ProfileSchema, type Config } from './schema.js';

export const CONFIG_MODULE_NAME = 'backupctl';

/**
 * Where the search looks, in this order, in the start directory and then in each parent
 * up to the first directory holding a package.json (cosmiconfig's "project" strategy).
 * No JS/TS files: loading a configuration must never run code.
 */
export const CONFIG_SEARCH_PLACES: readonly string[] = [
  'package.json',
  `.${CONFIG_MODULE_NAME}rc`,
  `.${CONFIG_MODULE_NAME}rc.json`,
  `.${CONFIG_MODULE_NAME}rc.yaml`,
  `.${CONFIG_MODULE_NAME}rc.yml`,
  `${CONFIG_MODULE_NAME}.config.json`,
];

export interface LoadConfigOptions {
  /** Where the search starts, and what a relative explicit path is resolved against. */
  cwd: string;
  env: Record<string, string | undefined>;
  /** From `--config`: wins over BACKUPCTL_CONFIG, which wins over the search. */
  configPath?: string | undefined;
}

export interface LoadedConfig {
  config: Config;
  /** The file the configuration came from; null when none was found (built-in defaults). */
  filepath: string | null;
}

/**
 * Finds, parses and validates the configuration. Every failure is a BackupctlError with
 * exit code USAGE: a missing explicit file, a syntax error, or a schema violation (all of
 * them at once, one per line in the hint, each with its key path).
 */
export async function loadConfig(options: LoadConfigOptions): Promise<LoadedConfig> {
  const explicit = explicitConfigPath(options);
  const explorer = createExplorer();

  let result: { config: unknown; filepath: string; isEmpty?: boolean } | null;
  if (explicit) {
    await assertReadableFile(explicit.file, explicit.source);
    result = await readWith(() => explorer.load(explicit.file), explicit.file);
    if (result === null) {
      // Only a package.json without the key gets here.
      throw usageError(
        `no "${CONFIG_MODULE_NAME}" key in ${explicit.file} (named by ${explicit.source})`,
        `add a "${CONFIG_MODULE_NAME}" object to it, or name a backupctl.config.json instead`,
      );
    }
  } else {
    result = await readWith(() => explorer.search(options.cwd), options.cwd);
  }

  if (result === null) return { config: ConfigSchema.parse({}), filepath: null };

  const raw = result.isEmpty === true || result.config === undefined ? {} : result.config;
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = formatZodIssues(parsed.error, { suggest: suggestConfigKey });
    const count = problems.length;
    throw new BackupctlError(
      `invalid configuration in ${describeFile(result.filepath)} (${count} problem${count === 1 ? '' : 's'})`,
      { exitCode: ExitCode.USAGE, hint: problems.join('\n') },
    );
  }
  return { config: parsed.data, filepath: result.filepath };
}

// ---------------------------------------------------------------------------------------
// Finding and reading

function explicitConfigPath(options: LoadConfigOptions): { file: string; source: string } | undefined {
  if (options.configPath !== undefined) {
    if (options.configPath.trim() === '') throw usageError('--config needs a file path');
    return { file: path.resolve(options.cwd, options.configPath), source: '--config' };
  }
  const fromEnv = options.env.BACKUPCTL_CONFIG;
  if (fromEnv !== undefined && fromEnv.trim() !== '') {
    return { file: path.resolve(options.cwd, fromEnv), source: 'BACKUPCTL_CONFIG' };
  }
  return undefined;
}

async function assertReadableFile(file: string, source: string): Promise<void> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(file)).isDirectory();
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw usageError(
        `config file not found: ${file}`,
        source === '--config'
          ? 'fix the path, or leave out --config to search for the configuration'
          : 'fix the path in BACKUPCTL_CONFIG, or unset it to search for the configuration',
      );
    }
    throw new BackupctlError(`cannot read config file ${file}: ${code ?? String(error)}`, {
      exitCode: ExitCode.USAGE,
      cause: error,
    });
  }
  if (isDirectory) {
    throw usageError(
      `config path is a directory: ${file}`,
      `name the file itself, e.g. ${path.join(file, `${CONFIG_MODULE_NAME}.config.json`)}`,
    );
  }
}

function describeFile(filepath: string): string {
  return path.basename(filepath) === 'package.json' ? `${filepath} ("${CONFIG_MODULE_NAME}" key)` : filepath;
}

/** Runs a cosmiconfig load/search and turns its failures (syntax errors mostly) into USAGE errors. */
async function readWith<T>(read: () => Promise<T>, fallbackFile: string): Promise<T> {
  try {
    return await read();
  } catch (error) {
    throw readError(error, fallbackFile);
  }
}

function readError(error: unknown, fallbackFile: string): BackupctlError {
  if (error instanceof BackupctlError) return error;
  const details = error instanceof Error ? error : new Error(String(error));
  const carried = (details as { filepath?: unknown }).filepath;
  const file = typeof carried === 'string' ? carried : fallbackFile;
  // cosmiconfig prefixes "JSON Error in <file>:\n" / "YAML Error in <file>:\n"; the first
  // remaining line says what is wrong, the rest (a code frame) goes to the hint.
  const lines = details.message
    .replace(/^(JSON|YAML) Error in [^\n]*:\n/, '')
    .split('\n')
    .map((line) => line.trimEnd());
  const summary = lines.find((line) => line.trim() !== '')?.trim() ?? details.name;
  const frame = lines
    .slice(lines.findIndex((line) => line.trim() !== '') + 1)
    .join('\n')
    .replace(/^\s*\n/, '')
    .trimEnd();
  return new BackupctlError(`cannot parse config file ${file}: ${summary}`, {
    exitCode: ExitCode.USAGE,
    hint: frame === '' ? 'fix the syntax error (the file must be JSON or YAML)' : frame,
    cause: error,
  });
}

/**
 * JSON.parse with a message that names the line and column (cosmiconfig's parse-json
 * prints the code frame twice). Never echoes file content beyond the offending line.
 */
const loadJson: Loader = (filepath, content) => {
  const text = content.replace(/^\uFEFF/, '');
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const position = /at position (\d+)/.exec(message)?.[1];
    const offset = position !== undefined ? Number(position) : /end of JSON input/.test(message) ? text.length : undefined;
    const summary = message
      .replace(/,? ".*" is not valid JSON$/s, '')
      .replace(/ (in|after) JSON at position \d+.*$/s, (_, word: string) => (word === 'after' ? ' after the value' : ''));
    if (offset === undefined) {
      throw usageError(`cannot parse config file ${filepath}: ${summary} (invalid JSON)`, 'fix the syntax error');
    }
    const before = text.slice(0, offset).split('\n');
    const line = before.length;
    const column = (before.at(-1)?.length ?? 0) + 1;
    const source = (text.split('\n')[line - 1] ?? '').replace(/\r$/, '');
    const gutter = `${line} | `;
    throw usageError(
      `cannot parse config file ${filepath}: ${summary} at line ${line}, column ${column}`,
      `${gutter}${source.replace(/\t/g, ' ')}\n${' '.repeat(gutter.length + column - 1)}^`,
    );
  }
};

const refuseCode: Loader = (filepath) => {
  throw usageError(
    `refusing to load ${filepath}: JavaScript/TypeScript config files are not supported (loading them would run code)`,
    `write the configuration as JSON or YAML, e.g. ${CONFIG_MODULE_NAME}.config.json`,
  );
};

/** Rejects cosmiconfig's `$import` (merging other files): one file is the whole configuration. */
function withoutImports(loader: Loader | undefined): Loader {
  if (loader === undefined) throw new Error('cosmiconfig has no default YAML loader');
  return async (filepath, content) => {
    const data: unknown = await loader(filepath, content);
    const own =
      path.basename(filepath) === 'package.json' && isRecord(data) ? data[CONFIG_MODULE_NAME] : data;
    if (isRecord(own) && Object.hasOwn(own, '$import')) {
      throw usageError(
        `invalid configuration in ${describeFile(filepath)}: "$import" is not supported`,
        'put the whole configuration in one file',
      );
    }
    return data;
  };
}

function createExplorer() {
  const json = withoutImports(loadJson);
  const yaml = withoutImports(defaultLoaders['.yaml']);
  try {
    return cosmiconfig(CONFIG_MODULE_NAME, {
      searchPlaces: [...CONFIG_SEARCH_PLACES],
      searchStrategy: 'project',
      // An empty file that is there is the configuration (empty): do not look further up.
      ignoreEmptySearchPlaces: false,
      cache: false,
      loaders: {
        '.json': json,
        '.yaml': yaml,
        '.yml': yaml,
        // `.backupctlrc`, and explicit files with another extension: YAML, a superset of JSON.
        noExt: yaml,
        default: yaml,
        '.js': refuseCode,
        '.cjs': refuseCode,
        '.mjs': refuseCode,
        '.ts': refuseCode,
        '.cts': refuseCode,
        '.mts': refuseCode,
      },
    });
  } catch (error) {
    // cosmiconfig reads its own meta configuration (package.json, .config/config.json) in
    // the process's working directory at this point; a broken one fails here.
    throw readError(error, process.cwd());
  }
}

// ---------------------------------------------------------------------------------------
// Reporting validation problems

type KeyPath = readonly PropertyKey[];

export interface FormatZodIssuesOptions {
  /** Extra text for an unknown key (e.g. ` (did you mean "port"?)`), given the path of its object. */
  suggest?: (objectPath: KeyPath, key: string) => string | undefined;
}

/**
 * One line per problem, `key.path: what is wrong`, in the order zod found them. An
 * unknown-keys issue becomes one line per key; identical lines are reported once.
 */
export function formatZodIssues(error: z.core.$ZodError, options: FormatZodIssuesOptions = {}): string[] {
  const lines: string[] = [];
  const add = (line: string) => {
    if (!lines.includes(line)) lines.push(line);
  };
  const visit = (issue: z.core.$ZodIssue, base: KeyPath) => {
    const at: KeyPath = [...base, ...issue.path];
    switch (issue.code) {
      case 'unrecognized_keys':
        for (const key of issue.keys) {
          add(`${formatKeyPath([...at, key])}: unknown key${options.suggest?.(at, key) ?? ''}`);
        }
        return;
      case 'invalid_key':
      case 'invalid_element': {
        // A record key (a profile name) or a map/set element: the nested issues say why.
        const nested = issue.issues.map((inner) => inner.message).filter((m) => m !== '');
        add(`${formatKeyPath(at)}: ${nested.length > 0 ? [...new Set(nested)].join('; ') : issue.message}`);
        return;
      }
      default:
        add(`${formatKeyPath(at)}: ${issue.message}`);
    }
  };
  for (const issue of error.issues) visit(issue, []);
  return lines;
}

/** `profiles.app.port`, `profiles["app.v2"].tags[0]`; the root is `(top level)`. */
export function formatKeyPath(keyPath: KeyPath): string {
  let out = '';
  for (const key of keyPath) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z0-9_$-]+$/.test(key)) out += out === '' ? key : `.${key}`;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out === '' ? '(top level)' : out;
}

const TOP_LEVEL_KEYS = Object.keys(ConfigSchema.shape);
const PROFILE_KEYS = Object.keys(ProfileSchema.shape);

/** Typo help for unknown keys of the configuration file. */
function suggestConfigKey(objectPath: KeyPath, key: string): string | undefined {
  const atTop = objectPath.length === 0;
  const inProfile =
    (objectPath.length === 1 && objectPath[0] === 'defaults') ||
    (objectPath.length === 2 && objectPath[0] === 'profiles');
  if (!atTop && !inProfile) return undefined;

  const known = atTop ? TOP_LEVEL_KEYS : PROFILE_KEYS;
  const close = closestKey(key, known);
  if (close !== undefined) return ` (did you mean "${close}"?)`;
  if (atTop && PROFILE_KEYS.includes(key)) return ` ("${key}" belongs in "defaults" or in a profile)`;
  if (inProfile && TOP_LEVEL_KEYS.includes(key)) return ` ("${key}" is a top-level setting)`;
  return undefined;
}

function closestKey(key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  const sameCase = known.find((candidate) => candidate.toLowerCase() === lower);
  if (sameCase !== undefined) return sameCase;
  const limit = key.length <= 4 ? 1 : 2;
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance <= limit && (best === undefined || distance < best.distance)) best = { key: candidate, distance };
  }
  return best?.key;
}

/** Levenshtein distance, an adjacent transposition counting as one edit. */
function editDistance(a: string, b: string): number {
  // d[i][j]: distance between the first i characters of a and the first j of b.
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => d[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    const row = d[i] as number[];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let value = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) value = Math.min(value, at(i - 2, j - 2) + 1);
      row[j] = value;
    }
  }
  return at(a.length, b.length);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
