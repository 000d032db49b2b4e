import { describe, expect, it } from 'vitest';
import { LocalBroker } from '../../tools/local/broker';
import { WRITTEN_FIELDS, type WrittenChanges } from '../../tools/local/runner/lane-host';
import { StageTimings } from '../../tools/local/runner/stages';

/** One streamed change of `pg.public.orders-0` at `offset`, committed at 1,000 ms, as a lane reports it. */
function written(offset: number): WrittenChanges {
  const row: Record<(typeof WRITTEN_FIELDS)[number], number> = {
    topic: 0,
    partition: 0,
    offset,
    snapshot: 0,
    commitTs: 1000,
    capturedAt: 1002,
    timestamp: 1003,
    processedAt: 1010,
  };
  return { topics: ['pg.public.orders'], rows: Float64Array.from(WRITTEN_FIELDS.map((f) => row[f])) };
}

describe('StageTimings: commit → every sink', () => {
  it('counts a change once every lane wrote it, at its last write, and a retried write of one lane only once', () => {
    // Arrange
    const broker = new LocalBroker();
    broker.createTopic('pg.public.orders', 1);
    const stages = new StageTimings(broker, ['warehouse', 'cache', 'audit']);

    // Act: the warehouse writes offset 7 twice (a retry), the cache once; then the audit lane
    stages.record('warehouse', written(7), 1020);
    stages.record('warehouse', written(7), 1030);
    stages.record('cache', written(7), 1025);
    const beforeAudit = stages.allSinksLatency().count;
    stages.record('audit', written(7), 1040);

    // Assert
    expect(beforeAudit).toBe(0);
    expect(stages.allSinksLatency().summary()).toMatchObject({ count: 1, p50: 40, max: 40 });
  });
});
