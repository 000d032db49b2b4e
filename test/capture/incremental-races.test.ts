/**
 * Incremental snapshots racing DDL and key changes: a new signal for the table being scanned (a DDL hit it), a table
 * dropped or renamed mid-scan, a column renamed between a chunk's shape and its SELECT, a primary-key change of a row
 * inside a window.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { CaptureOptions, SnapshotNotification } from '../../tools/local/capture';
import { captureSchema, changes, type Parsed, replay, type TestCapture, unique, usePostgres, waitFor } from './helpers';

const { db, sql } = usePostgres();
const ROWS = 300;

async function newSchema(...tables: string[]): Promise<string> {
  const schema = unique('races');
  await sql().query(`CREATE SCHEMA ${schema}`);
  for (const t of tables) {
    await sql().query(`CREATE TABLE ${schema}.${t} (id integer PRIMARY KEY, status text NOT NULL);
      INSERT INTO ${schema}.${t} SELECT g, 's' || g FROM generate_series(1, ${ROWS}) g;`);
  }
  return schema;
}

const signal = (id: string, ...collections: string[]) => ({
  id,
  type: 'execute-snapshot' as const,
  data: { 'data-collections': collections, type: 'incremental' as const },
});

const reads = (events: Parsed[]): Parsed[] => events.filter((e) => e.value.payload.source.snapshot === 'incremental');

async function capture(
  schema: string,
  notes: SnapshotNotification[],
  options: Partial<CaptureOptions> = {},
): Promise<TestCapture> {
  return captureSchema(db(), sql(), schema, {
    snapshotMode: 'never',
    incrementalChunkSize: 100,
    onNotification: (n) => {
      notes.push(n);
    },
    ...options,
  });
}

const scans = (notes: SnapshotNotification[]) =>
  notes
    .filter((n) => n.type === 'TABLE_SCAN_COMPLETED')
    .map((n) => [n.additional_data.scanned_collection, n.additional_data.status, n.additional_data.total_rows_scanned]);

describe('incremental snapshot races', () => {
  it('a signal for the table being scanned restarts its scan at the next chunk: every row is last read in the new shape', async () => {
    // Arrange: during the second chunk's window a column with a default is added, and the lanes signal the table
    const schema = await newSchema('orders');
    const notes: SnapshotNotification[] = [];
    let chunks = 0;
    let run: TestCapture | undefined;
    run = await capture(schema, notes, {
      beforeHighWatermark: async () => {
        if (++chunks !== 2) return;
        await sql().query(`ALTER TABLE ${schema}.orders ADD COLUMN region text NOT NULL DEFAULT 'eu'`);
        run?.capture.signal(signal('after-ddl', `${schema}.orders`));
      },
    });

    // Act
    run.capture.signal(signal('first', `${schema}.orders`));
    await waitFor(() => notes.some((n) => n.type === 'COMPLETED'));
    await run.capture.flushed();
    await run.stop();

    // Assert
    const all = reads(changes(run.records, 'orders'));
    const last = new Map(all.map((e) => [e.key.payload.id as number, e.value.payload.after]));
    expect(last.size).toBe(ROWS);
    for (const after of last.values()) expect(after.region).toBe('eu');
    // Chunks 1 and 2 (old shape) and then the whole table again: nothing after the boundary is read twice
    expect(all.length).toBe(ROWS + 200);
    expect(all.slice(0, 200).every((e) => !('region' in e.value.payload.after))).toBe(true);
    expect(scans(notes)).toEqual([[`${schema}.orders`, 'SUCCEEDED', String(ROWS)]]);
    expect(notes.at(-1)?.type).toBe('COMPLETED');
  });

  it('a signal for a table already queued adds nothing; one for a table already scanned scans it again', async () => {
    // Arrange
    const schema = await newSchema('a', 'b');
    const notes: SnapshotNotification[] = [];
    let run: TestCapture | undefined;
    let sent = false;
    run = await capture(schema, notes, {
      beforeHighWatermark: async ({ table }) => {
        if (table !== `${schema}.b` || sent) return;
        sent = true;
        run?.capture.signal(signal('again', `${schema}.b`, `${schema}.a`));
      },
    });

    // Act
    run.capture.signal(signal('first', `${schema}.a`, `${schema}.b`));
    await waitFor(() => notes.some((n) => n.type === 'COMPLETED'));
    await run.stop();

    // Assert: b restarted once (its first chunk read twice), a scanned again after it
    expect(scans(notes).map(([t]) => t)).toEqual([`${schema}.a`, `${schema}.b`, `${schema}.a`]);
    expect(reads(changes(run.records, 'b'))).toHaveLength(ROWS + 100);
  });

  it('a table dropped mid-scan ends with UNKNOWN_SCHEMA and the snapshot goes on with the next table', async () => {
    // Arrange
    const schema = await newSchema('a', 'b');
    const notes: SnapshotNotification[] = [];
    let chunks = 0;
    const run = await capture(schema, notes, {
      beforeHighWatermark: async ({ table }) => {
        if (table === `${schema}.a` && ++chunks === 2) await sql().query(`DROP TABLE ${schema}.a`);
      },
    });

    // Act
    run.capture.signal(signal('drop', `${schema}.a`, `${schema}.b`));
    await waitFor(() => notes.some((n) => n.type === 'COMPLETED'));
    await run.stop();

    // Assert
    expect(scans(notes).map(([t, s]) => [t, s])).toEqual([
      [`${schema}.a`, 'UNKNOWN_SCHEMA'],
      [`${schema}.b`, 'SUCCEEDED'],
    ]);
    expect(reads(changes(run.records, 'b'))).toHaveLength(ROWS);
  });

  it('a table renamed mid-scan is scanned again from its start under its new name', async () => {
    // Arrange
    const schema = await newSchema('a');
    const notes: SnapshotNotification[] = [];
    let chunks = 0;
    const run = await capture(schema, notes, {
      beforeHighWatermark: async ({ table }) => {
        if (table === `${schema}.a` && ++chunks === 2) await sql().query(`ALTER TABLE ${schema}.a RENAME TO renamed`);
      },
    });

    // Act
    run.capture.signal(signal('rename', `${schema}.a`));
    await waitFor(() => notes.some((n) => n.type === 'COMPLETED'));
    await run.stop();

    // Assert: without the OID the rest of the table would be skipped as unknown
    expect(scans(notes)).toEqual([
      [`${schema}.a`, 'SKIPPED', '200'],
      [`${schema}.renamed`, 'SUCCEEDED', String(ROWS)],
    ]);
    const ids = reads(changes(run.records, 'renamed')).map((e) => e.key.payload.id);
    expect(ids).toEqual(Array.from({ length: ROWS }, (_, i) => i + 1));
  });

  it('a column renamed between a chunk reading the table shape and its SELECT: the chunk is tried again', async () => {
    // Arrange: after chunk 1, a transaction renames a column and holds its lock, so chunk 2 takes the old shape from
    // the catalog and its SELECT waits for the lock, then fails on the old name
    const schema = await newSchema('orders');
    const notes: SnapshotNotification[] = [];
    const ddl = new pg.Client(db().url);
    await ddl.connect();
    let chunks = 0;
    const run = await capture(schema, notes, {
      beforeHighWatermark: async () => {
        if (++chunks !== 1) return;
        await ddl.query(`BEGIN; ALTER TABLE ${schema}.orders RENAME COLUMN status TO state`);
        setTimeout(() => void ddl.query('COMMIT'), 300);
      },
    });

    // Act
    run.capture.signal(signal('col', `${schema}.orders`));
    await waitFor(() => notes.some((n) => n.type === 'COMPLETED'));
    await run.stop();
    await ddl.end();

    // Assert
    expect(scans(notes)).toEqual([[`${schema}.orders`, 'SUCCEEDED', String(ROWS)]]);
    const all = reads(changes(run.records, 'orders'));
    expect(all).toHaveLength(ROWS);
    expect(all[ROWS - 1]?.value.payload.after).toEqual({ id: ROWS, state: `s${ROWS}` });
  });

  it('a primary-key change inside a window: neither key is read, the streamed delete and create stand', async () => {
    // Arrange: inside the first window, row 5 moves to key 5000 and row 250 moves into the chunk's range as key 0
    const schema = await newSchema('orders');
    const notes: SnapshotNotification[] = [];
    let chunks = 0;
    const run = await capture(schema, notes, {
      beforeHighWatermark: async () => {
        if (++chunks !== 1) return;
        await sql().query(`UPDATE ${schema}.orders SET id = 5000 WHERE id = 5`);
        await sql().query(`UPDATE ${schema}.orders SET id = 0 WHERE id = 250`);
      },
    });

    // Act
    run.capture.signal(signal('pk', `${schema}.orders`));
    await waitFor(() => notes.some((n) => n.type === 'COMPLETED'));
    await run.capture.flushed();
    await run.stop();

    // Assert: replayed like a sink, the events give exactly the source rows
    const events = changes(run.records, 'orders');
    const ids = reads(events).map((e) => e.key.payload.id as number);
    expect(ids).not.toContain(5);
    expect(ids).not.toContain(250);
    const source = await sql().query(`SELECT id, status FROM ${schema}.orders ORDER BY id`);
    const state = replay(events);
    expect(state.size).toBe(source.rows.length);
    for (const row of source.rows) expect(state.get(JSON.stringify({ id: row.id }))).toEqual(row);
  });
});
