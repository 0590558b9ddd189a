/**
 * The pure parts of verify and restore planning, on real tool output:
 * - globals scripts (`pg_dumpall --globals-only` of PostgreSQL 15, quoted role names):
 *   which roles they define, and the script left once existing roles are taken out;
 * - what an archive needs, read from `pg_restore --list` lines (owners, extensions,
 *   object counts; entries without an owner);
 * - the `--use-list` file of a `--schema` restore;
 * - row-count comparison and the throwaway database's name.
 */
import { describe, expect, it } from 'vitest';
import { isBackupId, newBackupId } from '../../src/catalog/id.js';
import type { Sidecar } from '../../src/catalog/sidecar.js';
import { compareCounts, throwawayName } from '../../src/core/verify.js';
import { filterGlobals, globalsNames } from '../../src/pg/globals.js';
import { archiveNeeds, pgRestoreArgs, propertyStatements, rolesInAclSql, rolesInPolicySql, selectionList, tablesWithoutRows, withTableParts } from '../../src/pg/restore.js';
import { parseTocDependencies, parseTocList } from '../../src/pg/toc.js';

/** `pg_dumpall --globals-only` of a PostgreSQL 15.18 cluster (password hash shortened). */
const GLOBALS = `--
-- PostgreSQL database cluster dump
--

\\restrict AClSFfgqLCwAKpkJYXZtPDmqaKs7q3lyMwgk1d0vchPZJ4ok6wS68sdQP6cCS4c

SET default_transaction_read_only = off;

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

--
-- Roles
--

CREATE ROLE "Own er";
ALTER ROLE "Own er" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE app_ro;
ALTER ROLE app_ro WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:mZKic1oQ/LFFI0RhWr5fuA==$qa8k:Ic68';
CREATE ROLE "we""ird";
ALTER ROLE "we""ird" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;

--
-- User Configurations
--

--
-- User Config "app_ro"
--

ALTER ROLE app_ro SET search_path TO 'app', 'public';


--
-- Tablespaces
--

CREATE TABLESPACE fast OWNER postgres LOCATION '/srv/fast';
CREATE TABLESPACE "Slow Disk" OWNER app_ro LOCATION '/srv/slow';


--
-- Role memberships
--

GRANT app_ro TO "Own er" GRANTED BY postgres;


\\unrestrict AClSFfgqLCwAKpkJYXZtPDmqaKs7q3lyMwgk1d0vchPZJ4ok6wS68sdQP6cCS4c

--
-- PostgreSQL database cluster dump complete
--
`;

describe('globalsNames', () => {
  it('finds every role and tablespace, unquoting quoted names', () => {
    const names = globalsNames(GLOBALS);
    expect(names.roles.sort()).toEqual(['Own er', 'app_ro', 'postgres', 'we"ird'].sort());
    expect(names.tablespaces.sort()).toEqual(['Slow Disk', 'fast'].sort());
  });

  it('does not take role names out of other statements or comments', () => {
    expect(globalsNames('-- CREATE ROLE fake;\nGRANT app_ro TO "Own er" GRANTED BY postgres;\nSET role = x;\n')).toEqual({ roles: [], tablespaces: [] });
  });
});

describe('filterGlobals', () => {
  it('drops every line about an existing role or tablespace and reports them as skipped', () => {
    const script = filterGlobals(GLOBALS, new Set(['postgres', 'Own er']), new Set(['fast']));
    expect(script.creates.sort()).toEqual(['app_ro', 'we"ird'].sort());
    expect(script.skipped.sort()).toEqual(['role Own er', 'role postgres', 'tablespace fast'].sort());
    const lines = script.sql.split('\n');
    // An existing role keeps its password and attributes: neither its CREATE nor its ALTER is run.
    expect(lines.filter((l) => l.includes('postgres') && /^(CREATE|ALTER) ROLE/.test(l))).toEqual([]);
    expect(lines).not.toContain('CREATE ROLE "Own er";');
    expect(lines.some((l) => l.startsWith('ALTER ROLE "Own er"'))).toBe(false);
    expect(lines.some((l) => l.startsWith('CREATE TABLESPACE fast '))).toBe(false);
    // The others stay, in order, with their settings and the memberships.
    expect(lines).toContain('CREATE ROLE app_ro;');
    expect(lines).toContain('CREATE ROLE "we""ird";');
    expect(lines).toContain("ALTER ROLE app_ro SET search_path TO 'app', 'public';");
    expect(lines).toContain(`CREATE TABLESPACE "Slow Disk" OWNER app_ro LOCATION '/srv/slow';`);
    expect(lines).toContain('GRANT app_ro TO "Own er" GRANTED BY postgres;');
    expect(lines.indexOf('CREATE ROLE app_ro;')).toBeLessThan(lines.indexOf("ALTER ROLE app_ro SET search_path TO 'app', 'public';"));
    // psql meta-commands and SETs are kept.
    expect(lines.some((l) => l.startsWith('\\restrict '))).toBe(true);
    expect(lines).toContain('SET standard_conforming_strings = on;');
  });

  it('keeps everything on a server that has none of them', () => {
    const script = filterGlobals(GLOBALS, new Set(), new Set());
    expect(script.sql).toBe(GLOBALS);
    expect(script.skipped).toEqual([]);
    expect(script.creates.sort()).toEqual(['Own er', 'app_ro', 'postgres', 'we"ird'].sort());
  });

  it('does not mistake a role whose name is the prefix of another', () => {
    const script = filterGlobals('CREATE ROLE app;\nCREATE ROLE app_ro;\nALTER ROLE app_ro WITH LOGIN;\n', new Set(['app']), new Set());
    expect(script.sql).toBe('CREATE ROLE app_ro;\nALTER ROLE app_ro WITH LOGIN;\n');
    expect(script.skipped).toEqual(['role app']);
  });
});

/** `pg_restore --list` of real archives (PostgreSQL 15): Chinook, tricky.sql, and a database with citext and a cast. */
const TOC = `;
; Archive created at 2026-11-23 15:15:06 UTC
;     dbname: chinook
;     TOC Entries: 59
;
; Selected TOC Entries:
;
6; 2615 16385 SCHEMA - app postgres
3545; 0 0 COMMENT - SCHEMA app postgres
9; 2615 16388 SCHEMA - Ünïcødé Schema postgres
3546; 0 0 COMMENT - SCHEMA "Ünïcødé Schema" postgres
2; 3079 17021 EXTENSION - citext 
3437; 0 0 COMMENT - EXTENSION citext 
3125; 2605 17131 CAST - CAST (integer AS public.citext) 
875; 1247 16403 DOMAIN app email postgres
214; 1259 16584 TABLE public album postgres
214; 1259 17466 TABLE public t1 Own er
215; 1259 17469 TABLE public t2 own2
241; 1259 16549 TABLE Ünïcødé Schema Table With Spaces postgres
222; 1259 16420 TABLE app orders postgres
225; 1259 16450 MATERIALIZED VIEW app mv_mood_counts postgres
3552; 0 0 SEQUENCE OWNED BY app customers_id_seq postgres
3304; 0 0 TABLE ATTACH sales measurements_2023 postgres
3350; 0 0 ACL public TABLE t2 own2
3534; 2613 424201 BLOB - 424201 postgres
3422; 0 16584 TABLE DATA public album postgres
3514; 0 16420 TABLE DATA app orders postgres
3531; 0 16549 TABLE DATA Ünïcødé Schema Table With Spaces postgres
3562; 0 0 SEQUENCE SET app customers_id_seq postgres
3538; 0 0 BLOBS - BLOBS 
3362; 2606 16440 FK CONSTRAINT app order_lines order_lines_order_id_fkey postgres
3516; 0 16450 MATERIALIZED VIEW DATA app mv_mood_counts postgres
`;

describe('archiveNeeds', () => {
  const entries = parseTocList(TOC);

  it('parses every entry line and no comment line', () => {
    expect(entries).toHaveLength(25);
    expect(entries[0]).toMatchObject({ dumpId: 6, catalogOid: 2615, objectOid: 16385, type: 'SCHEMA', rest: '- app postgres', ownerless: false });
    expect(entries.find((e) => e.dumpId === 2)).toMatchObject({ type: 'EXTENSION', rest: '- citext', ownerless: true });
  });

  it('counts objects by their whole type name', () => {
    const { objects } = archiveNeeds(entries);
    expect(objects).toEqual({
      SCHEMA: 2,
      COMMENT: 3,
      EXTENSION: 1,
      CAST: 1,
      DOMAIN: 1,
      TABLE: 5,
      'MATERIALIZED VIEW': 1,
      'SEQUENCE OWNED BY': 1,
      'TABLE ATTACH': 1,
      ACL: 1,
      BLOB: 1,
      'TABLE DATA': 3,
      'SEQUENCE SET': 1,
      BLOBS: 1,
      'FK CONSTRAINT': 1,
      'MATERIALIZED VIEW DATA': 1,
    });
  });

  it('names the extensions, and takes no owner from entries that have none (extension, its comment, a cast, BLOBS)', () => {
    const needs = archiveNeeds(entries, new Set(['postgres', 'Own er', 'own2']));
    expect(needs.extensions).toEqual(['citext']);
    expect(needs.roles).toEqual(['Own er', 'own2', 'postgres']);
    expect(needs.roles).not.toContain('citext');
    expect(needs.roles).not.toContain('public.citext)');
  });

  it('reads a role name with spaces when the role is known, the last word otherwise', () => {
    expect(archiveNeeds(entries, new Set(['Own er'])).roles).toContain('Own er');
    expect(archiveNeeds(entries, new Set()).roles).toEqual(['er', 'own2', 'postgres']);
  });

  it('does not take a table name for the owner', () => {
    // "Table With Spaces" owned by postgres: neither "Spaces postgres" nor "Table With Spaces postgres".
    expect(archiveNeeds(parseTocList('241; 1259 16549 TABLE Ünïcødé Schema Table With Spaces postgres\n'), new Set(['postgres'])).roles).toEqual(['postgres']);
  });

  it('has nothing to say about an empty archive', () => {
    expect(archiveNeeds([])).toEqual({ roles: [], grantees: [], referenced: [], extensions: [], objects: {} });
  });
});

describe('selectionList (restore --schema)', () => {
  const entries = parseTocList(TOC);

  it("adds the schemas' own entries to pg_restore's selection, in archive order", () => {
    const selected = new Set([875, 222, 225, 3552, 3514, 3562, 3362, 3516]);
    const ids = selectionList(entries, selected, ['app'])
      .trim()
      .split('\n')
      .map((line) => Number(line.split(';')[0]));
    expect(ids).toEqual([6, 3545, 875, 222, 225, 3552, 3514, 3562, 3362, 3516]);
  });

  it('finds a schema with spaces and non-ASCII letters, and its quoted comment', () => {
    const list = selectionList(entries, new Set([241, 3531]), ['Ünïcødé Schema']);
    expect(list.trim().split('\n').map((line) => Number(line.split(';')[0]))).toEqual([9, 3546, 241, 3531]);
    // Each line is one pg_restore can read back: "<id>; <catalog oid> <oid> <type> <rest>".
    expect(parseTocList(list).map((e) => e.dumpId)).toEqual([9, 3546, 241, 3531]);
  });

  it('replaces --schema/--table in the pg_restore arguments', () => {
    const base = { schemas: ['app'], tables: ['orders'], noOwner: true, noAcl: false, jobs: 2, singleTransaction: false };
    expect(pgRestoreArgs('/a.dump', 'db', base)).toEqual(['--exit-on-error', '--no-password', '--dbname=db', '--jobs=2', '--no-owner', '--schema=app', '--table=orders', '/a.dump']);
    expect(pgRestoreArgs('/a.dump', 'db', { ...base, useList: '/tmp/l' })).toEqual(['--exit-on-error', '--no-password', '--dbname=db', '--jobs=2', '--no-owner', '--use-list=/tmp/l', '/a.dump']);
    expect(pgRestoreArgs('/a.dump', 'db', { ...base, jobs: 1, singleTransaction: true, schemas: [], tables: [] })).toEqual([
      '--exit-on-error',
      '--no-password',
      '--dbname=db',
      '--single-transaction',
      '--no-owner',
      '/a.dump',
    ]);
  });
});

/** `pg_restore --list --verbose` of a PostgreSQL 15.18 dump (header comments left out). */
const VERBOSE_TOC = `6; 2615 39143 SCHEMA - app postgres
216; 1259 39081 TABLE public items postgres
217; 1259 39089 TABLE public meas postgres
218; 1259 39092 TABLE public meas_2023 postgres
;	depends on: 217
215; 1259 39069 TABLE app orders postgres
;	depends on: 6
3390; 0 0 COMMENT app TABLE orders postgres
;	depends on: 215
214; 1259 39068 SEQUENCE app orders_id_seq postgres
;	depends on: 215 6
3391; 0 0 SEQUENCE OWNED BY app orders_id_seq postgres
;	depends on: 214
240; 1259 39300 SEQUENCE app shared_seq postgres
;	depends on: 6
3213; 0 0 TABLE ATTACH public meas_2023 postgres
;	depends on: 218 217
3215; 2604 39072 DEFAULT app orders id postgres
;	depends on: 215 214 215
3216; 2604 39073 DEFAULT app orders ref postgres
;	depends on: 215 240
3381; 0 39081 TABLE DATA public items postgres
;	depends on: 216
3382; 0 39092 TABLE DATA public meas_2023 postgres
;	depends on: 218
3380; 0 39069 TABLE DATA app orders postgres
;	depends on: 215
3392; 0 0 SEQUENCE SET app orders_id_seq postgres
;	depends on: 214
3221; 2606 39077 CONSTRAINT app orders orders_pkey postgres
;	depends on: 215
3236; 2620 39107 TRIGGER app orders t postgres
;	depends on: 215 251
251; 1255 39400 FUNCTION app touch() postgres
;	depends on: 6
3235; 2606 39084 FK CONSTRAINT public items items_id_fkey postgres
;	depends on: 216 3221 215
3600; 0 0 COMMENT - SCHEMA app postgres
;	depends on: 6
`;

describe('withTableParts (restore --table)', () => {
  const entries = parseTocList(VERBOSE_TOC);
  const dependencies = parseTocDependencies(VERBOSE_TOC);
  const ids = (...names: string[]) => new Set(entries.filter((e) => names.includes(`${e.type} ${e.rest}`)).map((e) => e.dumpId));

  it('reads the dependencies pg_restore --verbose prints after each entry', () => {
    expect(dependencies.get(3235)).toEqual([216, 3221, 215]);
    expect(dependencies.has(216)).toBe(false);
  });

  it('adds the parts of the selected tables whose every dependency is selected (a schema counts as met), to a fixpoint', () => {
    const taken = withTableParts(entries, dependencies, ids('TABLE app orders postgres', 'TABLE DATA app orders postgres'));
    const names = entries.filter((e) => taken.has(e.dumpId)).map((e) => `${e.type} ${e.rest}`);
    expect(names).toEqual([
      'TABLE app orders postgres',
      'COMMENT app TABLE orders postgres',
      'SEQUENCE app orders_id_seq postgres',
      'SEQUENCE OWNED BY app orders_id_seq postgres',
      'DEFAULT app orders id postgres',
      'TABLE DATA app orders postgres',
      'SEQUENCE SET app orders_id_seq postgres',
      'CONSTRAINT app orders orders_pkey postgres',
    ]);
    // Not: the default drawing from a sequence of its own, the trigger of a function, the
    // foreign key from a table not selected, the schema's comment.
  });

  it('a foreign key between two selected tables; a partition attached to its selected parent, which then has rows', () => {
    const both = withTableParts(entries, dependencies, ids('TABLE public items postgres', 'TABLE app orders postgres'));
    expect(both.has(3235)).toBe(true);
    const partitioned = withTableParts(entries, dependencies, ids('TABLE public meas postgres', 'TABLE public meas_2023 postgres', 'TABLE DATA public meas_2023 postgres'));
    expect(partitioned.has(3213)).toBe(true);
    expect(tablesWithoutRows(entries, partitioned, dependencies)).toEqual([]);
    const parentOnly = withTableParts(entries, dependencies, ids('TABLE public meas postgres'));
    expect(parentOnly.has(3213)).toBe(false);
    expect(tablesWithoutRows(entries, parentOnly, dependencies)).toEqual(['public.meas']);
  });
});

describe('compareCounts', () => {
  const sidecar = {
    tables: [
      { schema: 'app', name: 'events', rows: 10_000 },
      { schema: 'Ünïcødé Schema', name: 'Table With Spaces', rows: 3 },
      { schema: 'public', name: 'empty', rows: 0 },
    ],
  } as unknown as Sidecar;

  it('is silent when every count matches', () => {
    expect(
      compareCounts(sidecar, [
        { schema: 'app', name: 'events', rows: 10_000 },
        { schema: 'Ünïcødé Schema', name: 'Table With Spaces', rows: 3 },
        { schema: 'public', name: 'empty', rows: 0 },
        // A table that is not in the backup's counts but has no rows (e.g. an unpopulated one) is fine.
        { schema: 'public', name: 'other', rows: 0 },
      ]),
    ).toEqual([]);
  });

  it('names each table that differs, is missing, or is unexpected, with both counts', () => {
    const problems = compareCounts(sidecar, [
      { schema: 'app', name: 'events', rows: 9_999 },
      { schema: 'public', name: 'empty', rows: 0 },
      { schema: 'public', name: 'stray', rows: 5 },
    ]);
    expect(problems).toEqual([
      'app.events: 9999 rows after restore, 10000 at backup time',
      '"Ünïcødé Schema"."Table With Spaces": missing after restore (expected 3 rows)',
      'public.stray: 5 rows after restore, not in the backup\'s counts',
    ]);
  });

  it('tells apart tables whose names would join the same way', () => {
    const odd = { tables: [{ schema: 'a.b', name: 'c', rows: 1 }] } as unknown as Sidecar;
    expect(compareCounts(odd, [{ schema: 'a', name: 'b.c', rows: 1 }])).toHaveLength(2);
  });
});

describe('throwawayName', () => {
  it('is a lowercase identifier of at most 63 bytes, unique per call, naming the backup', () => {
    const id = '20261123T140509Z-1a2b3c';
    const a = throwawayName(id);
    const b = throwawayName(id);
    expect(a).not.toBe(b);
    for (const name of [a, b]) {
      expect(name).toMatch(/^backupctl_verify_20261123t140509z_1a2b3c_[0-9a-f]{6}$/);
      expect(Buffer.byteLength(name)).toBeLessThanOrEqual(63);
    }
  });

  it('stays within 63 bytes for every id the catalog makes', () => {
    for (let i = 0; i < 50; i++) {
      const id = newBackupId(new Date(Date.UTC(1970 + i * 3, i % 12, 1 + (i % 28), i % 24, i, i)));
      expect(isBackupId(id)).toBe(true);
      expect(Buffer.byteLength(throwawayName(id))).toBeLessThanOrEqual(63);
    }
  });
});

describe('propertyStatements', () => {
  it("keeps the statements on the dumped database's properties, named for the target; never its CREATE, owner or anything else", () => {
    const sql = [
      '\\restrict abc',
      'SET statement_timeout = 0;',
      "SELECT pg_catalog.set_config('search_path', '', false);",
      "CREATE DATABASE app WITH TEMPLATE = template0 ENCODING = 'UTF8';",
      'ALTER DATABASE app OWNER TO postgres;',
      '\\connect app',
      "COMMENT ON DATABASE app IS 'it''s the",
      "DATABASE app; itself';",
      'ALTER DATABASE app CONNECTION LIMIT = 7;',
      "ALTER DATABASE app SET search_path TO 'app, public';",
      `ALTER ROLE "Reader" IN DATABASE app SET statement_timeout TO '5s';`,
      'REVOKE CONNECT,TEMPORARY ON DATABASE app FROM PUBLIC;',
      'GRANT CONNECT ON DATABASE app TO "Reader";',
      "COMMENT ON DATABASE other IS 'not ours';",
      "SECURITY LABEL FOR selinux ON DATABASE app IS 'system_u:object_r:sepgsql_db_t:s0';",
      '\\unrestrict abc',
    ].join('\n');
    const to = '"new ""db"""';
    expect(propertyStatements(sql, 'app', 'new "db"')).toEqual([
      `COMMENT ON DATABASE ${to} IS 'it''s the\nDATABASE app; itself';`,
      `ALTER DATABASE ${to} CONNECTION LIMIT = 7;`,
      `ALTER DATABASE ${to} SET search_path TO 'app, public';`,
      `ALTER ROLE "Reader" IN DATABASE ${to} SET statement_timeout TO '5s';`,
      `REVOKE CONNECT,TEMPORARY ON DATABASE ${to} FROM PUBLIC;`,
      `GRANT CONNECT ON DATABASE ${to} TO "Reader";`,
      `SECURITY LABEL FOR selinux ON DATABASE ${to} IS 'system_u:object_r:sepgsql_db_t:s0';`,
    ]);
  });
  it('splits statements around quoted names holding a quote, and lets through no statement that is not one of the forms whole', () => {
    const sql = [
      'ALTER DATABASE "it\'s" CONNECTION LIMIT = 50;',
      `ALTER ROLE "o'brien" IN DATABASE "it's" SET work_mem TO '64MB';`,
      `ALTER DATABASE "it's" SET statement_timeout TO '30s';`,
      'REVOKE CONNECT,TEMPORARY ON DATABASE "it\'s" FROM PUBLIC;',
      `ALTER DATABASE "it's" SET work_mem TO '1MB'; DROP DATABASE prod;`,
      `COMMENT ON DATABASE "it's" IS 'a'; ALTER ROLE postgres PASSWORD 'x';`,
      'ALTER DATABASE "it\'s" RENAME TO gone;',
      'ALTER DATABASE "it\'s" OWNER TO mallory;',
      'ALTER DATABASE "it\'s" IS_TEMPLATE = true;',
      'ALTER DATABASE "it\'s" WITH ALLOW_CONNECTIONS false;',
    ].join('\n');
    expect(propertyStatements(sql, "it's", 'copy')).toEqual([
      'ALTER DATABASE "copy" CONNECTION LIMIT = 50;',
      `ALTER ROLE "o'brien" IN DATABASE "copy" SET work_mem TO '64MB';`,
      `ALTER DATABASE "copy" SET statement_timeout TO '30s';`,
      'REVOKE CONNECT,TEMPORARY ON DATABASE "copy" FROM PUBLIC;',
    ]);
  });
});

describe('rolesInPolicySql', () => {
  it('reads the roles of CREATE POLICY ... TO and CREATE USER MAPPING FOR as pg_dump writes them', () => {
    const sql = [
      'CREATE POLICY readers ON public.notes FOR SELECT TO reader USING (true);',
      'CREATE POLICY "only mine" ON "My Schema"."Notes" AS RESTRICTIVE FOR UPDATE TO "Report Writer", app_rw, "we""ird" USING ((owner = CURRENT_USER));',
      'CREATE POLICY everyone ON public.notes USING ((id > 0));',
      "CREATE POLICY p ON public.t TO PUBLIC USING (('TO x'::text <> ''::text));",
      "CREATE USER MAPPING FOR mapper SERVER elsewhere OPTIONS (\n    \"user\" 'nobody'\n);",
      'CREATE USER MAPPING FOR public SERVER elsewhere;',
      "COMMENT ON POLICY readers ON public.notes IS 'TO nobody';",
    ].join('\n');
    expect(rolesInPolicySql(sql)).toEqual(['Report Writer', 'app_rw', 'mapper', 'reader', 'we"ird']);
  });
});

describe('rolesInAclSql', () => {
  it('finds grantees, revokees and FOR ROLE names, quoted or not, but not PUBLIC or CURRENT_USER', () => {
    const sql = [
      '--',
      '-- Name: TABLE plain; Type: ACL; Schema: public; Owner: postgres',
      '--',
      'GRANT SELECT ON TABLE public.plain TO reader;',
      'GRANT SELECT,INSERT ON TABLE public.t TO "Report Writer", app_rw;',
      'REVOKE ALL ON SCHEMA public FROM PUBLIC;',
      'GRANT USAGE ON SCHEMA public TO PUBLIC;',
      'ALTER DEFAULT PRIVILEGES FOR ROLE migrator IN SCHEMA app GRANT SELECT ON TABLES TO "we""ird";',
      'GRANT ALL ON FUNCTION f() TO CURRENT_USER;',
      "COMMENT ON TABLE t IS 'GRANT SELECT TO nobody';",
    ].join('\n');
    expect(rolesInAclSql(sql)).toEqual(['Report Writer', 'app_rw', 'migrator', 'reader', 'we"ird']);
  });
});
