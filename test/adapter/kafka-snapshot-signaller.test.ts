import { describe, expect, it, vi } from 'vitest';
import { createKafkaTransport, KafkaSnapshotSignaller } from '../../functions/adapters/kafka-snapshot-signaller';
import type { SnapshotSignal } from '../../functions/core/types';

const kafkajs = vi.hoisted(() => {
  const sent: unknown[] = [];
  const configs: Array<Record<string, unknown>> = [];
  const producer = {
    connect: vi.fn(async () => undefined),
    send: vi.fn(async (request: unknown) => {
      sent.push(request);
    }),
    disconnect: vi.fn(async () => undefined),
  };
  class Kafka {
    constructor(config: Record<string, unknown>) {
      configs.push(config);
    }
    producer() {
      return producer;
    }
  }
  return { Kafka, sent, configs, producer };
});
vi.mock('kafkajs', () => ({ Kafka: kafkajs.Kafka }));
vi.mock('aws-msk-iam-sasl-signer-js', () => ({
  generateAuthToken: vi.fn(async ({ region }: { region: string }) => ({ token: `token-for-${region}`, expiryTime: 0 })),
}));

const signal: SnapshotSignal = {
  id: 'schema-pg.public.orders-v2',
  type: 'execute-snapshot',
  data: { 'data-collections': ['public.orders'], type: 'incremental' },
};

describe('KafkaSnapshotSignaller', () => {
  it("keys the signal by the connector's topic prefix and sends type and data as JSON", async () => {
    // Arrange
    const produce = vi.fn(async () => undefined);
    const signaller = new KafkaSnapshotSignaller({ topic: 'cdc-signals', topicPrefix: 'pg', produce });
    // Act
    await signaller.send(signal);
    // Assert
    expect(produce).toHaveBeenCalledWith(
      'cdc-signals',
      'pg',
      JSON.stringify({ id: signal.id, type: 'execute-snapshot', data: signal.data }),
    );
  });
});

describe('createKafkaTransport', () => {
  it('connects once, on first use, with TLS and an MSK IAM token, and waits for every in-sync replica', async () => {
    // Arrange
    const transport = createKafkaTransport({ brokers: 'b-1:9098, b-2:9098', auth: 'aws-iam', region: 'eu-central-1' });
    expect(kafkajs.configs).toHaveLength(0);
    // Act
    await transport.produce('cdc-signals', 'pg', '{}');
    await transport.produce('cdc-signals', 'pg', '{"again":true}');
    await transport.close();
    // Assert
    expect(kafkajs.configs).toHaveLength(1);
    const config = kafkajs.configs[0] as {
      brokers: string[];
      ssl: boolean;
      sasl: { mechanism: string; oauthBearerProvider: () => Promise<{ value: string }> };
    };
    expect(config).toMatchObject({ brokers: ['b-1:9098', 'b-2:9098'], ssl: true, sasl: { mechanism: 'oauthbearer' } });
    expect(await config.sasl.oauthBearerProvider()).toEqual({ value: 'token-for-eu-central-1' });
    expect(kafkajs.producer.connect).toHaveBeenCalledTimes(1);
    expect(kafkajs.sent[0]).toEqual({ topic: 'cdc-signals', acks: -1, messages: [{ key: 'pg', value: '{}' }] });
    expect(kafkajs.producer.disconnect).toHaveBeenCalledTimes(1);
  });
});
