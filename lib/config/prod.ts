import type { EnvironmentConfig, LaneConfig } from './types';

/**
 * prod: 6× kafka.m7g.large over 3 AZs in the organisation's existing VPC (imported by id, no lookup), everything
 * retained, audit Object Lock for 7 years (2557 days), all three source engines.
 *
 * Account ids, VPC/subnet ids, hostnames, secret ARNs and email addresses are PLACEHOLDERS: replace them with yours.
 */
const lane: LaneConfig = {
  memoryMiB: 1024,
  timeoutSeconds: 120,
  batchSize: 1_000,
  maxBatchingWindowSeconds: 1,
  startingPosition: 'TRIM_HORIZON',
  provisionedPollers: { minimum: 2, maximum: 20 },
  bisectBatchOnError: true,
  retryAttempts: 10,
  maxRecordAgeSeconds: 604_800,
  reportBatchItemFailures: true,
  deadLetterQueue: { retentionDays: 14 },
  logLevel: 'INFO',
  maxOffsetLagAlarm: 50_000,
};

export const prod: EnvironmentConfig = {
  name: 'prod',
  account: '333333333333',
  region: 'eu-west-1',
  removalPolicy: 'retain',
  network: {
    vpc: {
      kind: 'imported',
      vpcId: 'vpc-0333333333333333a',
      vpcCidr: '10.42.0.0/16',
      availabilityZones: ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'],
      privateSubnetIds: ['subnet-0333333333333333a', 'subnet-0333333333333333b', 'subnet-0333333333333333c'],
      privateSubnetRouteTableIds: ['rtb-0333333333333333a', 'rtb-0333333333333333b', 'rtb-0333333333333333c'],
      createEndpoints: true,
    },
  },
  msk: {
    mode: 'provisioned',
    kafkaVersion: '3.8.x',
    brokerInstanceType: 'kafka.m7g.large',
    brokerCount: 6,
    ebsVolumeGiB: 1_000,
    retentionHours: 168,
  },
  connect: {
    kafkaConnectVersion: '3.7.x',
    plugin: {
      kind: 's3',
      bucketArn: 'arn:aws:s3:::cdc-sync-artifacts-333333333333',
      fileKey: 'debezium/cdc-sync-debezium-plugin-2.7.4.zip',
    },
    logRetentionDays: 90,
  },
  schemaRegistry: { compatibility: 'BACKWARD' },
  sources: [
    {
      engine: 'postgresql',
      name: 'orders',
      topicPrefix: 'orders',
      hostname: 'orders-db.prod.internal.example.com',
      port: 5432,
      database: 'orders',
      credentialsSecretArn: 'arn:aws:secretsmanager:eu-west-1:333333333333:secret:cdc-sync/prod/orders-db-AbCdEf',
      network: { securityGroupId: 'sg-0333456789abcdef0' },
      slotName: 'cdc_sync_prod_orders',
      publicationName: 'cdc_sync_prod_orders',
      publicationAutocreateMode: 'disabled',
      // RDS for PostgreSQL (PLACEHOLDER instance id): slot-lag and WAL alarms. Like every source, it upserts its
      // heartbeat table (public.cdc_heartbeat, the default) every heartbeatIntervalMs.
      rdsInstanceId: 'orders-db-prod',
      captureSchemas: ['public'],
      heartbeatIntervalMs: 10_000,
      capacity: { mode: 'provisioned', workerCount: 1, mcuCount: 2 },
      tables: [
        { name: 'public.orders', partitions: 12 },
        { name: 'public.order_lines', partitions: 12 },
        { name: 'public.customers', partitions: 6 },
      ],
    },
    {
      engine: 'mysql',
      name: 'inventory',
      topicPrefix: 'inventory',
      hostname: 'inventory-db.prod.internal.example.com',
      port: 3306,
      serverId: 384_054,
      credentialsSecretArn: 'arn:aws:secretsmanager:eu-west-1:333333333333:secret:cdc-sync/prod/inventory-db-AbCdEf',
      network: { securityGroupId: 'sg-0333456789abcdef1' },
      captureSchemas: ['inventory'],
      heartbeatIntervalMs: 10_000,
      tables: [{ name: 'inventory.stock', partitions: 12 }],
    },
    {
      engine: 'sqlserver',
      name: 'billing',
      topicPrefix: 'billing',
      hostname: 'billing-db.prod.internal.example.com',
      port: 1433,
      database: 'Billing',
      // The RDS CA bundle as a trust store (PLACEHOLDER location), its password in the secret's trustStorePassword.
      serverCertificate: {
        trust: 'truststore',
        trustStore: { bucketArn: 'arn:aws:s3:::cdc-sync-artifacts-333333333333', key: 'truststores/rds-ca.p12' },
      },
      credentialsSecretArn: 'arn:aws:secretsmanager:eu-west-1:333333333333:secret:cdc-sync/prod/billing-db-AbCdEf',
      network: { securityGroupId: 'sg-0333456789abcdef2' },
      heartbeatIntervalMs: 10_000,
      tables: [{ name: 'dbo.invoices', partitions: 6 }],
    },
  ],
  lanes: {
    warehouse: { ...lane, batchSize: 5_000, maxBatchingWindowSeconds: 30, timeoutSeconds: 600, memoryMiB: 3008 },
    cache: { ...lane, batchSize: 500, maxBatchingWindowSeconds: 0, latencySloMs: 1_000, maxOffsetLagAlarm: 5_000 },
    audit: { ...lane, bisectBatchOnError: false, maxRecordAgeSeconds: -1 },
  },
  data: {
    auditRetentionDays: 2_557,
    accessLogRetentionDays: 365,
    failureRetentionDays: 90,
    changeLogStartDate: '2026-01-01',
    compaction: { closedAfterHours: 6, noncurrentVersionDays: 30 },
  },
  cache: { majorEngineVersion: '8', maxDataStorageGb: 50, maxEcpuPerSecond: 100_000, snapshotRetentionLimit: 7 },
  // The largest table: re-reading it is a decision for a person (alarm, then npm run backfill), not automatic.
  schemaChanges: { default: 'auto', tables: { 'public.order_lines': 'alarm' } },
  currentState: { freshnessBoundSeconds: 300, scheduleMinutes: 1, parallelTables: 6, bytesScannedCutoffGiB: 500 },
  observability: {
    alarmEmails: ['cdc-sync-oncall@example.com', 'data-platform@example.com'],
    logRetentionDays: 90,
    maxLaneErrors: 1,
  },
};
