/**
 * What a run reports (`--json` prints it): its own module, so that the readable summary (progress.ts), the status
 * page (status.ts) and the run that builds it (summary.ts, run.ts) depend on it rather than on each other.
 */
import type { Lane } from '../../../functions/core/types';
import type { LatencySummary } from './latency';
import type { IncrementalSnapshotSummary } from './snapshots';
import type { Stage } from './stages';
import type { Backpressure } from './system';
import type { Checks, SchemaChangeSummary } from './verify';
import type { WorkloadResult } from './workload';

/** `details.format` of an Avro run. */
export interface AvroFormatSummary {
  kind: 'avro';
  compatibility: string;
  /** Subjects (`<topic>-key`, `<topic>-value`) and distinct schemas in the registry at the end. */
  subjects: number;
  schemas: number;
  /** Keys and values converted, in JsonConverter and in Avro bytes. */
  records: number;
  jsonBytes: number;
  avroBytes: number;
}

/** Per-lane totals in the result. */
export interface LaneSummary {
  running: boolean;
  processed: number;
  duplicates: number;
  deadLettered: number;
  skipped: number;
  retried: number;
  /** Batches given up by the event source mapping and written to the on-failure destination. */
  onFailure: number;
}

/** What a run reports (`--json` prints it). */
export interface RunResult {
  /** Distinct changes captured after the initial snapshot (the workload's, or those made by others). */
  changes: number;
  /** `changes` per second, from the start of the workload until every lane had committed everything. */
  throughputPerSec: number;
  /** Source commit → sink write, every lane's writes together (streamed changes only). */
  latencyMs: Omit<LatencySummary, 'count'>;
  lanes: Record<Lane, LaneSummary>;
  /** Every check that ran found the sinks equal to the source (a check that did not run is reported as such). */
  consistent: boolean;
  checks: Checks;
  /** New schema versions of captured tables seen in the change stream during the run (first version excluded). */
  schemaChanges: SchemaChangeSummary[];
  /** Incremental snapshots the run asked for or saw, with the rows each scanned per table (`schema.table`). */
  incrementalSnapshots: IncrementalSnapshotSummary[];
  details: {
    source: string;
    /** The connector's converter; with Avro, what the local schema registry holds and how much smaller records got. */
    format: { kind: 'json' } | AvroFormatSummary;
    targetRate: number;
    workload: WorkloadResult | null;
    captureEmitted: number;
    snapshotReads: number;
    captureRestarts: number;
    topics: number;
    partitions: number;
    /** Topics of tables without a primary key, created with one partition (see system.ts). */
    singlePartitionTopics: string[];
    /** Tables created during the run and captured from their first row (`schema.table`). */
    addedTables: string[];
    /** Captured tables dropped during the run (topic names): reported, not compared. */
    droppedTables: string[];
    /** How far the capture ran ahead of the slowest lane, and how often it waited (the broker's backlog was full). */
    backpressure: Backpressure;
    batchSize: number;
    windowMs: number;
    /** Invocations in flight per lane. */
    concurrency: number;
    latencySamples: number;
    latencyByLane: Partial<Record<Lane, Omit<LatencySummary, 'count'>>>;
    /** Per lane: invocations of the handler, records delivered, mean batch size, handler instances used. */
    invocations: Partial<
      Record<Lane, { invocations: number; records: number; meanBatch: number; environments: number }>
    >;
    /** Commit → the last lane's sink write, per change (what "synced everywhere" takes). */
    latencyAllSinks: Omit<LatencySummary, 'count'>;
    /** Where the time goes, per lane: p50/p99 of each stage (see stages.ts). */
    stagesMs: Partial<Record<Lane, Record<Stage, { p50: number; p99: number }>>>;
    timingsMs: Record<string, number>;
    /** Where the state was kept (--keep), for exploring. */
    stateDir: string | null;
    cachePrefix: string;
    problems: string[];
  };
}
