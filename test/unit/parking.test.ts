import { afterEach, describe, expect, it, vi } from 'vitest';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import { createEnricher } from '../../functions/core/enrich';
import { SinkError } from '../../functions/core/errors';
import { afterReplay, PARKED_KEYS_LIMIT, parkingKeyOf } from '../../functions/core/parking';
import { type PipelineDeps, processBatch } from '../../functions/core/pipeline';
import type { Checkpoint, KafkaEvent, ParkedKey, SinkPartition, SinkPartitionResult } from '../../functions/core/types';
import { recordBatchMetrics } from '../../functions/shared/observability';
import { eventOf, pgMessage } from '../support/builders';
import { captureEmf } from '../support/emf';
import { MemoryDeadLetterQueue, MemoryDedupeStore, MemorySink } from '../support/fakes';

afterEach(() => {
  vi.restoreAllMocks();
});

const PARTITION = 'pg.public.orders-0';
const CHECKPOINT = `cache#${PARTITION}`;
const keyOf = (id: number) => `pg.public.orders {"id":${id}}`;

/**
 * A cache-like sink whose rows of `poisoned` ids fail retryably every time: as the contract says, it reports the
 * row's first failing change and every later change of that row in the write, and applies none of them.
 */
class RowFailingSink extends MemorySink {
  readonly poisoned = new Set<number>();
  /** The changes applied, as `<id>@<offset>`. */
  readonly applied: string[] = [];

  override async write(p: SinkPartition): Promise<SinkPartitionResult> {
    const result = await super.write(p);
    if (!result.ok) return result;
    const retryableRejected: Array<{ index: number; error: SinkError }> = [];
    p.events.forEach((event, index) => {
      const id = Number(event.key?.id);
      if (this.poisoned.has(id)) {
        const error = new SinkError('SINK_ROW_FAILED', `row ${id}: WRONGTYPE`, { retryable: true });
        retryableRejected.push({ index, error });
      } else this.applied.push(`${id}@${event.kafka.offset}`);
    });
    return retryableRejected.length > 0 ? { ...result, retryableRejected } : result;
  }
}

function setup(overrides: Partial<PipelineDeps> = {}) {
  const dedupe = new MemoryDedupeStore();
  const sink = new RowFailingSink();
  const deadLetters = new MemoryDeadLetterQueue();
  const deps: PipelineDeps = {
    lane: 'cache',
    decoder: new JsonDebeziumDecoder(),
    enricher: createEnricher(undefined, { lane: 'cache' }),
    dedupe,
    sink,
    deadLetters,
    parkAfterAttempts: 3,
    clock: () => 1_710_498_700_000,
    ...overrides,
  };
  return { deps, dedupe, sink, deadLetters };
}

/** Row 2 changes twice among changes of rows 1 and 3. */
const batch = (): KafkaEvent =>
  eventOf([
    pgMessage({ op: 'c', after: { id: 1 }, lsn: 100, offset: 10 }),
    pgMessage({ op: 'c', after: { id: 2, v: 1 }, lsn: 110, offset: 11 }),
    pgMessage({ op: 'u', after: { id: 1, v: 2 }, lsn: 120, offset: 12 }),
    pgMessage({ op: 'u', after: { id: 2, v: 2 }, lsn: 130, offset: 13 }),
    pgMessage({ op: 'c', after: { id: 3 }, lsn: 140, offset: 14 }),
  ]);

describe('parking a poison key', () => {
  it('retries the partition and counts the key once per delivery, moving nothing else in the checkpoint', async () => {
    // Arrange: a committed checkpoint with sink state
    const { deps, dedupe, sink, deadLetters } = setup();
    const previous: Checkpoint = { offset: 9, hw: 'pg:0:1', hwIds: ['abc'], version: 4, sinkState: { head: 'h' } };
    dedupe.items.set(CHECKPOINT, previous);
    sink.poisoned.add(2);
    // Act
    const first = await processBatch(batch(), deps);
    const second = await processBatch(batch(), deps);
    // Assert: both of row 2's changes failed, one attempt per delivery; the rest of the checkpoint stayed
    expect(first).toMatchObject({ processed: 0, deadLettered: 0, retried: 5, parked: [] });
    expect(first.batchItemFailures).toEqual([{ itemIdentifier: { partition: PARTITION, offset: 10 } }]);
    expect(first.error).toMatchObject({ code: 'SINK_ROW_FAILED', retryable: true });
    expect(second.batchItemFailures).toHaveLength(1);
    expect(dedupe.items.get(CHECKPOINT)).toEqual({
      ...previous,
      version: 6,
      attempts: [{ key: keyOf(2), offset: 11, attempts: 2 }],
    });
    expect(deadLetters.letters).toEqual([]);
  });

  it('parks the key on the Nth delivery: its changes dead-lettered in order, its neighbours applied', async () => {
    // Arrange
    const { deps, dedupe, sink, deadLetters } = setup();
    sink.poisoned.add(2);
    const event = batch();
    await processBatch(event, deps);
    await processBatch(event, deps);
    // Act
    const third = await processBatch(event, deps);
    // Assert
    expect(third).toMatchObject({ records: 5, processed: 3, deadLettered: 2, retried: 0, batchItemFailures: [] });
    expect(third.parked).toEqual([{ partition: PARTITION, key: keyOf(2), offset: 11, attempts: 3 }]);
    expect(third.topics.get('pg.public.orders')?.keysParked).toBe(1);
    const records = event.records[PARTITION] ?? [];
    expect(deadLetters.letters).toEqual([
      {
        lane: 'cache',
        error: {
          code: 'PARKED',
          message: `key ${keyOf(2)} parked after 3 failed deliveries: SINK_ROW_FAILED: row 2: WRONGTYPE`,
        },
        record: records[1],
        failedAt: '2024-03-15T10:31:40.000Z',
        parked: { key: keyOf(2), attempts: 3 },
      },
      expect.objectContaining({ error: expect.objectContaining({ code: 'PARKED' }), record: records[3] }),
    ]);
    expect(deadLetters.letters[1]?.parked).toEqual({ key: keyOf(2), attempts: 0 });
    expect(dedupe.items.get(CHECKPOINT)).toMatchObject({
      offset: 14,
      parked: [{ key: keyOf(2), first: 11, last: 13, count: 2, attempts: 3, parkedAt: 1_710_498_700_000 }],
    });
    expect(dedupe.items.get(CHECKPOINT)?.attempts).toBeUndefined();
  });

  it('dead-letters every later change of a parked key in order, never hands it to the sink, and goes on', async () => {
    // Arrange: row 2 parked
    const { deps, dedupe, sink, deadLetters } = setup({ parkAfterAttempts: 1 });
    sink.poisoned.add(2);
    await processBatch(batch(), deps);
    sink.poisoned.clear();
    const writesBefore = sink.events.length;
    // Act: row 2 changes again (the sink would take it now), around a change of row 4
    const next = await processBatch(
      eventOf([
        pgMessage({ op: 'd', before: { id: 2 }, lsn: 150, offset: 15 }),
        pgMessage({ op: 'c', after: { id: 4 }, lsn: 160, offset: 16 }),
        pgMessage({ op: 'c', after: { id: 2, v: 3 }, lsn: 170, offset: 17 }),
      ]),
      deps,
    );
    // Assert
    expect(next).toMatchObject({ processed: 1, deadLettered: 2, parked: [], batchItemFailures: [] });
    expect(sink.events.slice(writesBefore).map((e) => e.key)).toEqual([{ id: 4 }]);
    expect(deadLetters.letters.map((l) => [l.record.offset, l.error.code, l.parked?.attempts])).toEqual([
      [11, 'PARKED', 1],
      [13, 'PARKED', 0],
      [15, 'PARKED', 0],
      [17, 'PARKED', 0],
    ]);
    expect(dedupe.items.get(CHECKPOINT)?.parked).toEqual([expect.objectContaining({ first: 11, last: 17, count: 4 })]);
  });

  it('neither counts nor parks again when the batch that parked the key is redelivered', async () => {
    // Arrange
    const { deps, dedupe, sink, deadLetters } = setup({ parkAfterAttempts: 1 });
    sink.poisoned.add(2);
    await processBatch(batch(), deps);
    const committed = structuredClone(dedupe.items.get(CHECKPOINT));
    // Act
    const again = await processBatch(batch(), deps);
    // Assert
    expect(again).toMatchObject({ duplicates: 5, deadLettered: 0, parked: [] });
    expect(deadLetters.letters).toHaveLength(2);
    expect(dedupe.items.get(CHECKPOINT)).toEqual(committed);
  });

  it('counts the same change across deliveries only: a change that went through is forgotten', async () => {
    // Arrange: row 2 failed once
    const { deps, dedupe, sink } = setup();
    sink.poisoned.add(2);
    await processBatch(batch(), deps);
    sink.poisoned.clear();
    // Act
    const healed = await processBatch(batch(), deps);
    // Assert
    expect(healed).toMatchObject({ processed: 5, deadLettered: 0, batchItemFailures: [] });
    expect(dedupe.items.get(CHECKPOINT)).toMatchObject({ offset: 14 });
    expect(dedupe.items.get(CHECKPOINT)?.attempts).toBeUndefined();
  });

  it('parks nothing and counts nothing with PARK_AFTER_ATTEMPTS 0: the partition is retried as before', async () => {
    // Arrange
    const { deps, dedupe, sink, deadLetters } = setup({ parkAfterAttempts: 0 });
    sink.poisoned.add(2);
    // Act
    for (let i = 0; i < 5; i++) await processBatch(batch(), deps);
    const last = await processBatch(batch(), deps);
    // Assert
    expect(last).toMatchObject({ retried: 5, parked: [], notParked: [] });
    expect(dedupe.items.has(CHECKPOINT)).toBe(false);
    expect(deadLetters.letters).toEqual([]);
  });

  it('waits until every key failing in the partition reached its attempts, then parks them together', async () => {
    // Arrange: row 2 fails from the first delivery, row 3 from the second
    const { deps, dedupe, sink } = setup({ parkAfterAttempts: 2 });
    sink.poisoned.add(2);
    await processBatch(batch(), deps);
    sink.poisoned.add(3);
    // Act
    const second = await processBatch(batch(), deps);
    const third = await processBatch(batch(), deps);
    // Assert
    expect(second.notParked).toEqual([
      { partition: PARTITION, key: keyOf(2), attempts: 2, reason: expect.stringContaining('not reached') },
    ]);
    expect(second.batchItemFailures).toHaveLength(1);
    expect(third.parked.map((p) => [p.key, p.attempts])).toEqual([
      [keyOf(2), 3],
      [keyOf(3), 2],
    ]);
    expect(dedupe.items.get(CHECKPOINT)?.parked?.map((p) => p.key)).toEqual([keyOf(2), keyOf(3)]);
  });

  it('falls back to retrying the partition when its parked keys are full, and says so', async () => {
    // Arrange: the partition holds as many parked keys as it may
    const { deps, dedupe, sink, deadLetters } = setup({ parkAfterAttempts: 1 });
    const parked: ParkedKey[] = Array.from({ length: PARKED_KEYS_LIMIT }, (_, i) => ({
      key: keyOf(100 + i),
      first: 1,
      last: 1,
      count: 1,
      attempts: 1,
      parkedAt: 1,
    }));
    dedupe.items.set(CHECKPOINT, { offset: 9, hw: '', hwIds: [], version: 1, parked });
    sink.poisoned.add(2);
    // Act
    const result = await processBatch(batch(), deps);
    // Assert
    expect(result.notParked).toEqual([
      { partition: PARTITION, key: keyOf(2), attempts: 1, reason: expect.stringContaining('parked keys are full') },
    ]);
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: { partition: PARTITION, offset: 10 } }]);
    expect(deadLetters.letters).toEqual([]);
    expect(dedupe.items.get(CHECKPOINT)?.parked).toHaveLength(PARKED_KEYS_LIMIT);
  });

  it('cannot park a change without a key: its partition is retried, and a keyed key failing with it waits', async () => {
    // Arrange: a table without a primary key (null Kafka key) whose change fails, alone and beside row 2
    const { deps, dedupe, sink, deadLetters } = setup({ parkAfterAttempts: 1 });
    sink.write = async (p) => ({
      ok: true,
      writtenAt: 1,
      retryableRejected: p.events.map((_, index) => ({
        index,
        error: new SinkError('SINK_ROW_FAILED', 'x', { retryable: true }),
      })),
    });
    const keyless = pgMessage({ op: 'c', table: 'log', key: null, after: { line: 'a' }, lsn: 100, offset: 1 });
    // Act
    const alone = await processBatch(eventOf([keyless]), deps);
    const countedAlone = dedupe.items.has('cache#pg.public.log-0');
    const beside = await processBatch(
      eventOf([keyless, pgMessage({ op: 'c', table: 'log', after: { id: 2 }, lsn: 110, offset: 2 })]),
      deps,
    );
    // Assert
    expect(alone).toMatchObject({ retried: 1, parked: [], notParked: [] });
    expect(countedAlone).toBe(false);
    expect(dedupe.items.get('cache#pg.public.log-0')?.attempts).toEqual([
      { key: 'pg.public.log {"id":2}', offset: 2, attempts: 1 },
    ]);
    expect(beside).toMatchObject({ retried: 2, parked: [] });
    expect(beside.notParked).toEqual([
      expect.objectContaining({ key: 'pg.public.log {"id":2}', reason: expect.stringContaining('without a key') }),
    ]);
    expect(deadLetters.letters).toEqual([]);
  });

  it('lets a redrive replay a parked key’s changes, counting nothing and keeping the parked keys', async () => {
    // Arrange: row 2 parked; its letters come back in redrive mode
    const { deps, dedupe, sink, deadLetters } = setup({ parkAfterAttempts: 1 });
    sink.poisoned.add(2);
    await processBatch(batch(), deps);
    sink.poisoned.clear();
    const letters = eventOf([]);
    letters.records[PARTITION] = deadLetters.letters.map((l) => l.record);
    // Act
    const replay = await processBatch(letters, { ...deps, mode: 'redrive' });
    // Assert: applied in order; the checkpoint keeps its offset and the parked key (the redrive tool unparks it)
    expect(replay).toMatchObject({ processed: 2, deadLettered: 0, batchItemFailures: [] });
    expect(sink.applied.slice(-2)).toEqual(['2@11', '2@13']);
    expect(dedupe.items.get(CHECKPOINT)).toMatchObject({ offset: 14, parked: [{ key: keyOf(2), count: 2 }] });
  });

  it('fails a redrive whose change the sink still rejects, without counting or parking', async () => {
    // Arrange
    const { deps, dedupe, sink, deadLetters } = setup({ parkAfterAttempts: 1 });
    sink.poisoned.add(2);
    await processBatch(batch(), deps);
    const letters = eventOf([]);
    letters.records[PARTITION] = deadLetters.letters.map((l) => l.record);
    const before = structuredClone(dedupe.items.get(CHECKPOINT));
    // Act
    const replay = await processBatch(letters, { ...deps, mode: 'redrive' });
    // Assert
    expect(replay).toMatchObject({ processed: 0, retried: 2, parked: [] });
    expect(replay.batchItemFailures).toEqual([{ itemIdentifier: { partition: PARTITION, offset: 11 } }]);
    expect(dedupe.items.get(CHECKPOINT)).toEqual(before);
    expect(deadLetters.letters).toHaveLength(2);
  });
});

describe('parkingKeyOf', () => {
  it('names a change by its table and row key; a change without a key has none', async () => {
    const decode = (m: ReturnType<typeof pgMessage>) => {
      const outcome = new JsonDebeziumDecoder().decode(Object.values(eventOf([m]).records)[0]?.[0] as never, 1);
      if (outcome.kind !== 'event') throw new Error('not an event');
      return outcome.event;
    };
    expect(parkingKeyOf(decode(pgMessage({ op: 'u', after: { id: 7 }, lsn: 1 })))).toBe(keyOf(7));
    expect(parkingKeyOf(decode(pgMessage({ op: 't', lsn: 1 })))).toBeNull();
    expect(parkingKeyOf(decode(pgMessage({ op: 'c', key: null, after: { a: 1 }, lsn: 1 })))).toBeNull();
  });
});

describe('afterReplay', () => {
  const entry: ParkedKey = { key: keyOf(2), first: 11, last: 13, count: 2, attempts: 3, parkedAt: 1 };
  const other: ParkedKey = { ...entry, key: keyOf(9) };
  const checkpoint = (parked: ParkedKey[]): Checkpoint => ({ offset: 20, hw: 'h', hwIds: [], version: 7, parked });

  it('unparks the key when nothing was parked since the replay read it', () => {
    expect(afterReplay(checkpoint([other, entry]), entry)).toEqual({ ...checkpoint([other]), version: 8 });
    expect(afterReplay(checkpoint([entry]), entry)?.parked).toBeUndefined();
  });

  it('keeps the key parked with only the changes parked after the replayed ones', () => {
    const grown = { ...entry, last: 18, count: 3 };
    expect(afterReplay(checkpoint([grown, other]), entry)?.parked).toEqual([{ ...grown, first: 14, count: 1 }, other]);
  });

  it('leaves a key alone that another redrive unparked or replayed meanwhile', () => {
    expect(afterReplay(checkpoint([other]), entry)).toBeUndefined();
    expect(afterReplay(checkpoint([{ ...entry, first: 14, count: 1 }]), entry)).toBeUndefined();
  });
});

describe('KeysParked', () => {
  it('is published per table when a key was parked, and on the lane rollup every batch', async () => {
    // Arrange
    const { deps, sink } = setup({ parkAfterAttempts: 1 });
    sink.poisoned.add(2);
    const parked = await processBatch(batch(), deps);
    const quiet = await processBatch(eventOf([pgMessage({ op: 'c', after: { id: 5 }, lsn: 300, offset: 30 })]), deps);
    const { lines, metrics } = captureEmf();
    // Act
    recordBatchMetrics(metrics, parked);
    metrics.publishStoredMetrics();
    recordBatchMetrics(metrics, quiet);
    metrics.publishStoredMetrics();
    // Assert
    const documents = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const perTable = documents.filter((d) => d.table === 'pg.public.orders');
    const rollups = documents.filter((d) => d.table === undefined && d.source === undefined);
    expect(perTable[0]).toMatchObject({ KeysParked: 1 });
    expect(perTable[1]).not.toHaveProperty('KeysParked');
    expect(rollups.map((d) => d.KeysParked)).toEqual([1, 0]);
  });
});
