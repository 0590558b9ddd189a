/**
 * Short flags mean what they mean in pg_dump and pg_restore, or do not exist: an operator's
 * `-t artist` must never become a tag, nor `-p` a profile (PRODUCT.md). Checked for every
 * option of every command, and for the global options.
 */
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/commands/specs/index.js';
import { GLOBAL_OPTIONS } from '../../src/commands/specs/spec.js';

/** pg_dump's and pg_restore's short options, by the long name they have there. */
const PG_SHORT: Record<string, readonly string[]> = {
  t: ['table'],
  T: ['exclude-table'],
  n: ['schema'],
  N: ['exclude-schema'],
  s: ['schema-only'],
  a: ['data-only'],
  j: ['jobs'],
  F: ['format'],
  Z: ['compress'],
  d: ['dbname', 'target-db'], // pg_restore -d: the database to restore into
  h: ['host'],
  p: ['port'],
  U: ['username'],
  c: ['clean'],
  C: ['create'],
  O: ['no-owner'],
  x: ['no-acl'],
  v: ['verbose'],
};

function shortFlags(flags: string): { short: string; long: string } | null {
  const match = /^-([A-Za-z]), --([a-z-]+)/.exec(flags);
  return match ? { short: match[1] as string, long: match[2] as string } : null;
}

describe('short flags', () => {
  const all = [
    ...GLOBAL_OPTIONS.map((option) => ({ command: '(global)', flags: option.flags })),
    ...COMMANDS.flatMap((spec) => spec.options.map((option) => ({ command: spec.name, flags: option.flags }))),
  ];

  it('there are some (the table, schema and connection flags operators type)', () => {
    expect(all.filter(({ flags }) => shortFlags(flags) !== null).length).toBeGreaterThan(10);
  });

  it.each(all.filter(({ flags }) => shortFlags(flags) !== null))('$command $flags keeps the meaning it has in pg_dump/pg_restore', ({ flags }) => {
    const { short, long } = shortFlags(flags) as { short: string; long: string };
    expect(PG_SHORT[short], `-${short} is not a pg_dump/pg_restore short option`).toBeDefined();
    expect(PG_SHORT[short]).toContain(long);
  });

  it('-t is the table in create and restore, never the tag; -p, -s and -c are not profile, storage or config', () => {
    for (const name of ['create', 'restore']) {
      const spec = COMMANDS.find((command) => command.name === name);
      expect(spec?.options.some((option) => option.flags.startsWith('-t, --table'))).toBe(true);
    }
    for (const { flags } of all) {
      expect(flags).not.toMatch(/^-[A-Za-z], --(tag|profile|storage|config)\b/);
    }
  });
});
