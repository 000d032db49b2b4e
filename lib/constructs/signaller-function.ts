import { Duration, type RemovalPolicy } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { type EnvironmentConfig, type SourceConfig, signalTopicName } from '../config';
import { acknowledgeNag } from '../nag';
import { grantKeyVia, resourcePrefix } from '../util';
import type { MskArns } from './msk-arns';
import { ProjectFunction } from './node-function';

/** The function's timeout; the queue's visibility timeout is six times it (AWS's advice for SQS event sources). */
const SIGNALLER_TIMEOUT = Duration.seconds(30);
/** Receives before a signal goes to the dead-letter queue (five tries over about 15 minutes of visibility timeouts). */
export const SIGNAL_MAX_RECEIVE_COUNT = 5;

export interface SignallerProps {
  readonly env: EnvironmentConfig;
  /** Every source with a Kafka signal channel: the function may produce to exactly their signal topics. */
  readonly sources: readonly SourceConfig[];
  /** The cluster holding the signal topics. */
  readonly cluster: { readonly clusterArn: string; readonly arns: MskArns; readonly bootstrapServers: string };
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  /** A group that may reach the brokers' IAM listener. */
  readonly securityGroup: ec2.ISecurityGroup;
  /** Encrypts both queues. */
  readonly key: kms.IKey;
  /** Days the dead-letter queue keeps a signal that could not be produced. */
  readonly deadLetterRetentionDays: number;
  readonly logRetention: logs.RetentionDays;
  readonly removalPolicy: RemovalPolicy;
}

/**
 * The path of an incremental snapshot signal from a lane to Debezium: the signals queue (SQS FIFO, one message group
 * per connector, deduplicated by signal id), the signaller function (functions/signaller) that produces each message
 * to its connector's Kafka signal topic, and a FIFO dead-letter queue for signals that failed
 * {@link SIGNAL_MAX_RECEIVE_COUNT} times. Only this function holds a Kafka client and Kafka write access: the lanes
 * get `sqs:SendMessage` on the queue through {@link Signaller.bindSender}.
 */
export class Signaller extends Construct {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly function: ProjectFunction;
  /** The signal topic of each source, by `topicPrefix` (the function's SIGNAL_TOPICS). */
  readonly topics: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: SignallerProps) {
    super(scope, id);
    const prefix = resourcePrefix(props.env);
    const encryption = {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: props.key,
      dataKeyReuse: Duration.hours(1),
      enforceSSL: true,
      removalPolicy: props.removalPolicy,
    };
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetters', {
      queueName: `${prefix}-signal-dead-letters.fifo`,
      fifo: true,
      retentionPeriod: Duration.days(props.deadLetterRetentionDays),
      ...encryption,
    });
    acknowledgeNag(this.deadLetterQueue, {
      rule: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself the dead-letter queue of the signals queue; a signal in it needs a human (it alarms), not another consumer.',
    });
    this.queue = new sqs.Queue(this, 'Queue', {
      queueName: `${prefix}-signals.fifo`,
      fifo: true,
      // The sender sets MessageDeduplicationId to the signal id: two lanes' or two attempts' copies are one message.
      contentBasedDeduplication: false,
      visibilityTimeout: Duration.seconds(6 * SIGNALLER_TIMEOUT.toSeconds()),
      retentionPeriod: Duration.days(4),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: SIGNAL_MAX_RECEIVE_COUNT },
      ...encryption,
    });

    this.topics = Object.fromEntries(props.sources.map((s) => [s.topicPrefix, signalTopicName(s)]));
    this.function = new ProjectFunction(this, 'Function', {
      entry: 'functions/signaller/index.ts',
      handler: 'handler',
      functionName: `${prefix}-signaller`,
      description: `cdc-sync ${props.env.name} signaller: incremental snapshot signals from the lanes to Debezium's Kafka signal topics`,
      memorySize: 256,
      timeout: SIGNALLER_TIMEOUT,
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      securityGroups: [props.securityGroup],
      environment: {
        POWERTOOLS_SERVICE_NAME: 'cdc-sync-signaller',
        SIGNAL_TOPICS: JSON.stringify(this.topics),
        SIGNAL_BOOTSTRAP_SERVERS: props.cluster.bootstrapServers,
      },
      logRetention: props.logRetention,
      logRemovalPolicy: props.removalPolicy,
    });
    // Produce-only on exactly the signal topics; the producer is not idempotent, so no cluster-level
    // WriteDataIdempotently.
    this.function.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['kafka-cluster:Connect'], resources: [props.cluster.clusterArn] }),
    );
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['kafka-cluster:DescribeTopic', 'kafka-cluster:WriteData'],
        resources: Object.values(this.topics).map((topic) => props.cluster.arns.topic(topic)),
      }),
    );
    // The SQS mapping written out instead of SqsEventSource, whose consume grant gives kms:Decrypt on the key with no
    // kms:ViaService condition: here the role may only decrypt what SQS hands it.
    new lambda.EventSourceMapping(this, 'QueueMapping', {
      target: this.function,
      eventSourceArn: this.queue.queueArn,
      // A FIFO event source takes at most 10 messages and no batching window.
      batchSize: 10,
      reportBatchItemFailures: true,
    });
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [
          'sqs:ReceiveMessage',
          'sqs:ChangeMessageVisibility',
          'sqs:GetQueueUrl',
          'sqs:DeleteMessage',
          'sqs:GetQueueAttributes',
        ],
        resources: [this.queue.queueArn],
      }),
    );
    grantKeyVia(this.function, props.key, 'sqs', 'kms:Decrypt');
  }

  /**
   * SIGNAL_QUEUE_URL on `fn`, with `sqs:SendMessage` on the signals queue only and the key to encrypt messages: set
   * in one call so the variable and the grant cannot drift.
   */
  bindSender(fn: ProjectFunction): void {
    fn.addEnvironment('SIGNAL_QUEUE_URL', this.queue.queueUrl);
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [this.queue.queueArn] }));
    if (this.queue.encryptionMasterKey !== undefined) {
      grantKeyVia(fn, this.queue.encryptionMasterKey, 'sqs', 'kms:GenerateDataKey', 'kms:Decrypt');
    }
  }
}
