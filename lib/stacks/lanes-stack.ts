import { Duration, Stack, type StackProps } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { type EnvironmentConfig, LANE_NAMES, type LaneName, laneSources, laneTopics } from '../config';
import { ChangeLogCompaction } from '../constructs/compaction-function';
import { CurrentState } from '../constructs/current-state-function';
import { LaneFunction } from '../constructs/lane-function';
import { Signaller } from '../constructs/signaller-function';
import { acknowledgeNag } from '../nag';
import { logRetention, removalPolicyOf, resourcePrefix } from '../util';
import type { DataStack } from './data-stack';
import type { NetworkStack } from './network-stack';
import type { StreamingStack } from './streaming-stack';

export interface LanesStackProps extends StackProps {
  readonly config: EnvironmentConfig;
  readonly network: NetworkStack;
  readonly data: DataStack;
  readonly streaming: StreamingStack;
}

/** Default key prefix and tombstone TTL of the cache lane (mirrors functions/shared/config.ts defaults). */
const DEFAULT_CACHE_KEY_PREFIX = 'cdc';
const DEFAULT_CACHE_TOMBSTONE_TTL_SECONDS = 7 * 24 * 3600;

/**
 * The three lanes. Each is a function consuming every data topic of its sources through its own event source
 * mappings and consumer groups, with its own SQS dead-letter queue, and writes its sink. Beside them the signaller:
 * the lanes' incremental snapshot signals go to its queue, and it produces them to Debezium's Kafka signal topics.
 */
export class LanesStack extends Stack {
  readonly functions: Record<LaneName, LaneFunction>;
  readonly deadLetterQueues: Record<LaneName, sqs.Queue>;
  readonly signaller: Signaller;
  /** The current-state merge; absent when `currentState.enabled` is false or no table has a current-state table. */
  readonly currentState: CurrentState | undefined;
  /** Compaction of the change log; absent when `data.compaction.enabled` is false. */
  readonly compaction: ChangeLogCompaction | undefined;

  constructor(scope: Construct, id: string, props: LanesStackProps) {
    super(scope, id, props);
    const { config, network, data, streaming } = props;
    const removalPolicy = removalPolicyOf(config);
    const functions: Partial<Record<LaneName, LaneFunction>> = {};
    const queues: Partial<Record<LaneName, sqs.Queue>> = {};

    // Every source has a signal topic (streaming stack); whichever lane registers a schema change signals it.
    this.signaller = new Signaller(this, 'Signaller', {
      env: config,
      sources: config.sources,
      cluster: streaming.cluster,
      vpc: network.vpc,
      subnets: network.subnets,
      securityGroup: network.signallerSecurityGroup,
      key: data.dataKey,
      deadLetterRetentionDays: 14,
      logRetention: logRetention(config.observability.logRetentionDays),
      removalPolicy,
    });

    for (const lane of LANE_NAMES) {
      const laneConfig = config.lanes[lane];
      // Validation guarantees a DLQ; the fallback only satisfies the type checker.
      const retentionDays = laneConfig.deadLetterQueue?.retentionDays ?? 14;
      const dlq = new sqs.Queue(this, `${capitalise(lane)}DeadLetters`, {
        queueName: `${resourcePrefix(config)}-${lane}-dead-letters`,
        retentionPeriod: Duration.days(retentionDays),
        encryption: sqs.QueueEncryption.KMS,
        encryptionMasterKey: data.dataKey,
        dataKeyReuse: Duration.hours(1),
        enforceSSL: true,
        removalPolicy,
      });

      acknowledgeNag(dlq, {
        rule: 'AwsSolutions-SQS3',
        reason:
          'This queue is itself the lane dead-letter queue; its messages are inspected and redriven by tooling, not by a consumer that could fail again.',
      });

      const securityGroups: ec2.ISecurityGroup[] = [network.laneSecurityGroup];
      if (lane === 'cache') securityGroups.push(network.cacheClientSecurityGroup);
      const fn = new LaneFunction(this, `${capitalise(lane)}Lane`, {
        env: config,
        lane,
        vpc: network.vpc,
        subnets: network.subnets,
        securityGroups,
        logRetention: logRetention(config.observability.logRetentionDays),
        logRemovalPolicy: removalPolicy,
      });
      fn.bindDedupeTable(data.dedupeTable).bindDeadLetters(dlq, data.failureBucket).bindPiiHashSalt(data.piiHashSalt);
      this.signaller.bindSender(fn);
      switch (lane) {
        case 'warehouse':
          fn.bindWarehouse(data.warehouseBucket, data.warehousePrefix);
          break;
        case 'audit':
          fn.bindAudit(data.auditBucket, data.auditPrefix);
          break;
        case 'cache':
          fn.bindCache(
            { address: data.cache.attrEndpointAddress, port: data.cache.attrEndpointPort },
            {
              keyPrefix: config.lanes.cache.keyPrefix ?? DEFAULT_CACHE_KEY_PREFIX,
              tombstoneTtlSeconds: config.lanes.cache.tombstoneTtlSeconds ?? DEFAULT_CACHE_TOMBSTONE_TTL_SECONDS,
            },
          );
          break;
      }
      fn.subscribe({
        clusterArn: streaming.cluster.clusterArn,
        arns: streaming.cluster.arns,
        topics: laneTopics(config, lane),
        onFailureBucket: data.failureBucket,
        onFailureKey: data.dataKey,
      });
      // Lanes of Avro sources decode Avro themselves, with the environment's Glue registry.
      if (laneSources(config, lane).some((source) => source.format === 'avro')) {
        fn.bindAvroRegistry({ name: streaming.schemaRegistry.name, arn: streaming.schemaRegistry.attrArn });
      }
      functions[lane] = fn;
      queues[lane] = dlq;
    }
    this.functions = functions as Record<LaneName, LaneFunction>;
    this.deadLetterQueues = queues as Record<LaneName, sqs.Queue>;

    const tables = data.catalog.currentStateTables;
    this.currentState =
      config.currentState.enabled !== false && tables.length > 0
        ? new CurrentState(this, 'CurrentState', {
            env: config,
            tables,
            databaseName: data.glueDatabaseName,
            workGroupName: data.catalog.workGroupName,
            warehouseBucket: data.warehouseBucket,
            warehousePrefix: data.warehousePrefix,
            resultsBucket: data.catalog.resultsBucket,
            dataKey: data.dataKey,
            stateTable: data.dedupeTable,
            logRetention: logRetention(config.observability.logRetentionDays),
            removalPolicy,
          })
        : undefined;
    this.compaction =
      config.data.compaction.enabled !== false
        ? new ChangeLogCompaction(this, 'Compaction', {
            env: config,
            warehouseBucket: data.warehouseBucket,
            warehousePrefix: data.warehousePrefix,
            dataKey: data.dataKey,
            logRetention: logRetention(config.observability.logRetentionDays),
            removalPolicy,
          })
        : undefined;
  }
}

function capitalise(value: string): string {
  return value.charAt(0).toUpperCase() + value.slice(1);
}
