import { createHash } from 'node:crypto';
import type { ChangeEvent, Checkpoint } from './types';

/**
 * Batched dedupe: one checkpoint per lane and topic-partition instead of one DynamoDB item per record.
 *
 * Why this is safe (the correctness argument):
 * 1. The event source mapping runs at most one batch per partition at a time and commits Kafka offsets only after
 *    a batch succeeded (docs/formats.md §1.7), and Debezium keys records by row key, so a row always maps to one
 *    partition. So per partition there is one writer, and its records arrive in offset order.
 * 2. Redelivery (a retried batch, a bisected batch, a partial-failure resume) brings records at offsets we have
 *    seen: every record at or below the committed `offset` is a duplicate.
 * 3. Debezium re-emitting after a connector restart brings the same changes at NEW offsets. Within a partition,
 *    source positions only grow (Debezium emits in source order), so a change whose `order` is below the highest
 *    order applied (`hw`) was already applied. An incremental-snapshot chunk is emitted where its window closed
 *    (the high watermark) and carries that point's position, so it fits the stream's order too. Changes sharing one
 *    position (snapshot reads, the reads of one incremental chunk, the delete+create of a primary-key change) are
 *    told apart by id: the ids applied at exactly `hw` are kept (as short digests).
 * 4. The checkpoint is written after the sink write succeeded, conditionally on the version read at the start, so
 *    a crash between the two replays the same records from the same state — and the sinks are idempotent for such
 *    a replay (deterministic object keys, version-guarded cache writes) — while a second writer, if assumption 1
 *    were ever broken, gets a retryable conflict instead of a lost update.
 * Per-record idempotency (e.g. Powertools Idempotency) would cost two DynamoDB calls per record; this costs one
 * read for all partitions of a batch plus one write for all of them (a transaction of conditional puts, see
 * DynamoDedupeStore).
 *
 * Limits, documented in docs/architecture.md ("Exactly-once effect, in order"): a record without a key (tables without a primary key) is placed on a partition
 * by the producer, not by row, so a re-emitted copy can land on a partition that has not reached its position; and
 * at most HW_IDS_LIMIT ids are kept for one position (a larger snapshot tie group or incremental chunk could, after
 * a connector restart mid-snapshot at an unchanged position, re-apply identical reads).
 */
export const HW_IDS_LIMIT = 1000;

/** A short, fixed-length digest of an id for the checkpoint (72 bits: collisions within one position are moot). */
export function digestId(id: string): string {
  return createHash('sha1').update(id).digest('base64url').slice(0, 12);
}

/**
 * Compares two orders of one partition's stream (different rows). PostgreSQL orders are
 * `pg:<phase>:<lastCommitLsn>:<lsn>` (decode/source.ts): snapshot reads (phase 0) sort below streamed changes and
 * incremental-snapshot reads (phase 1) and by LSN among themselves; phase-1 orders sort by (last commit LSN, LSN) —
 * the stream's order — which is plain string order. One without its commit part (20 zeros: the first transaction a
 * connector streams, old Debezium without `sequence`, unwrap output with only `__lsn`) is not comparable with
 * another phase-1 order: change LSNs of concurrent transactions interleave, so "lower LSN" does not mean "already
 * applied" across rows. Anything incomparable is treated as new — when unsure, apply (sinks are version-guarded per
 * row) rather than drop.
 */
export function compareOrder(a: string, b: string): -1 | 0 | 1 | undefined {
  if (a === b) return 0;
  // Kinds are two letters and a colon ("pg:", "my:", "ms:", "kf:"); compared without slicing (this runs per event).
  if (a.charCodeAt(0) !== b.charCodeAt(0) || a.charCodeAt(1) !== b.charCodeAt(1) || a.charCodeAt(2) !== 58) {
    return undefined;
  }
  if (
    a.charCodeAt(0) === 112 /* p */ &&
    a.charCodeAt(3) === 49 /* 1 */ &&
    b.charCodeAt(3) === 49 &&
    (a.startsWith(UNKNOWN_COMMIT, COMMIT_AT) || b.startsWith(UNKNOWN_COMMIT, COMMIT_AT))
  ) {
    return undefined;
  }
  return a < b ? -1 : 1;
}

const UNKNOWN_COMMIT = '0'.repeat(20);
/** Where the commit part of `pg:1:<commit 20>:<lsn 20>` starts. */
const COMMIT_AT = 5;

/**
 * A phase-1 PostgreSQL order whose commit part is unknown (see compareOrder): the first transaction a connector
 * streams after it starts.
 */
export function hasUnknownCommit(order: string): boolean {
  return order.startsWith('pg:1:') && order.startsWith(UNKNOWN_COMMIT, COMMIT_AT);
}

/** A phase-1 PostgreSQL order with its commit part: a transaction after the first one a connector streamed. */
function hasKnownCommit(order: string): boolean {
  return order.startsWith('pg:1:') && !order.startsWith(UNKNOWN_COMMIT, COMMIT_AT);
}

export type Verdict = 'new' | 'duplicate';

const NO_IDS: ReadonlySet<string> = new Set();

/** What the pipeline asks of a partition's dedupe state during a batch. */
export interface PartitionState {
  isRedelivered(offset: number): boolean;
  pass(offset: number): void;
  judge(event: ChangeEvent): Verdict;
  readonly changed: boolean;
  next(sinkState: unknown): Checkpoint;
}

/** Running dedupe state of one partition during a batch. */
export class PartitionDedupe implements PartitionState {
  private hw: string;
  /** Digests of ids applied at `hw` that came from the stored checkpoint. */
  private storedTies: ReadonlySet<string>;
  /** Ids (raw) applied at `hw` in this batch: usually one, so a reused array rather than a Set per event. */
  private readonly batchTies: string[] = [];
  private readonly committedOffset: number;
  private maxOffset: number;
  private dirty = false;

  constructor(private readonly previous: Checkpoint | undefined) {
    this.committedOffset = previous?.offset ?? -1;
    this.maxOffset = this.committedOffset;
    this.hw = previous?.hw ?? '';
    this.storedTies = previous?.hwIds.length ? new Set(previous.hwIds) : NO_IDS;
  }

  /** True when the record at this offset was already handled (redelivery). */
  isRedelivered(offset: number): boolean {
    return offset <= this.committedOffset;
  }

  /** Notes a record past the checkpoint that is not a change event (skipped or dead-lettered). */
  pass(offset: number): void {
    if (offset > this.maxOffset) this.maxOffset = offset;
    this.dirty = true;
  }

  /** Classifies a change event past the checkpoint and, if new, records it as applied. */
  judge(event: ChangeEvent): Verdict {
    this.pass(event.kafka.offset);
    const order = event.source.order;
    const cmp = this.hw === '' ? 1 : compareOrder(order, this.hw);
    if (cmp === -1) return 'duplicate';
    if (cmp === 0) {
      if (this.batchTies.includes(event.id) || (this.storedTies.size > 0 && this.storedTies.has(digestId(event.id)))) {
        return 'duplicate';
      }
      if (this.storedTies.size + this.batchTies.length < HW_IDS_LIMIT) this.batchTies.push(event.id);
      return 'new';
    }
    if (cmp === undefined && hasUnknownCommit(order) && hasKnownCommit(this.hw)) {
      // A change without its commit part belongs to the first transaction streamed after the initial snapshot (the
      // only one Debezium sends before it has seen a commit; after a restart it reads the last commit from its
      // offset). The partition's high-water order has a commit part, so a later transaction was applied here, and
      // this partition's stream passed the first transaction before it: this is that transaction re-emitted by a
      // connector that crashed before saving any commit. Applying it again doubled it in the change and audit logs.
      // Only a PostgreSQL streamed order says that: after another connector's order (or a record ordered by its Kafka
      // offset), every change without a commit part was called a duplicate, for good.
      return 'duplicate';
    }
    // Greater, or incomparable: a new position.
    this.hw = order;
    this.storedTies = NO_IDS;
    this.batchTies.length = 0;
    this.batchTies.push(event.id);
    return 'new';
  }

  /** Whether anything past the checkpoint was seen (a commit is needed). */
  get changed(): boolean {
    return this.dirty;
  }

  /** The checkpoint to commit once the sink write succeeded. */
  next(sinkState: unknown): Checkpoint {
    const hwIds = [...this.storedTies];
    for (const id of this.batchTies) hwIds.push(digestId(id));
    const next: Checkpoint = {
      offset: this.maxOffset,
      hw: this.hw,
      hwIds,
      version: (this.previous?.version ?? 0) + 1,
    };
    if (sinkState !== undefined) next.sinkState = sinkState;
    return next;
  }
}

/**
 * Dedupe state for a redrive of dead letters: records come back from the DLQ long after their partition moved on, so
 * neither their offsets nor their positions can be compared with the checkpoint — every change is applied again and
 * the sinks' own guards decide (the cache's version check keeps a newer row; the change log and the audit log record
 * the replay). Only a letter delivered twice in one redrive counts as a duplicate. The checkpoint keeps its offset
 * and position and takes the sink's new state (the audit chain head).
 */
export class RedriveDedupe implements PartitionState {
  private readonly seen = new Set<string>();
  private dirty = false;

  constructor(private readonly previous: Checkpoint | undefined) {}

  isRedelivered(_offset: number): boolean {
    return false;
  }

  pass(_offset: number): void {
    this.dirty = true;
  }

  judge(event: ChangeEvent): Verdict {
    this.dirty = true;
    if (this.seen.has(event.id)) return 'duplicate';
    this.seen.add(event.id);
    return 'new';
  }

  get changed(): boolean {
    return this.dirty;
  }

  next(sinkState: unknown): Checkpoint {
    const base = this.previous ?? { offset: -1, hw: '', hwIds: [], version: 0 };
    const next: Checkpoint = { offset: base.offset, hw: base.hw, hwIds: base.hwIds, version: base.version + 1 };
    if (sinkState !== undefined) next.sinkState = sinkState;
    return next;
  }
}

/**
 * How many tables a checkpoint remembers a schema fingerprint for. A topic-per-table partition needs one; a partition
 * of the connectors' catch-all topic may see many tables over time, and the whole map is written with every commit
 * of its checkpoint (DynamoDB bills writes per KB: 64 entries of ~80 bytes stay around 5 KB, under 400 KB by far).
 */
export const SCHEMAS_LIMIT = 64;

/**
 * The schema version last applied in one partition, per table: a table meets a version when its event carries
 * another fingerprint than the one remembered for it, so tables interleaved in one partition (the catch-all topic)
 * do not meet their versions again at every switch.
 *
 * Bounded: the checkpoint keeps the `limit` most recently seen tables. A table evicted and seen again meets its
 * current version once more: the registry finds it known (no new version, no signal), the audit lane chains one more
 * schema entry and the warehouse rewrites the same `_schemas` object — redundant, never wrong.
 *
 * Migration: a checkpoint written before per-table fingerprints holds one `schema`, from a time when each partition
 * carried one table whose id is the topic's name (Debezium's topic naming, lib/config/topics.ts). It is read as that
 * table's fingerprint. Were the topic named otherwise, no table matches it and the partition's table meets its
 * version once more (the harmless case above) rather than taking another table's fingerprint: fingerprints cover
 * columns only, so two tables can share one.
 */
export class AppliedSchemas {
  /** Table id → fingerprint, least recently seen first. */
  private readonly byTable: Map<string, string>;

  constructor(
    previous: Checkpoint | undefined,
    topic: string,
    private readonly limit = SCHEMAS_LIMIT,
  ) {
    if (previous?.schemas) this.byTable = new Map(Object.entries(previous.schemas));
    else if (previous?.schema !== undefined) this.byTable = new Map([[topic, previous.schema]]);
    else this.byTable = new Map();
  }

  /**
   * Notes that `table`'s events carry `fingerprint` from here on, making it the most recently seen table. True when
   * that was already the version applied for it (nothing to meet).
   */
  see(table: string, fingerprint: string): boolean {
    const known = this.byTable.get(table);
    this.byTable.delete(table);
    this.byTable.set(table, fingerprint);
    return known === fingerprint;
  }

  /** The fingerprints for the checkpoint: the `limit` most recently seen tables, undefined when none. */
  toCheckpoint(): Record<string, string> | undefined {
    if (this.byTable.size === 0) return undefined;
    const entries = [...this.byTable];
    return Object.fromEntries(entries.slice(Math.max(0, entries.length - this.limit)));
  }
}
