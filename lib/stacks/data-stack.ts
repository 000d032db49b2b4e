import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elasticache from 'aws-cdk-lib/aws-elasticache';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { DEFAULT_COMPACTION_NONCURRENT_DAYS, type EnvironmentConfig, glueDatabaseName } from '../config';
import { ON_FAILURE_PREFIX } from '../constructs/lane-function';
import { SecureBucket } from '../constructs/secure-bucket';
import { WarehouseCatalog } from '../constructs/warehouse-catalog';
import { removalPolicyOf, resourcePrefix } from '../util';

export interface DataStackProps extends StackProps {
  readonly config: EnvironmentConfig;
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly cacheSecurityGroup: ec2.ISecurityGroup;
}

/** Key prefix of the warehouse change log (the lane's WAREHOUSE_PREFIX). */
export const DEFAULT_WAREHOUSE_PREFIX = 'changes/';
export const DEFAULT_AUDIT_PREFIX = 'audit/';
/** Id of the failure bucket's request metrics filter on failed batches (the `FilterId` metric dimension). */
export const FAILED_BATCHES_METRICS_FILTER = 'failed-batches';
/** Folder under the warehouse prefix where the warehouse lane keeps each table's schema versions. */
export const WAREHOUSE_SCHEMAS_FOLDER = '_schemas/';

/**
 * The stateful sinks and the lanes' shared state: the warehouse data lake (S3, Glue tables and an Athena workgroup), the audit
 * bucket (Object Lock, compliance mode), the on-failure/dead-letter payload bucket, the DynamoDB dedupe table, the
 * Valkey cache and the PII hash salt. Everything is encrypted with customer managed KMS keys.
 */
export class DataStack extends Stack {
  /** Encrypts every data store of the environment except the audit bucket. */
  readonly dataKey: kms.Key;
  /** Encrypts the audit bucket only; retained forever with it (deleting it would make the audit trail unreadable). */
  readonly auditKey: kms.Key;
  readonly accessLogsBucket: s3.Bucket;
  readonly warehouseBucket: s3.Bucket;
  readonly auditBucket: s3.Bucket;
  /** Event source mapping on-failure batches (full payload) and dead letters too large for SQS. */
  readonly failureBucket: s3.Bucket;
  readonly dedupeTable: dynamodb.Table;
  readonly cache: elasticache.CfnServerlessCache;
  readonly piiHashSalt: secretsmanager.Secret;
  readonly glueDatabaseName: string;
  /** The warehouse's Glue tables, Athena workgroup and named queries. */
  readonly catalog: WarehouseCatalog;
  readonly warehousePrefix: string;
  readonly auditPrefix: string;

  constructor(scope: Construct, id: string, props: DataStackProps) {
    super(scope, id, props);
    const { config } = props;
    const prefix = resourcePrefix(config);
    const removalPolicy = removalPolicyOf(config);
    this.warehousePrefix = config.lanes.warehouse.prefix ?? DEFAULT_WAREHOUSE_PREFIX;
    this.auditPrefix = config.lanes.audit.prefix ?? DEFAULT_AUDIT_PREFIX;

    this.dataKey = new kms.Key(this, 'DataKey', {
      alias: `alias/${prefix}-data`,
      description: `cdc-sync ${config.name}: warehouse, failures, dedupe table, cache, dead letters, secrets`,
      enableKeyRotation: true,
      removalPolicy,
      pendingWindow: Duration.days(7),
    });
    this.auditKey = new kms.Key(this, 'AuditKey', {
      alias: `alias/${prefix}-audit`,
      description: `cdc-sync ${config.name}: audit bucket (Object Lock); never deleted`,
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // S3 server access logs can only be delivered to a bucket encrypted with SSE-S3, not SSE-KMS.
    this.accessLogsBucket = new s3.Bucket(this, 'AccessLogsBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ id: 'expire', expiration: Duration.days(config.data.accessLogRetentionDays) }],
      removalPolicy,
      autoDeleteObjects: removalPolicy === RemovalPolicy.DESTROY,
    });
    Validations.of(this.accessLogsBucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'This is the access log bucket itself; logging it into itself would loop.',
    });

    const bucket = (id: string, extra: Partial<ConstructorParameters<typeof SecureBucket>[2]> = {}) =>
      new SecureBucket(this, id, {
        encryptionKey: this.dataKey,
        accessLogsBucket: this.accessLogsBucket,
        accessLogsPrefix: `${id.toLowerCase()}/`,
        removalPolicy,
        ...extra,
      }).bucket;

    this.warehouseBucket = bucket('Warehouse', { versioned: true });
    // Compaction replaces a day's small files and Iceberg's VACUUM deletes expired data files: what they delete stays
    // recoverable as a noncurrent version for a while, then goes.
    this.warehouseBucket.addLifecycleRule({
      id: 'expire-replaced-files',
      noncurrentVersionExpiration: Duration.days(
        config.data.compaction.noncurrentVersionDays ?? DEFAULT_COMPACTION_NONCURRENT_DAYS,
      ),
      abortIncompleteMultipartUploadAfter: Duration.days(1),
    });
    this.failureBucket = bucket('Failures', { expireAfterDays: config.data.failureRetentionDays });
    // S3 request metrics on the prefix the event source mappings write failed batches to: PutRequests counts the
    // batches dropped from a lane after its retries, which the observability stack alarms on (docs/deploy.md,
    // runbook). Dead-letter payloads (dead-letters/) are not counted: their SQS message alarms already.
    this.failureBucket.addMetric({ id: FAILED_BATCHES_METRICS_FILTER, prefix: ON_FAILURE_PREFIX });
    // The bucket's name is generated by CloudFormation: `npm run status -- --env <env>` (tools/status/aws.ts) reads it
    // from this output instead of searching the stack's resources, and so can an operator (docs/deploy.md, runbook).
    new CfnOutput(this, 'FailureBucketName', {
      value: this.failureBucket.bucketName,
      description: 'Failed batches of the event source mappings (aws/lambda/) and dead letters too large for SQS',
    });
    this.auditBucket = bucket('Audit', {
      encryptionKey: this.auditKey,
      objectLockComplianceDays: config.data.auditRetentionDays,
    });
    // Object Lock in compliance mode already makes locked versions undeletable; this also stops anyone (admins
    // included) from hiding objects behind delete markers or shortening retention through lifecycle rules.
    this.auditBucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'DenyAuditDeletes',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['s3:DeleteObject', 's3:DeleteObjectVersion', 's3:PutLifecycleConfiguration'],
        resources: [this.auditBucket.bucketArn, this.auditBucket.arnForObjects('*')],
      }),
    );

    this.dedupeTable = new dynamodb.Table(this, 'DedupeTable', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expiresAt',
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: this.dataKey,
      deletionProtection: config.removalPolicy === 'retain',
      removalPolicy,
    });

    this.piiHashSalt = new secretsmanager.Secret(this, 'PiiHashSalt', {
      description: `cdc-sync ${config.name}: salt for sha256 PII hashing in the lanes`,
      encryptionKey: this.dataKey,
      generateSecretString: { passwordLength: 48, excludePunctuation: true },
      removalPolicy,
    });
    Validations.of(this.piiHashSalt).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'A hash salt must stay stable: rotating it would change every pseudonymised value and break joins across time.',
    });

    this.glueDatabaseName = glueDatabaseName(config);
    this.catalog = this.createWarehouseCatalog(config, removalPolicy);

    this.cache = new elasticache.CfnServerlessCache(this, 'Cache', {
      serverlessCacheName: `${prefix}-cache`,
      description: `cdc-sync ${config.name} cache lane (Valkey, TLS only)`,
      engine: 'valkey',
      majorEngineVersion: config.cache.majorEngineVersion,
      kmsKeyId: this.dataKey.keyArn,
      securityGroupIds: [props.cacheSecurityGroup.securityGroupId],
      subnetIds: props.vpc.selectSubnets(props.subnets).subnetIds,
      cacheUsageLimits: {
        dataStorage: { maximum: config.cache.maxDataStorageGb, unit: 'GB' },
        ecpuPerSecond: { maximum: config.cache.maxEcpuPerSecond },
      },
      snapshotRetentionLimit: config.cache.snapshotRetentionLimit,
    });
    this.cache.applyRemovalPolicy(removalPolicy);
  }

  /**
   * The Glue database of the warehouse and what lives in it (lib/constructs/warehouse-catalog.ts): a change-log table
   * per listed table with partition projection, the Athena workgroup and its named queries. The change log is
   * Hive-style, `changes/table=<tableId>/date=<YYYY-MM-DD>/*.parquet`.
   */
  private createWarehouseCatalog(config: EnvironmentConfig, removalPolicy: RemovalPolicy): WarehouseCatalog {
    const database = new glue.CfnDatabase(this, 'GlueDatabase', {
      catalogId: this.account,
      databaseInput: {
        name: this.glueDatabaseName,
        description: `cdc-sync ${config.name} warehouse: the change log (Parquet) and current-state tables (Iceberg), one each per source table`,
      },
    });
    const catalog = new WarehouseCatalog(this, 'WarehouseCatalog', {
      config,
      database,
      databaseName: this.glueDatabaseName,
      warehouseBucket: this.warehouseBucket,
      warehousePrefix: this.warehousePrefix,
      dataKey: this.dataKey,
      accessLogsBucket: this.accessLogsBucket,
      removalPolicy,
    });
    new CfnOutput(this, 'AthenaWorkGroup', {
      value: catalog.workGroupName,
      description: 'Athena workgroup of the warehouse: named queries, current-state merges',
    });
    new CfnOutput(this, 'GlueDatabaseName', {
      value: this.glueDatabaseName,
      description: 'Glue database of the warehouse',
    });
    return catalog;
  }
}
