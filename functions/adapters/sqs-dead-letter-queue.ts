import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { SendMessageBatchCommand, type SendMessageBatchRequestEntry, type SQSClient } from '@aws-sdk/client-sqs';
import { DeadLetterError } from '../core/errors';
import type { DeadLetter, DeadLetterQueue, KafkaRecord } from '../core/types';

export interface SqsDeadLetterQueueOptions {
  queueUrl: string;
  /** Bucket for letters too large for one SQS message (claim check). */
  payloadBucket: string;
  payloadPrefix?: string;
  /**
   * Largest message body sent inline. SQS accepts up to 1 MiB since 2025, but 256 KiB is what every SQS API
   * emulator and older account quota accepts, and a batch of 10 must also fit the request limit.
   */
  maxInlineBytes?: number;
}

/** SendMessageBatch takes at most 10 entries and (like a single message) at most 256 KiB in total by default. */
const BATCH_ENTRIES = 10;
const BATCH_BYTES = 256 * 1024;

/**
 * The message body of a dead letter: the lane, the error, the time and the original record (topic, partition,
 * offset, timestamp, key, value, headers). When the record is too large, `record.key`/`record.value` are replaced
 * by `payloadLocation`, an S3 object holding the complete letter.
 */
export interface DeadLetterMessage extends DeadLetter {
  payloadLocation?: { bucket: string; key: string };
}

/**
 * The `topic` message attribute: the record's topic, or `unknown` for a record that is not a Kafka record (the
 * pipeline dead-letters it as it came: null, a number, an object without a topic). SQS refuses an empty attribute.
 */
function topicOf(record: unknown): string {
  const topic = (record as Partial<KafkaRecord> | null)?.topic;
  return topic === undefined || topic === null || String(topic) === '' ? 'unknown' : String(topic);
}

export class SqsDeadLetterQueue implements DeadLetterQueue {
  private readonly maxInlineBytes: number;

  constructor(
    private readonly sqs: SQSClient,
    private readonly s3: S3Client,
    private readonly options: SqsDeadLetterQueueOptions,
  ) {
    this.maxInlineBytes = options.maxInlineBytes ?? 200 * 1024;
  }

  async send(letters: readonly DeadLetter[]): Promise<void> {
    const bodies = await Promise.all(letters.map((letter) => this.body(letter)));
    const batches: Array<Array<{ letter: DeadLetter; body: string }>> = [];
    let current: Array<{ letter: DeadLetter; body: string }> = [];
    let bytes = 0;
    letters.forEach((letter, i) => {
      const body = bodies[i] as string;
      const size = Buffer.byteLength(body);
      if (current.length === BATCH_ENTRIES || (current.length > 0 && bytes + size > BATCH_BYTES)) {
        batches.push(current);
        current = [];
        bytes = 0;
      }
      current.push({ letter, body });
      bytes += size;
    });
    if (current.length > 0) batches.push(current);
    await Promise.all(batches.map((batch) => this.sendBatch(batch)));
  }

  private async body(letter: DeadLetter): Promise<string> {
    const inline = JSON.stringify(letter);
    if (Buffer.byteLength(inline) <= this.maxInlineBytes) return inline;
    // A malformed record is kept as it came: it may not even be an object (see topicOf).
    const record = letter.record as Partial<KafkaRecord> | null;
    const key = `${this.options.payloadPrefix ?? 'dead-letters/'}${letter.lane}/${record?.topic}/${record?.partition}/${record?.offset}.json`;
    try {
      await this.s3.send(
        new PutObjectCommand({
          Bucket: this.options.payloadBucket,
          Key: key,
          Body: inline,
          ContentType: 'application/json',
        }),
      );
    } catch (error) {
      throw new DeadLetterError(
        `storing an oversize dead letter in s3://${this.options.payloadBucket}/${key}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    const message: DeadLetterMessage = {
      ...letter,
      record: { ...letter.record, key: undefined, value: undefined },
      payloadLocation: { bucket: this.options.payloadBucket, key },
    };
    return JSON.stringify(message);
  }

  private async sendBatch(batch: Array<{ letter: DeadLetter; body: string }>): Promise<void> {
    let entries: SendMessageBatchRequestEntry[] = batch.map(({ letter, body }, i) => ({
      Id: String(i),
      MessageBody: body,
      MessageAttributes: {
        lane: { DataType: 'String', StringValue: letter.lane },
        code: { DataType: 'String', StringValue: letter.error.code },
        topic: { DataType: 'String', StringValue: topicOf(letter.record) },
      },
    }));
    for (let attempt = 0; attempt < 3 && entries.length > 0; attempt++) {
      try {
        const response = await this.sqs.send(
          new SendMessageBatchCommand({ QueueUrl: this.options.queueUrl, Entries: entries }),
        );
        const failed = new Set((response.Failed ?? []).map((f) => f.Id));
        entries = entries.filter((e) => failed.has(e.Id));
      } catch (error) {
        throw new DeadLetterError(`sending dead letters to ${this.options.queueUrl}: ${(error as Error).message}`, {
          cause: error,
        });
      }
    }
    if (entries.length > 0)
      throw new DeadLetterError(`${entries.length} dead letters were refused by ${this.options.queueUrl}`);
  }
}
