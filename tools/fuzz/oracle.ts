/**
 * What the fuzzer checks, per lane, from three sources that do not depend on each other: the batch result the handler
 * reports (onBatch), what reached the sink (the lane's real sink, observed), and the dead letters in the lane's queue.
 *
 * - No invocation crashes, and no partition keeps failing: a fuzzed record must never make the batch retry forever.
 * - Every record ends in exactly one outcome: processed + skipped + duplicates + dead-lettered = records.
 * - Every dead letter is a record that was sent, byte for byte (key, value, headers, coordinates), with a documented
 *   reason code; as many letters as the batch result counts.
 * - Every record that cannot be a change event is dead-lettered, with one of the codes its damage calls for.
 * - Every valid neighbour reaches the sink — unless the dedupe may call it a re-emission: a record before it in its
 *   partition reached the sink with a higher source order (a mutation can leave a valid event at a corrupted
 *   position, and Debezium's orders only grow within a partition). Tombstones reach neither the sink nor the DLQ.
 */
import type { DeadLetterMessage } from '../../functions/adapters/sqs-dead-letter-queue';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import type { RecordCounts } from '../../functions/core/pipeline';
import type { KafkaRecord, Lane, SinkPartition, SinkPartitionResult } from '../../functions/core/types';
import type { FuzzBatch, SentRecord } from './batches';

export interface Failure {
  seed: number;
  lane: Lane;
  what: string;
}

export interface LaneCounts {
  processed: number;
  skipped: number;
  deadLettered: number;
  duplicates: number;
  crashes: number;
  mismatches: number;
}

/** The reason codes of docs/architecture.md ("Errors") a dead letter can carry. */
export const DEAD_LETTER_CODES: ReadonlySet<string> = new Set([
  'BAD_BASE64',
  'INVALID_UTF8',
  'NOT_JSON',
  'NOT_AN_OBJECT',
  'UNKNOWN_OP',
  'MISSING_SOURCE',
  'INVALID_ENVELOPE',
  'INVALID_KEY',
  'RECORD_TOO_LARGE',
  'UNSUPPORTED_FORMAT',
  'INVALID_RECORD',
  'UNKNOWN_SCHEMA_ID',
  'INVALID_AVRO',
  'SINK_REJECTED',
]);

/** An event handed to the sink: where it came from and how the dedupe placed it. */
interface Passed {
  offset: number;
  order: string;
  id: string;
}

/** What happened to one sent record in this lane. */
interface Fate {
  sent: SentRecord;
  /** Handed to the sink in a write that succeeded. */
  passed: boolean;
  /** …and applied there (not skipped or rejected by the sink). */
  applied: boolean;
  letters: DeadLetterMessage[];
  /** Still failing after the retries: already reported, left out of the record checks. */
  unresolved: boolean;
}

const UNKNOWN_COMMIT = '0'.repeat(20);

/** A PostgreSQL phase-1 order without its commit part (`pg:1:<20 zeros>:<lsn>`). */
function unknownCommit(order: string): boolean {
  return order.startsWith('pg:1:') && order.startsWith(UNKNOWN_COMMIT, 5);
}

/**
 * Whether the dedupe may call a change a re-emission, given the changes the partition applied before it (docs/
 * architecture.md, "Exactly-once effect, in order"): its order is below the high-water order (the last applied one's),
 * or equal to it with an id already applied there. Orders of different connectors are not comparable, and neither
 * are PostgreSQL orders without a commit part, except that one follows a known commit only as the first transaction
 * a connector streams, re-emitted.
 */
export function mayBeReEmission(change: { order: string; id: string }, before: readonly Passed[]): boolean {
  const last = before.at(-1);
  if (!last) return false;
  const hw = last.order;
  if (change.order === hw) return before.some((p) => p.order === hw && p.id === change.id);
  if (change.order.slice(0, 3) !== hw.slice(0, 3)) return false;
  if (unknownCommit(change.order)) return hw.startsWith('pg:1:') && !unknownCommit(hw);
  if (unknownCommit(hw)) return false;
  return change.order < hw;
}

/** The dead letter's record as it must be: the sent record, byte for byte. */
function letterRecordText(letter: DeadLetterMessage): string {
  return JSON.stringify(letter.record);
}

export class LaneOracle {
  readonly counts: LaneCounts = { processed: 0, skipped: 0, deadLettered: 0, duplicates: 0, crashes: 0, mismatches: 0 };
  /** Records sent. */
  private records = 0;
  /** Records left without an outcome: their batch crashed, or their partition kept failing (both reported). */
  private unresolved = 0;
  private batch: FuzzBatch | undefined;
  private fates = new Map<string, Fate>();
  /** Records by their JSON text (a list: two records that are not records can be equal, e.g. `null`). */
  private byText = new Map<string, Fate[]>();
  /** Per partition, the changes handed to the sink so far, in offset order (the dedupe's memory, seen from outside). */
  private readonly history = new Map<string, Passed[]>();
  private retriedBefore = 0;
  /** Changes the sink applied since the last attempt was checked. */
  private appliedNow = 0;
  private readonly decoder = new JsonDebeziumDecoder();

  constructor(
    readonly lane: Lane,
    private readonly seed: number,
    private readonly failures: Failure[],
  ) {}

  private fail(what: string, crash = false): void {
    if (crash) this.counts.crashes++;
    else this.counts.mismatches++;
    this.failures.push({ seed: this.seed, lane: this.lane, what });
  }

  /** A new batch: its records. */
  begin(batch: FuzzBatch): void {
    this.batch = batch;
    this.fates = new Map();
    this.byText = new Map();
    this.retriedBefore = 0;
    for (const sent of batch.records) {
      const fate: Fate = { sent, passed: false, applied: false, letters: [], unresolved: false };
      if (sent.offset >= 0) this.fates.set(`${sent.partition}@${sent.offset}`, fate);
      this.byText.set(sent.text, [...(this.byText.get(sent.text) ?? []), fate]);
    }
    this.records += batch.records.length;
  }

  /** The sink was handed a partition (called by the observed sink, in any attempt). */
  sinkWrite(p: SinkPartition, result: SinkPartitionResult): void {
    if (!result.ok) return; // retried (nothing committed) or refused (dead-lettered: the letters say so)
    const notApplied = new Set<number>([
      ...(result.skipped ?? []).map((s) => s.index),
      ...(result.rejected ?? []).map((r) => r.index),
    ]);
    let history = this.history.get(p.partition.id);
    if (!history) {
      history = [];
      this.history.set(p.partition.id, history);
    }
    p.events.forEach((event, i) => {
      const fate = this.fates.get(`${p.partition.id}@${event.kafka.offset}`);
      if (!notApplied.has(i)) this.appliedNow++;
      if (fate) {
        fate.passed = true;
        fate.applied = !notApplied.has(i);
      } else {
        this.fail(
          `batch ${this.batch?.index}: the sink got an event nobody sent (${p.partition.id}@${event.kafka.offset})`,
        );
      }
      // A replay of the same records (a retried partition) replaces what the failed attempt handed over.
      while (history.length > 0 && (history.at(-1) as Passed).offset >= event.kafka.offset) history.pop();
      history.push({ offset: event.kafka.offset, order: event.source.order, id: event.id });
    });
  }

  /**
   * One invocation of the batch (the first delivery, or a retry of the partitions it reported): its result, what it
   * threw, and the dead letters it left in the queue.
   */
  attempt(
    attempt: number,
    sentRecords: number,
    result: RecordCounts | undefined,
    thrown: unknown,
    letters: readonly DeadLetterMessage[],
  ): void {
    const index = this.batch?.index;
    if (thrown !== undefined) {
      const message = thrown instanceof Error ? thrown.message : String(thrown);
      this.fail(`batch ${index}${attempt ? ` (retry ${attempt})` : ''}: the handler threw: ${message}`, true);
    }
    this.matchLetters(letters);
    const applied = this.appliedNow;
    this.appliedNow = 0;
    if (!result) {
      if (thrown === undefined) this.fail(`batch ${index}: the handler returned without a batch result`, true);
      this.unresolved += sentRecords;
      return;
    }
    const { records, processed, skipped, duplicates, deadLettered, retried } = result;
    if (records !== sentRecords) this.fail(`batch ${index}: ${sentRecords} records sent, the result counts ${records}`);
    if (processed + skipped + duplicates + deadLettered + retried !== records) {
      this.fail(
        `batch ${index}: processed ${processed} + skipped ${skipped} + duplicates ${duplicates} + dead-lettered ${deadLettered} + retried ${retried} ≠ ${records} records`,
      );
    }
    if (letters.length !== deadLettered) {
      this.fail(`batch ${index}: ${letters.length} dead letters in the queue, the result counts ${deadLettered}`);
    }
    // With every partition committed, what the result calls processed is what the sink applied.
    if (thrown === undefined && retried === 0 && processed !== applied) {
      this.fail(`batch ${index}: the result counts ${processed} processed, the sink applied ${applied}`);
    }
    this.counts.processed += processed;
    this.counts.skipped += skipped;
    this.counts.deadLettered += deadLettered;
    // A retry re-judges the re-emissions its partition held (counted at the first delivery): not counted twice.
    this.counts.duplicates += attempt === 0 ? duplicates : duplicates - (records - this.retriedBefore);
    this.retriedBefore = retried;
  }

  /**
   * A record that fails its partition however often it is delivered alone (a retryable error the event source mapping
   * would retry forever): reported, and left out of the record checks.
   */
  stuck(partition: string, offset: number, error: { code: string; message: string } | undefined, crash = false): void {
    this.unresolved++;
    const fate = this.fates.get(`${partition}@${offset}`);
    if (fate) fate.unresolved = true;
    const what = fate ? `${fate.sent.role}, ${fate.sent.origin}` : 'a record never sent';
    const why = error ? `${error.code}: ${error.message}` : 'no error given';
    this.fail(
      `batch ${this.batch?.index}: ${partition}@${offset} (${what}) fails its partition at every delivery: ${why}`,
      crash,
    );
  }

  /** A delivery that took far too long: names the record slowest to decode (the decoder is the usual suspect). */
  slow(ms: number, records: readonly unknown[]): void {
    let slowest: { ms: number; record: unknown } | undefined;
    for (const record of records) {
      const started = performance.now();
      try {
        new JsonDebeziumDecoder().decode(record as KafkaRecord, 0);
      } catch {
        // not a record: the pipeline never decodes it
      }
      const took = performance.now() - started;
      if (!slowest || took > slowest.ms) slowest = { ms: took, record };
    }
    const fate = slowest ? this.byText.get(JSON.stringify(slowest.record))?.[0] : undefined;
    const suspect = fate
      ? `; slowest to decode: ${fate.sent.partition}@${fate.sent.offset} (${fate.sent.role}, ${fate.sent.origin}), ${((slowest?.ms ?? 0) / 1000).toFixed(1)} s`
      : '';
    this.fail(`batch ${this.batch?.index}: one delivery took ${(ms / 1000).toFixed(1)} s${suspect}`);
  }

  /** A batch that crashed: its records are not checked one by one (the crash is the failure). */
  crashed(): void {
    for (const fates of this.byText.values()) for (const fate of fates) fate.unresolved = true;
  }

  private matchLetters(letters: readonly DeadLetterMessage[]): void {
    const index = this.batch?.index;
    for (const letter of letters) {
      const code = letter.error?.code;
      if (!DEAD_LETTER_CODES.has(code) || !letter.error.message) {
        this.fail(`batch ${index}: a dead letter with reason ${JSON.stringify(letter.error)}: not a documented code`);
      }
      if (letter.lane !== this.lane)
        this.fail(`batch ${index}: a dead letter of lane ${letter.lane} in this lane's queue`);
      const same = this.byText.get(letterRecordText(letter));
      const fate = same?.find((f) => f.letters.length === 0) ?? same?.[0];
      if (fate) {
        fate.letters.push(letter);
        continue;
      }
      const record = letter.record as Partial<KafkaRecord> | null;
      const near = record ? this.fates.get(`${record.topic}-${record.partition}@${record.offset}`) : undefined;
      if (near) {
        near.letters.push(letter);
        this.fail(
          `batch ${index}: the dead letter of ${near.sent.partition}@${near.sent.offset} (${near.sent.role}) does not hold the original record: ${differences(near.sent.text, letter.record)}`,
        );
      } else {
        this.fail(`batch ${index}: a dead letter for a record never sent: ${letterRecordText(letter).slice(0, 200)}`);
      }
    }
  }

  /** Checks every record of the batch once its deliveries are over. */
  end(): void {
    const index = this.batch?.index;
    for (const fate of [...this.byText.values()].flat()) {
      if (fate.unresolved) continue;
      const { sent, letters } = fate;
      const where = `batch ${index}: ${sent.partition}@${sent.offset} (${sent.role}, ${sent.origin})`;
      if (letters.length > 1) this.fail(`${where}: dead-lettered ${letters.length} times`);
      if (fate.applied && letters.length > 0)
        this.fail(`${where}: applied and dead-lettered (${letters[0]?.error.code})`);
      const letter = letters[0];
      switch (sent.expect) {
        case 'applied':
          if (letter)
            this.fail(`${where}: a valid record was dead-lettered: ${letter.error.code}: ${letter.error.message}`);
          else if (fate.passed && !fate.applied)
            this.fail(`${where}: a valid record was skipped or refused by the sink`);
          else if (!fate.passed) this.checkDuplicate(fate, where);
          break;
        case 'skipped':
          if (fate.passed || letter)
            this.fail(`${where}: a tombstone ${fate.passed ? 'reached the sink' : 'was dead-lettered'}`);
          break;
        case 'dead-letter':
          if (!letter) {
            this.fail(
              `${where}: not dead-lettered (${fate.applied ? 'applied' : fate.passed ? 'handed to the sink' : 'skipped or called a duplicate'})`,
            );
          } else if (!sent.codes?.includes(letter.error.code)) {
            this.fail(
              `${where}: dead-lettered as ${letter.error.code} (${letter.error.message}), expected ${sent.codes?.join(' or ')}`,
            );
          }
          break;
        case 'any':
          break;
      }
    }
  }

  /** A valid record that did not reach the sink: only a re-emission (see mayBeReEmission) may stay away. */
  private checkDuplicate(fate: Fate, where: string): void {
    const outcome = this.decoder.decode(JSON.parse(fate.sent.text) as KafkaRecord, 0);
    if (outcome.kind !== 'event') {
      this.fail(`${where}: a valid record decodes to ${outcome.kind}, not a change event`);
      return;
    }
    const before = (this.history.get(fate.sent.partition) ?? []).filter((p) => p.offset < fate.sent.offset);
    const change = { order: outcome.event.source.order, id: outcome.event.id };
    if (!mayBeReEmission(change, before)) {
      const hw = before.at(-1);
      this.fail(
        `${where}: a valid record never reached the sink (order ${change.order}; last applied before it: ${hw ? `${hw.order} at offset ${hw.offset}` : 'none'})`,
      );
    }
  }

  /** The lane's totals once every batch ran: every record in exactly one outcome. */
  finish(): LaneCounts {
    const { processed, skipped, duplicates, deadLettered } = this.counts;
    if (processed + skipped + duplicates + deadLettered + this.unresolved !== this.records) {
      this.fail(
        `processed ${processed} + skipped ${skipped} + duplicates ${duplicates} + dead-lettered ${deadLettered} + unresolved ${this.unresolved} ≠ ${this.records} records sent`,
      );
    }
    return this.counts;
  }
}

/** Which fields of a dead letter's record differ from the record sent. */
function differences(sentText: string, record: unknown): string {
  const sent = JSON.parse(sentText) as Record<string, unknown>;
  const got = (record ?? {}) as Record<string, unknown>;
  const fields = new Set([...Object.keys(sent), ...Object.keys(got)]);
  const differ = [...fields].filter((f) => JSON.stringify(sent[f]) !== JSON.stringify(got[f]));
  return differ.length > 0 ? `${differ.join(', ')} differ` : 'fields in another order';
}
