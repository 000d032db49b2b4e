import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CapturedRecord,
  type CaptureOptions,
  JsonFileOffsetStore,
  MemoryOffsetStore,
  type OffsetStore,
  startPostgresCapture,
} from '../../tools/local/capture';
import { changes, deferred, dropSlot, jsonAt, type Parsed, replay, unique, usePostgres, waitFor } from './helpers';

const { db, sql } = usePostgres();
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'capture-restart-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** What a decoder keys an event by: table, source position and row key (docs/formats.md §5 step 7). */
function eventId(e: Parsed): string {
  return `${e.topic}/${jsonAt(e.valueText ?? '', 'payload', 'source', 'lsn')}/${e.keyText}`;
}

/** The parts of an event that must be identical when it is emitted again: everything but the capture time. */
function sameChange(e: Parsed): string {
  const p = (...path: string[]) => jsonAt(e.valueText ?? '', 'payload', ...path);
  return `${e.keyText}|${p('op')}|${p('before')}|${p('after')}|${p('source').replace(/"ts_ms":\d+,/, '')}`;
}

function options(
  schema: string,
  slot: string,
  publication: string,
  offsets: OffsetStore,
  produce: CaptureOptions['produce'],
) {
  return {
    connectionString: db().url,
    topicPrefix: 'test',
    slotName: slot,
    publicationName: publication,
    schemas: [schema],
    offsets,
    produce,
  } satisfies CaptureOptions;
}

describe('offset stores', () => {
  it('the JSON file store keeps every digit of 64-bit offsets', async () => {
    // Arrange
    const store = new JsonFileOffsetStore(join(dir, 'digits.json'));
    const offset = {
      lsn: 2n ** 60n + 1n,
      lsn_commit: 2n ** 60n,
      txId: 7n,
      ts_usec: 1_710_498_600_123_456n,
      messageType: 'COMMIT',
    };

    // Act
    await store.save(offset);
    const text = await readFile(join(dir, 'digits.json'), 'utf8');
    const loaded = await store.load();

    // Assert
    expect(text.trim()).toBe(
      '{"lsn":1152921504606846977,"lsn_commit":1152921504606846976,"txId":7,"ts_usec":1710498600123456,"messageType":"COMMIT"}',
    );
    expect(loaded).toEqual(offset);
    expect(await new JsonFileOffsetStore(join(dir, 'missing.json')).load()).toBeNull();
  });
});

describe('restart', () => {
  it('after a crash re-emits exactly what followed the last saved offset, then carries on', async () => {
    // Arrange
    const schema = unique('restart');
    const slot = unique('slot');
    const publication = unique('pub');
    await sql().query(`CREATE SCHEMA ${schema};
      CREATE TABLE ${schema}.items (id integer PRIMARY KEY, v text NOT NULL);
      INSERT INTO ${schema}.items VALUES (1, 'seed'), (2, 'seed'), (3, 'seed');`);
    const offsets = new JsonFileOffsetStore(join(dir, `${schema}.json`));
    const first: CapturedRecord[] = [];
    // Offsets are saved only by flushed(): the crash window is explicit.
    const run1 = await startPostgresCapture({
      ...options(schema, slot, publication, offsets, async (r) => {
        first.push(...r);
      }),
      offsetFlushIntervalMs: 60_000,
    });
    for (let i = 10; i < 13; i++) await sql().query(`INSERT INTO ${schema}.items VALUES (${i}, 'A')`);
    await run1.flushed(); // saved and acknowledged up to here
    for (let i = 20; i < 23; i++) await sql().query(`INSERT INTO ${schema}.items VALUES (${i}, 'B')`);
    await sql().query(`UPDATE ${schema}.items SET v = 'B2' WHERE id = 1`);
    await waitFor(() => changes(first).filter((e) => e.value.payload.op !== 'r').length === 7);

    // Act: crash (nothing more saved or acknowledged), write while down, start again
    await run1.stop({ flush: false });
    await sql().query(`INSERT INTO ${schema}.items VALUES (30, 'C')`);
    await sql().query(`UPDATE ${schema}.items SET v = 'C2' WHERE id = 10`);
    await sql().query(`DELETE FROM ${schema}.items WHERE id = 2`);
    const second: CapturedRecord[] = [];
    const run2 = await startPostgresCapture(
      options(schema, slot, publication, offsets, async (r) => {
        second.push(...r);
      }),
    );
    await run2.flushed();
    await run2.stop();
    await dropSlot(sql(), slot);

    // Assert
    const before = changes(first);
    const after = changes(second);
    expect(after.some((e) => e.value.payload.op === 'r')).toBe(false); // no second snapshot
    const afterValues = after.map((e) => e.value.payload.after?.v ?? `deleted ${e.key.payload.id}`);
    expect(afterValues).toEqual(['B', 'B', 'B', 'B2', 'C', 'C2', 'deleted 2']);
    // The re-emitted B events are the same changes (same position, same rows), so their ids match.
    const bFirst = before.filter((e) => ['B', 'B2'].includes(e.value.payload.after?.v));
    const bAgain = after.slice(0, 4);
    expect(bAgain.map(eventId)).toEqual(bFirst.map(eventId));
    expect(bAgain.map(sameChange)).toEqual(bFirst.map(sameChange));
    // Nothing that was saved before the crash comes again.
    const ids = new Set(after.map(eventId));
    expect(before.filter((e) => e.value.payload.after?.v === 'A').some((e) => ids.has(eventId(e)))).toBe(false);
    // Both runs together describe the table exactly.
    const { rows } = await sql().query(`SELECT id, v FROM ${schema}.items`);
    const state = replay([...before, ...after]);
    expect(state.size).toBe(rows.length);
    for (const row of rows) expect(state.get(JSON.stringify({ id: row.id }))).toEqual(row);
  });

  it('resumes inside a transaction whose first changes were already saved', async () => {
    // Arrange
    const schema = unique('restart_tx');
    const slot = unique('slot');
    const publication = unique('pub');
    await sql().query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.items (id integer PRIMARY KEY)`);
    const offsets = new MemoryOffsetStore();
    const first: CapturedRecord[] = [];
    const hang = deferred();
    let batches = 0;
    const run1 = await startPostgresCapture({
      ...options(schema, slot, publication, offsets, async (r) => {
        if (r.some((x) => x.value !== null)) batches++;
        if (batches > 3) await hang.promise; // the 4th batch never completes: the process "dies" in it
        first.push(...r);
        await new Promise((res) => setTimeout(res, 40)); // give the 20 ms offset timer a chance mid-transaction
      }),
      maxBatchSize: 2,
      offsetFlushIntervalMs: 20,
    });

    // Act
    await sql().query(`INSERT INTO ${schema}.items SELECT generate_series(1, 10)`);
    await waitFor(
      () => batches > 3 && offsets.history.some((o) => o.messageType === 'INSERT' && o.lsn_proc !== undefined),
    );
    await new Promise((res) => setTimeout(res, 60));
    await run1.stop({ flush: false });
    const saved = await offsets.load();
    const second: CapturedRecord[] = [];
    const run2 = await startPostgresCapture(
      options(schema, slot, publication, offsets, async (r) => {
        second.push(...r);
      }),
    );
    await run2.flushed();
    const skipped = run2.status().emitted.skippedOnResume;
    await run2.stop();
    await dropSlot(sql(), slot);
    hang.resolve();

    // Assert
    expect(saved?.messageType).toBe('INSERT'); // the crash happened mid-transaction
    const lsnOf = (e: Parsed) => BigInt(jsonAt(e.valueText ?? '', 'payload', 'source', 'lsn'));
    const again = changes(second);
    expect(again.length).toBeGreaterThan(0);
    expect(again.every((e) => lsnOf(e) > (saved?.lsn_proc ?? 0n))).toBe(true);
    expect(skipped).toBe(10 - again.length);
    const all = new Set([...changes(first), ...again].map((e) => e.key.payload.id));
    expect([...all].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('redoes an interrupted snapshot from scratch', async () => {
    // Arrange
    const schema = unique('restart_snap');
    const slot = unique('slot');
    const publication = unique('pub');
    await sql().query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.items (id integer PRIMARY KEY);
      INSERT INTO ${schema}.items SELECT generate_series(1, 5)`);
    const offsets = new MemoryOffsetStore();
    let calls = 0;

    // Act
    const failed = startPostgresCapture({
      ...options(schema, slot, publication, offsets, async () => {
        if (++calls === 2) throw new Error('broker down');
      }),
      maxBatchSize: 2,
    });
    await expect(failed).rejects.toThrow('broker down');
    await sql().query(`INSERT INTO ${schema}.items VALUES (6)`);
    const records: CapturedRecord[] = [];
    const run = await startPostgresCapture(
      options(schema, slot, publication, offsets, async (r) => {
        records.push(...r);
      }),
    );
    await sql().query(`INSERT INTO ${schema}.items VALUES (7)`);
    await run.flushed();
    await run.stop();
    await dropSlot(sql(), slot);

    // Assert
    const events = changes(records);
    expect(events.map((e) => `${e.value.payload.op}${e.key.payload.id}`)).toEqual([
      'r1',
      'r2',
      'r3',
      'r4',
      'r5',
      'r6',
      'c7',
    ]);
  });

  it('after a clean stop emits nothing twice', async () => {
    // Arrange
    const schema = unique('restart_clean');
    const slot = unique('slot');
    const publication = unique('pub');
    await sql().query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.items (id integer PRIMARY KEY)`);
    const offsets = new MemoryOffsetStore();
    const records: CapturedRecord[] = [];
    const produce = async (r: CapturedRecord[]) => {
      records.push(...r);
    };
    const run1 = await startPostgresCapture({
      ...options(schema, slot, publication, offsets, produce),
      offsetFlushIntervalMs: 60_000,
    });
    await sql().query(`INSERT INTO ${schema}.items SELECT generate_series(1, 3)`);
    await waitFor(() => records.length === 3);

    // Act
    await run1.stop(); // flushes the offset and acknowledges before closing
    await sql().query(`INSERT INTO ${schema}.items VALUES (4)`);
    const run2 = await startPostgresCapture(options(schema, slot, publication, offsets, produce));
    await run2.flushed();
    await run2.stop();
    await dropSlot(sql(), slot);

    // Assert
    expect(changes(records).map((e) => e.key.payload.id)).toEqual([1, 2, 3, 4]);
  });
});
