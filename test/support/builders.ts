import type { KafkaEvent, KafkaRecord } from '../../functions/core/types';
import { type KafkaMessage, mskEventOf } from '../../tools/lib/event-files';

/** Builders of Debezium messages for unit tests (schemas off unless a schema is given). */

export interface PgChangeSpec {
  op: 'c' | 'u' | 'd' | 'r' | 't';
  table?: string;
  key?: Record<string, unknown> | null;
  before?: Record<string, unknown> | null;
  after?: Record<string, unknown> | null;
  lsn: number;
  lastCommitLsn?: number | null;
  txId?: number;
  commitTs?: number;
  snapshot?: string;
  partition?: number;
  offset?: number;
  topic?: string;
}

export function pgMessage(spec: PgChangeSpec): KafkaMessage {
  const table = spec.table ?? 'orders';
  const source = {
    version: '2.7.3.Final',
    connector: 'postgresql',
    name: 'pg',
    ts_ms: spec.commitTs ?? 1_710_498_600_000 + spec.lsn,
    snapshot: spec.snapshot ?? 'false',
    db: 'shop',
    sequence: JSON.stringify([
      spec.lastCommitLsn === null ? null : String(spec.lastCommitLsn ?? spec.lsn - 1),
      String(spec.lsn),
    ]),
    schema: 'public',
    table,
    txId: spec.txId ?? 700,
    lsn: spec.lsn,
    xmin: null,
  };
  const value: Record<string, unknown> = { source, op: spec.op, ts_ms: source.ts_ms + 5 };
  if (spec.op !== 't') {
    value.before = spec.before ?? null;
    value.after = spec.after ?? null;
  }
  const key =
    spec.op === 't'
      ? null
      : spec.key === undefined
        ? (spec.after ?? spec.before)
          ? { id: (spec.after ?? spec.before)?.id }
          : null
        : spec.key;
  return { topic: spec.topic ?? `pg.public.${table}`, partition: spec.partition ?? 0, offset: spec.offset, key, value };
}

export function eventOf(messages: KafkaMessage[]): KafkaEvent {
  return mskEventOf(messages);
}

/** The single record of a one-message event. */
export function recordOf(message: KafkaMessage): KafkaRecord {
  const event = mskEventOf([message]);
  const records = Object.values(event.records)[0] ?? [];
  return records[0] as KafkaRecord;
}

/** A raw record with a given base64 value (for malformed input). */
export function rawRecord(value: string | null | undefined, extra: Partial<KafkaRecord> = {}): KafkaRecord {
  return {
    topic: 'pg.public.orders',
    partition: 0,
    offset: 0,
    timestamp: 1_710_498_600_000,
    timestampType: 'CREATE_TIME',
    key: Buffer.from('{"id":1}').toString('base64'),
    value,
    headers: [],
    ...extra,
  };
}

export const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
