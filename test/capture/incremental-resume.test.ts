/**
 * Incremental snapshots across capture crashes at every kind of moment: between chunks (reads produced, offset saved
 * or not), inside a window, after the last chunk, right after the signal, and at an arbitrary moment under load (the
 * runner's "poll until some chunks are done, then crash"). Each ends with every row read at least once, at most one
 * chunk read twice, COMPLETED emitted and total_rows_scanned the table's total.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  type CapturedRecord,
  type CaptureOptions,
  MemoryOffsetStore,
  type PostgresCapture,
  type SnapshotNotification,
  type SourceOffset,
  startPostgresCapture,
} from '../../tools/local/capture';
import { changes, deferred, dropSlot, startCollecting, unique, usePostgres, waitFor } from './helpers';

const { db, sql } = usePostgres();
const ROWS = 1000;
const CHUNK = 100;

/** An offset store whose saves can be held (never complete) from some moment on, like a crash before a flush. */
class HoldableOffsetStore extends MemoryOffsetStore {
  hold = false;
  /**
   * Holds every save after the first one this accepts. Set before the capture gets there, so the hold lands exactly
   * after that save: polling the store and holding afterwards can miss the state on a busy machine (the next chunk
   * only waits for one save).
   */
  holdAfter: ((offset: SourceOffset) => boolean) | undefined;
  override async save(offset: SourceOffset): Promise<void> {
    if (this.hold) return new Promise(() => undefined);
    await super.save(offset);
    if (this.holdAfter?.(offset)) this.hold = true;
  }
}

async function newTable(): Promise<string> {
  const schema = unique('resume');
  await sql().query(`CREATE SCHEMA ${schema};
    CREATE TABLE ${schema}.orders (id integer PRIMARY KEY, status text NOT NULL);
    CREATE TABLE ${schema}.noise (id bigserial PRIMARY KEY, v text);
    INSERT INTO ${schema}.orders SELECT g, 'x' FROM generate_series(1, ${ROWS}) g;`);
  return schema;
}

const readIds = (records: CapturedRecord[]): number[] =>
  changes(records, 'orders')
    .filter((e) => e.value.payload.source.snapshot === 'incremental')
    .map((e) => e.key.payload.id as number);

const signalOf = (schema: string, id = 'snap') => ({
  id,
  type: 'execute-snapshot' as const,
  data: { 'data-collections': [`${schema}.orders`], type: 'incremental' as const },
});

interface Crash {
  schema: string;
  first: CapturedRecord[];
  second: CapturedRecord[];
  notes: SnapshotNotification[];
  saved: SourceOffset | null;
}

/**
 * Runs a capture until `crashWhen` resolves, drops it like a killed process, starts another on the same slot and
 * offsets and waits for the snapshot's COMPLETED. `load` keeps inserting into another table of the schema meanwhile.
 */
async function crashAndResume(
  crashWhen: (ctx: {
    capture: () => PostgresCapture;
    offsets: HoldableOffsetStore;
    first: CapturedRecord[];
  }) => Promise<void>,
  extra: Partial<CaptureOptions> = {},
  load = false,
): Promise<Crash> {
  const schema = await newTable();
  const slot = unique('slot');
  const offsets = new HoldableOffsetStore();
  const base = {
    connectionString: db().url,
    topicPrefix: 'test',
    slotName: slot,
    publicationName: unique('pub'),
    schemas: [schema],
    snapshotMode: 'never' as const,
    incrementalChunkSize: CHUNK,
    offsetFlushIntervalMs: 200,
    heartbeatIntervalMs: 100,
    offsets,
  };
  const writer = new pg.Client(db().url);
  await writer.connect();
  let writing = load;
  const loadDone = (async () => {
    while (writing) await writer.query(`INSERT INTO ${schema}.noise (v) VALUES ('n')`);
  })();
  const first: CapturedRecord[] = [];
  const run1 = await startPostgresCapture({
    ...base,
    ...extra,
    produce: async (r) => {
      first.push(...r);
    },
  });
  run1.signal(signalOf(schema));
  try {
    await crashWhen({ capture: () => run1, offsets, first });
  } catch (error) {
    // Stop the load and the capture before the failure propagates, or they outlive the test's database.
    writing = false;
    await loadDone.catch(() => undefined);
    await writer.end();
    await run1.stop({ flush: false });
    throw error;
  }
  await run1.stop({ flush: false });
  const saved = await offsets.load();
  offsets.hold = false;
  const { capture: run2, records: second, notes } = await startCollecting(base);
  try {
    await waitFor(() => notes.some((n) => n.type === 'COMPLETED'), 30_000);
    await run2.flushed();
  } finally {
    writing = false;
    await loadDone;
    await writer.end();
    await run2.stop();
    await dropSlot(sql(), slot);
  }
  return { schema, first, second, notes, saved };
}

/** Every row read at least once, at most one chunk read twice, the scan's total the table's size. */
function expectResumed({ schema, first, second, notes }: Crash): void {
  const ids1 = readIds(first);
  const ids2 = readIds(second);
  expect(new Set([...ids1, ...ids2]).size).toBe(ROWS);
  const twice = ids2.filter((id) => ids1.includes(id));
  expect(twice.length).toBeLessThanOrEqual(CHUNK);
  const scan = notes.find((n) => n.type === 'TABLE_SCAN_COMPLETED');
  expect(scan?.additional_data).toMatchObject({
    scanned_collection: `${schema}.orders`,
    status: 'SUCCEEDED',
    total_rows_scanned: String(ROWS),
  });
  expect(notes.at(-1)?.type).toBe('COMPLETED');
}

describe('incremental snapshot across a capture crash', () => {
  it('right after the signal, before any offset carried it: no read is produced for a snapshot the restart forgets', async () => {
    // Arrange: saves never complete, as if the capture died before its first flush after the signal
    const schema = await newTable();
    const offsets = new HoldableOffsetStore();
    const slot = unique('slot');
    const records: CapturedRecord[] = [];
    const capture = await startPostgresCapture({
      connectionString: db().url,
      topicPrefix: 'test',
      slotName: slot,
      publicationName: unique('pub'),
      schemas: [schema],
      snapshotMode: 'never',
      incrementalChunkSize: CHUNK,
      offsetFlushIntervalMs: 20,
      offsets,
      produce: async (r) => {
        records.push(...r);
      },
    });
    await capture.flushed();
    offsets.hold = true;

    // Act
    capture.signal(signalOf(schema));
    await new Promise((r) => setTimeout(r, 500));
    const status = capture.status();
    await capture.stop({ flush: false });
    await dropSlot(sql(), slot);

    // Assert: the snapshot waits for its signal to be saved
    expect(status.incrementalSnapshot).toMatchObject({ id: 'snap', chunks: 0 });
    expect(readIds(records)).toEqual([]);
  });

  it('right after the signal was saved: the restart runs the whole snapshot', async () => {
    // Act: crash as soon as an offset carries the signal
    const crash = await crashAndResume(async ({ offsets }) => {
      await waitFor(async () => (await offsets.load())?.incremental_snapshot_correlation_id === 'snap');
    });

    // Assert
    expectResumed(crash);
    expect(crash.notes.map((n) => n.type)).not.toContain('STARTED');
  });

  it('between chunks, the reads of chunk 3 produced but the offset after them not saved: chunk 3 is read again', async () => {
    // Act
    const crash = await crashAndResume(async ({ offsets, first }) => {
      offsets.holdAfter = (o) => o.incremental_snapshot_primary_key === '["200"]';
      await waitFor(() => offsets.hold, 30_000);
      await waitFor(() => readIds(first).includes(300));
    });

    // Assert
    expect(crash.saved?.incremental_snapshot_primary_key).toBe('["200"]');
    expect(crash.saved?.incremental_snapshot_rows_scanned).toBe('200');
    expect(readIds(crash.second)[0]).toBe(201);
    expectResumed(crash);
  });

  it('between chunks, after the offset after chunk 3 was saved: nothing is read again', async () => {
    // Act
    const crash = await crashAndResume(async ({ offsets }) => {
      offsets.holdAfter = (o) => o.incremental_snapshot_primary_key === '["300"]';
      await waitFor(() => offsets.hold, 30_000);
    });

    // Assert: the next chunk waits for that save, so the saved context is at most one chunk behind the reads
    const ids1 = readIds(crash.first);
    expect(Math.max(...ids1)).toBeLessThanOrEqual(400);
    expect(readIds(crash.second)[0]).toBe(301);
    expectResumed(crash);
  });

  it('right after a chunk SELECT, before its high watermark is written', async () => {
    // Arrange: the fourth chunk's window never closes
    let chunks = 0;
    const selected = deferred();
    const beforeHighWatermark = async () => {
      if (++chunks < 4) return;
      selected.resolve();
      await new Promise(() => undefined);
    };

    // Act
    const crash = await crashAndResume(async () => selected.promise, { beforeHighWatermark });

    // Assert
    expect(crash.saved?.incremental_snapshot_primary_key).toBe('["300"]');
    expectResumed(crash);
  });

  it('after the last chunk, its reads produced but not saved: the last chunk is read again and COMPLETED emitted', async () => {
    // Act
    const crash = await crashAndResume(async ({ offsets, first }) => {
      offsets.holdAfter = (o) => o.incremental_snapshot_primary_key === '["900"]';
      await waitFor(() => offsets.hold, 30_000);
      await waitFor(() => readIds(first).includes(ROWS));
    });

    // Assert
    expect(crash.saved?.incremental_snapshot_correlation_id).toBe('snap');
    expect(readIds(crash.second)).toEqual(Array.from({ length: CHUNK }, (_, i) => 901 + i));
    expectResumed(crash);
  });

  for (const chunks of [1, 2, 3, 5]) {
    it(`at an arbitrary moment under load: polled until ${chunks} chunk(s) were read, then crashed`, async () => {
      // Act
      const crash = await crashAndResume(
        async ({ capture }) => {
          // Polled while chunks remain: status() has no snapshot once it completed, and the last chunks can go by
          // between two polls on a busy machine (the end is covered by the deterministic tests above).
          await waitFor(() => (capture().status().incrementalSnapshot?.chunks ?? 0) >= chunks, 30_000);
        },
        {},
        true,
      );

      // Assert
      expectResumed(crash);
    });
  }
});
