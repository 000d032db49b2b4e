import { createHash } from 'node:crypto';
import type { EnvironmentConfig, LaneName, SourceConfig, TableConfig } from './types';

/**
 * Names derived from the configuration, in one place so the topics, the connectors' include lists, the event source
 * mappings, the consumer groups and the IAM resources cannot disagree.
 */

/** A data topic: one per captured table, named the way Debezium names it (formats.md §2.11). */
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

/** Debezium's heartbeat topic (`topic.heartbeat.prefix` default). Lanes never subscribe to it. */
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
 * Offset storage topic shared by every connector of the environment. A custom topic (instead of MSK Connect's
 * per-connector default) lets a connector be deleted and re-created under the same name and resume from its last
 * offset, which is how an immutable connector change is applied (see lib/custom-resources/connector).
 */
export function connectOffsetsTopicName(env: EnvironmentConfig): string {
  return `__cdc-sync-${env.name}-connect-offsets`;
}

export function connectorName(env: EnvironmentConfig, source: SourceConfig): string {
  return `cdc-sync-${env.name}-${source.name}`;
}

/** The sources a lane consumes (all unless the lane lists some). */
export function laneSources(env: EnvironmentConfig, lane: LaneName): SourceConfig[] {
  const names = env.lanes[lane].sources;
  return names === undefined ? [...env.sources] : env.sources.filter((s) => names.includes(s.name));
}

/** Every data topic a lane subscribes to (never heartbeat, transaction or schema topics). */
export function laneTopics(env: EnvironmentConfig, lane: LaneName): DataTopic[] {
  return laneSources(env, lane).flatMap(dataTopics);
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
