import {
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { checkpointKey, DynamoDedupeStore } from '../../functions/adapters/dynamodb-dedupe-store';
import { afterReplay } from '../../functions/core/parking';
import type { Checkpoint, Lane, PartitionBatch } from '../../functions/core/types';
import { LOCAL_NAMES } from '../../tools/local/services';
import { useLocalServices } from '../support/local';

const services = useLocalServices();
const partition = (topic: string, n: number): PartitionBatch => ({
  id: `${topic}-${n}`,
  topic,
  partition: n,
  records: [],
});
const NOW = 1_710_498_600_000;
const store = (client: DynamoDBClient = services().clients.dynamodb) =>
  new DynamoDedupeStore(client, {
    tableName: LOCAL_NAMES.dedupeTable,
    ttlDays: 30,
    clock: () => NOW,
  });
/** One partition's commit; rejects with the store's error for it, as the pipeline would report it. */
const commitOne = async (lane: Lane, p: PartitionBatch, previous: Checkpoint | undefined, next: Checkpoint) => {
  const [error] = await store().commit(lane, [{ partition: p, previous, next }]);
  if (error) throw error;
};
/** A client on the same dynalite that records the name of every command it sends. */
function countingClient(): { client: DynamoDBClient; sent: string[] } {
  const sent: string[] = [];
  const client = new DynamoDBClient({
    endpoint: services().endpoints.dynamodb,
    region: 'eu-west-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  client.middlewareStack.add(
    (next, context) => (args) => {
      sent.push(String(context.commandName));
      return next(args);
    },
    { step: 'initialize' },
  );
  return { client, sent };
}
const cp = (offset: number, version: number): Checkpoint => ({ offset, hw: '', hwIds: [], version });
/** First commits of these partitions (never committed before), at offset = partition number. */
const firstCommits = (partitions: readonly PartitionBatch[]) =>
  partitions.map((p) => ({ partition: p, previous: undefined, next: cp(p.partition, 1) }));

describe('DynamoDedupeStore (dynalite)', () => {
  it('reads nothing for partitions never processed', async () => {
    const found = await store().load('cache', [partition('t.never', 0)]);
    expect(found.size).toBe(0);
  });

  it('commits a checkpoint and reads it back', async () => {
    // Arrange
    const p = partition('t.roundtrip', 1);
    const cp: Checkpoint = { offset: 41, hw: 'pg:1:2', hwIds: ['abc', 'def'], version: 1, sinkState: { seq: 3 } };
    // Act
    await commitOne('audit', p, undefined, cp);
    const found = await store().load('audit', [p]);
    // Assert
    expect(found.get(p.id)).toEqual(cp);
  });

  it('commits the schema fingerprints of a partition per table and reads them back in their order', async () => {
    // Arrange: not in alphabetical order (least recently met first)
    const p = partition('t.schema', 0);
    const schemas = { 'pg.public.orders': '0123456789abcdef', 'pg.public.items': 'fedcba9876543210' };
    const cp: Checkpoint = { offset: 7, hw: 'pg:1:2', hwIds: [], version: 1, schemas };
    // Act
    await commitOne('cache', p, undefined, cp);
    const found = (await store().load('cache', [p])).get(p.id);
    // Assert
    expect(found).toEqual(cp);
    expect(Object.keys(found?.schemas ?? {})).toEqual(['pg.public.orders', 'pg.public.items']);
  });

  it('commits parked keys and attempt counts and reads them back; unparking cannot lose a lane batch’s update', async () => {
    // Arrange: a partition with one key parked and one failing key being counted
    const p = partition('t.parked', 0);
    const parked = { key: 'pg.public.orders {"id":2}', first: 11, last: 13, count: 2, attempts: 5, parkedAt: NOW };
    const attempts = [{ key: 'pg.public.orders {"id":7}', offset: 20, attempts: 2 }];
    const committed: Checkpoint = { offset: 19, hw: 'pg:1:2', hwIds: [], version: 1, parked: [parked], attempts };
    await commitOne('cache', p, undefined, committed);
    // Act: a redrive unparks the key (conditionally on the version it read) while a lane batch holds the old version
    const read = (await store().load('cache', [p])).get(p.id) as Checkpoint;
    const unparked = afterReplay(read, parked) as Checkpoint;
    await commitOne('cache', p, read, unparked);
    const [stale] = await store().commit('cache', [
      { partition: p, previous: read, next: { ...read, offset: 25, version: read.version + 1 } },
    ]);
    // Assert
    expect(read).toEqual(committed);
    expect(stale).toMatchObject({ code: 'CHECKPOINT_CONFLICT', retryable: true });
    const found = (await store().load('cache', [p])).get(p.id);
    expect(found).toEqual({ offset: 19, hw: 'pg:1:2', hwIds: [], version: 2, attempts });
  });

  it('reads the single fingerprint of a checkpoint written before per-table ones, and drops it on the next commit', async () => {
    // Arrange: an item as the previous version of the store wrote it
    const p = partition('t.legacy', 0);
    const pk = checkpointKey('cache', p);
    const client = services().clients.dynamodb;
    await client.send(
      new PutItemCommand({
        TableName: LOCAL_NAMES.dedupeTable,
        Item: {
          pk: { S: pk },
          offset: { N: '7' },
          hw: { S: '-' },
          hwIds: { S: '' },
          version: { N: '1' },
          updatedAt: { N: String(NOW) },
          schema: { S: '0123456789abcdef' },
        },
      }),
    );
    // Act
    const legacy = (await store().load('cache', [p])).get(p.id);
    await commitOne('cache', p, legacy, { ...cp(8, 2), schemas: { 't.legacy': '0123456789abcdef' } });
    const item = await client.send(
      new GetItemCommand({ TableName: LOCAL_NAMES.dedupeTable, Key: { pk: { S: pk } }, ConsistentRead: true }),
    );
    // Assert
    expect(legacy).toEqual({ ...cp(7, 1), schema: '0123456789abcdef' });
    expect(item.Item?.schema).toBeUndefined();
    expect((await store().load('cache', [p])).get(p.id)?.schemas).toEqual({ 't.legacy': '0123456789abcdef' });
  });

  it('keeps lanes apart', async () => {
    const p = partition('t.lanes', 0);
    await commitOne('warehouse', p, undefined, { offset: 1, hw: '', hwIds: [], version: 1 });
    expect((await store().load('cache', [p])).size).toBe(0);
  });

  it('refuses a commit based on a stale version with a retryable CHECKPOINT_CONFLICT', async () => {
    // Arrange
    const p = partition('t.conflict', 0);
    const first: Checkpoint = { offset: 1, hw: '', hwIds: [], version: 1 };
    await commitOne('cache', p, undefined, first);
    await commitOne('cache', p, first, { ...first, offset: 2, version: 2 });
    // Act + Assert
    await expect(commitOne('cache', p, first, { ...first, offset: 3, version: 2 })).rejects.toMatchObject({
      code: 'CHECKPOINT_CONFLICT',
      retryable: true,
    });
    await expect(commitOne('cache', p, undefined, first)).rejects.toMatchObject({ code: 'CHECKPOINT_CONFLICT' });
  });

  it('sets the TTL attribute except on the audit lane, whose checkpoints hold the hash chain head', async () => {
    const p = partition('t.ttl', 0);
    await commitOne('cache', p, undefined, { offset: 1, hw: '', hwIds: [], version: 1 });
    await commitOne('audit', p, undefined, { offset: 1, hw: '', hwIds: [], version: 1 });
    const item = async (lane: 'cache' | 'audit') =>
      (
        await services().clients.dynamodb.send(
          new GetItemCommand({ TableName: LOCAL_NAMES.dedupeTable, Key: { pk: { S: checkpointKey(lane, p) } } }),
        )
      ).Item;
    expect((await item('cache'))?.expiresAt?.N).toBe(String(NOW / 1000 + 30 * 86_400));
    expect((await item('audit'))?.expiresAt).toBeUndefined();
  });

  it('reads more than 100 partitions (BatchGetItem pages)', async () => {
    const partitions = Array.from({ length: 130 }, (_, i) => partition('t.many', i));
    await Promise.all(partitions.map((p) => commitOne('warehouse', p, undefined, cp(p.partition, 1))));
    const found = await store().load('warehouse', partitions);
    expect(found.size).toBe(130);
    expect(found.get('t.many-129')?.offset).toBe(129);
  });

  it("commits a batch's checkpoints in one transaction, and a single checkpoint with one PutItem", async () => {
    // Arrange
    const { client, sent } = countingClient();
    const partitions = Array.from({ length: 13 }, (_, i) => partition('t.together', i));
    // Act
    const outcomes = await store(client).commit('audit', firstCommits(partitions));
    const single = await store(client).commit('audit', [
      { partition: partitions[0] as PartitionBatch, previous: cp(0, 1), next: cp(5, 2) },
    ]);
    // Assert
    expect(outcomes).toEqual(Array(13).fill(undefined));
    expect(single).toEqual([undefined]);
    expect(sent).toEqual(['TransactWriteItemsCommand', 'PutItemCommand']);
    const found = await store().load('audit', partitions);
    expect(partitions.map((p) => found.get(p.id)?.offset)).toEqual([5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  });

  it('commits the other partitions of a batch when one checkpoint changed since it was read', async () => {
    // Arrange: t.mixed-1 was committed by someone else meanwhile (version 2, not the 1 this batch read)
    const partitions = [0, 1, 2].map((i) => partition('t.mixed', i));
    await store().commit(
      'cache',
      partitions.map((p) => ({ partition: p, previous: undefined, next: cp(1, 1) })),
    );
    await commitOne('cache', partitions[1] as PartitionBatch, cp(1, 1), cp(7, 2));
    // Act
    const outcomes = await store().commit(
      'cache',
      partitions.map((p) => ({ partition: p, previous: cp(1, 1), next: cp(2, 2) })),
    );
    // Assert
    expect(outcomes.map((o) => o?.code)).toEqual([undefined, 'CHECKPOINT_CONFLICT', undefined]);
    expect(outcomes[1]?.retryable).toBe(true);
    const found = await store().load('cache', partitions);
    expect(partitions.map((p) => found.get(p.id)?.offset)).toEqual([2, 7, 2]);
  });

  it('commits more than 100 checkpoints (one transaction per 100)', async () => {
    // Arrange
    const { client, sent } = countingClient();
    const partitions = Array.from({ length: 230 }, (_, i) => partition('t.hundreds', i));
    // Act
    const outcomes = await store(client).commit('warehouse', firstCommits(partitions));
    // Assert
    expect(outcomes.every((o) => o === undefined)).toBe(true);
    expect(sent).toEqual(Array(3).fill('TransactWriteItemsCommand'));
    const found = await store().load('warehouse', partitions);
    expect(found.size).toBe(230);
    expect(found.get('t.hundreds-229')?.offset).toBe(229);
  });

  it('retries the rest when DynamoDB cancels a transaction over one item, and reports an outage as retryable', async () => {
    // Arrange: a cancellation reason dynalite never gives (a concurrent transaction on the same item)
    const client = new DynamoDBClient({ region: 'eu-west-1' });
    const mock = mockClient(client);
    mock.on(TransactWriteItemsCommand).rejects(
      new TransactionCanceledException({
        message: 'Transaction cancelled',
        $metadata: {},
        CancellationReasons: [{ Code: 'None' }, { Code: 'TransactionConflict', Message: 'conflict' }, { Code: 'None' }],
      }),
    );
    const partitions = [0, 1, 2].map((i) => partition('t.cancelled', i));
    const commits = partitions.map((p) => ({ partition: p, previous: undefined, next: cp(1, 1) }));
    // Act
    const outcomes = await store(client).commit('cache', commits);
    // Assert: the two without a reason went again (a second transaction, refused the same way, is not retried forever)
    expect(outcomes.map((o) => o?.code)).toEqual(['DEDUPE_UNAVAILABLE', 'DEDUPE_UNAVAILABLE', 'DEDUPE_UNAVAILABLE']);
    expect(outcomes[1]?.message).toContain('TransactionConflict: conflict');
    const calls = mock.commandCalls(TransactWriteItemsCommand).map((c) => c.args[0].input.TransactItems?.length);
    expect(calls).toEqual([3, 2]);

    // Arrange 2: the service is down
    mock.reset();
    mock.on(TransactWriteItemsCommand).rejects(Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }));
    mock.on(PutItemCommand).resolves({});
    // Act 2
    const down = await store(client).commit('cache', commits);
    // Assert 2
    expect(down.map((o) => [o?.code, o?.retryable])).toEqual(Array(3).fill(['DEDUPE_UNAVAILABLE', true]));
    expect(down[0]?.message).toContain('socket hang up');
  });
});
