import { Duration, type RemovalPolicy, Stack } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import {
  consumerGroupId,
  consumerGroupPrefix,
  DEFAULT_PARK_AFTER_ATTEMPTS,
  type EnvironmentConfig,
  type LaneConfig,
  type LaneName,
  type LaneTopic,
  type SchemaChangeConfig,
} from '../config';
import { acknowledgeNag } from '../nag';
import { grantKeyVia } from '../util';
import type { MskArns } from './msk-arns';
import { ProjectFunction } from './node-function';

/**
 * The lanes' EMF metrics (functions/shared/observability.ts): namespace `cdc-sync`, Powertools service `cdc-sync`,
 * so the lane rollup's dimension set is `{service, lane}` (per table: `{service, lane, table}`).
 */
export const METRICS_NAMESPACE = 'cdc-sync';
export const METRICS_SERVICE = 'cdc-sync';
/** Key prefix the dead-letter adapter stores oversize letters under (then `<lane>/`). */
export const DEAD_LETTER_PAYLOAD_PREFIX = 'dead-letters/';
/** Reconcile every schema change unless the environment says otherwise. */
export const DEFAULT_SCHEMA_CHANGE_POLICY: SchemaChangeConfig = { default: 'auto' };

export interface LaneFunctionProps {
  /** The environment; the lane's settings are `env.lanes[lane]`. */
  readonly env: EnvironmentConfig;
  /** Which lane: the handler is `functions/<lane>/index.ts`. */
  readonly lane: LaneName;
  readonly vpc: ec2.IVpc;
  /** Private subnets the function's ENIs go to. */
  readonly subnets: ec2.SubnetSelection;
  /** The lane security group, plus the cache client group for the cache lane. */
  readonly securityGroups: readonly ec2.ISecurityGroup[];
  /** Retention of the function's log group. */
  readonly logRetention: logs.RetentionDays;
  /** Removal policy of the function's log group. */
  readonly logRemovalPolicy: RemovalPolicy;
}

/** What `LaneFunction.subscribe` consumes: the cluster, the lane's topics and where failures go. */
export interface KafkaSubscription {
  /** MSK cluster (provisioned or serverless) the mappings poll. */
  readonly clusterArn: string;
  /** IAM resource ARNs of the cluster's topics and groups. */
  readonly arns: MskArns;
  /**
   * The lane's topics (data, catch-all, heartbeat-table and schema-change topics of its sources): one event source
   * mapping each.
   */
  readonly topics: readonly LaneTopic[];
  /** Last-resort destination: a batch that exhausted its retries is written there in full. */
  readonly onFailureBucket: s3.IBucket;
  /** The failure bucket's key (the mapping encrypts what it writes). */
  readonly onFailureKey: kms.IKey;
}

/**
 * A cdc-sync lane: the handler in `functions/<lane>/index.ts` as a NodejsFunction with the project defaults, and
 * `bind*` methods that set an environment variable and the matching IAM grant in one call, so the two cannot drift
 * (the variables are parsed by `functions/shared/config.ts`; names must match it).
 */
/** V8 young-generation semi-space (MiB) for a lane of this memory size: 1/16 of it, between 16 and 64. */
export function semiSpaceMiB(memoryMiB: number): number {
  return Math.max(16, Math.min(64, Math.floor(memoryMiB / 16)));
}

export class LaneFunction extends ProjectFunction {
  readonly lane: LaneName;
  readonly laneConfig: LaneConfig;
  /** The ESMs created by `subscribe`, one per topic. */
  readonly eventSources: sources.ManagedKafkaEventSource[] = [];
  private readonly environmentConfig: EnvironmentConfig;

  constructor(scope: Construct, id: string, props: LaneFunctionProps) {
    const config = props.env.lanes[props.lane];
    const environment: Record<string, string> = {
      POWERTOOLS_SERVICE_NAME: `cdc-sync-${props.lane}`,
      POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
      POWERTOOLS_LOG_LEVEL: config.logLevel,
      // Read by the handler to decide whether to return batchItemFailures; subscribe() sets the ESM from the same
      // config value, so the two always agree.
      REPORT_BATCH_ITEM_FAILURES: String(config.reportBatchItemFailures),
      // A batch keeps all its decoded changes alive until its sink write; a young generation sized to hold a batch
      // spares V8 from copying them between semi-spaces (measured by `npm run bench`: GC was a quarter of the CPU).
      NODE_OPTIONS: `--enable-source-maps --max-semi-space-size=${semiSpaceMiB(config.memoryMiB)}`,
    };
    if (config.tableRules !== undefined) environment.TABLE_RULES = JSON.stringify(config.tableRules);
    // One policy per environment (not per lane): whichever lane registers a schema version first acts on it.
    environment.SCHEMA_CHANGE_POLICY = JSON.stringify(props.env.schemaChanges ?? DEFAULT_SCHEMA_CHANGE_POLICY);
    if (config.maxRecordBytes !== undefined) environment.MAX_RECORD_BYTES = String(config.maxRecordBytes);
    if (config.checkpointTtlDays !== undefined) environment.CHECKPOINT_TTL_DAYS = String(config.checkpointTtlDays);
    // Always set: the validated config (at most retryAttempts + 1) decides, not the function's own default.
    environment.PARK_AFTER_ATTEMPTS = String(config.parkAfterAttempts ?? DEFAULT_PARK_AFTER_ATTEMPTS);

    super(scope, id, {
      entry: `functions/${props.lane}/index.ts`,
      handler: 'handler',
      functionName: `cdc-sync-${props.env.name}-${props.lane}`,
      description: `cdc-sync ${props.env.name} ${props.lane} lane`,
      memorySize: config.memoryMiB,
      timeout: Duration.seconds(config.timeoutSeconds),
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      securityGroups: [...props.securityGroups],
      environment,
      logRetention: props.logRetention,
      logRemovalPolicy: props.logRemovalPolicy,
    });
    this.lane = props.lane;
    this.laneConfig = config;
    this.environmentConfig = props.env;
    acknowledgeNag(this, {
      rule: 'AwsSolutions-IAM4',
      managedPolicies: [
        iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSLambdaMSKExecutionRole').managedPolicyArn,
      ],
      reason:
        'Attached by ManagedKafkaEventSource: what the event source mapping itself needs (kafka:Describe*, ENIs in the cluster subnets). The Kafka data-plane actions are granted separately, scoped to the lane topics and groups.',
    });
  }

  /**
   * `actions` on a customer managed key, only through the service that stores the data (`kms:ViaService`): the role
   * can use the key for that service's encryption, not to decrypt copies of the data elsewhere.
   */
  private grantKey(key: kms.IKey | undefined, service: 'dynamodb' | 'sqs' | 's3', ...actions: string[]): void {
    if (key !== undefined) grantKeyVia(this, key, service, ...actions);
  }

  /** Acknowledges the object-key wildcard of an S3 grant: keys are created at runtime under a fixed prefix. */
  private acknowledgeObjects(resource: string, actions: string[], reason: string): void {
    acknowledgeNag(this, { rule: 'AwsSolutions-IAM5', resources: [resource], actions, reason });
  }

  /**
   * DEDUPE_TABLE_NAME. The lane reads checkpoints (strongly consistent GetItem/BatchGetItem) and commits them with
   * conditional puts, a batch's together in one TransactWriteItems (authorized by `dynamodb:PutItem`, the action of
   * each put in it; there is no TransactWriteItems IAM action). The same table holds the schema history
   * (`schema#<table>` items): a new version moves the latest pointer with a conditional UpdateItem (in a transaction
   * with the version's put) and the reconciliation claim is a conditional UpdateItem. It never deletes or scans (idle
   * checkpoints expire by TTL), so grantReadWriteData (which adds DeleteItem, Scan, Query, BatchWriteItem…) would be
   * more than it needs.
   */
  bindDedupeTable(table: dynamodb.ITable): this {
    this.addEnvironment('DEDUPE_TABLE_NAME', table.tableName);
    table.grant(this, 'dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem');
    this.grantKey(
      table.encryptionKey,
      'dynamodb',
      'kms:Decrypt',
      'kms:Encrypt',
      'kms:GenerateDataKey',
      'kms:DescribeKey',
    );
    return this;
  }

  /**
   * DLQ_URL and DLQ_PAYLOAD_BUCKET: one SQS message per bad record (SendMessageBatch is authorised by
   * sqs:SendMessage); a record too large for SQS goes to the payload bucket under `dead-letters/<lane>/` (the
   * adapter's key layout) and its message points at it. Send and put only: redrive tooling reads, not the lane.
   */
  bindDeadLetters(queue: sqs.IQueue, payloadBucket: s3.IBucket): this {
    this.addEnvironment('DLQ_URL', queue.queueUrl);
    this.addEnvironment('DLQ_PAYLOAD_BUCKET', payloadBucket.bucketName);
    this.addToRolePolicy(new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [queue.queueArn] }));
    this.grantKey(queue.encryptionMasterKey, 'sqs', 'kms:GenerateDataKey', 'kms:Decrypt');
    const payloads = payloadBucket.arnForObjects(`${DEAD_LETTER_PAYLOAD_PREFIX}${this.lane}/*`);
    this.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [payloads] }));
    this.acknowledgeObjects(
      payloads,
      ['s3:PutObject'],
      "Oversize dead letters: one object per letter under this lane's own dead-letters/<lane>/ prefix; put only.",
    );
    this.grantKey(payloadBucket.encryptionKey, 's3', 'kms:GenerateDataKey');
    return this;
  }

  /** WAREHOUSE_BUCKET and WAREHOUSE_PREFIX: put Parquet files under the prefix (single PUTs, no reads). */
  bindWarehouse(bucket: s3.IBucket, prefix: string): this {
    this.addEnvironment('WAREHOUSE_BUCKET', bucket.bucketName);
    this.addEnvironment('WAREHOUSE_PREFIX', prefix);
    const objects = bucket.arnForObjects(`${prefix}*`);
    this.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [objects] }));
    this.acknowledgeObjects(
      objects,
      ['s3:PutObject'],
      'Parquet files of the change log, written at runtime under the warehouse prefix; put only.',
    );
    this.grantKey(bucket.encryptionKey, 's3', 'kms:GenerateDataKey');
    return this;
  }

  /**
   * AUDIT_BUCKET and AUDIT_PREFIX: put new chain segments and read them back for verification. No delete (the bucket
   * policy denies it to everyone anyway); Object Lock retention comes from the bucket default.
   */
  bindAudit(bucket: s3.IBucket, prefix: string): this {
    this.addEnvironment('AUDIT_BUCKET', bucket.bucketName);
    this.addEnvironment('AUDIT_PREFIX', prefix);
    const segments = bucket.arnForObjects(`${prefix}*`);
    this.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:PutObject', 's3:GetObject'], resources: [segments] }));
    this.acknowledgeObjects(
      segments,
      ['s3:PutObject', 's3:GetObject'],
      'Audit chain segments, written at runtime under the audit prefix and read back for verification; never deleted (Object Lock, bucket policy).',
    );
    this.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${prefix}*`] } },
      }),
    );
    this.grantKey(bucket.encryptionKey, 's3', 'kms:GenerateDataKey', 'kms:Decrypt');
    return this;
  }

  /**
   * REDIS_URL (TLS: ElastiCache Serverless only accepts TLS), REDIS_CLUSTER, CACHE_KEY_PREFIX and
   * CACHE_TOMBSTONE_TTL_SECONDS. Access is by network only (the cache client security group), no IAM.
   */
  bindCache(
    endpoint: { address: string; port: string },
    options: { keyPrefix: string; tombstoneTtlSeconds: number },
  ): this {
    this.addEnvironment('REDIS_URL', `rediss://${endpoint.address}:${endpoint.port}`);
    // ElastiCache Serverless speaks the cluster protocol.
    this.addEnvironment('REDIS_CLUSTER', 'true');
    this.addEnvironment('CACHE_KEY_PREFIX', options.keyPrefix);
    this.addEnvironment('CACHE_TOMBSTONE_TTL_SECONDS', String(options.tombstoneTtlSeconds));
    return this;
  }

  /**
   * PII_HASH_SALT_SECRET_ARN: the salt for `sha256` PII hashing stays in Secrets Manager (never in the function's
   * configuration); the lane reads it once at cold start.
   */
  bindPiiHashSalt(secret: secretsmanager.ISecret): this {
    this.addEnvironment('PII_HASH_SALT_SECRET_ARN', secret.secretArn);
    this.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: [secret.secretArn] }),
    );
    // Written out instead of secret.grantRead(): that grant also edits the key policy of the data stack, which would
    // make the data stack depend on this (later) stack.
    if (secret.encryptionKey !== undefined) {
      this.addToRolePolicy(
        new iam.PolicyStatement({
          actions: ['kms:Decrypt'],
          resources: [secret.encryptionKey.keyArn],
          conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(this).region}.amazonaws.com` } },
        }),
      );
    }
    return this;
  }

  /**
   * AVRO_REGISTRY (`{"kind":"glue","registryName":…}`): the lane decodes Avro records itself (the mappings deliver the
   * bytes as written) and reads writer schemas by version id with `glue:GetSchemaVersion`, on this registry and its
   * schemas only. No `GetSchemaByDefinition`: the lane never looks a schema up by its text.
   */
  bindAvroRegistry(registry: { readonly name: string; readonly arn: string }): this {
    this.addEnvironment('AVRO_REGISTRY', JSON.stringify({ kind: 'glue', registryName: registry.name }));
    const stack = Stack.of(this);
    const schemas = `arn:${stack.partition}:glue:${stack.region}:${stack.account}:schema/${registry.name}/*`;
    this.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['glue:GetSchemaVersion'], resources: [registry.arn, schemas] }),
    );
    acknowledgeNag(this, {
      rule: 'AwsSolutions-IAM5',
      resources: [schemas],
      actions: ['glue:GetSchemaVersion'],
      reason:
        'Avro sources: the lane reads schema versions of the environment registry; the connector registers one value schema per topic at runtime, so the schema names are not known at synth time.',
    });
    return this;
  }

  /**
   * One MSK event source mapping per topic (an MSK ESM takes exactly one topic), each with its own consumer group
   * (ids must be unique among all Kafka event sources), the lane's batching and error handling, partial batch
   * responses, and the failure bucket as the on-failure destination. No schema registry on the mappings: they deliver
   * the bytes as written, and the lane decodes JSON and Avro itself (bindAvroRegistry). Also grants the IAM-auth data-plane actions the
   * mappings need, scoped to this lane's topics and consumer groups.
   */
  subscribe(subscription: KafkaSubscription): this {
    const config = this.laneConfig;
    const onFailure = new LeastPrivilegeS3OnFailure(subscription.onFailureBucket, subscription.onFailureKey);
    for (const topic of subscription.topics) {
      const source = new sources.ManagedKafkaEventSource({
        clusterArn: subscription.clusterArn,
        topic: topic.topicName,
        consumerGroupId: consumerGroupId(this.environmentConfig, this.lane, topic.topicName),
        startingPosition: lambda.StartingPosition[config.startingPosition],
        batchSize: config.batchSize,
        maxBatchingWindow: Duration.seconds(config.maxBatchingWindowSeconds),
        // Provisioned mode: retries, bisect, record age and partial batch responses only exist there.
        provisionedPollerConfig: {
          minimumPollers: config.provisionedPollers.minimum,
          maximumPollers: config.provisionedPollers.maximum,
        },
        bisectBatchOnError: config.bisectBatchOnError,
        retryAttempts: config.retryAttempts,
        maxRecordAge: config.maxRecordAgeSeconds === -1 ? undefined : Duration.seconds(config.maxRecordAgeSeconds),
        reportBatchItemFailures: config.reportBatchItemFailures,
        onFailure,
        // PolledEventCount, InvokedEventCount, FailedInvokeEventCount, DroppedEventCount and
        // OnFailureDestinationDeliveredEventCount per mapping (dimension EventSourceMappingUUID): dashboard and alarms.
        metricsConfig: { metrics: [lambda.MetricType.EVENT_COUNT] },
      });
      this.addEventSource(source);
      this.eventSources.push(source);
    }

    const arns = subscription.arns;
    this.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [
          'kafka-cluster:Connect',
          'kafka-cluster:DescribeClusterDynamicConfiguration',
          // MSK Serverless mappings need the V2 describe (the construct adds V1 only).
          'kafka:DescribeClusterV2',
        ],
        resources: [subscription.clusterArn],
      }),
    );
    this.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['kafka-cluster:DescribeTopic', 'kafka-cluster:ReadData'],
        resources: subscription.topics.map((t) => arns.topic(t.topicName)),
      }),
    );
    const groups = arns.group(`${consumerGroupPrefix(this.environmentConfig, this.lane)}*`);
    this.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['kafka-cluster:DescribeGroup', 'kafka-cluster:AlterGroup'],
        resources: [groups],
      }),
    );
    acknowledgeNag(this, {
      rule: 'AwsSolutions-IAM5',
      resources: [groups],
      actions: ['kafka-cluster:DescribeGroup', 'kafka-cluster:AlterGroup'],
      reason:
        'The lane owns one consumer group per topic, all named cdc-<env>-<lane>-<topic>; the wildcard is that prefix.',
    });
    return this;
  }
}

/**
 * Where Lambda writes a failed batch in the on-failure bucket: `aws/lambda/<mapping UUID>/<partition>/<date>/…`
 * (the key layout Lambda documents for S3 on-failure destinations).
 */
export const ON_FAILURE_PREFIX = 'aws/lambda/';

/**
 * The S3 on-failure destination with only what Lambda needs to write a failed batch: s3:PutObject under
 * {@link ON_FAILURE_PREFIX} (not the whole bucket, which also holds every lane's dead-letter payloads),
 * s3:ListBucket on that prefix, and the key to encrypt it through S3. `S3OnFailureDestination` from
 * aws-lambda-event-sources grants `grantReadWrite` (read, delete and `s3:*Object*`-style wildcards on the whole
 * bucket), which a lane must not have on the failure bucket.
 */
export class LeastPrivilegeS3OnFailure implements lambda.IEventSourceDlq {
  constructor(
    private readonly bucket: s3.IBucket,
    private readonly key: kms.IKey,
  ) {}

  bind(_target: lambda.IEventSourceMapping, targetHandler: lambda.IFunction): lambda.DlqDestinationConfig {
    const batches = this.bucket.arnForObjects(`${ON_FAILURE_PREFIX}*`);
    targetHandler.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [batches] }));
    targetHandler.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [this.bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${ON_FAILURE_PREFIX}*`] } },
      }),
    );
    grantKeyVia(targetHandler, this.key, 's3', 'kms:GenerateDataKey');
    acknowledgeNag(targetHandler, {
      rule: 'AwsSolutions-IAM5',
      resources: [batches],
      actions: ['s3:PutObject'],
      reason:
        "Failed batches: Lambda writes them for the event source mappings under aws/lambda/<mapping UUID>/, with the function's role; put only.",
    });
    return { destination: this.bucket.bucketArn };
  }
}
