import { describe, expect, it } from 'vitest';
import { type SnapshotPair, type SnapshotRunResult, summarizePairs } from '../../tools/bench/incremental-snapshot';

function run(overrides: Partial<SnapshotRunResult> & { p50: number; p99: number }): SnapshotRunResult {
  const { p50, p99, ...rest } = overrides;
  return {
    snapshot: false,
    chunkSize: null,
    windowMs: 10_000,
    latencyWindowMs: 10_000,
    rowsRead: null,
    rowsPerSec: null,
    status: null,
    withinWorkload: true,
    latency: { count: 10_000, p50, p95: p99, p99, max: p99 },
    committedPerSec: 1000,
    maxLag: 0,
    eventLoopBusy: { main: 0.5 },
    cpuPerSec: {},
    consistent: true,
    problems: [],
    ...rest,
  };
}

const snapshotRun = (rowsPerSec: number, p50: number, p99: number, extra: Partial<SnapshotRunResult> = {}) =>
  run({ snapshot: true, rowsRead: 100_000, rowsPerSec, status: 'completed', p50, p99, ...extra });

describe('the incremental-snapshot benchmark’s summary', () => {
  it('takes medians over the pairs and the p99 ratio within each pair', () => {
    const pairs: SnapshotPair[] = [
      // A slow stretch of the day: both runs of the pair slower, the ratio the same.
      { snapshot: snapshotRun(4000, 40, 400), baseline: run({ p50: 20, p99: 200 }) },
      { snapshot: snapshotRun(8000, 20, 120), baseline: run({ p50: 10, p99: 60 }) },
      { snapshot: snapshotRun(6000, 30, 300), baseline: run({ p50: 15, p99: 100 }) },
    ];
    const summary = summarizePairs(pairs);
    expect(summary.snapshotRowsPerSec).toBe(6000);
    expect(summary.latencyDuringSnapshot).toEqual({ p50: 30, p99: 300 });
    expect(summary.latencyBaseline).toEqual({ p50: 15, p99: 100 });
    // Ratios 2, 2 and 3: the median of the pairs' ratios, not 300 / 100 of the medians.
    expect(summary.p99Ratio).toBe(2);
    expect(summary.consistent).toBe(true);
  });

  it('averages the middle two of an even number of pairs', () => {
    const summary = summarizePairs([
      { snapshot: snapshotRun(4000, 40, 400), baseline: run({ p50: 20, p99: 100 }) },
      { snapshot: snapshotRun(8000, 20, 300), baseline: run({ p50: 10, p99: 100 }) },
    ]);
    expect(summary.snapshotRowsPerSec).toBe(6000);
    expect(summary.p99Ratio).toBe(3.5);
  });

  it('is not consistent when a run is not, or the snapshot did not complete', () => {
    const good = { snapshot: snapshotRun(5000, 20, 100), baseline: run({ p50: 10, p99: 50 }) };
    expect(summarizePairs([good, { ...good, baseline: { ...good.baseline, consistent: false } }]).consistent).toBe(
      false,
    );
    expect(summarizePairs([good, { ...good, snapshot: { ...good.snapshot, consistent: false } }]).consistent).toBe(
      false,
    );
    expect(summarizePairs([{ ...good, snapshot: { ...good.snapshot, status: 'aborted' } }]).consistent).toBe(false);
  });

  it('refuses to summarize no runs', () => {
    expect(() => summarizePairs([])).toThrow(/no runs/);
  });
});
