/**
 * What the casts of an archive need: pg_dump puts every cast the database made into a
 * dump that --exclude-schema or --exclude-table filter (casts are in no schema; a --schema
 * or --table dump has none), also one whose type or function those filters left out:
 * `CREATE CAST (integer AS public.casttesttype)` then fails the restore of a backup made
 * with `-N public`. Only objects the database made (OID >= 16384) are named; a type is
 * named by its element type for an array, as the archive creates that.
 */
import type pg from 'pg';

export interface CastNeed {
  /** `cast (integer AS public.casttesttype)` */
  cast: string;
  kind: 'type' | 'function';
  name: string;
  oid: number;
  /** The extension the object belongs to (CREATE EXTENSION makes it), if any. */
  extension: number | null;
}

/** The types and functions the casts `casts` (pg_cast OIDs) use. Best effort: none when the query fails. */
export async function castNeeds(client: pg.Client, casts: ReadonlySet<number>): Promise<CastNeed[]> {
  if (casts.size === 0) return [];
  try {
    const { rows } = await client.query<{ cast: string; kind: 'type' | 'function'; name: string; oid: string; extension: string | null }>(
      `SELECT format('cast (%s AS %s)', format_type(c.castsource, NULL), format_type(c.casttarget, NULL)) AS cast,
              used.kind, used.name, used.oid::int8 AS oid, member.refobjid::int8 AS extension
         FROM pg_cast c
         CROSS JOIN LATERAL (
           SELECT 'type', format_type(base.oid, NULL), base.oid, 'pg_type'::regclass
             FROM pg_type t JOIN pg_type base ON base.oid = CASE WHEN t.typelem <> 0 AND t.typlen = -1 THEN t.typelem ELSE t.oid END
            WHERE t.oid IN (c.castsource, c.casttarget)
           UNION ALL
           SELECT 'function', c.castfunc::regprocedure::text, c.castfunc, 'pg_proc'::regclass WHERE c.castfunc <> 0
         ) used(kind, name, oid, catalog)
         LEFT JOIN pg_depend member ON member.classid = used.catalog AND member.objid = used.oid AND member.deptype = 'e'
        WHERE c.oid::int8 = ANY($1::int8[]) AND used.oid >= 16384
        ORDER BY 1, 2, 3`,
      [[...casts]],
    );
    return rows.map((row) => ({ cast: row.cast, kind: row.kind, name: row.name, oid: Number(row.oid), extension: row.extension === null ? null : Number(row.extension) }));
  } catch {
    return [];
  }
}
