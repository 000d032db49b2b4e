import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { isRowError, RedisCacheSink } from '../../functions/adapters/redis-cache-sink';
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
  return writeWith(sink, table, ...events);
}

async function writeWith(target: RedisCacheSink, table: string, ...events: ChangeEvent[]) {
  const partition: PartitionBatch = {
    id: `pg.public.${table}-0`,
    topic: `pg.public.${table}`,
    partition: 0,
    records: [],
  };
  const p: SinkPartition = { partition, events, columns: events.map(() => undefined), state: undefined };
  const result = await target.write(p);
  if (!result.ok) throw new Error(`write failed: ${JSON.stringify(result)}`);
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

  it('clears an older row written with a remembered watermark after another partition truncated the table', async () => {
    // Arrange: this sink has written table h (and remembers no truncate); another one, on another partition, truncates
    const other = new RedisCacheSink(redis.duplicate(), { prefix, tombstoneTtlSeconds: 3600 });
    try {
      await write('h', event({ op: 'c', table: 'h', after: { id: 1 }, lsn: 10 }));
      await writeWith(other, 'h', event({ op: 't', table: 'h', lsn: 30 }));
      // Act: an older and a newer change reach this sink afterwards; and a sink started since gets an older one
      await write(
        'h',
        event({ op: 'c', table: 'h', after: { id: 2 }, lsn: 20 }),
        event({ op: 'c', table: 'h', after: { id: 3 }, lsn: 40 }),
      );
      const fresh = new RedisCacheSink(redis.duplicate(), { prefix, tombstoneTtlSeconds: 3600 });
      await writeWith(fresh, 'h', event({ op: 'c', table: 'h', after: { id: 4 }, lsn: 25 }));
      await fresh.close();
      // Assert
      expect(await row('h', 1)).toBeNull();
      expect(await row('h', 2)).toBeNull();
      expect(await row('h', 3)).toEqual({ id: 3 });
      expect(await row('h', 4)).toBeNull();
    } finally {
      await other.close();
    }
  });

  it('reads the truncate watermarks once per partition write, after the writes', async () => {
    // Arrange
    const client = redis.duplicate();
    const counted = new RedisCacheSink(client, { prefix, tombstoneTtlSeconds: 3600 });
    const gets = vi.spyOn(client, 'get');
    try {
      // Act: two batches of upserts to two tables
      for (const lsn of [10, 20]) {
        await writeWith(
          counted,
          'i',
          event({ op: 'c', table: 'i', after: { id: lsn }, lsn }),
          event({ op: 'c', table: 'j', after: { id: lsn }, lsn: lsn + 1 }),
        );
      }
      // Assert: one watermark read per table and write (there were two per table and write before)
      expect(gets.mock.calls.map(([key]) => String(key).split(':').slice(-2).join(':')).sort()).toEqual([
        'pg.public.i:truncated',
        'pg.public.i:truncated',
        'pg.public.j:truncated',
        'pg.public.j:truncated',
      ]);
    } finally {
      await counted.close();
    }
  });

  it('skips rows of tables without a key with a counted reason', async () => {
    const result = await write('f', event({ op: 'c', table: 'f', key: null, after: { id: 1 }, lsn: 10 }));
    expect(result.skipped).toEqual([{ index: 0, reason: 'no-key' }]);
  });

  it('a change that keeps a TOASTed column still drops a column the row no longer has', async () => {
    // Arrange: the row in the old shape; then the table lost `legacy`, and the row changed inside the incremental
    // snapshot's window (so it is never re-read) by an update that left its TOASTed `body` out
    await write(
      'merged',
      event({ op: 'c', table: 'merged', after: { id: 1, body: 'long', legacy: 'x', n: 1 }, lsn: 10 }),
    );
    const update = event({
      op: 'u',
      table: 'merged',
      after: { id: 1, body: '__debezium_unavailable_value', n: 2 },
      lsn: 20,
    });

    // Act
    await write('merged', update);

    // Assert: the TOASTed value kept, the dropped column gone
    expect(update.unchanged).toEqual(['body']);
    expect(await row('merged', 1)).toEqual({ id: 1, body: 'long', n: 2 });
  });

  it('replaces the whole row with an incremental snapshot read: a dropped column does not survive', async () => {
    // Arrange: the row in the old shape, then the table lost column `legacy`
    await write('replaced', event({ op: 'c', table: 'replaced', after: { id: 1, legacy: 'x', v: 1 }, lsn: 100 }));
    // Act
    const read = event({ op: 'r', table: 'replaced', after: { id: 1, v: 1 }, lsn: 200, snapshot: 'incremental' });
    const result = await write('replaced', read);
    // Assert
    expect(result.schemaChangesSkipped).toBe(true);
    expect(await row('replaced', 1)).toEqual({ id: 1, v: 1 });
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

describe('RedisCacheSink: a row that cannot be written (real Redis)', () => {
  it('reports the row’s failing change and holds its later changes back, and writes the other rows', async () => {
    // Arrange: something else wrote a string where row 2's hash lives, so a merge (a TOASTed column left out) fails
    // with WRONGTYPE; the full update after it would succeed on its own (it replaces the key)
    await redis.set(sink.rowKey('pg.public.poison', { id: 2 }), 'not a hash');
    const toasted = '__debezium_unavailable_value';
    const events = [
      event({ op: 'c', table: 'poison', after: { id: 1, v: 1 }, lsn: 10 }),
      event({ op: 'u', table: 'poison', after: { id: 2, body: toasted, v: 2 }, lsn: 20 }),
      event({ op: 'u', table: 'poison', after: { id: 1, v: 3 }, lsn: 30 }),
      event({ op: 'u', table: 'poison', after: { id: 2, body: 'b', v: 4 }, lsn: 40 }),
      event({ op: 'd', table: 'poison', before: { id: 2 }, lsn: 50 }),
      event({ op: 'c', table: 'poison', after: { id: 3, v: 6 }, lsn: 60 }),
    ];

    // Act
    const result = await write('poison', ...events);

    // Assert
    expect(result.retryableRejected?.map((r) => [r.index, r.error.code, r.error.retryable])).toEqual([
      [1, 'SINK_ROW_FAILED', true],
      [3, 'SINK_ROW_FAILED', true],
      [4, 'SINK_ROW_FAILED', true],
    ]);
    expect(result.retryableRejected?.[0]?.error.message).toMatch(/WRONGTYPE/);
    expect(result.retryableRejected?.[1]?.error.message).toMatch(/an earlier change of the row was not applied/);
    expect(await row('poison', 1)).toEqual({ id: 1, v: 3 });
    expect(await row('poison', 3)).toEqual({ id: 3, v: 6 });
    expect(await redis.get(sink.rowKey('pg.public.poison', { id: 2 }))).toBe('not a hash');
  });

  it('does not hold back a change after one that was only older than the row', async () => {
    // Arrange
    await write('older', event({ op: 'u', table: 'older', after: { id: 1, v: 'stored' }, lsn: 100 }));
    // Act: the first change is older than the row (not applied, rightly), the second newer
    const result = await write(
      'older',
      event({ op: 'u', table: 'older', after: { id: 1, v: 'old' }, lsn: 50 }),
      event({ op: 'u', table: 'older', after: { id: 1, v: 'new' }, lsn: 150 }),
    );
    // Assert
    expect(result.retryableRejected).toBeUndefined();
    expect(await row('older', 1)).toEqual({ id: 1, v: 'new' });
  });

  it('takes only WRONGTYPE for a row’s own failure; anything else fails the whole partition', async () => {
    // Arrange: real Redis errors
    const hash = `${prefix}:wrongtype`;
    await redis.hset(hash, 'a', '1');
    const wrongType = await redis.get(hash).catch((e: unknown) => e);
    const unknown = await redis.call('NOSUCHCOMMAND').catch((e: unknown) => e);
    const script = await redis.eval("return redis.call('NOSUCHCOMMAND')", 0).catch((e: unknown) => e);
    // Act + Assert
    expect(isRowError(wrongType)).toBe(true);
    expect(isRowError(unknown)).toBe(false);
    expect(isRowError(script)).toBe(false);
    expect(isRowError(new Error('Connection is closed.'))).toBe(false);
  });

  it('fails the partition when the cache itself fails', async () => {
    // Arrange: a sink whose connection is gone
    const closed = new RedisCacheSink(redis.duplicate({ maxRetriesPerRequest: 0, enableOfflineQueue: false }), {
      prefix,
      tombstoneTtlSeconds: 3600,
    });
    await closed.close();
    // Act
    const result = await closed.write({
      partition: { id: 'pg.public.gone-0', topic: 'pg.public.gone', partition: 0, records: [] },
      events: [event({ op: 'c', table: 'gone', after: { id: 1 }, lsn: 10 })],
      columns: [undefined],
      state: undefined,
    });
    // Assert
    expect(result).toMatchObject({ ok: false, error: { code: 'SINK_UNAVAILABLE', retryable: true } });
  });
});
