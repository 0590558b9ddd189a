/**
 * asciiPattern (core/create.ts): the hint for a --table/--schema pattern that a non-UTF-8
 * database cannot match: each character outside ASCII a `?` wildcard outside double quotes,
 * the quoted parts keeping their case (checked against pg_dump in database-shapes.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { asciiPattern } from '../../src/core/create.js';

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
