/**
 * Verification after schema changes: the sinks must hold every row in the source's CURRENT shape. A warehouse change
 * log written with different column sets is read by name, a column the source no longer has must be empty in the
 * latest change of every row, the cache hash must have exactly the source's columns, and a dropped table is reported
 * and not compared.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeLogParquet } from '../../functions/adapters/change-log-parquet';
import { RedisCacheSink } from '../../functions/adapters/redis-cache-sink';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import type { ChangeEvent, ColumnTypes, Row } from '../../functions/core/types';
import type { SourceTable } from '../../tools/local/runner/source-rows';
import { compareChangeLog, StreamSummarizer, verifyCache } from '../../tools/local/runner/verify';
import { pgMessage, recordOf } from '../support/builders';
import { throwawayDir } from '../support/scratch';

const TABLE = 'pg.public.customers';
const decoder = new JsonDebeziumDecoder();
let lsn = 100;

function change(op: 'r' | 'u', after: Row): { event: ChangeEvent; columns: ColumnTypes | undefined } {
  lsn += 10;
  const outcome = decoder.decode(recordOf(pgMessage({ op, table: 'customers', after, lsn })), 0);
  if (outcome.kind !== 'event') throw new Error(`not an event: ${outcome.kind}`);
  return { event: outcome.event, columns: outcome.columns };
}

/** One Parquet file of the change log per call, each with the columns its events have. */
async function writeLog(dir: string, files: Array<Array<ReturnType<typeof change>>>): Promise<void> {
  const folder = join(dir, `table=${TABLE}`, 'date=2026-12-02');
  await mkdir(folder, { recursive: true });
  for (const [i, changes] of files.entries()) {
    const bytes = changeLogParquet(
      changes.map((c) => c.event),
      changes.map((c) => c.columns),
    );
    await writeFile(join(folder, `${String(i).padStart(4, '0')}.parquet`), bytes);
  }
}

function source(rows: Row[]): Map<string, SourceTable> {
  return new Map([[TABLE, { id: TABLE, columns: undefined, rows: rows.map((row) => ({ key: { id: row.id }, row })) }]]);
}

describe('verification in the source’s current shape', () => {
  let dir: string;
  beforeAll(() => {
    dir = throwawayDir('verify-shape-');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('warehouse: files of two shapes are read by name; a row last written in the old shape is a mismatch', async () => {
    // Arrange: `nick` renamed to `nickname`; row 1 was re-read in the new shape, row 2 was not
    const logDir = join(dir, 'renamed');
    await writeLog(logDir, [
      [change('r', { id: 1, nick: 'a' }), change('r', { id: 2, nick: 'b' })],
      [change('r', { id: 1, nickname: 'a' })],
    ]);
    const options = { dir: logDir, stream: new StreamSummarizer().summary, tables: [TABLE] };

    // Act
    const stale = await compareChangeLog(
      {
        ...options,
        source: source([
          { id: 1, nickname: 'a' },
          { id: 2, nickname: 'b' },
        ]),
      },
      2,
    );

    // Assert: row 2 misses the new name and still has the old one
    const table = stale.check.tables[TABLE];
    expect(stale.check.consistent).toBe(false);
    expect(table).toMatchObject({ kind: 'keyed', sourceRows: 2, missing: 0, extra: 0, different: 1 });
    expect(table?.samples[0]).toContain('nickname: source "b", sink null');
    expect(table?.samples[0]).toContain('nick: source (no such column), sink "b"');
  });

  it('warehouse: once every row has a change in the new shape, the old column reads empty and it is consistent', async () => {
    // Arrange
    const logDir = join(dir, 'reconciled');
    await writeLog(logDir, [
      [change('r', { id: 1, nick: 'a' }), change('r', { id: 2, nick: 'b' })],
      [change('r', { id: 1, nickname: 'a' }), change('u', { id: 2, nickname: 'b' })],
    ]);

    // Act
    const { check } = await compareChangeLog(
      {
        dir: logDir,
        stream: new StreamSummarizer().summary,
        tables: [TABLE],
        source: source([
          { id: 1, nickname: 'a' },
          { id: 2, nickname: 'b' },
        ]),
      },
      2,
    );

    // Assert
    expect(check.tables[TABLE]).toMatchObject({ different: 0, missing: 0, extra: 0 });
    expect(check.consistent).toBe(true);
  });

  it('a table dropped at the source is reported as dropped and not compared', async () => {
    // Act
    const { check } = await compareChangeLog(
      {
        dir: join(dir, 'renamed'),
        stream: new StreamSummarizer().summary,
        tables: [TABLE],
        source: new Map(),
        dropped: new Set([TABLE]),
      },
      2,
    );

    // Assert
    expect(check.tables[TABLE]?.kind).toBe('dropped');
    expect(check.consistent).toBe(true);
  });

  describe('cache', () => {
    const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { lazyConnect: true });
    const prefix = `verify-shape-${process.pid}`;
    const layout = new RedisCacheSink(redis, { prefix, tombstoneTtlSeconds: 1 });
    const put = async (row: Record<string, unknown>) => {
      const key = layout.rowKey(TABLE, { id: row.id });
      await redis.del(key);
      await redis.hset(key, Object.fromEntries(Object.entries(row).map(([c, v]) => [c, JSON.stringify(v)])));
    };
    /** The cache against a source holding one row, in its current shape `{id, name, tier}`. */
    const checkAgainstSource = () =>
      verifyCache({
        redis,
        prefix,
        source: source([{ id: 1, name: 'a', tier: null }]),
        stream: new StreamSummarizer().summary,
        tables: [TABLE],
      });
    beforeAll(async () => {
      await redis.connect();
    });
    afterAll(async () => {
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    });

    it.each([
      ['a dropped column lingering in the hash', { id: 1, name: 'a', tier: null, legacy: 'x' }, 'legacy'],
      ['a column missing from the hash, even when the source value is null', { id: 1, name: 'a' }, 'tier'],
    ])('%s is a mismatch', async (_case, hash, column) => {
      // Arrange
      await put(hash);

      // Act
      const check = await checkAgainstSource();

      // Assert
      expect(check.consistent).toBe(false);
      expect(check.tables[TABLE]).toMatchObject({ different: 1 });
      expect(check.tables[TABLE]?.samples[0]).toContain(`${column}:`);
    });

    it('a hash with exactly the source’s columns is consistent', async () => {
      // Arrange
      await put({ id: 1, name: 'a', tier: null });

      // Act
      const check = await checkAgainstSource();

      // Assert
      expect(check.consistent).toBe(true);
    });
  });
});
