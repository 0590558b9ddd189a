/**
 * Inheritance children whose column order pg_dump cannot keep (test/fixtures/column-order.sql;
 * found in PostgreSQL's own regression database, whose a_star ... f_star came back from a
 * verified backup with their columns in another order, silently): create warns, naming each
 * such table with its order and the order a restore gives, and a restore does give exactly
 * that order. Children whose order a restore keeps, and partitions (attached by pg_dump), are
 * not named; a --table backup names only what it selects.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReportingWarnings, makeTempDir, removeDirs } from '../helpers/backups.js';
import { baseEnv, runCli } from '../helpers/cli.js';
import { fixturePath } from '../helpers/fixtures.js';
import { connectProvided, uniqueName } from '../helpers/pg.js';

const cluster = connectProvided();
const db = uniqueName('colorder');
const databases = [db];
const dirs: string[] = [];
let work: string;
let storage: string;

const cli = (args: string[]) => runCli([...args, '--storage', storage], { env: baseEnv(cluster.env(db)), cwd: work });

const create = (args: string[]) => createReportingWarnings(cli, args);

async function columnsOf(database: string, table: string): Promise<string[]> {
  const rows = await cluster.query<{ attname: string }>(database, 'SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum', [table]);
  return rows.map((row) => row.attname);
}

beforeAll(async () => {
  work = await makeTempDir('colorder');
  dirs.push(work);
  storage = path.join(work, 'backups');
  await cluster.createDatabase(db, fixturePath('column-order.sql'));
});

afterAll(async () => {
  for (const name of databases) await cluster.dropDatabase(name);
  await removeDirs(dirs);
});

describe('inheritance children whose column order a restore changes', () => {
  it('create names them with both orders, and the restore has the order it said', async () => {
    const { id, warnings } = await create([]);
    const warning = warnings.find((line) => line.includes('inheritance child'));
    expect(warning).toBe(
      'a restore puts the columns of 3 inheritance child table(s) in another order: ' +
        'shop.book (id, title, price) comes back as (id, price, title); ' +
        'shop.boxset (id, title, price, discs) comes back as (id, price, title, discs); ' +
        'shop.dvd (minutes, id, price) comes back as (id, price, minutes). ' +
        "pg_dump recreates a child with its parents' columns first (only pg_upgrade keeps the order): the columns and rows are the same, " +
        'but SELECT * and INSERT or COPY without a column list see the new order',
    );

    const target = uniqueName('colorder_restored');
    databases.push(target);
    const restored = await cli(['restore', id, '--target-db', target, '--create', '--yes']);
    expect(restored.code, restored.stderr).toBe(0);
    expect(await columnsOf(target, 'shop.book')).toEqual(['id', 'price', 'title']);
    expect(await columnsOf(target, 'shop.boxset')).toEqual(['id', 'price', 'title', 'discs']);
    expect(await columnsOf(target, 'shop.dvd')).toEqual(['id', 'price', 'minutes']);
    // Named by no warning, and kept.
    for (const table of ['shop.cd', 'shop.sale_2024', 'shop.item']) expect(await columnsOf(target, table)).toEqual(await columnsOf(db, table));
    expect(await cluster.query(target, 'SELECT title, price FROM ONLY shop.book ORDER BY id')).toEqual([
      { title: 'Dune', price: '9.5' },
      { title: 'Emma', price: '7' },
    ]);
  });

  it('a --table backup names only the tables it selects; one whose order stays gets no such warning', async () => {
    const dvd = await create(['--table', 'shop.dvd']);
    expect(dvd.warnings.filter((line) => line.includes('inheritance child'))).toEqual([expect.stringMatching(/^a restore puts the columns of 1 inheritance child table\(s\) in another order: shop\.dvd \(minutes, id, price\) comes back as \(id, price, minutes\)\. /)]);
    const cd = await create(['--table', 'shop.cd', '--table', 'shop.sale*']);
    expect(cd.warnings.filter((line) => line.includes('inheritance child'))).toEqual([]);
  });

  it('a --data-only backup creates no table: no such warning', async () => {
    const { warnings } = await create(['--data-only']);
    expect(warnings.filter((line) => line.includes('inheritance child'))).toEqual([]);
  });
});
