import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BrokerError, LocalBroker, partitionForKey } from '../../tools/local/broker';
import { json } from './helpers';

describe('LocalBroker in memory', () => {
  it('assigns offsets from 0 per partition, in produce order', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('orders', 2);

    // Act
    const results = await broker.produce([
      { topic: 'orders', partition: 0, key: null, value: json('a') },
      { topic: 'orders', partition: 1, key: null, value: json('b') },
      { topic: 'orders', partition: 0, key: null, value: json('c') },
      { topic: 'orders', partition: 0, key: null, value: json('d') },
    ]);

    // Assert
    expect(results).toEqual([
      { topic: 'orders', partition: 0, offset: 0 },
      { topic: 'orders', partition: 1, offset: 0 },
      { topic: 'orders', partition: 0, offset: 1 },
      { topic: 'orders', partition: 0, offset: 2 },
    ]);
    expect(broker.read('orders', 0, 0, 10).map((r) => JSON.parse(r.value!.toString()))).toEqual(['a', 'c', 'd']);
    expect([broker.highWater('orders', 0), broker.highWater('orders', 1)]).toEqual([3, 1]);
  });

  it('routes keyed records with Kafka’s default partitioner and creates topics on demand with 3 partitions', async () => {
    // Arrange
    const broker = new LocalBroker();
    const keys = [1, 2, 3, 42, 1000].map((id) => json({ id }));

    // Act
    const results = await broker.produce(keys.map((key) => ({ topic: 'pg.public.orders', key, value: null })));

    // Assert
    expect(broker.partitionCount('pg.public.orders')).toBe(3);
    expect(results.map((r) => r.partition)).toEqual(keys.map((key) => partitionForKey(key, 3)));
  });

  it('keeps the record fields: timestamp, CREATE_TIME, key, value, duplicate headers', async () => {
    // Arrange
    const broker = new LocalBroker();
    const headers: Array<[string, Buffer]> = [
      ['h', Buffer.from('1')],
      ['h', Buffer.from('2')],
    ];

    // Act
    await broker.produce([
      { topic: 't', partition: 0, key: json({ id: 1 }), value: json({ op: 'c' }), headers, timestamp: 1710498600123 },
    ]);
    const [record] = broker.read('t', 0, 0, 1);

    // Assert
    expect(record).toMatchObject({
      topic: 't',
      partition: 0,
      offset: 0,
      timestamp: 1710498600123,
      timestampType: 'CREATE_TIME',
      key: json({ id: 1 }),
      value: json({ op: 'c' }),
      headers: [
        ['h', Buffer.from('1')],
        ['h', Buffer.from('2')],
      ],
    });
  });

  it.each([
    [0, 2, [0, 1]],
    [1, 10, [1, 2]],
    [3, 5, []],
    [0, 0, []],
  ])('read(from %i, max %i) returns offsets %j of 3', async (from, max, expected) => {
    // Arrange
    const broker = new LocalBroker();
    await broker.produce([0, 1, 2].map(() => ({ topic: 't', partition: 0, key: null, value: null })));

    // Act
    const offsets = broker.read('t', 0, from, max).map((r) => r.offset);

    // Assert
    expect(offsets).toEqual(expected);
  });

  it('notifies append listeners with the new high-water mark before produce resolves', async () => {
    // Arrange
    const broker = new LocalBroker();
    const seen: string[] = [];
    broker.onAppend((topic, partition, highWater) => seen.push(`${topic}-${partition}@${highWater}`));

    // Act
    const produced = broker.produce([
      { topic: 't', partition: 1, key: null, value: null },
      { topic: 't', partition: 1, key: null, value: null },
    ]);
    const seenBeforeAwait = [...seen];
    await produced;

    // Assert
    expect(seenBeforeAwait).toEqual(['t-1@2']);
  });

  it('keeps committed offsets per group and partition', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 2);

    // Act
    await broker.commit('cache', 't', 0, 5);
    await broker.commit('warehouse', 't', 0, 2);

    // Assert
    expect([
      broker.committed('cache', 't', 0),
      broker.committed('warehouse', 't', 0),
      broker.committed('cache', 't', 1),
      broker.committed('audit', 't', 0),
    ]).toEqual([5, 2, undefined, undefined]);
  });

  it('puts a produce call’s keyless records on one partition and the next call’s on the next', async () => {
    // Arrange
    const broker = new LocalBroker();

    // Act
    const first = await broker.produce([1, 2, 3].map(() => ({ topic: 'heartbeats', key: null, value: json(1) })));
    const second = await broker.produce([1, 2].map(() => ({ topic: 'heartbeats', key: null, value: json(1) })));

    // Assert
    expect([first.map((r) => r.partition), second.map((r) => r.partition)]).toEqual([
      [0, 0, 0],
      [1, 1],
    ]);
  });

  it.each([['bad topic'], ['a/b'], ['.'], ['..'], [''], ['x'.repeat(250)]])(
    'rejects the illegal topic name %j and appends nothing',
    async (topic) => {
      // Arrange
      const broker = new LocalBroker();

      // Act
      const produced = broker.produce([
        { topic: 'ok', key: null, value: null },
        { topic, key: null, value: null },
      ]);

      // Assert
      await expect(produced).rejects.toMatchObject({ name: 'BrokerError', code: 'INVALID_TOPIC' });
      expect(broker.topics()).toEqual([]);
    },
  );

  it('rejects an explicit partition the topic does not have', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 3);

    // Act
    const produced = broker.produce([{ topic: 't', partition: 3, key: null, value: null }]);

    // Assert
    await expect(produced).rejects.toMatchObject({ code: 'UNKNOWN_PARTITION' });
  });

  it('refuses to change the partition count of an existing topic', () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 3);

    // Act / Assert
    expect(broker.createTopic('t')).toBe(3);
    expect(() => broker.createTopic('t', 6)).toThrow(BrokerError);
  });

  it('refuses unknown topics when auto-creation is off', async () => {
    // Arrange
    const broker = new LocalBroker({ autoCreateTopics: false });

    // Act
    const produced = broker.produce([{ topic: 't', key: null, value: null }]);

    // Assert
    await expect(produced).rejects.toMatchObject({ code: 'UNKNOWN_TOPIC' });
  });
});

describe('LocalBroker.deleteRecords (Kafka DeleteRecords)', () => {
  it('makes records below the offset unreadable, frees them and keeps every offset', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    await broker.produce(
      Array.from({ length: 5 }, (_, i) => ({ topic: 't', partition: 0, key: null, value: json(i) })),
    );

    // Act
    const start = broker.deleteRecords('t', 0, 3);
    const lower = broker.deleteRecords('t', 0, 1);
    await broker.produce([{ topic: 't', partition: 0, key: null, value: json(5) }]);

    // Assert
    expect(start).toBe(3);
    expect(lower).toBe(3);
    expect(broker.logStartOffset('t', 0)).toBe(3);
    expect(broker.recordAt('t', 0, 2)).toBeUndefined();
    expect(broker.recordAt('t', 0, 3)?.value).toEqual(json(3));
    expect(broker.read('t', 0, 0, 10).map((r) => r.offset)).toEqual([3, 4, 5]);
    expect(broker.highWater('t', 0)).toBe(6);
  });

  it('refuses an offset past the high water (OFFSET_OUT_OF_RANGE)', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    await broker.produce([{ topic: 't', partition: 0, key: null, value: json(0) }]);

    // Act
    const deleting = () => broker.deleteRecords('t', 0, 2);

    // Assert
    expect(deleting).toThrow(expect.objectContaining({ code: 'OFFSET_OUT_OF_RANGE' }));
    expect(broker.logStartOffset('t', 0)).toBe(0);
  });
});

describe('LocalBroker persisted to a directory', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('reloads topics, records and committed offsets after a restart and continues the offsets', async () => {
    // Arrange
    dir = await mkdtemp(join(tmpdir(), 'cdc-broker-'));
    const first = await LocalBroker.open({ dir });
    first.createTopic('empty', 2);
    await first.produce([
      {
        topic: 'pg.public.orders',
        partition: 1,
        key: json({ id: 1 }),
        value: json({ op: 'c' }),
        timestamp: 1000,
        headers: [['ë', Buffer.from('ë')]],
      },
      { topic: 'pg.public.orders', partition: 1, key: json({ id: 1 }), value: null, timestamp: 1001 },
      { topic: 'pg.public.orders', partition: 0, key: null, value: json('x'), timestamp: 1002 },
    ]);
    await first.commit('cache', 'pg.public.orders', 1, 1);
    await first.close();

    // Act
    const second = await LocalBroker.open({ dir });
    const next = await second.produce([{ topic: 'pg.public.orders', partition: 1, key: null, value: json('y') }]);

    // Assert
    expect(second.topics().sort()).toEqual(['empty', 'pg.public.orders']);
    expect(second.partitionCount('empty')).toBe(2);
    expect(second.read('pg.public.orders', 1, 0, 2)).toMatchObject([
      {
        offset: 0,
        timestamp: 1000,
        key: json({ id: 1 }),
        value: json({ op: 'c' }),
        headers: [['ë', Buffer.from('ë')]],
      },
      { offset: 1, timestamp: 1001, key: json({ id: 1 }), value: null, headers: [] },
    ]);
    expect(second.read('pg.public.orders', 0, 0, 5).map((r) => r.key)).toEqual([null]);
    expect(second.committed('cache', 'pg.public.orders', 1)).toBe(1);
    expect(next).toEqual([{ topic: 'pg.public.orders', partition: 1, offset: 2 }]);
    await second.close();
  });

  it('has the lines in the partition file when produce resolves', async () => {
    // Arrange
    dir = await mkdtemp(join(tmpdir(), 'cdc-broker-'));
    const broker = await LocalBroker.open({ dir });

    // Act
    await broker.produce([0, 1, 2].map((i) => ({ topic: 't', partition: 0, key: null, value: json(i) })));
    const lines = (await readFile(join(dir, 'topics', 't', '0.log'), 'utf8')).trim().split('\n');

    // Assert
    expect(lines.map((line) => (JSON.parse(line) as { o: number }).o)).toEqual([0, 1, 2]);
    await broker.close();
  });

  it('drops a torn last line left by a crash mid-write', async () => {
    // Arrange
    dir = await mkdtemp(join(tmpdir(), 'cdc-broker-'));
    const first = await LocalBroker.open({ dir });
    await first.produce([{ topic: 't', partition: 0, key: null, value: json('kept') }]);
    await first.close();
    await appendFile(join(dir, 'topics', 't', '0.log'), '{"o":1,"t":5,"k":nu');

    // Act
    const second = await LocalBroker.open({ dir });
    await second.produce([{ topic: 't', partition: 0, key: null, value: json('after') }]);
    await second.close();
    const third = await LocalBroker.open({ dir });

    // Assert
    expect(third.read('t', 0, 0, 10).map((r) => JSON.parse(r.value!.toString()))).toEqual(['kept', 'after']);
    await third.close();
  });

  it('keeps persistent logs whole: deleteRecords is UNSUPPORTED there', async () => {
    // Arrange
    dir = await mkdtemp(join(tmpdir(), 'cdc-broker-'));
    const broker = await LocalBroker.open({ dir });
    broker.createTopic('t', 1);
    await broker.produce([{ topic: 't', partition: 0, key: null, value: json(0) }]);

    // Act
    const deleting = () => broker.deleteRecords('t', 0, 1);

    // Assert
    expect(deleting).toThrow(expect.objectContaining({ code: 'UNSUPPORTED' }));
    expect(broker.recordAt('t', 0, 0)?.value).toEqual(json(0));
    await broker.close();
  });

  it('rejects produce and commit after close', async () => {
    // Arrange
    dir = await mkdtemp(join(tmpdir(), 'cdc-broker-'));
    const broker = await LocalBroker.open({ dir });
    broker.createTopic('t', 1);
    await broker.close();

    // Act
    const produced = broker.produce([{ topic: 't', key: null, value: null }]);

    // Assert
    await expect(produced).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(broker.commit('g', 't', 0, 1)).rejects.toBeInstanceOf(BrokerError);
  });
});
