import { isUtf8 } from 'node:buffer';
import { DecodeError } from '../errors';

/**
 * Decodes a base64 key or value strictly. Node's decoder silently skips characters outside the alphabet, so a
 * corrupted payload would decode to *different* bytes without an error; comparing the decoded length with the
 * length the text implies catches that in O(1) instead of a regex over the whole string.
 */
export function decodeBase64(text: string, what: 'key' | 'value'): Buffer {
  const bytes = Buffer.from(text, 'base64');
  let padding = 0;
  if (text.endsWith('==')) padding = 2;
  else if (text.endsWith('=')) padding = 1;
  const symbols = text.length - padding;
  if (symbols % 4 === 1 || bytes.length !== Math.floor((symbols * 3) / 4)) {
    throw new DecodeError('BAD_BASE64', `${what} is not valid base64`);
  }
  return bytes;
}

/** UTF-8 text of the bytes; invalid sequences are an error (Buffer#toString would replace them with U+FFFD). */
export function utf8Text(bytes: Buffer, what: 'key' | 'value'): string {
  if (!isUtf8(bytes)) throw new DecodeError('INVALID_UTF8', `${what} is not valid UTF-8`);
  return bytes.toString('utf8');
}

/**
 * Schema-registry framing we recognise but the JSON decoder does not read (docs/formats.md §3): a clear error that says
 * which registry framed it, instead of "Unexpected token" from JSON.parse.
 */
export function framingOf(bytes: Buffer): 'confluent' | 'glue' | undefined {
  if (bytes.length >= 5 && bytes[0] === 0x00) return 'confluent';
  if (bytes.length >= 18 && bytes[0] === 0x03 && (bytes[1] === 0x00 || bytes[1] === 0x05)) return 'glue';
  return undefined;
}
