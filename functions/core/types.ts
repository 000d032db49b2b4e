import type { CdcError, DedupeError } from './errors';

/** The three sink lanes. Each is its own consumer group, DLQ and dedupe key space. */
export type Lane = 'warehouse' | 'cache' | 'audit';
export const LANES: readonly Lane[] = ['warehouse', 'cache', 'audit'];

// ---------------------------------------------------------------------------------------------------------------
// What the event source mapping delivers (see docs/formats.md §1)
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
// The canonical change event (docs/architecture.md, "The canonical change event"): what decoding produces and every sink consumes
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

/** One column of a table's row struct, as the connector's schema describes it (the input of a schema version). */
export interface SchemaColumn {
  name: string;
  /**
   * Connect type: `int32`, `int64`, `string`, `bytes`, `boolean`, `float64`, ...; containers spell what they hold
   * (`array<int64>`, `map<string,int32>`, `struct<a:int32,b:string>`), so a retyped element is a retype.
   */
  type: string;
  /** Connect logical name when any: `org.apache.kafka.connect.data.Decimal`, `io.debezium.time.Date`, ... */
  logical?: string;
  optional: boolean;
  /** The schema's default value, as sent; absent when none. */
  default?: unknown;
  /** Logical-type parameters (scale, precision, length, allowed values ...), as sent. */
  parameters?: Record<string, string>;
}

/**
 * A version of a table's row shape: what the connector's value schema says the row struct is. Two records carry the
 * same version exactly when their row structs agree in column names, order, types, optionality, defaults and
 * logical-type parameters. One object is shared by every record with the same schema.
 */
export interface TableSchemaVersion {
  /** Hex digest (16 characters) of the canonical JSON of `columns`: column order is part of a version. */
  fingerprint: string;
  columns: SchemaColumn[];
}

/**
 * A table change Debezium reported on its schema-change topic (MySQL/MariaDB, SQL Server: `tableChanges` of a
 * `SchemaChangeValue`), one per table it names.
 */
export interface SchemaChangeRecord {
  /** The table as `tableIdOf` names it. */
  table: string;
  /** `CREATE`, `ALTER` or `DROP`. */
  type: string;
  ddl: string | null;
  /** Where the DDL happened in the source's log. */
  source: ChangeSource;
  columns: Array<{
    name: string;
    typeName: string;
    length?: number;
    scale?: number;
    optional: boolean;
    defaultValueExpression?: string | null;
    position?: number;
  }>;
  primaryKey: string[];
  kafka: { topic: string; partition: number; offset: number; timestamp: number };
}

/** The outcome of decoding one record. */
export type DecodeOutcome =
  | { kind: 'event'; event: ChangeEvent; columns?: ColumnTypes; schema?: TableSchemaVersion }
  | { kind: 'schema-change'; changes: SchemaChangeRecord[] }
  | { kind: 'skip'; reason: SkipReason }
  | { kind: 'error'; error: CdcError };

/** Debezium's `execute-snapshot` signal (incremental), as the source and Kafka signal channels take it. */
export interface SnapshotSignal {
  id: string;
  type: 'execute-snapshot';
  data: {
    /** Tables as the connector names them: PostgreSQL `<schema>.<table>`, MySQL `<db>.<table>`. */
    'data-collections': string[];
    type: 'incremental';
    'additional-conditions'?: Array<{ 'data-collection': string; filter: string }>;
  };
}

/** Sends signals to the connector (Kafka signal channel in AWS; the local capture in `npm start`). */
export interface SnapshotSignaller {
  send(signal: SnapshotSignal): Promise<void>;
}

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

/** Turns one Kafka record into a change event (or a skip, or an error): JSON (JsonConverter) or Avro (a registry). */
export interface Decoder {
  /**
   * Optional asynchronous step before a batch is decoded, called once per batch with every partition's records:
   * a registry-backed decoder fetches the writer schemas the batch names here, so `decode` stays synchronous.
   * Must not reject: a failure is remembered and reported by `decode` for the records it concerns.
   */
  prepare?(records: readonly KafkaRecord[]): Promise<void>;
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
  /**
   * Fingerprint of the table schema version last applied in this partition, per table id (tableIdOf): one partition
   * may carry several tables (the connectors' catch-all topic). Insertion order is recency, least recently met first
   * (table ids always contain a dot, so no key is an integer and JavaScript keeps that order); at most
   * SCHEMAS_LIMIT tables (dedupe.ts: AppliedSchemas). Absent: none met yet, or schemaless.
   */
  schemas?: Record<string, string>;
  /**
   * @deprecated Read only: checkpoints written before `schemas` held one fingerprint per partition. It is taken as
   * the fingerprint of the table named like the partition's topic (AppliedSchemas) and no longer written.
   */
  schema?: string;
  /**
   * Keys parked in this partition (parking.ts): their changes go to the dead-letter queue, in order, until
   * `npm run redrive -- <lane> --parked` replays them. At most PARKED_KEYS_LIMIT. Absent: none.
   */
  parked?: ParkedKey[];
  /** Keys whose change the sink could not apply in the last deliveries, with the attempts so far. Absent: none. */
  attempts?: KeyAttempts[];
}

/**
 * A parked key of one partition: the dead letters `PARKED` not replayed yet hold its changes at offsets `first` to
 * `last`, `count` of them (a redrive needs all of them, in order, before the key may be unparked).
 */
export interface ParkedKey {
  /** `<table id> <row key JSON>` (parkingKeyOf). */
  key: string;
  /** Lowest offset of a parked change not replayed yet (a lower bound once a redrive replayed some). */
  first: number;
  /** Offset of the latest parked change. */
  last: number;
  /** Parked changes not replayed yet. */
  count: number;
  /** Deliveries the first change failed in before the key was parked. */
  attempts: number;
  /** When the key was parked (epoch ms). */
  parkedAt: number;
}

/** A key whose change at `offset` the sink rejected retryably in `attempts` deliveries so far. */
export interface KeyAttempts {
  key: string;
  offset: number;
  attempts: number;
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
  /**
   * Schema history met in this partition, in stream order: each entry applies before `events[index]` (an index equal
   * to `events.length` applies after the last event). Sinks that keep a history record it exactly once with the
   * checkpoint (a replay from the same checkpoint passes the same entries); the others ignore it.
   */
  schemaChanges?: SinkSchemaChange[];
}

/**
 * One entry of a partition's schema history handed to a sink: a table schema version the records started carrying
 * (`version`), or a DDL the connector reported on its schema-change topic (`ddl`).
 */
export type SinkSchemaChange =
  | {
      kind: 'version';
      index: number;
      /** The table as `tableIdOf` names it. */
      table: string;
      /** Source order of the first event carrying the version in this partition. */
      order: string;
      schema: TableSchemaVersion;
      /** The version's number in the shared registry, when this partition is not behind it. */
      version?: number;
    }
  | { kind: 'ddl'; index: number; table: string; order: string; change: SchemaChangeRecord };

export type SinkPartitionResult =
  | {
      ok: true;
      /** New sink state to commit with the checkpoint (e.g. the audit chain head). */
      state?: unknown;
      /** Events the sink chose not to apply (by index), with a counted reason. */
      skipped?: Array<{ index: number; reason: SkipReason }>;
      /** Events the sink refused for good (by index): dead-lettered, the rest of the partition goes on. */
      rejected?: Array<{ index: number; error: CdcError }>;
      /**
       * Events the sink could not apply now for a reason of their own, not an outage (by index; the cache: one row's
       * script failing): the partition is retried, and a key that keeps failing is parked (docs/architecture.md,
       * "Parking a poison key"). A sink reporting an event here has applied no later event of the same key in this
       * write: it reports those here too.
       */
      retryableRejected?: Array<{ index: number; error: CdcError }>;
      /** When the write finished (for commit-to-sink latency). */
      writtenAt: number;
      /** The sink keeps no schema history: the partition's schema-change records count as skipped. */
      schemaChangesSkipped?: boolean;
    }
  | { ok: false; error: CdcError };

export interface Sink {
  /**
   * Applies one partition's events (the pipeline writes each partition as soon as it is ready, several in flight).
   * Must be idempotent for a replay of the same events from the same checkpoint state.
   */
  write(partition: SinkPartition): Promise<SinkPartitionResult>;
  /** Releases connections (local runs and tests; Lambda just freezes). */
  close?(): Promise<void>;
}

/** One dead letter: the original record, the reason, the lane and the time. */
export interface DeadLetter {
  lane: Lane;
  error: { code: string; message: string };
  record: KafkaRecord;
  failedAt: string;
  /**
   * A change of a parked key (error code `PARKED`): the key, and the deliveries its change failed in before the key
   * was parked (0 for the later changes held behind it).
   */
  parked?: { key: string; attempts: number };
}

export interface DeadLetterQueue {
  /** Stores every dead letter or throws a retryable DeadLetterError. */
  send(letters: readonly DeadLetter[]): Promise<void>;
}
