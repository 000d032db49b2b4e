import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { S3WarehouseSink } from '../../functions/adapters/s3-warehouse-sink';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import type { ChangeEvent, ColumnTypes, PartitionBatch, SinkPartition } from '../../functions/core/types';
import { READS_IN_FLIGHT } from '../../tools/lib/concurrency';
import { downloadChangeLog, openWarehouse, type Warehouse } from '../../tools/lib/warehouse';
import { LOCAL_NAMES } from '../../tools/local/services';
import { b64, rawRecord } from '../support/builders';
import { countInFlight } from '../support/in-flight';
import { useLocalServices } from '../support/local';

const services = useLocalServices();
let warehouse: Warehouse | undefined;
let dir: string | undefined;
afterEach(async () => {
  warehouse?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const decimal = {
  type: 'bytes',
  optional: true,
  name: 'org.apache.kafka.connect.data.Decimal',
  parameters: { scale: '2' },
};
const fields = [
  { type: 'int32', optional: false, field: 'id' },
  { ...decimal, field: 'price' },
  { type: 'int32', optional: true, name: 'io.debezium.time.Date', field: 'day' },
  { type: 'string', optional: true, name: 'io.debezium.time.ZonedTimestamp', field: 'at' },
  { type: 'string', optional: true, name: 'io.debezium.data.Json', field: 'meta' },
  { type: 'int64', optional: true, field: 'big' },
  { type: 'string', optional: true, field: 'body' },
];
const schema = {
  type: 'struct',
  name: 'pg.public.products.Envelope',
  fields: [
    { type: 'struct', optional: true, field: 'before', fields },
    { type: 'struct', optional: true, field: 'after', fields },
    { type: 'struct', field: 'source', fields: [] },
    { type: 'string', field: 'op' },
  ],
};

function change(
  op: 'c' | 'u' | 'd',
  id: number,
  lsn: number,
  offset: number,
  row: Record<string, unknown>,
): { event: ChangeEvent; columns: ColumnTypes | undefined } {
  const payload = {
    op,
    before: op === 'd' ? { id, ...row } : null,
    after: op === 'd' ? null : { id, ...row },
    source: {
      connector: 'postgresql',
      name: 'pg',
      db: 'shop',
      schema: 'public',
      table: 'products',
      lsn,
      sequence: `["${lsn - 1}","${lsn}"]`,
      ts_ms: 1_710_498_600_000,
    },
    ts_ms: 1_710_498_600_005,
  };
  const outcome = new JsonDebeziumDecoder().decode(
    rawRecord(b64(JSON.stringify({ schema, payload })), {
      topic: 'pg.public.products',
      offset,
      key: b64(JSON.stringify({ id })),
    }),
    1_710_498_700_000,
  );
  if (outcome.kind !== 'event') throw new Error(JSON.stringify(outcome));
  return { event: outcome.event, columns: outcome.columns };
}

function sinkPartition(changes: Array<ReturnType<typeof change>>): SinkPartition {
  const partition: PartitionBatch = {
    id: 'pg.public.products-0',
    topic: 'pg.public.products',
    partition: 0,
    records: [],
  };
  return { partition, events: changes.map((c) => c.event), columns: changes.map((c) => c.columns), state: undefined };
}

async function readBack(prefix: string): Promise<Warehouse> {
  dir = await mkdtemp(join(tmpdir(), 'warehouse-'));
  await downloadChangeLog(services().clients.s3, LOCAL_NAMES.warehouseBucket, prefix, dir);
  warehouse = await openWarehouse(dir);
  return warehouse;
}

describe('S3WarehouseSink (local S3 + DuckDB)', () => {
  it('writes a typed Parquet change log that DuckDB reads, partitioned by table and date', async () => {
    // Arrange
    const prefix = 'typed/';
    const sink = new S3WarehouseSink(services().clients.s3, { bucket: LOCAL_NAMES.warehouseBucket, prefix });
    const row = {
      price: 'Jw8=',
      day: 19_797,
      at: '2024-03-15T10:30:00.123456Z',
      meta: '{"a":[1,2]}',
      big: 9_007_199_254_740_993n.toString(),
      body: 'x',
    };
    // Act
    const result = await sink.write(sinkPartition([change('c', 1, 100, 0, row)]));
    // Assert
    expect(result.ok).toBe(true);
    const keys = (
      await services().clients.s3.send(
        new ListObjectsV2Command({ Bucket: LOCAL_NAMES.warehouseBucket, Prefix: prefix }),
      )
    ).Contents?.map((o) => o.Key);
    expect(keys).toEqual([
      expect.stringMatching(
        /^typed\/table=pg\.public\.products\/date=2024-03-15\/pg\.public\.products\+0\+0{20}\+[\w-]{12}\.parquet$/,
      ),
    ]);
    const w = await readBack(prefix);
    const [stored] = await w.query(
      `SELECT _cdc_op, _cdc_order, typeof(day) AS day_type, typeof("at") AS at_type, typeof(big) AS big_type, CAST(day AS VARCHAR) AS day, CAST(big AS VARCHAR) AS big, price, CAST("at" AS VARCHAR) AS "at", meta FROM read_parquet('${dir}/**/*.parquet')`,
    );
    expect(stored).toEqual({
      _cdc_op: 'c',
      _cdc_order: 'pg:1:00000000000000000099:00000000000000000100',
      day_type: 'DATE',
      at_type: 'TIMESTAMP WITH TIME ZONE',
      big_type: 'BIGINT',
      day: '2024-03-15',
      big: '9007199254740993',
      price: '99.99',
      at: expect.stringMatching(/^2024-03-15 10:30:00\.123456/),
      meta: '{"a":[1,2]}',
    });
  });

  it('keeps min/max statistics where readers prune (commit time, offsets, table columns), not on per-row ids and JSON images', async () => {
    // Arrange
    const prefix = 'stats/';
    const sink = new S3WarehouseSink(services().clients.s3, { bucket: LOCAL_NAMES.warehouseBucket, prefix });
    const row = { price: 'Jw8=', day: 19_797, at: '2024-03-15T10:30:00Z', meta: '{}', big: '1', body: 'x' };
    // Act
    await sink.write(sinkPartition([change('c', 1, 100, 0, row), change('u', 1, 200, 1, { ...row, body: 'y' })]));
    // Assert
    const w = await readBack(prefix);
    const stats = await w.query(
      `SELECT path_in_schema AS col, stats_min_value IS NOT NULL AS has_stats, encodings FROM parquet_metadata('${dir}/**/*.parquet') ORDER BY column_id`,
    );
    const byColumn = Object.fromEntries(stats.map((s) => [s.col, s]));
    for (const col of ['_cdc_commit_ts', '_cdc_offset', '_cdc_op', '_cdc_order', 'id', 'body']) {
      expect(byColumn[col]?.has_stats, col).toBe(true);
    }
    for (const col of ['_cdc_id', '_cdc_position', '_cdc_key', '_cdc_before', 'meta']) {
      expect(byColumn[col]?.has_stats, col).toBe(false);
    }
    expect(byColumn._cdc_id?.encodings).toBe('PLAIN');
  });

  it('rebuilds the latest state per key: deletes removed, TOAST-unchanged columns from the last change that had them', async () => {
    // Arrange
    const prefix = 'rebuild/';
    const sink = new S3WarehouseSink(services().clients.s3, { bucket: LOCAL_NAMES.warehouseBucket, prefix });
    await sink.write(
      sinkPartition([
        change('c', 1, 100, 0, { price: 'Jw8=', body: 'long text' }),
        change('c', 2, 110, 1, { price: 'AA==', body: 'b' }),
        change('u', 1, 120, 2, { price: 'B8s=', body: '__debezium_unavailable_value' }),
        change('d', 2, 130, 3, { price: 'AA==', body: 'b' }),
      ]),
    );
    // Act
    const rows = await (await readBack(prefix)).rebuild('pg.public.products');
    // Assert
    expect(rows.map((r) => ({ key: r._cdc_key, price: r.price, body: r.body }))).toEqual([
      { key: '{"id":1}', price: '19.95', body: 'long text' },
    ]);
  });

  it('downloads change logs of more than one listing page (1,000 keys), a few objects at a time', async () => {
    const { s3 } = services().clients;
    for (let i = 0; i < 1050; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_, j) =>
          s3.send(
            new PutObjectCommand({
              Bucket: LOCAL_NAMES.warehouseBucket,
              Key: `paged/table=t/f${i + j}.parquet`,
              Body: 'x',
            }),
          ),
        ),
      );
    }
    dir = await mkdtemp(join(tmpdir(), 'warehouse-'));
    const requests = countInFlight(s3);
    try {
      expect(await downloadChangeLog(s3, LOCAL_NAMES.warehouseBucket, 'paged/', dir)).toBe(1050);
    } finally {
      requests.restore();
    }
    expect(requests.most()).toBe(READS_IN_FLIGHT);
  });

  it('writes the same object again when a batch is retried, never a second copy', async () => {
    // Arrange
    const prefix = 'retry/';
    const sink = new S3WarehouseSink(services().clients.s3, { bucket: LOCAL_NAMES.warehouseBucket, prefix });
    const batch = sinkPartition([change('c', 1, 100, 5, {}), change('c', 2, 101, 6, {})]);
    // Act
    await sink.write(batch);
    await sink.write(batch);
    // Assert
    const w = await readBack(prefix);
    expect(await w.query(`SELECT count(*)::INTEGER AS n FROM read_parquet('${dir}/**/*.parquet')`)).toEqual([{ n: 2 }]);
  });

  it('keeps the schema history beside the change log, one object per version and per DDL, rewritten on replay', async () => {
    // Arrange
    const prefix = 'schemas/';
    const sink = new S3WarehouseSink(services().clients.s3, { bucket: LOCAL_NAMES.warehouseBucket, prefix });
    const first = change('c', 1, 100, 5, {});
    const batch = sinkPartition([first]);
    batch.schemaChanges = [
      {
        kind: 'version',
        index: 0,
        table: 'pg.public.products',
        order: first.event.source.order,
        schema: { fingerprint: 'abc123', columns: [{ name: 'id', type: 'int32', optional: false }] },
        version: 3,
      },
    ];
    // Act
    await sink.write(batch);
    await sink.write(batch);
    // Assert
    const s3 = services().clients.s3;
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: LOCAL_NAMES.warehouseBucket, Prefix: prefix }));
    const keys = (listed.Contents ?? []).map((o) => o.Key);
    expect(keys.filter((k) => k?.includes('_schemas/'))).toEqual(['schemas/_schemas/pg.public.products/abc123.json']);
    const object = await s3.send(
      new GetObjectCommand({
        Bucket: LOCAL_NAMES.warehouseBucket,
        Key: 'schemas/_schemas/pg.public.products/abc123.json',
      }),
    );
    expect(JSON.parse(await (object.Body?.transformToString() ?? ''))).toEqual({
      kind: 'schema',
      table: 'pg.public.products',
      fingerprint: 'abc123',
      version: 3,
      columns: [{ name: 'id', type: 'int32', optional: false }],
      firstOrder: first.event.source.order,
      at: '2024-03-15T10:30:00.000Z',
    });
    // The change log still reads as before: the history is not data.
    const w = await readBack(prefix);
    expect(await w.query(`SELECT count(*)::INTEGER AS n FROM read_parquet('${dir}/**/*.parquet')`)).toEqual([{ n: 1 }]);
  });
});
