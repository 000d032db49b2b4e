import { beforeAll, describe, expect, it } from 'vitest';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import type { ChangeEvent, DecodeOutcome, KafkaRecord } from '../../functions/core/types';
import type { CapturedRecord } from '../../tools/local/capture';
import { createDemoSchema, DEMO_HEARTBEAT_TABLE, DEMO_TABLES, seedDemo } from '../../tools/local/postgres';
import { captureSchema, type TestCapture, usePostgres, waitFor } from './helpers';

const { db, sql } = usePostgres();

const ORDER_ID = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';

/** A captured record as Lambda's MSK event source mapping delivers it: base64 key/value, signed header bytes. */
function toKafkaRecord(record: CapturedRecord, offset: number): KafkaRecord {
  return {
    topic: record.topic,
    partition: record.partition ?? 0,
    offset,
    timestamp: record.timestamp,
    timestampType: 'CREATE_TIME',
    key: record.key?.toString('base64') ?? null,
    value: record.value?.toString('base64') ?? null,
    headers: record.headers.map(([name, value]) => ({ [name]: [...value].map((b) => (b > 127 ? b - 256 : b)) })),
  };
}

describe('dev connector records through the pipeline decoder', () => {
  let run: TestCapture;
  let outcomes: Array<{ record: CapturedRecord; kafka: KafkaRecord; outcome: DecodeOutcome }>;
  const decoder = new JsonDebeziumDecoder();
  const events = () =>
    outcomes.flatMap((o) => (o.outcome.kind === 'event' ? [{ ...o, event: o.outcome.event }] : [])) as Array<{
      record: CapturedRecord;
      kafka: KafkaRecord;
      event: ChangeEvent;
    }>;
  const find = (table: string, op: string, pred: (e: ChangeEvent) => boolean = () => true) =>
    events().find((e) => e.event.source.table === table && e.event.op === op && pred(e.event))?.event;

  beforeAll(async () => {
    await createDemoSchema(sql(), { schema: 'demo' });
    await seedDemo(sql(), { schema: 'demo', rows: 10 });
    run = await captureSchema(db(), sql(), 'demo', { heartbeatIntervalMs: 50 });
    await sql().query(
      `INSERT INTO demo.orders (id, customer_id, status, order_date, placed_at, total, notes)
       VALUES ($1, 1, 'paid', '2024-03-15', '2024-03-15 10:30:00.123456+00', 99.99, 'n')`,
      [ORDER_ID],
    );
    await sql().query(`UPDATE demo.products SET name = 'renamed' WHERE id = 1`);
    await sql().query('UPDATE demo.customers SET id = 1000 WHERE id = 2');
    await sql().query(`DELETE FROM demo.order_items WHERE order_id = $1`, [ORDER_ID]);
    await sql().query('UPDATE demo.page_views SET duration_ms = 1');
    await sql().query('TRUNCATE demo.page_views');
    await run.capture.flushed();
    await waitFor(() => run.records.some((r) => r.topic.startsWith('__debezium-heartbeat')));
    await run.stop();
    outcomes = run.records.map((record, i) => {
      const kafka = toKafkaRecord(record, i);
      return { record, kafka, outcome: decoder.decode(kafka, Date.now()) };
    });
  });

  it('decodes every record without an error', () => {
    // Assert
    const errors = outcomes.flatMap((o) => (o.outcome.kind === 'error' ? [o.outcome.error.message] : []));
    expect(errors).toEqual([]);
    expect(new Set(events().map((e) => e.event.source.table))).toEqual(new Set([...DEMO_TABLES, DEMO_HEARTBEAT_TABLE]));
  });

  it('skips tombstones and heartbeats with their reasons', () => {
    // Assert
    const skips = outcomes.flatMap((o) => (o.outcome.kind === 'skip' ? [o.outcome.reason] : []));
    const tombstones = run.records.filter((r) => r.value === null).length;
    expect(skips.filter((r) => r === 'tombstone')).toHaveLength(tombstones);
    expect(skips.filter((r) => r === 'heartbeat').length).toBeGreaterThan(0);
  });

  it('gives snapshot reads canonical decimals, JSON, arrays and timestamps', async () => {
    // Arrange
    const { rows } = await sql().query(
      `SELECT id, price::text AS price, weight_kg::text AS weight, attributes::text AS attributes, tags
       FROM demo.products WHERE id = 2`,
    );
    const row = rows[0];

    // Act
    const read = find('products', 'r', (e) => e.key?.id === 2);
    const customer = find('customers', 'r', (e) => e.key?.id === 1);

    // Assert
    expect(read?.source.snapshot).not.toBe('false');
    expect(read?.after?.price).toBe(row.price);
    expect(read?.after?.weight_kg).toBe(row.weight);
    expect(read?.after?.attributes).toEqual(JSON.parse(row.attributes));
    expect(read?.after?.tags).toEqual(row.tags);
    expect(customer?.after?.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  });

  it('gives a streamed insert exact decimal, date, timestamp, uuid and enum values and its position', () => {
    // Act
    const entry = events().find((e) => e.event.source.table === 'orders' && e.event.op === 'c');
    const order = entry?.event;

    // Assert
    expect(order?.key).toEqual({ id: ORDER_ID });
    expect(order?.after).toEqual({
      id: ORDER_ID,
      customer_id: 1,
      status: 'paid',
      order_date: '2024-03-15',
      placed_at: '2024-03-15T10:30:00.123456Z',
      total: '99.99',
      notes: 'n',
    });
    const valueText = entry?.record.value?.toString() ?? '';
    const lsn = /"lsn":(\d+),"xmin"/.exec(valueText)?.[1];
    expect(order?.source.position.lsn).toBe(lsn);
    expect(order?.source.commitTsNs).toBe(/"source":\{.*?"ts_ns":(\d+)/.exec(valueText)?.[1]);
    expect(order?.source.connector).toBe('postgresql');
    expect(order?.source.snapshot).toBe('false');
  });

  it('marks the unchanged TOASTed column as unchanged instead of writing the placeholder', () => {
    // Act
    const update = find('products', 'u', (e) => e.key?.id === 1);

    // Assert
    expect(update?.unchanged).toEqual(['description']);
    expect(update?.after && 'description' in update.after).toBe(false);
    expect(update?.after?.name).toBe('renamed');
  });

  it('decodes a primary-key change as a delete of the old key and a create of the new one', () => {
    // Act
    const del = find('customers', 'd', (e) => e.key?.id === 2);
    const create = find('customers', 'c', (e) => e.key?.id === 1000);

    // Assert
    expect(del).toBeDefined();
    expect(create?.after?.id).toBe(1000);
    expect(del?.id).not.toBe(create?.id);
    expect(del?.source.position.lsn).toBe(create?.source.position.lsn);
  });

  it('decodes REPLICA IDENTITY FULL before-images and truncates', () => {
    // Act
    const update = find('page_views', 'u');
    const truncate = find('page_views', 't');

    // Assert
    expect(update?.key).toBeNull();
    expect(update?.before?.duration_ms).not.toBeUndefined();
    expect(update?.after?.duration_ms).toBe(1);
    expect(truncate?.key).toBeNull();
  });

  it('gives a re-delivered record (new Kafka offset) the same id', () => {
    // Arrange
    const entry = events().find((e) => e.event.source.table === 'orders' && e.event.op === 'c');
    if (!entry) throw new Error('no order event');

    // Act
    const again = decoder.decode({ ...entry.kafka, offset: entry.kafka.offset + 1000 }, Date.now());

    // Assert
    expect(again.kind === 'event' && again.event.id).toBe(entry.event.id);
  });
});
