/**
 * The fuzz stream: MSK events of mixed batches, deterministic per seed. Each batch spreads its records over a few
 * topic-partitions; each record is a valid neighbour (a base at a fresh position), a tombstone, or a mutated record,
 * so a bad record always sits between good ones in its partition. Partitions continue from batch to batch (offsets
 * keep growing, with the odd gap), as the event source mapping delivers them.
 */
import type { KafkaEvent, KafkaRecord } from '../../functions/core/types';
import { Prng } from '../lib/prng';
import { type Base, recordOf, valueText } from './corpus';
import { applicableKinds, type Expectation, type MutationKind, mutate } from './mutations';

/** What a record is and what each lane must do with it. */
export interface SentRecord {
  /** The event's map key it was sent under (`<topic>-<partition>`). */
  partition: string;
  /** Its Kafka offset; -1 for a `not-a-record`, which has none the pipeline can use. */
  offset: number;
  role: 'valid' | 'tombstone' | MutationKind;
  /** `applied`: reaches the sink; `skipped`: neither the sink nor the DLQ; `dead-letter`: must be dead-lettered. */
  expect: 'applied' | 'skipped' | 'dead-letter' | 'any';
  /** With `dead-letter`: the reason codes it may carry. */
  codes?: readonly string[];
  /** The record exactly as sent (JSON): what its dead letter must hold. */
  text: string;
  /** The base it came from, and what the mutation did. */
  origin: string;
}

export interface FuzzBatch {
  index: number;
  event: KafkaEvent;
  records: SentRecord[];
}

export interface StreamOptions {
  seed: number;
  /** Records in the whole stream (each lane gets all of them). */
  records: number;
  corpus: readonly Base[];
  /** The lanes' MAX_RECORD_BYTES. */
  maxRecordBytes: number;
}

/** One topic-partition and the bases it carries (one ordering family: see OrderFamily). */
interface Stream {
  topic: string;
  partition: number;
  bases: Base[];
  nextOffset: number;
}

const EVENT_ARN = 'arn:aws:kafka:eu-west-1:111122223333:cluster/cdc-fuzz/00000000-0000-0000-0000-000000000000-1';

/** Shares of a batch: tombstones and valid neighbours; the rest is mutated. */
const TOMBSTONES = 0.05;
const VALID = 0.45;

function streamsOf(corpus: readonly Base[]): Stream[] {
  const groups = new Map<string, Base[]>();
  for (const base of corpus) {
    const key = `${base.family}\u0000${base.topic}`;
    groups.set(key, [...(groups.get(key) ?? []), base]);
  }
  const partitionsUsed = new Map<string, number>();
  const streams: Stream[] = [];
  for (const bases of groups.values()) {
    const topic = (bases[0] as Base).topic;
    // Two partitions per family and topic; families sharing a topic get partitions of their own.
    for (let i = 0; i < 2; i++) {
      const partition = partitionsUsed.get(topic) ?? 0;
      partitionsUsed.set(topic, partition + 1);
      streams.push({ topic, partition, bases, nextOffset: 0 });
    }
  }
  return streams;
}

/** Number of mutated records per kind in a stream. */
export type MutationCounts = Partial<Record<MutationKind, number>>;

/**
 * The stream's batches, generated one at a time (a batch of huge records is a few MB; the whole stream is not kept).
 * `counts` receives the number of mutated records per kind as they are generated.
 */
export function* fuzzBatches(options: StreamOptions, counts: MutationCounts = {}): Generator<FuzzBatch> {
  const rng = new Prng(options.seed);
  const streams = streamsOf(options.corpus);
  let position = 0;
  let sent = 0;
  for (let index = 0; sent < options.records; index++) {
    const size = Math.min(options.records - sent, rng.int(40, 120));
    const chosen: Stream[] = [];
    const wanted = Math.min(streams.length, rng.int(2, 4));
    while (chosen.length < wanted) {
      const stream = rng.pick(streams);
      if (!chosen.includes(stream)) chosen.push(stream);
    }
    const records: Record<string, unknown[]> = {};
    const sentRecords: SentRecord[] = [];
    for (let i = 0; i < size; i++) {
      const stream = rng.pick(chosen);
      const base = rng.pick(stream.bases);
      const mutation = rng.fork();
      const roll = rng.next();
      const id = `${stream.topic}-${stream.partition}`;
      const n = ++position;
      const put = (record: unknown, entry: Omit<SentRecord, 'partition' | 'text'>) => {
        records[id] ??= [];
        records[id].push(record);
        sentRecords.push({ partition: id, text: JSON.stringify(record), ...entry });
      };
      if (rng.chance(0.05)) stream.nextOffset += rng.int(1, 3); // compacted or transaction-marker offsets
      const coordinates = { partition: stream.partition, offset: stream.nextOffset };
      const record = recordOf(base, n, coordinates);
      if (roll < TOMBSTONES) {
        const tombstone: KafkaRecord = { ...record, value: null };
        if (rng.chance(0.5)) delete tombstone.value;
        stream.nextOffset++;
        put(tombstone, { offset: coordinates.offset, role: 'tombstone', expect: 'skipped', origin: base.name });
        continue;
      }
      if (roll < TOMBSTONES + VALID) {
        stream.nextOffset++;
        put(record, { offset: coordinates.offset, role: 'valid', expect: 'applied', origin: base.name });
        continue;
      }
      const kind = mutation.pick(applicableKinds(base));
      counts[kind] = (counts[kind] ?? 0) + 1;
      const mutated = mutate(
        kind,
        {
          record,
          base,
          valueText: valueText(base, n),
          keyText: base.keyText,
          donors: options.corpus,
          maxRecordBytes: options.maxRecordBytes,
        },
        mutation,
      );
      // A record that is not a Kafka record has no offset: its neighbour takes this one.
      const offset = kind === 'not-a-record' ? -1 : stream.nextOffset++;
      put(mutated.record, {
        offset,
        role: kind,
        ...expectationOf(mutated.expect),
        origin: `${base.name}: ${mutated.note}`,
      });
    }
    sent += size;
    yield {
      index,
      event: { eventSource: 'aws:kafka', eventSourceArn: EVENT_ARN, records: records as KafkaEvent['records'] },
      records: sentRecords,
    };
  }
}

function expectationOf(expect: Expectation): Pick<SentRecord, 'expect' | 'codes'> {
  return expect.deadLetter === 'must' ? { expect: 'dead-letter', codes: expect.codes ?? [] } : { expect: 'any' };
}
