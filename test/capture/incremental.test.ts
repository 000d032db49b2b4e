import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CapturedRecord,
  JsonFileOffsetStore,
  type SnapshotNotification,
  startPostgresCapture,
} from '../../tools/local/capture';
import {
  captureSchema,
  changes,
  dropSlot,
  jsonAt,
  type Parsed,
  startCollecting,
  unique,
  usePostgres,
  waitFor,
} from './helpers';

const { db, sql } = usePostgres();
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'capture-incremental-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function newSchema(rows: number): Promise<string> {
  const schema = unique('incr');
  await sql().query(`CREATE SCHEMA ${schema};
    CREATE TABLE ${schema}.orders (id integer PRIMARY KEY, status text NOT NULL, total numeric(10,2));
    INSERT INTO ${schema}.orders SELECT g, CASE WHEN g % 2 = 0 THEN 'even' ELSE 'odd' END, g / 100.0
      FROM generate_series(1, ${rows}) g;`);
  return schema;
}

function signal(schema: string, id = 'sig-1', filter?: string) {
  return {
    id,
    type: 'execute-snapshot' as const,
    data: {
      'data-collections': [`${schema}.orders`],
      type: 'incremental' as const,
      ...(filter ? { 'additional-conditions': [{ 'data-collection': `${schema}.orders`, filter }] } : {}),
    },
  };
}

const incrementalReads = (records: CapturedRecord[]): Parsed[] =>
  changes(records, 'orders').filter((e) => e.value.payload.source.snapshot === 'incremental');

const completed = (notes: SnapshotNotification[]) => () => notes.some((n) => n.type === 'COMPLETED');

describe('incremental snapshot', () => {
  it('reads every row once as op r / snapshot incremental, positioned at the high watermark', async () => {
    // Arrange: watermarks as logical decoding messages (no signal table)
    const schema = await newSchema(2500);
    const notes: SnapshotNotification[] = [];
    const run = await captureSchema(db(), sql(), schema, {
      snapshotMode: 'never',
      incrementalChunkSize: 1000,
      onNotification: (n) => {
        notes.push(n);
      },
    });

    // Act
    run.capture.signal(signal(schema));
    await waitFor(() => run.capture.status().incrementalSnapshot !== null);
    const during = run.capture.status().incrementalSnapshot;
    await waitFor(completed(notes), 30_000);
    await sql().query(`UPDATE ${schema}.orders SET status = 'late' WHERE id = 1`);
    await run.capture.flushed();
    const after = run.capture.status();
    await run.stop();

    // Assert
    const reads = incrementalReads(run.records);
    expect(reads.map((e) => e.key.payload.id)).toEqual(Array.from({ length: 2500 }, (_, i) => i + 1));
    for (const e of reads) {
      const p = e.value.payload;
      expect(p.op).toBe('r');
      expect(p.before).toBeNull();
      const [lastCommit, lsn] = JSON.parse(p.source.sequence) as [string | null, string];
      expect(lsn).toBe(jsonAt(e.valueText ?? '', 'payload', 'source', 'lsn'));
      expect(lastCommit === null || BigInt(lastCommit) < BigInt(lsn)).toBe(true);
      expect(Object.keys(e.headers)).not.toContain('__debezium.oldkey');
    }
    expect(reads[1]?.value.payload.after).toMatchObject({ id: 2, status: 'even' });
    // One position per chunk: 3 chunks
    expect(new Set(reads.map((e) => e.value.payload.source.lsn)).size).toBe(3);
    // The reads carry the schema streamed records of the table carry.
    const update = changes(run.records, 'orders').find((e) => e.value.payload.op === 'u');
    expect(jsonAt(reads[0]?.valueText ?? '', 'schema')).toBe(jsonAt(update?.valueText ?? '', 'schema'));
    expect(reads[0]?.keyText?.replace(/"payload":.*/, '')).toBe(update?.keyText?.replace(/"payload":.*/, ''));
    // Notifications
    expect(notes.map((n) => n.type)).toEqual([
      'STARTED',
      'IN_PROGRESS',
      'IN_PROGRESS',
      'IN_PROGRESS',
      'TABLE_SCAN_COMPLETED',
      'COMPLETED',
    ]);
    expect(notes.every((n) => n.id === 'sig-1' && n.aggregate_type === 'Incremental Snapshot')).toBe(true);
    expect(notes[0]?.additional_data).toEqual({ data_collections: `${schema}.orders`, connector_name: 'test' });
    expect(notes[2]?.additional_data).toMatchObject({
      current_collection_in_progress: `${schema}.orders`,
      maximum_key: '2500',
      last_processed_key: '2000',
    });
    expect(notes[4]?.additional_data).toMatchObject({
      scanned_collection: `${schema}.orders`,
      total_rows_scanned: '2500',
      status: 'SUCCEEDED',
    });
    expect(during).toMatchObject({ id: 'sig-1', tables: [`${schema}.orders`], currentTable: `${schema}.orders` });
    expect(after.incrementalSnapshot).toBeNull();
    expect(after.emitted.incrementalRead).toBe(2500);
  });

  it('a row changed between the low and high watermark is not read: the streamed change wins', async () => {
    // Arrange
    const schema = await newSchema(10);
    const notes: SnapshotNotification[] = [];
    const run = await captureSchema(db(), sql(), schema, {
      snapshotMode: 'never',
      onNotification: (n) => {
        notes.push(n);
      },
      beforeHighWatermark: async () => {
        await sql().query(`UPDATE ${schema}.orders SET status = 'changed' WHERE id = 4`);
        await sql().query(`DELETE FROM ${schema}.orders WHERE id = 7`);
      },
    });

    // Act
    run.capture.signal(signal(schema));
    await waitFor(completed(notes));
    await run.capture.flushed();
    await run.stop();

    // Assert
    const events = changes(run.records, 'orders');
    const reads = incrementalReads(run.records);
    expect(reads.map((e) => e.key.payload.id)).toEqual([1, 2, 3, 5, 6, 8, 9, 10]);
    const update = events.find((e) => e.value.payload.op === 'u');
    expect(update?.value.payload.after.status).toBe('changed');
    // The update and delete are streamed before the reads (they precede the high watermark).
    expect(events.map((e) => e.value.payload.op).slice(0, 2)).toEqual(['u', 'd']);
    const updateLsn = BigInt(jsonAt(update?.valueText ?? '', 'payload', 'source', 'lsn'));
    expect(BigInt(jsonAt(reads[0]?.valueText ?? '', 'payload', 'source', 'lsn'))).toBeGreaterThan(updateLsn);
  });

  it('takes signals from the signal table, writes watermarks there, emits none of its rows, applies the filter', async () => {
    // Arrange
    const schema = await newSchema(30);
    const notes: SnapshotNotification[] = [];
    const run = await captureSchema(db(), sql(), schema, {
      snapshotMode: 'never',
      signalTable: `${schema}.debezium_signal`,
      incrementalChunkSize: 4,
      onNotification: (n) => {
        notes.push(n);
      },
    });

    // Act
    await sql().query(`INSERT INTO ${schema}.debezium_signal VALUES ('from-table', 'execute-snapshot', $1)`, [
      JSON.stringify(signal(schema, 'x', "status = 'even' AND id > 10").data),
    ]);
    await waitFor(completed(notes));
    await run.capture.flushed();
    await run.stop();

    // Assert
    const reads = incrementalReads(run.records);
    expect(reads.map((e) => e.key.payload.id)).toEqual([12, 14, 16, 18, 20, 22, 24, 26, 28, 30]);
    expect(run.records.every((r) => !r.topic.endsWith('debezium_signal'))).toBe(true);
    const watermarks = await sql().query(`SELECT type, count(*)::int AS n FROM ${schema}.debezium_signal GROUP BY 1`);
    expect(Object.fromEntries(watermarks.rows.map((r) => [r.type, r.n]))).toEqual({
      'execute-snapshot': 1,
      'snapshot-window-open': 3,
      'snapshot-window-close': 3,
    });
    expect(notes[0]?.id).toBe('from-table');
  });

  it('resumes after a crash from the last chunk produced, reading every row and at most one chunk again', async () => {
    // Arrange
    const schema = await newSchema(1000);
    const slot = unique('slot');
    const publication = unique('pub');
    const offsets = new JsonFileOffsetStore(join(dir, `${schema}.json`));
    const first: CapturedRecord[] = [];
    let chunks = 0;
    let crash: (() => void) | null = null;
    const crashed = new Promise<void>((resolve) => {
      crash = resolve;
    });
    const base = {
      connectionString: db().url,
      topicPrefix: 'test',
      slotName: slot,
      publicationName: publication,
      schemas: [schema],
      snapshotMode: 'never' as const,
      incrementalChunkSize: 100,
      offsetFlushIntervalMs: 20,
      offsets,
    };
    const run1 = await startPostgresCapture({
      ...base,
      produce: async (r) => {
        first.push(...r);
      },
      beforeHighWatermark: async () => {
        chunks++;
        if (chunks < 4) return;
        // Chunk 4 is read but not emitted; wait until chunk 3's reads are saved, then crash.
        await waitFor(async () => (await offsets.load())?.incremental_snapshot_primary_key === '["300"]');
        crash?.();
        await new Promise(() => undefined);
      },
    });

    // Act
    run1.signal(signal(schema, 'resume-me'));
    await crashed;
    await run1.stop({ flush: false });
    const saved = await offsets.load();
    const { capture: run2, records: second, notes } = await startCollecting(base);
    await waitFor(completed(notes), 30_000);
    await run2.flushed();
    await run2.stop();
    await dropSlot(sql(), slot);

    // Assert
    expect(saved).toMatchObject({
      incremental_snapshot_correlation_id: 'resume-me',
      incremental_snapshot_collections: JSON.stringify([{ incremental_snapshot_collections_id: `${schema}.orders` }]),
      incremental_snapshot_primary_key: '["300"]',
      incremental_snapshot_maximum_key: '["1000"]',
    });
    const ids1 = incrementalReads(first).map((e) => e.key.payload.id as number);
    const ids2 = incrementalReads(second).map((e) => e.key.payload.id as number);
    expect(new Set([...ids1, ...ids2]).size).toBe(1000);
    expect(ids2[0]).toBe(301);
    expect(ids1.length + ids2.length).toBeLessThanOrEqual(1000 + 100);
    expect(notes.map((n) => n.type)).not.toContain('STARTED');
    expect((await offsets.load())?.incremental_snapshot_correlation_id).toBeUndefined();
  });

  it('skips a table without a primary key and stops on stop-snapshot', async () => {
    // Arrange
    const schema = await newSchema(50);
    await sql().query(`CREATE TABLE ${schema}.loose (v text); INSERT INTO ${schema}.loose VALUES ('a')`);
    const notes: SnapshotNotification[] = [];
    let stopNow: (() => void) | null = null;
    const run = await captureSchema(db(), sql(), schema, {
      snapshotMode: 'never',
      incrementalChunkSize: 10,
      onNotification: (n) => {
        notes.push(n);
      },
      beforeHighWatermark: async () => stopNow?.(),
    });

    // Act 1: keyless table
    run.capture.signal({
      id: 'loose',
      type: 'execute-snapshot',
      data: { 'data-collections': [`${schema}.loose`], type: 'incremental' },
    });
    await waitFor(completed(notes));
    const looseNotes = notes.splice(0);

    // Act 2: stop after the first chunk is read
    stopNow = () => {
      stopNow = null;
      run.capture.signal({ id: 'stop', type: 'stop-snapshot', data: { type: 'incremental' } });
    };
    run.capture.signal(signal(schema, 'stopped'));
    await waitFor(() => notes.some((n) => n.type === 'ABORTED'));
    await new Promise((r) => setTimeout(r, 200));
    await run.capture.flushed();
    const status = run.capture.status();
    await run.stop();

    // Assert
    expect(looseNotes.map((n) => [n.type, n.additional_data.status])).toEqual([
      ['STARTED', undefined],
      ['TABLE_SCAN_COMPLETED', 'NO_PRIMARY_KEY'],
      ['COMPLETED', undefined],
    ]);
    expect(notes.map((n) => n.type)).toEqual(['STARTED', 'IN_PROGRESS', 'ABORTED']);
    expect(incrementalReads(run.records)).toHaveLength(0);
    expect(status.incrementalSnapshot).toBeNull();
  });
});
