import type { LocalBroker } from './broker';
import { PartitionPoller } from './esm-batching';
import { FailurePolicy, type OnFailureRecord } from './esm-failure';
import { Invoker } from './esm-invoke';
import { type EsmErrorHook, type EsmStats, EventSourceMappingError, newCounters } from './esm-types';
import { MskEventFormat, type MskHandler } from './esm-wire';

export type { FailureCondition, OnFailureRecord } from './esm-failure';
export type { EsmStats, PartitionStats } from './esm-types';
export { EventSourceMappingError } from './esm-types';
export type { LambdaLikeContext, LocalMskEvent, MskHandler } from './esm-wire';
export { wireSizeOf } from './esm-wire';

/**
 * A local stand-in for Lambda's Amazon MSK event source mapping: one consumer group reading a local broker and
 * invoking a handler with events shaped exactly as Lambda delivers them (docs/formats.md §1).
 *
 * This class holds the options, the lifecycle (start, stop, drain) and the stats; the work is done by its parts,
 * each with the sources it follows:
 * - esm-wire.ts: the event, its size against `batchSize` and the 6 MB payload limit, the context;
 * - esm-batching.ts: subscriptions, per-partition positions and commits, the batching window, forming batches;
 * - esm-invoke.ts: calling the handler and reading its partial batch response;
 * - esm-failure.ts: retries, bisect, record age and the on-failure destination.
 */

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
  /**
   * Fault injection (`npm run chaos`): asked after every successful invocation; true loses its commit, as when the
   * consumer's offset commit does not reach the broker, and the same batch is delivered again.
   */
  loseCommit?: () => boolean;
  /** How a null key is delivered: `"key": null` or no `key` field (both occur, docs/formats.md §1.3). @default 'null' */
  nullKey?: 'null' | 'absent';
  /** How a null value (tombstone) is delivered. @default 'null' */
  nullValue?: 'null' | 'absent';
  /** Told about every failed invocation and failed destination write (the mapping itself keeps going). */
  onError?: EsmErrorHook;
}

/** The local MSK event source mapping. See the module comment for what it matches. */
export class LocalEventSourceMapping {
  private readonly groupId: string;
  private readonly counters = newCounters();
  private readonly poller: PartitionPoller;
  private readonly invoker: Invoker;
  private readonly policy: FailurePolicy;
  private readonly drainWaiters = new Set<{
    resolve: () => void;
    reject: (error: Error) => void;
    timer: NodeJS.Timeout;
  }>();
  private started = false;
  private stopping = false;

  constructor(options: LocalEventSourceMappingOptions) {
    this.groupId = options.groupId;
    const topics = options.topics;
    let matches: (topic: string) => boolean;
    if (typeof topics === 'function') {
      matches = topics;
    } else {
      const set = new Set(topics);
      matches = (topic) => set.has(topic);
    }
    // Every option is checked here, before any part is built.
    const batchSize = integerOption('batchSize', options.batchSize ?? 100, 1, 10_000);
    const windowMs = integerOption('maxBatchingWindowMs', options.maxBatchingWindowMs ?? 500, 0, 300_000);
    const retries = integerOption('maxRetryAttempts', options.maxRetryAttempts ?? -1, -1, 10_000);
    const maxAge = integerOption('maxRecordAgeSeconds', options.maxRecordAgeSeconds ?? -1, -1, 604_800);
    const maxConcurrency = options.maxConcurrency ?? Number.POSITIVE_INFINITY;
    if (!(maxConcurrency >= 1)) throw new EventSourceMappingError('INVALID_OPTION', 'maxConcurrency must be ≥ 1');
    const functionName = options.functionName ?? options.groupId;
    const onError = options.onError;

    const format = new MskEventFormat({
      eventSourceArn:
        options.eventSourceArn ??
        'arn:aws:kafka:us-east-1:000000000000:cluster/cdc-local/00000000-0000-0000-0000-000000000000-1',
      bootstrapServers:
        options.bootstrapServers ??
        'b-1.cdc-local.abc123.c1.kafka.us-east-1.amazonaws.com:9098,b-2.cdc-local.abc123.c1.kafka.us-east-1.amazonaws.com:9098',
      nullKey: options.nullKey ?? 'null',
      nullValue: options.nullValue ?? 'null',
      maxPayloadBytes: options.maxPayloadBytes ?? 6 * 1024 * 1024,
      functionName,
      functionArn: options.functionArn ?? `arn:aws:lambda:us-east-1:000000000000:function:${functionName}`,
      memoryLimitInMB: String(options.memoryLimitInMB ?? 1024),
      timeoutMs: options.timeoutMs ?? 60_000,
    });
    this.poller = new PartitionPoller(
      {
        broker: options.broker,
        groupId: options.groupId,
        matches,
        batchSize,
        windowMs,
        startingPosition: options.startingPosition ?? 'TRIM_HORIZON',
        maxConcurrency,
      },
      format,
      { run: (batch) => this.policy.run(batch), progressed: () => this.checkDrain(), onError },
    );
    this.invoker = new Invoker(
      { handler: options.handler, reportBatchItemFailures: options.reportBatchItemFailures ?? false, onError },
      format,
      this.counters,
    );
    this.policy = new FailurePolicy(
      {
        bisect: options.bisectBatchOnError ?? false,
        // kafka-retry-configurations: "When you configure both infinite retries and an on-failure destination,
        // Lambda automatically applies a maximum of 10 retry attempts."
        maxRetries: retries === -1 && options.onFailure !== undefined ? 10 : retries,
        maxAgeMs: maxAge < 0 ? -1 : maxAge * 1000,
        onFailure: options.onFailure,
        backoffMs: options.retryBackoffMs ?? 50,
        backoffMaxMs: options.retryBackoffMaxMs ?? 1000,
        onError,
        loseCommit: options.loseCommit,
      },
      this.invoker,
      format,
      this.poller,
      this.counters,
    );
  }

  /**
   * Subscribes to the matching topics (now and when created later) and starts delivering. A partition without a
   * committed offset starts at `startingPosition`, which is then committed: as in Lambda, the starting position
   * applies once, when the mapping is created, not on every restart.
   */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.stopping = false;
    this.policy.resume();
    this.poller.start();
  }

  /**
   * Stops polling and waits for the batches in flight: an invocation under way finishes and, if it succeeded, is
   * committed; a batch waiting for a retry is abandoned uncommitted and redelivered after the next `start()`.
   */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.stopping = true;
    this.poller.pause();
    this.policy.halt();
    await this.poller.settled();
    this.started = false;
    this.poller.clear();
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
    if (this.poller.isDrained()) return Promise.resolve();
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
    const partitions = this.poller.partitionStats();
    return {
      groupId: this.groupId,
      partitions,
      lag: partitions.reduce((sum, p) => sum + p.lag, 0),
      inFlightBatches: this.poller.inFlightBatches,
      ...this.counters,
      latencyMs: this.invoker.latencySummary(),
    };
  }

  private checkDrain(): void {
    if (this.drainWaiters.size === 0 || !this.poller.isDrained()) return;
    for (const waiter of this.drainWaiters) {
      clearTimeout(waiter.timer);
      waiter.resolve();
    }
    this.drainWaiters.clear();
  }
}

function integerOption(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new EventSourceMappingError('INVALID_OPTION', `${name} must be an integer in ${min}..${max}, got ${value}`);
  }
  return value;
}
