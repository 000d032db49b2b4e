import { CreateQueueCommand, DeleteMessageCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { startFauxqs } from 'fauxqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deduplicationIdOf, SqsSnapshotSignaller } from '../../functions/adapters/sqs-snapshot-signaller';
import type { SnapshotSignal } from '../../functions/core/types';
import { queueSignallerFrom } from '../../functions/shared/lane-deps';
import { parseSignalMessage } from '../../functions/signaller/handler';

// fauxqs alone (not the whole local stack): it implements FIFO queues with MessageGroupId and
// MessageDeduplicationId, which is what this adapter relies on.
let server: Awaited<ReturnType<typeof startFauxqs>>;
let sqs: SQSClient;
let queues = 0;

beforeAll(async () => {
  server = await startFauxqs({ port: 0, logger: false, defaultRegion: 'eu-west-1' });
  sqs = new SQSClient({
    endpoint: server.address,
    region: 'eu-west-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
});

afterAll(async () => {
  sqs?.destroy();
  await server?.stop();
});

async function fifoQueue(): Promise<string> {
  queues += 1;
  const created = await sqs.send(
    new CreateQueueCommand({ QueueName: `signals-${queues}.fifo`, Attributes: { FifoQueue: 'true' } }),
  );
  return created.QueueUrl as string;
}

/** Receives and deletes until the queue is empty (a FIFO group hands out its next message once the last is gone). */
async function receiveAll(queueUrl: string) {
  const out = [];
  for (;;) {
    const r = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        MessageSystemAttributeNames: ['MessageGroupId', 'MessageDeduplicationId'],
      }),
    );
    if (!r.Messages?.length) return out;
    out.push(...r.Messages);
    for (const m of r.Messages) {
      await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle }));
    }
  }
}

const signal: SnapshotSignal = {
  id: 'schema-orders.public.orders-v2',
  type: 'execute-snapshot',
  data: { 'data-collections': ['public.orders'], type: 'incremental' },
};

describe('SqsSnapshotSignaller (fauxqs, FIFO queue)', () => {
  it('sends { topicPrefix, signal } in the connector group, deduplicated by the signal id', async () => {
    // Arrange
    const queueUrl = await fifoQueue();
    const signaller = new SqsSnapshotSignaller(sqs, { queueUrl, topicPrefix: 'orders' });
    // Act
    await signaller.send(signal);
    // Assert
    const [message, ...rest] = await receiveAll(queueUrl);
    expect(rest).toEqual([]);
    expect(parseSignalMessage(message?.Body ?? '')).toEqual({ topicPrefix: 'orders', signal });
    expect(message?.Attributes).toMatchObject({
      MessageGroupId: 'orders',
      MessageDeduplicationId: 'schema-orders.public.orders-v2',
    });
  });

  it('drops a second send of the same signal (a lane retrying after a crash), keeps other signals', async () => {
    // Arrange
    const queueUrl = await fifoQueue();
    const signaller = new SqsSnapshotSignaller(sqs, { queueUrl, topicPrefix: 'orders' });
    const next: SnapshotSignal = { ...signal, id: 'schema-orders.public.orders-v3' };
    // Act
    await signaller.send(signal);
    await signaller.send(signal);
    await signaller.send(next);
    // Assert
    const ids = (await receiveAll(queueUrl)).map((m) => parseSignalMessage(m.Body ?? '').signal.id);
    expect(ids).toEqual(['schema-orders.public.orders-v2', 'schema-orders.public.orders-v3']);
  });

  it('fails when the queue does not exist, so the schema history retries the signal', async () => {
    const signaller = new SqsSnapshotSignaller(sqs, {
      queueUrl: `${server.address}/000000000000/missing.fifo`,
      topicPrefix: 'orders',
    });
    await expect(signaller.send(signal)).rejects.toThrow();
  });
});

describe('queueSignallerFrom (the lanes’ default signaller)', () => {
  it('is absent without SIGNAL_QUEUE_URL', () => {
    expect(queueSignallerFrom({}, sqs)).toBeUndefined();
  });

  it("sends each connector's signals in that connector's group", async () => {
    // Arrange
    const queueUrl = await fifoQueue();
    const signallerFor = queueSignallerFrom({ SIGNAL_QUEUE_URL: queueUrl }, sqs);
    // Act
    await signallerFor?.('orders').send(signal);
    await signallerFor?.('inventory').send({ ...signal, id: 'schema-inventory.inventory.stock-v2' });
    // Assert
    const messages = await receiveAll(queueUrl);
    expect(
      messages.map((m) => [m.Attributes?.MessageGroupId, parseSignalMessage(m.Body ?? '').topicPrefix]).sort(),
    ).toEqual([
      ['inventory', 'inventory'],
      ['orders', 'orders'],
    ]);
  });
});

describe('deduplicationIdOf', () => {
  it('keeps an id SQS accepts and hashes one it does not (spaces, non-ASCII, over 128 characters)', () => {
    expect(deduplicationIdOf('schema-pg.public.orders-v2')).toBe('schema-pg.public.orders-v2');
    for (const id of ['schema-pg.public.my table-v1', 'schema-pg.public.größe-v1', `schema-${'x'.repeat(130)}-v1`]) {
      expect(deduplicationIdOf(id)).toMatch(/^[0-9a-f]{64}$/);
      expect(deduplicationIdOf(id)).toBe(deduplicationIdOf(id));
    }
  });
});
