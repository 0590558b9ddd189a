import { describe, expect, it } from 'vitest';
import { planCounts } from '../../src/pg/counts.js';

describe('planCounts', () => {
  const tables = [
    { name: 'logged', unlogged: false },
    { name: 'unlogged', unlogged: true },
    { name: 'unlogged_partition', unlogged: true },
  ];

  it('on a primary, counts every table, unlogged ones too', () => {
    expect(planCounts(tables, false)).toEqual({ count: tables, empty: [] });
  });

  it('in recovery (a hot standby), leaves the unlogged tables uncounted: pg_dump dumps no rows of theirs there', () => {
    expect(planCounts(tables, true)).toEqual({ count: [tables[0]], empty: [tables[1], tables[2]] });
  });
});
