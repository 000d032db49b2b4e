import { Duration, type RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import { Construct } from 'constructs';
import { DEFAULT_COMPACTION_CLOSED_AFTER_HOURS, type EnvironmentConfig } from '../config';
import { acknowledgeNag } from '../nag';
import { grantKeyVia, resourcePrefix } from '../util';
import { ProjectFunction, scheduleInvokeRole } from './node-function';

/** Folder under the warehouse prefix where a compaction records what it is replacing (functions/compaction). */
export const COMPACTION_FOLDER = '_compaction/';

export interface ChangeLogCompactionProps {
  readonly env: EnvironmentConfig;
  readonly warehouseBucket: s3.IBucket;
  /** The change log's key prefix (the lane's WAREHOUSE_PREFIX). */
  readonly warehousePrefix: string;
  readonly dataKey: kms.IKey;
  readonly logRetention: logs.RetentionDays;
  readonly removalPolicy: RemovalPolicy;
}

/**
 * Compaction of the change log (functions/compaction): every hour, each day partition closed for
 * `closedAfterHours` that holds more than one small file is rewritten as one Parquet file per schema, and the files it
 * replaces are deleted. The only role that may delete change-log files; it reads and writes nothing else.
 */
export class ChangeLogCompaction extends Construct {
  readonly function: ProjectFunction;
  readonly schedule: scheduler.Schedule;

  constructor(scope: Construct, id: string, props: ChangeLogCompactionProps) {
    super(scope, id);
    const { env, warehouseBucket: bucket, warehousePrefix: prefix } = props;
    const name = resourcePrefix(env);
    this.function = new ProjectFunction(this, 'Function', {
      entry: 'functions/compaction/index.ts',
      handler: 'handler',
      functionName: `${name}-compaction`,
      description: `cdc-sync ${env.name} compaction: one Parquet file per closed day partition of the change log`,
      // A compaction holds up to 64 MiB of input files and their decoded rows at once.
      memorySize: 2048,
      timeout: Duration.minutes(15),
      environment: {
        POWERTOOLS_SERVICE_NAME: `cdc-sync-compaction`,
        POWERTOOLS_METRICS_NAMESPACE: 'cdc-sync',
        WAREHOUSE_BUCKET: bucket.bucketName,
        WAREHOUSE_PREFIX: prefix,
        CLOSED_AFTER_HOURS: String(env.data.compaction.closedAfterHours ?? DEFAULT_COMPACTION_CLOSED_AFTER_HOURS),
      },
      logRetention: props.logRetention,
      logRemovalPolicy: props.removalPolicy,
    });
    this.function.configureAsyncInvoke({ retryAttempts: 0, maxEventAge: Duration.hours(1) });

    const tables = bucket.arnForObjects(`${prefix}table=*`);
    const manifests = bucket.arnForObjects(`${prefix}${COMPACTION_FOLDER}*`);
    const actions = ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'];
    this.function.addToRolePolicy(new iam.PolicyStatement({ actions, resources: [tables, manifests] }));
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${prefix}*`] } },
      }),
    );
    grantKeyVia(this.function, props.dataKey, 's3', 'kms:Decrypt', 'kms:GenerateDataKey');
    acknowledgeNag(this.function, {
      rule: 'AwsSolutions-IAM5',
      resources: [tables, manifests],
      actions,
      reason:
        "The change log's Parquet files (written by the warehouse lane at runtime, replaced here) and this function's own manifests of what a compaction replaces.",
    });

    this.schedule = new scheduler.Schedule(this, 'Schedule', {
      scheduleName: `${name}-compaction`,
      description: 'Compacts the closed day partitions of the warehouse change log',
      schedule: scheduler.ScheduleExpression.rate(Duration.hours(1)),
      target: new targets.LambdaInvoke(this.function, {
        role: scheduleInvokeRole(this, 'ScheduleRole', this.function),
        input: scheduler.ScheduleTargetInput.fromObject({}),
        retryAttempts: 0,
        maxEventAge: Duration.hours(1),
      }),
    });
  }
}
