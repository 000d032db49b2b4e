import { isInteger, parse as parseLossless } from 'lossless-json';

/**
 * JSON.parse rounds integers beyond 2^53 (PostgreSQL LSNs can, snowflake-style bigint keys do, `ts_ns` always does)
 * and decimals a double cannot hold (JsonConverter's decimal.format=NUMERIC). Strategy, fastest first:
 * 1. JSON.parse, then walk the result for numbers a double may have changed (unsafe integers; non-integers printed
 *    with 16+ significant digits). Debezium's own `ts_ns` fields (always unsafe) are exempt here and read exactly
 *    from the text by `exactDigitsAfter` when they are used. Most records stop here.
 * 2. Otherwise, quote every 16+-digit number a double would change, so it arrives as an exact decimal string, and
 *    JSON.parse again. The pattern can also match digits inside a string literal; quoting those always makes the
 *    text invalid JSON (a string followed by a number), so JSON.parse throws and:
 * 3. the slow lossless parser reads the original text.
 */
const LONG_NUMBER = /(?<=[:,[]\s*)-?(?=[\d.]{16})\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?=\s*[,}\]])/g;

/** True when a double holds the number written in `text` exactly (so JSON.parse loses nothing). */
function fitsDouble(text: string): boolean {
  const n = Number(text);
  if (isInteger(text)) return Number.isSafeInteger(n);
  // Non-integers (decimal.format=NUMERIC decimals, long doubles): exact if the shortest round trip gives them back.
  return String(n) === text.replace(/^(-?)0+(?=\d)/, '$1');
}

function quoteUnsafe(text: string): string {
  return fitsDouble(text) ? text : `"${text}"`;
}

function losslessNumber(text: string): unknown {
  return fitsDouble(text) ? Number(text) : text;
}

/** A parsed number that may not be what the text said: an unsafe integer, or a long non-integer. */
function doubtful(n: number): boolean {
  if (Number.isInteger(n)) return !Number.isSafeInteger(n);
  // The shortest round-trip form of a double has at most 17 significant digits; 16+ means the text may have had more.
  const text = String(n);
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 101 /* e */) break;
    if (c >= 48 && c <= 57) digits++;
  }
  return digits >= 16;
}

/** Whether a parsed JSON value holds a doubtful number (optionally ignoring top-level keys). */
export function hasDoubtfulNumber(value: unknown, exemptKey?: string): boolean {
  if (typeof value === 'number') return doubtful(value);
  if (value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) {
    for (const item of value) if (hasDoubtfulNumber(item)) return true;
    return false;
  }
  for (const key in value) {
    if (key !== exemptKey && hasDoubtfulNumber((value as Record<string, unknown>)[key])) return true;
  }
  return false;
}

/** Parses text known to hold doubtful numbers: quoted exact, or the lossless parser if quoting went wrong. */
export function parseExact(text: string): unknown {
  const guarded = text.replace(LONG_NUMBER, quoteUnsafe);
  try {
    return JSON.parse(guarded);
  } catch (error) {
    if (guarded === text) throw error;
    return parseLossless(text, null, losslessNumber);
  }
}

/**
 * How deep a document may nest: Kafka Connect's JsonConverter reads and writes JSON with Jackson, which stops at 1000
 * levels (StreamReadConstraints, since 2.15). Deeper values parse here, but every sink serialises rows with recursive
 * code (JSON.stringify overflows the stack a few thousand levels down), so they would fail the partition at every
 * retry; refused at parse time, such a record is dead-lettered, and a JSON column keeps its text.
 */
export const MAX_NESTING = 1000;

/** Whether a parsed value nests deeper than MAX_NESTING (objects and arrays only; stops at the limit). */
function nestsTooDeep(value: object, depth: number): boolean {
  if (depth > MAX_NESTING) return true;
  if (Array.isArray(value)) {
    for (const item of value)
      if (item !== null && typeof item === 'object' && nestsTooDeep(item, depth + 1)) return true;
    return false;
  }
  for (const key in value) {
    const item = (value as Record<string, unknown>)[key];
    if (item !== null && typeof item === 'object' && nestsTooDeep(item, depth + 1)) return true;
  }
  return false;
}

/** Throws a SyntaxError, as for text that is not JSON, when the parsed value nests deeper than MAX_NESTING. */
function checkNesting(value: unknown): void {
  if (value !== null && typeof value === 'object' && nestsTooDeep(value, 1)) {
    throw new SyntaxError(`JSON nested deeper than ${MAX_NESTING} levels`);
  }
}

/** Parses JSON keeping every digit of numbers a double cannot hold (as strings). Throws SyntaxError. */
export function parseJson(text: string): unknown {
  const value = JSON.parse(text);
  checkNesting(value);
  return hasDoubtfulNumber(value) ? parseExact(text) : value;
}

/**
 * The digits of the first number after `"<key>":` following `from` in JSON text, e.g. a `ts_ns` that JSON.parse
 * rounded. The text must be valid JSON (already parsed): an unescaped quote cannot occur inside a string, so the
 * match is a real key.
 */
export function exactDigitsAfter(text: string, key: string, from: number): string | undefined {
  const at = text.indexOf(`"${key}":`, from);
  if (at < 0) return undefined;
  let i = at + key.length + 3;
  while (text.charCodeAt(i) === 32) i++;
  const start = i;
  if (text.charCodeAt(i) === 45 /* - */) i++;
  while (i < text.length && text.charCodeAt(i) >= 48 && text.charCodeAt(i) <= 57) i++;
  return i > start ? text.slice(start, i) : undefined;
}

const SCHEMA_PREFIX = '{"schema":';
const PAYLOAD_SEPARATOR = ',"payload":';

/**
 * JsonConverter with schemas.enable=true writes `{"schema":<schema>,"payload":<payload>}`, compactly and in that
 * order. Splitting the text lets the decoder look the schema up by its text and parse only the payload: the schema
 * is usually most of the bytes and repeats on every record of a table. The first `,"payload":` is the separator:
 * schema JSON has no key named payload, and an unescaped quote cannot occur inside a JSON string. If the guess is
 * ever wrong, one of the two halves fails to parse and the caller parses the whole text instead.
 */
export function splitSchemaPayload(
  text: string,
): { schemaText: string; payloadText: string; payloadStart: number } | undefined {
  if (!text.startsWith(SCHEMA_PREFIX) || text.charCodeAt(text.length - 1) !== 125 /* } */) return undefined;
  const separator = text.indexOf(PAYLOAD_SEPARATOR, SCHEMA_PREFIX.length);
  if (separator < 0) return undefined;
  const payloadStart = separator + PAYLOAD_SEPARATOR.length;
  return {
    schemaText: text.slice(SCHEMA_PREFIX.length, separator),
    payloadText: text.slice(payloadStart, text.length - 1),
    payloadStart,
  };
}

/**
 * Parses a Debezium value payload. Like parseJson, except that Debezium's own nanosecond timestamps (`ts_ns` of the
 * envelope and of the source block, always beyond 2^53) do not force the slow path: their digits are read from the
 * text instead, so they stay exact as strings.
 */
export function parseDebeziumPayload(text: string, numericColumns?: readonly string[]): unknown {
  const value: unknown = JSON.parse(text);
  checkNesting(value);
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    return hasDoubtfulNumber(value) ? parseExact(text) : value;
  const payload = value as Record<string, unknown>;
  for (const key in payload) {
    if (key === 'ts_ns') continue;
    // With the row schema known, only the columns that can hold long numbers need looking at.
    if (numericColumns !== undefined && (key === 'before' || key === 'after')) {
      const row = payload[key] as Record<string, unknown> | null;
      if (row !== null && typeof row === 'object') {
        for (const column of numericColumns) if (hasDoubtfulNumber(row[column])) return parseExact(text);
      }
      continue;
    }
    if (hasDoubtfulNumber(payload[key], key === 'source' ? 'ts_ns' : undefined)) return parseExact(text);
  }
  const source = payload.source as Record<string, unknown> | null | undefined;
  if (source !== null && typeof source === 'object' && typeof source.ts_ns === 'number') {
    const digits = exactDigitsAfter(text, 'ts_ns', text.indexOf('"source":{'));
    if (digits === undefined || Number(digits) !== source.ts_ns) return parseExact(text);
    source.ts_ns = digits;
  }
  if (typeof payload.ts_ns === 'number') {
    const digits = exactDigitsAfter(text, 'ts_ns', text.lastIndexOf('"ts_ns":'));
    if (digits === undefined || Number(digits) !== payload.ts_ns) return parseExact(text);
    payload.ts_ns = digits;
  }
  return payload;
}
