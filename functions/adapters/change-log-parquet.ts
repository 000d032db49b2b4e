import { parquetWriteBuffer } from 'hyparquet-writer';
import { rowImageOf, tableIdOf } from '../core/change';
import type { ChangeEvent, ColumnType, ColumnTypes } from '../core/types';

/**
 * The warehouse's change-log file format: one Parquet row per change, `_cdc_*` metadata columns first, then the
 * table's columns (the `after` image, or `before` for deletes). Column types come from the Connect schema when the
 * converter sends one; otherwise they are inferred per file (numbers, booleans, everything else as text).
 *
 * Decimals stay exact strings (CAST in SQL when needed); naive timestamps are TIMESTAMP(MICROS) not adjusted to
 * UTC, zoned ones TIMESTAMP(MICROS) in UTC; JSON columns are JSON text. Columns Debezium did not send (TOAST) are
 * null here and listed in `_cdc_unchanged`: rebuild the latest value from earlier changes (see docs/operations.md, "Query the warehouse").
 */

type SchemaElement = NonNullable<Parameters<typeof parquetWriteBuffer>[0]['schema']>[number];

type Physical = 'boolean' | 'int32' | 'int64' | 'double' | 'string' | 'json' | 'date' | 'timestamp' | 'timestamptz';

/**
 * Per-column write options. A file holds one partition's changes of one table from one batch, often only a handful
 * of rows, so what costs per column chunk (dictionary trials, min/max statistics, offset indexes: Thrift metadata)
 * outweighs the rows. Statistics are kept where readers prune on them (commit time, offsets, op, order and the
 * table's own columns); ids, positions and JSON images are unique per row or never range-filtered, so they are
 * written PLAIN without statistics. Files have one page per column chunk, so an offset index has nothing to skip.
 */
interface ColumnOptions {
  encoding?: 'PLAIN';
  statistics?: false;
}
const UNIQUE: ColumnOptions = { encoding: 'PLAIN', statistics: false };
const NO_STATISTICS: ColumnOptions = { statistics: false };

const META: ReadonlyArray<{
  name: string;
  element: Omit<SchemaElement, 'name'>;
  value: (e: ChangeEvent) => unknown;
  options?: ColumnOptions;
}> = [
  { name: '_cdc_id', element: utf8(), value: (e) => e.id, options: UNIQUE },
  { name: '_cdc_op', element: utf8(), value: (e) => e.op },
  { name: '_cdc_order', element: utf8(), value: (e) => e.source.order },
  { name: '_cdc_position', element: json(), value: (e) => e.source.position, options: UNIQUE },
  { name: '_cdc_table', element: utf8(), value: (e) => tableIdOf(e.source), options: NO_STATISTICS },
  { name: '_cdc_tx_id', element: utf8(), value: (e) => e.source.txId, options: NO_STATISTICS },
  { name: '_cdc_snapshot', element: utf8(), value: (e) => e.source.snapshot, options: NO_STATISTICS },
  { name: '_cdc_commit_ts', element: timestamp('MILLIS', true), value: (e) => bigintOrNull(e.source.commitTs) },
  { name: '_cdc_captured_at', element: timestamp('MILLIS', true), value: (e) => bigintOrNull(e.capturedAt) },
  { name: '_cdc_processed_at', element: timestamp('MILLIS', true), value: (e) => BigInt(e.processedAt) },
  { name: '_cdc_topic', element: utf8(), value: (e) => e.kafka.topic, options: NO_STATISTICS },
  {
    name: '_cdc_partition',
    element: { type: 'INT32', repetition_type: 'OPTIONAL' },
    value: (e) => e.kafka.partition,
  },
  {
    name: '_cdc_offset',
    element: { type: 'INT64', repetition_type: 'OPTIONAL' },
    value: (e) => BigInt(e.kafka.offset),
  },
  { name: '_cdc_key', element: json(), value: (e) => e.key, options: UNIQUE },
  { name: '_cdc_unchanged', element: json(), value: (e) => e.unchanged, options: NO_STATISTICS },
  { name: '_cdc_before', element: json(), value: (e) => e.before, options: UNIQUE },
];

export const META_COLUMNS = META.map((m) => m.name);

function utf8(): Omit<SchemaElement, 'name'> {
  return { type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' };
}
function json(): Omit<SchemaElement, 'name'> {
  return { type: 'BYTE_ARRAY', converted_type: 'JSON', repetition_type: 'OPTIONAL' };
}
function timestamp(unit: 'MILLIS' | 'MICROS', utc: boolean): Omit<SchemaElement, 'name'> {
  return {
    type: 'INT64',
    repetition_type: 'OPTIONAL',
    logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: utc, unit },
  };
}
function bigintOrNull(value: number | null): bigint | null {
  return value === null ? null : BigInt(Math.trunc(value));
}

const ELEMENT: Record<Physical, Omit<SchemaElement, 'name'>> = {
  boolean: { type: 'BOOLEAN', repetition_type: 'OPTIONAL' },
  int32: { type: 'INT32', repetition_type: 'OPTIONAL' },
  int64: { type: 'INT64', repetition_type: 'OPTIONAL' },
  double: { type: 'DOUBLE', repetition_type: 'OPTIONAL' },
  string: utf8(),
  json: json(),
  date: { type: 'INT32', converted_type: 'DATE', repetition_type: 'OPTIONAL' },
  timestamp: timestamp('MICROS', false),
  timestamptz: timestamp('MICROS', true),
};

function physicalOf(type: ColumnType): Physical {
  switch (type) {
    case 'boolean':
    case 'int32':
    case 'int64':
    case 'double':
    case 'json':
    case 'date':
    case 'timestamp':
    case 'timestamptz':
      return type;
    default:
      return 'string'; // decimal (exact text), time, bytes (base64), strings
  }
}

function inferred(value: unknown): Physical | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'number') return Number.isInteger(value) ? 'int64' : 'double';
  if (typeof value === 'string') return 'string';
  return 'json';
}

/** Two observed types of one column in one file: the narrowest type holding both. */
function widen(a: Physical | undefined, b: Physical | undefined): Physical | undefined {
  if (a === undefined || a === b) return b;
  if (b === undefined) return a;
  if ((a === 'int64' && b === 'double') || (a === 'double' && b === 'int64')) return 'double';
  if ((a === 'int32' && b === 'int64') || (a === 'int64' && b === 'int32')) return 'int64';
  return 'string';
}

/** Micros since the epoch of an ISO timestamp with any fraction width ("…T10:30:00.123456", with or without Z). */
function isoToMicros(iso: string): bigint | null {
  const dot = iso.indexOf('.', 19);
  const zone = iso.endsWith('Z') ? iso.length - 1 : iso.length;
  const seconds = dot < 0 ? iso.slice(0, zone) : iso.slice(0, dot);
  const ms = Date.parse(`${seconds}Z`);
  if (Number.isNaN(ms)) return null;
  const fraction = dot < 0 ? '' : iso.slice(dot + 1, zone);
  return BigInt(ms) * 1000n + BigInt((fraction + '000000').slice(0, 6));
}

function convert(value: unknown, type: Physical): unknown {
  if (value === null || value === undefined) return null;
  switch (type) {
    case 'boolean':
      return typeof value === 'boolean' ? value : null;
    case 'int32':
      return typeof value === 'number' ? value : Number(value);
    case 'int64':
      return typeof value === 'bigint' ? value : BigInt(value as number | string);
    case 'double':
      return typeof value === 'number' ? value : Number(value);
    case 'json':
      return value;
    case 'date':
      return typeof value === 'string' ? Math.floor(Date.parse(`${value}T00:00:00Z`) / 86_400_000) : null;
    case 'timestamp':
    case 'timestamptz':
      return typeof value === 'string' ? isoToMicros(value) : null;
    default:
      return typeof value === 'string' ? value : JSON.stringify(value);
  }
}

/** Builds one Parquet change-log file from the events of one table (in source order). */
export function changeLogParquet(
  events: readonly ChangeEvent[],
  columns: ReadonlyArray<ColumnTypes | undefined>,
): Uint8Array {
  const types = new Map<string, Physical | undefined>();
  events.forEach((event, i) => {
    const row = rowImageOf(event);
    const known = columns[i];
    for (const column of [...Object.keys(row ?? {}), ...event.unchanged]) {
      const declared = known?.get(column);
      const type = declared ? physicalOf(declared) : inferred(row?.[column]);
      types.set(column, types.has(column) ? widen(types.get(column), type) : type);
    }
  });
  const schema: SchemaElement[] = [{ name: 'root', num_children: META.length + types.size }];
  const columnData: Array<{ name: string; data: unknown[]; offsetIndex: false } & ColumnOptions> = [];
  for (const meta of META) {
    schema.push({ name: meta.name, ...meta.element });
    columnData.push({ name: meta.name, data: events.map(meta.value), offsetIndex: false, ...meta.options });
  }
  for (const [column, maybeType] of types) {
    // A column never seen with a value in this file (all null, or only unchanged) is written as text.
    const type = maybeType ?? 'string';
    const name = META_COLUMNS.includes(column) ? `${column}_` : column;
    schema.push({ name, ...ELEMENT[type] });
    columnData.push({
      name,
      data: events.map((e) => convert(rowImageOf(e)?.[column], type)),
      offsetIndex: false,
      ...(type === 'json' ? NO_STATISTICS : {}),
    });
  }
  const buffer = parquetWriteBuffer({
    columnData: columnData as Parameters<typeof parquetWriteBuffer>[0]['columnData'],
    schema,
    kvMetadata: [{ key: 'cdc-sync.format', value: 'change-log/1' }],
    createdBy: 'cdc-sync',
  });
  return new Uint8Array(buffer);
}
