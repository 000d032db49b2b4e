import type { ColumnType, ColumnTypes, Row, TableSchemaVersion } from '../types';
import {
  dateFromDays,
  decimalValue,
  jsonValue,
  naiveTimestamp,
  timeOfDay,
  variableScaleDecimal,
  zonedTimestamp,
} from './logical';
import { type ConnectFieldSchema, schemaVersionOf } from './schema-version';

/** A Kafka Connect schema as JsonConverter writes it. */
type ConnectSchema = ConnectFieldSchema;

type Convert = (value: unknown) => unknown;

/** How to turn the rows of one struct schema into canonical rows: only columns that need work are listed. */
export interface RowPlan {
  readonly columns: ColumnTypes;
  readonly converters: ReadonlyArray<readonly [string, Convert]>;
  /** Columns whose JSON numbers a double might not hold (int64, floats, NUMERIC decimals, arrays of those). */
  readonly numeric: readonly string[];
}

/** What a value schema says about the records that carry it. */
export interface ValuePlan {
  /** `envelope`: Debezium change event; `row`: a flattened row (ExtractNewRecordState); `other`: control records. */
  readonly kind: 'envelope' | 'row' | 'other';
  readonly name: string | undefined;
  readonly row: RowPlan | undefined;
  /** The table's schema version (the row struct), built once with the plan; absent for control records. */
  readonly schema?: TableSchemaVersion;
}

const UNITS = { ms: 1_000, us: 1_000_000, ns: 1_000_000_000 } as const;

/** The converter and canonical column type for one field schema. */
function fieldPlan(schema: ConnectSchema): { convert?: Convert; type: ColumnType } {
  switch (schema.name) {
    case 'org.apache.kafka.connect.data.Decimal': {
      const scale = Number(schema.parameters?.scale ?? 0);
      return { convert: (v) => decimalValue(v, scale), type: 'decimal' };
    }
    case 'io.debezium.data.VariableScaleDecimal':
      return { convert: variableScaleDecimal, type: 'decimal' };
    case 'io.debezium.time.Date':
    case 'org.apache.kafka.connect.data.Date':
      return { convert: dateFromDays, type: 'date' };
    case 'io.debezium.time.Timestamp':
    case 'org.apache.kafka.connect.data.Timestamp':
      return { convert: (v) => naiveTimestamp(v, UNITS.ms), type: 'timestamp' };
    case 'io.debezium.time.MicroTimestamp':
      return { convert: (v) => naiveTimestamp(v, UNITS.us), type: 'timestamp' };
    case 'io.debezium.time.NanoTimestamp':
      return { convert: (v) => naiveTimestamp(v, UNITS.ns), type: 'timestamp' };
    case 'io.debezium.time.ZonedTimestamp':
      return { convert: zonedTimestamp, type: 'timestamptz' };
    case 'io.debezium.time.Time':
    case 'org.apache.kafka.connect.data.Time':
      return { convert: (v) => timeOfDay(v, UNITS.ms), type: 'time' };
    case 'io.debezium.time.MicroTime':
      return { convert: (v) => timeOfDay(v, UNITS.us), type: 'time' };
    case 'io.debezium.time.NanoTime':
      return { convert: (v) => timeOfDay(v, UNITS.ns), type: 'time' };
    case 'io.debezium.data.Json':
      return { convert: jsonValue, type: 'json' };
    default:
      break;
  }
  switch (schema.type) {
    case 'boolean':
      return { type: 'boolean' };
    case 'int8':
    case 'int16':
    case 'int32':
      return { type: 'int32' };
    case 'int64':
      return { type: 'int64' };
    // JsonConverter writes "float"/"double" (Connect's FLOAT32/FLOAT64); accept both spellings.
    case 'float':
    case 'double':
    case 'float32':
    case 'float64':
      // json.ts hands over a double it could not hold exactly as text; the column is a double, so make it one.
      return {
        convert: (v) => (typeof v === 'string' && v !== 'NaN' && !Number.isNaN(Number(v)) ? Number(v) : v),
        type: 'double',
      };
    case 'bytes':
      return { type: 'bytes' };
    case 'array': {
      const item = schema.items ? fieldPlan(schema.items) : undefined;
      const convertItem = item?.convert;
      return {
        convert: convertItem
          ? (v) => (Array.isArray(v) ? v.map((x) => (x == null ? x : convertItem(x))) : v)
          : undefined,
        type: 'json',
      };
    }
    case 'struct': {
      const nested = compileRowPlan(schema);
      return { convert: nested.converters.length ? (v) => convertStruct(v, nested) : undefined, type: 'json' };
    }
    case 'map':
      return { type: 'json' };
    default:
      // Strings and string-encoded logical types (Uuid, Enum, ZonedTime, Xml, Interval in string mode, ...).
      return { type: 'string' };
  }
}

function convertStruct(value: unknown, plan: RowPlan): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  applyRowPlan(value as Row, plan);
  return value;
}

/** Whether a field's JSON value can be a number JSON.parse might round (int8–int32 and strings cannot). */
function mayHoldLongNumbers(schema: ConnectSchema): boolean {
  switch (schema.type) {
    case 'int64':
    case 'float':
    case 'double':
    case 'float32':
    case 'float64':
    case 'bytes': // a Decimal in decimal.format=NUMERIC
    case 'struct':
    case 'map':
      return true;
    case 'array':
      return schema.items ? mayHoldLongNumbers(schema.items) : true;
    default:
      return false;
  }
}

/** Compiles a struct schema (a table's row or key) once; the plan is reused for every record with that schema. */
export function compileRowPlan(schema: ConnectSchema): RowPlan {
  const columns = new Map<string, ColumnType>();
  const converters: Array<readonly [string, Convert]> = [];
  const numeric: string[] = [];
  for (const field of schema.fields ?? []) {
    if (typeof field.field !== 'string') continue;
    const { convert, type } = fieldPlan(field);
    columns.set(field.field, type);
    if (convert) converters.push([field.field, convert]);
    if (mayHoldLongNumbers(field)) numeric.push(field.field);
  }
  return { columns, converters, numeric };
}

/** Converts a row's logical-type columns in place. Nulls stay null. */
export function applyRowPlan(row: Row, plan: RowPlan): void {
  for (const [column, convert] of plan.converters) {
    const value = row[column];
    if (value !== null && value !== undefined) row[column] = convert(value);
  }
}

function fieldNamed(schema: ConnectSchema, name: string): ConnectSchema | undefined {
  return schema.fields?.find((f) => f.field === name);
}

/** Compiles the value schema of a record. A null or non-struct schema means "no schema": values pass as they are. */
export function compileValueSchema(schema: unknown): ValuePlan {
  if (schema === null || typeof schema !== 'object') return { kind: 'other', name: undefined, row: undefined };
  const s = schema as ConnectSchema;
  if (s.type !== 'struct') return { kind: 'other', name: s.name, row: undefined };
  const op = fieldNamed(s, 'op');
  const source = fieldNamed(s, 'source');
  if (op && source) {
    const rowSchema = fieldNamed(s, 'after') ?? fieldNamed(s, 'before');
    if (!rowSchema) return { kind: 'envelope', name: s.name, row: undefined };
    return { kind: 'envelope', name: s.name, row: compileRowPlan(rowSchema), schema: schemaVersionOf(rowSchema) };
  }
  // A flattened row: its `__` columns are ExtractNewRecordState metadata (add.fields), not the table's.
  return { kind: 'row', name: s.name, row: compileRowPlan(s), schema: schemaVersionOf(s, isTableColumn) };
}

function isTableColumn(column: string): boolean {
  return !column.startsWith('__');
}

/** Compiles a key schema (a struct of the key columns). */
export function compileKeySchema(schema: unknown): RowPlan | undefined {
  if (schema === null || typeof schema !== 'object') return undefined;
  const s = schema as ConnectSchema;
  return s.type === 'struct' ? compileRowPlan(s) : undefined;
}
