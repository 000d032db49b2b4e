import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisCacheSink } from '../../functions/adapters/redis-cache-sink';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import type { ChangeEvent, PartitionBatch, SinkPartition } from '../../functions/core/types';
import { type PgChangeSpec, pgMessage, recordOf } from '../support/builders';

let redis: Redis;
let sink: RedisCacheSink;
const prefix = `test-${process.pid}-${Date.now()}`;

beforeAll(() => {
  redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  sink = new RedisCacheSink(redis.duplicate(), { prefix, tombstoneTtlSeconds: 3600 });
});
afterAll(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  await sink.close();
  await redis.quit();
});

function event(spec: PgChangeSpec): ChangeEvent {
  const outcome = new JsonDebeziumDecoder().decode(recordOf(pgMessage(spec)), 1);
  if (outcome.kind !== 'event') throw new Error(JSON.stringify(outcome));
  return outcome.event;
}

async function write(table: string, ...events: ChangeEvent[]) {
  const partition: PartitionBatch = {
    id: `pg.public.${table}-0`,
    topic: `pg.public.${table}`,
    partition: 0,
    records: [],
  };
  const p: SinkPartition = { partition, events, columns: events.map(() => undefined), state: undefined };
  const [result] = await sink.write([p]);
  if (!result?.ok) throw new Error(`write failed: ${JSON.stringify(result)}`);
  return result;
}

async function row(table: string, id: number): Promise<Record<string, unknown> | null> {
  const hash = await redis.hgetall(sink.rowKey(`pg.public.${table}`, { id }));
  if (Object.keys(hash).length === 0) return null;
  return Object.fromEntries(Object.entries(hash).map(([k, v]) => [k, JSON.parse(v)]));
}

describe('RedisCacheSink (real Redis)', () => {
  it('upserts rows with JSON-encoded columns and deletes them', async () => {
    await write('a', event({ op: 'c', table: 'a', after: { id: 1, name: 'x', meta: { k: [1] } }, lsn: 10 }));
    expect(await row('a', 1)).toEqual({ id: 1, name: 'x', meta: { k: [1] } });
    await write('a', event({ op: 'd', table: 'a', before: { id: 1 }, lsn: 20 }));
    expect(await row('a', 1)).toBeNull();
  });

  it('never lets an older change overwrite a newer one (redelivery, replay, late snapshot read)', async () => {
    // Arrange
    await write('b', event({ op: 'u', table: 'b', after: { id: 1, v: 'new' }, lsn: 200, lastCommitLsn: 150 }));
    // Act: an older update and an older snapshot read arrive late
    await write(
      'b',
      event({ op: 'u', table: 'b', after: { id: 1, v: 'old' }, lsn: 100, lastCommitLsn: 90 }),
      event({ op: 'r', table: 'b', after: { id: 1, v: 'snapshot' }, lsn: 50, lastCommitLsn: 40, snapshot: 'true' }),
    );
    // Assert
    expect(await row('b', 1)).toEqual({ id: 1, v: 'new' });
  });

  it('does not resurrect a deleted row when an older change arrives after the delete', async () => {
    await write(
      'c',
      event({ op: 'c', table: 'c', after: { id: 1, v: 1 }, lsn: 10 }),
      event({ op: 'd', table: 'c', before: { id: 1 }, lsn: 30 }),
    );
    await write('c', event({ op: 'u', table: 'c', after: { id: 1, v: 2 }, lsn: 20 }));
    expect(await row('c', 1)).toBeNull();
    expect(await redis.ttl(`${sink.rowKey('pg.public.c', { id: 1 })}:v`)).toBeGreaterThan(0);
  });

  it('keeps the previous value of TOAST-unchanged columns', async () => {
    await write('d', event({ op: 'c', table: 'd', after: { id: 1, body: 'long', n: 1 }, lsn: 10 }));
    await write(
      'd',
      event({ op: 'u', table: 'd', after: { id: 1, body: '__debezium_unavailable_value', n: 2 }, lsn: 20 }),
    );
    expect(await row('d', 1)).toEqual({ id: 1, body: 'long', n: 2 });
  });

  it('clears rows older than a truncate and keeps newer ones, also when an older write arrives afterwards', async () => {
    // Arrange
    await write(
      'e',
      event({ op: 'c', table: 'e', after: { id: 1 }, lsn: 10 }),
      event({ op: 'c', table: 'e', after: { id: 2 }, lsn: 11 }),
    );
    await write('e', event({ op: 'c', table: 'e', after: { id: 3 }, lsn: 40 }));
    // Act
    await write('e', event({ op: 't', table: 'e', lsn: 30 }));
    await write('e', event({ op: 'c', table: 'e', after: { id: 4 }, lsn: 20 })); // older than the truncate, from another partition
    // Assert
    expect(await row('e', 1)).toBeNull();
    expect(await row('e', 2)).toBeNull();
    expect(await row('e', 3)).toEqual({ id: 3 });
    expect(await row('e', 4)).toBeNull();
  });

  it('skips rows of tables without a key with a counted reason', async () => {
    const result = await write('f', event({ op: 'c', table: 'f', key: null, after: { id: 1 }, lsn: 10 }));
    expect(result.skipped).toEqual([{ index: 0, reason: 'no-key' }]);
  });

  it('applies the same batch twice with one effect', async () => {
    const batch = [
      event({ op: 'c', table: 'g', after: { id: 1, v: 1 }, lsn: 10 }),
      event({ op: 'u', table: 'g', after: { id: 1, v: 2 }, lsn: 11 }),
    ];
    await write('g', ...batch);
    await write('g', ...batch);
    expect(await row('g', 1)).toEqual({ id: 1, v: 2 });
  });
});
