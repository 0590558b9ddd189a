/**
 * Following `pg_restore --verbose` (src/pg/restore-progress.ts, src/pg/restore-counts.ts):
 * - RestoreStderr splits stderr into verbose messages and what pg_restore prints without
 *   --verbose (kept, bounded, for error reporting), also when chunks cut lines and when a
 *   parallel restore's processes interleave their prefixes;
 * - RestoreProgress reports a TABLE DATA item done only when certain: serial (the next
 *   item started, data lines in TOC order) and parallel (`finished item`, after `launching
 *   item`, once), quoted, dotted and unicode names included;
 * - matchTables maps TOC entries to tables only when exactly one matches.
 */
import { describe, expect, it } from 'vitest';
import type { CountableTable } from '../../src/pg/counts.js';
import { matchTables } from '../../src/pg/restore-counts.js';
import { RestoreProgress, RestoreStderr, type DataDone } from '../../src/pg/restore-progress.js';
import { parseTocList } from '../../src/pg/toc.js';

/** The TABLE DATA entries of tricky.sql's archive (pg_restore --list), and a few others around them. */
const TOC = parseTocList(`;
; Archive created at 2026-11-23 17:29:17 UTC
230; 1259 16483 TABLE app blobs postgres
3521; 0 16483 TABLE DATA app blobs postgres
3528; 0 16532 TABLE DATA app cache postgres
3512; 0 16407 TABLE DATA app customers postgres
3533; 0 16563 TABLE DATA public MixedCase postgres
3532; 0 16556 TABLE DATA public weird.name"quote postgres
3524; 0 16509 TABLE DATA sales measurements_2023 postgres
3531; 0 16549 TABLE DATA Ünïcødé Schema Table With Spaces postgres
3562; 0 0 SEQUENCE SET app customers_id_seq postgres
3538; 0 0 BLOBS - BLOBS 
3332; 2606 16489 CONSTRAINT app blobs blobs_pkey postgres
3516; 0 16450 MATERIALIZED VIEW DATA app mv_mood_counts postgres
`);

function stderrOf(onInfo: (m: string) => void = () => undefined, limit?: number): RestoreStderr {
  return new RestoreStderr(onInfo, limit);
}

function feed(progress: RestoreProgress, messages: string[]): DataDone[] {
  return messages.flatMap((m) => progress.message(m));
}

describe('RestoreStderr', () => {
  it('gives verbose messages to onInfo and keeps what pg_restore prints without --verbose', () => {
    const infos: string[] = [];
    const stderr = stderrOf((m) => infos.push(m));
    stderr.write(
      [
        'pg_restore: connecting to database for restore',
        'pg_restore: creating TABLE "public.error_log"',
        'pg_restore: processing data for table "public.fatal: stuff"',
        'pg_restore: while PROCESSING TOC:',
        'pg_restore: from TOC entry 240; 1259 16546 TABLE error_table postgres',
        'pg_restore: NOTICE:  a notice that says error: and fatal:',
        'DETAIL:  a notice detail, verbose only',
        'pg_restore: error: could not execute query: ERROR:  relation "nocols" already exists',
        'Command was: CREATE TABLE public.nocols (',
        ');',
        '',
        'pg_restore: warning: errors ignored on restore: 1',
        '',
      ].join('\n'),
    );
    stderr.end();
    expect(infos).toEqual([
      'connecting to database for restore',
      'creating TABLE "public.error_log"',
      'processing data for table "public.fatal: stuff"',
      'while PROCESSING TOC:',
      'from TOC entry 240; 1259 16546 TABLE error_table postgres',
      'NOTICE:  a notice that says error: and fatal:',
    ]);
    expect(stderr.kept).toBe(
      [
        'pg_restore: error: could not execute query: ERROR:  relation "nocols" already exists',
        'Command was: CREATE TABLE public.nocols (',
        ');',
        '',
        'pg_restore: warning: errors ignored on restore: 1',
      ].join('\n'),
    );
  });

  it('reassembles lines cut across chunks, with CRLF and a last line without newline', () => {
    const infos: string[] = [];
    const stderr = stderrOf((m) => infos.push(m));
    const text = 'pg_restore: processing data for table "Ünïcødé Schema.Table With Spaces"\r\npg_restore: error: boom';
    for (const piece of text.match(/[\s\S]{1,7}/g) ?? []) stderr.write(piece);
    stderr.end();
    expect(infos).toEqual(['processing data for table "Ünïcødé Schema.Table With Spaces"']);
    expect(stderr.kept).toBe('pg_restore: error: boom');
  });

  it('strips prefixes another process slipped in; a line left without its prefix goes with the message before it', () => {
    const infos: string[] = [];
    const stderr = stderrOf((m) => infos.push(m));
    stderr.write('pg_restore:pg_restore: finished item 3562 SEQUENCE SET customers_id_seq\n creating INDEX ATTACH "sales.measurements_default_pkey"\n');
    stderr.write('pg_restore: pg_restore: error: worker failed\n');
    expect(infos).toEqual(['finished item 3562 SEQUENCE SET customers_id_seq']);
    expect(stderr.kept).toBe('pg_restore: pg_restore: error: worker failed');
  });

  it('keeps at most `limit` characters, and at most 8 KiB of one line', () => {
    const stderr = stderrOf(undefined, 100);
    for (let i = 0; i < 50; i++) stderr.write(`pg_restore: error: line ${i}\n`);
    expect(stderr.kept.length).toBeLessThanOrEqual(100);
    expect(stderr.kept.startsWith('pg_restore: error: line 0\n')).toBe(true);

    const long = stderrOf();
    long.write(`pg_restore: error: ${'x'.repeat(100_000)}`);
    long.write(`${'y'.repeat(100_000)}\npg_restore: error: next\n`);
    const lines = long.kept.split('\n');
    expect(lines[0]?.length).toBe(8 * 1024);
    expect(lines[1]).toBe('pg_restore: error: next');
  });
});

describe('RestoreProgress, serial (--jobs 1)', () => {
  const data = (label: string) => `processing data for table "${label}"`;

  it('a data item is done when the next item starts; quoted, dotted and unicode names', () => {
    const progress = new RestoreProgress(TOC, false);
    expect(feed(progress, ['connecting to database for restore', 'creating TABLE "app.blobs"', 'executing BLOB 424201'])).toEqual([]);
    expect(feed(progress, [data('app.blobs')])).toEqual([]);
    expect(feed(progress, ['NOTICE:  from a check constraint'])).toEqual([]); // not an item: blobs may still be loading
    expect(feed(progress, [data('app.cache')])).toEqual([{ dumpId: 3521, label: 'app.blobs', qualified: true, last: false }]);
    expect(feed(progress, [data('app.customers'), data('public.MixedCase'), data('public.weird.name"quote')]).map((d) => d.dumpId)).toEqual([3528, 3512, 3533]);
    expect(feed(progress, [data('sales.measurements_2023'), data('Ünïcødé Schema.Table With Spaces')]).map((d) => d.label)).toEqual([
      'public.weird.name"quote',
      'sales.measurements_2023',
    ]);
    // The last data item: done when post-data (or anything else that is an item) starts.
    // It is the last data item: marked, so that its count does not hold up its primary key.
    expect(feed(progress, ['executing SEQUENCE SET customers_id_seq'])).toEqual([
      { dumpId: 3531, label: 'Ünïcødé Schema.Table With Spaces', qualified: true, last: true },
    ]);
    expect(feed(progress, ['processing BLOBS', 'creating CONSTRAINT "app.blobs blobs_pkey"', 'creating MATERIALIZED VIEW DATA "app.mv_mood_counts"'])).toEqual([]);
  });

  it('stops following at a data line that is not the next TOC entry, and reports nothing more', () => {
    const progress = new RestoreProgress(TOC, false);
    expect(feed(progress, [data('app.blobs'), data('app.customers')])).toEqual([]); // app.cache was next
    expect(feed(progress, [data('app.customers'), 'creating CONSTRAINT "app.blobs blobs_pkey"'])).toEqual([]);
  });

  it('ignores parallel-restore messages', () => {
    const progress = new RestoreProgress(TOC, false);
    expect(feed(progress, ['launching item 3521 TABLE DATA blobs', 'finished item 3521 TABLE DATA blobs'])).toEqual([]);
  });
});

describe('RestoreProgress, parallel (--jobs N)', () => {
  it('a data item is done at "finished item", after its "launching item", once; not on a worker\'s data line', () => {
    const progress = new RestoreProgress(TOC, true);
    expect(
      feed(progress, [
        'processing item 230 TABLE blobs',
        'entering main parallel loop',
        'launching item 3538 BLOBS BLOBS',
        'launching item 3531 TABLE DATA Table With Spaces',
        'processing data for table "Ünïcødé Schema.Table With Spaces"',
        'launching item 3532 TABLE DATA weird.name"quote',
        'processing data for table "app.cache"',
        'creating INDEX "app.events_kind_idx"',
        'finished item 3538 BLOBS BLOBS',
      ]),
    ).toEqual([]);
    expect(feed(progress, ['finished item 3532 TABLE DATA weird.name"quote'])).toEqual([{ dumpId: 3532, label: 'weird.name"quote', qualified: false, last: false }]);
    expect(feed(progress, ['finished item 3531 TABLE DATA Table With Spaces'])).toEqual([{ dumpId: 3531, label: 'Table With Spaces', qualified: false, last: false }]);
    // Again, or never launched, or not a TABLE DATA entry: nothing.
    expect(feed(progress, ['finished item 3531 TABLE DATA Table With Spaces', 'finished item 3521 TABLE DATA blobs'])).toEqual([]);
    expect(feed(progress, ['launching item 3332 TABLE DATA blobs_pkey', 'finished item 3332 TABLE DATA blobs_pkey'])).toEqual([]);
    expect(feed(progress, ['launching item 3516 MATERIALIZED VIEW DATA mv_mood_counts', 'finished item 3516 MATERIALIZED VIEW DATA mv_mood_counts'])).toEqual([]);
    expect(feed(progress, ['launching item 3521 TABLE DATA blobs', 'finished item 3521 TABLE DATA blobs'])).toEqual([{ dumpId: 3521, label: 'blobs', qualified: false, last: false }]);
  });

  it('marks the data item that finishes when no other is left', () => {
    const progress = new RestoreProgress(parseTocList('10; 0 1 TABLE DATA public big postgres\n11; 0 2 TABLE DATA public small postgres'), true);
    expect(feed(progress, ['launching item 10 TABLE DATA big', 'launching item 11 TABLE DATA small', 'finished item 11 TABLE DATA small'])).toEqual([
      { dumpId: 11, label: 'small', qualified: false, last: false },
    ]);
    expect(feed(progress, ['finished item 10 TABLE DATA big'])).toEqual([{ dumpId: 10, label: 'big', qualified: false, last: true }]);
  });
});

describe('matchTables', () => {
  const table = (oid: number, schema: string, name: string, extra: Partial<CountableTable> = {}): CountableTable => ({
    oid,
    schema,
    name,
    relkind: 'r',
    isPartition: false,
    hasChildren: false,
    rowSecurity: false,
    byOid: false,
    unlogged: false,
    ...extra,
  });

  it('matches each TABLE DATA entry to the one table its leading words name', () => {
    const matched = matchTables(TOC, [
      table(1, 'app', 'blobs'),
      table(2, 'app', 'cache'),
      table(3, 'public', 'MixedCase'),
      table(4, 'public', 'weird.name"quote'),
      table(5, 'Ünïcødé Schema', 'Table With Spaces'),
      table(6, 'sales', 'measurements_2023', { isPartition: true }),
      table(7, 'app', 'mv_mood_counts', { relkind: 'm' }),
    ]);
    expect(Object.fromEntries([...matched].map(([id, t]) => [id, t.oid]))).toEqual({ 3521: 1, 3528: 2, 3533: 3, 3532: 4, 3531: 5 });
  });

  it('leaves out ambiguous names and names with line breaks; an inheritance parent is matched (it is counted with ONLY)', () => {
    const toc = parseTocList(['1; 0 1 TABLE DATA a b c owner', '2; 0 2 TABLE DATA p q owner', '3; 0 3 TABLE DATA x y owner', '4; 0 4 TABLE DATA n l owner', '5; 0 5 TABLE DATA s t '].join('\n'));
    const matched = matchTables(toc, [
      table(1, 'a', 'b c'),
      table(2, 'a b', 'c'),
      table(3, 'p', 'q', { hasChildren: true }),
      table(4, 'x', 'y'),
      table(5, 'n', 'l\nm'),
      table(6, 's', 't'),
    ]);
    expect(Object.fromEntries([...matched].map(([id, t]) => [id, t.oid]))).toEqual({ 2: 3, 3: 4, 5: 6 });
    // An owner whose first word makes another table's name: two candidates, none taken.
    const owner = parseTocList('7; 0 7 TABLE DATA s t u v');
    expect(matchTables(owner, [table(1, 's', 't'), table(2, 's', 't u')]).size).toBe(0);
  });
});
