import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { DeadLetterMessage } from '../../functions/adapters/sqs-dead-letter-queue';
import type { BatchResult } from '../../functions/core/pipeline';
import type { KafkaEvent, KafkaRecord } from '../../functions/core/types';

export interface RedriveOptions {
  sqs: SQSClient;
  s3: S3Client;
  queueUrl: string;
  /** The lane handler built with `mode: 'redrive'`; resolves with the batch result. */
  run: (event: KafkaEvent) => Promise<BatchResult>;
  /** At most this many dead letters. */
  max?: number;
  /** Seconds the received messages stay invisible while they are redriven. */
  visibilitySeconds?: number;
}

export interface RedriveSummary {
  letters: number;
  processed: number;
  skipped: number;
  duplicates: number;
  /** Records that failed again for good: a new dead letter replaces the old one. */
  deadLetteredAgain: number;
  /** Letters left in the queue because their partition failed for a retryable reason (they come back later). */
  kept: number;
}

interface Received {
  receiptHandle: string;
  letter: DeadLetterMessage;
}

async function fullLetter(s3: S3Client, letter: DeadLetterMessage): Promise<DeadLetterMessage> {
  if (!letter.payloadLocation) return letter;
  const object = await s3.send(
    new GetObjectCommand({ Bucket: letter.payloadLocation.bucket, Key: letter.payloadLocation.key }),
  );
  return JSON.parse((await object.Body?.transformToString()) ?? '{}') as DeadLetterMessage;
}

/**
 * Puts dead letters back through their lane: receives them, fetches claim-checked payloads from S3, hands their
 * original records to the lane (in redrive mode: applied again whatever the partition's checkpoint says; the sinks'
 * guards decide), and deletes the letters whose partition went through — a record still bad is dead-lettered again
 * with its new reason, so nothing is lost either way.
 */
export async function redriveDeadLetters(options: RedriveOptions): Promise<RedriveSummary> {
  const max = options.max ?? 1000;
  const received: Received[] = [];
  while (received.length < max) {
    const page = await options.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: options.queueUrl,
        MaxNumberOfMessages: Math.min(10, max - received.length),
        VisibilityTimeout: options.visibilitySeconds ?? 300,
        WaitTimeSeconds: 0,
      }),
    );
    if (!page.Messages?.length) break;
    for (const m of page.Messages) {
      const letter = await fullLetter(options.s3, JSON.parse(m.Body ?? '{}') as DeadLetterMessage);
      received.push({ receiptHandle: m.ReceiptHandle ?? '', letter });
    }
  }
  const summary: RedriveSummary = {
    letters: received.length,
    processed: 0,
    skipped: 0,
    duplicates: 0,
    deadLetteredAgain: 0,
    kept: 0,
  };
  if (received.length === 0) return summary;

  const records: Record<string, KafkaRecord[]> = {};
  for (const { letter } of received) {
    const id = `${letter.record.topic}-${letter.record.partition}`;
    records[id] ??= [];
    records[id].push(letter.record);
  }
  for (const list of Object.values(records)) list.sort((a, b) => a.offset - b.offset);
  const result = await options.run({ eventSource: 'aws:kafka', records });

  const failed = result.fatal ? undefined : new Set(result.batchItemFailures.map((f) => f.itemIdentifier.partition));
  const done = received.filter(
    ({ letter }) => failed !== undefined && !failed.has(`${letter.record.topic}-${letter.record.partition}`),
  );
  for (let i = 0; i < done.length; i += 10) {
    await options.sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: options.queueUrl,
        Entries: done.slice(i, i + 10).map((r, j) => ({ Id: String(j), ReceiptHandle: r.receiptHandle })),
      }),
    );
  }
  return {
    letters: received.length,
    processed: result.processed,
    skipped: result.skipped,
    duplicates: result.duplicates,
    deadLetteredAgain: result.deadLettered,
    kept: received.length - done.length,
  };
}
