/**
 * Demo-shaped change events for the warehouse benchmarks and the compaction tests, without a database: the demo's
 * tables (`schemas/public.<table>.json`, column types compiled by the lanes' own decoder), their mix of operations,
 * and the batches the warehouse lane would write them in: the default `npm start` rate (200 changes/s), the local
 * event source mapping's 500 ms batching window and 3 partitions per topic. Each window hands every topic-partition's
 * changes to the sink as one partition of a batch, as the lane does, so the sink writes what the lane would: one file
 * per table, day and topic-partition per batch.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { S3WarehouseSink } from '../../functions/adapters/s3-warehouse-sink';
import { pad } from '../../functions/core/change';
import { type AvroSchema, avroToConnect } from '../../functions/core/decode/avro';
import { compileKeySchema, compileValueSchema } from '../../functions/core/decode/connect-schema';
import type { ChangeEvent, ColumnType, ColumnTypes, Row } from '../../functions/core/types';
import { REPO_ROOT } from '../../lib/constructs/node-function';
import { Prng } from '../lib/prng';

/** A demo table and its share of the changes (the workload's mix). */
const TABLES = [
  { name: 'orders', share: 0.3 },
  { name: 'order_items', share: 0.3 },
  { name: 'customers', share: 0.1 },
  { name: 'products', share: 0.05 },
  { name: 'page_views', share: 0.25 },
] as const;

export interface DemoChange {
  event: ChangeEvent;
  columns: ColumnTypes;
}

export interface DemoOptions {
  count: number;
  seed?: number;
  /** Commit time of the first change. */
  startMs: number;
  /** Changes per second. @default 200 */
  ratePerSec?: number;
  /** Partitions per topic. @default 3 */
  partitions?: number;
  /** Only these demo tables (their shares rescaled). @default all five */
  tables?: readonly string[];
}

interface DemoTable {
  name: string;
  share: number;
  columns: ColumnTypes;
  keyColumns: string[];
  rows: Map<string, Row>;
}

function loadTable(name: string, share: number): DemoTable {
  const entry = JSON.parse(readFileSync(join(REPO_ROOT, 'schemas', `public.${name}.json`), 'utf8')) as {
    key?: { versions: Array<{ schema: AvroSchema }> };
    value: { versions: Array<{ schema: AvroSchema }> };
  };
  const value = entry.value.versions.at(-1)?.schema as AvroSchema;
  const columns = compileValueSchema(avroToConnect(value)).row?.columns ?? new Map();
  const key = entry.key?.versions.at(-1)?.schema;
  const keyColumns = key === undefined ? [] : [...(compileKeySchema(avroToConnect(key))?.columns.keys() ?? [])];
  return { name, share, columns, keyColumns, rows: new Map() };
}

/** A value of the canonical form the decoder gives a column of this type (what the sink receives). */
function sampleValue(type: ColumnType, rng: Prng, at: number): unknown {
  switch (type) {
    case 'boolean':
      return rng.chance(0.5);
    case 'int32':
      return rng.int(0, 10_000);
    case 'int64':
      return rng.int(1, 1_000_000);
    case 'double':
      return rng.int(0, 100_000) / 100;
    case 'decimal':
      return `${rng.int(0, 99_999)}.${pad(rng.int(0, 99), 2)}`;
    case 'date':
      return new Date(at - rng.int(0, 3650) * 86_400_000).toISOString().slice(0, 10);
    case 'timestamp':
      return new Date(at).toISOString().slice(0, 23);
    case 'timestamptz':
      return `${new Date(at).toISOString().slice(0, 23)}000Z`;
    case 'time':
      return '12:34:56.789';
    case 'json':
      return { colour: rng.pick(['red', 'green', 'blue']), size: rng.int(1, 50), tags: ['a', 'b'] };
    case 'bytes':
      return Buffer.from(String(rng.uint32())).toString('base64');
    default:
      return `${rng.pick(['alpha', 'bravo', 'charlie', 'delta', 'echo'])}-${rng.uint32().toString(36)}`;
  }
}

/** A row of the table with fresh values (the key columns from `key` when given). */
function rowOf(table: DemoTable, rng: Prng, at: number, key?: Row): Row {
  const row: Row = {};
  for (const [column, type] of table.columns) row[column] = key?.[column] ?? sampleValue(type, rng, at);
  return row;
}

/**
 * `count` changes over the demo tables in commit order: inserts, then updates and deletes of rows inserted earlier
 * (about 60 % inserts, 30 % updates, 10 % deletes; page_views, which has no key, only inserts).
 */
export function demoChanges(options: DemoOptions): DemoChange[] {
  const rng = new Prng(options.seed ?? 42);
  const rate = options.ratePerSec ?? 200;
  const partitions = options.partitions ?? 3;
  const chosen = TABLES.filter((t) => options.tables?.includes(t.name) ?? true);
  const total = chosen.reduce((sum, t) => sum + t.share, 0);
  const tables = chosen.map((t) => loadTable(t.name, t.share / total));
  const offsets = new Map<string, number>();
  const changes: DemoChange[] = [];
  for (let i = 0; i < options.count; i++) {
    const at = options.startMs + Math.floor((i * 1000) / rate);
    const table = pickTable(tables, rng.next());
    const keyed = table.keyColumns.length > 0;
    const existing = keyed && table.rows.size > 0 ? [...table.rows.keys()] : [];
    const roll = rng.next();
    const op = existing.length === 0 || roll < 0.6 ? 'c' : roll < 0.9 ? 'u' : 'd';
    let before: Row | null = null;
    let after: Row | null;
    if (op === 'c') {
      after = rowOf(table, rng, at);
    } else {
      const id = rng.pick(existing);
      before = table.rows.get(id) as Row;
      after = op === 'd' ? null : rowOf(table, rng, at, before);
    }
    const image = (after ?? before) as Row;
    const key = keyed ? Object.fromEntries(table.keyColumns.map((k) => [k, image[k]])) : null;
    const keyText = JSON.stringify(key);
    if (keyed && after) table.rows.set(keyText, after);
    if (op === 'd') table.rows.delete(keyText);
    const topic = `pg.public.${table.name}`;
    const partition = keyed ? hash(keyText) % partitions : i % partitions;
    const tp = `${topic}-${partition}`;
    const offset = offsets.get(tp) ?? 0;
    offsets.set(tp, offset + 1);
    const lsn = 1_000_000 + i * 64;
    changes.push({
      columns: table.columns,
      event: {
        id: `${topic}:lsn=${lsn}:${keyText}`,
        op,
        source: {
          connector: 'postgresql',
          name: 'pg',
          db: 'shop',
          schema: 'public',
          table: table.name,
          position: { lsn: String(lsn) },
          order: `pg:1:${pad(lsn, 20)}:${pad(lsn, 20)}`,
          snapshot: 'false',
          txId: String(700 + i),
          commitTs: at,
        },
        key,
        before,
        after,
        unchanged: [],
        kafka: { topic, partition, offset, timestamp: at + 5 },
        capturedAt: at + 5,
        processedAt: at + 50,
      },
    });
  }
  return changes;
}

/** The table whose share the point `at` (0–1) falls into. */
function pickTable(tables: readonly DemoTable[], at: number): DemoTable {
  let left = at;
  for (const table of tables) {
    left -= table.share;
    if (left < 0) return table;
  }
  return tables.at(-1) as DemoTable;
}

function hash(text: string): number {
  let h = 0;
  for (let i = 0; i < text.length; i++) h = (Math.imul(h, 31) + text.charCodeAt(i)) >>> 0;
  return h;
}

/**
 * Writes the changes through the sink as the warehouse lane would: per batching window (by commit time), one sink
 * partition per topic-partition. Returns the number of sink writes (partitions of batches).
 */
export async function writeAsTheLane(
  sink: S3WarehouseSink,
  changes: readonly DemoChange[],
  windowMs = 500,
): Promise<number> {
  const windows = new Map<number, Map<string, DemoChange[]>>();
  for (const change of changes) {
    const window = Math.floor((change.event.source.commitTs ?? 0) / windowMs);
    const byPartition = windows.get(window) ?? new Map<string, DemoChange[]>();
    const id = `${change.event.kafka.topic}-${change.event.kafka.partition}`;
    byPartition.set(id, [...(byPartition.get(id) ?? []), change]);
    windows.set(window, byPartition);
  }
  let writes = 0;
  for (const byPartition of windows.values()) {
    await Promise.all(
      [...byPartition].map(async ([id, slice]) => {
        const first = slice[0]?.event.kafka as ChangeEvent['kafka'];
        const result = await sink.write({
          partition: { id, topic: first.topic, partition: first.partition, records: [] },
          events: slice.map((c) => c.event),
          columns: slice.map((c) => c.columns),
          state: undefined,
        });
        if (!result.ok) throw result.error;
        writes++;
      }),
    );
  }
  return writes;
}
