import * as z from 'zod/mini';
import '../zod';
import { tableIdOf } from '../change';
import { DecodeError } from '../errors';
import type { ChangeSource, KafkaRecord, SchemaChangeRecord } from '../types';
import { describeIssues, SourceBlockSchema } from './envelope';
import { readSource, type SourceBlock } from './source';

/**
 * Debezium's schema-change topic (`<topic.prefix>`, MySQL/MariaDB and SQL Server; PostgreSQL has none): a
 * `SchemaChangeValue` `{ source, ts_ms, databaseName, schemaName, ddl, tableChanges: [{ type, id, table }] }` where
 * `table` describes the table after the change (`{ primaryKeyColumnNames, columns: [{ name, typeName, length, scale,
 * position, optional, defaultValueExpression, ... }] }`). SQL Server never sends the DDL text. The format is
 * "incubating" upstream: only what the schema history needs is read, and checked with zod (these records are rare,
 * so its output objects cost nothing that matters).
 */
const nullishInt = z.nullish(z.number().check(z.int()));

const ColumnSchema = z.object({
  name: z.string(),
  typeName: z.string(),
  length: nullishInt,
  scale: nullishInt,
  position: nullishInt,
  optional: z.nullish(z.boolean()),
  defaultValueExpression: z.nullish(z.string()),
});

const TableChangeSchema = z.object({
  type: z.string().check(z.minLength(1)),
  id: z.string().check(z.minLength(1)),
  // A DROP may come without the table's description.
  table: z.nullish(
    z.object({
      primaryKeyColumnNames: z.nullish(z.array(z.string())),
      columns: z.nullish(z.array(ColumnSchema)),
    }),
  ),
});

export const SchemaChangeValueSchema = z.object({
  source: SourceBlockSchema,
  ddl: z.nullish(z.string()),
  tableChanges: z.array(TableChangeSchema),
});

/**
 * The parts of a Debezium table id (`TableId#toDoubleQuotedString`: `"db"."table"`, `"db"."schema"."table"`); a
 * doubled quote inside a part is a quote. Unquoted ids are split on dots.
 */
export function tableIdParts(id: string): string[] {
  if (!id.startsWith('"')) return id.split('.');
  const malformed = () => new DecodeError('INVALID_ENVELOPE', `tableChanges id ${JSON.stringify(id)} is malformed`);
  const parts: string[] = [];
  let i = 0;
  while (i < id.length) {
    if (id[i] !== '"') throw malformed();
    let part = '';
    i++;
    for (;;) {
      if (i >= id.length) throw malformed();
      if (id[i] === '"') {
        if (id[i + 1] !== '"') break;
        i++; // a doubled quote stands for one
      }
      part += id[i];
      i++;
    }
    parts.push(part);
    i++; // the closing quote
    if (i < id.length) {
      if (id[i] !== '.') throw malformed();
      i++;
    }
  }
  return parts;
}

/**
 * Where a table id's parts go in a ChangeSource, so `tableIdOf` names the table as it names the table's change
 * events (and topic): three parts are catalog, schema, table (SQL Server); two are database and table for MySQL and
 * MariaDB (no schemas), schema and table elsewhere.
 */
function placeTable(source: ChangeSource, id: string): ChangeSource {
  const parts = tableIdParts(id);
  const table = parts.at(-1) ?? null;
  if (parts.length >= 3) return { ...source, db: parts.at(-3) ?? null, schema: parts.at(-2) ?? null, table };
  if (parts.length === 2) {
    if (source.connector === 'mysql' || source.connector === 'mariadb') {
      return { ...source, db: parts[0] ?? null, schema: null, table };
    }
    return { ...source, schema: parts[0] ?? null, table };
  }
  return { ...source, table };
}

/**
 * One SchemaChangeRecord per `tableChanges` entry of a schema-change record, in order (a DDL naming no table, e.g.
 * `CREATE DATABASE`, gives none). Each carries the record's source position and order (where the DDL happened in
 * the log) and the table as its change events name it. Throws INVALID_ENVELOPE when the value is not one.
 */
export function readSchemaChanges(payload: Record<string, unknown>, record: KafkaRecord): SchemaChangeRecord[] {
  const parsed = SchemaChangeValueSchema.safeParse(payload);
  if (!parsed.success) throw new DecodeError('INVALID_ENVELOPE', describeIssues(parsed.error, 'schema change'));
  const kafka = { topic: record.topic, partition: record.partition, offset: record.offset };
  // The position fields are read from the payload's own block (zod's output keeps only the checked fields).
  const source = readSource(payload.source as SourceBlock, kafka);
  return parsed.data.tableChanges.map((change) => {
    const columns = (change.table?.columns ?? []).map((column) => {
      const out: SchemaChangeRecord['columns'][number] = {
        name: column.name,
        typeName: column.typeName,
        // Debezium's Column default: nullable unless said otherwise.
        optional: column.optional !== false,
      };
      if (typeof column.length === 'number') out.length = column.length;
      if (typeof column.scale === 'number') out.scale = column.scale;
      if (typeof column.defaultValueExpression === 'string') out.defaultValueExpression = column.defaultValueExpression;
      if (typeof column.position === 'number') out.position = column.position;
      return out;
    });
    const placed = placeTable(source, change.id);
    return {
      table: tableIdOf(placed),
      type: change.type,
      ddl: parsed.data.ddl ?? null,
      source: placed,
      columns,
      primaryKey: change.table?.primaryKeyColumnNames ?? [],
      kafka: { ...kafka, timestamp: record.timestamp },
    };
  });
}
