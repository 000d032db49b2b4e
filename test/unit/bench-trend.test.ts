import { describe, expect, it } from 'vitest';
import { slope } from '../../tools/bench/e2e';

describe('the e2e benchmark’s backlog trend', () => {
  it('is the least-squares slope, which sees through a batch saw-tooth', () => {
    // A backlog that fills and empties every second (batches) around a level that rises 30 changes/s.
    const points: Array<[number, number]> = [];
    for (let i = 0; i < 80; i++) {
      const t = i / 4;
      points.push([t, 1000 + 30 * t + (i % 4) * 400]);
    }
    const trend = slope(points);
    expect(trend).toBeGreaterThan(27);
    expect(trend).toBeLessThan(34);
    // End minus start over the window would say three times that: the window happens to end at a peak.
    const [t0, first] = points[0] as [number, number];
    const [t1, last] = points.at(-1) as [number, number];
    expect((last - first) / (t1 - t0)).toBeGreaterThan(85);
  });

  it('is 0 for a flat or too short series', () => {
    expect(slope([[0, 5]])).toBe(0);
    expect(
      slope([
        [0, 7],
        [1, 7],
        [2, 7],
      ]),
    ).toBe(0);
  });
});
