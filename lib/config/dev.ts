import type { EnvironmentConfig, LaneConfig } from './types';

/**
 * dev: small and cheap. 3× kafka.t3.small, short retention, everything destroyed with the stacks except the audit
 * bucket (Object Lock data is never auto-deleted; its retention here is 1 day).
 *
 * Account ids, hostnames, secret ARNs and email addresses are PLACEHOLDERS: replace them with yours.
 */
const lane: LaneConfig = {
  memoryMiB: 512,
  timeoutSeconds: 60,
  batchSize: 100,
  maxBatchingWindowSeconds: 1,
  startingPosition: 'TRIM_HORIZON',
  provisionedPollers: { minimum: 1, maximum: 3 },
  bisectBatchOnError: true,
  retryAttempts: 3,
  // Parked before the mapping gives the batch up (1 delivery + 3 retries).
  parkAfterAttempts: 3,
  maxRecordAgeSeconds: 86_400,
  reportBatchItemFailures: true,
  deadLetterQueue: { retentionDays: 14 },
  logLevel: 'DEBUG',
  maxOffsetLagAlarm: 1_000,
};

export const dev: EnvironmentConfig = {
  name: 'dev',
  account: '111111111111',
  region: 'eu-west-1',
  removalPolicy: 'destroy',
  network: {
    vpc: {
      kind: 'new',
      cidr: '10.40.0.0/16',
      availabilityZones: ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'],
      flowLogRetentionDays: 14,
    },
  },
  msk: {
    mode: 'provisioned',
    kafkaVersion: '3.8.x',
    brokerInstanceType: 'kafka.t3.small',
    brokerCount: 3,
    ebsVolumeGiB: 20,
    retentionHours: 72,
  },
  connect: {
    kafkaConnectVersion: '3.7.x',
    plugin: {
      kind: 's3',
      bucketArn: 'arn:aws:s3:::cdc-sync-artifacts-111111111111',
      fileKey: 'debezium/cdc-sync-debezium-plugin-2.7.4.zip',
    },
    logRetentionDays: 14,
  },
  schemaRegistry: { compatibility: 'BACKWARD' },
  sources: [
    {
      engine: 'postgresql',
      name: 'orders',
      topicPrefix: 'orders',
      hostname: 'orders-db.dev.internal.example.com',
      port: 5432,
      database: 'orders',
      credentialsSecretArn: 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:cdc-sync/dev/orders-db-AbCdEf',
      network: { securityGroupId: 'sg-0123456789abcdef0' },
      slotName: 'cdc_sync_dev_orders',
      publicationName: 'cdc_sync_dev_orders',
      // The publication is created FOR TABLES IN SCHEMA public by the database owner (docs/deploy.md, "Schema
      // changes"), so a table created in public is captured from its first row.
      publicationAutocreateMode: 'disabled',
      captureSchemas: ['public'],
      heartbeatIntervalMs: 10_000,
      tables: [
        { name: 'public.orders', partitions: 3 },
        { name: 'public.order_lines', partitions: 3 },
      ],
    },
    {
      engine: 'mysql',
      name: 'inventory',
      topicPrefix: 'inventory',
      hostname: 'inventory-db.dev.internal.example.com',
      port: 3306,
      serverId: 184_054,
      credentialsSecretArn: 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:cdc-sync/dev/inventory-db-AbCdEf',
      network: { cidr: '10.50.12.0/24' },
      captureSchemas: ['inventory'],
      heartbeatIntervalMs: 10_000,
      tables: [{ name: 'inventory.stock', partitions: 3 }],
    },
  ],
  lanes: {
    warehouse: { ...lane, batchSize: 500, maxBatchingWindowSeconds: 5, timeoutSeconds: 120, memoryMiB: 1024 },
    cache: { ...lane, maxBatchingWindowSeconds: 0, latencySloMs: 2_000 },
    // The audit chain must not skip records: no record age limit, and the most retries Lambda allows once an
    // on-failure destination exists (10); a batch that still fails lands in S3 for replay.
    audit: { ...lane, bisectBatchOnError: false, retryAttempts: 10, maxRecordAgeSeconds: -1 },
  },
  data: {
    auditRetentionDays: 1,
    accessLogRetentionDays: 30,
    failureRetentionDays: 14,
    changeLogStartDate: '2026-01-01',
    compaction: { closedAfterHours: 6, noncurrentVersionDays: 7 },
  },
  cache: { majorEngineVersion: '8', maxDataStorageGb: 1, maxEcpuPerSecond: 5_000, snapshotRetentionLimit: 0 },
  currentState: { freshnessBoundSeconds: 600, scheduleMinutes: 5 },
  observability: { alarmEmails: ['cdc-sync-dev@example.com'], logRetentionDays: 14, maxLaneErrors: 5 },
};
