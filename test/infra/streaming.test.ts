import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { type EnvironmentConfig, environmentConfig } from '../../lib/config';
import { throwawayDir } from '../support/scratch';
import {
  type Mutable,
  render,
  resourcesOf,
  type SynthesizedEnvironment,
  statementsOfRole,
  synthesize,
  variant,
} from './support';

/** The connector custom resource's Spec, with CloudFormation intrinsics replaced by placeholders, parsed. */
function connectorSpecs(env: SynthesizedEnvironment): Array<Record<string, unknown>> {
  return resourcesOf(env.template('streaming'), 'Custom::MskConnectConnector').map(([, r]) => {
    const { Spec } = r.Properties as { Spec: { 'Fn::Join': [string, unknown[]] } };
    const join = Spec['Fn::Join'];
    const text = join[1].map((part) => (typeof part === 'string' ? part : '"<token>"')).join('');
    // Numeric tokens (revisions) render unquoted; the placeholder above quotes them, undo the doubled quotes.
    return JSON.parse(text.replaceAll('""<token>""', '"<token>"')) as Record<string, unknown>;
  });
}

/** The connectorConfiguration of the connector of that name (its Spec as connectorSpecs parses it). */
function connectorConfig(env: SynthesizedEnvironment, connectorName: string): Record<string, string> {
  const spec = connectorSpecs(env).find((s) => s.connectorName === connectorName);
  if (spec === undefined) throw new Error(`no connector ${connectorName}`);
  return spec.connectorConfiguration as Record<string, string>;
}

/** The environment synthesized from its configuration with a change. */
function synthesizeVariant(name: string, change: (draft: Mutable<EnvironmentConfig>) => void): SynthesizedEnvironment {
  return synthesize(variant(environmentConfig(name), change));
}

type DraftSource = Mutable<EnvironmentConfig>['sources'][number];

/** A draft's source by position, checked to be of the engine whose settings the caller changes. */
function sourceOf<E extends DraftSource['engine']>(
  draft: Mutable<EnvironmentConfig>,
  index: number,
  engine?: E,
): DraftSource & { engine: E } {
  const source = draft.sources[index];
  if (source === undefined || (engine !== undefined && source.engine !== engine)) {
    throw new Error(`source ${index} is ${source?.engine ?? 'missing'}, not ${engine}`);
  }
  return source as DraftSource & { engine: E };
}

/** The names of the AWS::MSK::Topic resources of the streaming stack. */
function mskTopics(env: SynthesizedEnvironment): unknown[] {
  return resourcesOf(env.template('streaming'), 'AWS::MSK::Topic').map(([, r]) => r.Properties?.TopicName);
}

/** The topic each event source mapping of the lanes reads (undefined for the signaller's SQS mapping). */
function mappedTopics(env: SynthesizedEnvironment): Array<string | undefined> {
  return resourcesOf(env.template('lanes'), 'AWS::Lambda::EventSourceMapping').map(
    ([, r]) => (r.Properties as { Topics?: string[] }).Topics?.[0],
  );
}

/** The Kafka Connect worker configuration's properties file. */
function workerProperties(env: SynthesizedEnvironment): string {
  const [[, worker] = ['', {}]] = resourcesOf(env.template('streaming'), 'AWS::KafkaConnect::WorkerConfiguration');
  return (worker.Properties as { PropertiesFileContent: { 'Fn::Base64': string } }).PropertiesFileContent['Fn::Base64'];
}

describe('streaming stack', () => {
  let dev: SynthesizedEnvironment;
  let prod: SynthesizedEnvironment;
  beforeAll(() => {
    dev = synthesize('dev');
    prod = synthesize('prod');
  });

  describe('MSK provisioned', () => {
    it('spreads the brokers over the three private subnets with the configured size', () => {
      dev.template('streaming').hasResourceProperties('AWS::MSK::Cluster', {
        ClusterName: 'cdc-sync-dev',
        NumberOfBrokerNodes: 3,
        BrokerNodeGroupInfo: {
          InstanceType: 'kafka.t3.small',
          ClientSubnets: [Match.anyValue(), Match.anyValue(), Match.anyValue()],
          StorageInfo: { EBSStorageInfo: { VolumeSize: 20 } },
        },
      });
      prod.template('streaming').hasResourceProperties('AWS::MSK::Cluster', {
        NumberOfBrokerNodes: 6,
        BrokerNodeGroupInfo: Match.objectLike({ InstanceType: 'kafka.m7g.large' }),
      });
    });

    it('accepts IAM-authenticated clients only, over TLS, and encrypts at rest with KMS', () => {
      dev.template('streaming').hasResourceProperties('AWS::MSK::Cluster', {
        ClientAuthentication: { Sasl: { Iam: { Enabled: true } }, Unauthenticated: { Enabled: false } },
        EncryptionInfo: {
          EncryptionAtRest: { DataVolumeKMSKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^MskKey'), 'Arn'] } },
          EncryptionInTransit: { ClientBroker: 'TLS', InCluster: true },
        },
      });
    });

    it('monitors per topic and partition and ships broker logs to CloudWatch', () => {
      dev.template('streaming').hasResourceProperties('AWS::MSK::Cluster', {
        EnhancedMonitoring: 'PER_TOPIC_PER_PARTITION',
        LoggingInfo: { BrokerLogs: { CloudWatchLogs: { Enabled: true, LogGroup: Match.anyValue() } } },
      });
    });

    it('configures replication factor 3, min.insync.replicas 2 and the environment retention', () => {
      const [[, configuration] = ['', {}]] = resourcesOf(dev.template('streaming'), 'AWS::MSK::Configuration');
      const properties = String(configuration.Properties?.ServerProperties).split('\n');
      expect(properties).toEqual(
        expect.arrayContaining([
          'default.replication.factor=3',
          'min.insync.replicas=2',
          'log.retention.hours=72',
          'auto.create.topics.enable=false',
        ]),
      );
    });

    it('grows broker storage automatically (target tracking on disk use, never shrinking) up to the ceiling', () => {
      const template = prod.template('streaming');
      template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
        ServiceNamespace: 'kafka',
        ScalableDimension: 'kafka:broker-storage:VolumeSize',
        ResourceId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^MskCluster'), 'Arn'] },
        MinCapacity: 1000,
        MaxCapacity: 4000,
      });
      template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
        PolicyType: 'TargetTrackingScaling',
        TargetTrackingScalingPolicyConfiguration: {
          PredefinedMetricSpecification: { PredefinedMetricType: 'KafkaBrokerStorageUtilization' },
          TargetValue: 60,
          DisableScaleIn: true,
        },
      });
      const fixed = synthesizeVariant('dev', (d) => {
        if (d.msk.mode === 'provisioned') d.msk.maxEbsVolumeGiB = d.msk.ebsVolumeGiB;
      });
      fixed.template('streaming').resourceCountIs('AWS::ApplicationAutoScaling::ScalableTarget', 0);
    });

    it('creates one topic per captured table with the configured partitions (AWS::MSK::Topic)', () => {
      const template = dev.template('streaming');
      // 3 tables, MySQL's schema-change topic, a catch-all, a heartbeat-table, a signal and a notification topic per
      // source.
      template.resourceCountIs('AWS::MSK::Topic', 3 + 1 + 4 * 2);
      template.hasResourceProperties('AWS::MSK::Topic', {
        TopicName: 'orders.public.orders',
        PartitionCount: 3,
        ReplicationFactor: 3,
      });
      prod.template('streaming').hasResourceProperties('AWS::MSK::Topic', {
        TopicName: 'billing.Billing.dbo.invoices',
        PartitionCount: 6,
      });
    });

    it.each([
      'orders.signals',
      'orders.notifications',
      'inventory.signals',
      'inventory.notifications',
      'inventory',
      'orders.public.cdc_heartbeat',
      'inventory.inventory.cdc_heartbeat',
    ])('creates the single-partition topic %s before the connector starts', (topic) => {
      dev.template('streaming').hasResourceProperties('AWS::MSK::Topic', {
        TopicName: topic,
        PartitionCount: 1,
        ReplicationFactor: 3,
      });
    });

    it('does not create a topic Kafka Connect already created for a table of a captured schema', () => {
      const withNewTable = synthesizeVariant('dev', (d) => {
        d.sources[0]?.tables.push({ name: 'public.refunds', partitions: 1, existingTopic: true });
      });
      expect(mskTopics(withNewTable)).not.toContain('orders.public.refunds');
      // The lanes still subscribe to it.
      expect(mappedTopics(withNewTable).filter((t) => t === 'orders.public.refunds')).toHaveLength(3);
    });
  });

  describe('tables not listed in the configuration (catch-all topic)', () => {
    /** The connector's routing regex as Java's `Matcher.matches()` applies it: to the whole topic name. */
    function router(env: SynthesizedEnvironment, connector: string) {
      const config = connectorConfig(env, connector);
      const pattern = new RegExp(`^(?:${config['transforms.unlisted.regex']})$`);
      return { config, routes: (topic: string) => pattern.test(topic) };
    }

    it('routes with Kafka RegexRouter into <prefix>.unlisted, leaving keys and schemas as they are', () => {
      const { config } = router(dev, 'cdc-sync-dev-orders');
      expect(config).toMatchObject({
        transforms: 'unlisted',
        'transforms.unlisted.type': 'org.apache.kafka.connect.transforms.RegexRouter',
        'transforms.unlisted.replacement': 'orders.unlisted',
      });
      // No `$` group reference: the replacement is the literal topic name.
      expect(config['transforms.unlisted.replacement']).not.toContain('$');
    });

    it.each([
      ['dev', 'cdc-sync-dev-orders', 'orders.public.refunds'],
      ['dev', 'cdc-sync-dev-inventory', 'inventory.inventory.suppliers'],
      ['prod', 'cdc-sync-prod-billing', 'billing.Billing.dbo.credit_notes'],
    ])('in %s, %s routes a table created later (%s)', (envName, connector, topic) => {
      const { routes } = router(envName === 'dev' ? dev : prod, connector);
      expect(routes(topic)).toBe(true);
    });

    it.each([
      // Listed tables keep their own topic.
      ['dev', 'cdc-sync-dev-orders', 'orders.public.orders'],
      ['dev', 'cdc-sync-dev-orders', 'orders.public.order_lines'],
      ['dev', 'cdc-sync-dev-inventory', 'inventory.inventory.stock'],
      ['prod', 'cdc-sync-prod-billing', 'billing.Billing.dbo.invoices'],
      // The signalling table's watermark rows are not data.
      ['dev', 'cdc-sync-dev-orders', 'orders.public.debezium_signal'],
      ['prod', 'cdc-sync-prod-billing', 'billing.Billing.dbo.debezium_signal'],
      // The heartbeat table has its own topic, which every lane reads.
      ['dev', 'cdc-sync-dev-orders', 'orders.public.cdc_heartbeat'],
      ['dev', 'cdc-sync-dev-inventory', 'inventory.inventory.cdc_heartbeat'],
      ['prod', 'cdc-sync-prod-billing', 'billing.Billing.dbo.cdc_heartbeat'],
      // The connector's other topics.
      ['dev', 'cdc-sync-dev-orders', 'orders.transaction'],
      ['dev', 'cdc-sync-dev-orders', 'orders.notifications'],
      ['dev', 'cdc-sync-dev-orders', 'orders.unlisted'],
      ['dev', 'cdc-sync-dev-orders', '__debezium-heartbeat.orders'],
      ['dev', 'cdc-sync-dev-inventory', 'inventory'],
      // Another source's tables, and a listed name as a prefix of a longer one is still unlisted (anchored).
      ['dev', 'cdc-sync-dev-orders', 'inventory.inventory.suppliers'],
      ['prod', 'cdc-sync-prod-billing', 'billing.Other.dbo.invoices'],
    ])('in %s, %s leaves %s alone', (envName, connector, topic) => {
      const { routes } = router(envName === 'dev' ? dev : prod, connector);
      expect(routes(topic)).toBe(false);
    });

    it('treats a listed name as a whole name, not a prefix of a longer table name', () => {
      const { routes } = router(dev, 'cdc-sync-dev-orders');
      expect(routes('orders.public.orders_archive')).toBe(true);
      expect(routes('orders.public.xorders')).toBe(true);
    });

    it('escapes regex characters of the names it lists', () => {
      const dotted = synthesizeVariant('dev', (d) => {
        d.sources[0]?.tables.push({ name: 'public.a+b', partitions: 1 });
      });
      const { routes } = router(dotted, 'cdc-sync-dev-orders');
      expect(routes('orders.public.a+b')).toBe(false);
      expect(routes('orders.public.aab')).toBe(true);
    });

    it('creates each catch-all topic as code with the configured partitions (default 3)', () => {
      dev.template('streaming').hasResourceProperties('AWS::MSK::Topic', {
        TopicName: 'orders.unlisted',
        PartitionCount: 3,
      });
      const wider = synthesizeVariant('dev', (d) => {
        (d.sources[1] as { unlistedTopicPartitions?: number }).unlistedTopicPartitions = 12;
      });
      wider.template('streaming').hasResourceProperties('AWS::MSK::Topic', {
        TopicName: 'inventory.unlisted',
        PartitionCount: 12,
      });
    });
  });

  describe('MSK Serverless option', () => {
    let serverless: SynthesizedEnvironment;
    beforeAll(() => {
      serverless = synthesizeVariant('dev', (d) => {
        d.msk = { mode: 'serverless', retentionHours: 48 };
      });
    });

    it('creates a serverless cluster with IAM auth instead of brokers', () => {
      const template = serverless.template('streaming');
      template.resourceCountIs('AWS::MSK::Cluster', 0);
      template.hasResourceProperties('AWS::MSK::ServerlessCluster', {
        ClusterName: 'cdc-sync-dev',
        ClientAuthentication: { Sasl: { Iam: { Enabled: true } } },
      });
    });

    it('creates the topics with a custom resource, since MSK Serverless has no topic API', () => {
      const template = serverless.template('streaming');
      template.resourceCountIs('AWS::MSK::Topic', 0);
      template.hasResourceProperties('Custom::MskServerlessTopics', {
        Topics: JSON.stringify([
          { name: 'orders.public.orders', partitions: 3 },
          { name: 'orders.public.order_lines', partitions: 3 },
          { name: 'orders.unlisted', partitions: 3 },
          { name: 'orders.public.cdc_heartbeat', partitions: 1 },
          { name: 'orders.signals', partitions: 1 },
          { name: 'orders.notifications', partitions: 1 },
          { name: 'inventory.inventory.stock', partitions: 3 },
          { name: 'inventory.unlisted', partitions: 3 },
          { name: 'inventory.inventory.cdc_heartbeat', partitions: 1 },
          { name: 'inventory', partitions: 1 },
          { name: 'inventory.signals', partitions: 1 },
          { name: 'inventory.notifications', partitions: 1 },
        ]),
        RetentionMs: String(48 * 3_600_000),
        DeleteTopicsOnDelete: 'true',
      });
    });

    it('runs the topic admin function in the VPC', () => {
      serverless.template('streaming').hasResourceProperties('AWS::Lambda::Function', {
        Handler: 'index.onEvent',
        Description: Match.stringLikeRegexp('MSK Serverless'),
        VpcConfig: { SecurityGroupIds: [Match.anyValue()], SubnetIds: Match.anyValue() },
      });
    });
  });

  describe('MSK Connect and Debezium', () => {
    /** The dev orders connector's configuration when that source lists its tables instead of capturing its schema. */
    function listedOrdersConfig(change: (orders: DraftSource & { engine: 'postgresql' }) => void) {
      const listed = synthesizeVariant('dev', (d) => {
        const orders = sourceOf(d, 0, 'postgresql');
        orders.captureSchemas = undefined;
        orders.publicationAutocreateMode = 'filtered';
        change(orders);
      });
      return connectorConfig(listed, 'cdc-sync-dev-orders');
    }

    it('runs one connector per source through the in-place-updating custom resource', () => {
      dev.template('streaming').resourceCountIs('Custom::MskConnectConnector', dev.config.sources.length);
      prod.template('streaming').resourceCountIs('Custom::MskConnectConnector', 3);
    });

    it('configures PostgreSQL with pgoutput, its slot, publication and heartbeat', () => {
      expect(connectorConfig(dev, 'cdc-sync-dev-orders')).toMatchObject({
        'connector.class': 'io.debezium.connector.postgresql.PostgresConnector',
        'plugin.name': 'pgoutput',
        'slot.name': 'cdc_sync_dev_orders',
        'publication.name': 'cdc_sync_dev_orders',
        'heartbeat.interval.ms': '10000',
        'topic.prefix': 'orders',
        'tombstones.on.delete': 'true',
        'provide.transaction.metadata': 'true',
        'tasks.max': '1',
      });
    });

    it('captures new tables of the captured schemas from their first row, through a DBA-made publication', () => {
      expect(connectorConfig(dev, 'cdc-sync-dev-orders')).toMatchObject({
        'publication.autocreate.mode': 'disabled',
        // The whole schema (the signal table is in it); listed tables outside it would follow as literals.
        'table.include.list': 'public\\..*',
      });
      expect(connectorConfig(dev, 'cdc-sync-dev-inventory')).toMatchObject({ 'table.include.list': 'inventory\\..*' });
    });

    it('lists the signal table and the tables literally when no schema is captured whole', () => {
      const config = listedOrdersConfig((orders) => {
        orders.signalTable = 'cdc_sync.signal';
      });
      expect(config).toMatchObject({
        // The heartbeat table defaults to the signal table's schema.
        'table.include.list': 'public\\.orders,public\\.order_lines,cdc_sync\\.signal,cdc_sync\\.cdc_heartbeat',
        'signal.data.collection': 'cdc_sync.signal',
      });
    });

    it.each([
      ['cdc-sync-dev-orders', 'orders', 'public.debezium_signal'],
      ['cdc-sync-dev-inventory', 'inventory', 'inventory.debezium_signal'],
    ])(
      'configures %s for signals (source + IAM-authenticated Kafka channel) and notifications',
      (name, prefix, table) => {
        expect(connectorConfig(dev, name)).toMatchObject({
          'signal.enabled.channels': 'source,kafka',
          'signal.data.collection': table,
          'signal.kafka.topic': `${prefix}.signals`,
          'signal.kafka.groupId': `${name}-signals`,
          'signal.kafka.bootstrap.servers': '<token>',
          'signal.consumer.security.protocol': 'SASL_SSL',
          'signal.consumer.sasl.mechanism': 'AWS_MSK_IAM',
          'signal.consumer.sasl.jaas.config': 'software.amazon.msk.auth.iam.IAMLoginModule required;',
          'signal.consumer.sasl.client.callback.handler.class': 'software.amazon.msk.auth.iam.IAMClientCallbackHandler',
          'incremental.snapshot.chunk.size': '1024',
          'notification.enabled.channels': 'sink',
          'notification.sink.topic.name': `${prefix}.notifications`,
        });
      },
    );

    it('names the SQL Server signal table with its database and publishes schema changes', () => {
      expect(connectorConfig(prod, 'cdc-sync-prod-billing')).toMatchObject({
        'signal.data.collection': 'Billing.dbo.debezium_signal',
        'include.schema.changes': 'true',
      });
    });

    it('publishes where the backfill command finds the signal topics and brokers (SSM)', () => {
      const template = prod.template('streaming');
      const [[, parameter] = ['', {}]] = resourcesOf(template, 'AWS::SSM::Parameter');
      expect(parameter.Properties).toMatchObject({ Name: '/cdc-sync/prod/signalling', Type: 'String' });
      const { Value } = parameter.Properties as { Value: { 'Fn::Join': [string, unknown[]] } };
      const value = Value['Fn::Join'][1].map((part) => (typeof part === 'string' ? part : '<brokers>')).join('');
      expect(JSON.parse(value)).toEqual({
        bootstrapServers: '<brokers>',
        sources: [
          {
            name: 'orders',
            engine: 'postgresql',
            topicPrefix: 'orders',
            signalTopic: 'orders.signals',
            notificationTopic: 'orders.notifications',
          },
          {
            name: 'inventory',
            engine: 'mysql',
            topicPrefix: 'inventory',
            signalTopic: 'inventory.signals',
            notificationTopic: 'inventory.notifications',
          },
          {
            name: 'billing',
            engine: 'sqlserver',
            topicPrefix: 'billing',
            database: 'Billing',
            signalTopic: 'billing.signals',
            notificationTopic: 'billing.notifications',
          },
        ],
      });
    });

    it('configures MySQL with its server id and an IAM-authenticated schema history topic', () => {
      expect(connectorConfig(dev, 'cdc-sync-dev-inventory')).toMatchObject({
        'connector.class': 'io.debezium.connector.mysql.MySqlConnector',
        'database.server.id': '184054',
        'database.include.list': 'inventory',
        'schema.history.internal.kafka.topic': '__cdc-sync.schema-history.inventory',
        'schema.history.internal.kafka.bootstrap.servers': '<token>',
        'schema.history.internal.producer.security.protocol': 'SASL_SSL',
        'schema.history.internal.producer.sasl.mechanism': 'AWS_MSK_IAM',
        'schema.history.internal.consumer.sasl.client.callback.handler.class':
          'software.amazon.msk.auth.iam.IAMClientCallbackHandler',
      });
    });

    it('configures SQL Server with its database', () => {
      expect(connectorConfig(prod, 'cdc-sync-prod-billing')).toMatchObject({
        'connector.class': 'io.debezium.connector.sqlserver.SqlServerConnector',
        'database.names': 'Billing',
        // The signal and heartbeat tables must be captured too (their CDC tables enabled by the DBA).
        'table.include.list': 'dbo\\.invoices,dbo\\.debezium_signal,dbo\\.cdc_heartbeat',
        'schema.history.internal.kafka.topic': '__cdc-sync.schema-history.billing',
      });
    });

    it('reads database credentials through the Secrets Manager config provider, never inline', () => {
      for (const spec of connectorSpecs(dev)) {
        const config = spec.connectorConfiguration as Record<string, string>;
        expect(config['database.user']).toMatch(/^\$\{secretsmanager:cdc-sync\/dev\/[a-z-]+:username\}$/);
        expect(config['database.password']).toMatch(/^\$\{secretsmanager:cdc-sync\/dev\/[a-z-]+:password\}$/);
      }
    });

    it("uses the Glue Avro converter for a source whose format is avro, with the environment's compatibility", () => {
      const staging = synthesize('staging');
      expect(connectorConfig(staging, 'cdc-sync-staging-inventory')).toMatchObject({
        'value.converter': 'com.amazonaws.services.schemaregistry.kafkaconnect.AWSKafkaAvroConverter',
        'value.converter.registry.name': 'cdc-sync-staging',
        'value.converter.compatibility': 'BACKWARD',
        'value.converter.schemaAutoRegistrationEnabled': 'true',
      });
      staging.template('streaming').hasResourceProperties('AWS::Glue::Registry', { Name: 'cdc-sync-staging' });
    });

    it('keeps Avro key schemas out of the registry, so a key and a value never share a schema name', () => {
      // The Glue converter names both a topic's key and value schema after the topic: a key converter writing to
      // the registry would make them one schema. Keys are JsonConverter JSON instead.
      const staging = synthesize('staging');
      const config = connectorConfig(staging, 'cdc-sync-staging-inventory');
      expect(config['key.converter']).toBe('org.apache.kafka.connect.json.JsonConverter');
      expect(config['key.converter.schemas.enable']).toBe('true');
      expect(
        Object.keys(config).filter((k) => k.startsWith('key.converter.') && /registry|schemaName/i.test(k)),
      ).toEqual([]);
      // Only the value converter registers, and neither side pins one schema name for every table.
      expect(config['value.converter.schemaName']).toBeUndefined();
      expect(config['value.converter.schemaNameGenerationClass']).toBeUndefined();
    });

    it("creates the Avro catch-all topic's value schema with compatibility NONE (it holds unrelated tables)", () => {
      const staging = synthesize('staging');
      const template = staging.template('streaming');
      template.resourceCountIs('AWS::Glue::Schema', 1);
      template.hasResourceProperties('AWS::Glue::Schema', {
        Name: 'inventory.unlisted',
        DataFormat: 'AVRO',
        Compatibility: 'NONE',
        Registry: { Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^SchemaRegistry'), 'Arn'] } },
      });
      // The connector registers versions under it, so it must exist first.
      const connector = resourcesOf(template, 'Custom::MskConnectConnector').find(([, r]) =>
        JSON.stringify(r.Properties).includes('cdc-sync-staging-inventory'),
      )?.[1] as { DependsOn?: string[] } | undefined;
      const schemaId = resourcesOf(template, 'AWS::Glue::Schema')[0]?.[0];
      expect(connector?.DependsOn).toContain(schemaId);
      // JSON sources register nothing.
      dev.template('streaming').resourceCountIs('AWS::Glue::Schema', 0);
    });

    it('gives every connector provisioned capacity with one worker, IAM auth and TLS to the cluster', () => {
      for (const spec of connectorSpecs(dev)) {
        expect(spec).toMatchObject({
          capacity: { provisionedCapacity: { workerCount: 1, mcuCount: 1 } },
          kafkaConnectVersion: '3.7.x',
          kafkaClusterClientAuthentication: { authenticationType: 'IAM' },
          kafkaClusterEncryptionInTransit: { encryptionType: 'TLS' },
          logDelivery: { workerLogDelivery: { cloudWatchLogs: { enabled: true } } },
        });
      }
    });

    it('configures workers with JsonConverter schemas, the config provider and a named offsets topic', () => {
      expect(workerProperties(dev).split('\n')).toEqual(
        expect.arrayContaining([
          'value.converter=org.apache.kafka.connect.json.JsonConverter',
          'value.converter.schemas.enable=true',
          'config.providers=secretsmanager',
          'config.providers.secretsmanager.class=com.amazonaws.kafka.config.providers.SecretsManagerConfigProvider',
          'offset.storage.topic=__cdc-sync-dev-connect-offsets',
        ]),
      );
    });

    it('sends connector logs to CloudWatch', () => {
      dev.template('streaming').hasResourceProperties('AWS::Logs::LogGroup', {
        LogGroupName: '/aws/mskconnect/cdc-sync-dev',
        RetentionInDays: 14,
      });
    });

    it('takes the Debezium plugin from the configured S3 location', () => {
      dev.template('streaming').hasResourceProperties('AWS::KafkaConnect::CustomPlugin', {
        ContentType: 'ZIP',
        Location: {
          S3Location: {
            BucketArn: 'arn:aws:s3:::cdc-sync-artifacts-111111111111',
            FileKey: 'debezium/cdc-sync-debezium-plugin-2.7.4.zip',
          },
        },
      });
    });

    it('can take the Debezium plugin from a local archive uploaded as an asset', () => {
      const dir = throwawayDir('plugin-');
      const archive = join(dir, 'debezium.zip');
      writeFileSync(archive, 'PK\u0005\u0006'.padEnd(22, '\u0000'));
      const withAsset = synthesizeVariant('dev', (d) => {
        d.connect.plugin = { kind: 'asset', path: archive };
      });
      withAsset.template('streaming').hasResourceProperties('AWS::KafkaConnect::CustomPlugin', {
        Location: {
          S3Location: {
            BucketArn: Match.anyValue(),
            FileKey: Match.stringLikeRegexp('^[0-9a-f]{64}\\.zip$'),
          },
        },
      });
    });

    it('gives up on a connector step before CloudFormation gives up on the custom resource (one hour)', () => {
      const template = dev.template('streaming');
      for (const [, connector] of resourcesOf(template, 'Custom::MskConnectConnector')) {
        expect(Number(connector.Properties?.ServiceTimeout)).toBe(3600);
      }
      const [[, waiter] = ['', {}]] = resourcesOf(template, 'AWS::StepFunctions::StateMachine');
      const definition = render(waiter.Properties?.DefinitionString);
      const retry = /"IntervalSeconds":(\d+),"MaxAttempts":(\d+)/.exec(definition);
      const waitSeconds = Number(retry?.[1]) * Number(retry?.[2]);
      // Every poll also takes the handler's run time: leave a quarter of an hour for it.
      expect(waitSeconds).toBeGreaterThan(0);
      expect(waitSeconds).toBeLessThanOrEqual(3600 - 15 * 60);
    });

    it('records which request owns each connector in a table both handlers use', () => {
      const template = dev.template('streaming');
      template.hasResourceProperties('AWS::DynamoDB::Table', {
        KeySchema: [{ AttributeName: 'connector', KeyType: 'HASH' }],
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      });
      for (const handler of ['onEvent', 'isComplete']) {
        template.hasResourceProperties('AWS::Lambda::Function', {
          Handler: `index.${handler}`,
          Environment: { Variables: Match.objectLike({ CONNECTOR_REQUESTS_TABLE: Match.anyValue() }) },
        });
      }
    });

    it('lets the connector handler manage exactly the connectors and roles of this environment', () => {
      const statements = statementsOfRole(dev.template('streaming'), /ConnectorIsComplete/);
      const connectors = 'arn:aws:kafkaconnect:eu-west-1:111111111111:connector/';
      expect(statements.find((st) => st.sid === 'ManageOwnConnectors')?.resources.sort()).toEqual([
        `${connectors}cdc-sync-dev-inventory/*`,
        `${connectors}cdc-sync-dev-orders/*`,
      ]);
      expect(statements.find((st) => st.sid === 'ReadOwnConnectorOperations')).toMatchObject({
        actions: ['kafkaconnect:DescribeConnectorOperation'],
        resources: [
          'arn:aws:kafkaconnect:eu-west-1:111111111111:connector-operation/cdc-sync-dev-inventory/*/*',
          'arn:aws:kafkaconnect:eu-west-1:111111111111:connector-operation/cdc-sync-dev-orders/*/*',
        ],
      });
      // CreateConnector has no resource-level permissions: a statement scoped to ARNs would deny it.
      expect(statements.find((st) => st.actions.includes('kafkaconnect:CreateConnector'))?.resources).toEqual(['*']);
      expect(statements.find((st) => st.sid === 'PassConnectorRoles')?.resources).toEqual([
        '<Fn::GetAtt>',
        '<Fn::GetAtt>',
      ]);
    });

    it.each([
      [
        'cdc-sync-prod-orders',
        'INSERT INTO public.cdc_heartbeat (id, ts) VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET ts = EXCLUDED.ts',
      ],
      [
        'cdc-sync-prod-inventory',
        'INSERT INTO inventory.cdc_heartbeat (id, ts) VALUES (1, UTC_TIMESTAMP(3)) ON DUPLICATE KEY UPDATE ts = UTC_TIMESTAMP(3)',
      ],
      [
        'cdc-sync-prod-billing',
        'MERGE INTO Billing.dbo.cdc_heartbeat AS t USING (SELECT 1 AS id) AS s ON t.id = s.id WHEN MATCHED THEN UPDATE SET ts = SYSUTCDATETIME() WHEN NOT MATCHED THEN INSERT (id, ts) VALUES (s.id, SYSUTCDATETIME());',
      ],
    ])("%s upserts its heartbeat table on every heartbeat, in its engine's dialect", (connector, query) => {
      const config = connectorConfig(prod, connector);

      expect(config).toMatchObject({ 'heartbeat.interval.ms': '10000', 'heartbeat.action.query': query });
    });

    it.each([
      ['cdc-sync-prod-orders', 'public.cdc_heartbeat'],
      ['cdc-sync-prod-inventory', 'inventory.cdc_heartbeat'],
      ['cdc-sync-prod-billing', 'dbo.cdc_heartbeat'],
    ])('%s captures its heartbeat table %s', (connector, table) => {
      const config = connectorConfig(prod, connector);
      // Debezium matches each entry as an anchored regular expression (a captured schema covers the table).
      const included = (list: string | undefined, name: string) =>
        (list ?? '').split(',').some((entry) => new RegExp(`^(?:${entry})$`).test(name));

      expect(included(config['table.include.list'], table)).toBe(true);
      if (connector === 'cdc-sync-prod-inventory') {
        expect(included(config['database.include.list'], table.split('.')[0] ?? '')).toBe(true);
      }
    });

    it('lists a heartbeat table in another database of a MySQL source among the captured databases', () => {
      const elsewhere = synthesizeVariant('dev', (d) => {
        const inventory = sourceOf(d, 1, 'mysql');
        inventory.heartbeatTable = 'ops.cdc_heartbeat';
      });
      expect(connectorConfig(elsewhere, 'cdc-sync-dev-inventory')).toMatchObject({
        'database.include.list': 'inventory,ops',
        'table.include.list': 'inventory\\..*,ops\\.cdc_heartbeat',
        'heartbeat.action.query': expect.stringMatching(/^INSERT INTO ops\.cdc_heartbeat /),
      });
    });

    it('lists the heartbeat table literally when its schema is not captured whole', () => {
      const config = listedOrdersConfig((orders) => {
        orders.heartbeatTable = 'cdc.heartbeat';
      });
      expect(config).toMatchObject({
        'table.include.list': 'public\\.orders,public\\.order_lines,public\\.debezium_signal,cdc\\.heartbeat',
        'heartbeat.action.query': expect.stringMatching(/^INSERT INTO cdc\.heartbeat /),
      });
    });

    it('writes, captures and creates no heartbeat table when a source turns it off', () => {
      const off = synthesizeVariant('prod', (d) => {
        const billing = sourceOf(d, 2, 'sqlserver');
        billing.heartbeatTable = false;
      });
      const config = connectorConfig(off, 'cdc-sync-prod-billing');
      const topics = mskTopics(off);

      expect(config['heartbeat.action.query']).toBeUndefined();
      expect(config['table.include.list']).toBe('dbo\\.invoices,dbo\\.debezium_signal');
      expect(topics).not.toContain('billing.Billing.dbo.cdc_heartbeat');
      expect(topics).toContain('orders.public.cdc_heartbeat');
    });

    it('does not create a heartbeat topic Kafka Connect already created (heartbeatTopicExists), but the lanes read it', () => {
      const existing = synthesizeVariant('dev', (d) => {
        const orders = sourceOf(d, 0);
        orders.heartbeatTopicExists = true;
      });
      const topics = mskTopics(existing);
      const mapped = mappedTopics(existing);

      expect(topics).not.toContain('orders.public.cdc_heartbeat');
      expect(topics).toContain('inventory.inventory.cdc_heartbeat');
      expect(mapped.filter((t) => t === 'orders.public.cdc_heartbeat')).toHaveLength(3);
    });

    it('checks the SQL Server certificate against a trust store read from S3 (prod), or explicitly trusts any', () => {
      // Arrange
      const prodConfig = connectorConfig(prod, 'cdc-sync-prod-billing');
      const anyCert = synthesizeVariant('prod', (d) => {
        const billing = sourceOf(d, 2, 'sqlserver');
        billing.serverCertificate = { trust: 'any' };
      });
      const anyConfig = connectorConfig(anyCert, 'cdc-sync-prod-billing');

      // Assert
      expect(prodConfig).toMatchObject({
        'database.encrypt': 'true',
        'database.trustServerCertificate': 'false',
        'database.trustStore': `\${s3import:eu-west-1:cdc-sync-artifacts-333333333333/truststores/rds-ca.p12}`,
        'database.trustStorePassword': `\${secretsmanager:cdc-sync/prod/billing-db:trustStorePassword}`,
      });
      expect(workerProperties(prod)).toContain(
        'config.providers.s3import.class=com.amazonaws.kafka.config.providers.S3ImportConfigProvider',
      );
      expect(
        statementsOfRole(prod.template('streaming'), /ExecutionRolebilling/).find((st) => st.sid === 'TrustStore'),
      ).toMatchObject({
        actions: ['s3:GetObject'],
        resources: ['arn:aws:s3:::cdc-sync-artifacts-333333333333/truststores/rds-ca.p12'],
      });
      expect(anyConfig).toMatchObject({
        'database.encrypt': 'true',
        'database.trustServerCertificate': 'true',
      });
      expect(workerProperties(dev)).not.toContain('s3import');
    });

    it("limits each connector's role to its own topics and credentials", () => {
      const template = dev.template('streaming');
      template.hasResourceProperties('AWS::IAM::Role', {
        RoleName: 'cdc-sync-dev-connector-orders',
        AssumeRolePolicyDocument: {
          Statement: [
            Match.objectLike({
              Principal: { Service: 'kafkaconnect.amazonaws.com' },
              Condition: {
                StringEquals: { 'aws:SourceAccount': '111111111111' },
                ArnLike: {
                  'aws:SourceArn': 'arn:aws:kafkaconnect:eu-west-1:111111111111:connector/cdc-sync-dev-orders/*',
                },
              },
            }),
          ],
        },
      });
      const statements = statementsOfRole(template, /ExecutionRoleorders/);
      expect(statements.find((st) => st.sid === 'DatabaseCredentials')?.resources).toEqual([
        'arn:aws:secretsmanager:eu-west-1:111111111111:secret:cdc-sync/dev/orders-db-AbCdEf',
      ]);
      const topics = 'arn:aws:kafka:eu-west-1:111111111111:topic/cdc-sync-dev/<Fn::Select>/';
      expect(statements.find((st) => st.sid === 'ProduceOwnTopics')).toMatchObject({
        actions: ['kafka-cluster:CreateTopic', 'kafka-cluster:DescribeTopic', 'kafka-cluster:WriteData'],
        resources: [
          `${topics}__debezium-heartbeat.orders`,
          `${topics}orders`,
          `${topics}orders.*`,
          `${topics}orders.transaction`,
        ],
      });
      // The signal topic: read only, with the connector's own signal group.
      expect(statements.find((st) => st.sid === 'ReadSignals')).toMatchObject({
        actions: ['kafka-cluster:DescribeTopic', 'kafka-cluster:ReadData'],
        resources: [`${topics}orders.signals`],
      });
      expect(statements.find((st) => st.sid === 'SignalGroup')).toMatchObject({
        actions: ['kafka-cluster:AlterGroup', 'kafka-cluster:DescribeGroup'],
        resources: ['arn:aws:kafka:eu-west-1:111111111111:group/cdc-sync-dev/<Fn::Select>/cdc-sync-dev-orders-signals'],
      });
      // Nothing of the other source.
      expect(JSON.stringify(statements)).not.toContain('inventory');
    });

    it("lets each connector write only its own offsets topic and MSK Connect's internal topics of its own name", () => {
      // Arrange
      const topics = 'arn:aws:kafka:eu-west-1:111111111111:topic/cdc-sync-dev/<Fn::Select>/';
      const statements = statementsOfRole(dev.template('streaming'), /ExecutionRoleorders/);
      const writable = statements
        .filter((st) => st.actions.includes('kafka-cluster:WriteData'))
        .flatMap((st) => st.resources);

      // Assert: its own offsets topic and internal topics, never the shared worker offsets topic.
      expect(writable).toEqual(
        expect.arrayContaining([
          `${topics}__cdc-sync-dev-orders-offsets`,
          `${topics}__amazon_msk_connect_*_cdc-sync-dev-orders_*`,
        ]),
      );
      expect(writable).not.toContain(`${topics}__cdc-sync-dev-connect-offsets`);
      expect(writable.filter((arn) => arn.endsWith('__amazon_msk_connect_*'))).toEqual([]);
      expect(statements.find((st) => st.sid === 'ReadGlobalOffsetsTopic')).toMatchObject({
        actions: expect.not.arrayContaining(['kafka-cluster:WriteData']),
        resources: [`${topics}__cdc-sync-dev-connect-offsets`],
      });
      expect(connectorConfig(dev, 'cdc-sync-dev-orders')).toMatchObject({
        'offsets.storage.topic': '__cdc-sync-dev-orders-offsets',
      });
    });

    it("keeps a retained connector's execution role and policy with it (same removal policy)", () => {
      const retained = (env: SynthesizedEnvironment) =>
        Object.entries(
          env.template('streaming').toJSON().Resources as Record<string, { Type: string; DeletionPolicy?: string }>,
        )
          .filter(([id, r]) => id.startsWith('ConnectExecutionRole') && /AWS::IAM::(Role|Policy)/.test(r.Type))
          .map(([, r]) => r.DeletionPolicy);
      expect(retained(prod)).toEqual(['Retain', 'Retain', 'Retain', 'Retain', 'Retain', 'Retain']);
      expect(retained(dev)).toEqual(['Delete', 'Delete', 'Delete', 'Delete']);
      for (const [, connector] of resourcesOf(prod.template('streaming'), 'Custom::MskConnectConnector')) {
        expect((connector as { DeletionPolicy?: string }).DeletionPolicy).toBe('Retain');
      }
    });
  });
});
