import { tableIdOf } from './change';
import { AppliedSchemas, PartitionDedupe, type PartitionState, RedriveDedupe } from './dedupe';
import type { Enricher } from './enrich';
import { CdcError, DeadLetterError, DedupeError, describeError, SchemaHistoryError, SinkError } from './errors';
import { parseKafkaEvent } from './msk';
import {
  DEFAULT_PARK_AFTER_ATTEMPTS,
  type ParkingRefusal,
  PartitionParking,
  parkedLetter,
  parkingKeyOf,
  type RejectedChange,
} from './parking';
import type { SchemaChangeReport, SchemaHistory } from './schema-history';
import type {
  ChangeEvent,
  ChangeSource,
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
  SchemaChangeRecord,
  Sink,
  SinkPartition,
  SinkPartitionResult,
  SinkSchemaChange,
  SkipReason,
  TableSchemaVersion,
} from './types';

/** What the pipeline needs; the handler builds it once per cold start, tests pass fakes. */
export interface PipelineDeps {
  lane: Lane;
  decoder: Decoder;
  enricher: Enricher;
  dedupe: DedupeStore;
  sink: Sink;
  deadLetters: DeadLetterQueue;
  /**
   * Registers the table schema versions the partitions meet and reconciles the sinks after a change (see
   * schema-history.ts). Absent: versions still reach the sink and the checkpoint, nothing is registered.
   */
  schemaHistory?: SchemaHistory;
  /** Tables a checkpoint remembers a schema fingerprint for (see AppliedSchemas). @default SCHEMAS_LIMIT */
  schemasLimit?: number;
  /** `redrive`: the records come back from a dead-letter queue (see RedriveDedupe). Default `stream`. */
  mode?: 'stream' | 'redrive';
  /**
   * Deliveries a change the sink rejects retryably may fail in before its key is parked (parking.ts); 0 never parks.
   * @default DEFAULT_PARK_AFTER_ATTEMPTS
   */
  parkAfterAttempts?: number;
  clock?: () => number;
}

/** Counters per Kafka topic (one topic per table), for metrics. */
export interface TopicCounters {
  processed: number;
  skipped: number;
  duplicates: number;
  deadLettered: number;
  /** Keys parked in this batch (KeysParked). */
  keysParked: number;
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
  /** Schema changes this lane registered first (the handler logs them and publishes `SchemaChanged`). */
  schemaChanges: SchemaChangeReport[];
  /**
   * Per source (`source.name`, the connector's topic prefix): the commit time of the newest streamed change this batch
   * applied, and when it was written. The handler publishes `SourceFreshness` = written − commit: with the heartbeat
   * table the connector upserts every few seconds, a source that stops (connector, slot or lane) shows as stale even
   * when nobody writes.
   */
  freshness: Map<string, { commitTs: number; writtenAt: number }>;
  /** Keys this batch parked (committed): the handler logs them and publishes `KeysParked`. */
  parked: Array<{ partition: string; key: string; offset: number; attempts: number }>;
  /** Keys that reached the attempts but could not be parked (the partition was retried as before): logged. */
  notParked: Array<{ partition: string } & ParkingRefusal>;
}

function counters(result: BatchResult, topic: string): TopicCounters {
  let c = result.topics.get(topic);
  if (!c) {
    c = { processed: 0, skipped: 0, duplicates: 0, deadLettered: 0, keysParked: 0, latenciesMs: [] };
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
    schemaChanges: [],
    freshness: new Map(),
    parked: [],
    notParked: [],
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

  await prepareDecoder(deps.decoder, partitions);

  const units: Array<Promise<PartitionRun | undefined>> = [];
  for (let p = 0; p < partitions.length; p++) {
    if (p > 0) await yieldToEventLoop();
    const batch = partitions[p] as PartitionBatch;
    const outcomes = batch.records.map((record) => deps.decoder.decode(record, startedAt));
    const checkpoints = await checkpointsRead;
    const run = new PartitionRun(batch, deps, result, startedAt, clock);
    units.push(run.run(outcomes, checkpoints.found.get(batch.id), checkpoints.error));
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
      result.retried += malformed.length;
    }
  }
  return result;
}

/**
 * Lets the decoder load what the batch needs (an Avro decoder's writer schemas) before the synchronous decoding.
 * The contract is that `prepare` never rejects; should one still throw, decoding goes ahead and the decoder reports
 * what it could not load per record (a retryable error), so a bug there cannot fail records that need nothing.
 */
async function prepareDecoder(decoder: Decoder, partitions: readonly PartitionBatch[]): Promise<void> {
  if (!decoder.prepare) return;
  const records =
    partitions.length === 1 ? (partitions[0] as PartitionBatch).records : partitions.flatMap((b) => b.records);
  try {
    await decoder.prepare(records);
  } catch {
    // See above: decode() speaks for the records concerned.
  }
}

/** Commits the checkpoints of the partitions ready in one call to the store, then settles each partition. */
async function commitCheckpoints(deps: PipelineDeps, ready: readonly PartitionRun[]): Promise<void> {
  if (ready.length === 0) return;
  let outcomes: Array<CdcError | undefined>;
  try {
    outcomes = await deps.dedupe.commit(
      deps.lane,
      ready.map((r) => r.commit as CheckpointCommit),
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

/** A record of the connector's schema-change topic, and where it falls among the partition's fresh events. */
interface DdlRecord {
  record: KafkaRecord;
  /** Number of fresh events before it. */
  index: number;
  changes: SchemaChangeRecord[];
}

/**
 * One topic-partition's run through a batch: classifies its records, meets the schema versions they carry, writes the
 * sink, stores dead letters, and, once the batch's checkpoints are committed together (commitCheckpoints), counts
 * every record in exactly one outcome.
 */
class PartitionRun {
  /** The checkpoint to commit; set when the partition is ready to commit. */
  commit?: CheckpointCommit;

  private readonly topic: TopicCounters;
  private readonly redrive: boolean;
  private fresh: ChangeEvent[] = [];
  private columns: Array<ColumnTypes | undefined> = [];
  private readonly schemas: Array<TableSchemaVersion | undefined> = [];
  private readonly ddl: DdlRecord[] = [];
  private readonly letters: DeadLetter[] = [];
  private readonly skipped: SkipReason[] = [];
  /** Lowest offset past the checkpoint, and how many records past it are still to account for. */
  private firstPending: number | undefined;
  private pending = 0;
  /** Records past the checkpoint that were re-emitted changes (counted as duplicates at once). */
  private judgedDuplicates = 0;
  private written: Extract<SinkPartitionResult, { ok: true }>;
  /** The sink refused the partition for good: its events were dead-lettered, not applied. */
  private refused = false;
  /** The first retryable decode error (e.g. SCHEMA_REGISTRY_UNAVAILABLE): the partition is retried, not written. */
  private decodeUnavailable: CdcError | undefined;
  /** Parked keys and attempt counts, from the checkpoint (set by `run`). */
  private parking: PartitionParking | undefined;
  /** Indexes into `fresh` of the changes this delivery parked: dead-lettered, not applied. */
  private readonly parkedIndexes = new Set<number>();
  /** Keys this delivery parked, reported once committed. */
  private readonly newlyParked: Array<{ key: string; offset: number; attempts: number }> = [];
  /**
   * The sink rejected changes of keys that are not parked (yet): the commit moves only their attempt counts, and then
   * the partition is retried with this error.
   */
  private retryAfterCommit: CdcError | undefined;

  constructor(
    private readonly batch: PartitionBatch,
    private readonly deps: PipelineDeps,
    private readonly result: BatchResult,
    private readonly startedAt: number,
    private readonly clock: () => number,
  ) {
    this.topic = counters(result, batch.topic);
    this.redrive = deps.mode === 'redrive';
    this.written = { ok: true, writtenAt: clock() };
  }

  /** Runs the partition up to its commit: itself when ready to commit, nothing when nothing moved or it failed. */
  async run(
    outcomes: DecodeOutcome[],
    previous: Checkpoint | undefined,
    loadError: CdcError | undefined,
  ): Promise<PartitionRun | undefined> {
    if (loadError) {
      this.pending = this.batch.records.length;
      this.firstPending = this.batch.records[0]?.offset;
      this.fail(loadError);
      return;
    }
    const dedupe: PartitionState = this.redrive ? new RedriveDedupe(previous) : new PartitionDedupe(previous);
    // A redrive counts no attempts (a change failing again keeps its letter) and holds no key: it is what replays them.
    const parkAfter = this.redrive ? 0 : (this.deps.parkAfterAttempts ?? DEFAULT_PARK_AFTER_ATTEMPTS);
    this.parking = new PartitionParking(previous, parkAfter, this.clock);
    const redelivered = this.classify(outcomes, dedupe);
    // Redelivered records and re-emitted changes are duplicates whatever happens next.
    const duplicates = redelivered + this.judgedDuplicates;
    this.result.duplicates += duplicates;
    this.topic.duplicates += duplicates;
    if (this.decodeUnavailable) {
      // Writing the events before the record would be correct too; a registry outage fails them all alike anyway.
      this.fail(this.decodeUnavailable);
      return;
    }
    if (!dedupe.changed) return;

    const applied = new AppliedSchemas(previous, this.batch.topic, this.deps.schemasLimit);
    let changes: SinkSchemaChange[];
    try {
      changes = await this.meetSchemas(applied);
    } catch (error) {
      this.fail(asRetryable(error, (m) => new SchemaHistoryError('SCHEMA_REGISTRY_UNAVAILABLE', m, { cause: error })));
      return;
    }
    if (!(await this.write(previous, changes))) return;
    if (this.retryAfterCommit) {
      this.commit = { partition: this.batch, previous, next: this.countingAttempts(previous) };
      return this;
    }
    if (!(await this.storeLetters())) return;

    const next = dedupe.next(this.written.state ?? previous?.sinkState);
    // Events the sink refused went to the dead-letter queue: their versions were not applied in this partition.
    const schemas = (
      this.refused ? new AppliedSchemas(previous, this.batch.topic, this.deps.schemasLimit) : applied
    ).toCheckpoint();
    if (schemas !== undefined) next.schemas = schemas;
    Object.assign(next, this.parking.toCheckpoint(next.offset));
    this.commit = { partition: this.batch, previous, next };
    return this;
  }

  /**
   * The previous checkpoint with only the attempt counts moved: the event source mapping redelivers the same records
   * onto the same state (offset, position, sink state, schemas, parked keys), and this delivery counts as an attempt.
   */
  private countingAttempts(previous: Checkpoint | undefined): Checkpoint {
    const next: Checkpoint = {
      offset: previous?.offset ?? -1,
      hw: previous?.hw ?? '',
      hwIds: previous?.hwIds ?? [],
      version: (previous?.version ?? 0) + 1,
    };
    if (previous?.sinkState !== undefined) next.sinkState = previous.sinkState;
    const schemas = new AppliedSchemas(previous, this.batch.topic, this.deps.schemasLimit).toCheckpoint();
    if (schemas !== undefined) next.schemas = schemas;
    // The parked keys as they were read: changes held behind them in this delivery are held again when it comes back.
    if (previous?.parked !== undefined) next.parked = previous.parked;
    const { attempts } = (this.parking as PartitionParking).toCheckpoint(next.offset);
    if (attempts !== undefined) next.attempts = attempts;
    return next;
  }

  /** The checkpoint could not move: every record past it is retried. */
  failed(error: CdcError): void {
    this.fail(asRetryable(error, (m) => new DedupeError('DEDUPE_UNAVAILABLE', m, { cause: error })));
  }

  /** Counts a committed partition's records: skipped, processed (with their latency), dead-lettered. */
  committed(): void {
    if (this.retryAfterCommit) {
      this.fail(this.retryAfterCommit);
      return;
    }
    const { result, batch, topic, written } = this;
    for (const reason of this.skipped) skip(result, batch.topic, reason);
    const notApplied = new Set(this.parkedIndexes);
    for (const s of written.skipped ?? []) {
      notApplied.add(s.index);
      skip(result, batch.topic, s.reason);
    }
    for (const r of written.rejected ?? []) notApplied.add(r.index);
    this.fresh.forEach((event, i) => {
      if (notApplied.has(i)) return;
      result.processed++;
      topic.processed++;
      const commitTs = event.source.commitTs;
      if (commitTs === null) return;
      topic.latenciesMs.push(written.writtenAt - commitTs);
      if (event.source.snapshot !== 'false') return; // a snapshot read says when it was read, not what was committed
      const newest = result.freshness.get(event.source.name);
      if (!newest || commitTs > newest.commitTs) {
        result.freshness.set(event.source.name, { commitTs, writtenAt: written.writtenAt });
      }
    });
    if (!this.refused) {
      for (const _ of this.ddl) {
        if (written.schemaChangesSkipped) {
          skip(result, batch.topic, 'schema-change');
        } else {
          result.processed++;
          topic.processed++;
        }
      }
    }
    result.deadLettered += this.letters.length;
    topic.deadLettered += this.letters.length;
    for (const letter of this.letters) {
      result.deadLetters.push({ partition: batch.id, offset: letter.record.offset, code: letter.error.code });
    }
    for (const parked of this.newlyParked) result.parked.push({ partition: batch.id, ...parked });
    topic.keysParked += this.newlyParked.length;
  }

  private fail(error: CdcError): void {
    this.result.retried += this.pending - this.judgedDuplicates;
    this.result.error ??= error;
    if (this.firstPending !== undefined) {
      this.result.batchItemFailures.push({ itemIdentifier: { partition: this.batch.id, offset: this.firstPending } });
    }
  }

  /** Sorts the records past the checkpoint into fresh events, schema changes, skips and dead letters. */
  private classify(outcomes: DecodeOutcome[], dedupe: PartitionState): number {
    const { deps, batch } = this;
    let redelivered = 0;
    batch.records.forEach((record, i) => {
      if (dedupe.isRedelivered(record.offset)) {
        redelivered++;
        return;
      }
      this.firstPending ??= record.offset;
      this.pending++;
      const outcome = outcomes[i] as DecodeOutcome;
      if (outcome.kind === 'skip') {
        dedupe.pass(record.offset);
        this.skipped.push(outcome.reason);
      } else if (outcome.kind === 'error' && outcome.error.retryable) {
        // The record is fine, what decodes it is not available now (a schema registry down): retry, never dead-letter.
        this.decodeUnavailable ??= outcome.error;
      } else if (outcome.kind === 'error') {
        dedupe.pass(record.offset);
        this.letters.push(deadLetter(deps.lane, record, outcome.error, this.startedAt));
      } else if (outcome.kind === 'schema-change') {
        dedupe.pass(record.offset);
        if (outcome.changes.length === 0) this.skipped.push('schema-change');
        else this.ddl.push({ record, index: this.fresh.length, changes: outcome.changes });
      } else if (!deps.enricher.apply(outcome.event)) {
        dedupe.pass(record.offset);
        this.skipped.push('table-excluded');
      } else if (dedupe.judge(outcome.event) === 'duplicate') {
        this.judgedDuplicates++;
      } else if (this.holdsParked(record, outcome.event)) {
        // A later change of a parked key: dead-lettered behind the ones before it, never applied.
      } else {
        this.fresh.push(outcome.event);
        this.columns.push(outcome.columns);
        this.schemas.push(outcome.schema);
      }
    });
    return redelivered;
  }

  /** Dead-letters a change of a key parked in this partition (stream mode); false when its key is not parked. */
  private holdsParked(record: KafkaRecord, event: ChangeEvent): boolean {
    const parking = this.parking as PartitionParking;
    if (this.redrive || !parking.hasParked) return false;
    const key = parkingKeyOf(event);
    if (key === null || !parking.isParked(key)) return false;
    this.letters.push(parkedLetter(this.deps.lane, record, parking.hold(key, record.offset), this.startedAt));
    return true;
  }

  /**
   * The partition's schema history in stream order: the DDL records, and each fresh event whose schema version
   * differs from the one the partition applied last for the event's table (registered in the shared history first,
   * which may signal a reconciliation). Notes the versions in `applied` (the checkpoint's). A redrive replays old
   * events out of the stream's order: it records no versions and keeps the checkpoint's.
   */
  private async meetSchemas(applied: AppliedSchemas): Promise<SinkSchemaChange[]> {
    const changes: SinkSchemaChange[] = [];
    let ddl = 0;
    const addDdlUpTo = (index: number) => {
      for (; ddl < this.ddl.length && (this.ddl[ddl] as DdlRecord).index <= index; ddl++) {
        const d = this.ddl[ddl] as DdlRecord;
        for (const change of d.changes) {
          changes.push({ kind: 'ddl', index: d.index, table: change.table, order: change.source.order, change });
        }
      }
    };
    if (!this.redrive) {
      const claimant = `${this.deps.lane}#${this.batch.id}`;
      // The previous versioned event: a run of one table's events at one version needs no look-up (the common case).
      let last: { source: ChangeSource; fingerprint: string } | undefined;
      for (let i = 0; i < this.fresh.length; i++) {
        const schema = this.schemas[i];
        if (schema === undefined) continue;
        const event = this.fresh[i] as ChangeEvent;
        if (last && last.fingerprint === schema.fingerprint && sameTable(last.source, event.source)) continue;
        last = { source: event.source, fingerprint: schema.fingerprint };
        const table = tableIdOf(event.source);
        if (applied.see(table, schema.fingerprint)) continue;
        const met = (await this.deps.schemaHistory?.meet(this.deps.lane, claimant, event, schema)) ?? {};
        if (met.report) this.result.schemaChanges.push(met.report);
        addDdlUpTo(i);
        const entry: SinkSchemaChange = { kind: 'version', index: i, table, order: event.source.order, schema };
        if (met.version !== undefined) entry.version = met.version;
        changes.push(entry);
      }
    }
    addDdlUpTo(Number.POSITIVE_INFINITY);
    return changes;
  }

  /** Writes the sink; false when the partition failed (retryable). */
  private async write(previous: Checkpoint | undefined, schemaChanges: SinkSchemaChange[]): Promise<boolean> {
    const { deps, batch } = this;
    if (this.fresh.length === 0 && this.ddl.length === 0) return true;
    const sinkStarted = this.clock();
    const partition: SinkPartition = {
      partition: batch,
      events: this.fresh,
      columns: this.columns,
      state: previous?.sinkState,
      redrive: this.redrive,
    };
    if (schemaChanges.length > 0) partition.schemaChanges = schemaChanges;
    let r: SinkPartitionResult;
    try {
      r = await deps.sink.write(partition);
    } catch (error) {
      r = {
        ok: false,
        error: asRetryable(error, (m) => new SinkError('SINK_UNAVAILABLE', m, { retryable: true, cause: error })),
      };
    }
    this.result.sinkWriteMs = Math.max(this.result.sinkWriteMs, this.clock() - sinkStarted);
    if (!r.ok && r.error.retryable) {
      this.fail(r.error);
      return false;
    }
    if (!r.ok) {
      // The sink refuses the whole partition for good: dead-letter its records rather than retry forever.
      for (const event of this.fresh) this.letters.push(this.letterFor(recordOf(batch, event), r.error));
      for (const d of this.ddl) this.letters.push(this.letterFor(d.record, r.error));
      this.fresh = [];
      this.columns = [];
      this.refused = true;
      return true;
    }
    this.written = r;
    // A sink refusing single events for good (not an outage) dead-letters those; the partition goes on.
    for (const { index, error } of r.rejected ?? []) {
      const event = this.fresh[index];
      if (event) this.letters.push(this.letterFor(recordOf(batch, event), error));
    }
    if (r.retryableRejected?.length) return this.parkRejected(r.retryableRejected);
    return true;
  }

  /**
   * The sink could not apply some changes now, for reasons of their own: counts an attempt for each key concerned
   * and parks them when they all reached PARK_AFTER_ATTEMPTS — the change and every later change of its key in this
   * write are dead-lettered as PARKED, and the partition goes on. Otherwise the partition is retried after its
   * checkpoint took the counts (retryAfterCommit); false when it is retried at once (a redrive, parking off).
   */
  private parkRejected(rejections: ReadonlyArray<{ index: number; error: CdcError }>): boolean {
    const sorted = [...rejections].sort((a, b) => a.index - b.index);
    const firstError = asRetryable(
      (sorted[0] as { error: CdcError }).error,
      (m) => new SinkError('SINK_UNAVAILABLE', m, { retryable: true }),
    );
    const parking = this.parking as PartitionParking;
    if (parking.parkAfter <= 0) {
      this.fail(firstError);
      return false;
    }
    const keys = this.fresh.map(parkingKeyOf);
    const byKey = new Map<string, RejectedChange & { index: number }>();
    let keyless = false;
    for (const { index, error } of sorted) {
      const event = this.fresh[index];
      if (!event) continue;
      const key = keys[index] ?? null;
      if (key === null) keyless = true;
      else if (!byKey.has(key)) byKey.set(key, { key, offset: event.kafka.offset, error, index });
    }
    if (byKey.size === 0) {
      // Only changes without a key failed: nothing to count or park.
      this.fail(firstError);
      return false;
    }
    const delivered = this.fresh.at(-1)?.kafka.offset ?? -1;
    const decision = parking.attempt([...byKey.values()], keyless, delivered);
    if (!decision.park) {
      for (const refusal of decision.refused) this.result.notParked.push({ partition: this.batch.id, ...refusal });
      this.retryAfterCommit = firstError;
      return true;
    }
    for (const entry of decision.parked) {
      const failed = byKey.get(entry.key) as RejectedChange & { index: number };
      this.newlyParked.push({ key: entry.key, offset: entry.first, attempts: entry.attempts });
      const letter = (i: number, cause?: CdcError) => {
        const event = this.fresh[i] as ChangeEvent;
        this.parkedIndexes.add(i);
        this.letters.push(parkedLetter(this.deps.lane, recordOf(this.batch, event), entry, this.startedAt, cause));
      };
      letter(failed.index, failed.error);
      for (let j = failed.index + 1; j < this.fresh.length; j++) {
        if (keys[j] !== entry.key) continue;
        parking.hold(entry.key, (this.fresh[j] as ChangeEvent).kafka.offset);
        letter(j);
      }
    }
    return true;
  }

  private letterFor(record: KafkaRecord, error: unknown): DeadLetter {
    return deadLetter(this.deps.lane, record, error, this.startedAt);
  }

  /** Dead letters are stored before the checkpoint moves past them: a bad record is never acknowledged unkept. */
  private async storeLetters(): Promise<boolean> {
    if (this.letters.length === 0) return true;
    try {
      await this.deps.deadLetters.send(this.letters);
      return true;
    } catch (error) {
      this.fail(asRetryable(error, (m) => new DeadLetterError(m, { cause: error })));
      return false;
    }
  }
}

/** Whether two events' sources name the same table (every field tableIdOf reads; cheaper than building the ids). */
function sameTable(a: ChangeSource, b: ChangeSource): boolean {
  return (
    a.table === b.table && a.schema === b.schema && a.db === b.db && a.name === b.name && a.connector === b.connector
  );
}

function recordOf(batch: PartitionBatch, event: ChangeEvent): KafkaRecord {
  return batch.records.find((r) => r.offset === event.kafka.offset) ?? { ...event.kafka, value: null };
}
