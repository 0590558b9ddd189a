/**
 * The size of S3 parts and Azure blocks for an expected object size (create passes twice
 * the database's size, copy and rekey the stored size): a 100 GB dump must fit S3's
 * 10,000 parts, which 8 MiB parts (80 GB) do not.
 */
import { describe, expect, it } from 'vitest';
import { pieceSizeFor } from '../../src/storage/settings.js';

const MIB = 1024 * 1024;
const GB = 1e9;

describe('pieceSizeFor', () => {
  it('keeps the configured size when the expected object fits the planned number of pieces, or when nothing is expected', () => {
    expect(pieceSizeFor(8 * MIB, undefined, 9000, 5 * 1024 * MIB)).toBe(8 * MIB);
    expect(pieceSizeFor(8 * MIB, 1 * GB, 9000, 5 * 1024 * MIB)).toBe(8 * MIB);
    expect(pieceSizeFor(8 * MIB, 9000 * 8 * MIB, 9000, 5 * 1024 * MIB)).toBe(8 * MIB);
  });

  it('raises it to whole MiB so that the expected size needs at most the planned pieces, and the limit is not reached', () => {
    for (const expected of [9000 * 8 * MIB + 1, 100 * GB, 200 * GB, 2000 * GB]) {
      const size = pieceSizeFor(8 * MIB, expected, 9000, 5 * 1024 * MIB);
      expect(size % MIB).toBe(0);
      expect(Math.ceil(expected / size)).toBeLessThanOrEqual(9000);
      // The store's own limit (S3: 10,000 parts) leaves room for an object 10 % larger than expected.
      expect(Math.ceil((expected * 1.1) / size)).toBeLessThanOrEqual(10_000);
    }
    expect(pieceSizeFor(8 * MIB, 100 * GB, 9000, 5 * 1024 * MIB)).toBe(11 * MIB);
  });

  it('never beyond the store\'s largest piece', () => {
    expect(pieceSizeFor(8 * MIB, 1e15, 45_000, 4000 * MIB)).toBe(4000 * MIB);
  });
});
