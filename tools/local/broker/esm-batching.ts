import { performance } from 'node:perf_hooks';
import type { BrokerRecord, LocalBroker } from './broker';
import type { EsmErrorHook, PartitionStats } from './esm-types';
import type { MskEventFormat } from './esm-wire';

/**
 * Polling and batching: which partitions the consumer group reads, where each stands (next offset to deliver, next
 * offset committed), when a batch is formed and which records it holds, and committing what a batch got through.
 *
 * - Batching: up to `batchSize` records across the subscribed partitions, waiting at most `maxBatchingWindowMs`
 *   (default 500 ms for Kafka, msk-esm-parameters) from the oldest waiting record; a partition is in at most one
 *   batch at a time and read in order (kafka-scaling-modes: pollers are capped at the partition count "to maintain
 *   ordered processing within partitions"), several partitions' batches run concurrently.
 * - Starting position: applies once, for a group without a committed offset, which is then committed.
 *
 * What happens to a batch once formed (invocation, retries, the on-failure destination) is the runner's concern
 * (esm-failure.ts); it reports back through {@link PartitionCommits}.
 */

/** One subscribed partition as the group sees it. */
export interface PartState {
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

export interface Slice {
  readonly part: PartState;
  /** Contiguous offsets, ascending. */
  readonly records: readonly BrokerRecord[];
}

export interface Batch {
  readonly slices: readonly Slice[];
  /** A single record larger than the payload limit: never invoked, sent to the destination. */
  readonly oversized?: boolean;
}

export function recordCount(batch: Batch): number {
  let n = 0;
  for (const slice of batch.slices) n += slice.records.length;
  return n;
}

export function lastOffset(slice: Slice): number {
  return slice.records[slice.records.length - 1]!.offset;
}

/** How a batch's runner moves a partition on. */
export interface PartitionCommits {
  /** Commits through `nextOffset` and lets the partition go once its share of the batch is done. */
  finish(part: PartState, nextOffset: number): void;
  /** Commits through `nextOffset`; the partition stays with its batch (the rest is being retried). */
  commit(part: PartState, nextOffset: number): void;
}

/** The resolved options polling and batching depend on (defaults are applied in esm.ts). */
export interface BatchingSettings {
  broker: LocalBroker;
  groupId: string;
  matches: (topic: string) => boolean;
  batchSize: number;
  windowMs: number;
  startingPosition: 'TRIM_HORIZON' | 'LATEST';
  maxConcurrency: number;
}

export interface BatchingHooks {
  /** Runs a batch to completion; the partitions it still holds afterwards are redelivered from their commit. */
  run: (batch: Batch) => Promise<void>;
  /** After a commit or a finished batch (the mapping checks whether it drained). */
  progressed: () => void;
  onError: EsmErrorHook | undefined;
}

/** One consumer group's partitions, its poll loop and its commits. */
export class PartitionPoller implements PartitionCommits {
  private readonly broker: LocalBroker;
  private parts: PartState[] = [];
  private readonly subscribedTopics = new Set<string>();
  private readonly running = new Set<Promise<void>>();
  private unsubscribe: Array<() => void> = [];
  /** Between start() and pause(): subscribed and polling. */
  private active = false;
  private pumpQueued = false;
  private windowTimer: NodeJS.Timeout | undefined;
  private windowDeadline = Number.POSITIVE_INFINITY;
  private roundRobin = 0;

  constructor(
    private readonly settings: Readonly<BatchingSettings>,
    private readonly format: MskEventFormat,
    private readonly hooks: BatchingHooks,
  ) {
    this.broker = settings.broker;
  }

  /** Subscribes to the matching topics, now and when created later, and starts polling. */
  start(): void {
    this.active = true;
    this.unsubscribe = [
      this.broker.onTopicCreated((topic) => this.subscribe(topic)),
      this.broker.onAppend((topic) => {
        if (this.subscribedTopics.has(topic)) this.schedulePump();
      }),
    ];
    for (const topic of this.broker.topics()) this.subscribe(topic);
    this.schedulePump();
  }

  /** Stops polling: no new batch is formed; the batches in flight go on (see {@link settled}). */
  pause(): void {
    this.active = false;
    for (const unsubscribe of this.unsubscribe) unsubscribe();
    this.unsubscribe = [];
    this.clearWindowTimer();
  }

  /** Resolves once every batch in flight has finished, however it ended. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }

  /** Forgets the partitions (after a stop: the next start reads the commits again). */
  clear(): void {
    this.parts = [];
    this.subscribedTopics.clear();
  }

  get inFlightBatches(): number {
    return this.running.size;
  }

  /** No batch in flight and every partition committed up to its high-water mark. */
  isDrained(): boolean {
    if (this.running.size > 0) return false;
    for (const part of this.parts) {
      if (part.owner !== undefined || part.committed < this.broker.highWater(part.topic, part.partition)) return false;
    }
    return true;
  }

  partitionStats(): PartitionStats[] {
    return this.parts.map((part): PartitionStats => {
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
  }

  // ------------------------------------------------------------------------------------------------------------
  // Commits
  // ------------------------------------------------------------------------------------------------------------

  finish(part: PartState, nextOffset: number): void {
    this.commit(part, nextOffset);
    if (part.owner !== undefined && nextOffset >= part.batchEnd) this.release(part);
    this.hooks.progressed();
  }

  commit(part: PartState, nextOffset: number): void {
    if (nextOffset <= part.committed) return;
    part.committed = nextOffset;
    this.commitToBroker(part.topic, part.partition, nextOffset);
  }

  private commitToBroker(topic: string, partition: number, nextOffset: number): void {
    this.broker.commit(this.settings.groupId, topic, partition, nextOffset).catch((error: unknown) => {
      this.hooks.onError?.(error, { stage: 'commit' });
    });
  }

  private release(part: PartState): void {
    part.owner = undefined;
    part.position = part.committed;
    this.schedulePump();
  }

  // ------------------------------------------------------------------------------------------------------------
  // Polling
  // ------------------------------------------------------------------------------------------------------------

  /**
   * A partition without a committed offset starts at `startingPosition`, which is then committed: as in Lambda, the
   * starting position applies once, when the mapping is created, not on every restart.
   */
  private subscribe(topic: string): void {
    if (this.subscribedTopics.has(topic) || !this.settings.matches(topic)) return;
    this.subscribedTopics.add(topic);
    const count = this.broker.partitionCount(topic) ?? 0;
    for (let partition = 0; partition < count; partition++) {
      let committed = this.broker.committed(this.settings.groupId, topic, partition);
      if (committed === undefined) {
        committed =
          this.settings.startingPosition === 'LATEST'
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
    if (this.pumpQueued || !this.active) return;
    this.pumpQueued = true;
    queueMicrotask(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  private pump(): void {
    if (!this.active) return;
    const { batchSize, windowMs } = this.settings;
    while (this.running.size < this.settings.maxConcurrency) {
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
      if (available < batchSize && windowMs > 0) {
        const due = oldest + windowMs;
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

  // ------------------------------------------------------------------------------------------------------------
  // Batches
  // ------------------------------------------------------------------------------------------------------------

  /**
   * Takes up to `batchSize` records from the ready partitions (rotating which goes first, so one busy partition
   * cannot starve the others) while the event stays within the payload limit. A record that alone exceeds the limit
   * becomes a batch of its own, marked oversized (Lambda's `MaximumPayloadSizeExceeded`).
   */
  private formBatch(ready: readonly PartState[]): Batch {
    const slices: Slice[] = [];
    const budget = this.format.budget(this.settings.batchSize);
    const start = this.roundRobin++ % ready.length;
    for (let i = 0; i < ready.length && !budget.full; i++) {
      const part = ready[(start + i) % ready.length]!;
      const highWater = this.broker.highWater(part.topic, part.partition);
      const records: BrokerRecord[] = [];
      budget.openGroup(part.id);
      for (let offset = part.position; offset < highWater && !budget.full; offset++) {
        const record = this.broker.recordAt(part.topic, part.partition, offset)!;
        if (!budget.take(record)) {
          if (slices.length === 0 && records.length === 0) {
            const oversized: Batch = { slices: [{ part, records: [record] }], oversized: true };
            this.own(oversized);
            return oversized;
          }
          break;
        }
        records.push(record);
      }
      if (records.length > 0) {
        slices.push({ part, records });
        budget.closeGroup();
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
    const run = this.hooks
      .run(batch)
      .catch((error: unknown) => this.hooks.onError?.(error, { stage: 'invoke' }))
      .finally(() => {
        this.running.delete(run);
        // Whatever was not committed (stopped mid-retry) is redelivered from the committed offset.
        for (const { part } of batch.slices) if (part.owner === batch) this.release(part);
        this.hooks.progressed();
        this.schedulePump();
      });
    this.running.add(run);
  }
}
