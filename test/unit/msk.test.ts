import { describe, expect, it } from 'vitest';
import { parseKafkaEvent } from '../../functions/core/msk';
import type { KafkaRecord } from '../../functions/core/types';

const record = (topic: string, partition: number, offset: number): KafkaRecord => ({
  topic,
  partition,
  offset,
  timestamp: 1,
  timestampType: 'CREATE_TIME',
  value: null,
});

describe('parseKafkaEvent', () => {
  it('groups by the records own topic and partition (topic names contain dashes) and sorts by offset', () => {
    // Arrange
    const event = {
      eventSource: 'aws:kafka',
      bootstrapServers: 'b-1:9098,b-2:9098',
      records: {
        'pg.public.order-lines-3': [record('pg.public.order-lines', 3, 8), record('pg.public.order-lines', 3, 7)],
        'pg.public.orders-0': [record('pg.public.orders', 0, 1)],
      },
    };
    // Act
    const { partitions } = parseKafkaEvent(event);
    // Assert
    expect(partitions.map((p) => [p.id, p.topic, p.partition, p.records.map((r) => r.offset)])).toEqual([
      ['pg.public.order-lines-3', 'pg.public.order-lines', 3, [7, 8]],
      ['pg.public.orders-0', 'pg.public.orders', 0, [1]],
    ]);
  });

  it('accepts self-managed Kafka events without an eventSourceArn', () => {
    expect(parseKafkaEvent({ eventSource: 'SelfManagedKafka', records: {} }).partitions).toEqual([]);
  });

  it('sets aside a malformed record and keeps its neighbours', () => {
    const { partitions, malformed } = parseKafkaEvent({
      eventSource: 'aws:kafka',
      records: { 't-0': [record('t', 0, 1), { topic: 't', partition: 0 }] },
    });
    expect(partitions[0]?.records).toHaveLength(1);
    expect(malformed).toEqual([
      expect.objectContaining({ partitionId: 't-0', message: expect.stringContaining('offset') }),
    ]);
  });

  it.each([[null], [{}], [{ eventSource: 'aws:sqs', records: {} }], [{ eventSource: 'aws:kafka', records: [] }]])(
    'rejects %j as not a Kafka event',
    (event) => {
      expect(() => parseKafkaEvent(event)).toThrow(/not a Kafka event source mapping event/);
    },
  );
});
