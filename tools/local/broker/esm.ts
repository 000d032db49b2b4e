import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Context } from 'aws-lambda';
import type { KafkaEvent, KafkaRecord } from '../../../functions/core/types';
import type { BrokerRecord, LocalBroker } from './broker';

/**
 * A local stand-in for Lambda's Amazon MSK event source mapping: one consumer group reading a local broker and
 * invoking a handler with events shaped exactly as Lambda delivers them (docs/formats.md §1).
 *
 * What it matches, and where that is written down:
 * - Event shape: `eventSource: 'aws:kafka'`, one comma-separated `bootstrapServers` string, `records` keyed by
 *   `"<topic>-<partition>"`, base64 key/value (null or absent), headers as single-key objects of signed Java bytes
 *   (aws-lambda-go `events/testdata/kafka-event.json`, aws-lambda-go PR #506, docs/formats.md §1.1–1.3).
 * - Batching: up to `batchSize` records across the subscribed partitions, waiting at most `maxBatchingWindowMs`
 *   (default 500 ms for Kafka, msk-esm-parameters), cut so the JSON event stays within the 6 MB invocation payload
 *   (SAM `BatchSize` doc); a partition is in at most one batch at a time and read in order (kafka-scaling-modes:
 *   pollers are capped at the partition count "to maintain ordered processing within partitions").
 * - Errors (kafka-retry-configurations, docs/formats.md §1.7): a thrown error retries the whole batch; with
 *   `reportBatchItemFailures` a `{ batchItemFailures: [{ itemIdentifier: { partition, offset } }] }` response commits
 *   each listed partition up to the offset and redelivers from it, and an identifier that was not in the batch fails
 *   the whole batch; `bisectBatchOnError` splits a failed batch in halves; after `maxRetryAttempts` (10 when infinite
 *   and an on-failure destination is set) or `maxRecordAgeSeconds` the batch goes to `onFailure` as the record
 *   Lambda writes to an S3 destination (metadata + the whole event as a JSON string) and the offsets move past it.
 */

/** The context the handler gets: `@types/aws-lambda`'s `Context`, filled like Lambda fills it. */
export type LambdaLikeContext = Context;

/** The event this mapping delivers: a `KafkaEvent` (functions/core/types.ts) with the MSK-only fields set. */
export type LocalMskEvent = KafkaEvent & { eventSource: 'aws:kafka'; eventSourceArn: string; bootstrapServers: string };

/** A lane handler as the mapping calls it. Its resolved value is read only with `reportBatchItemFailures`. */
export type MskHandler = (event: LocalMskEvent, context: LambdaLikeContext) => Promise<unknown> | unknown;

/**
 * Why a batch went to the on-failure destination. The first two are Lambda's documented Kafka values
 * (kafka-on-failure); `RecordAgeExceeded` is the stream ESMs' value, assumed for Kafka's `MaximumRecordAgeInSeconds`.
 */
export type FailureCondition = 'RetryAttemptsExhausted' | 'MaximumPayloadSizeExceeded' | 'RecordAgeExceeded';

/** The record Lambda writes to an S3 on-failure destination for a Kafka ESM (docs/formats.md §1.7). */
export interface OnFailureRecord {
  requestContext: {
    requestId: string;
    functionArn: string;
    condition: FailureCondition;
    approximateInvokeCount: number;
  };
  /** `null` when the function never answered for these records (payload too large, expired before invocation). */
  responseContext: { statusCode: number; executedVersion: string; functionError?: 'Unhandled' } | null;
  version: '1.0';
  timestamp: string;
  KafkaBatchInfo: {
    batchSize: number;
    eventSourceArn: string;
    bootstrapServers: string;
    payloadSize: number;
    recordsInfo: Record<
      string,
      { firstRecordOffset: string; lastRecordOffset: string; firstRecordTimestamp: string; lastRecordTimestamp: string }
    >;
  };
  /** The whole event of the failed invocation, as a JSON string (S3 destinations only in Lambda). */
  payload: string;
}

/** Options of {@link LocalEventSourceMapping}. Names follow `CreateEventSourceMapping`. */
export interface LocalEventSourceMappingOptions {
  broker: LocalBroker;
  /** Consumer group (`AmazonManagedKafkaEventSourceConfig.ConsumerGroupId`): one per lane. */
  groupId: string;
  /** Topics to read; a predicate also picks up topics created later (Debezium creates one per table). */
  topics: readonly string[] | ((topic: string) => boolean);
  handler: MskHandler;
  /** Records per invocation, 1–10,000. @default 100 */
  batchSize?: number;
  /** How long to gather records before invoking (0 = as soon as any are there). @default 500 (Lambda's Kafka default) */
  maxBatchingWindowMs?: number;
  /** Where a group without a committed offset starts. @default 'TRIM_HORIZON' */
  startingPosition?: 'TRIM_HORIZON' | 'LATEST';
  /** `FunctionResponseTypes: ["ReportBatchItemFailures"]`. @default false */
  reportBatchItemFailures?: boolean;
  /** `BisectBatchOnFunctionError`. @default false */
  bisectBatchOnError?: boolean;
  /** `MaximumRetryAttempts` (retries after the first attempt; -1 = infinite, 10 when `onFailure` is set). @default -1 */
  maxRetryAttempts?: number;
  /** `MaximumRecordAgeInSeconds` (-1 = infinite). Ages are measured from the record timestamp. @default -1 */
  maxRecordAgeSeconds?: number;
  /** The on-failure destination. Without one, exhausted batches are skipped (Lambda "bypasses" them). */
  onFailure?: (record: OnFailureRecord) => Promise<void>;
  /** @default a local MSK cluster ARN */
  eventSourceArn?: string;
  /** Comma-separated, as in the event. @default two local `b-N` brokers on port 9098 */
  bootstrapServers?: string;
  /** @default groupId */
  functionName?: string;
  /** @default `arn:aws:lambda:us-east-1:000000000000:function:<functionName>` */
  functionArn?: string;
  /** For `context.memoryLimitInMB`. @default 1024 */
  memoryLimitInMB?: number;
  /** For `context.getRemainingTimeInMillis()` only: handlers are not cut off (see README of this folder). @default 60000 */
  timeoutMs?: number;
  /** Concurrent invocations (each holds its own partitions). @default unlimited, i.e. at most one per partition */
  maxConcurrency?: number;
  /** The invocation payload limit. @default 6 MiB (Lambda's synchronous invocation limit) */
  maxPayloadBytes?: number;
  /** Delay before the first retry of a failed batch, doubled per retry up to `retryBackoffMaxMs`. @default 50 */
  retryBackoffMs?: number;
  /** @default 1000 */
  retryBackoffMaxMs?: number;
  /** How a null key is delivered: `"key": null` or no `key` field (both occur, docs/formats.md §1.3). @default 'null' */
  nullKey?: 'null' | 'absent';
  /** How a null value (tombstone) is delivered. @default 'null' */
  nullValue?: 'null' | 'absent';
  /** Told about every failed invocation and failed destination write (the mapping itself keeps going). */
  onError?: (
    error: unknown,
    info: { requestId?: string; stage: 'invoke' | 'response' | 'destination' | 'commit' },
  ) => void;
}

/** Per-partition numbers in {@link EsmStats}. */
export interface PartitionStats {
  /** `"<topic>-<partition>"`, the event's map key. */
  id: string;
  topic: string;
  partition: number;
  committed: number;
  highWater: number;
  lag: number;
  inFlight: boolean;
}

/** What {@link LocalEventSourceMapping.stats} reports. Counters are totals since construction. */
export interface EsmStats {
  groupId: string;
  partitions: PartitionStats[];
  lag: number;
  inFlightBatches: number;
  invocations: number;
  recordsDelivered: number;
  retries: number;
  bisections: number;
  partialFailures: number;
  invalidResponses: number;
  /** Records handed to `onFailure` (or skipped without one). */
  recordsSentToDestination: number;
  destinationRecords: number;
  /** Handler latency over the last 1,024 invocations, in ms. */
  latencyMs: { count: number; p50: number; p99: number; max: number } | null;
}

/** Errors the mapping raises itself; `code` is stable. */
export class EventSourceMappingError extends Error {
  override readonly name = 'EventSourceMappingError';
  constructor(
    readonly code: 'INVALID_OPTION' | 'INVALID_PARTIAL_RESPONSE' | 'DRAIN_TIMEOUT' | 'NOT_STARTED' | 'STOPPED',
    message: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------------------------

interface PartState {
  readonly id: string;
  readonly topic: string;
  readonly partition: number;
  /** Next offset to deliver. */
  position: number;
  /** Next offset to consume, as committed for the group. */
  committed: number;
  /** The batch that holds this partition, if any. */
  owner: Batch | undefined;
  /** End offset (exclusive) of the owner's records of this partition. */
  batchEnd: number;
}

interface Slice {
  readonly part: PartState;
  /** Contiguous offsets, ascending. */
  readonly records: readonly BrokerRecord[];
}

interface Batch {
  readonly slices: readonly Slice[];
  readonly oversized?: boolean;
}

interface AttemptState {
  /** Retries consumed so far (the first attempt is not a retry). */
  retries: number;
  invokeCount: number;
  lastRequestId: string | undefined;
  /** Whether the last attempt threw (→ `functionError: 'Unhandled'` in the destination record). */
  lastThrew: boolean;
}

type Outcome =
  | { kind: 'success' }
  | { kind: 'partial'; failures: Map<Slice, number> }
  | { kind: 'error'; threw: boolean };

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

const LATENCY_WINDOW = 1024;

/** The local MSK event source mapping. See the module comment for what it matches. */
export class LocalEventSourceMapping {
  private readonly broker: LocalBroker;
  private readonly groupId: string;
  private readonly matches: (topic: string) => boolean;
  private readonly handler: MskHandler;
  private readonly batchSize: number;
  private readonly windowMs: number;
  private readonly startingPosition: 'TRIM_HORIZON' | 'LATEST';
  private readonly reportBatchItemFailures: boolean;
  private readonly bisect: boolean;
  private readonly maxRetries: number;
  private readonly maxAgeMs: number;
  private readonly onFailure: ((record: OnFailureRecord) => Promise<void>) | undefined;
  private readonly eventSourceArn: string;
  private readonly bootstrapServers: string;
  private readonly functionName: string;
  private readonly functionArn: string;
  private readonly memoryLimitInMB: string;
  private readonly timeoutMs: number;
  private readonly maxConcurrency: number;
  private readonly maxPayloadBytes: number;
  private readonly backoffMs: number;
  private readonly backoffMaxMs: number;
  private readonly nullKey: 'null' | 'absent';
  private readonly nullValue: 'null' | 'absent';
  private readonly onError: LocalEventSourceMappingOptions['onError'];
  private readonly logStreamName: string;
  /** Bytes of the event without records: `{"eventSource":…,"records":{}}`. */
  private readonly envelopeBytes: number;

  private parts: PartState[] = [];
  private readonly subscribedTopics = new Set<string>();
  private readonly running = new Set<Promise<void>>();
  private readonly sleepers = new Set<() => void>();
  private readonly drainWaiters = new Set<{
    resolve: () => void;
    reject: (error: Error) => void;
    timer: NodeJS.Timeout;
  }>();
  private unsubscribe: Array<() => void> = [];
  private started = false;
  private stopping = false;
  private pumpQueued = false;
  private windowTimer: NodeJS.Timeout | undefined;
  private windowDeadline = Number.POSITIVE_INFINITY;
  private roundRobin = 0;

  private readonly counters = {
    invocations: 0,
    recordsDelivered: 0,
    retries: 0,
    bisections: 0,
    partialFailures: 0,
    invalidResponses: 0,
    recordsSentToDestination: 0,
    destinationRecords: 0,
  };
  private readonly latencies = new Float64Array(LATENCY_WINDOW);
  private latencyCount = 0;

  constructor(options: LocalEventSourceMappingOptions) {
    this.broker = options.broker;
    this.groupId = options.groupId;
    const topics = options.topics;
    if (typeof topics === 'function') {
      this.matches = topics;
    } else {
      const set = new Set(topics);
      this.matches = (topic) => set.has(topic);
    }
    this.handler = options.handler;
    this.batchSize = integerOption('batchSize', options.batchSize ?? 100, 1, 10_000);
    this.windowMs = integerOption('maxBatchingWindowMs', options.maxBatchingWindowMs ?? 500, 0, 300_000);
    this.startingPosition = options.startingPosition ?? 'TRIM_HORIZON';
    this.reportBatchItemFailures = options.reportBatchItemFailures ?? false;
    this.bisect = options.bisectBatchOnError ?? false;
    this.onFailure = options.onFailure;
    const retries = integerOption('maxRetryAttempts', options.maxRetryAttempts ?? -1, -1, 10_000);
    // kafka-retry-configurations: "When you configure both infinite retries and an on-failure destination, Lambda
    // automatically applies a maximum of 10 retry attempts."
    this.maxRetries = retries === -1 && this.onFailure !== undefined ? 10 : retries;
    const maxAge = integerOption('maxRecordAgeSeconds', options.maxRecordAgeSeconds ?? -1, -1, 604_800);
    this.maxAgeMs = maxAge < 0 ? -1 : maxAge * 1000;
    this.eventSourceArn =
      options.eventSourceArn ??
      'arn:aws:kafka:us-east-1:000000000000:cluster/cdc-local/00000000-0000-0000-0000-000000000000-1';
    this.bootstrapServers =
      options.bootstrapServers ??
      'b-1.cdc-local.abc123.c1.kafka.us-east-1.amazonaws.com:9098,b-2.cdc-local.abc123.c1.kafka.us-east-1.amazonaws.com:9098';
    this.functionName = options.functionName ?? options.groupId;
    this.functionArn = options.functionArn ?? `arn:aws:lambda:us-east-1:000000000000:function:${this.functionName}`;
    this.memoryLimitInMB = String(options.memoryLimitInMB ?? 1024);
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.maxConcurrency = options.maxConcurrency ?? Number.POSITIVE_INFINITY;
    if (!(this.maxConcurrency >= 1)) throw new EventSourceMappingError('INVALID_OPTION', 'maxConcurrency must be ≥ 1');
    this.maxPayloadBytes = options.maxPayloadBytes ?? 6 * 1024 * 1024;
    this.backoffMs = options.retryBackoffMs ?? 50;
    this.backoffMaxMs = options.retryBackoffMaxMs ?? 1000;
    this.nullKey = options.nullKey ?? 'null';
    this.nullValue = options.nullValue ?? 'null';
    this.onError = options.onError;
    const day = new Date().toISOString().slice(0, 10).replaceAll('-', '/');
    this.logStreamName = `${day}/[$LATEST]${randomBytes(16).toString('hex')}`;
    this.envelopeBytes = Buffer.byteLength(
      JSON.stringify({
        eventSource: 'aws:kafka',
        eventSourceArn: this.eventSourceArn,
        bootstrapServers: this.bootstrapServers,
        records: {},
      }),
    );
  }

  // ------------------------------------------------------------------------------------------------------------
  // Lifecycle
  // ------------------------------------------------------------------------------------------------------------

  /**
   * Subscribes to the matching topics (now and when created later) and starts delivering. A partition without a
   * committed offset starts at `startingPosition`, which is then committed: as in Lambda, the starting position
   * applies once, when the mapping is created, not on every restart.
   */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.stopping = false;
    this.unsubscribe = [
      this.broker.onTopicCreated((topic) => this.subscribe(topic)),
      this.broker.onAppend((topic) => {
        if (this.subscribedTopics.has(topic)) this.schedulePump();
      }),
    ];
    for (const topic of this.broker.topics()) this.subscribe(topic);
    this.schedulePump();
  }

  /**
   * Stops polling and waits for the batches in flight: an invocation under way finishes and, if it succeeded, is
   * committed; a batch waiting for a retry is abandoned uncommitted and redelivered after the next `start()`.
   */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.stopping = true;
    for (const unsubscribe of this.unsubscribe) unsubscribe();
    this.unsubscribe = [];
    this.clearWindowTimer();
    for (const wake of this.sleepers) wake();
    await Promise.allSettled([...this.running]);
    this.started = false;
    this.parts = [];
    this.subscribedTopics.clear();
    for (const waiter of this.drainWaiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new EventSourceMappingError('STOPPED', 'the event source mapping was stopped'));
    }
    this.drainWaiters.clear();
  }

  /**
   * Resolves once every subscribed partition's committed offset reached its high-water mark and no batch is in
   * flight; rejects with `DRAIN_TIMEOUT` (naming the lagging partitions) after `timeoutMs`.
   */
  drain(timeoutMs = 30_000): Promise<void> {
    if (!this.started || this.stopping) {
      return Promise.reject(new EventSourceMappingError('NOT_STARTED', 'drain() needs a started mapping'));
    }
    if (this.isDrained()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.drainWaiters.delete(waiter);
          const lagging = this.stats()
            .partitions.filter((p) => p.lag > 0 || p.inFlight)
            .map((p) => `${p.id} committed ${p.committed}/${p.highWater}${p.inFlight ? ' (in flight)' : ''}`);
          reject(
            new EventSourceMappingError(
              'DRAIN_TIMEOUT',
              `group ${this.groupId} not drained after ${timeoutMs} ms: ${lagging.join(', ') || 'batches in flight'}`,
            ),
          );
        }, timeoutMs),
      };
      this.drainWaiters.add(waiter);
    });
  }

  /** Lag, in-flight state and counters; cheap enough to call from a progress line. */
  stats(): EsmStats {
    const partitions = this.parts.map((part): PartitionStats => {
      const highWater = this.broker.highWater(part.topic, part.partition);
      return {
        id: part.id,
        topic: part.topic,
        partition: part.partition,
        committed: part.committed,
        highWater,
        lag: Math.max(0, highWater - part.committed),
        inFlight: part.owner !== undefined,
      };
    });
    return {
      groupId: this.groupId,
      partitions,
      lag: partitions.reduce((sum, p) => sum + p.lag, 0),
      inFlightBatches: this.running.size,
      ...this.counters,
      latencyMs: this.latencySummary(),
    };
  }

  // ------------------------------------------------------------------------------------------------------------
  // Polling and batching
  // ------------------------------------------------------------------------------------------------------------

  private subscribe(topic: string): void {
    if (this.subscribedTopics.has(topic) || !this.matches(topic)) return;
    this.subscribedTopics.add(topic);
    const count = this.broker.partitionCount(topic) ?? 0;
    for (let partition = 0; partition < count; partition++) {
      let committed = this.broker.committed(this.groupId, topic, partition);
      if (committed === undefined) {
        committed =
          this.startingPosition === 'LATEST'
            ? this.broker.highWater(topic, partition)
            : this.broker.logStartOffset(topic, partition);
        this.commitToBroker(topic, partition, committed);
      }
      this.parts.push({
        id: `${topic}-${partition}`,
        topic,
        partition,
        position: committed,
        committed,
        owner: undefined,
        batchEnd: committed,
      });
    }
    this.schedulePump();
  }

  /**
   * A group behind the log start offset (records deleted before it read them) goes on from the log start offset: the
   * records are gone, as for a Kafka consumer with `auto.offset.reset=earliest`.
   */
  private skipDeleted(part: PartState): void {
    const start = this.broker.logStartOffset(part.topic, part.partition);
    if (part.position >= start) return;
    part.position = start;
    part.batchEnd = start;
    if (part.committed < start) {
      part.committed = start;
      this.commitToBroker(part.topic, part.partition, start);
    }
  }

  /** Coalesces wake-ups (a burst of appends, several batches finishing) into one pump on the microtask queue. */
  private schedulePump(): void {
    if (this.pumpQueued || !this.started || this.stopping) return;
    this.pumpQueued = true;
    queueMicrotask(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  private pump(): void {
    if (!this.started || this.stopping) return;
    while (this.running.size < this.maxConcurrency) {
      const ready: PartState[] = [];
      let available = 0;
      let oldest = Number.POSITIVE_INFINITY;
      for (const part of this.parts) {
        if (part.owner !== undefined) continue;
        this.skipDeleted(part);
        const highWater = this.broker.highWater(part.topic, part.partition);
        if (part.position >= highWater) continue;
        ready.push(part);
        available += highWater - part.position;
        const first = this.broker.recordAt(part.topic, part.partition, part.position);
        if (first !== undefined && first.appendedAt < oldest) oldest = first.appendedAt;
      }
      if (ready.length === 0) return;
      // Batching window (msk-esm-parameters, "Batching behavior"): invoke when the batch is full or when the window,
      // counted from the oldest waiting record, has passed.
      if (available < this.batchSize && this.windowMs > 0) {
        const due = oldest + this.windowMs;
        const now = performance.now();
        if (due > now) {
          this.armWindowTimer(due, now);
          return;
        }
      }
      this.launch(this.formBatch(ready));
    }
  }

  private armWindowTimer(due: number, now: number): void {
    if (this.windowTimer !== undefined && this.windowDeadline <= due) return;
    this.clearWindowTimer();
    this.windowDeadline = due;
    this.windowTimer = setTimeout(
      () => {
        this.windowTimer = undefined;
        this.windowDeadline = Number.POSITIVE_INFINITY;
        this.pump();
      },
      Math.ceil(due - now),
    );
  }

  private clearWindowTimer(): void {
    if (this.windowTimer !== undefined) clearTimeout(this.windowTimer);
    this.windowTimer = undefined;
    this.windowDeadline = Number.POSITIVE_INFINITY;
  }

  /**
   * Takes up to `batchSize` records from the ready partitions (rotating which goes first, so one busy partition
   * cannot starve the others) while the event stays within the payload limit. A record that alone exceeds the limit
   * becomes a batch of its own, marked oversized (Lambda's `MaximumPayloadSizeExceeded`).
   */
  private formBatch(ready: readonly PartState[]): Batch {
    const slices: Slice[] = [];
    let remaining = this.batchSize;
    let bytes = this.envelopeBytes;
    let full = false;
    const start = this.roundRobin++ % ready.length;
    for (let i = 0; i < ready.length && remaining > 0 && !full; i++) {
      const part = ready[(start + i) % ready.length]!;
      const highWater = this.broker.highWater(part.topic, part.partition);
      const records: BrokerRecord[] = [];
      // `"<id>":[` … `]` plus the comma between groups.
      let groupBytes = Buffer.byteLength(part.id) + 6;
      for (let offset = part.position; offset < highWater && remaining > 0; offset++) {
        const record = this.broker.recordAt(part.topic, part.partition, offset)!;
        const size = wireInfo(record).size + 1;
        if (bytes + groupBytes + size > this.maxPayloadBytes) {
          if (slices.length === 0 && records.length === 0) {
            const oversized: Batch = { slices: [{ part, records: [record] }], oversized: true };
            this.own(oversized);
            return oversized;
          }
          full = true;
          break;
        }
        records.push(record);
        groupBytes += size;
        remaining--;
      }
      if (records.length > 0) {
        slices.push({ part, records });
        bytes += groupBytes;
      }
    }
    const batch: Batch = { slices };
    this.own(batch);
    return batch;
  }

  private own(batch: Batch): void {
    for (const { part, records } of batch.slices) {
      part.owner = batch;
      part.batchEnd = records[records.length - 1]!.offset + 1;
      part.position = part.batchEnd;
    }
  }

  private launch(batch: Batch): void {
    const run = this.process(batch, { retries: 0, invokeCount: 0, lastRequestId: undefined, lastThrew: false })
      .catch((error: unknown) => this.onError?.(error, { stage: 'invoke' }))
      .finally(() => {
        this.running.delete(run);
        // Whatever was not committed (stopped mid-retry) is redelivered from the committed offset.
        for (const { part } of batch.slices) if (part.owner === batch) this.release(part);
        this.checkDrain();
        this.schedulePump();
      });
    this.running.add(run);
  }

  private release(part: PartState): void {
    part.owner = undefined;
    part.position = part.committed;
    this.schedulePump();
  }

  // ------------------------------------------------------------------------------------------------------------
  // Invoking, retrying, bisecting, discarding
  // ------------------------------------------------------------------------------------------------------------

  /** Runs one batch to completion: success, partial commit + retry, bisect, or the on-failure destination. */
  private async process(batch: Batch, state: AttemptState): Promise<void> {
    if (batch.oversized) {
      await this.discard(batch, 'MaximumPayloadSizeExceeded', state);
      return;
    }
    let current: Batch = batch;
    for (;;) {
      if (this.stopping) return;
      if (this.maxAgeMs >= 0) {
        const { expired, fresh } = this.splitExpired(current);
        if (expired !== undefined && !(await this.discard(expired, 'RecordAgeExceeded', state))) return;
        if (fresh === undefined) return;
        current = fresh;
      }
      const outcome = await this.invoke(current, state);
      if (outcome.kind === 'success') {
        for (const slice of current.slices) this.finish(slice.part, lastOffset(slice) + 1);
        return;
      }
      if (outcome.kind === 'partial') {
        current = this.applyPartial(current, outcome.failures);
      } else if (this.bisect && recordCount(current) > 1) {
        // Splitting is not a retry: each half starts with the parent's retry count ([I] as for stream ESMs).
        this.counters.bisections++;
        const [first, second] = splitBatch(current);
        await this.process(first, { ...state });
        // Stopped during the first half: process() returns at once and the rest is redelivered after restart.
        await this.process(second, { ...state });
        return;
      }
      state.retries++;
      if (this.maxRetries >= 0 && state.retries > this.maxRetries) {
        await this.discard(current, 'RetryAttemptsExhausted', state);
        return;
      }
      this.counters.retries++;
      await this.sleep(Math.min(this.backoffMaxMs, this.backoffMs * 2 ** (state.retries - 1)));
    }
  }

  private async invoke(batch: Batch, state: AttemptState): Promise<Outcome> {
    const event = this.buildEvent(batch);
    const requestId = randomUUID();
    state.invokeCount++;
    state.lastRequestId = requestId;
    this.counters.invocations++;
    this.counters.recordsDelivered += recordCount(batch);
    const started = performance.now();
    let result: unknown;
    try {
      result = await this.handler(event, this.context(requestId));
    } catch (error) {
      this.recordLatency(performance.now() - started);
      state.lastThrew = true;
      this.onError?.(error, { requestId, stage: 'invoke' });
      return { kind: 'error', threw: true };
    }
    this.recordLatency(performance.now() - started);
    state.lastThrew = false;
    if (!this.reportBatchItemFailures) return { kind: 'success' };
    const outcome = this.parseResponse(result, batch);
    if (outcome.kind === 'error') {
      this.counters.invalidResponses++;
      this.onError?.(
        new EventSourceMappingError(
          'INVALID_PARTIAL_RESPONSE',
          `batchItemFailures names a partition or offset that was not in the batch, or is malformed: ${safeJson(result)}`,
        ),
        { requestId, stage: 'response' },
      );
    } else if (outcome.kind === 'partial') {
      this.counters.partialFailures++;
    }
    return outcome;
  }

  /**
   * Reads a partial batch response (kafka-retry-configurations): null, `{}` and an empty list mean success; every
   * `itemIdentifier` must be `{ partition: "<topic>-<n>", offset: <number> }` naming a record of this batch, or the
   * whole batch failed. Several failures on one partition: the lowest offset wins (everything after it is redelivered
   * anyway).
   */
  private parseResponse(result: unknown, batch: Batch): Outcome {
    if (result === null || typeof result !== 'object') return { kind: 'success' };
    const list = (result as { batchItemFailures?: unknown }).batchItemFailures;
    if (list === undefined || list === null) return { kind: 'success' };
    if (!Array.isArray(list)) return { kind: 'error', threw: false };
    if (list.length === 0) return { kind: 'success' };
    const failures = new Map<Slice, number>();
    for (const item of list) {
      const id = (item as { itemIdentifier?: unknown } | null)?.itemIdentifier as
        | { partition?: unknown; offset?: unknown }
        | null
        | undefined;
      if (typeof id !== 'object' || id === null) return { kind: 'error', threw: false };
      const { partition, offset } = id;
      if (typeof partition !== 'string' || typeof offset !== 'number') return { kind: 'error', threw: false };
      const slice = batch.slices.find((s) => s.part.id === partition);
      if (slice === undefined) return { kind: 'error', threw: false };
      const index = offset - slice.records[0]!.offset;
      if (!Number.isInteger(index) || index < 0 || index >= slice.records.length)
        return { kind: 'error', threw: false };
      const previous = failures.get(slice);
      if (previous === undefined || index < previous) failures.set(slice, index);
    }
    return { kind: 'partial', failures };
  }

  /** Commits what succeeded and returns what must be redelivered: each listed partition from its failed offset on. */
  private applyPartial(batch: Batch, failures: Map<Slice, number>): Batch {
    const remainder: Slice[] = [];
    for (const slice of batch.slices) {
      const index = failures.get(slice);
      if (index === undefined) {
        this.finish(slice.part, lastOffset(slice) + 1);
      } else {
        this.commit(slice.part, slice.records[index]!.offset);
        remainder.push({ part: slice.part, records: slice.records.slice(index) });
      }
    }
    return { slices: remainder };
  }

  private splitExpired(batch: Batch): { expired: Batch | undefined; fresh: Batch | undefined } {
    const cutoff = Date.now() - this.maxAgeMs;
    const expired: Slice[] = [];
    const fresh: Slice[] = [];
    for (const slice of batch.slices) {
      // Only a prefix can expire, so a partition stays in order even when producer timestamps are not monotonic.
      let n = 0;
      while (n < slice.records.length && slice.records[n]!.timestamp < cutoff) n++;
      if (n > 0) expired.push({ part: slice.part, records: slice.records.slice(0, n) });
      if (n < slice.records.length)
        fresh.push({ part: slice.part, records: n === 0 ? slice.records : slice.records.slice(n) });
    }
    return {
      expired: expired.length > 0 ? { slices: expired } : undefined,
      fresh: fresh.length > 0 ? { slices: fresh } : undefined,
    };
  }

  /**
   * Gives up on a batch: hands the S3-style record to `onFailure` (retrying the destination itself until it accepts,
   * so nothing is lost silently) and commits past the records, as Lambda does. False when stopped before delivery.
   */
  private async discard(batch: Batch, condition: FailureCondition, state: AttemptState): Promise<boolean> {
    const count = recordCount(batch);
    if (this.onFailure !== undefined) {
      const record = this.failureRecord(batch, condition, state);
      for (let attempt = 1; ; attempt++) {
        try {
          await this.onFailure(record);
          break;
        } catch (error) {
          this.onError?.(error, { requestId: record.requestContext.requestId, stage: 'destination' });
          if (this.stopping) return false;
          await this.sleep(Math.min(this.backoffMaxMs, this.backoffMs * 2 ** (attempt - 1)));
          if (this.stopping) return false;
        }
      }
      this.counters.destinationRecords++;
    }
    this.counters.recordsSentToDestination += count;
    for (const slice of batch.slices) this.finish(slice.part, lastOffset(slice) + 1);
    return true;
  }

  private failureRecord(batch: Batch, condition: FailureCondition, state: AttemptState): OnFailureRecord {
    const payload = JSON.stringify(this.buildEvent(batch));
    const recordsInfo: OnFailureRecord['KafkaBatchInfo']['recordsInfo'] = {};
    for (const slice of batch.slices) {
      const first = slice.records[0]!;
      const last = slice.records[slice.records.length - 1]!;
      // Offsets and timestamps are strings here, unlike in the event (kafka-on-failure).
      recordsInfo[slice.part.id] = {
        firstRecordOffset: String(first.offset),
        lastRecordOffset: String(last.offset),
        firstRecordTimestamp: new Date(first.timestamp).toISOString(),
        lastRecordTimestamp: new Date(last.timestamp).toISOString(),
      };
    }
    const answered = state.invokeCount > 0 && condition !== 'MaximumPayloadSizeExceeded';
    return {
      requestContext: {
        requestId: state.lastRequestId ?? randomUUID(),
        functionArn: this.functionArn,
        condition,
        approximateInvokeCount: state.invokeCount,
      },
      responseContext: answered
        ? {
            statusCode: 200,
            executedVersion: '$LATEST',
            // A valid partial batch response is not a function error; a thrown one is.
            ...(state.lastThrew ? { functionError: 'Unhandled' as const } : {}),
          }
        : null,
      version: '1.0',
      timestamp: new Date().toISOString(),
      KafkaBatchInfo: {
        batchSize: recordCount(batch),
        eventSourceArn: this.eventSourceArn,
        bootstrapServers: this.bootstrapServers,
        payloadSize: Buffer.byteLength(payload),
        recordsInfo,
      },
      payload,
    };
  }

  // ------------------------------------------------------------------------------------------------------------
  // Commits
  // ------------------------------------------------------------------------------------------------------------

  /** Commits through `nextOffset` and lets the partition go once its share of the batch is done. */
  private finish(part: PartState, nextOffset: number): void {
    this.commit(part, nextOffset);
    if (part.owner !== undefined && nextOffset >= part.batchEnd) this.release(part);
    this.checkDrain();
  }

  private commit(part: PartState, nextOffset: number): void {
    if (nextOffset <= part.committed) return;
    part.committed = nextOffset;
    this.commitToBroker(part.topic, part.partition, nextOffset);
  }

  private commitToBroker(topic: string, partition: number, nextOffset: number): void {
    this.broker.commit(this.groupId, topic, partition, nextOffset).catch((error: unknown) => {
      this.onError?.(error, { stage: 'commit' });
    });
  }

  private isDrained(): boolean {
    if (this.running.size > 0) return false;
    for (const part of this.parts) {
      if (part.owner !== undefined || part.committed < this.broker.highWater(part.topic, part.partition)) return false;
    }
    return true;
  }

  private checkDrain(): void {
    if (this.drainWaiters.size === 0 || !this.isDrained()) return;
    for (const waiter of this.drainWaiters) {
      clearTimeout(waiter.timer);
      waiter.resolve();
    }
    this.drainWaiters.clear();
  }

  // ------------------------------------------------------------------------------------------------------------
  // Event, context, helpers
  // ------------------------------------------------------------------------------------------------------------

  private buildEvent(batch: Batch): LocalMskEvent {
    const records: Record<string, KafkaRecord[]> = {};
    for (const slice of batch.slices) {
      const wire = slice.records.map((record) => toWireRecord(record, wireInfo(record), this.nullKey, this.nullValue));
      const existing = records[slice.part.id];
      if (existing === undefined) records[slice.part.id] = wire;
      else existing.push(...wire);
    }
    return {
      eventSource: 'aws:kafka',
      eventSourceArn: this.eventSourceArn,
      bootstrapServers: this.bootstrapServers,
      records,
    };
  }

  private context(requestId: string): LambdaLikeContext {
    const deadline = Date.now() + this.timeoutMs;
    const unsupported = (): never => {
      throw new Error('context.done/fail/succeed are not supported: return or throw from an async handler');
    };
    return {
      callbackWaitsForEmptyEventLoop: true,
      functionName: this.functionName,
      functionVersion: '$LATEST',
      invokedFunctionArn: this.functionArn,
      memoryLimitInMB: this.memoryLimitInMB,
      awsRequestId: requestId,
      logGroupName: `/aws/lambda/${this.functionName}`,
      logStreamName: this.logStreamName,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      done: unsupported,
      fail: unsupported,
      succeed: unsupported,
    };
  }

  /** A timer that `stop()` cuts short, so stopping never waits out a retry backoff. */
  private sleep(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  private recordLatency(ms: number): void {
    this.latencies[this.latencyCount % LATENCY_WINDOW] = ms;
    this.latencyCount++;
  }

  private latencySummary(): EsmStats['latencyMs'] {
    const count = Math.min(this.latencyCount, LATENCY_WINDOW);
    if (count === 0) return null;
    const sorted = Array.from(this.latencies.subarray(0, count)).sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(count - 1, Math.floor(q * count))]!;
    return { count: this.latencyCount, p50: at(0.5), p99: at(0.99), max: sorted[count - 1]! };
  }
}

function integerOption(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new EventSourceMappingError('INVALID_OPTION', `${name} must be an integer in ${min}..${max}, got ${value}`);
  }
  return value;
}

function recordCount(batch: Batch): number {
  let n = 0;
  for (const slice of batch.slices) n += slice.records.length;
  return n;
}

function lastOffset(slice: Slice): number {
  return slice.records[slice.records.length - 1]!.offset;
}

/** Halves a batch by record count, in delivery order, so each partition's records stay in order across the halves. */
function splitBatch(batch: Batch): [Batch, Batch] {
  let firstCount = Math.ceil(recordCount(batch) / 2);
  const first: Slice[] = [];
  const second: Slice[] = [];
  for (const slice of batch.slices) {
    if (firstCount >= slice.records.length) {
      first.push(slice);
      firstCount -= slice.records.length;
    } else if (firstCount > 0) {
      first.push({ part: slice.part, records: slice.records.slice(0, firstCount) });
      second.push({ part: slice.part, records: slice.records.slice(firstCount) });
      firstCount = 0;
    } else {
      second.push(slice);
    }
  }
  return [{ slices: first }, { slices: second }];
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value)?.slice(0, 500) ?? String(value);
  } catch {
    return String(value);
  }
}
