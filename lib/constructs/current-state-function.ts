import { Duration, type RemovalPolicy, Stack } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import { Construct } from 'constructs';
import {
  DEFAULT_CURRENT_STATE_MAINTENANCE_SCHEDULE,
  DEFAULT_CURRENT_STATE_PARALLEL_TABLES,
  DEFAULT_CURRENT_STATE_SCHEDULE_MINUTES,
  type EnvironmentConfig,
} from '../config';
import { acknowledgeNag } from '../nag';
import { grantKeyVia, resourcePrefix } from '../util';
import { ProjectFunction, scheduleInvokeRole } from './node-function';
import { ATHENA_RESULTS_PREFIX, type CatalogedTable, CURRENT_STATE_PREFIX } from './warehouse-catalog';

/** The function's timeout, also how long a run holds a table (LEASE_SECONDS). */
export const CURRENT_STATE_TIMEOUT = Duration.minutes(10);
/** Metric namespace and service of the function's EMF metrics (functions/current-state/handler.ts). */
export const CURRENT_STATE_METRICS = { namespace: 'cdc-sync', service: 'cdc-sync-current-state' } as const;

export interface CurrentStateProps {
  readonly env: EnvironmentConfig;
  /** The tables with a current-state table (WarehouseCatalog.currentStateTables). */
  readonly tables: readonly CatalogedTable[];
  readonly databaseName: string;
  readonly workGroupName: string;
  readonly warehouseBucket: s3.IBucket;
  /** The change log's key prefix. */
  readonly warehousePrefix: string;
  readonly resultsBucket: s3.IBucket;
  /** Encrypts both buckets (and the dedupe table). */
  readonly dataKey: kms.IKey;
  /** The dedupe table, where each table's position and lease live (`cs#<table id>` items). */
  readonly stateTable: dynamodb.ITable;
  readonly logRetention: logs.RetentionDays;
  readonly removalPolicy: RemovalPolicy;
}

/**
 * The current-state step (functions/current-state): a function EventBridge Scheduler runs every `scheduleMinutes` to
 * apply the change log to the Iceberg current-state tables through Athena, and on `maintenanceSchedule` to compact
 * them (`OPTIMIZE`, `VACUUM`). Not in the VPC: it only calls AWS APIs (Athena, Glue, DynamoDB), and Athena reads and
 * writes S3 itself.
 *
 * Athena runs each statement with the function's credentials, so the role is what Athena may touch: the workgroup;
 * in Glue the database and exactly the tables it reads (change log) and owns (current state, deleted keys); in S3 the
 * tables' change-log folders (read), their Iceberg folders (read, write, delete: MERGE and VACUUM replace files) and
 * the workgroup's results prefix; the data key through S3 only; and its own `cs#` items of the dedupe table.
 */
export class CurrentState extends Construct {
  readonly function: ProjectFunction;
  readonly mergeSchedule: scheduler.Schedule;
  readonly maintenanceSchedule: scheduler.Schedule;

  constructor(scope: Construct, id: string, props: CurrentStateProps) {
    super(scope, id);
    const { env, tables } = props;
    const cs = env.currentState;
    const prefix = resourcePrefix(env);
    const minutes = cs.scheduleMinutes ?? DEFAULT_CURRENT_STATE_SCHEDULE_MINUTES;

    this.function = new ProjectFunction(this, 'Function', {
      entry: 'functions/current-state/index.ts',
      handler: 'handler',
      functionName: `${prefix}-current-state`,
      description: `cdc-sync ${env.name} current state: applies the warehouse change log to the Iceberg current-state tables (Athena MERGE)`,
      memorySize: 256,
      timeout: CURRENT_STATE_TIMEOUT,
      environment: {
        POWERTOOLS_SERVICE_NAME: CURRENT_STATE_METRICS.service,
        POWERTOOLS_METRICS_NAMESPACE: CURRENT_STATE_METRICS.namespace,
        GLUE_DATABASE: props.databaseName,
        ATHENA_WORKGROUP: props.workGroupName,
        CURRENT_STATE_LOCATION: `s3://${props.warehouseBucket.bucketName}/${CURRENT_STATE_PREFIX}`,
        CURRENT_STATE_TABLES: tables.map((t) => t.changesTable).join(','),
        STATE_TABLE_NAME: props.stateTable.tableName,
        // A change is in S3 at most one warehouse lane invocation after the lane processed it; a minute for clocks.
        OVERLAP_SECONDS: String(env.lanes.warehouse.timeoutSeconds + 60),
        // The oldest commit day a change arriving now can have: Kafka keeps records this long, and a day more.
        LOOKBACK_HOURS: String(env.msk.retentionHours + 24),
        PARALLEL_TABLES: String(cs.parallelTables ?? DEFAULT_CURRENT_STATE_PARALLEL_TABLES),
        LEASE_SECONDS: String(CURRENT_STATE_TIMEOUT.toSeconds()),
      },
      logRetention: props.logRetention,
      logRemovalPolicy: props.removalPolicy,
    });
    // A run the next one overtakes is not worth repeating: the next scheduled run covers its range.
    this.function.configureAsyncInvoke({ retryAttempts: 0, maxEventAge: Duration.minutes(Math.max(1, minutes)) });
    this.grant(props);

    const role = scheduleInvokeRole(this, 'ScheduleRole', this.function);
    const invoke = (task: 'merge' | 'maintain', maxEventAge: Duration) =>
      new targets.LambdaInvoke(this.function, {
        role,
        input: scheduler.ScheduleTargetInput.fromObject({ task }),
        retryAttempts: 0,
        maxEventAge,
      });
    this.mergeSchedule = new scheduler.Schedule(this, 'MergeSchedule', {
      scheduleName: `${prefix}-current-state-merge`,
      description: `Applies the change log to the current-state tables every ${minutes} minute${minutes === 1 ? '' : 's'}`,
      schedule: scheduler.ScheduleExpression.rate(Duration.minutes(minutes)),
      target: invoke('merge', Duration.minutes(Math.max(1, minutes))),
    });
    this.maintenanceSchedule = new scheduler.Schedule(this, 'MaintenanceSchedule', {
      scheduleName: `${prefix}-current-state-maintenance`,
      description: 'Compacts the Iceberg current-state tables and removes expired snapshots (OPTIMIZE, VACUUM)',
      schedule: scheduler.ScheduleExpression.expression(
        cs.maintenanceSchedule ?? DEFAULT_CURRENT_STATE_MAINTENANCE_SCHEDULE,
      ),
      target: invoke('maintain', Duration.hours(1)),
    });
  }

  private grant(props: CurrentStateProps): void {
    const fn = this.function;
    const stack = Stack.of(this);
    const arn = (service: string, resource: string) =>
      `arn:${stack.partition}:${service}:${stack.region}:${stack.account}:${resource}`;
    const { tables, databaseName } = props;

    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['athena:StartQueryExecution', 'athena:GetQueryExecution', 'athena:StopQueryExecution'],
        resources: [arn('athena', `workgroup/${props.workGroupName}`)],
      }),
    );
    const catalog = [arn('glue', 'catalog'), arn('glue', `database/${databaseName}`)];
    const glueTable = (name: string) => arn('glue', `table/${databaseName}/${name}`);
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['glue:GetDatabase', 'glue:GetTable'],
        resources: [...catalog, ...tables.map((t) => glueTable(t.changesTable))],
      }),
    );
    // The Iceberg tables: created by the first run, their metadata pointer moved by every commit.
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['glue:GetDatabase', 'glue:GetTable', 'glue:CreateTable', 'glue:UpdateTable'],
        resources: [...catalog, ...tables.flatMap((t) => [glueTable(t.currentTable), glueTable(t.deletedTable)])],
      }),
    );

    const warehouse = props.warehouseBucket;
    const changeLogs = tables.map((t) => warehouse.arnForObjects(`${props.warehousePrefix}table=${t.tableId}/*`));
    const icebergFolders = tables.flatMap((t) => [
      warehouse.arnForObjects(`${CURRENT_STATE_PREFIX}${t.currentTable}/*`),
      warehouse.arnForObjects(`${CURRENT_STATE_PREFIX}${t.deletedTable}/*`),
    ]);
    const icebergActions = ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'];
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: changeLogs }));
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: icebergActions, resources: icebergFolders }));
    const results = props.resultsBucket.arnForObjects(`${ATHENA_RESULTS_PREFIX}*`);
    const resultActions = ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'];
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: resultActions, resources: [results] }));
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetBucketLocation'],
        resources: [warehouse.bucketArn, props.resultsBucket.bucketArn],
      }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [warehouse.bucketArn],
        conditions: {
          StringLike: {
            's3:prefix': [
              ...tables.map((t) => `${props.warehousePrefix}table=${t.tableId}/*`),
              ...tables.flatMap((t) => [
                `${CURRENT_STATE_PREFIX}${t.currentTable}/*`,
                `${CURRENT_STATE_PREFIX}${t.deletedTable}/*`,
              ]),
            ],
          },
        },
      }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [props.resultsBucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${ATHENA_RESULTS_PREFIX}*`] } },
      }),
    );
    grantKeyVia(fn, props.dataKey, 's3', 'kms:Decrypt', 'kms:GenerateDataKey');

    // Its own state items only (`cs#<table id>`); the lanes' checkpoints are not its business.
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['dynamodb:UpdateItem'],
        resources: [props.stateTable.tableArn],
        conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['cs#*'] } },
      }),
    );
    if (props.stateTable.encryptionKey !== undefined) {
      const key = props.stateTable.encryptionKey;
      grantKeyVia(fn, key, 'dynamodb', 'kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey');
    }

    acknowledgeNag(
      fn,
      {
        rule: 'AwsSolutions-IAM5',
        resources: changeLogs,
        actions: ['s3:GetObject'],
        reason:
          "Read-only: each current-state table's change-log folder, whose Parquet files the warehouse lane writes at runtime.",
      },
      {
        rule: 'AwsSolutions-IAM5',
        resources: icebergFolders,
        actions: icebergActions,
        reason:
          "Each Iceberg table's own folder: Athena writes data and metadata files there on every MERGE and deletes expired ones (VACUUM); their names are Iceberg's.",
      },
      {
        rule: 'AwsSolutions-IAM5',
        resources: [results],
        actions: resultActions,
        reason: "The workgroup's query results prefix: Athena names a result object per query.",
      },
    );
  }
}
