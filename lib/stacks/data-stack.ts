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
import type { EnvironmentConfig } from '../config';
import { ON_FAILURE_PREFIX } from '../constructs/lane-function';
import { SecureBucket } from '../constructs/secure-bucket';
import { acknowledgeNag } from '../nag';
import { grantKeyVia, removalPolicyOf, resourcePrefix } from '../util';

export interface DataStackProps extends StackProps {
  readonly config: EnvironmentConfig;
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly cacheSecurityGroup: ec2.ISecurityGroup;
}

/** Key prefix of the warehouse change log (the lane's WAREHOUSE_PREFIX), also the crawler's target. */
export const DEFAULT_WAREHOUSE_PREFIX = 'changes/';
export const DEFAULT_AUDIT_PREFIX = 'audit/';
/** Id of the failure bucket's request metrics filter on failed batches (the `FilterId` metric dimension). */
export const FAILED_BATCHES_METRICS_FILTER = 'failed-batches';
/** Folder under the warehouse prefix where the warehouse lane keeps each table's schema versions. */
export const WAREHOUSE_SCHEMAS_FOLDER = '_schemas/';

/**
 * The stateful sinks and the lanes' shared state: the warehouse data lake (S3 + Glue crawler for Athena), the audit
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

    this.glueDatabaseName = `cdc_sync_${config.name.replaceAll('-', '_')}`;
    this.createWarehouseCatalog(config);

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
   * A Glue database and a crawler over the warehouse change log so Athena can query it. The change log is Hive-style
   * (`changes/table=<tableId>/date=<YYYY-MM-DD>/*.parquet`) and every source table has its own columns, so the crawler
   * makes one Glue table per `table=` folder (TableLevelConfiguration 3 = bucket/changes/table=…) partitioned by
   * `date`, and keeps schemas and partitions current as new tables and days appear. On a schema change it updates the
   * table's columns in place (UPDATE_IN_DATABASE) to the union of the Parquet schemas it finds, and partitions
   * inherit the table's columns, so older files read a new column as null (docs/deploy.md, "Schema changes").
   */
  private createWarehouseCatalog(config: EnvironmentConfig): void {
    const prefix = resourcePrefix(config);
    const database = new glue.CfnDatabase(this, 'GlueDatabase', {
      catalogId: this.account,
      databaseInput: {
        name: this.glueDatabaseName,
        description: `cdc-sync ${config.name} warehouse change log (Parquet, one table per source table)`,
      },
    });

    // Crawler logs are encrypted with the data key; CloudWatch Logs must be allowed to use it.
    this.dataKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchLogsForGlueCrawlerLogs',
        principals: [new iam.ServicePrincipal(`logs.${this.region}.amazonaws.com`)],
        actions: [
          'kms:Encrypt',
          'kms:Decrypt',
          'kms:ReEncryptFrom',
          'kms:ReEncryptTo',
          'kms:GenerateDataKey',
          'kms:GenerateDataKeyWithoutPlaintext',
          'kms:DescribeKey',
        ],
        resources: ['*'],
        conditions: {
          ArnLike: {
            'kms:EncryptionContext:aws:logs:arn': `arn:${this.partition}:logs:${this.region}:${this.account}:log-group:/aws-glue/*`,
          },
        },
      }),
    );
    const securityConfiguration = new glue.CfnSecurityConfiguration(this, 'GlueSecurityConfiguration', {
      name: `${prefix}-crawler`,
      encryptionConfiguration: {
        s3Encryptions: [{ s3EncryptionMode: 'SSE-KMS', kmsKeyArn: this.dataKey.keyArn }],
        cloudWatchEncryption: { cloudWatchEncryptionMode: 'SSE-KMS', kmsKeyArn: this.dataKey.keyArn },
        jobBookmarksEncryption: { jobBookmarksEncryptionMode: 'CSE-KMS', kmsKeyArn: this.dataKey.keyArn },
      },
    });

    const role = new iam.Role(this, 'CrawlerRole', {
      assumedBy: new iam.ServicePrincipal('glue.amazonaws.com'),
      description: 'Glue crawler: reads the warehouse change log, maintains its tables',
    });
    const catalogArn = (resource: string) => `arn:${this.partition}:glue:${this.region}:${this.account}:${resource}`;
    const catalogActions = [
      'glue:GetDatabase',
      'glue:GetTable',
      'glue:GetTables',
      'glue:CreateTable',
      'glue:UpdateTable',
      'glue:GetPartition',
      'glue:GetPartitions',
      'glue:BatchGetPartition',
      'glue:CreatePartition',
      'glue:BatchCreatePartition',
      'glue:UpdatePartition',
      'glue:BatchUpdatePartition',
    ];
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: catalogActions,
        resources: [
          catalogArn('catalog'),
          catalogArn(`database/${this.glueDatabaseName}`),
          catalogArn(`table/${this.glueDatabaseName}/*`),
        ],
      }),
    );
    const changeLog = this.warehouseBucket.arnForObjects(`${this.warehousePrefix}*`);
    role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [changeLog] }));
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [this.warehouseBucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${this.warehousePrefix}*`] } },
      }),
    );
    // Reads the change log's objects, which S3 decrypts with the data key on the crawler's behalf.
    grantKeyVia(role, this.dataKey, 's3', 'kms:Decrypt');
    const crawlerLogs = `arn:${this.partition}:logs:${this.region}:${this.account}:log-group:/aws-glue/crawlers*`;
    const logActions = ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents', 'logs:AssociateKmsKey'];
    role.addToPolicy(new iam.PolicyStatement({ actions: logActions, resources: [crawlerLogs] }));

    acknowledgeNag(
      role,
      {
        rule: 'AwsSolutions-IAM5',
        resources: [catalogArn(`table/${this.glueDatabaseName}/*`)],
        actions: catalogActions,
        reason:
          'The crawler creates one table per source table in its own Glue database; table names appear at runtime.',
      },
      {
        rule: 'AwsSolutions-IAM5',
        resources: [changeLog],
        actions: ['s3:GetObject'],
        reason:
          'Read-only (s3:GetObject) on the warehouse change log prefix, whose object keys are written at runtime.',
      },
      {
        rule: 'AwsSolutions-IAM5',
        resources: [crawlerLogs],
        actions: logActions,
        reason: 'Glue names the crawler log group and streams itself (/aws-glue/crawlers…).',
      },
    );
    const crawler = new glue.CfnCrawler(this, 'WarehouseCrawler', {
      name: `${prefix}-warehouse`,
      description: 'Keeps the warehouse change log tables and date partitions current for Athena',
      role: role.roleArn,
      databaseName: this.glueDatabaseName,
      targets: {
        s3Targets: [
          {
            path: `s3://${this.warehouseBucket.bucketName}/${this.warehousePrefix}`,
            // The lanes' schema history (`_schemas/<table>/<fingerprint>.json`, JSON) is not change log data: left to
            // the crawler, it would become a table of its own.
            exclusions: [`${WAREHOUSE_SCHEMAS_FOLDER}**`],
          },
        ],
      },
      schedule: { scheduleExpression: config.data.crawlerSchedule },
      schemaChangePolicy: { updateBehavior: 'UPDATE_IN_DATABASE', deleteBehavior: 'LOG' },
      recrawlPolicy: { recrawlBehavior: 'CRAWL_EVERYTHING' },
      crawlerSecurityConfiguration: securityConfiguration.name,
      configuration: JSON.stringify({
        Version: 1.0,
        Grouping: { TableLevelConfiguration: 3 },
        CrawlerOutput: { Partitions: { AddOrUpdateBehavior: 'InheritFromTable' } },
      }),
    });
    crawler.node.addDependency(database, securityConfiguration);
  }
}
