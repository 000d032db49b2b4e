import { createHash } from 'node:crypto';
import type { SchemaColumn, TableSchemaVersion } from '../types';

/** The parts of a Kafka Connect field schema a table's schema version is made of. */
export interface ConnectFieldSchema {
  type?: string;
  name?: string;
  optional?: boolean;
  field?: string;
  fields?: ConnectFieldSchema[];
  items?: ConnectFieldSchema;
  keys?: ConnectFieldSchema;
  values?: ConnectFieldSchema;
  parameters?: Record<string, string>;
  default?: unknown;
}

/**
 * JSON with object keys sorted at every level, so equal values give equal text whatever order they were sent in.
 * Hand-written (a few lines, run once per distinct schema) rather than a dependency for one call site.
 */
function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const object = value as Record<string, unknown>;
  const entries = Object.keys(object)
    .filter((key) => object[key] !== undefined)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalJson(object[key])}`);
  return `{${entries.join(',')}}`;
}

function sortedParameters(parameters: Record<string, string>): Record<string, string> {
  const sorted: Record<string, string> = {};
  for (const key of Object.keys(parameters).sort()) sorted[key] = parameters[key] as string;
  return sorted;
}

/**
 * The type of a field as text. Leaves are their Connect type; containers spell what they hold
 * (`array<int64>`, `map<string,int32>`, `struct<a:int32,b:string>`), element types by logical name when they have
 * one, with their parameters: `int[]` → `bigint[]` or a `numeric(10,2)[]` → `numeric(10,3)[]` is a new version.
 */
function typeText(schema: ConnectFieldSchema, nested: boolean): string {
  const type = schema.type ?? 'unknown';
  let text: string;
  switch (type) {
    case 'array':
      text = `array<${schema.items ? typeText(schema.items, true) : 'unknown'}>`;
      break;
    case 'map':
      text = `map<${schema.keys ? typeText(schema.keys, true) : 'unknown'},${schema.values ? typeText(schema.values, true) : 'unknown'}>`;
      break;
    case 'struct':
      text = `struct<${(schema.fields ?? []).map((f) => `${f.field}:${typeText(f, true)}`).join(',')}>`;
      break;
    default:
      text = nested && schema.name ? schema.name : type;
  }
  if (nested && schema.parameters && Object.keys(schema.parameters).length > 0) {
    text += canonicalJson(schema.parameters);
  }
  return text;
}

/** One column of a row struct as a schema version describes it. */
function columnOf(field: ConnectFieldSchema & { field: string }): SchemaColumn {
  const column: SchemaColumn = { name: field.field, type: typeText(field, false), optional: field.optional === true };
  if (field.name !== undefined) column.logical = field.name;
  if (field.default !== undefined) column.default = field.default;
  if (field.parameters !== undefined && Object.keys(field.parameters).length > 0) {
    column.parameters = sortedParameters(field.parameters);
  }
  return column;
}

/**
 * The schema version of a table's row struct (the `after`/`before` schema of an envelope, or a flattened row's
 * schema without its `__` metadata columns). Built once per distinct schema text when the schema is compiled, never
 * per record. The fingerprint is the first 16 hex characters of the SHA-256 of the canonical JSON of the columns:
 * column order is part of it (a table re-created with its columns in another order is another shape).
 */
export function schemaVersionOf(
  row: ConnectFieldSchema,
  include: (column: string) => boolean = () => true,
): TableSchemaVersion {
  const columns: SchemaColumn[] = [];
  for (const field of row.fields ?? []) {
    if (typeof field.field !== 'string' || !include(field.field)) continue;
    columns.push(columnOf(field as ConnectFieldSchema & { field: string }));
  }
  const fingerprint = createHash('sha256').update(canonicalJson(columns)).digest('hex').slice(0, 16);
  return { fingerprint, columns };
}
