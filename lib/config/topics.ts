import { createHash } from 'node:crypto';
import type { EnvironmentConfig, LaneName, SourceConfig, TableConfig } from './types';

/**
 * Names derived from the configuration, in one place so the topics, the connectors' include lists, the event source
 * mappings, the consumer groups and the IAM resources cannot disagree.
 */

/** A data topic: one per captured table, named the way Debezium names it (docs/formats.md §2.11). */
export interface DataTopic {
  readonly source: SourceConfig;
  readonly table: TableConfig;
  readonly topicName: string;
}

/** Debezium's data topic name for a table: PG/MySQL `<prefix>.<schema|db>.<table>`, SQL Server adds the database. */
export function dataTopicName(source: SourceConfig, table: TableConfig): string {
  switch (source.engine) {
    case 'sqlserver':
      return `${source.topicPrefix}.${source.database}.${table.name}`;
    default:
      return `${source.topicPrefix}.${table.name}`;
  }
}

export function dataTopics(source: SourceConfig): DataTopic[] {
  return source.tables.map((table) => ({ source, table, topicName: dataTopicName(source, table) }));
}

/** Partitions of a source's catch-all topic when `unlistedTopicPartitions` is not set. */
export const DEFAULT_UNLISTED_TOPIC_PARTITIONS = 3;

/**
 * The connector's catch-all topic: every captured table that is not in `tables` (a table created later in a
 * `captureSchemas` schema) is routed here by the connector (see `unlistedTopicRegex`), so the lanes, which subscribe
 * per topic, consume it without a configuration change and a redeploy.
 */
export function unlistedTopicName(source: SourceConfig): string {
  return `${source.topicPrefix}.unlisted`;
}

const escapeRegex = (value: string) => value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The connector's routing regex (Kafka's `RegexRouter`, `regex`, matched against the whole topic name like Java's
 * `Matcher.matches()`): a table topic of this source, `<prefix>.<schema|db>.<table>` (SQL Server
 * `<prefix>.<db>.<schema>.<table>`), except the topics of the listed tables, of the signalling table and of the
 * heartbeat table, which keep their own. Requiring every segment after the prefix leaves the connector's other
 * topics alone: the transaction topic (`<prefix>.transaction`), the notifications (`<prefix>.notifications`), the
 * schema-change topic (`<prefix>`) and Debezium's heartbeats (`__debezium-heartbeat.<prefix>`). Only constructs whose
 * meaning is the same in Java and JavaScript regular expressions are used (escaped literals, `[^.]`, `+`,
 * alternation, a negative lookahead), so the tests evaluate it with `RegExp`.
 */
export function unlistedTopicRegex(source: SourceConfig): string {
  // Topic names after `<prefix>.`: `<schema>.<table>`, or for SQL Server `<db>.<schema>.<table>` with the db fixed.
  const head = source.engine === 'sqlserver' ? `${source.topicPrefix}.${source.database}.` : `${source.topicPrefix}.`;
  const heartbeat = heartbeatTableTopicName(source);
  const listed = [
    ...source.tables.map((t) => dataTopicName(source, t)),
    signalTableTopicName(source),
    ...(heartbeat === undefined ? [] : [heartbeat]),
  ]
    .filter((topic) => topic.startsWith(head))
    .map((topic) => escapeRegex(topic.slice(head.length)));
  const excluded = [...new Set(listed)];
  const except = excluded.length > 0 ? `(?!(?:${excluded.join('|')})$)` : '';
  return `${escapeRegex(head)}${except}[^.]+\\.[^.]+`;
}

/** The topic Debezium writes the signalling table's own changes to (no lane reads it). */
export function signalTableTopicName(source: SourceConfig): string {
  return dataTopicName(source, { name: signalTableName(source), partitions: 1 });
}

/**
 * Debezium's heartbeat topic (`topic.heartbeat.prefix` default): offsets only, no row change. Lanes never subscribe to
 * it; they read the heartbeat *table's* topic ({@link heartbeatTableTopicName}).
 */
export function heartbeatTopicName(source: SourceConfig): string {
  return `__debezium-heartbeat.${source.topicPrefix}`;
}

/** Debezium's transaction metadata topic. Lanes never subscribe to it. */
export function transactionTopicName(source: SourceConfig): string {
  return `${source.topicPrefix}.transaction`;
}

/** Internal schema history topic of MySQL/MariaDB and SQL Server connectors (not the public schema-change topic). */
export function schemaHistoryTopicName(source: SourceConfig): string {
  return `__cdc-sync.schema-history.${source.topicPrefix}`;
}

/**
 * The workers' global offset storage topic (`offset.storage.topic` of the shared worker configuration). Connectors no
 * longer write their offsets here but to their own topic ({@link connectorOffsetsTopicName}); they only read it, so a
 * connector deployed before that change finds its offsets there once and copies them over (KIP-618 migration).
 */
export function connectOffsetsTopicName(env: EnvironmentConfig): string {
  return `__cdc-sync-${env.name}-connect-offsets`;
}

/**
 * A connector's own offsets topic (the connector-level `offsets.storage.topic`, Kafka Connect 3.3+, KIP-618). Named,
 * unlike MSK Connect's per-connector default, so it survives deleting and re-creating the connector under the same
 * name (how an immutable connector change is applied, see lib/custom-resources/connector), and per connector so that
 * no connector's role can write another connector's offsets.
 */
export function connectorOffsetsTopicName(env: EnvironmentConfig, source: SourceConfig): string {
  return `__cdc-sync-${env.name}-${source.name}-offsets`;
}

export function connectorName(env: EnvironmentConfig, source: SourceConfig): string {
  return `cdc-sync-${env.name}-${source.name}`;
}

/** The sources a lane consumes (all unless the lane lists some). */
export function laneSources(env: EnvironmentConfig, lane: LaneName): SourceConfig[] {
  const names = env.lanes[lane].sources;
  return names === undefined ? [...env.sources] : env.sources.filter((s) => names.includes(s.name));
}

/**
 * Debezium's public schema-change topic (`<prefix>`, `include.schema.changes=true`): MySQL/MariaDB and SQL Server
 * only (PostgreSQL's logical decoding carries no DDL). One partition, so DDL stays in order.
 */
export function schemaChangeTopicName(source: SourceConfig): string | undefined {
  return source.engine === 'postgresql' ? undefined : source.topicPrefix;
}

/**
 * The connector's Kafka signal channel (`signal.kafka.topic`): the signaller function (the lanes' automatic
 * reconciliation, through the signals queue) and `npm run backfill -- --env` produce Debezium `execute-snapshot`
 * signals here, keyed by the source's `topicPrefix` (Debezium ignores any other key). One partition: Debezium reads
 * partition 0 only.
 */
export function signalTopicName(source: SourceConfig): string {
  return `${source.topicPrefix}.signals`;
}

/** The connector's notification sink topic (`notification.sink.topic.name`): incremental snapshot progress. */
export function notificationTopicName(source: SourceConfig): string {
  return `${source.topicPrefix}.notifications`;
}

/** Consumer group of a connector's Kafka signal reader (`signal.kafka.groupId`), named so IAM can scope it. */
export function signalGroupId(env: EnvironmentConfig, source: SourceConfig): string {
  return `${connectorName(env, source)}-signals`;
}

/** The signalling table (`signal.data.collection` without SQL Server's database), see SourceConfig.signalTable. */
export function signalTableName(source: SourceConfig): string {
  if (source.signalTable !== undefined) return source.signalTable;
  const first = source.tables[0]?.name.split('.')[0] ?? (source.engine === 'sqlserver' ? 'dbo' : 'public');
  return `${first}.debezium_signal`;
}

/**
 * The table Debezium upserts on every heartbeat (`heartbeat.action.query`), see SourceConfig.heartbeatTable, named
 * like `tables` (SQL Server without the database); undefined when the source turns it off (`heartbeatTable: false`).
 */
export function heartbeatTableName(source: SourceConfig): string | undefined {
  if (source.heartbeatTable === false) return undefined;
  if (source.heartbeatTable !== undefined) return source.heartbeatTable;
  return `${signalTableName(source).split('.')[0]}.cdc_heartbeat`;
}

/** Partitions of a heartbeat table's topic. */
export const HEARTBEAT_TOPIC_PARTITIONS = 1;

/**
 * The heartbeat table's data topic (1 partition: one row, whose upserts stay in order), which every lane reading the
 * source subscribes to; the catch-all routing leaves it alone. Undefined when the source has no heartbeat table.
 */
export function heartbeatTableTopicName(source: SourceConfig): string | undefined {
  const table = heartbeatTableName(source);
  return table === undefined
    ? undefined
    : dataTopicName(source, { name: table, partitions: HEARTBEAT_TOPIC_PARTITIONS });
}

/**
 * SSM parameter (String, JSON {@link SignallingParameter}) through which `npm run backfill -- --env <env>` finds the
 * signal and notification topics and the cluster's IAM bootstrap brokers.
 */
export function signallingParameterName(env: EnvironmentConfig): string {
  return `/cdc-sync/${env.name}/signalling`;
}

/** The value of the {@link signallingParameterName} parameter. */
export interface SignallingParameter {
  /** The cluster's IAM-auth bootstrap brokers (port 9098), comma-separated. */
  readonly bootstrapServers: string;
  readonly sources: ReadonlyArray<{
    readonly name: string;
    readonly engine: SourceConfig['engine'];
    /** Debezium `topic.prefix`: the signal message key. */
    readonly topicPrefix: string;
    /** SQL Server database (data collections are `<database>.<schema>.<table>`). */
    readonly database?: string;
    readonly signalTopic: string;
    readonly notificationTopic: string;
  }>;
}

/**
 * A topic a lane subscribes to: a table's data topic, a source's catch-all topic, its heartbeat table's topic or its
 * schema-change topic.
 */
export interface LaneTopic {
  readonly source: SourceConfig;
  readonly topicName: string;
  readonly kind: 'data' | 'unlisted' | 'heartbeat' | 'schema-changes';
}

/**
 * Every topic a lane subscribes to: the data topics of its sources, their catch-all topics (tables not listed), their
 * heartbeat table's topic (its changes keep every lane's SourceFreshness current while the source is idle) and, for
 * MySQL/MariaDB and SQL Server, their schema-change topic (the lanes record DDL into the schema history). Never
 * Debezium's own heartbeat topic (`__debezium-heartbeat.<prefix>`: no row change, nothing to apply), nor transaction,
 * schema history, signal or notification topics.
 */
export function laneTopics(env: EnvironmentConfig, lane: LaneName): LaneTopic[] {
  return laneSources(env, lane).flatMap((source) => {
    const topics: LaneTopic[] = dataTopics(source).map((t) => ({ source, topicName: t.topicName, kind: 'data' }));
    topics.push({ source, topicName: unlistedTopicName(source), kind: 'unlisted' });
    const heartbeat = heartbeatTableTopicName(source);
    if (heartbeat !== undefined) topics.push({ source, topicName: heartbeat, kind: 'heartbeat' });
    const schemaTopic = schemaChangeTopicName(source);
    if (schemaTopic !== undefined) topics.push({ source, topicName: schemaTopic, kind: 'schema-changes' });
    return topics;
  });
}

const MAX_CONSUMER_GROUP_ID = 200;

/**
 * The consumer group of one lane on one topic. Lambda requires a consumer group id to be unique among all Kafka
 * event sources, and an MSK event source mapping takes exactly one topic, so the id names env, lane and topic:
 * `cdc-<env>-<lane>-<topic>`. Ids longer than Lambda's 200 characters keep their start and get a hash suffix.
 */
export function consumerGroupId(env: EnvironmentConfig, lane: LaneName, topicName: string): string {
  const id = `${consumerGroupPrefix(env, lane)}${topicName}`;
  if (id.length <= MAX_CONSUMER_GROUP_ID) return id;
  const hash = createHash('sha256').update(id).digest('hex').slice(0, 12);
  return `${id.slice(0, MAX_CONSUMER_GROUP_ID - hash.length - 1)}-${hash}`;
}

/** Every consumer group of a lane starts with this, which lets IAM scope the lane to its own groups. */
export function consumerGroupPrefix(env: EnvironmentConfig, lane: LaneName): string {
  return `cdc-${env.name}-${lane}-`;
}
