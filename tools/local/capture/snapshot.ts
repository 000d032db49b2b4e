/**
 * The initial snapshot (RelationalSnapshotChangeEventSource): every captured table read in one REPEATABLE READ
 * transaction that imports the slot's exported snapshot, so the reads are exactly the database at the slot's
 * consistent point and streaming continues from there with nothing missed or doubled.
 */
import type pg from 'pg';
import type { Catalog } from './catalog';
import { parseTimestamp } from './pgtext';
import type { RecordFactory } from './records';
import { quoteIdent } from './replication';
import { buildTableSchema, type TableSchema } from './table-schema';
import type { CapturedRecord } from './types';

const SNAPSHOT_FETCH = 1000;

/** What the snapshot needs from the capture. */
export interface SnapshotHost {
  meta: pg.Client;
  catalog: Catalog;
  prefix: string;
  records: RecordFactory;
  /** Tables to read (OIDs). */
  oids: Iterable<number>;
  /** Remembers the schema a table was read with, for the stream that follows. */
  setTable(oid: number, table: TableSchema): void;
  /** Hands one read on; `final` marks the snapshot's very last record. */
  emitRead(
    record: CapturedRecord,
    position: { lsn: bigint; txId: bigint | null; tsUs: bigint; final: boolean },
  ): Promise<void>;
}

function snapshotMarker(final: boolean, first: boolean, lastInTable: boolean, firstInTable: boolean): string {
  // RelationalSnapshotChangeEventSource.setSnapshotMarker, plus BufferingSnapshotChangeRecordReceiver which marks
  // the very last record "last" even when the last table was empty.
  if (final) return 'last';
  if (first) return 'first';
  if (lastInTable) return 'last_in_data_collection';
  if (firstInTable) return 'first_in_data_collection';
  return 'true';
}

/** Reads every table at the exported snapshot `snapshotName`; reads are positioned at `lsn`. Returns rows read. */
export async function initialSnapshot(host: SnapshotHost, snapshotName: string, lsn: bigint): Promise<number> {
  const { meta } = host;
  let count = 0;
  await meta.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  try {
    await meta.query(`SET TRANSACTION SNAPSHOT '${snapshotName.replace(/'/g, "''")}'`);
    // Debezium: source.ts_ms of snapshot reads is the snapshot transaction's CURRENT_TIMESTAMP; txId is
    // txid_current() of that transaction (PostgresConnection.currentTransactionId).
    const info = (
      await meta.query(
        'SELECT now()::text AS ts, (CASE WHEN pg_is_in_recovery() THEN 0 ELSE txid_current() END)::text AS txid',
      )
    ).rows[0];
    const ts = parseTimestamp(info?.ts ?? '');
    const tsUs = ts ? BigInt(ts.seconds) * 1_000_000n + BigInt(ts.micros) : BigInt(Date.now()) * 1000n;
    const txId = info?.txid && info.txid !== '0' ? BigInt(info.txid) : null;

    // Table schemas as of the snapshot, in Debezium's order (sorted table ids).
    const tables: TableSchema[] = [];
    for (const oid of host.oids) {
      const table = await buildTableSchema(host.prefix, host.catalog, await host.catalog.table(oid));
      host.setTable(oid, table);
      tables.push(table);
    }
    tables.sort((a, b) => (`${a.schema}.${a.table}` < `${b.schema}.${b.table}` ? -1 : 1));

    let emittedAny = false;
    let pending: {
      table: TableSchema;
      row: Array<string | null>;
      firstInTable: boolean;
      lastInTable: boolean;
    } | null = null;
    const emit = async (p: NonNullable<typeof pending>, final: boolean) => {
      const marker = snapshotMarker(
        final,
        !emittedAny && p.firstInTable && p.table === tables[0],
        p.lastInTable,
        p.firstInTable,
      );
      emittedAny = true;
      const source = host.records.source(p.table, { tsUs, snapshot: marker, lastCommitLsn: null, lsn, txId });
      const after = p.table.rowJson(p.row);
      count++;
      await host.emitRead(host.records.change(p.table, 'r', p.table.keyPayload(p.row), null, after, source), {
        lsn,
        txId,
        tsUs,
        final,
      });
    };

    for (const table of tables) {
      const columns = table.columns.map((c) => quoteIdent(c.name)).join(', ');
      await meta.query(
        `DECLARE cdc_snapshot NO SCROLL CURSOR FOR SELECT ${columns || '*'} FROM ${quoteIdent(table.schema)}.${quoteIdent(table.table)}`,
      );
      let firstInTable = true;
      for (;;) {
        const result = await meta.query({
          text: `FETCH FORWARD ${SNAPSHOT_FETCH} FROM cdc_snapshot`,
          rowMode: 'array',
        });
        const rows = result.rows as unknown as Array<Array<string | null>>;
        for (const row of rows) {
          if (pending) await emit(pending, false);
          pending = { table, row, firstInTable, lastInTable: false };
          firstInTable = false;
        }
        if (rows.length < SNAPSHOT_FETCH) break;
      }
      if (pending && pending.table === table) pending.lastInTable = true;
      await meta.query('CLOSE cdc_snapshot');
    }
    if (pending) await emit(pending, true);
    await meta.query('COMMIT');
  } catch (err) {
    await meta.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
  return count;
}
