import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { environmentConfig, LANE_NAMES } from '../../lib/config';
import { resourcesOf, type SynthesizedEnvironment, synthesize, variant } from './support';

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
    for (const metric of ['EventsProcessed', 'Duplicates', 'DeadLettered', 'KeysParked', 'CommitToSinkLatency']) {
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

  it.each(LANE_NAMES)('alarms when the %s lane parks a key (KeysParked > 0 over 5 minutes)', (lane) => {
    alarm(dev, `cdc-sync-dev-${lane}-keys-parked`);
    dev.template('observability').hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: `cdc-sync-dev-${lane}-keys-parked`,
      OKActions: [{ Ref: Match.stringLikeRegexp('^AlarmTopic') }],
      Namespace: 'cdc-sync',
      MetricName: 'KeysParked',
      Dimensions: [
        { Name: 'lane', Value: lane },
        { Name: 'service', Value: 'cdc-sync' },
      ],
      Statistic: 'Sum',
      Period: 300,
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      EvaluationPeriods: 1,
      DatapointsToAlarm: 1,
      TreatMissingData: 'notBreaching',
      AlarmDescription: Match.stringLikeRegexp(`npm run redrive -- ${lane} --parked`),
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

  it('alarms when the fullest MSK broker disk passes 85 % and on under-replicated partitions, over every broker', () => {
    alarm(dev, 'cdc-sync-dev-msk-disk-used');
    alarm(dev, 'cdc-sync-dev-msk-under-replicated-partitions');
    const template = dev.template('observability');
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'cdc-sync-dev-msk-disk-used',
      Threshold: 85,
      ComparisonOperator: 'GreaterThanThreshold',
      Metrics: [
        Match.objectLike({
          Expression:
            'SELECT MAX(KafkaDataLogsDiskUsed) FROM SCHEMA("AWS/Kafka", "Broker ID", "Cluster Name") WHERE "Cluster Name" = \'cdc-sync-dev\'',
        }),
      ],
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'cdc-sync-dev-msk-under-replicated-partitions',
      Threshold: 0,
      EvaluationPeriods: 3,
      Metrics: [
        Match.objectLike({
          Expression:
            'SELECT SUM(UnderReplicatedPartitions) FROM SCHEMA("AWS/Kafka", "Broker ID", "Cluster Name") WHERE "Cluster Name" = \'cdc-sync-dev\'',
        }),
      ],
    });
  });

  it.each(LANE_NAMES)(
    'alarms when the %s lane drops records after its retries, summing DroppedEventCount over its mappings',
    (lane) => {
      const template = dev.template('observability');
      const [[, found] = ['', {}]] = resourcesOf(template, 'AWS::CloudWatch::Alarm').filter(
        ([, a]) => a.Properties?.AlarmName === `cdc-sync-dev-${lane}-records-dropped`,
      );
      const metrics = found.Properties?.Metrics as Array<{
        Expression?: string;
        MetricStat?: { Metric: { MetricName: string; Dimensions: Array<{ Name: string }> } };
      }>;
      const mappings = dev.stage.lanes.functions[lane].eventSources.length;
      expect(metrics.filter((m) => m.MetricStat !== undefined)).toHaveLength(mappings);
      for (const m of metrics.filter((x) => x.MetricStat !== undefined)) {
        expect(m.MetricStat?.Metric.MetricName).toBe('DroppedEventCount');
        expect(m.MetricStat?.Metric.Dimensions.map((d) => d.Name)).toEqual(['EventSourceMappingUUID']);
      }
      expect(metrics.find((m) => m.Expression !== undefined)?.Expression).toMatch(/^SUM\(\[/);
      alarm(dev, `cdc-sync-dev-${lane}-records-dropped`);
    },
  );

  it('splits the mappings of a lane over alarms of at most 10 metrics each', () => {
    const wide = synthesize(
      variant(environmentConfig('dev'), (d) => {
        for (let i = 0; i < 9; i++) d.sources[0]?.tables.push({ name: `public.extra_${i}`, partitions: 1 });
      }),
    );
    const template = wide.template('observability');
    const named = (name: string) =>
      resourcesOf(template, 'AWS::CloudWatch::Alarm').find(([, a]) => a.Properties?.AlarmName === name)?.[1];
    const count = (name: string) =>
      ((named(name)?.Properties?.Metrics ?? []) as Array<{ MetricStat?: unknown }>).filter((m) => m.MetricStat).length;
    // 12 tables, 2 catch-all, 2 heartbeat-table topics and MySQL's schema-change topic.
    expect(wide.stage.lanes.functions.cache.eventSources).toHaveLength(17);
    expect(count('cdc-sync-dev-cache-records-dropped')).toBe(10);
    expect(count('cdc-sync-dev-cache-records-dropped-2')).toBe(7);
  });

  it('alarms at the first failed batch written to the failure bucket (S3 request metrics on aws/lambda/)', () => {
    alarm(dev, 'cdc-sync-dev-failed-batches');
    dev.template('observability').hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'cdc-sync-dev-failed-batches',
      Metrics: [
        Match.objectLike({
          MetricStat: Match.objectLike({
            Metric: Match.objectLike({
              Namespace: 'AWS/S3',
              MetricName: 'PutRequests',
              Dimensions: Match.arrayWith([{ Name: 'FilterId', Value: 'failed-batches' }]),
            }),
            Stat: 'Sum',
          }),
        }),
      ],
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      DatapointsToAlarm: 1,
      TreatMissingData: 'notBreaching',
    });
  });

  it('alarms on replication slot lag and WAL on disk of an RDS PostgreSQL source, by its DB instance', () => {
    for (const [metric, name, threshold] of [
      ['OldestReplicationSlotLag', 'cdc-sync-prod-source-orders-slot-lag', 1024 ** 3],
      ['TransactionLogsDiskUsage', 'cdc-sync-prod-source-orders-wal-disk', 10 * 1024 ** 3],
    ] as const) {
      alarm(prod, name);
      prod.template('observability').hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: name,
        Metrics: [
          Match.objectLike({
            MetricStat: Match.objectLike({
              Metric: {
                Namespace: 'AWS/RDS',
                MetricName: metric,
                Dimensions: [{ Name: 'DBInstanceIdentifier', Value: 'orders-db-prod' }],
              },
              Stat: 'Maximum',
            }),
          }),
        ],
        Threshold: threshold,
      });
    }
    // dev's PostgreSQL source has no rdsInstanceId: nothing to watch.
    expect(JSON.stringify(dev.template('observability').findResources('AWS::CloudWatch::Alarm'))).not.toContain(
      'AWS/RDS',
    );
  });

  it.each(['orders', 'inventory', 'billing'])(
    'alarms when the %s connector fails to start a task or goes stale (no records, not even heartbeats)',
    (source) => {
      alarm(prod, `cdc-sync-prod-connector-${source}-task-startup-Critical`);
      alarm(prod, `cdc-sync-prod-connector-${source}-stale-Critical`);
      prod.template('observability').hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: `cdc-sync-prod-connector-${source}-task-startup-Critical`,
        ComparisonOperator: 'LessThanThreshold',
        Threshold: 100,
        Metrics: Match.arrayWith([
          Match.objectLike({
            MetricStat: Match.objectLike({
              Metric: Match.objectLike({
                Namespace: 'AWS/KafkaConnect',
                MetricName: 'TaskStartupSuccessPercentage',
                Dimensions: [{ Name: 'ConnectorName', Value: `cdc-sync-prod-${source}` }],
              }),
            }),
          }),
        ]),
      });
    },
  );

  describe('source freshness', () => {
    const freshnessAlarm = (env: SynthesizedEnvironment, name: string) => {
      const found = resourcesOf(env.template('observability'), 'AWS::CloudWatch::Alarm').find(
        ([, r]) => r.Properties?.AlarmName === name,
      );
      return found?.[1].Properties;
    };
    const freshnessAlarmNames = (env: SynthesizedEnvironment) =>
      resourcesOf(env.template('observability'), 'AWS::CloudWatch::Alarm')
        .map(([, r]) => String(r.Properties?.AlarmName))
        .filter((name) => name.includes('-freshness-'))
        .sort();

    it.each(['orders', 'inventory', 'billing'].flatMap((source) => LANE_NAMES.map((lane) => [source, lane] as const)))(
      'alarms when %s is stale in the %s lane: SourceFreshness above the 300 s default, or no data, every minute',
      (source, lane) => {
        const name = `cdc-sync-prod-source-${source}-freshness-${lane}`;

        alarm(prod, name);
        prod.template('observability').hasResourceProperties('AWS::CloudWatch::Alarm', {
          AlarmName: name,
          OKActions: [{ Ref: Match.stringLikeRegexp('^AlarmTopic') }],
          Metrics: [
            Match.objectLike({
              MetricStat: {
                Metric: {
                  Namespace: 'cdc-sync',
                  MetricName: 'SourceFreshness',
                  Dimensions: Match.arrayEquals([
                    { Name: 'lane', Value: lane },
                    { Name: 'service', Value: 'cdc-sync' },
                    { Name: 'source', Value: source },
                  ]),
                },
                Period: 60,
                Stat: 'Maximum',
              },
            }),
          ],
          ComparisonOperator: 'GreaterThanThreshold',
          Threshold: 300_000,
          // As many one-minute periods as the bound lasts: no change applied for the bound is stale.
          EvaluationPeriods: 5,
          DatapointsToAlarm: 5,
          TreatMissingData: 'breaching',
        });
      },
    );

    it("takes the threshold and the evaluation window from the source's freshnessBoundSeconds", () => {
      const tight = synthesize(
        variant(environmentConfig('dev'), (d) => {
          const inventory = d.sources[1];
          if (inventory === undefined) throw new Error('dev has two sources');
          inventory.freshnessBoundSeconds = 90;
        }),
      );

      expect(freshnessAlarm(tight, 'cdc-sync-dev-source-inventory-freshness-cache')).toMatchObject({
        Threshold: 90_000,
        EvaluationPeriods: 2,
        DatapointsToAlarm: 2,
      });
      expect(freshnessAlarm(tight, 'cdc-sync-dev-source-orders-freshness-cache')).toMatchObject({
        Threshold: 300_000,
        EvaluationPeriods: 5,
      });
    });

    it('treats no data as fresh for a source without a heartbeat table (an idle source reports nothing)', () => {
      const withoutHeartbeats = synthesize(
        variant(environmentConfig('dev'), (d) => {
          const inventory = d.sources[1];
          if (inventory === undefined) throw new Error('dev has two sources');
          inventory.heartbeatTable = false;
        }),
      );

      for (const lane of LANE_NAMES) {
        expect(freshnessAlarm(withoutHeartbeats, `cdc-sync-dev-source-inventory-freshness-${lane}`)).toMatchObject({
          TreatMissingData: 'notBreaching',
        });
        expect(freshnessAlarm(withoutHeartbeats, `cdc-sync-dev-source-orders-freshness-${lane}`)).toMatchObject({
          TreatMissingData: 'breaching',
        });
      }
    });

    it('alarms only for the lanes that read the source', () => {
      const partial = synthesize(
        variant(environmentConfig('dev'), (d) => {
          d.lanes.cache.sources = ['orders'];
        }),
      );

      expect(freshnessAlarmNames(partial)).toEqual([
        'cdc-sync-dev-source-inventory-freshness-audit',
        'cdc-sync-dev-source-inventory-freshness-warehouse',
        'cdc-sync-dev-source-orders-freshness-audit',
        'cdc-sync-dev-source-orders-freshness-cache',
        'cdc-sync-dev-source-orders-freshness-warehouse',
      ]);
    });

    it("shows each source's freshness per lane with its bound, and its freshness alarms, on the dashboard", () => {
      const [[, dashboard] = ['', {}]] = resourcesOf(dev.template('observability'), 'AWS::CloudWatch::Dashboard');
      const body = JSON.stringify(dashboard.Properties?.DashboardBody);

      for (const source of ['orders', 'inventory']) {
        for (const lane of LANE_NAMES) {
          expect(body).toContain(
            `\\"cdc-sync\\",\\"SourceFreshness\\",\\"lane\\",\\"${lane}\\",\\"service\\",\\"cdc-sync\\",\\"source\\",\\"${source}\\"`,
          );
        }
        expect(body).toContain(`${source}: freshness alarms`);
      }
      expect(body).toContain('\\"value\\":300000,\\"label\\":\\"bound 300 s\\"');
      expect(body).toMatch(/FreshnessAlarmordersaudit/);
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
