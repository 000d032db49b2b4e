import { Duration, Stack, type StackProps } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import type { Construct } from 'constructs';
import {
  dataTopics,
  type EnvironmentConfig,
  notificationTopicName,
  type SignallingParameter,
  type SourceConfig,
  schemaChangeTopicName,
  signallingParameterName,
  signalTopicName,
} from '../config';
import { type KafkaTopicSpec, KafkaTopics } from '../constructs/kafka-topics';
import { MskCluster } from '../constructs/msk-cluster';
import { MskConnect } from '../constructs/msk-connect';
import { logRetention, removalPolicyOf, resourcePrefix } from '../util';

export interface StreamingStackProps extends StackProps {
  readonly config: EnvironmentConfig;
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly mskSecurityGroup: ec2.ISecurityGroup;
  readonly connectSecurityGroup: ec2.ISecurityGroup;
  readonly topicAdminSecurityGroup: ec2.ISecurityGroup;
}

/**
 * The change stream: the MSK cluster (provisioned or serverless), the data topics as code, the Glue Schema Registry
 * for Avro sources and MSK Connect running one Debezium connector per source database.
 */
export class StreamingStack extends Stack {
  readonly cluster: MskCluster;
  readonly schemaRegistry: glue.CfnRegistry;
  readonly connect: MskConnect;
  /** Where `npm run backfill -- --env` finds the signal/notification topics and bootstrap brokers. */
  readonly signallingParameter: ssm.StringParameter;

  constructor(scope: Construct, id: string, props: StreamingStackProps) {
    super(scope, id, props);
    const { config } = props;
    const prefix = resourcePrefix(config);
    const removalPolicy = removalPolicyOf(config);
    const retention = logRetention(config.connect.logRetentionDays);

    const mskKey = new kms.Key(this, 'MskKey', {
      alias: `alias/${prefix}-msk`,
      description: `cdc-sync ${config.name}: MSK broker volumes`,
      enableKeyRotation: true,
      removalPolicy,
      pendingWindow: Duration.days(7),
    });

    this.cluster = new MskCluster(this, 'Msk', {
      clusterName: prefix,
      config: config.msk,
      vpc: props.vpc,
      subnets: props.subnets,
      securityGroup: props.mskSecurityGroup,
      encryptionKey: mskKey,
      removalPolicy,
      logRetention: retention,
    });

    const topics = new KafkaTopics(this, 'Topics', {
      cluster: this.cluster,
      topics: config.sources.flatMap(topicsAsCode),
      retentionHours: config.msk.retentionHours,
      vpc: props.vpc,
      subnets: props.subnets,
      adminSecurityGroup: props.topicAdminSecurityGroup,
      removalPolicy,
      logRetention: retention,
    });

    this.schemaRegistry = new glue.CfnRegistry(this, 'SchemaRegistry', {
      name: prefix,
      description: `cdc-sync ${config.name}: Avro schemas of sources with format 'avro' (compatibility ${config.schemaRegistry.compatibility})`,
    });

    this.connect = new MskConnect(this, 'Connect', {
      env: config,
      cluster: this.cluster,
      vpc: props.vpc,
      subnets: props.subnets,
      securityGroup: props.connectSecurityGroup,
      schemaRegistryName: this.schemaRegistry.name,
      schemaRegistryArn: this.schemaRegistry.attrArn,
      topics: topics.dependable,
      removalPolicy,
      logRetention: retention,
    });

    const signalling: SignallingParameter = {
      bootstrapServers: this.cluster.bootstrapServers,
      sources: config.sources.map((source) => ({
        name: source.name,
        engine: source.engine,
        topicPrefix: source.topicPrefix,
        ...(source.engine === 'sqlserver' ? { database: source.database } : {}),
        signalTopic: signalTopicName(source),
        notificationTopic: notificationTopicName(source),
      })),
    };
    this.signallingParameter = new ssm.StringParameter(this, 'SignallingParameter', {
      parameterName: signallingParameterName(config),
      description: `cdc-sync ${config.name}: Debezium signal/notification topics and IAM bootstrap brokers (npm run backfill -- --env ${config.name})`,
      stringValue: this.toJsonString(signalling),
    });
  }
}

/**
 * The topics of a source created as code: listed tables' data topics (partitions from the configuration; not those
 * Kafka Connect already created, see TableConfig.existingTopic), and single-partition topics whose order matters
 * or which must exist before anyone produces or subscribes: the schema-change topic (MySQL/MariaDB, SQL Server; the
 * lanes subscribe to it), the signal topic (Debezium reads partition 0 only) and the notification topic (the
 * backfill command subscribes before it signals).
 */
function topicsAsCode(source: SourceConfig): KafkaTopicSpec[] {
  const topics: KafkaTopicSpec[] = dataTopics(source)
    .filter((t) => t.table.existingTopic !== true)
    .map((t) => ({ name: t.topicName, partitions: t.table.partitions }));
  const schemaTopic = schemaChangeTopicName(source);
  if (schemaTopic !== undefined) topics.push({ name: schemaTopic, partitions: 1 });
  topics.push({ name: signalTopicName(source), partitions: 1 }, { name: notificationTopicName(source), partitions: 1 });
  return topics;
}
