import { randomUUID } from 'node:crypto';
import { type Batch, lastOffset, type PartitionCommits, recordCount, type Slice } from './esm-batching';
import type { AttemptState, Invoker } from './esm-invoke';
import type { EsmCounters, EsmErrorHook } from './esm-types';
import type { MskEventFormat } from './esm-wire';

/**
 * The failure policy: what happens to a batch after each invocation until every record of it is committed
 * (kafka-retry-configurations, kafka-on-failure, docs/formats.md §1.7).
 *
 * - A thrown error (or an invalid partial response) retries the whole batch, with a backoff.
 * - A partial batch response commits each listed partition up to the reported offset and retries from it.
 * - `bisectBatchOnError` splits a failed batch in halves instead of retrying it.
 * - After `maxRetryAttempts` (10 when infinite and an on-failure destination is set) or `maxRecordAgeSeconds`, or
 *   for a record larger than the payload limit, the records go to `onFailure` as the record Lambda writes to an S3
 *   destination (metadata + the whole event as a JSON string) and the offsets move past them.
 */

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

/** The resolved options the policy depends on (defaults are applied in esm.ts). */
export interface FailureSettings {
  bisect: boolean;
  /** Retries after the first attempt; -1 = infinite. */
  maxRetries: number;
  /** -1 = infinite. */
  maxAgeMs: number;
  onFailure: ((record: OnFailureRecord) => Promise<void>) | undefined;
  backoffMs: number;
  backoffMaxMs: number;
  /** Fault injection: true after a success loses the commit, and the batch is delivered again. */
  loseCommit?: (() => boolean) | undefined;
  onError: EsmErrorHook | undefined;
}

/** Runs one mapping's batches to completion: success, partial commit + retry, bisect, or the on-failure destination. */
export class FailurePolicy {
  private stopping = false;
  private readonly sleepers = new Set<() => void>();

  constructor(
    private readonly settings: Readonly<FailureSettings>,
    private readonly invoker: Invoker,
    private readonly format: MskEventFormat,
    private readonly commits: PartitionCommits,
    private readonly counters: EsmCounters,
  ) {}

  run(batch: Batch): Promise<void> {
    return this.process(batch, { retries: 0, invokeCount: 0, lastRequestId: undefined, lastThrew: false });
  }

  /**
   * Stopping: a retry backoff ends at once and a batch goes no further than the invocation under way (what it did
   * not commit is redelivered after the next start).
   */
  halt(): void {
    this.stopping = true;
    for (const wake of this.sleepers) wake();
  }

  resume(): void {
    this.stopping = false;
  }

  private async process(batch: Batch, state: AttemptState): Promise<void> {
    if (batch.oversized) {
      await this.discard(batch, 'MaximumPayloadSizeExceeded', state);
      return;
    }
    const { maxAgeMs, bisect, maxRetries, backoffMs, backoffMaxMs } = this.settings;
    let current: Batch = batch;
    for (;;) {
      if (this.stopping) return;
      if (maxAgeMs >= 0) {
        const { expired, fresh } = splitExpired(current, Date.now() - maxAgeMs);
        if (expired !== undefined && !(await this.discard(expired, 'RecordAgeExceeded', state))) return;
        if (fresh === undefined) return;
        current = fresh;
      }
      const outcome = await this.invoker.invoke(current, state);
      if (outcome.kind === 'success') {
        if (this.settings.loseCommit?.()) continue;
        for (const slice of current.slices) this.commits.finish(slice.part, lastOffset(slice) + 1);
        return;
      }
      if (outcome.kind === 'partial') {
        current = this.applyPartial(current, outcome.failures);
      } else if (bisect && recordCount(current) > 1) {
        // Splitting is not a retry: each half starts with the parent's retry count ([I] as for stream ESMs).
        this.counters.bisections++;
        const [first, second] = splitBatch(current);
        await this.process(first, { ...state });
        // Stopped during the first half: process() returns at once and the rest is redelivered after restart.
        await this.process(second, { ...state });
        return;
      }
      state.retries++;
      if (maxRetries >= 0 && state.retries > maxRetries) {
        await this.discard(current, 'RetryAttemptsExhausted', state);
        return;
      }
      this.counters.retries++;
      await this.sleep(Math.min(backoffMaxMs, backoffMs * 2 ** (state.retries - 1)));
    }
  }

  /** Commits what succeeded and returns what must be redelivered: each listed partition from its failed offset on. */
  private applyPartial(batch: Batch, failures: Map<Slice, number>): Batch {
    const remainder: Slice[] = [];
    for (const slice of batch.slices) {
      const index = failures.get(slice);
      if (index === undefined) {
        this.commits.finish(slice.part, lastOffset(slice) + 1);
      } else {
        this.commits.commit(slice.part, slice.records[index]!.offset);
        remainder.push({ part: slice.part, records: slice.records.slice(index) });
      }
    }
    return { slices: remainder };
  }

  /**
   * Gives up on a batch: hands the S3-style record to `onFailure` (retrying the destination itself until it accepts,
   * so nothing is lost silently) and commits past the records, as Lambda does. False when stopped before delivery.
   */
  private async discard(batch: Batch, condition: FailureCondition, state: AttemptState): Promise<boolean> {
    const { onFailure, onError, backoffMs, backoffMaxMs } = this.settings;
    const count = recordCount(batch);
    if (onFailure !== undefined) {
      const record = this.failureRecord(batch, condition, state);
      for (let attempt = 1; ; attempt++) {
        try {
          await onFailure(record);
          break;
        } catch (error) {
          onError?.(error, { requestId: record.requestContext.requestId, stage: 'destination' });
          if (this.stopping) return false;
          await this.sleep(Math.min(backoffMaxMs, backoffMs * 2 ** (attempt - 1)));
          if (this.stopping) return false;
        }
      }
      this.counters.destinationRecords++;
    }
    this.counters.recordsSentToDestination += count;
    for (const slice of batch.slices) this.commits.finish(slice.part, lastOffset(slice) + 1);
    return true;
  }

  private failureRecord(batch: Batch, condition: FailureCondition, state: AttemptState): OnFailureRecord {
    const { functionArn, eventSourceArn, bootstrapServers } = this.format.settings;
    const payload = JSON.stringify(this.format.event(batch.slices));
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
        functionArn,
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
        eventSourceArn,
        bootstrapServers,
        payloadSize: Buffer.byteLength(payload),
        recordsInfo,
      },
      payload,
    };
  }

  /** A timer that halt() cuts short, so stopping never waits out a retry backoff. */
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
}

/** The records older than `cutoff` (a prefix per partition) and the rest. */
function splitExpired(batch: Batch, cutoff: number): { expired: Batch | undefined; fresh: Batch | undefined } {
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
