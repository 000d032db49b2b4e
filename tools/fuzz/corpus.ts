/**
 * The valid change events the fuzzer starts from: every sample in events/ that decodes to a keyed row change (or a
 * truncate), turned into a template whose source position can be set. Each generated record gets a fresh position
 * that grows with every record, so valid neighbours are new changes for the dedupe, never re-emissions.
 */
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { isLosslessNumber, parse, stringify } from 'lossless-json';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import type { KafkaRecord } from '../../functions/core/types';
import { readEventFile } from '../lib/event-files';

/**
 * How a base's records are ordered, which decides what can share a partition with it: within a partition a change
 * whose order is below the highest applied one is a re-emission (docs/architecture.md), so each partition carries one
 * family. `pg`: PostgreSQL with a commit part; `pgu`: ExtractNewRecordState rows with only `__lsn` (no commit part,
 * never comparable across rows); `my`: MySQL/MariaDB binlog; `ms`: SQL Server; `kf`: rows without a position (ordered
 * by Kafka offset).
 */
export type OrderFamily = 'pg' | 'pgu' | 'my' | 'ms' | 'kf';

export interface Base {
  /** `<file>#<index>` in events/. */
  name: string;
  topic: string;
  family: OrderFamily;
  /** A Debezium envelope (`op`, `source`, `before`, `after`), or an ExtractNewRecordState row. */
  shape: 'envelope' | 'row';
  /** JsonConverter with schemas.enable=true (`{"schema":…,"payload":…}`). */
  schemas: boolean;
  /** The key document's JSON text (null: no key, e.g. a truncate). */
  keyText: string | null;
  /** The value's JSON text with {@link POSITION} markers where the position goes. */
  template: string;
  headers: KafkaRecord['headers'];
  timestamp: number;
}

/** Markers in a template: replaced by {@link valueText}. */
const POSITION = '"@@FUZZ_POS@@"';
const SEQUENCE = '"@@FUZZ_SEQ@@"';
const MS_LSN = '"@@FUZZ_MS_LSN@@"';

/** Folders of events/ that hold no valid JSON change events (or only Avro, which needs a registry). */
const EXCLUDED = new Set(['expected', 'malformed', 'dead-letter', 'avro']);

async function eventFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      if (!EXCLUDED.has(entry.name)) out.push(...(await eventFiles(join(dir, entry.name))));
    } else if (entry.name.endsWith('.json')) {
      out.push(join(dir, entry.name));
    }
  }
  return out.sort();
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !isLosslessNumber(value);
}

/** The payload of a JsonConverter document (the document itself when schemas are off). */
export function payloadOf(doc: unknown): { payload: Json; schemas: boolean } | undefined {
  if (isObject(doc) && 'schema' in doc && 'payload' in doc && Object.keys(doc).length === 2) {
    return isObject(doc.payload) ? { payload: doc.payload, schemas: doc.schema !== null } : undefined;
  }
  return isObject(doc) ? { payload: doc, schemas: false } : undefined;
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

/** The value of a base at position `n` (a positive integer, unique and growing over the whole run). */
export function valueText(base: Base, n: number): string {
  const lsn = 40_000_000 + n * 64;
  let text = base.template;
  switch (base.family) {
    case 'pg':
      // `sequence` = ["<last commit LSN>", "<LSN>"]: each change its own transaction, committed just before.
      text = text.replace(SEQUENCE, JSON.stringify(JSON.stringify([String(lsn - 32), String(lsn)])));
      text = text.replace(POSITION, String(lsn));
      break;
    case 'pgu':
      text = text.replace(POSITION, String(lsn));
      break;
    case 'my':
      text = text.replace(POSITION, String(4_000 + n * 100));
      break;
    case 'ms': {
      const lsnText = JSON.stringify(`${hex(0x30 + Math.floor(n / 0x10000), 8)}:${hex(n % 0x10000, 8)}:0001`);
      text = text.replaceAll(MS_LSN, lsnText);
      break;
    }
    case 'kf':
      break;
  }
  return text;
}

/** Turns one sample record into a base, or undefined when it is not a keyed row change the fuzzer can reposition. */
function baseOf(name: string, record: KafkaRecord): Base | undefined {
  if (!record.value) return undefined;
  const decoded = new JsonDebeziumDecoder().decode(record, 0);
  if (decoded.kind !== 'event') return undefined;
  const event = decoded.event;
  if (event.key === null && event.op !== 't') return undefined;
  const doc = parse(Buffer.from(record.value, 'base64').toString('utf8'));
  const found = payloadOf(doc);
  if (!found) return undefined;
  const { payload, schemas } = found;
  const shape = 'op' in payload && isObject(payload.source) ? 'envelope' : 'row';
  let family: OrderFamily;
  if (shape === 'envelope') {
    const source = payload.source as Json;
    // Snapshot reads of the initial snapshot sort below every streamed change: as incremental-snapshot reads they
    // take the stream's order, so they can follow streamed changes in a partition.
    if ('snapshot' in source) source.snapshot = event.op === 'r' ? 'incremental' : 'false';
    switch (event.source.connector) {
      case 'postgresql':
        family = 'pg';
        source.lsn = POSITION.slice(1, -1);
        source.sequence = SEQUENCE.slice(1, -1);
        break;
      case 'mysql':
      case 'mariadb':
        family = 'my';
        source.pos = POSITION.slice(1, -1);
        source.row = 0;
        break;
      case 'sqlserver':
        family = 'ms';
        source.commit_lsn = MS_LSN.slice(1, -1);
        source.change_lsn = MS_LSN.slice(1, -1);
        source.event_serial_no = 1;
        break;
      default:
        return undefined;
    }
  } else if ('__lsn' in payload || '__source_lsn' in payload) {
    family = 'pgu';
    payload['__lsn' in payload ? '__lsn' : '__source_lsn'] = POSITION.slice(1, -1);
  } else if (event.source.connector === 'kafka') {
    family = 'kf';
  } else {
    return undefined;
  }
  return {
    name,
    topic: record.topic,
    family,
    shape,
    schemas,
    keyText: record.key ? Buffer.from(record.key, 'base64').toString('utf8') : null,
    template: stringify(doc) as string,
    headers: record.headers,
    timestamp: record.timestamp,
  };
}

/** A base's record at position `n`: what a valid neighbour is, and what a mutation starts from. */
export function recordOf(base: Base, n: number, coordinates: { partition: number; offset: number }): KafkaRecord {
  return {
    topic: base.topic,
    partition: coordinates.partition,
    offset: coordinates.offset,
    timestamp: base.timestamp + n,
    timestampType: 'CREATE_TIME',
    key: base.keyText === null ? null : Buffer.from(base.keyText, 'utf8').toString('base64'),
    value: Buffer.from(valueText(base, n), 'utf8').toString('base64'),
    headers: base.headers ?? [],
  };
}

/**
 * Loads the bases from an events/ folder. Each is checked by decoding it at two positions: both must be change events
 * with different, growing orders (a template that failed to take the position would make neighbours duplicates).
 */
export async function loadCorpus(eventsDir: string): Promise<Base[]> {
  const bases: Base[] = [];
  for (const file of await eventFiles(eventsDir)) {
    const event = await readEventFile(file);
    let index = 0;
    for (const records of Object.values(event.records)) {
      for (const record of records) {
        const base = baseOf(`${relative(eventsDir, file)}#${index++}`, record);
        if (base && repositions(base)) bases.push(base);
      }
    }
  }
  if (bases.length === 0) throw new Error(`no usable change events in ${eventsDir}`);
  return bases;
}

function repositions(base: Base): boolean {
  const decoder = new JsonDebeziumDecoder();
  const at = (n: number) => decoder.decode(recordOf(base, n, { partition: 0, offset: n }), 0);
  const first = at(1);
  const second = at(2);
  if (first.kind !== 'event' || second.kind !== 'event') return false;
  if (base.family === 'kf' || base.family === 'pgu') return true;
  return first.event.source.order < second.event.source.order;
}
