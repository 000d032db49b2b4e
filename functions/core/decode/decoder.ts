import { changeId } from '../change';
import { CdcError, DecodeError } from '../errors';
import type {
  ChangeEvent,
  ChangeSource,
  ColumnTypes,
  DecodeOutcome,
  Decoder,
  KafkaRecord,
  Op,
  Row,
  SkipReason,
} from '../types';
import { ConnectJsonReader } from './connect-json';
import { applyRowPlan, compileKeySchema, compileValueSchema, type RowPlan, type ValuePlan } from './connect-schema';
import { readEnvelope } from './envelope';
import { parseDebeziumPayload } from './json';
import { readSchemaChanges } from './schema-change';
import { type KafkaCoordinates, readSource, type SourceBlock } from './source';

export interface JsonDecoderOptions {
  /** Values larger than this are dead-lettered (RECORD_TOO_LARGE). */
  maxRecordBytes?: number;
  /** Debezium's `unavailable.value.placeholder`. */
  placeholder?: string;
}

const NO_SCHEMA: ValuePlan = { kind: 'other', name: undefined, row: undefined };

/** Kafka headers Debezium adds are irrelevant to decoding; heartbeats live on their own topic. */
const HEARTBEAT_TOPIC_PREFIX = '__debezium-heartbeat';

/** Control records recognised by their Connect schema name (schemas on) before looking at the payload's shape. */
const CONTROL_SCHEMA_NAMES: ReadonlyArray<readonly [RegExp, SkipReason]> = [
  [/\.Heartbeat$/, 'heartbeat'],
  [/TransactionMetadataValue$/, 'transaction'],
  [/SchemaChangeValue$/, 'schema-change'],
];

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Decodes Debezium JsonConverter output (schemas.enable true or false, full envelope or ExtractNewRecordState
 * output) into canonical change events. Schemas are compiled once per distinct schema text and cached.
 */
export class JsonDebeziumDecoder implements Decoder {
  private readonly values = new ConnectJsonReader<ValuePlan>(compileValueSchema, 'value', (text, plan) =>
    parseDebeziumPayload(text, plan?.kind === 'envelope' ? plan.row?.numeric : undefined),
  );
  private readonly keys = new ConnectJsonReader<RowPlan | undefined>(compileKeySchema, 'key');
  private readonly maxRecordBytes: number;
  private readonly placeholder: string;
  private readonly placeholderBase64: string;
  private readonly placeholderBytes: number[];
  private readonly placeholderBytesText: string;

  constructor(options: JsonDecoderOptions = {}) {
    this.maxRecordBytes = options.maxRecordBytes ?? 1_048_576;
    this.placeholder = options.placeholder ?? '__debezium_unavailable_value';
    // bytea columns under binary.handling.mode=bytes carry the placeholder's bytes in base64 (formats.md §2.9).
    this.placeholderBase64 = Buffer.from(this.placeholder).toString('base64');
    this.placeholderBytes = [...Buffer.from(this.placeholder)];
    this.placeholderBytesText = this.placeholderBytes.join(',');
  }

  decode(record: KafkaRecord, processedAt: number): DecodeOutcome {
    try {
      return this.decodeOrThrow(record, processedAt);
    } catch (error) {
      if (error instanceof CdcError) return { kind: 'error', error };
      // A decoder bug on an odd record must not stall the partition: dead-letter it with what went wrong.
      const message = error instanceof Error ? error.message : String(error);
      return { kind: 'error', error: new DecodeError('INVALID_RECORD', `cannot decode record: ${message}`) };
    }
  }

  private decodeOrThrow(record: KafkaRecord, processedAt: number): DecodeOutcome {
    if (record.value === null || record.value === undefined || record.value === '')
      return { kind: 'skip', reason: 'tombstone' };
    if (record.topic.startsWith(HEARTBEAT_TOPIC_PREFIX)) return { kind: 'skip', reason: 'heartbeat' };
    // base64 expands 3 bytes to 4 characters: reject before allocating the decoded buffer.
    if (record.value.length * 0.75 > this.maxRecordBytes + 2) {
      throw new DecodeError(
        'RECORD_TOO_LARGE',
        `value is ${Math.floor(record.value.length * 0.75)} bytes, more than MAX_RECORD_BYTES=${this.maxRecordBytes}`,
      );
    }
    const document = this.values.read(record.topic, record.value);
    const { payload, text } = document;
    const plan = document.plan ?? NO_SCHEMA;
    if (payload === null) return { kind: 'skip', reason: 'tombstone' };
    if (!isObject(payload))
      throw new DecodeError(
        'NOT_AN_OBJECT',
        `value is JSON ${Array.isArray(payload) ? 'array' : typeof payload}, not an object`,
      );

    const kafka: KafkaCoordinates = { topic: record.topic, partition: record.partition, offset: record.offset };
    // With a schema, its name and shape say what the record is; without one, the payload's shape does (formats.md §5).
    const control = this.controlReason(payload, plan);
    // Debezium's DDL records feed the schema history: one SchemaChangeRecord per table they change.
    if (control === 'schema-change') return { kind: 'schema-change', changes: readSchemaChanges(payload, record) };
    if (control) return { kind: 'skip', reason: control };
    if (plan.kind === 'envelope') return this.fromEnvelope(payload, plan, record, kafka, text, processedAt);
    if (plan.kind === 'row') return this.fromFlattenedRow(payload, plan, record, kafka, text, processedAt);
    // A flattened row may have a column named `op`; an envelope also has `source`, `before` or `after`.
    if ('op' in payload && ('source' in payload || 'before' in payload || 'after' in payload)) {
      return this.fromEnvelope(payload, plan, record, kafka, text, processedAt);
    }
    return this.fromFlattenedRow(payload, plan, record, kafka, text, processedAt);
  }

  private controlReason(payload: Record<string, unknown>, plan: ValuePlan): SkipReason | undefined {
    if (plan.name) {
      for (const [pattern, reason] of CONTROL_SCHEMA_NAMES) if (pattern.test(plan.name)) return reason;
    }
    if (plan.kind !== 'other') return undefined; // a schema naming a row or an envelope
    // Shapes are checked with all their fields, so an unwrapped row with a `status` or `ddl` column stays a row.
    if (
      (payload.status === 'BEGIN' || payload.status === 'END') &&
      'id' in payload &&
      'event_count' in payload &&
      'data_collections' in payload
    ) {
      return 'transaction';
    }
    if ('databaseName' in payload && 'tableChanges' in payload && 'source' in payload) return 'schema-change';
    const keys = Object.keys(payload);
    if (keys.length === 1 && keys[0] === 'ts_ms') return 'heartbeat';
    return undefined;
  }

  private fromEnvelope(
    payload: Record<string, unknown>,
    plan: ValuePlan,
    record: KafkaRecord,
    kafka: KafkaCoordinates,
    text: string,
    processedAt: number,
  ): DecodeOutcome {
    const envelope = readEnvelope(payload);
    if (envelope.op === 'm') return { kind: 'skip', reason: 'logical-message' };
    const source = readSource(envelope.source, kafka, envelope.op);
    return this.changeEvent(
      record,
      source,
      envelope.op,
      envelope.before,
      envelope.after,
      plan,
      text,
      envelope.tsMs,
      processedAt,
    );
  }

  /**
   * ExtractNewRecordState output: the row itself, with `add.fields` metadata as `__`-prefixed columns (`__op`,
   * `__deleted`, `__lsn`, `__source_ts_ms`, ...). Metadata columns are removed from the row and used as the source.
   */
  private fromFlattenedRow(
    payload: Record<string, unknown>,
    plan: ValuePlan,
    record: KafkaRecord,
    kafka: KafkaCoordinates,
    text: string,
    processedAt: number,
  ): DecodeOutcome {
    const meta: Record<string, unknown> = {};
    const row: Row = {};
    for (const [column, value] of Object.entries(payload)) {
      if (column.startsWith('__')) meta[column.slice(2)] = value;
      else row[column] = value;
    }
    // add.fields=source.lsn arrives as `__source_lsn`, add.fields=lsn as `__lsn`: accept both spellings.
    const field = (name: string): unknown => meta[`source_${name}`] ?? meta[name];
    const deleted = meta.deleted === 'true' || meta.deleted === true;
    const declared = typeof meta.op === 'string' ? meta.op : undefined;
    if (declared !== undefined && !['c', 'u', 'd', 'r', 't'].includes(declared)) {
      throw new DecodeError('UNKNOWN_OP', `unknown __op ${JSON.stringify(declared)}`);
    }
    // Without add.fields=op the change kind is unknown; every non-delete is an upsert for the sinks.
    const op: Op = deleted ? 'd' : ((declared as Op | undefined) ?? 'u');
    const topicParts = record.topic.split('.');
    const textField = (name: string): string | undefined => {
      const value = field(name);
      return typeof value === 'string' ? value : undefined;
    };
    const intField = (name: string): number | string | undefined => {
      const value = field(name);
      return typeof value === 'number' || typeof value === 'string' ? value : undefined;
    };
    // add.fields rarely includes the connector name: infer it from the position fields it did include.
    const inferred =
      field('lsn') !== undefined
        ? 'postgresql'
        : field('commit_lsn') !== undefined
          ? 'sqlserver'
          : field('file') !== undefined
            ? 'mysql'
            : 'kafka';
    const block: SourceBlock = {
      connector: textField('connector') ?? inferred,
      name: textField('name') ?? (topicParts.slice(0, -2).join('.') || record.topic),
      ts_ms: intField('ts_ms'),
      db: textField('db') ?? null,
      schema: textField('schema') ?? (topicParts.length >= 3 ? (topicParts.at(-2) ?? null) : null),
      table: textField('table') ?? topicParts.at(-1) ?? null,
      lsn: intField('lsn'),
      sequence: textField('sequence'),
      txId: intField('txId'),
      file: textField('file'),
      pos: intField('pos'),
      row: intField('row'),
      gtid: textField('gtid'),
      commit_lsn: textField('commit_lsn'),
      change_lsn: textField('change_lsn'),
      event_serial_no: intField('event_serial_no'),
      snapshot: textField('snapshot'),
    };
    let source: ReturnType<typeof readSource>;
    try {
      source = readSource(block, kafka, op);
    } catch {
      // add.fields named a connector but not all of its position fields: order by Kafka offset instead.
      source = readSource({ ...block, connector: 'kafka' }, kafka, op);
    }
    const before = op === 'd' ? row : null;
    const after = op === 'd' ? null : row;
    // `__ts_ms` (add.fields=ts_ms) is the envelope's capture time; `__source_ts_ms` the commit time.
    const capturedAt = typeof meta.ts_ms === 'number' ? meta.ts_ms : null;
    return this.changeEvent(record, source, op, before, after, plan, text, capturedAt, processedAt);
  }

  /** Decodes the key and the rows' logical types, and assembles the canonical event. */
  private changeEvent(
    record: KafkaRecord,
    source: ChangeSource,
    op: Op,
    before: Row | null,
    after: Row | null,
    plan: ValuePlan,
    text: string,
    capturedAt: number | null,
    processedAt: number,
  ): DecodeOutcome {
    const key = this.decodeKey(record);
    const unchanged = this.convertRows(before, after, plan.row, text);
    const event: ChangeEvent = {
      id: changeId(source, key, after ?? before),
      op,
      source,
      key,
      before,
      after,
      unchanged,
      kafka: { topic: record.topic, partition: record.partition, offset: record.offset, timestamp: record.timestamp },
      capturedAt,
      processedAt,
    };
    // The schema version was built with the plan (once per distinct schema text): nothing is computed per record.
    return { kind: 'event', event, columns: plan.row?.columns, schema: plan.schema };
  }

  /** Applies logical types and takes TOAST placeholders out of the rows; returns the columns left unchanged. */
  private convertRows(before: Row | null, after: Row | null, plan: RowPlan | undefined, text: string): string[] {
    // One substring search per record decides whether any column can hold the placeholder.
    const mayHavePlaceholder =
      text.includes(this.placeholder) ||
      text.includes(this.placeholderBase64) ||
      text.includes(this.placeholderBytesText);
    const unchanged: string[] = [];
    if (mayHavePlaceholder) {
      if (before) this.takePlaceholders(before, undefined);
      if (after) this.takePlaceholders(after, unchanged);
    }
    if (plan) {
      if (before) applyRowPlan(before, plan);
      if (after) applyRowPlan(after, plan);
    }
    return unchanged;
  }

  private isPlaceholder(value: unknown): boolean {
    if (typeof value === 'string') return value === this.placeholder || value === this.placeholderBase64;
    if (Array.isArray(value)) {
      if (value.length === 1 && value[0] === this.placeholder) return true;
      // int/bigint arrays carry the placeholder as the list of its byte values (formats.md §2.9).
      return value.length === this.placeholderBytes.length && value.every((v, i) => v === this.placeholderBytes[i]);
    }
    if (isObject(value)) return this.placeholder in value;
    return false;
  }

  private takePlaceholders(row: Row, unchanged: string[] | undefined): void {
    for (const column of Object.keys(row)) {
      if (this.isPlaceholder(row[column])) {
        delete row[column];
        unchanged?.push(column);
      }
    }
  }

  private decodeKey(record: KafkaRecord): Row | null {
    if (record.key === null || record.key === undefined || record.key === '') return null;
    const { payload, plan } = this.keys.read(record.topic, record.key);
    if (payload === null) return null;
    if (!isObject(payload))
      throw new DecodeError('INVALID_KEY', 'key is not a JSON object (Debezium keys are structs)');
    if (plan) applyRowPlan(payload, plan);
    return payload;
  }
}

export type { ColumnTypes };
