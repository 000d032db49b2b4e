import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { SchemaRegistryClient } from '../../functions/core/decode/avro';
import { FormatRoutingDecoder, isRegistryFramed } from '../../functions/core/decode/format-routing';
import { DecodeError, SchemaRegistryError } from '../../functions/core/errors';
import type { DecodeOutcome, Decoder, KafkaRecord } from '../../functions/core/types';
import { createDecoder, LazyGlueRegistryClient, registryClientOf } from '../../functions/shared/lane-deps';
import type { AvroSampleFile } from '../../tools/avro/samples';
import type { KafkaMessage } from '../../tools/lib/event-files';
import { pgMessage, rawRecord, recordOf } from '../support/builders';

function sample(path: string): { file: AvroSampleFile; record: KafkaRecord } {
  const file = JSON.parse(
    readFileSync(new URL(`../../events/avro/${path}`, import.meta.url), 'utf8'),
  ) as AvroSampleFile;
  return { file, record: Object.values(file.records)[0]?.[0] as KafkaRecord };
}

/** A decoder that records what it was given and answers a fixed skip. */
function stub(name: string) {
  const decoded: KafkaRecord[] = [];
  const prepared: KafkaRecord[][] = [];
  const decoder: Decoder = {
    async prepare(records) {
      prepared.push([...records]);
    },
    decode(record) {
      decoded.push(record);
      return { kind: 'skip', reason: name === 'json' ? 'heartbeat' : 'transaction' };
    },
  };
  return { decoder, decoded, prepared };
}

const JSON_RECORD = recordOf(pgMessage({ op: 'c', after: { id: 1 }, lsn: 100 }));
const confluent = (payload: number[]) => rawRecord(Buffer.from([0, 0, 0, 0, 7, ...payload]).toString('base64'));
const glue = (payload: number[]) =>
  rawRecord(Buffer.from([3, 0, ...new Array(16).fill(1), ...payload]).toString('base64'));

function errorCode(outcome: DecodeOutcome): string {
  if (outcome.kind !== 'error') throw new Error(`expected an error, got ${outcome.kind}`);
  return outcome.error.code;
}

describe('isRegistryFramed', () => {
  it('is true for Confluent and Glue frames and false for JSON text', () => {
    // Arrange
    const values = {
      confluent: confluent([2]).value as string,
      glue: glue([2]).value as string,
      object: Buffer.from('{"a":1}').toString('base64'),
      array: Buffer.from('[1]').toString('base64'),
      whitespace: Buffer.from('\n{"a":1}').toString('base64'),
      string: Buffer.from('"x"').toString('base64'),
    };
    // Act
    const framed = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, isRegistryFramed(v)]));
    // Assert
    expect(framed).toEqual({
      confluent: true,
      glue: true,
      object: false,
      array: false,
      whitespace: false,
      string: false,
    });
  });
});

describe('FormatRoutingDecoder', () => {
  it('sends framed values to the Avro decoder and everything else (tombstones too) to the JSON decoder', () => {
    // Arrange
    const json = stub('json');
    const avro = stub('avro');
    const decoder = new FormatRoutingDecoder({ json: json.decoder, avro: avro.decoder });
    const tombstone = rawRecord(null);
    const records = [JSON_RECORD, confluent([2]), glue([2]), tombstone];
    // Act
    for (const record of records) decoder.decode(record, 1);
    // Assert
    expect(json.decoded).toEqual([JSON_RECORD, tombstone]);
    expect(avro.decoded).toEqual([records[1], records[2]]);
  });

  it('prepares the batch with both decoders', async () => {
    // Arrange
    const json = stub('json');
    const avro = stub('avro');
    const decoder = new FormatRoutingDecoder({ json: json.decoder, avro: avro.decoder });
    const batch = [JSON_RECORD, confluent([2])];
    // Act
    await decoder.prepare(batch);
    // Assert
    expect(avro.prepared).toEqual([batch]);
    expect(json.prepared).toEqual([batch]);
  });

  it('dead-letters a framed value as UNSUPPORTED_FORMAT when the lane has no Avro decoder', () => {
    // Arrange
    const json = stub('json');
    const decoder = new FormatRoutingDecoder({ json: json.decoder });
    // Act
    const outcome = decoder.decode(glue([2]), 1);
    // Assert
    expect(errorCode(outcome)).toBe('UNSUPPORTED_FORMAT');
    expect(outcome.kind === 'error' && outcome.error.retryable).toBe(false);
    expect(json.decoded).toEqual([]);
  });
});

describe('createDecoder', () => {
  const env = { MAX_RECORD_BYTES: 1_048_576, UNAVAILABLE_VALUE_PLACEHOLDER: '__debezium_unavailable_value' };

  it('decodes JSON and Glue Avro records of one batch to the same canonical event', async () => {
    // Arrange: the Glue sample and the JSON sample it was encoded from, served by a fake Glue registry.
    const { file, record: avroRecord } = sample('glue/postgres/create.json');
    const jsonRecord = recordOf(
      JSON.parse(readFileSync(new URL(`../../events/${file.json}`, import.meta.url), 'utf8')) as KafkaMessage,
    );
    const registry: SchemaRegistryClient = {
      kind: 'glue',
      getSchema: async (id) => file.registry[id] ?? Promise.reject(new DecodeError('UNKNOWN_SCHEMA_ID', id)),
    };
    const decoder = createDecoder({ ...env, AVRO_REGISTRY: { kind: 'glue', registryName: 'r' } }, undefined, {
      registry,
    });
    // Act
    await decoder.prepare?.([jsonRecord, avroRecord]);
    const fromJson = decoder.decode(jsonRecord, 1);
    const fromAvro = decoder.decode(avroRecord, 1);
    // Assert
    expect(fromAvro.kind).toBe('event');
    expect(fromJson.kind).toBe('event');
    if (fromAvro.kind !== 'event' || fromJson.kind !== 'event') return;
    expect(fromAvro.event.after).toEqual(fromJson.event.after);
    expect(fromAvro.event.key).toEqual(fromJson.event.key);
    expect(fromAvro.event.id).toBe(fromJson.event.id);
  });

  it('without AVRO_REGISTRY decodes JSON and dead-letters Avro as UNSUPPORTED_FORMAT', async () => {
    // Arrange
    const { record: avroRecord } = sample('confluent/postgres/create.json');
    const decoder = createDecoder(env);
    // Act
    await decoder.prepare?.([JSON_RECORD, avroRecord]);
    const outcomes = [decoder.decode(JSON_RECORD, 1), decoder.decode(avroRecord, 1)];
    // Assert
    expect(outcomes[0]?.kind).toBe('event');
    expect(errorCode(outcomes[1] as DecodeOutcome)).toBe('UNSUPPORTED_FORMAT');
  });

  it('builds the registry client AVRO_REGISTRY names', () => {
    // Act
    const glueClient = registryClientOf({ kind: 'glue', registryName: 'cdc-sync-staging' });
    const confluentClient = registryClientOf({ kind: 'confluent', url: 'http://127.0.0.1:8081' });
    // Assert
    expect(glueClient).toBeInstanceOf(LazyGlueRegistryClient);
    expect(glueClient.kind).toBe('glue');
    expect(confluentClient.kind).toBe('confluent');
  });
});

describe('LazyGlueRegistryClient', () => {
  it('loads the Glue client once, on the first fetch, and loads again after a failed load', async () => {
    // Arrange
    let loads = 0;
    const client = new LazyGlueRegistryClient({}, async () => {
      loads++;
      if (loads === 1) throw new SchemaRegistryError('import failed');
      return { kind: 'glue', getSchema: async (id) => `schema ${id}` };
    });
    // Act
    const first = await client.getSchema('a').catch((error: Error) => error.message);
    const second = await client.getSchema('b');
    const third = await client.getSchema('c');
    // Assert
    expect(first).toBe('import failed');
    expect([second, third]).toEqual(['schema b', 'schema c']);
    expect(loads).toBe(2);
  });

  it('does not load anything before the first fetch', () => {
    // Arrange
    let loads = 0;
    // Act
    new LazyGlueRegistryClient({}, async () => {
      loads++;
      return { kind: 'glue', getSchema: async () => '' };
    });
    // Assert
    expect(loads).toBe(0);
  });
});
