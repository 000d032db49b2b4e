import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Context } from 'aws-lambda';
import { afterEach, describe, expect, it } from 'vitest';
import {
  LocalBroker,
  LocalEventSourceMapping,
  type LocalEventSourceMappingOptions,
  type LocalMskEvent,
  type MskHandler,
  type OnFailureRecord,
  wireSizeOf,
} from '../../tools/local/broker';
import { deferred, json, offsetsOf, settle } from './helpers';

const ARN = 'arn:aws:kafka:eu-west-1:111122223333:cluster/cdc-cluster/0f1e2d3c-aaaa-bbbb-cccc-1234567890ab-2';
const SERVERS =
  'b-1.cdc.x1y2z3.c2.kafka.eu-west-1.amazonaws.com:9098,b-2.cdc.x1y2z3.c2.kafka.eu-west-1.amazonaws.com:9098';

const running: LocalEventSourceMapping[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((esm) => esm.stop()));
});

type Options = Partial<Omit<LocalEventSourceMappingOptions, 'handler'>> & { handler?: MskHandler };

/** A started mapping on `topics` (default all) recording every event and context it delivers. */
function mapping(broker: LocalBroker, options: Options = {}) {
  const events: LocalMskEvent[] = [];
  const contexts: Context[] = [];
  const { handler, ...rest } = options;
  const esm = new LocalEventSourceMapping({
    broker,
    groupId: 'cache',
    topics: () => true,
    maxBatchingWindowMs: 0,
    retryBackoffMs: 0,
    eventSourceArn: ARN,
    bootstrapServers: SERVERS,
    ...rest,
    handler: async (event, context) => {
      events.push(event);
      contexts.push(context);
      return handler?.(event, context);
    },
  });
  esm.start();
  running.push(esm);
  return { esm, events, contexts, delivered: () => events.map(offsetsOf) };
}

/** Produces `count` records with JSON values to one partition. */
function produceTo(
  broker: LocalBroker,
  topic: string,
  partition: number,
  count: number,
  extra: { timestamp?: number } = {},
) {
  return broker.produce(
    Array.from({ length: count }, (_, i) => ({ topic, partition, key: json({ id: i }), value: json({ i }), ...extra })),
  );
}

describe('event shape', () => {
  it('delivers exactly the MSK event Lambda builds: base64, "<topic>-<partition>" map, signed-byte headers', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('dbz.public.order-lines', 3);
    const { esm, events } = mapping(broker);

    // Act
    await broker.produce([
      {
        topic: 'dbz.public.order-lines',
        partition: 2,
        key: json({ id: 1 }),
        value: json({ op: 'c' }),
        timestamp: 1710498600123,
        headers: [
          ['traceparent', Buffer.from('00-')],
          ['ë', Buffer.from('ë')],
          ['dup', Buffer.from('a')],
          ['dup', Buffer.from('b')],
        ],
      },
      { topic: 'dbz.public.order-lines', partition: 2, key: json({ id: 1 }), value: null, timestamp: 1710498600130 },
    ]);
    await esm.drain();

    // Assert
    expect(events).toStrictEqual([
      {
        eventSource: 'aws:kafka',
        eventSourceArn: ARN,
        bootstrapServers: SERVERS,
        records: {
          'dbz.public.order-lines-2': [
            {
              topic: 'dbz.public.order-lines',
              partition: 2,
              offset: 0,
              timestamp: 1710498600123,
              timestampType: 'CREATE_TIME',
              key: 'eyJpZCI6MX0=',
              value: Buffer.from('{"op":"c"}').toString('base64'),
              headers: [{ traceparent: [48, 48, 45] }, { ë: [-61, -85] }, { dup: [97] }, { dup: [98] }],
            },
            {
              topic: 'dbz.public.order-lines',
              partition: 2,
              offset: 1,
              timestamp: 1710498600130,
              timestampType: 'CREATE_TIME',
              key: 'eyJpZCI6MX0=',
              value: null,
              headers: [],
            },
          ],
        },
      },
    ]);
  });

  it('is plain JSON: a JSON round trip gives the same event', async () => {
    // Arrange
    const broker = new LocalBroker();
    const { esm, events } = mapping(broker);

    // Act
    await broker.produce([
      { topic: 't', key: json({ id: 7 }), value: json({ op: 'u' }), headers: [['h', Buffer.from([0, 255, 128])]] },
    ]);
    await esm.drain();

    // Assert
    expect(JSON.parse(JSON.stringify(events[0]))).toStrictEqual(events[0]);
    expect(Object.values(events[0]!.records)[0]![0]!.headers).toEqual([{ h: [0, -1, -128] }]);
  });

  it.each([
    ['null', 'null', { key: null, value: null }],
    ['absent', 'null', { value: null }],
    ['null', 'absent', { key: null }],
    ['absent', 'absent', {}],
  ] as const)('delivers a null key as %s and a null value as %s', async (nullKey, nullValue, expected) => {
    // Arrange
    const broker = new LocalBroker();
    const { esm, events } = mapping(broker, { nullKey, nullValue });

    // Act
    await broker.produce([{ topic: 't', partition: 0, key: null, value: null, timestamp: 5 }]);
    await esm.drain();

    // Assert
    expect(events[0]!.records['t-0']).toStrictEqual([
      { topic: 't', partition: 0, offset: 0, timestamp: 5, timestampType: 'CREATE_TIME', ...expected, headers: [] },
    ]);
  });

  it('groups records of several topics and partitions under their own keys, even when names contain - and .', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('a-b.c', 2);
    broker.createTopic('a', 2);
    const { esm, events } = mapping(broker);

    // Act
    await broker.produce([
      { topic: 'a-b.c', partition: 1, key: null, value: json(1) },
      { topic: 'a-b.c', partition: 0, key: null, value: json(2) },
      { topic: 'a', partition: 1, key: null, value: json(3) },
      { topic: 'a-b.c', partition: 1, key: null, value: json(4) },
    ]);
    await esm.drain();

    // Assert
    const records = events[0]!.records;
    expect(Object.keys(records).sort()).toEqual(['a-1', 'a-b.c-0', 'a-b.c-1']);
    for (const [id, list] of Object.entries(records)) {
      for (const record of list) expect(`${record.topic}-${record.partition}`).toBe(id);
    }
    expect(records['a-b.c-1']!.map((r) => r.offset)).toEqual([0, 1]);
  });

  it('gives each invocation a Lambda-like context', async () => {
    // Arrange
    const broker = new LocalBroker();
    let remaining = -1;
    const { esm, contexts } = mapping(broker, {
      functionName: 'cdc-cache',
      memoryLimitInMB: 512,
      handler: (_event, context) => {
        remaining = context.getRemainingTimeInMillis();
      },
    });

    // Act
    await produceTo(broker, 't', 0, 1);
    await esm.drain();
    await produceTo(broker, 't', 0, 1);
    await esm.drain();

    // Assert
    expect(contexts[0]).toMatchObject({
      functionName: 'cdc-cache',
      functionVersion: '$LATEST',
      invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:cdc-cache',
      memoryLimitInMB: '512',
      logGroupName: '/aws/lambda/cdc-cache',
      callbackWaitsForEmptyEventLoop: true,
    });
    expect(contexts[0]!.awsRequestId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(contexts[0]!.awsRequestId).not.toBe(contexts[1]!.awsRequestId);
    expect(contexts[0]!.logStreamName).toMatch(/^\d{4}\/\d{2}\/\d{2}\/\[\$LATEST\][0-9a-f]{32}$/);
    expect(remaining).toBeGreaterThan(0);
  });
});

describe('batching', () => {
  it('cuts a backlog into batches of batchSize, in offset order', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    await produceTo(broker, 't', 0, 250);

    // Act
    const { esm, events } = mapping(broker, { batchSize: 100 });
    await esm.drain();

    // Assert
    expect(events.map((e) => e.records['t-0']!.length)).toEqual([100, 100, 50]);
    expect(events.flatMap((e) => e.records['t-0']!.map((r) => r.offset))).toEqual([...Array(250).keys()]);
  });

  it('waits for the batching window while the batch is not full, and invokes as soon as it is', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    const { esm, events } = mapping(broker, { batchSize: 5, maxBatchingWindowMs: 300_000 });

    // Act
    for (let i = 0; i < 3; i++) await produceTo(broker, 't', 0, 1);
    await settle();
    const beforeFull = events.length;
    await produceTo(broker, 't', 0, 2);
    await esm.drain();

    // Assert
    expect(beforeFull).toBe(0);
    expect(events.map((e) => e.records['t-0']!.length)).toEqual([5]);
  });

  it('puts records of several partitions that are ready together into one invocation', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 3);
    const { esm, delivered } = mapping(broker);

    // Act
    await broker.produce([0, 1, 2].map((partition) => ({ topic: 't', partition, key: null, value: null })));
    await esm.drain();

    // Assert
    expect(delivered().map((offsets) => offsets.sort())).toEqual([['t-0:0', 't-1:0', 't-2:0']]);
  });

  it('keeps a partition in one batch at a time while other partitions proceed', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 2);
    const release = deferred();
    const sawOtherPartition = deferred();
    const { esm, delivered } = mapping(broker, {
      batchSize: 1,
      handler: async (event) => {
        if (event.records['t-0']?.[0]?.offset === 0) await release.promise;
        if (event.records['t-1'] !== undefined) sawOtherPartition.resolve();
      },
    });
    await broker.produce([{ topic: 't', partition: 0, key: null, value: null }]);
    await settle();

    // Act
    await broker.produce([
      { topic: 't', partition: 0, key: null, value: null },
      { topic: 't', partition: 1, key: null, value: null },
    ]);
    await sawOtherPartition.promise;
    const whileBlocked = delivered();
    release.resolve();
    await esm.drain();

    // Assert
    expect(whileBlocked).toEqual([['t-0:0'], ['t-1:0']]);
    expect(delivered()).toEqual([['t-0:0'], ['t-1:0'], ['t-0:1']]);
  });

  it('runs at most maxConcurrency invocations at once', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 2);
    const release = deferred();
    let active = 0;
    let maxActive = 0;
    const { esm, delivered } = mapping(broker, {
      batchSize: 1,
      maxConcurrency: 1,
      handler: async () => {
        active++;
        maxActive = Math.max(maxActive, active);
        await release.promise;
        active--;
      },
    });

    // Act
    await broker.produce([{ topic: 't', partition: 0, key: null, value: null }]);
    await settle();
    await broker.produce([{ topic: 't', partition: 1, key: null, value: null }]);
    await settle();
    const whileBlocked = delivered();
    release.resolve();
    await esm.drain();

    // Assert
    expect(whileBlocked).toEqual([['t-0:0']]);
    expect(maxActive).toBe(1);
    expect(delivered()).toEqual([['t-0:0'], ['t-1:0']]);
  });

  it('splits batches so the JSON event stays within the payload limit', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    await broker.produce(
      Array.from({ length: 20 }, (_, i) => ({
        topic: 't',
        partition: 0,
        key: json({ id: i }),
        value: Buffer.alloc(400, i),
      })),
    );

    // Act
    const { esm, events } = mapping(broker, { maxPayloadBytes: 3000 });
    await esm.drain();

    // Assert
    expect(events.length).toBeGreaterThan(1);
    for (const event of events) expect(Buffer.byteLength(JSON.stringify(event))).toBeLessThanOrEqual(3000);
    expect(events.flatMap((e) => e.records['t-0']!.map((r) => r.offset))).toEqual([...Array(20).keys()]);
  });

  it('fills an event of several partitions up to the payload limit, never a byte over', async () => {
    // Arrange: two partitions whose records fit one event; its JSON size, measured with no limit in the way
    const broker = new LocalBroker();
    broker.createTopic('t', 2);
    await broker.produce(
      [0, 1].flatMap((partition) =>
        Array.from({ length: 3 }, (_, i) => ({ topic: 't', partition, key: json({ id: i }), value: json({ p: i }) })),
      ),
    );
    const measured = mapping(broker, { groupId: 'measure' });
    await measured.esm.drain();
    expect(measured.events).toHaveLength(1);
    const size = Buffer.byteLength(JSON.stringify(measured.events[0]));

    // Act: the size is counted, not serialised, and counts a separator per record and group (a few bytes spare)
    const roomy = mapping(broker, { groupId: 'roomy', maxPayloadBytes: size + 8 });
    const under = mapping(broker, { groupId: 'under', maxPayloadBytes: size - 1 });
    await Promise.all([roomy.esm.drain(), under.esm.drain()]);

    // Assert
    expect(roomy.events).toHaveLength(1);
    expect(under.events).toHaveLength(2);
    expect(under.delivered().flat()).toHaveLength(6);
  });

  it('counts each record JSON size exactly as the event serialises it (escaped and UTF-8 header names, nulls)', async () => {
    // Arrange: header names that JSON escapes or that are multi-byte, null keys and values, signed header bytes
    const broker = new LocalBroker();
    broker.createTopic('my.topic-1_x', 1);
    const context = Buffer.from('pg');
    await broker.produce([
      { topic: 'my.topic-1_x', partition: 0, key: null, value: null },
      {
        topic: 'my.topic-1_x',
        partition: 0,
        key: json({ id: 1 }),
        value: Buffer.from('ë'.repeat(7)),
        headers: [
          ['__debezium.context.connectorLogicalName', context],
          ['naïve\n"h"', Buffer.from([0, 127, 128, 255, 9])],
          ['empty', Buffer.alloc(0)],
        ],
        timestamp: 1_700_000_000_123,
      },
      { topic: 'my.topic-1_x', partition: 0, key: json({ id: 2 }), value: json({ v: 2 }), headers: [['x', context]] },
    ]);

    // Act
    const { esm, events } = mapping(broker);
    await esm.drain();

    // Assert
    const records = events.flatMap((e) => Object.values(e.records).flat());
    expect(records).toHaveLength(3);
    for (const [i, wire] of records.entries()) {
      const stored = broker.recordAt('my.topic-1_x', 0, i)!;
      expect(wireSizeOf(stored)).toBe(Buffer.byteLength(JSON.stringify(wire)));
    }
    expect(records[1]!.headers).toEqual([
      { '__debezium.context.connectorLogicalName': [112, 103] },
      { 'naïve\n"h"': [0, 127, -128, -1, 9] },
      { empty: [] },
    ]);
  });
});

describe('errors and retries', () => {
  it('retries the whole batch after a thrown error, then commits', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    let calls = 0;
    const { esm, delivered } = mapping(broker, {
      handler: () => {
        calls++;
        if (calls <= 2) throw new Error('sink down');
      },
    });

    // Act
    await produceTo(broker, 't', 0, 3);
    await esm.drain();

    // Assert
    const batch = ['t-0:0', 't-0:1', 't-0:2'];
    expect(delivered()).toEqual([batch, batch, batch]);
    expect(broker.committed('cache', 't', 0)).toBe(3);
    expect(esm.stats()).toMatchObject({ invocations: 3, retries: 2, recordsDelivered: 9 });
  });

  it('delivers a successful batch again when its commit is lost (loseCommit), then commits it', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    const losses = [true, false];
    const { esm, delivered } = mapping(broker, { loseCommit: () => losses.shift() ?? false });

    // Act
    await produceTo(broker, 't', 0, 2);
    await esm.drain();

    // Assert
    expect(delivered()).toEqual([
      ['t-0:0', 't-0:1'],
      ['t-0:0', 't-0:1'],
    ]);
    expect(broker.committed('cache', 't', 0)).toBe(2);
  });

  it('honours batchItemFailures: commits up to the reported offset, redelivers from it, commits other partitions', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 2);
    const committedAtRetry: Array<number | undefined> = [];
    let calls = 0;
    const { esm, delivered } = mapping(broker, {
      reportBatchItemFailures: true,
      handler: () => {
        calls++;
        if (calls === 1) return { batchItemFailures: [{ itemIdentifier: { partition: 't-0', offset: 2 } }] };
        committedAtRetry.push(broker.committed('cache', 't', 0), broker.committed('cache', 't', 1));
        return { batchItemFailures: [] };
      },
    });

    // Act
    await broker.produce([
      ...[0, 1, 2, 3].map(() => ({ topic: 't', partition: 0, key: null, value: null })),
      ...[0, 1].map(() => ({ topic: 't', partition: 1, key: null, value: null })),
    ]);
    await esm.drain();

    // Assert
    expect(delivered()).toEqual([
      ['t-0:0', 't-0:1', 't-0:2', 't-0:3', 't-1:0', 't-1:1'],
      ['t-0:2', 't-0:3'],
    ]);
    expect(committedAtRetry).toEqual([2, 2]);
    expect(broker.committed('cache', 't', 0)).toBe(4);
    expect(esm.stats().partialFailures).toBe(1);
  });

  it('redelivers from the lowest reported offset when a partition is listed twice', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    let calls = 0;
    const { esm, delivered } = mapping(broker, {
      reportBatchItemFailures: true,
      handler: () =>
        ++calls === 1
          ? {
              batchItemFailures: [
                { itemIdentifier: { partition: 't-0', offset: 3 } },
                { itemIdentifier: { partition: 't-0', offset: 1 } },
              ],
            }
          : null,
    });

    // Act
    await produceTo(broker, 't', 0, 4);
    await esm.drain();

    // Assert
    expect(delivered()[1]).toEqual(['t-0:1', 't-0:2', 't-0:3']);
  });

  it.each([
    ['a partition not in the batch', { batchItemFailures: [{ itemIdentifier: { partition: 't-7', offset: 1 } }] }],
    ['an offset not in the batch', { batchItemFailures: [{ itemIdentifier: { partition: 't-0', offset: 99 } }] }],
    ['an offset given as a string', { batchItemFailures: [{ itemIdentifier: { partition: 't-0', offset: '1' } }] }],
    ['an SQS-style string identifier', { batchItemFailures: [{ itemIdentifier: 't-0' }] }],
    ['a list that is not an array', { batchItemFailures: { itemIdentifier: { partition: 't-0', offset: 1 } } }],
  ])('retries the whole batch when batchItemFailures names %s', async (_case, response) => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    const committedAtRetry: Array<number | undefined> = [];
    let calls = 0;
    const { esm, delivered } = mapping(broker, {
      reportBatchItemFailures: true,
      handler: () => {
        if (++calls === 1) return response;
        committedAtRetry.push(broker.committed('cache', 't', 0));
        return undefined;
      },
    });

    // Act
    await produceTo(broker, 't', 0, 3);
    await esm.drain();

    // Assert
    expect(delivered()).toEqual([
      ['t-0:0', 't-0:1', 't-0:2'],
      ['t-0:0', 't-0:1', 't-0:2'],
    ]);
    expect(committedAtRetry).toEqual([0]);
    expect(esm.stats().invalidResponses).toBe(1);
  });

  it.each([
    ['undefined', undefined],
    ['null', null],
    ['{}', {}],
    ['an empty list', { batchItemFailures: [] }],
    ['a null list', { batchItemFailures: null }],
  ])('treats a response of %s as success', async (_case, response) => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    const { esm, events } = mapping(broker, { reportBatchItemFailures: true, handler: () => response });

    // Act
    await produceTo(broker, 't', 0, 2);
    await esm.drain();

    // Assert
    expect(events).toHaveLength(1);
    expect(broker.committed('cache', 't', 0)).toBe(2);
  });

  it('ignores batchItemFailures unless reportBatchItemFailures is on', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    const { esm, events } = mapping(broker, {
      handler: () => ({ batchItemFailures: [{ itemIdentifier: { partition: 't-0', offset: 0 } }] }),
    });

    // Act
    await produceTo(broker, 't', 0, 2);
    await esm.drain();

    // Assert
    expect(events).toHaveLength(1);
    expect(broker.committed('cache', 't', 0)).toBe(2);
  });

  it('bisects a failing batch down to the poison record and sends only that one to the destination', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    const failures: OnFailureRecord[] = [];
    const { esm, delivered } = mapping(broker, {
      bisectBatchOnError: true,
      maxRetryAttempts: 0,
      onFailure: async (record) => {
        failures.push(record);
      },
      handler: (event) => {
        if (event.records['t-0']!.some((r) => r.offset === 2)) throw new Error('poison');
      },
    });

    // Act
    await produceTo(broker, 't', 0, 4);
    await esm.drain();

    // Assert
    expect(delivered()).toEqual([
      ['t-0:0', 't-0:1', 't-0:2', 't-0:3'],
      ['t-0:0', 't-0:1'],
      ['t-0:2', 't-0:3'],
      ['t-0:2'],
      ['t-0:3'],
    ]);
    expect(failures.map((f) => f.KafkaBatchInfo.recordsInfo)).toEqual([
      { 't-0': expect.objectContaining({ firstRecordOffset: '2', lastRecordOffset: '2' }) },
    ]);
    expect(broker.committed('cache', 't', 0)).toBe(4);
    expect(esm.stats().bisections).toBe(2);
  });

  it('sends the batch to the on-failure destination after maxRetryAttempts, with the full payload, and moves on', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('pg.public.orders', 1);
    const failures: OnFailureRecord[] = [];
    const { esm, events, contexts } = mapping(broker, {
      functionName: 'cdc-cache',
      maxRetryAttempts: 2,
      onFailure: async (record) => {
        failures.push(record);
      },
      handler: () => {
        throw new Error('sink down');
      },
    });

    // Act
    await produceTo(broker, 'pg.public.orders', 0, 3, { timestamp: Date.UTC(2024, 2, 15, 10, 30, 0, 100) });
    await esm.drain();

    // Assert
    expect(events).toHaveLength(3);
    const [failure] = failures;
    expect(failures).toHaveLength(1);
    expect(failure).toStrictEqual({
      requestContext: {
        requestId: contexts[2]!.awsRequestId,
        functionArn: 'arn:aws:lambda:us-east-1:000000000000:function:cdc-cache',
        condition: 'RetryAttemptsExhausted',
        approximateInvokeCount: 3,
      },
      responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
      version: '1.0',
      timestamp: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/),
      KafkaBatchInfo: {
        batchSize: 3,
        eventSourceArn: ARN,
        bootstrapServers: SERVERS,
        payloadSize: Buffer.byteLength(failure!.payload),
        recordsInfo: {
          'pg.public.orders-0': {
            firstRecordOffset: '0',
            lastRecordOffset: '2',
            firstRecordTimestamp: '2024-03-15T10:30:00.100Z',
            lastRecordTimestamp: '2024-03-15T10:30:00.100Z',
          },
        },
      },
      payload: expect.any(String),
    });
    expect(JSON.parse(failure!.payload)).toStrictEqual(events[2]);
    expect(broker.committed('cache', 'pg.public.orders', 0)).toBe(3);
    expect(esm.stats()).toMatchObject({ recordsSentToDestination: 3, destinationRecords: 1 });
  });

  it('caps infinite retries at 10 when an on-failure destination is set', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    const failures: OnFailureRecord[] = [];
    const { esm, events } = mapping(broker, {
      onFailure: async (record) => {
        failures.push(record);
      },
      handler: () => {
        throw new Error('always');
      },
    });

    // Act
    await produceTo(broker, 't', 0, 1);
    await esm.drain();

    // Assert
    expect(events).toHaveLength(11);
    expect(failures.map((f) => f.requestContext.approximateInvokeCount)).toEqual([11]);
  });

  it('skips an exhausted batch without a destination and keeps going', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    const { esm, delivered } = mapping(broker, {
      maxRetryAttempts: 1,
      handler: (event) => {
        if (event.records['t-0']![0]!.offset === 0) throw new Error('poison');
      },
    });

    // Act
    await produceTo(broker, 't', 0, 1);
    await esm.drain();
    await produceTo(broker, 't', 0, 1);
    await esm.drain();

    // Assert
    expect(delivered()).toEqual([['t-0:0'], ['t-0:0'], ['t-0:1']]);
    expect(broker.committed('cache', 't', 0)).toBe(2);
    expect(esm.stats().recordsSentToDestination).toBe(1);
  });

  it('sends what a partial batch response keeps failing to the destination, without functionError', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    const failures: OnFailureRecord[] = [];
    const { esm, delivered } = mapping(broker, {
      reportBatchItemFailures: true,
      maxRetryAttempts: 1,
      onFailure: async (record) => {
        failures.push(record);
      },
      handler: () => ({ batchItemFailures: [{ itemIdentifier: { partition: 't-0', offset: 1 } }] }),
    });

    // Act
    await produceTo(broker, 't', 0, 3);
    await esm.drain();

    // Assert
    expect(delivered()).toEqual([
      ['t-0:0', 't-0:1', 't-0:2'],
      ['t-0:1', 't-0:2'],
    ]);
    expect(failures[0]).toMatchObject({
      requestContext: { condition: 'RetryAttemptsExhausted', approximateInvokeCount: 2 },
      responseContext: { statusCode: 200, executedVersion: '$LATEST' },
      KafkaBatchInfo: { batchSize: 2, recordsInfo: { 't-0': { firstRecordOffset: '1', lastRecordOffset: '2' } } },
    });
    expect(failures[0]!.responseContext).not.toHaveProperty('functionError');
    expect(broker.committed('cache', 't', 0)).toBe(3);
  });

  it('sends records older than maxRecordAgeSeconds to the destination without invoking', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    const failures: OnFailureRecord[] = [];
    const { esm, delivered } = mapping(broker, {
      maxRecordAgeSeconds: 60,
      onFailure: async (record) => {
        failures.push(record);
      },
    });

    // Act
    await produceTo(broker, 't', 0, 2, { timestamp: Date.now() - 120_000 });
    await produceTo(broker, 't', 0, 1);
    await esm.drain();

    // Assert
    expect(delivered()).toEqual([['t-0:2']]);
    expect(failures).toMatchObject([
      {
        requestContext: { condition: 'RecordAgeExceeded', approximateInvokeCount: 0 },
        responseContext: null,
        KafkaBatchInfo: { batchSize: 2 },
      },
    ]);
  });

  it('sends a record too large for one invocation to the destination as MaximumPayloadSizeExceeded', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    const failures: OnFailureRecord[] = [];
    const { esm, delivered } = mapping(broker, {
      maxPayloadBytes: 1000,
      onFailure: async (record) => {
        failures.push(record);
      },
    });

    // Act
    await broker.produce([
      { topic: 't', partition: 0, key: null, value: Buffer.alloc(2000) },
      { topic: 't', partition: 0, key: null, value: json('small') },
    ]);
    await esm.drain();

    // Assert
    expect(delivered()).toEqual([['t-0:1']]);
    expect(failures).toMatchObject([
      {
        requestContext: { condition: 'MaximumPayloadSizeExceeded' },
        responseContext: null,
        KafkaBatchInfo: { batchSize: 1 },
      },
    ]);
  });

  it('retries a failing destination instead of dropping the batch', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    let destinationCalls = 0;
    const { esm } = mapping(broker, {
      maxRetryAttempts: 0,
      onFailure: async () => {
        if (++destinationCalls === 1) throw new Error('bucket unavailable');
      },
      handler: () => {
        throw new Error('always');
      },
    });

    // Act
    await produceTo(broker, 't', 0, 1);
    await esm.drain();

    // Assert
    expect(destinationCalls).toBe(2);
    expect(esm.stats().destinationRecords).toBe(1);
  });
});

describe('consumer group lifecycle', () => {
  it.each([
    ['TRIM_HORIZON', ['t-0:0', 't-0:1', 't-0:2']],
    ['LATEST', ['t-0:2']],
  ] as const)('starts a new group at %s', async (startingPosition, expected) => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    await produceTo(broker, 't', 0, 2);
    const { esm, delivered } = mapping(broker, { startingPosition });
    await settle();

    // Act
    await produceTo(broker, 't', 0, 1);
    await esm.drain();

    // Assert
    expect(delivered().flat()).toEqual(expected);
  });

  it('commits the LATEST starting position, so a restart does not skip what arrived meanwhile', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    await produceTo(broker, 't', 0, 2);
    const first = mapping(broker, { startingPosition: 'LATEST' });
    await first.esm.stop();
    await produceTo(broker, 't', 0, 1);

    // Act
    const second = mapping(broker, { startingPosition: 'LATEST' });
    await second.esm.drain();

    // Assert
    expect(second.delivered()).toEqual([['t-0:2']]);
  });

  it('resumes a group from its committed offset whatever the starting position', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    await produceTo(broker, 't', 0, 5);
    await broker.commit('cache', 't', 0, 3);

    // Act
    const { esm, delivered } = mapping(broker, { startingPosition: 'TRIM_HORIZON' });
    await esm.drain();

    // Assert
    expect(delivered()).toEqual([['t-0:3', 't-0:4']]);
  });

  it('starts a new TRIM_HORIZON group at the log start offset once records were deleted', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    await produceTo(broker, 't', 0, 4);
    broker.deleteRecords('t', 0, 3);

    // Act
    const { esm, delivered } = mapping(broker, { startingPosition: 'TRIM_HORIZON' });
    await esm.drain();

    // Assert
    expect(delivered()).toEqual([['t-0:3']]);
    expect(broker.committed('cache', 't', 0)).toBe(4);
  });

  it('moves a group whose committed offset was deleted on to the log start offset (auto.offset.reset=earliest)', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    await produceTo(broker, 't', 0, 5);
    await broker.commit('cache', 't', 0, 1);
    broker.deleteRecords('t', 0, 3);

    // Act
    const { esm, delivered } = mapping(broker);
    await esm.drain();

    // Assert
    expect(delivered()).toEqual([['t-0:3', 't-0:4']]);
  });

  it('subscribes to topics created after start when they match the predicate', async () => {
    // Arrange
    const broker = new LocalBroker();
    const { esm, delivered } = mapping(broker, { topics: (topic) => topic.startsWith('pg.') });

    // Act
    await broker.produce([
      { topic: 'pg.public.items', partition: 0, key: null, value: null },
      { topic: 'other', partition: 0, key: null, value: null },
    ]);
    await esm.drain();

    // Assert
    expect(delivered()).toEqual([['pg.public.items-0:0']]);
    expect(esm.stats().partitions.map((p) => p.id)).toEqual([
      'pg.public.items-0',
      'pg.public.items-1',
      'pg.public.items-2',
    ]);
  });

  it('gives each consumer group every record, and a failing group does not hold the others back', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    const cache = mapping(broker, { groupId: 'cache' });
    const audit = mapping(broker, {
      groupId: 'audit',
      handler: () => {
        throw new Error('audit sink down');
      },
    });

    // Act
    await produceTo(broker, 't', 0, 2);
    await cache.esm.drain();

    // Assert
    expect(cache.delivered()).toEqual([['t-0:0', 't-0:1']]);
    expect(broker.committed('cache', 't', 0)).toBe(2);
    expect(broker.committed('audit', 't', 0)).toBe(0);
    await expect(audit.esm.drain(50)).rejects.toMatchObject({
      code: 'DRAIN_TIMEOUT',
      message: expect.stringContaining('t-0'),
    });
  });

  it('stop() waits for the invocation in flight and commits it', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    const release = deferred();
    const entered = deferred();
    const { esm } = mapping(broker, {
      handler: async () => {
        entered.resolve();
        await release.promise;
      },
    });
    await produceTo(broker, 't', 0, 2);
    await entered.promise;

    // Act
    const stopped = esm.stop();
    release.resolve();
    await stopped;

    // Assert
    expect(broker.committed('cache', 't', 0)).toBe(2);
  });

  it('leaves a batch that is waiting for a retry uncommitted on stop() and redelivers it after start()', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 1);
    let failing = true;
    const failedOnce = deferred();
    const { esm, delivered } = mapping(broker, {
      retryBackoffMs: 60_000,
      handler: () => {
        if (failing) {
          failedOnce.resolve();
          throw new Error('down');
        }
      },
    });
    await produceTo(broker, 't', 0, 2);
    await failedOnce.promise;

    // Act
    await esm.stop();
    const committedWhileStopped = broker.committed('cache', 't', 0);
    failing = false;
    esm.start();
    await esm.drain();

    // Assert
    expect(committedWhileStopped).toBe(0);
    expect(delivered()).toEqual([
      ['t-0:0', 't-0:1'],
      ['t-0:0', 't-0:1'],
    ]);
    expect(broker.committed('cache', 't', 0)).toBe(2);
  });

  it('continues from the committed offsets after the broker and the mapping restart from disk', async () => {
    // Arrange
    const dir = await mkdtemp(join(tmpdir(), 'cdc-esm-'));
    try {
      const broker1 = await LocalBroker.open({ dir });
      broker1.createTopic('t', 1);
      await produceTo(broker1, 't', 0, 3);
      const first = mapping(broker1);
      await first.esm.drain();
      await first.esm.stop();
      await produceTo(broker1, 't', 0, 2);
      await broker1.close();

      // Act
      const broker2 = await LocalBroker.open({ dir });
      const second = mapping(broker2);
      await second.esm.drain();

      // Assert
      expect(second.delivered()).toEqual([['t-0:3', 't-0:4']]);
      await second.esm.stop();
      await broker2.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reports per-partition lag, in-flight state and latency in stats()', async () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('t', 2);
    const release = deferred();
    const entered = deferred();
    const { esm } = mapping(broker, {
      handler: async (event) => {
        if (event.records['t-0'] !== undefined) {
          entered.resolve();
          await release.promise;
        }
      },
    });

    // Act
    await produceTo(broker, 't', 0, 3);
    await entered.promise;
    const during = esm.stats();
    release.resolve();
    await esm.drain();
    const after = esm.stats();

    // Assert
    expect(during.partitions).toEqual([
      { id: 't-0', topic: 't', partition: 0, committed: 0, highWater: 3, lag: 3, inFlight: true },
      { id: 't-1', topic: 't', partition: 1, committed: 0, highWater: 0, lag: 0, inFlight: false },
    ]);
    expect(during.inFlightBatches).toBe(1);
    expect(after).toMatchObject({ lag: 0, inFlightBatches: 0, invocations: 1, recordsDelivered: 3 });
    expect(after.latencyMs?.count).toBe(1);
  });

  it.each([
    [{ batchSize: 0 }],
    [{ batchSize: 10_001 }],
    [{ maxBatchingWindowMs: -1 }],
    [{ maxRetryAttempts: -2 }],
    [{ maxConcurrency: 0 }],
  ])('rejects the invalid option %j', (option) => {
    // Act / Assert
    expect(
      () =>
        new LocalEventSourceMapping({
          broker: new LocalBroker(),
          groupId: 'g',
          topics: ['t'],
          handler: () => undefined,
          ...option,
        }),
    ).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });
});
