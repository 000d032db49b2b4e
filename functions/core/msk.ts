import * as z from 'zod/mini';
import './zod';
import { InvalidEventError } from './errors';
import type { KafkaRecord, PartitionBatch } from './types';

/**
 * zod schemas of what a Kafka event source mapping delivers (docs/formats.md §1). Tolerant where the wild varies:
 * key/value may be absent or null (tombstones), headers may be missing, bootstrapServers is one string or absent.
 */
const index = z.int().check(z.gte(0));

export const KafkaRecordSchema = z.object({
  topic: z.string().check(z.minLength(1)),
  partition: index,
  offset: index,
  timestamp: z.number(),
  timestampType: z.optional(z.string()),
  key: z.nullish(z.string()),
  value: z.nullish(z.string()),
  // Carried to dead letters as they came, never interpreted: checking every header byte would cost more than the
  // rest of the record's validation.
  headers: z.optional(z.array(z.unknown())),
});

export const KafkaEventSchema = z.object({
  eventSource: z.enum(['aws:kafka', 'SelfManagedKafka']),
  eventSourceArn: z.optional(z.string()),
  bootstrapServers: z.nullish(z.string()),
  records: z.record(z.string(), z.array(z.unknown())),
});

const ACCEPTED = { success: true } as const;
const isIndex = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const isOptionalText = (v: unknown) => v === undefined || v === null || typeof v === 'string';

/** The fast path of KafkaRecordSchema: the same rules, checked without building an output object. */
function looksLikeRecord(raw: unknown): boolean {
  if (raw === null || typeof raw !== 'object') return false;
  const r = raw as Record<string, unknown>;
  return (
    typeof r.topic === 'string' &&
    r.topic.length > 0 &&
    isIndex(r.partition) &&
    isIndex(r.offset) &&
    typeof r.timestamp === 'number' &&
    (r.timestampType === undefined || typeof r.timestampType === 'string') &&
    isOptionalText(r.key) &&
    isOptionalText(r.value) &&
    (r.headers === undefined || Array.isArray(r.headers))
  );
}

/** A record of the batch that is not even a Kafka record: dead-lettered as it came. */
export interface MalformedRecord {
  partitionId: string;
  raw: unknown;
  message: string;
}

export interface ParsedEvent {
  partitions: PartitionBatch[];
  malformed: MalformedRecord[];
}

/**
 * Validates the event and groups its records by topic-partition, in offset order. Never splits the map key on "-":
 * topic names contain dashes; the record's own topic/partition fields are used. A malformed record is set aside
 * for the dead-letter queue; the event itself being malformed is an InvalidEventError.
 */
export function parseKafkaEvent(input: unknown): ParsedEvent {
  const parsed = KafkaEventSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InvalidEventError(
      `not a Kafka event source mapping event: ${issue ? `${issue.path.join('.') || 'event'}: ${issue.message}` : 'invalid'}`,
    );
  }
  const byPartition = new Map<string, PartitionBatch>();
  const malformed: MalformedRecord[] = [];
  for (const [mapKey, records] of Object.entries(parsed.data.records)) {
    for (const raw of records) {
      // A record that passes the cheap shape test is what KafkaRecordSchema accepts; zod runs for the others, to
      // reject them with its message (zod costs ~1 µs and an object per record, the test ~20 ns).
      const record = looksLikeRecord(raw) ? ACCEPTED : KafkaRecordSchema.safeParse(raw);
      if (!record.success) {
        const issue = record.error.issues[0];
        malformed.push({ partitionId: mapKey, raw, message: `${issue?.path.join('.')}: ${issue?.message}` });
        continue;
      }
      // zod's copy is used for the fields it checked; the raw object keeps fields we don't model (schema metadata).
      const value = raw as KafkaRecord;
      const id = `${value.topic}-${value.partition}`;
      let batch = byPartition.get(id);
      if (!batch) {
        batch = { id, topic: value.topic, partition: value.partition, records: [] };
        byPartition.set(id, batch);
      }
      batch.records.push(value);
    }
  }
  for (const batch of byPartition.values()) {
    const records = batch.records;
    for (let i = 1; i < records.length; i++) {
      if ((records[i] as KafkaRecord).offset <= (records[i - 1] as KafkaRecord).offset) {
        records.sort((a, b) => a.offset - b.offset);
        break;
      }
    }
  }
  return { partitions: [...byPartition.values()], malformed };
}
