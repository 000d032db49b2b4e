/**
 * JSON text exactly as Kafka's JsonConverter writes it (Jackson, compact, no spaces). Values are serialised by hand
 * with template strings because (a) int64 fields such as `ts_ns` and LSNs must keep every digit, and (b) Jackson and
 * `JSON.stringify` disagree on a few details handled here.
 */

// Jackson (`CharTypes.sOutputEscapes128`) escapes control characters with UPPER-case hex (`\u001F`), JSON.stringify
// with lower-case (`\u001f`); both use the short forms \b \t \n \f \r and leave everything >= 0x20 (incl. U+2028)
// as is. Only strings that contain a control character need the fix-up, so the common path is one regex test.
const CONTROL = /[\u0000-\u001f]/;
const LOWER_HEX_ESCAPE = /\\\\|\\u00([0-9a-f]{2})/g;

/** A JSON string literal as Jackson writes it. */
export function jsonString(value: string): string {
  const text = JSON.stringify(value);
  if (!CONTROL.test(value)) return text;
  return text.replace(LOWER_HEX_ESCAPE, (match, hex: string | undefined) =>
    hex === undefined ? match : `\\u00${hex.toUpperCase()}`,
  );
}

/**
 * Formats a PostgreSQL `real`/`double precision` text value the way Java's `Float.toString`/`Double.toString` print
 * it (Jackson writes floats through them): `1.0`, `123.45`, `1.0E10`, `1.5E-5`. PostgreSQL >= 12 prints the shortest
 * round-trip digits (extra_float_digits=1), which are the digits JDK >= 19 chooses too, so only the layout changes:
 * plain notation for 1e-3 <= |v| < 1e7, otherwise one digit, a point, at least one more digit and `E<exp>`.
 * NaN and infinities are non-numeric; Jackson's default QUOTE_NON_NUMERIC_NUMBERS writes them as strings.
 */
export function javaFloatText(pgText: string): string {
  const text = pgText.trim();
  if (text === 'NaN') return '"NaN"';
  if (text === 'Infinity' || text === 'inf') return '"Infinity"';
  if (text === '-Infinity' || text === '-inf') return '"-Infinity"';
  let negative = false;
  let body = text;
  if (body.startsWith('-')) {
    negative = true;
    body = body.slice(1);
  } else if (body.startsWith('+')) {
    body = body.slice(1);
  }
  let exponent = 0;
  const e = body.search(/[eE]/);
  if (e >= 0) {
    exponent = Number.parseInt(body.slice(e + 1), 10);
    body = body.slice(0, e);
  }
  const point = body.indexOf('.');
  let digits = point >= 0 ? body.slice(0, point) + body.slice(point + 1) : body;
  // Position of the decimal point relative to the start of `digits`.
  let pointPos = (point >= 0 ? point : body.length) + exponent;
  const leading = digits.length - digits.replace(/^0+/, '').length;
  digits = digits.slice(leading);
  pointPos -= leading;
  digits = digits.replace(/0+$/, '');
  const sign = negative ? '-' : '';
  if (digits.length === 0) return `${sign}0.0`;
  // Scientific exponent: value = 0.d1d2... * 10^pointPos = d1.d2... * 10^(pointPos - 1).
  const sciExp = pointPos - 1;
  if (sciExp >= -3 && sciExp < 7) {
    if (pointPos <= 0) return `${sign}0.${'0'.repeat(-pointPos)}${digits}`;
    if (pointPos >= digits.length) return `${sign}${digits}${'0'.repeat(pointPos - digits.length)}.0`;
    return `${sign}${digits.slice(0, pointPos)}.${digits.slice(pointPos)}`;
  }
  const fraction = digits.length > 1 ? digits.slice(1) : '0';
  return `${sign}${digits[0]}.${fraction}E${sciExp}`;
}

/** Base64 of Java's `BigInteger.toByteArray()`: minimal big-endian two's complement, with a sign byte when needed. */
export function bigIntToBase64(value: bigint): string {
  return twosComplementBytes(value).toString('base64');
}

/** Java's `BigInteger.toByteArray()`: 0 -> [00], 128 -> [00 80], -1 -> [FF], -129 -> [FF 7F]. */
export function twosComplementBytes(value: bigint): Buffer {
  if (value >= 0n) {
    let hex = value.toString(16);
    if (hex.length % 2 === 1) hex = `0${hex}`;
    // A set top bit would read as negative: Java prepends a zero byte.
    if (Number.parseInt(hex.slice(0, 1), 16) >= 8) hex = `00${hex}`;
    return Buffer.from(hex, 'hex');
  }
  let bytes = 1;
  while (value < -(1n << BigInt(bytes * 8 - 1))) bytes++;
  const unsigned = (1n << BigInt(bytes * 8)) + value;
  return Buffer.from(unsigned.toString(16).padStart(bytes * 2, '0'), 'hex');
}
