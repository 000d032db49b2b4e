import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureSchema, changes, jsonAt, type Parsed, type TestCapture, usePostgres } from './helpers';

const { db, sql } = usePostgres();

/**
 * The schema part of a real Debezium 3.1.3.Final event (PostgreSQL connector, JsonConverter with schemas, the
 * tutorial's inventory.customers table, topic.prefix=dbserver1), copied verbatim. The dev connector must produce
 * this text byte for byte.
 */
const DEBEZIUM_3_1_3_CUSTOMERS_SCHEMA =
  '{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"default":0,"field":"id"},{"type":"string","optional":false,"field":"first_name"},{"type":"string","optional":false,"field":"last_name"},{"type":"string","optional":false,"field":"email"}],"optional":true,"name":"dbserver1.inventory.customers.Value","field":"before"},{"type":"struct","fields":[{"type":"int32","optional":false,"default":0,"field":"id"},{"type":"string","optional":false,"field":"first_name"},{"type":"string","optional":false,"field":"last_name"},{"type":"string","optional":false,"field":"email"}],"optional":true,"name":"dbserver1.inventory.customers.Value","field":"after"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},"default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":true,"field":"sequence"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"},{"type":"int64","optional":true,"field":"xmin"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","version":1,"field":"source"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"name":"event.block","version":1,"field":"transaction"},{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"}],"optional":false,"name":"dbserver1.inventory.customers.Envelope","version":2}';

/** The payload of that real event with the run-dependent numbers replaced by N. */
const DEBEZIUM_3_1_3_UPDATE_PAYLOAD_SHAPE =
  '{"before":{"id":1006,"first_name":"Liam","last_name":"Han","email":"liam2@example.com"},"after":{"id":1006,"first_name":"Liam","last_name":"Han","email":"liam3@example.com"},"source":{"version":"3.1.3.Final","connector":"postgresql","name":"dbserver1","ts_ms":N,"snapshot":"false","db":"postgres","sequence":"[\\"N\\",\\"N\\"]","ts_us":N,"ts_ns":N,"schema":"inventory","table":"customers","txId":N,"lsn":N,"xmin":null},"transaction":null,"op":"u","ts_ms":N,"ts_us":N,"ts_ns":N}';

describe('event format against a real Debezium 3.1.3 event', () => {
  let run: TestCapture;
  let update: Parsed;

  beforeAll(async () => {
    await sql().query(`
      CREATE SCHEMA inventory;
      CREATE TABLE inventory.customers (id SERIAL NOT NULL PRIMARY KEY, first_name VARCHAR(255) NOT NULL,
        last_name VARCHAR(255) NOT NULL, email VARCHAR(255) NOT NULL UNIQUE);
      ALTER TABLE inventory.customers REPLICA IDENTITY FULL;
      INSERT INTO inventory.customers VALUES (1006, 'Liam', 'Han', 'liam2@example.com');`);
    run = await captureSchema(db(), sql(), 'inventory', { topicPrefix: 'dbserver1' });
    // A committed transaction before the update, so its sequence has a last-commit LSN like the real event.
    await sql().query(`INSERT INTO inventory.customers VALUES (1007, 'Ann', 'Lee', 'ann@example.com')`);
    await sql().query(`UPDATE inventory.customers SET email = 'liam3@example.com' WHERE id = 1006`);
    await run.capture.flushed();
    const found = changes(run.records, 'customers').find((e) => e.value.payload.op === 'u');
    if (!found) throw new Error('no update captured');
    update = found;
  });
  afterAll(async () => {
    await run.stop();
  });

  it('writes the value schema byte for byte', () => {
    // Assert
    expect(update.valueText?.startsWith(`{"schema":${DEBEZIUM_3_1_3_CUSTOMERS_SCHEMA},"payload":`)).toBe(true);
  });

  it('writes the payload with the same fields, order and values', () => {
    // Act
    const payload = jsonAt(update.valueText ?? '', 'payload')
      .replace(/"(ts_ms|ts_us|ts_ns|txId|lsn)":\d+/g, '"$1":N')
      .replace(/\\"\d+\\"/g, '\\"N\\"');

    // Assert
    expect(payload).toBe(DEBEZIUM_3_1_3_UPDATE_PAYLOAD_SHAPE);
  });

  it('writes the key struct with the primary key', () => {
    // Assert
    expect(update.keyText).toBe(
      '{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"default":0,"field":"id"}],"optional":false,"name":"dbserver1.inventory.customers.Key"},"payload":{"id":1006}}',
    );
  });

  it('adds the Debezium 3.1 context headers', () => {
    // Assert
    expect(update.record.headers.map(([k, v]) => `${k}=${v.toString()}`)).toEqual([
      '__debezium.context.connectorLogicalName=dbserver1',
      '__debezium.context.taskId=0',
      '__debezium.context.connectorName=postgresql',
    ]);
  });
});

/** Column, SQL type, SQL literal, expected JSON value, expected field schema. */
const TYPES: Array<[string, string, string, string, string]> = [
  ['c_smallint', 'smallint', '7', '7', '{"type":"int16","optional":true,"field":"c_smallint"}'],
  ['c_integer', 'integer', '-42', '-42', '{"type":"int32","optional":true,"field":"c_integer"}'],
  ['c_bigint', 'bigint', '9007199254740993', '9007199254740993', '{"type":"int64","optional":true,"field":"c_bigint"}'],
  ['c_real', 'real', '1.5', '1.5', '{"type":"float","optional":true,"field":"c_real"}'],
  ['c_real_big', 'real', '1e10', '1.0E10', '{"type":"float","optional":true,"field":"c_real_big"}'],
  ['c_double', 'double precision', '0.1', '0.1', '{"type":"double","optional":true,"field":"c_double"}'],
  [
    'c_double_small',
    'double precision',
    '1e-7',
    '1.0E-7',
    '{"type":"double","optional":true,"field":"c_double_small"}',
  ],
  ['c_double_whole', 'double precision', '3', '3.0', '{"type":"double","optional":true,"field":"c_double_whole"}'],
  ['c_bool', 'boolean', 'true', 'true', '{"type":"boolean","optional":true,"field":"c_bool"}'],
  [
    'c_text',
    'text',
    `'héllo "x" \\ ✓'`,
    '"héllo \\"x\\" \\\\ ✓"',
    '{"type":"string","optional":true,"field":"c_text"}',
  ],
  ['c_varchar', 'varchar(10)', `'abc'`, '"abc"', '{"type":"string","optional":true,"field":"c_varchar"}'],
  ['c_char', 'char(3)', `'ab'`, '"ab "', '{"type":"string","optional":true,"field":"c_char"}'],
  [
    'c_numeric',
    'numeric(10,2)',
    '99.99',
    '"Jw8="',
    '{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"c_numeric"}',
  ],
  [
    'c_numeric_neg',
    'numeric(10,2)',
    '-1',
    '"nA=="',
    '{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"c_numeric_neg"}',
  ],
  [
    'c_numeric_var',
    'numeric',
    '123.45',
    '{"scale":2,"value":"MDk="}',
    '{"type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}],"optional":true,"name":"io.debezium.data.VariableScaleDecimal","version":1,"doc":"Variable scaled decimal","field":"c_numeric_var"}',
  ],
  [
    'c_date',
    'date',
    `'2024-03-15'`,
    '19797',
    '{"type":"int32","optional":true,"name":"io.debezium.time.Date","version":1,"field":"c_date"}',
  ],
  [
    'c_ts',
    'timestamp',
    `'2024-03-15 10:30:00.123456'`,
    '1710498600123456',
    '{"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","version":1,"field":"c_ts"}',
  ],
  [
    'c_ts3',
    'timestamp(3)',
    `'2024-03-15 10:30:00.123'`,
    '1710498600123',
    '{"type":"int64","optional":true,"name":"io.debezium.time.Timestamp","version":1,"field":"c_ts3"}',
  ],
  [
    'c_tstz',
    'timestamptz',
    `'2024-03-15 12:30:00.123456+02'`,
    '"2024-03-15T10:30:00.123456Z"',
    '{"type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","version":1,"field":"c_tstz"}',
  ],
  [
    'c_tstz3',
    'timestamptz(3)',
    `'2024-03-15 10:30:00.5+00'`,
    '"2024-03-15T10:30:00.500Z"',
    '{"type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","version":1,"field":"c_tstz3"}',
  ],
  [
    'c_time',
    'time',
    `'10:30:00.123456'`,
    '37800123456',
    '{"type":"int64","optional":true,"name":"io.debezium.time.MicroTime","version":1,"field":"c_time"}',
  ],
  [
    'c_time3',
    'time(3)',
    `'10:30:00.123'`,
    '37800123',
    '{"type":"int32","optional":true,"name":"io.debezium.time.Time","version":1,"field":"c_time3"}',
  ],
  [
    'c_timetz',
    'timetz',
    `'10:30:00.123+02'`,
    '"08:30:00.123Z"',
    '{"type":"string","optional":true,"name":"io.debezium.time.ZonedTime","version":1,"field":"c_timetz"}',
  ],
  [
    'c_interval',
    'interval',
    `'1 year 2 mons 3 days 04:05:06.5'`,
    '37091106500000',
    '{"type":"int64","optional":true,"name":"io.debezium.time.MicroDuration","version":1,"field":"c_interval"}',
  ],
  [
    'c_json',
    'json',
    `'{"b": 2, "a":1}'`,
    '"{\\"b\\": 2, \\"a\\":1}"',
    '{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"c_json"}',
  ],
  [
    'c_jsonb',
    'jsonb',
    `'{"b":2,"a":1}'`,
    '"{\\"a\\": 1, \\"b\\": 2}"',
    '{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"c_jsonb"}',
  ],
  [
    'c_uuid',
    'uuid',
    `'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'`,
    '"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"',
    '{"type":"string","optional":true,"name":"io.debezium.data.Uuid","version":1,"field":"c_uuid"}',
  ],
  ['c_bytea', 'bytea', `'\\x0102ff'`, '"AQL/"', '{"type":"bytes","optional":true,"field":"c_bytea"}'],
  [
    'c_enum',
    'mood',
    `'happy'`,
    '"happy"',
    '{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"sad,ok,happy"},"field":"c_enum"}',
  ],
  [
    'c_int_array',
    'integer[]',
    `'{1,2,NULL}'`,
    '[1,2,null]',
    '{"type":"array","items":{"type":"int32","optional":true},"optional":true,"field":"c_int_array"}',
  ],
  [
    'c_text_array',
    'text[]',
    `'{a,"b c"}'`,
    '["a","b c"]',
    '{"type":"array","items":{"type":"string","optional":true},"optional":true,"field":"c_text_array"}',
  ],
  ['c_inet', 'inet', `'192.168.0.1/24'`, '"192.168.0.1/24"', '{"type":"string","optional":true,"field":"c_inet"}'],
  ['c_null', 'text', 'NULL', 'null', '{"type":"string","optional":true,"field":"c_null"}'],
];

describe.each(['snapshot', 'stream'] as const)('type encodings (%s)', (path) => {
  const schema = `enc_${path}`;
  let run: TestCapture;
  let event: Parsed;

  beforeAll(async () => {
    const columns = TYPES.map(([name, type]) => `${name} ${type}`).join(', ');
    const values = TYPES.map(([, , literal]) => literal).join(', ');
    await sql().query(`
      CREATE SCHEMA ${schema};
      CREATE TYPE ${schema}.mood AS ENUM ('sad', 'ok', 'happy');
      SET search_path = ${schema}, public;
      CREATE TABLE ${schema}.t (id integer PRIMARY KEY, ${columns});
      RESET search_path;`);
    const insert = `SET search_path = ${schema}, public; INSERT INTO ${schema}.t VALUES (1, ${values}); RESET search_path;`;
    if (path === 'snapshot') await sql().query(insert);
    run = await captureSchema(db(), sql(), schema);
    if (path === 'stream') await sql().query(insert);
    await run.capture.flushed();
    const found = changes(run.records, 't')[0];
    if (!found) throw new Error('no event captured');
    event = found;
  });
  afterAll(async () => {
    await run.stop();
  });

  it(`is a ${path === 'snapshot' ? 'read' : 'create'} event`, () => {
    // Assert
    expect(event.value.payload.op).toBe(path === 'snapshot' ? 'r' : 'c');
    expect(event.value.payload.before).toBeNull();
  });

  it.each(TYPES.map((t, i) => [...t, i] as const))(
    '%s %s',
    (column, _type, _literal, expectedValue, expectedSchema, i) => {
      // Act
      const value = jsonAt(event.valueText ?? '', 'payload', 'after', column);
      const fieldSchema = jsonAt(event.valueText ?? '', 'schema', 'fields', 1, 'fields', i + 1);

      // Assert
      expect(value).toBe(expectedValue);
      expect(fieldSchema).toBe(expectedSchema);
    },
  );
});
