/**
 * Per-table Connect schemas and row encoding. Everything that does not depend on a row (the key schema, the whole
 * envelope schema text, each column's `"name":` prefix and its null/default JSON) is built once per table, so
 * encoding a change is a loop of string concatenations.
 */
import type { Catalog, CatalogTable } from './catalog';
import { type Codec, codecFor, debeziumTypeName, defaultJson } from './codecs';
import { jsonString } from './json';
import { type Tuple, UNCHANGED_TOAST } from './pgoutput';

/** Debezium version whose event format this capture reproduces (see README of the capture module). */
export const DEBEZIUM_VERSION = '3.1.3.Final';

/**
 * `io.debezium.connector.postgresql.Source` as Debezium 3.1 declares it (SchemaFactory.sourceInfoSchemaBuilder +
 * PostgresSourceInfoStructMaker), copied from a real 3.1.3.Final event: common fields, then schema, table, txId,
 * lsn, xmin. The snapshot enum lists first_in_data_collection/last_in_data_collection (Debezium >= 2.6).
 */
export const SOURCE_SCHEMA_JSON =
  '{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},"default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":true,"field":"sequence"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"},{"type":"int64","optional":true,"field":"xmin"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","version":1,"field":"source"}';

/** The `transaction` block schema (SchemaFactory.transactionBlockSchema), present even when metadata is off. */
const TRANSACTION_SCHEMA_JSON =
  '{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"name":"event.block","version":1,"field":"transaction"}';

/** Envelope fields after source/transaction, in Envelope schema version 2 order. */
const ENVELOPE_TAIL_JSON =
  '{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"}';

/** Source column as the table schema needs it: name, type, typmod and catalog facts. */
export interface ColumnSource {
  name: string;
  typeOid: number;
  typmod: number;
}

interface ColumnSpec {
  name: string;
  typeOid: number;
  typmod: number;
  codec: Codec;
  /** `"name":` (JSON-escaped), prepended to each value. */
  prefix: string;
  /**
   * JSON written for SQL NULL. JsonConverter writes a field's schema default when the value is null, and
   * JdbcValueConverters substitutes the default or a type fallback for NULL in NOT NULL columns.
   */
  nullJson: string;
  schemaJson: string;
}

/**
 * Debezium's DefaultTopicNamingStrategy replaces characters Kafka does not allow in topic names with `_`.
 */
export function sanitizeTopic(name: string): string {
  return name.replace(/[^a-zA-Z0-9._-]/g, '_');
}

/** Connect schema, key and row encoding for one captured table. */
export class TableSchema {
  readonly oid: number;
  readonly schema: string;
  readonly table: string;
  /** `<prefix>.<schema>.<table>` */
  readonly topic: string;
  readonly columns: ColumnSpec[];
  /** Indexes of primary-key columns (in key order); empty when the table has no primary key. */
  readonly keyIndexes: number[];
  /** `{"schema":<envelope schema>,"payload":` — the fixed start of every value. */
  readonly valuePrefix: string;
  /** `{"schema":<key schema>,"payload":` or null when the table has no key. */
  readonly keyPrefix: string | null;
  /** `,"schema":"...","table":"...","txId":` — the table part of the source block. */
  readonly sourceTableJson: string;

  constructor(
    prefix: string,
    table: Pick<CatalogTable, 'oid' | 'schema' | 'name' | 'primaryKey'>,
    columns: ColumnSpec[],
  ) {
    this.oid = table.oid;
    this.schema = table.schema;
    this.table = table.name;
    this.topic = sanitizeTopic(`${prefix}.${table.schema}.${table.name}`);
    this.columns = columns;
    this.keyIndexes = table.primaryKey.map((name) => columns.findIndex((c) => c.name === name)).filter((i) => i >= 0);
    const schemaName = `${prefix}.${table.schema}.${table.name}`;
    const fields = columns.map((c) => c.schemaJson).join(',');
    const valueStruct = `{"type":"struct","fields":[${fields}],"optional":true,"name":${jsonString(`${schemaName}.Value`)}`;
    const envelope =
      `{"type":"struct","fields":[${valueStruct},"field":"before"},${valueStruct},"field":"after"},` +
      `${SOURCE_SCHEMA_JSON},${TRANSACTION_SCHEMA_JSON},${ENVELOPE_TAIL_JSON}],"optional":false,` +
      `"name":${jsonString(`${schemaName}.Envelope`)},"version":2}`;
    this.valuePrefix = `{"schema":${envelope},"payload":`;
    if (this.keyIndexes.length > 0) {
      const keyFields = this.keyIndexes.map((i) => columns[i]?.schemaJson).join(',');
      this.keyPrefix = `{"schema":{"type":"struct","fields":[${keyFields}],"optional":false,"name":${jsonString(`${schemaName}.Key`)}},"payload":`;
    } else {
      this.keyPrefix = null;
    }
    this.sourceTableJson = `,"schema":${jsonString(table.schema)},"table":${jsonString(table.name)},"txId":`;
  }

  /** True when the pgoutput relation columns are the ones this schema was built for. */
  matches(columns: ColumnSource[]): boolean {
    if (columns.length !== this.columns.length) return false;
    return columns.every((c, i) => {
      const own = this.columns[i];
      return own !== undefined && own.name === c.name && own.typeOid === c.typeOid && own.typmod === c.typmod;
    });
  }

  /**
   * The row as JSON. `toastSource` is the old tuple of an UPDATE under REPLICA IDENTITY FULL: Debezium
   * (PostgresChangeRecordEmitter) takes an unchanged TOASTed value from it when it has one, otherwise writes the
   * unavailable-value placeholder.
   */
  rowJson(tuple: Tuple, toastSource: Tuple | null = null): string {
    let out = '{';
    const cols = this.columns;
    for (let i = 0; i < cols.length; i++) {
      const col = cols[i] as ColumnSpec;
      let v = tuple[i];
      if (v === UNCHANGED_TOAST && toastSource) {
        const old = toastSource[i];
        if (typeof old === 'string') v = old;
      }
      const json =
        v === null || v === undefined
          ? col.nullJson
          : v === UNCHANGED_TOAST
            ? col.codec.placeholder
            : col.codec.encode(v);
      out += i === 0 ? col.prefix + json : `,${col.prefix}${json}`;
    }
    return `${out}}`;
  }

  /** The key payload (`{"id":1}`), or null for tables without a primary key. */
  keyPayload(tuple: Tuple): string | null {
    if (this.keyIndexes.length === 0) return null;
    let out = '{';
    for (let k = 0; k < this.keyIndexes.length; k++) {
      const i = this.keyIndexes[k] as number;
      const col = this.columns[i] as ColumnSpec;
      const v = tuple[i];
      const json = typeof v === 'string' ? col.codec.encode(v) : col.nullJson;
      out += k === 0 ? col.prefix + json : `,${col.prefix}${json}`;
    }
    return `${out}}`;
  }

  /** The full key record text (`{"schema":...,"payload":...}`) for a key payload. */
  keyRecord(payload: string): string {
    return `${this.keyPrefix}${payload}}`;
  }
}

/**
 * Builds a table schema from the catalog, optionally for the column list pgoutput announced in a Relation message
 * (which is what the tuples that follow carry).
 */
export async function buildTableSchema(
  prefix: string,
  catalog: Catalog,
  table: CatalogTable,
  relationColumns?: ColumnSource[],
): Promise<TableSchema> {
  const sources: ColumnSource[] = relationColumns ?? table.columns;
  await catalog.ensureTypes(sources.map((c) => c.typeOid));
  const specs: ColumnSpec[] = sources.map((source) => {
    const facts = table.columns.find((c) => c.name === source.name);
    const notNull = facts?.notNull ?? false;
    const codec = codecFor(catalog, source.typeOid, source.typmod);
    const type = catalog.type(source.typeOid);
    const def = defaultJson(
      codec,
      debeziumTypeName(type, facts?.serial ?? false),
      type.typtype === 'e',
      facts?.defaultExpr ?? null,
    );
    const optional = !notNull;
    const schemaJson =
      `{${codec.typeJson},"optional":${optional}${codec.logicalJson}` +
      `${def === undefined ? '' : `,"default":${def}`},"field":${jsonString(source.name)}}`;
    return {
      name: source.name,
      typeOid: source.typeOid,
      typmod: source.typmod,
      codec,
      prefix: `${jsonString(source.name)}:`,
      nullJson: def ?? (optional ? 'null' : codec.fallback),
      schemaJson,
    };
  });
  return new TableSchema(prefix, table, specs);
}
