import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { environmentConfig } from '../../lib/config';
import { throwawayDir } from '../support/scratch';
import { resourcesOf, type SynthesizedEnvironment, statementsOfRole, synthesize, variant } from './support';

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

    it('creates one topic per captured table with the configured partitions (AWS::MSK::Topic)', () => {
      const template = dev.template('streaming');
      template.resourceCountIs('AWS::MSK::Topic', 3);
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
  });

  describe('MSK Serverless option', () => {
    let serverless: SynthesizedEnvironment;
    beforeAll(() => {
      serverless = synthesize(
        variant(environmentConfig('dev'), (d) => {
          d.msk = { mode: 'serverless', retentionHours: 48 };
        }),
      );
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
          { name: 'inventory.inventory.stock', partitions: 3 },
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
    it('runs one connector per source through the in-place-updating custom resource', () => {
      dev.template('streaming').resourceCountIs('Custom::MskConnectConnector', dev.config.sources.length);
      prod.template('streaming').resourceCountIs('Custom::MskConnectConnector', 3);
    });

    it('configures PostgreSQL with pgoutput, its slot, publication and heartbeat', () => {
      const spec = connectorSpecs(dev).find((s) => s.connectorName === 'cdc-sync-dev-orders');
      expect(spec?.connectorConfiguration).toMatchObject({
        'connector.class': 'io.debezium.connector.postgresql.PostgresConnector',
        'plugin.name': 'pgoutput',
        'slot.name': 'cdc_sync_dev_orders',
        'publication.name': 'cdc_sync_dev_orders',
        'heartbeat.interval.ms': '10000',
        'topic.prefix': 'orders',
        'table.include.list': 'public\\.orders,public\\.order_lines',
        'tombstones.on.delete': 'true',
        'provide.transaction.metadata': 'true',
        'tasks.max': '1',
      });
    });

    it('configures MySQL with its server id and an IAM-authenticated schema history topic', () => {
      const spec = connectorSpecs(dev).find((s) => s.connectorName === 'cdc-sync-dev-inventory');
      expect(spec?.connectorConfiguration).toMatchObject({
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
      const spec = connectorSpecs(prod).find((s) => s.connectorName === 'cdc-sync-prod-billing');
      expect(spec?.connectorConfiguration).toMatchObject({
        'connector.class': 'io.debezium.connector.sqlserver.SqlServerConnector',
        'database.names': 'Billing',
        'table.include.list': 'dbo\\.invoices',
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
      const spec = connectorSpecs(staging).find((s) => s.connectorName === 'cdc-sync-staging-inventory');
      expect(spec?.connectorConfiguration).toMatchObject({
        'value.converter': 'com.amazonaws.services.schemaregistry.kafkaconnect.AWSKafkaAvroConverter',
        'value.converter.registry.name': 'cdc-sync-staging',
        'value.converter.compatibility': 'BACKWARD',
        'value.converter.schemaAutoRegistrationEnabled': 'true',
      });
      staging.template('streaming').hasResourceProperties('AWS::Glue::Registry', { Name: 'cdc-sync-staging' });
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
      const [[, worker] = ['', {}]] = resourcesOf(dev.template('streaming'), 'AWS::KafkaConnect::WorkerConfiguration');
      const { PropertiesFileContent } = worker.Properties as { PropertiesFileContent: { 'Fn::Base64': string } };
      const properties = PropertiesFileContent['Fn::Base64'];
      expect(properties.split('\n')).toEqual(
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
      const withAsset = synthesize(
        variant(environmentConfig('dev'), (d) => {
          d.connect.plugin = { kind: 'asset', path: archive };
        }),
      );
      withAsset.template('streaming').hasResourceProperties('AWS::KafkaConnect::CustomPlugin', {
        Location: {
          S3Location: {
            BucketArn: Match.anyValue(),
            FileKey: Match.stringLikeRegexp('^[0-9a-f]{64}\\.zip$'),
          },
        },
      });
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
      // Nothing of the other source.
      expect(JSON.stringify(statements)).not.toContain('inventory');
    });
  });
});
