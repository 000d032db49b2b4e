import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { LogLevel } from '@aws-lambda-powertools/logger/types';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchItemFailure, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import * as z from 'zod/mini';
import '../core/zod';
import {
  createKafkaTransport,
  KafkaSnapshotSignaller,
  type KafkaTransport,
} from '../adapters/kafka-snapshot-signaller';
import type { SignalMessage } from '../adapters/sqs-snapshot-signaller';
import { CdcError, ConfigError, describeError, InvalidEventError, SchemaHistoryError } from '../core/errors';
import { loadSignallerEnv } from '../shared/config';

const text = z.string().check(z.minLength(1));

/** A signals queue message (adapters/sqs-snapshot-signaller.ts writes them); unknown fields are dropped. */
export const SignalMessageSchema = z.object({
  topicPrefix: text,
  signal: z.object({
    id: text,
    type: z.literal('execute-snapshot'),
    data: z.object({
      'data-collections': z.array(text).check(z.minLength(1)),
      type: z.literal('incremental'),
      'additional-conditions': z.optional(z.array(z.object({ 'data-collection': text, filter: z.string() }))),
    }),
  }),
});

/** The message body as a signal message, or an InvalidEventError saying what is wrong with it. */
export function parseSignalMessage(body: string): SignalMessage {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new InvalidEventError('signal message is not JSON');
  }
  const parsed = SignalMessageSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'message'} ${i.message}`).join('; ');
    throw new InvalidEventError(`signal message is not { topicPrefix, signal }: ${problems}`);
  }
  return parsed.data as SignalMessage;
}

export interface SignallerHandlerOptions {
  /** Where messages are produced (tests, local runs). Default: a kafkajs producer for SIGNAL_BOOTSTRAP_SERVERS. */
  transport?: KafkaTransport;
}

/**
 * The signaller function: SQS-triggered by the signals queue, produces each message's signal to the Kafka signal
 * topic of its connector (SIGNAL_TOPICS by `topicPrefix`), keyed by the prefix as Debezium's Kafka channel requires.
 * Configuration is parsed and the producer built once per cold start (it connects at the first signal).
 *
 * Failures are reported per message (`batchItemFailures`; the mapping has ReportBatchItemFailures on): the queue
 * delivers them again after the visibility timeout, and after `maxReceiveCount` receives moves them to its dead-letter
 * queue, which alarms. That includes messages no retry can fix (not a signal, a connector without a signal topic):
 * they reach the dead-letter queue, where a human sees them, instead of being dropped. The queue is FIFO with one
 * group per connector: once a message fails, the later messages of its group in the batch are not produced but
 * returned too, so a connector's signals never overtake each other; other groups go on.
 */
export function createSignallerHandler(env: NodeJS.ProcessEnv = process.env, options: SignallerHandlerOptions = {}) {
  const config = loadSignallerEnv(env);
  const logLevel = env.POWERTOOLS_LOG_LEVEL as LogLevel | undefined;
  const logger = new Logger({ serviceName: 'cdc-sync-signaller', ...(logLevel ? { logLevel } : {}) });
  const tracer = new Tracer({ serviceName: 'cdc-sync-signaller' });
  const transport =
    options.transport ??
    createKafkaTransport({
      brokers: config.SIGNAL_BOOTSTRAP_SERVERS,
      auth: config.SIGNAL_AUTH,
      ...(env.AWS_REGION ? { region: env.AWS_REGION } : {}),
    });
  const signallers = new Map(
    Object.entries(config.SIGNAL_TOPICS).map(([topicPrefix, topic]) => [
      topicPrefix,
      new KafkaSnapshotSignaller({ topic, topicPrefix, produce: transport.produce }),
    ]),
  );

  const produce = async (record: SQSRecord): Promise<void> => {
    const { topicPrefix, signal } = parseSignalMessage(record.body);
    const signaller = signallers.get(topicPrefix);
    if (!signaller) throw new ConfigError(`no signal topic for connector ${topicPrefix} in SIGNAL_TOPICS`);
    try {
      await signaller.send(signal);
    } catch (error) {
      throw new SchemaHistoryError(
        'SIGNAL_FAILED',
        `producing signal ${signal.id} to ${config.SIGNAL_TOPICS[topicPrefix]}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    logger.info('signal produced', {
      messageId: record.messageId,
      topicPrefix,
      topic: config.SIGNAL_TOPICS[topicPrefix],
      signal,
    });
  };

  const handle = async (event: SQSEvent, _context: Context): Promise<SQSBatchResponse> => {
    // FIFO: the group is the connector. A standard queue has no groups: each message stands alone.
    const groups = new Map<string, SQSRecord[]>();
    for (const record of event.Records) {
      const group = record.attributes.MessageGroupId ?? record.messageId;
      const records = groups.get(group) ?? [];
      records.push(record);
      groups.set(group, records);
    }
    const failed = new Set<string>();
    await Promise.all(
      [...groups.values()].map(async (records) => {
        let blocked = false;
        for (const record of records) {
          if (blocked) {
            failed.add(record.messageId); // behind a failed message of its group: keep the group's order
            continue;
          }
          try {
            await produce(record);
          } catch (error) {
            blocked = true;
            failed.add(record.messageId);
            const described = describeError(error);
            logger.error('signal not produced; the queue delivers it again, then dead-letters it', {
              messageId: record.messageId,
              receiveCount: record.attributes.ApproximateReceiveCount,
              error: described,
              ...(error instanceof CdcError && !error.retryable ? { note: 'a retry cannot fix this message' } : {}),
            });
          }
        }
      }),
    );
    const batchItemFailures: SQSBatchItemFailure[] = event.Records.filter((r) => failed.has(r.messageId)).map((r) => ({
      itemIdentifier: r.messageId,
    }));
    return { batchItemFailures };
  };

  const handler = middy(handle)
    .use(captureLambdaHandler(tracer, { captureResponse: false }))
    .use(injectLambdaContext(logger));
  /** Disconnects the producer so a local process can exit; Lambda never calls it. */
  const close = () => transport.close();
  return Object.assign(handler, { close });
}
