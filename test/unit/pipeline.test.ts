import { describe, expect, it } from 'vitest';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import { createEnricher } from '../../functions/core/enrich';
import { DeadLetterError, SchemaRegistryError, SinkError } from '../../functions/core/errors';
import { type PipelineDeps, processBatch } from '../../functions/core/pipeline';
import { SchemaHistory } from '../../functions/core/schema-history';
import type {
  DecodeOutcome,
  Decoder,
  KafkaEvent,
  KafkaRecord,
  SchemaChangeRecord,
  TableSchemaVersion,
} from '../../functions/core/types';
import { b64, eventOf, pgMessage } from '../support/builders';
import {
  MemoryDeadLetterQueue,
  MemoryDedupeStore,
  MemorySchemaRegistry,
  MemorySignaller,
  MemorySink,
  sinkDown,
} from '../support/fakes';

function setup(overrides: Partial<PipelineDeps> = {}) {
  const dedupe = new MemoryDedupeStore();
  const sink = new MemorySink();
  const deadLetters = new MemoryDeadLetterQueue();
  const deps: PipelineDeps = {
    lane: 'warehouse',
    decoder: new JsonDebeziumDecoder(),
    enricher: createEnricher(undefined, { lane: 'warehouse' }),
    dedupe,
    sink,
    deadLetters,
    clock: () => 1_710_498_700_000,
    ...overrides,
  };
  return { deps, dedupe, sink, deadLetters };
}

/** Three changes on partition 0 of orders and one on partition 1. */
function batch(): KafkaEvent {
  return eventOf([
    pgMessage({ op: 'c', after: { id: 1 }, lsn: 100, offset: 10 }),
    pgMessage({ op: 'u', after: { id: 1, v: 2 }, lsn: 110, offset: 11 }),
    pgMessage({ op: 'd', before: { id: 1 }, lsn: 120, offset: 12 }),
    pgMessage({ op: 'c', after: { id: 2 }, lsn: 105, offset: 3, partition: 1 }),
  ]);
}

function withRecord(event: KafkaEvent, partitionKey: string, record: Partial<KafkaRecord>): KafkaEvent {
  const copy = structuredClone(event);
  const records = copy.records[partitionKey] ?? [];
  const last = records.at(-1) as KafkaRecord;
  records.push({ ...last, ...record });
  copy.records[partitionKey] = records;
  return copy;
}

describe('processBatch', () => {
  it('writes every new change once, in offset order per partition, and commits the checkpoints together', async () => {
    // Arrange
    const { deps, sink, dedupe } = setup();
    // Act
    const result = await processBatch(batch(), deps);
    // Assert
    expect(result).toMatchObject({
      records: 4,
      processed: 4,
      skipped: 0,
      duplicates: 0,
      deadLettered: 0,
      batchItemFailures: [],
    });
    expect(sink.writes.find((w) => w.partition.id === 'pg.public.orders-0')?.events.map((e) => e.kafka.offset)).toEqual(
      [10, 11, 12],
    );
    expect(dedupe.items.get('warehouse#pg.public.orders-0')).toMatchObject({ offset: 12, version: 1 });
    expect(dedupe.items.get('warehouse#pg.public.orders-1')).toMatchObject({ offset: 3, version: 1 });
    // One read and one commit for the batch, not one per partition.
    expect(dedupe.calls).toEqual({ load: 1, commit: 1 });
  });

  it('skips a redelivered batch as duplicates without writing again', async () => {
    // Arrange
    const { deps, sink } = setup();
    await processBatch(batch(), deps);
    // Act
    const again = await processBatch(batch(), deps);
    // Assert
    expect(again).toMatchObject({ records: 4, processed: 0, duplicates: 4 });
    expect(sink.events).toHaveLength(4);
  });

  it('recognises changes Debezium re-emits at new offsets after a restart', async () => {
    // Arrange
    const { deps, sink } = setup();
    await processBatch(batch(), deps);
    const replay = eventOf([
      pgMessage({ op: 'u', after: { id: 1, v: 2 }, lsn: 110, offset: 13 }),
      pgMessage({ op: 'd', before: { id: 1 }, lsn: 120, offset: 14 }),
      pgMessage({ op: 'c', after: { id: 3 }, lsn: 130, offset: 15 }),
    ]);
    // Act
    const result = await processBatch(replay, deps);
    // Assert
    expect(result).toMatchObject({ processed: 1, duplicates: 2 });
    expect(sink.events.at(-1)?.key).toEqual({ id: 3 });
  });

  it('counts a change duplicated within one batch once', async () => {
    const { deps, sink } = setup();
    const event = eventOf([
      pgMessage({ op: 'c', after: { id: 1 }, lsn: 100, offset: 1 }),
      pgMessage({ op: 'c', after: { id: 1 }, lsn: 100, offset: 2 }),
    ]);
    const result = await processBatch(event, deps);
    expect(result).toMatchObject({ processed: 1, duplicates: 1 });
    expect(sink.events).toHaveLength(1);
  });

  it('dead-letters a bad record with its original bytes and reason, and processes its neighbours', async () => {
    // Arrange
    const { deps, sink, deadLetters } = setup();
    const bad = { offset: 13, value: b64('{"op":"x","source":{"connector":"postgresql","name":"pg","lsn":1}}') };
    const event = withRecord(batch(), 'pg.public.orders-0', bad);
    // Act
    const result = await processBatch(event, deps);
    // Assert
    expect(result).toMatchObject({ records: 5, processed: 4, deadLettered: 1 });
    expect(result.deadLetters).toEqual([{ partition: 'pg.public.orders-0', offset: 13, code: 'UNKNOWN_OP' }]);
    expect(result.partitions).toEqual([
      { partition: 'pg.public.orders-0', from: 10, to: 13 },
      { partition: 'pg.public.orders-1', from: 3, to: 3 },
    ]);
    expect(sink.events).toHaveLength(4);
    expect(deadLetters.letters).toEqual([
      {
        lane: 'warehouse',
        error: { code: 'UNKNOWN_OP', message: expect.stringContaining('"x"') },
        record: expect.objectContaining({
          topic: 'pg.public.orders',
          partition: 0,
          offset: 13,
          value: bad.value,
          headers: [],
        }),
        failedAt: '2024-03-15T10:31:40.000Z',
      },
    ]);
  });

  it('does not dead-letter a bad record again when its batch is redelivered', async () => {
    const { deps, deadLetters } = setup();
    const event = withRecord(batch(), 'pg.public.orders-0', { offset: 13, value: b64('not json') });
    await processBatch(event, deps);
    const again = await processBatch(event, deps);
    expect(deadLetters.letters).toHaveLength(1);
    expect(again.duplicates).toBe(5);
  });

  it('dead-letters a record that is not even a Kafka record and keeps the rest', async () => {
    const { deps, deadLetters } = setup();
    const event = structuredClone(batch());
    (event.records['pg.public.orders-0'] as unknown[]).push({ topic: 'pg.public.orders', offset: 'NaN' });
    const result = await processBatch(event, deps);
    expect(result).toMatchObject({ records: 5, processed: 4, deadLettered: 1 });
    expect(deadLetters.letters[0]?.error.code).toBe('INVALID_RECORD');
  });

  it('counts skipped control records by reason', async () => {
    const { deps } = setup();
    const event = withRecord(batch(), 'pg.public.orders-0', { offset: 13, value: null });
    const result = await processBatch(event, deps);
    expect(result).toMatchObject({ skipped: 1, skippedByReason: { tombstone: 1 }, processed: 4 });
  });

  it('reports the lowest pending offset of a partition whose sink write failed, and commits the others', async () => {
    // Arrange
    const { deps, sink, dedupe } = setup();
    sink.failFor.set('pg.public.orders-0', sinkDown());
    // Act
    const result = await processBatch(batch(), deps);
    // Assert
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: { partition: 'pg.public.orders-0', offset: 10 } }]);
    expect(result).toMatchObject({ processed: 1, retried: 3 });
    expect(result.error?.code).toBe('SINK_UNAVAILABLE');
    expect(dedupe.items.has('warehouse#pg.public.orders-0')).toBe(false);
    expect(dedupe.items.has('warehouse#pg.public.orders-1')).toBe(true);
  });

  it('resumes a failed partition after the last committed offset', async () => {
    // Arrange: first batch commits offsets 10-12; the next one (13, 14) fails.
    const { deps, sink } = setup();
    await processBatch(batch(), deps);
    sink.failFor.set('pg.public.orders-0', sinkDown());
    const next = eventOf([
      pgMessage({ op: 'c', after: { id: 1 }, lsn: 100, offset: 12 }),
      pgMessage({ op: 'c', after: { id: 5 }, lsn: 200, offset: 13 }),
      pgMessage({ op: 'c', after: { id: 6 }, lsn: 210, offset: 14 }),
    ]);
    // Act
    const result = await processBatch(next, deps);
    // Assert
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: { partition: 'pg.public.orders-0', offset: 13 } }]);
  });

  it('fails every partition when the checkpoints cannot be read', async () => {
    const { deps, dedupe, sink } = setup();
    dedupe.failLoad = new Error('dynamodb down');
    const result = await processBatch(batch(), deps);
    expect(result.batchItemFailures.map((f) => f.itemIdentifier)).toEqual([
      { partition: 'pg.public.orders-0', offset: 10 },
      { partition: 'pg.public.orders-1', offset: 3 },
    ]);
    expect(result.error?.retryable).toBe(true);
    expect(sink.writes).toHaveLength(0);
  });

  it('fails the partition whose checkpoint commit fails, after the (idempotent) sink write', async () => {
    const { deps, dedupe } = setup();
    dedupe.failCommitFor = 'pg.public.orders-1';
    const result = await processBatch(batch(), deps);
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: { partition: 'pg.public.orders-1', offset: 3 } }]);
    expect(result.error?.code).toBe('DEDUPE_UNAVAILABLE');
    // The other partition of the same commit moved on and counts as processed; the failed one counts as retried.
    expect(dedupe.items.get('warehouse#pg.public.orders-0')).toMatchObject({ offset: 12 });
    expect(result).toMatchObject({ processed: 3, retried: 1 });
  });

  it('fails every partition of the batch, retryably, when the checkpoint commit throws', async () => {
    const { deps, dedupe } = setup();
    dedupe.commit = async () => {
      throw new Error('connection reset');
    };
    const result = await processBatch(batch(), deps);
    expect(result.batchItemFailures.map((f) => f.itemIdentifier)).toEqual([
      { partition: 'pg.public.orders-0', offset: 10 },
      { partition: 'pg.public.orders-1', offset: 3 },
    ]);
    expect(result.error).toMatchObject({ code: 'DEDUPE_UNAVAILABLE', retryable: true });
    expect(result).toMatchObject({ processed: 0, retried: 4 });
  });

  it('does not count a partition as committed when the store leaves its commit unanswered', async () => {
    const { deps, dedupe } = setup();
    dedupe.commit = async () => [undefined];
    const result = await processBatch(batch(), deps);
    expect(result.batchItemFailures).toHaveLength(2);
    expect(result.error?.message).toContain('answered 1 of 2');
    expect(result.processed).toBe(0);
  });

  it('fails the partition when its dead letters cannot be stored, so the bad record is not acknowledged', async () => {
    const { deps, deadLetters, dedupe } = setup();
    deadLetters.fail = new DeadLetterError('sqs down');
    const event = withRecord(batch(), 'pg.public.orders-0', { offset: 13, value: b64('not json') });
    const result = await processBatch(event, deps);
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: { partition: 'pg.public.orders-0', offset: 10 } }]);
    expect(dedupe.items.has('warehouse#pg.public.orders-0')).toBe(false);
  });

  it('dead-letters the events of a partition the sink refuses for good instead of retrying forever', async () => {
    const { deps, sink, deadLetters } = setup();
    sink.failFor.set('pg.public.orders-1', new SinkError('SINK_REJECTED', 'too large', { retryable: false }));
    const result = await processBatch(batch(), deps);
    expect(result).toMatchObject({ processed: 3, deadLettered: 1, batchItemFailures: [] });
    expect(deadLetters.letters[0]).toMatchObject({
      error: { code: 'SINK_REJECTED' },
      record: { partition: 1, offset: 3 },
    });
  });

  it('passes the sink state of the last checkpoint back to the sink and commits the new one', async () => {
    const { deps, sink, dedupe } = setup();
    sink.stateFor = (p) => ({ seen: ((p.state as { seen?: number })?.seen ?? 0) + p.events.length });
    await processBatch(batch(), deps);
    await processBatch(eventOf([pgMessage({ op: 'c', after: { id: 9 }, lsn: 300, offset: 13 })]), deps);
    expect(dedupe.items.get('warehouse#pg.public.orders-0')?.sinkState).toEqual({ seen: 4 });
  });

  it('skips tables excluded by the table rules with a counted reason', async () => {
    const { deps, sink } = setup({
      enricher: createEnricher({ exclude: ['public.orders'], columns: {} }, { lane: 'warehouse' }),
    });
    const result = await processBatch(batch(), deps);
    expect(result).toMatchObject({ processed: 0, skipped: 4, skippedByReason: { 'table-excluded': 4 } });
    expect(sink.writes).toHaveLength(0);
  });

  it('throws a non-retryable error for an event that is not a Kafka event', async () => {
    const { deps } = setup();
    await expect(processBatch({ Records: [] }, deps)).rejects.toMatchObject({
      code: 'INVALID_EVENT',
      retryable: false,
    });
  });

  it('measures commit-to-sink latency per processed event', async () => {
    const { deps } = setup();
    const result = await processBatch(batch(), deps);
    expect(result.topics.get('pg.public.orders')?.latenciesMs).toHaveLength(4);
  });

  it('leaves every record in exactly one outcome', async () => {
    // Arrange: a mix of everything.
    const { deps, sink } = setup();
    sink.failFor.set('pg.public.orders-1', sinkDown());
    let event = withRecord(batch(), 'pg.public.orders-0', { offset: 13, value: null });
    event = withRecord(event, 'pg.public.orders-0', { offset: 14, value: b64('[]') });
    await processBatch(eventOf([pgMessage({ op: 'c', after: { id: 1 }, lsn: 100, offset: 10 })]), deps);
    // Act
    const r = await processBatch(event, deps);
    // Assert
    expect(r.processed + r.skipped + r.duplicates + r.deadLettered + r.retried).toBe(r.records);
    expect(r).toMatchObject({ records: 6, processed: 2, skipped: 1, duplicates: 1, deadLettered: 1, retried: 1 });
  });

  it('counts redelivered records of a failing partition as duplicates and the rest as retried', async () => {
    // Arrange: offsets 10-12 committed; 10-14 come again and the sink is down
    const { deps, sink } = setup();
    await processBatch(batch(), deps);
    sink.failFor.set('pg.public.orders-0', sinkDown());
    const again = eventOf([
      pgMessage({ op: 'c', after: { id: 1 }, lsn: 100, offset: 10 }),
      pgMessage({ op: 'u', after: { id: 1, v: 2 }, lsn: 110, offset: 11 }),
      pgMessage({ op: 'd', before: { id: 1 }, lsn: 120, offset: 12 }),
      pgMessage({ op: 'c', after: { id: 7 }, lsn: 130, offset: 13 }),
      pgMessage({ op: 'c', after: { id: 8 }, lsn: 140, offset: 14 }),
      pgMessage({ op: 'c', after: { id: 2 }, lsn: 105, offset: 3, partition: 1 }),
    ]);
    // Act
    const r = await processBatch(again, deps);
    // Assert
    expect(r).toMatchObject({ records: 6, duplicates: 4, retried: 2 });
    expect(r.processed + r.skipped + r.duplicates + r.deadLettered + r.retried).toBe(r.records);
  });
});

/** A schema version named by its columns (as the converter's schema would describe the row). */
const versions = new Map<string, TableSchemaVersion>();
function versionOf(columns: string[]): TableSchemaVersion {
  const fingerprint = columns.join(',');
  let v = versions.get(fingerprint);
  if (!v) {
    v = { fingerprint, columns: columns.map((name) => ({ name, type: 'string', optional: name !== 'id' })) };
    versions.set(fingerprint, v);
  }
  return v;
}

/** The JSON decoder, plus the schema version a record's row implies; records on topic `pg` are DDL records. */
class VersionedDecoder implements Decoder {
  private readonly json = new JsonDebeziumDecoder();
  decode(record: KafkaRecord, processedAt: number): DecodeOutcome {
    if (record.topic === 'pg') return { kind: 'schema-change', changes: [ddlChange(record)] };
    const outcome = this.json.decode(record, processedAt);
    if (outcome.kind !== 'event') return outcome;
    const row = outcome.event.after ?? outcome.event.before;
    return row ? { ...outcome, schema: versionOf(Object.keys(row)) } : outcome;
  }
}

function ddlChange(record: KafkaRecord): SchemaChangeRecord {
  const kafka = {
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
    timestamp: record.timestamp,
  };
  return {
    table: 'my.shop.orders',
    type: 'ALTER',
    ddl: 'ALTER TABLE orders ADD note text',
    source: {
      connector: 'mysql',
      name: 'my',
      db: 'shop',
      schema: null,
      table: 'orders',
      position: { file: 'binlog.000001', pos: String(record.offset) },
      order: `my:${String(record.offset).padStart(20, '0')}`,
      snapshot: 'false',
      txId: null,
      commitTs: 1_710_498_600_000,
    },
    columns: [{ name: 'id', typeName: 'INT', optional: false }],
    primaryKey: ['id'],
    kafka,
  };
}

function schemaSetup(overrides: Partial<PipelineDeps> = {}) {
  const registry = new MemorySchemaRegistry();
  const signaller = new MemorySignaller();
  const history = new SchemaHistory({ registry, signaller, clock: () => 1_710_498_700_000 });
  const s = setup({ decoder: new VersionedDecoder(), schemaHistory: history, ...overrides });
  return { ...s, registry, signaller, history };
}

/** Partition 0: a row created, then updated after a column was added, then updated again. */
const evolving = () =>
  eventOf([
    pgMessage({ op: 'c', after: { id: 1 }, lsn: 100, offset: 10 }),
    pgMessage({ op: 'u', after: { id: 1, note: 'a' }, lsn: 110, offset: 11 }),
    pgMessage({ op: 'u', after: { id: 1, note: 'b' }, lsn: 120, offset: 12 }),
  ]);

describe('processBatch: schema history', () => {
  it('hands the sink each version met, before the event that first carries it, and commits the fingerprint', async () => {
    // Arrange
    const { deps, sink, dedupe } = schemaSetup();
    // Act
    const result = await processBatch(evolving(), deps);
    // Assert
    expect(sink.writes[0]?.schemaChanges).toEqual([
      {
        kind: 'version',
        index: 0,
        table: 'pg.public.orders',
        order: expect.any(String),
        schema: versionOf(['id']),
        version: 1,
      },
      {
        kind: 'version',
        index: 1,
        table: 'pg.public.orders',
        order: expect.any(String),
        schema: versionOf(['id', 'note']),
        version: 2,
      },
    ]);
    expect(dedupe.items.get('warehouse#pg.public.orders-0')).toMatchObject({
      offset: 12,
      schemas: { 'pg.public.orders': 'id,note' },
    });
    expect(result.schemaChanges.map((c) => [c.version, c.classification])).toEqual([
      [1, 'new-table'],
      [2, 'additive-nullable'],
    ]);
  });

  it('meets nothing new in the next batch when the version stays the same', async () => {
    // Arrange
    const { deps, sink } = schemaSetup();
    await processBatch(evolving(), deps);
    // Act
    await processBatch(eventOf([pgMessage({ op: 'u', after: { id: 1, note: 'c' }, lsn: 130, offset: 13 })]), deps);
    // Assert
    expect(sink.writes[1]?.schemaChanges).toBeUndefined();
  });

  it('replays the same schema entries from the same state after a failed commit, and none once committed', async () => {
    // Arrange
    const { deps, sink, dedupe } = schemaSetup();
    sink.stateFor = (p) => ({ entries: ((p.state as { entries?: number })?.entries ?? 0) + p.events.length });
    dedupe.failCommitFor = 'pg.public.orders-0';
    const first = await processBatch(evolving(), deps);
    expect(first.batchItemFailures).toHaveLength(1);
    // Act: redelivered after the failed commit, then once more after it committed
    dedupe.failCommitFor = undefined;
    await processBatch(evolving(), deps);
    const third = await processBatch(evolving(), deps);
    // Assert: the second write is the first one again (an idempotent sink rewrites the same entries), the third none
    expect(sink.writes).toHaveLength(2);
    expect(sink.writes[1]?.schemaChanges).toEqual(sink.writes[0]?.schemaChanges);
    expect(sink.writes[1]?.state).toEqual(sink.writes[0]?.state);
    expect(third).toMatchObject({ duplicates: 3, processed: 0 });
  });

  it('lets the first lane register and signal; the next lane meets the same versions and sends nothing', async () => {
    // Arrange: two lanes on one registry
    const { deps, registry, signaller } = schemaSetup();
    const change = () => eventOf([pgMessage({ op: 'c', after: { id: 1, note: 'x' }, lsn: 100, offset: 10 })]);
    // Act
    const cache = await processBatch(change(), deps);
    const audit = await processBatch(change(), {
      ...schemaSetup().deps,
      lane: 'audit',
      schemaHistory: new SchemaHistory({ registry, signaller }),
    });
    // Assert
    expect(cache.schemaChanges).toHaveLength(1);
    expect(audit.schemaChanges).toEqual([]);
    expect(signaller.sent.map((s) => s.data['data-collections'])).toEqual([['public.orders']]);
  });

  it('retries the partition when the reconciliation signal cannot be sent, writing nothing yet', async () => {
    // Arrange
    const { deps, sink, signaller, dedupe } = schemaSetup();
    signaller.fail = new Error('broker unreachable');
    // Act
    const failed = await processBatch(evolving(), deps);
    // Assert
    expect(failed.error).toMatchObject({ code: 'SIGNAL_FAILED', retryable: true });
    expect(failed).toMatchObject({
      retried: 3,
      batchItemFailures: [{ itemIdentifier: { partition: 'pg.public.orders-0', offset: 10 } }],
    });
    expect(sink.writes).toHaveLength(0);
    // Act: the retry sends the pending signal and goes on
    signaller.fail = undefined;
    const retried = await processBatch(evolving(), deps);
    // Assert
    expect(retried).toMatchObject({ processed: 3, batchItemFailures: [] });
    expect(signaller.sent).toHaveLength(1);
    expect(dedupe.items.get('warehouse#pg.public.orders-0')?.schemas).toEqual({ 'pg.public.orders': 'id,note' });
  });

  it('passes schemaless events through without schema history', async () => {
    // Arrange: the plain JSON decoder (schemas.enable=false)
    const { deps, sink, dedupe, registry } = schemaSetup({ decoder: new JsonDebeziumDecoder() });
    // Act
    await processBatch(evolving(), deps);
    // Assert
    expect(sink.writes[0]?.schemaChanges).toBeUndefined();
    expect(dedupe.items.get('warehouse#pg.public.orders-0')?.schemas).toBeUndefined();
    expect(registry.calls.advance).toBe(0);
  });

  it('meets the versions of tables interleaved in one partition once each, in this batch and the next', async () => {
    // Arrange: the catch-all topic; customers has the same columns (so the same fingerprint) as orders
    const { deps, sink, dedupe, registry } = schemaSetup();
    const on = (table: string, after: Record<string, unknown>, lsn: number) =>
      pgMessage({ op: 'u', table, topic: 'pg.unlisted', after, lsn, offset: lsn });
    const interleaved = (from: number) =>
      eventOf([
        on('orders', { id: 1 }, from),
        on('items', { id: 1, sku: 'a' }, from + 1),
        on('orders', { id: 2 }, from + 2),
        on('customers', { id: 1 }, from + 3),
        on('items', { id: 2, sku: 'b' }, from + 4),
        on('orders', { id: 3 }, from + 5),
      ]);
    // Act
    const first = await processBatch(interleaved(100), deps);
    const second = await processBatch(interleaved(200), deps);
    // Assert
    expect(sink.writes[0]?.schemaChanges?.map((c) => [c.index, c.table])).toEqual([
      [0, 'pg.public.orders'],
      [1, 'pg.public.items'],
      [3, 'pg.public.customers'],
    ]);
    expect(first.schemaChanges).toHaveLength(3);
    expect(sink.writes[1]?.schemaChanges).toBeUndefined();
    expect(second.schemaChanges).toEqual([]);
    expect(registry.calls.advance).toBe(3);
    expect(dedupe.items.get('warehouse#pg.unlisted-0')?.schemas).toEqual({
      'pg.public.orders': 'id',
      'pg.public.items': 'id,sku',
      'pg.public.customers': 'id',
    });
  });

  it('reads the single fingerprint of a checkpoint written before per-table ones as its topic table’s', async () => {
    // Arrange: checkpoints of the old shape, on a table's own topic and on a topic named like no table
    const { deps, sink, dedupe } = schemaSetup();
    const legacy = { offset: 1, hw: '', hwIds: [], version: 1, schema: 'id' };
    dedupe.items.set('warehouse#pg.public.orders-0', legacy);
    dedupe.items.set('warehouse#pg.unlisted-0', legacy);
    // Act
    await processBatch(
      eventOf([
        pgMessage({ op: 'u', after: { id: 1 }, lsn: 100, offset: 10 }),
        pgMessage({ op: 'u', after: { id: 1 }, lsn: 100, offset: 10, topic: 'pg.unlisted' }),
      ]),
      deps,
    );
    // Assert: the topic's table applied that version already; elsewhere the table meets it (again, at worst)
    const written = (topic: string) => sink.writes.find((w) => w.partition.topic === topic);
    expect(written('pg.public.orders')?.schemaChanges).toBeUndefined();
    expect(written('pg.unlisted')?.schemaChanges?.map((c) => c.table)).toEqual(['pg.public.orders']);
    const migrated = dedupe.items.get('warehouse#pg.public.orders-0');
    expect(migrated?.schemas).toEqual({ 'pg.public.orders': 'id' });
    expect(migrated?.schema).toBeUndefined();
  });

  it('keeps the fingerprints of the most recently seen tables only; an evicted table meets its version again', async () => {
    // Arrange
    const { deps, sink, dedupe, registry } = schemaSetup({ schemasLimit: 2 });
    const on = (table: string, offset: number) =>
      pgMessage({ op: 'u', table, topic: 'pg.unlisted', after: { id: 1, [table]: 'x' }, lsn: offset, offset });
    const met = (n: number) => sink.writes[n]?.schemaChanges?.map((c) => c.table);
    // Act
    await processBatch(eventOf([on('a', 10), on('b', 11), on('c', 12)]), deps);
    const afterFirst = dedupe.items.get('warehouse#pg.unlisted-0')?.schemas;
    await processBatch(eventOf([on('b', 20), on('a', 21)]), deps);
    const third = await processBatch(eventOf([on('c', 30), on('b', 31)]), deps);
    // Assert: b stays (seen in the second batch), c — met after b but not seen since — is evicted
    expect(met(0)).toEqual(['pg.public.a', 'pg.public.b', 'pg.public.c']);
    expect(afterFirst).toEqual({ 'pg.public.b': 'id,b', 'pg.public.c': 'id,c' });
    expect(met(1)).toEqual(['pg.public.a']);
    expect(met(2)).toEqual(['pg.public.c']);
    // Meeting a known version again registers nothing and reports nothing, but hands the sink its number
    expect(registry.calls.advance).toBe(3);
    expect(third.schemaChanges).toEqual([]);
    expect(sink.writes[2]?.schemaChanges?.[0]).toMatchObject({ kind: 'version', table: 'pg.public.c', version: 1 });
    expect(Object.keys(dedupe.items.get('warehouse#pg.unlisted-0')?.schemas ?? {})).toEqual([
      'pg.public.c',
      'pg.public.b',
    ]);
  });

  it('hands DDL records to the sink and counts them processed, or skipped where the sink keeps no history', async () => {
    // Arrange
    const ddl = () => eventOf([{ topic: 'pg', partition: 0, offset: 5, key: null, value: { ddl: 'ALTER' } }]);
    const recording = schemaSetup();
    const cache = schemaSetup();
    cache.sink.write = async () => ({ ok: true, writtenAt: 1, schemaChangesSkipped: true });
    // Act
    const recorded = await processBatch(ddl(), recording.deps);
    const skipped = await processBatch(ddl(), cache.deps);
    // Assert
    expect(recording.sink.writes[0]).toMatchObject({
      events: [],
      schemaChanges: [{ kind: 'ddl', index: 0, table: 'my.shop.orders', change: { type: 'ALTER' } }],
    });
    expect(recorded).toMatchObject({ records: 1, processed: 1, skipped: 0 });
    expect(skipped).toMatchObject({ records: 1, processed: 0, skipped: 1, skippedByReason: { 'schema-change': 1 } });
  });
});

/**
 * A decoder like the Avro one: `decode` reads only what `prepare` loaded (here: the batch's record offsets), and says
 * so retryably otherwise.
 */
class PreparedDecoder implements Decoder {
  readonly json = new JsonDebeziumDecoder();
  readonly loaded = new Set<string>();
  readonly prepared: number[] = [];
  constructor(private readonly failure?: Error) {}
  async prepare(records: readonly KafkaRecord[]): Promise<void> {
    this.prepared.push(records.length);
    if (this.failure) throw this.failure;
    await new Promise((resolve) => setTimeout(resolve, 1));
    for (const r of records) this.loaded.add(`${r.topic}-${r.partition}@${r.offset}`);
  }
  decode(record: KafkaRecord, processedAt: number): DecodeOutcome {
    if (!this.loaded.has(`${record.topic}-${record.partition}@${record.offset}`))
      return { kind: 'error', error: new SchemaRegistryError('not prepared') };
    return this.json.decode(record, processedAt);
  }
}

describe('processBatch: decoder prepare', () => {
  it('prepares the decoder once with every partition’s records before decoding any', async () => {
    // Arrange
    const decoder = new PreparedDecoder();
    const { deps, sink } = setup({ decoder });
    // Act
    const result = await processBatch(batch(), deps);
    // Assert
    expect(decoder.prepared).toEqual([4]);
    expect(result).toMatchObject({ records: 4, processed: 4, deadLettered: 0, batchItemFailures: [] });
    expect(sink.events).toHaveLength(4);
  });

  it('still decodes when prepare throws against its contract, leaving the records to the decoder’s own errors', async () => {
    // Arrange
    const decoder = new PreparedDecoder(new Error('registry client bug'));
    const { deps, sink } = setup({ decoder });
    // Act
    const result = await processBatch(batch(), deps);
    // Assert: no rejection; the records the decoder could not read are retried, none written or dead-lettered
    expect(decoder.prepared).toEqual([4]);
    expect(result).toMatchObject({ processed: 0, deadLettered: 0, retried: 4 });
    expect(result.batchItemFailures.map((f) => f.itemIdentifier)).toEqual([
      { partition: 'pg.public.orders-0', offset: 10 },
      { partition: 'pg.public.orders-1', offset: 3 },
    ]);
    expect(sink.events).toHaveLength(0);
  });
});
