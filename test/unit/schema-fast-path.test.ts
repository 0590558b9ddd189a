/**
 * The fast path's contract (src/catalog/schema-fast-path.ts): whenever it says yes, zod
 * accepts the value and returns it unchanged, key order included. Checked on valid sidecars
 * of every shape backupctl writes and on thousands of mutations of them (a key removed,
 * added, moved; a value of another type, too long, out of bounds, near-valid).
 */
import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import * as z from 'zod';
import { summaryOf, type Sidecar } from '../../src/catalog/sidecar.js';
import { SidecarSchema, SidecarSummarySchema, parseSidecar } from '../../src/catalog/sidecar-schema.js';
import { fastPath } from '../../src/catalog/schema-fast-path.js';
import { sampleSidecar } from '../helpers/sidecar-fixture.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const ID = '20261123T140509Z-1a2b3c';
const zstd = { type: 'compression' as const, codec: 'zstd' as const, level: 3, threads: 2 };

/** Sidecars of every shape backupctl writes (and a version 1 one), as plain JSON. */
function bases(): Json[] {
  const sidecars: Sidecar[] = [
    sampleSidecar(),
    sampleSidecar({
      tables: [
        { schema: 'public', name: 'invoice', rows: 412 },
        { schema: 'sales', name: 'order line', rows: 0 },
      ],
      tags: ['hourly', 'pre-upgrade'],
      note: 'before the 2.3 migration',
      database: { publicSchema: true, locale: { provider: 'icu', collate: 'C', ctype: 'C', locale: 'und', icuRules: null } },
      dump: { compress: 0, largeObjects: 2, excludeTables: ['public.sessions'], lockWaitTimeout: '30s' },
      artifact: {
        file: `${ID}.dump.zst`,
        stages: [zstd],
        plaintext: { bytes: 4096, sha256: 'c'.repeat(64) },
        compression: { codec: 'zstd', level: 3 },
      },
      verifications: [
        { at: '2026-11-23T15:00:00.000Z', level: 'restore', result: 'passed', durationMs: 5000, serverVersion: '17.2', mismatches: [] },
        { at: '2026-11-24T15:00:00+01:00', level: 'checksum', result: 'failed', durationMs: 10, mismatches: ['artifact sha256 differs'], error: 'tampered' },
      ],
    }),
    sampleSidecar({
      artifact: {
        file: `${ID}.dump.zst.age`,
        stages: [zstd, { type: 'encryption', scheme: 'age', recipients: [{ scheme: 'x25519', fingerprint: 'x25519:sha256:0123456789abcdef' }, { scheme: 'scrypt', workFactor: 18 }] }],
        plaintext: { bytes: 4096, sha256: 'c'.repeat(64) },
        compression: { codec: 'zstd', level: 3 },
        encryption: { scheme: 'age', recipients: ['x25519:sha256:0123456789abcdef'], plaintextSha256: 'd'.repeat(64) },
      },
      globals: { status: 'skipped', reason: 'no permission to read pg_authid' },
      dump: { format: 'directory', jobs: 4, compress: 'zstd:3' },
    }),
  ];
  const json = sidecars.map((sidecar) => JSON.parse(JSON.stringify(sidecar)) as Json);
  const v1 = JSON.parse(JSON.stringify(sidecars[0])) as { [key: string]: Json };
  v1.schemaVersion = 1;
  return [...json, v1];
}

/** Every path to a value in a JSON tree (the root is []). */
function paths(value: Json, at: Array<string | number> = []): Array<Array<string | number>> {
  const found = [at];
  if (Array.isArray(value)) value.forEach((item, index) => found.push(...paths(item, [...at, index])));
  else if (value !== null && typeof value === 'object') for (const [key, item] of Object.entries(value)) found.push(...paths(item, [...at, key]));
  return found;
}

function clone(value: Json): Json {
  return JSON.parse(JSON.stringify(value)) as Json;
}

type Mutation =
  | { kind: 'set'; value: Json }
  | { kind: 'delete' }
  | { kind: 'add'; key: string; value: Json }
  | { kind: 'reverse' }
  | { kind: 'string'; text: string }
  | { kind: 'number'; n: number }
  | { kind: 'grow'; times: number };

const nearStrings = fc.constantFrom('', 'x', '2026-11-23T14:05:09Z', '2026-02-30T00:00:00Z', '2026-11-23 14:05:09', 'A'.repeat(64), 'a'.repeat(63), 'a'.repeat(65), `${ID}.dump`, `${ID}.DUMP`, '20261123T140509Z-1a2b3c', 'app', 'App', 'zstd', 'gzip', 'age', 'x25519', 'included', 'completed', 'x'.repeat(256), 'x'.repeat(1001), 'x'.repeat(20_001));
const nearNumbers = fc.constantFrom(0, -1, 1, 1.5, -0, 22, 23, -131072, -131073, 64, 65, 2 ** 53, 2 ** 53 - 1, 1e308);

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), value: fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json> }),
  fc.record({ kind: fc.constant('delete' as const) }),
  fc.record({ kind: fc.constant('add' as const), key: fc.constantFrom('extra', 'tables', '__proto__', 'id', 'stages', 'mismatches', 'constructor'), value: fc.jsonValue({ maxDepth: 1 }) as fc.Arbitrary<Json> }),
  fc.record({ kind: fc.constant('reverse' as const) }),
  fc.record({ kind: fc.constant('string' as const), text: nearStrings }),
  fc.record({ kind: fc.constant('number' as const), n: nearNumbers }),
  fc.record({ kind: fc.constant('grow' as const), times: fc.integer({ min: 2, max: 3 }) }),
);

/** Applies a mutation at a path (a copy; the base is untouched). */
function mutate(base: Json, path: Array<string | number>, mutation: Mutation): Json {
  const root = clone(base);
  if (path.length === 0) return mutation.kind === 'set' ? mutation.value : root;
  let parent = root as { [key: string]: Json } | Json[];
  for (const step of path.slice(0, -1)) parent = (parent as Record<string | number, Json>)[step] as { [key: string]: Json } | Json[];
  const last = path[path.length - 1] as string | number;
  const slot = parent as Record<string | number, Json>;
  const current = slot[last] as Json;
  switch (mutation.kind) {
    case 'set':
      slot[last] = mutation.value;
      break;
    case 'delete':
      if (Array.isArray(parent)) parent.splice(last as number, 1);
      else delete slot[last];
      break;
    case 'add':
      if (current !== null && typeof current === 'object' && !Array.isArray(current)) {
        // JSON.parse makes `__proto__` an own key; so does this.
        Object.defineProperty(current, mutation.key, { value: mutation.value, enumerable: true, writable: true, configurable: true });
      }
      break;
    case 'reverse':
      if (Array.isArray(current)) current.reverse();
      else if (current !== null && typeof current === 'object') slot[last] = Object.fromEntries(Object.entries(current).reverse());
      break;
    case 'string':
      slot[last] = mutation.text;
      break;
    case 'number':
      slot[last] = mutation.n;
      break;
    case 'grow':
      if (Array.isArray(current)) slot[last] = Array.from({ length: mutation.times }, () => current).flat();
      else if (typeof current === 'string') slot[last] = current.repeat(mutation.times);
      break;
  }
  return JSON.parse(JSON.stringify(root)) as Json;
}

/** The contract: a yes from the fast path is zod's yes with the value returned unchanged. */
function agrees(schema: z.ZodType, value: unknown): boolean {
  const fast = fastPath(schema);
  if (!fast?.(value)) return true;
  const parsed = schema.safeParse(value);
  return parsed.success && isDeepStrictEqual(parsed.data, value) && JSON.stringify(parsed.data) === JSON.stringify(value);
}

describe('schema fast path', () => {
  it('compiles for the sidecar and summary schemas, and takes every sidecar backupctl writes as it stands', () => {
    expect(fastPath(SidecarSchema)).not.toBeNull();
    expect(fastPath(SidecarSummarySchema)).not.toBeNull();
    for (const base of bases()) {
      expect(fastPath(SidecarSchema)?.(base)).toBe(true);
      expect(agrees(SidecarSchema, base)).toBe(true);
      const summary = summaryOf(base as unknown as Sidecar);
      expect(fastPath(SidecarSummarySchema)?.(summary)).toBe(true);
      expect(agrees(SidecarSummarySchema, summary)).toBe(true);
    }
  });

  it('never says yes where zod refuses or changes the value (mutated sidecars)', () => {
    const all = bases();
    const cases = fc.integer({ min: 0, max: all.length - 1 }).chain((which) => {
      const base = all[which] as Json;
      const where = paths(base);
      return fc.tuple(fc.constant(base), fc.constantFrom(...where), mutationArb, fc.boolean());
    });
    let accepted = 0;
    let refused = 0;
    fc.assert(
      fc.property(cases, ([base, path, mutation, summary]) => {
        let value = mutate(base, path, mutation);
        if (summary && value !== null && typeof value === 'object' && !Array.isArray(value)) {
          const { tables: _tables, ...rest } = value;
          value = rest;
        }
        const schema = summary ? SidecarSummarySchema : SidecarSchema;
        if (fastPath(schema)?.(value)) accepted++;
        else refused++;
        return agrees(schema, value);
      }),
      { numRuns: 4000, seed: 20261202 },
    );
    // Both answers occur: the property is exercised on each side.
    expect(accepted).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(1000);
  });

  it('says no to a value zod would change: an unknown key, keys out of order, a default to fill in', () => {
    const [base] = bases() as [{ [key: string]: Json }];
    const check = fastPath(SidecarSchema);
    expect(check?.({ ...base, extra: 1 })).toBe(false);
    expect(SidecarSchema.safeParse({ ...base, extra: 1 }).success).toBe(true);
    const reordered = Object.fromEntries(Object.entries(base).reverse());
    expect(check?.(reordered)).toBe(false);
    expect(SidecarSchema.safeParse(reordered).success).toBe(true);
    const artifact = { ...(base.artifact as { [key: string]: Json }) };
    delete artifact.stages;
    expect(check?.({ ...base, artifact })).toBe(false);
    expect(SidecarSchema.safeParse({ ...base, artifact }).success).toBe(true);
  });

  it('parseSidecar gives the same sidecar and the same errors with the fast path as zod alone', () => {
    for (const base of bases()) {
      const bytes = Buffer.from(JSON.stringify(base));
      const read = parseSidecar('app/x.json', bytes, { id: ID, profile: 'app' });
      expect(read).toStrictEqual(SidecarSchema.parse(base));
    }
    const bad = { ...(bases()[0] as { [key: string]: Json }), durationMs: -5 };
    expect(() => parseSidecar('app/x.json', Buffer.from(JSON.stringify(bad)), { id: ID, profile: 'app' })).toThrow(/invalid sidecar: durationMs/);
  });

  it('has no fast path for a schema it does not know how to check exactly', () => {
    expect(fastPath(z.object({ a: z.string().transform((s) => s.length) }))).toBeNull();
    expect(fastPath(z.object({ mail: z.email() }))).toBeNull();
    expect(fastPath(z.object({ a: z.string() }).catchall(z.number()))).toBeNull();
    expect(fastPath(z.coerce.number())).toBeNull();
  });

  it('answers for a union as zod does: the first option that takes the value', () => {
    const schema = z.union([z.object({ a: z.string() }), z.object({ a: z.string(), b: z.number() })]);
    // zod takes the first option and strips b: not returned as it is.
    expect(fastPath(schema)?.({ a: 'x', b: 1 })).toBe(false);
    expect(agrees(schema, { a: 'x', b: 1 })).toBe(true);
    expect(fastPath(schema)?.({ a: 'x' })).toBe(true);
    // Keys out of the first option's order: zod takes that option and reorders them, so the
    // second option, which has them in this order, must not answer for it.
    const reordered = z.union([z.object({ a: z.string(), b: z.number() }), z.object({ b: z.number(), a: z.string() })]);
    expect(fastPath(reordered)?.({ b: 1, a: 'x' })).toBe(false);
    expect(agrees(reordered, { b: 1, a: 'x' })).toBe(true);
  });
});
