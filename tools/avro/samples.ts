/**
 * Writes events/avro/{confluent,glue}/<path>.json: the JSON samples under events/ whose keys and values all carry a
 * Connect schema (schemas.enable=true), re-encoded the way Debezium's AvroConverter would have written the same
 * change: each Connect schema becomes the Avro schema Confluent's AvroData registers for it (connect.* properties
 * included), the payload is Avro-encoded with avsc, and the bytes are framed for the Confluent (magic 0 + schema id)
 * or the AWS Glue (version 3, zlib-compressed values, schema version UUID) registry. Each file carries the registry
 * content its records need (`registry`: id → schema text) and names the JSON sample it mirrors (`json`): the Avro
 * decoder must produce that sample's expected output (events/expected/<json>.jsonl) line for line.
 *
 *   npx tsx tools/avro/samples.ts          # rewrite the files
 *   npx tsx tools/avro/samples.ts --check  # exit 1 when a file is not what this script writes (CI)
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileAvroType, confluentFrame, connectToAvro, glueFrame } from '../../functions/core/decode/avro';
import type { KafkaEvent, KafkaRecord } from '../../functions/core/types';
import { readEventFile } from '../lib/event-files';
import { type ConnectDocument, parseConnectDocument } from '../local/registry/avro-converter';

const EVENTS_DIR = fileURLToPath(new URL('../../events/', import.meta.url));
/** Folders whose files are not Kafka messages with Debezium JSON documents. */
const NOT_SAMPLES = ['avro/', 'expected/', 'malformed/', 'msk/', 'dead-letter/'];

export type Framing = 'confluent' | 'glue';

/** An Avro sample file: an MSK event plus what the local registry must serve for it. */
export interface AvroSampleFile extends KafkaEvent {
  /** The JSON sample this file mirrors (relative to events/); its expected output is this file's. */
  json: string;
  /** Schema id (Confluent: decimal id, Glue: version UUID) → Avro schema text. */
  registry: Record<string, string>;
}

/** A Connect document `{schema, payload}` with numbers exact (unsafe integers as digit strings). */
function connectDocument(base64: string | null | undefined): ConnectDocument | null | undefined {
  if (base64 === null || base64 === undefined || base64 === '') return null;
  return parseConnectDocument(Buffer.from(base64, 'base64').toString('utf8'));
}

/** Deterministic registry ids, so regenerating gives the same files. */
class SampleRegistry {
  private readonly ids = new Map<string, string>();
  constructor(private readonly framing: Framing) {}
  idOf(text: string): string {
    let id = this.ids.get(text);
    if (id === undefined) {
      if (this.framing === 'confluent') id = String(this.ids.size + 1);
      else {
        const hex = createHash('sha256').update(text).digest('hex');
        id = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
      }
      this.ids.set(text, id);
    }
    return id;
  }
}

function encode(
  document: ConnectDocument,
  registry: SampleRegistry,
  framing: Framing,
  used: Record<string, string>,
  compress: boolean,
): string {
  const avroSchema = connectToAvro(document.schema);
  const text = JSON.stringify(avroSchema);
  const id = registry.idOf(text);
  used[id] = text;
  const body = compileAvroType(avroSchema).toBuffer(document.payload);
  const framed = framing === 'confluent' ? confluentFrame(Number(id), body) : glueFrame(id, body, compress);
  return framed.toString('base64');
}

/** The Avro twin of one JSON sample, or undefined when a record has no schema. */
export async function avroSampleOf(relativePath: string, framing: Framing): Promise<AvroSampleFile | undefined> {
  const event = await readEventFile(join(EVENTS_DIR, relativePath));
  const registry = new SampleRegistry(framing);
  const used: Record<string, string> = {};
  const records: Record<string, KafkaRecord[]> = {};
  for (const [partition, list] of Object.entries(event.records)) {
    records[partition] = [];
    for (const record of list) {
      const key = connectDocument(record.key);
      const value = connectDocument(record.value);
      if (key === undefined || value === undefined) return undefined;
      records[partition].push({
        ...record,
        key: key === null ? record.key : encode(key, registry, framing, used, false),
        value: value === null ? record.value : encode(value, registry, framing, used, true),
      });
    }
  }
  const { eventSource, eventSourceArn, bootstrapServers } = event;
  return { json: relativePath, registry: used, eventSource, eventSourceArn, bootstrapServers, records };
}

/** The JSON samples under events/ that can have an Avro twin (recursively, sorted). */
export function jsonSamples(): string[] {
  return readdirSync(EVENTS_DIR, { recursive: true, encoding: 'utf8' })
    .map((path) => path.split('\\').join('/'))
    .filter((path) => path.endsWith('.json') && !NOT_SAMPLES.some((prefix) => path.startsWith(prefix)))
    .sort();
}

export function avroSamplePath(framing: Framing, relativePath: string): string {
  return join(EVENTS_DIR, 'avro', framing, relativePath);
}

async function main(): Promise<void> {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const framing of ['confluent', 'glue'] as const) {
    for (const path of jsonSamples()) {
      let sample: AvroSampleFile | undefined;
      try {
        sample = await avroSampleOf(path, framing);
      } catch (error) {
        // JsonConverter-only shapes (decimal.format=NUMERIC numbers) have no Avro encoding.
        if (framing === 'confluent') console.log(`skipped ${path}: ${(error as Error).message}`);
        continue;
      }
      if (!sample) continue;
      const target = avroSamplePath(framing, path);
      const text = `${JSON.stringify(sample, null, 2)}\n`;
      if (check) {
        let current = '';
        try {
          current = readFileSync(target, 'utf8');
        } catch {}
        if (current !== text) {
          stale++;
          console.error(`stale: ${target}`);
        }
        continue;
      }
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, text);
      console.log(`wrote ${target}`);
    }
  }
  if (stale) process.exit(1);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
