import type { SnapshotSignal, SnapshotSignaller } from '../core/types';

/** Writes one message to a Kafka topic; resolves once the broker acknowledged it. */
export type KafkaProduce = (topic: string, key: string, value: string) => Promise<void>;

export interface KafkaSnapshotSignallerOptions {
  /** The connector's `signal.kafka.topic`. */
  topic: string;
  /**
   * The connector's `topic.prefix`: Debezium's Kafka signal channel ignores every message whose key is not exactly
   * the prefix of the connector it belongs to (several connectors may share one signal topic).
   */
  topicPrefix: string;
  produce: KafkaProduce;
}

/**
 * Sends signals through Debezium's Kafka signal channel (`signal.enabled.channels` includes `kafka`). The message
 * value is the signal as JSON: `type` and `data` are what the channel reads (`data` is an object here, not a string
 * as in the signal table); `id` is carried along for tracing (the channel names signals by their Kafka offset).
 */
export class KafkaSnapshotSignaller implements SnapshotSignaller {
  constructor(private readonly options: KafkaSnapshotSignallerOptions) {}

  send(signal: SnapshotSignal): Promise<void> {
    const value = JSON.stringify({ id: signal.id, type: signal.type, data: signal.data });
    return this.options.produce(this.options.topic, this.options.topicPrefix, value);
  }
}

export interface KafkaProducerOptions {
  /** Bootstrap servers, comma-separated (`SIGNAL_BOOTSTRAP_SERVERS`; MSK IAM listeners are on port 9098). */
  brokers: string;
  /** `aws-iam`: TLS + SASL OAUTHBEARER with an MSK IAM token (MSK Serverless/provisioned with IAM auth). */
  auth: 'aws-iam' | 'none';
  /** Region of the cluster (tokens are signed for it). */
  region?: string;
  clientId?: string;
}

/** A produce function and how to close it. */
export interface KafkaTransport {
  produce: KafkaProduce;
  close(): Promise<void>;
}

/**
 * A kafkajs producer for the signal topics, connected on first use and kept for the next invocations. Used by the
 * signaller function (functions/signaller) only: the lanes hand their signals to it through SQS, so kafkajs is in no
 * lane bundle. kafkajs and the MSK IAM signer are imported lazily so that a function that builds a transport but
 * never produces does not load them. `acks: -1`: a signal is acknowledged only once every in-sync replica holds it.
 */
export function createKafkaTransport(options: KafkaProducerOptions): KafkaTransport {
  type Producer = import('kafkajs').Producer;
  let producer: Promise<Producer> | undefined;
  const connect = async (): Promise<Producer> => {
    const { Kafka } = await import('kafkajs');
    const iam = options.auth === 'aws-iam';
    const region = options.region ?? process.env.AWS_REGION ?? 'eu-west-1';
    const kafka = new Kafka({
      clientId: options.clientId ?? 'cdc-sync-signaller',
      brokers: options.brokers.split(',').map((b) => b.trim()),
      ssl: iam,
      ...(iam
        ? {
            sasl: {
              mechanism: 'oauthbearer' as const,
              oauthBearerProvider: async () => {
                const { generateAuthToken } = await import('aws-msk-iam-sasl-signer-js');
                const { token } = await generateAuthToken({ region });
                return { value: token };
              },
            },
          }
        : {}),
    });
    const p = kafka.producer({ allowAutoTopicCreation: false });
    await p.connect();
    return p;
  };
  return {
    async produce(topic, key, value) {
      producer ??= connect().catch((error: unknown) => {
        producer = undefined; // connect again on the next send
        throw error;
      });
      await (await producer).send({ topic, acks: -1, messages: [{ key, value }] });
    },
    async close() {
      const p = producer;
      producer = undefined;
      if (p) await (await p.catch(() => undefined))?.disconnect();
    },
  };
}
