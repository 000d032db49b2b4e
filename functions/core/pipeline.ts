import { PartitionDedupe } from './dedupe';
import type { Enricher } from './enrich';
import { type CdcError, DedupeError, describeError, SinkError } from './errors';
import { parseKafkaEvent } from './msk';
import type {
  ChangeEvent,
  ColumnTypes,
  DeadLetter,
  DeadLetterQueue,
  Decoder,
  DedupeStore,
  KafkaRecord,
  Lane,
  PartitionBatch,
  Sink,
  SinkPartition,
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
}

interface PartitionWork {
  batch: PartitionBatch;
  dedupe: PartitionDedupe;
  fresh: ChangeEvent[];
  columns: Array<ColumnTypes | undefined>;
  letters: DeadLetter[];
  /** Offset of the first record past the checkpoint: where a retry must resume. */
  firstPending: number | undefined;
  pendingCount: number;
  failure?: CdcError;
  result?: Extract<SinkPartitionResult, { ok: true }>;
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

/**
 * The pipeline core: decode → validate → enrich → dedupe → write sink → dead-letter → mark done, for one batch of
 * one lane. Pure orchestration over ports: no AWS SDK, no environment.
 */
export async function processBatch(input: unknown, deps: PipelineDeps): Promise<BatchResult> {
  const clock = deps.clock ?? Date.now;
  const startedAt = clock();
  const { partitions, malformed } = parseKafkaEvent(input);
  const result: BatchResult = {
    lane: deps.lane,
    records: malformed.length,
    processed: 0,
    skipped: 0,
    skippedByReason: {},
    duplicates: 0,
    deadLettered: 0,
    retried: 0,
    batchItemFailures: [],
    topics: new Map(),
    sinkWriteMs: 0,
  };

  // The checkpoint read overlaps with decoding, which is CPU only.
  const checkpointsRead = deps.dedupe.load(deps.lane, partitions);
  checkpointsRead.catch(() => undefined); // handled below; avoid an unhandled rejection while decoding
  const decoded = partitions.map((batch) => batch.records.map((record) => deps.decoder.decode(record, startedAt)));

  let checkpoints: Awaited<typeof checkpointsRead> | undefined;
  let loadError: CdcError | undefined;
  try {
    checkpoints = await checkpointsRead;
  } catch (error) {
    loadError =
      error instanceof DedupeError
        ? error
        : new DedupeError('DEDUPE_UNAVAILABLE', describeError(error).message, { cause: error });
  }

  const work: PartitionWork[] = partitions.map((batch, p) => {
    const outcomes = decoded[p] ?? [];
    const dedupe = new PartitionDedupe(checkpoints?.get(batch.id));
    const item: PartitionWork = {
      batch,
      dedupe,
      fresh: [],
      columns: [],
      letters: [],
      firstPending: undefined,
      pendingCount: 0,
    };
    result.records += batch.records.length;
    if (loadError) {
      item.failure = loadError;
      item.firstPending = batch.records[0]?.offset;
      item.pendingCount = batch.records.length;
      return item;
    }
    batch.records.forEach((record, i) => {
      if (dedupe.isRedelivered(record.offset)) {
        result.duplicates++;
        counters(result, batch.topic).duplicates++;
        return;
      }
      item.firstPending ??= record.offset;
      item.pendingCount++;
      const outcome = outcomes[i];
      if (!outcome) return;
      if (outcome.kind === 'skip') {
        dedupe.pass(record.offset);
        skip(result, batch.topic, outcome.reason);
      } else if (outcome.kind === 'error') {
        dedupe.pass(record.offset);
        item.letters.push(deadLetter(deps.lane, record, outcome.error, startedAt));
      } else if (!deps.enricher.apply(outcome.event)) {
        dedupe.pass(record.offset);
        skip(result, batch.topic, 'table-excluded');
      } else if (dedupe.judge(outcome.event) === 'duplicate') {
        result.duplicates++;
        counters(result, batch.topic).duplicates++;
      } else {
        item.fresh.push(outcome.event);
        item.columns.push(outcome.columns);
      }
    });
    return item;
  });

  // Sink write: every partition with new events, in one call so the sink can parallelise across partitions.
  const toWrite = work.filter((w) => !w.failure && w.fresh.length > 0);
  if (toWrite.length > 0) {
    const sinkStarted = clock();
    const input: SinkPartition[] = toWrite.map((w) => ({
      partition: w.batch,
      events: w.fresh,
      columns: w.columns,
      state: checkpoints?.get(w.batch.id)?.sinkState,
    }));
    let results: SinkPartitionResult[];
    try {
      results = await deps.sink.write(input);
    } catch (error) {
      const failure =
        error instanceof SinkError
          ? error
          : new SinkError('SINK_UNAVAILABLE', describeError(error).message, true, { cause: error });
      results = toWrite.map(() => ({ ok: false, error: failure }));
    }
    result.sinkWriteMs = clock() - sinkStarted;
    toWrite.forEach((w, i) => {
      const r = results[i];
      if (!r) w.failure = new SinkError('SINK_UNAVAILABLE', 'sink returned no result for the partition', true);
      else if (!r.ok) w.failure = r.error;
      else w.result = r;
    });
  }

  // A sink refusing one event for good (not an outage) dead-letters that event; the partition goes on.
  for (const w of toWrite) {
    if (w.failure && !w.failure.retryable) {
      // The whole partition was refused: dead-letter each of its events rather than retry forever.
      for (const event of w.fresh)
        w.letters.push(deadLetter(deps.lane, recordOf(w.batch, event), w.failure, startedAt));
      w.fresh = [];
      w.failure = undefined;
      w.result = { ok: true, writtenAt: clock() };
    }
    for (const rejected of w.result?.rejected ?? []) {
      const event = w.fresh[rejected.index];
      if (event) w.letters.push(deadLetter(deps.lane, recordOf(w.batch, event), rejected.error, startedAt));
    }
  }

  const letters = work.filter((w) => !w.failure).flatMap((w) => w.letters);
  if (malformed.length > 0 || letters.length > 0) {
    const all = [
      ...letters,
      ...malformed.map((m) => ({
        lane: deps.lane,
        error: { code: 'INVALID_RECORD', message: `not a Kafka record: ${m.message}` },
        record: m.raw as KafkaRecord,
        failedAt: new Date(startedAt).toISOString(),
      })),
    ];
    try {
      await deps.deadLetters.send(all);
    } catch (error) {
      const failure = error as CdcError;
      for (const w of work) if (!w.failure && w.letters.length > 0) w.failure = failure;
      if (malformed.length > 0) result.fatal = failure;
    }
  }

  // Mark done: commit each partition's checkpoint after its sink write (and its dead letters) succeeded.
  await Promise.all(
    work.map(async (w) => {
      if (w.failure || !w.dedupe.changed) return;
      const previous = checkpoints?.get(w.batch.id);
      try {
        await deps.dedupe.commit(deps.lane, w.batch, previous, w.dedupe.next(w.result?.state ?? previous?.sinkState));
      } catch (error) {
        w.failure =
          error instanceof DedupeError
            ? error
            : new DedupeError('DEDUPE_UNAVAILABLE', describeError(error).message, { cause: error });
      }
    }),
  );

  for (const w of work) {
    if (w.failure) {
      result.retried += w.pendingCount;
      result.error ??= w.failure;
      if (w.firstPending !== undefined) {
        result.batchItemFailures.push({ itemIdentifier: { partition: w.batch.id, offset: w.firstPending } });
      }
      continue;
    }
    const topic = counters(result, w.batch.topic);
    const skippedByIndex = new Set<number>();
    for (const s of w.result?.skipped ?? []) {
      skippedByIndex.add(s.index);
      skip(result, w.batch.topic, s.reason);
    }
    const rejected = new Set((w.result?.rejected ?? []).map((r) => r.index));
    const writtenAt = w.result?.writtenAt ?? clock();
    w.fresh.forEach((event, i) => {
      if (skippedByIndex.has(i) || rejected.has(i)) return;
      result.processed++;
      topic.processed++;
      if (event.source.commitTs !== null) topic.latenciesMs.push(writtenAt - event.source.commitTs);
    });
    result.deadLettered += w.letters.length;
    topic.deadLettered += w.letters.length;
  }
  result.deadLettered += malformed.length;
  return result;
}

function recordOf(batch: PartitionBatch, event: ChangeEvent): KafkaRecord {
  return batch.records.find((r) => r.offset === event.kafka.offset) ?? { ...event.kafka, value: null };
}
