/**
 * asciiPattern (core/create.ts): the hint for a --table/--schema pattern that a non-UTF-8
 * database cannot match: each character outside ASCII a `?` wildcard outside double quotes,
 * the quoted parts keeping their case (checked against pg_dump in database-shapes.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { asciiPattern } from '../../src/core/create.js';
import { patternRegexes } from '../../src/pg/patterns.js';

describe('asciiPattern', () => {
  it('makes each character outside ASCII a wildcard, closing and reopening quotes around it', () => {
    expect(asciiPattern('"Tàble"')).toBe('"T"?"ble"');
    expect(asciiPattern('"Schéma"."Tàble"')).toBe('"Sch"?"ma"."T"?"ble"');
    expect(asciiPattern('"àb"')).toBe('?"b"');
    expect(asciiPattern('sch*.tàble')).toBe('sch*.t?ble');
    expect(asciiPattern('数据')).toBe('??');
  });

  it('keeps a doubled quote inside quotes, and leaves an ASCII pattern as it is', () => {
    expect(asciiPattern('"a""à"')).toBe('"a"""?');
    expect(asciiPattern('"My Table"')).toBe('"My Table"');
    expect(asciiPattern('public.orders_*')).toBe('public.orders_*');
  });
});

describe('patternRegexes (pg_dump --table/--schema patterns)', () => {
  it('folds unquoted letters, makes * and ? wildcards, splits at an unquoted dot', () => {
    expect(patternRegexes('App.Events')).toEqual(['^(app)$', '^(events)$']);
    expect(patternRegexes('public.orders_*')).toEqual(['^(public)$', '^(orders_.*)$']);
    expect(patternRegexes('ord?rs')).toEqual(['^(ord.rs)$']);
  });

  it('keeps quoted parts as they are, regular-expression characters escaped, "" a quote', () => {
    expect(patternRegexes('"My.Schema"."T*"')).toEqual(['^(My\\.Schema)$', '^(T\\*)$']);
    expect(patternRegexes('"a""b"')).toEqual(['^(a"b)$']);
    expect(patternRegexes('price$')).toEqual(['^(price\\$)$']);
    expect(patternRegexes('db.s.t')).toHaveLength(3);
  });
});
