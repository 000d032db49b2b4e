import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_PARK_AFTER_ATTEMPTS as FUNCTION_DEFAULT_PARK_AFTER_ATTEMPTS } from '../../functions/core/parking';
import { AvroRegistrySchema, LaneEnvSchemas, SignallerEnvSchema } from '../../functions/shared/config';
import { DEFAULT_PARK_AFTER_ATTEMPTS, LANE_NAMES, type LaneName, laneTopics } from '../../lib/config';
import { render, resourcesOf, type SynthesizedEnvironment, statementsOfRole, synthesize } from './support';

type Props = Record<string, unknown>;

/** The lanes' Kafka event source mappings (the signaller's SQS mapping is not one). */
function mappings(env: SynthesizedEnvironment): Props[] {
  return resourcesOf(env.template('lanes'), 'AWS::Lambda::EventSourceMapping')
    .map(([, r]) => r.Properties ?? {})
    .filter((m) => m.AmazonManagedKafkaEventSourceConfig !== undefined);
}

function mappingsOf(env: SynthesizedEnvironment, lane: LaneName): Props[] {
  const prefix = `cdc-${env.config.name}-${lane}-`;
  return mappings(env).filter((m) =>
    String((m.AmazonManagedKafkaEventSourceConfig as Props | undefined)?.ConsumerGroupId).startsWith(prefix),
  );
}

function laneFunction(env: SynthesizedEnvironment, lane: LaneName | 'signaller'): Props {
  const found = resourcesOf(env.template('lanes'), 'AWS::Lambda::Function').find(
    ([, r]) => r.Properties?.FunctionName === `cdc-sync-${env.config.name}-${lane}`,
  );
  if (found === undefined) throw new Error(`no ${lane} function`);
  return found[1].Properties ?? {};
}

/** The raw (unrendered) IAM statements of a role, to see which resource a GetAtt/Ref points at. */
type RawStatement = { Action: unknown; Resource: unknown };
function rawStatementsOfRole(env: SynthesizedEnvironment, role: RegExp): RawStatement[] {
  return resourcesOf(env.template('lanes'), 'AWS::IAM::Policy').flatMap(([, p]) => {
    const roles = (p.Properties?.Roles ?? []) as Array<{ Ref: string }>;
    const document = (p.Properties?.PolicyDocument ?? { Statement: [] }) as { Statement: RawStatement[] };
    return roles.some((r) => role.test(r.Ref)) ? document.Statement : [];
  });
}

const capitalised = (lane: LaneName) => `${lane.charAt(0).toUpperCase()}${lane.slice(1)}`;
const roleOf = (lane: LaneName) => new RegExp(`^${capitalised(lane)}LaneServiceRole`);

describe('lanes stack', () => {
  let dev: SynthesizedEnvironment;
  let staging: SynthesizedEnvironment;
  beforeAll(() => {
    dev = synthesize('dev');
    staging = synthesize('staging');
  });

  describe('event source mappings', () => {
    it.each(LANE_NAMES)('subscribes the %s lane to every data topic, one mapping per topic', (lane) => {
      const topics = mappingsOf(dev, lane).map((m) => (m.Topics as string[])[0]);
      expect(topics.sort()).toEqual(
        laneTopics(dev.config, lane)
          .map((t) => t.topicName)
          .sort(),
      );
    });

    it('gives every lane and topic its own consumer group', () => {
      const groups = mappings(dev).map(
        (m) => (m.AmazonManagedKafkaEventSourceConfig as { ConsumerGroupId: string }).ConsumerGroupId,
      );
      // 3 data topics, a catch-all and a heartbeat-table topic per source and MySQL's schema-change topic.
      expect(groups).toHaveLength(LANE_NAMES.length * 8);
      expect(new Set(groups).size).toBe(groups.length);
      expect(groups).toContain('cdc-dev-warehouse-orders.public.orders');
      expect(groups).toContain('cdc-dev-cache-orders.public.orders');
      expect(groups).toContain('cdc-dev-audit-orders.public.orders');
    });

    it("never subscribes to Debezium's heartbeat, transaction, schema history, signal or notification topics", () => {
      const topics = mappings(dev).flatMap((m) => m.Topics as string[]);
      expect(
        topics.filter((t) =>
          /__debezium-heartbeat|\.transaction$|schema-history|\.signals$|\.notifications$|debezium_signal/.test(t),
        ),
      ).toEqual([]);
    });

    it.each(LANE_NAMES)(
      "subscribes the %s lane to each source's heartbeat table topic with its own group (SourceFreshness while idle)",
      (lane) => {
        const heartbeats = mappingsOf(dev, lane).filter((m) =>
          /\.cdc_heartbeat$/.test((m.Topics as string[])[0] ?? ''),
        );
        expect(
          heartbeats.map((m) => [
            (m.Topics as string[])[0],
            (m.AmazonManagedKafkaEventSourceConfig as { ConsumerGroupId: string }).ConsumerGroupId,
          ]),
        ).toEqual([
          ['orders.public.cdc_heartbeat', `cdc-dev-${lane}-orders.public.cdc_heartbeat`],
          ['inventory.inventory.cdc_heartbeat', `cdc-dev-${lane}-inventory.inventory.cdc_heartbeat`],
        ]);
      },
    );

    it.each(LANE_NAMES)("subscribes the %s lane to MySQL's schema-change topic so DDL reaches its history", (lane) => {
      const topics = mappingsOf(dev, lane).map((m) => (m.Topics as string[])[0]);
      expect(topics).toContain('inventory');
      // PostgreSQL has none: its logical decoding carries no DDL.
      expect(topics).not.toContain('orders');
    });

    it("applies the warehouse lane's batching and error handling in provisioned mode", () => {
      for (const mapping of mappingsOf(dev, 'warehouse')) {
        expect(mapping).toMatchObject({
          BatchSize: 500,
          MaximumBatchingWindowInSeconds: 5,
          StartingPosition: 'TRIM_HORIZON',
          ProvisionedPollerConfig: { MinimumPollers: 1, MaximumPollers: 3 },
          BisectBatchOnFunctionError: true,
          MaximumRetryAttempts: 3,
          MaximumRecordAgeInSeconds: 86_400,
          FunctionResponseTypes: ['ReportBatchItemFailures'],
        });
      }
    });

    it('invokes the cache lane without a batching window (it has a latency SLO)', () => {
      for (const mapping of mappingsOf(dev, 'cache')) expect(mapping.MaximumBatchingWindowInSeconds).toBe(0);
    });

    it('never drops audit records for age and does not bisect them', () => {
      for (const mapping of mappingsOf(dev, 'audit')) {
        expect(mapping).toMatchObject({ BisectBatchOnFunctionError: false, MaximumRetryAttempts: 10 });
        expect(mapping.MaximumRecordAgeInSeconds).toBeUndefined();
      }
    });

    it('publishes the event count metrics of every mapping (MetricsConfig EventCount)', () => {
      expect(mappings(dev).length).toBeGreaterThan(0);
      for (const mapping of mappings(dev)) expect(mapping.MetricsConfig).toEqual({ Metrics: ['EventCount'] });
    });

    it('sends batches that exhaust their retries to the failure bucket as the last resort', () => {
      for (const mapping of mappings(dev)) {
        expect(
          render((mapping.DestinationConfig as { OnFailure: { Destination: unknown } }).OnFailure.Destination),
        ).toBe('<Fn::ImportValue>');
        expect(JSON.stringify(mapping.DestinationConfig)).toMatch(/FailuresBucket.*Arn/);
      }
    });

    it.each(LANE_NAMES)("subscribes the %s lane to each source's catch-all topic with its own group", (lane) => {
      const unlisted = mappingsOf(dev, lane).filter((m) => /\.unlisted$/.test((m.Topics as string[])[0] ?? ''));
      expect(
        unlisted.map((m) => [
          (m.Topics as string[])[0],
          (m.AmazonManagedKafkaEventSourceConfig as { ConsumerGroupId: string }).ConsumerGroupId,
        ]),
      ).toEqual([
        ['orders.unlisted', `cdc-dev-${lane}-orders.unlisted`],
        ['inventory.unlisted', `cdc-dev-${lane}-inventory.unlisted`],
      ]);
    });

    it('delivers the bytes as written to the lanes: no mapping decodes Avro with a schema registry', () => {
      for (const mapping of [...mappings(staging), ...mappings(dev)]) {
        expect((mapping.AmazonManagedKafkaEventSourceConfig as Props).SchemaRegistryConfig).toBeUndefined();
      }
      // The Avro source's topics are mapped like any other.
      expect(mappings(staging).filter((m) => (m.Topics as string[])[0] === 'inventory.inventory.stock')).toHaveLength(
        3,
      );
    });
  });

  describe('dead-letter queues', () => {
    it.each(LANE_NAMES)('gives the %s lane its own KMS-encrypted DLQ that keeps messages 14 days', (lane) => {
      dev.template('lanes').hasResourceProperties('AWS::SQS::Queue', {
        QueueName: `cdc-sync-dev-${lane}-dead-letters`,
        MessageRetentionPeriod: 14 * 24 * 3600,
        KmsMasterKeyId: Match.anyValue(),
      });
    });

    it('rejects non-TLS access to the DLQs', () => {
      const policies = resourcesOf(dev.template('lanes'), 'AWS::SQS::QueuePolicy');
      // The three lane DLQs, the signals queue and its DLQ.
      expect(policies).toHaveLength(5);
      for (const [, policy] of policies) {
        expect(JSON.stringify(policy.Properties?.PolicyDocument)).toContain('"aws:SecureTransport":"false"');
      }
    });
  });

  describe('functions', () => {
    it.each(LANE_NAMES)('builds the %s lane from functions/<lane> for nodejs22.x on arm64 with tracing', (lane) => {
      expect(laneFunction(dev, lane)).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        Handler: 'index.handler',
        TracingConfig: { Mode: 'Active' },
        LoggingConfig: { LogGroup: { Ref: expect.stringMatching(/LogGroup/) } },
      });
    });

    it('keeps lane logs for the configured retention', () => {
      // The three lanes, the signaller, the current-state merge and the compaction.
      dev.template('lanes').resourcePropertiesCountIs('AWS::Logs::LogGroup', { RetentionInDays: 14 }, 6);
    });

    it.each(LANE_NAMES)('sets exactly the environment the %s lane parses (functions/shared/config.ts)', (lane) => {
      const variables = (laneFunction(dev, lane).Environment as { Variables: Record<string, unknown> }).Variables;
      // Deploy-time values (Ref, ImportValue) become placeholders of the right shape.
      const env = Object.fromEntries(
        Object.entries(variables).map(([k, v]) => [
          k,
          typeof v === 'string'
            ? v
            : k === 'DLQ_URL'
              ? 'https://sqs.eu-west-1.amazonaws.com/111111111111/dlq'
              : k === 'SIGNAL_QUEUE_URL'
                ? 'https://sqs.eu-west-1.amazonaws.com/111111111111/cdc-sync-dev-signals.fifo'
                : render(v),
        ]),
      );
      const parsed = LaneEnvSchemas[lane].safeParse(env);
      expect(parsed.error?.issues ?? []).toEqual([]);
      expect(env).toMatchObject({
        POWERTOOLS_SERVICE_NAME: `cdc-sync-${lane}`,
        POWERTOOLS_METRICS_NAMESPACE: 'cdc-sync',
        POWERTOOLS_LOG_LEVEL: 'DEBUG',
        NODE_OPTIONS: expect.stringMatching(/^--enable-source-maps --max-semi-space-size=(16|32|64)$/),
      });
    });

    it('passes each lane its PARK_AFTER_ATTEMPTS: the configured one, else the same default as the function’s', () => {
      const parkAfter = (env: SynthesizedEnvironment, lane: LaneName) =>
        (laneFunction(env, lane).Environment as { Variables: Record<string, unknown> }).Variables.PARK_AFTER_ATTEMPTS;
      // dev sets 3 (its mappings retry 3 times); staging leaves the default
      expect(LANE_NAMES.map((lane) => parkAfter(dev, lane))).toEqual(['3', '3', '3']);
      expect(parkAfter(staging, 'cache')).toBe(String(DEFAULT_PARK_AFTER_ATTEMPTS));
      expect(DEFAULT_PARK_AFTER_ATTEMPTS).toBe(FUNCTION_DEFAULT_PARK_AFTER_ATTEMPTS);
      expect(LaneEnvSchemas.cache.shape.PARK_AFTER_ATTEMPTS.parse(undefined)).toBe(DEFAULT_PARK_AFTER_ATTEMPTS);
    });

    it.each(LANE_NAMES)('gives the %s lane the signals queue and no Kafka signal channel', (lane) => {
      const variables = (laneFunction(dev, lane).Environment as { Variables: Record<string, unknown> }).Variables;
      expect(JSON.stringify(variables.SIGNAL_QUEUE_URL)).toMatch(/SignallerQueue/);
      expect(variables).not.toHaveProperty('SIGNAL_TOPICS');
      expect(variables).not.toHaveProperty('SIGNAL_BOOTSTRAP_SERVERS');
    });

    it('tells the lanes of an Avro source which Glue registry to decode with, and JSON-only lanes nothing', () => {
      for (const lane of LANE_NAMES) {
        const avro = (laneFunction(staging, lane).Environment as { Variables: Record<string, unknown> }).Variables;
        const parsed = AvroRegistrySchema.safeParse(JSON.parse(String(avro.AVRO_REGISTRY)));
        expect(parsed.data).toEqual({ kind: 'glue', registryName: 'cdc-sync-staging' });
        const json = (laneFunction(dev, lane).Environment as { Variables: Record<string, unknown> }).Variables;
        expect(json).not.toHaveProperty('AVRO_REGISTRY');
      }
    });

    it('passes the schema change policy: auto by default, per-table overrides from the configuration', () => {
      const policy = (env: SynthesizedEnvironment, lane: LaneName) =>
        JSON.parse(
          String(
            (laneFunction(env, lane).Environment as { Variables: Record<string, unknown> }).Variables
              .SCHEMA_CHANGE_POLICY,
          ),
        );
      expect(policy(dev, 'cache')).toEqual({ default: 'auto' });
      const prod = synthesize('prod');
      for (const lane of LANE_NAMES) {
        expect(policy(prod, lane)).toEqual({ default: 'auto', tables: { 'public.order_lines': 'alarm' } });
      }
    });

    it('tells the function whether partial batch responses are on, from the same setting as the mapping', () => {
      for (const lane of LANE_NAMES) {
        const variables = (laneFunction(dev, lane).Environment as { Variables: Record<string, unknown> }).Variables;
        const onMappings = mappingsOf(dev, lane).every((m) =>
          ((m.FunctionResponseTypes as string[] | undefined) ?? []).includes('ReportBatchItemFailures'),
        );
        expect(variables.REPORT_BATCH_ITEM_FAILURES).toBe(String(onMappings));
      }
    });

    it('points the cache lane at the Valkey endpoint over TLS in cluster mode', () => {
      const variables = (laneFunction(dev, 'cache').Environment as { Variables: Record<string, unknown> }).Variables;
      expect(render(variables.REDIS_URL)).toBe('rediss://<Fn::ImportValue>:<Fn::ImportValue>');
      expect(JSON.stringify(variables.REDIS_URL)).toMatch(/CacheEndpointAddress[\s\S]*CacheEndpointPort/);
      expect(variables.REDIS_CLUSTER).toBe('true');
    });

    it('puts only the cache lane in the cache client security group', () => {
      const groups = (lane: LaneName) =>
        JSON.stringify((laneFunction(dev, lane).VpcConfig as { SecurityGroupIds: unknown[] }).SecurityGroupIds);
      expect(groups('cache')).toContain('CacheClientSecurityGroup');
      expect(groups('warehouse')).not.toContain('CacheClientSecurityGroup');
      expect(groups('audit')).not.toContain('CacheClientSecurityGroup');
    });
  });

  describe('IAM', () => {
    it.each(LANE_NAMES)(
      'lets the %s lane read and conditionally write checkpoints and schema history, nothing more',
      (lane) => {
        const dynamo = statementsOfRole(dev.template('lanes'), roleOf(lane)).filter((s) =>
          s.actions.some((a) => a.startsWith('dynamodb:')),
        );
        expect(dynamo.flatMap((s) => s.actions).sort()).toEqual([
          'dynamodb:BatchGetItem',
          'dynamodb:GetItem',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
        ]);
      },
    );

    it('lets the audit lane put and read chain segments under its prefix, never delete', () => {
      const statements = statementsOfRole(dev.template('lanes'), roleOf('audit'));
      const s3 = statements.filter((s) => s.actions.some((a) => a.startsWith('s3:')));
      expect(s3.flatMap((s) => s.actions)).not.toContain('s3:DeleteObject');
      expect(s3).toContainEqual(
        expect.objectContaining({
          actions: ['s3:GetObject', 's3:PutObject'],
          resources: ['<Fn::ImportValue>/audit/*'],
        }),
      );
    });

    it('scopes the Kafka data-plane actions to the lane topics and consumer groups', () => {
      const statements = statementsOfRole(dev.template('lanes'), roleOf('cache'));
      const prefix = 'arn:aws:kafka:eu-west-1:111111111111';
      expect(statements).toContainEqual(
        expect.objectContaining({
          actions: ['kafka-cluster:DescribeTopic', 'kafka-cluster:ReadData'],
          resources: laneTopics(dev.config, 'cache')
            .map((t) => `${prefix}:topic/cdc-sync-dev/<Fn::Select>/${t.topicName}`)
            .sort(),
        }),
      );
      expect(statements).toContainEqual(
        expect.objectContaining({
          actions: ['kafka-cluster:AlterGroup', 'kafka-cluster:DescribeGroup'],
          resources: [`${prefix}:group/cdc-sync-dev/<Fn::Select>/cdc-dev-cache-*`],
        }),
      );
    });

    it.each(LANE_NAMES)(
      'lets the %s lane send to its DLQ and the signals queue only, and never write to Kafka',
      (lane) => {
        const sends = rawStatementsOfRole(staging, roleOf(lane)).filter((s) =>
          ([] as unknown[]).concat(s.Action).includes('sqs:SendMessage'),
        );
        const targets = sends.flatMap((s) => ([] as unknown[]).concat(s.Resource)).map((r) => JSON.stringify(r));
        expect(targets).toHaveLength(2);
        expect(targets.some((t) => /"SignallerQueue[0-9A-F]+","Arn"/.test(t))).toBe(true);
        expect(targets.some((t) => t.includes(`"${capitalised(lane)}DeadLetters`))).toBe(true);
        const actions = statementsOfRole(staging.template('lanes'), roleOf(lane)).flatMap((s) => s.actions);
        expect(actions).not.toContain('kafka-cluster:WriteData');
      },
    );

    it.each(LANE_NAMES)(
      'lets the %s lane of an Avro source read schema versions of the environment registry, nothing else in Glue',
      (lane) => {
        const glue = statementsOfRole(staging.template('lanes'), roleOf(lane)).filter((s) =>
          s.actions.some((a) => a.startsWith('glue:')),
        );
        expect(glue).toEqual([
          expect.objectContaining({
            actions: ['glue:GetSchemaVersion'],
            resources: ['arn:aws:glue:eu-west-1:222222222222:schema/cdc-sync-staging/*', '<Fn::ImportValue>'],
          }),
        ]);
        // The registry ARN is the streaming stack's registry.
        const raw = rawStatementsOfRole(staging, roleOf(lane)).filter((st) =>
          ([] as unknown[]).concat(st.Action).includes('glue:GetSchemaVersion'),
        );
        expect(JSON.stringify(raw)).toMatch(/SchemaRegistry/);
      },
    );

    it('gives lanes of JSON sources no Glue access at all', () => {
      for (const lane of LANE_NAMES) {
        const actions = statementsOfRole(dev.template('lanes'), roleOf(lane)).flatMap((s) => s.actions);
        expect(actions.filter((a) => a.startsWith('glue:'))).toEqual([]);
      }
    });

    it('writes on-failure batches with put-only access, not the read-write grant of S3OnFailureDestination', () => {
      const actions = statementsOfRole(dev.template('lanes'), roleOf('warehouse')).flatMap((s) => s.actions);
      expect(actions.filter((a) => a.startsWith('s3:')).sort()).toEqual(['s3:ListBucket', 's3:PutObject']);
    });

    it.each(LANE_NAMES)(
      "lets the %s lane write the failure bucket only under Lambda's on-failure prefix and its own dead-letter prefix",
      (lane) => {
        // The raw statements: which resource is the failure bucket shows in the import name.
        const puts = rawStatementsOfRole(dev, roleOf(lane))
          .filter((st) => ([] as unknown[]).concat(st.Action).includes('s3:PutObject'))
          .flatMap((st) => ([] as unknown[]).concat(st.Resource))
          .map((resource) => JSON.stringify(resource))
          .filter((resource) => resource.includes('FailuresBucket'));
        const suffixes = puts.map((resource) => (/"(\/[^"]*)"\]\]\}$/.exec(resource) ?? [])[1]).sort();
        expect(suffixes).toEqual(['/aws/lambda/*', `/dead-letters/${lane}/*`]);
        const list = rawStatementsOfRole(dev, roleOf(lane)).find(
          (st) => st.Action === 's3:ListBucket' && JSON.stringify(st.Resource).includes('FailuresBucket'),
        ) as { Condition?: unknown } | undefined;
        expect(list?.Condition).toEqual({ StringLike: { 's3:prefix': ['aws/lambda/*'] } });
      },
    );

    it('uses every customer managed key only through the service that stores the data (kms:ViaService)', () => {
      for (const env of [dev, staging]) {
        const template = env.template('lanes');
        const kms = resourcesOf(template, 'AWS::IAM::Policy').flatMap(([, p]) =>
          (
            (p.Properties?.PolicyDocument as { Statement?: Array<Record<string, unknown>> } | undefined)?.Statement ??
            []
          ).filter((st) => ([] as unknown[]).concat(st.Action).some((a) => String(a).startsWith('kms:'))),
        );
        expect(kms.length).toBeGreaterThan(0);
        for (const statement of kms) {
          expect(statement.Condition).toEqual({
            StringEquals: {
              'kms:ViaService': expect.stringMatching(/^(dynamodb|sqs|s3|secretsmanager)\.eu-west-1\.amazonaws\.com$/),
            },
          });
        }
      }
    });
  });
  describe('signaller', () => {
    const signallerRole = /^SignallerFunctionServiceRole/;

    it('keeps signals in a KMS-encrypted FIFO queue deduplicated by the sender, with a FIFO dead-letter queue', () => {
      const template = dev.template('lanes');
      template.hasResourceProperties('AWS::SQS::Queue', {
        QueueName: 'cdc-sync-dev-signals.fifo',
        FifoQueue: true,
        ContentBasedDeduplication: false,
        KmsMasterKeyId: Match.anyValue(),
        // Six times the function's 30 s timeout.
        VisibilityTimeout: 180,
        RedrivePolicy: {
          deadLetterTargetArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^SignallerDeadLetters'), 'Arn'] },
          maxReceiveCount: 5,
        },
      });
      template.hasResourceProperties('AWS::SQS::Queue', {
        QueueName: 'cdc-sync-dev-signal-dead-letters.fifo',
        FifoQueue: true,
        MessageRetentionPeriod: 14 * 24 * 3600,
        KmsMasterKeyId: Match.anyValue(),
      });
    });

    it('consumes the queue with partial batch responses', () => {
      const sqsMappings = resourcesOf(dev.template('lanes'), 'AWS::Lambda::EventSourceMapping')
        .map(([, r]) => r.Properties ?? {})
        .filter((m) => m.AmazonManagedKafkaEventSourceConfig === undefined);
      expect(sqsMappings).toHaveLength(1);
      expect(sqsMappings[0]).toMatchObject({
        BatchSize: 10,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        EventSourceArn: { 'Fn::GetAtt': [expect.stringMatching(/^SignallerQueue/), 'Arn'] },
        FunctionName: { Ref: expect.stringMatching(/^SignallerFunction/) },
      });
    });

    it("gets every source's signal topic and the cluster's IAM brokers, as the function parses them", () => {
      const variables = (laneFunction(dev, 'signaller').Environment as { Variables: Record<string, unknown> })
        .Variables;
      expect(JSON.parse(String(variables.SIGNAL_TOPICS))).toEqual({
        orders: 'orders.signals',
        inventory: 'inventory.signals',
      });
      // The streaming stack's GetBootstrapBrokers (BootstrapBrokerStringSaslIam), imported.
      expect(render(variables.SIGNAL_BOOTSTRAP_SERVERS)).toBe('<Fn::ImportValue>');
      expect(JSON.stringify(variables.SIGNAL_BOOTSTRAP_SERVERS)).toMatch(/BootstrapBrokers/);
      const parsed = SignallerEnvSchema.safeParse({
        ...variables,
        SIGNAL_BOOTSTRAP_SERVERS: 'b-1.cdc.abc.c2.kafka.eu-west-1.amazonaws.com:9098',
      });
      expect(parsed.error?.issues ?? []).toEqual([]);
    });

    it('runs in the VPC with the signaller security group, on nodejs22.x arm64 with tracing', () => {
      const fn = laneFunction(dev, 'signaller');
      expect(fn).toMatchObject({ Runtime: 'nodejs22.x', Architectures: ['arm64'], TracingConfig: { Mode: 'Active' } });
      expect(JSON.stringify((fn.VpcConfig as { SecurityGroupIds: unknown[] }).SecurityGroupIds)).toContain(
        'SignallerSecurityGroup',
      );
    });

    it('may produce to exactly the signal topics, and connect to the cluster, nothing else in Kafka', () => {
      const statements = statementsOfRole(staging.template('lanes'), signallerRole);
      const prefix = 'arn:aws:kafka:eu-west-1:222222222222';
      expect(statements).toContainEqual(
        expect.objectContaining({
          actions: ['kafka-cluster:DescribeTopic', 'kafka-cluster:WriteData'],
          resources: [
            `${prefix}:topic/cdc-sync-staging/<Fn::Select>/inventory.signals`,
            `${prefix}:topic/cdc-sync-staging/<Fn::Select>/orders.signals`,
          ],
        }),
      );
      const kafka = statements.flatMap((s) => s.actions).filter((a) => a.startsWith('kafka'));
      expect(kafka.sort()).toEqual(['kafka-cluster:Connect', 'kafka-cluster:DescribeTopic', 'kafka-cluster:WriteData']);
      const writes = statements.filter((s) => s.actions.includes('kafka-cluster:WriteData'));
      expect(writes.flatMap((s) => s.resources).every((r) => r.endsWith('.signals'))).toBe(true);
    });

    it('may not send to its own queue (only consume it)', () => {
      const actions = statementsOfRole(dev.template('lanes'), signallerRole).flatMap((s) => s.actions);
      expect(actions).toContain('sqs:ReceiveMessage');
      expect(actions).toContain('sqs:DeleteMessage');
      expect(actions).not.toContain('sqs:SendMessage');
    });
  });
});
