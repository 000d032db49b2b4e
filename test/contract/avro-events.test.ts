/**
 * Contract test of the Avro samples (events/avro/, written by tools/avro/samples.ts with real Avro encoding): each is
 * the Avro twin of a JSON sample, and the Avro decoder must produce that JSON sample's reviewed expected output
 * (events/expected/<json>.jsonl) line for line, in both wire formats — one canonical event whatever the converter.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import { AvroDebeziumDecoder, type SchemaRegistryClient } from '../../functions/core/decode/avro';
import { DecodeError } from '../../functions/core/errors';
import type { DecodeOutcome, KafkaEvent, KafkaRecord } from '../../functions/core/types';
import { type AvroSampleFile, avroSampleOf, jsonSamples } from '../../tools/avro/samples';
import { readEventFile } from '../../tools/lib/event-files';

const EVENTS_DIR = fileURLToPath(new URL('../../events/', import.meta.url));
const PROCESSED_AT = 1_710_500_000_000;

/** A registry serving a sample file's schemas. */
function registryOf(sample: AvroSampleFile, kind: 'confluent' | 'glue'): SchemaRegistryClient {
  return {
    kind,
    getSchema: async (id) => {
      const text = sample.registry[id];
      if (text === undefined) throw new DecodeError('UNKNOWN_SCHEMA_ID', `no schema ${id}`);
      return text;
    },
  };
}

function recordsInOrder(event: KafkaEvent): KafkaRecord[] {
  return Object.keys(event.records)
    .sort()
    .flatMap((key) => [...(event.records[key] ?? [])].sort((a, b) => a.offset - b.offset));
}

/** The line `npm run decode` prints (errors by code only, as in events.test.ts). */
function lineOf(record: KafkaRecord, outcome: DecodeOutcome): unknown {
  const kafka = { topic: record.topic, partition: record.partition, offset: record.offset };
  if (outcome.kind === 'event') return JSON.parse(JSON.stringify(outcome.event));
  if (outcome.kind === 'skip') return { skipped: outcome.reason, kafka };
  if (outcome.kind === 'error') return { error: { code: outcome.error.code }, kafka };
  return { [outcome.kind]: true, kafka };
}

function expectedLines(jsonPath: string): unknown[] {
  return readFileSync(join(EVENTS_DIR, 'expected', `${jsonPath}.jsonl`), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .map((line) =>
      'error' in line ? { error: { code: (line.error as { code: string }).code }, kafka: line.kafka } : line,
    );
}

async function decodeSample(framing: 'confluent' | 'glue', path: string) {
  const file = join(EVENTS_DIR, 'avro', framing, path);
  const sample = JSON.parse(readFileSync(file, 'utf8')) as AvroSampleFile;
  const event = await readEventFile(file);
  const decoder = new AvroDebeziumDecoder({ registries: [registryOf(sample, framing)] });
  const records = recordsInOrder(event);
  await decoder.prepare(records);
  const outcomes = records.map((record) => decoder.decode(record, PROCESSED_AT));
  return { sample, records, outcomes };
}

function avroSamples(framing: 'confluent' | 'glue'): string[] {
  return readdirSync(join(EVENTS_DIR, 'avro', framing), { recursive: true, encoding: 'utf8' })
    .map((path) => path.split('\\').join('/'))
    .filter((path) => path.endsWith('.json'))
    .sort();
}

const CASES = (['confluent', 'glue'] as const).flatMap((framing) =>
  avroSamples(framing).map((path) => [framing, path] as const),
);

describe('events/avro samples', () => {
  it('cover every logical type sample in both wire formats', () => {
    // Arrange + Act
    const confluent = avroSamples('confluent');
    // Assert
    expect(avroSamples('glue')).toEqual(confluent);
    expect(confluent).toEqual(
      expect.arrayContaining([
        'postgres/types.json',
        'mysql/types.json',
        'sqlserver/create.json',
        'postgres/toast-update.json',
        'postgres/timestamp-infinity.json',
        'postgres/delete.json',
        'postgres/unwrap/add-fields.json',
        'postgres/unwrap/row.json',
      ]),
    );
  });

  it.each(CASES)('%s/%s decodes to the JSON sample’s expected output', async (framing, path) => {
    // Arrange
    const expected = expectedLines(path);
    // Act
    const { sample, records, outcomes } = await decodeSample(framing, path);
    // Assert
    expect(sample.json).toBe(path);
    expect(records.map((record, i) => lineOf(record, outcomes[i] as DecodeOutcome))).toEqual(expected);
  });

  it.each(CASES)('%s/%s gives the JSON path’s column types and table schema version', async (framing, path) => {
    // Arrange
    const json = new JsonDebeziumDecoder();
    const jsonRecords = recordsInOrder(await readEventFile(join(EVENTS_DIR, path)));
    // Act
    const { outcomes } = await decodeSample(framing, path);
    // Assert
    const columnsOf = (o: DecodeOutcome | undefined) =>
      o?.kind === 'event' ? [...(o.columns ?? new Map())] : undefined;
    expect(outcomes.map(columnsOf)).toEqual(jsonRecords.map((r) => columnsOf(json.decode(r, PROCESSED_AT))));
  });

  it.each(CASES)(
    '%s/%s is what tools/avro/samples.ts writes (regenerate after changing a JSON sample)',
    async (framing, path) => {
      // Arrange
      const committed = readFileSync(join(EVENTS_DIR, 'avro', framing, path), 'utf8');
      // Act
      const generated = await avroSampleOf(path, framing);
      // Assert
      expect(`${JSON.stringify(generated, null, 2)}\n`).toBe(committed);
    },
  );

  it('has an Avro twin for every JSON sample that has an Avro encoding', async () => {
    // Arrange
    const twins = new Set(avroSamples('confluent'));
    const unexplained: string[] = [];
    // Act: a sample without twin must have a record without a Connect schema (schemaless: no Avro schema to use) or
    // a JsonConverter-only shape (NUMERIC decimals do not encode).
    for (const path of jsonSamples().filter((p) => !twins.has(p))) {
      const sample = await avroSampleOf(path, 'confluent').catch(() => undefined);
      if (sample !== undefined) unexplained.push(path);
    }
    // Assert
    expect(unexplained, 'JSON samples without Avro twin: run `npx tsx tools/avro/samples.ts`').toEqual([]);
  });
});
