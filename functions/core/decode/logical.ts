/**
 * Debezium / Kafka Connect logical types → canonical values (docs/formats.md §2.9): exact decimal strings, ISO dates and
 * times, parsed JSON. Pure functions over one value; `connect-schema.ts` picks which one a column needs.
 */
import { parseJson } from './json';

/** `unscaled × 10^-scale` as a plain decimal string, e.g. (12345n, 2) → "123.45", (-5n, 3) → "-0.005". */
export function formatScaled(unscaled: bigint | number, scale: number): string {
  const negative = unscaled < 0;
  let digits = (negative ? -unscaled : unscaled).toString();
  if (scale > 0) {
    if (digits.length <= scale) digits = '0'.repeat(scale - digits.length + 1) + digits;
    digits = `${digits.slice(0, digits.length - scale)}.${digits.slice(digits.length - scale)}`;
  } else if (scale < 0 && digits !== '0') {
    digits += '0'.repeat(-scale);
  }
  return negative ? `-${digits}` : digits;
}

/**
 * Connect's Decimal: the unscaled value as big-endian two's complement bytes (Java BigInteger#toByteArray), base64
 * in JSON. Up to 6 bytes fit a double exactly, so the common case avoids BigInt.
 */
export function decimalFromBase64(base64: string, scale: number): string {
  // Up to 8 characters (6 bytes) decode without a Buffer: most decimals are small.
  if (base64.length <= 8 && base64.length % 4 === 0) {
    const small = smallBase64Integer(base64);
    if (small !== undefined) return formatScaled(small, scale);
  }
  const bytes = Buffer.from(base64, 'base64');
  if (bytes.length === 0) return formatScaled(0, scale);
  if (bytes.length <= 6) return formatScaled(bytes.readIntBE(0, bytes.length), scale);
  // From hex in one step: shifting byte by byte copies the growing BigInt each time, quadratic in the value's size
  // (minutes for a corrupt value of a few hundred KB, which would time the lane out at every retry).
  let unscaled = BigInt(`0x${bytes.toString('hex')}`);
  if ((bytes[0] as number) & 0x80) unscaled -= 1n << BigInt(bytes.length * 8);
  return formatScaled(unscaled, scale);
}

const BASE64_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 64; i++)
  BASE64_VALUE['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(i)] = i;

/** The signed big-endian integer in a base64 text of at most 6 bytes (undefined if not plain base64). */
function smallBase64Integer(text: string): number | undefined {
  let padding = 0;
  if (text.endsWith('==')) padding = 2;
  else if (text.endsWith('=')) padding = 1;
  const symbols = text.length - padding;
  let bits = 0;
  for (let i = 0; i < symbols; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? (BASE64_VALUE[c] as number) : -1;
    if (v < 0) return undefined;
    bits = bits * 64 + v;
  }
  // Drop the filler bits of the last group: 2 per padding character.
  const bytes = Math.floor((symbols * 6) / 8);
  bits = Math.floor(bits / 2 ** (symbols * 6 - bytes * 8));
  if (bytes === 0) return 0;
  const limit = 2 ** (bytes * 8);
  return bits >= limit / 2 ? bits - limit : bits;
}

/**
 * A decimal written as number text ("12345678901234567.89", "1.2E+3") → plain text with at least `scale` fraction
 * digits, without going through a double.
 */
export function decimalFromText(text: string, scale: number): string {
  const match = /^(-?)(\d*)(?:\.(\d*))?(?:[eE]([-+]?\d+))?$/.exec(text);
  if (!match) return text;
  const [, sign = '', whole = '', fraction = '', exponent = '0'] = match;
  let digits = whole + fraction;
  let point = whole.length + Number(exponent);
  if (point < 0) {
    digits = '0'.repeat(-point) + digits;
    point = 0;
  }
  if (point > digits.length) digits += '0'.repeat(point - digits.length);
  let integer = digits.slice(0, point).replace(/^0+(?=\d)/, '') || '0';
  let decimals = digits.slice(point);
  if (decimals.length < scale) decimals += '0'.repeat(scale - decimals.length);
  if (integer === '') integer = '0';
  const zero = /^0*$/.test(integer + decimals);
  return `${zero ? '' : sign}${integer}${decimals ? `.${decimals}` : ''}`;
}

/** Number text, as opposed to base64: has a point, an exponent or a sign (none of which base64 uses). */
const NUMBER_TEXT = /^-?\d*(\.\d*)?([eE][-+]?\d+)?$/;

/**
 * A Decimal column's value in any of the shapes JsonConverter writes: base64 bytes (decimal.format=BASE64, the
 * default), or a JSON number (decimal.format=NUMERIC) — which json.ts hands over as exact text when a double
 * cannot hold it.
 */
export function decimalValue(value: unknown, scale: number): unknown {
  if (typeof value === 'number') return decimalFromText(String(value), scale);
  if (typeof value !== 'string') return value;
  // All-digit text of 16+ digits is a NUMERIC integer json.ts quoted: base64 of that length would be a value of
  // 2^88 or more, and base64 never has '.', 'e' or '-'.
  const numeric = NUMBER_TEXT.test(value) && (/[.eE-]/.test(value) || (scale <= 0 && value.length >= 16));
  return numeric ? decimalFromText(value, scale) : decimalFromBase64(value, scale);
}

/** io.debezium.data.VariableScaleDecimal: `{ scale, value }` (PostgreSQL NUMERIC without a declared scale). */
export function variableScaleDecimal(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  const { scale, value: unscaled } = value as { scale?: unknown; value?: unknown };
  if (typeof scale !== 'number' || typeof unscaled !== 'string') return value;
  return decimalFromBase64(unscaled, scale);
}

const MS_PER_DAY = 86_400_000;
/** The largest epoch offset a JavaScript Date can represent (±100,000,000 days). */
const MAX_DATE_MS = 8.64e15;

const two = (n: number) => (n < 10 ? `0${n}` : `${n}`);
const three = (n: number) => (n < 10 ? `00${n}` : n < 100 ? `0${n}` : `${n}`);

/** Direct-mapped cache of day number → "YYYY-MM-DD": dates in a stream cluster, so most lookups hit. */
const DATE_SLOTS = 4096;
const dateKeys = new Float64Array(DATE_SLOTS).fill(Number.NaN);
const dateTexts: string[] = new Array(DATE_SLOTS).fill('');

/**
 * The proleptic Gregorian date of a day number (days since 1970-01-01): Howard Hinnant's civil_from_days, without
 * allocating a Date. Exported so that the local capture formats dates with this same algorithm.
 */
export function civilFromDays(days: number): [year: number, month: number, day: number] {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (month <= 2 ? 1 : 0), month, day];
}

/**
 * "YYYY-MM-DD" of a day number (days since the epoch), or undefined outside years 0–9999. Runs for every temporal
 * column of every row: cached, so the date arithmetic runs only on a miss.
 */
function civilDate(days: number): string | undefined {
  const slot = days & (DATE_SLOTS - 1);
  if (dateKeys[slot] === days) return dateTexts[slot];
  const [year, month, day] = civilFromDays(days);
  if (year < 0 || year > 9999) return undefined;
  const text = `${String(year).padStart(4, '0')}-${two(month)}-${two(day)}`;
  dateKeys[slot] = days;
  dateTexts[slot] = text;
  return text;
}

/**
 * `YYYY-MM-DDTHH:mm:ss.sssZ` of an epoch offset in ms, like Date#toISOString (whose ±YYYYYY form is used outside
 * years 0–9999).
 */
function isoDateTime(epochMs: number): string {
  const days = Math.floor(epochMs / MS_PER_DAY);
  const date = civilDate(days);
  if (date === undefined) return new Date(epochMs).toISOString();
  const msOfDay = epochMs - days * MS_PER_DAY;
  const seconds = Math.floor(msOfDay / 1000);
  return `${date}T${two(Math.floor(seconds / 3600))}:${two(Math.floor(seconds / 60) % 60)}:${two(seconds % 60)}.${three(msOfDay - seconds * 1000)}Z`;
}

/**
 * PostgreSQL's ±infinity timestamps arrive as the int64 extremes Debezium uses for them (9223372036825200000 and
 * -9223372036832400000 µs); anything beyond what a date can be is treated the same way, like TIMESTAMPTZ, whose
 * infinity Debezium already sends as the text "infinity".
 */
function infinity(ms: number): string {
  return ms > 0 ? 'infinity' : '-infinity';
}

/** Days since the epoch → "YYYY-MM-DD" (io.debezium.time.Date, org.apache.kafka.connect.data.Date). */
export function dateFromDays(value: unknown): unknown {
  if (typeof value !== 'number') return value;
  if (Math.abs(value * MS_PER_DAY) > MAX_DATE_MS) return infinity(value);
  if (!Number.isInteger(value)) return value;
  const date = civilDate(value);
  if (date !== undefined) return date;
  const iso = new Date(value * MS_PER_DAY).toISOString();
  return iso.slice(0, iso.indexOf('T'));
}

/** Splits an integer count of `unit`-ths of a second into whole milliseconds and the sub-millisecond rest. */
function splitSubMillis(value: number | bigint, perMs: number): { ms: number; rest: number } {
  if (typeof value === 'bigint') {
    const per = BigInt(perMs);
    let ms = value / per;
    let rest = value % per;
    if (rest < 0n) {
      rest += per;
      ms -= 1n;
    }
    return { ms: Number(ms), rest: Number(rest) };
  }
  const ms = Math.floor(value / perMs);
  return { ms, rest: value - ms * perMs };
}

function toInteger(value: unknown): number | bigint | undefined {
  if (typeof value === 'number') return value;
  // Integers beyond 2^53 reach us as digit strings (see json.ts).
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value);
  return undefined;
}

/**
 * Naive (zone-less) timestamps: io.debezium.time.Timestamp (ms), MicroTimestamp (µs), NanoTimestamp (ns), and
 * Connect's Timestamp (ms). The fraction always has the column's precision: 3, 6 or 9 digits, no zone suffix.
 */
export function naiveTimestamp(value: unknown, unitsPerSecond: 1_000 | 1_000_000 | 1_000_000_000): unknown {
  const integer = toInteger(value);
  if (integer === undefined) return value;
  const perMs = unitsPerSecond / 1000;
  const { ms, rest } = splitSubMillis(integer, perMs);
  if (Math.abs(ms) > MAX_DATE_MS) return infinity(ms);
  const iso = isoDateTime(ms).slice(0, -1); // drop "Z": the value has no zone
  if (perMs === 1) return iso;
  return iso + String(rest).padStart(String(perMs).length - 1, '0');
}

/** Time of day: io.debezium.time.Time (ms), MicroTime (µs), NanoTime (ns), Connect Time (ms) → "HH:mm:ss.fff…". */
export function timeOfDay(value: unknown, unitsPerSecond: 1_000 | 1_000_000 | 1_000_000_000): unknown {
  const integer = toInteger(value);
  if (integer === undefined) return value;
  const perMs = unitsPerSecond / 1000;
  const { ms, rest } = splitSubMillis(integer, perMs);
  // PostgreSQL allows 24:00:00, which Date would wrap to 00:00:00.
  if (ms === MS_PER_DAY && rest === 0)
    return perMs === 1 ? '24:00:00.000' : `24:00:00.${'0'.repeat(perMs === 1000 ? 6 : 9)}`;
  const iso = isoDateTime(ms);
  const time = iso.slice(iso.indexOf('T') + 1, -1);
  if (perMs === 1) return time;
  return time + String(rest).padStart(String(perMs).length - 1, '0');
}

const ZONED = /^([+-]?\d{4,}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$/;

/**
 * io.debezium.time.ZonedTimestamp is an ISO-8601 string whose fraction width changed between Debezium versions
 * (trimmed before 2.2, padded to the column precision since DBZ-5996). Canonical form: UTC with "Z" and the fraction
 * without trailing zeros, so the same instant reads the same whatever the connector version.
 */
export function zonedTimestamp(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  // Fast path, the common case: already UTC with no trailing zero in the fraction (or no fraction).
  const last = value.length - 1;
  if (
    value.charCodeAt(last) === 90 /* Z */ &&
    value.charCodeAt(last - 1) !== 48 /* 0 */ &&
    value.charCodeAt(10) === 84 /* T */
  ) {
    const dot = value.indexOf('.', 19);
    if (dot < 0 ? last === 19 : dot === 19) return value;
  }
  const match = ZONED.exec(value);
  if (!match) return value;
  const [, seconds, fraction = '', zone = 'Z'] = match;
  let base = `${seconds}`;
  if (zone !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const offsetMs = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000;
    const utc = Date.parse(`${seconds}Z`) - offsetMs;
    if (Number.isNaN(utc)) return value;
    base = isoDateTime(utc).slice(0, 19);
  }
  const trimmed = fraction.replace(/0+$/, '');
  return trimmed ? `${base}.${trimmed}Z` : `${base}Z`;
}

/** io.debezium.data.Json: JSON text in a string → the parsed value (big integers kept exact). */
export function jsonValue(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  try {
    return parseJson(value);
  } catch {
    return value; // not JSON after all (a custom converter); keep the text rather than lose the row
  }
}
