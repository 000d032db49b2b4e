import type { AvroField, AvroSchema, AvroSchemaObject } from './avsc-types';

/**
 * Kafka Connect schemas ↔ the Avro schemas Confluent's AvroData (Debezium's AvroConverter, and Glue's
 * AWSKafkaAvroConverter, which reuses it) registers for them. AvroData keeps what Avro cannot say in properties:
 * `connect.name` (logical name: io.debezium.time.Date, org.apache.kafka.connect.data.Decimal, ...), `connect.version`,
 * `connect.doc`, `connect.parameters` (Decimal scale/precision, Enum allowed values), `connect.default` (the Connect
 * default) and `connect.type` (int8/int16, which Avro writes as int). An optional schema becomes the union
 * `["null", T]`, or `[T, "null"]` when it has a default; the field default is the Connect default, else null.
 *
 * `avroToConnect` reads them back into the Connect schema JsonConverter would have written (`{type, optional, name,
 * version, parameters, default, field, fields|items|keys+values}`), so the Avro path reuses the JSON path's compiled
 * plans and derives the same table schema versions. `connectToAvro` is AvroData's `fromConnectSchema` for what
 * Debezium produces (samples, the local registry run, the compatibility gate).
 */
export interface ConnectSchema {
  type: string;
  optional: boolean;
  name?: string;
  version?: number;
  doc?: string;
  parameters?: Record<string, string>;
  default?: unknown;
  field?: string;
  fields?: ConnectSchema[];
  items?: ConnectSchema;
  keys?: ConnectSchema;
  values?: ConnectSchema;
}

const PRIMITIVES = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string']);

/** Full names of the named types (records, enums, fixed) defined in a schema, for resolving references. */
function collectNamed(schema: AvroSchema, namespace: string | undefined, named: Map<string, AvroSchemaObject>): void {
  if (typeof schema === 'string') return;
  if (Array.isArray(schema)) {
    for (const branch of schema) collectNamed(branch, namespace, named);
    return;
  }
  let ns = namespace;
  if ((schema.type === 'record' || schema.type === 'enum' || schema.type === 'fixed') && schema.name) {
    const full = fullName(schema.name, schema.namespace ?? namespace);
    ns = full.includes('.') ? full.slice(0, full.lastIndexOf('.')) : undefined;
    named.set(full, schema);
  }
  if (typeof schema.type === 'object') collectNamed(schema.type, ns, named);
  for (const field of schema.fields ?? []) collectNamed(field.type, ns, named);
  if (schema.items) collectNamed(schema.items, ns, named);
  if (schema.values) collectNamed(schema.values, ns, named);
}

function fullName(name: string, namespace: string | undefined): string {
  return name.includes('.') || !namespace ? name : `${namespace}.${name}`;
}

/** Avro's JSON default of a bytes schema is ISO-8859-1 text; JsonConverter writes bytes as base64. */
function connectDefault(type: string, value: unknown): unknown {
  if (type === 'bytes' && typeof value === 'string') return Buffer.from(value, 'latin1').toString('base64');
  return value;
}

function typeOf(schema: AvroSchemaObject | string): string {
  const avroType = typeof schema === 'string' ? schema : schema.type;
  const connectType = typeof schema === 'string' ? undefined : schema['connect.type'];
  switch (avroType) {
    case 'int':
      return typeof connectType === 'string' ? connectType : 'int32';
    case 'long':
      return 'int64';
    case 'float':
      return 'float';
    case 'double':
      return 'double';
    case 'boolean':
    case 'string':
    case 'bytes':
      return avroType;
    case 'enum':
      return 'string';
    case 'fixed':
      return 'bytes';
    case 'record':
      return 'struct';
    case 'array':
      return 'array';
    case 'map':
      return 'map';
    default:
      throw new Error(`unsupported Avro type ${JSON.stringify(avroType)}`);
  }
}

/** Converts one (possibly union) Avro schema to the Connect schema; `fieldDefault` is the Avro field's default. */
function toConnect(
  schema: AvroSchema,
  named: ReadonlyMap<string, AvroSchemaObject>,
  namespace: string | undefined,
  fieldDefault?: unknown,
): ConnectSchema {
  let optional = false;
  let base = schema;
  if (Array.isArray(schema)) {
    const others = schema.filter((branch) => branch !== 'null');
    if (others.length !== 1 || others.length === schema.length) {
      throw new Error(`unsupported Avro union ${JSON.stringify(schema)} (Connect writes [null, T] only)`);
    }
    optional = true;
    base = others[0] as AvroSchema;
  }
  if (typeof base === 'string' && !PRIMITIVES.has(base)) {
    const resolved = named.get(fullName(base, namespace)) ?? named.get(base);
    if (!resolved) throw new Error(`unknown Avro type name ${base}`);
    base = resolved;
  }
  if (Array.isArray(base)) throw new Error('nested Avro unions are not Connect schemas');
  if (typeof base === 'object' && typeof base.type === 'object') {
    // `{"type": {"type": "record", ...}}`: the inner schema, with this level's properties ignored.
    return toConnect(base.type, named, namespace, fieldDefault);
  }
  const type = typeOf(base);
  const out: ConnectSchema = { type, optional };
  if (typeof base === 'string') {
    if (fieldDefault !== undefined && fieldDefault !== null) out.default = connectDefault(type, fieldDefault);
    return out;
  }
  const connectName = base['connect.name'];
  if (typeof connectName === 'string') out.name = connectName;
  else if (base.type === 'record' && base.name) {
    const full = fullName(base.name, base.namespace ?? namespace);
    // AvroData names unnamed Connect structs io.confluent.connect.avro.ConnectDefault[N]: they had no name.
    if (!full.startsWith(`${DEFAULT_NAMESPACE}.${DEFAULT_NAME}`)) out.name = full;
  }
  const version = base['connect.version'];
  if (typeof version === 'number') out.version = version;
  const doc = base['connect.doc'];
  if (typeof doc === 'string') out.doc = doc;
  const parameters = base['connect.parameters'];
  if (parameters && typeof parameters === 'object') out.parameters = { ...(parameters as Record<string, string>) };
  if (base.type === 'enum' && !out.parameters && base.symbols) {
    // Enhanced Avro schema support writes enums as Avro enums; Debezium's Connect schema lists them as `allowed`.
    out.parameters = { allowed: base.symbols.join(',') };
  }
  if ('connect.default' in base) out.default = connectDefault(type, base['connect.default']);
  else if (fieldDefault !== undefined && fieldDefault !== null && !('connect.name' in base))
    out.default = connectDefault(type, fieldDefault);
  switch (base.type) {
    case 'record': {
      const full = fullName(base.name as string, base.namespace ?? namespace);
      const ns = full.includes('.') ? full.slice(0, full.lastIndexOf('.')) : undefined;
      out.fields = (base.fields ?? []).map((field: AvroField) => ({
        ...toConnect(field.type, named, ns, field.default),
        field: field.name,
      }));
      break;
    }
    case 'array':
      out.items = toConnect(base.items as AvroSchema, named, namespace);
      break;
    case 'map':
      out.keys = { type: 'string', optional: false };
      out.values = toConnect(base.values as AvroSchema, named, namespace);
      break;
    default:
      break;
  }
  return out;
}

/** The Connect schema JsonConverter would have written for data an AvroConverter wrote with this Avro schema. */
export function avroToConnect(schema: AvroSchema): ConnectSchema {
  const named = new Map<string, AvroSchemaObject>();
  collectNamed(schema, undefined, named);
  return toConnect(schema, named, undefined);
}

// ---------------------------------------------------------------------------------------------------------------
// Connect → Avro (AvroData.fromConnectSchema, connect.meta.data=true, enhanced.avro.schema.support=false)
// ---------------------------------------------------------------------------------------------------------------

const DEFAULT_NAMESPACE = 'io.confluent.connect.avro';
const DEFAULT_NAME = 'ConnectDefault';
const DECIMAL = 'org.apache.kafka.connect.data.Decimal';
const AVRO_LOGICAL: Record<string, string> = {
  'org.apache.kafka.connect.data.Date': 'date',
  'org.apache.kafka.connect.data.Time': 'time-millis',
  'org.apache.kafka.connect.data.Timestamp': 'timestamp-millis',
};

/** Avro's name rule; AvroData's (and Debezium's `schema.name.adjustment.mode=avro`) replacement is `_`. */
function avroName(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9_]/g, '_');
  return /^[A-Za-z_]/.test(cleaned) ? cleaned : `_${cleaned}`;
}

function splitName(full: string): { namespace: string | undefined; name: string } {
  const at = full.lastIndexOf('.');
  if (at < 0) return { namespace: undefined, name: avroName(full) };
  return { namespace: full.slice(0, at).split('.').map(avroName).join('.'), name: avroName(full.slice(at + 1)) };
}

/** Connect's JSON default → Avro's JSON default (bytes as ISO-8859-1 text). */
function avroDefault(schema: ConnectSchema, value: unknown): unknown {
  if (schema.type === 'bytes' && typeof value === 'string') return Buffer.from(value, 'base64').toString('latin1');
  return value;
}

interface FromConnectContext {
  /** Records already written in this schema: later occurrences are written as name references, as Avro requires. */
  defined: Set<string>;
  unnamed: number;
}

function fromConnect(schema: ConnectSchema, context: FromConnectContext, ignoreOptional: boolean): AvroSchema {
  let base: AvroSchemaObject | string;
  switch (schema.type) {
    case 'int8':
    case 'int16':
    case 'int32':
      base = { type: 'int' };
      break;
    case 'int64':
      base = { type: 'long' };
      break;
    case 'float':
    case 'float32':
      base = { type: 'float' };
      break;
    case 'double':
    case 'float64':
      base = { type: 'double' };
      break;
    case 'boolean':
    case 'string':
      base = { type: schema.type };
      break;
    case 'bytes': {
      base = { type: 'bytes' };
      if (schema.name === DECIMAL) {
        base.scale = Number(schema.parameters?.scale ?? 0);
        base.precision = Number(schema.parameters?.['connect.decimal.precision'] ?? 64);
      }
      break;
    }
    case 'array':
      base = { type: 'array', items: fromConnect(schema.items as ConnectSchema, context, false) };
      break;
    case 'map':
      base = { type: 'map', values: fromConnect(schema.values as ConnectSchema, context, false) };
      break;
    case 'struct': {
      const full = schema.name ?? `${DEFAULT_NAMESPACE}.${DEFAULT_NAME}${context.unnamed++ || ''}`;
      const { namespace, name } = splitName(full);
      const key = namespace ? `${namespace}.${name}` : name;
      if (context.defined.has(key)) {
        base = key;
        break;
      }
      context.defined.add(key);
      const record: AvroSchemaObject = { type: 'record', name };
      if (namespace) record.namespace = namespace;
      record.fields = (schema.fields ?? []).map((field) => {
        const avroField: AvroField = { name: field.field as string, type: fromConnect(field, context, false) };
        if (field.default !== undefined && field.default !== null)
          avroField.default = avroDefault(field, field.default);
        else if (field.optional) avroField.default = null;
        return avroField;
      });
      base = record;
      break;
    }
    default:
      throw new Error(`unsupported Connect type ${schema.type}`);
  }
  if (typeof base === 'object') {
    if (schema.doc !== undefined) base['connect.doc'] = schema.doc;
    if (schema.version !== undefined) base['connect.version'] = schema.version;
    if (schema.parameters && Object.keys(schema.parameters).length)
      base['connect.parameters'] = { ...schema.parameters };
    if (schema.default !== undefined && schema.default !== null)
      base['connect.default'] = avroDefault(schema, schema.default);
    if (schema.name !== undefined) base['connect.name'] = schema.name;
    if (schema.type === 'int8' || schema.type === 'int16') base['connect.type'] = schema.type;
    if (schema.name === DECIMAL) base.logicalType = 'decimal';
    else if (schema.name && AVRO_LOGICAL[schema.name]) base.logicalType = AVRO_LOGICAL[schema.name];
  }
  // A record written once is referenced by name afterwards; a bare primitive reads better as its name.
  const plain = typeof base === 'object' && Object.keys(base).length === 1 ? (base.type as string) : base;
  if (ignoreOptional || !schema.optional) return plain;
  return schema.default !== undefined && schema.default !== null ? [plain, 'null'] : ['null', plain];
}

/** The Avro schema AvroData registers for a Connect schema (JsonConverter's JSON form of it). */
export function connectToAvro(schema: ConnectSchema): AvroSchema {
  return fromConnect(schema, { defined: new Set(), unnamed: 0 }, false);
}
