import { createRequire } from 'node:module';
import { Partitioners, type PartitionMetadata } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { murmur2, partitionForKey, StickyPartitioner, toPositive } from '../../tools/local/broker';

// kafkajs's Java-compatible murmur2 (a port of Kafka 0.10.2's Utils.murmur2 on 64-bit Longs): an independent
// implementation to compare against. It is not exported, hence the deep require.
const require = createRequire(import.meta.url);
const kafkajsMurmur2 = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (key: Buffer) => number;

/** Deterministic pseudo-random bytes (mulberry32), so a failure is reproducible. */
function randomKeys(count: number, seed: number): Buffer[] {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Array.from({ length: count }, () =>
    Buffer.from(Array.from({ length: Math.floor(next() * 70) }, () => Math.floor(next() * 256))),
  );
}

describe('murmur2', () => {
  // apache/kafka clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java, testMurmur2.
  it.each([
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ['abc', 479470107],
  ])('matches Kafka UtilsTest.testMurmur2 for %j', (input, expected) => {
    // Arrange
    const bytes = Buffer.from(input);

    // Act
    const hash = murmur2(bytes);

    // Assert
    expect(hash).toBe(expected);
  });

  it('matches kafkajs murmur2 on 2,000 random keys of 0–69 bytes (every tail length, high bytes)', () => {
    // Arrange
    const keys = randomKeys(2000, 42);

    // Act
    const mismatches = keys.filter((key) => murmur2(key) !== kafkajsMurmur2(key));

    // Assert
    expect(mismatches).toEqual([]);
  });

  it('hashes a Uint8Array the same as a Buffer over a slice of a larger buffer', () => {
    // Arrange
    const pool = Buffer.from('xx{"id":1}yy');
    const slice = pool.subarray(2, 10);

    // Act
    const fromSlice = murmur2(slice);
    const fromArray = murmur2(new Uint8Array(Buffer.from('{"id":1}')));

    // Assert
    expect(fromSlice).toBe(fromArray);
  });
});

describe('toPositive', () => {
  it.each([
    [0, 0],
    [1, 1],
    [-1, 0x7fffffff],
    [-2147483648, 0],
    [2147483647, 2147483647],
    [-973932308, 1173551340],
  ])('toPositive(%i) = %i (sign bit cleared, not Math.abs)', (input, expected) => {
    // Act / Assert
    expect(toPositive(input)).toBe(expected);
  });
});

describe('partitionForKey', () => {
  it.each([
    ['{"id":1}', 0],
    ['{"id":2}', 1],
    ['{"id":3}', 0],
    ['{"id":42}', 1],
  ])('puts JSON key %s on partition %i of 3', (key, expected) => {
    // Act
    const partition = partitionForKey(Buffer.from(key), 3);

    // Assert
    expect(partition).toBe(expected);
  });

  it.each([1, 3, 6, 12, 50])('agrees with kafkajs JavaCompatiblePartitioner for %i partitions', (count) => {
    // Arrange
    const partitioner = Partitioners.JavaCompatiblePartitioner();
    const partitionMetadata: PartitionMetadata[] = Array.from({ length: count }, (_, partitionId) => ({
      partitionErrorCode: 0,
      partitionId,
      leader: 1,
      replicas: [1],
      isr: [1],
    }));
    const keys = randomKeys(300, count).filter((key) => key.length > 0);

    // Act
    const ours = keys.map((key) => partitionForKey(key, count));
    const theirs = keys.map((key) => partitioner({ topic: 't', partitionMetadata, message: { key, value: null } }));

    // Assert
    expect(ours).toEqual(theirs);
  });

  it.each([0, -1, 1.5])('rejects %d partitions', (count) => {
    // Act / Assert
    expect(() => partitionForKey(Buffer.from('k'), count)).toThrow(RangeError);
  });
});

describe('StickyPartitioner', () => {
  it('keeps keyless records on one partition per batch and moves round-robin between batches', () => {
    // Arrange
    const sticky = new StickyPartitioner();

    // Act
    const first = [1, 2, 3].map(() => sticky.partition('t', 3, 10));
    sticky.endBatch(() => 3);
    const second = [1, 2].map(() => sticky.partition('t', 3, 10));
    sticky.endBatch(() => 3);
    const third = sticky.partition('t', 3, 10);

    // Assert
    expect({ first, second, third }).toEqual({ first: [0, 0, 0], second: [1, 1], third: 2 });
  });

  it('moves on within a batch once stickyBatchBytes went to the partition', () => {
    // Arrange
    const sticky = new StickyPartitioner(100);

    // Act
    const partitions = [60, 60, 60].map((size) => sticky.partition('t', 3, size));

    // Assert
    expect(partitions).toEqual([0, 0, 1]);
  });
});
