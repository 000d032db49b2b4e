/**
 * `npm run rebuild -- … --env <env>`: where a deployed environment's sinks, audit log and lane checkpoints are, from
 * its configuration (lib/config) and the data stack, the way `npm run smoke -- --env` finds them (tools/smoke/aws.ts:
 * the buckets from the stack's outputs or resources, or the flags that name them).
 *
 * - cache: the ElastiCache endpoint given with `--redis-url` (cluster protocol; reachable inside the VPC only, so the
 *   command runs there), the lanes' key prefix and tombstone TTL from the config.
 * - dedupe table (the lanes' checkpoints): `--dedupe-table`, else the data stack's `DedupeTable…` resource.
 */
import { ListStackResourcesCommand, type StackResourceSummary } from '@aws-sdk/client-cloudformation';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createRedis } from '../../functions/adapters/redis-cache-sink';
import type { EnvironmentConfig } from '../../lib/config';
import { createSmokeAwsClients, DEFAULT_PREFIXES, type SmokeAwsClients, sinkBuckets } from '../smoke/aws';
import { deployedNames } from '../status/aws';
import { dynamoCheckpoints } from './checkpoints';
import { DEFAULT_TOMBSTONE_TTL_SECONDS, type RebuildOptions, RebuildSetupError, type RebuildSink } from './rebuild';

export interface RebuildAwsClients extends SmokeAwsClients {
  dynamodb: DynamoDBClient;
}

/** Clients for the environment's region, credentials from the SDK's default chain. */
export function createRebuildAwsClients(region: string): RebuildAwsClients {
  return {
    ...createSmokeAwsClients(region),
    dynamodb: new DynamoDBClient({ region, requestHandler: { connectionTimeout: 5_000, requestTimeout: 15_000 } }),
  };
}

export interface AwsRebuildFlags {
  sink: RebuildSink;
  redisUrl?: string;
  warehouseBucket?: string;
  auditBucket?: string;
  dedupeTable?: string;
}

/** The dedupe table's name: the data stack's `DedupeTable<hash>` resource (CloudFormation generates the name). */
export async function dedupeTableName(config: EnvironmentConfig, clients: RebuildAwsClients): Promise<string> {
  const stack = deployedNames(config).stacks.data;
  const resources: StackResourceSummary[] = [];
  let token: string | undefined;
  try {
    do {
      const page = await clients.cloudFormation.send(
        new ListStackResourcesCommand({ StackName: stack, NextToken: token }),
      );
      resources.push(...(page.StackResourceSummaries ?? []));
      token = page.NextToken;
    } while (token);
  } catch (error) {
    throw new RebuildSetupError(
      `cannot find the dedupe table in stack ${stack} (${(error as Error).message}); name it with --dedupe-table`,
    );
  }
  const table = resources.find(
    (r) => r.ResourceType === 'AWS::DynamoDB::Table' && /^DedupeTable[0-9A-F]{8}$/.test(r.LogicalResourceId ?? ''),
  )?.PhysicalResourceId;
  if (!table) throw new RebuildSetupError(`stack ${stack} has no dedupe table; name it with --dedupe-table`);
  return table;
}

/** The rebuild's clients and places in a deployed environment (without `sink` and the flags of the rebuild itself). */
export async function awsRebuildTarget(
  config: EnvironmentConfig,
  clients: RebuildAwsClients,
  flags: AwsRebuildFlags,
): Promise<Omit<RebuildOptions, 'sink' | 'tables' | 'asOf'>> {
  if (flags.sink === 'cache' && flags.redisUrl === undefined) {
    throw new RebuildSetupError('rebuilding the cache of an environment needs --redis-url (its ElastiCache endpoint)');
  }
  const [buckets, dedupe] = await Promise.all([
    sinkBuckets(config, clients, { warehouse: flags.warehouseBucket, audit: flags.auditBucket }),
    flags.dedupeTable ?? dedupeTableName(config, clients),
  ]);
  const cache = config.lanes.cache;
  return {
    s3: clients.s3,
    audit: { bucket: buckets.audit, prefix: config.lanes.audit.prefix ?? DEFAULT_PREFIXES.audit },
    warehouse: { bucket: buckets.warehouse, prefix: config.lanes.warehouse.prefix ?? DEFAULT_PREFIXES.warehouse },
    ...(flags.redisUrl !== undefined
      ? {
          cache: {
            redis: createRedis(flags.redisUrl, true),
            prefix: cache.keyPrefix ?? DEFAULT_PREFIXES.cache,
            tombstoneTtlSeconds: cache.tombstoneTtlSeconds ?? DEFAULT_TOMBSTONE_TTL_SECONDS,
          },
        }
      : {}),
    checkpoints: dynamoCheckpoints(clients.dynamodb, dedupe),
  };
}
