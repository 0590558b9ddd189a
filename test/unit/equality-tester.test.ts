import { describe, expect, it } from 'vitest';

// test/helpers/equality.ts makes toEqual compare byte arrays as bytes; its verdicts must be
// those of vitest's own comparison.
describe('toEqual on byte arrays (test/helpers/equality.ts)', () => {
  const bytes = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 251));

  it('equal bytes are equal, whatever the view', () => {
    expect(Buffer.from(bytes)).toEqual(bytes);
    expect(new Uint8Array(bytes)).toEqual(bytes);
    expect(Buffer.concat([Buffer.from([9]), bytes]).subarray(1)).toEqual(bytes);
    expect({ file: Buffer.from(bytes), n: 1 }).toEqual({ file: bytes, n: 1 });
    expect(Buffer.alloc(0)).toEqual(Buffer.alloc(0));
  });

  it('one byte changed, one byte more or less, or another type is not equal', () => {
    const changed = Buffer.from(bytes);
    changed[4000] = (changed[4000] as number) ^ 1;
    expect(changed).not.toEqual(bytes);
    expect(bytes.subarray(1)).not.toEqual(bytes);
    expect(Buffer.concat([bytes, Buffer.alloc(1)])).not.toEqual(bytes);
    expect({ file: changed }).not.toEqual({ file: bytes });
    expect(Buffer.from('ab')).not.toEqual('ab');
    expect(Buffer.from('ab')).not.toEqual([97, 98]);
  });
});
