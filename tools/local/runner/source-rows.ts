/**
 * The source database's current rows in canonical form (exactly what the decoder makes of Debezium's values), for
 * verification. Rather than a second set of PostgreSQL type converters that could disagree with the capture's, it
 * runs a short-lived capture with its own temporary slot and publication and `snapshotMode: 'initial'`, keeps the
 * snapshot reads (`op: "r"`) and decodes them with the lanes' own decoder. The snapshot is one REPEATABLE READ
 * transaction, so the rows are one consistent state of the database.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { JsonDebeziumDecoder } from '../../../functions/core/decode';
import type { ColumnTypes, KafkaRecord, Row } from '../../../functions/core/types';
import { type CapturedRecord, MemoryOffsetStore, startPostgresCapture } from '../capture';
import { quoteIdent } from '../capture/replication';

/** One table's rows at the source. */
export interface SourceTable {
  /** `<prefix>.<schema>.<table>`, the topic name and `tableIdOf` of its events. */
  id: string;
  /** Column types from the Connect schema (the same the warehouse used to type its Parquet columns). */
  columns: ColumnTypes | undefined;
  /** Rows with their key (null for tables without a primary key). */
  rows: Array<{ key: Row | null; row: Row }>;
}

export interface SourceRowsOptions {
  connectionString: string;
  topicPrefix: string;
  schemas?: string[];
  tables?: string[];
  /**
   * Starts the name of the throw-away slot and publication, so that whoever cleans up after the run (an interrupted
   * one included) finds them with {@link dropSlotsAndPublications}. @default 'cdc_sync'
   */
  namePrefix?: string;
}

/** Reads every captured table's rows through a throw-away snapshot. Tables without rows are absent. */
export async function readSourceRows(options: SourceRowsOptions): Promise<Map<string, SourceTable>> {
  const name = `${options.namePrefix ?? 'cdc_sync'}_verify_${randomBytes(4).toString('hex')}`;
  // Decoded as the snapshot arrives, keeping only the rows: the JSON records (each with its Connect schema) would
  // take several times the memory, all at once, for a large database.
  const decoder = new JsonDebeziumDecoder();
  const tables = new Map<string, SourceTable>();
  let offset = 0;
  const keep = (record: CapturedRecord) => {
    if (record.value === null) return;
    const kafka: KafkaRecord = {
      topic: record.topic,
      partition: 0,
      offset: offset++,
      timestamp: record.timestamp,
      key: record.key?.toString('base64') ?? null,
      value: record.value.toString('base64'),
      headers: [],
    };
    const outcome = decoder.decode(kafka, Date.now());
    if (outcome.kind === 'error') throw new Error(`cannot decode the source snapshot: ${outcome.error.message}`);
    if (outcome.kind !== 'event' || outcome.event.op !== 'r' || outcome.event.after === null) return;
    let table = tables.get(record.topic);
    if (!table) {
      table = { id: record.topic, columns: outcome.columns, rows: [] };
      tables.set(record.topic, table);
    }
    table.rows.push({ key: outcome.event.key, row: outcome.event.after });
  };
  try {
    const capture = await startPostgresCapture({
      connectionString: options.connectionString,
      topicPrefix: options.topicPrefix,
      slotName: name,
      publicationName: name,
      ...(options.tables ? { tables: options.tables } : { schemas: options.schemas ?? ['public'] }),
      snapshotMode: 'initial',
      produce: async (batch) => {
        for (const record of batch) keep(record);
      },
      offsets: new MemoryOffsetStore(),
    });
    await capture.stop();
  } finally {
    // Also when the capture failed to start half-way: its publication may exist without a slot.
    const admin = new pg.Client(options.connectionString);
    await admin.connect();
    try {
      await dropSlotsAndPublications(admin, name);
    } finally {
      await admin.end();
    }
  }
  return tables;
}

/** Drops a replication slot, waiting for a walsender that is still letting go of it. */
export async function dropSlot(client: pg.Client, slot: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await client.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [
        slot,
      ]);
      return;
    } catch (error) {
      if (attempt >= 40 || !/is active/.test(String(error))) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

/**
 * Drops every replication slot and publication whose name starts with `prefix` (a run's own, under names unique to
 * it), ending the walsender that still holds a slot: what an interrupted run leaves behind in someone else's
 * database, its verification's throw-away slot included. A slot or publication gone meanwhile is not an error.
 */
export async function dropSlotsAndPublications(client: pg.Client, prefix: string): Promise<string[]> {
  const dropped: string[] = [];
  const { rows: slots } = await client.query<{ name: string }>(
    'SELECT slot_name AS name FROM pg_replication_slots WHERE left(slot_name, length($1)) = $1',
    [prefix],
  );
  for (const { name } of slots) {
    await client.query(
      'SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL',
      [name],
    );
    await dropSlot(client, name);
    dropped.push(`slot ${name}`);
  }
  const { rows: publications } = await client.query<{ name: string }>(
    'SELECT pubname AS name FROM pg_publication WHERE left(pubname, length($1)) = $1',
    [prefix],
  );
  for (const { name } of publications) {
    await client.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(name)}`);
    dropped.push(`publication ${name}`);
  }
  return dropped;
}
