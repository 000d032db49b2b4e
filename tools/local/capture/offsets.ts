/**
 * Source offsets, as Kafka Connect stores them for the Debezium PostgreSQL connector (PostgresOffsetContext):
 * `lsn` (position of the last event), `lsn_proc` (last completely processed LSN), `lsn_commit` (end LSN of the last
 * committed transaction), `txId`, `ts_usec` (commit time), `messageType`, and `snapshot`/`last_snapshot_record`
 * while the initial snapshot runs. Integers are `bigint` so nothing is rounded; the file store writes them as JSON
 * numbers with every digit. A running incremental snapshot adds Debezium's `incremental_snapshot_*` keys
 * (AbstractIncrementalSnapshotContext.store): strings, so keys of any type survive exactly.
 */
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isInteger, parse, stringify } from 'lossless-json';

export interface SourceOffset {
  lsn?: bigint;
  lsn_proc?: bigint;
  lsn_commit?: bigint;
  txId?: bigint;
  ts_usec?: bigint;
  /** The operation of the event at `lsn`: INSERT, UPDATE, DELETE, TRUNCATE or COMMIT. */
  messageType?: string;
  /** Present while the initial snapshot runs (`INITIAL`, Debezium >= 2.6 writes the snapshot type). */
  snapshot?: string;
  last_snapshot_record?: boolean;
  /** The execute-snapshot signal's id (Debezium `incremental_snapshot_correlation_id`). */
  incremental_snapshot_correlation_id?: string;
  /**
   * JSON array of the tables still to snapshot, the current one first:
   * `[{"incremental_snapshot_collections_id":"public.orders","incremental_snapshot_collections_additional_condition":"…"}]`.
   */
  incremental_snapshot_collections?: string;
  /** JSON array of the key column texts of the last row whose chunk was produced; absent before the first chunk. */
  incremental_snapshot_primary_key?: string;
  /** JSON array of the key column texts of the current table's largest key when its scan began. */
  incremental_snapshot_maximum_key?: string;
  /**
   * Not Debezium's: rows the chunks produced so far read of the current table (decimal), so TABLE_SCAN_COMPLETED's
   * `total_rows_scanned` is the table's total across restarts.
   */
  incremental_snapshot_rows_scanned?: string;
  /** Not Debezium's: relation OID of the current table once its scan began (decimal), to recognise a rename. */
  incremental_snapshot_table_oid?: string;
}

/** Where the capture keeps its offset, like Kafka Connect's offset storage. */
export interface OffsetStore {
  /** The last saved offset, or null when none was ever saved. */
  load(): Promise<SourceOffset | null>;
  /** Stores the offset durably; the capture acknowledges the slot only after this resolves. */
  save(offset: SourceOffset): Promise<void>;
}

/** Offsets in memory (tests, throwaway runs). `history` keeps every saved offset in order. */
export class MemoryOffsetStore implements OffsetStore {
  readonly history: SourceOffset[] = [];

  constructor(private current: SourceOffset | null = null) {}

  async load(): Promise<SourceOffset | null> {
    return this.current ? { ...this.current } : null;
  }

  async save(offset: SourceOffset): Promise<void> {
    this.current = { ...offset };
    this.history.push(this.current);
  }
}

/**
 * Offsets in a JSON file, written atomically (temp file, fsync, rename) so a crash leaves either the old or the new
 * offset, never a torn one.
 */
export class JsonFileOffsetStore implements OffsetStore {
  constructor(readonly path: string) {}

  async load(): Promise<SourceOffset | null> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    return parse(text, undefined, (value) => (isInteger(value) ? BigInt(value) : Number(value))) as SourceOffset;
  }

  async save(offset: SourceOffset): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.tmp`;
    const file = await open(tmp, 'w');
    try {
      await file.writeFile(`${stringify(offset)}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, this.path);
  }
}
