import { describe, expect, it } from 'vitest';
import { settlesWithin } from '../../src/platform/settles-within.js';

describe('settlesWithin', () => {
  it('true for work that resolves or rejects in time, false for work that does not, and never rejects', async () => {
    await expect(settlesWithin(Promise.resolve(1), 100)).resolves.toBe(true);
    await expect(settlesWithin(Promise.reject(new Error('57P01')), 100)).resolves.toBe(true);
    const startedAt = performance.now();
    await expect(settlesWithin(new Promise(() => undefined), 150)).resolves.toBe(false);
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(140);
  });
});
