import { type RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as msk from 'aws-cdk-lib/aws-msk';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import type { MskConfig, ProvisionedMskConfig } from '../config';
import { acknowledgeNag, BASIC_EXECUTION_POLICY } from '../nag';
import { MskArns } from './msk-arns';

export interface MskClusterProps {
  /** Cluster name (at most 64 characters). */
  readonly clusterName: string;
  readonly config: MskConfig;
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly securityGroup: ec2.ISecurityGroup;
  /** Encrypts broker volumes (provisioned clusters; serverless clusters always encrypt with an AWS key). */
  readonly encryptionKey: kms.IKey;
  readonly removalPolicy: RemovalPolicy;
  /** Retention of broker logs, as a CloudWatch Logs value. */
  readonly logRetention: logs.RetentionDays;
}

/** Broker disk use (percent) that storage autoscaling keeps the volumes at. */
export const STORAGE_TARGET_UTILIZATION = 60;

/**
 * Broker storage autoscaling (Application Auto Scaling, target tracking on KafkaBrokerStorageUtilization): MSK grows
 * every broker's volume when its disk use passes the target, up to maxEbsVolumeGiB. It never shrinks one (scale-in
 * is disabled, MSK cannot shrink volumes), and MSK allows one expansion every six hours, so the disk alarm stays
 * necessary. Registration uses Application Auto Scaling's service-linked role for MSK (no RoleARN).
 */
function brokerStorageAutoScaling(
  scope: Construct,
  cluster: msk.CfnCluster,
  config: ProvisionedMskConfig,
): MskCluster['storageAutoScaling'] {
  const maxVolumeGiB = config.maxEbsVolumeGiB ?? Math.min(4 * config.ebsVolumeGiB, 16_384);
  if (maxVolumeGiB <= config.ebsVolumeGiB) return undefined;
  const target = new appscaling.CfnScalableTarget(scope, 'StorageScalableTarget', {
    serviceNamespace: 'kafka',
    scalableDimension: 'kafka:broker-storage:VolumeSize',
    resourceId: cluster.attrArn,
    minCapacity: config.ebsVolumeGiB,
    maxCapacity: maxVolumeGiB,
  });
  new appscaling.CfnScalingPolicy(scope, 'StorageScalingPolicy', {
    policyName: `${cluster.clusterName}-broker-storage`,
    policyType: 'TargetTrackingScaling',
    scalingTargetId: target.ref,
    targetTrackingScalingPolicyConfiguration: {
      predefinedMetricSpecification: { predefinedMetricType: 'KafkaBrokerStorageUtilization' },
      targetValue: STORAGE_TARGET_UTILIZATION,
      disableScaleIn: true,
    },
  });
  return { maxVolumeGiB, targetUtilizationPercent: STORAGE_TARGET_UTILIZATION };
}

/** Replication factor of every topic; with min.insync.replicas 2, one broker (or AZ) can fail without data loss. */
export const REPLICATION_FACTOR = 3;
export const MIN_INSYNC_REPLICAS = 2;

/**
 * An MSK cluster reachable only with IAM auth over TLS (port 9098): provisioned (3 AZs, KMS at rest, TLS between
 * brokers, per-topic-partition metrics, broker logs, a configuration enforcing RF 3 / min ISR 2 and the retention) or
 * serverless. Also resolves the IAM bootstrap brokers, which CloudFormation does not return as an attribute.
 */
export class MskCluster extends Construct {
  readonly clusterArn: string;
  readonly clusterName: string;
  readonly serverless: boolean;
  /** `BootstrapBrokerStringSaslIam`, from the GetBootstrapBrokers API at deploy time. */
  readonly bootstrapServers: string;
  readonly arns: MskArns;
  /** The provisioned cluster, for metrics (undefined when serverless). */
  readonly provisioned?: msk.CfnCluster;
  /** Broker storage autoscaling of the provisioned cluster (undefined when serverless or switched off). */
  readonly storageAutoScaling?: { readonly maxVolumeGiB: number; readonly targetUtilizationPercent: number };

  constructor(scope: Construct, id: string, props: MskClusterProps) {
    super(scope, id);
    this.clusterName = props.clusterName;
    const subnetIds = props.vpc.selectSubnets(props.subnets).subnetIds;

    if (props.config.mode === 'provisioned') {
      const configuration = new msk.CfnConfiguration(this, 'Configuration', {
        name: `${props.clusterName}-brokers`,
        description: 'cdc-sync broker defaults: RF 3, min ISR 2, no auto-created topics',
        serverProperties: [
          // Topics are created as code (AWS::MSK::Topic) or by Kafka Connect with explicit settings, never by a typo.
          'auto.create.topics.enable=false',
          `default.replication.factor=${REPLICATION_FACTOR}`,
          `min.insync.replicas=${MIN_INSYNC_REPLICAS}`,
          `offsets.topic.replication.factor=${REPLICATION_FACTOR}`,
          `transaction.state.log.replication.factor=${REPLICATION_FACTOR}`,
          `transaction.state.log.min.isr=${MIN_INSYNC_REPLICAS}`,
          'unclean.leader.election.enable=false',
          `log.retention.hours=${props.config.retentionHours}`,
          'num.partitions=1',
        ].join('\n'),
      });
      const brokerLogs = new logs.LogGroup(this, 'BrokerLogs', {
        retention: props.logRetention,
        removalPolicy: props.removalPolicy,
      });
      const cluster = new msk.CfnCluster(this, 'Cluster', {
        clusterName: props.clusterName,
        kafkaVersion: props.config.kafkaVersion,
        numberOfBrokerNodes: props.config.brokerCount,
        brokerNodeGroupInfo: {
          clientSubnets: subnetIds,
          instanceType: props.config.brokerInstanceType,
          securityGroups: [props.securityGroup.securityGroupId],
          storageInfo: { ebsStorageInfo: { volumeSize: props.config.ebsVolumeGiB } },
        },
        clientAuthentication: { sasl: { iam: { enabled: true } }, unauthenticated: { enabled: false } },
        encryptionInfo: {
          encryptionAtRest: { dataVolumeKmsKeyId: props.encryptionKey.keyArn },
          encryptionInTransit: { clientBroker: 'TLS', inCluster: true },
        },
        enhancedMonitoring: 'PER_TOPIC_PER_PARTITION',
        loggingInfo: { brokerLogs: { cloudWatchLogs: { enabled: true, logGroup: brokerLogs.logGroupName } } },
        configurationInfo: { arn: configuration.attrArn, revision: configuration.attrLatestRevisionRevision },
      });
      cluster.applyRemovalPolicy(props.removalPolicy);
      this.provisioned = cluster;
      this.storageAutoScaling = brokerStorageAutoScaling(this, cluster, props.config);
      this.clusterArn = cluster.attrArn;
      this.serverless = false;
    } else {
      const cluster = new msk.CfnServerlessCluster(this, 'Cluster', {
        clusterName: props.clusterName,
        clientAuthentication: { sasl: { iam: { enabled: true } } },
        vpcConfigs: [{ subnetIds, securityGroups: [props.securityGroup.securityGroupId] }],
      });
      cluster.applyRemovalPolicy(props.removalPolicy);
      this.clusterArn = cluster.attrArn;
      this.serverless = true;
    }
    this.arns = new MskArns(this, this.clusterArn, this.clusterName);

    // CloudFormation has no attribute for the bootstrap brokers. The API call runs when this resource is created and
    // again only when its properties change, i.e. when the cluster ARN changes (a replaced cluster), not on every
    // deploy: MSK keeps the bootstrap names of a cluster stable (adding brokers adds names without removing any).
    const bootstrap = new cr.AwsCustomResource(this, 'BootstrapBrokers', {
      onUpdate: {
        service: 'Kafka',
        action: 'getBootstrapBrokers',
        parameters: { ClusterArn: this.clusterArn },
        physicalResourceId: cr.PhysicalResourceId.of(`${props.clusterName}-bootstrap-brokers`),
        outputPaths: ['BootstrapBrokerStringSaslIam'],
      },
      policy: cr.AwsCustomResourcePolicy.fromStatements([
        new iam.PolicyStatement({ actions: ['kafka:GetBootstrapBrokers'], resources: [this.clusterArn] }),
      ]),
      installLatestAwsSdk: false,
    });
    this.bootstrapServers = bootstrap.getResponseField('BootstrapBrokerStringSaslIam');
    // AwsCustomResource runs in one singleton function per stack, outside this construct.
    acknowledgeNag(Stack.of(this), {
      rule: 'AwsSolutions-IAM4',
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName(BASIC_EXECUTION_POLICY).managedPolicyArn],
      path: new RegExp(`/AWS${cr.AwsCustomResource.PROVIDER_FUNCTION_UUID.replaceAll('-', '')}/`),
      reason:
        'AwsCustomResource singleton function: the AWS managed basic execution policy only grants CloudWatch Logs.',
    });
  }
}
