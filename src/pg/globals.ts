import { runGuarded } from './child.js';
import { BackupctlError } from '../errors.js';
import { childFailure, type ChildRun } from './dump.js';

const IDENT = String.raw`("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`;
const ROLE_LINE = new RegExp(String.raw`^(?:CREATE ROLE ${IDENT};|ALTER ROLE ${IDENT} )`);
const TABLESPACE_LINE = new RegExp(String.raw`^CREATE TABLESPACE ${IDENT} `);

function unquote(ident: string): string {
  return ident.startsWith('"') ? ident.slice(1, -1).replace(/""/g, '"') : ident;
}

export interface GlobalsScript {
  /** The script with every statement about an existing role or tablespace removed. */
  sql: string;
  /** Roles the script creates. */
  creates: string[];
  /** Existing roles and tablespaces left as they are. */
  skipped: string[];
}

/** Names of the roles and tablespaces a `pg_dumpall --globals-only` script defines. */
export function globalsNames(sql: string): { roles: string[]; tablespaces: string[] } {
  const roles = new Set<string>();
  const tablespaces = new Set<string>();
  for (const line of sql.split('\n')) {
    const role = ROLE_LINE.exec(line);
    if (role) roles.add(unquote((role[1] ?? role[2]) as string));
    const space = TABLESPACE_LINE.exec(line);
    if (space?.[1]) tablespaces.add(unquote(space[1]));
  }
  return { roles: [...roles], tablespaces: [...tablespaces] };
}

/**
 * Prepares a globals script for a server that already has some of its roles and
 * tablespaces: their CREATE and ALTER lines are dropped, so an existing role keeps its
 * password and attributes, and is reported as skipped rather than failing the restore.
 */
export function filterGlobals(sql: string, existingRoles: ReadonlySet<string>, existingTablespaces: ReadonlySet<string>): GlobalsScript {
  const kept: string[] = [];
  const creates = new Set<string>();
  const skipped = new Set<string>();
  for (const line of sql.split('\n')) {
    const role = ROLE_LINE.exec(line);
    if (role) {
      const name = unquote((role[1] ?? role[2]) as string);
      if (existingRoles.has(name)) {
        skipped.add(`role ${name}`);
        continue;
      }
      if (role[1]) creates.add(name);
    }
    const space = TABLESPACE_LINE.exec(line);
    if (space?.[1] && existingTablespaces.has(unquote(space[1]))) {
      skipped.add(`tablespace ${unquote(space[1])}`);
      continue;
    }
    kept.push(line);
  }
  return { sql: kept.join('\n'), creates: [...creates], skipped: [...skipped] };
}

/** Runs a SQL script with psql on the maintenance database, stopping at the first error. */
export async function runScript(psql: string, sql: string, run: ChildRun): Promise<void> {
  try {
    await runGuarded(psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '--no-password', '-d', 'postgres', '-f', '-'], {
      env: run.env,
      extendEnv: false,
      input: sql,
      stdout: 'ignore',
      cancelSignal: run.signal,
    });
  } catch (error) {
    const failure = childFailure('psql (globals)', error, run.signal);
    throw new BackupctlError(`restoring roles and tablespaces failed: ${failure.message}`, { exitCode: failure.exitCode, hint: failure.hint, cause: error });
  }
}
