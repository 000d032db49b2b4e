import {
  dataTopics,
  heartbeatTableName,
  heartbeatTableTopicName,
  laneSources,
  notificationTopicName,
  schemaChangeTopicName,
  signalTableName,
  signalTopicName,
  unlistedTopicName,
} from './topics';
import {
  DEFAULT_COMPACTION_CLOSED_AFTER_HOURS,
  DEFAULT_COMPACTION_NONCURRENT_DAYS,
  DEFAULT_CURRENT_STATE_FRESHNESS_SECONDS,
  DEFAULT_CURRENT_STATE_PARALLEL_TABLES,
  DEFAULT_CURRENT_STATE_SCHEDULE_MINUTES,
  DEFAULT_FRESHNESS_BOUND_SECONDS,
  DEFAULT_PARK_AFTER_ATTEMPTS,
  type EnvironmentConfig,
  LANE_NAMES,
  SCHEMA_CHANGE_POLICIES,
  type SourceConfig,
} from './types';
import { warehouseTables } from './warehouse';

/** Thrown at synth time when an environment's configuration is known to be bad. Lists every problem at once. */
export class ConfigValidationError extends Error {
  override readonly name = 'ConfigValidationError';
  constructor(
    readonly environment: string,
    readonly problems: readonly string[],
  ) {
    super(`Invalid configuration for environment '${environment}':\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** Throws a ConfigValidationError naming every problem; returns the config unchanged when it is valid. */
export function assertValidConfig(config: EnvironmentConfig): EnvironmentConfig {
  const problems = validateConfig(config);
  if (problems.length > 0) throw new ConfigValidationError(config.name, problems);
  return config;
}

/**
 * Checks the configuration for combinations that deploy but do not work (or lose data). Each message names the
 * offending setting and says why, so the fix is obvious from the synth output.
 */
export function validateConfig(config: EnvironmentConfig): string[] {
  return [
    ...checkEnvironment(config),
    ...checkNetwork(config),
    ...checkMsk(config),
    ...config.sources.flatMap(checkSource),
    ...config.sources.flatMap((source) => checkFreshness(config, source)),
    ...checkUniqueness(config),
    ...checkLanes(config),
    ...checkSchemaChanges(config),
    ...checkWarehouseCatalog(config),
    ...checkCurrentState(config),
  ];
}

function checkEnvironment(config: EnvironmentConfig): string[] {
  const problems: string[] = [];
  if (!/^[a-z][a-z0-9-]{0,15}$/.test(config.name)) {
    problems.push(`name '${config.name}' must be lowercase letters, digits or '-' (at most 16 characters)`);
  }
  if (!/^\d{12}$/.test(config.account)) problems.push(`account '${config.account}' must be a 12-digit AWS account id`);
  if (config.data.auditRetentionDays < 1) problems.push('data.auditRetentionDays must be at least 1 day');
  return problems;
}

function checkNetwork(config: EnvironmentConfig): string[] {
  const vpc = config.network.vpc;
  const problems: string[] = [];
  if (vpc.availabilityZones.length !== 3) {
    problems.push(`network.vpc.availabilityZones must list exactly 3 zones (MSK spreads brokers over 3 AZs)`);
  }
  if (vpc.kind === 'imported') {
    if (vpc.privateSubnetIds.length !== vpc.availabilityZones.length) {
      problems.push('network.vpc.privateSubnetIds must have one subnet per availability zone, in the same order');
    }
    if (vpc.privateSubnetRouteTableIds.length !== vpc.privateSubnetIds.length) {
      problems.push('network.vpc.privateSubnetRouteTableIds must have one route table per private subnet');
    }
  }
  return problems;
}

function checkMsk(config: EnvironmentConfig): string[] {
  const msk = config.msk;
  const problems: string[] = [];
  if (msk.retentionHours < 1) problems.push('msk.retentionHours must be at least 1');
  if (msk.mode === 'provisioned') {
    if (msk.brokerCount < 3 || msk.brokerCount % 3 !== 0) {
      problems.push(
        `msk.brokerCount ${msk.brokerCount} must be a positive multiple of 3 (3 AZs, replication factor 3 with min.insync.replicas 2)`,
      );
    }
    const maxVolume = msk.maxEbsVolumeGiB;
    if (maxVolume !== undefined && (maxVolume < msk.ebsVolumeGiB || maxVolume > 16_384)) {
      problems.push(
        `msk.maxEbsVolumeGiB ${maxVolume} must be between ebsVolumeGiB (${msk.ebsVolumeGiB}) and 16384 (the MSK maximum)`,
      );
    }
    const [major = 0, minor = 0] = msk.kafkaVersion.split('.').map((part) => Number.parseInt(part, 10));
    if (major < 3 || (major === 3 && minor < 6)) {
      problems.push(`msk.kafkaVersion ${msk.kafkaVersion} is too old: AWS::MSK::Topic needs Kafka 3.6.0 or later`);
    }
  }
  return problems;
}

function checkSource(source: SourceConfig): string[] {
  const where = `source '${source.name}'`;
  const problems: string[] = [];
  const capacity = source.capacity ?? { mode: 'provisioned', workerCount: 1, mcuCount: 1 };
  const tasksMax = source.tasksMax ?? 1;

  if (source.engine === 'mysql' || source.engine === 'mariadb') {
    // AWS: "the Debezium MySQL connector ... does not work with autoscaled capacity mode" (autoscaling overrides
    // tasks.max), and the connector can only ever run one task.
    if (capacity.mode === 'autoscaled') {
      problems.push(
        `${where}: Debezium ${source.engine} does not work with autoscaled capacity; use { mode: 'provisioned', workerCount: 1 }`,
      );
    }
    if (tasksMax > 1) {
      problems.push(`${where}: Debezium ${source.engine} supports exactly one task; tasksMax is ${tasksMax}`);
    }
  }
  if (capacity.mode === 'provisioned' && capacity.workerCount !== 1) {
    problems.push(`${where}: Debezium connectors need exactly 1 worker; workerCount is ${capacity.workerCount}`);
  }
  const heartbeat = heartbeatTableName(source);
  const heartbeats = source.heartbeatIntervalMs !== undefined && source.heartbeatIntervalMs > 0;
  if (source.engine === 'postgresql' && !heartbeats) {
    // Without heartbeats, a slot whose tables see no writes never confirms an LSN, and the server keeps all WAL.
    problems.push(
      `${where}: PostgreSQL sources need heartbeatIntervalMs (heartbeat.interval.ms > 0), otherwise the replication slot retains WAL while the captured tables are idle`,
    );
  } else if (heartbeat !== undefined && !heartbeats) {
    // Debezium runs heartbeat.action.query on each heartbeat: without heartbeats the table is never written, and the
    // freshness alarms (no data = stale) fire whenever the source is idle.
    problems.push(
      `${where}: heartbeat table '${heartbeat}' needs heartbeatIntervalMs (heartbeat.interval.ms > 0): Debezium writes it on each heartbeat, so without heartbeats an idle source looks stale; set heartbeatTable: false to do without`,
    );
  }
  if (source.tables.length === 0) problems.push(`${where}: lists no tables`);
  for (const table of source.tables) {
    const parts = table.name.split('.').length;
    if (parts !== 2) {
      problems.push(`${where}: table '${table.name}' must be '<schema|database>.<table>'`);
    }
    if (!Number.isInteger(table.partitions) || table.partitions < 1) {
      problems.push(`${where}: table '${table.name}' needs at least 1 partition`);
    }
  }
  if (source.network.securityGroupId === undefined && source.network.cidr === undefined) {
    problems.push(`${where}: network needs a securityGroupId or a cidr so the connector can reach the database`);
  }
  const schemas = source.captureSchemas ?? [];
  if (schemas.some((schema) => !/^[^.\s]+$/.test(schema))) {
    problems.push(`${where}: captureSchemas entries must be plain schema/database names (no dots or spaces)`);
  }
  if (
    source.engine === 'postgresql' &&
    schemas.length > 0 &&
    (source.publicationAutocreateMode ?? 'filtered') === 'filtered'
  ) {
    // 'filtered' creates the publication FOR TABLE <the tables that exist when the connector starts>: a table created
    // later is not published, so its rows never reach the slot, whatever the include list says.
    problems.push(
      `${where}: captureSchemas needs a publication that covers future tables: publicationAutocreateMode 'disabled' with a publication created FOR TABLES IN SCHEMA (PostgreSQL 15+), or 'all_tables'; 'filtered' only publishes the tables present at connector start`,
    );
  }
  const signal = signalTableName(source);
  if (signal.split('.').length !== 2) {
    problems.push(`${where}: signalTable '${signal}' must be '<schema|database>.<table>'`);
  }
  if (heartbeat !== undefined && heartbeat.split('.').length !== 2) {
    problems.push(`${where}: heartbeatTable '${heartbeat}' must be '<schema|database>.<table>'`);
  }
  if (heartbeat !== undefined && heartbeat === signal) {
    problems.push(
      `${where}: heartbeatTable '${heartbeat}' is the signal table: the heartbeat upserts need a table of their own`,
    );
  }
  if (source.engine === 'sqlserver' && source.serverCertificate.trust === 'truststore') {
    const { bucketArn, key } = source.serverCertificate.trustStore;
    if (!/^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$/.test(bucketArn) || key.length === 0) {
      problems.push(
        `${where}: serverCertificate.trustStore needs a bucket ARN (arn:aws:s3:::<bucket>) and an object key`,
      );
    }
  }
  const chunk = source.incrementalSnapshotChunkSize;
  if (chunk !== undefined && (!Number.isInteger(chunk) || chunk < 1)) {
    problems.push(`${where}: incrementalSnapshotChunkSize must be a positive integer`);
  }
  const unlisted = source.unlistedTopicPartitions;
  if (unlisted !== undefined && (!Number.isInteger(unlisted) || unlisted < 1)) {
    problems.push(`${where}: unlistedTopicPartitions must be a positive integer`);
  }
  if (!/^[a-zA-Z0-9_.-]+$/.test(source.topicPrefix)) {
    problems.push(`${where}: topicPrefix '${source.topicPrefix}' may only contain letters, digits, '.', '_' and '-'`);
  }
  return problems;
}

/**
 * The freshness bound of a source: a positive number of seconds, at most a day (CloudWatch evaluates an alarm of
 * 1-minute periods over at most 1440 of them), and above what a healthy source reaches anyway: the heartbeat
 * interval (an idle source changes only that often) plus the longest batching window of the lanes that read it.
 */
function checkFreshness(config: EnvironmentConfig, source: SourceConfig): string[] {
  const where = `source '${source.name}'`;
  const bound = source.freshnessBoundSeconds ?? DEFAULT_FRESHNESS_BOUND_SECONDS;
  if (!Number.isFinite(bound) || bound <= 0 || bound > 86_400) {
    return [`${where}: freshnessBoundSeconds ${bound} must be more than 0 and at most 86400 (one day)`];
  }
  const intervalMs = source.heartbeatIntervalMs ?? 0;
  const windowSeconds = Math.max(
    0,
    ...LANE_NAMES.filter((lane) => laneSources(config, lane).some((s) => s.name === source.name)).map(
      (lane) => config.lanes[lane].maxBatchingWindowSeconds,
    ),
  );
  if (bound * 1000 <= intervalMs + windowSeconds * 1000) {
    return [
      `${where}: freshnessBoundSeconds ${bound} must exceed heartbeatIntervalMs (${intervalMs / 1000} s) plus the longest batching window of the lanes that read it (${windowSeconds} s): an idle healthy source applies a change only that often, so a shorter bound alarms on a healthy source`,
    ];
  }
  return [];
}

function duplicates(values: readonly string[]): string[] {
  const seen = new Set<string>();
  const dup = new Set<string>();
  for (const value of values) {
    if (seen.has(value)) dup.add(value);
    seen.add(value);
  }
  return [...dup];
}

function checkUniqueness(config: EnvironmentConfig): string[] {
  const problems: string[] = [];
  for (const name of duplicates(config.sources.map((s) => s.name))) {
    problems.push(`source name '${name}' is used by more than one source`);
  }
  for (const prefix of duplicates(config.sources.map((s) => s.topicPrefix))) {
    problems.push(`topicPrefix '${prefix}' is used by more than one source: their topics and offsets would collide`);
  }
  // A replication slot serves exactly one connector; two connectors on one slot steal each other's changes. Slot
  // names are only unique per server, but reusing one across sources is always a copy-paste mistake here.
  const slotNames = config.sources.flatMap((s) => (s.engine === 'postgresql' ? [s.slotName] : []));
  for (const name of duplicates(slotNames)) {
    problems.push(`slotName '${name}' is used by more than one PostgreSQL source: give each connector its own slot`);
  }
  const serverIds = config.sources.flatMap((s) =>
    s.engine === 'mysql' || s.engine === 'mariadb' ? [String(s.serverId)] : [],
  );
  for (const id of duplicates(serverIds)) problems.push(`serverId ${id} is used by more than one MySQL/MariaDB source`);
  const topics = config.sources.flatMap((s) => [
    ...dataTopics(s).map((t) => t.topicName),
    ...[schemaChangeTopicName(s)].filter((t) => t !== undefined),
    unlistedTopicName(s),
    ...[heartbeatTableTopicName(s)].filter((t) => t !== undefined),
    signalTopicName(s),
    notificationTopicName(s),
  ]);
  for (const topic of duplicates(topics)) {
    problems.push(
      `topic '${topic}' would be used by more than one table, source, catch-all, heartbeat table or signal/notification channel`,
    );
  }
  return problems;
}

function checkLanes(config: EnvironmentConfig): string[] {
  const problems: string[] = [];
  const sourceNames = new Set(config.sources.map((s) => s.name));
  for (const lane of LANE_NAMES) {
    const cfg = config.lanes[lane];
    const where = `lane '${lane}'`;
    if (cfg.deadLetterQueue === undefined) {
      problems.push(`${where} has no deadLetterQueue: every lane needs its own SQS DLQ for per-record dead letters`);
    } else if (cfg.deadLetterQueue.retentionDays < 1 || cfg.deadLetterQueue.retentionDays > 14) {
      problems.push(`${where}: deadLetterQueue.retentionDays must be 1–14 (SQS maximum)`);
    }
    if (cfg.latencySloMs !== undefined && cfg.maxBatchingWindowSeconds > 0) {
      problems.push(
        `${where} has a latency SLO of ${cfg.latencySloMs} ms but maxBatchingWindowSeconds is ${cfg.maxBatchingWindowSeconds}: the batching window delays every record, set it to 0`,
      );
    }
    if (cfg.timeoutSeconds < 1 || cfg.timeoutSeconds > 840) {
      problems.push(`${where}: timeoutSeconds must be 1–840 (Kafka event source mappings allow 14 minutes)`);
    }
    if (cfg.batchSize < 1 || cfg.batchSize > 10_000) problems.push(`${where}: batchSize must be 1–10000`);
    if (
      !Number.isInteger(cfg.maxBatchingWindowSeconds) ||
      cfg.maxBatchingWindowSeconds < 0 ||
      cfg.maxBatchingWindowSeconds > 300
    ) {
      problems.push(`${where}: maxBatchingWindowSeconds must be a whole number of seconds, 0–300`);
    }
    if (cfg.retryAttempts < -1 || cfg.retryAttempts > 10_000) problems.push(`${where}: retryAttempts must be -1–10000`);
    const parkAfter = cfg.parkAfterAttempts ?? DEFAULT_PARK_AFTER_ATTEMPTS;
    if (!Number.isInteger(parkAfter) || parkAfter < 0) {
      problems.push(`${where}: parkAfterAttempts must be a whole number, 0 (never park) or more`);
    } else if (parkAfter > 0 && cfg.retryAttempts >= 0 && parkAfter > cfg.retryAttempts + 1) {
      problems.push(
        `${where}: parkAfterAttempts ${parkAfter} exceeds retryAttempts + 1 (${cfg.retryAttempts + 1}): the event source mapping gives a batch up after that many deliveries, before a poison key is parked; lower it or raise retryAttempts`,
      );
    }
    if (cfg.maxRecordAgeSeconds !== -1 && (cfg.maxRecordAgeSeconds < 60 || cfg.maxRecordAgeSeconds > 604_800)) {
      problems.push(`${where}: maxRecordAgeSeconds must be -1 or 60–604800`);
    }
    const { minimum, maximum } = cfg.provisionedPollers;
    if (minimum < 1 || minimum > 200 || maximum < minimum || maximum > 2000) {
      problems.push(`${where}: provisionedPollers needs 1 ≤ minimum ≤ 200 and minimum ≤ maximum ≤ 2000`);
    }
    for (const name of cfg.sources ?? []) {
      if (!sourceNames.has(name)) problems.push(`${where} lists unknown source '${name}'`);
    }
  }
  return problems;
}

function checkSchemaChanges(config: EnvironmentConfig): string[] {
  const policy = config.schemaChanges;
  if (policy === undefined) return [];
  const problems: string[] = [];
  const valid = (value: string) => (SCHEMA_CHANGE_POLICIES as readonly string[]).includes(value);
  if (!valid(policy.default)) {
    problems.push(`schemaChanges.default '${policy.default}' must be one of ${SCHEMA_CHANGE_POLICIES.join(', ')}`);
  }
  for (const [table, value] of Object.entries(policy.tables ?? {})) {
    if (!/^[^.\s]+(\.[^.\s]+){1,2}$/.test(table)) {
      problems.push(
        `schemaChanges.tables: '${table}' must be a Debezium data collection ('<schema|database>.<table>', SQL Server '<database>.<schema>.<table>')`,
      );
    }
    if (!valid(value)) {
      problems.push(`schemaChanges.tables['${table}'] '${value}' must be one of ${SCHEMA_CHANGE_POLICIES.join(', ')}`);
    }
  }
  return problems;
}

/** Characters of the current-state function's CURRENT_STATE_TABLES, leaving room in Lambda's 4 KB for the rest. */
const MAX_TABLE_LIST_CHARS = 3_000;

const wholeIn = (value: number, min: number, max: number) => Number.isInteger(value) && value >= min && value <= max;

/** The change log's Glue tables and compaction: names that stay distinct, a start day, sane compaction windows. */
function checkWarehouseCatalog(config: EnvironmentConfig): string[] {
  const problems: string[] = [];
  const start = config.data.changeLogStartDate;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(start) || Number.isNaN(Date.parse(`${start}T00:00:00Z`))) {
    problems.push(`data.changeLogStartDate '${start}' must be a day, YYYY-MM-DD`);
  }
  const compaction = config.data.compaction;
  const closedAfter = compaction.closedAfterHours ?? DEFAULT_COMPACTION_CLOSED_AFTER_HOURS;
  if (!wholeIn(closedAfter, 1, 168)) {
    problems.push(`data.compaction.closedAfterHours ${closedAfter} must be a whole number of hours, 1–168`);
  }
  const noncurrent = compaction.noncurrentVersionDays ?? DEFAULT_COMPACTION_NONCURRENT_DAYS;
  if (!wholeIn(noncurrent, 1, 365)) {
    problems.push(`data.compaction.noncurrentVersionDays ${noncurrent} must be a whole number of days, 1–365`);
  }
  // Glue names fold case and punctuation: two table ids may fold to one name.
  const tables = warehouseTables(config);
  // The current-state function gets its tables in one variable; Lambda allows 4 KB for all of them.
  const listed = tables.map((t) => t.changesTable).join(',').length;
  if (listed > MAX_TABLE_LIST_CHARS) {
    problems.push(
      `the warehouse lane's listed tables make a table list of ${listed} characters, more than the ${MAX_TABLE_LIST_CHARS} the current-state function's environment can hold (Lambda: 4 KB of variables)`,
    );
  }
  for (const name of duplicates(tables.map((t) => t.changesTable))) {
    const ids = tables.filter((t) => t.changesTable === name).map((t) => t.tableId);
    problems.push(`tables ${ids.join(', ')} would share the Glue table name '${name}': rename one (topicPrefix)`);
  }
  return problems;
}

/**
 * The current-state merge: a schedule the freshness bound leaves room for. The alarm needs every period of the bound
 * to breach, and runs are `scheduleMinutes` apart, so a bound shorter than two runs would fire whenever one run's
 * metric lands in the next period.
 */
function checkCurrentState(config: EnvironmentConfig): string[] {
  const cs = config.currentState;
  const problems: string[] = [];
  const minutes = cs.scheduleMinutes ?? DEFAULT_CURRENT_STATE_SCHEDULE_MINUTES;
  const bound = cs.freshnessBoundSeconds ?? DEFAULT_CURRENT_STATE_FRESHNESS_SECONDS;
  if (!wholeIn(minutes, 1, 60)) {
    problems.push(`currentState.scheduleMinutes ${minutes} must be a whole number of minutes, 1–60`);
  } else if (!wholeIn(bound, 2 * minutes * 60, 86_400)) {
    problems.push(
      `currentState.freshnessBoundSeconds ${bound} must be a whole number of seconds from two runs (${2 * minutes * 60}, scheduleMinutes ${minutes}) to 86400: a healthy table is up to one run behind, and one late run must not alarm`,
    );
  }
  const parallel = cs.parallelTables ?? DEFAULT_CURRENT_STATE_PARALLEL_TABLES;
  if (!wholeIn(parallel, 1, 20)) {
    problems.push(
      `currentState.parallelTables ${parallel} must be 1–20 (Athena runs 20 DML queries at a time by default)`,
    );
  }
  const cutoff = cs.bytesScannedCutoffGiB;
  if (cutoff !== undefined && !wholeIn(cutoff, 1, 7_000_000)) {
    problems.push(`currentState.bytesScannedCutoffGiB ${cutoff} must be a whole number of GiB, at least 1`);
  }
  const maintenance = cs.maintenanceSchedule;
  if (maintenance !== undefined && !/^(cron|rate)\(.+\)$/.test(maintenance)) {
    problems.push(`currentState.maintenanceSchedule '${maintenance}' must be a cron(…) or rate(…) expression`);
  }
  return problems;
}
