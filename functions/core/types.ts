import type { CdcError, DedupeError } from './errors';

/** The three sink lanes. Each is its own consumer group, DLQ and dedupe key space. */
export type Lane = 'warehouse' | 'cache' | 'audit';
export const LANES: readonly Lane[] = ['warehouse', 'cache', 'audit'];

// ---------------------------------------------------------------------------------------------------------------
// What the event source mapping delivers (see shared/reference/formats.md §1)
// ---------------------------------------------------------------------------------------------------------------

/** One Kafka record as Lambda delivers it: base64 key/value (either may be null or absent), signed-byte headers. */
export interface KafkaRecord {
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
  timestampType?: string;
  key?: string | null;
  value?: string | null;
  headers?: Array<Record<string, number[]>>;
  keySchemaMetadata?: unknown;
  valueSchemaMetadata?: unknown;
}

/** An MSK (`aws:kafka`) or self-managed (`SelfManagedKafka`) event: records grouped by `"<topic>-<partition>"`. */
export interface KafkaEvent {
  eventSource: string;
  eventSourceArn?: string;
  bootstrapServers?: string;
  records: Record<string, KafkaRecord[]>;
}

/** The records of one topic-partition, in offset order. `id` is the map key, `"<topic>-<partition>"`. */
export interface PartitionBatch {
  id: string;
  topic: string;
  partition: number;
  records: KafkaRecord[];
}

// ---------------------------------------------------------------------------------------------------------------
// The canonical change event (ARCHITECTURE.md "Contracts"): what decoding produces and every sink consumes
// ---------------------------------------------------------------------------------------------------------------

export type Op = 'c' | 'u' | 'd' | 'r' | 't';
export type Row = Record<string, unknown>;

/** Which connector family produced the event; decides how positions are read and ordered. */
export type ConnectorKind = 'postgresql' | 'mysql' | 'sqlserver' | 'kafka';

export interface ChangeSource {
  /** Debezium's `source.connector` ("postgresql", "mysql", "mariadb", "sqlserver"), or "kafka" when unknown. */
  connector: string;
  /** The connector's logical name (`topic.prefix`). */
  name: string;
  db: string | null;
  schema: string | null;
  table: string | null;
  /**
   * The connector's own coordinates as exact strings: PG `lsn` (+ `lastCommitLsn` from `sequence`); MySQL `file`,
   * `pos`, `row` (+ `gtid`); SQL Server `commitLsn`, `changeLsn`, `eventSerialNo`; "kafka" `topic`, `partition`,
   * `offset` when the record carries no source position (unwrap output without `add.fields`).
   */
  position: Record<string, string>;
  /**
   * The position as a fixed-width string that sorts in source order (compare with `<`). Sinks compare these, never
   * arrival order. Strings from different connector kinds are not comparable; the prefix says which kind it is.
   */
  order: string;
  /** `source.snapshot` normalised to Debezium's string enum ("true", "first", "last", "incremental", "false", ...). */
  snapshot: string;
  txId: string | null;
  /** `source.ts_ms`: when the database committed the change. */
  commitTs: number | null;
  /** `source.ts_ns` with every digit, when the connector sends it. */
  commitTsNs?: string;
}

export interface ChangeEvent {
  /** Stable idempotency key: table + source position + row key. Same database change, same id. */
  id: string;
  op: Op;
  source: ChangeSource;
  /** The row key (primary key or message.key.columns) as an object, or null (tables without a key, truncate). */
  key: Row | null;
  before: Row | null;
  after: Row | null;
  /** Columns Debezium did not send (TOAST placeholder): sinks keep the previous value. Never in `before`/`after`. */
  unchanged: string[];
  kafka: { topic: string; partition: number; offset: number; timestamp: number };
  /** Envelope `ts_ms`: when Debezium read the change. */
  capturedAt: number | null;
  /** When this function processed it. */
  processedAt: number;
  /** The lane that processed it (set by enrichment). */
  lane?: Lane;
}

/** Why a record that is not a row change was skipped. Each reason is counted, never silently dropped. */
export type SkipReason =
  | 'tombstone'
  | 'heartbeat'
  | 'transaction'
  | 'schema-change'
  | 'logical-message'
  | 'table-excluded'
  | 'no-key';

/** The outcome of decoding one record. */
export type DecodeOutcome =
  | { kind: 'event'; event: ChangeEvent; columns?: ColumnTypes }
  | { kind: 'skip'; reason: SkipReason }
  | { kind: 'error'; error: CdcError };

/**
 * Column types taken from the Connect schema when the converter sends one (schemas.enable=true); lets the
 * warehouse write typed Parquet columns. The same object is shared by every event with the same schema.
 */
export type ColumnType =
  | 'boolean'
  | 'int32'
  | 'int64'
  | 'double'
  | 'string'
  | 'decimal'
  | 'date'
  | 'timestamp'
  | 'timestamptz'
  | 'time'
  | 'json'
  | 'bytes';
export type ColumnTypes = ReadonlyMap<string, ColumnType>;

// ---------------------------------------------------------------------------------------------------------------
// Ports: what the core needs from the outside world. Adapters implement them; tests pass fakes.
// ---------------------------------------------------------------------------------------------------------------

/** Turns one Kafka record into a change event (or a skip, or an error). JSON today; Avro can be added beside it. */
export interface Decoder {
  decode(record: KafkaRecord, processedAt: number): DecodeOutcome;
}

/**
 * What a lane remembers per topic-partition, committed after the sink write succeeded: the last Kafka offset, the
 * highest source order applied (`hw`) and the ids applied at exactly that order (`hwIds`), plus state the sink owns
 * (the audit hash chain head).
 */
export interface Checkpoint {
  offset: number;
  hw: string;
  hwIds: string[];
  version: number;
  sinkState?: unknown;
}

/** One topic-partition's checkpoint moving from `previous` (absent: never committed) to `next`. */
export interface CheckpointCommit {
  partition: PartitionBatch;
  previous: Checkpoint | undefined;
  next: Checkpoint;
}

export interface DedupeStore {
  /** Strongly consistent read of the checkpoints of these topic-partitions (absent = never processed). */
  load(lane: Lane, partitions: readonly PartitionBatch[]): Promise<Map<string, Checkpoint>>;
  /**
   * Conditional writes of a batch's checkpoints, together (one request where the store can). Resolves with one entry
   * per commit, in order: `undefined` when written, else why not — a retryable CHECKPOINT_CONFLICT when someone
   * committed that partition since `previous`. One partition's failure never holds back the others'.
   */
  commit(lane: Lane, commits: readonly CheckpointCommit[]): Promise<Array<DedupeError | undefined>>;
}

/** The new (not duplicate) change events of one topic-partition, in offset order, handed to a sink. */
export interface SinkPartition {
  partition: PartitionBatch;
  events: ChangeEvent[];
  /** Column types per event index when known (schemas on). */
  columns: Array<ColumnTypes | undefined>;
  /** The sink state from the last committed checkpoint. */
  state: unknown;
  /** The events come from a redrive of dead letters, not from the partition's stream. */
  redrive?: boolean;
}

export type SinkPartitionResult =
  | {
      ok: true;
      /** New sink state to commit with the checkpoint (e.g. the audit chain head). */
      state?: unknown;
      /** Events the sink chose not to apply (by index), with a counted reason. */
      skipped?: Array<{ index: number; reason: SkipReason }>;
      /** Events the sink refused for good (by index): dead-lettered, the rest of the partition goes on. */
      rejected?: Array<{ index: number; error: CdcError }>;
      /** When the write finished (for commit-to-sink latency). */
      writtenAt: number;
    }
  | { ok: false; error: CdcError };

export interface Sink {
  /** Applies the events. Must be idempotent for a replay of the same events from the same checkpoint state. */
  write(partitions: readonly SinkPartition[]): Promise<SinkPartitionResult[]>;
  /** Releases connections (local runs and tests; Lambda just freezes). */
  close?(): Promise<void>;
}

/** One dead letter: the original record, the reason, the lane and the time. */
export interface DeadLetter {
  lane: Lane;
  error: { code: string; message: string };
  record: KafkaRecord;
  failedAt: string;
}

export interface DeadLetterQueue {
  /** Stores every dead letter or throws a retryable DeadLetterError. */
  send(letters: readonly DeadLetter[]): Promise<void>;
}
