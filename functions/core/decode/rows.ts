/**
 * Row handling both decoders share (JsonConverter and Avro converters carry the same Connect data): reading an
 * ExtractNewRecordState row into a change, and taking Debezium's unavailable-value (TOAST) placeholder out of rows
 * before their logical types are applied.
 */
import { changeId } from '../change';
import { DecodeError } from '../errors';
import type { ChangeEvent, ChangeSource, KafkaRecord, Op, Row } from '../types';
import { applyRowPlan, type RowPlan } from './connect-schema';
import { readEnvelope } from './envelope';
import { type KafkaCoordinates, readSource, type SourceBlock } from './source';

/** A change as a Debezium value gives it (an envelope, or an ExtractNewRecordState row), before its key is read. */
export interface RowChange {
  op: Op;
  source: ChangeSource;
  before: Row | null;
  after: Row | null;
  /** The envelope's capture time (`__ts_ms`), when add.fields included it. */
  capturedAt: number | null;
}

/** A Debezium envelope's change; undefined for a logical decoding message (op `m`), which carries no row. */
export function readEnvelopeChange(payload: Record<string, unknown>, kafka: KafkaCoordinates): RowChange | undefined {
  const envelope = readEnvelope(payload);
  if (envelope.op === 'm') return undefined;
  return {
    op: envelope.op,
    source: readSource(envelope.source, kafka, envelope.op),
    before: envelope.before,
    after: envelope.after,
    capturedAt: envelope.tsMs,
  };
}

/** The canonical change event of a change, its decoded key and the columns its new row left unchanged (TOAST). */
export function changeEventOf(
  record: KafkaRecord,
  change: RowChange,
  key: Row | null,
  unchanged: string[],
  processedAt: number,
): ChangeEvent {
  const { op, source, before, after } = change;
  return {
    id: changeId(source, key, after ?? before),
    op,
    source,
    key,
    before,
    after,
    unchanged,
    kafka: { topic: record.topic, partition: record.partition, offset: record.offset, timestamp: record.timestamp },
    capturedAt: change.capturedAt,
    processedAt,
  };
}

/**
 * ExtractNewRecordState output: the row itself, with `add.fields` metadata as `__`-prefixed columns (`__op`,
 * `__deleted`, `__lsn`, `__source_ts_ms`, ...). Metadata columns are removed from the row and used as the source;
 * what add.fields left out comes from the topic name (`<prefix>.<schema>.<table>`) and the Kafka position.
 */
export function readFlattenedRow(payload: Record<string, unknown>, kafka: KafkaCoordinates): RowChange {
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
  const topicParts = kafka.topic.split('.');
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
    name: textField('name') ?? (topicParts.slice(0, -2).join('.') || kafka.topic),
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
  let source: ChangeSource;
  try {
    source = readSource(block, kafka, op);
  } catch {
    // add.fields named a connector but not all of its position fields: order by Kafka offset instead.
    source = readSource({ ...block, connector: 'kafka' }, kafka, op);
  }
  // `__ts_ms` (add.fields=ts_ms) is the envelope's capture time; `__source_ts_ms` the commit time.
  const capturedAt = typeof meta.ts_ms === 'number' ? meta.ts_ms : null;
  return { op, source, before: op === 'd' ? row : null, after: op === 'd' ? null : row, capturedAt };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The Avro zigzag varints of a list of small non-negative ints (an int[] column holding the placeholder's bytes). */
function zigzagInts(bytes: Buffer): Buffer {
  const out: number[] = [];
  for (const byte of bytes) {
    let zz = byte * 2;
    while (zz >= 0x80) {
      out.push((zz & 0x7f) | 0x80);
      zz = Math.floor(zz / 128);
    }
    out.push(zz);
  }
  return Buffer.from(out);
}

/**
 * Debezium's `unavailable.value.placeholder`, which stands for an unchanged TOASTed column, in every shape a column
 * can carry it: the text itself (text, hstore keys, a one-element text[]), its bytes in base64 (bytea under
 * binary.handling.mode=bytes) or as a list of byte values (int[] columns).
 */
export class UnavailablePlaceholder {
  private readonly text: string;
  private readonly base64: string;
  private readonly bytes: number[];
  private readonly bytesJson: string;
  private readonly buffer: Buffer;
  private readonly varints: Buffer;

  constructor(placeholder = '__debezium_unavailable_value') {
    this.text = placeholder;
    this.buffer = Buffer.from(placeholder);
    this.base64 = this.buffer.toString('base64');
    this.bytes = [...this.buffer];
    this.bytesJson = this.bytes.join(',');
    this.varints = zigzagInts(this.buffer);
  }

  /** Whether a JsonConverter document can hold the placeholder (one substring search per shape). */
  mayBeInJson(text: string): boolean {
    return text.includes(this.text) || text.includes(this.base64) || text.includes(this.bytesJson);
  }

  /** Whether an Avro body can hold it: its bytes appear as they are (text, bytea) or as int varints (int[]). */
  mayBeInAvro(body: Buffer): boolean {
    return body.includes(this.buffer) || body.includes(this.varints);
  }

  private matches(value: unknown): boolean {
    if (typeof value === 'string') return value === this.text || value === this.base64;
    if (Array.isArray(value)) {
      if (value.length === 1 && value[0] === this.text) return true;
      return value.length === this.bytes.length && value.every((v, i) => v === this.bytes[i]);
    }
    if (isObject(value)) return this.text in value;
    return false;
  }

  private take(row: Row, unchanged: string[] | undefined): void {
    for (const column of Object.keys(row)) {
      if (this.matches(row[column])) {
        delete row[column];
        unchanged?.push(column);
      }
    }
  }

  /**
   * Takes the placeholders out of the rows (when `mayHold` says a row can have one), then applies the logical types
   * of `plan`; returns the columns of `after` left unchanged. Placeholders first: they are not valid values of the
   * columns' logical types.
   */
  convertRows(before: Row | null, after: Row | null, plan: RowPlan | undefined, mayHold: boolean): string[] {
    const unchanged: string[] = [];
    if (mayHold) {
      if (before) this.take(before, undefined);
      if (after) this.take(after, unchanged);
    }
    if (plan) {
      if (before) applyRowPlan(before, plan);
      if (after) applyRowPlan(after, plan);
    }
    return unchanged;
  }
}
