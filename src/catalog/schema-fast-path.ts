/**
 * A fast path for validating parsed JSON against a zod schema: `fastPath(schema)` returns a
 * function that says, without allocating, whether zod would accept a value **and return it
 * unchanged** (the same keys in the same order, nothing stripped, no default filled in). The
 * caller then uses the value as it is; for anything else (invalid, or valid but not as it
 * stands) it runs zod, which stays the one authority and gives the error.
 *
 * Why: list, status and prune validate every entry of the catalog index on every run. zod
 * copies each object it parses and allocates per check: for 10,000 sidecar summaries that
 * was ~165 MB of short-lived objects and ~0.35 s of a 1.7 s `list` (GC included).
 *
 * Contract, by construction and by test (test/unit/schema-fast-path.test.ts checks it on
 * thousands of mutated sidecars): `check(value) === true` implies
 * `schema.safeParse(value)` succeeds with data deep-equal to `value`, key order included.
 * The checker is compiled from the schema's own definition (its types, bounds, patterns and
 * refinements, the functions zod itself runs), so it cannot drift from the schema; a schema
 * using anything this file does not know (a transform, a coercion, another format) gets no
 * fast path at all (`fastPath` returns null) rather than an approximate one.
 */
import type * as z from 'zod';

/** A value is `OK` (zod returns it unchanged), `INVALID` (zod refuses it) or `UNSURE` (ask zod). */
const OK = 0;
const INVALID = 1;
const UNSURE = 2;
type Verdict = typeof OK | typeof INVALID | typeof UNSURE;
type Checker = (value: unknown) => Verdict;

/** The parts of zod's internal definitions read here (zod 4: `schema._zod.def`). */
interface Def {
  type: string;
  checks?: Array<{ _zod: { def: CheckDef } }>;
  shape?: Record<string, z.ZodType>;
  catchall?: unknown;
  innerType?: z.ZodType;
  element?: z.ZodType;
  options?: z.ZodType[];
  values?: unknown[];
  entries?: Record<string, unknown>;
  format?: string;
  pattern?: RegExp;
  coerce?: boolean;
}

interface CheckDef {
  check: string;
  maximum?: number;
  minimum?: number;
  length?: number;
  format?: string;
  pattern?: RegExp;
  value?: number | bigint;
  inclusive?: boolean;
  fn?: (value: unknown) => unknown;
}

/** String formats zod checks with their pattern and nothing else. */
const PATTERN_FORMATS = new Set(['datetime']);

/** Thrown while compiling: the schema uses something the fast path does not handle. */
class Unsupported extends Error {}

const compiled = new WeakMap<z.ZodType, ((value: unknown) => boolean) | null>();

/**
 * The fast check of `schema` (compiled once per schema), or null when the schema uses
 * something it does not handle (then every value goes through zod).
 */
export function fastPath(schema: z.ZodType): ((value: unknown) => boolean) | null {
  if (compiled.has(schema)) return compiled.get(schema) ?? null;
  let check: ((value: unknown) => boolean) | null;
  try {
    const checker = compile(schema);
    check = (value) => checker(value) === OK;
  } catch (error) {
    if (!(error instanceof Unsupported)) throw error;
    check = null;
  }
  compiled.set(schema, check);
  return check;
}

function defOf(schema: z.ZodType): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def;
}

function compile(schema: z.ZodType): Checker {
  const def = defOf(schema);
  if (def.coerce) throw new Unsupported('coercion');
  const base = compileType(def);
  const checks = (def.checks ?? []).map((check) => compileCheck(check._zod.def));
  if (checks.length === 0) return base;
  return (value) => {
    const verdict = base(value);
    if (verdict !== OK) return verdict;
    for (const check of checks) {
      const next = check(value);
      if (next !== OK) return next;
    }
    return OK;
  };
}

function compileType(def: Def): Checker {
  switch (def.type) {
    case 'string': {
      if (def.format === undefined) return (value) => (typeof value === 'string' ? OK : INVALID);
      // z.iso.datetime is checked by its pattern alone, as zod checks it. Other formats may
      // run more than a pattern (url, jwt...): none is taken on trust.
      const pattern = def.pattern;
      if (!PATTERN_FORMATS.has(def.format) || !(pattern instanceof RegExp)) throw new Unsupported(`string format ${def.format}`);
      return (value) => (typeof value === 'string' && matches(pattern, value) ? OK : INVALID);
    }
    case 'number':
      return (value) => (typeof value === 'number' && Number.isFinite(value) ? OK : INVALID);
    case 'boolean':
      return (value) => (typeof value === 'boolean' ? OK : INVALID);
    case 'null':
      return (value) => (value === null ? OK : INVALID);
    case 'literal': {
      const values = def.values ?? [];
      return (value) => (values.includes(value) ? OK : INVALID);
    }
    case 'enum': {
      const values = Object.values(def.entries ?? {});
      return (value) => (values.includes(value) ? OK : INVALID);
    }
    case 'nullable': {
      const inner = compile(required(def.innerType));
      return (value) => (value === null ? OK : inner(value));
    }
    case 'optional': {
      const inner = compile(required(def.innerType));
      return (value) => (value === undefined ? OK : inner(value));
    }
    case 'default': {
      // A missing value gets the default: zod's output would differ from the input.
      const inner = compile(required(def.innerType));
      return (value) => (value === undefined ? UNSURE : inner(value));
    }
    case 'array': {
      const element = compile(required(def.element));
      return (value) => {
        if (!Array.isArray(value)) return INVALID;
        let verdict: Verdict = OK;
        for (const item of value) {
          const next = element(item);
          if (next === INVALID) return INVALID;
          if (next === UNSURE) verdict = UNSURE;
        }
        return verdict;
      };
    }
    case 'union':
      return compileUnion(def);
    case 'object':
      return compileObject(def);
    default:
      throw new Unsupported(`type ${def.type}`);
  }
}

/**
 * zod returns the first option that accepts the value: the fast path answers OK only when
 * every option before the one that takes it as it stands surely refuses it.
 */
function compileUnion(def: Def): Checker {
  const options = (def.options ?? []).map((option) => compile(option));
  return (value) => {
    for (const option of options) {
      const verdict = option(value);
      if (verdict !== INVALID) return verdict;
    }
    return INVALID;
  };
}

/**
 * A plain object whose keys are all in the shape, in the shape's order (zod's output
 * follows the shape and drops unknown keys), each value checked; a missing key is checked
 * as undefined (absent and optional is OK).
 */
function compileObject(def: Def): Checker {
  if (def.catchall !== undefined) throw new Unsupported('object catchall');
  const shape = def.shape ?? {};
  const keys = Object.keys(shape);
  const fields = keys.map((key) => compile(required(shape[key])));
  return (value) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return INVALID;
    const prototype = Object.getPrototypeOf(value) as unknown;
    if (prototype !== Object.prototype && prototype !== null) return UNSURE;
    const record = value as Record<string, unknown>;
    let verdict: Verdict = OK;
    // One pass over the value's own keys, in order, along the shape. A shape key passed over
    // is missing, unless the value has it out of the shape's order (then zod's output, which
    // follows the shape, is not the value: UNSURE). A key not in the shape is stripped by zod.
    let next = 0;
    let ordered = true;
    let missingInvalid = false;
    for (const key in record) {
      let at = next;
      while (at < keys.length && keys[at] !== key) at++;
      if (at === keys.length) {
        if (Object.hasOwn(shape, key)) ordered = false;
        verdict = UNSURE;
        continue;
      }
      const missing = missingVerdict(fields, next, at);
      if (missing === INVALID) missingInvalid = true;
      else if (missing === UNSURE) verdict = UNSURE;
      const found = (fields[at] as Checker)(record[key]);
      if (found === INVALID) return INVALID;
      if (found === UNSURE) verdict = UNSURE;
      next = at + 1;
    }
    const missing = missingVerdict(fields, next, keys.length);
    if (missing === INVALID) missingInvalid = true;
    else if (missing === UNSURE) verdict = UNSURE;
    if (missingInvalid) return ordered ? INVALID : UNSURE;
    return verdict;
  };
}

/** The shape's fields `from` to `to` (exclusive) checked as missing: INVALID before UNSURE before OK. */
function missingVerdict(fields: readonly Checker[], from: number, to: number): Verdict {
  let verdict: Verdict = OK;
  for (let index = from; index < to; index++) {
    const next = (fields[index] as Checker)(undefined);
    if (next === INVALID) return INVALID;
    if (next === UNSURE) verdict = UNSURE;
  }
  return verdict;
}

function compileCheck(check: CheckDef): Checker {
  switch (check.check) {
    case 'max_length': {
      const maximum = check.maximum ?? Infinity;
      return (value) => ((value as { length: number }).length <= maximum ? OK : INVALID);
    }
    case 'min_length': {
      const minimum = check.minimum ?? 0;
      return (value) => ((value as { length: number }).length >= minimum ? OK : INVALID);
    }
    case 'length_equals': {
      const length = check.length;
      return (value) => ((value as { length: number }).length === length ? OK : INVALID);
    }
    case 'string_format': {
      if (check.format !== 'regex' || !(check.pattern instanceof RegExp)) throw new Unsupported(`string format ${check.format}`);
      const pattern = check.pattern;
      return (value) => (matches(pattern, value as string) ? OK : INVALID);
    }
    case 'number_format':
      if (check.format !== 'safeint') throw new Unsupported(`number format ${check.format}`);
      return (value) => (Number.isSafeInteger(value) ? OK : INVALID);
    case 'greater_than': {
      const bound = Number(check.value);
      return check.inclusive ? (value) => ((value as number) >= bound ? OK : INVALID) : (value) => ((value as number) > bound ? OK : INVALID);
    }
    case 'less_than': {
      const bound = Number(check.value);
      return check.inclusive ? (value) => ((value as number) <= bound ? OK : INVALID) : (value) => ((value as number) < bound ? OK : INVALID);
    }
    case 'custom': {
      // A refinement: its own function, as zod calls it. Anything but a plain boolean answer
      // (a promise, an exception) is left to zod.
      const fn = check.fn;
      if (typeof fn !== 'function') throw new Unsupported('refinement without a function');
      return (value) => {
        try {
          const result = fn(value);
          return result === true ? OK : result === false ? INVALID : UNSURE;
        } catch {
          return UNSURE;
        }
      };
    }
    default:
      throw new Unsupported(`check ${check.check}`);
  }
}

function matches(pattern: RegExp, value: string): boolean {
  pattern.lastIndex = 0;
  return pattern.test(value);
}

function required(schema: z.ZodType | undefined): z.ZodType {
  if (schema === undefined) throw new Unsupported('a definition without its inner schema');
  return schema;
}
