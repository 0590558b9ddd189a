/**
 * restoredColumnOrder (src/pg/column-order.ts): the order PostgreSQL gives a child that
 * pg_dump recreates with INHERITS: every parent's columns first (a shared one where it first
 * came, the parents' own restored order), then the child's own. A parent it was not given,
 * or a cycle, leaves a table as it is rather than throw (the result only feeds a warning).
 */
import { describe, expect, it } from 'vitest';
import { reorderedByRestore, restoredColumnOrder, type InheritanceTable } from '../../src/pg/column-order.js';

const table = (oid: number, columns: string[], parents: number[] = []): InheritanceTable => ({ oid, name: `t${oid}`, parents, columns });

describe('restoredColumnOrder', () => {
  it('puts the parents columns first, merged in INHERITS order, then the child own', () => {
    const tables = [table(1, ['id', 'b']), table(2, ['x', 'id']), table(3, ['own', 'x', 'b', 'id'], [1, 2])];
    expect(restoredColumnOrder(tables).get(3)).toEqual(['id', 'b', 'x', 'own']);
  });

  it("follows a parent's restored order, not its order on the source", () => {
    const tables = [table(1, ['id', 'price']), table(2, ['id', 'title', 'price'], [1]), table(3, ['id', 'title', 'price', 'n'], [2])];
    expect(reorderedByRestore(tables)).toEqual([
      { name: 't2', columns: ['id', 'title', 'price'], restored: ['id', 'price', 'title'] },
      { name: 't3', columns: ['id', 'title', 'price', 'n'], restored: ['id', 'price', 'title', 'n'] },
    ]);
  });

  it('leaves a table whose parent it was not given, or a cycle, as it is; names only selected tables', () => {
    expect(reorderedByRestore([table(2, ['b', 'a'], [1])])).toEqual([]);
    expect(() => reorderedByRestore([table(1, ['b', 'a'], [2]), table(2, ['a', 'b'], [1])])).not.toThrow();
    expect(reorderedByRestore([table(1, ['a']), { ...table(2, ['b', 'a'], [1]), selected: false }])).toEqual([]);
  });
});
