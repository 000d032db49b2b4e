import { describe, expect, it } from 'vitest';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import { parseJson } from '../../functions/core/decode/json';
import {
  dateFromDays,
  decimalFromBase64,
  decimalValue,
  naiveTimestamp,
  timeOfDay,
  variableScaleDecimal,
  zonedTimestamp,
} from '../../functions/core/decode/logical';
import { compareOrder } from '../../functions/core/dedupe';
import type { ChangeEvent, DecodeOutcome } from '../../functions/core/types';
import { b64, pgMessage, rawRecord, recordOf } from '../support/builders';

const decoder = () => new JsonDebeziumDecoder();
const PROCESSED_AT = 1_710_498_700_000;

function eventOf(outcome: DecodeOutcome): ChangeEvent {
  if (outcome.kind !== 'event') throw new Error(`expected an event, got ${JSON.stringify(outcome)}`);
  return outcome.event;
}

describe('logical types', () => {
  it.each([
    ['Jw8=', 2, '99.99'],
    ['MDk=', 2, '123.45'],
    ['AIA=', 2, '1.28'],
    ['B8s=', 2, '19.95'],
    ['AA==', 2, '0.00'],
    ['nA==', 2, '-1.00'],
    ['/w==', 2, '-0.01'],
    ['AQ==', 0, '1'],
    // 2^63 as an unscaled value needs 9 bytes (BigInt path): 9223372036854775808 / 10^4
    [Buffer.from('008000000000000000', 'hex').toString('base64'), 4, '922337203685477.5808'],
    [Buffer.from('ff7fffffffffffffff', 'hex').toString('base64'), 0, '-9223372036854775809'],
  ])('Decimal %s with scale %i is %s', (base64, scale, expected) => {
    // Arrange + Act
    const value = decimalFromBase64(base64, scale);
    // Assert
    expect(value).toBe(expected);
  });

  it.each([
    ['12345678901234567.89', 2, '12345678901234567.89'],
    ['1.5', 2, '1.50'],
    ['1.2E+3', 2, '1200.00'],
    ['-0.000', 3, '0.000'],
    ['12345678901234567890', 0, '12345678901234567890'],
  ])('a NUMERIC-format decimal %s with scale %i is %s', (text, scale, expected) => {
    expect(decimalValue(text, scale)).toBe(expected);
  });

  it('decodes small decimals without a Buffer exactly as the BigInt path does (two-complement, 1-8 bytes)', () => {
    // Arrange: deterministic pseudo-random byte strings
    let seed = 7;
    const next = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed & 0xff;
    };
    for (let n = 0; n < 3000; n++) {
      const bytes = Buffer.from(Array.from({ length: 1 + (n % 8) }, next));
      let expected = 0n;
      for (const b of bytes) expected = (expected << 8n) | BigInt(b);
      if ((bytes[0] as number) & 0x80) expected -= 1n << BigInt(bytes.length * 8);
      // Act + Assert
      expect(decimalFromBase64(bytes.toString('base64'), 0)).toBe(expected.toString());
    }
  });

  it('VariableScaleDecimal uses its own scale', () => {
    expect(variableScaleDecimal({ scale: 3, value: 'MDk=' })).toBe('12.345');
  });

  it.each([
    [19797, '2024-03-15'],
    [0, '1970-01-01'],
    [-1, '1969-12-31'],
  ])('Date %i is %s', (days, expected) => {
    expect(dateFromDays(days)).toBe(expected);
  });

  it.each([
    [1_710_498_600_123, 1_000, '2024-03-15T10:30:00.123'],
    [1_710_498_600_123_456, 1_000_000, '2024-03-15T10:30:00.123456'],
    ['1710498600123456789', 1_000_000_000, '2024-03-15T10:30:00.123456789'],
    [-1, 1_000_000, '1969-12-31T23:59:59.999999'],
    ['9223372036825200000', 1_000_000, 'infinity'],
    ['-9223372036832400000', 1_000_000, '-infinity'],
  ] as const)('naive timestamp %s (%i per second) is %s', (value, unit, expected) => {
    expect(naiveTimestamp(value, unit)).toBe(expected);
  });

  it.each([
    [45_000_123, 1_000, '12:30:00.123'],
    [45_000_123_456, 1_000_000, '12:30:00.123456'],
    [86_400_000_000, 1_000_000, '24:00:00.000000'],
  ] as const)('time %i is %s', (value, unit, expected) => {
    expect(timeOfDay(value, unit)).toBe(expected);
  });

  it.each([
    ['2024-03-15T10:30:00.123456Z', '2024-03-15T10:30:00.123456Z'],
    ['2024-03-15T10:30:00.123000Z', '2024-03-15T10:30:00.123Z'],
    ['2024-03-15T10:30:00Z', '2024-03-15T10:30:00Z'],
    ['2024-03-15T10:30:00.000Z', '2024-03-15T10:30:00Z'],
    ['2024-03-15T12:30:00.5+02:00', '2024-03-15T10:30:00.5Z'],
  ])('ZonedTimestamp %s is normalised to %s', (value, expected) => {
    expect(zonedTimestamp(value)).toBe(expected);
  });
});

describe('timestamp formatting', () => {
  it('formats epoch milliseconds exactly like Date#toISOString across years 1-9999', () => {
    // Arrange: deterministic pseudo-random instants, plus edges
    const instants = [0, -1, 86_399_999, 951_782_400_000, -62_135_596_800_000, 253_402_300_799_999];
    let seed = 42;
    for (let i = 0; i < 5000; i++) {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      instants.push(Math.floor((seed / 2 ** 31) * 315_537_897_599_999) - 62_135_596_800_000);
    }
    // Act + Assert
    for (const ms of instants) expect(naiveTimestamp(ms, 1_000)).toBe(new Date(ms).toISOString().slice(0, -1));
  });
});

describe('JSON with large integers', () => {
  it('keeps every digit of integers beyond 2^53 and leaves safe ones as numbers', () => {
    // Arrange
    const text =
      '{"lsn":18446744073709551615,"ts_ns":1710498600123456789,"ts_us":1710498600123456,"n":-12345678901234567890,"f":1.5}';
    // Act
    const parsed = parseJson(text) as Record<string, unknown>;
    // Assert
    expect(parsed).toEqual({
      lsn: '18446744073709551615',
      ts_ns: '1710498600123456789',
      ts_us: 1_710_498_600_123_456,
      n: '-12345678901234567890',
      f: 1.5,
    });
  });

  it('keeps decimals a double cannot hold as exact text, and doubles it can as numbers', () => {
    const parsed = parseJson('{"a":12345678901234567.89,"b":1234567.891234567,"c":0.1}') as Record<string, unknown>;
    expect(parsed).toEqual({ a: '12345678901234567.89', b: 1234567.891234567, c: 0.1 });
  });

  it('falls back to the lossless parser when digits inside a string look like a number', () => {
    // Arrange: a string value containing ":<18 digits>," would be corrupted by a naive replacement
    const text = '{"note":"x:123456789012345678,y","big":123456789012345678}';
    // Act
    const parsed = parseJson(text) as Record<string, unknown>;
    // Assert
    expect(parsed).toEqual({ note: 'x:123456789012345678,y', big: '123456789012345678' });
  });

  it('throws on invalid JSON', () => {
    expect(() => parseJson('{"a":')).toThrow();
  });
});

describe('JsonDebeziumDecoder', () => {
  it('decodes a PostgreSQL create into the canonical event', () => {
    // Arrange
    const record = recordOf(
      pgMessage({
        op: 'c',
        after: { id: 7, status: 'new' },
        lsn: 33_816_536,
        lastCommitLsn: 33_816_400,
        txId: 771,
        offset: 41,
      }),
    );
    // Act
    const event = eventOf(decoder().decode(record, PROCESSED_AT));
    // Assert
    expect(event).toEqual({
      id: 'pg.public.orders/lsn=33816536/{"id":7}',
      op: 'c',
      source: {
        connector: 'postgresql',
        name: 'pg',
        db: 'shop',
        schema: 'public',
        table: 'orders',
        position: { lsn: '33816536', lastCommitLsn: '33816400' },
        order: 'pg:1:00000000000033816400:00000000000033816536',
        snapshot: 'false',
        txId: '771',
        commitTs: 1_710_498_600_000 + 33_816_536,
      },
      key: { id: 7 },
      before: null,
      after: { id: 7, status: 'new' },
      unchanged: [],
      kafka: { topic: 'pg.public.orders', partition: 0, offset: 41, timestamp: record.timestamp },
      capturedAt: 1_710_498_600_000 + 33_816_536 + 5,
      processedAt: PROCESSED_AT,
    });
  });

  it('gives a change re-emitted at another Kafka offset the same id', () => {
    // Arrange
    const first = recordOf(pgMessage({ op: 'u', after: { id: 1, v: 2 }, lsn: 500, offset: 10 }));
    const again = recordOf(pgMessage({ op: 'u', after: { id: 1, v: 2 }, lsn: 500, offset: 99 }));
    // Act
    const a = eventOf(decoder().decode(first, 1));
    const b = eventOf(decoder().decode(again, 2));
    // Assert
    expect(a.id).toBe(b.id);
    expect(a.kafka.offset).not.toBe(b.kafka.offset);
  });

  it('gives snapshot reads sharing one position different ids (the key is part of the id)', () => {
    const a = eventOf(
      decoder().decode(recordOf(pgMessage({ op: 'r', after: { id: 1 }, lsn: 100, snapshot: 'first' })), 1),
    );
    const b = eventOf(
      decoder().decode(recordOf(pgMessage({ op: 'r', after: { id: 2 }, lsn: 100, snapshot: 'true' })), 1),
    );
    expect(a.id).not.toBe(b.id);
    expect(a.source.order).toBe(b.source.order);
  });

  it('orders PostgreSQL changes of a stream by (last commit LSN, LSN), not by the change LSN alone', () => {
    // Arrange: T2 (change at 200) commits before T1 (change at 100); pgoutput streams T2 first.
    const t2 = eventOf(
      decoder().decode(recordOf(pgMessage({ op: 'c', after: { id: 1 }, lsn: 200, lastCommitLsn: 150 })), 1),
    );
    const t1 = eventOf(
      decoder().decode(recordOf(pgMessage({ op: 'c', after: { id: 2 }, lsn: 100, lastCommitLsn: 400 })), 1),
    );
    // Assert
    expect(compareOrder(t2.source.order, t1.source.order)).toBe(-1);
  });

  it('orders a PostgreSQL snapshot read below any streamed change, even one written earlier', () => {
    const read = eventOf(
      decoder().decode(
        recordOf(pgMessage({ op: 'r', after: { id: 1 }, lsn: 500, lastCommitLsn: null, snapshot: 'last' })),
        1,
      ),
    );
    const first = eventOf(
      decoder().decode(recordOf(pgMessage({ op: 'u', after: { id: 1 }, lsn: 450, lastCommitLsn: null })), 1),
    );
    expect(read.source.order < first.source.order).toBe(true);
  });

  it('orders an incremental read (at its high watermark) below an update written earlier but committed later', () => {
    // Arrange: the chunk's window closed at LSN 500 with the last commit at 450; the update was written at LSN 300,
    // before the chunk's SELECT, and committed after the window (its lastCommitLsn is 520).
    const read = eventOf(
      decoder().decode(
        recordOf(
          pgMessage({ op: 'r', after: { id: 1, v: 'old' }, lsn: 500, lastCommitLsn: 450, snapshot: 'incremental' }),
        ),
        1,
      ),
    );
    const update = eventOf(
      decoder().decode(recordOf(pgMessage({ op: 'u', after: { id: 1, v: 'new' }, lsn: 300, lastCommitLsn: 520 })), 1),
    );
    // Assert: newer per row (the sinks' string comparison) and across rows (the dedupe)
    expect(read.source.snapshot).toBe('incremental');
    expect(read.source.order).toBe('pg:1:00000000000000000450:00000000000000000500');
    expect(update.source.order > read.source.order).toBe(true);
    expect(compareOrder(update.source.order, read.source.order)).toBe(1);
  });

  it('orders an incremental read above every change committed before its window', () => {
    const read = eventOf(
      decoder().decode(
        recordOf(pgMessage({ op: 'r', after: { id: 1 }, lsn: 500, lastCommitLsn: 450, snapshot: 'incremental' })),
        1,
      ),
    );
    const before = eventOf(
      decoder().decode(recordOf(pgMessage({ op: 'u', after: { id: 1 }, lsn: 449, lastCommitLsn: 400 })), 1),
    );
    expect(before.source.order < read.source.order).toBe(true);
    expect(compareOrder(before.source.order, read.source.order)).toBe(-1);
  });

  it.each([
    ['value null', null, 'tombstone'],
    ['value absent', undefined, 'tombstone'],
  ])('skips a tombstone (%s)', (_name, value, reason) => {
    const outcome = decoder().decode(rawRecord(value as string | null | undefined), 1);
    expect(outcome).toEqual({ kind: 'skip', reason });
  });

  it.each([
    ['heartbeat topic', '__debezium-heartbeat.pg', '{"ts_ms":1710498600000}', 'heartbeat'],
    ['heartbeat shape', 'pg.hb', '{"ts_ms":1710498600000}', 'heartbeat'],
    [
      'transaction BEGIN',
      'pg.transaction',
      '{"status":"BEGIN","id":"571:53195832","ts_ms":1,"event_count":null,"data_collections":null}',
      'transaction',
    ],
    [
      'transaction END',
      'pg.transaction',
      '{"status":"END","id":"571:53195832","ts_ms":1,"event_count":2,"data_collections":[]}',
      'transaction',
    ],
    [
      'logical message',
      'pg.message',
      '{"op":"m","source":{"connector":"postgresql","name":"pg","lsn":5,"ts_ms":1},"message":{"prefix":"p","content":"aGk="}}',
      'logical-message',
    ],
  ])('skips a %s', (_name, topic, value, reason) => {
    // Act
    const outcome = decoder().decode(rawRecord(b64(value), { topic }), 1);
    // Assert
    expect(outcome).toEqual({ kind: 'skip', reason });
  });

  it.each([
    ['bad base64', '!!!not base64!!!', 'BAD_BASE64'],
    ['invalid UTF-8', Buffer.from([0x7b, 0xc3, 0x28, 0x7d]).toString('base64'), 'INVALID_UTF8'],
    ['not JSON', b64('op=c,id=1'), 'NOT_JSON'],
    ['a JSON array', b64('[1,2]'), 'NOT_AN_OBJECT'],
    ['an unknown op', b64('{"op":"x","source":{"connector":"postgresql","name":"pg","lsn":1}}'), 'UNKNOWN_OP'],
    ['no source', b64('{"op":"c","after":{"id":1}}'), 'MISSING_SOURCE'],
    [
      'a create without after',
      b64('{"op":"c","source":{"connector":"postgresql","name":"pg","lsn":1},"after":null}'),
      'INVALID_ENVELOPE',
    ],
    [
      'a postgres source without lsn',
      b64('{"op":"c","source":{"connector":"postgresql","name":"pg"},"after":{"id":1}}'),
      'INVALID_ENVELOPE',
    ],
    ['a Confluent-framed value', Buffer.from([0, 0, 0, 0, 7, 0x54, 0x04]).toString('base64'), 'UNSUPPORTED_FORMAT'],
    [
      'a Glue-framed value',
      Buffer.concat([Buffer.from([3, 0]), Buffer.alloc(16, 1), Buffer.from([0x54])]).toString('base64'),
      'UNSUPPORTED_FORMAT',
    ],
  ])('rejects %s with %s', (_name, value, code) => {
    // Act
    const outcome = decoder().decode(rawRecord(value), 1);
    // Assert
    expect(outcome.kind).toBe('error');
    expect(outcome.kind === 'error' && outcome.error.code).toBe(code);
    expect(outcome.kind === 'error' && outcome.error.retryable).toBe(false);
  });

  it('rejects a value larger than maxRecordBytes before decoding it', () => {
    const outcome = new JsonDebeziumDecoder({ maxRecordBytes: 1024 }).decode(rawRecord(b64('x'.repeat(4096))), 1);
    expect(outcome.kind === 'error' && outcome.error.code).toBe('RECORD_TOO_LARGE');
  });

  it('rejects a key that is not JSON', () => {
    const record = { ...recordOf(pgMessage({ op: 'c', after: { id: 1 }, lsn: 5 })), key: b64('id=1') };
    const outcome = decoder().decode(record, 1);
    expect(outcome.kind === 'error' && outcome.error.code).toBe('INVALID_KEY');
  });

  it('marks TOAST placeholder columns unchanged and never passes the placeholder through', () => {
    // Arrange
    const placeholder = '__debezium_unavailable_value';
    const record = recordOf(
      pgMessage({
        op: 'u',
        lsn: 9,
        after: {
          id: 1,
          body: placeholder,
          tags: [placeholder],
          blob: b64(placeholder),
          attrs: { [placeholder]: placeholder },
          counts: [...Buffer.from(placeholder)],
          n: 2,
        },
      }),
    );
    // Act
    const event = eventOf(decoder().decode(record, 1));
    // Assert
    expect(event.after).toEqual({ id: 1, n: 2 });
    expect(event.unchanged).toEqual(['body', 'tags', 'blob', 'attrs', 'counts']);
    expect(JSON.stringify(event)).not.toContain(placeholder);
  });

  it('decodes ExtractNewRecordState output with add.fields and a rewritten delete', () => {
    // Arrange
    const upsert = rawRecord(
      b64('{"id":1,"name":"a","__op":"u","__table":"orders","__lsn":77,"__source_ts_ms":1710498600000}'),
    );
    const deleted = rawRecord(b64('{"id":1,"name":"a","__deleted":"true","__lsn":78}'), { offset: 1 });
    // Act
    const u = eventOf(decoder().decode(upsert, 1));
    const d = eventOf(decoder().decode(deleted, 1));
    // Assert
    expect(u).toMatchObject({ op: 'u', after: { id: 1, name: 'a' }, before: null, key: { id: 1 } });
    expect(u.source.commitTs).toBe(1_710_498_600_000);
    expect(d).toMatchObject({ op: 'd', before: { id: 1, name: 'a' }, after: null });
  });

  it('applies the Connect schema to rows and keys (schemas.enable=true), compiling each schema once', () => {
    // Arrange
    const decimal = {
      type: 'bytes',
      optional: true,
      name: 'org.apache.kafka.connect.data.Decimal',
      parameters: { scale: '2' },
    };
    const rowSchema = (name: string) => ({
      type: 'struct',
      optional: true,
      name: 'pg.public.orders.Value',
      field: name,
      fields: [
        { type: 'string', optional: false, name: 'io.debezium.data.Uuid', field: 'id' },
        { ...decimal, field: 'total' },
        { type: 'string', optional: true, name: 'io.debezium.data.Json', field: 'meta' },
      ],
    });
    const schema = {
      type: 'struct',
      name: 'pg.public.orders.Envelope',
      fields: [
        rowSchema('before'),
        rowSchema('after'),
        { type: 'struct', fields: [], name: 'io.debezium.connector.postgresql.Source', field: 'source' },
        { type: 'string', field: 'op' },
      ],
    };
    const keySchema = {
      type: 'struct',
      name: 'pg.public.orders.Key',
      fields: [{ type: 'string', name: 'io.debezium.data.Uuid', field: 'id' }],
    };
    const id = '0f8fad5b-d9cb-469f-a165-70867728950e';
    const payload = {
      before: null,
      after: { id, total: 'Jw8=', meta: '{"big": 18446744073709551615}' },
      source: { connector: 'postgresql', name: 'pg', db: 'shop', schema: 'public', table: 'orders', lsn: 9, ts_ms: 1 },
      op: 'c',
    };
    const record = rawRecord(b64(JSON.stringify({ schema, payload })), {
      key: b64(JSON.stringify({ schema: keySchema, payload: { id } })),
    });
    const d = decoder();
    // Act
    const first = d.decode(record, 1);
    const second = d.decode(record, 1);
    // Assert
    expect(eventOf(first).after).toEqual({ id, total: '99.99', meta: { big: '18446744073709551615' } });
    expect(eventOf(first).key).toEqual({ id });
    expect(first.kind === 'event' && first.columns?.get('total')).toBe('decimal');
    expect(second.kind === 'event' && first.kind === 'event' && second.columns === first.columns).toBe(true);
  });

  it('normalises a boolean snapshot flag to the string enum', () => {
    const record = rawRecord(
      b64('{"op":"r","source":{"connector":"postgresql","name":"pg","lsn":5,"snapshot":true},"after":{"id":1}}'),
    );
    expect(eventOf(decoder().decode(record, 1)).source.snapshot).toBe('true');
  });

  it.each([
    [
      'mysql',
      '{"connector":"mysql","name":"fulfillment","db":"inventory","table":"orders","file":"mysql-bin.000003","pos":154,"row":1,"gtid":null,"ts_ms":1710498600000}',
      { file: 'mysql-bin.000003', pos: '154', row: '1' },
      'my:00000000000000000003:00000000000000000154:0000000001',
      'fulfillment.inventory.orders/file=mysql-bin.000003,pos=154,row=1/{"id":1}',
    ],
    [
      'sqlserver',
      '{"connector":"sqlserver","name":"fulfillment","db":"testDB","schema":"dbo","table":"orders","change_lsn":"00000027:00000AC0:0002","commit_lsn":"00000027:00000ac0:0003","event_serial_no":2,"ts_ms":1710498600000}',
      { commitLsn: '00000027:00000ac0:0003', changeLsn: '00000027:00000ac0:0002', eventSerialNo: '2' },
      'ms:00000027:00000ac0:0003:00000027:00000ac0:0002:00000000000000000002',
      'fulfillment.testDB.dbo.orders/commit=00000027:00000ac0:0003,change=00000027:00000ac0:0002,serial=2/{"id":1}',
    ],
  ])('reads the %s source position', (_connector, source, position, order, id) => {
    // Arrange
    const record = rawRecord(b64(`{"op":"u","source":${source},"before":null,"after":{"id":1}}`));
    // Act
    const event = eventOf(decoder().decode(record, 1));
    // Assert
    expect(event.source.position).toEqual(position);
    expect(event.source.order).toBe(order);
    expect(event.id).toBe(id);
  });

  it('dead-letters an unexpected failure instead of throwing', () => {
    // A getter that throws stands for any decoder bug on an odd record.
    const record = rawRecord(
      b64('{"op":"c","source":{"connector":"postgresql","name":"pg","lsn":1},"after":{"id":1}}'),
    );
    Object.defineProperty(record, 'key', {
      get() {
        throw new TypeError('boom');
      },
    });
    const outcome = decoder().decode(record, 1);
    expect(outcome.kind === 'error' && outcome.error.code).toBe('INVALID_RECORD');
  });
});

/** A JsonConverter value `{schema, payload}` of a PostgreSQL change whose row struct has these fields. */
function withSchema(rowFields: unknown[], payload: Record<string, unknown>, table = 'orders'): Record<string, unknown> {
  const row = { type: 'struct', optional: true, name: `pg.public.${table}.Value`, fields: rowFields };
  return {
    schema: {
      type: 'struct',
      optional: false,
      name: `pg.public.${table}.Envelope`,
      version: 2,
      fields: [
        { ...row, field: 'before' },
        { ...row, field: 'after' },
        {
          type: 'struct',
          optional: false,
          name: 'io.debezium.connector.postgresql.Source',
          field: 'source',
          fields: [],
        },
        { type: 'string', optional: false, field: 'op' },
        { type: 'int64', optional: true, field: 'ts_ms' },
      ],
    },
    payload,
  };
}

function schemaRecord(rowFields: unknown[], offset = 0) {
  const message = pgMessage({ op: 'u', after: { id: 1, total: 'Jw8=', note: 'x' }, lsn: 100 + offset, offset });
  return recordOf({ ...message, value: withSchema(rowFields, message.value as Record<string, unknown>) });
}

const ID = { type: 'int32', optional: false, field: 'id' };
const TOTAL = {
  type: 'bytes',
  optional: true,
  name: 'org.apache.kafka.connect.data.Decimal',
  version: 1,
  parameters: { scale: '2', 'connect.decimal.precision': '10' },
  field: 'total',
};
const NOTE = { type: 'string', optional: true, field: 'note' };
const TAGS = { type: 'array', optional: true, items: { type: 'int32', optional: true }, field: 'tags' };

describe('table schema versions', () => {
  it('describes the row struct: columns in order with type, logical name, optionality, default and parameters', () => {
    // Arrange
    const record = schemaRecord([ID, TOTAL, { ...NOTE, default: 'none' }]);
    // Act
    const outcome = decoder().decode(record, 1);
    // Assert
    expect(outcome.kind === 'event' && outcome.schema).toEqual({
      fingerprint: expect.stringMatching(/^[0-9a-f]{16}$/),
      columns: [
        { name: 'id', type: 'int32', optional: false },
        {
          name: 'total',
          type: 'bytes',
          logical: 'org.apache.kafka.connect.data.Decimal',
          optional: true,
          parameters: { 'connect.decimal.precision': '10', scale: '2' },
        },
        { name: 'note', type: 'string', optional: true, default: 'none' },
      ],
    });
  });

  it('shares one schema version object between records with the same schema text', () => {
    // Arrange: the first record takes the general path, the second the known-prefix fast path
    const d = decoder();
    // Act
    const first = d.decode(schemaRecord([ID, TOTAL, NOTE], 0), 1);
    const second = d.decode(schemaRecord([ID, TOTAL, NOTE], 1), 1);
    // Assert
    expect(first.kind === 'event' && first.schema).toBeTruthy();
    expect(second.kind === 'event' && second.schema).toBe(first.kind === 'event' && first.schema);
  });

  it('has no schema version for a record without a schema (schemas.enable=false)', () => {
    const outcome = decoder().decode(recordOf(pgMessage({ op: 'c', after: { id: 1 }, lsn: 5 })), 1);
    expect(outcome.kind === 'event' && outcome.schema).toBeUndefined();
  });

  it('leaves the ExtractNewRecordState metadata columns out of a flattened row schema version', () => {
    // Arrange
    const schema = {
      type: 'struct',
      optional: false,
      name: 'pg.public.orders.Value',
      fields: [
        ID,
        NOTE,
        { type: 'string', optional: true, field: '__op' },
        { type: 'int64', optional: true, field: '__lsn' },
      ],
    };
    const record = rawRecord(b64(JSON.stringify({ schema, payload: { id: 1, note: 'x', __op: 'u', __lsn: 77 } })));
    // Act
    const outcome = decoder().decode(record, 1);
    // Assert
    expect(outcome.kind === 'event' && outcome.schema?.columns.map((c) => c.name)).toEqual(['id', 'note']);
  });

  it.each([
    ['an optional column added', [ID, TOTAL, NOTE, TAGS, { type: 'string', optional: true, field: 'extra' }]],
    [
      'a column added with a default',
      [ID, TOTAL, NOTE, TAGS, { type: 'string', optional: false, default: 'x', field: 'extra' }],
    ],
    ['a column dropped', [ID, TOTAL, TAGS]],
    ['a column renamed', [ID, TOTAL, { ...NOTE, field: 'remark' }, TAGS]],
    ['int32 widened to int64', [{ ...ID, type: 'int64' }, TOTAL, NOTE, TAGS]],
    [
      'a Decimal scale changed',
      [ID, { ...TOTAL, parameters: { scale: '3', 'connect.decimal.precision': '10' } }, NOTE, TAGS],
    ],
    [
      'a Decimal precision changed (parameters)',
      [ID, { ...TOTAL, parameters: { scale: '2', 'connect.decimal.precision': '12' } }, NOTE, TAGS],
    ],
    ['a column made NOT NULL', [ID, TOTAL, { ...NOTE, optional: false }, TAGS]],
    ['a default added', [ID, TOTAL, { ...NOTE, default: 'x' }, TAGS]],
    ['columns reordered', [ID, NOTE, TOTAL, TAGS]],
    ['an array element type widened', [ID, TOTAL, NOTE, { ...TAGS, items: { type: 'int64', optional: true } }]],
  ])('gives %s a new fingerprint', (_change, fields) => {
    // Arrange
    const base = [ID, TOTAL, NOTE, TAGS];
    const d = decoder();
    const fingerprint = (rowFields: unknown[], offset: number) => {
      const outcome = d.decode(schemaRecord(rowFields, offset), 1);
      return outcome.kind === 'event' ? outcome.schema?.fingerprint : undefined;
    };
    // Act
    const before = fingerprint(base, 0);
    const after = fingerprint(fields, 1);
    const again = fingerprint(base, 2);
    // Assert
    expect(before).toMatch(/^[0-9a-f]{16}$/);
    expect(after).toMatch(/^[0-9a-f]{16}$/);
    expect(after).not.toBe(before);
    expect(again).toBe(before);
  });

  it('gives the same fingerprint whatever order the parameters were sent in', () => {
    const d = decoder();
    const a = d.decode(schemaRecord([ID, TOTAL, NOTE], 0), 1);
    const reordered = { ...TOTAL, parameters: { 'connect.decimal.precision': '10', scale: '2' } };
    const b = d.decode(schemaRecord([ID, reordered, NOTE], 1), 1);
    expect(b.kind === 'event' && b.schema?.fingerprint).toBe(a.kind === 'event' && a.schema?.fingerprint);
  });
});

describe("Debezium's schema-change topic", () => {
  const mysqlSource = {
    version: '3.0.7.Final',
    connector: 'mysql',
    name: 'mysql',
    ts_ms: 1_710_498_000_000,
    snapshot: 'false',
    db: 'inventory',
    table: 'orders',
    server_id: 1,
    file: 'mysql-bin.000003',
    pos: 2910,
    row: 0,
  };
  const schemaChange = (value: unknown) =>
    rawRecord(b64(JSON.stringify(value)), { topic: 'mysql', key: b64('{"databaseName":"inventory"}'), offset: 4 });

  it('decodes one schema change per table it names, with the position of the DDL', () => {
    // Arrange
    const record = schemaChange({
      source: mysqlSource,
      ts_ms: 1,
      databaseName: 'inventory',
      schemaName: null,
      ddl: 'ALTER TABLE orders ADD note TEXT DEFAULT NULL; DROP TABLE old_orders',
      tableChanges: [
        {
          type: 'ALTER',
          id: '"inventory"."orders"',
          table: {
            primaryKeyColumnNames: ['id'],
            columns: [
              { name: 'id', jdbcType: 4, typeName: 'INT', length: null, scale: null, position: 1, optional: false },
              {
                name: 'note',
                jdbcType: 12,
                typeName: 'TEXT',
                length: 65535,
                position: 2,
                optional: true,
                defaultValueExpression: "'n/a'",
              },
            ],
          },
        },
        { type: 'DROP', id: '"inventory"."old_orders"', table: null },
      ],
    });
    // Act
    const outcome = decoder().decode(record, 1);
    // Assert
    expect(outcome.kind).toBe('schema-change');
    if (outcome.kind !== 'schema-change') return;
    expect(outcome.changes.map((c) => [c.table, c.type, c.source.table, c.source.order])).toEqual([
      ['mysql.inventory.orders', 'ALTER', 'orders', 'my:00000000000000000003:00000000000000002910:0000000000'],
      ['mysql.inventory.old_orders', 'DROP', 'old_orders', 'my:00000000000000000003:00000000000000002910:0000000000'],
    ]);
    expect(outcome.changes[0]?.columns).toEqual([
      { name: 'id', typeName: 'INT', optional: false, position: 1 },
      { name: 'note', typeName: 'TEXT', optional: true, length: 65535, defaultValueExpression: "'n/a'", position: 2 },
    ]);
    expect(outcome.changes[0]?.primaryKey).toEqual(['id']);
    expect(outcome.changes[1]).toMatchObject({ columns: [], primaryKey: [], ddl: expect.stringContaining('DROP') });
    expect(outcome.changes[0]?.kafka).toEqual({ topic: 'mysql', partition: 0, offset: 4, timestamp: record.timestamp });
  });

  it('names a SQL Server table <prefix>.<db>.<schema>.<table>, like its change events', () => {
    // Arrange
    const record = rawRecord(
      b64(
        JSON.stringify({
          source: {
            connector: 'sqlserver',
            name: 'fulfillment',
            db: 'testDB',
            schema: 'dbo',
            commit_lsn: '00000027:00000800:0003',
          },
          ts_ms: 1,
          databaseName: 'testDB',
          schemaName: 'dbo',
          ddl: null,
          tableChanges: [{ type: 'CREATE', id: '"testDB"."dbo"."order ""lines"""', table: { columns: [] } }],
        }),
      ),
      { topic: 'fulfillment' },
    );
    // Act
    const outcome = decoder().decode(record, 1);
    // Assert
    expect(outcome.kind === 'schema-change' && outcome.changes.map((c) => c.table)).toEqual([
      'fulfillment.testDB.dbo.order "lines"',
    ]);
  });

  it.each([
    ['a table change without an id', { source: mysqlSource, tableChanges: [{ type: 'ALTER', table: null }] }],
    [
      'a source without a position',
      { source: { connector: 'mysql', name: 'mysql' }, databaseName: 'x', tableChanges: [] },
    ],
    [
      'a malformed table id',
      { source: mysqlSource, databaseName: 'x', tableChanges: [{ type: 'DROP', id: '"a"x', table: null }] },
    ],
  ])('dead-letters %s as INVALID_ENVELOPE', (_name, value) => {
    // Arrange: shaped like a schema change (databaseName + tableChanges + source) or named so by its schema
    const record = schemaChange({ databaseName: 'inventory', ...value });
    // Act
    const outcome = decoder().decode(record, 1);
    // Assert
    expect(outcome.kind === 'error' && outcome.error.code).toBe('INVALID_ENVELOPE');
  });
});
