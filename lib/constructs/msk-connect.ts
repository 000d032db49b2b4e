import * as path from 'node:path';
import {
  CfnDeletionPolicy,
  type CfnResource,
  CustomResource,
  Duration,
  Fn,
  type RemovalPolicy,
  Stack,
} from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kafkaconnect from 'aws-cdk-lib/aws-kafkaconnect';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct, type IDependable } from 'constructs';
import {
  type ConnectConfig,
  connectOffsetsTopicName,
  connectorName,
  type EnvironmentConfig,
  heartbeatTopicName,
  type SourceConfig,
  schemaHistoryTopicName,
  signalGroupId,
  signalTopicName,
  transactionTopicName,
} from '../config';
import type { ConnectorSpec } from '../custom-resources/connector/reconcile';
import { acknowledgeNag, acknowledgeProviderFramework } from '../nag';
import { shortHash } from '../util';
import { debeziumConnectorConfig, schemaHistoryGroupId, workerProperties } from './debezium-config';
import type { MskCluster } from './msk-cluster';
import { ProjectFunction, REPO_ROOT } from './node-function';

export interface MskConnectProps {
  readonly env: EnvironmentConfig;
  readonly cluster: MskCluster;
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly securityGroup: ec2.ISecurityGroup;
  /** Glue Schema Registry used by sources whose format is `avro`. */
  readonly schemaRegistryName: string;
  readonly schemaRegistryArn: string;
  /** Connectors are created after this (the data topics). */
  readonly topics: IDependable;
  readonly removalPolicy: RemovalPolicy;
  readonly logRetention: logs.RetentionDays;
}

/**
 * MSK Connect for Debezium: the custom plugin (the Debezium archive, from S3 or a local asset), one worker
 * configuration, one connector per source with its own least-privilege execution role, and connector logs in
 * CloudWatch. Connectors are `Custom::MskConnectConnector` resources (see lib/custom-resources/connector) so a
 * configuration change is applied in place instead of failing on replacement.
 */
export class MskConnect extends Construct {
  readonly logGroup: logs.LogGroup;
  /** Connector name → ARN. */
  readonly connectorArns: Record<string, string> = {};
  readonly connectorNames: string[] = [];

  constructor(scope: Construct, id: string, props: MskConnectProps) {
    super(scope, id);
    const { env } = props;
    const prefix = `cdc-sync-${env.name}`;

    this.logGroup = new logs.LogGroup(this, 'ConnectorLogs', {
      logGroupName: `/aws/mskconnect/${prefix}`,
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });

    const plugin = this.createPlugin(env.connect, prefix);

    // Worker configurations and custom plugins cannot be updated (every property requires replacement) and their
    // names are unique, so the name carries a hash of the content: a change creates a new one next to the old.
    const properties = workerProperties(env);
    const worker = new kafkaconnect.CfnWorkerConfiguration(this, 'WorkerConfiguration', {
      name: `${prefix}-workers-${shortHash(properties)}`,
      description: 'cdc-sync Debezium workers: JSON with schemas, Secrets Manager config provider, named offsets topic',
      propertiesFileContent: Fn.base64(properties),
    });

    const provider = this.createProvider(env, prefix, props);
    const subnets = props.vpc.selectSubnets(props.subnets).subnetIds;

    for (const source of env.sources) {
      const name = connectorName(env, source);
      const role = this.createExecutionRole(source, name, props);
      const spec: ConnectorSpec = {
        connectorName: name,
        connectorConfiguration: debeziumConnectorConfig(source, {
          env,
          connectorName: name,
          bootstrapServers: props.cluster.bootstrapServers,
          schemaRegistryName: props.schemaRegistryName,
          compatibility: env.schemaRegistry.compatibility,
        }),
        capacity: capacitySpec(source),
        kafkaConnectVersion: env.connect.kafkaConnectVersion,
        kafkaCluster: {
          apacheKafkaCluster: {
            bootstrapServers: props.cluster.bootstrapServers,
            vpc: { securityGroups: [props.securityGroup.securityGroupId], subnets },
          },
        },
        kafkaClusterClientAuthentication: { authenticationType: 'IAM' },
        kafkaClusterEncryptionInTransit: { encryptionType: 'TLS' },
        logDelivery: {
          workerLogDelivery: { cloudWatchLogs: { enabled: true, logGroup: this.logGroup.logGroupName } },
        },
        plugins: [{ customPlugin: { customPluginArn: plugin.attrCustomPluginArn, revision: plugin.attrRevision } }],
        serviceExecutionRoleArn: role.roleArn,
        workerConfiguration: {
          workerConfigurationArn: worker.attrWorkerConfigurationArn,
          revision: worker.attrRevision,
        },
      };
      const connector = new CustomResource(this, `Connector-${source.name}`, {
        serviceToken: provider.serviceToken,
        resourceType: 'Custom::MskConnectConnector',
        properties: { Spec: Stack.of(this).toJsonString(spec) },
        removalPolicy: props.removalPolicy,
      });
      // A renamed source gets a new connector (new physical id); the old one must be deleted, not left running on
      // the same replication slot, even where the environment retains resources on stack deletion.
      (connector.node.defaultChild as CfnResource).cfnOptions.updateReplacePolicy = CfnDeletionPolicy.DELETE;
      connector.node.addDependency(props.topics);
      // The role must exist (with its policy) before MSK Connect assumes it.
      connector.node.addDependency(role);
      this.connectorArns[name] = connector.getAttString('ConnectorArn');
      this.connectorNames.push(name);
    }
  }

  /**
   * The Debezium archive cannot be fetched by CDK (it must be assembled: Debezium connector + MSK config providers
   * + Glue schema registry converter + MSK IAM auth, see docs/deploy.md), so it comes either from S3 or from a local
   * ZIP uploaded as an asset.
   */
  private createPlugin(connect: ConnectConfig, prefix: string): kafkaconnect.CfnCustomPlugin {
    let location: { bucketArn: string; fileKey: string; objectVersion?: string };
    let version: string;
    if (connect.plugin.kind === 'asset') {
      const asset = new s3assets.Asset(this, 'PluginArchive', { path: path.resolve(REPO_ROOT, connect.plugin.path) });
      location = { bucketArn: asset.bucket.bucketArn, fileKey: asset.s3ObjectKey };
      version = asset.assetHash;
    } else {
      location = {
        bucketArn: connect.plugin.bucketArn,
        fileKey: connect.plugin.fileKey,
        objectVersion: connect.plugin.objectVersion,
      };
      version = [connect.plugin.bucketArn, connect.plugin.fileKey, connect.plugin.objectVersion ?? ''].join('|');
    }
    return new kafkaconnect.CfnCustomPlugin(this, 'DebeziumPlugin', {
      name: `${prefix}-debezium-${shortHash(version)}`,
      description: 'Debezium connectors + MSK config providers + Glue schema registry converter + MSK IAM auth',
      contentType: 'ZIP',
      location: { s3Location: location },
    });
  }

  private createProvider(env: EnvironmentConfig, prefix: string, props: MskConnectProps): cr.Provider {
    const stack = Stack.of(this);
    const handler = (id: string, handlerName: string) =>
      new ProjectFunction(this, id, {
        entry: 'lib/custom-resources/connector/index.ts',
        handler: handlerName,
        description: `cdc-sync ${env.name}: MSK Connect connector custom resource (${handlerName})`,
        timeout: Duration.minutes(1),
        logRetention: props.logRetention,
        logRemovalPolicy: props.removalPolicy,
      });
    const onEvent = handler('ConnectorOnEvent', 'onEvent');
    const isComplete = handler('ConnectorIsComplete', 'isComplete');

    const kafkaconnectArn = (resource: string) =>
      `arn:${stack.partition}:kafkaconnect:${stack.region}:${stack.account}:${resource}`;
    isComplete.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ManageOwnConnectors',
        actions: [
          'kafkaconnect:CreateConnector',
          'kafkaconnect:DescribeConnector',
          'kafkaconnect:UpdateConnector',
          'kafkaconnect:DeleteConnector',
        ],
        resources: [
          kafkaconnectArn(`connector/${prefix}-*/*`),
          kafkaconnectArn(`custom-plugin/${prefix}-*/*`),
          kafkaconnectArn(`worker-configuration/${prefix}-*/*`),
        ],
      }),
    );
    isComplete.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ListConnectors',
        // ListConnectors has no resource-level permissions.
        actions: ['kafkaconnect:ListConnectors'],
        resources: ['*'],
      }),
    );
    isComplete.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'PassConnectorRoles',
        actions: ['iam:PassRole'],
        resources: [`arn:${stack.partition}:iam::${stack.account}:role/${prefix}-connector-*`],
        conditions: { StringEquals: { 'iam:PassedToService': 'kafkaconnect.amazonaws.com' } },
      }),
    );
    isComplete.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ConnectServiceLinkedRole',
        actions: ['iam:CreateServiceLinkedRole', 'iam:AttachRolePolicy', 'iam:PutRolePolicy'],
        resources: [
          `arn:${stack.partition}:iam::${stack.account}:role/aws-service-role/kafkaconnect.amazonaws.com/AWSServiceRoleForKafkaConnect*`,
        ],
      }),
    );
    isComplete.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ConnectorNetworkAndLogDelivery',
        // Dependent actions of CreateConnector/DeleteConnector (service authorization reference). None of them
        // supports resource-level permissions except CreateNetworkInterface, which MSK Connect calls on its own ENIs.
        actions: [
          'ec2:CreateNetworkInterface',
          'ec2:DescribeNetworkInterfaces',
          'ec2:DeleteNetworkInterface',
          'ec2:DescribeSecurityGroups',
          'ec2:DescribeSubnets',
          'ec2:DescribeVpcs',
          'logs:CreateLogDelivery',
          'logs:GetLogDelivery',
          'logs:UpdateLogDelivery',
          'logs:DeleteLogDelivery',
          'logs:ListLogDeliveries',
          'logs:PutResourcePolicy',
          'logs:DescribeResourcePolicies',
          'logs:DescribeLogGroups',
        ],
        resources: ['*'],
      }),
    );
    isComplete.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'DescribeCluster',
        actions: ['kafka:DescribeCluster', 'kafka:DescribeClusterV2', 'kafka:GetBootstrapBrokers'],
        resources: [props.cluster.clusterArn],
      }),
    );

    acknowledgeNag(
      isComplete,
      {
        rule: 'AwsSolutions-IAM5',
        finding: /^Resource::\*$/,
        reason:
          'kafkaconnect:ListConnectors, the EC2 ENI/describe and CloudWatch log-delivery actions CreateConnector and DeleteConnector depend on, and X-Ray, have no resource-level permissions.',
      },
      {
        rule: 'AwsSolutions-IAM5',
        finding: /:(connector|custom-plugin|worker-configuration)\/cdc-sync-[a-z0-9-]+-\*\/\*$/,
        reason:
          "This environment's connectors, plugins and worker configurations: names are cdc-sync-<env>-… (plugins and worker configurations carry a content hash) and ARNs end in a service-generated id.",
      },
      {
        rule: 'AwsSolutions-IAM5',
        finding: /:role\/cdc-sync-[a-z0-9-]+-connector-\*$/,
        reason: "iam:PassRole to this environment's connector execution roles only, and only to kafkaconnect.",
      },
      {
        rule: 'AwsSolutions-IAM5',
        finding: /AWSServiceRoleForKafkaConnect\*$/,
        reason: "MSK Connect's service-linked role, created on first use by CreateConnector.",
      },
    );
    const provider = new cr.Provider(this, 'ConnectorProvider', {
      onEventHandler: onEvent,
      isCompleteHandler: isComplete,
      // Creating or re-creating a connector takes 5–20 minutes.
      queryInterval: Duration.seconds(30),
      totalTimeout: Duration.hours(2),
      logGroup: new logs.LogGroup(this, 'ConnectorProviderLogs', {
        retention: props.logRetention,
        removalPolicy: props.removalPolicy,
      }),
      // Logging is off unless explicitly enabled (and cdk-nag SF1 rightly asks for it).
      disableWaiterStateMachineLogging: false,
      waiterStateMachineLogOptions: {
        destination: new logs.LogGroup(this, 'ConnectorWaiterLogs', {
          retention: props.logRetention,
          removalPolicy: props.removalPolicy,
        }),
        level: sfn.LogLevel.ALL,
        includeExecutionData: false,
      },
    });
    acknowledgeProviderFramework(provider);
    return provider;
  }

  /** One role per connector: it can only write its own topics and read its own credentials. */
  private createExecutionRole(source: SourceConfig, name: string, props: MskConnectProps): iam.Role {
    const stack = Stack.of(this);
    const arns = props.cluster.arns;
    const role = new iam.Role(this, `ExecutionRole-${source.name}`, {
      roleName: `cdc-sync-${props.env.name}-connector-${source.name}`,
      description: `MSK Connect execution role of ${name}`,
      // Confused-deputy protection: only this account's connector of this name may assume the role.
      assumedBy: new iam.ServicePrincipal('kafkaconnect.amazonaws.com', {
        conditions: {
          StringEquals: { 'aws:SourceAccount': stack.account },
          ArnLike: {
            'aws:SourceArn': `arn:${stack.partition}:kafkaconnect:${stack.region}:${stack.account}:connector/${name}/*`,
          },
        },
      }),
    });
    const offsets = connectOffsetsTopicName(props.env);
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'Cluster',
        actions: ['kafka-cluster:Connect', 'kafka-cluster:DescribeCluster'],
        resources: [props.cluster.clusterArn],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ProduceOwnTopics',
        // Data topics (<prefix>.*, which includes the notification topic <prefix>.notifications), the schema-change
        // topic (<prefix>), transactions and heartbeats.
        actions: ['kafka-cluster:DescribeTopic', 'kafka-cluster:WriteData', 'kafka-cluster:CreateTopic'],
        resources: [
          arns.topic(source.topicPrefix),
          arns.topic(`${source.topicPrefix}.*`),
          arns.topic(transactionTopicName(source)),
          arns.topic(heartbeatTopicName(source)),
        ],
      }),
    );
    // The Kafka signal channel: Debezium's signal reader consumes partition 0 of its own signal topic with its own
    // group (signal.kafka.groupId). Read only; the lanes and the backfill command are the producers.
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadSignals',
        actions: ['kafka-cluster:DescribeTopic', 'kafka-cluster:ReadData'],
        resources: [arns.topic(signalTopicName(source))],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'SignalGroup',
        actions: ['kafka-cluster:DescribeGroup', 'kafka-cluster:AlterGroup'],
        resources: [arns.group(signalGroupId(props.env, source))],
      }),
    );
    const internalTopics = [
      arns.topic(offsets),
      // MSK Connect's own config and status topics.
      arns.topic('__amazon_msk_connect_*'),
      arns.topic('__msk_connect_*'),
    ];
    if (source.engine !== 'postgresql') internalTopics.push(arns.topic(schemaHistoryTopicName(source)));
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ConnectAndSchemaHistoryTopics',
        actions: [
          'kafka-cluster:CreateTopic',
          'kafka-cluster:DescribeTopic',
          'kafka-cluster:DescribeTopicDynamicConfiguration',
          'kafka-cluster:WriteData',
          'kafka-cluster:ReadData',
        ],
        resources: internalTopics,
      }),
    );
    const groups = [arns.group('__amazon_msk_connect_*'), arns.group('__msk_connect_*')];
    if (source.engine !== 'postgresql') groups.push(arns.group(schemaHistoryGroupId(name)));
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ConnectGroups',
        actions: ['kafka-cluster:DescribeGroup', 'kafka-cluster:AlterGroup'],
        resources: groups,
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'DatabaseCredentials',
        actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
        resources: [source.credentialsSecretArn],
      }),
    );
    if (source.credentialsKmsKeyArn !== undefined) {
      role.addToPolicy(
        new iam.PolicyStatement({
          sid: 'DecryptDatabaseCredentials',
          actions: ['kms:Decrypt'],
          resources: [source.credentialsKmsKeyArn],
          conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${stack.region}.amazonaws.com` } },
        }),
      );
    }
    if (source.format === 'avro') {
      role.addToPolicy(
        new iam.PolicyStatement({
          sid: 'SchemaRegistry',
          actions: [
            'glue:GetRegistry',
            'glue:GetSchema',
            'glue:CreateSchema',
            'glue:GetSchemaByDefinition',
            'glue:GetSchemaVersion',
            'glue:RegisterSchemaVersion',
            'glue:PutSchemaVersionMetadata',
            'glue:QuerySchemaVersionMetadata',
          ],
          resources: [
            props.schemaRegistryArn,
            `arn:${stack.partition}:glue:${stack.region}:${stack.account}:schema/${props.schemaRegistryName}/*`,
          ],
        }),
      );
    }
    acknowledgeNag(
      role,
      {
        rule: 'AwsSolutions-IAM5',
        finding: new RegExp(`/${escapeRegExp(source.topicPrefix)}\\.\\*$`),
        reason: `Debezium writes one topic per captured table, all named ${source.topicPrefix}.<schema|db>.<table> (topic.prefix of this source).`,
      },
      {
        rule: 'AwsSolutions-IAM5',
        finding: /:schema\/cdc-sync-[a-z0-9-]+\/\*$/,
        reason:
          'The Glue Avro converter registers one schema per topic key and value (auto-registration) in the environment registry.',
      },
      {
        rule: 'AwsSolutions-IAM5',
        finding: /\/(__amazon_msk_connect_|__msk_connect_)\*$/,
        reason:
          "MSK Connect's internal config/status topics and worker group, named by the service per connector (connector id suffix).",
      },
    );
    return role;
  }
}

function escapeRegExp(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function capacitySpec(source: SourceConfig): ConnectorSpec['capacity'] {
  const capacity = source.capacity ?? { mode: 'provisioned', workerCount: 1, mcuCount: 1 };
  if (capacity.mode === 'provisioned') {
    return { provisionedCapacity: { workerCount: capacity.workerCount, mcuCount: capacity.mcuCount } };
  }
  return {
    autoScaling: {
      minWorkerCount: capacity.minWorkerCount,
      maxWorkerCount: capacity.maxWorkerCount,
      mcuCount: capacity.mcuCount,
      scaleInPolicy: { cpuUtilizationPercentage: 20 },
      scaleOutPolicy: { cpuUtilizationPercentage: 80 },
    },
  };
}
