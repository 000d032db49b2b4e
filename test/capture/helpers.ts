import { isInteger, parse as parseLossless, stringify as stringifyLossless } from 'lossless-json';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import {
  type CapturedRecord,
  type CaptureOptions,
  MemoryOffsetStore,
  type PostgresCapture,
  type SnapshotNotification,
  startPostgresCapture,
} from '../../tools/local/capture';
import { type LocalPostgres, startEmbeddedPostgres } from '../../tools/local/postgres';
import { dropSlot } from '../../tools/local/runner/source-rows';

/** One embedded PostgreSQL per test file, plus a client for the test's own SQL. */
export function usePostgres(): { db: () => LocalPostgres; sql: () => pg.Client } {
  let db: LocalPostgres | undefined;
  let client: pg.Client | undefined;
  beforeAll(async () => {
    db = await startEmbeddedPostgres();
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end();
    await db?.stop();
  });
  return {
    db: () => {
      if (!db) throw new Error('postgres not started');
      return db;
    },
    sql: () => {
      if (!client) throw new Error('postgres not started');
      return client;
    },
  };
}

let counter = 0;
/** A name unique within the test run (schemas, slots, publications). */
export function unique(prefix: string): string {
  counter++;
  return `${prefix}_${process.pid}_${counter}`;
}

/** A produce() that keeps every record, in order. */
export function collector(): { records: CapturedRecord[]; produce: (records: CapturedRecord[]) => Promise<void> } {
  const records: CapturedRecord[] = [];
  return {
    records,
    produce: async (batch) => {
      records.push(...batch);
    },
  };
}

export interface TestCapture {
  capture: PostgresCapture;
  records: CapturedRecord[];
  offsets: MemoryOffsetStore;
  slot: string;
  publication: string;
  stop(): Promise<void>;
}

/**
 * Starts a capture of one schema with a fresh slot and publication; `stop` also drops the slot so WAL is not
 * retained for the rest of the file.
 */
export async function captureSchema(
  db: LocalPostgres,
  sql: pg.Client,
  schema: string,
  overrides: Partial<CaptureOptions> = {},
): Promise<TestCapture> {
  const { records, produce } = collector();
  const offsets = (overrides.offsets as MemoryOffsetStore | undefined) ?? new MemoryOffsetStore();
  const slot = overrides.slotName ?? unique('slot');
  const publication = overrides.publicationName ?? unique('pub');
  const capture = await startPostgresCapture({
    connectionString: db.url,
    topicPrefix: 'test',
    slotName: slot,
    publicationName: publication,
    schemas: [schema],
    offsetFlushIntervalMs: 50,
    produce,
    offsets,
    ...overrides,
  });
  return {
    capture,
    records,
    offsets,
    slot,
    publication,
    async stop() {
      await capture.stop();
      await dropSlot(sql, slot);
    },
  };
}

/**
 * Starts a capture that keeps every record it produces and every snapshot notification it emits: the second run of
 * the crash-and-resume tests, on the first run's slot and offsets.
 */
export async function startCollecting(
  options: Omit<CaptureOptions, 'produce' | 'onNotification'>,
): Promise<{ capture: PostgresCapture; records: CapturedRecord[]; notes: SnapshotNotification[] }> {
  const { records, produce } = collector();
  const notes: SnapshotNotification[] = [];
  const capture = await startPostgresCapture({
    ...options,
    produce,
    onNotification: (n) => {
      notes.push(n);
    },
  });
  return { capture, records, notes };
}

/** Drops a replication slot if it exists, waiting for a walsender that is letting go of it (the runner's own). */
export { dropSlot };

/** A record's key and value, parsed (numbers beyond 2^53 come back as digit strings). */
export interface Parsed {
  topic: string;
  keyText: string | null;
  valueText: string | null;
  // biome-ignore lint/suspicious/noExplicitAny: test convenience over arbitrary JSON
  key: any;
  // biome-ignore lint/suspicious/noExplicitAny: test convenience over arbitrary JSON
  value: any;
  headers: Record<string, string>;
  record: CapturedRecord;
}

function exact(text: string): unknown {
  return parseLossless(text, undefined, (v) => {
    if (!isInteger(v)) return Number(v);
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : v;
  });
}

export function parse(record: CapturedRecord): Parsed {
  const keyText = record.key?.toString('utf8') ?? null;
  const valueText = record.value?.toString('utf8') ?? null;
  return {
    topic: record.topic,
    keyText,
    valueText,
    key: keyText === null ? null : exact(keyText),
    value: valueText === null ? null : exact(valueText),
    headers: Object.fromEntries(record.headers.map(([k, v]) => [k, v.toString('utf8')])),
    record,
  };
}

/** The exact JSON text of a part of a JSON document (numbers keep every digit). */
export function jsonAt(text: string, ...path: Array<string | number>): string {
  // biome-ignore lint/suspicious/noExplicitAny: walking arbitrary JSON
  let node: any = parseLossless(text);
  for (const step of path) node = node?.[step];
  return stringifyLossless(node) ?? 'undefined';
}

/** Change events (not tombstones, not heartbeats) of a topic suffix, parsed. */
export function changes(records: CapturedRecord[], table?: string): Parsed[] {
  return records
    .filter((r) => r.value !== null && !r.topic.startsWith('__debezium-heartbeat'))
    .filter((r) => table === undefined || r.topic.endsWith(`.${table}`))
    .map(parse);
}

/** Waits until `predicate` holds (polling), or fails after `timeoutMs`. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A promise with its resolve exposed. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/**
 * Replays change events into table state by key text (the way a sink would): r/c/u upsert `after`, d deletes,
 * t clears the table. Returns rows keyed by key text.
 */
export function replay(events: Parsed[]): Map<string, Record<string, unknown>> {
  const state = new Map<string, Record<string, unknown>>();
  for (const e of events) {
    const p = e.value.payload;
    if (p.op === 't') {
      state.clear();
      continue;
    }
    const key = JSON.stringify(e.key.payload);
    if (p.op === 'd') state.delete(key);
    else state.set(key, p.after);
  }
  return state;
}
