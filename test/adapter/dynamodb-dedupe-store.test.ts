import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { checkpointKey, DynamoDedupeStore } from '../../functions/adapters/dynamodb-dedupe-store';
import type { Checkpoint, PartitionBatch } from '../../functions/core/types';
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
const store = () =>
  new DynamoDedupeStore(services().clients.dynamodb, {
    tableName: LOCAL_NAMES.dedupeTable,
    ttlDays: 30,
    clock: () => NOW,
  });

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
    await store().commit('audit', p, undefined, cp);
    const found = await store().load('audit', [p]);
    // Assert
    expect(found.get(p.id)).toEqual(cp);
  });

  it('keeps lanes apart', async () => {
    const p = partition('t.lanes', 0);
    await store().commit('warehouse', p, undefined, { offset: 1, hw: '', hwIds: [], version: 1 });
    expect((await store().load('cache', [p])).size).toBe(0);
  });

  it('refuses a commit based on a stale version with a retryable CHECKPOINT_CONFLICT', async () => {
    // Arrange
    const p = partition('t.conflict', 0);
    const first: Checkpoint = { offset: 1, hw: '', hwIds: [], version: 1 };
    await store().commit('cache', p, undefined, first);
    await store().commit('cache', p, first, { ...first, offset: 2, version: 2 });
    // Act + Assert
    await expect(store().commit('cache', p, first, { ...first, offset: 3, version: 2 })).rejects.toMatchObject({
      code: 'CHECKPOINT_CONFLICT',
      retryable: true,
    });
    await expect(store().commit('cache', p, undefined, first)).rejects.toMatchObject({ code: 'CHECKPOINT_CONFLICT' });
  });

  it('sets the TTL attribute except on the audit lane, whose checkpoints hold the hash chain head', async () => {
    const p = partition('t.ttl', 0);
    await store().commit('cache', p, undefined, { offset: 1, hw: '', hwIds: [], version: 1 });
    await store().commit('audit', p, undefined, { offset: 1, hw: '', hwIds: [], version: 1 });
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
    await Promise.all(
      partitions.map((p) =>
        store().commit('warehouse', p, undefined, { offset: p.partition, hw: '', hwIds: [], version: 1 }),
      ),
    );
    const found = await store().load('warehouse', partitions);
    expect(found.size).toBe(130);
    expect(found.get('t.many-129')?.offset).toBe(129);
  });
});
