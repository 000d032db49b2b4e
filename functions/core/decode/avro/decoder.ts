import type avro from 'avsc';
import { CdcError, DecodeError, SchemaRegistryError } from '../../errors';
import type { DecodeOutcome, Decoder, KafkaRecord, Row, TableSchemaVersion } from '../../types';
import { decodeBase64 } from '../bytes';
import { ConnectJsonReader } from '../connect-json';
import { applyRowPlan, compileKeySchema, compileValueSchema, type RowPlan, type ValuePlan } from '../connect-schema';
import { CONTROL_SCHEMA_NAMES, decodeRecord } from '../record';
import { changeEventOf, readEnvelopeChange, readFlattenedRow, UnavailablePlaceholder } from '../rows';
import { readSchemaChanges } from '../schema-change';
import type { KafkaCoordinates } from '../source';
import { type AvroSchema, compileAvroType } from './avsc-types';
import { avroToConnect, type ConnectSchema } from './connect';
import { CONFLUENT_MAGIC, type Frame, GLUE_HEADER_VERSION, type RegistryKind, readFrame, uuidAt } from './framing';
import type { SchemaRegistryClient } from './registry';

export interface AvroDecoderOptions {
  /** One client per wire format the topics use (a lane usually has one). */
  registries: readonly SchemaRegistryClient[];
  /** Values larger than this are dead-lettered (RECORD_TOO_LARGE). */
  maxRecordBytes?: number;
  /** Debezium's `unavailable.value.placeholder`. */
  placeholder?: string;
  /**
   * How long an id the registry said it does not know stays known-unknown before it is asked again (ms). Ids are
   * registered before a record uses them, so a miss is almost always for good; the TTL covers a registry restored
   * from a backup.
   * @default 60000
   */
  unknownIdTtlMs?: number;
  /** Clock for the TTL (tests). */
  now?: () => number;
}

/** A writer schema compiled once per id: the avsc reader and the JSON path's plans for the same Connect schema. */
interface WriterSchema {
  type: avro.Type;
  value: ValuePlan;
  key: RowPlan | undefined;
  /** The table schema version of the row struct; undefined for control records. */
  table: TableSchemaVersion | undefined;
}

type Resolution =
  | { ok: true; schema: WriterSchema }
  | { ok: false; error: CdcError; at: number }
  | { ok: 'pending'; promise: Promise<void> };

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Decodes Debezium records written by an Avro converter (Confluent `AvroConverter` or Glue `AWSKafkaAvroConverter`)
 * into the same canonical change events as `JsonDebeziumDecoder`: each writer schema is turned back into the Connect
 * schema JsonConverter would have sent, avsc reads the values in JsonConverter's shapes (see avsc-types.ts), and the
 * JSON path's compiled plans convert the logical types. Keys may be Avro or JsonConverter JSON (a `{` first byte).
 *
 * Writer schemas come from the registry asynchronously while `decode` is synchronous: call `prepare(records)` on a
 * batch first. It fetches every schema id the batch names that is not cached yet (one request per id, in parallel)
 * and compiles it once; `decode` then only reads the cache. A record whose schema could not be fetched decodes to a
 * retryable SCHEMA_REGISTRY_UNAVAILABLE error (the batch is retried); an id the registry does not know, a frame in
 * neither wire format or bytes that do not match the writer schema are non-retryable DecodeErrors (dead-lettered).
 */
export class AvroDebeziumDecoder implements Decoder {
  private readonly registries = new Map<RegistryKind, SchemaRegistryClient>();
  private readonly resolutions = new Map<string, Resolution>();
  /** Compiled schemas by schema text: Glue versions and Confluent ids of one schema share one compiled type. */
  private readonly byText = new Map<string, WriterSchema>();
  private readonly jsonKeys = new ConnectJsonReader<RowPlan | undefined>(compileKeySchema, 'key');
  private readonly maxRecordBytes: number;
  private readonly unknownIdTtlMs: number;
  private readonly now: () => number;
  private readonly placeholder: UnavailablePlaceholder;

  constructor(options: AvroDecoderOptions) {
    for (const registry of options.registries) this.registries.set(registry.kind, registry);
    this.maxRecordBytes = options.maxRecordBytes ?? 1_048_576;
    this.unknownIdTtlMs = options.unknownIdTtlMs ?? 60_000;
    this.now = options.now ?? Date.now;
    this.placeholder = new UnavailablePlaceholder(options.placeholder);
  }

  /**
   * Fetches and compiles the writer schemas of these records' keys and values that are not cached yet. Never
   * rejects: a failure is remembered per id and reported by `decode` for the records that need it.
   */
  async prepare(records: Iterable<KafkaRecord>): Promise<void> {
    const waits: Array<Promise<void>> = [];
    const seen = new Set<string>();
    for (const record of records) {
      for (const text of [record.key, record.value]) {
        const ref = text ? peekSchemaRef(text) : undefined;
        if (!ref) continue;
        const cacheKey = `${ref.registry}:${ref.schemaId}`;
        if (seen.has(cacheKey)) continue;
        seen.add(cacheKey);
        const wait = this.resolve(ref.registry, ref.schemaId, cacheKey);
        if (wait) waits.push(wait);
      }
    }
    await Promise.all(waits);
  }

  /** Starts (or joins) the fetch of one schema id unless its outcome is cached; returns what to wait for. */
  private resolve(registry: RegistryKind, schemaId: string, cacheKey: string): Promise<void> | undefined {
    const known = this.resolutions.get(cacheKey);
    if (known?.ok === true) return undefined;
    if (known?.ok === 'pending') return known.promise;
    if (known && !known.error.retryable && this.now() - known.at < this.unknownIdTtlMs) return undefined;
    const client = this.registries.get(registry);
    if (!client) {
      const error = new DecodeError(
        'UNSUPPORTED_FORMAT',
        `record is ${registry === 'glue' ? 'AWS Glue' : 'Confluent'} Schema Registry-framed but this lane has no ${registry} registry configured`,
      );
      this.resolutions.set(cacheKey, { ok: false, error, at: this.now() });
      return undefined;
    }
    const promise = client.getSchema(schemaId).then(
      (text) => {
        this.resolutions.set(cacheKey, { ok: true, schema: this.compile(text, registry, schemaId) });
      },
      (error: unknown) => {
        const failure =
          error instanceof CdcError
            ? error
            : new SchemaRegistryError(
                `${registry} registry: schema ${schemaId}: ${(error as Error)?.message ?? error}`,
                {
                  cause: error,
                },
              );
        this.resolutions.set(cacheKey, { ok: false, error: failure, at: this.now() });
      },
    );
    // `compile` can throw inside the then-callback; such a schema is stored as a failure below.
    const guarded = promise.catch((error: unknown) => {
      const failure =
        error instanceof CdcError
          ? error
          : new DecodeError(
              'INVALID_AVRO',
              `${registry} schema ${schemaId} is not a usable Avro schema: ${(error as Error).message}`,
            );
      this.resolutions.set(cacheKey, { ok: false, error: failure, at: this.now() });
    });
    this.resolutions.set(cacheKey, { ok: 'pending', promise: guarded });
    return guarded;
  }

  private compile(text: string, registry: RegistryKind, schemaId: string): WriterSchema {
    const cached = this.byText.get(text);
    if (cached) return cached;
    let avroSchema: AvroSchema;
    let connect: ConnectSchema;
    let type: avro.Type;
    try {
      avroSchema = JSON.parse(text) as AvroSchema;
      type = compileAvroType(avroSchema);
      connect = avroToConnect(avroSchema);
    } catch (error) {
      throw new DecodeError(
        'INVALID_AVRO',
        `${registry} schema ${schemaId} is not a usable Avro schema: ${(error as Error).message}`,
        { cause: error },
      );
    }
    // The JSON path's plan of the same Connect schema: logical-type converters, column types, table schema version.
    const value = compileValueSchema(connect);
    const control = CONTROL_SCHEMA_NAMES.some(([pattern]) => pattern.test(value.name ?? ''));
    const compiled: WriterSchema = {
      type,
      value,
      key: compileKeySchema(connect),
      table: control ? undefined : value.schema,
    };
    // Schemas change with DDL only; the bound keeps a pathological stream from growing the cache without limit.
    if (this.byText.size >= 512) this.byText.clear();
    this.byText.set(text, compiled);
    return compiled;
  }

  /** The compiled writer schema of a frame, or the error remembered for its id. */
  private writerSchema(frame: Frame): WriterSchema {
    const resolution = this.resolutions.get(`${frame.registry}:${frame.schemaId}`);
    if (resolution?.ok === true) return resolution.schema;
    if (resolution?.ok === false) throw resolution.error;
    // Not fetched: the caller skipped prepare() for this batch (or it is still running). The record is fine.
    throw new SchemaRegistryError(
      `${frame.registry} schema ${frame.schemaId} is not loaded: call prepare() on the batch before decode()`,
    );
  }

  decode(record: KafkaRecord, processedAt: number): DecodeOutcome {
    return decodeRecord(record, this.maxRecordBytes, () =>
      this.read(record as KafkaRecord & { value: string }, processedAt),
    );
  }

  /** A record with a value within the size limit. */
  private read(record: KafkaRecord & { value: string }, processedAt: number): DecodeOutcome {
    const frame = readFrame(decodeBase64(record.value, 'value'), 'value');
    const writer = this.writerSchema(frame);
    const payload = readAvro(writer.type, frame, 'value');
    if (!isObject(payload)) throw new DecodeError('NOT_AN_OBJECT', 'value is not an Avro record');
    const plan = writer.value;
    if (plan.name) {
      for (const [pattern, reason] of CONTROL_SCHEMA_NAMES) {
        if (!pattern.test(plan.name)) continue;
        // Debezium's DDL records feed the schema history, as in the JSON decoder.
        if (reason === 'schema-change') return { kind: 'schema-change', changes: readSchemaChanges(payload, record) };
        return { kind: 'skip', reason };
      }
    }
    const kafka: KafkaCoordinates = { topic: record.topic, partition: record.partition, offset: record.offset };
    // ExtractNewRecordState output has the row's value schema (`<topic>.Value`), add.fields as `__` columns.
    const change = plan.kind === 'envelope' ? readEnvelopeChange(payload, kafka) : readFlattenedRow(payload, kafka);
    if (!change) return { kind: 'skip', reason: 'logical-message' };
    const key = this.decodeKey(record);
    // The placeholder's bytes appear in the Avro body as they are or as int varints: one search each per record.
    const mayHold = this.placeholder.mayBeInAvro(frame.payload);
    const unchanged = this.placeholder.convertRows(change.before, change.after, plan.row, mayHold);
    const event = changeEventOf(record, change, key, unchanged, processedAt);
    const outcome: DecodeOutcome = { kind: 'event', event, columns: plan.row?.columns };
    if (writer.table) outcome.schema = writer.table;
    return outcome;
  }

  private decodeKey(record: KafkaRecord): Row | null {
    if (record.key === null || record.key === undefined || record.key === '') return null;
    const bytes = decodeBase64(record.key, 'key');
    // Keys may be written by JsonConverter while values are Avro (key.converter is set apart): `{` starts them.
    if (bytes[0] === 0x7b) {
      const { payload, plan } = this.jsonKeys.read(record.topic, record.key);
      if (payload === null) return null;
      if (!isObject(payload))
        throw new DecodeError('INVALID_KEY', 'key is not a JSON object (Debezium keys are structs)');
      if (plan) applyRowPlan(payload, plan);
      return payload;
    }
    const frame = readFrame(bytes, 'key');
    const writer = this.writerSchema(frame);
    const payload = readAvro(writer.type, frame, 'key');
    if (!isObject(payload))
      throw new DecodeError('INVALID_KEY', 'key is not an Avro record (Debezium keys are structs)');
    if (writer.key) applyRowPlan(payload, writer.key);
    return payload;
  }
}

/** Reads the Avro body with its writer schema; bytes that do not line up are a non-retryable error. */
function readAvro(type: avro.Type, frame: Frame, what: 'key' | 'value'): unknown {
  try {
    return type.fromBuffer(frame.payload);
  } catch (error) {
    throw new DecodeError(
      'INVALID_AVRO',
      `${what} does not decode with ${frame.registry} schema ${frame.schemaId}: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/**
 * The schema reference of a base64 key or value from its first 24 characters (18 bytes: the longest header), without
 * decoding the rest. undefined when it carries no registry frame (JSON keys, garbage: `decode` reports those).
 */
export function peekSchemaRef(base64: string): { registry: RegistryKind; schemaId: string } | undefined {
  const head = Buffer.from(base64.slice(0, 24), 'base64');
  if (head.length >= 5 && head[0] === CONFLUENT_MAGIC)
    return { registry: 'confluent', schemaId: String(head.readUInt32BE(1)) };
  if (head.length >= 18 && head[0] === GLUE_HEADER_VERSION) return { registry: 'glue', schemaId: uuidAt(head, 2) };
  return undefined;
}
