/**
 * Latency bookkeeping for the local runner and the end-to-end benchmark. Commit → sink latencies are whole
 * milliseconds (`source.ts_ms` and the sink's `Date.now()`), so a histogram with one bucket per millisecond is exact
 * and cheap: adding is O(1), a percentile is one pass, and windows are differences of two copies.
 */

/** Percentiles of a set of latencies, in ms. */
export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

const BUCKETS = 120_000; // two minutes in 1 ms buckets; anything slower lands in the last one

/** A histogram of whole-millisecond latencies. */
export class LatencyHistogram {
  private readonly buckets: Uint32Array;
  private total = 0;
  private highest = 0;

  constructor(from?: LatencyHistogram) {
    this.buckets = from ? from.buckets.slice() : new Uint32Array(BUCKETS);
    if (from) {
      this.total = from.total;
      this.highest = from.highest;
    }
  }

  /** Records one latency. Negative values (clock skew between the database and this process) count as 0. */
  add(ms: number): void {
    const bucket = Math.min(BUCKETS - 1, Math.max(0, Math.round(ms)));
    this.buckets[bucket] = (this.buckets[bucket] ?? 0) + 1;
    this.total++;
    if (bucket > this.highest) this.highest = bucket;
  }

  addAll(values: Iterable<number>): void {
    for (const v of values) this.add(v);
  }

  get count(): number {
    return this.total;
  }

  /** A copy, to take the difference later (see {@link since}). */
  snapshot(): LatencyHistogram {
    return new LatencyHistogram(this);
  }

  /** The latencies recorded after `earlier` (a snapshot of this histogram) was taken. */
  since(earlier: LatencyHistogram): LatencyHistogram {
    const diff = new LatencyHistogram();
    for (let i = 0; i <= this.highest; i++) {
      const n = (this.buckets[i] ?? 0) - (earlier.buckets[i] ?? 0);
      if (n > 0) {
        diff.buckets[i] = n;
        diff.total += n;
        diff.highest = i;
      }
    }
    return diff;
  }

  /** Adds another histogram's counts to this one. */
  merge(other: LatencyHistogram): void {
    for (let i = 0; i <= other.highest; i++) {
      const n = other.buckets[i] ?? 0;
      if (n > 0) this.buckets[i] = (this.buckets[i] ?? 0) + n;
    }
    this.total += other.total;
    if (other.highest > this.highest) this.highest = other.highest;
  }

  /** The smallest latency with at least `q` of the values at or below it (nearest rank). 0 when empty. */
  percentile(q: number): number {
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i <= this.highest; i++) {
      seen += this.buckets[i] ?? 0;
      if (seen >= rank) return i;
    }
    return this.highest;
  }

  summary(): LatencySummary {
    return {
      count: this.total,
      p50: this.percentile(0.5),
      p95: this.percentile(0.95),
      p99: this.percentile(0.99),
      max: this.total === 0 ? 0 : this.highest,
    };
  }
}
