import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { type AvroSchema, avroToConnect } from '../../functions/core/decode/avro';
import { compileKeySchema, compileValueSchema } from '../../functions/core/decode/connect-schema';
import type { ColumnType } from '../../functions/core/types';

/**
 * The Glue columns of a table's change log, as the warehouse lane writes them (functions/adapters/change-log-parquet.ts):
 * the `_cdc_*` metadata columns first, then the table's own columns typed from the committed schema catalog
 * (`schemas/<schema|db>.<table>.json`, the latest registered value schema, read back into the Connect schema the
 * connector sends and compiled by the lane's own decoder, so the column types are the ones the lane writes).
 *
 * Parquet → Hive types: INT32 `int`, INT64 `bigint`, DOUBLE `double`, BOOLEAN `boolean`, DATE `date`, both
 * TIMESTAMP kinds `timestamp`; everything the writer stores as text (decimals as exact strings, times, base64 bytes,
 * JSON, enums, UUIDs) `string`. Parquet columns are matched by name, so a file written before a column was added reads
 * it as null.
 */

export interface GlueColumn {
  readonly name: string;
  readonly type: string;
  readonly comment?: string;
}

/** The metadata columns, in the writer's order, with the Hive type of what it writes. */
export const CHANGE_LOG_META_COLUMNS: readonly GlueColumn[] = [
  { name: '_cdc_id', type: 'string', comment: 'stable id of the change (idempotency key)' },
  { name: '_cdc_op', type: 'string', comment: 'c create, u update, d delete, r snapshot read, t truncate' },
  { name: '_cdc_order', type: 'string', comment: 'source order: compare as text to order changes of a source' },
  { name: '_cdc_position', type: 'string', comment: "the connector's position, JSON" },
  { name: '_cdc_table', type: 'string', comment: 'table id <prefix>.<schema|db>.<table>' },
  { name: '_cdc_tx_id', type: 'string' },
  { name: '_cdc_snapshot', type: 'string' },
  { name: '_cdc_commit_ts', type: 'timestamp', comment: 'when the source committed the change (UTC)' },
  { name: '_cdc_captured_at', type: 'timestamp' },
  { name: '_cdc_processed_at', type: 'timestamp', comment: 'when the warehouse lane processed the change' },
  { name: '_cdc_topic', type: 'string' },
  { name: '_cdc_partition', type: 'int' },
  { name: '_cdc_offset', type: 'bigint' },
  { name: '_cdc_key', type: 'string', comment: 'the row key, JSON' },
  { name: '_cdc_unchanged', type: 'string', comment: 'columns Debezium did not send (TOAST), JSON array' },
  { name: '_cdc_before', type: 'string', comment: 'the row before the change, JSON' },
];

const HIVE_TYPE: Record<ColumnType, string> = {
  boolean: 'boolean',
  int32: 'int',
  int64: 'bigint',
  double: 'double',
  date: 'date',
  timestamp: 'timestamp',
  timestamptz: 'timestamp',
  string: 'string',
  decimal: 'string',
  time: 'string',
  json: 'string',
  bytes: 'string',
};

/** What the catalog says about a table's columns and key. */
export interface CatalogTableSchema {
  /** The table's own columns (no metadata), as the change log names them. */
  readonly columns: readonly GlueColumn[];
  /** Primary key columns; empty for a table without a key (Debezium writes null keys). */
  readonly keyColumns: readonly string[];
}

interface CatalogSubjectFile {
  readonly versions: ReadonlyArray<{ readonly schema: AvroSchema }>;
}

interface CatalogFile {
  readonly table?: unknown;
  readonly key?: CatalogSubjectFile;
  readonly value?: CatalogSubjectFile;
}

/** A catalog file that exists but cannot be used: synth stops with its name (a broken file is a mistake to fix). */
export class SchemaCatalogError extends Error {
  override readonly name = 'SchemaCatalogError';
}

const META_NAMES = new Set(CHANGE_LOG_META_COLUMNS.map((c) => c.name));

/** The name the writer gives a table column (a column named like a metadata column gets a trailing `_`). */
function changeLogName(column: string): string {
  return META_NAMES.has(column) ? `${column}_` : column;
}

/**
 * The columns and key of `table` (`<schema|db>.<table>`) from `<dir>/<table>.json`, or undefined when the catalog has
 * no file for it. `dir` is relative to `root`.
 */
export function catalogTableSchema(root: string, dir: string, table: string): CatalogTableSchema | undefined {
  const file = path.join(root, dir, `${table}.json`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let entry: CatalogFile;
  try {
    entry = JSON.parse(text) as CatalogFile;
  } catch (error) {
    throw new SchemaCatalogError(`${file}: not JSON (${(error as Error).message})`);
  }
  const value = entry.value?.versions?.at(-1)?.schema;
  if (value === undefined) throw new SchemaCatalogError(`${file}: no value schema version`);
  const row = compileValueSchema(avroToConnect(value)).row;
  if (row === undefined) throw new SchemaCatalogError(`${file}: the latest value schema has no row (before/after)`);
  const columns = [...row.columns].map(([name, type]) => ({ name: changeLogName(name), type: HIVE_TYPE[type] }));
  const key = entry.key?.versions?.at(-1)?.schema;
  const keyColumns = key === undefined ? [] : [...(compileKeySchema(avroToConnect(key))?.columns.keys() ?? [])];
  return { columns, keyColumns: keyColumns.map(changeLogName) };
}
