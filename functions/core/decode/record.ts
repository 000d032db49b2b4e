/** What every decoder does around reading a record, whatever its format (JsonConverter, Avro). */
import { CdcError, DecodeError } from '../errors';
import type { DecodeOutcome, KafkaRecord, SkipReason } from '../types';

/** Heartbeats live on their own topic (Kafka headers Debezium adds are irrelevant to decoding). */
export const HEARTBEAT_TOPIC_PREFIX = '__debezium-heartbeat';

/** Control records recognised by their value schema's name before looking at the payload's shape. */
export const CONTROL_SCHEMA_NAMES: ReadonlyArray<readonly [RegExp, SkipReason]> = [
  [/\.Heartbeat$/, 'heartbeat'],
  [/TransactionMetadataValue$/, 'transaction'],
  [/SchemaChangeValue$/, 'schema-change'],
];

/**
 * Skips tombstones and heartbeats, dead-letters values over `maxRecordBytes` before decoding their base64, and runs
 * `read` for the rest. Whatever `read` throws becomes an error outcome: a CdcError as it is, anything else (a decoder
 * bug on an odd record) as INVALID_RECORD, so it is dead-lettered with what went wrong instead of stalling the
 * partition.
 */
export function decodeRecord(record: KafkaRecord, maxRecordBytes: number, read: () => DecodeOutcome): DecodeOutcome {
  try {
    if (record.value === null || record.value === undefined || record.value === '')
      return { kind: 'skip', reason: 'tombstone' };
    if (record.topic.startsWith(HEARTBEAT_TOPIC_PREFIX)) return { kind: 'skip', reason: 'heartbeat' };
    // base64 expands 3 bytes to 4 characters: reject before allocating the decoded buffer.
    if (record.value.length * 0.75 > maxRecordBytes + 2) {
      throw new DecodeError(
        'RECORD_TOO_LARGE',
        `value is ${Math.floor(record.value.length * 0.75)} bytes, more than MAX_RECORD_BYTES=${maxRecordBytes}`,
      );
    }
    return read();
  } catch (error) {
    if (error instanceof CdcError) return { kind: 'error', error };
    const message = error instanceof Error ? error.message : String(error);
    return { kind: 'error', error: new DecodeError('INVALID_RECORD', `cannot decode record: ${message}`) };
  }
}
