/**
 * Reading a lane's dead-letter queue locally: every letter, with its claim-checked payload fetched back from S3.
 * `npm run fuzz` and `npm run chaos` check what reached the queue against what they sent.
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { DeleteMessageBatchCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import type { DeadLetterMessage } from '../../functions/adapters/sqs-dead-letter-queue';
import type { LocalServices } from '../local/services';

/** Every dead letter in a queue, with claim-checked payloads fetched from S3; the queue is left empty. */
export async function drainDeadLetters(services: LocalServices, queueUrl: string): Promise<DeadLetterMessage[]> {
  const { sqs, s3 } = services.clients;
  const letters: DeadLetterMessage[] = [];
  for (;;) {
    const page = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        VisibilityTimeout: 600,
        WaitTimeSeconds: 0,
      }),
    );
    const messages = page.Messages ?? [];
    if (messages.length === 0) return letters;
    for (const message of messages) {
      let letter = JSON.parse(message.Body ?? '{}') as DeadLetterMessage;
      if (letter.payloadLocation) {
        const object = await s3.send(
          new GetObjectCommand({ Bucket: letter.payloadLocation.bucket, Key: letter.payloadLocation.key }),
        );
        letter = JSON.parse((await object.Body?.transformToString()) ?? '{}') as DeadLetterMessage;
      }
      letters.push(letter);
    }
    await sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? '' })),
      }),
    );
  }
}
