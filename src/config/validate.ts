import { closestWord } from '../closest.js';
import type { z } from 'zod';
import { BackupctlError, ExitCode } from '../errors.js';
import { ConfigSchema, ProfileSchema, type Config } from './schema.js';

/**
 * Checks a configuration file's contents against the schema. Loaded only when there is a
 * file: zod is the largest module backupctl has, and a run without a config file (cron
 * with flags and PG* variables) must not pay for it. Throws exit code USAGE with every
 * problem at once, one per line in the hint, each with its key path.
 */
export function validateConfig(raw: unknown, fileDescription: string): Config {
  const parsed = ConfigSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const problems = formatZodIssues(parsed.error, { suggest: suggestConfigKey });
  const count = problems.length;
  throw new BackupctlError(`invalid configuration in ${fileDescription} (${count} problem${count === 1 ? '' : 's'})`, {
    exitCode: ExitCode.USAGE,
    details: problems,
    hint: 'fix these keys (backupctl.config.example.json uses every key; schema/backupctl.schema.json documents them)',
  });
}


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

/** The schema's node as zod 4 describes it: enough to walk objects, records and wrappers. */
interface SchemaNode {
  shape?: Record<string, unknown>;
  _zod?: { def?: { type?: string; innerType?: unknown; valueType?: unknown; in?: unknown } };
}

/**
 * The keys the schema allows in the object at `objectPath` (`profiles.app.retention`...):
 * wrappers (optional, nullable, default, pipe) are looked through, a record's key (a
 * profile's name) stands for its values. Undefined where the path leaves the schema.
 */
function keysAt(objectPath: KeyPath): string[] | undefined {
  const unwrap = (node: unknown): SchemaNode | undefined => {
    let current = node as SchemaNode | undefined;
    for (let depth = 0; current && depth < 10; depth++) {
      const def = current._zod?.def;
      const inner = def?.type === 'pipe' ? def.in : def?.innerType;
      if (!['optional', 'nullable', 'default', 'prefault', 'readonly', 'pipe'].includes(def?.type ?? '') || inner === undefined) return current;
      current = inner as SchemaNode;
    }
    return current;
  };
  let node = unwrap(ConfigSchema);
  for (const key of objectPath) {
    if (node?._zod?.def?.type === 'record') node = unwrap(node._zod.def.valueType);
    else if (node?.shape && typeof key === 'string') node = unwrap(node.shape[key]);
    else return undefined;
  }
  return node?.shape ? Object.keys(node.shape) : undefined;
}

/** Typo help for unknown keys of the configuration file, at any depth. */
function suggestConfigKey(objectPath: KeyPath, key: string): string | undefined {
  const atTop = objectPath.length === 0;
  const inProfile =
    (objectPath.length === 1 && objectPath[0] === 'defaults') ||
    (objectPath.length === 2 && objectPath[0] === 'profiles');
  const known = atTop ? TOP_LEVEL_KEYS : inProfile ? PROFILE_KEYS : keysAt(objectPath);
  if (known === undefined) return undefined;
  const close = closestWord(key, known);
  if (close !== undefined) return ` (did you mean "${close}"?)`;
  if (atTop && PROFILE_KEYS.includes(key)) return ` ("${key}" belongs in "defaults" or in a profile)`;
  if (inProfile && TOP_LEVEL_KEYS.includes(key)) return ` ("${key}" is a top-level setting)`;
  return undefined;
}

