import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { formatLsn } from '../../tools/local/capture/lsn';
import { captureSchema, changes, jsonAt, type Parsed, replay, unique, usePostgres } from './helpers';

const { db, sql } = usePostgres();

async function createTables(client: pg.Client, schema: string, rowsPerTable: number[]): Promise<void> {
  await client.query(`CREATE SCHEMA ${schema}`);
  for (const [i, rows] of rowsPerTable.entries()) {
    const table = `${schema}.t${i}`;
    await client.query(`CREATE TABLE ${table} (id integer PRIMARY KEY, v text)`);
    if (rows > 0) await client.query(`INSERT INTO ${table} SELECT g, 'row ' || g FROM generate_series(1, ${rows}) g`);
  }
}

describe('snapshot', () => {
  // Debezium 2.6+ (RelationalSnapshotChangeEventSource.setSnapshotMarker): first record of the first table "first",
  // first/last of other tables "first_in_data_collection"/"last_in_data_collection", the very last record "last"
  // (BufferingSnapshotChangeRecordReceiver re-marks it when the last table is empty), everything else "true".
  it.each([
    [
      [3, 2],
      ['first', 'true', 'last_in_data_collection', 'first_in_data_collection', 'last'],
    ],
    [
      [3, 2, 0],
      ['first', 'true', 'last_in_data_collection', 'first_in_data_collection', 'last'],
    ],
    [[1, 0], ['last']],
    [
      [0, 2],
      ['first_in_data_collection', 'last'],
    ],
    [
      [2, 1, 2],
      ['first', 'last_in_data_collection', 'last_in_data_collection', 'first_in_data_collection', 'last'],
    ],
  ])('tables with %j rows mark records %j', async (rowsPerTable, expected) => {
    // Arrange
    const schema = unique('snap_markers');
    await createTables(sql(), schema, rowsPerTable);

    // Act
    const run = await captureSchema(db(), sql(), schema);
    await run.stop();

    // Assert
    const markers = changes(run.records).map((e) => e.value.payload.source.snapshot);
    expect(markers).toEqual(expected);
  });

  it('reads every row as op r at the slot consistent point, in one snapshot transaction', async () => {
    // Arrange
    const schema = unique('snap_source');
    await createTables(sql(), schema, [5, 3]);

    // Act
    const run = await captureSchema(db(), sql(), schema);
    const status = run.capture.status();
    const slot = await sql().query(
      'SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1',
      [run.slot],
    );
    await run.stop();

    // Assert
    const reads = changes(run.records);
    const cp = String(status.consistentPoint);
    expect(reads).toHaveLength(8);
    for (const e of reads) {
      const p = e.value.payload;
      expect(p.op).toBe('r');
      expect(p.before).toBeNull();
      expect(jsonAt(e.valueText ?? '', 'payload', 'source', 'lsn')).toBe(cp);
      expect(p.source.sequence).toBe(`[null,"${cp}"]`);
      expect(typeof p.source.txId).toBe('number');
    }
    // One snapshot transaction: one txId and one CURRENT_TIMESTAMP for all rows (Debezium's snapshot ts_ms).
    expect(new Set(reads.map((e) => e.value.payload.source.txId)).size).toBe(1);
    expect(new Set(reads.map((e) => jsonAt(e.valueText ?? '', 'payload', 'source', 'ts_us'))).size).toBe(1);
    // Nothing is acknowledged by a snapshot: the slot still starts where the snapshot was taken.
    expect(slot.rows[0]?.lsn).toBe(formatLsn(status.consistentPoint ?? 0n));
    // The offset after the snapshot is a completed one at the consistent point.
    expect(status.savedOffset?.lsn).toBe(status.consistentPoint);
    expect(status.savedOffset?.snapshot).toBeUndefined();
  });

  it('misses and doubles nothing while a writer runs during slot creation and snapshot', async () => {
    // Arrange
    const schema = unique('snap_concurrent');
    await sql().query(
      `CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.items (id integer PRIMARY KEY, v integer NOT NULL)`,
    );
    await sql().query(`INSERT INTO ${schema}.items SELECT g, 0 FROM generate_series(1, 5000) g`);
    const writer = new (await import('pg')).default.Client({ connectionString: db().url });
    await writer.connect();
    let running = true;
    let nextId = 5001;
    let transactions = 0;
    const writing = (async () => {
      while (running) {
        const id = nextId++;
        const target = 1 + Math.floor(Math.random() * (id - 1));
        await writer.query('BEGIN');
        await writer.query(`INSERT INTO ${schema}.items VALUES ($1, 0)`, [id]);
        await writer.query(`UPDATE ${schema}.items SET v = v + 1 WHERE id = $1`, [target]);
        if (id % 5 === 0) await writer.query(`DELETE FROM ${schema}.items WHERE id = $1`, [target + 1]);
        await writer.query('COMMIT');
        transactions++;
      }
    })();
    await new Promise((r) => setTimeout(r, 50));

    // Act
    const run = await captureSchema(db(), sql(), schema);
    await new Promise((r) => setTimeout(r, 300));
    running = false;
    await writing;
    await writer.end();
    await run.capture.flushed();
    await run.stop();

    // Assert
    const events = changes(run.records, 'items');
    expect(events.some((e) => e.value.payload.op === 'r')).toBe(true);
    expect(events.some((e) => e.value.payload.op === 'c')).toBe(true);
    expect(transactions).toBeGreaterThan(20);
    // Every event is a valid transition for its row: no insert of a present row (doubled), no update or delete of
    // an absent row (missed insert).
    const present = new Set<string>();
    const invalid: string[] = [];
    for (const e of events as Parsed[]) {
      const key = JSON.stringify(e.key.payload);
      const op = e.value.payload.op;
      if ((op === 'r' || op === 'c') === present.has(key)) invalid.push(`${op} ${key}`);
      if (op === 'd') present.delete(key);
      else present.add(key);
    }
    expect(invalid).toEqual([]);
    const { rows } = await sql().query(`SELECT id, v FROM ${schema}.items ORDER BY id`);
    const state = replay(events);
    expect(state.size).toBe(rows.length);
    for (const row of rows) expect(state.get(JSON.stringify({ id: row.id }))).toEqual({ id: row.id, v: row.v });
  });
});
