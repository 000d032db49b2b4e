/**
 * Where the time between a commit and a sink write goes, per lane, from timestamps the pipeline already has:
 * - `capture`: commit (`source.ts_ms`) → the dev connector built the record (envelope `ts_ms`): WAL decoding in the
 *   server, the replication stream and the connector's parsing and encoding;
 * - `produce`: record built → appended to the broker (the connector hands records on in batches);
 * - `queue`: appended → the lane's invocation started (`processedAt`): batching, and waiting for the partition's
 *   previous batch (one batch per partition at a time);
 * - `lane`: invocation started → the sink write finished: decode, checkpoint read, sink write.
 * Commit times have millisecond resolution; the other stamps are this process's clock.
 */
import type { Lane } from '../../../functions/core/types';
import type { LocalBroker } from '../broker';
import { WRITTEN_FIELDS, type WrittenChanges } from './lane-host';
import { LatencyHistogram, type LatencySummary } from './latency';

export const STAGES = ['capture', 'produce', 'queue', 'lane', 'total'] as const;
export type Stage = (typeof STAGES)[number];

/** Stage histograms per lane; feed it from the pipeline's `onSinkWrite`. */
export class StageTimings {
  private readonly byLane = new Map<Lane, Record<Stage, LatencyHistogram>>();
  /**
   * Per record (topic, partition, offset: the same record reaches every lane): the latest sink write over the
   * lanes, and its commit time (commit → every sink).
   */
  private readonly allSinks = new Map<string, { commit: number; written: number; lanes: number }>();
  private enabled = true;

  constructor(
    private readonly broker: LocalBroker,
    private readonly laneCount: number,
  ) {}

  /** Stops or resumes recording (e.g. during a warm-up). */
  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
  }

  /** Forgets everything recorded so far. */
  reset(): void {
    this.byLane.clear();
    this.allSinks.clear();
  }

  record(lane: Lane, changes: WrittenChanges, writtenAt: number): void {
    if (!this.enabled) return;
    let stages = this.byLane.get(lane);
    if (!stages) {
      stages = Object.fromEntries(STAGES.map((s) => [s, new LatencyHistogram()])) as Record<Stage, LatencyHistogram>;
      this.byLane.set(lane, stages);
    }
    const origin = performance.timeOrigin;
    const { rows, topics } = changes;
    const width = WRITTEN_FIELDS.length;
    for (let i = 0; i < rows.length; i += width) {
      const [t, partition, offset, snapshot, commit, capturedAt, timestamp, processedAt] = rows.subarray(i, i + width);
      // Snapshot reads carry the snapshot's time, not a commit: they say nothing about streaming latency.
      if (snapshot === 1 || commit === undefined || Number.isNaN(commit)) continue;
      const topic = topics[t as number] as string;
      const built = capturedAt !== undefined && !Number.isNaN(capturedAt) ? capturedAt : (timestamp as number);
      const appendedAt = this.broker.recordAt(topic, partition as number, offset as number)?.appendedAt;
      const appended = appendedAt ? origin + appendedAt : built;
      stages.capture.add(built - commit);
      stages.produce.add(appended - built);
      stages.queue.add((processedAt as number) - appended);
      stages.lane.add(writtenAt - (processedAt as number));
      stages.total.add(writtenAt - commit);
      const key = `${topic}\u0000${partition}\u0000${offset}`;
      const all = this.allSinks.get(key);
      if (all) {
        all.written = Math.max(all.written, writtenAt);
        all.lanes++;
      } else this.allSinks.set(key, { commit, written: writtenAt, lanes: 1 });
    }
  }

  /** Percentiles per lane and stage. */
  summary(): Partial<Record<Lane, Record<Stage, LatencySummary>>> {
    const out: Partial<Record<Lane, Record<Stage, LatencySummary>>> = {};
    for (const [lane, stages] of this.byLane) {
      out[lane] = Object.fromEntries(STAGES.map((s) => [s, stages[s].summary()])) as Record<Stage, LatencySummary>;
    }
    return out;
  }

  /** Commit → the last of the lanes' sink writes, per change written by every lane. */
  allSinksLatency(): LatencyHistogram {
    const h = new LatencyHistogram();
    for (const v of this.allSinks.values()) if (v.lanes >= this.laneCount) h.add(v.written - v.commit);
    return h;
  }
}
