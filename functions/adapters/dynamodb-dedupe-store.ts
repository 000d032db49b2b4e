import {
  type AttributeValue,
  BatchGetItemCommand,
  type BatchGetItemCommandOutput,
  ConditionalCheckFailedException,
  type DynamoDBClient,
  PutItemCommand,
  type TransactionCanceledException,
  TransactWriteItemsCommand,
} from '@aws-sdk/client-dynamodb';
import { DedupeError } from '../core/errors';
import type {
  Checkpoint,
  CheckpointCommit,
  DedupeStore,
  KeyAttempts,
  Lane,
  ParkedKey,
  PartitionBatch,
} from '../core/types';

export interface DynamoDedupeStoreOptions {
  tableName: string;
  /** Checkpoints of idle partitions expire after this many days; the audit lane's never do (chain head). */
  ttlDays: number;
  clock?: () => number;
}

/** BatchGetItem takes at most 100 keys per request. */
const BATCH_GET_LIMIT = 100;
const UNPROCESSED_RETRIES = 5;
/** TransactWriteItems takes at most 100 actions. */
const TRANSACT_LIMIT = 100;

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
  // Entries (an array keeps their order, least recently met first); the legacy `schema` is never written, so the
  // first commit of a migrated checkpoint drops it (the Put replaces the whole item).
  if (cp.schemas !== undefined) item.schemas = { S: JSON.stringify(Object.entries(cp.schemas)) };
  // Parked keys and attempt counts (core/parking.ts): small bounded lists, JSON like the schemas.
  if (cp.parked?.length) item.parked = { S: JSON.stringify(cp.parked) };
  if (cp.attempts?.length) item.attempts = { S: JSON.stringify(cp.attempts) };
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
  if (item.schemas?.S) cp.schemas = Object.fromEntries(JSON.parse(item.schemas.S) as Array<[string, string]>);
  else if (item.schema?.S) cp.schema = item.schema.S;
  if (item.parked?.S) cp.parked = JSON.parse(item.parked.S) as ParkedKey[];
  if (item.attempts?.S) cp.attempts = JSON.parse(item.attempts.S) as KeyAttempts[];
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

  /**
   * Commits a batch's checkpoints in one TransactWriteItems (up to 100 per transaction, chunks in parallel), each Put
   * conditional on the version it was read at; a single checkpoint is a plain conditional PutItem (a transactional
   * write costs two write units, a plain one one).
   *
   * Why one request: a checkpoint per topic-partition per batch was one DynamoDB call each, as many calls per batch as
   * partitions — the lane's largest per-partition cost after the sink write itself. A transaction is all or nothing,
   * so when some conditions fail (`TransactionCanceledException`, one reason per item) those partitions get a
   * CHECKPOINT_CONFLICT and the others are committed in a new transaction: one partition's conflict never holds back
   * the rest. The SDK gives each TransactWriteItems an idempotency token, so its own retries cannot apply it twice.
   */
  async commit(lane: Lane, commits: readonly CheckpointCommit[]): Promise<Array<DedupeError | undefined>> {
    const outcomes = new Array<DedupeError | undefined>(commits.length).fill(undefined);
    const chunks: number[][] = [];
    for (let start = 0; start < commits.length; start += TRANSACT_LIMIT) {
      chunks.push(Array.from({ length: Math.min(TRANSACT_LIMIT, commits.length - start) }, (_, i) => start + i));
    }
    await Promise.all(chunks.map((chunk) => this.commitChunk(lane, commits, chunk, outcomes)));
    return outcomes;
  }

  private async commitChunk(
    lane: Lane,
    commits: readonly CheckpointCommit[],
    chunk: readonly number[],
    outcomes: Array<DedupeError | undefined>,
  ): Promise<void> {
    const now = this.clock();
    const expiresAt = lane === 'audit' ? undefined : Math.floor(now / 1000) + this.options.ttlDays * 86_400;
    const put = (i: number) => {
      const { partition, previous, next } = commits[i] as CheckpointCommit;
      return {
        TableName: this.options.tableName,
        Item: toItem(checkpointKey(lane, partition), next, expiresAt, now),
        ConditionExpression: previous ? '#version = :previous' : 'attribute_not_exists(pk)',
        ExpressionAttributeNames: previous ? { '#version': 'version' } : undefined,
        ExpressionAttributeValues: previous ? { ':previous': { N: String(previous.version) } } : undefined,
      };
    };
    const idOf = (i: number) => (commits[i] as CheckpointCommit).partition.id;
    const conflict = (i: number, cause: unknown) =>
      new DedupeError(
        'CHECKPOINT_CONFLICT',
        `checkpoint of ${idOf(i)} changed since it was read (another batch for the same partition?)`,
        { cause },
      );
    const unavailable = (i: number, cause: unknown, detail = (cause as Error).message) =>
      new DedupeError('DEDUPE_UNAVAILABLE', `committing checkpoint of ${idOf(i)}: ${detail}`, { cause });

    let pending = [...chunk];
    while (pending.length > 0) {
      if (pending.length === 1) {
        const i = pending[0] as number;
        try {
          await this.client.send(new PutItemCommand(put(i)));
        } catch (error) {
          outcomes[i] = isConditionFailure(error) ? conflict(i, error) : unavailable(i, error);
        }
        return;
      }
      try {
        await this.client.send(new TransactWriteItemsCommand({ TransactItems: pending.map((i) => ({ Put: put(i) })) }));
        return;
      } catch (error) {
        const reasons = (error as TransactionCanceledException).CancellationReasons;
        if ((error as Error).name !== 'TransactionCanceledException' || reasons?.length !== pending.length) {
          for (const i of pending) outcomes[i] = unavailable(i, error);
          return;
        }
        // Cancelled: nothing was written. Blame the items with a reason, retry the others.
        const retry: number[] = [];
        reasons.forEach((reason, k) => {
          const i = pending[k] as number;
          if (!reason.Code || reason.Code === 'None') retry.push(i);
          else if (reason.Code === 'ConditionalCheckFailed') outcomes[i] = conflict(i, error);
          else outcomes[i] = unavailable(i, error, `${reason.Code}: ${reason.Message ?? 'transaction cancelled'}`);
        });
        if (retry.length === pending.length) {
          for (const i of pending) outcomes[i] = unavailable(i, error);
          return;
        }
        pending = retry;
      }
    }
  }
}

function isConditionFailure(error: unknown): boolean {
  return (
    error instanceof ConditionalCheckFailedException || (error as Error).name === 'ConditionalCheckFailedException'
  );
}
