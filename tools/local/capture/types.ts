import type { SnapshotSignal } from '../../../functions/core/types';
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

/**
 * The source database's part in a failure, as a {@link SourceError} that says what to change: a role without the
 * rights to capture (insufficient_privilege: creating the publication or the slot, reading a table for the
 * snapshot), or, while streaming, the server going away (its connection refused, reset or terminated: a shutdown, a
 * restart, an administrator's terminate). Anything else is the capture's own fault and stays as it is.
 */
export function sourceErrorOf(err: Error, phase: 'starting' | 'streaming'): SourceError | undefined {
  if (err instanceof SourceError) return err;
  const code = (err as { code?: string }).code ?? '';
  if (code === '42501') {
    return new SourceError(
      `${err.message} — capturing needs a role with REPLICATION (or a superuser) that may create publications in ` +
        'the database (CREATE on it), owns the captured tables (to publish them) and can read them',
      { cause: err },
    );
  }
  const gone =
    code.startsWith('57P') || // admin_shutdown, crash_shutdown, cannot_connect_now, database_dropped
    code.startsWith('08') || // connection_exception
    ['ECONNREFUSED', 'ECONNRESET', 'EPIPE'].includes(code) ||
    /Connection terminated/.test(err.message);
  if (phase === 'streaming' && gone) {
    return new SourceError(`lost the connection to the source database: ${err.message}`, { cause: err });
  }
  return undefined;
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
  /**
   * Debezium's `heartbeat.action.query` on a heartbeat table (`schema.table`, columns `id int PRIMARY KEY, ts
   * timestamptz`): at every heartbeat the capture upserts row 1 with `now()`. The change travels like any other, so
   * every lane applies a fresh commit even when nobody else writes (the lanes' `SourceFreshness`), and on RDS it is
   * what moves the slot. Its changes count as `heartbeatAction`, not as creates or updates.
   */
  heartbeatTable?: string;
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
  /**
   * Called (and awaited) before the first record of a table found while streaming is produced: a table created in a
   * captured schema after the capture started. The runner creates the topic (one partition for keyless tables).
   */
  onTableAdded?(table: AddedTable): void | Promise<void>;
  /**
   * Debezium's `signal.data.collection`: `schema.table` of a signal table (`id varchar(42) PRIMARY KEY, type
   * varchar(32) NOT NULL, data varchar(2048)`), created when missing and added to the publication. INSERTs of
   * `execute-snapshot` / `stop-snapshot` rows seen in the stream are signals; the incremental snapshot writes its
   * window watermarks there (`snapshot-window-open` / `-close`). Its own changes are never emitted as records.
   * Without it, watermarks are `pg_logical_emit_message` messages (PostgreSQL >= 14) and signals come only through
   * {@link PostgresCapture.signal}.
   */
  signalTable?: string;
  /** Rows per incremental-snapshot chunk (Debezium `incremental.snapshot.chunk.size`). @default 1024 */
  incrementalChunkSize?: number;
  /** Incremental-snapshot progress as Debezium notifications (aggregate_type `Incremental Snapshot`). */
  onNotification?(notification: SnapshotNotification): void | Promise<void>;
  /**
   * Test hook: awaited after a chunk was SELECTed and before its high watermark is written, so a test can change
   * rows inside the window deterministically. Not for production use.
   */
  beforeHighWatermark?(chunk: { table: string; chunkId: string; rows: number }): Promise<void>;
}

/** A table the capture started capturing while streaming (see `onTableAdded`). */
export interface AddedTable {
  schema: string;
  table: string;
  topic: string;
  /** False when the table has no primary key: its records have a null Kafka key. */
  hasKey: boolean;
}

/** Debezium's `stop-snapshot` signal: stops the listed collections, or the whole incremental snapshot. */
export interface StopSnapshotSignal {
  id: string;
  type: 'stop-snapshot';
  data: { 'data-collections'?: string[]; type: 'incremental' | 'INCREMENTAL' };
}

/** What {@link PostgresCapture.signal} takes: Debezium's execute-snapshot or stop-snapshot signal. */
export type CaptureSignal = SnapshotSignal | StopSnapshotSignal;

/** Debezium's notification (io.debezium.pipeline.notification.Notification) as its JSON channel writes it. */
export interface SnapshotNotification {
  /** The signal's id (Debezium's correlation id). */
  id: string;
  aggregate_type: 'Incremental Snapshot';
  /** STARTED, IN_PROGRESS, TABLE_SCAN_COMPLETED, COMPLETED, ABORTED. */
  type: string;
  additional_data: Record<string, string>;
  /** Milliseconds since the epoch, as a decimal string. */
  timestamp: string;
}

/** The running incremental snapshot, in `status()`. */
export interface IncrementalSnapshotStatus {
  /** The execute-snapshot signal's id. */
  id: string;
  /** Tables still to snapshot, the current one first (`schema.table`). */
  tables: string[];
  currentTable: string | null;
  /**
   * Rows read by chunks since this capture process started the snapshot (or resumed it); TABLE_SCAN_COMPLETED's
   * `total_rows_scanned` is the table's total across restarts.
   */
  rowsRead: number;
  /** Reads emitted (rows read minus rows a streamed change superseded inside the window). */
  rowsEmitted: number;
  chunks: number;
}

export interface CaptureCounts {
  read: number;
  create: number;
  update: number;
  delete: number;
  truncate: number;
  tombstone: number;
  heartbeat: number;
  /** Changes of the heartbeat table (see CaptureOptions.heartbeatTable), not counted as creates or updates. */
  heartbeatAction: number;
  /** Changes skipped on resume because the stored offset says they were already handed on. */
  skippedOnResume: number;
  /** Reads of incremental snapshots (`source.snapshot` = incremental), also counted in `read`. */
  incrementalRead: number;
}

/** Counts at zero. */
export function emptyCaptureCounts(): CaptureCounts {
  return {
    read: 0,
    create: 0,
    update: 0,
    delete: 0,
    truncate: 0,
    tombstone: 0,
    heartbeat: 0,
    heartbeatAction: 0,
    skippedOnResume: 0,
    incrementalRead: 0,
  };
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
  /** The incremental snapshot in progress, or null. */
  incrementalSnapshot: IncrementalSnapshotStatus | null;
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
  /**
   * Debezium's Kafka signal channel: an `execute-snapshot` signal (type incremental) queues the tables for an
   * incremental snapshot (started now, or after the running one's tables); `stop-snapshot` aborts tables or all.
   * Signals given before streaming starts are acted on once it does. A signal is kept in the offset: no chunk is read
   * for it before an offset carrying it is saved, so a crash before that forgets it (send it again to the restarted
   * capture) and never leaves reads of a snapshot the restart does not know. A signal naming the table being scanned
   * restarts that table's scan at the next chunk boundary.
   */
  signal(signal: CaptureSignal): void;
  /** Stops (or resumes) the heartbeat action, e.g. while the runner reads the source to verify the sinks. */
  pauseHeartbeatAction(paused: boolean): void;
}
