import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { LANE_NAMES } from '../../lib/config';
import { resourcesOf, type SynthesizedEnvironment, synthesize } from './support';

describe('observability stack', () => {
  let dev: SynthesizedEnvironment;
  let prod: SynthesizedEnvironment;
  beforeAll(() => {
    dev = synthesize('dev');
    prod = synthesize('prod');
  });

  const alarm = (env: SynthesizedEnvironment, name: string) =>
    env.template('observability').hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: name,
      ActionsEnabled: true,
      AlarmActions: [{ Ref: Match.stringLikeRegexp('^AlarmTopic') }],
    });

  it('builds exactly one dashboard for the environment', () => {
    const template = dev.template('observability');
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    template.hasResourceProperties('AWS::CloudWatch::Dashboard', { DashboardName: 'cdc-sync-dev' });
  });

  it.each(LANE_NAMES)('shows the %s lane: invocations, errors, duration, OffsetLag, EMF metrics, DLQ', (lane) => {
    const [[, dashboard] = ['', {}]] = resourcesOf(dev.template('observability'), 'AWS::CloudWatch::Dashboard');
    const body = JSON.stringify(dashboard.Properties?.DashboardBody);
    for (const metric of ['Invocations', 'Errors', 'Duration', 'OffsetLag']) {
      expect(body).toContain(`\\"AWS/Lambda\\",\\"${metric}\\"`);
    }
    for (const metric of ['EventsProcessed', 'Duplicates', 'DeadLettered', 'CommitToSinkLatency']) {
      expect(body).toContain(`\\"cdc-sync\\",\\"${metric}\\",\\"lane\\",\\"${lane}\\",\\"service\\",\\"cdc-sync\\"`);
    }
    const queue = `${lane.charAt(0).toUpperCase()}${lane.slice(1)}DeadLetters`;
    expect(body).toMatch(new RegExp(`ApproximateNumberOfMessagesVisible[^\\]]*${queue}`));
    expect(body).toMatch(new RegExp(`ApproximateAgeOfOldestMessage[^\\]]*${queue}`));
  });

  it('shows MSK broker CPU and disk, every connector and the DynamoDB throttles', () => {
    const [[, dashboard] = ['', {}]] = resourcesOf(dev.template('observability'), 'AWS::CloudWatch::Dashboard');
    const body = JSON.stringify(dashboard.Properties?.DashboardBody);
    expect(body).toContain('MetricName=\\\\\\"CpuUser\\\\\\"');
    expect(body).toContain('MetricName=\\\\\\"KafkaDataLogsDiskUsed\\\\\\"');
    expect(body).toContain('RunningTaskCount');
    expect(body).toContain('ErroredTaskCount');
    expect(body).toContain('ReadThrottleEvents');
  });

  it.each(LANE_NAMES)('alarms when the %s lane errors', (lane) =>
    alarm(dev, `cdc-sync-dev-${lane}-lane-Fault-Count-Critical`),
  );

  it.each(LANE_NAMES)('alarms when the %s lane lags behind', (lane) => {
    alarm(dev, `cdc-sync-dev-${lane}-lane-Offset-Lag-Max-Critical`);
    dev.template('observability').hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: `cdc-sync-dev-${lane}-lane-Offset-Lag-Max-Critical`,
      Threshold: dev.config.lanes[lane].maxOffsetLagAlarm,
    });
  });

  it.each(LANE_NAMES)('alarms as soon as the %s DLQ is not empty', (lane) => {
    alarm(dev, `cdc-sync-dev-${lane}-dlq-Queue-Message-Count-Max-Critical`);
    dev.template('observability').hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: `cdc-sync-dev-${lane}-dlq-Queue-Message-Count-Max-Critical`,
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      DatapointsToAlarm: 1,
    });
  });

  it('alarms as soon as a snapshot signal lands in the signals dead-letter queue, and when the signaller errors', () => {
    alarm(dev, 'cdc-sync-dev-signals-DLQ-Queue-Message-Count-Max-Critical');
    dev.template('observability').hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'cdc-sync-dev-signals-DLQ-Queue-Message-Count-Max-Critical',
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      DatapointsToAlarm: 1,
      Metrics: Match.arrayWith([
        Match.objectLike({
          MetricStat: Match.objectLike({
            Metric: Match.objectLike({
              MetricName: 'ApproximateNumberOfMessagesVisible',
              Dimensions: [
                { Name: 'QueueName', Value: { 'Fn::ImportValue': Match.stringLikeRegexp('SignallerDeadLetters') } },
              ],
            }),
          }),
        }),
      ]),
    });
    alarm(dev, 'cdc-sync-dev-signaller-Fault-Count-Critical');
  });

  it('alarms when a lane with a latency SLO misses it at p99', () => {
    alarm(dev, 'cdc-sync-dev-cache-pipeline-latency-slo-Critical');
    dev.template('observability').hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'cdc-sync-dev-cache-pipeline-latency-slo-Critical',
      Threshold: 2000,
      Metrics: Match.arrayWith([
        Match.objectLike({
          MetricStat: Match.objectLike({
            Metric: {
              Namespace: 'cdc-sync',
              MetricName: 'CommitToSinkLatency',
              Dimensions: [
                { Name: 'lane', Value: 'cache' },
                { Name: 'service', Value: 'cdc-sync' },
              ],
            },
            Stat: 'p99',
          }),
        }),
      ]),
    });
  });

  it.each(['orders', 'inventory', 'billing'])('alarms when the %s connector is down or errors (prod)', (source) => {
    alarm(prod, `cdc-sync-prod-connector-${source}-down-Critical`);
    alarm(prod, `cdc-sync-prod-connector-${source}-errors-Critical`);
    prod.template('observability').hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: `cdc-sync-prod-connector-${source}-down-Critical`,
      ComparisonOperator: 'LessThanThreshold',
      Threshold: 1,
      TreatMissingData: 'breaching',
    });
  });

  it('alarms on DynamoDB throttling', () => {
    alarm(dev, 'cdc-sync-dev-dedupe-table-Read-Throttled-Events-Warning');
    alarm(dev, 'cdc-sync-dev-dedupe-table-Write-Throttled-Events-Warning');
  });

  it('sends alarms to a KMS-encrypted SNS topic with the configured email subscriptions', () => {
    const template = prod.template('observability');
    template.hasResourceProperties('AWS::SNS::Topic', {
      TopicName: 'cdc-sync-prod-alarms',
      KmsMasterKeyId: Match.anyValue(),
    });
    for (const email of prod.config.observability.alarmEmails) {
      template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: email });
    }
    template.resourceCountIs('AWS::SNS::Subscription', prod.config.observability.alarmEmails.length);
  });

  it('lets CloudWatch use the alarm topic key, for this account only', () => {
    dev.template('observability').hasResourceProperties('AWS::KMS::Key', {
      KeyPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
            Condition: { StringEquals: { 'aws:SourceAccount': '111111111111' } },
          }),
        ]),
      },
    });
  });

  it('alarms on a schema change left unreconciled, over every table and lane, without listing tables', () => {
    alarm(dev, 'cdc-sync-dev-schema-change-unreconciled');
    dev.template('observability').hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'cdc-sync-dev-schema-change-unreconciled',
      OKActions: [{ Ref: Match.stringLikeRegexp('^AlarmTopic') }],
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      EvaluationPeriods: 1,
      TreatMissingData: 'notBreaching',
      Metrics: [
        Match.objectLike({
          // Metrics Insights: the lanes' namespace and dimension set {service, lane, table}, summed.
          Expression:
            'SELECT SUM(SchemaChangeUnreconciled) FROM SCHEMA("cdc-sync", lane, service, "table") WHERE service = \'cdc-sync\'',
          Period: 300,
          ReturnData: true,
        }),
      ],
    });
  });

  it('shows SchemaChanged per table on the dashboard', () => {
    const [[, dashboard] = ['', {}]] = resourcesOf(dev.template('observability'), 'AWS::CloudWatch::Dashboard');
    const body = JSON.stringify(dashboard.Properties?.DashboardBody);
    expect(body).toContain('SELECT SUM(SchemaChanged) FROM SCHEMA(');
    expect(body).toContain('GROUP BY');
  });

  it('lets CloudWatch alarms of this account publish to the TLS-only alarm topic', () => {
    dev.template('observability').hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          Match.objectLike({
            Sid: 'AllowCloudWatchAlarmsToPublish',
            Effect: 'Allow',
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: 'sns:Publish',
            Condition: {
              StringEquals: { 'aws:SourceAccount': '111111111111' },
              ArnLike: { 'aws:SourceArn': 'arn:aws:cloudwatch:eu-west-1:111111111111:alarm:*' },
            },
          }),
        ]),
      },
    });
  });
});
