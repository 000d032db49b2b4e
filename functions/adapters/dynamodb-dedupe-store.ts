import {
  type AttributeValue,
  BatchGetItemCommand,
  type BatchGetItemCommandOutput,
  ConditionalCheckFailedException,
  type DynamoDBClient,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import { DedupeError } from '../core/errors';
import type { Checkpoint, DedupeStore, Lane, PartitionBatch } from '../core/types';

export interface DynamoDedupeStoreOptions {
  tableName: string;
  /** Checkpoints of idle partitions expire after this many days; the audit lane's never do (chain head). */
  ttlDays: number;
  clock?: () => number;
}

/** BatchGetItem takes at most 100 keys per request. */
const BATCH_GET_LIMIT = 100;
const UNPROCESSED_RETRIES = 5;

/** `cp#<lane>#<topic>#<partition>`: one item per lane and topic-partition, lane-prefixed so lanes never collide. */
export function checkpointKey(lane: Lane, partition: Pick<PartitionBatch, 'topic' | 'partition'>): string {
  return `cp#${lane}#${partition.topic}#${partition.partition}`;
}

function toItem(
  pk: string,
  cp: Checkpoint,
  expiresAt: number | undefined,
  now: number,
): Record<string, AttributeValue> {
  const item: Record<string, AttributeValue> = {
    pk: { S: pk },
    offset: { N: String(cp.offset) },
    hw: { S: cp.hw === '' ? '-' : cp.hw },
    hwIds: { S: cp.hwIds.join(' ') },
    version: { N: String(cp.version) },
    updatedAt: { N: String(now) },
  };
  if (cp.sinkState !== undefined) item.sinkState = { S: JSON.stringify(cp.sinkState) };
  if (expiresAt !== undefined) item.expiresAt = { N: String(expiresAt) };
  return item;
}

function fromItem(item: Record<string, AttributeValue>): Checkpoint {
  const hw = item.hw?.S ?? '';
  const ids = item.hwIds?.S ?? '';
  const cp: Checkpoint = {
    offset: Number(item.offset?.N ?? -1),
    hw: hw === '-' ? '' : hw,
    hwIds: ids === '' ? [] : ids.split(' '),
    version: Number(item.version?.N ?? 0),
  };
  if (item.sinkState?.S) cp.sinkState = JSON.parse(item.sinkState.S);
  return cp;
}

/** Checkpoints in one DynamoDB table (partition key `pk`, TTL attribute `expiresAt`). */
export class DynamoDedupeStore implements DedupeStore {
  private readonly clock: () => number;

  constructor(
    private readonly client: DynamoDBClient,
    private readonly options: DynamoDedupeStoreOptions,
  ) {
    this.clock = options.clock ?? Date.now;
  }

  async load(lane: Lane, partitions: readonly PartitionBatch[]): Promise<Map<string, Checkpoint>> {
    const byKey = new Map(partitions.map((p) => [checkpointKey(lane, p), p.id] as const));
    const found = new Map<string, Checkpoint>();
    const keys = [...byKey.keys()];
    for (let start = 0; start < keys.length; start += BATCH_GET_LIMIT) {
      let pending: Array<Record<string, AttributeValue>> = keys
        .slice(start, start + BATCH_GET_LIMIT)
        .map((pk) => ({ pk: { S: pk } }));
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > UNPROCESSED_RETRIES) {
          throw new DedupeError(
            'DEDUPE_UNAVAILABLE',
            `checkpoints still unprocessed after ${UNPROCESSED_RETRIES} retries`,
          );
        }
        if (attempt > 0) await new Promise((r) => setTimeout(r, 25 * 2 ** attempt));
        let response: BatchGetItemCommandOutput;
        try {
          response = await this.client.send(
            new BatchGetItemCommand({
              // Strongly consistent: the previous batch's commit must be visible to the next batch.
              RequestItems: { [this.options.tableName]: { Keys: pending, ConsistentRead: true } },
            }),
          );
        } catch (error) {
          throw new DedupeError('DEDUPE_UNAVAILABLE', `reading checkpoints: ${(error as Error).message}`, {
            cause: error,
          });
        }
        for (const item of response.Responses?.[this.options.tableName] ?? []) {
          const id = byKey.get(item.pk?.S ?? '');
          if (id) found.set(id, fromItem(item));
        }
        pending = response.UnprocessedKeys?.[this.options.tableName]?.Keys ?? [];
      }
    }
    return found;
  }

  async commit(
    lane: Lane,
    partition: PartitionBatch,
    previous: Checkpoint | undefined,
    next: Checkpoint,
  ): Promise<void> {
    const now = this.clock();
    const expiresAt = lane === 'audit' ? undefined : Math.floor(now / 1000) + this.options.ttlDays * 86_400;
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.options.tableName,
          Item: toItem(checkpointKey(lane, partition), next, expiresAt, now),
          ConditionExpression: previous ? '#version = :previous' : 'attribute_not_exists(pk)',
          ExpressionAttributeNames: previous ? { '#version': 'version' } : undefined,
          ExpressionAttributeValues: previous ? { ':previous': { N: String(previous.version) } } : undefined,
        }),
      );
    } catch (error) {
      if (
        error instanceof ConditionalCheckFailedException ||
        (error as Error).name === 'ConditionalCheckFailedException'
      ) {
        throw new DedupeError(
          'CHECKPOINT_CONFLICT',
          `checkpoint of ${partition.id} changed since it was read (another batch for the same partition?)`,
          { cause: error },
        );
      }
      throw new DedupeError(
        'DEDUPE_UNAVAILABLE',
        `committing checkpoint of ${partition.id}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
  }
}
