import { execa } from 'execa';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturePath, loadChinook, loadTricky, stripDatabaseStatements } from '../helpers/fixtures.js';
import { connectProvided, uniqueName } from '../helpers/pg.js';

const cluster = connectProvided();

/** Row counts of every table of the Chinook sample database 1.4.5 (as loaded from chinook.sql). */
const CHINOOK_ROWS: Record<string, number> = {
  album: 347,
  artist: 275,
  customer: 59,
  employee: 8,
  genre: 25,
  invoice: 412,
  invoice_line: 2240,
  media_type: 5,
  playlist: 18,
  playlist_track: 8715,
  track: 3503,
};

describe('fixtures: chinook.sql', () => {
  // A name that is not "chinook" and needs quoting: proves the DROP/CREATE DATABASE/\c preamble is skipped.
  const db = `${uniqueName('chinook')} copy`;
  beforeAll(async () => {
    await loadChinook(cluster, db);
  });
  afterAll(async () => {
    await cluster.dropDatabase(db);
  });

  it('blanks out only the database-level statements, keeping line numbers', async () => {
    const original = await readFile(fixturePath('chinook.sql'), 'utf8');
    const stripped = stripDatabaseStatements(original);
    expect(stripped.split('\n')).toHaveLength(original.split('\n').length);
    expect(stripped).not.toMatch(/^\s*((DROP|CREATE) DATABASE\b.*;|\\c\b)/im);
    expect(stripped).toContain('   Drop database if it exists'); // comments are left alone
    expect(original.length - stripped.length).toBe(
      'DROP DATABASE IF EXISTS chinook;'.length + 'CREATE DATABASE chinook;'.length + '\\c chinook;'.length,
    );
  });

  it('loads into a database of another name, without creating "chinook"', async () => {
    const dbs = await cluster.query<{ datname: string }>('postgres', 'select datname from pg_database');
    expect(dbs.map((r) => r.datname)).toContain(db);
    expect(dbs.map((r) => r.datname)).not.toContain('chinook');
  });

  it('has the 11 tables with the expected row counts', async () => {
    const tables = await cluster.query<{ table_name: string }>(
      db,
      `select table_name from information_schema.tables
       where table_schema = 'public' and table_type = 'BASE TABLE' order by 1`,
    );
    expect(tables.map((r) => r.table_name)).toEqual(Object.keys(CHINOOK_ROWS));
    const counts: Record<string, number> = {};
    for (const table of Object.keys(CHINOOK_ROWS)) {
      const rows = await cluster.query<{ n: number }>(db, `select count(*)::int as n from public.${table}`);
      counts[table] = rows[0]?.n ?? -1;
    }
    expect(counts).toEqual(CHINOOK_ROWS);
  });

  it('has its 11 foreign keys and known content', async () => {
    const fks = await cluster.query<{ n: number }>(db, "select count(*)::int as n from pg_constraint where contype = 'f'");
    expect(fks[0]?.n).toBe(11);
    const [artist] = await cluster.query(db, 'select name from artist where artist_id = 1');
    expect(artist?.name).toBe('AC/DC');
    const [sum] = await cluster.query(db, 'select sum(total)::text as total from invoice');
    expect(sum?.total).toBe('2328.60');
  });
});

describe('fixtures: tricky.sql', () => {
  const db = uniqueName('tricky');
  beforeAll(async () => {
    await loadTricky(cluster, db);
  });
  afterAll(async () => {
    await cluster.dropDatabase(db);
  });

  it('has 4 large objects, one over 1 MiB', async () => {
    const los = await cluster.query<{ oid: number; size: number; md5: string }>(
      db,
      'select oid::int8::int as oid, length(lo_get(oid)) as size, md5(lo_get(oid)) from pg_largeobject_metadata order by oid',
    );
    expect(los).toEqual([
      { oid: 424201, size: 33, md5: '5ff4b777516cb37522d10ab6b90f882b' },
      { oid: 424202, size: 0, md5: 'd41d8cd98f00b204e9800998ecf8427e' },
      { oid: 424203, size: 256, md5: 'e2c865db4162bed963bfaa9ef6ac18f0' },
      { oid: 424204, size: 1_120_000, md5: '75bfb70fd892142fd09414807275a355' },
    ]);
    const [comment] = await cluster.query(db, "select obj_description(424201, 'pg_largeobject') as c");
    expect(comment?.c).toBe('A small text large object');
  });

  it('has a range-partitioned table with a default partition, rows in each', async () => {
    const parts = await cluster.query<{ part: string; bound: string; n: number }>(
      db,
      `select c.relname as part, pg_get_expr(c.relpartbound, c.oid) as bound,
              (select count(*)::int from sales.measurements m where m.tableoid = c.oid) as n
       from pg_inherits i join pg_class c on c.oid = i.inhrelid
       where i.inhparent = 'sales.measurements'::regclass order by 1`,
    );
    expect(parts).toEqual([
      { part: 'measurements_2023', bound: "FOR VALUES FROM ('2023-01-01') TO ('2024-01-01')", n: 365 },
      { part: 'measurements_2024', bound: "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')", n: 366 },
      { part: 'measurements_default', bound: 'DEFAULT', n: 10 },
    ]);
  });

  it('has an inheritance tree whose parents hold rows of their own (count(*) includes descendants, ONLY does not)', async () => {
    const counts = await cluster.query<{ t: string; own: number; all: number }>(
      db,
      `select t, (xpath('/row/own/text()', query_to_xml(format('select count(*) as own from only %s', t), false, true, '')))[1]::text::int as own,
              (xpath('/row/all/text()', query_to_xml(format('select count(*) as all from %s', t), false, true, '')))[1]::text::int as all
         from unnest(array['archive.events_base', 'archive.events_2022', 'archive.events_2023', 'archive.events_2023_q4',
                           'archive.flags', 'archive.flagged']) as t order by t`,
    );
    expect(counts).toEqual([
      { t: 'archive.events_2022', own: 30, all: 30 },
      { t: 'archive.events_2023', own: 20, all: 27 },
      { t: 'archive.events_2023_q4', own: 7, all: 7 },
      { t: 'archive.events_base', own: 50, all: 111 },
      { t: 'archive.flagged', own: 4, all: 4 },
      { t: 'archive.flags', own: 5, all: 9 },
    ]);
  });

  it('has the awkward objects', async () => {
    const one = async (sql: string) => (await cluster.query(db, sql))[0];
    expect(await one('select count(*)::int as n from public.nocols')).toEqual({ n: 2 });
    expect(await one("select relnatts as n from pg_class where oid = 'public.nocols'::regclass")).toEqual({ n: 0 });
    expect(await one('select count(*)::int as n from app.events')).toEqual({ n: 10_000 });
    expect(await one('select count(*)::int as n from archive.empty_table')).toEqual({ n: 0 });
    expect(await one('select count(*)::int as n from "Ünïcødé Schema"."Table With Spaces"')).toEqual({ n: 3 });
    expect(await one('select count(*)::int as n from public."weird.name""quote"')).toEqual({ n: 2 });
    expect(await one("select relpersistence as p from pg_class where oid = 'app.cache'::regclass")).toEqual({ p: 'u' });
    expect(await one('select last_value::int as v, is_called from app.standalone_seq')).toEqual({ v: 4242, is_called: true });
    expect(await one('select enum_range(null::app.mood)::text as r')).toEqual({ r: '{sad,ok,happy,"très \\"content\\""}' });
    expect(await one("select attgenerated as g from pg_attribute where attrelid = 'app.order_lines'::regclass and attname = 'total'")).toEqual({ g: 's' });
    expect(await one("select string_agg(sku, ',' order by id) as s from app.products")).toEqual({ s: 'ABC-1,XYZ-2,ÜNÏ-3' });
    expect(await cluster.query(db, 'select matviewname, ispopulated from pg_matviews order by 1')).toEqual([
      { matviewname: 'mv_mood_counts', ispopulated: true },
      { matviewname: 'mv_unpopulated', ispopulated: false },
    ]);
    const blobs = await cluster.query(db, 'select id, length(data) as len, md5(data) from app.blobs where id <= 3 order by id');
    expect(blobs).toEqual([
      { id: 1, len: 256, md5: 'e2c865db4162bed963bfaa9ef6ac18f0' },
      { id: 2, len: 0, md5: 'd41d8cd98f00b204e9800998ecf8427e' },
      { id: 3, len: null, md5: null },
    ]);
    expect(await one('select body from app.texts where id = 4')).toEqual({ body: 'before\n\\.\nafter' });
  });

  it('survives pg_dump -Fc | pg_restore unchanged (the fixture itself is sound)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'backupctl-fixture-'));
    const restored = uniqueName('tricky_restored');
    try {
      const dump = path.join(dir, 'tricky.dump');
      await execa(cluster.bin('pg_dump'), ['-Fc', '-f', dump], { env: cluster.env(db) });
      await cluster.createDatabase(restored);
      await execa(cluster.bin('pg_restore'), ['--exit-on-error', '-d', restored, dump], { env: cluster.env(restored) });
      const fingerprint = `
        select (select md5(string_agg(md5(lo_get(oid)), ',' order by oid)) from pg_largeobject_metadata) as los,
               (select md5(string_agg(coalesce(body, '<null>'), '|' order by id)) from app.texts) as texts,
               (select md5(string_agg(digest, '' order by id)) from app.events) as events,
               (select count(*)::int from sales.measurements) as measurements,
               (select count(*)::int from public.nocols) as nocols,
               (select string_agg(matviewname || ':' || ispopulated, ',' order by matviewname) from pg_matviews) as mvs`;
      expect(await cluster.query(restored, fingerprint)).toEqual(await cluster.query(db, fingerprint));
    } finally {
      await cluster.dropDatabase(restored);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
