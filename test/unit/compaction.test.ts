import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { parquetReadObjects } from 'hyparquet';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { S3WarehouseSink } from '../../functions/adapters/s3-warehouse-sink';
import { ChangeLogCompactor, encodeCompacted } from '../../functions/compaction/compact';
import { demoChanges, writeAsTheLane } from '../../tools/bench/demo-changes';
import { downloadChangeLog, openWarehouse } from '../../tools/lib/warehouse';
import { LOCAL_NAMES } from '../../tools/local/services';
import { useLocalServices } from '../support/local';

// Compaction of the change log against the local S3 (fauxqs): files written by the real warehouse sink, compacted,
// read back with hyparquet and DuckDB.

const services = useLocalServices();
const bucket = LOCAL_NAMES.warehouseBucket;
// The demo's 600 changes at 200/s start 20 s before midnight: a closed day (05-09) and the next one (05-10).
const START = Date.parse('2026-05-09T23:59:40Z');
const NOW = Date.parse('2026-05-11T12:00:00Z');
let prefix: string;
let s3: S3Client;

beforeEach(() => {
  s3 = services().clients.s3;
  prefix = `compaction-${Math.random().toString(36).slice(2)}/`;
});

const compactor = (closedAfterHours = 6) => new ChangeLogCompactor(s3, { bucket, prefix, closedAfterHours });

async function keys(under = prefix): Promise<string[]> {
  const out: string[] = [];
  let marker: string | undefined;
  do {
    const page = await s3.send(new ListObjectsCommand({ Bucket: bucket, Prefix: under, Marker: marker }));
    for (const o of page.Contents ?? []) out.push(o.Key as string);
    marker = page.IsTruncated ? page.Contents?.at(-1)?.Key : undefined;
  } while (marker);
  return out;
}

async function rowsOf(key: string): Promise<Array<Record<string, unknown>>> {
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const bytes = (await object.Body?.transformToByteArray()) as Uint8Array;
  return parquetReadObjects({
    file: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
  });
}

/** Every row under a folder, by `_cdc_id`, as hyparquet reads them. */
async function rowsById(folder: string): Promise<Map<string, Record<string, unknown>>> {
  const rows = new Map<string, Record<string, unknown>>();
  for (const key of (await keys(folder)).filter((k) => k.endsWith('.parquet'))) {
    for (const row of await rowsOf(key)) {
      expect(rows.has(String(row._cdc_id)), `${row._cdc_id} twice`).toBe(false);
      rows.set(String(row._cdc_id), row);
    }
  }
  return rows;
}

async function writeDemo(count = 600): Promise<void> {
  const sink = new S3WarehouseSink(s3, { bucket, prefix });
  await writeAsTheLane(sink, demoChanges({ count, startMs: START }));
}

const closedDay = (table: string) => `${prefix}table=pg.public.${table}/date=2026-05-09/`;
const openDay = (table: string) => `${prefix}table=pg.public.${table}/date=2026-05-10/`;

describe('change-log compaction', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('rewrites each closed day as one file with the same rows, and leaves an open day alone', async () => {
    // Arrange
    await writeDemo();
    const before = await rowsById(closedDay('orders'));
    const openBefore = await keys(openDay('orders'));
    expect((await keys(closedDay('orders'))).length).toBeGreaterThan(10);

    // Act: 05-10 ends at 05-11 00:00, closed only at 06:00 + 6 h; the clock says 05-10 10:00.
    const summary = await compactor().run(Date.parse('2026-05-10T10:00:00Z'), 7, Number.POSITIVE_INFINITY);

    // Assert
    const after = await keys(closedDay('orders'));
    expect(after).toEqual([expect.stringMatching(/\/compacted\+[0-9a-f]{16}\+0\.parquet$/)]);
    expect(await rowsById(closedDay('orders'))).toEqual(before);
    expect(await keys(openDay('orders'))).toEqual(openBefore);
    expect(summary.partitions).toBe(5);
    expect(summary.outputFiles).toBe(5);
    expect(await keys(`${prefix}_compaction/`)).toEqual([]);
  });

  it('leaves the current state DuckDB rebuilds from the log unchanged, and does nothing the second time', async () => {
    // Arrange
    await writeDemo();
    dir = await mkdtemp(join(tmpdir(), 'compaction-'));
    const state = async (into: string) => {
      await downloadChangeLog(s3, bucket, prefix, into);
      const warehouse = await openWarehouse(into);
      try {
        return {
          orders: await warehouse.rebuild('pg.public.orders'),
          products: await warehouse.rebuild('pg.public.products'),
          views: (await warehouse.changes('pg.public.page_views')).length,
        };
      } finally {
        warehouse.close();
      }
    };
    const before = await state(join(dir, 'before'));

    // Act
    await compactor().run(NOW, 7, Number.POSITIVE_INFINITY);
    const files = await keys();
    const again = await compactor().run(NOW, 7, Number.POSITIVE_INFINITY);

    // Assert
    expect(await state(join(dir, 'after'))).toEqual(before);
    expect(again).toMatchObject({ partitions: 0, inputFiles: 0, outputFiles: 0 });
    expect(await keys()).toEqual(files);
  });

  it('keeps files of different schemas apart, one output each', async () => {
    // Arrange: one day of orders, then a file of the same day where the table has a new column.
    await writeDemo(200);
    const folder = closedDay('orders');
    const [first] = (await keys(folder)).sort();
    const rows = await rowsOf(first as string);
    const { parquetWriteBuffer } = await import('hyparquet-writer');
    const wider = parquetWriteBuffer({
      columnData: [
        { name: '_cdc_id', data: ['extra-1'] },
        { name: 'id', data: [String(rows[0]?.id)] },
        { name: 'currency', data: ['EUR'] },
      ],
    });
    await s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: `${folder}zz-wider.parquet`, Body: new Uint8Array(wider) }),
    );
    const before = await rowsById(folder);

    // Act
    await compactor().compactPartition(folder, NOW);

    // Assert
    expect((await keys(folder)).map((k) => k.slice(folder.length).replace(/[0-9a-f]{16}/, '…'))).toEqual([
      'compacted+…+0.parquet',
      'compacted+…+1.parquet',
    ]);
    expect([...(await rowsById(folder)).keys()].sort()).toEqual([...before.keys()].sort());
  });

  it('finishes a compaction that stopped after writing its outputs: deletes the inputs, writes nothing twice', async () => {
    // Arrange: a run that wrote the manifest and the output, then died before deleting the inputs.
    await writeDemo(200);
    const folder = closedDay('orders');
    const inputs = (await keys(folder)).sort();
    const expected = await rowsById(folder);
    const bodies = await Promise.all(
      inputs.map(async (key) => {
        const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        const bytes = (await object.Body?.transformToByteArray()) as Uint8Array;
        return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
      }),
    );
    const outputs = await encodeCompacted(folder, inputs, bodies);
    for (const output of outputs) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: output.key, Body: output.body }));
    }
    const manifest = `${prefix}_compaction/table=pg.public.orders/date=2026-05-09.json`;
    const stopped = { inputs, outputs: outputs.map((o) => o.key), createdAt: NOW - 3_600_000 };
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: manifest, Body: JSON.stringify(stopped) }));

    // Act
    const result = await compactor().compactPartition(folder, NOW);

    // Assert
    expect(result.resumed).toBe(1);
    expect(await keys(folder)).toEqual(outputs.map((o) => o.key));
    expect(await rowsById(folder)).toEqual(expected);
    expect(await keys(`${prefix}_compaction/`)).toEqual([]);
  });

  it('undoes a compaction that stopped before all its outputs were written, then compacts again', async () => {
    // Arrange: a manifest naming two outputs, of which only a stray first one exists.
    await writeDemo(200);
    const folder = closedDay('orders');
    const inputs = (await keys(folder)).sort();
    const expected = await rowsById(folder);
    const stray = `${folder}compacted+0000000000000000+0.parquet`;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: stray, Body: 'partial' }));
    const manifest = `${prefix}_compaction/table=pg.public.orders/date=2026-05-09.json`;
    const stopped = { inputs, outputs: [stray, `${folder}compacted+0000000000000000+1.parquet`], createdAt: 0 };
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: manifest, Body: JSON.stringify(stopped) }));

    // Act
    await compactor().compactPartition(folder, NOW);

    // Assert
    expect(await keys(folder)).toHaveLength(1);
    expect(await keys(folder)).not.toContain(stray);
    expect(await rowsById(folder)).toEqual(expected);
  });

  it('leaves a day alone while another run is compacting it (a young manifest)', async () => {
    // Arrange
    await writeDemo(200);
    const folder = closedDay('orders');
    const files = await keys(folder);
    const manifest = `${prefix}_compaction/table=pg.public.orders/date=2026-05-09.json`;
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: manifest,
        Body: JSON.stringify({ inputs: [], outputs: [], createdAt: NOW - 60_000 }),
      }),
    );

    // Act
    const result = await compactor().compactPartition(folder, NOW);

    // Assert
    expect(result).toMatchObject({ inputFiles: 0, outputFiles: 0, resumed: 0 });
    expect(await keys(folder)).toEqual(files);
    await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [{ Key: manifest }] } }));
  });

  it('merges a late file into the day it compacted before', async () => {
    // Arrange: a compacted day, then a late change of that day (a lane catching up).
    await writeDemo(200);
    const folder = closedDay('orders');
    await compactor().compactPartition(folder, NOW);
    const compacted = await rowsById(folder);
    const late = demoChanges({ count: 1, startMs: Date.parse('2026-05-09T10:00:00Z'), seed: 7, tables: ['orders'] });
    await writeAsTheLane(new S3WarehouseSink(s3, { bucket, prefix }), late);
    expect(await keys(folder)).toHaveLength(2);

    // Act
    await compactor().compactPartition(folder, NOW);

    // Assert
    expect(await keys(folder)).toHaveLength(1);
    expect((await rowsById(folder)).size).toBe(compacted.size + 1);
  });
});
