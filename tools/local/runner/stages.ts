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
import { LANES, type Lane } from '../../../functions/core/types';
import type { LocalBroker } from '../broker';
import { WRITTEN_FIELDS, type WrittenChanges } from './lane-host';
import { LatencyHistogram, type LatencySummary } from './latency';

export const STAGES = ['capture', 'produce', 'queue', 'lane', 'total'] as const;
export type Stage = (typeof STAGES)[number];

const laneBit = (lane: Lane) => 1 << LANES.indexOf(lane);

/** Stage histograms per lane; feed it from the pipeline's `onSinkWrite`. */
export class StageTimings {
  private readonly byLane = new Map<Lane, Record<Stage, LatencyHistogram>>();
  /**
   * Per record (topic, partition, offset: the same record reaches every lane) not yet written by every lane: the
   * latest sink write so far, its commit time and the lanes that wrote it (one bit each; a retried write of the same
   * lane counts once). Once every lane wrote it, commit → last write goes into `allSinksDone` and the entry goes.
   */
  private readonly allSinks = new Map<string, { commit: number; written: number; lanes: number }>();
  private allSinksDone = new LatencyHistogram();
  private readonly everyLane: number;
  private enabled = true;

  constructor(
    private readonly broker: LocalBroker,
    lanes: readonly Lane[],
  ) {
    this.everyLane = lanes.reduce((mask, lane) => mask | laneBit(lane), 0);
  }

  /** Stops or resumes recording (e.g. during a warm-up). */
  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
  }

  /** Forgets everything recorded so far. */
  reset(): void {
    this.byLane.clear();
    this.allSinks.clear();
    this.allSinksDone = new LatencyHistogram();
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
    const bit = laneBit(lane);
    for (let i = 0; i < rows.length; i += width) {
      // Indexed reads, not a destructured subarray: this runs for every change of every lane.
      const t = rows[i] as number;
      const partition = rows[i + 1] as number;
      const offset = rows[i + 2] as number;
      const snapshot = rows[i + 3];
      const commit = rows[i + 4] as number;
      const capturedAt = rows[i + 5] as number;
      const timestamp = rows[i + 6] as number;
      const processedAt = rows[i + 7] as number;
      // Snapshot reads carry the snapshot's time, not a commit: they say nothing about streaming latency.
      if (snapshot === 1 || Number.isNaN(commit)) continue;
      const topic = topics[t] as string;
      const built = Number.isNaN(capturedAt) ? timestamp : capturedAt;
      const appendedAt = this.broker.recordAt(topic, partition, offset)?.appendedAt;
      const appended = appendedAt ? origin + appendedAt : built;
      stages.capture.add(built - commit);
      stages.produce.add(appended - built);
      stages.queue.add(processedAt - appended);
      stages.lane.add(writtenAt - processedAt);
      stages.total.add(writtenAt - commit);
      const key = `${topic}\u0000${partition}\u0000${offset}`;
      let all = this.allSinks.get(key);
      if (all) {
        all.written = Math.max(all.written, writtenAt);
        all.lanes |= bit;
      } else {
        all = { commit, written: writtenAt, lanes: bit };
        this.allSinks.set(key, all);
      }
      if (all.lanes === this.everyLane) {
        this.allSinksDone.add(all.written - all.commit);
        this.allSinks.delete(key);
      }
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
    return this.allSinksDone.snapshot();
  }
}
