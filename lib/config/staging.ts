import type { EnvironmentConfig, LaneConfig } from './types';

/**
 * staging: production-shaped at a smaller size. 3× kafka.m7g.large, a week of Kafka retention, data retained on
 * stack deletion, audit Object Lock for 30 days.
 *
 * Account ids, hostnames, secret ARNs and email addresses are PLACEHOLDERS: replace them with yours.
 */
const lane: LaneConfig = {
  memoryMiB: 1024,
  timeoutSeconds: 120,
  batchSize: 500,
  maxBatchingWindowSeconds: 1,
  startingPosition: 'TRIM_HORIZON',
  provisionedPollers: { minimum: 1, maximum: 6 },
  bisectBatchOnError: true,
  retryAttempts: 5,
  maxRecordAgeSeconds: 172_800,
  reportBatchItemFailures: true,
  deadLetterQueue: { retentionDays: 14 },
  logLevel: 'INFO',
  maxOffsetLagAlarm: 10_000,
};

export const staging: EnvironmentConfig = {
  name: 'staging',
  account: '222222222222',
  region: 'eu-west-1',
  removalPolicy: 'retain',
  network: {
    vpc: {
      kind: 'new',
      cidr: '10.41.0.0/16',
      availabilityZones: ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'],
      flowLogRetentionDays: 30,
    },
  },
  msk: {
    mode: 'provisioned',
    kafkaVersion: '3.8.x',
    brokerInstanceType: 'kafka.m7g.large',
    brokerCount: 3,
    ebsVolumeGiB: 200,
    retentionHours: 168,
  },
  connect: {
    kafkaConnectVersion: '3.7.x',
    plugin: {
      kind: 's3',
      bucketArn: 'arn:aws:s3:::cdc-sync-artifacts-222222222222',
      fileKey: 'debezium/cdc-sync-debezium-plugin-2.7.4.zip',
    },
    logRetentionDays: 30,
  },
  schemaRegistry: { compatibility: 'BACKWARD' },
  sources: [
    {
      engine: 'postgresql',
      name: 'orders',
      topicPrefix: 'orders',
      hostname: 'orders-db.staging.internal.example.com',
      port: 5432,
      database: 'orders',
      credentialsSecretArn: 'arn:aws:secretsmanager:eu-west-1:222222222222:secret:cdc-sync/staging/orders-db-AbCdEf',
      network: { securityGroupId: 'sg-0223456789abcdef0' },
      slotName: 'cdc_sync_staging_orders',
      publicationName: 'cdc_sync_staging_orders',
      publicationAutocreateMode: 'disabled',
      // RDS for PostgreSQL (PLACEHOLDER instance id): slot-lag and WAL alarms. Like every source, it upserts its
      // heartbeat table (public.cdc_heartbeat, the default) every heartbeatIntervalMs.
      rdsInstanceId: 'orders-db-staging',
      captureSchemas: ['public'],
      heartbeatIntervalMs: 10_000,
      tables: [
        { name: 'public.orders', partitions: 6 },
        { name: 'public.order_lines', partitions: 6 },
        { name: 'public.customers', partitions: 3 },
      ],
    },
    {
      engine: 'mysql',
      name: 'inventory',
      topicPrefix: 'inventory',
      hostname: 'inventory-db.staging.internal.example.com',
      port: 3306,
      serverId: 284_054,
      credentialsSecretArn: 'arn:aws:secretsmanager:eu-west-1:222222222222:secret:cdc-sync/staging/inventory-db-AbCdEf',
      network: { securityGroupId: 'sg-0223456789abcdef1' },
      format: 'avro',
      captureSchemas: ['inventory'],
      heartbeatIntervalMs: 10_000,
      tables: [{ name: 'inventory.stock', partitions: 6 }],
    },
  ],
  lanes: {
    warehouse: { ...lane, batchSize: 2_000, maxBatchingWindowSeconds: 10, timeoutSeconds: 300, memoryMiB: 2048 },
    cache: { ...lane, batchSize: 200, maxBatchingWindowSeconds: 0, latencySloMs: 1_000 },
    audit: { ...lane, bisectBatchOnError: false, retryAttempts: 10, maxRecordAgeSeconds: -1 },
  },
  data: {
    auditRetentionDays: 30,
    accessLogRetentionDays: 90,
    failureRetentionDays: 30,
    changeLogStartDate: '2026-01-01',
    compaction: { closedAfterHours: 6, noncurrentVersionDays: 30 },
  },
  cache: { majorEngineVersion: '8', maxDataStorageGb: 5, maxEcpuPerSecond: 20_000, snapshotRetentionLimit: 1 },
  currentState: { freshnessBoundSeconds: 300, scheduleMinutes: 1 },
  observability: { alarmEmails: ['cdc-sync-staging@example.com'], logRetentionDays: 30, maxLaneErrors: 5 },
};
