import { readFile } from 'node:fs/promises';
import { isLosslessNumber, parse, stringify } from 'lossless-json';
import type { KafkaEvent, KafkaRecord } from '../../functions/core/types';

/**
 * Reads the event files in `events/` (and any a user points the CLIs at). Three shapes are accepted:
 * - a full MSK / self-managed Kafka event (`eventSource` + `records`), used as is;
 * - Kafka messages: `{ topic, partition?, offset?, timestamp?, key, value, headers? }` (or an array of them) where key
 *   and value are the JSON documents Debezium wrote (or null), headers a `{ name: "text" }` object;
 * - a bare Debezium value document (`{schema, payload}` or the payload), whose topic is derived from its source block
 *   and whose key is null;
 * - a dead letter (what a lane's DLQ holds): its original record.
 * Numbers are read losslessly, so a file's 19-digit `ts_ns` reaches the decoder with every digit.
 */

export interface KafkaMessage {
  topic?: string;
  partition?: number;
  offset?: number;
  timestamp?: number;
  key?: unknown;
  value?: unknown;
  headers?: Record<string, string> | Array<[string, string]>;
}

const EVENT_ARN = 'arn:aws:kafka:eu-west-1:111122223333:cluster/cdc-local/00000000-0000-0000-0000-000000000000-1';
const BOOTSTRAP = 'b-1.cdc-local.kafka.eu-west-1.amazonaws.com:9098,b-2.cdc-local.kafka.eu-west-1.amazonaws.com:9098';

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !isLosslessNumber(value);
}

/** Java bytes are signed: Lambda delivers header values as numbers in -128..127 (docs/formats.md §1.3). */
export function signedBytes(text: string): number[] {
  return [...Buffer.from(text, 'utf8')].map((b) => (b > 127 ? b - 256 : b));
}

function toBase64(document: unknown): string | null {
  if (document === null || document === undefined) return null;
  return Buffer.from(stringify(document) as string, 'utf8').toString('base64');
}

function plain(value: unknown): unknown {
  return isLosslessNumber(value) ? value.valueOf() : value;
}

/** The topic a bare Debezium value would be on: `<name>.<schema|db>.<table>`. */
function topicOf(value: unknown): string {
  const payload = isObject(value) && 'payload' in value && 'schema' in value ? value.payload : value;
  const source = isObject(payload) && isObject(payload.source) ? payload.source : undefined;
  if (!source) return 'local.unknown';
  const parts = [
    source.name,
    source.connector === 'sqlserver' ? source.db : undefined,
    source.schema ?? source.db,
    source.table,
  ];
  return parts.filter((p) => typeof p === 'string' && p !== '').join('.');
}

/** Wraps Kafka messages into one MSK event the way the event source mapping delivers them. */
export function mskEventOf(messages: readonly KafkaMessage[]): KafkaEvent {
  const records: Record<string, KafkaRecord[]> = {};
  const nextOffset = new Map<string, number>();
  for (const message of messages) {
    const topic = message.topic ?? topicOf(message.value);
    const partition = Number(plain(message.partition) ?? 0);
    const id = `${topic}-${partition}`;
    const offset = Number(plain(message.offset) ?? nextOffset.get(id) ?? 0);
    nextOffset.set(id, offset + 1);
    const headers = Array.isArray(message.headers) ? message.headers : Object.entries(message.headers ?? {});
    const record: KafkaRecord = {
      topic,
      partition,
      offset,
      timestamp: Number(plain(message.timestamp) ?? 1_710_498_600_000 + offset),
      timestampType: 'CREATE_TIME',
      key: toBase64(message.key),
      value: toBase64(message.value),
      headers: headers.map(([name, text]) => ({ [name]: signedBytes(String(text)) })),
    };
    records[id] ??= [];
    records[id].push(record);
  }
  return { eventSource: 'aws:kafka', eventSourceArn: EVENT_ARN, bootstrapServers: BOOTSTRAP, records };
}

/** Turns the parsed content of an event file into an MSK event. */
export function toMskEvent(content: unknown): KafkaEvent {
  if (isObject(content) && 'records' in content && 'eventSource' in content) {
    return JSON.parse(stringify(content) as string) as KafkaEvent;
  }
  // A dead letter (the SQS message body, or the claim-check object): its original record, as it was delivered.
  if (isObject(content) && isObject(content.record) && isObject(content.error) && 'lane' in content) {
    const record = JSON.parse(stringify(content.record) as string) as KafkaRecord;
    return {
      eventSource: 'aws:kafka',
      eventSourceArn: EVENT_ARN,
      bootstrapServers: BOOTSTRAP,
      records: { [`${record.topic}-${record.partition}`]: [record] },
    };
  }
  const isMessage = (v: unknown) => isObject(v) && ('value' in v || 'key' in v) && !('op' in v) && !('payload' in v);
  if (Array.isArray(content) && content.every(isMessage)) return mskEventOf(content as KafkaMessage[]);
  if (isMessage(content)) return mskEventOf([content as KafkaMessage]);
  return mskEventOf([{ value: content, key: null }]);
}

/** Reads an event file (see above) as an MSK event. */
export async function readEventFile(path: string): Promise<KafkaEvent> {
  const text = await readFile(path, 'utf8');
  let content: unknown;
  try {
    content = parse(text);
  } catch (error) {
    throw new Error(`${path} is not JSON: ${(error as Error).message}`);
  }
  return toMskEvent(content);
}
