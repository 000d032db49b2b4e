import { Duration, Stack, type StackProps } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { type Construct, DependencyGroup } from 'constructs';
import {
  DEFAULT_UNLISTED_TOPIC_PARTITIONS,
  dataTopics,
  type EnvironmentConfig,
  HEARTBEAT_TOPIC_PARTITIONS,
  heartbeatTableTopicName,
  notificationTopicName,
  type SignallingParameter,
  type SourceConfig,
  schemaChangeTopicName,
  signallingParameterName,
  signalTopicName,
  unlistedTopicName,
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

    // The catch-all topic of an Avro source holds every unlisted table, and the converter names the value schema
    // after the topic: one registry schema whose versions are unrelated tables. Created here with compatibility NONE
    // (the converter then only adds versions), or the second unlisted table would fail the first one's compatibility
    // check and stop the connector. Listed tables keep the environment's compatibility mode.
    const catchAllSchemas = config.sources
      .filter((source) => source.format === 'avro')
      .map((source) => {
        const schema = new glue.CfnSchema(this, `UnlistedSchema-${source.name}`, {
          name: unlistedTopicName(source),
          description: `cdc-sync ${config.name}: values of the ${source.name} tables without a topic of their own`,
          registry: { arn: this.schemaRegistry.attrArn },
          dataFormat: 'AVRO',
          compatibility: 'NONE',
          // Glue creates a schema with a first version; Debezium registers the real ones next to it.
          schemaDefinition: JSON.stringify(UNLISTED_PLACEHOLDER_SCHEMA),
        });
        return schema;
      });

    this.connect = new MskConnect(this, 'Connect', {
      env: config,
      cluster: this.cluster,
      vpc: props.vpc,
      subnets: props.subnets,
      securityGroup: props.connectSecurityGroup,
      schemaRegistryName: this.schemaRegistry.name,
      schemaRegistryArn: this.schemaRegistry.attrArn,
      topics: new DependencyGroup(topics.dependable, ...catchAllSchemas),
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

/** The first version of a catch-all topic's registry schema: a record no Debezium schema is named like. */
const UNLISTED_PLACEHOLDER_SCHEMA = {
  type: 'record',
  name: 'Placeholder',
  namespace: 'io.cdcsync.unlisted',
  doc: 'First version of the catch-all topic schema; Debezium registers the tables as further versions.',
  fields: [],
};

/**
 * The topics of a source created as code: listed tables' data topics (partitions from the configuration; not those
 * Kafka Connect already created, see TableConfig.existingTopic), the catch-all topic of unlisted tables (partitions
 * from `unlistedTopicPartitions`; the lanes subscribe to it, so it must exist first), and single-partition topics
 * whose order matters or which must exist before anyone produces or subscribes: the heartbeat table's topic (the
 * lanes subscribe to it; not when it exists already, `heartbeatTopicExists`), the schema-change topic (MySQL/MariaDB,
 * SQL Server; the lanes subscribe to it), the signal topic (Debezium reads partition 0 only) and the notification
 * topic (the backfill command subscribes before it signals).
 */
function topicsAsCode(source: SourceConfig): KafkaTopicSpec[] {
  const topics: KafkaTopicSpec[] = dataTopics(source)
    .filter((t) => t.table.existingTopic !== true)
    .map((t) => ({ name: t.topicName, partitions: t.table.partitions }));
  topics.push({
    name: unlistedTopicName(source),
    partitions: source.unlistedTopicPartitions ?? DEFAULT_UNLISTED_TOPIC_PARTITIONS,
  });
  const heartbeatTopic = heartbeatTableTopicName(source);
  if (heartbeatTopic !== undefined && source.heartbeatTopicExists !== true) {
    topics.push({ name: heartbeatTopic, partitions: HEARTBEAT_TOPIC_PARTITIONS });
  }
  const schemaTopic = schemaChangeTopicName(source);
  if (schemaTopic !== undefined) topics.push({ name: schemaTopic, partitions: 1 });
  topics.push({ name: signalTopicName(source), partitions: 1 }, { name: notificationTopicName(source), partitions: 1 });
  return topics;
}
