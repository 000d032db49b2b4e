import { Metrics } from '@aws-lambda-powertools/metrics';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import { createEnricher } from '../../functions/core/enrich';
import { processBatch } from '../../functions/core/pipeline';
import { recordBatchMetrics } from '../../functions/shared/observability';
import { eventOf, pgMessage } from '../support/builders';
import { MemoryDeadLetterQueue, MemoryDedupeStore, MemorySink } from '../support/fakes';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('recordBatchMetrics', () => {
  it('publishes EMF per lane and table and a lane rollup with the named metrics', async () => {
    // Arrange
    const result = await processBatch(
      eventOf([
        pgMessage({ op: 'c', after: { id: 1 }, lsn: 100, offset: 0 }),
        pgMessage({ op: 'c', after: { id: 1 }, lsn: 100, offset: 1 }),
        { ...pgMessage({ op: 'c', after: { id: 2 }, lsn: 110, offset: 2 }), value: null },
      ]),
      {
        lane: 'cache',
        decoder: new JsonDebeziumDecoder(),
        enricher: createEnricher(undefined, { lane: 'cache' }),
        dedupe: new MemoryDedupeStore(),
        sink: new MemorySink(),
        deadLetters: new MemoryDeadLetterQueue(),
        reportBatchItemFailures: true,
      },
    );
    const lines: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(
        ...String(chunk)
          .split('\n')
          .filter((l) => l.startsWith('{')),
      );
      return true;
    });
    const metrics = new Metrics({
      namespace: 'cdc-sync',
      serviceName: 'cdc-sync',
      defaultDimensions: { lane: 'cache' },
    });
    // Act
    recordBatchMetrics(metrics, result);
    metrics.publishStoredMetrics();
    // Assert
    const documents = lines.map(
      (l) =>
        JSON.parse(l) as Record<string, unknown> & { _aws: { CloudWatchMetrics: Array<{ Dimensions: string[][] }> } },
    );
    const perTable = documents.find((d) => d.table === 'pg.public.orders');
    const rollup = documents.find((d) => d.table === undefined);
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
});
