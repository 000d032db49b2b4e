import * as path from 'node:path';
import { CfnDeletionPolicy, CfnResource, CustomResource, Duration, Fn, type RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
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
  connectorOffsetsTopicName,
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

/** CloudFormation's maximum (and default) time for a custom resource operation. */
export const CUSTOM_RESOURCE_TIMEOUT = Duration.hours(1);
/**
 * How long the connector provider's waiter polls before it reports a timeout: well inside the hour, since every poll
 * also takes the handler's own run time on top of the interval.
 */
export const PROVIDER_TOTAL_TIMEOUT = Duration.minutes(45);

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

    // Roles first: the provider may pass exactly these roles, and act on exactly these connectors.
    const connectors = env.sources.map((source) => {
      const name = connectorName(env, source);
      return { source, name, role: this.createExecutionRole(source, name, props) };
    });
    const provider = this.createProvider(env, props, connectors);
    const subnets = props.vpc.selectSubnets(props.subnets).subnetIds;

    for (const { source, name, role } of connectors) {
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
        // CloudFormation's limit for a custom resource; the provider gives up a quarter of an hour earlier.
        serviceTimeout: CUSTOM_RESOURCE_TIMEOUT,
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

  private createProvider(
    env: EnvironmentConfig,
    props: MskConnectProps,
    connectors: readonly { readonly name: string; readonly role: iam.Role }[],
  ): cr.Provider {
    const stack = Stack.of(this);
    // Which CloudFormation request owns each connector (lib/custom-resources/connector/requests.ts).
    const requests = new dynamodb.Table(this, 'ConnectorRequests', {
      partitionKey: { name: 'connector', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: props.removalPolicy,
    });
    const handler = (id: string, handlerName: string) =>
      new ProjectFunction(this, id, {
        entry: 'lib/custom-resources/connector/index.ts',
        handler: handlerName,
        description: `cdc-sync ${env.name}: MSK Connect connector custom resource (${handlerName})`,
        timeout: Duration.minutes(1),
        environment: { CONNECTOR_REQUESTS_TABLE: requests.tableName },
        logRetention: props.logRetention,
        logRemovalPolicy: props.removalPolicy,
      });
    const onEvent = handler('ConnectorOnEvent', 'onEvent');
    const isComplete = handler('ConnectorIsComplete', 'isComplete');
    requests.grant(onEvent, 'dynamodb:PutItem', 'dynamodb:GetItem');
    requests.grant(isComplete, 'dynamodb:GetItem', 'dynamodb:UpdateItem');

    const kafkaconnectArn = (resource: string) =>
      `arn:${stack.partition}:kafkaconnect:${stack.region}:${stack.account}:${resource}`;
    const names = connectors.map((c) => c.name);
    // ARNs end in a service-generated id: connector/<name>/<id>, connector-operation/<name>/<connector id>/<id>.
    const ownConnectors = names.map((name) => kafkaconnectArn(`connector/${name}/*`));
    const ownOperations = names.map((name) => kafkaconnectArn(`connector-operation/${name}/*/*`));
    const manage = ['kafkaconnect:DescribeConnector', 'kafkaconnect:UpdateConnector', 'kafkaconnect:DeleteConnector'];
    isComplete.addToRolePolicy(
      new iam.PolicyStatement({ sid: 'ManageOwnConnectors', actions: manage, resources: ownConnectors }),
    );
    isComplete.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ReadOwnConnectorOperations',
        actions: ['kafkaconnect:DescribeConnectorOperation'],
        resources: ownOperations,
      }),
    );
    // CreateConnector and ListConnectors support no resource-level permissions (service authorization reference);
    // what a created connector may do is bounded by the roles it can be passed (PassConnectorRoles).
    const connectWide = ['kafkaconnect:CreateConnector', 'kafkaconnect:ListConnectors'];
    isComplete.addToRolePolicy(
      new iam.PolicyStatement({ sid: 'CreateAndListConnectors', actions: connectWide, resources: ['*'] }),
    );
    isComplete.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'PassConnectorRoles',
        actions: ['iam:PassRole'],
        resources: connectors.map((c) => c.role.roleArn),
        conditions: { StringEquals: { 'iam:PassedToService': 'kafkaconnect.amazonaws.com' } },
      }),
    );
    const serviceLinkedRole = `arn:${stack.partition}:iam::${stack.account}:role/aws-service-role/kafkaconnect.amazonaws.com/AWSServiceRoleForKafkaConnect*`;
    const serviceLinkedRoleActions = ['iam:CreateServiceLinkedRole', 'iam:AttachRolePolicy', 'iam:PutRolePolicy'];
    isComplete.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ConnectServiceLinkedRole',
        actions: serviceLinkedRoleActions,
        resources: [serviceLinkedRole],
      }),
    );
    // Dependent actions of CreateConnector/DeleteConnector (service authorization reference). None of them supports
    // resource-level permissions except CreateNetworkInterface, which MSK Connect calls on its own ENIs.
    const networkAndLogDelivery = [
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
    ];
    isComplete.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ConnectorNetworkAndLogDelivery',
        actions: networkAndLogDelivery,
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
        resources: ['*'],
        actions: [...connectWide, ...networkAndLogDelivery],
        reason:
          'kafkaconnect:CreateConnector and ListConnectors, and the EC2 ENI/describe and CloudWatch log-delivery actions CreateConnector and DeleteConnector depend on, have no resource-level permissions.',
      },
      {
        rule: 'AwsSolutions-IAM5',
        resources: ownConnectors,
        actions: manage,
        reason: "This environment's connectors by exact name; the ARN ends in a service-generated id.",
      },
      {
        rule: 'AwsSolutions-IAM5',
        resources: ownOperations,
        actions: ['kafkaconnect:DescribeConnectorOperation'],
        reason: "Operations of this environment's connectors by exact name; the ARN ends in service-generated ids.",
      },
      {
        rule: 'AwsSolutions-IAM5',
        resources: [serviceLinkedRole],
        actions: serviceLinkedRoleActions,
        reason: "MSK Connect's service-linked role, created on first use by CreateConnector.",
      },
    );
    const provider = new cr.Provider(this, 'ConnectorProvider', {
      onEventHandler: onEvent,
      isCompleteHandler: isComplete,
      // Creating or re-creating a connector takes 5–20 minutes. The waiter gives up before CloudFormation does (a
      // custom resource gets at most an hour): a waiter must never outlive the request it serves.
      queryInterval: Duration.seconds(30),
      totalTimeout: PROVIDER_TOTAL_TIMEOUT,
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

  /**
   * One role per connector: it can only write its own topics (data, schema changes, transactions, heartbeats, its
   * offsets and MSK Connect's internal topics of this connector) and read its own credentials. The role has the
   * connector's removal policy: a retained connector keeps the role (and its policy) it runs with.
   */
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
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'Cluster',
        actions: ['kafka-cluster:Connect', 'kafka-cluster:DescribeCluster'],
        resources: [props.cluster.clusterArn],
      }),
    );
    const dataTopics = arns.topic(`${source.topicPrefix}.*`);
    const produce = ['kafka-cluster:DescribeTopic', 'kafka-cluster:WriteData', 'kafka-cluster:CreateTopic'];
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ProduceOwnTopics',
        // Data topics (<prefix>.*, which includes the notification topic <prefix>.notifications), the schema-change
        // topic (<prefix>), transactions and heartbeats.
        actions: produce,
        resources: [
          arns.topic(source.topicPrefix),
          dataTopics,
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
    // MSK Connect names its internal config, status and offsets topics after the connector:
    // __amazon_msk_connect_<configs|status|offsets>_<connector name>_<connector id> (older workers: __msk_connect_).
    const internalTopics = [arns.topic(`__amazon_msk_connect_*_${name}_*`), arns.topic(`__msk_connect_*_${name}_*`)];
    const ownTopics = [arns.topic(connectorOffsetsTopicName(props.env, source)), ...internalTopics];
    if (source.engine !== 'postgresql') ownTopics.push(arns.topic(schemaHistoryTopicName(source)));
    const readWrite = [
      'kafka-cluster:CreateTopic',
      'kafka-cluster:DescribeTopic',
      'kafka-cluster:DescribeTopicDynamicConfiguration',
      'kafka-cluster:WriteData',
      'kafka-cluster:ReadData',
    ];
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'OwnOffsetsInternalAndSchemaHistoryTopics',
        actions: readWrite,
        resources: ownTopics,
      }),
    );
    // The workers' global offsets topic, shared by the environment's connectors: read only. Kafka Connect reads a
    // connector's offsets there when its own topic is still empty (connectors deployed before they had one), and
    // its best-effort copy of each offset commit there is refused (logged by the worker, the commit succeeds).
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadGlobalOffsetsTopic',
        actions: [
          'kafka-cluster:CreateTopic',
          'kafka-cluster:DescribeTopic',
          'kafka-cluster:DescribeTopicDynamicConfiguration',
          'kafka-cluster:ReadData',
        ],
        resources: [arns.topic(connectOffsetsTopicName(props.env))],
      }),
    );
    const workerGroups = [arns.group('__amazon_msk_connect_*'), arns.group('__msk_connect_*')];
    const groups = [...workerGroups];
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
    if (source.engine === 'sqlserver' && source.serverCertificate.trust === 'truststore') {
      const { bucketArn, key } = source.serverCertificate.trustStore;
      role.addToPolicy(
        new iam.PolicyStatement({ sid: 'TrustStore', actions: ['s3:GetObject'], resources: [`${bucketArn}/${key}`] }),
      );
    }
    const schemaRegistryActions = [
      'glue:GetRegistry',
      'glue:GetSchema',
      'glue:CreateSchema',
      'glue:GetSchemaByDefinition',
      'glue:GetSchemaVersion',
      'glue:RegisterSchemaVersion',
      'glue:PutSchemaVersionMetadata',
      'glue:QuerySchemaVersionMetadata',
    ];
    const schemas = `arn:${stack.partition}:glue:${stack.region}:${stack.account}:schema/${props.schemaRegistryName}/*`;
    if (source.format === 'avro') {
      role.addToPolicy(
        new iam.PolicyStatement({
          sid: 'SchemaRegistry',
          actions: schemaRegistryActions,
          resources: [props.schemaRegistryArn, schemas],
        }),
      );
    }
    acknowledgeNag(
      role,
      {
        rule: 'AwsSolutions-IAM5',
        resources: [dataTopics],
        actions: produce,
        reason: `Debezium writes one topic per captured table, all named ${source.topicPrefix}.<schema|db>.<table> (topic.prefix of this source).`,
      },
      {
        rule: 'AwsSolutions-IAM5',
        resources: [schemas],
        actions: schemaRegistryActions,
        reason:
          'The Glue Avro converter registers one schema per topic key and value (auto-registration) in the environment registry.',
      },
      {
        rule: 'AwsSolutions-IAM5',
        resources: internalTopics,
        actions: readWrite,
        reason: `MSK Connect's internal config/status/offsets topics of this connector only (${name}), suffixed by the service with the connector id.`,
      },
      {
        rule: 'AwsSolutions-IAM5',
        resources: workerGroups,
        actions: ['kafka-cluster:DescribeGroup', 'kafka-cluster:AlterGroup'],
        reason:
          "MSK Connect's worker group, named by the service (connector id suffix); group membership only, no topic access.",
      },
    );
    // Same lifetime as the connector that runs with it: a retained connector must keep its permissions.
    for (const child of role.node.findAll()) {
      if (child instanceof CfnResource) child.applyRemovalPolicy(props.removalPolicy);
    }
    return role;
  }
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
