import { PartitionDedupe, type PartitionState, RedriveDedupe } from './dedupe';
import type { Enricher } from './enrich';
import { CdcError, DeadLetterError, DedupeError, describeError, SinkError } from './errors';
import { parseKafkaEvent } from './msk';
import type {
  ChangeEvent,
  Checkpoint,
  CheckpointCommit,
  ColumnTypes,
  DeadLetter,
  DeadLetterQueue,
  DecodeOutcome,
  Decoder,
  DedupeStore,
  KafkaRecord,
  Lane,
  PartitionBatch,
  Sink,
  SinkPartitionResult,
  SkipReason,
} from './types';

/** What the pipeline needs; the handler builds it once per cold start, tests pass fakes. */
export interface PipelineDeps {
  lane: Lane;
  decoder: Decoder;
  enricher: Enricher;
  dedupe: DedupeStore;
  sink: Sink;
  deadLetters: DeadLetterQueue;
  /** When true, failures are reported per partition (`batchItemFailures`); otherwise the batch throws. */
  reportBatchItemFailures: boolean;
  /** `redrive`: the records come back from a dead-letter queue (see RedriveDedupe). Default `stream`. */
  mode?: 'stream' | 'redrive';
  clock?: () => number;
}

/** Counters per Kafka topic (one topic per table), for metrics. */
export interface TopicCounters {
  processed: number;
  skipped: number;
  duplicates: number;
  deadLettered: number;
  /** Source commit → sink write, per processed event that carries a commit time. */
  latenciesMs: number[];
}

export interface BatchItemFailure {
  itemIdentifier: { partition: string; offset: number };
}

/** Every record ends in exactly one of: processed, skipped, duplicates, deadLettered, or retried (a failure). */
export interface BatchResult {
  lane: Lane;
  records: number;
  processed: number;
  skipped: number;
  skippedByReason: Partial<Record<SkipReason, number>>;
  duplicates: number;
  deadLettered: number;
  /** Records left for the event source mapping to redeliver. */
  retried: number;
  /** Lowest not-committed offset per failed partition (the Kafka partial batch response). */
  batchItemFailures: BatchItemFailure[];
  /** The first retryable error, when any partition failed. */
  error?: CdcError;
  /** A failure no partial batch response can express (dead letters of malformed records not stored): throw. */
  fatal?: CdcError;
  topics: Map<string, TopicCounters>;
  sinkWriteMs: number;
  /** The Kafka coordinates of what the batch held, per partition: for logs correlated by coordinates. */
  partitions: Array<{ partition: string; from: number; to: number }>;
  /** Where each dead-lettered record came from and why. */
  deadLetters: Array<{ partition: string; offset: number; code: string }>;
}

function counters(result: BatchResult, topic: string): TopicCounters {
  let c = result.topics.get(topic);
  if (!c) {
    c = { processed: 0, skipped: 0, duplicates: 0, deadLettered: 0, latenciesMs: [] };
    result.topics.set(topic, c);
  }
  return c;
}

function skip(result: BatchResult, topic: string, reason: SkipReason): void {
  result.skipped++;
  result.skippedByReason[reason] = (result.skippedByReason[reason] ?? 0) + 1;
  counters(result, topic).skipped++;
}

function deadLetter(lane: Lane, record: KafkaRecord, error: unknown, at: number): DeadLetter {
  const { code, message } = describeError(error);
  return { lane, error: { code, message }, record, failedAt: new Date(at).toISOString() };
}

function asRetryable(error: unknown, make: (message: string) => CdcError): CdcError {
  return error instanceof CdcError && error.retryable ? error : make(describeError(error).message);
}

/** How many records of a batch ended in each outcome. */
export type RecordCounts = Pick<
  BatchResult,
  'records' | 'processed' | 'skipped' | 'skippedByReason' | 'duplicates' | 'deadLettered' | 'retried'
>;

/** The outcome counts of a batch (for logs and reports). */
export function countsOf(result: BatchResult): RecordCounts {
  const { records, processed, skipped, skippedByReason, duplicates, deadLettered, retried } = result;
  return { records, processed, skipped, skippedByReason, duplicates, deadLettered, retried };
}

/** All counts zero: the start of a batch's (or a run's) tally. */
export function emptyCounts(): RecordCounts {
  return { records: 0, processed: 0, skipped: 0, skippedByReason: {}, duplicates: 0, deadLettered: 0, retried: 0 };
}

/** Lets other work (the previous partition's writes, I/O callbacks) run between partitions. */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The pipeline core: decode → validate → enrich → dedupe → write sink → dead-letter → mark done, for one batch of
 * one lane. Pure orchestration over ports: no AWS SDK, no environment.
 *
 * Each topic-partition is an independent unit (its own checkpoint, its own order), so partitions flow through as a
 * pipeline: while one partition's sink write is in flight, the next one is decoded — lower latency, and less memory
 * held than decoding the whole batch first. Once every partition's sink write is done, their checkpoints are
 * committed together: one DynamoDB request per batch instead of one per partition (a transaction; see
 * DynamoDedupeStore), where a partition whose checkpoint cannot move fails alone.
 */
export async function processBatch(input: unknown, deps: PipelineDeps): Promise<BatchResult> {
  const clock = deps.clock ?? Date.now;
  const startedAt = clock();
  const { partitions, malformed } = parseKafkaEvent(input);
  const result: BatchResult = {
    lane: deps.lane,
    ...emptyCounts(),
    records: malformed.length,
    batchItemFailures: [],
    topics: new Map(),
    sinkWriteMs: 0,
    partitions: [],
    deadLetters: [],
  };
  for (const batch of partitions) {
    result.records += batch.records.length;
    const first = batch.records[0];
    const last = batch.records.at(-1);
    if (first && last) result.partitions.push({ partition: batch.id, from: first.offset, to: last.offset });
  }

  // One strongly consistent read of every partition's checkpoint, overlapping with decoding the first partition.
  const checkpointsRead = deps.dedupe.load(deps.lane, partitions).then(
    (found) => ({ found, error: undefined }),
    (error: unknown) => ({
      found: new Map<string, Checkpoint>(),
      error: asRetryable(error, (m) => new DedupeError('DEDUPE_UNAVAILABLE', m, { cause: error })),
    }),
  );

  const units: Array<Promise<ReadyPartition | undefined>> = [];
  for (let p = 0; p < partitions.length; p++) {
    if (p > 0) await yieldToEventLoop();
    const batch = partitions[p] as PartitionBatch;
    const outcomes = batch.records.map((record) => deps.decoder.decode(record, startedAt));
    const checkpoints = await checkpointsRead;
    units.push(
      finishPartition(
        batch,
        outcomes,
        checkpoints.found.get(batch.id),
        checkpoints.error,
        deps,
        result,
        startedAt,
        clock,
      ),
    );
  }
  const ready = (await Promise.all(units)).filter((r) => r !== undefined);
  await commitCheckpoints(deps, ready);
  // Partitions finish in any order; report failures in the event's order.
  const position = new Map(partitions.map((b, i) => [b.id, i] as const));
  result.batchItemFailures.sort(
    (a, b) => (position.get(a.itemIdentifier.partition) ?? 0) - (position.get(b.itemIdentifier.partition) ?? 0),
  );

  if (malformed.length > 0) {
    const letters = malformed.map((m) => ({
      lane: deps.lane,
      error: { code: 'INVALID_RECORD', message: `not a Kafka record: ${m.message}` },
      record: m.raw as KafkaRecord,
      failedAt: new Date(startedAt).toISOString(),
    }));
    try {
      await deps.deadLetters.send(letters);
      result.deadLettered += malformed.length;
      for (const m of malformed)
        result.deadLetters.push({ partition: m.partitionId, offset: -1, code: 'INVALID_RECORD' });
    } catch (error) {
      // No offset to report for a record that is not a record: the whole batch must be retried.
      result.fatal = asRetryable(error, (m) => new DeadLetterError(m, { cause: error }));
    }
  }
  return result;
}

/**
 * A partition whose sink write and dead letters are done: its checkpoint to commit, and what to count once the commit
 * succeeded or failed.
 */
interface ReadyPartition {
  commit: CheckpointCommit;
  committed(): void;
  failed(error: CdcError): void;
}

/** Commits the checkpoints of the partitions ready in one call to the store, then settles each partition. */
async function commitCheckpoints(deps: PipelineDeps, ready: readonly ReadyPartition[]): Promise<void> {
  if (ready.length === 0) return;
  let outcomes: Array<CdcError | undefined>;
  try {
    outcomes = await deps.dedupe.commit(
      deps.lane,
      ready.map((r) => r.commit),
    );
    if (outcomes.length !== ready.length) {
      const answered = outcomes.length;
      outcomes = ready.map(
        () =>
          new DedupeError(
            'DEDUPE_UNAVAILABLE',
            `the dedupe store answered ${answered} of ${ready.length} checkpoint commits`,
          ),
      );
    }
  } catch (error) {
    const failure = asRetryable(error, (m) => new DedupeError('DEDUPE_UNAVAILABLE', m, { cause: error }));
    outcomes = ready.map(() => failure);
  }
  ready.forEach((r, i) => {
    const error = outcomes[i];
    if (error) r.failed(error);
    else r.committed();
  });
}

/**
 * Classifies, writes and dead-letters one topic-partition; accounts for every one of its records, the processed ones
 * once its checkpoint is committed (returns what to commit, or nothing when nothing moved or the partition failed).
 */
async function finishPartition(
  batch: PartitionBatch,
  outcomes: DecodeOutcome[],
  previous: Checkpoint | undefined,
  loadError: CdcError | undefined,
  deps: PipelineDeps,
  result: BatchResult,
  startedAt: number,
  clock: () => number,
): Promise<ReadyPartition | undefined> {
  const topic = counters(result, batch.topic);
  const fail = (error: CdcError, pending: number, firstPending: number | undefined) => {
    result.retried += pending;
    result.error ??= error;
    if (firstPending !== undefined)
      result.batchItemFailures.push({ itemIdentifier: { partition: batch.id, offset: firstPending } });
  };
  if (loadError) {
    fail(loadError, batch.records.length, batch.records[0]?.offset);
    return;
  }

  const redrive = deps.mode === 'redrive';
  const dedupe: PartitionState = redrive ? new RedriveDedupe(previous) : new PartitionDedupe(previous);
  let fresh: ChangeEvent[] = [];
  let columns: Array<ColumnTypes | undefined> = [];
  const letters: DeadLetter[] = [];
  const skipped: SkipReason[] = [];
  let firstPending: number | undefined;
  let pending = 0;
  let duplicates = 0;
  batch.records.forEach((record, i) => {
    if (dedupe.isRedelivered(record.offset)) {
      duplicates++;
      return;
    }
    firstPending ??= record.offset;
    pending++;
    const outcome = outcomes[i] as DecodeOutcome;
    if (outcome.kind === 'skip') {
      dedupe.pass(record.offset);
      skipped.push(outcome.reason);
    } else if (outcome.kind === 'error') {
      dedupe.pass(record.offset);
      letters.push(deadLetter(deps.lane, record, outcome.error, startedAt));
    } else if (!deps.enricher.apply(outcome.event)) {
      dedupe.pass(record.offset);
      skipped.push('table-excluded');
    } else if (dedupe.judge(outcome.event) === 'duplicate') {
      duplicates++;
    } else {
      fresh.push(outcome.event);
      columns.push(outcome.columns);
    }
  });
  // Redelivered records and re-emitted changes are duplicates whatever happens next.
  result.duplicates += duplicates;
  topic.duplicates += duplicates;
  if (!dedupe.changed) return;

  // Sink write.
  let written: Extract<SinkPartitionResult, { ok: true }> = { ok: true, writtenAt: clock() };
  if (fresh.length > 0) {
    const sinkStarted = clock();
    let r: SinkPartitionResult | undefined;
    try {
      [r] = await deps.sink.write([{ partition: batch, events: fresh, columns, state: previous?.sinkState, redrive }]);
    } catch (error) {
      r = { ok: false, error: asRetryable(error, (m) => new SinkError('SINK_UNAVAILABLE', m, true, { cause: error })) };
    }
    result.sinkWriteMs = Math.max(result.sinkWriteMs, clock() - sinkStarted);
    if (!r) r = { ok: false, error: new SinkError('SINK_UNAVAILABLE', 'the sink returned no result', true) };
    if (!r.ok && r.error.retryable) {
      fail(r.error, pending - duplicates, firstPending);
      return;
    }
    if (!r.ok) {
      // The sink refuses the whole partition for good: dead-letter its events rather than retry forever.
      for (const event of fresh) letters.push(deadLetter(deps.lane, recordOf(batch, event), r.error, startedAt));
      fresh = [];
      columns = [];
    } else {
      written = r;
      // A sink refusing single events for good (not an outage) dead-letters those; the partition goes on.
      for (const { index, error } of r.rejected ?? []) {
        const event = fresh[index];
        if (event) letters.push(deadLetter(deps.lane, recordOf(batch, event), error, startedAt));
      }
    }
  }

  // Dead letters are stored before the checkpoint moves past them: a bad record is never acknowledged unkept.
  if (letters.length > 0) {
    try {
      await deps.deadLetters.send(letters);
    } catch (error) {
      fail(
        asRetryable(error, (m) => new DeadLetterError(m, { cause: error })),
        pending - duplicates,
        firstPending,
      );
      return;
    }
  }

  // Mark done: committed with the batch's other partitions (commitCheckpoints), then counted.
  const commit = { partition: batch, previous, next: dedupe.next(written.state ?? previous?.sinkState) };
  const failed = (error: CdcError) =>
    fail(
      asRetryable(error, (m) => new DedupeError('DEDUPE_UNAVAILABLE', m, { cause: error })),
      pending - duplicates,
      firstPending,
    );
  return { commit, failed, committed: () => countCommitted(result, topic, batch, skipped, written, fresh, letters) };
}

/** Counts a committed partition's records: skipped, processed (with their latency), dead-lettered. */
function countCommitted(
  result: BatchResult,
  topic: TopicCounters,
  batch: PartitionBatch,
  skipped: readonly SkipReason[],
  written: Extract<SinkPartitionResult, { ok: true }>,
  fresh: readonly ChangeEvent[],
  letters: readonly DeadLetter[],
): void {
  for (const reason of skipped) skip(result, batch.topic, reason);
  const notApplied = new Set<number>();
  for (const s of written.skipped ?? []) {
    notApplied.add(s.index);
    skip(result, batch.topic, s.reason);
  }
  for (const r of written.rejected ?? []) notApplied.add(r.index);
  fresh.forEach((event, i) => {
    if (notApplied.has(i)) return;
    result.processed++;
    topic.processed++;
    if (event.source.commitTs !== null) topic.latenciesMs.push(written.writtenAt - event.source.commitTs);
  });
  result.deadLettered += letters.length;
  topic.deadLettered += letters.length;
  for (const letter of letters) {
    result.deadLetters.push({ partition: batch.id, offset: letter.record.offset, code: letter.error.code });
  }
}

function recordOf(batch: PartitionBatch, event: ChangeEvent): KafkaRecord {
  return batch.records.find((r) => r.offset === event.kafka.offset) ?? { ...event.kafka, value: null };
}
