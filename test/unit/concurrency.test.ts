import { describe, expect, it } from 'vitest';
import { mapInOrder } from '../../tools/lib/concurrency';

describe('mapInOrder', () => {
  it('keeps at most the limit in flight and returns results in the items’ order', async () => {
    let inFlight = 0;
    let most = 0;
    const items = Array.from({ length: 25 }, (_, i) => i);
    const results = await mapInOrder(items, 4, async (i) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, (i * 7) % 5)); // finish out of order
      inFlight--;
      return i * 2;
    });
    expect(results).toEqual(items.map((i) => i * 2));
    expect(most).toBe(4);
  });

  it('maps nothing to nothing, and fails with the first error', async () => {
    await expect(mapInOrder([], 4, async () => 1)).resolves.toEqual([]);
    await expect(
      mapInOrder([1, 2, 3], 2, async (i) => {
        if (i === 2) throw new Error('two');
        return i;
      }),
    ).rejects.toThrow('two');
  });
});
