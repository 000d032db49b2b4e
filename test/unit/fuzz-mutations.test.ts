import { isUtf8 } from 'node:buffer';
import { beforeAll, describe, expect, it } from 'vitest';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import type { KafkaRecord } from '../../functions/core/types';
import { type FuzzBatch, fuzzBatches, type MutationCounts } from '../../tools/fuzz/batches';
import { type Base, loadCorpus, recordOf, valueText } from '../../tools/fuzz/corpus';
import { MUTATION_KINDS, type MutationKind, mutate } from '../../tools/fuzz/mutations';
import { Prng } from '../../tools/lib/prng';

const MAX_RECORD_BYTES = 1_048_576;
let corpus: Base[];

beforeAll(async () => {
  corpus = await loadCorpus('events');
});

function stream(seed: number, records: number, counts?: MutationCounts): FuzzBatch[] {
  return [...fuzzBatches({ seed, records, corpus, maxRecordBytes: MAX_RECORD_BYTES }, counts)];
}

/** What a batch sends, as comparable text. */
function fingerprint(batches: FuzzBatch[]): string[] {
  return batches.flatMap((b) => b.records.map((r) => `${r.partition}@${r.offset} ${r.role} ${r.text}`));
}

/** One mutation of `kind` on a record of `base`, with its own generator. */
function mutated(kind: MutationKind, base: Base, seed: number) {
  const record = recordOf(base, seed + 1, { partition: 0, offset: seed });
  const input = {
    record,
    base,
    valueText: valueText(base, seed + 1),
    keyText: base.keyText,
    donors: corpus,
    maxRecordBytes: MAX_RECORD_BYTES,
  };
  return { original: record, mutation: mutate(kind, input, new Prng(seed)) };
}

describe('Prng', () => {
  it('gives the same numbers for the same seed, other numbers for another, always within bounds', () => {
    // Arrange
    const draw = (seed: number) => {
      const rng = new Prng(seed);
      return Array.from({ length: 200 }, () => rng.int(-3, 7));
    };
    // Act
    const first = draw(11);
    const again = draw(11);
    const other = draw(12);
    // Assert
    expect(again).toEqual(first);
    expect(other).not.toEqual(first);
    expect(first.every((n) => n >= -3 && n <= 7)).toBe(true);
    expect(new Set(first).size).toBe(11);
  });
});

describe('the fuzz corpus', () => {
  it('holds valid change events of every ordering family, each decoding at a fresh, growing position', () => {
    // Arrange
    const decoder = new JsonDebeziumDecoder();
    // Act
    const families = new Set(corpus.map((b) => b.family));
    const outcomes = corpus.map((base) =>
      [1, 2].map((n) => decoder.decode(recordOf(base, n, { partition: 0, offset: n }), 0)),
    );
    // Assert
    expect([...families].sort()).toEqual(['kf', 'ms', 'my', 'pg', 'pgu']);
    for (const [first, second] of outcomes) {
      expect(first?.kind).toBe('event');
      expect(second?.kind).toBe('event');
    }
  });
});

describe('the fuzz stream', () => {
  it('is the same for the same seed and differs for another seed', () => {
    // Act
    const first = fingerprint(stream(5, 400));
    const again = fingerprint(stream(5, 400));
    const other = fingerprint(stream(6, 400));
    // Assert
    expect(first).toHaveLength(400);
    expect(again).toEqual(first);
    expect(other).not.toEqual(first);
  });

  it('produces every mutation kind, mixed with valid neighbours and tombstones in batches of several partitions', () => {
    // Arrange
    const counts: MutationCounts = {};
    // Act
    const batches = stream(1, 1_500, counts);
    // Assert
    expect(Object.keys(counts).sort()).toEqual([...MUTATION_KINDS].sort());
    const roles = new Set(batches.flatMap((b) => b.records.map((r) => r.role)));
    expect(roles).toContain('valid');
    expect(roles).toContain('tombstone');
    for (const batch of batches) {
      expect(Object.keys(batch.event.records).length).toBeGreaterThanOrEqual(2);
      expect(batch.records.some((r) => r.role === 'valid')).toBe(true);
      expect(batch.records.some((r) => r.role !== 'valid' && r.role !== 'tombstone')).toBe(true);
    }
    expect(batches.reduce((n, b) => n + b.records.length, 0)).toBe(1_500);
  });

  it('keeps offsets growing per partition across batches, and every record under a few MB', () => {
    // Act
    const batches = stream(9, 1_500);
    // Assert
    const last = new Map<string, number>();
    for (const record of batches.flatMap((b) => b.records)) {
      expect(record.text.length).toBeLessThan(5_000_000);
      if (record.offset < 0) continue;
      expect(record.offset).toBeGreaterThan(last.get(record.partition) ?? -1);
      last.set(record.partition, record.offset);
    }
  });
});

describe('mutations', () => {
  const envelope = () => corpus.find((b) => b.shape === 'envelope' && b.schemas) as Base;

  it.each(MUTATION_KINDS.map((kind) => [kind]))('%s changes the record', (kind) => {
    // Act
    const { original, mutation } = mutated(kind, envelope(), 3);
    // Assert
    expect(mutation.kind).toBe(kind);
    expect(JSON.stringify(mutation.record)).not.toBe(JSON.stringify(original));
    expect(mutation.note).not.toBe('');
  });

  it('cuts a value short: a prefix of the base64 text or of the bytes', () => {
    for (let seed = 0; seed < 40; seed++) {
      // Act
      const { original, mutation } = mutated('truncation', envelope(), seed);
      // Assert
      const value = (mutation.record as KafkaRecord).value as string;
      const bytes = Buffer.from(original.value as string, 'base64');
      const prefixOfText =
        (original.value as string).startsWith(value) && value.length < (original.value as string).length;
      const cut = Buffer.from(value, 'base64');
      const prefixOfBytes = cut.length < bytes.length && bytes.subarray(0, cut.length).equals(cut);
      expect(prefixOfText || prefixOfBytes).toBe(true);
    }
  });

  it('puts bytes no UTF-8 decoder accepts into the value or the key', () => {
    for (let seed = 0; seed < 40; seed++) {
      // Act
      const { mutation } = mutated('invalid-utf8', envelope(), seed);
      // Assert
      const record = mutation.record as KafkaRecord;
      const key = Buffer.from(record.key ?? '', 'base64');
      const value = Buffer.from(record.value ?? '', 'base64');
      expect(isUtf8(key) && isUtf8(value)).toBe(false);
    }
  });

  it('sizes huge values past MAX_RECORD_BYTES as records that must be dead-lettered as RECORD_TOO_LARGE', () => {
    let tooLarge = 0;
    for (let seed = 0; seed < 60; seed++) {
      // Act
      const { mutation } = mutated('huge-string', envelope(), seed);
      // Assert
      const bytes = Buffer.from((mutation.record as KafkaRecord).value ?? '', 'base64').length;
      if (bytes > MAX_RECORD_BYTES) {
        tooLarge++;
        expect(mutation.expect).toEqual({ deadLetter: 'must', codes: ['RECORD_TOO_LARGE'] });
      } else {
        expect(mutation.expect.deadLetter).toBe('may');
      }
    }
    expect(tooLarge).toBeGreaterThan(0);
  });

  it('says which damage a decoder must refuse, with the codes it gives (checked on the JSON decoder)', () => {
    // Arrange
    const decoder = new JsonDebeziumDecoder();
    const mustKinds = new Set<MutationKind>();
    // Act + Assert
    for (const base of corpus) {
      for (const kind of MUTATION_KINDS) {
        if (kind === 'not-a-record' || (base.shape === 'row' && (kind === 'wrong-type' || kind === 'missing-source')))
          continue;
        const { mutation } = mutated(kind, base, base.name.length);
        if (mutation.expect.deadLetter !== 'must') continue;
        mustKinds.add(kind);
        const outcome = decoder.decode(mutation.record as KafkaRecord, 0);
        expect(outcome.kind, `${kind} on ${base.name}: ${mutation.note}`).toBe('error');
        if (outcome.kind === 'error') expect(mutation.expect.codes).toContain(outcome.error.code);
      }
    }
    expect([...mustKinds]).toEqual(
      expect.arrayContaining(['invalid-utf8', 'missing-source', 'truncation', 'unknown-op', 'wrong-type']),
    );
  });

  it('makes something that is not a Kafka record where a record should be', () => {
    // Act
    const shapes = Array.from({ length: 40 }, (_, seed) => mutated('not-a-record', envelope(), seed).mutation);
    // Assert
    for (const m of shapes) {
      expect(m.expect).toEqual({ deadLetter: 'must', codes: ['INVALID_RECORD'] });
      const r = m.record as Partial<KafkaRecord> | null;
      const looksValid =
        r !== null &&
        typeof r === 'object' &&
        !Array.isArray(r) &&
        typeof r.topic === 'string' &&
        r.topic !== '' &&
        Number.isInteger(r.partition) &&
        Number.isInteger(r.offset) &&
        (r.offset as number) >= 0 &&
        typeof r.timestamp === 'number' &&
        (r.value === undefined || r.value === null || typeof r.value === 'string') &&
        (r.key === undefined || r.key === null || typeof r.key === 'string') &&
        (r.headers === undefined || Array.isArray(r.headers));
      expect(looksValid).toBe(false);
    }
  });
});
