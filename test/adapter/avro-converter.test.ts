/**
 * The local AvroConverter against the local registry: what it registers, how it frames, that the lanes' Avro decoder
 * reads back exactly what the JSON decoder reads from the JsonConverter record, and what a refused change says.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfluentRegistryClient } from '../../functions/adapters/confluent-registry-client';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import { AvroDebeziumDecoder, peekSchemaRef } from '../../functions/core/decode/avro';
import type { KafkaRecord } from '../../functions/core/types';
import { readEventFile } from '../../tools/lib/event-files';
import type { CapturedRecord } from '../../tools/local/capture/types';
import { AvroConverter, IncompatibleSchemaError } from '../../tools/local/registry/avro-converter';
import { type LocalRegistry, startLocalRegistry } from '../../tools/local/registry/server';

/** A Kafka record of a JSON sample as the capture hands it over (bytes, not base64). */
async function sampleRecords(path: string): Promise<CapturedRecord[]> {
  const event = await readEventFile(`events/${path}`);
  return Object.values(event.records)
    .flat()
    .map((r) => ({
      topic: r.topic,
      key: r.key ? Buffer.from(r.key, 'base64') : null,
      value: r.value ? Buffer.from(r.value, 'base64') : null,
      headers: [],
      timestamp: r.timestamp,
    }));
}

const asKafka = (record: CapturedRecord, offset: number): KafkaRecord => ({
  topic: record.topic,
  partition: 0,
  offset,
  timestamp: record.timestamp,
  key: record.key?.toString('base64') ?? null,
  value: record.value?.toString('base64') ?? null,
});

/** A one-column change of table t as JsonConverter writes it, with `column` of Connect type `type`. */
function change(column: string, type: string, value: unknown, optional = false): CapturedRecord {
  const row = {
    type: 'struct',
    name: 'pg.public.t.Value',
    optional: true,
    fields: [
      { field: 'id', type: 'int32', optional: false },
      { field: column, type, optional },
    ],
  };
  const schema = {
    type: 'struct',
    name: 'pg.public.t.Envelope',
    optional: false,
    fields: [
      { ...row, field: 'before' },
      { ...row, field: 'after' },
      { field: 'op', type: 'string', optional: false },
    ],
  };
  const payload = { before: null, after: { id: 1, [column]: value }, op: 'c' };
  return {
    topic: 'pg.public.t',
    key: null,
    value: Buffer.from(JSON.stringify({ schema, payload })),
    headers: [],
    timestamp: 0,
  };
}

describe('AvroConverter (local)', () => {
  let registry: LocalRegistry;
  beforeEach(async () => {
    registry = await startLocalRegistry();
  });
  afterEach(async () => {
    await registry.close();
  });

  it('registers <topic>-key and <topic>-value once, frames every record, and decodes to the JSON events', async () => {
    // Arrange
    const records = [...(await sampleRecords('postgres/types.json')), ...(await sampleRecords('postgres/update.json'))];
    const converter = new AvroConverter({ url: registry.url, topicPrefix: 'pg' });

    // Act
    const converted = await converter.convert(records);
    const again = await converter.convert(records);
    const avro = new AvroDebeziumDecoder({ registries: [new ConfluentRegistryClient({ url: registry.url })] });
    const kafka = converted.map(asKafka);
    await avro.prepare(kafka);

    // Assert: framed, subjects by topic, the same ids the second time, the same canonical events
    for (const record of converted) {
      expect(peekSchemaRef(record.value?.toString('base64') ?? '')?.registry).toBe('confluent');
    }
    const topics = [...new Set(records.map((r) => r.topic))];
    expect(registry.state.subjectNames()).toEqual(
      expect.arrayContaining(topics.flatMap((t) => [`${t}-key`, `${t}-value`])),
    );
    expect(again.map((r) => r.value?.toString('hex'))).toEqual(converted.map((r) => r.value?.toString('hex')));
    const json = new JsonDebeziumDecoder();
    const expected = records.map((r, i) => json.decode(asKafka(r, i), 0));
    const actual = kafka.map((r) => avro.decode(r, 0));
    expect(actual.map((o) => (o.kind === 'event' ? o.event : o))).toEqual(
      expected.map((o) => (o.kind === 'event' ? o.event : o)),
    );
    expect(converter.stats.avroBytes).toBeLessThan(converter.stats.jsonBytes);
  });

  it('a retype the subject level refuses fails with the table, the change and the rule; a promotion passes', async () => {
    // Arrange
    const converter = new AvroConverter({ url: registry.url, topicPrefix: 'pg' });
    await converter.convert([change('size', 'int32', 10)]);

    // Act: int → long is a promotion BACKWARD reads; long → string is not
    await converter.convert([change('size', 'int64', 11)]);
    const refused = await converter.convert([change('size', 'string', 'XL')]).catch((error: unknown) => error);

    // Assert
    expect(refused).toBeInstanceOf(IncompatibleSchemaError);
    const error = refused as IncompatibleSchemaError;
    expect(error).toMatchObject({ table: 'public.t', subject: 'pg.public.t-value', level: 'BACKWARD' });
    expect(error.message).toMatch(/public\.t .*BACKWARD.*size: TYPE_MISMATCH/);
    expect(registry.state.versionsOf('pg.public.t-value')).toHaveLength(2);
  });

  it('under a transitive level the violations name every version they break', async () => {
    // Arrange: v1 int, v2 long (a promotion), under BACKWARD_TRANSITIVE
    registry.state.globalLevel = 'BACKWARD_TRANSITIVE';
    const converter = new AvroConverter({ url: registry.url, topicPrefix: 'pg' });
    await converter.convert([change('size', 'int32', 1)]);
    await converter.convert([change('size', 'int64', 2)]);

    // Act: a boolean reads neither
    const refused = await converter.convert([change('size', 'boolean', true)]).catch((error: unknown) => error);

    // Assert
    expect(refused).toBeInstanceOf(IncompatibleSchemaError);
    const { violations } = refused as IncompatibleSchemaError;
    expect(violations.some((v) => v.includes('backward, v1'))).toBe(true);
    expect(violations.some((v) => v.includes('backward, v2'))).toBe(true);
  });
});
