import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { describe, expect, it, vi } from 'vitest';
import type { KafkaTransport } from '../../functions/adapters/kafka-snapshot-signaller';
import type { SignalMessage } from '../../functions/adapters/sqs-snapshot-signaller';
import type { SnapshotSignal } from '../../functions/core/types';
import { createSignallerHandler, parseSignalMessage } from '../../functions/signaller/handler';
import { lambdaContext } from '../../tools/lib/cli';

const env = {
  SIGNAL_TOPICS: JSON.stringify({ orders: 'orders.signals', inventory: 'inventory.signals' }),
  SIGNAL_BOOTSTRAP_SERVERS: 'b-1:9098',
  POWERTOOLS_TRACE_ENABLED: 'false',
  POWERTOOLS_LOG_LEVEL: 'SILENT',
};

function signal(table: string): SnapshotSignal {
  return {
    id: `schema-${table}-v2`,
    type: 'execute-snapshot',
    data: { 'data-collections': [table.split('.').slice(1).join('.')], type: 'incremental' },
  };
}

function record(messageId: string, body: SignalMessage | string, group?: string): SQSRecord {
  return {
    messageId,
    receiptHandle: `rh-${messageId}`,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: '1710498600000',
      SenderId: 'AROAEXAMPLE',
      ApproximateFirstReceiveTimestamp: '1710498600001',
      ...(group ? { MessageGroupId: group, MessageDeduplicationId: messageId, SequenceNumber: '1' } : {}),
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:eu-west-1:111122223333:cdc-sync-dev-signals.fifo',
    awsRegion: 'eu-west-1',
  };
}

/** A transport that records what is produced and fails for the given signal ids. */
function fakeTransport(failing: string[] = []) {
  const produced: Array<{ topic: string; key: string; value: unknown }> = [];
  const transport: KafkaTransport = {
    produce: vi.fn(async (topic: string, key: string, value: string) => {
      const parsed = JSON.parse(value) as SnapshotSignal;
      if (failing.includes(parsed.id)) throw new Error('NOT_ENOUGH_REPLICAS');
      produced.push({ topic, key, value: parsed });
    }),
    close: vi.fn(async () => undefined),
  };
  return { transport, produced };
}

const invoke = (handler: ReturnType<typeof createSignallerHandler>, records: SQSRecord[]) =>
  handler({ Records: records } satisfies SQSEvent, lambdaContext('signaller') as never);

describe('signaller function', () => {
  it("produces each message's signal to its connector's signal topic, keyed by the topic prefix", async () => {
    // Arrange
    const { transport, produced } = fakeTransport();
    const handler = createSignallerHandler(env, { transport });
    const orders = signal('orders.public.orders');
    const stock = signal('inventory.inventory.stock');
    // Act
    const response = await invoke(handler, [
      record('m1', { topicPrefix: 'orders', signal: orders }, 'orders'),
      record('m2', { topicPrefix: 'inventory', signal: stock }, 'inventory'),
    ]);
    // Assert
    expect(response).toEqual({ batchItemFailures: [] });
    expect(produced).toEqual(
      expect.arrayContaining([
        { topic: 'orders.signals', key: 'orders', value: orders },
        { topic: 'inventory.signals', key: 'inventory', value: stock },
      ]),
    );
    expect(produced).toHaveLength(2);
  });

  it('reports a message whose produce failed, and only that one', async () => {
    // Arrange
    const { transport, produced } = fakeTransport(['schema-orders.public.orders-v2']);
    const handler = createSignallerHandler(env, { transport });
    // Act
    const response = await invoke(handler, [
      record('m1', { topicPrefix: 'orders', signal: signal('orders.public.orders') }, 'orders'),
      record('m2', { topicPrefix: 'inventory', signal: signal('inventory.inventory.stock') }, 'inventory'),
    ]);
    // Assert
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'm1' }] });
    expect(produced.map((p) => p.key)).toEqual(['inventory']);
  });

  it("returns the later messages of a failed message's group unproduced, so a connector's signals stay in order", async () => {
    // Arrange
    const { transport, produced } = fakeTransport(['schema-orders.public.orders-v2']);
    const handler = createSignallerHandler(env, { transport });
    // Act
    const response = await invoke(handler, [
      record('m1', { topicPrefix: 'orders', signal: signal('orders.public.orders') }, 'orders'),
      record('m2', { topicPrefix: 'inventory', signal: signal('inventory.inventory.stock') }, 'inventory'),
      record('m3', { topicPrefix: 'orders', signal: signal('orders.public.customers') }, 'orders'),
    ]);
    // Assert
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'm1' }, { itemIdentifier: 'm3' }] });
    expect(produced.map((p) => p.value)).toEqual([signal('inventory.inventory.stock')]);
  });

  it('fails messages no retry can fix (not a signal, a connector without a signal topic) so they reach the DLQ', async () => {
    // Arrange
    const { transport, produced } = fakeTransport();
    const handler = createSignallerHandler(env, { transport });
    // Act
    const response = await invoke(handler, [
      record('bad-json', '{not json'),
      record('unknown', { topicPrefix: 'billing', signal: signal('billing.public.invoices') }),
      record('ok', { topicPrefix: 'orders', signal: signal('orders.public.orders') }),
    ]);
    // Assert
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'bad-json' }, { itemIdentifier: 'unknown' }] });
    expect(produced.map((p) => p.key)).toEqual(['orders']);
  });

  it('closes the producer', async () => {
    const { transport } = fakeTransport();
    const handler = createSignallerHandler(env, { transport });
    await handler.close();
    expect(transport.close).toHaveBeenCalledTimes(1);
  });

  it('fails at cold start, naming the variable, when the signal topics are missing', () => {
    expect(() => createSignallerHandler({ SIGNAL_BOOTSTRAP_SERVERS: 'b-1:9098' })).toThrow(/SIGNAL_TOPICS is missing/);
  });
});

describe('parseSignalMessage', () => {
  it('reads what the SQS signaller sends', () => {
    const message: SignalMessage = {
      topicPrefix: 'orders',
      signal: {
        ...signal('orders.public.orders'),
        data: {
          'data-collections': ['public.orders'],
          type: 'incremental',
          'additional-conditions': [{ 'data-collection': 'public.orders', filter: "status = 'open'" }],
        },
      },
    };
    expect(parseSignalMessage(JSON.stringify(message))).toEqual(message);
  });

  it.each([
    ['not JSON', '{', /not JSON/],
    ['no prefix', JSON.stringify({ signal: signal('orders.public.orders') }), /topicPrefix/],
    [
      'another signal type',
      JSON.stringify({ topicPrefix: 'orders', signal: { ...signal('o.p.t'), type: 'log' } }),
      /signal\.type/,
    ],
    [
      'no data collections',
      JSON.stringify({
        topicPrefix: 'orders',
        signal: { id: 'x', type: 'execute-snapshot', data: { 'data-collections': [], type: 'incremental' } },
      }),
      /data-collections/,
    ],
  ])('rejects %s as an invalid event', (_name, body, message) => {
    expect(() => parseSignalMessage(body)).toThrow(message);
    expect(() => parseSignalMessage(body)).toThrow(
      expect.objectContaining({ code: 'INVALID_EVENT', retryable: false }),
    );
  });
});
