import type { KafkaEvent, KafkaRecord } from '../../functions/core/types';

/**
 * A realistic batch for the benchmarks: Debezium PostgreSQL events for an `orders` table as JsonConverter writes
 * them with schemas.enable=true (the Connect schema travels with every record), over 3 partitions, 70% updates.
 */

const optional = (field: string, type: string, name?: string, parameters?: Record<string, string>) => ({
  type,
  optional: true,
  ...(name ? { name, version: 1 } : {}),
  ...(parameters ? { parameters } : {}),
  field,
});

const rowFields = [
  { type: 'int64', optional: false, default: 0, field: 'id' },
  optional('customer_id', 'int32'),
  optional('status', 'string', 'io.debezium.data.Enum', { allowed: 'new,paid,shipped,cancelled' }),
  optional('total', 'bytes', 'org.apache.kafka.connect.data.Decimal', {
    scale: '2',
    'connect.decimal.precision': '12',
  }),
  optional('currency', 'string'),
  optional('created_at', 'string', 'io.debezium.time.ZonedTimestamp'),
  optional('updated_at', 'int64', 'io.debezium.time.MicroTimestamp'),
  optional('ship_date', 'int32', 'io.debezium.time.Date'),
  optional('meta', 'string', 'io.debezium.data.Json'),
  optional('external_ref', 'string', 'io.debezium.data.Uuid'),
  optional('notes', 'string'),
];

const sourceFields = [
  { type: 'string', optional: false, field: 'version' },
  { type: 'string', optional: false, field: 'connector' },
  { type: 'string', optional: false, field: 'name' },
  { type: 'int64', optional: false, field: 'ts_ms' },
  {
    type: 'string',
    optional: true,
    name: 'io.debezium.data.Enum',
    version: 1,
    parameters: { allowed: 'true,first,first_in_data_collection,last_in_data_collection,last,false,incremental' },
    default: 'false',
    field: 'snapshot',
  },
  { type: 'string', optional: false, field: 'db' },
  { type: 'string', optional: true, field: 'sequence' },
  { type: 'int64', optional: true, field: 'ts_us' },
  { type: 'int64', optional: true, field: 'ts_ns' },
  { type: 'string', optional: false, field: 'schema' },
  { type: 'string', optional: false, field: 'table' },
  { type: 'int64', optional: true, field: 'txId' },
  { type: 'int64', optional: true, field: 'lsn' },
  { type: 'int64', optional: true, field: 'xmin' },
];

const valueSchema = JSON.stringify({
  type: 'struct',
  fields: [
    { type: 'struct', fields: rowFields, optional: true, name: 'pg.public.orders.Value', field: 'before' },
    { type: 'struct', fields: rowFields, optional: true, name: 'pg.public.orders.Value', field: 'after' },
    {
      type: 'struct',
      fields: sourceFields,
      optional: false,
      name: 'io.debezium.connector.postgresql.Source',
      field: 'source',
    },
    {
      type: 'struct',
      fields: [
        { type: 'string', optional: false, field: 'id' },
        { type: 'int64', optional: false, field: 'total_order' },
        { type: 'int64', optional: false, field: 'data_collection_order' },
      ],
      optional: true,
      name: 'event.block',
      version: 1,
      field: 'transaction',
    },
    { type: 'string', optional: false, field: 'op' },
    { type: 'int64', optional: true, field: 'ts_ms' },
    { type: 'int64', optional: true, field: 'ts_us' },
    { type: 'int64', optional: true, field: 'ts_ns' },
  ],
  optional: false,
  name: 'pg.public.orders.Envelope',
  version: 2,
});
const keySchema = JSON.stringify({
  type: 'struct',
  fields: [{ type: 'int64', optional: false, default: 0, field: 'id' }],
  optional: false,
  name: 'pg.public.orders.Key',
});

const STATUSES = ['new', 'paid', 'shipped', 'cancelled'];
const unscaled = (cents: number) => {
  const hex = cents.toString(16).padStart(8, '0');
  return Buffer.from(hex, 'hex').toString('base64');
};

function row(id: number, version: number) {
  return `{"id":${id},"customer_id":${1000 + (id % 97)},"status":"${STATUSES[version % 4]}","total":"${unscaled(1999 + id * 7 + version)}","currency":"EUR","created_at":"2024-03-15T10:30:00.${String(id % 1_000_000).padStart(6, '0')}Z","updated_at":${1_710_498_600_000_000 + version * 1000},"ship_date":${19_797 + (id % 30)},"meta":"{\\"channel\\":\\"web\\",\\"items\\":${(id % 5) + 1},\\"tags\\":[\\"a\\",\\"b\\"]}","external_ref":"0f8fad5b-d9cb-469f-a165-${String(id).padStart(12, '0')}","notes":"order ${id} note ${'x'.repeat(40)}"}`;
}

/** The JSON value text of one change, exactly as JsonConverter writes it (compact, schema first). */
export function valueText(i: number, lsnBase = 30_000_000): string {
  const id = i % 4000;
  const op = i < 3000 ? 'c' : i % 10 < 7 ? 'u' : 'd';
  const lsn = lsnBase + i * 120;
  const tsMs = 1_710_498_600_000 + i;
  const before = op === 'c' ? 'null' : row(id, i - 1);
  const after = op === 'd' ? 'null' : row(id, i);
  const source = `{"version":"2.7.3.Final","connector":"postgresql","name":"pg","ts_ms":${tsMs},"snapshot":"false","db":"shop","sequence":"[\\"${lsn - 60}\\",\\"${lsn}\\"]","ts_us":${tsMs}000,"ts_ns":${tsMs}000000,"schema":"public","table":"orders","txId":${90_000 + i},"lsn":${lsn},"xmin":null}`;
  const payload = `{"before":${before},"after":${after},"source":${source},"transaction":null,"op":"${op}","ts_ms":${tsMs + 3},"ts_us":${tsMs + 3}000,"ts_ns":${tsMs + 3}000000}`;
  return `{"schema":${valueSchema},"payload":${payload}}`;
}

export function keyText(i: number): string {
  return `{"schema":${keySchema},"payload":{"id":${i % 4000}}}`;
}

/** A 3-partition MSK event of `count` changes (keys spread like Kafka would: by id). */
export function benchEvent(count: number, options: { offsetBase?: number; lsnBase?: number } = {}): KafkaEvent {
  const records: Record<string, KafkaRecord[]> = {};
  const offsets = [0, 0, 0];
  for (let i = 0; i < count; i++) {
    const partition = (i % 4000) % 3;
    const offset = (options.offsetBase ?? 0) + (offsets[partition] as number);
    offsets[partition] = (offsets[partition] as number) + 1;
    const id = `pg.public.orders-${partition}`;
    records[id] ??= [];
    records[id].push({
      topic: 'pg.public.orders',
      partition,
      offset,
      timestamp: 1_710_498_600_010 + i,
      timestampType: 'CREATE_TIME',
      key: Buffer.from(keyText(i)).toString('base64'),
      value: Buffer.from(valueText(i, options.lsnBase)).toString('base64'),
      headers: [
        { '__debezium.context.connectorLogicalName': [...Buffer.from('pg')] },
        { '__debezium.context.taskId': [48] },
        { '__debezium.context.connectorName': [...Buffer.from('postgresql')] },
      ],
    });
  }
  return {
    eventSource: 'aws:kafka',
    eventSourceArn: 'arn:aws:kafka:eu-west-1:111122223333:cluster/bench/00000000-0000-0000-0000-000000000000-1',
    bootstrapServers: 'b-1.bench:9098,b-2.bench:9098',
    records,
  };
}
