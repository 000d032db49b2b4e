import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  AvroDebeziumDecoder,
  avroToConnect,
  compileAvroType,
  confluentFrame,
  connectToAvro,
  glueFrame,
  readFrame,
  type SchemaRegistryClient,
} from '../../functions/core/decode/avro';
import type { ConnectSchema } from '../../functions/core/decode/avro/connect';
import { DecodeError, SchemaRegistryError } from '../../functions/core/errors';
import type { DecodeOutcome, KafkaRecord } from '../../functions/core/types';
import type { AvroSampleFile } from '../../tools/avro/samples';

const SAMPLE = JSON.parse(
  readFileSync(new URL('../../events/avro/confluent/postgres/create.json', import.meta.url), 'utf8'),
) as AvroSampleFile;
const RECORD = Object.values(SAMPLE.records)[0]?.[0] as KafkaRecord;

function registry(getSchema: (id: string) => Promise<string>, kind: 'confluent' | 'glue' = 'confluent') {
  let calls = 0;
  const client: SchemaRegistryClient = {
    kind,
    getSchema: (id) => {
      calls++;
      return getSchema(id);
    },
  };
  return { client, calls: () => calls };
}

const serving = (id: string) => {
  const text = SAMPLE.registry[id];
  return text === undefined
    ? Promise.reject(new DecodeError('UNKNOWN_SCHEMA_ID', `schema ${id} not found`))
    : Promise.resolve(text);
};

function errorOf(outcome: DecodeOutcome): { code: string; retryable: boolean } {
  if (outcome.kind !== 'error') throw new Error(`expected an error, got ${outcome.kind}`);
  return { code: outcome.error.code, retryable: outcome.error.retryable };
}

describe('AvroDebeziumDecoder', () => {
  it('fetches each schema id once across batches', async () => {
    // Arrange
    const { client, calls } = registry(serving);
    const decoder = new AvroDebeziumDecoder({ registries: [client] });
    // Act
    await decoder.prepare([RECORD, RECORD]);
    await decoder.prepare([RECORD]);
    const outcome = decoder.decode(RECORD, 1);
    // Assert
    expect(outcome.kind).toBe('event');
    expect(calls()).toBe(2); // the key schema and the value schema
  });

  it('reports a registry outage as retryable and recovers on the next prepare', async () => {
    // Arrange
    let down = true;
    const { client } = registry((id) =>
      down ? Promise.reject(new SchemaRegistryError('connect ECONNREFUSED')) : serving(id),
    );
    const decoder = new AvroDebeziumDecoder({ registries: [client] });
    // Act
    await decoder.prepare([RECORD]);
    const during = decoder.decode(RECORD, 1);
    down = false;
    await decoder.prepare([RECORD]);
    const after = decoder.decode(RECORD, 1);
    // Assert
    expect(errorOf(during)).toEqual({ code: 'SCHEMA_REGISTRY_UNAVAILABLE', retryable: true });
    expect(after.kind).toBe('event');
  });

  it('treats a client failure that is not typed as the registry being unavailable', async () => {
    // Arrange
    const { client } = registry(() => Promise.reject(new Error('socket hang up')));
    const decoder = new AvroDebeziumDecoder({ registries: [client] });
    // Act
    await decoder.prepare([RECORD]);
    // Assert
    expect(errorOf(decoder.decode(RECORD, 1))).toEqual({ code: 'SCHEMA_REGISTRY_UNAVAILABLE', retryable: true });
  });

  it('dead-letters an unknown schema id, and asks again only after the TTL', async () => {
    // Arrange
    let now = 0;
    const { client, calls } = registry(() => Promise.reject(new DecodeError('UNKNOWN_SCHEMA_ID', 'not found')));
    const decoder = new AvroDebeziumDecoder({ registries: [client], unknownIdTtlMs: 1000, now: () => now });
    // Act
    await decoder.prepare([{ ...RECORD, key: null }]);
    await decoder.prepare([{ ...RECORD, key: null }]);
    const callsWithinTtl = calls();
    now = 2000;
    await decoder.prepare([{ ...RECORD, key: null }]);
    // Assert
    expect(errorOf(decoder.decode(RECORD, 1))).toEqual({ code: 'UNKNOWN_SCHEMA_ID', retryable: false });
    expect(callsWithinTtl).toBe(1);
    expect(calls()).toBe(2);
  });

  it('says prepare() was skipped with a retryable error', () => {
    // Arrange
    const decoder = new AvroDebeziumDecoder({ registries: [registry(serving).client] });
    // Act
    const outcome = decoder.decode(RECORD, 1);
    // Assert
    expect(errorOf(outcome)).toEqual({ code: 'SCHEMA_REGISTRY_UNAVAILABLE', retryable: true });
    expect(outcome.kind === 'error' && outcome.error.message).toMatch(/prepare\(\)/);
  });

  it.each([
    ['a JSON value', Buffer.from('{"op":"c"}').toString('base64'), 'UNSUPPORTED_FORMAT'],
    [
      'an unknown Glue compression byte',
      Buffer.concat([Buffer.from([3, 9]), Buffer.alloc(20)]).toString('base64'),
      'UNSUPPORTED_FORMAT',
    ],
    [
      'Glue zlib bytes that do not inflate',
      Buffer.concat([Buffer.from([3, 5]), Buffer.alloc(20, 1)]).toString('base64'),
      'INVALID_AVRO',
    ],
    ['bad base64', '!!!not base64', 'BAD_BASE64'],
  ])('dead-letters %s', async (_what, value, code) => {
    // Arrange
    const decoder = new AvroDebeziumDecoder({
      registries: [registry(serving).client, registry(serving, 'glue').client],
    });
    const record = { ...RECORD, value };
    // Act
    await decoder.prepare([record]);
    // Assert
    expect(errorOf(decoder.decode(record, 1))).toEqual({ code, retryable: false });
  });

  it.each([
    ['truncated', (b: Buffer) => b.subarray(0, b.length - 3)],
    ['with trailing bytes', (b: Buffer) => Buffer.concat([b, Buffer.from([1, 2, 3])])],
  ])('dead-letters an Avro body %s as INVALID_AVRO', async (_what, corrupt) => {
    // Arrange
    const decoder = new AvroDebeziumDecoder({ registries: [registry(serving).client] });
    const record = { ...RECORD, value: corrupt(Buffer.from(RECORD.value as string, 'base64')).toString('base64') };
    // Act
    await decoder.prepare([record]);
    // Assert
    expect(errorOf(decoder.decode(record, 1))).toEqual({ code: 'INVALID_AVRO', retryable: false });
  });

  it('dead-letters a frame of a registry the lane has no client for', async () => {
    // Arrange
    const decoder = new AvroDebeziumDecoder({ registries: [registry(serving, 'glue').client] });
    // Act
    await decoder.prepare([RECORD]);
    // Assert
    expect(errorOf(decoder.decode(RECORD, 1))).toEqual({ code: 'UNSUPPORTED_FORMAT', retryable: false });
  });

  it('dead-letters a registry schema that is not Avro', async () => {
    // Arrange
    const decoder = new AvroDebeziumDecoder({ registries: [registry(async () => '{"type":"nonsense"}').client] });
    // Act
    await decoder.prepare([RECORD]);
    // Assert
    expect(errorOf(decoder.decode(RECORD, 1))).toEqual({ code: 'INVALID_AVRO', retryable: false });
  });

  it('reads a JsonConverter key next to an Avro value', async () => {
    // Arrange
    const decoder = new AvroDebeziumDecoder({ registries: [registry(serving).client] });
    const key = Buffer.from(
      '{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"}],"optional":false},"payload":{"id":1001}}',
    ).toString('base64');
    const record = { ...RECORD, key };
    // Act
    await decoder.prepare([record]);
    const outcome = decoder.decode(record, 1);
    // Assert
    expect(outcome.kind === 'event' && outcome.event.key).toEqual({ id: 1001 });
  });

  it('gives the table schema version of the row struct, shared by every record of that schema', async () => {
    // Arrange
    const decoder = new AvroDebeziumDecoder({ registries: [registry(serving).client] });
    await decoder.prepare([RECORD]);
    // Act
    const first = decoder.decode(RECORD, 1);
    const second = decoder.decode(RECORD, 2);
    // Assert
    const schemaOf = (o: DecodeOutcome) => (o.kind === 'event' ? o.schema : undefined);
    expect(schemaOf(first)?.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(schemaOf(first)).toBe(schemaOf(second));
    expect(schemaOf(first)?.columns.find((c) => c.name === 'total')).toEqual({
      name: 'total',
      type: 'bytes',
      logical: 'org.apache.kafka.connect.data.Decimal',
      optional: true,
      parameters: { scale: '2', 'connect.decimal.precision': '10' },
    });
  });
});

describe('wire formats', () => {
  it('reads the Confluent and Glue headers (docs/formats.md examples)', () => {
    // Arrange
    const avro = Buffer.from('54046162', 'hex');
    // Act
    const confluent = readFrame(Buffer.from('AAAAAAdUBGFi', 'base64'), 'value');
    const glue = readFrame(Buffer.from('AwASNFZ4EjQSNBI0EjRWeJASVARhYg==', 'base64'), 'value');
    // Assert
    expect(confluent.registry).toBe('confluent');
    expect(confluent.schemaId).toBe('7');
    expect(glue.schemaId).toBe('12345678-1234-1234-1234-123456789012');
    expect(glue.payload.toString('hex')).toBe('54046162');
    expect(confluent.payload).toEqual(avro);
  });

  it('round-trips Glue zlib framing', () => {
    // Arrange
    const payload = Buffer.from('a payload that compresses compresses compresses');
    // Act
    const frame = readFrame(glueFrame('12345678-1234-1234-1234-123456789012', payload, true), 'value');
    // Assert
    expect(frame.payload).toEqual(payload);
    expect(readFrame(confluentFrame(42, payload), 'key').schemaId).toBe('42');
  });
});

describe('Connect ↔ Avro schemas', () => {
  const decimal: ConnectSchema = {
    type: 'bytes',
    optional: true,
    name: 'org.apache.kafka.connect.data.Decimal',
    version: 1,
    parameters: { scale: '2', 'connect.decimal.precision': '10' },
    field: 'price',
  };
  const row: ConnectSchema = {
    type: 'struct',
    optional: true,
    name: 'pg.public.t.Value',
    fields: [
      { type: 'int16', optional: false, field: 'small' },
      decimal,
      {
        type: 'string',
        optional: true,
        name: 'io.debezium.data.Enum',
        version: 1,
        parameters: { allowed: 'a,b' },
        default: 'a',
        field: 'mood',
      },
      { type: 'array', optional: true, items: { type: 'int64', optional: true }, field: 'ids' },
    ],
  };

  it('writes what AvroData registers: connect.* properties, [null,T] unions, [T,null] with a default', () => {
    // Act
    const avro = connectToAvro({ ...row, optional: false }) as {
      fields: Array<{ name: string; type: unknown; default?: unknown }>;
    };
    // Assert
    expect(avro.fields[0]).toEqual({ name: 'small', type: { type: 'int', 'connect.type': 'int16' } });
    expect(avro.fields[1]).toEqual({
      name: 'price',
      type: [
        'null',
        {
          type: 'bytes',
          scale: 2,
          precision: 10,
          'connect.version': 1,
          'connect.parameters': { scale: '2', 'connect.decimal.precision': '10' },
          'connect.name': 'org.apache.kafka.connect.data.Decimal',
          logicalType: 'decimal',
        },
      ],
      default: null,
    });
    expect(avro.fields[2]?.type).toEqual([expect.objectContaining({ type: 'string', 'connect.default': 'a' }), 'null']);
    expect(avro.fields[2]?.default).toBe('a');
  });

  it('reads back the Connect schema it came from', () => {
    // Act
    const back = avroToConnect(connectToAvro({ ...row, optional: false }));
    // Assert
    expect(back).toEqual({ ...row, optional: false });
  });

  it('reads longs beyond 2^53 as digit strings and NaN as "NaN", like JsonConverter', () => {
    // Arrange
    const type = compileAvroType({
      type: 'record',
      name: 'R',
      fields: [
        { name: 'n', type: 'long' },
        { name: 'd', type: 'double' },
      ],
    });
    // Act
    const value = type.fromBuffer(type.toBuffer({ n: '1710498600123457001', d: 'NaN' }));
    // Assert
    expect(value).toEqual({ n: '1710498600123457001', d: 'NaN' });
  });
});
