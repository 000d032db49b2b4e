/**
 * Regressions for the bugs `npm run fuzz` found in functions/ (docs/tools.md, "Fuzz the lanes"): each made a lane
 * crash, stall a partition for good, lose records or miscount them.
 */
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { S3WarehouseSink } from '../../functions/adapters/s3-warehouse-sink';
import { SqsDeadLetterQueue } from '../../functions/adapters/sqs-dead-letter-queue';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import { MAX_NESTING } from '../../functions/core/decode/json';
import { decimalFromBase64 } from '../../functions/core/decode/logical';
import { PartitionDedupe } from '../../functions/core/dedupe';
import { createEnricher } from '../../functions/core/enrich';
import { DeadLetterError } from '../../functions/core/errors';
import { processBatch } from '../../functions/core/pipeline';
import type { ChangeEvent, ColumnTypes, KafkaRecord, SinkPartition } from '../../functions/core/types';
import { LOCAL_NAMES } from '../../tools/local/services';
import { b64, eventOf, pgMessage, rawRecord } from '../support/builders';
import { MemoryDeadLetterQueue, MemoryDedupeStore, MemorySink } from '../support/fakes';
import { useLocalServices } from '../support/local';

const services = useLocalServices();

function decoded(record: KafkaRecord) {
  return new JsonDebeziumDecoder().decode(record, 1_710_498_700_000);
}

function pgValue(after: Record<string, unknown>, extra: { ts_ms?: number; schema?: unknown } = {}): string {
  const payload = {
    op: 'c',
    before: null,
    after,
    source: {
      connector: 'postgresql',
      name: 'pg',
      schema: 'public',
      table: 'docs',
      lsn: 200,
      ts_ms: extra.ts_ms ?? 1_710_498_600_000,
    },
  };
  return b64(JSON.stringify(extra.schema === undefined ? payload : { schema: extra.schema, payload }));
}

describe('deep nesting (every sink overflowed its stack serialising the row, at every retry)', () => {
  const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

  it('dead-letters a value nested deeper than Kafka Connect writes, and still decodes one at the limit', () => {
    // Arrange: the row itself is two levels down (payload → after → column)
    const tooDeep = rawRecord(pgValue({ id: 1, doc: JSON.parse(nested(MAX_NESTING)) }));
    const atLimit = rawRecord(pgValue({ id: 1, doc: JSON.parse(nested(MAX_NESTING - 2)) }));
    // Act
    const refused = decoded(tooDeep);
    const taken = decoded(atLimit);
    // Assert
    expect(refused).toMatchObject({ kind: 'error', error: { code: 'NOT_JSON' } });
    expect(refused.kind === 'error' && refused.error.message).toContain(`nested deeper than ${MAX_NESTING} levels`);
    expect(taken.kind).toBe('event');
  });

  it('keeps the text of a JSON column nested too deep, instead of a value no sink can write', () => {
    // Arrange
    const schema = {
      type: 'struct',
      name: 'pg.public.docs.Envelope',
      fields: [
        {
          type: 'struct',
          optional: true,
          field: 'after',
          fields: [
            { type: 'int32', optional: false, field: 'id' },
            { type: 'string', optional: true, name: 'io.debezium.data.Json', field: 'doc' },
          ],
        },
        { type: 'struct', field: 'source', fields: [] },
        { type: 'string', field: 'op' },
      ],
    };
    const text = nested(6_000); // parses, but no sink could serialise it (JSON.stringify stops near 5,000)
    // Act
    const outcome = decoded(rawRecord(pgValue({ id: 1, doc: text }, { schema })));
    // Assert
    expect(outcome.kind).toBe('event');
    expect(outcome.kind === 'event' && outcome.event.after?.doc).toBe(text);
    expect(() => JSON.stringify(outcome)).not.toThrow();
  });
});

describe('a large corrupt decimal (quadratic decoding: minutes for a value within MAX_RECORD_BYTES)', () => {
  it('decodes like the byte-by-byte reading, and a value of 750 KB well within a Lambda timeout', {
    timeout: 30_000,
  }, () => {
    // Arrange
    const bytes = Buffer.from(Array.from({ length: 1_000 }, (_, i) => (i * 37 + 11) & 0xff));
    let expected = 0n;
    for (const byte of bytes) expected = (expected << 8n) | BigInt(byte); // the first byte (11) is positive
    const huge = Buffer.alloc(750_000, 0x5a).toString('base64');
    // Act
    const small = decimalFromBase64(bytes.toString('base64'), 0);
    const large = decimalFromBase64(huge, 2);
    // Assert
    expect(small).toBe(expected.toString());
    expect(large).toMatch(/^\d+\.\d{2}$/);
  });
});

describe('the dedupe after an order of another connector (every later change was a duplicate, for good)', () => {
  const change = (order: string, offset: number) =>
    ({ id: `t/${order}`, source: { order }, kafka: { offset } }) as unknown as ChangeEvent;
  const unknownCommit = (lsn: number) => `pg:1:${'0'.repeat(20)}:${String(lsn).padStart(20, '0')}`;

  it('applies PostgreSQL changes without a commit part after a record ordered by its Kafka offset', () => {
    // Arrange: a corrupted record (no position: ordered by offset) became the high-water order
    const dedupe = new PartitionDedupe(undefined);
    dedupe.judge(change(unknownCommit(100), 1));
    dedupe.judge(change('kf:0000000000:00000000000000000002', 2));
    // Act
    const verdicts = [dedupe.judge(change(unknownCommit(300), 3)), dedupe.judge(change(unknownCommit(400), 4))];
    // Assert
    expect(verdicts).toEqual(['new', 'new']);
  });

  it('still calls one a re-emission after a PostgreSQL change with its commit part', () => {
    // Arrange
    const dedupe = new PartitionDedupe(undefined);
    dedupe.judge(change(`pg:1:${'5'.repeat(20)}:${'6'.repeat(20)}`, 1));
    // Act + Assert
    expect(dedupe.judge(change(unknownCommit(300), 2))).toBe('duplicate');
  });
});

describe('records that are not Kafka records (the dead-letter queue threw on null; counts did not add up)', () => {
  it('dead-letters null, a number and a record with an empty topic, under topic "unknown"', async () => {
    // Arrange
    const { sqs, s3 } = services().clients;
    const queueUrl = services().queueUrls.audit;
    const queue = new SqsDeadLetterQueue(sqs, s3, {
      queueUrl,
      payloadBucket: LOCAL_NAMES.deadLetterBucket,
      maxInlineBytes: 10,
    });
    const letter = (record: unknown) => ({
      lane: 'audit' as const,
      error: { code: 'INVALID_RECORD', message: 'not a Kafka record' },
      record: record as KafkaRecord,
      failedAt: '2024-03-15T10:30:00.000Z',
    });
    // Act
    await queue.send([letter(null), letter(42), letter({ ...rawRecord('e30='), topic: '' })]);
    // Assert
    const received = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, MessageAttributeNames: ['All'] }),
    );
    expect(received.Messages?.map((m) => m.MessageAttributes?.topic?.StringValue)).toEqual([
      'unknown',
      'unknown',
      'unknown',
    ]);
  });

  it('counts malformed records as retried when their dead letters cannot be stored', async () => {
    // Arrange
    const deadLetters = new MemoryDeadLetterQueue();
    deadLetters.fail = new DeadLetterError('queue down');
    const event = eventOf([pgMessage({ op: 'c', after: { id: 1 }, lsn: 100, offset: 1 })]);
    const key = Object.keys(event.records)[0] as string;
    (event.records[key] as unknown[]).push(null, { topic: 'x' });
    // Act
    const result = await processBatch(event, {
      lane: 'audit',
      decoder: new JsonDebeziumDecoder(),
      enricher: createEnricher(undefined, { lane: 'audit' }),
      dedupe: new MemoryDedupeStore(),
      sink: new MemorySink(),
      deadLetters,
      clock: () => 1_710_498_700_000,
    });
    // Assert
    expect(result.fatal?.code).toBe('DEAD_LETTER_UNAVAILABLE');
    expect(result).toMatchObject({ records: 3, processed: 1, retried: 2 });
    const { processed, skipped, duplicates, deadLettered, retried } = result;
    expect(processed + skipped + duplicates + deadLettered + retried).toBe(result.records);
  });
});

describe('the warehouse and changes its change log cannot hold (a retryable failure, at every retry)', () => {
  function eventFrom(value: string, offset: number): { event: ChangeEvent; columns: ColumnTypes | undefined } {
    const outcome = decoded(rawRecord(value, { offset, key: b64(JSON.stringify({ id: offset })) }));
    if (outcome.kind !== 'event') throw new Error(JSON.stringify(outcome));
    return { event: outcome.event, columns: outcome.columns };
  }
  const schema = {
    type: 'struct',
    name: 'pg.public.docs.Envelope',
    fields: [
      { type: 'struct', optional: true, field: 'after', fields: [{ type: 'int32', optional: false, field: 'id' }] },
      { type: 'struct', field: 'source', fields: [] },
      { type: 'string', field: 'op' },
    ],
  };

  it('refuses (SINK_REJECTED) a value its column type cannot take and a commit time that is no date, and writes the rest', async () => {
    // Arrange
    const sink = new S3WarehouseSink(services().clients.s3, {
      bucket: LOCAL_NAMES.warehouseBucket,
      prefix: 'fuzz-findings/',
    });
    const changes = [
      eventFrom(pgValue({ id: 1 }, { schema }), 0),
      eventFrom(pgValue({ id: 'not a number' }, { schema }), 1),
      eventFrom(pgValue({ id: 3 }, { schema, ts_ms: 9_000_000_000_000_000 }), 2),
      eventFrom(pgValue({ id: 4 }, { schema }), 3),
    ];
    const partition: SinkPartition = {
      partition: { id: 'pg.public.docs-0', topic: 'pg.public.docs', partition: 0, records: [] },
      events: changes.map((c) => c.event),
      columns: changes.map((c) => c.columns),
      state: undefined,
    };
    // Act
    const result = await sink.write(partition);
    // Assert
    expect(result.ok).toBe(true);
    const rejected = result.ok ? (result.rejected ?? []) : [];
    const byIndex = [...rejected].sort((a, b) => a.index - b.index);
    expect(byIndex.map((r) => [r.index, r.error.code, r.error.retryable])).toEqual([
      [1, 'SINK_REJECTED', false],
      [2, 'SINK_REJECTED', false],
    ]);
    expect(byIndex[1]?.error.message).toContain('is not a date');
    const listed = await services().clients.s3.send(
      new ListObjectsV2Command({ Bucket: LOCAL_NAMES.warehouseBucket, Prefix: 'fuzz-findings/table=' }),
    );
    expect(listed.Contents?.map((o) => o.Key)).toEqual([
      expect.stringContaining('table=pg.public.docs/date=2024-03-15/'),
    ]);
  });
});
