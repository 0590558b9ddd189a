import { stat } from 'node:fs/promises';
import path from 'node:path';
import { cosmiconfig, defaultLoaders, type Loader } from 'cosmiconfig';
import { BackupctlError, ExitCode, errnoCode, usageError } from '../errors.js';
import type { Config } from './schema.js';

export const CONFIG_MODULE_NAME = 'backupctl';

/**
 * Where the search looks, in this order, in the start directory and then in each parent
 * up to the first directory holding a package.json (cosmiconfig's "project" strategy).
 * No JS/TS files: loading a configuration must never run code.
 */
export const CONFIG_SEARCH_PLACES: readonly string[] = [
  `${CONFIG_MODULE_NAME}.config.json`,
  `.${CONFIG_MODULE_NAME}rc`,
  `.${CONFIG_MODULE_NAME}rc.json`,
  `.${CONFIG_MODULE_NAME}rc.yaml`,
  `.${CONFIG_MODULE_NAME}rc.yml`,
  // Last: a file of backupctl's own, written on purpose, wins over a key of the project's manifest.
  'package.json',
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

  // No file: the empty configuration, which is valid by construction (a unit test holds
  // ConfigSchema.parse({}) to it), so a run without a config file never loads zod.
  if (result === null) return { config: {}, filepath: null };

  const raw = result.isEmpty === true || result.config === undefined ? {} : result.config;
  const { validateConfig } = await import('./validate.js');
  return { config: validateConfig(raw, describeFile(result.filepath)), filepath: result.filepath };
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
    hint: 'fix the syntax error (the file must be JSON or YAML)',
    details: frame === '' ? [] : frame.split('\n'),
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
    throw new BackupctlError(`cannot parse config file ${filepath}: ${summary} at line ${line}, column ${column}`, {
      exitCode: ExitCode.USAGE,
      hint: 'fix the syntax error',
      // The offending line and a caret under the column (rendered as they are, indented).
      details: [`${gutter}${source.replace(/\t/g, ' ')}`, `${' '.repeat(gutter.length + column - 1)}^`],
    });
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

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
