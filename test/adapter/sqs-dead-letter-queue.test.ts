import { GetObjectCommand } from '@aws-sdk/client-s3';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { type DeadLetterMessage, SqsDeadLetterQueue } from '../../functions/adapters/sqs-dead-letter-queue';
import type { DeadLetter } from '../../functions/core/types';
import { LOCAL_NAMES } from '../../tools/local/services';
import { useLocalServices } from '../support/local';

const services = useLocalServices();

function letter(offset: number, value: string): DeadLetter {
  return {
    lane: 'audit',
    error: { code: 'NOT_JSON', message: 'value is not JSON' },
    record: {
      topic: 'pg.public.orders',
      partition: 2,
      offset,
      timestamp: 1_710_498_600_000,
      timestampType: 'CREATE_TIME',
      key: 'eyJpZCI6MX0=',
      value,
      headers: [{ traceparent: [48, 48] }, { 'x-ë': [-61, -85] }],
    },
    failedAt: '2024-03-15T10:31:40.000Z',
  };
}

async function receiveAll(queueUrl: string): Promise<DeadLetterMessage[]> {
  const out: DeadLetterMessage[] = [];
  for (;;) {
    const r = await services().clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
    );
    if (!r.Messages?.length) return out;
    out.push(...r.Messages.map((m) => JSON.parse(m.Body ?? '{}') as DeadLetterMessage));
  }
}

describe('SqsDeadLetterQueue (fauxqs: SQS and S3)', () => {
  it('sends one message per bad record with the original record, the reason, the lane and the time', async () => {
    // Arrange
    const { sqs, s3 } = services().clients;
    const queueUrl = services().queueUrls.audit;
    const dlq = new SqsDeadLetterQueue(sqs, s3, { queueUrl, payloadBucket: LOCAL_NAMES.deadLetterBucket });
    const letters = Array.from({ length: 23 }, (_, i) => letter(i, Buffer.from(`bad ${i}`).toString('base64')));
    // Act
    await dlq.send(letters);
    // Assert
    const received = await receiveAll(queueUrl);
    expect(received).toHaveLength(23);
    expect(received.find((m) => m.record.offset === 7)).toEqual(letters[7]);
  });

  it('stores a letter too large for SQS in S3 and sends a pointer with the record coordinates', async () => {
    // Arrange
    const { sqs, s3 } = services().clients;
    const queueUrl = services().queueUrls.cache;
    const dlq = new SqsDeadLetterQueue(sqs, s3, { queueUrl, payloadBucket: LOCAL_NAMES.deadLetterBucket });
    const big = letter(99, Buffer.alloc(2 * 1024 * 1024, 7).toString('base64'));
    // Act
    await dlq.send([big]);
    // Assert
    const [message] = await receiveAll(queueUrl);
    expect(message).toMatchObject({
      error: big.error,
      record: { topic: 'pg.public.orders', partition: 2, offset: 99 },
    });
    expect(message?.record.value).toBeUndefined();
    const stored = await s3.send(
      new GetObjectCommand({ Bucket: message?.payloadLocation?.bucket, Key: message?.payloadLocation?.key }),
    );
    expect(JSON.parse(await (stored.Body?.transformToString() ?? Promise.resolve('{}')))).toEqual(big);
  });
});
