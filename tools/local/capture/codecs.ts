/**
 * Column codecs: for each PostgreSQL type, the Kafka Connect schema Debezium declares and the JSON JsonConverter
 * writes for a value, with Debezium's defaults (decimal.handling.mode=precise, time.precision.mode=adaptive,
 * binary.handling.mode=bytes, interval.handling.mode=numeric). Matched against Debezium's PostgresValueConverter /
 * JdbcValueConverters and the "Data type mappings" section of the PostgreSQL connector docs:
 *
 * | PostgreSQL | Connect type / semantic name | JSON |
 * |---|---|---|
 * | boolean | boolean | true |
 * | smallint / integer / bigint, oid | int16 / int32 / int64 | 7 |
 * | real / double precision | float / double | 1.5, 1.0E10 (Java formatting) |
 * | numeric(p,s) | bytes org.apache.kafka.connect.data.Decimal {scale, connect.decimal.precision} | "Jw8=" |
 * | numeric | struct io.debezium.data.VariableScaleDecimal {scale:int32, value:bytes} | {"scale":2,"value":"MDk="} |
 * | date | int32 io.debezium.time.Date (days) | 19797 |
 * | time(0-3) / time(4-6) | int32 io.debezium.time.Time (ms) / int64 io.debezium.time.MicroTime (µs) | |
 * | timestamp(0-3) / timestamp(4-6) | int64 io.debezium.time.Timestamp (ms) / MicroTimestamp (µs) | |
 * | timestamptz | string io.debezium.time.ZonedTimestamp, UTC, fraction padded to the column precision | |
 * | timetz | string io.debezium.time.ZonedTime, UTC | "08:30:00.123Z" |
 * | interval | int64 io.debezium.time.MicroDuration (365.25/12 days a month) | |
 * | json / jsonb / xml / uuid | string io.debezium.data.Json / Json / Xml / Uuid | PostgreSQL's text |
 * | enum | string io.debezium.data.Enum {allowed} | "paid" |
 * | bytea | bytes | base64 |
 * | arrays | array of optional element schemas | [1,2,null] |
 * | text, varchar, char, name, inet, cidr, macaddr, ... | string | |
 */
import type { Catalog, PgType } from './catalog';
import { bigIntToBase64, javaFloatText, jsonString } from './json';
import {
  type EpochTime,
  intervalMicrosText,
  microsText,
  millisText,
  type PgArray,
  parseArray,
  parseByteaHex,
  parseDate,
  parseTimeMicros,
  parseTimestamp,
  zonedTimestampText,
  zonedTimeText,
} from './pgtext';

/** Debezium's default `unavailable.value.placeholder`. */
export const UNAVAILABLE_VALUE = '__debezium_unavailable_value';
const UNAVAILABLE_JSON = jsonString(UNAVAILABLE_VALUE);
const UNAVAILABLE_BYTES_JSON = jsonString(Buffer.from(UNAVAILABLE_VALUE).toString('base64'));
// UnchangedToastedPlaceholder: int/bigint/date arrays get the placeholder's bytes as numbers, text-like arrays a
// one-element list (Debezium UnchangedToastedReplicationMessageColumn).
const UNAVAILABLE_INT_ARRAY_JSON = `[${[...Buffer.from(UNAVAILABLE_VALUE)].join(',')}]`;
const UNAVAILABLE_TEXT_ARRAY_JSON = `[${UNAVAILABLE_JSON}]`;

// Placeholders for positive/negative infinity timestamps (pgjdbc's PGStatement.DATE_POSITIVE_INFINITY etc.), which
// Debezium passes through as the epoch value.
const TIMESTAMP_POSITIVE_INFINITY = '9223372036825200000';
const TIMESTAMP_NEGATIVE_INFINITY = '-9223372036832400000';

/** How one column type is declared in the Connect schema and written as JSON. */
export interface Codec {
  /** Schema members before `optional`, e.g. `"type":"int32"` or `"type":"array","items":{...}`. */
  readonly typeJson: string;
  /** Schema members after `optional` (name, version, doc, parameters), each led by a comma; may be empty. */
  readonly logicalJson: string;
  /** JSON for a PostgreSQL text value. */
  encode(text: string): string;
  /** JSON Debezium writes for an unchanged TOASTed value. */
  readonly placeholder: string;
  /**
   * JSON that JdbcValueConverters substitutes for NULL in a NOT NULL column that has no default (this shows in
   * REPLICA IDENTITY DEFAULT delete before-images: `""`, `0`, `false`, ...).
   */
  readonly fallback: string;
  /** Debezium drops Struct-valued defaults (KAFKA-12694), e.g. for VariableScaleDecimal. */
  readonly structValued?: boolean;
  /** Converts a default-value literal (already extracted from the expression); throws when it cannot. */
  encodeDefault?(literal: string): string;
}

function simple(type: string, encode: (text: string) => string, fallback: string, logicalJson = ''): Codec {
  return { typeJson: `"type":"${type}"`, logicalJson, encode, placeholder: UNAVAILABLE_JSON, fallback };
}

const identity = (text: string) => text;

function logical(name: string, version = 1, params?: Record<string, string>, doc?: string): string {
  let out = `,"name":${jsonString(name)},"version":${version}`;
  if (doc !== undefined) out += `,"doc":${jsonString(doc)}`;
  if (params) {
    out += `,"parameters":{${Object.entries(params)
      .map(([k, v]) => `${jsonString(k)}:${jsonString(v)}`)
      .join(',')}}`;
  }
  return out;
}

const BOOLEAN: Codec = {
  ...simple('boolean', (t) => (t === 't' || t === 'true' ? 'true' : 'false'), 'false'),
};
const STRING: Codec = simple('string', jsonString, '""');
const INT16: Codec = simple('int16', identity, '0');
const INT32: Codec = simple('int32', identity, '0');
const INT64: Codec = simple('int64', identity, '0');
const FLOAT32: Codec = simple('float', javaFloatText, '0.0');
const FLOAT64: Codec = simple('double', javaFloatText, '0.0');
const JSON_CODEC: Codec = simple('string', jsonString, '""', logical('io.debezium.data.Json'));
const XML_CODEC: Codec = simple('string', jsonString, '""', logical('io.debezium.data.Xml'));
const UUID_CODEC: Codec = simple('string', jsonString, '""', logical('io.debezium.data.Uuid'));
const BYTES: Codec = {
  ...simple('bytes', (t) => jsonString(parseByteaHex(t).toString('base64')), '""'),
  placeholder: UNAVAILABLE_BYTES_JSON,
};

/** Unscaled value of a decimal text at `scale` (scaling up like BigDecimal.setScale); null for NaN/Infinity. */
function unscaled(text: string, scale: number): bigint | null {
  if (text === 'NaN' || text.endsWith('Infinity')) return null;
  const negative = text.startsWith('-');
  const body = negative || text.startsWith('+') ? text.slice(1) : text;
  const point = body.indexOf('.');
  const int = point >= 0 ? body.slice(0, point) : body;
  let frac = point >= 0 ? body.slice(point + 1) : '';
  if (frac.length < scale) frac = frac.padEnd(scale, '0');
  else if (frac.length > scale) throw new Error(`decimal ${text} has more than ${scale} fraction digits`);
  const value = BigInt(int + frac || '0');
  return negative ? -value : value;
}

function decimalCodec(precision: number, scale: number): Codec {
  const encode = (text: string) => {
    const v = unscaled(text, scale);
    // decimal.handling.mode=precise cannot represent NaN/Infinity: Debezium emits null.
    return v === null ? 'null' : jsonString(bigIntToBase64(v));
  };
  return {
    typeJson: '"type":"bytes"',
    logicalJson: logical('org.apache.kafka.connect.data.Decimal', 1, {
      scale: String(scale),
      'connect.decimal.precision': String(precision),
    }),
    encode,
    encodeDefault: encode,
    placeholder: UNAVAILABLE_JSON,
    fallback: jsonString(bigIntToBase64(0n)),
  };
}

const VARIABLE_SCALE_DECIMAL: Codec = {
  typeJson:
    '"type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}]',
  logicalJson: logical('io.debezium.data.VariableScaleDecimal', 1, undefined, 'Variable scaled decimal'),
  encode(text) {
    if (text === 'NaN' || text.endsWith('Infinity')) return 'null';
    const point = text.indexOf('.');
    const scale = point >= 0 ? text.length - point - 1 : 0;
    const v = unscaled(text, scale) ?? 0n;
    return `{"scale":${scale},"value":${jsonString(bigIntToBase64(v))}}`;
  },
  placeholder: UNAVAILABLE_JSON,
  fallback: `{"scale":0,"value":${jsonString(bigIntToBase64(0n))}}`,
  structValued: true,
};

/** `1970-01-01` (a default placeholder) or a full timestamp text. */
function parseTimestampLenient(text: string): EpochTime | null {
  return parseTimestamp(text.length === 10 ? `${text} 00:00:00` : text);
}

const DATE: Codec = simple(
  'int32',
  (t) => {
    const days = parseDate(t);
    return days === null ? 'null' : String(days);
  },
  '0',
  logical('io.debezium.time.Date'),
);

function timeCodec(precision: number): Codec {
  const lenient = (t: string) => (t.length === 5 ? `${t}:00` : t);
  if (precision <= 3) {
    return simple(
      'int32',
      (t) => String(Math.floor(parseTimeMicros(lenient(t)) / 1000)),
      '0',
      logical('io.debezium.time.Time'),
    );
  }
  return simple('int64', (t) => String(parseTimeMicros(lenient(t))), '0', logical('io.debezium.time.MicroTime'));
}

function timestampCodec(precision: number): Codec {
  const millis = precision <= 3;
  return simple(
    'int64',
    (t) => {
      if (t === 'infinity') return TIMESTAMP_POSITIVE_INFINITY;
      if (t === '-infinity') return TIMESTAMP_NEGATIVE_INFINITY;
      const parsed = parseTimestampLenient(t);
      if (parsed === null) return 'null';
      return millis ? millisText(parsed) : microsText(parsed);
    },
    '0',
    logical(millis ? 'io.debezium.time.Timestamp' : 'io.debezium.time.MicroTimestamp'),
  );
}

function zonedTimestampCodec(precision: number): Codec {
  return simple(
    'string',
    (t) => {
      const parsed = parseTimestampLenient(t);
      return parsed === null ? 'null' : `"${zonedTimestampText(parsed, precision)}"`;
    },
    '"1970-01-01T00:00:00Z"',
    logical('io.debezium.time.ZonedTimestamp'),
  );
}

const ZONED_TIME: Codec = simple(
  'string',
  (t) => `"${zonedTimeText(t)}"`,
  '"00:00:00Z"',
  logical('io.debezium.time.ZonedTime'),
);
const INTERVAL: Codec = simple('int64', intervalMicrosText, '0', logical('io.debezium.time.MicroDuration'));

function enumCodec(labels: string[]): Codec {
  return simple('string', jsonString, '""', logical('io.debezium.data.Enum', 1, { allowed: labels.join(',') }));
}

function arrayCodec(element: Codec, elementTypeName: string, delimiter: string): Codec {
  const encodeArray = (items: PgArray): string =>
    `[${items
      .map((item) => (item === null ? 'null' : Array.isArray(item) ? encodeArray(item) : element.encode(item)))
      .join(',')}]`;
  let placeholder = UNAVAILABLE_JSON;
  if (['text', 'varchar', 'json', 'jsonb'].includes(elementTypeName)) placeholder = UNAVAILABLE_TEXT_ARRAY_JSON;
  else if (['int4', 'int8', 'date'].includes(elementTypeName)) placeholder = UNAVAILABLE_INT_ARRAY_JSON;
  return {
    typeJson: `"type":"array","items":{${element.typeJson},"optional":true${element.logicalJson}}`,
    logicalJson: '',
    encode: (text) => encodeArray(parseArray(text, delimiter)),
    placeholder,
    fallback: '[]',
  };
}

/** PostgreSQL's typmod -> precision for time/timestamp types (-1 means the default, 6). */
function timePrecision(typmod: number): number {
  return typmod < 0 ? 6 : typmod;
}

/** The codec for a column of the given type and typmod (types must have been loaded into the catalog). */
export function codecFor(catalog: Catalog, typeOid: number, typmod: number): Codec {
  const type = catalog.type(typeOid);
  if (type.typtype === 'd') return codecFor(catalog, type.baseOid, type.baseTypmod >= 0 ? type.baseTypmod : typmod);
  if (type.typtype === 'e') return enumCodec(type.enumLabels ?? []);
  if (type.category === 'A' && type.elemOid > 0) {
    const elem = catalog.type(type.elemOid);
    return arrayCodec(codecFor(catalog, type.elemOid, typmod), elem.name, type.delimiter);
  }
  return baseCodec(type, typmod);
}

function baseCodec(type: PgType, typmod: number): Codec {
  switch (type.name) {
    case 'bool':
      return BOOLEAN;
    case 'int2':
      return INT16;
    case 'int4':
      return INT32;
    case 'int8':
    case 'oid':
      return INT64;
    case 'float4':
      return FLOAT32;
    case 'float8':
      return FLOAT64;
    case 'numeric':
      if (typmod < 0) return VARIABLE_SCALE_DECIMAL;
      return decimalCodec(((typmod - 4) >> 16) & 0xffff, (typmod - 4) & 0xffff);
    case 'date':
      return DATE;
    case 'time':
      return timeCodec(timePrecision(typmod));
    case 'timetz':
      return ZONED_TIME;
    case 'timestamp':
      return timestampCodec(timePrecision(typmod));
    case 'timestamptz':
      return zonedTimestampCodec(timePrecision(typmod));
    case 'interval':
      return INTERVAL;
    case 'json':
    case 'jsonb':
      return JSON_CODEC;
    case 'xml':
      return XML_CODEC;
    case 'uuid':
      return UUID_CODEC;
    case 'bytea':
      return BYTES;
    default:
      // text, varchar, bpchar, char, name, citext, inet, cidr, macaddr, ltree, ranges, ... are strings in Debezium.
      // Types Debezium maps to structs (geometry) or drops (unknown types) are strings here: a dev-connector choice.
      return STRING;
  }
}

// --- Default values (Debezium PostgresDefaultValueConverter) -------------------------------------------------

const FUNCTION_DEFAULT = /^[(]?[A-Za-z0-9_.]+\((?:.+(?:, ?.+)*)?\)/;
const CURRENT_DATE_TIMES = new Set([
  'current_timestamp',
  'current_time',
  'current_date',
  'localtime',
  'localtimestamp',
]);
const TRIM_TYPES = new Set([
  'bit',
  'varbit',
  'bool',
  'numeric',
  'float4',
  'float8',
  'int2',
  'int4',
  'serial',
  'int8',
  'bigserial',
  'smallserial',
  'uuid',
  'date',
  'time',
  'timestamp',
  'timestamptz',
  'interval',
]);
/** Placeholder literal Debezium uses when the default is generated by a function (`now()`, `nextval(...)`). */
const GENERATED_PLACEHOLDERS: Record<string, string> = {
  bool: 'false',
  bpchar: '',
  varchar: '',
  text: '',
  numeric: '0.0',
  float4: '0.0',
  float8: '0.0',
  int2: '0',
  int4: '0',
  serial: '0',
  int8: '0',
  bigserial: '0',
  smallserial: '0',
  json: '{}',
  jsonb: '{}',
  xml: '',
  uuid: '00000000-0000-0000-0000-000000000000',
  date: '1970-01-01',
  time: '00:00',
  timestamp: '1970-01-01',
  timestamptz: '1970-01-01',
};
const NULL_AWARE = new Set([
  'bool',
  'numeric',
  'float4',
  'float8',
  'int2',
  'int4',
  'serial',
  'int8',
  'bigserial',
  'smallserial',
]);

function extractLiteral(expr: string): string | null {
  if (!expr.includes("'")) return expr.startsWith('NULL::') ? null : expr;
  const match = /'(.*?)'/.exec(expr);
  return match ? (match[1] ?? '') : null;
}

/**
 * The JSON `default` Debezium puts in a column's schema, or undefined when it declares none. `typeName` is the
 * column's declared type as pgjdbc reports it (`int4`, `bigserial`, the enum's name, ...).
 */
export function defaultJson(codec: Codec, typeName: string, isEnum: boolean, expr: string | null): string | undefined {
  if (expr === null || codec.structValued) return undefined;
  try {
    let literal: string | null;
    if (isEnum) {
      const suffix = `::${typeName}`;
      if (!expr.endsWith(suffix)) return undefined;
      const quoted = expr.slice(0, -suffix.length);
      if (!quoted.startsWith("'") || !quoted.endsWith("'")) return undefined;
      literal = quoted.slice(1, -1);
    } else {
      const placeholder = GENERATED_PLACEHOLDERS[typeName];
      if (placeholder === undefined) return undefined; // Debezium: "Mapper for type ... not found"
      const value = TRIM_TYPES.has(typeName) ? expr.trim() : expr;
      if (NULL_AWARE.has(typeName) && value.startsWith('NULL::')) return undefined;
      literal =
        FUNCTION_DEFAULT.test(value) || CURRENT_DATE_TIMES.has(value.toLowerCase())
          ? placeholder
          : extractLiteral(value);
    }
    if (literal === null) return undefined;
    const json = (codec.encodeDefault ?? codec.encode)(literal);
    return json === 'null' ? undefined : json;
  } catch {
    return undefined; // Debezium: "Cannot parse column default value ... Expression evaluation is not supported."
  }
}

/** The type name Debezium's default-value mappers are keyed by (pgjdbc's column TYPE_NAME). */
export function debeziumTypeName(type: PgType, serial: boolean): string {
  if (serial) {
    if (type.name === 'int8') return 'bigserial';
    if (type.name === 'int4') return 'serial';
    if (type.name === 'int2') return 'smallserial';
  }
  return type.name;
}
