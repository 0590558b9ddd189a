/**
 * SQL fixtures (see test/fixtures/README.md).
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterClient } from './cluster.js';

const fixturesDir = fileURLToPath(new URL('../fixtures/', import.meta.url));

/** Absolute path of test/fixtures/<name>; throws if there is no such file. */
export function fixturePath(name: string): string {
  const file = path.join(fixturesDir, name);
  if (!existsSync(file)) throw new Error(`no fixture ${name} in ${fixturesDir}`);
  return file;
}

/**
 * chinook.sql starts with `DROP DATABASE IF EXISTS chinook; CREATE DATABASE chinook; \c chinook;`.
 * Blank those lines out (keeping line numbers right for psql's error messages) so the
 * rest can be loaded into a database of any name.
 */
export function stripDatabaseStatements(sql: string): string {
  // Statements must end with ';' so that comment lines such as "   Drop database if it exists" survive.
  return sql.replace(/^[ \t]*(?:(?:DROP|CREATE) DATABASE\b[^\n]*;|\\c(?:onnect)?\b[^\n]*)[ \t]*$/gim, '');
}

/** Creates `dbName` and loads the Chinook sample database into it. */
export async function loadChinook(cluster: ClusterClient, dbName: string): Promise<void> {
  const sql = stripDatabaseStatements(await readFile(fixturePath('chinook.sql'), 'utf8'));
  await cluster.createDatabase(dbName);
  await execa(cluster.bin('psql'), ['-X', '-v', 'ON_ERROR_STOP=1', '-q', '-d', dbName, '-f', '-'], {
    env: cluster.env(dbName),
    input: sql,
  });
}

/** Creates `dbName` from tricky.sql (the edge-case fixture). */
export async function loadTricky(cluster: ClusterClient, dbName: string): Promise<void> {
  await cluster.createDatabase(dbName, fixturePath('tricky.sql'));
}
