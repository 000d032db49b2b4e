/**
 * Avro decoding benchmark, part of `npm run bench` (index.ts puts both ratios and their goals at the top level, the
 * rest under `details.avro`; see docs/avro.md).
 *
 * - `avroDecodeVsJsonFloor`: the JSON raw floor (base64 → UTF-8 → JSON.parse of every key and value, nothing else) ÷
 *   the Avro decoder's time for the same rows (prepare + decode + validate into canonical events), same run. Goal
 *   ≥ 1.3: Avro skips the base64-of-JSON parsing (and the schema carried by every JSON record).
 * - `avroVsPowertools`: Powertools `kafkaConsumer` with `SchemaType.AVRO` (key and value schemas in code; raw Avro, as
 *   after the event source mapping's schema-registry integration strips the header) ÷ ours on the same rows. Goal ≥ 3.
 */
import { kafkaConsumer, SchemaType } from '@aws-lambda-powertools/kafka';
import { isSafeNumber, parse } from 'lossless-json';
import {
  AvroDebeziumDecoder,
  type ConnectSchema,
  compileAvroType,
  confluentFrame,
  connectToAvro,
  type SchemaRegistryClient,
} from '../../functions/core/decode/avro';
import type { KafkaEvent, KafkaRecord } from '../../functions/core/types';
import { measure, rawFloor } from './cpu';
import { benchEvent } from './fixtures';

interface AvroBatch {
  /** Confluent-framed keys and values. */
  framed: KafkaEvent;
  /** The same Avro without a frame (what Powertools reads). */
  raw: KafkaEvent;
  schemas: Map<string, string>;
  keySchema: string;
  valueSchema: string;
}

/** Re-encodes a JsonConverter event as AvroConverter would have written it (schemas registered in a local map). */
export function avroBatchOf(event: KafkaEvent, options: { withoutNanos?: boolean } = {}): AvroBatch {
  const schemas = new Map<string, string>();
  const ids = new Map<string, number>();
  const types = new Map<string, ReturnType<typeof compileAvroType>>();
  let keySchema = '';
  let valueSchema = '';
  const encode = (base64: string | null | undefined, role: 'key' | 'value') => {
    if (!base64) return { framed: base64, raw: base64 };
    const document = parse(Buffer.from(base64, 'base64').toString('utf8'), null, (d) =>
      isSafeNumber(d) ? Number(d) : d,
    ) as { schema: ConnectSchema; payload: Record<string, unknown> };
    if (options.withoutNanos && role === 'value') {
      // ts_us/ts_ns are optional in Debezium's schemas; null them so avro-js (no longs beyond 2^53) can read the rows.
      const source = document.payload.source as Record<string, unknown>;
      for (const holder of [document.payload, source]) {
        holder.ts_us = null;
        holder.ts_ns = null;
      }
    }
    const schemaKey = JSON.stringify(document.schema);
    let type = types.get(schemaKey);
    let text = '';
    if (!type) {
      const avro = connectToAvro(document.schema);
      text = JSON.stringify(avro);
      type = compileAvroType(avro);
      types.set(schemaKey, type);
      ids.set(schemaKey, ids.size + 1);
      schemas.set(String(ids.size), text);
      if (role === 'key') keySchema = text;
      else valueSchema = text;
    }
    const body = type.toBuffer(document.payload);
    return {
      framed: confluentFrame(ids.get(schemaKey) as number, body).toString('base64'),
      raw: body.toString('base64'),
    };
  };
  const framed: Record<string, KafkaRecord[]> = {};
  const raw: Record<string, KafkaRecord[]> = {};
  for (const [id, records] of Object.entries(event.records)) {
    framed[id] = [];
    raw[id] = [];
    for (const record of records) {
      const key = encode(record.key, 'key');
      const value = encode(record.value, 'value');
      framed[id].push({ ...record, key: key.framed, value: value.framed });
      raw[id].push({ ...record, key: key.raw, value: value.raw });
    }
  }
  return {
    framed: { ...event, records: framed },
    raw: { ...event, records: raw },
    schemas,
    keySchema,
    valueSchema,
  };
}

/** Decodes every record of the batch with a warm decoder (schemas cached, as after the first batch of a lane). */
async function decodeAvro(decoder: AvroDebeziumDecoder, event: KafkaEvent): Promise<number> {
  const records = Object.values(event.records).flat();
  await decoder.prepare(records);
  const now = Date.now();
  let n = 0;
  for (const record of records) if (decoder.decode(record, now).kind === 'event') n++;
  return n;
}

export async function avroBenchmarks(quick: boolean) {
  const count = 10_000;
  const event = benchEvent(count);
  const batch = avroBatchOf(event);
  const registry: SchemaRegistryClient = {
    kind: 'confluent',
    getSchema: async (id) => batch.schemas.get(id) as string,
  };
  const decoder = new AvroDebeziumDecoder({ registries: [registry] });
  const powertools = kafkaConsumer<unknown, { op?: string }>(
    async (e) => {
      let n = 0;
      for (const record of e.records) if (record.key !== undefined && record.value.op) n++;
      return n;
    },
    {
      key: { type: SchemaType.AVRO, schema: batch.keySchema },
      value: { type: SchemaType.AVRO, schema: batch.valueSchema },
    },
  );
  const context = { functionName: 'bench', awsRequestId: 'bench' } as never;
  let powertoolsError: string | undefined;
  const subjects: Record<string, () => unknown> = {
    jsonRawFloor: () => rawFloor(event),
    avroDecode: () => decodeAvro(decoder, batch.framed),
  };
  try {
    await powertools(batch.raw as never, context);
  } catch (error) {
    // avro-js (Powertools' Avro library) refuses longs beyond 2^53, which every Debezium ts_ns is: it cannot read
    // Debezium's records at all. The comparison runs both on the same rows with ts_us/ts_ns nulled instead.
    powertoolsError = (error as Error).message.slice(0, 120);
  }
  const comparable = powertoolsError ? avroBatchOf(event, { withoutNanos: true }) : batch;
  const comparableDecoder = new AvroDebeziumDecoder({
    registries: [{ kind: 'confluent', getSchema: async (id) => comparable.schemas.get(id) as string }],
  });
  subjects.avroDecodeComparable = () => decodeAvro(comparableDecoder, comparable.framed);
  subjects.powertoolsAvro = () => powertools(comparable.raw as never, context);
  const t = await measure(subjects, quick ? 5 : 15);
  const jsonBytes = Buffer.from(event.records['pg.public.orders-0']?.[0]?.value ?? '', 'base64').length;
  const avroBytes = Buffer.from(batch.framed.records['pg.public.orders-0']?.[0]?.value ?? '', 'base64').length;
  const round = (n: number) => Math.round(n * 100) / 100;
  return {
    records: count,
    recordBytes: { json: jsonBytes, avro: avroBytes },
    avroDecodeVsJsonFloor: round((t.jsonRawFloor?.min ?? Number.NaN) / (t.avroDecode?.min ?? Number.NaN)),
    avroVsPowertools: round((t.powertoolsAvro?.min ?? Number.NaN) / (t.avroDecodeComparable?.min ?? Number.NaN)),
    ...(powertoolsError
      ? { powertoolsOnDebeziumRows: powertoolsError, avroVsPowertoolsRows: 'ts_us/ts_ns nulled' }
      : {}),
    perRecordUs: Object.fromEntries(Object.entries(t).map(([k, v]) => [k, round((v.min * 1000) / count)])),
    goals: { avroDecodeVsJsonFloor: '>= 1.3', avroVsPowertools: '>= 3' },
  };
}

if (process.argv[1]?.endsWith('bench/avro.ts')) {
  console.log(JSON.stringify(await avroBenchmarks(process.argv.includes('--quick')), null, 2));
}
