import { Duration, Stack, type StackProps } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import {
  type CustomMetric,
  DefaultDashboardFactory,
  MonitoringFacade,
  SnsAlarmActionStrategy,
} from 'cdk-monitoring-constructs';
import type { Construct } from 'constructs';
import {
  connectorName,
  DEFAULT_CURRENT_STATE_FRESHNESS_SECONDS,
  DEFAULT_CURRENT_STATE_SCHEDULE_MINUTES,
  DEFAULT_FRESHNESS_BOUND_SECONDS,
  type EnvironmentConfig,
  heartbeatTableName,
  LANE_NAMES,
  type LaneName,
  laneSources,
  type SourceConfig,
} from '../config';
import { CURRENT_STATE_METRICS } from '../constructs/current-state-function';
import { METRICS_NAMESPACE, METRICS_SERVICE } from '../constructs/lane-function';
import { removalPolicyOf, resourcePrefix } from '../util';
import { type DataStack, FAILED_BATCHES_METRICS_FILTER } from './data-stack';
import type { LanesStack } from './lanes-stack';
import type { StreamingStack } from './streaming-stack';

/** Metrics one alarm's metric math may use (CloudWatch limit). */
const MAX_ALARM_METRICS = 10;
/** KafkaDataLogsDiskUsed (%) of the fullest broker above which the disk alarm fires. */
export const MSK_DISK_ALARM_PERCENT = 85;
/** Default OldestReplicationSlotLag alarm threshold: 1 GiB. */
export const DEFAULT_SLOT_LAG_ALARM_BYTES = 1024 ** 3;
/** Default TransactionLogsDiskUsage alarm threshold: 10 GiB. */
export const DEFAULT_TRANSACTION_LOGS_ALARM_BYTES = 10 * 1024 ** 3;

/** What the mapping alarms need of an event source mapping. */
interface IEventSourceMappingLike {
  readonly eventSourceMappingId: string;
}

function capitalise(value: string): string {
  return value.charAt(0).toUpperCase() + value.slice(1);
}

export interface ObservabilityStackProps extends StackProps {
  readonly config: EnvironmentConfig;
  readonly data: DataStack;
  readonly streaming: StreamingStack;
  readonly lanes: LanesStack;
}

/**
 * One CloudWatch dashboard per environment (cdk-monitoring-constructs) and the alarms, all sending to one SNS topic
 * with the configured email subscriptions. Per lane: invocations, errors, duration, OffsetLag, the pipeline's own
 * EMF metrics (EventsProcessed, Duplicates, DeadLettered, EventsSkipped, CommitToSinkLatency p50/p99) and the DLQ
 * depth and age. Then MSK (broker CPU and disk), each Debezium connector (running and errored tasks) and DynamoDB.
 */
export class ObservabilityStack extends Stack {
  readonly alarmTopic: sns.Topic;
  readonly monitoring: MonitoringFacade;
  readonly dashboard: cloudwatch.Dashboard | undefined;

  constructor(scope: Construct, id: string, props: ObservabilityStackProps) {
    super(scope, id, props);
    const { config, data, streaming, lanes } = props;
    const prefix = resourcePrefix(config);

    const alarmKey = new kms.Key(this, 'AlarmTopicKey', {
      alias: `alias/${prefix}-alarms`,
      description: `cdc-sync ${config.name}: alarm topic`,
      enableKeyRotation: true,
      removalPolicy: removalPolicyOf(config),
      pendingWindow: Duration.days(7),
    });
    // CloudWatch publishes alarm notifications to the encrypted topic with this key.
    alarmKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchAlarmsToPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
      }),
    );
    this.alarmTopic = new sns.Topic(this, 'AlarmTopic', {
      topicName: `${prefix}-alarms`,
      displayName: `cdc-sync ${config.name} alarms`,
      masterKey: alarmKey,
      enforceSSL: true,
    });
    // enforceSSL gives the topic a resource policy, which replaces SNS's default owner-account policy: without an
    // explicit allow, CloudWatch's alarm notifications are denied (issue 16).
    this.alarmTopic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchAlarmsToPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.alarmTopic.topicArn],
        conditions: {
          StringEquals: { 'aws:SourceAccount': this.account },
          ArnLike: { 'aws:SourceArn': `arn:${this.partition}:cloudwatch:${this.region}:${this.account}:alarm:*` },
        },
      }),
    );
    for (const email of config.observability.alarmEmails) {
      this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(email));
    }

    const dashboards = new DefaultDashboardFactory(this, 'Dashboards', {
      dashboardNamePrefix: prefix,
      createDashboard: true,
      createSummaryDashboard: false,
      createAlarmDashboard: false,
    });
    this.monitoring = new MonitoringFacade(this, 'Monitoring', {
      alarmFactoryDefaults: {
        alarmNamePrefix: prefix,
        actionsEnabled: true,
        action: new SnsAlarmActionStrategy({ onAlarmTopic: this.alarmTopic, onOkTopic: this.alarmTopic }),
        datapointsToAlarm: 3,
        evaluationPeriods: 3,
      },
      metricFactoryDefaults: { period: Duration.minutes(1) },
      dashboardFactory: dashboards,
    });
    this.dashboard = dashboards.dashboard;

    for (const lane of LANE_NAMES) this.monitorLane(config, lane, lanes);
    this.monitorFailedBatches(prefix, data);
    this.monitorSchemaChanges(prefix);
    this.monitorSignaller(config, lanes);
    this.monitorStreaming(config, streaming);
    this.monitorSources(config);
    this.monitorFreshness(config);
    this.monitorWarehouseJobs(config, lanes);

    this.monitoring.addLargeHeader('State').monitorDynamoTable({
      table: data.dedupeTable,
      humanReadableName: 'Dedupe checkpoints (DynamoDB)',
      alarmFriendlyName: 'dedupe-table',
      addReadThrottledEventsCountAlarm: { Warning: { maxThrottledEventsThreshold: 0 } },
      addWriteThrottledEventsCountAlarm: { Warning: { maxThrottledEventsThreshold: 0 } },
      addSystemErrorCountAlarm: { Warning: { maxErrorCount: 0 } },
    });
  }

  private monitorLane(config: EnvironmentConfig, lane: LaneName, lanes: LanesStack): void {
    const laneConfig = config.lanes[lane];
    const fn = lanes.functions[lane];
    const emf = (metricName: string, statistic: string, label: string) =>
      new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName,
        // The lane rollup the functions emit next to the per-table series (Powertools adds `service`).
        dimensionsMap: { service: METRICS_SERVICE, lane },
        statistic,
        period: Duration.minutes(1),
        label,
      });

    const p99 = emf('CommitToSinkLatency', 'p99', 'p99');
    const latencyMetrics: CustomMetric[] = [emf('CommitToSinkLatency', 'p50', 'p50')];
    latencyMetrics.push(
      laneConfig.latencySloMs === undefined
        ? p99
        : {
            metric: p99,
            alarmFriendlyName: 'latency-slo',
            addAlarm: {
              Critical: {
                threshold: laneConfig.latencySloMs,
                comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                alarmDescriptionOverride: `${lane} lane p99 commit-to-sink latency is above its ${laneConfig.latencySloMs} ms SLO`,
                treatMissingDataOverride: cloudwatch.TreatMissingData.NOT_BREACHING,
              },
            },
          },
    );

    this.monitoring
      .addLargeHeader(`${lane} lane`)
      .monitorLambdaFunction({
        lambdaFunction: fn,
        humanReadableName: `${lane} lane function`,
        alarmFriendlyName: `${lane}-lane`,
        isOffsetLag: true,
        addFaultCountAlarm: { Critical: { maxErrorCount: config.observability.maxLaneErrors } },
        addMaxOffsetLagAlarm: { Critical: { maxOffsetLag: laneConfig.maxOffsetLagAlarm } },
      })
      .monitorCustom({
        humanReadableName: `${lane} pipeline (EMF, namespace ${METRICS_NAMESPACE})`,
        alarmFriendlyName: `${lane}-pipeline`,
        metricGroups: [
          {
            title: 'Events',
            metrics: [
              emf('EventsProcessed', 'Sum', 'processed'),
              emf('Duplicates', 'Sum', 'duplicates'),
              emf('DeadLettered', 'Sum', 'dead-lettered'),
              emf('EventsSkipped', 'Sum', 'skipped'),
              emf('KeysParked', 'Sum', 'keys parked'),
            ],
          },
          { title: 'Commit-to-sink latency (ms)', metrics: latencyMetrics },
          { title: 'Sink write (ms)', metrics: [emf('SinkWriteMs', 'p50', 'p50'), emf('SinkWriteMs', 'p99', 'p99')] },
        ],
      })
      .monitorSqsQueue({
        queue: lanes.deadLetterQueues[lane],
        humanReadableName: `${lane} dead-letter queue`,
        alarmFriendlyName: `${lane}-dlq`,
        // Any dead letter needs a human: alarm as soon as the queue is not empty.
        addQueueMaxSizeAlarm: { Critical: { maxMessageCount: 0, datapointsToAlarm: 1, evaluationPeriods: 1 } },
      });
    this.monitorMappings(config, lane, fn.eventSources);
    this.monitorParkedKeys(config, lane);
  }

  /**
   * A key parked by the lane (KeysParked, the lane rollup every batch publishes): its changes wait in the DLQ, in
   * order, for `npm run redrive -- <lane> --parked`. Any parked key needs a human, like any dead letter.
   */
  private monitorParkedKeys(config: EnvironmentConfig, lane: LaneName): void {
    const prefix = resourcePrefix(config);
    this.alarm(`${capitalise(lane)}KeysParked`, {
      alarmName: `${prefix}-${lane}-keys-parked`,
      alarmDescription: `The ${lane} lane parked a key: the sink kept rejecting one row's change, so that change and every later change of the same key go to the lane's DLQ as PARKED, in order, while the rest of its partition goes on (the lane's log line 'keys parked' names them). Fix the cause, then \`npm run redrive -- ${lane} --parked --aws\`. Runbook: docs/architecture.md, "Parking a poison key".`,
      metric: new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName: 'KeysParked',
        dimensionsMap: { service: METRICS_SERVICE, lane },
        statistic: 'Sum',
        period: Duration.minutes(5),
      }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      datapointsToAlarm: 1,
      // Published with every batch; an idle lane publishes nothing, which is no parked key.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }

  /**
   * The lane's event source mappings (MetricsConfig EventCount, dimension EventSourceMappingUUID): records polled,
   * invoked, failed, and the ones given up after the retries (DroppedEventCount; those that reached the failure bucket
   * are OnFailureDestinationDeliveredEventCount). An alarm's metric math takes at most 10 metrics, so the mappings are
   * summed in groups of 10, one alarm per group (`<lane>-records-dropped`, then `-2`, …).
   */
  private monitorMappings(config: EnvironmentConfig, lane: LaneName, mappings: readonly IEventSourceMappingLike[]) {
    const prefix = resourcePrefix(config);
    const groups: IEventSourceMappingLike[][] = [];
    for (let i = 0; i < mappings.length; i += MAX_ALARM_METRICS) groups.push(mappings.slice(i, i + MAX_ALARM_METRICS));
    const sum = (metricName: string, group: readonly IEventSourceMappingLike[], label: string) => {
      // Ids are unique per metric name: one graph shows several of these sums.
      const id = (i: number) => `${metricName.toLowerCase()}${i}`;
      return new cloudwatch.MathExpression({
        expression: `SUM([${group.map((_, i) => id(i)).join(',')}])`,
        usingMetrics: Object.fromEntries(
          group.map((mapping, i) => [
            id(i),
            new cloudwatch.Metric({
              namespace: 'AWS/Lambda',
              metricName,
              dimensionsMap: { EventSourceMappingUUID: mapping.eventSourceMappingId },
              statistic: 'Sum',
              period: Duration.minutes(5),
            }),
          ]),
        ),
        label,
        period: Duration.minutes(5),
      });
    };
    const widgets: cloudwatch.IWidget[] = [];
    groups.forEach((group, index) => {
      const suffix = index === 0 ? '' : `-${index + 1}`;
      const dropped = sum('DroppedEventCount', group, 'dropped after retries');
      this.alarm(`${capitalise(lane)}RecordsDropped${suffix}`, {
        alarmName: `${prefix}-${lane}-records-dropped${suffix}`,
        alarmDescription: `The ${lane} lane gave up on records after its retries (DroppedEventCount of its event source mappings${groups.length > 1 ? `, group ${index + 1}` : ''}): they are in the failure bucket under aws/lambda/<mapping UUID>/ unless that write failed too. Runbook: docs/deploy.md, "Records dropped / failed batches".`,
        metric: dropped,
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        datapointsToAlarm: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      widgets.push(
        new cloudwatch.GraphWidget({
          title: `${lane} event source mappings${groups.length > 1 ? ` (group ${index + 1})` : ''}: records per 5 minutes`,
          width: 12,
          height: 6,
          left: [
            sum('PolledEventCount', group, 'polled'),
            sum('InvokedEventCount', group, 'invoked'),
            sum('FailedInvokeEventCount', group, 'failed invokes'),
            dropped,
            sum('OnFailureDestinationDeliveredEventCount', group, 'sent to failure bucket'),
          ],
        }),
      );
    });
    this.monitoring.addWidget(new cloudwatch.Row(...widgets));
  }

  /** An alarm that notifies the alarm topic on ALARM and OK, like the cdk-monitoring-constructs ones. */
  private alarm(id: string, props: cloudwatch.AlarmProps & { readonly alarmName: string }): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, id, { actionsEnabled: true, ...props });
    alarm.addAlarmAction(new cloudwatchActions.SnsAction(this.alarmTopic));
    alarm.addOkAction(new cloudwatchActions.SnsAction(this.alarmTopic));
    return alarm;
  }

  /**
   * Failed batches written to the failure bucket (S3 request metrics on the aws/lambda/ prefix, filter
   * {@link FAILED_BATCHES_METRICS_FILTER}). Each PUT is a batch a lane dropped after its retries, with its full
   * payload: the records are in no sink until someone replays them.
   */
  private monitorFailedBatches(prefix: string, data: DataStack): void {
    const puts = new cloudwatch.Metric({
      namespace: 'AWS/S3',
      metricName: 'PutRequests',
      dimensionsMap: { BucketName: data.failureBucket.bucketName, FilterId: FAILED_BATCHES_METRICS_FILTER },
      statistic: 'Sum',
      period: Duration.minutes(5),
      label: 'failed batches written',
    });
    const alarm = this.alarm('FailedBatchesAlarm', {
      alarmName: `${prefix}-failed-batches`,
      alarmDescription:
        'An event source mapping wrote a failed batch to the failure bucket (aws/lambda/<mapping UUID>/…): its records reached no sink. Runbook: docs/deploy.md, "Records dropped / failed batches".',
      metric: puts,
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      datapointsToAlarm: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.monitoring.addLargeHeader('Failed batches').addWidget(
      new cloudwatch.AlarmWidget({
        title: 'Failed batches written to the failure bucket',
        width: 12,
        height: 6,
        alarm,
      }),
    );
  }

  /**
   * Schema history (issue 14). The lanes emit `SchemaChanged` and `SchemaChangeUnreconciled` per table (dimensions
   * `{service, lane, table}`, the Powertools defaults plus `table`), once by whichever lane registers the version.
   * Metrics Insights queries sum them over every table and lane without listing tables (new tables appear at
   * runtime) and, unlike SEARCH, can back an alarm.
   */
  private monitorSchemaChanges(prefix: string): void {
    const query = (metricName: string, groupBy: string) =>
      `SELECT SUM(${metricName}) FROM SCHEMA("${METRICS_NAMESPACE}", lane, service, "table") WHERE service = '${METRICS_SERVICE}'${groupBy}`;
    const unreconciled = new cloudwatch.MathExpression({
      expression: query('SchemaChangeUnreconciled', ''),
      usingMetrics: {},
      label: 'unreconciled schema changes',
      period: Duration.minutes(5),
    });
    const alarm = new cloudwatch.Alarm(this, 'SchemaChangeUnreconciledAlarm', {
      alarmName: `${prefix}-schema-change-unreconciled`,
      actionsEnabled: true,
      alarmDescription:
        "A table's schema changed in a way the sinks cannot reconcile from the stream, and its policy is 'alarm': rows not changed since keep the old shape until `npm run backfill -- <table> --env <env>` re-reads it (the lanes' log line 'schema change' names the table and the change).",
      metric: unreconciled,
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      datapointsToAlarm: 1,
      // Emitted once per change: no data is the normal state.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(new cloudwatchActions.SnsAction(this.alarmTopic));
    alarm.addOkAction(new cloudwatchActions.SnsAction(this.alarmTopic));

    this.monitoring
      .addLargeHeader('Schema changes')
      .addWidget(
        new cloudwatch.GraphWidget({
          title: 'Schema versions registered, per table (SchemaChanged)',
          width: 12,
          height: 6,
          left: [
            new cloudwatch.MathExpression({
              expression: query('SchemaChanged', ' GROUP BY "table"'),
              usingMetrics: {},
              label: '',
              period: Duration.minutes(5),
            }),
          ],
        }),
      )
      .addWidget(
        new cloudwatch.AlarmWidget({
          title: 'Schema changes left unreconciled (policy alarm)',
          width: 12,
          height: 6,
          alarm,
        }),
      );
  }

  /**
   * The signaller (lanes → signals queue → Kafka signal topics): its errors and its dead-letter queue. A signal in the
   * dead-letter queue is a reconciliation that did not start: alarm at the first one, like the lanes' DLQs.
   */
  private monitorSignaller(config: EnvironmentConfig, lanes: LanesStack): void {
    this.monitoring
      .addLargeHeader('Snapshot signals')
      .monitorLambdaFunction({
        lambdaFunction: lanes.signaller.function,
        humanReadableName: 'signaller function',
        alarmFriendlyName: 'signaller',
        addFaultCountAlarm: { Critical: { maxErrorCount: config.observability.maxLaneErrors } },
      })
      .monitorSqsQueueWithDlq({
        queue: lanes.signaller.queue,
        deadLetterQueue: lanes.signaller.deadLetterQueue,
        humanReadableName: 'signals queue',
        alarmFriendlyName: 'signals',
        addDeadLetterQueueMaxSizeAlarm: {
          Critical: { maxMessageCount: 0, datapointsToAlarm: 1, evaluationPeriods: 1 },
        },
      });
  }

  /**
   * Broker alarms over every broker without listing broker ids: Metrics Insights queries (SEARCH cannot back an
   * alarm). Disk: KafkaDataLogsDiskUsed, the fullest broker, above {@link MSK_DISK_ALARM_PERCENT} for 15 minutes
   * (storage autoscaling targets 60 % but expands at most every 6 hours and stops at maxEbsVolumeGiB).
   * Under-replicated partitions for 15 minutes: longer than a rolling broker restart (patching) takes per broker.
   */
  private monitorBrokers(config: EnvironmentConfig, clusterName: string, streaming: StreamingStack): void {
    const prefix = resourcePrefix(config);
    const query = (fn: string, metricName: string, label: string) =>
      new cloudwatch.MathExpression({
        expression: `SELECT ${fn}(${metricName}) FROM SCHEMA("AWS/Kafka", "Broker ID", "Cluster Name") WHERE "Cluster Name" = '${clusterName}'`,
        usingMetrics: {},
        label,
        period: Duration.minutes(5),
      });
    const autoscaling = streaming.cluster.storageAutoScaling;
    this.alarm('MskDiskUsedAlarm', {
      alarmName: `${prefix}-msk-disk-used`,
      alarmDescription: `A broker's data disk is more than ${MSK_DISK_ALARM_PERCENT} % full (KafkaDataLogsDiskUsed)${autoscaling ? `; storage autoscaling grows volumes up to ${autoscaling.maxVolumeGiB} GiB` : ''}. A full disk stops the broker. Runbook: docs/deploy.md, "MSK disk".`,
      metric: query('MAX', 'KafkaDataLogsDiskUsed', 'fullest broker disk (%)'),
      threshold: MSK_DISK_ALARM_PERCENT,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
      treatMissingData: cloudwatch.TreatMissingData.MISSING,
    });
    this.alarm('MskUnderReplicatedAlarm', {
      alarmName: `${prefix}-msk-under-replicated-partitions`,
      alarmDescription:
        'Partitions have fewer in-sync replicas than replicas (UnderReplicatedPartitions, summed over brokers) for 15 minutes: a broker is down, slow or out of disk; with min.insync.replicas 2 one more failure stops writes. Runbook: docs/deploy.md, "MSK under-replicated partitions".',
      metric: query('SUM', 'UnderReplicatedPartitions', 'under-replicated partitions'),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
      treatMissingData: cloudwatch.TreatMissingData.MISSING,
    });
  }

  /**
   * RDS/Aurora PostgreSQL sources (rdsInstanceId): how much WAL the replication slot holds back
   * (OldestReplicationSlotLag) and the WAL on disk (TransactionLogsDiskUsage), both in bytes, dimension
   * DBInstanceIdentifier. Either growing means Debezium does not confirm positions: the database fills its disk.
   */
  private monitorSources(config: EnvironmentConfig): void {
    const prefix = resourcePrefix(config);
    for (const source of config.sources) {
      if (source.engine !== 'postgresql' || source.rdsInstanceId === undefined) continue;
      const metric = (metricName: string, label: string) =>
        new cloudwatch.Metric({
          namespace: 'AWS/RDS',
          metricName,
          dimensionsMap: { DBInstanceIdentifier: source.rdsInstanceId as string },
          statistic: 'Maximum',
          period: Duration.minutes(5),
          label,
        });
      const slotLag = source.rdsAlarms?.replicationSlotLagBytes ?? DEFAULT_SLOT_LAG_ALARM_BYTES;
      const walDisk = source.rdsAlarms?.transactionLogsBytes ?? DEFAULT_TRANSACTION_LOGS_ALARM_BYTES;
      const lagAlarm = this.alarm(`SlotLagAlarm-${source.name}`, {
        alarmName: `${prefix}-source-${source.name}-slot-lag`,
        alarmDescription: `The replication slot of source ${source.name} (${source.rdsInstanceId}) holds back more than ${slotLag} bytes of WAL (OldestReplicationSlotLag) for 15 minutes: the connector is not confirming positions. Runbook: docs/deploy.md, "Replication slot lag".`,
        metric: metric('OldestReplicationSlotLag', 'slot lag (bytes)'),
        threshold: slotLag,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        treatMissingData: cloudwatch.TreatMissingData.MISSING,
      });
      const walAlarm = this.alarm(`TransactionLogsAlarm-${source.name}`, {
        alarmName: `${prefix}-source-${source.name}-wal-disk`,
        alarmDescription: `WAL on the disk of ${source.rdsInstanceId} (source ${source.name}) exceeds ${walDisk} bytes (TransactionLogsDiskUsage) for 15 minutes. Runbook: docs/deploy.md, "Replication slot lag".`,
        metric: metric('TransactionLogsDiskUsage', 'WAL on disk (bytes)'),
        threshold: walDisk,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        treatMissingData: cloudwatch.TreatMissingData.MISSING,
      });
      this.monitoring.addWidget(
        new cloudwatch.Row(
          new cloudwatch.AlarmWidget({
            title: `${source.name}: replication slot lag`,
            width: 12,
            height: 6,
            alarm: lagAlarm,
          }),
          new cloudwatch.AlarmWidget({ title: `${source.name}: WAL on disk`, width: 12, height: 6, alarm: walAlarm }),
        ),
      );
    }
  }

  /**
   * End-to-end freshness per source: the lanes' `SourceFreshness` (EMF, namespace `cdc-sync`, dimensions `service`,
   * `lane` and `source` = the topic prefix; ms from the newest streamed commit a lane applied to its write), Maximum
   * per minute, against the source's `freshnessBoundSeconds`. The heartbeat table's upserts reach every lane every
   * `heartbeatIntervalMs`, so a healthy source always has data; none means nothing was applied (a stopped connector, a
   * dead slot, a stuck lane): missing data breaches.
   *
   * One alarm per lane that reads the source, not one over a metric math MAX of the lanes: a lane that applies nothing
   * publishes nothing, and MAX over the lanes' series only sees the lanes that report, so one stuck lane would hide
   * behind the other two and no data would only show when all three stop. Per lane, the lane's own silence alarms.
   *
   * Evaluated every minute over as many minutes as the bound lasts (rounded up), all of which must breach: an alarm at
   * the first minute without an applied change would fire on a lane whose batching window or heartbeat interval leaves
   * a minute empty, whereas "no change applied, or only changes older than the bound, for the bound" is the staleness
   * the bound expresses. A source without a heartbeat table (`heartbeatTable: false`) has no data whenever it is idle,
   * so there missing data counts as fresh and the alarm only catches changes applied late.
   */
  private monitorFreshness(config: EnvironmentConfig): void {
    const prefix = resourcePrefix(config);
    this.monitoring.addLargeHeader('Source freshness');
    for (const source of config.sources) {
      const lanes = LANE_NAMES.filter((lane) => laneSources(config, lane).some((s) => s.name === source.name));
      if (lanes.length === 0) continue;
      const bound = source.freshnessBoundSeconds ?? DEFAULT_FRESHNESS_BOUND_SECONDS;
      const minutes = Math.ceil(bound / 60);
      const heartbeats = heartbeatTableName(source) !== undefined;
      const alarms = lanes.map((lane) =>
        this.alarm(`FreshnessAlarm-${source.name}-${lane}`, {
          alarmName: `${prefix}-source-${source.name}-freshness-${lane}`,
          alarmDescription: freshnessDescription(config, source, lane, { bound, minutes, heartbeats }),
          metric: sourceFreshness(source, lane),
          threshold: bound * 1000,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
          evaluationPeriods: minutes,
          datapointsToAlarm: minutes,
          treatMissingData: heartbeats
            ? cloudwatch.TreatMissingData.BREACHING
            : cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
      this.monitoring.addWidget(
        new cloudwatch.Row(
          new cloudwatch.GraphWidget({
            title: `${source.name}: freshness per lane (SourceFreshness, ms, Maximum per minute)`,
            width: 12,
            height: 6,
            left: lanes.map((lane) => sourceFreshness(source, lane)),
            leftAnnotations: [{ value: bound * 1000, label: `bound ${bound} s` }],
          }),
          new cloudwatch.AlarmStatusWidget({ title: `${source.name}: freshness alarms`, width: 12, height: 6, alarms }),
        ),
      );
    }
  }

  /**
   * The warehouse's scheduled jobs: the current-state merge (its errors, and `CurrentStateFreshness`, the largest over
   * the tables, against `currentState.freshnessBoundSeconds`) and the change log's compaction (its errors).
   *
   * Freshness is published by every run, one point per run, so the alarm's period is the schedule's interval and it
   * fires when every period over the bound breaches: the tables stayed behind for the whole bound. No data breaches: a
   * merge that does not run (schedule disabled, the function failing before it publishes) leaves the tables behind.
   */
  private monitorWarehouseJobs(config: EnvironmentConfig, lanes: LanesStack): void {
    const prefix = resourcePrefix(config);
    const currentState = lanes.currentState;
    if (currentState === undefined && lanes.compaction === undefined) return;
    this.monitoring.addLargeHeader('Warehouse: current state and compaction');
    if (currentState !== undefined) {
      const minutes = config.currentState.scheduleMinutes ?? DEFAULT_CURRENT_STATE_SCHEDULE_MINUTES;
      const bound = config.currentState.freshnessBoundSeconds ?? DEFAULT_CURRENT_STATE_FRESHNESS_SECONDS;
      const periods = Math.ceil(bound / (minutes * 60));
      this.monitoring.monitorLambdaFunction({
        lambdaFunction: currentState.function,
        humanReadableName: 'current-state merge function',
        alarmFriendlyName: 'current-state',
        // A run fails when a table failed; three failed runs in a row (a transient Athena error is retried by the next).
        addFaultCountAlarm: {
          Critical: { maxErrorCount: 0, datapointsToAlarm: 3, evaluationPeriods: 3 * minutes },
        },
      });
      const freshness = new cloudwatch.Metric({
        namespace: CURRENT_STATE_METRICS.namespace,
        metricName: 'CurrentStateFreshness',
        dimensionsMap: { service: CURRENT_STATE_METRICS.service },
        statistic: 'Maximum',
        period: Duration.minutes(minutes),
        label: 'stalest table (s)',
      });
      const alarm = this.alarm('CurrentStateFreshnessAlarm', {
        alarmName: `${prefix}-current-state-freshness`,
        alarmDescription: `A current-state table has not been brought up to the change log for more than ${bound} s (CurrentStateFreshness, the stalest table), or the merge did not run. The function's log line 'table not brought up to date' names the table and the error. Runbook: docs/operations.md, "Current-state tables".`,
        metric: freshness,
        threshold: bound,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: periods,
        datapointsToAlarm: periods,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      });
      this.monitoring.addWidget(
        new cloudwatch.Row(
          new cloudwatch.GraphWidget({
            title: 'Current-state freshness per table (CurrentStateFreshness, s)',
            width: 12,
            height: 6,
            left: [
              new cloudwatch.MathExpression({
                expression: `SEARCH('{"${CURRENT_STATE_METRICS.namespace}",service,"table"} service="${CURRENT_STATE_METRICS.service}" MetricName="CurrentStateFreshness"', 'Maximum', ${minutes * 60})`,
                usingMetrics: {},
                label: '',
                period: Duration.minutes(minutes),
              }),
            ],
            leftAnnotations: [{ value: bound, label: `bound ${bound} s` }],
          }),
          new cloudwatch.AlarmWidget({ title: 'Current-state freshness alarm', width: 12, height: 6, alarm }),
        ),
      );
    }
    if (lanes.compaction !== undefined) {
      this.monitoring.monitorLambdaFunction({
        lambdaFunction: lanes.compaction.function,
        humanReadableName: 'change-log compaction function',
        alarmFriendlyName: 'compaction',
        // Hourly: one failed run is one data point.
        addFaultCountAlarm: { Warning: { maxErrorCount: 0, datapointsToAlarm: 1, evaluationPeriods: 1 } },
      });
    }
  }

  private monitorStreaming(config: EnvironmentConfig, streaming: StreamingStack): void {
    const cluster = streaming.cluster;
    this.monitoring.addLargeHeader('Change stream (MSK, Debezium)');
    if (!cluster.serverless) {
      // SEARCH covers every broker without listing broker ids (there is one series per "Broker ID").
      const brokerSearch = (metricName: string, label: string) =>
        new cloudwatch.MathExpression({
          expression: `SEARCH('{AWS/Kafka,"Cluster Name","Broker ID"} "Cluster Name"="${cluster.clusterName}" MetricName="${metricName}"', 'Maximum', 300)`,
          usingMetrics: {},
          label,
          period: Duration.minutes(5),
        });
      this.monitoring.monitorCustom({
        humanReadableName: `MSK cluster ${cluster.clusterName}`,
        alarmFriendlyName: 'msk',
        metricGroups: [
          {
            title: 'Broker CPU (user %)',
            metrics: [brokerSearch('CpuUser', 'CPU user')],
          },
          {
            title: 'Broker data disk used (%)',
            metrics: [brokerSearch('KafkaDataLogsDiskUsed', 'disk used')],
          },
          {
            title: 'Under-replicated partitions',
            metrics: [brokerSearch('UnderReplicatedPartitions', 'under-replicated')],
          },
        ],
      });
      this.monitorBrokers(config, cluster.clusterName, streaming);
    }

    for (const source of config.sources) {
      const name = connectorName(config, source);
      const heartbeats = source.heartbeatIntervalMs !== undefined && source.heartbeatIntervalMs > 0;
      const connectorMetric = (metricName: string, statistic: string, label: string) =>
        new cloudwatch.Metric({
          namespace: 'AWS/KafkaConnect',
          metricName,
          dimensionsMap: { ConnectorName: name },
          statistic,
          period: Duration.minutes(1),
          label,
        });
      this.monitoring.monitorCustom({
        humanReadableName: `Debezium connector ${name}`,
        alarmFriendlyName: `connector-${source.name}`,
        metricGroups: [
          {
            title: 'Tasks',
            metrics: [
              {
                metric: connectorMetric('RunningTaskCount', 'Minimum', 'running tasks'),
                alarmFriendlyName: 'down',
                addAlarm: {
                  Critical: {
                    threshold: 1,
                    comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                    // No data means no worker reporting: the connector is down too.
                    treatMissingDataOverride: cloudwatch.TreatMissingData.BREACHING,
                    alarmDescriptionOverride: `Debezium connector ${name} has no running task: no changes are captured`,
                    datapointsToAlarm: 5,
                    evaluationPeriods: 5,
                  },
                },
              },
              {
                metric: connectorMetric('ErroredTaskCount', 'Maximum', 'errored tasks'),
                alarmFriendlyName: 'errors',
                addAlarm: {
                  Critical: {
                    threshold: 0,
                    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    treatMissingDataOverride: cloudwatch.TreatMissingData.NOT_BREACHING,
                    alarmDescriptionOverride: `Debezium connector ${name} has an errored task`,
                  },
                },
              },
            ],
          },
          {
            title: 'Task starts',
            metrics: [
              {
                // MSK Connect has no task-failure count: a task that fails and restarts shows as a start that did not
                // succeed (the connector's metrics are ErroredTaskCount, TaskStartupAttemptsTotal and this one).
                metric: connectorMetric('TaskStartupSuccessPercentage', 'Minimum', 'successful task starts (%)'),
                alarmFriendlyName: 'task-startup',
                addAlarm: {
                  Critical: {
                    threshold: 100,
                    comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                    treatMissingDataOverride: cloudwatch.TreatMissingData.NOT_BREACHING,
                    alarmDescriptionOverride: `Debezium connector ${name} failed to start a task (TaskStartupSuccessPercentage below 100)`,
                    datapointsToAlarm: 1,
                    evaluationPeriods: 1,
                  },
                },
              },
            ],
          },
          {
            title: 'Throughput (records/s)',
            metrics: [
              connectorMetric('SourceRecordPollRate', 'Average', 'polled'),
              heartbeats
                ? {
                    // With heartbeats every heartbeatIntervalMs a healthy connector always writes something.
                    metric: connectorMetric('SourceRecordWriteRate', 'Maximum', 'written'),
                    alarmFriendlyName: 'stale',
                    addAlarm: {
                      Critical: {
                        threshold: 0,
                        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
                        treatMissingDataOverride: cloudwatch.TreatMissingData.NOT_BREACHING,
                        alarmDescriptionOverride: `Debezium connector ${name} wrote nothing, not even heartbeats, for 15 minutes while running: the source is stale`,
                        datapointsToAlarm: 15,
                        evaluationPeriods: 15,
                      },
                    },
                  }
                : connectorMetric('SourceRecordWriteRate', 'Average', 'written'),
            ],
          },
          {
            title: 'Worker CPU / memory (%)',
            metrics: [
              connectorMetric('CpuUtilization', 'Maximum', 'CPU'),
              connectorMetric('MemoryUtilization', 'Maximum', 'memory'),
            ],
          },
        ],
      });
    }
  }
}

/** One lane's `SourceFreshness` series of a source, as the lanes publish it (functions/shared/observability.ts). */
function sourceFreshness(source: SourceConfig, lane: LaneName): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRICS_NAMESPACE,
    metricName: 'SourceFreshness',
    dimensionsMap: { service: METRICS_SERVICE, lane, source: source.topicPrefix },
    statistic: 'Maximum',
    period: Duration.minutes(1),
    label: lane,
  });
}

function freshnessDescription(
  config: EnvironmentConfig,
  source: SourceConfig,
  lane: LaneName,
  { bound, minutes, heartbeats }: { bound: number; minutes: number; heartbeats: boolean },
): string {
  const window = `for ${minutes} minute${minutes === 1 ? '' : 's'}`;
  const what = heartbeats
    ? `The ${lane} lane applied no change of source ${source.name}, or only changes committed more than ${bound} s before it wrote them (SourceFreshness), ${window}. The heartbeat table changes on every heartbeat, so either the connector stopped, its slot or log position is lost, or the lane is stuck`
    : `The ${lane} lane applied changes of source ${source.name} more than ${bound} s after their commit (SourceFreshness) ${window}. The source has no heartbeat table, so an idle or stopped source does not alarm here (the connector alarms cover it)`;
  return `${what}; npm run status -- --env ${config.name} tells which. Runbook: docs/deploy.md, "Source freshness".`;
}
