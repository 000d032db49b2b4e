import { randomBytes } from 'node:crypto';
import type { Context } from 'aws-lambda';
import type { KafkaEvent, KafkaRecord } from '../../../functions/core/types';
import type { BrokerRecord } from './broker';

/**
 * What the mapping hands a function, byte for byte: the MSK event, its size against the invocation payload limit,
 * and the Lambda context.
 *
 * - Event shape: `eventSource: 'aws:kafka'`, one comma-separated `bootstrapServers` string, `records` keyed by
 *   `"<topic>-<partition>"`, base64 key/value (null or absent), headers as single-key objects of signed Java bytes
 *   (aws-lambda-go `events/testdata/kafka-event.json`, aws-lambda-go PR #506, docs/formats.md §1.1–1.3).
 * - Size: a batch is cut so the JSON event stays within the 6 MB invocation payload (SAM `BatchSize` doc) and holds
 *   at most `batchSize` records; {@link EventBudget} counts both while the batching part fills a batch.
 */

/** The context the handler gets: `@types/aws-lambda`'s `Context`, filled like Lambda fills it. */
export type LambdaLikeContext = Context;

/** The event this mapping delivers: a `KafkaEvent` (functions/core/types.ts) with the MSK-only fields set. */
export type LocalMskEvent = KafkaEvent & { eventSource: 'aws:kafka'; eventSourceArn: string; bootstrapServers: string };

/** A lane handler as the mapping calls it. Its resolved value is read only with `reportBatchItemFailures`. */
export type MskHandler = (event: LocalMskEvent, context: LambdaLikeContext) => Promise<unknown> | unknown;

/** One partition's records in an event; `part.id` is the `"<topic>-<partition>"` key. */
export interface RecordGroup {
  readonly part: { readonly id: string };
  readonly records: readonly BrokerRecord[];
}

/** The resolved options the event, its size and the context depend on (defaults are applied in esm.ts). */
export interface WireSettings {
  eventSourceArn: string;
  bootstrapServers: string;
  nullKey: 'null' | 'absent';
  nullValue: 'null' | 'absent';
  maxPayloadBytes: number;
  functionName: string;
  functionArn: string;
  memoryLimitInMB: string;
  timeoutMs: number;
}

interface WireInfo {
  key: string | null;
  value: string | null;
  /** The headers as Lambda writes them; shared by every delivery of the record (frozen). */
  headers: ReadonlyArray<Readonly<Record<string, readonly number[]>>>;
  /** Bytes of this record's JSON in the event. */
  size: number;
}

/**
 * Base64 strings, headers and sizes are computed once per record and shared by every mapping (three lanes read each
 * record): strings are immutable and the header arrays frozen, so sharing them is safe; the record objects themselves
 * are built fresh per delivery. Sharing also makes delivery to a lane's thread cheaper: a structured clone writes an
 * object it has already written in the same message as a back-reference.
 */
const wireCache = new WeakMap<BrokerRecord, WireInfo>();

/** Signed-byte arrays per header value; Debezium's context headers are the same few values on every record. */
const signedCache = new WeakMap<Buffer, { bytes: readonly number[]; jsonLength: number }>();

function wireInfo(record: BrokerRecord): WireInfo {
  let info = wireCache.get(record);
  if (info === undefined) {
    const key = record.key === null ? null : record.key.toString('base64');
    const value = record.value === null ? null : record.value.toString('base64');
    // The JSON size is counted rather than serialised: this runs for every record the broker holds.
    // {"topic":…,"partition":N,"offset":N,"timestamp":N,"timestampType":…,"key":…,"value":…,"headers":[…]}
    let size =
      '{"topic":,"partition":,"offset":,"timestamp":,"timestampType":,"key":,"value":,"headers":[]}'.length +
      jsonLength(record.topic) +
      String(record.partition).length +
      String(record.offset).length +
      String(record.timestamp).length +
      jsonLength(record.timestampType) +
      (key === null ? 4 : key.length + 2) +
      (value === null ? 4 : value.length + 2);
    const headers = record.headers.map(([name, bytes]) => {
      const signed = signedBytes(bytes);
      size += jsonLength(name) + 3 + signed.jsonLength; // {"name":[…]}; brackets are in jsonLength
      return Object.freeze({ [name]: signed.bytes });
    });
    if (headers.length > 1) size += headers.length - 1; // commas
    info = { key, value, headers: Object.freeze(headers), size };
    wireCache.set(record, info);
  }
  return info;
}

/** UTF-8 bytes of a string's JSON text (printable ASCII without " and \ is written as is). */
function jsonLength(text: string): number {
  return /^[\x20-\x21\x23-\x5b\x5d-\x7e]*$/.test(text) ? text.length + 2 : Buffer.byteLength(JSON.stringify(text));
}

/** Java `byte[]` → JSON numbers: Lambda's serializer emits signed bytes (-128..127), e.g. "ë" → [-61, -85]. */
function signedBytes(value: Buffer): { bytes: readonly number[]; jsonLength: number } {
  let cached = signedCache.get(value);
  if (cached === undefined) {
    const bytes = Object.freeze(Array.from(new Int8Array(value.buffer, value.byteOffset, value.byteLength)));
    let length = 2 + Math.max(0, bytes.length - 1); // brackets and commas
    for (const b of bytes) length += String(b).length;
    cached = { bytes, jsonLength: length };
    signedCache.set(value, cached);
  }
  return cached;
}

function toWireRecord(record: BrokerRecord, info: WireInfo, nullKey: 'null' | 'absent', nullValue: 'null' | 'absent') {
  const wire: KafkaRecord = {
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
    timestamp: record.timestamp,
    timestampType: record.timestampType,
  };
  if (info.key !== null || nullKey === 'null') wire.key = info.key;
  if (info.value !== null || nullValue === 'null') wire.value = info.value;
  wire.headers = info.headers as KafkaRecord['headers'];
  return wire;
}

/** The JSON size of a record as a mapping delivers it (exported for tests). */
export function wireSizeOf(record: BrokerRecord): number {
  return wireInfo(record).size;
}

/** Builds one mapping's events and contexts. */
export class MskEventFormat {
  /** Bytes of the event without records: `{"eventSource":…,"records":{}}`. */
  private readonly envelopeBytes: number;
  private readonly logStreamName: string;

  constructor(readonly settings: Readonly<WireSettings>) {
    const day = new Date().toISOString().slice(0, 10).replaceAll('-', '/');
    this.logStreamName = `${day}/[$LATEST]${randomBytes(16).toString('hex')}`;
    this.envelopeBytes = Buffer.byteLength(
      JSON.stringify({
        eventSource: 'aws:kafka',
        eventSourceArn: settings.eventSourceArn,
        bootstrapServers: settings.bootstrapServers,
        records: {},
      }),
    );
  }

  /** The event for these groups, in their order (a partition's groups are concatenated). */
  event(groups: readonly RecordGroup[]): LocalMskEvent {
    const { nullKey, nullValue } = this.settings;
    const records: Record<string, KafkaRecord[]> = {};
    for (const group of groups) {
      const wire = group.records.map((record) => toWireRecord(record, wireInfo(record), nullKey, nullValue));
      const existing = records[group.part.id];
      if (existing === undefined) records[group.part.id] = wire;
      else existing.push(...wire);
    }
    return {
      eventSource: 'aws:kafka',
      eventSourceArn: this.settings.eventSourceArn,
      bootstrapServers: this.settings.bootstrapServers,
      records,
    };
  }

  /** An empty event's budget: up to `maxRecords` records within the payload limit. */
  budget(maxRecords: number): EventBudget {
    return new EventBudget(maxRecords, this.envelopeBytes, this.settings.maxPayloadBytes);
  }

  context(requestId: string): LambdaLikeContext {
    const { functionName, functionArn, memoryLimitInMB, timeoutMs } = this.settings;
    const deadline = Date.now() + timeoutMs;
    const unsupported = (): never => {
      throw new Error('context.done/fail/succeed are not supported: return or throw from an async handler');
    };
    return {
      callbackWaitsForEmptyEventLoop: true,
      functionName,
      functionVersion: '$LATEST',
      invokedFunctionArn: functionArn,
      memoryLimitInMB,
      awsRequestId: requestId,
      logGroupName: `/aws/lambda/${functionName}`,
      logStreamName: this.logStreamName,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      done: unsupported,
      fail: unsupported,
      succeed: unsupported,
    };
  }
}

/**
 * Counts an event's records and JSON bytes while a batch is filled, one partition group at a time, so the batch stays
 * within `batchSize` and the payload limit without serialising it.
 */
export class EventBudget {
  private records = 0;
  private bytes: number;
  /** Bytes of the group being filled: `"<id>":[` … `]` plus the comma between groups, and its records. */
  private groupBytes = 0;
  private bytesFull = false;

  constructor(
    private readonly maxRecords: number,
    envelopeBytes: number,
    private readonly maxBytes: number,
  ) {
    this.bytes = envelopeBytes;
  }

  /** No record may be added: `maxRecords` reached, or a record did not fit the payload limit. */
  get full(): boolean {
    return this.bytesFull || this.records >= this.maxRecords;
  }

  /** Starts the group of a partition. */
  openGroup(id: string): void {
    this.groupBytes = Buffer.byteLength(id) + 6;
  }

  /** Adds a record to the open group; false (and full from now on) when the event would exceed the limit. */
  take(record: BrokerRecord): boolean {
    const size = wireInfo(record).size + 1;
    if (this.bytes + this.groupBytes + size > this.maxBytes) {
      this.bytesFull = true;
      return false;
    }
    this.groupBytes += size;
    this.records++;
    return true;
  }

  /** Counts the open group into the event; only for a group that got records (an empty one is left out). */
  closeGroup(): void {
    this.bytes += this.groupBytes;
  }
}
