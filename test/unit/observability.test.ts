import { describe, expect, it } from 'vitest';
import { sampleForEmf } from '../../functions/shared/observability';

describe('sampleForEmf', () => {
  it('keeps small sets as they are', () => {
    expect(sampleForEmf([3, 1, 2])).toEqual([3, 1, 2]);
  });

  it('keeps 99 evenly spaced order statistics of a large set, min and max included', () => {
    // Arrange
    const values = Array.from({ length: 10_000 }, (_, i) => (i * 7919) % 10_000);
    // Act
    const sample = sampleForEmf(values);
    // Assert: fewer than Powertools' 100-value auto-flush, sorted, spanning the whole range, median preserved
    expect(sample).toHaveLength(99);
    expect(sample[0]).toBe(0);
    expect(sample.at(-1)).toBe(9_999);
    expect(sample[49]).toBe(5_000);
  });
});
