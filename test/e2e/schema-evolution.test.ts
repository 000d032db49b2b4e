/**
 * Schema evolution end to end: DDL on captured tables while the demo workload's DML goes on, and every sink ends
 * equal to the source in its current shape. PostgreSQL's logical decoding carries no DDL and re-emits no untouched
 * row, so what the stream cannot reconcile (a column with a default, a drop, a rename, a retype, a new table) must
 * be reconciled by an incremental snapshot the lanes ask for; an additive nullable column needs none.
 *
 * One run carries every DDL class (one table each, so each has its own schema change and snapshot), to keep the
 * suite's time down; the capture restart and the read/update race share a second run.
 */
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { RedisCacheSink } from '../../functions/adapters/redis-cache-sink';
import type { RunContext } from '../../tools/local/runner/run';
import { runLocal } from '../../tools/local/runner/run';
import { smallRun, sql } from './support';

const RUN_TIMEOUT = 240_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `check` holds (the capture or a lane got somewhere), or fails after `timeoutMs`. */
async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('schema changes during a run', () => {
  it(
    'DROP, RENAME, ALTER TYPE (wider int, numeric scale), ADD COLUMN with a default, CREATE and DROP TABLE, under DML: consistent',
    async () => {
      // Arrange: the workload (DML on every demo table, and its own ADD COLUMN tier … DEFAULT on customers at a
      // third of the time) runs for 9 s; the DDL below runs beside it, on tables the workload keeps changing
      const options = smallRun({ durationMs: 9000 });
      const ddl = async ({ connectionString: url }: RunContext) => {
        await sleep(1000);
        await sql(url, 'ALTER TABLE public.products DROP COLUMN tags');
        await sql(url, 'ALTER TABLE public.orders RENAME COLUMN order_date TO ordered_on');
        await sql(url, 'ALTER TABLE public.order_items ALTER COLUMN quantity TYPE bigint');
        await sleep(1000);
        await sql(url, 'ALTER TABLE public.products ALTER COLUMN price TYPE numeric(12,3)');
        // Additive and nullable on the keyless table: every old row reads null there, as the sinks do.
        await sql(url, 'ALTER TABLE public.page_views ADD COLUMN device text');
        await sql(url, "INSERT INTO public.page_views (path, device) VALUES ('/ddl', 'phone')");
        // A new table, captured from its first row, changed further; and one created and dropped again.
        await sql(url, 'CREATE TABLE public.coupons (id serial PRIMARY KEY, code text NOT NULL, percent int)');
        await sql(url, "INSERT INTO public.coupons (code, percent) SELECT 'C' || g, g FROM generate_series(1, 25) g");
        await sql(url, 'CREATE TABLE public.scratch (id int PRIMARY KEY, note text)');
        await sql(url, "INSERT INTO public.scratch VALUES (1, 'soon gone')");
        await sleep(500);
        await sql(url, 'UPDATE public.coupons SET percent = percent + 1 WHERE id <= 5');
        await sql(url, 'DROP TABLE public.scratch');
      };

      // Act
      const result = await runLocal(options, { whileRunning: ddl });

      // Assert: consistent, every table compared in its current shape (the new one included)
      const { warehouse, cache } = result.checks;
      if (!warehouse.checked || !cache.checked) throw new Error('warehouse and cache must have been checked');
      const why = JSON.stringify({ w: warehouse.problems, c: cache.problems, a: result.checks.audit });
      expect(result.consistent, why).toBe(true);
      expect(Object.values(warehouse.tables).every((t) => t.different + t.missing + t.extra === 0)).toBe(true);
      expect(Object.values(cache.tables).every((t) => t.different + t.missing + t.extra === 0)).toBe(true);
      expect(warehouse.tables['pg.public.coupons']).toMatchObject({ kind: 'keyed', sourceRows: 25, different: 0 });
      expect(cache.tables['pg.public.coupons']).toMatchObject({ kind: 'keyed', sourceRows: 25, different: 0 });
      expect(warehouse.tables['pg.public.scratch']?.kind).toBe('dropped');
      expect(result.details.droppedTables).toEqual(['pg.public.scratch']);
      expect(result.details.addedTables).toEqual(expect.arrayContaining(['public.coupons', 'public.scratch']));

      // Assert: each change was seen in the stream, with what changed
      const change = (table: string) => result.schemaChanges.filter((c) => c.table === `pg.public.${table}`);
      expect(change('customers').some((c) => c.added.includes('tier'))).toBe(true);
      expect(change('products').some((c) => c.removed.includes('tags'))).toBe(true);
      expect(change('products').some((c) => c.changed.includes('price'))).toBe(true);
      expect(change('orders').some((c) => c.removed.includes('order_date') && c.added.includes('ordered_on'))).toBe(
        true,
      );
      expect(change('order_items').some((c) => c.changed.includes('quantity'))).toBe(true);
      expect(change('page_views').some((c) => c.added.includes('device'))).toBe(true);

      // Assert: a completed snapshot re-read each table the stream could not reconcile; none for the nullable column
      const reread = new Set(
        result.incrementalSnapshots.filter((s) => s.status === 'completed').flatMap((s) => Object.keys(s.tables)),
      );
      for (const table of ['customers', 'products', 'orders', 'order_items', 'coupons']) {
        expect(reread.has(`public.${table}`), table).toBe(true);
      }
      expect(result.incrementalSnapshots.some((s) => 'public.page_views' in s.tables)).toBe(false);
      expect(result.incrementalSnapshots.every((s) => s.status === 'completed')).toBe(true);
    },
    RUN_TIMEOUT,
  );

  it(
    'a capture crash in the middle of an incremental snapshot resumes it, and a row updated inside a chunk window keeps the update',
    async () => {
      // Arrange: small chunks, so the snapshot of orders takes several windows; the first window of customers sees
      // an update of a row it has just read (committed before the window closes: the streamed update must win)
      const options = smallRun({ durationMs: 6000, seedRows: 300, incrementalChunkSize: 40, schemaChange: false });
      let raced = false;
      let racingUrl = '';
      let pipeline: RunContext['pipeline'] | undefined;
      let ordersChunks = 0;
      let restarted: Promise<void> | undefined;
      const beforeHighWatermark = async (chunk: { table: string }) => {
        if (chunk.table === 'public.customers' && !raced) {
          raced = true;
          // full_name: a column the workload never writes, so the final value is this update's
          await sql(racingUrl, "UPDATE public.customers SET full_name = 'updated-in-window' WHERE id = 1");
        }
        // The third window of orders never closes: the capture crashes there (connections dropped, nothing more
        // saved), and the new one resumes the snapshot from the saved offset.
        if (chunk.table === 'public.orders' && !restarted && ++ordersChunks === 3) {
          restarted = (pipeline as RunContext['pipeline']).restartCapture({ crash: true });
          await new Promise(() => undefined);
        }
      };
      const drive = async (context: RunContext) => {
        racingUrl = context.connectionString;
        pipeline = context.pipeline;
        context.pipeline.signal({
          id: 'race',
          type: 'execute-snapshot',
          data: { 'data-collections': ['public.customers'], type: 'incremental' },
        });
        await until('the customers snapshot', () => context.pipeline.snapshots.get('race')?.status === 'completed');
        context.pipeline.signal({
          id: 'resume',
          type: 'execute-snapshot',
          data: { 'data-collections': ['public.orders'], type: 'incremental' },
        });
        await until('the crash', () => restarted !== undefined);
        await restarted;
      };
      let cached: string | null = null;
      const beforeVerify = async ({ services, cachePrefix }: RunContext) => {
        const redis = new Redis(services.redisUrl ?? '');
        try {
          const key = new RedisCacheSink(redis, { prefix: cachePrefix, tombstoneTtlSeconds: 1 }).rowKey(
            'pg.public.customers',
            { id: 1 },
          );
          cached = await redis.hget(key, 'full_name');
        } finally {
          redis.disconnect();
        }
      };

      // Act
      const result = await runLocal(options, { whileRunning: drive, beforeHighWatermark, beforeVerify });

      // Assert: both snapshots completed, the second across the crash, and every sink equals the source
      expect(raced).toBe(true);
      expect(ordersChunks).toBe(3);
      expect(result.details.captureRestarts).toBe(1);
      const byId = Object.fromEntries(result.incrementalSnapshots.map((s) => [s.id, s]));
      expect(byId.race?.status).toBe('completed');
      expect(byId.resume?.status).toBe('completed');
      // The source holds the update, and verification found every sink equal to it: the read did not overwrite it.
      expect(result.consistent).toBe(true);
      expect(cached).toBe(JSON.stringify('updated-in-window'));
    },
    RUN_TIMEOUT,
  );
});
