import { afterEach, describe, expect, it, vi } from 'vitest';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import { createEnricher } from '../../functions/core/enrich';
import { type PipelineDeps, processBatch } from '../../functions/core/pipeline';
import type { Lane } from '../../functions/core/types';
import { recordBatchMetrics } from '../../functions/shared/observability';
import { eventOf, pgMessage } from '../support/builders';
import { captureEmf } from '../support/emf';
import { MemoryDeadLetterQueue, MemoryDedupeStore, MemorySink } from '../support/fakes';

afterEach(() => {
  vi.restoreAllMocks();
});

/** A lane's pipeline with in-memory dedupe, sink and dead letters: what recordBatchMetrics reads is its result. */
function depsOf(lane: Lane): PipelineDeps {
  return {
    lane,
    decoder: new JsonDebeziumDecoder(),
    enricher: createEnricher(undefined, { lane }),
    dedupe: new MemoryDedupeStore(),
    sink: new MemorySink(),
    deadLetters: new MemoryDeadLetterQueue(),
  };
}

describe('recordBatchMetrics', () => {
  it('publishes EMF per lane and table and a lane rollup with the named metrics', async () => {
    // Arrange
    const result = await processBatch(
      eventOf([
        pgMessage({ op: 'c', after: { id: 1 }, lsn: 100, offset: 0 }),
        pgMessage({ op: 'c', after: { id: 1 }, lsn: 100, offset: 1 }),
        { ...pgMessage({ op: 'c', after: { id: 2 }, lsn: 110, offset: 2 }), value: null },
      ]),
      depsOf('cache'),
    );
    const { lines, metrics } = captureEmf();
    // Act
    recordBatchMetrics(metrics, result);
    metrics.publishStoredMetrics();
    // Assert
    const documents = lines.map(
      (l) =>
        JSON.parse(l) as Record<string, unknown> & { _aws: { CloudWatchMetrics: Array<{ Dimensions: string[][] }> } },
    );
    const perTable = documents.find((d) => d.table === 'pg.public.orders');
    const rollup = documents.find((d) => d.table === undefined && d.source === undefined);
    expect(perTable?._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([['service', 'lane', 'table']]);
    expect(perTable).toMatchObject({
      lane: 'cache',
      EventsProcessed: 1,
      Duplicates: 1,
      EventsSkipped: 1,
      DeadLettered: 0,
    });
    expect(rollup?._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([['service', 'lane']]);
    expect(rollup).toMatchObject({ EventsProcessed: 1, Duplicates: 1, EventsSkipped: 1, RecordsRetried: 0 });
    expect(rollup).toHaveProperty('CommitToSinkLatency');
    expect(rollup).toHaveProperty('SinkWriteMs');
  });

  it('publishes SchemaChanged per table, and SchemaChangeUnreconciled for a change left unreconciled', async () => {
    // Arrange
    const result = await processBatch(eventOf([]), depsOf('cache'));
    const report = {
      lane: 'cache' as const,
      dataCollection: 'public.orders',
      version: 2,
      to: 'f2',
      changes: [],
      order: 'pg:1:1',
    };
    result.schemaChanges.push(
      { ...report, table: 'pg.public.orders', classification: 'unreconcilable', action: 'alarm' },
      { ...report, table: 'pg.public.items', classification: 'additive-nullable', action: 'none' },
    );
    const { lines, metrics } = captureEmf();
    // Act
    recordBatchMetrics(metrics, result);
    // Assert
    const documents = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(documents.find((d) => d.table === 'pg.public.orders')).toMatchObject({
      SchemaChanged: 1,
      SchemaChangeUnreconciled: 1,
    });
    const items = documents.find((d) => d.table === 'pg.public.items');
    expect(items).toMatchObject({ SchemaChanged: 1 });
    expect(items).not.toHaveProperty('SchemaChangeUnreconciled');
  });

  it('publishes SourceFreshness per source: the written time minus the newest streamed commit, snapshot reads aside', async () => {
    // Arrange: streamed changes committed at 1,000 and 4,000 ms, and a snapshot read stamped later still
    const result = await processBatch(
      eventOf([
        pgMessage({ op: 'c', after: { id: 1 }, lsn: 100, offset: 0, commitTs: 1_000 }),
        pgMessage({ op: 'u', after: { id: 1 }, lsn: 200, offset: 1, commitTs: 4_000 }),
        pgMessage({ op: 'r', after: { id: 2 }, lsn: 300, offset: 2, commitTs: 9_000, snapshot: 'incremental' }),
      ]),
      depsOf('cache'),
    );
    const { lines, metrics } = captureEmf();

    // Act
    recordBatchMetrics(metrics, result);

    // Assert
    const newest = result.freshness.get('pg');
    expect(newest?.commitTs).toBe(4_000);
    const document = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((d) => d.source === 'pg');
    expect(document).toMatchObject({ lane: 'cache', SourceFreshness: (newest?.writtenAt ?? 0) - 4_000 });
  });
});
