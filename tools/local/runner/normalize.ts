/**
 * One comparable form for a column value wherever it was read from: the canonical change-event form (what the
 * decoder produces, what the cache stores as JSON, what `_cdc_before` holds) or DuckDB's JSON-friendly form of the
 * warehouse's typed Parquet columns. Verification compares these strings, so both sides must map every value of a
 * type to the same text: timestamps become epoch microseconds (DuckDB prints `2024-01-01 10:00:00.5+00`, the
 * canonical form is `2024-01-01T10:00:00.5Z`), integers lose the number/string distinction (int64 beyond 2^53 is a
 * string on one side and may be a number on the other), JSON is re-serialised with sorted keys.
 */
import type { ColumnType } from '../../../functions/core/types';

/** Where a value was read from. */
export type ValueSide = 'canonical' | 'duckdb';

/** JSON with object keys sorted, so equal values serialise equally whatever their key order. */
export function stableJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
}

const TIMESTAMP =
  /^(-?\d{4,})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)?$/;

/**
 * Epoch microseconds of an ISO-like timestamp (`T` or space, any fraction width, `Z`, `±HH`, `±HH:MM` or none =
 * UTC/naive), as a decimal string; null when it is not one (e.g. `infinity`).
 */
export function timestampMicros(text: string): string | null {
  const m = TIMESTAMP.exec(text);
  if (!m) return null;
  const [, y, mo, d, h, mi, s, fraction, zone] = m;
  const date = new Date(0);
  date.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  date.setUTCHours(Number(h), Number(mi), Number(s), 0);
  let micros = BigInt(date.getTime()) * 1000n + BigInt(`${fraction ?? ''}000000`.slice(0, 6));
  if (zone && zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1n : 1n;
    const digits = zone.slice(1).replaceAll(':', '');
    const seconds =
      Number(digits.slice(0, 2)) * 3600 + Number(digits.slice(2, 4) || 0) * 60 + Number(digits.slice(4, 6) || 0);
    micros -= sign * BigInt(seconds) * 1_000_000n;
  }
  return micros.toString();
}

function integerText(value: unknown): string {
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value).toString();
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value).toString();
  return String(value);
}

function parsedJson(value: unknown, side: ValueSide): unknown {
  // DuckDB hands JSON columns back as their text; canonical values are already parsed.
  if (side === 'duckdb' && typeof value === 'string') {
    try {
      return JSON.parse(value);
    } catch {
      return value;
    }
  }
  return value;
}

/**
 * The comparable text of one column value (null stays null). `type` is the column's Connect-derived type when known
 * (the decoder's `ColumnTypes`); without it, values are compared as JSON.
 */
export function comparable(value: unknown, type: ColumnType | undefined, side: ValueSide): string | null {
  if (value === null || value === undefined) return null;
  switch (type) {
    case 'timestamp':
    case 'timestamptz':
      return typeof value === 'string' ? (timestampMicros(value) ?? value) : String(value);
    case 'int32':
    case 'int64':
      return integerText(value);
    case 'double': {
      const n = Number(value);
      return Number.isNaN(n) ? 'NaN' : String(n);
    }
    case 'boolean':
      return String(value === true || value === 'true');
    case 'json':
      return stableJson(parsedJson(value, side));
    case 'date':
    case 'decimal':
    case 'time':
    case 'bytes':
    case 'string':
      return typeof value === 'string' ? value : stableJson(value);
    default:
      return stableJson(parsedJson(value, side));
  }
}

/** Column-by-column differences between two rows, over the expected row's columns. */
export function rowDifferences(
  expected: Record<string, unknown>,
  actual: Record<string, unknown>,
  types: ReadonlyMap<string, ColumnType> | undefined,
  actualSide: ValueSide,
): Array<{ column: string; expected: string | null; actual: string | null }> {
  const out: Array<{ column: string; expected: string | null; actual: string | null }> = [];
  for (const [column, value] of Object.entries(expected)) {
    const type = types?.get(column);
    const want = comparable(value, type, 'canonical');
    const got = comparable(actual[column], type, actualSide);
    if (want !== got) out.push({ column, expected: want, actual: got });
  }
  return out;
}
