import { createHash } from 'node:crypto';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { SnapshotSignal, SnapshotSignaller } from '../core/types';

/**
 * A message on the signals queue: the signal and the connector it is for. The signaller function
 * (functions/signaller) produces `signal` to that connector's Kafka signal topic, keyed by `topicPrefix`.
 */
export interface SignalMessage {
  /** The connector's `topic.prefix` (`source.name` of the changed table's events). */
  topicPrefix: string;
  signal: SnapshotSignal;
}

export interface SqsSnapshotSignallerOptions {
  /** URL of the signals queue (`SIGNAL_QUEUE_URL`), a FIFO queue. */
  queueUrl: string;
  /** The connector the signals go to. */
  topicPrefix: string;
}

/** SQS deduplication and group ids: 1 to 128 characters, printable ASCII without space. */
const SQS_ID = /^[\x21-\x7e]{1,128}$/;

/** The signal id itself when SQS accepts it (readable in the console), else its sha256: both deterministic. */
export function deduplicationIdOf(signalId: string): string {
  return SQS_ID.test(signalId) ? signalId : createHash('sha256').update(signalId).digest('hex');
}

/**
 * Hands signals to the signaller function through the signals queue instead of producing to Kafka here: the lanes
 * already carry the SQS client (dead letters), and a Kafka client would add its whole size to every lane's cold start
 * for a message sent once per schema change.
 *
 * The queue is FIFO so a signal reaches Kafka once: `MessageDeduplicationId` is the signal id (a lane retrying after
 * a crash between sending and recording the signal sends the same id, and SQS drops the copy within its 5-minute
 * window), and FIFO delivery does not hand the signaller the same message twice while it is being processed (a
 * standard queue may, and each copy would start another incremental snapshot). `MessageGroupId` is the connector:
 * its signals stay in order, other connectors' signals are not held up behind them.
 */
export class SqsSnapshotSignaller implements SnapshotSignaller {
  constructor(
    private readonly sqs: SQSClient,
    private readonly options: SqsSnapshotSignallerOptions,
  ) {}

  async send(signal: SnapshotSignal): Promise<void> {
    const message: SignalMessage = { topicPrefix: this.options.topicPrefix, signal };
    await this.sqs.send(
      new SendMessageCommand({
        QueueUrl: this.options.queueUrl,
        MessageBody: JSON.stringify(message),
        MessageGroupId: deduplicationIdOf(this.options.topicPrefix),
        MessageDeduplicationId: deduplicationIdOf(signal.id),
      }),
    );
  }
}
