/**
 * pg_dump's --table and --schema patterns (psql's \d patterns), matched as pg_dump matches
 * them, to tell an operator that a pattern selects nothing (a usage error, exit 2) from a
 * pg_dump that failed for another reason. Used only after pg_dump has failed: pg_dump
 * stays the one that selects.
 *
 * The rules (PostgreSQL's fe_utils patternToSQLRegex): outside double quotes, letters fold
 * to lower case, `*` is any run of characters, `?` any one, and `.` separates the schema
 * from the name; inside them, characters stand for themselves (`""` is a quote). The parts
 * are anchored regular expressions; a name without a schema matches only tables visible on
 * the default search_path, as pg_dump resets it before it expands patterns.
 */
import type pg from 'pg';
import { connect } from './client.js';
import type { ConnectionSettings } from './connection.js';

/** Regular-expression characters escaped inside double quotes. */
const REGEX_SPECIAL = '|*+?()[]{}.^$\\';

/** The anchored regular expressions of a pattern's dot-separated parts. */
export function patternRegexes(pattern: string): string[] {
  const parts = [''];
  const append = (text: string) => {
    parts[parts.length - 1] += text;
  };
  const chars = [...pattern];
  let quoted = false;
  for (let at = 0; at < chars.length; at++) {
    const ch = chars[at] as string;
    if (ch === '"') {
      if (quoted && chars[at + 1] === '"') {
        append('"');
        at++;
      } else quoted = !quoted;
    } else if (!quoted && ch >= 'A' && ch <= 'Z') append(ch.toLowerCase());
    else if (!quoted && ch === '*') append('.*');
    else if (!quoted && ch === '?') append('.');
    else if (!quoted && ch === '.') parts.push('');
    else if (ch === '$') append('\\$');
    else append(quoted && REGEX_SPECIAL.includes(ch) ? `\\${ch}` : ch);
  }
  return parts.map((part) => `^(${part})$`);
}

async function matches(client: pg.Client, sql: string, values: string[]): Promise<boolean> {
  const { rows } = await client.query<{ found: boolean }>(sql, values);
  return rows[0]?.found === true;
}

/**
 * Which kind of include pattern selects nothing in `database`, as pg_dump would find: the
 * table patterns, if none of them matches a table, view, sequence or foreign table, or
 * the schema patterns, if none matches a schema (pg_dump fails on each only then). Null
 * when both select something, or when a pattern is one this check does not read (a
 * database-qualified `db.schema.table`): then pg_dump's own failure stands.
 */
export async function unmatchedIncludes(settings: ConnectionSettings, database: string, selection: { schemas: readonly string[]; tables: readonly string[] }): Promise<'--table' | '--schema' | null> {
  const tables = selection.tables.map(patternRegexes);
  const schemas = selection.schemas.map(patternRegexes);
  if (tables.some((parts) => parts.length > 2) || schemas.some((parts) => parts.length > 1)) return null;
  const client = await connect(settings, database);
  try {
    await client.query('RESET search_path');
    if (schemas.length > 0) {
      const found = await Promise.all(
        schemas.map(([name]) => matches(client, 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.~) $1 COLLATE pg_catalog.default) AS found', [name as string])),
      );
      if (!found.includes(true)) return '--schema';
    }
    if (tables.length > 0) {
      const found = await Promise.all(
        tables.map((parts) => {
          const [schema, name] = parts.length === 2 ? parts : [null, parts[0]];
          return matches(
            client,
            `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                             WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'S', 'v', 'm', 'f', 'p'])
                               AND c.relname OPERATOR(pg_catalog.~) $1 COLLATE pg_catalog.default
                               AND ${schema === null ? 'pg_catalog.pg_table_is_visible(c.oid)' : 'n.nspname OPERATOR(pg_catalog.~) $2 COLLATE pg_catalog.default'}) AS found`,
            schema === null ? [name as string] : [name as string, schema],
          );
        }),
      );
      if (!found.includes(true)) return '--table';
    }
    return null;
  } finally {
    await client.end().catch(() => undefined);
  }
}
