/**
 * The local stand-in for Confluent's `AvroConverter` (`key.converter` and `value.converter` of a Debezium connector):
 * turns the capture's JsonConverter records (`{"schema": <Connect schema>, "payload": ...}`) into what the same
 * connector writes with the Avro converter and a schema registry:
 *
 * - each Connect schema becomes the Avro schema Confluent's AvroData registers for it (`connectToAvro`, which the
 *   lanes' decoder inverts), so the value schema is `<topic>.Envelope`, the key schema `<topic>.Key`;
 * - it is registered under the subject `<topic>-value` / `<topic>-key` (TopicNameStrategy, the converter's default)
 *   with `POST /subjects/{subject}/versions`, once per schema (the converter caches ids the same way);
 * - the payload is Avro-encoded and framed with the Confluent wire format (magic byte 0, 4-byte schema id).
 *
 * A registration the registry refuses as incompatible (HTTP 409) fails the conversion, and with it the capture, as
 * the converter fails a Debezium task: {@link IncompatibleSchemaError} says in one line which table, which change and
 * which rule.
 */
import type avro from 'avsc';
import { isSafeNumber, parse } from 'lossless-json';
import {
  type AvroSchema,
  type ConnectSchema,
  compileAvroType,
  confluentFrame,
  connectToAvro,
} from '../../../functions/core/decode/avro';
import { type CompatibilityLevel, checkCompatibility, formatViolation } from '../../schemas/compatibility';
import type { CapturedRecord } from '../capture/types';
import { SourceError } from '../capture/types';

/** A JsonConverter document with numbers exact: unsafe numbers stay digit strings (the Avro types accept them). */
export interface ConnectDocument {
  schema: ConnectSchema;
  payload: unknown;
}

/**
 * Parses JsonConverter bytes. Null when the bytes are JSON `null`; undefined when the document carries no schema
 * (schemas.enable=false: nothing says which Avro schema the converter would use).
 */
export function parseConnectDocument(text: string): ConnectDocument | null | undefined {
  const document = parse(text, null, (digits) => (isSafeNumber(digits) ? Number(digits) : digits)) as Record<
    string,
    unknown
  > | null;
  if (document === null) return null;
  if (typeof document !== 'object' || !document.schema || !('payload' in document)) return undefined;
  return { schema: document.schema as ConnectSchema, payload: document.payload };
}

/** The registry refused a table's new schema under the subject's compatibility level: the capture stops. */
export class IncompatibleSchemaError extends SourceError {
  constructor(
    readonly subject: string,
    readonly table: string,
    readonly level: string,
    readonly violations: string[],
  ) {
    super(
      `schema change of ${table} refused by the schema registry (subject ${subject}, compatibility ${level}): ` +
        `${violations[0] ?? 'incompatible'}${violations.length > 1 ? ` (and ${violations.length - 1} more)` : ''}; ` +
        'the connector stops here, as Debezium with the Avro converter does',
    );
  }
}

/** What the registry's REST API answers: an object, or for a subject's versions a list of numbers. */
type RegistryAnswer = { id?: unknown; schema?: unknown; message?: unknown; compatibilityLevel?: unknown } | number[];

interface Registered {
  id: number;
  type: avro.Type;
}

export interface AvroConverterOptions {
  /** The Confluent-compatible registry (the run's local one). */
  url: string;
  /** Debezium's `topic.prefix`: a table topic `<prefix>.<schema>.<table>` names the table in errors. */
  topicPrefix: string;
  fetch?: typeof fetch;
}

/** Converts captured JsonConverter records to Confluent-framed Avro, registering schemas on the way. */
export class AvroConverter {
  private readonly base: string;
  private readonly fetch: typeof fetch;
  /** By subject and Connect schema text (the capture writes one text per table schema): id and compiled type. */
  private readonly registered = new Map<string, Registered>();
  /** Connect schema text → the Avro schema AvroData makes of it (one per table schema, shared by subjects). */
  private readonly avroOf = new Map<string, { text: string; schema: AvroSchema; type: avro.Type }>();

  constructor(private readonly options: AvroConverterOptions) {
    this.base = options.url.replace(/\/+$/, '');
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  /** Keys and values converted, and their sizes in JsonConverter and in Avro form (bytes). */
  readonly stats = { records: 0, jsonBytes: 0, avroBytes: 0 };

  /** The records in Avro, in order (keys, values, tombstones and headers as the converter leaves them). */
  async convert(records: readonly CapturedRecord[]): Promise<CapturedRecord[]> {
    const out: CapturedRecord[] = [];
    for (const record of records) {
      const key = record.key && (await this.encode(record.topic, 'key', record.key));
      const value = record.value && (await this.encode(record.topic, 'value', record.value));
      this.stats.records++;
      this.stats.jsonBytes += (record.key?.length ?? 0) + (record.value?.length ?? 0);
      this.stats.avroBytes += (key?.length ?? 0) + (value?.length ?? 0);
      out.push({ ...record, key, value });
    }
    return out;
  }

  private async encode(topic: string, part: 'key' | 'value', bytes: Buffer): Promise<Buffer> {
    const document = parseConnectDocument(bytes.toString('utf8'));
    if (document === null) return bytes;
    if (document === undefined) {
      throw new Error(`${topic}: a ${part} without a Connect schema cannot be written with the Avro converter`);
    }
    const connectText = JSON.stringify(document.schema);
    const subject = `${topic}-${part}`;
    const cacheKey = `${subject}\n${connectText}`;
    let registered = this.registered.get(cacheKey);
    if (!registered) {
      let avroSchema = this.avroOf.get(connectText);
      if (!avroSchema) {
        const schema = connectToAvro(document.schema);
        avroSchema = { text: JSON.stringify(schema), schema, type: compileAvroType(schema) };
        this.avroOf.set(connectText, avroSchema);
      }
      const id = await this.register(topic, subject, avroSchema.text, avroSchema.schema);
      registered = { id, type: avroSchema.type };
      this.registered.set(cacheKey, registered);
    }
    return confluentFrame(registered.id, registered.type.toBuffer(document.payload));
  }

  private async request(path: string, init?: RequestInit): Promise<{ status: number; body: RegistryAnswer }> {
    const response = await this.fetch(`${this.base}${path}`, {
      ...init,
      headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
    });
    const text = await response.text();
    let body: RegistryAnswer = {};
    try {
      body = JSON.parse(text) as RegistryAnswer;
    } catch {}
    return { status: response.status, body };
  }

  private async register(topic: string, subject: string, text: string, schema: AvroSchema): Promise<number> {
    const path = `/subjects/${encodeURIComponent(subject)}/versions`;
    const answer = await this.request(path, { method: 'POST', body: JSON.stringify({ schema: text }) });
    const body = Array.isArray(answer.body) ? {} : answer.body;
    if (answer.status === 200 && typeof body.id === 'number') return body.id;
    if (answer.status === 409) throw await this.incompatible(topic, subject, schema);
    throw new Error(
      `schema registry ${this.base}: registering ${subject} answered ${answer.status}: ${String(body.message ?? '')}`,
    );
  }

  /** Says which change broke which rule: the latest version and the subject's level, checked as the registry does. */
  private async incompatible(topic: string, subject: string, schema: AvroSchema): Promise<IncompatibleSchemaError> {
    const s = encodeURIComponent(subject);
    const config = await this.request(`/config/${s}?defaultToGlobal=true`);
    const level = String(
      (!Array.isArray(config.body) && config.body.compatibilityLevel) || 'BACKWARD',
    ) as CompatibilityLevel;
    // Transitive levels compare with every version, the others with the latest (checkCompatibility's own rule).
    const listed = await this.request(`/subjects/${s}/versions`);
    const numbers = Array.isArray(listed.body) ? listed.body : [];
    const wanted = level.endsWith('_TRANSITIVE') ? numbers : numbers.slice(-1);
    const previous: AvroSchema[] = [];
    for (const version of wanted) {
      const answer = await this.request(`/subjects/${s}/versions/${version}`);
      const schemaText = Array.isArray(answer.body) ? undefined : answer.body.schema;
      if (typeof schemaText === 'string') previous.push(JSON.parse(schemaText) as AvroSchema);
    }
    const violations = checkCompatibility(schema, previous, level).map(formatViolation);
    const prefix = `${this.options.topicPrefix}.`;
    const table = topic.startsWith(prefix) ? topic.slice(prefix.length) : topic;
    return new IncompatibleSchemaError(subject, table, level, violations);
  }
}
