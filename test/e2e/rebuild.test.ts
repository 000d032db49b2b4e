/**
 * `npm run rebuild`: a lost sink restored from the audit log while its lane keeps running.
 *
 * One local run carries the three losses (to keep the suite's time down): mid-run, the run's cache keys are flushed
 * and the cache rebuilt, and the change log of one table is deleted and rebuilt, both while the workload goes on; the
 * run's own end-of-run verification must then find both sinks equal to the source. After the drain, an `--as-of`
 * rebuild (through the command, from the run file) of a time in the middle of the run must hold exactly the state a
 * plain replay of the audited changes up to that time gives.
 *
 * Then, against the local services directly, what a run cannot be relied on to produce: a broken chain refused, a
 * lane's TOAST merge onto a lost row repaired, and the warehouse rebuild writing each lost change exactly once.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDedupeStore } from '../../functions/adapters/dynamodb-dedupe-store';
import { RedisCacheSink } from '../../functions/adapters/redis-cache-sink';
import { S3AuditSink } from '../../functions/adapters/s3-audit-sink';
import { S3WarehouseSink } from '../../functions/adapters/s3-warehouse-sink';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import type { ChangeEvent, PartitionBatch, Row } from '../../functions/core/types';
import { verifyAuditLog } from '../../tools/lib/audit-verify';
import { deleteKeysWithPrefix } from '../../tools/lib/redis-keys';
import { downloadChangeLog, openWarehouse } from '../../tools/lib/warehouse';
import type { RunContext, RunResult } from '../../tools/local/runner/run';
import { runLocal } from '../../tools/local/runner/run';
import { AUDIT_PREFIX, WAREHOUSE_PREFIX } from '../../tools/local/runner/system';
import { LOCAL_NAMES } from '../../tools/local/services';
import { main } from '../../tools/rebuild';
import { AuditLogReader, BrokenChainError } from '../../tools/rebuild/audit';
import { repairTable } from '../../tools/rebuild/cache';
import { dynamoCheckpoints, partitionKey } from '../../tools/rebuild/checkpoints';
import { type RebuildSummary, rebuild } from '../../tools/rebuild/rebuild';
import { pgMessage, recordOf } from '../support/builders';
import { useLocalServices } from '../support/local';
import { throwawayDir } from '../support/scratch';
import { smallRun } from './support';

const RUN_TIMEOUT = 120_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every audited change of the run, by table (read with the verifier the run uses, not the rebuild's reader). */
async function auditedChanges(s3: S3Client): Promise<ChangeEvent[]> {
  const events: ChangeEvent[] = [];
  const report = await verifyAuditLog(s3, LOCAL_NAMES.auditBucket, AUDIT_PREFIX, (_chain, chain) =>
    events.push(...chain),
  );
  if (!report.ok) throw new Error('the audit log does not verify');
  const seen = new Set<string>();
  return events.filter((e) => !seen.has(e.id) && seen.add(e.id));
}

/**
 * A table's rows at `asOf`, by plain replay: its changes committed by then, in source order, each applied in turn
 * (a full image replaces the row, a TOAST merge keeps the columns it left out, a delete removes it, a truncate all).
 */
function replayedState(events: readonly ChangeEvent[], table: string, asOf: number): Map<string, Row> {
  const rows = new Map<string, Row>();
  const mine = events
    .filter((e) => `${e.source.name}.${e.source.schema}.${e.source.table}` === table)
    .filter((e) => (e.source.commitTs ?? Number.POSITIVE_INFINITY) <= asOf)
    .sort((a, b) => (a.source.order < b.source.order ? -1 : a.source.order > b.source.order ? 1 : 0));
  for (const e of mine) {
    if (e.op === 't') rows.clear();
    if (e.key === null) continue;
    const key = JSON.stringify(e.key);
    if (e.op === 'd') rows.delete(key);
    else if (e.op !== 't') {
      const kept = Object.fromEntries(e.unchanged.map((c) => [c, rows.get(key)?.[c]]));
      rows.set(key, { ...(e.unchanged.length > 0 ? kept : {}), ...e.after });
    }
  }
  return rows;
}

/** The rows a cache key space holds for a table, each field parsed back from its JSON, by row key. */
async function cachedRows(redis: Redis, prefix: string, table: string): Promise<Row[]> {
  const hashes: string[] = [];
  let cursor = '0';
  do {
    // Row hashes end with the closing brace of their key; versions (`…}:v`) do not match.
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:${table}:{*}`, 'COUNT', 1000);
    cursor = next;
    hashes.push(...keys);
  } while (cursor !== '0');
  const rows: Row[] = [];
  for (const hash of hashes) {
    const fields = await redis.hgetall(hash);
    rows.push(Object.fromEntries(Object.entries(fields).map(([f, v]) => [f, JSON.parse(v)])));
  }
  return rows;
}

/** Rows as comparable text, in a stable order. */
function texts(rows: Iterable<Row>): string[] {
  return [...rows]
    .map((r) => JSON.stringify(Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : 1)))))
    .sort();
}

describe('rebuilding lost sinks during a run', () => {
  const asOfTables = ['pg.public.customers', 'pg.public.products', 'pg.public.orders'];
  let result: RunResult;
  let cacheRebuild: RebuildSummary;
  let warehouseRebuild: RebuildSummary;
  let asOf = 0;
  let asOfOutput: { code: number; out: string; err: string };
  const expected = new Map<string, string[]>();
  const actual = new Map<string, string[]>();
  const finalRows = new Map<string, string[]>();
  let redisUrl = '';
  let cachePrefix = '';
  let asOfPrefix = '';
  let deletedFiles = 0;
  /** Changes the workload committed while each rebuild ran. */
  const during = { cache: 0, warehouse: 0 };

  beforeAll(async () => {
    const runFile = `${throwawayDir('rebuild-')}/run.json`;
    const options = { ...smallRun({ durationMs: 8000 }), runFile };
    const whileRunning = async (context: RunContext) => {
      const { services } = context;
      cachePrefix = context.cachePrefix;
      redisUrl = services.redisUrl ?? '';
      const s3 = services.clients.s3;
      const checkpoints = dynamoCheckpoints(services.clients.dynamodb, LOCAL_NAMES.dedupeTable);
      await sleep(1000);
      asOf = Date.now();
      await sleep(300);
      // One table's change log is deleted; the lane goes on appending to it before and during the rebuild.
      const prefix = `${WAREHOUSE_PREFIX}table=pg.public.orders/`;
      const listed = await s3.send(new ListObjectsCommand({ Bucket: LOCAL_NAMES.warehouseBucket, Prefix: prefix }));
      const keys = (listed.Contents ?? []).map((o) => ({ Key: o.Key as string }));
      deletedFiles = keys.length;
      await s3.send(new DeleteObjectsCommand({ Bucket: LOCAL_NAMES.warehouseBucket, Delete: { Objects: keys } }));
      await sleep(300);
      let before = context.workloadChanges();
      warehouseRebuild = await rebuild({
        sink: 'warehouse',
        tables: ['orders'],
        s3,
        audit: { bucket: LOCAL_NAMES.auditBucket, prefix: AUDIT_PREFIX },
        warehouse: { bucket: LOCAL_NAMES.warehouseBucket, prefix: WAREHOUSE_PREFIX },
        checkpoints,
      });
      during.warehouse = context.workloadChanges() - before;
      // The cache is lost (every key of the run, versions and truncate marks included) and rebuilt, lane running.
      await deleteKeysWithPrefix(redisUrl, cachePrefix);
      await sleep(300);
      const redis = new Redis(redisUrl);
      before = context.workloadChanges();
      try {
        cacheRebuild = await rebuild({
          sink: 'cache',
          s3,
          audit: { bucket: LOCAL_NAMES.auditBucket, prefix: AUDIT_PREFIX },
          cache: { redis, prefix: cachePrefix },
          checkpoints,
        });
      } finally {
        redis.disconnect();
      }
      during.cache = context.workloadChanges() - before;
    };
    const beforeVerify = async ({ services }: RunContext) => {
      // The state in the middle of the run, through the command as a user runs it (the run file says where).
      const out: string[] = [];
      const err: string[] = [];
      const time = new Date(asOf).toISOString();
      const code = await main(['cache', '--tables', 'customers,products,orders', '--as-of', time, '--json'], {
        out: (t) => void out.push(t),
        err: (t) => void err.push(t),
        runFile,
      });
      asOfOutput = { code, out: out.join(''), err: err.join('') };
      const summary = JSON.parse(asOfOutput.out) as RebuildSummary & { target: string };
      asOfPrefix = summary.target;
      const events = await auditedChanges(services.clients.s3);
      const redis = new Redis(redisUrl);
      try {
        for (const table of asOfTables) {
          expected.set(table, texts(replayedState(events, table, asOf).values()));
          finalRows.set(table, texts(replayedState(events, table, Number.POSITIVE_INFINITY).values()));
          actual.set(table, texts(await cachedRows(redis, asOfPrefix, table)));
        }
      } finally {
        redis.disconnect();
      }
    };
    result = await runLocal(options, { whileRunning, beforeVerify });
  }, RUN_TIMEOUT);

  afterAll(async () => {
    if (asOfPrefix) await deleteKeysWithPrefix(redisUrl, asOfPrefix);
  });

  it('the cache, flushed mid-run and rebuilt while the lane kept writing, ends equal to the source', () => {
    const { cache } = result.checks;
    if (!cache.checked) throw new Error(`the cache was not checked: ${cache.reason}`);
    expect(cache.consistent, JSON.stringify(cache.problems)).toBe(true);
    const orders = cacheRebuild.tables['pg.public.orders'];
    expect(orders?.changes).toBeGreaterThan(0);
    expect(orders?.applied).toBeGreaterThan(0);
    expect(cacheRebuild).toMatchObject({ sink: 'cache', asOf: null });
    expect(during.cache, 'the workload went on during the rebuild').toBeGreaterThan(0);
  });

  it("one table's change log, deleted mid-run and rebuilt while the lane kept appending, ends equal to the source, each change once", () => {
    const { warehouse } = result.checks;
    if (!warehouse.checked) throw new Error(`the warehouse was not checked: ${warehouse.reason}`);
    expect(deletedFiles).toBeGreaterThan(0);
    expect(warehouse.consistent, JSON.stringify(warehouse.problems)).toBe(true);
    expect(warehouse.duplicateIds).toBe(0);
    expect(Object.keys(warehouseRebuild.tables)).toEqual(['pg.public.orders']);
    expect(warehouseRebuild.tables['pg.public.orders']?.applied).toBeGreaterThan(0);
    expect(during.warehouse, 'the workload went on during the rebuild').toBeGreaterThan(0);
  });

  it('--as-of a time in the middle of the run holds exactly each table’s state at that time, beside the live cache', () => {
    expect(asOfOutput.code, asOfOutput.err).toBe(0);
    expect(asOfPrefix).toBe(`${cachePrefix}-asof-${new Date(asOf).toISOString()}`);
    for (const table of asOfTables) {
      expect(actual.get(table)?.length, table).toBeGreaterThan(0);
      expect(actual.get(table), table).toEqual(expected.get(table));
    }
    // In the middle: the workload changed the tables after that time, so the state then is not the final one.
    const differs = asOfTables.some((t) => JSON.stringify(expected.get(t)) !== JSON.stringify(finalRows.get(t)));
    expect(differs).toBe(true);
  });
});

describe('rebuild against the local services', () => {
  const services = useLocalServices();
  const PLACEHOLDER = '__debezium_unavailable_value';
  const redisPrefixes: string[] = [];

  afterAll(async () => {
    const url = services().redisUrl;
    if (url) for (const prefix of redisPrefixes) await deleteKeysWithPrefix(url, prefix);
  });

  /** A decoded change of `pg.public.<table>` at LSN `lsn` (committed at a time that grows with it), Kafka offset `offset`. */
  function change(table: string, op: 'c' | 'u' | 'd', row: Row, lsn: number, offset: number): ChangeEvent {
    const spec = { table, op, lsn, offset, ...(op === 'd' ? { before: row } : { after: row }) };
    const outcome = new JsonDebeziumDecoder().decode(recordOf(pgMessage(spec)), 1);
    if (outcome.kind !== 'event') throw new Error('not an event');
    return outcome.event;
  }

  function partitionOf(table: string): PartitionBatch {
    return { id: `pg.public.${table}-0`, topic: `pg.public.${table}`, partition: 0, records: [] };
  }

  /** What the audit lane writes: the batches, in turn, on one chain. */
  async function audit(prefix: string, table: string, batches: ChangeEvent[][]): Promise<void> {
    const sink = new S3AuditSink(services().clients.s3, { bucket: LOCAL_NAMES.auditBucket, prefix });
    let state: unknown;
    for (const events of batches) {
      const result = await sink.write({ partition: partitionOf(table), events, columns: [], state });
      if (!result.ok) throw new Error('audit write failed');
      state = result.state;
    }
  }

  function redis(): Redis {
    const url = services().redisUrl;
    if (!url) throw new Error('these tests need Redis');
    return new Redis(url);
  }

  it('refuses to rebuild from a broken chain of the table, naming it; a broken chain of another table is no obstacle', async () => {
    // Arrange: orders and customers audited on a chain each; an entry of each changed afterwards
    const prefix = `broken-${Date.now()}/`;
    await audit(prefix, 'orders', [
      [change('orders', 'c', { id: 1 }, 10, 0)],
      [change('orders', 'c', { id: 2 }, 20, 1)],
    ]);
    await audit(prefix, 'customers', [[change('customers', 'c', { id: 1 }, 15, 0)]]);
    const s3 = services().clients.s3;
    const listed = await s3.send(new ListObjectsCommand({ Bucket: LOCAL_NAMES.auditBucket, Prefix: prefix }));
    const tamper = async (table: string) => {
      const key = (listed.Contents ?? [])
        .map((o) => o.Key as string)
        .find((k) => k.includes(`pg.public.${table}/`)) as string;
      const object = await s3.send(new GetObjectCommand({ Bucket: LOCAL_NAMES.auditBucket, Key: key }));
      const text = gunzipSync(
        await (object.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
      ).toString('utf8');
      const body = gzipSync(text.replace('"id":1}', '"id":7}'));
      await s3.send(new PutObjectCommand({ Bucket: LOCAL_NAMES.auditBucket, Key: key, Body: body }));
      return key;
    };
    const ordersObject = await tamper('orders');
    await tamper('customers');
    const cachePrefix = `rebuild-broken-${Date.now()}`;
    redisPrefixes.push(cachePrefix);
    const client = redis();
    const options = {
      s3,
      audit: { bucket: LOCAL_NAMES.auditBucket, prefix },
      cache: { redis: client, prefix: cachePrefix },
    };

    try {
      // Act
      const refused = rebuild({ ...options, sink: 'cache', tables: ['orders'] });
      // Assert: refused, naming the chain and the object; nothing written
      await expect(refused).rejects.toBeInstanceOf(BrokenChainError);
      await expect(refused).rejects.toThrow(/pg\.public\.orders\/0\/\d+ \(entry 0 was changed/);
      await expect(refused).rejects.toThrow(ordersObject);
      expect(await client.keys(`${cachePrefix}:*`)).toEqual([]);
      // Act + Assert: customers' broken chain holds no orders
      await expect(rebuild({ ...options, sink: 'cache', tables: ['customers'] })).rejects.toThrow(
        /pg\.public\.customers\/0\//,
      );
    } finally {
      client.disconnect();
    }
  });

  it('repairs a row the lane changed while it was lost: a TOAST merge that kept columns the lost row no longer had', async () => {
    // Arrange: a product created with a long description, then renamed twice without it (unchanged TOAST), all
    // audited; the cache lost, and the lane applied the last rename to the empty row before the rebuild came
    const prefix = `toast-${Date.now()}/`;
    const created = change('products', 'c', { id: 1, name: 'a', description: 'long text' }, 10, 0);
    const renamed = change('products', 'u', { id: 1, name: 'b', description: PLACEHOLDER }, 20, 1);
    const renamedAgain = change('products', 'u', { id: 1, name: 'c', description: PLACEHOLDER }, 30, 2);
    expect(renamedAgain.unchanged).toEqual(['description']);
    await audit(prefix, 'products', [[created, renamed], [renamedAgain]]);
    const cachePrefix = `rebuild-toast-${Date.now()}`;
    redisPrefixes.push(cachePrefix);
    const client = redis();
    const lane = new RedisCacheSink(client, { prefix: cachePrefix, tombstoneTtlSeconds: 60 });
    const laneWrite = await lane.write({
      partition: partitionOf('products'),
      events: [renamedAgain],
      columns: [],
      state: undefined,
    });
    expect(laneWrite.ok).toBe(true);
    const row = lane.rowKey('pg.public.products', { id: 1 });
    expect(await client.hgetall(row)).toEqual({ id: '1', name: '"c"' });

    try {
      // Act
      const summary = await rebuild({
        sink: 'cache',
        s3: services().clients.s3,
        audit: { bucket: LOCAL_NAMES.auditBucket, prefix },
        cache: { redis: client, prefix: cachePrefix },
        repairPauseMs: 0,
      });

      // Assert: every replayed change was refused (the row held the newest), and the row was repaired
      expect(summary.tables['pg.public.products']).toMatchObject({
        changes: 3,
        applied: 0,
        refusedOlder: 3,
        repaired: 1,
      });
      expect(await client.hgetall(row)).toEqual({ id: '1', name: '"c"', description: '"long text"' });
      expect(await client.get(`${row}:v`)).toBe(renamedAgain.source.order);
    } finally {
      client.disconnect();
    }
  });

  it('restores exactly the lost changes the warehouse lane will not write again, once however often it runs; --as-of writes those committed by then beside the log', async () => {
    // Arrange: ten changes audited; the lane wrote the first eight in two files and committed offset 7 (the audit lane
    // offset 9); the first file is lost
    const s3 = services().clients.s3;
    const stamp = Date.now();
    const auditPrefix = `wh-audit-${stamp}/`;
    const where = { bucket: LOCAL_NAMES.warehouseBucket, prefix: `wh-${stamp}/` };
    const changes = Array.from({ length: 10 }, (_, i) =>
      change('orders', i < 5 ? 'c' : 'u', { id: i % 5, n: i }, 100 + i, i),
    );
    await audit(auditPrefix, 'orders', [changes]);
    const lane = new S3WarehouseSink(s3, where);
    for (const events of [changes.slice(0, 4), changes.slice(4, 8)]) {
      const written = await lane.write({ partition: partitionOf('orders'), events, columns: [], state: undefined });
      expect(written.ok).toBe(true);
    }
    const store = new DynamoDedupeStore(services().clients.dynamodb, {
      tableName: LOCAL_NAMES.dedupeTable,
      ttlDays: 1,
    });
    const commit = (lane: 'warehouse' | 'audit', offset: number) =>
      store.commit(lane, [
        { partition: partitionOf('orders'), previous: undefined, next: { offset, hw: '', hwIds: [], version: 1 } },
      ]);
    await commit('warehouse', 7);
    await commit('audit', 9);
    const first = lane.objectKey({ table: 'pg.public.orders', date: '2024-03-15' }, changes[0] as ChangeEvent);
    const listed = await s3.send(new ListObjectsCommand({ Bucket: where.bucket, Prefix: where.prefix }));
    expect((listed.Contents ?? []).map((o) => o.Key)).toContain(first);
    await s3.send(new DeleteObjectsCommand({ Bucket: where.bucket, Delete: { Objects: [{ Key: first }] } }));
    const options = {
      sink: 'warehouse' as const,
      s3,
      audit: { bucket: LOCAL_NAMES.auditBucket, prefix: auditPrefix },
      warehouse: where,
      checkpoints: dynamoCheckpoints(services().clients.dynamodb, LOCAL_NAMES.dedupeTable),
    };

    // Act
    const restored = await rebuild(options);
    const again = await rebuild(options);

    // Assert: 0–3 restored, 4–7 were there, 8–9 left to the lane; the second run writes nothing
    expect(restored.tables['pg.public.orders']).toMatchObject({
      changes: 10,
      applied: 4,
      present: 4,
      pendingInLane: 2,
    });
    expect(again.tables['pg.public.orders']).toMatchObject({ applied: 0, present: 8, pendingInLane: 2 });
    const counts = await idCounts(s3, where);
    expect([...counts.keys()].sort()).toEqual(
      changes
        .slice(0, 8)
        .map((c) => c.id)
        .sort(),
    );
    expect([...counts.values()].every((n) => n === 1)).toBe(true);

    // Act: as of the commit of offset 5
    const asOf = changes[5]?.source.commitTs as number;
    const past = await rebuild({ ...options, asOf });

    // Assert: offsets 0–5 in their own prefix, the live log untouched
    expect(past.target).toBe(`s3://${where.bucket}/asof=${new Date(asOf).toISOString()}/${where.prefix}`);
    const asOfCounts = await idCounts(s3, {
      bucket: where.bucket,
      prefix: `asof=${new Date(asOf).toISOString()}/${where.prefix}`,
    });
    expect([...asOfCounts.keys()].sort()).toEqual(
      changes
        .slice(0, 6)
        .map((c) => c.id)
        .sort(),
    );
    expect((await idCounts(s3, where)).size).toBe(8);
  });

  it('a change the cache lane wrote just before the loss and committed after the rebuild read it comes back in a repair round', async () => {
    // Arrange: the audited changes of three rows (a create and rename, a create, a create and delete); the cache (lost)
    // holds the first row at its create only and the others not at all: the lane's writes of the newer changes went
    // with it
    const created = change('customers', 'c', { id: 1, name: 'a' }, 10, 0);
    const renamed = change('customers', 'u', { id: 1, name: 'b' }, 20, 1);
    const other = change('customers', 'c', { id: 2, name: 'x' }, 30, 2);
    const gone = change('customers', 'c', { id: 3, name: 'y' }, 40, 3);
    const deleted = change('customers', 'd', { id: 3 }, 50, 4);
    const cachePrefix = `rebuild-behind-${Date.now()}`;
    redisPrefixes.push(cachePrefix);
    const client = redis();
    const sink = new RedisCacheSink(client, { prefix: cachePrefix, tombstoneTtlSeconds: 60 });
    await sink.write({ partition: partitionOf('customers'), events: [created], columns: [], state: undefined });

    try {
      // Act
      const round = await repairTable(sink, client, 'pg.public.customers', [created, renamed, other, gone, deleted]);

      // Assert: both rows replayed to their newest audited change; the deleted row stays away
      expect(round.behind).toBe(2);
      expect(await client.hgetall(sink.rowKey('pg.public.customers', { id: 1 }))).toEqual({ id: '1', name: '"b"' });
      expect(await client.hgetall(sink.rowKey('pg.public.customers', { id: 2 }))).toEqual({ id: '2', name: '"x"' });
      expect(await client.hgetall(sink.rowKey('pg.public.customers', { id: 3 }))).toEqual({});
      // Caught up: a second round finds nothing behind
      expect((await repairTable(sink, client, 'pg.public.customers', [created, renamed, other])).behind).toBe(0);
    } finally {
      client.disconnect();
    }
  });

  it('repairs a row whose version survived the loss and whose hash did not (a flush racing the lane, an eviction)', async () => {
    // Arrange: a row written by the lane; then its hash is lost but not its version
    const created = change('customers', 'c', { id: 7, name: 'kept' }, 10, 0);
    const cachePrefix = `rebuild-hollow-${Date.now()}`;
    redisPrefixes.push(cachePrefix);
    const client = redis();
    const sink = new RedisCacheSink(client, { prefix: cachePrefix, tombstoneTtlSeconds: 60 });
    await sink.write({ partition: partitionOf('customers'), events: [created], columns: [], state: undefined });
    const row = sink.rowKey('pg.public.customers', { id: 7 });
    await client.del(row);

    try {
      // Act
      const round = await repairTable(sink, client, 'pg.public.customers', [created]);

      // Assert
      expect(round.repaired).toBe(1);
      expect(await client.hgetall(row)).toEqual({ id: '7', name: '"kept"' });
    } finally {
      client.disconnect();
    }
  });

  it('reads a chain again when the audit lane rewrote its last object (a replay after a failed checkpoint commit)', async () => {
    // Arrange: a chain of two objects, read once; then the lane replays its second batch with one more change, which
    // rewrites the same key with a longer stretch of the same chain
    const prefix = `reread-${Date.now()}/`;
    const changes = Array.from({ length: 3 }, (_, i) => change('orders', 'c', { id: i }, 300 + i, i));
    const sink = new S3AuditSink(services().clients.s3, { bucket: LOCAL_NAMES.auditBucket, prefix });
    const first = await sink.write({
      partition: partitionOf('orders'),
      events: [changes[0] as ChangeEvent],
      columns: [],
      state: undefined,
    });
    if (!first.ok) throw new Error('audit write failed');
    await sink.write({
      partition: partitionOf('orders'),
      events: [changes[1] as ChangeEvent],
      columns: [],
      state: first.state,
    });
    const reader = new AuditLogReader(services().clients.s3, { bucket: LOCAL_NAMES.auditBucket, prefix });
    expect((await reader.read(() => true)).tables.get('pg.public.orders')).toHaveLength(2);

    // Act
    await sink.write({ partition: partitionOf('orders'), events: changes.slice(1), columns: [], state: first.state });
    const again = await reader.read(() => true);

    // Assert
    expect(
      again.tables
        .get('pg.public.orders')
        ?.map((c) => c.event.id)
        .sort(),
    ).toEqual(changes.map((c) => c.id).sort());
  });

  it('restores in a further pass the changes the warehouse lane committed after the first pass read its offsets', async () => {
    // Arrange: six changes audited; the lane wrote them all, but its file of offsets 4–5 was lost before it committed
    // them: the first pass reads offset 3 committed, the lane commits 5 right after
    const s3 = services().clients.s3;
    const stamp = Date.now();
    const auditPrefix = `wh2-audit-${stamp}/`;
    const where = { bucket: LOCAL_NAMES.warehouseBucket, prefix: `wh2-${stamp}/` };
    const changes = Array.from({ length: 6 }, (_, i) => change('orders', 'c', { id: i }, 200 + i, i));
    await audit(auditPrefix, 'orders', [changes]);
    const lane = new S3WarehouseSink(s3, where);
    await lane.write({ partition: partitionOf('orders'), events: changes.slice(0, 4), columns: [], state: undefined });
    const key = partitionKey('pg.public.orders', 0);
    let reads = 0;
    const checkpoints = {
      async offsets(which: string) {
        if (which === 'audit') return new Map([[key, 5]]);
        reads++;
        return new Map([[key, reads === 1 ? 3 : 5]]);
      },
    };

    // Act
    const summary = await rebuild({
      sink: 'warehouse',
      s3,
      audit: { bucket: LOCAL_NAMES.auditBucket, prefix: auditPrefix },
      warehouse: where,
      checkpoints,
    });

    // Assert: offsets 4–5 restored by the second pass, each change once
    expect(summary.tables['pg.public.orders']).toMatchObject({ applied: 2, pendingInLane: 0 });
    const counts = await idCounts(s3, where);
    expect([...counts.keys()].sort()).toEqual(changes.map((c) => c.id).sort());
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
  });
});

/** How often each change id is in a change log. */
async function idCounts(s3: S3Client, where: { bucket: string; prefix: string }): Promise<Map<string, number>> {
  const dir = throwawayDir('rebuild-log-');
  await downloadChangeLog(s3, where.bucket, where.prefix, dir);
  const warehouse = await openWarehouse(dir);
  try {
    const rows = await warehouse.query(
      `SELECT _cdc_id AS id, count(*) AS n FROM read_parquet('${dir}/**/*.parquet', union_by_name = true) GROUP BY 1`,
    );
    return new Map(rows.map((r) => [String(r.id), Number(r.n)]));
  } finally {
    warehouse.close();
  }
}
