/**
 * The deployed environment's status collector (tools/status/aws.ts) against mocked AWS clients: nothing local
 * emulates MSK Connect or CloudWatch, and throttling is an AWS fault. The connector states, lag, DLQ depth, counts,
 * latency, freshness, failed batches and alarms land in the report; the report follows the contract; a throttled call
 * is retried, a failing one reported; and the names the collector derives are the ones the CDK app deploys.
 */
import { DescribeStacksCommand, ListStackResourcesCommand } from '@aws-sdk/client-cloudformation';
import {
  DescribeAlarmsCommand,
  GetMetricDataCommand,
  type GetMetricDataCommandInput,
  ListMetricsCommand,
} from '@aws-sdk/client-cloudwatch';
import { DescribeConnectorCommand, ListConnectorsCommand } from '@aws-sdk/client-kafkaconnect';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, GetQueueUrlCommand } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { environmentConfig } from '../../lib/config';
import {
  AwsStatusCollector,
  cachedReader,
  connectorSourceState,
  deployedNames,
  METRICS_NAMESPACE,
  METRICS_SERVICE,
  ON_FAILURE_PREFIX,
} from '../../tools/status/aws';
import { StatusReportSchema } from '../../tools/status/report';
import { mockedStatusClients } from '../support/status';

const dev = environmentConfig('dev');
/** 12:00:30 UTC: the minute 12:00 is still being filled, 11:59 is the newest complete one. */
const NOW = Date.parse('2026-05-04T12:00:30Z');
const MINUTE = 60_000;
const BUCKET = 'cdc-sync-dev-data-failuresbucket3d5a4556-1x2y3z';
const WAREHOUSE_MAPPING = '0f6f4a3e-1111-4222-8333-944445555666';

const throttled = () => Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });

type MetricKey = string;
/** `<namespace>|<metric>|<dim=value,…>|<stat>|<period>` → points (value per minute offset before 12:00). */
const key = (namespace: string, metric: string, dims: Record<string, string>, stat: string, period = 60): MetricKey =>
  `${namespace}|${metric}|${Object.entries(dims)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',')}|${stat}|${period}`;
const lane = (l: string) => ({ service: METRICS_SERVICE, lane: l });

/** Mocked clients answering like a healthy dev environment; each test changes what it is about. */
function environment() {
  const { clients, mocks } = mockedStatusClients();

  mocks.cloudFormation.on(DescribeStacksCommand).resolves({ Stacks: [{ StackName: 'cdc-sync-dev-data' } as never] });
  mocks.cloudFormation.on(ListStackResourcesCommand, { StackName: 'cdc-sync-dev-data' }).resolves({
    StackResourceSummaries: [
      { LogicalResourceId: 'AccessLogsBucket83982689', ResourceType: 'AWS::S3::Bucket', PhysicalResourceId: 'logs' },
      { LogicalResourceId: 'FailuresBucket3D5A4556', ResourceType: 'AWS::S3::Bucket', PhysicalResourceId: BUCKET },
    ] as never,
  });
  mocks.cloudFormation.on(ListStackResourcesCommand, { StackName: 'cdc-sync-dev-lanes' }).resolves({
    StackResourceSummaries: [
      {
        LogicalResourceId: 'WarehouseLaneKafkaEventSourcedevLanesWarehouseLane25CDA875orderspublicorders1D99C64A',
        ResourceType: 'AWS::Lambda::EventSourceMapping',
        PhysicalResourceId: WAREHOUSE_MAPPING,
      },
      {
        LogicalResourceId: 'SignallerFunctionSqsEventSourcedevLanesSignallerQueueE0A005AA49467006',
        ResourceType: 'AWS::Lambda::EventSourceMapping',
        PhysicalResourceId: 'signaller-mapping',
      },
    ] as never,
  });

  const connectors: Record<string, { state: string; message?: string }> = {
    'cdc-sync-dev-orders': { state: 'RUNNING' },
    'cdc-sync-dev-inventory': { state: 'RUNNING' },
  };
  const arn = (name: string) => `arn:aws:kafkaconnect:eu-west-1:111111111111:connector/${name}/abc`;
  mocks.kafkaConnect.on(ListConnectorsCommand).callsFake(() => ({
    connectors: Object.entries(connectors).map(([name, c]) => ({
      connectorName: name,
      connectorArn: arn(name),
      connectorState: c.state,
    })),
  }));
  mocks.kafkaConnect.on(DescribeConnectorCommand).callsFake((input: { connectorArn: string }) => {
    const [name, c] = Object.entries(connectors).find(([n]) => arn(n) === input.connectorArn) ?? [];
    return {
      connectorName: name,
      connectorState: c?.state,
      ...(c?.message ? { stateDescription: { code: 'UNKNOWN', message: c.message } } : {}),
    };
  });

  const depths: Record<string, number> = { warehouse: 0, cache: 3, audit: 0 };
  const url = (l: string) => `https://sqs.eu-west-1.amazonaws.com/111111111111/cdc-sync-dev-${l}-dead-letters`;
  mocks.sqs.on(GetQueueUrlCommand).callsFake((input: { QueueName: string }) => ({
    QueueUrl: `https://sqs.eu-west-1.amazonaws.com/111111111111/${input.QueueName}`,
  }));
  mocks.sqs.on(GetQueueAttributesCommand).callsFake((input: { QueueUrl: string }) => {
    const l = Object.keys(depths).find((name) => url(name) === input.QueueUrl) as string;
    return { Attributes: { ApproximateNumberOfMessages: String(depths[l]) } };
  });

  // Per metric: a value for each of the 30 minutes before 12:00 (index 0 = 11:59), or a function of the minute.
  const metrics = new Map<MetricKey, (minutesAgo: number) => number | undefined>();
  const every = (v: number) => () => v;
  for (const l of ['warehouse', 'cache', 'audit']) {
    metrics.set(key(METRICS_NAMESPACE, 'EventsProcessed', lane(l), 'Sum'), every(600));
    metrics.set(key(METRICS_NAMESPACE, 'CommitToSinkLatency', lane(l), 'p50'), every(120));
    metrics.set(key(METRICS_NAMESPACE, 'CommitToSinkLatency', lane(l), 'p99'), every(900));
    metrics.set(key(METRICS_NAMESPACE, 'CommitToSinkLatency', lane(l), 'p50', 1800), every(110));
    metrics.set(key(METRICS_NAMESPACE, 'CommitToSinkLatency', lane(l), 'p99', 1800), every(950));
    metrics.set(key('AWS/Lambda', 'OffsetLag', { FunctionName: `cdc-sync-dev-${l}` }, 'Maximum'), (m) => 40 + m);
  }
  metrics.set(key(METRICS_NAMESPACE, 'Duplicates', lane('warehouse'), 'Sum'), (m) => (m < 2 ? 5 : undefined));
  metrics.set(key(METRICS_NAMESPACE, 'DeadLettered', lane('cache'), 'Sum'), (m) => (m === 3 ? 3 : undefined));
  metrics.set(key(METRICS_NAMESPACE, 'RecordsRetried', lane('audit'), 'Sum'), every(1));
  metrics.set(
    key('AWS/KafkaConnect', 'SourceRecordWriteRate', { ConnectorName: 'cdc-sync-dev-orders' }, 'Average'),
    every(2),
  );
  metrics.set(
    key('AWS/KafkaConnect', 'ErroredTaskCount', { ConnectorName: 'cdc-sync-dev-orders' }, 'Maximum'),
    every(0),
  );
  // Freshness of orders, published by two lanes: the slower one counts.
  const freshnessDims = [
    { source: 'orders', service: METRICS_SERVICE, lane: 'warehouse' },
    { source: 'orders', service: METRICS_SERVICE, lane: 'cache' },
  ];
  metrics.set(key(METRICS_NAMESPACE, 'SourceFreshness', freshnessDims[0] as never, 'Maximum'), every(1500));
  metrics.set(key(METRICS_NAMESPACE, 'SourceFreshness', freshnessDims[1] as never, 'Maximum'), every(4000));
  mocks.cloudWatch.on(ListMetricsCommand).resolves({
    Metrics: freshnessDims.map((d) => ({
      Namespace: METRICS_NAMESPACE,
      MetricName: 'SourceFreshness',
      Dimensions: Object.entries(d).map(([Name, Value]) => ({ Name, Value })),
    })),
  });
  const metricQueries: GetMetricDataCommandInput[] = [];
  /** Thrown by the next GetMetricData calls, one each. */
  const metricFaults: Error[] = [];
  mocks.cloudWatch.on(GetMetricDataCommand).callsFake((input: GetMetricDataCommandInput) => {
    metricQueries.push(input);
    const fault = metricFaults.shift();
    if (fault) throw fault;
    const end = (input.EndTime as Date).getTime();
    const start = (input.StartTime as Date).getTime();
    return {
      MetricDataResults: (input.MetricDataQueries ?? []).map((q) => {
        const stat = q.MetricStat;
        const metric = stat?.Metric;
        const dims = Object.fromEntries((metric?.Dimensions ?? []).map((d) => [d.Name, d.Value]));
        const values = metrics.get(
          key(metric?.Namespace ?? '', metric?.MetricName ?? '', dims as never, stat?.Stat ?? '', stat?.Period),
        );
        const period = (stat?.Period ?? 60) * 1000;
        const timestamps: Date[] = [];
        const numbers: number[] = [];
        // Minutes up to 11:59 (12:00 is the current, partial minute, which CloudWatch has not answered yet).
        for (let t = start; t + period <= end && t < NOW - MINUTE + 1; t += period) {
          const v = values?.(Math.round((NOW - 30_000 - MINUTE - t) / MINUTE));
          if (v !== undefined) {
            timestamps.push(new Date(t));
            numbers.push(v);
          }
        }
        return { Id: q.Id, Label: q.Id, Timestamps: timestamps, Values: numbers, StatusCode: 'Complete' };
      }),
    };
  });
  mocks.cloudWatch.on(DescribeAlarmsCommand).resolves({
    MetricAlarms: [
      {
        AlarmName: 'cdc-sync-dev-cache-dlq-Queue-Message-Count-Max-Critical',
        StateValue: 'ALARM',
        StateReason: 'Threshold Crossed: 1 datapoint [3.0] was greater than the threshold (0.0).',
      },
    ],
  });

  mocks.s3.on(ListObjectsV2Command).resolves({
    Contents: [
      { Key: `aws/lambda/${WAREHOUSE_MAPPING}/0/2026/05/04/a`, LastModified: new Date(NOW - 3 * MINUTE), Size: 10 },
      { Key: `aws/lambda/${WAREHOUSE_MAPPING}/1/2026/05/04/b`, LastModified: new Date(NOW - 20 * MINUTE), Size: 11 },
      { Key: 'aws/lambda/unknown-mapping/0/2026/05/03/c', LastModified: new Date(NOW - 26 * 60 * MINUTE), Size: 12 },
    ],
    IsTruncated: false,
  });

  const slept: number[] = [];
  const collector = (overrides: { now?: () => number } = {}) =>
    new AwsStatusCollector({
      config: dev,
      clients,
      now: overrides.now ?? (() => NOW),
      sleep: async (ms) => void slept.push(ms),
    });
  return { clients, mocks, connectors, depths, metrics, metricQueries, metricFaults, slept, collector };
}

describe('the deployed status collector', () => {
  it('maps connectors, lag, counts, latency, freshness, DLQ depth, failed batches and alarms into a valid report', async () => {
    const env = environment();

    const { report, deadLetterQueues, failedBatches } = await env.collector().collect();

    expect(StatusReportSchema.parse(report)).toEqual(report);
    expect(report).toMatchObject({ version: 1, environment: 'dev', phase: 'live', verdict: null });
    expect(report.sources.map((s) => [s.name, s.state])).toEqual([
      ['cdc-sync-dev-orders', 'streaming'],
      ['cdc-sync-dev-inventory', 'streaming'],
    ]);
    const orders = report.sources[0];
    // The slower lane's 4 s, aged by the 30 s since its newest minute (11:59) ended.
    expect(orders?.freshnessMs).toBe(4000 + 30_000);
    expect(orders?.emitted).toBe(30 * 2 * 60);
    expect(report.sources[1]?.freshnessMs).toBeNull();

    const byLane = Object.fromEntries(report.lanes.map((l) => [l.lane, l]));
    expect(byLane.warehouse).toMatchObject({
      recordsPerSec: 10,
      lag: 40, // the newest minute's OffsetLag
      latencyMs: { p50: 110, p99: 950 }, // the window's percentiles, not a minute's
      processed: 30 * 600,
      duplicates: 10,
      dlqDepth: 0,
      lastError: null,
    });
    expect(byLane.cache).toMatchObject({ deadLettered: 3, dlqDepth: 3, freshnessMs: 4000 + 30_000 });
    expect(byLane.warehouse?.freshnessMs).toBe(1500 + 30_000);
    expect(byLane.audit?.freshnessMs).toBeNull();
    expect(byLane.audit).toMatchObject({ retried: 30 });
    expect(deadLetterQueues).toContainEqual({ lane: 'cache', name: 'cdc-sync-dev-cache-dead-letters', depth: 3 });

    expect(report.series).toHaveLength(30);
    expect(report.series.at(-1)).toEqual({
      t: Date.parse('2026-05-04T11:59:00Z'),
      lanes: expect.objectContaining({ warehouse: { rate: 10, lag: 40, p50: 120, p99: 900 } }),
    });
    expect(report.series[0]?.t).toBe(Date.parse('2026-05-04T11:30:00Z'));

    expect(report.alarms).toEqual([
      {
        name: 'cdc-sync-dev-cache-dlq-Queue-Message-Count-Max-Critical',
        state: 'ALARM',
        reason: expect.stringContaining('Threshold Crossed'),
      },
    ]);
    expect(env.mocks.cloudWatch.commandCalls(DescribeAlarmsCommand)[0]?.args[0].input).toMatchObject({
      AlarmNamePrefix: 'cdc-sync-dev-',
      StateValue: 'ALARM',
    });

    // The day-old batch is outside the window; the newest names its lane through the lanes stack's mapping.
    expect(failedBatches).toMatchObject({ bucket: BUCKET, recent: 2, truncated: false });
    expect(failedBatches?.newest[0]).toMatchObject({ lane: 'warehouse', key: expect.stringContaining('/0/') });
    expect(env.mocks.s3.commandCalls(ListObjectsV2Command)[0]?.args[0].input).toMatchObject({
      Bucket: BUCKET,
      Prefix: 'aws/lambda/',
    });
    expect(report.problems).toEqual([
      `2 failed batch(es) written to s3://${BUCKET}/aws/lambda/ in the last 30 min, the newest at 2026-05-04T11:57:30.000Z (warehouse lane): the mappings gave up on them after their retries`,
    ]);
  });

  it('reports a FAILED connector as failed with its state description, and a missing one as unknown', async () => {
    const env = environment();
    env.connectors['cdc-sync-dev-orders'] = { state: 'FAILED', message: 'Connection to orders-db refused' };
    Reflect.deleteProperty(env.connectors, 'cdc-sync-dev-inventory');

    const report = await env.collector().report();

    expect(report.sources[0]).toMatchObject({
      state: 'failed',
      detail: 'MSK Connect FAILED: Connection to orders-db refused',
    });
    expect(report.sources[1]).toMatchObject({ state: 'unknown', detail: expect.stringContaining('no MSK Connect') });
    expect(StatusReportSchema.safeParse(report).success).toBe(true);
  });

  it('reports a RUNNING connector with an errored task as failed', async () => {
    const env = environment();
    env.metrics.set(
      key('AWS/KafkaConnect', 'ErroredTaskCount', { ConnectorName: 'cdc-sync-dev-orders' }, 'Maximum'),
      (m) => (m === 0 ? 1 : 0),
    );

    const report = await env.collector().report();

    expect(report.sources[0]).toMatchObject({ state: 'failed', detail: expect.stringContaining('1 errored task') });
  });

  it.each([
    ['CREATING', 'starting'],
    ['RUNNING', 'streaming'],
    ['UPDATING', 'restarting'],
    ['RESTARTING', 'restarting'],
    ['FAILED', 'failed'],
    ['PAUSED', 'stopped'],
    ['DELETING', 'stopped'],
    ['SOMETHING_NEW', 'unknown'],
  ])('maps connector state %s to %s', (state, expected) => {
    expect(connectorSourceState(state)).toBe(expected);
  });

  it('retries a throttled call, and reports one that stays throttled instead of failing the report', async () => {
    const env = environment();
    env.metricFaults.push(throttled());
    env.mocks.cloudWatch.on(DescribeAlarmsCommand).rejects(throttled());

    const report = await env.collector().report();

    expect(StatusReportSchema.safeParse(report).success).toBe(true);
    // GetMetricData: throttled once, then answered.
    expect(env.mocks.cloudWatch.commandCalls(GetMetricDataCommand)).toHaveLength(2);
    expect(report.lanes[0]?.lag).toBe(40);
    // DescribeAlarms: three attempts with growing pauses, then a problem line; the rest of the screen is there.
    expect(env.mocks.cloudWatch.commandCalls(DescribeAlarmsCommand)).toHaveLength(3);
    expect(env.slept.sort((a, b) => a - b)).toEqual([500, 500, 1000]);
    expect(report.alarms).toEqual([]);
    expect(report.problems).toContain(
      'AWS call failed (cloudwatch:DescribeAlarms): ThrottlingException: Rate exceeded',
    );
    expect(report.lanes.find((l) => l.lane === 'cache')?.dlqDepth).toBe(3);
  });

  it('reports one line for many calls failing alike (no credentials) and still answers a valid report', async () => {
    const env = environment();
    const denied = Object.assign(new Error('Could not load credentials from any providers'), {
      name: 'CredentialsProviderError',
    });
    env.mocks.kafkaConnect.reset().onAnyCommand().rejects(denied);
    env.mocks.cloudWatch.reset().onAnyCommand().rejects(denied);
    env.mocks.sqs.reset().onAnyCommand().rejects(denied);
    env.mocks.s3.reset().onAnyCommand().rejects(denied);
    env.mocks.cloudFormation.reset().onAnyCommand().rejects(denied);

    const report = await env.collector().report();

    expect(StatusReportSchema.safeParse(report).success).toBe(true);
    expect(report.problems).toHaveLength(1);
    expect(report.problems[0]).toMatch(
      /^AWS call failed \(.*kafkaconnect:ListConnectors.*\): CredentialsProviderError/,
    );
    expect(report.sources.every((s) => s.state === 'unknown')).toBe(true);
    expect(report.lanes.every((l) => l.dlqDepth === null && l.lag === null)).toBe(true);
    // Nothing was retried: only throttling is.
    expect(env.slept).toEqual([]);
  });

  it('takes the failure bucket from a FailureBucketName stack output when the data stack has one', async () => {
    const env = environment();
    env.mocks.cloudFormation
      .on(DescribeStacksCommand)
      .resolves({ Stacks: [{ Outputs: [{ OutputKey: 'FailureBucketName', OutputValue: 'from-output' }] } as never] });

    const { failedBatches } = await env.collector().collect();

    expect(failedBatches?.bucket).toBe('from-output');
    const listed = env.mocks.cloudFormation
      .commandCalls(ListStackResourcesCommand)
      .map((c) => c.args[0].input.StackName);
    expect(listed).toEqual(['cdc-sync-dev-lanes']);
  });

  it('says so when the data stack has no failure bucket', async () => {
    const env = environment();
    env.mocks.cloudFormation
      .on(ListStackResourcesCommand, { StackName: 'cdc-sync-dev-data' })
      .resolves({ StackResourceSummaries: [] });

    const { report, failedBatches } = await env.collector().collect();

    expect(failedBatches).toBeNull();
    expect(report.problems).toContain(
      'no FailuresBucket resource in stack cdc-sync-dev-data: failed batches not checked',
    );
  });

  it('looks the resources up once per collector, and the metrics again on every collection', async () => {
    const env = environment();
    const collector = env.collector();

    await collector.collect();
    await collector.collect();

    expect(env.mocks.cloudFormation.commandCalls(ListStackResourcesCommand)).toHaveLength(2);
    expect(env.mocks.sqs.commandCalls(GetQueueUrlCommand)).toHaveLength(3);
    expect(env.mocks.cloudWatch.commandCalls(GetMetricDataCommand)).toHaveLength(2);
    expect(env.mocks.sqs.commandCalls(GetQueueAttributesCommand)).toHaveLength(6);
  });

  it('asks CloudWatch for 1-minute points over the window of complete minutes', async () => {
    const env = environment();

    await env.collector().collect();

    const input = env.metricQueries[0] as GetMetricDataCommandInput;
    // The current minute (12:00, still being filled) is left out.
    expect(input.EndTime).toEqual(new Date('2026-05-04T12:00:00Z'));
    expect(input.StartTime).toEqual(new Date('2026-05-04T11:30:00Z'));
    const lag = input.MetricDataQueries?.find((q) => q.MetricStat?.Metric?.MetricName === 'OffsetLag');
    expect(lag?.MetricStat).toMatchObject({
      Metric: { Namespace: 'AWS/Lambda', Dimensions: [{ Name: 'FunctionName', Value: 'cdc-sync-dev-warehouse' }] },
      Period: 60,
      Stat: 'Maximum',
    });
  });
});

describe('cachedReader', () => {
  it('collects again at most every 10 s, and concurrent reads share one collection', async () => {
    let clock = 0;
    let collections = 0;
    const read = cachedReader(
      async () => ++collections,
      10_000,
      () => clock,
    );

    const [a, b] = await Promise.all([read(), read()]);
    clock = 9_999;
    const c = await read();
    clock = 10_000;
    const d = await read();

    expect([a, b, c, d]).toEqual([1, 1, 1, 2]);
    expect(collections).toBe(2);
  });
});

describe('the names the collector derives', () => {
  it('match the constants of the functions and the constructs', async () => {
    const observability = await import('../../functions/shared/observability');
    const laneFunction = await import('../../lib/constructs/lane-function');

    expect(METRICS_NAMESPACE).toBe(observability.METRICS_NAMESPACE);
    expect(METRICS_SERVICE).toBe(observability.METRICS_SERVICE);
    expect(ON_FAILURE_PREFIX).toBe(laneFunction.ON_FAILURE_PREFIX);
  });

  it('are the physical names of the synthesized dev environment', async () => {
    const { synthesize } = await import('../infra/support');
    const env = synthesize('dev');
    const names = deployedNames(env.config);
    const resources = (stack: 'data' | 'lanes' | 'observability', type: string) =>
      Object.entries(env.template(stack).toJSON().Resources as Record<string, { Type: string; Properties: never }>)
        .filter(([, r]) => r.Type === type)
        .map(([id, r]) => ({ id, props: r.Properties as Record<string, unknown> }));

    expect(env.stack('data').stackName).toBe(names.stacks.data);
    expect(env.stack('lanes').stackName).toBe(names.stacks.lanes);
    const functions = resources('lanes', 'AWS::Lambda::Function').map((r) => r.props.FunctionName);
    const queues = resources('lanes', 'AWS::SQS::Queue').map((r) => r.props.QueueName);
    for (const l of Object.values(names.lanes)) {
      expect(functions).toContain(l.functionName);
      expect(queues).toContain(l.queueName);
    }
    expect(resources('data', 'AWS::S3::Bucket').filter((r) => /^FailuresBucket[0-9A-F]{8}$/.test(r.id))).toHaveLength(
      1,
    );
    const mappings = resources('lanes', 'AWS::Lambda::EventSourceMapping').map((r) => r.id);
    for (const prefix of ['WarehouseLaneKafkaEventSource', 'CacheLaneKafkaEventSource', 'AuditLaneKafkaEventSource']) {
      expect(mappings.some((id) => id.startsWith(prefix))).toBe(true);
    }
    const alarms = resources('observability', 'AWS::CloudWatch::Alarm').map((r) => String(r.props.AlarmName));
    expect(alarms.length).toBeGreaterThan(0);
    expect(alarms.every((name) => name.startsWith(`${names.prefix}-`))).toBe(true);
    expect(Object.values(names.connectors).sort()).toEqual(
      env.config.sources.map((s) => `cdc-sync-dev-${s.name}`).sort(),
    );
  });
});
