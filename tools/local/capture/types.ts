import type { OffsetStore, SourceOffset } from './offsets';

/** One Kafka record as Debezium (Kafka Connect + JsonConverter) would produce it. */
export interface CapturedRecord {
  topic: string;
  /** JsonConverter bytes of the key (`{"schema":...,"payload":...}`), null for tables without a primary key. */
  key: Buffer | null;
  /** JsonConverter bytes of the value; null for tombstones. */
  value: Buffer | null;
  /** Kafka headers in order, values as bytes (SimpleHeaderConverter: UTF-8 strings). */
  headers: Array<[string, Buffer]>;
  /** Record timestamp (ms), the capture time like Kafka's CreateTime. */
  timestamp: number;
  /** Set when Debezium pins the partition: heartbeats always go to partition 0. */
  partition?: number;
}

/**
 * The source database cannot be captured as it is: not `wal_level=logical`, a role without the rights, nothing to
 * capture, a slot of the same name used otherwise (and, from the runner's checks, unreachable or without room for
 * another slot). The message says what to change; callers show it as it is, without a stack trace.
 */
export class SourceError extends Error {
  override readonly name = 'SourceError';
}

/** Debezium envelope operations the capture can skip (Debezium's `skipped.operations`). */
export type CaptureOperation = 'c' | 'u' | 'd' | 't';

export interface CaptureLogger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface CaptureOptions {
  /** Any PostgreSQL >= 10 with wal_level=logical; the user needs REPLICATION (or superuser) and CREATE on the db. */
  connectionString: string;
  /** Debezium's `topic.prefix`: topics are `<prefix>.<schema>.<table>`, `source.name` is the prefix. */
  topicPrefix: string;
  slotName: string;
  publicationName: string;
  /** `schema.table` names to capture. @default every ordinary table of `schemas` */
  tables?: string[];
  /** @default ['public'] */
  schemas?: string[];
  /** `initial` snapshots existing rows when there is no completed offset; `never` only streams. @default 'initial' */
  snapshotMode?: 'initial' | 'never';
  /** Heartbeat records to `__debezium-heartbeat.<prefix>` every so often; 0 disables them. @default 0 */
  heartbeatIntervalMs?: number;
  /** How often produced positions are saved to `offsets` and then acknowledged to the slot. @default 1000 */
  offsetFlushIntervalMs?: number;
  /** Operations not emitted (Debezium 2.x defaults to `['t']`; this dev connector emits everything). @default [] */
  skippedOperations?: CaptureOperation[];
  /** Emit a tombstone after each delete (Debezium `tombstones.on.delete`). @default true */
  tombstonesOnDelete?: boolean;
  /** Most records handed to one `produce` call. @default 1000 */
  maxBatchSize?: number;
  /**
   * Hands records on, in order; resolves when they are safely stored (the local broker). Records of one call are
   * never acknowledged to PostgreSQL before the promise resolves and the offset after them is saved.
   */
  produce(records: CapturedRecord[]): Promise<void>;
  offsets: OffsetStore;
  /** Called once if the capture fails after it started (connection lost, produce failed). */
  onError?(err: Error): void;
  logger?: CaptureLogger;
}

export interface CaptureCounts {
  read: number;
  create: number;
  update: number;
  delete: number;
  truncate: number;
  tombstone: number;
  heartbeat: number;
  /** Changes skipped on resume because the stored offset says they were already handed on. */
  skippedOnResume: number;
}

export interface CaptureStatus {
  phase: 'starting' | 'snapshot' | 'streaming' | 'stopped' | 'failed';
  slotName: string;
  publicationName: string;
  /** Where the slot was created (the snapshot's position), when this run created it. */
  consistentPoint: bigint | null;
  /** Last WAL position the server reported (data or keepalive). */
  receivedLsn: bigint;
  /** Position up to which everything received was handed to `produce` (a commit end or an idle WAL end). */
  producedLsn: bigint;
  /** Last offset saved to the OffsetStore. */
  savedOffset: SourceOffset | null;
  /** Last LSN acknowledged to the slot (confirmed_flush_lsn). */
  acknowledgedLsn: bigint;
  /** Messages received and not processed yet. */
  queued: number;
  emitted: CaptureCounts;
  error?: string;
}

/** A running capture. */
export interface PostgresCapture {
  /**
   * Stops the capture. With `flush` (default) the current batch is handed on, the offset saved and acknowledged
   * before the connections close; `flush: false` drops the connections like a crashed process (nothing more is
   * saved or acknowledged), for restart tests.
   */
  stop(options?: { flush?: boolean }): Promise<void>;
  status(): CaptureStatus;
  /**
   * Resolves when every change committed before the call has been handed to `produce`, its offset saved and the
   * slot acknowledged: a barrier for tests and the local runner.
   */
  flushed(timeoutMs?: number): Promise<void>;
}
