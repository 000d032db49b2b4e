/**
 * The whole local pipeline, end to end: embedded PostgreSQL → dev connector → broker and event source mappings →
 * the three real lanes against local services → verification. Each test is one `npm start` run (runLocal) with a
 * small workload.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { formatSummary } from '../../tools/local/runner/progress';
import { type RunContext, runLocal } from '../../tools/local/runner/run';
import { WORKLOAD_OPS } from '../../tools/local/runner/workload';
import { LOCAL_NAMES } from '../../tools/local/services';
import { type StreamedChange, smallRun, streamedChanges } from './support';

const RUN_TIMEOUT = 150_000;
// cdc_heartbeat: the heartbeat table the capture upserts at every heartbeat (freshness), captured like the others.
const TABLES = ['cdc_heartbeat', 'customers', 'order_items', 'orders', 'page_views', 'products'].map(
  (t) => `pg.public.${t}`,
);

async function keys(s3: RunContext['services']['clients']['s3'], bucket: string, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key) out.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}

describe('npm start, end to end', () => {
  it(
    'a workload of every operation ends with every sink equal to the source',
    async () => {
      // Arrange
      let stream: StreamedChange[] = [];
      // The whole stream is read back from the broker below, so nothing may be released from it.
      const options = smallRun({ releaseConsumed: false });

      // Act
      const result = await runLocal(options, {
        beforeVerify: async ({ pipeline }) => {
          stream = streamedChanges(pipeline.broker, pipeline.tableTopics());
        },
      });

      // Assert: it is consistent, and every check compared real rows
      expect(result.consistent).toBe(true);
      const { warehouse, currentState, cache, audit } = result.checks;
      if (!warehouse.checked || !currentState.checked || !cache.checked || !audit.checked) {
        throw new Error('every check must have run');
      }
      expect(Object.keys(warehouse.tables).sort()).toEqual(TABLES);
      for (const table of TABLES) expect(warehouse.tables[table]?.sourceRows, table).toBeGreaterThan(0);
      expect(warehouse.tables['pg.public.page_views']?.kind).toBe('keyless');
      // The current-state tables (DuckDB MERGE of the change log) equal the source, per keyed table
      expect(Object.keys(currentState.tables).sort()).toEqual(TABLES);
      for (const table of TABLES.filter((t) => t !== 'pg.public.page_views')) {
        const check = currentState.tables[table];
        expect(check, table).toMatchObject({ kind: 'keyed', missing: 0, extra: 0, different: 0 });
        expect(check?.sinkRows, table).toBe(check?.sourceRows);
      }
      expect(currentState.tables['pg.public.page_views']?.kind).toBe('not-applicable');
      expect(currentState.steps).toBeGreaterThan(0);
      expect(cache.tables['pg.public.cdc_heartbeat']).toMatchObject({ sourceRows: 1, sinkRows: 1, different: 0 });
      expect(stream.some((c) => c.event.source.table === 'cdc_heartbeat' && c.event.op === 'u')).toBe(true);
      expect(cache.tables['pg.public.page_views']?.kind).toBe('not-applicable');
      expect(cache.tables['pg.public.orders']).toMatchObject({ kind: 'keyed', missing: 0, extra: 0, different: 0 });
      expect(cache.rowsCompared).toBeGreaterThan(100);
      expect(audit).toMatchObject({ duplicateIds: 0, missing: 0, unexpected: 0, notInWarehouse: 0, notInAudit: 0 });
      expect(audit.distinctChanges).toBe(audit.brokerDistinct);
      expect(result.changes).toBeGreaterThan(100);
      expect(result.latencyMs.p50).toBeGreaterThan(0);
      for (const lane of ['warehouse', 'cache', 'audit'] as const) {
        expect(result.lanes[lane]).toMatchObject({ running: true, deadLettered: 0, onFailure: 0 });
      }

      // Assert: the workload did every operation, and the stream shows the cases they exist for
      for (const op of WORKLOAD_OPS) expect(result.details.workload?.ops[op], op).toBeGreaterThan(0);
      const of = (table: string) => stream.filter((c) => c.event.source.table === table);
      const products = of('products').filter((c) => c.event.op === 'u');
      expect(products.some((c) => c.event.unchanged.includes('description'))).toBe(true); // TOAST untouched
      expect(products.some((c) => String(c.event.after?.description ?? '').length > 2000)).toBe(true); // TOAST rewritten
      const items = of('order_items');
      expect(items.some((c) => c.event.op === 'd' && c.headers.includes('__debezium.newkey'))).toBe(true); // PK change
      expect(items.some((c) => c.event.op === 'c' && c.headers.includes('__debezium.oldkey'))).toBe(true);
      expect(
        stream
          .filter((c) => c.event.op === 't')
          .map((c) => c.event.source.table)
          .sort(),
      ).toEqual(['order_items', 'page_views']);
      expect([...new Set(of('page_views').map((c) => c.event.op))].sort()).toEqual(['c', 'd', 'r', 't', 'u']);
      const tablesByTx = new Map<string, Set<string>>();
      for (const { event } of stream) {
        if (event.op === 'r' || event.source.txId === null) continue;
        const set = tablesByTx.get(event.source.txId) ?? new Set();
        set.add(event.source.table ?? '');
        tablesByTx.set(event.source.txId, set);
      }
      expect([...tablesByTx.values()].some((t) => t.has('orders') && t.has('order_items'))).toBe(true); // multi-statement
    },
    RUN_TIMEOUT,
  );

  it(
    'a capture that crashes mid-stream and restarts re-emits changes, and nothing is doubled in any sink',
    async () => {
      // Arrange: offsets saved every 5 s (Debezium: offset.flush.interval.ms, 60 s by default), so the crash 2 s into
      // the workload loses, and the new capture re-emits, what was produced since the last save. With saves every
      // second a save could land between the runner seeing unsaved changes and the crash on a busy machine, and then
      // nothing was re-emitted.
      const options = smallRun({ restartCaptureAtMs: 2000, offsetFlushIntervalMs: 5000 });
      let logStart = 0;

      // Act
      const result = await runLocal(options, {
        beforeVerify: async ({ pipeline }) => {
          for (const topic of pipeline.tableTopics()) logStart += pipeline.broker.logStartOffset(topic, 0);
        },
      });

      // Assert
      expect(result.details.captureRestarts).toBe(1);
      expect(result.consistent, JSON.stringify(result.checks).slice(0, 4000)).toBe(true);
      const { audit } = result.checks;
      if (!audit.checked) throw new Error('the audit check must have run');
      expect(audit.brokerRecords).toBeGreaterThan(audit.brokerDistinct); // the capture did re-emit
      // Records every lane committed were released from the broker during the run, and still counted above.
      expect(logStart).toBeGreaterThan(0);
      expect(audit.duplicateIds).toBe(0);
      expect(audit.distinctChanges).toBe(audit.brokerDistinct);
      for (const lane of ['warehouse', 'cache', 'audit'] as const) {
        expect(result.lanes[lane].duplicates, lane).toBeGreaterThan(0); // ... and every lane dropped the copies
      }
    },
    RUN_TIMEOUT,
  );

  it.each([1, 3])(
    'with --concurrency %i, each lane keeps at most that many invocations in flight, and ends consistent',
    async (concurrency) => {
      // Arrange
      const options = smallRun({ durationMs: 2000, concurrency });

      // Act
      const result = await runLocal(options);

      // Assert
      expect(result.consistent).toBe(true);
      expect(result.details.concurrency).toBe(concurrency);
      for (const lane of ['warehouse', 'cache', 'audit'] as const) {
        const { environments, invocations } = result.details.invocations[lane] ?? { environments: 0, invocations: 0 };
        expect(invocations, lane).toBeGreaterThan(0);
        // A handler instance per invocation in flight at once: the most the lane needed
        expect(environments, lane).toBeLessThanOrEqual(concurrency);
        if (concurrency > 1) expect(environments, lane).toBeGreaterThan(1);
      }
    },
    RUN_TIMEOUT,
  );

  it(
    'a source larger than the broker’s backlog: the capture waits for the lanes, the broker stays bounded, all consistent',
    async () => {
      // Arrange: a snapshot of about 8,000 rows against room for 500 records the lanes have not all committed
      const maxBacklog = 500;
      const options = smallRun({ seedRows: 1500, durationMs: 1000, maxBacklog });

      // Act
      const result = await runLocal(options);

      // Assert
      expect(result.consistent).toBe(true);
      const { snapshotReads, backpressure } = result.details;
      expect(snapshotReads).toBeGreaterThan(8000);
      expect(backpressure.heldTimes).toBeGreaterThan(0);
      // At most one hand-over of the capture (up to 1,000 records) past the limit, committed records released meanwhile
      expect(backpressure.peakBacklog).toBeLessThanOrEqual(maxBacklog + 1000);
      expect(backpressure.peakRetained).toBeLessThanOrEqual(maxBacklog + 1000);
    },
    RUN_TIMEOUT,
  );

  it(
    'backpressure with releasing turned off (tests reading the stream back, --keep): waits, and deletes nothing',
    async () => {
      // Arrange
      const options = smallRun({ seedRows: 300, durationMs: 1000, maxBacklog: 200, releaseConsumed: false });
      let deleted = -1;

      // Act
      const result = await runLocal(options, {
        beforeVerify: async ({ pipeline }) => {
          deleted = 0;
          for (const topic of pipeline.tableTopics()) {
            for (let p = 0; p < (pipeline.broker.partitionCount(topic) ?? 0); p++) {
              deleted += pipeline.broker.logStartOffset(topic, p);
            }
          }
        },
      });

      // Assert
      expect(result.consistent).toBe(true);
      expect(result.details.backpressure.heldTimes).toBeGreaterThan(0);
      expect(deleted).toBe(0);
      expect(result.details.problems).toEqual([]);
    },
    RUN_TIMEOUT,
  );

  it(
    'without Redis runs the other lanes, says so loudly, and reports the cache as not checked rather than consistent',
    async () => {
      // Arrange
      const lines: string[] = [];
      const options = smallRun({ redis: null, durationMs: 2000 });

      // Act
      const result = await runLocal(options, { log: (message) => lines.push(message) });

      // Assert
      expect(lines.join('\n')).toContain('NO REDIS: running WITHOUT the cache lane (--no-cache was given)');
      expect(result.lanes.cache.running).toBe(false);
      expect(result.lanes.warehouse.processed).toBeGreaterThan(0);
      expect(result.checks.cache).toEqual({
        checked: false,
        consistent: false,
        reason: 'the cache lane did not run (--no-cache)',
      });
      expect(result.checks.warehouse).toMatchObject({ checked: true, consistent: true });
      expect(result.checks.audit).toMatchObject({ checked: true, consistent: true });
      expect(result.consistent).toBe(true);
      expect(formatSummary(result, { explore: [], warnings: [] })).toContain(
        'CONSISTENT (warehouse, current state and audit only: the cache was NOT checked)',
      );
    },
    RUN_TIMEOUT,
  );

  it(
    'verification catches a sink that was tampered with',
    async () => {
      // Arrange: after the run drained, break each sink a little. Without the workload's schema change: its
      // incremental snapshot would re-read every customer, so deleting the initial snapshot's files would lose nothing.
      const options = smallRun({ durationMs: 2000, schemaChange: false });
      const tampered: string[] = [];
      const breakSinks = async ({ services, cachePrefix }: RunContext) => {
        const { s3 } = services.clients;
        // cache: one customer row gone, another with a wrong name
        const redis = new Redis(services.redisUrl ?? '');
        const rows: string[] = [];
        let cursor = '0';
        do {
          const [next, found] = await redis.scan(
            cursor,
            'MATCH',
            `${cachePrefix}:pg.public.customers:{*}`,
            'COUNT',
            500,
          );
          cursor = next;
          rows.push(...found);
        } while (cursor !== '0');
        rows.sort();
        await redis.del(rows[0] ?? '');
        await redis.hset(rows[1] ?? '', 'full_name', JSON.stringify('Tampered'));
        redis.disconnect();
        // warehouse: the first file of every customers partition (the snapshot reads) deleted
        const files = await keys(s3, LOCAL_NAMES.warehouseBucket, 'changes/table=pg.public.customers/');
        for (const key of files.filter((k) => k.includes(`+${'0'.repeat(20)}+`))) {
          await s3.send(new DeleteObjectCommand({ Bucket: LOCAL_NAMES.warehouseBucket, Key: key }));
          tampered.push(key);
        }
        // audit: one entry of the customers chain edited in place
        const [object] = await keys(s3, LOCAL_NAMES.auditBucket, 'audit/pg.public.customers/');
        const body = await s3.send(new GetObjectCommand({ Bucket: LOCAL_NAMES.auditBucket, Key: object }));
        const text = gunzipSync(await (body.Body?.transformToByteArray() ?? new Uint8Array())).toString('utf8');
        const edited = text.replace('"Customer ', '"Kustomer ');
        await s3.send(new PutObjectCommand({ Bucket: LOCAL_NAMES.auditBucket, Key: object, Body: gzipSync(edited) }));
        expect(edited).not.toBe(text);
      };

      // Act
      const result = await runLocal(options, { beforeVerify: breakSinks });

      // Assert
      expect(result.consistent).toBe(false);
      const { warehouse, cache, audit } = result.checks;
      if (!warehouse.checked || !cache.checked || !audit.checked) throw new Error('every check must have run');
      expect(tampered.length).toBeGreaterThan(0);
      expect(warehouse.consistent).toBe(false);
      expect(warehouse.tables['pg.public.customers']?.missing).toBeGreaterThan(0);
      expect(warehouse.tables['pg.public.orders']).toMatchObject({ missing: 0, extra: 0, different: 0 });
      expect(cache.consistent).toBe(false);
      expect(cache.tables['pg.public.customers']).toMatchObject({ missing: 1, different: 1 });
      expect(cache.tables['pg.public.customers']?.samples.join('\n')).toContain('Tampered');
      expect(audit.consistent).toBe(false);
      expect(audit.problems.some((p) => p.includes('hash-mismatch'))).toBe(true);
      // The current-state tables had applied the deleted files before: a sink of their own, still equal to the source
      expect(result.checks.currentState).toMatchObject({ checked: true, consistent: true });
      expect(audit.notInAudit + audit.notInWarehouse).toBeGreaterThan(0);
    },
    RUN_TIMEOUT,
  );
});
