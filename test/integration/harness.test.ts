import { execa } from 'execa';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { fixturePath } from '../helpers/fixtures.js';
import { connectProvided, uniqueName } from '../helpers/pg.js';

const cluster = connectProvided();

describe('test harness: the shared PostgreSQL cluster', () => {
  it('answers select version() with the discovered major version', async () => {
    const rows = await cluster.query<{ version: string; num: number }>(
      'postgres',
      "select version(), current_setting('server_version_num')::int as num",
    );
    expect(rows[0]?.version).toMatch(/^PostgreSQL \d+/);
    expect(Math.floor((rows[0]?.num ?? 0) / 10000)).toBe(cluster.majorVersion);
    expect(cluster.binDir).toMatch(/bin$/);
  });

  it('listens on 127.0.0.1 only, with the requested settings', async () => {
    const rows = await cluster.query<{ name: string; setting: string }>(
      'postgres',
      `select name, setting from pg_settings
       where name in ('listen_addresses', 'port', 'fsync', 'max_prepared_transactions', 'server_encoding')
       order by name`,
    );
    expect(Object.fromEntries(rows.map((r) => [r.name, r.setting]))).toEqual({
      fsync: 'off',
      listen_addresses: '127.0.0.1',
      max_prepared_transactions: '10',
      port: String(cluster.port),
      server_encoding: 'UTF8',
    });
  });

  it('rejects a wrong password with SQLSTATE 28P01', async () => {
    const client = new pg.Client({
      host: cluster.host,
      port: cluster.port,
      user: cluster.user,
      password: `${cluster.password}-wrong`,
      database: 'postgres',
    });
    await expect(client.connect()).rejects.toMatchObject({ code: '28P01' });
    await client.end().catch(() => undefined);
  });

  it('gives child processes a working libpq environment and URL', async () => {
    const viaEnv = await execa(cluster.bin('psql'), ['-X', '-A', '-t', '-c', 'select current_database()'], {
      env: cluster.env('postgres'),
    });
    expect(viaEnv.stdout.trim()).toBe('postgres');
    const viaUrl = await execa(cluster.bin('psql'), ['-X', '-A', '-t', '-d', cluster.url('template1'), '-c', 'select 1+1']);
    expect(viaUrl.stdout.trim()).toBe('2');
  });

  it('creates a database from a fixture, and drops it', async () => {
    const db = uniqueName('harness');
    await cluster.createDatabase(db, fixturePath('tricky.sql'));
    try {
      const tables = await cluster.query<{ t: string }>(
        db,
        `select format('%I.%I', schemaname, tablename) as t from pg_tables
         where schemaname not in ('pg_catalog', 'information_schema') order by 1`,
      );
      expect(tables.map((r) => r.t)).toEqual(
        expect.arrayContaining([
          'app.customers',
          'app.events',
          'public.nocols',
          '"Ünïcødé Schema"."Table With Spaces"',
          'public."weird.name""quote"',
        ]),
      );
    } finally {
      await cluster.dropDatabase(db);
    }
    const left = await cluster.query('postgres', 'select 1 from pg_database where datname = $1', [db]);
    expect(left).toHaveLength(0);
  });

  it('creates login roles that can connect with their password', async () => {
    const role = uniqueName('harness_role');
    await cluster.createRole(role, "p'ss w0rd", 'NOSUPERUSER');
    try {
      const client = new pg.Client({
        host: cluster.host,
        port: cluster.port,
        user: role,
        password: "p'ss w0rd",
        database: 'postgres',
      });
      await client.connect();
      try {
        const { rows } = await client.query<{ u: string; su: boolean }>(
          "select current_user as u, current_setting('is_superuser')::bool as su",
        );
        expect(rows[0]).toEqual({ u: role, su: false });
      } finally {
        await client.end();
      }
    } finally {
      await cluster.query('postgres', `drop role if exists "${role}"`);
    }
  });
});
