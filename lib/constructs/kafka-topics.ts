import { CustomResource, Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as msk from 'aws-cdk-lib/aws-msk';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { acknowledgeProviderFramework } from '../nag';
import { type MskCluster, REPLICATION_FACTOR } from './msk-cluster';
import { ProjectFunction } from './node-function';

export interface KafkaTopicSpec {
  readonly name: string;
  readonly partitions: number;
}

export interface KafkaTopicsProps {
  readonly cluster: MskCluster;
  readonly topics: readonly KafkaTopicSpec[];
  /** Topic retention (serverless only; provisioned topics inherit the cluster configuration's retention). */
  readonly retentionHours: number;
  /** Needed for serverless clusters: the topic admin function runs in the VPC. */
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly adminSecurityGroup: ec2.ISecurityGroup;
  /** DESTROY deletes the topics (and their records) with the stack. */
  readonly removalPolicy: RemovalPolicy;
  readonly logRetention: logs.RetentionDays;
}

/**
 * The data topics, as code. Provisioned clusters get one `AWS::MSK::Topic` per topic (partition count per table from
 * the configuration, replication factor 3). MSK Serverless has no topic API, so there a custom resource creates them
 * through the Kafka admin protocol (lib/custom-resources/topics).
 */
export class KafkaTopics extends Construct {
  /** Something connectors and event source mappings can depend on: the topics exist once it is created. */
  readonly dependable: Construct;

  constructor(scope: Construct, id: string, props: KafkaTopicsProps) {
    super(scope, id);
    if (!props.cluster.serverless) {
      for (const topic of props.topics) {
        const resource = new msk.CfnTopic(this, topic.name, {
          clusterArn: props.cluster.clusterArn,
          topicName: topic.name,
          partitionCount: topic.partitions,
          replicationFactor: REPLICATION_FACTOR,
        });
        resource.applyRemovalPolicy(props.removalPolicy);
      }
      this.dependable = this;
      return;
    }

    const admin = new ProjectFunction(this, 'TopicAdmin', {
      entry: 'lib/custom-resources/topics/index.ts',
      handler: 'onEvent',
      description: 'Creates the cdc-sync topics on MSK Serverless (custom resource)',
      timeout: Duration.minutes(5),
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      securityGroups: [props.adminSecurityGroup],
      logRetention: props.logRetention,
      logRemovalPolicy: props.removalPolicy,
    });
    const arns = props.cluster.arns;
    admin.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['kafka-cluster:Connect', 'kafka-cluster:DescribeCluster'],
        resources: [props.cluster.clusterArn],
      }),
    );
    admin.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [
          'kafka-cluster:CreateTopic',
          'kafka-cluster:DescribeTopic',
          'kafka-cluster:AlterTopic',
          'kafka-cluster:DeleteTopic',
        ],
        resources: props.topics.map((t) => arns.topic(t.name)),
      }),
    );
    const provider = new cr.Provider(this, 'Provider', {
      onEventHandler: admin,
      logGroup: new logs.LogGroup(this, 'ProviderLogs', {
        retention: props.logRetention,
        removalPolicy: props.removalPolicy,
      }),
    });
    acknowledgeProviderFramework(provider);
    const resource = new CustomResource(this, 'Topics', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::MskServerlessTopics',
      properties: {
        ClusterArn: props.cluster.clusterArn,
        BootstrapServers: props.cluster.bootstrapServers,
        Topics: JSON.stringify(props.topics),
        RetentionMs: String(props.retentionHours * 3_600_000),
        DeleteTopicsOnDelete: String(props.removalPolicy === RemovalPolicy.DESTROY),
      },
    });
    this.dependable = resource;
  }
}
