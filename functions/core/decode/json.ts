import { isInteger, parse as parseLossless } from 'lossless-json';

/**
 * JSON.parse rounds integers beyond 2^53 (PostgreSQL LSNs can, `ts_ns` always does) and decimals a double cannot
 * hold (JsonConverter's decimal.format=NUMERIC). Before parsing, numbers of 16+ digits in value position are quoted
 * when a double would change them, so they arrive as exact decimal strings. The
 * pattern can also match digits inside a string literal; quoting those always makes the text invalid JSON (a
 * string followed by a number), so JSON.parse throws and the record takes the slow lossless parser instead. The
 * fast path therefore never changes the meaning of a document, it only fails over.
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

/** Parses JSON keeping every digit of large integers (as strings). Throws SyntaxError on invalid JSON. */
export function parseJson(text: string): unknown {
  const guarded = text.replace(LONG_NUMBER, quoteUnsafe);
  try {
    return JSON.parse(guarded);
  } catch (error) {
    if (guarded === text) throw error;
    return parseLossless(text, null, losslessNumber);
  }
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
export function splitSchemaPayload(text: string): { schemaText: string; payloadText: string } | undefined {
  if (!text.startsWith(SCHEMA_PREFIX) || text.charCodeAt(text.length - 1) !== 125 /* } */) return undefined;
  const separator = text.indexOf(PAYLOAD_SEPARATOR, SCHEMA_PREFIX.length);
  if (separator < 0) return undefined;
  return {
    schemaText: text.slice(SCHEMA_PREFIX.length, separator),
    payloadText: text.slice(separator + PAYLOAD_SEPARATOR.length, text.length - 1),
  };
}
