/**
 * Kafka's default key partitioning, bit for bit, so a row key lands on the same partition locally as it does on MSK
 * (the lanes' per-partition ordering and dedupe argument depends on "one key, one partition").
 *
 * Matched against `org.apache.kafka.common.utils.Utils.murmur2` / `Utils.toPositive` and the producer's
 * `BuiltInPartitioner.partitionForKey` (`toPositive(murmur2(keyBytes)) % numPartitions`); kafkajs's
 * `JavaCompatiblePartitioner` is the same algorithm and test/broker/partitioner.test.ts compares against both.
 */

const SEED = 0x9747b28c;
// 'm' and 'r' are MurmurHash2's mixing constants, as in Kafka's Utils.murmur2.
const M = 0x5bd1e995;
const R = 24;

/**
 * MurmurHash2 (32-bit) exactly as Kafka's `Utils.murmur2(byte[])`: seed `0x9747b28c`, little-endian 4-byte blocks,
 * result a signed 32-bit integer (Java `int`). `Math.imul` gives Java's wrapping `int` multiply; `>>>` matches Java's.
 */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = SEED ^ length;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = data[i4]! | (data[i4 + 1]! << 8) | (data[i4 + 2]! << 16) | (data[i4 + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> R;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  // The tail: Java's `switch (length % 4)` falls through 3 → 2 → 1; written as ifs (tsconfig forbids fall-through).
  const tail = length & ~3;
  const rest = length & 3;
  if (rest === 3) h ^= data[tail + 2]! << 16;
  if (rest >= 2) h ^= data[tail + 1]! << 8;
  if (rest >= 1) {
    h ^= data[tail]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/**
 * Kafka's `Utils.toPositive`: clears the sign bit (not `Math.abs`, which differs for negatives and overflows for
 * `Integer.MIN_VALUE`). Changing this would move keys to other partitions, which is why Kafka documents it.
 */
export function toPositive(n: number): number {
  return n & 0x7fffffff;
}

/** The partition Kafka's default producer partitioner picks for a non-null key. */
export function partitionForKey(key: Uint8Array, numPartitions: number): number {
  if (!Number.isInteger(numPartitions) || numPartitions < 1) {
    throw new RangeError(`numPartitions must be a positive integer, got ${numPartitions}`);
  }
  return toPositive(murmur2(key)) % numPartitions;
}

/**
 * Where records without a key go. Kafka's producer (since 3.3, KIP-794 `BuiltInPartitioner`) keeps a "sticky"
 * partition per topic and switches after about `batch.size` bytes (default 16384) went to it; the choice of the next
 * partition is random, weighted by broker queue sizes. Locally we keep the stickiness but make it deterministic: the
 * sticky partition moves round-robin after `stickyBatchBytes` bytes and at the end of every produce call (one
 * `produce()` call plays the part of one producer batch). Debezium always sets a key for row changes, so this only
 * matters for keyless topics (tables without a primary key, heartbeats).
 */
export class StickyPartitioner {
  private readonly state = new Map<string, { partition: number; bytes: number; used: boolean }>();

  /** @param stickyBatchBytes bytes after which the sticky partition moves on. @default 16384 (Kafka's `batch.size`) */
  constructor(private readonly stickyBatchBytes = 16_384) {}

  /** The partition for one keyless record of `sizeBytes` bytes. */
  partition(topic: string, numPartitions: number, sizeBytes: number): number {
    let s = this.state.get(topic);
    if (s === undefined) {
      s = { partition: 0, bytes: 0, used: false };
      this.state.set(topic, s);
    }
    const partition = s.partition % numPartitions;
    s.used = true;
    s.bytes += sizeBytes;
    if (s.bytes >= this.stickyBatchBytes) this.advance(s, numPartitions);
    return partition;
  }

  /** Ends the current "producer batch": every topic that received keyless records moves to its next partition. */
  endBatch(partitionCount: (topic: string) => number): void {
    for (const [topic, s] of this.state) {
      if (s.used) this.advance(s, partitionCount(topic));
    }
  }

  private advance(s: { partition: number; bytes: number; used: boolean }, numPartitions: number): void {
    s.partition = (s.partition + 1) % Math.max(1, numPartitions);
    s.bytes = 0;
    s.used = false;
  }
}
