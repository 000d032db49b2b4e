import avro from 'avsc';

/**
 * avsc types that read Avro into exactly the values Debezium's JsonConverter writes for the same Connect data, so the
 * JSON path's logical-type conversions (connect-schema.ts) apply unchanged and both formats give one canonical event:
 * - `long` beyond 2^53 → a digit string (the JSON path's lossless parse does the same); avsc's own long throws
 *   "potential precision loss" there, and PostgreSQL `ts_ns`, big LSNs and bigint keys get there;
 * - `bytes` → base64 text (JsonConverter writes bytes and Decimal as base64);
 * - `float`/`double` NaN → the string "NaN" (Jackson quotes NaN).
 */

/** Where a varint is read: avsc hands the long's own bytes (`noUnpack`) to `fromBuffer`. */
interface Tap {
  buf: Buffer;
  pos: number;
}

function readLong(tap: Tap): number | string {
  const buf = tap.buf;
  let pos = tap.pos;
  let n = 0;
  let factor = 1;
  let b: number;
  let count = 0;
  // Up to 7 bytes hold 49 bits: exact in a double. Past that, BigInt keeps every digit.
  do {
    b = buf[pos++] as number;
    n += (b & 0x7f) * factor;
    factor *= 128;
    count++;
  } while (b & 0x80 && count < 7);
  if (!(b & 0x80)) {
    tap.pos = pos;
    return n % 2 === 1 ? -(n + 1) / 2 : n / 2;
  }
  let big = BigInt(n);
  let shift = 49n;
  do {
    b = buf[pos++] as number;
    big |= BigInt(b & 0x7f) << shift;
    shift += 7n;
  } while (b & 0x80 && pos < buf.length);
  tap.pos = pos;
  const value = big & 1n ? -((big + 1n) >> 1n) : big >> 1n;
  const number = Number(value);
  return Number.isSafeInteger(number) ? number : value.toString();
}

function toBigInt(value: unknown): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') return BigInt(value);
  return BigInt(value as string);
}

function isLong(value: unknown): boolean {
  return (
    (typeof value === 'number' && Number.isInteger(value)) ||
    typeof value === 'bigint' ||
    (typeof value === 'string' && /^-?\d+$/.test(value))
  );
}

/** Zigzag varint bytes of a long (writing: samples, the local run, tests). */
function longBytes(value: unknown): Buffer {
  const v = toBigInt(value);
  let zz = v < 0n ? (-v << 1n) - 1n : v << 1n;
  const bytes: number[] = [];
  do {
    let byte = Number(zz & 0x7fn);
    zz >>= 7n;
    if (zz > 0n) byte |= 0x80;
    bytes.push(byte);
  } while (zz > 0n);
  return Buffer.from(bytes);
}

/** A long type whose values are numbers when safe, digit strings otherwise (accepts bigint when writing). */
function exactLongType(): avro.Type {
  const type = avro.types.LongType.__with(
    {
      fromBuffer: (buf: Buffer) => readLong({ buf, pos: 0 }),
      toBuffer: longBytes,
      fromJSON: (json: unknown) => (typeof json === 'number' ? json : String(json)),
      toJSON: (value: unknown) => {
        const n = Number(value);
        return Number.isSafeInteger(n) ? n : String(value);
      },
      isValid: isLong,
      compare: (a: unknown, b: unknown) => {
        const x = toBigInt(a);
        const y = toBigInt(b);
        return x < y ? -1 : x > y ? 1 : 0;
      },
    },
    true,
  );
  return type as unknown as avro.Type;
}

/** Avro bytes ↔ base64 text. */
class Base64BytesType extends avro.types.LogicalType {
  protected override _fromValue(value: Buffer): string {
    return value.toString('base64');
  }
  protected override _toValue(value: unknown): Buffer {
    return typeof value === 'string' ? Buffer.from(value, 'base64') : (value as Buffer);
  }
}

/** Avro float/double with NaN as the string "NaN", like Jackson writes it. */
class JacksonDoubleType extends avro.types.LogicalType {
  protected override _fromValue(value: number): number | string {
    return Number.isNaN(value) ? 'NaN' : value;
  }
  protected override _toValue(value: unknown): number {
    return typeof value === 'string' ? Number(value) : (value as number);
  }
}

const BYTES_LOGICAL = 'cdc-sync-base64';
const DOUBLE_LOGICAL = 'cdc-sync-jackson-double';

/** An Avro schema in its JSON form (what registries store). */
export type AvroSchema = string | AvroSchemaObject | AvroSchema[];
export interface AvroSchemaObject {
  type: AvroSchema;
  name?: string;
  namespace?: string;
  fields?: AvroField[];
  items?: AvroSchema;
  values?: AvroSchema;
  symbols?: string[];
  size?: number;
  logicalType?: string;
  [property: string]: unknown;
}
export interface AvroField {
  name: string;
  type: AvroSchema;
  default?: unknown;
  doc?: string;
  aliases?: string[];
  [property: string]: unknown;
}

/** The schema with our logical types on every bytes, float and double (named references and nesting kept). */
function withJsonValueTypes(schema: AvroSchema): AvroSchema {
  if (typeof schema === 'string') {
    if (schema === 'bytes') return { type: 'bytes', logicalType: BYTES_LOGICAL };
    if (schema === 'float' || schema === 'double') return { type: schema, logicalType: DOUBLE_LOGICAL };
    return schema;
  }
  if (Array.isArray(schema)) return schema.map(withJsonValueTypes);
  const type = schema.type;
  // A `{"type": "long", ...}` object would get avsc's own long (registry types replace names only): the name does.
  // Its properties (connect.*, logicalType) matter to the Connect schema, which is derived from the original.
  if (type === 'long') return 'long';
  if (type === 'bytes') return { ...schema, logicalType: BYTES_LOGICAL };
  if (type === 'float' || type === 'double') return { ...schema, logicalType: DOUBLE_LOGICAL };
  if (type === 'record' || type === 'error') {
    return { ...schema, fields: (schema.fields ?? []).map((f) => ({ ...f, type: withJsonValueTypes(f.type) })) };
  }
  if (type === 'array') return { ...schema, items: withJsonValueTypes(schema.items as AvroSchema) };
  if (type === 'map') return { ...schema, values: withJsonValueTypes(schema.values as AvroSchema) };
  if (typeof type === 'object') return { ...schema, type: withJsonValueTypes(type) };
  return schema;
}

/**
 * Compiles a writer schema into an avsc type reading JsonConverter-shaped values (see above). avsc generates the
 * record readers once per type; compile once per schema id and reuse.
 */
export function compileAvroType(schema: AvroSchema): avro.Type {
  return avro.Type.forSchema(withJsonValueTypes(schema) as avro.Schema, {
    registry: { long: exactLongType() },
    logicalTypes: { [BYTES_LOGICAL]: Base64BytesType, [DOUBLE_LOGICAL]: JacksonDoubleType },
    // Connect unions are [null, T] or [T, null]: decoded as the bare value or null.
    wrapUnions: 'auto',
    omitRecordMethods: true,
  });
}
