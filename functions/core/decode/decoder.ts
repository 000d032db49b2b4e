import { DecodeError } from '../errors';
import type { ColumnTypes, DecodeOutcome, Decoder, KafkaRecord, Row, SkipReason } from '../types';
import { ConnectJsonReader } from './connect-json';
import { applyRowPlan, compileKeySchema, compileValueSchema, type RowPlan, type ValuePlan } from './connect-schema';
import { parseDebeziumPayload } from './json';
import { CONTROL_SCHEMA_NAMES, decodeRecord } from './record';
import { changeEventOf, type RowChange, readEnvelopeChange, readFlattenedRow, UnavailablePlaceholder } from './rows';
import { readSchemaChanges } from './schema-change';
import type { KafkaCoordinates } from './source';

export interface JsonDecoderOptions {
  /** Values larger than this are dead-lettered (RECORD_TOO_LARGE). */
  maxRecordBytes?: number;
  /** Debezium's `unavailable.value.placeholder`. */
  placeholder?: string;
}

const NO_SCHEMA: ValuePlan = { kind: 'other', name: undefined, row: undefined };

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
  private readonly placeholder: UnavailablePlaceholder;

  constructor(options: JsonDecoderOptions = {}) {
    this.maxRecordBytes = options.maxRecordBytes ?? 1_048_576;
    this.placeholder = new UnavailablePlaceholder(options.placeholder);
  }

  decode(record: KafkaRecord, processedAt: number): DecodeOutcome {
    return decodeRecord(record, this.maxRecordBytes, () =>
      this.read(record as KafkaRecord & { value: string }, processedAt),
    );
  }

  /** A record with a value within the size limit. */
  private read(record: KafkaRecord & { value: string }, processedAt: number): DecodeOutcome {
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
    // With a schema, its name and shape say what the record is; without one, the payload's shape does (docs/formats.md §5).
    const control = this.controlReason(payload, plan);
    // Debezium's DDL records feed the schema history: one SchemaChangeRecord per table they change.
    if (control === 'schema-change') return { kind: 'schema-change', changes: readSchemaChanges(payload, record) };
    if (control) return { kind: 'skip', reason: control };
    // Without a schema, a flattened row may have a column named `op`; an envelope also has `source`, `before` or `after`.
    const envelope =
      plan.kind === 'envelope' ||
      (plan.kind !== 'row' && 'op' in payload && ('source' in payload || 'before' in payload || 'after' in payload));
    // ExtractNewRecordState output otherwise (see readFlattenedRow).
    const change = envelope ? readEnvelopeChange(payload, kafka) : readFlattenedRow(payload, kafka);
    if (!change) return { kind: 'skip', reason: 'logical-message' };
    return this.changeEvent(record, change, plan, text, processedAt);
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

  /** Decodes the key and the rows' logical types, and assembles the canonical event. */
  private changeEvent(
    record: KafkaRecord,
    change: RowChange,
    plan: ValuePlan,
    text: string,
    processedAt: number,
  ): DecodeOutcome {
    const key = this.decodeKey(record);
    // One substring search per record decides whether any column can hold the placeholder.
    const mayHold = this.placeholder.mayBeInJson(text);
    const unchanged = this.placeholder.convertRows(change.before, change.after, plan.row, mayHold);
    const event = changeEventOf(record, change, key, unchanged, processedAt);
    // The schema version was built with the plan (once per distinct schema text): nothing is computed per record.
    return { kind: 'event', event, columns: plan.row?.columns, schema: plan.schema };
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
