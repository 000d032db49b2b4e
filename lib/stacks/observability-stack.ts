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
import { type EnvironmentConfig, LANE_NAMES, type LaneName } from '../config';
import { METRICS_NAMESPACE, METRICS_SERVICE } from '../constructs/lane-function';
import { removalPolicyOf, resourcePrefix } from '../util';
import type { DataStack } from './data-stack';
import type { LanesStack } from './lanes-stack';
import type { StreamingStack } from './streaming-stack';

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
    this.monitorSchemaChanges(prefix);
    this.monitorSignaller(config, lanes);
    this.monitorStreaming(config, streaming);

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
        ],
      });
    }

    for (const name of streaming.connect.connectorNames) {
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
        alarmFriendlyName: `connector-${name.replace(`cdc-sync-${config.name}-`, '')}`,
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
            title: 'Throughput (records/s)',
            metrics: [
              connectorMetric('SourceRecordPollRate', 'Average', 'polled'),
              connectorMetric('SourceRecordWriteRate', 'Average', 'written'),
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
