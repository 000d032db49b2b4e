import { DecodeError } from '../errors';
import { decodeBase64, framingOf, utf8Text } from './bytes';
import { parseJson, splitSchemaPayload } from './json';

/** A key or value written by JsonConverter: its payload, the compiled plan of its schema, and the payload's text. */
export interface ConnectDocument<P> {
  payload: unknown;
  /** undefined when the document carries no schema (schemas.enable=false). */
  plan: P | undefined;
  /** The JSON text of the payload (used for cheap substring checks such as the TOAST placeholder). */
  text: string;
}

interface TopicPrefix<P> {
  /** Base64 of the whole 3-byte groups of `{"schema":<schema>,"payload":`. */
  base64: string;
  /** The 0–2 bytes of that prefix in the next, partial group. */
  tail: Buffer;
  plan: P;
}

const CACHE_LIMIT = 512;

/**
 * Reads JsonConverter documents (`{"schema":…,"payload":…}` with schemas on, the bare payload with schemas off) from
 * base64 Kafka keys or values, compiling each distinct schema once.
 *
 * Fast path: with schemas on, every record of a topic starts with the same bytes — the schema — which are most of
 * the record. Base64 encodes each 3-byte group to the same 4 characters wherever it occurs at the same offset, so a
 * record whose base64 text starts with the base64 of a known prefix carries that exact schema: only the rest is
 * decoded, checked and parsed. Anything unexpected (another schema, other formatting) takes the general path, which
 * decodes and validates the whole document.
 */
export class ConnectJsonReader<P> {
  private readonly byTopic = new Map<string, TopicPrefix<P>>();
  private readonly bySchemaText = new Map<string, P>();

  constructor(
    private readonly compile: (schema: unknown) => P,
    private readonly what: 'key' | 'value',
    /** How payload text is parsed, knowing the schema's plan when there is one (values: parseDebeziumPayload). */
    private readonly parsePayload: (text: string, plan: P | undefined) => unknown = (text) => parseJson(text),
  ) {}

  read(topic: string, base64: string): ConnectDocument<P> {
    const known = this.byTopic.get(topic);
    // `slice(…) ===` compares with memcmp; String#startsWith walks character by character (10× slower at 5 KB).
    if (
      known !== undefined &&
      base64.length > known.base64.length &&
      base64.slice(0, known.base64.length) === known.base64
    ) {
      const rest = decodeBase64(base64.slice(known.base64.length), this.what);
      const tail = known.tail;
      const end = rest.length - 1;
      if (end > tail.length && rest[end] === 0x7d /* } */ && rest.compare(tail, 0, tail.length, 0, tail.length) === 0) {
        const text = utf8Text(rest.subarray(tail.length, end), this.what);
        try {
          return { payload: this.parsePayload(text, known.plan), plan: known.plan, text };
        } catch {
          // not JSON after all: the general path reports the error on the whole document
        }
      }
    }
    return this.readWhole(topic, base64);
  }

  private readWhole(topic: string, base64: string): ConnectDocument<P> {
    const bytes = decodeBase64(base64, this.what);
    const framing = this.what === 'value' ? framingOf(bytes) : undefined;
    if (framing) {
      throw new DecodeError(
        'UNSUPPORTED_FORMAT',
        `value is ${framing === 'glue' ? 'AWS Glue Schema Registry' : 'Confluent Schema Registry'}-framed binary; this lane decodes JsonConverter JSON`,
      );
    }
    const text = utf8Text(bytes, this.what);
    const split = splitSchemaPayload(text);
    if (split) {
      try {
        let plan = this.bySchemaText.get(split.schemaText);
        if (plan === undefined) {
          plan = this.compile(parseJson(split.schemaText));
          remember(this.bySchemaText, split.schemaText, plan);
        }
        const payload = this.parsePayload(split.payloadText, plan);
        const prefixBytes = Buffer.byteLength(text.slice(0, split.payloadStart));
        const groups = Math.floor(prefixBytes / 3);
        remember(this.byTopic, topic, {
          // A flat copy: a slice would keep this record's whole value alive and compare more slowly.
          base64: Buffer.from(base64.slice(0, groups * 4), 'latin1').toString('latin1'),
          tail: Buffer.from(bytes.subarray(groups * 3, prefixBytes)),
          plan,
        });
        return { payload, plan, text: split.payloadText };
      } catch {
        // fall through: parse the whole text, which reports the real syntax error if there is one
      }
    }
    let whole: unknown;
    try {
      whole = this.parsePayload(text, undefined);
    } catch (error) {
      const code = this.what === 'key' ? 'INVALID_KEY' : 'NOT_JSON';
      throw new DecodeError(code, `${this.what} is not JSON: ${(error as Error).message}`, { cause: error });
    }
    if (
      whole !== null &&
      typeof whole === 'object' &&
      'schema' in whole &&
      'payload' in whole &&
      Object.keys(whole).length === 2
    ) {
      const { schema, payload } = whole as { schema: unknown; payload: unknown };
      if (schema === null) return { payload, plan: undefined, text };
      // Not compact JsonConverter output: still one plan (and one schema version) per distinct schema.
      const schemaText = JSON.stringify(schema);
      let plan = this.bySchemaText.get(schemaText);
      if (plan === undefined) {
        plan = this.compile(schema);
        remember(this.bySchemaText, schemaText, plan);
      }
      return { payload, plan, text };
    }
    return { payload: whole, plan: undefined, text };
  }
}

function remember<K, V>(cache: Map<K, V>, key: K, value: V): void {
  // Schemas change rarely (DDL); a bound keeps a pathological stream from growing the caches without limit.
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(key, value);
}
