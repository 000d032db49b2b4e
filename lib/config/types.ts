/**
 * Typed per-environment configuration of the CDK app. One object per environment (`lib/config/dev.ts`, …) describes
 * everything that differs between environments; constructs never read untyped context. `validateConfig` rejects
 * known-bad combinations at synth time (see `./validate.ts`).
 */

/** The three sink lanes. Each is its own set of consumer groups, DLQ and dedupe key space. */
export type LaneName = 'warehouse' | 'cache' | 'audit';
export const LANE_NAMES: readonly LaneName[] = ['warehouse', 'cache', 'audit'];

export interface EnvironmentConfig {
  /** Environment name, used in every resource name (`cdc-sync-<name>-…`) and selected with `-c env=<name>`. */
  readonly name: string;
  /** AWS account id (12 digits). The committed values are placeholders: replace them with yours. */
  readonly account: string;
  /** AWS region, e.g. `eu-west-1`. */
  readonly region: string;
  /**
   * What happens to stateful resources (buckets except the audit bucket, tables, keys, log groups) when a stack is
   * deleted. The audit bucket and its key are always retained: Object Lock data must never be auto-deleted.
   */
  readonly removalPolicy: 'destroy' | 'retain';
  readonly network: NetworkConfig;
  readonly msk: MskConfig;
  readonly connect: ConnectConfig;
  readonly schemaRegistry: SchemaRegistryConfig;
  /** One Debezium connector per source database. */
  readonly sources: readonly SourceConfig[];
  readonly lanes: LanesConfig;
  readonly data: DataConfig;
  readonly cache: CacheConfig;
  readonly observability: ObservabilityConfig;
  /**
   * Current-state tables: one Apache Iceberg table per keyed captured table, kept up to date from the change log by a
   * scheduled Athena `MERGE INTO` (docs/operations.md, "Current-state tables").
   */
  readonly currentState: CurrentStateConfig;
  /**
   * What the lanes do when a table's schema changes in a way the sinks cannot reconcile from the change stream alone
   * (rename, drop, retype, added column with a default or NOT NULL, a new table whose first rows were missed).
   * @default { default: 'auto' }
   */
  readonly schemaChanges?: SchemaChangeConfig;
}

// ---------------------------------------------------------------------------------------------------------------
// Schema changes
// ---------------------------------------------------------------------------------------------------------------

/**
 * `auto`: the lane that registers the new schema version sends Debezium an `execute-snapshot` (incremental) signal
 * for the table, so every row reaches every sink in the new shape. `alarm`: no snapshot; the lanes emit
 * `SchemaChangeUnreconciled` and its alarm notifies the alarm topic (an operator runs `npm run backfill` when
 * convenient: for very large tables). `off`: neither (the change is still recorded and `SchemaChanged` emitted).
 */
export type SchemaChangePolicy = 'auto' | 'alarm' | 'off';
export const SCHEMA_CHANGE_POLICIES: readonly SchemaChangePolicy[] = ['auto', 'alarm', 'off'];

/** Passed to every lane as `SCHEMA_CHANGE_POLICY` JSON (parsed by functions/shared/config.ts). */
export interface SchemaChangeConfig {
  /** Policy of every table not listed in `tables`. */
  readonly default: SchemaChangePolicy;
  /**
   * Per-table overrides, keyed by Debezium's data-collection name: PostgreSQL `<schema>.<table>`, MySQL/MariaDB
   * `<database>.<table>`, SQL Server `<database>.<schema>.<table>`.
   */
  readonly tables?: Readonly<Record<string, SchemaChangePolicy>>;
}

// ---------------------------------------------------------------------------------------------------------------
// Network
// ---------------------------------------------------------------------------------------------------------------

export interface NetworkConfig {
  readonly vpc: NewVpcConfig | ImportedVpcConfig;
}

/** A new VPC with private (isolated) subnets only: no NAT, AWS services are reached through VPC endpoints. */
export interface NewVpcConfig {
  readonly kind: 'new';
  /** IPv4 CIDR of the VPC, e.g. `10.40.0.0/16`. */
  readonly cidr: string;
  /**
   * The three availability zones to use. Listed explicitly so synth needs no AZ lookup (works offline) and the
   * MSK brokers are spread over exactly these zones.
   */
  readonly availabilityZones: readonly string[];
  /** Days VPC flow logs are kept. */
  readonly flowLogRetentionDays: number;
}

/**
 * An existing VPC, imported by id with `Vpc.fromVpcAttributes` (no lookup, so synth works offline). The subnets must
 * be private, one per availability zone, in the same order as `availabilityZones`.
 */
export interface ImportedVpcConfig {
  readonly kind: 'imported';
  readonly vpcId: string;
  readonly vpcCidr: string;
  readonly availabilityZones: readonly string[];
  readonly privateSubnetIds: readonly string[];
  readonly privateSubnetRouteTableIds: readonly string[];
  /**
   * Create the interface and gateway endpoints the platform needs. Set to false when the VPC already has them
   * (private DNS of an interface endpoint can only exist once per VPC).
   * @default true
   */
  readonly createEndpoints?: boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// MSK
// ---------------------------------------------------------------------------------------------------------------

export type MskConfig = ProvisionedMskConfig | ServerlessMskConfig;

interface MskCommonConfig {
  /** How long Kafka keeps records, in hours. Bounds how far back a lane can replay. */
  readonly retentionHours: number;
}

/** A provisioned cluster: brokers in 3 AZs, IAM auth, TLS in transit, KMS at rest, per-topic-partition metrics. */
export interface ProvisionedMskConfig extends MskCommonConfig {
  readonly mode: 'provisioned';
  /** MSK Kafka version. The topic API behind `AWS::MSK::Topic` needs 3.6.0 or later. */
  readonly kafkaVersion: string;
  /** e.g. `kafka.t3.small`, `kafka.m7g.large`. */
  readonly brokerInstanceType: string;
  /** Total broker count, a multiple of the AZ count (3). */
  readonly brokerCount: number;
  /** EBS volume per broker, GiB, at creation. Storage autoscaling grows it (never shrinks it) up to maxEbsVolumeGiB. */
  readonly ebsVolumeGiB: number;
  /**
   * Ceiling of broker storage autoscaling (Application Auto Scaling, target 60 % disk use), GiB per broker. Set it to
   * `ebsVolumeGiB` to keep the volume fixed. After an expansion, raise `ebsVolumeGiB` to the new size before the next
   * deploy that touches the cluster: MSK cannot shrink a volume (docs/deploy.md, runbook "MSK disk").
   * @default 4 × ebsVolumeGiB, at most 16384
   */
  readonly maxEbsVolumeGiB?: number;
}

/** MSK Serverless: IAM auth only, no brokers to size. Topics are created by a custom resource (no topic API). */
export interface ServerlessMskConfig extends MskCommonConfig {
  readonly mode: 'serverless';
}

// ---------------------------------------------------------------------------------------------------------------
// MSK Connect and Debezium
// ---------------------------------------------------------------------------------------------------------------

export interface ConnectConfig {
  /** MSK Connect's Kafka Connect version, e.g. `3.7.x`. */
  readonly kafkaConnectVersion: string;
  /** Where the Debezium plugin archive comes from (see docs/deploy.md, "Debezium plugin archive"). */
  readonly plugin: PluginFromS3 | PluginFromAsset;
  /** Days connector worker logs are kept in CloudWatch. */
  readonly logRetentionDays: number;
}

/** A ZIP already uploaded to S3 (e.g. by the release pipeline). */
export interface PluginFromS3 {
  readonly kind: 's3';
  readonly bucketArn: string;
  readonly fileKey: string;
  /** Pin an object version (recommended for versioned buckets). */
  readonly objectVersion?: string;
}

/** A local ZIP uploaded as a CDK asset. Path relative to the repository root. */
export interface PluginFromAsset {
  readonly kind: 'asset';
  readonly path: string;
}

export type SchemaCompatibility =
  | 'NONE'
  | 'DISABLED'
  | 'BACKWARD'
  | 'BACKWARD_ALL'
  | 'FORWARD'
  | 'FORWARD_ALL'
  | 'FULL'
  | 'FULL_ALL';

export interface SchemaRegistryConfig {
  /** Compatibility mode new schemas are registered with by Avro sources (Glue converter `compatibility`). */
  readonly compatibility: SchemaCompatibility;
}

// ---------------------------------------------------------------------------------------------------------------
// Sources
// ---------------------------------------------------------------------------------------------------------------

/** One captured table and its topic's partition count. */
export interface TableConfig {
  /**
   * The table as Debezium names it: PostgreSQL `schema.table`, MySQL/MariaDB `database.table`, SQL Server
   * `schema.table` (the database comes from the source's `database`).
   */
  readonly name: string;
  /** Partitions of the table's topic. Row keys hash to partitions, so order per row key is kept. */
  readonly partitions: number;
  /**
   * The topic exists already because Kafka Connect created it when the table appeared in a `captureSchemas` schema
   * (with Connect's default of 1 partition): the lanes subscribe to it, but CDK does not create it (a provisioned
   * cluster's topic API fails on an existing topic). Set `partitions` to what the topic has.
   * @default false
   */
  readonly existingTopic?: boolean;
}

export type ConnectorCapacity =
  | {
      readonly mode: 'provisioned';
      /** Debezium needs exactly 1 worker. */
      readonly workerCount: number;
      /** MCUs per worker (1 MCU = 1 vCPU + 4 GiB): 1, 2, 4 or 8. */
      readonly mcuCount: 1 | 2 | 4 | 8;
    }
  | {
      readonly mode: 'autoscaled';
      readonly minWorkerCount: number;
      readonly maxWorkerCount: number;
      readonly mcuCount: 1 | 2 | 4 | 8;
    };

interface SourceCommonConfig {
  /** Short unique name; the connector is `cdc-sync-<env>-<name>`. */
  readonly name: string;
  /** Debezium `topic.prefix`: every topic of this source starts with it. Unique across sources. */
  readonly topicPrefix: string;
  readonly hostname: string;
  readonly port: number;
  /**
   * Secrets Manager secret with `username` and `password` (JSON), read by the Secrets Manager config provider at
   * runtime: no credential is ever in the connector configuration.
   */
  readonly credentialsSecretArn: string;
  /** Customer managed key the secret is encrypted with, if any (the connector role gets kms:Decrypt on it). */
  readonly credentialsKmsKeyArn?: string;
  /** How the connector reaches the database: its security group (preferred) or a CIDR. */
  readonly network: { readonly securityGroupId?: string; readonly cidr?: string };
  /**
   * Record format: `json` (JsonConverter with schemas) or `avro` (values by the Glue Schema Registry converter, keys
   * by JsonConverter so key and value schemas never share a registry name). The lanes receive the bytes as written
   * and decode Avro themselves with the registry (`AVRO_REGISTRY`, `glue:GetSchemaVersion` on the registry only).
   * @default 'json'
   */
  readonly format?: 'json' | 'avro';
  /**
   * Tables with their own topic. Every other table the connector captures (one created later in a `captureSchemas`
   * schema) goes to the catch-all topic `<topicPrefix>.unlisted`, which every lane consumes.
   */
  readonly tables: readonly TableConfig[];
  /**
   * Partitions of the catch-all topic `<topicPrefix>.unlisted` (created as code). Row keys hash to partitions, so
   * order per row is kept; several tables share each partition.
   * @default 3
   */
  readonly unlistedTopicPartitions?: number;
  /**
   * Debezium `heartbeat.interval.ms`. Required for every source with a heartbeat table (Debezium runs
   * `heartbeat.action.query` on each heartbeat, so without heartbeats the table is never written) and for PostgreSQL
   * (keeps the replication slot from retaining WAL).
   */
  readonly heartbeatIntervalMs?: number;
  /**
   * The table Debezium upserts on every heartbeat (`heartbeat.action.query`: row `id = 1`, `ts` = now), captured like
   * any table: its changes reach every lane even when nobody writes, so each lane's `SourceFreshness` stays current
   * and a stopped connector, a dead slot or a stuck lane shows as a stale source (the freshness alarms). On PostgreSQL
   * the same change lets the slot confirm a position while the captured database is idle (RDS/Aurora write WAL for
   * their own databases all the time). The DBA creates it, in the publication or with CDC enabled like a captured
   * table, writable by the connector user: docs/deploy.md, "Prepare the source databases". Its topic
   * (`<prefix>.<schema|db>.cdc_heartbeat`, SQL Server `<prefix>.<db>.<schema>.cdc_heartbeat`) has 1 partition and is
   * read by every lane that reads the source; the sinks hold its single row.
   *
   * `false` turns the writes off, for a source whose connector user may not write (a read-only replica, a database
   * whose owner forbids writes by the capture user). Such a source's freshness is only known while real changes flow:
   * its freshness alarms then treat no data as OK (an idle source looks like a stopped one), and an RDS/Aurora
   * PostgreSQL slot of an idle database retains WAL (the slot-lag alarm watches it).
   * @default `<schema|db of the signal table>.cdc_heartbeat`
   */
  readonly heartbeatTable?: string | false;
  /**
   * The heartbeat table's topic exists already (Kafka Connect created it, e.g. for an RDS PostgreSQL source whose
   * heartbeat writes predate the lanes reading it, with Connect's 1 partition): the lanes subscribe to it, but CDK does
   * not create it (a provisioned cluster's topic API fails on an existing topic).
   * @default false
   */
  readonly heartbeatTopicExists?: boolean;
  /**
   * How stale the source may get, in seconds, before its freshness alarms fire: the lanes' `SourceFreshness` (time
   * from the newest applied commit to its write) above this, or no change applied at all, for this long (rounded up
   * to whole minutes, evaluated every minute). Must exceed `heartbeatIntervalMs` plus the longest batching window of
   * the lanes that read the source (a healthy source reaches that much). At most 86400 (CloudWatch evaluates alarms
   * over at most a day).
   * @default 300
   */
  readonly freshnessBoundSeconds?: number;
  /** @default true */
  readonly tombstonesOnDelete?: boolean;
  /** @default true */
  readonly provideTransactionMetadata?: boolean;
  /** @default 1 */
  readonly tasksMax?: number;
  /** @default { mode: 'provisioned', workerCount: 1, mcuCount: 1 } */
  readonly capacity?: ConnectorCapacity;
  /** Debezium `snapshot.mode`. @default 'initial' */
  readonly snapshotMode?: string;
  /**
   * Schemas (PostgreSQL, SQL Server) or databases (MySQL/MariaDB) captured whole: every table in them, present and
   * future, is in `table.include.list` (as `<schema>\..*`), so a table created while the connector runs is captured
   * from its first row into `<prefix>.<schema>.<table>` (a topic Kafka Connect creates). PostgreSQL additionally
   * needs a publication that covers future tables: `publicationAutocreateMode: 'disabled'` with a publication
   * created `FOR TABLES IN SCHEMA` (PostgreSQL 15+), see docs/deploy.md "Schema changes". Listed `tables` outside
   * these schemas stay captured too.
   * @default none: only `tables` (and the signal table) are captured
   */
  readonly captureSchemas?: readonly string[];
  /**
   * Debezium's signalling table (`signal.data.collection`), named like `tables` (SQL Server without the database).
   * Incremental snapshots need it even when signals arrive on the Kafka channel: Debezium writes its watermarks
   * there. The DBA creates it (docs/deploy.md, "Schema changes").
   * @default `<schema|db of the first table>.debezium_signal`
   */
  readonly signalTable?: string;
  /** Rows per incremental snapshot chunk (`incremental.snapshot.chunk.size`). @default 1024 */
  readonly incrementalSnapshotChunkSize?: number;
  /** Extra connector properties, merged last (they win). */
  readonly extraConfig?: Readonly<Record<string, string>>;
}

export interface PostgresSourceConfig extends SourceCommonConfig {
  readonly engine: 'postgresql';
  readonly database: string;
  /** Logical replication slot; unique per database server. */
  readonly slotName: string;
  readonly publicationName: string;
  /**
   * Debezium `publication.autocreate.mode`. Use `disabled` when the DBA creates the publication (the connector user
   * then needs no ownership of the tables).
   * @default 'filtered'
   */
  readonly publicationAutocreateMode?: 'disabled' | 'filtered' | 'all_tables';
  /**
   * The RDS DB instance identifier of the database (Aurora: the writer instance), when it runs on RDS or Aurora
   * PostgreSQL. Enables the replication slot lag and transaction log alarms (AWS/RDS `OldestReplicationSlotLag`,
   * `TransactionLogsDiskUsage`, dimension `DBInstanceIdentifier`): on RDS the server writes WAL for its own databases
   * all the time, which the slot must retain until Debezium confirms a newer position, and it only can once a change
   * in the captured database reaches it (the heartbeat table's writes, `heartbeatTable`).
   */
  readonly rdsInstanceId?: string;
  /** Alarm thresholds of an RDS/Aurora source (rdsInstanceId). */
  readonly rdsAlarms?: {
    /** OldestReplicationSlotLag above which the slot-lag alarm fires. @default 1 GiB */
    readonly replicationSlotLagBytes?: number;
    /** TransactionLogsDiskUsage above which the WAL disk alarm fires. @default 10 GiB */
    readonly transactionLogsBytes?: number;
  };
}

export interface MySqlSourceConfig extends SourceCommonConfig {
  readonly engine: 'mysql' | 'mariadb';
  /** `database.server.id`: unique among all replicas of the MySQL server. */
  readonly serverId: number;
}

export interface SqlServerSourceConfig extends SourceCommonConfig {
  readonly engine: 'sqlserver';
  readonly database: string;
  /**
   * How the connector checks the server's TLS certificate (the connection is always encrypted, `database.encrypt`).
   * The workers' JVM does not trust the RDS certificate authorities, so a choice is required:
   * - `truststore`: a trust store (JKS or PKCS12) holding the CA, e.g. the RDS bundle, in S3; the connector reads it
   *   through the S3 import config provider and its password from the `trustStorePassword` key of the credentials
   *   secret. The server is authenticated.
   * - `any`: `database.trustServerCertificate=true`: encrypted, but any certificate is accepted, so a machine in the
   *   network path could impersonate the server. Test environments only.
   */
  readonly serverCertificate:
    | { readonly trust: 'truststore'; readonly trustStore: { readonly bucketArn: string; readonly key: string } }
    | { readonly trust: 'any' };
}

export type SourceConfig = PostgresSourceConfig | MySqlSourceConfig | SqlServerSourceConfig;

/** `freshnessBoundSeconds` when a source sets none. */
export const DEFAULT_FRESHNESS_BOUND_SECONDS = 300;

/** `parkAfterAttempts` when a lane sets none (the lane function's PARK_AFTER_ATTEMPTS default is the same). */
export const DEFAULT_PARK_AFTER_ATTEMPTS = 5;

// ---------------------------------------------------------------------------------------------------------------
// Lanes
// ---------------------------------------------------------------------------------------------------------------

export type PiiAction = 'sha256' | 'mask' | 'drop' | 'null';

/** Mirrors `TableRulesSchema` in functions/core/enrich.ts; passed to the lane as `TABLE_RULES` JSON. */
export interface TableRules {
  readonly include?: readonly string[];
  readonly exclude?: readonly string[];
  readonly columns?: Readonly<
    Record<
      string,
      {
        readonly include?: readonly string[];
        readonly exclude?: readonly string[];
        readonly pii?: Readonly<Record<string, PiiAction>>;
      }
    >
  >;
}

export interface LaneConfig {
  /** Function memory, MiB. */
  readonly memoryMiB: number;
  /** Function timeout, seconds (at most 840: Kafka event source mappings allow 14 minutes). */
  readonly timeoutSeconds: number;
  /** Records per batch (1–10000). */
  readonly batchSize: number;
  /**
   * Batching window, whole seconds (0–300; CloudFormation's MaximumBatchingWindowInSeconds is an integer). Must be 0
   * for a lane with a latency SLO.
   */
  readonly maxBatchingWindowSeconds: number;
  /** Where a new consumer group starts. TRIM_HORIZON replays what Kafka still holds. */
  readonly startingPosition: 'TRIM_HORIZON' | 'LATEST';
  /** Provisioned pollers: needed for bisect, retries, max record age and partial batch responses on Kafka. */
  readonly provisionedPollers: { readonly minimum: number; readonly maximum: number };
  readonly bisectBatchOnError: boolean;
  /** Retries after the first attempt; -1 is infinite (capped at 10 by Lambda when an on-failure destination exists). */
  readonly retryAttempts: number;
  /** Records older than this are sent to the on-failure destination (60–604800 s), or -1 for no limit. */
  readonly maxRecordAgeSeconds: number;
  /** Partial batch responses; the function reads the same setting from REPORT_BATCH_ITEM_FAILURES. */
  readonly reportBatchItemFailures: boolean;
  /** The lane's SQS dead-letter queue for per-record dead letters. Required (validation rejects a lane without). */
  readonly deadLetterQueue?: { readonly retentionDays: number };
  /** Commit-to-sink latency objective (p99, ms). Alarmed; requires `maxBatchingWindowSeconds: 0`. */
  readonly latencySloMs?: number;
  /** Source names this lane consumes. @default every source */
  readonly sources?: readonly string[];
  readonly tableRules?: TableRules;
  readonly logLevel: 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
  /** Records larger than this are dead-lettered. @default the function's default (1 MiB) */
  readonly maxRecordBytes?: number;
  /** Days checkpoints of idle partitions are kept. @default the function's default (30) */
  readonly checkpointTtlDays?: number;
  /**
   * Deliveries a change the sink rejects retryably for a reason of its own (one cache row) may fail in before its key
   * is parked: its changes go to the DLQ as PARKED, in order, the partition moves on, and the KeysParked alarm fires
   * (docs/architecture.md, "Parking a poison key"). 0 never parks. At most `retryAttempts + 1`: the event source
   * mapping gives the batch up after that many deliveries.
   * @default DEFAULT_PARK_AFTER_ATTEMPTS (5)
   */
  readonly parkAfterAttempts?: number;
  /** OffsetLag (records) above which the lag alarm fires. */
  readonly maxOffsetLagAlarm: number;
}

export interface WarehouseLaneConfig extends LaneConfig {
  /** Key prefix of the Parquet change log. @default 'changes/' */
  readonly prefix?: string;
}

export interface CacheLaneConfig extends LaneConfig {
  /** @default 'cdc' */
  readonly keyPrefix?: string;
  /** @default 7 days */
  readonly tombstoneTtlSeconds?: number;
}

export interface AuditLaneConfig extends LaneConfig {
  /** @default 'audit/' */
  readonly prefix?: string;
}

export interface LanesConfig {
  readonly warehouse: WarehouseLaneConfig;
  readonly cache: CacheLaneConfig;
  readonly audit: AuditLaneConfig;
}

// ---------------------------------------------------------------------------------------------------------------
// Data, cache, observability
// ---------------------------------------------------------------------------------------------------------------

export interface DataConfig {
  /** Object Lock (compliance mode) default retention of audit objects, days. Cannot be shortened once written. */
  readonly auditRetentionDays: number;
  /** Days S3 server access logs are kept. */
  readonly accessLogRetentionDays: number;
  /** Days on-failure batches and large dead-letter payloads are kept. */
  readonly failureRetentionDays: number;
  /**
   * The schema catalog the warehouse's Glue tables take their columns from: `<dir>/<schema|db>.<table>.json` per table
   * (the schema gate's files, `npm run schemas -- check --write`), relative to the repository root. A listed table
   * without a file gets a change-log table with the `_cdc_*` columns only, and no current-state table.
   * @default 'schemas'
   */
  readonly schemaCatalogDir?: string;
  /**
   * First day (`YYYY-MM-DD`, UTC) the change-log tables' partition projection enumerates: a query without a date
   * filter lists every day from here to today. Set it to the day the environment started capturing.
   */
  readonly changeLogStartDate: string;
  readonly compaction: CompactionConfig;
}

/**
 * Compaction of the change log: every day partition closed for `closedAfterHours` is rewritten as one Parquet file
 * per schema (functions/compaction), and the small files it replaces are deleted. Their noncurrent versions (the
 * warehouse bucket is versioned) expire after `noncurrentVersionDays`.
 */
export interface CompactionConfig {
  /** @default true */
  readonly enabled?: boolean;
  /**
   * Hours after the end of a day (UTC) before its partition is compacted: late changes of the day (a lane catching
   * up) land in it meanwhile. A file that arrives later still is compacted with the next run's pass. 1–168.
   * @default 6
   */
  readonly closedAfterHours?: number;
  /** Days the replaced small files stay recoverable as noncurrent versions. 1–365. @default 7 */
  readonly noncurrentVersionDays?: number;
}

export const DEFAULT_COMPACTION_CLOSED_AFTER_HOURS = 6;
export const DEFAULT_COMPACTION_NONCURRENT_DAYS = 7;
export const DEFAULT_SCHEMA_CATALOG_DIR = 'schemas';

export interface CurrentStateConfig {
  /**
   * Build the current-state function, its schedules and its alarms. The change-log tables, the Athena workgroup and
   * the named queries exist either way.
   * @default true
   */
  readonly enabled?: boolean;
  /**
   * How stale a current-state table may get, in seconds, before the CurrentStateFreshness alarm fires: the time since
   * the last run that brought the table up to the change log (every run that succeeds does, including one that found
   * nothing new). At least two runs (`2 × scheduleMinutes × 60`: the alarm needs every period of the bound to breach,
   * and one run's metric may land in the next period), at most 86400.
   * @default DEFAULT_CURRENT_STATE_FRESHNESS_SECONDS (300)
   */
  readonly freshnessBoundSeconds?: number;
  /** Minutes between runs of the merge (EventBridge Scheduler `rate(n minutes)`). 1–60. @default 1 */
  readonly scheduleMinutes?: number;
  /**
   * When the Iceberg tables are compacted and expired snapshots removed (`OPTIMIZE … BIN_PACK`, `VACUUM`), as an
   * EventBridge Scheduler cron expression in UTC.
   * @default 'cron(30 3 * * ? *)'
   */
  readonly maintenanceSchedule?: string;
  /** Tables merged at the same time (each is one Athena query at a time). 1–20. @default 4 */
  readonly parallelTables?: number;
  /** The Athena workgroup's per-query scan limit (`BytesScannedCutoffPerQuery`), GiB. @default 100 */
  readonly bytesScannedCutoffGiB?: number;
}

export const DEFAULT_CURRENT_STATE_FRESHNESS_SECONDS = 300;
export const DEFAULT_CURRENT_STATE_SCHEDULE_MINUTES = 1;
export const DEFAULT_CURRENT_STATE_MAINTENANCE_SCHEDULE = 'cron(30 3 * * ? *)';
export const DEFAULT_CURRENT_STATE_PARALLEL_TABLES = 4;
export const DEFAULT_BYTES_SCANNED_CUTOFF_GIB = 100;

export interface CacheConfig {
  /** Valkey major version. */
  readonly majorEngineVersion: string;
  /** Storage ceiling, GB. */
  readonly maxDataStorageGb: number;
  /** ECPU/s ceiling. */
  readonly maxEcpuPerSecond: number;
  /** Daily snapshots kept (0 disables). */
  readonly snapshotRetentionLimit: number;
}

export interface ObservabilityConfig {
  /** Email addresses subscribed to the alarm topic (each must confirm the subscription once). */
  readonly alarmEmails: readonly string[];
  /** Days Lambda logs are kept. */
  readonly logRetentionDays: number;
  /** Lambda errors per 5 minutes above which a lane's error alarm fires. */
  readonly maxLaneErrors: number;
}
