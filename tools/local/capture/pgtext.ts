/**
 * Parsers for PostgreSQL's text output formats (DateStyle=ISO, IntervalStyle=postgres, TimeZone=UTC,
 * bytea_output=hex, which the capture sets on its sessions) and the Java time formatting Debezium applies.
 * Both the snapshot (a SELECT in text mode) and the stream (pgoutput text tuples) go through these, so a row is
 * encoded the same way whichever path it came from.
 */

// Days → date with the decoder's own algorithm: the capture's timestamps and the lanes' dates agree by construction.
import { civilFromDays } from '../../../functions/core/decode/logical';

const MICROS_PER_SECOND = 1_000_000;
const SECONDS_PER_DAY = 86_400;

/** Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's days_from_civil). */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const mp = (month + 9) % 12;
  const doy = Math.floor((153 * mp + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** `2024-03-15` (or `0044-03-15 BC`) -> days since the epoch; null for `infinity`/`-infinity`. */
export function parseDate(text: string): number | null {
  if (text === 'infinity' || text === '-infinity') return null;
  const bc = text.endsWith(' BC');
  const dash = text.indexOf('-', 1);
  let year = Number(text.slice(0, dash));
  const month = Number(text.slice(dash + 1, dash + 3));
  const day = Number(text.slice(dash + 4, dash + 6));
  if (bc) year = 1 - year;
  return daysFromCivil(year, month, day);
}

/** `HH:MM:SS[.ffffff]` -> microseconds past midnight (24:00:00 is allowed by PostgreSQL). */
export function parseTimeMicros(text: string): number {
  const hours = Number(text.slice(0, 2));
  const minutes = Number(text.slice(3, 5));
  const seconds = Number(text.slice(6, 8));
  return ((hours * 60 + minutes) * 60 + seconds) * MICROS_PER_SECOND + fractionMicros(text, 8);
}

/** Microseconds from an optional `.ffffff` fraction starting at `at`. */
function fractionMicros(text: string, at: number): number {
  if (text.charCodeAt(at) !== 46 /* . */) return 0;
  let end = at + 1;
  while (end < text.length && text.charCodeAt(end) >= 48 && text.charCodeAt(end) <= 57) end++;
  return Number(
    text
      .slice(at + 1, end)
      .padEnd(6, '0')
      .slice(0, 6),
  );
}

/** Parses a UTC offset such as `+00`, `-08`, `+05:30`, `+05:30:15` into seconds east of UTC. */
function parseOffsetSeconds(text: string): number {
  const sign = text[0] === '-' ? -1 : 1;
  const parts = text.slice(1).split(':');
  const h = Number(parts[0] ?? 0);
  const m = Number(parts[1] ?? 0);
  const s = Number(parts[2] ?? 0);
  return sign * (h * 3600 + m * 60 + s);
}

/** An instant as whole seconds since the epoch (floor) plus microseconds within that second (0..999999). */
export interface EpochTime {
  seconds: number;
  micros: number;
}

/**
 * `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]][ BC]` -> epoch seconds + micros. Without an offset the wall-clock time is
 * taken as UTC, which is what Debezium does for `timestamp without time zone` (LocalDateTime at UTC).
 * Returns null for `infinity`/`-infinity`.
 */
export function parseTimestamp(text: string): EpochTime | null {
  if (text === 'infinity' || text === '-infinity') return null;
  let body = text;
  let bc = false;
  if (body.endsWith(' BC')) {
    bc = true;
    body = body.slice(0, -3);
  }
  const space = body.indexOf(' ', 1);
  const datePart = body.slice(0, space);
  const timePart = body.slice(space + 1);
  const dash = datePart.indexOf('-', 1);
  let year = Number(datePart.slice(0, dash));
  if (bc) year = 1 - year;
  const month = Number(datePart.slice(dash + 1, dash + 3));
  const day = Number(datePart.slice(dash + 4, dash + 6));
  const hours = Number(timePart.slice(0, 2));
  const minutes = Number(timePart.slice(3, 5));
  const secs = Number(timePart.slice(6, 8));
  const micros = fractionMicros(timePart, 8);
  let offset = 0;
  const tz = timePart.slice(8).search(/[+-]/);
  if (tz >= 0) offset = parseOffsetSeconds(timePart.slice(8 + tz));
  const seconds = daysFromCivil(year, month, day) * SECONDS_PER_DAY + hours * 3600 + minutes * 60 + secs - offset;
  return { seconds, micros };
}

/** Epoch microseconds as exact decimal text (falls back to BigInt beyond 2^53). */
export function microsText(t: EpochTime): string {
  if (Math.abs(t.seconds) < 9_000_000_000) return String(t.seconds * MICROS_PER_SECOND + t.micros);
  return (BigInt(t.seconds) * 1_000_000n + BigInt(t.micros)).toString();
}

/** Epoch milliseconds (floor) as exact decimal text. */
export function millisText(t: EpochTime): string {
  return String(t.seconds * 1000 + Math.floor(t.micros / 1000));
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** Java's ISO_LOCAL_DATE year: at least 4 digits, `+` beyond 9999, `-` before year 0. */
function isoYear(year: number): string {
  if (year > 9999) return `+${year}`;
  if (year < 0) return `-${pad(-year, 4)}`;
  return pad(year, 4);
}

/**
 * The fraction Java's DateTimeFormatter prints: with a fixed width (Debezium's ZonedTimestamp pads to the column
 * precision, DBZ-5996) exactly `width` digits; otherwise (ISO formatter) as few digits as needed, none for zero.
 */
function fraction(micros: number, width: number | null): string {
  const six = pad(micros, 6);
  if (width !== null && width > 0) return `.${six.padEnd(width, '0').slice(0, width)}`;
  if (micros === 0) return '';
  return `.${six.replace(/0+$/, '')}`;
}

/** io.debezium.time.ZonedTimestamp text: the instant in UTC, `2024-03-15T10:30:00.123456Z`. */
export function zonedTimestampText(t: EpochTime, width: number | null): string {
  const days = Math.floor(t.seconds / SECONDS_PER_DAY);
  const secOfDay = t.seconds - days * SECONDS_PER_DAY;
  const [y, m, d] = civilFromDays(days);
  const hh = Math.floor(secOfDay / 3600);
  const mm = Math.floor((secOfDay % 3600) / 60);
  const ss = secOfDay % 60;
  return `${isoYear(y)}-${pad(m, 2)}-${pad(d, 2)}T${pad(hh, 2)}:${pad(mm, 2)}:${pad(ss, 2)}${fraction(t.micros, width)}Z`;
}

/** io.debezium.time.ZonedTime text: `10:30:00.123+02` -> `08:30:00.123Z` (ISO_OFFSET_TIME in UTC). */
export function zonedTimeText(text: string): string {
  const micros = parseTimeMicros(text);
  const tz = text.slice(8).search(/[+-]/);
  const offset = tz >= 0 ? parseOffsetSeconds(text.slice(8 + tz)) : 0;
  const total = micros - offset * MICROS_PER_SECOND;
  const dayMicros = SECONDS_PER_DAY * MICROS_PER_SECOND;
  const utc = ((total % dayMicros) + dayMicros) % dayMicros;
  const secs = Math.floor(utc / MICROS_PER_SECOND);
  const hh = Math.floor(secs / 3600);
  const mm = Math.floor((secs % 3600) / 60);
  const ss = secs % 60;
  return `${pad(hh, 2)}:${pad(mm, 2)}:${pad(ss, 2)}${fraction(utc % MICROS_PER_SECOND, null)}Z`;
}

/**
 * io.debezium.time.MicroDuration for an `interval` in IntervalStyle=postgres (`1 year 2 mons -3 days 04:05:06.5`).
 * Mirrors Debezium's `MicroDuration.durationMicros(years, months, days, hours, minutes, seconds, 365.25 / 12)` with
 * pgjdbc's PGInterval fields, in the same double arithmetic and with Java's truncating `(long)` cast.
 */
export function intervalMicrosText(text: string): string {
  let years = 0;
  let months = 0;
  let days = 0;
  let hours = 0;
  let minutes = 0;
  let seconds = 0;
  const tokens = text.trim().split(/\s+/);
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] ?? '';
    if (token.includes(':')) {
      const negative = token.startsWith('-');
      const parts = token.replace(/^[+-]/, '').split(':');
      const sign = negative ? -1 : 1;
      hours = sign * Number(parts[0] ?? 0);
      minutes = sign * Number(parts[1] ?? 0);
      seconds = sign * Number(parts[2] ?? 0);
      continue;
    }
    const value = Number(token);
    const unit = tokens[++i] ?? '';
    if (unit.startsWith('year')) years = value;
    else if (unit.startsWith('mon')) months = value;
    else if (unit.startsWith('day')) days = value;
    else if (unit.startsWith('hour')) hours = value;
    else if (unit.startsWith('min')) minutes = value;
    else if (unit.startsWith('sec')) seconds = value;
  }
  const daysPerMonthAvg = 365.25 / 12.0;
  const numberOfDays = (years * 12 + months) * daysPerMonthAvg + days;
  const numberOfSeconds = ((numberOfDays * 24 + hours) * 60 + minutes) * 60 + seconds;
  const micros = Math.trunc(numberOfSeconds * 1e6);
  return Number.isSafeInteger(micros) ? String(micros) : BigInt(micros).toString();
}

/** `\x0a0b` (bytea_output=hex) -> bytes. */
export function parseByteaHex(text: string): Buffer {
  if (text.startsWith('\\x')) return Buffer.from(text.slice(2), 'hex');
  // bytea_output=escape, in case a server forces it: octal escapes and doubled backslashes.
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 92) {
      out.push(c);
    } else if (text[i + 1] === '\\') {
      out.push(92);
      i++;
    } else {
      out.push(Number.parseInt(text.slice(i + 1, i + 4), 8));
      i += 3;
    }
  }
  return Buffer.from(out);
}

/** A parsed array literal: elements are text (or null), nested for multi-dimensional arrays. */
export type PgArray = Array<string | null | PgArray>;

/** Parses PostgreSQL's array text output (`{1,2,NULL}`, `{"a b","c\"d"}`, `{{1,2},{3,4}}`, `[0:1]={1,2}`). */
export function parseArray(text: string, delimiter = ','): PgArray {
  let i = 0;
  if (text[0] === '[') i = text.indexOf('=') + 1;
  const parse = (): PgArray => {
    const out: PgArray = [];
    i++; // '{'
    if (text[i] === '}') {
      i++;
      return out;
    }
    for (;;) {
      if (text[i] === '{') {
        out.push(parse());
      } else if (text[i] === '"') {
        let s = '';
        i++;
        while (text[i] !== '"') {
          if (text[i] === '\\') i++;
          s += text[i];
          i++;
        }
        i++;
        out.push(s);
      } else {
        let end = i;
        while (text[end] !== delimiter && text[end] !== '}') end++;
        const raw = text.slice(i, end).trim();
        out.push(raw.toUpperCase() === 'NULL' ? null : raw);
        i = end;
      }
      if (text[i] === delimiter) {
        i++;
        continue;
      }
      i++; // '}'
      return out;
    }
  };
  return parse();
}
