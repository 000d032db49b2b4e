/**
 * pgoutput row changes → Debezium change records (PostgresChangeRecordEmitter / RelationalChangeRecordEmitter):
 * inserts, updates (with the primary-key-change split), deletes with their tombstones, truncates. Positions and the
 * `source` block are the caller's; this only shapes records and counts them.
 */
import type { PgOutputMessage } from './pgoutput';
import type { RecordFactory } from './records';
import type { TableSchema } from './table-schema';
import type { CaptureCounts, CapturedRecord, CaptureOperation } from './types';

type RowMessage = Extract<PgOutputMessage, { tag: 'insert' | 'update' | 'delete' }>;

/** Builds the records of streamed changes for one capture. */
export class ChangeTranslator {
  constructor(
    private readonly records: RecordFactory,
    private readonly counts: CaptureCounts,
    private readonly skipped: ReadonlySet<CaptureOperation>,
    private readonly tombstonesOnDelete: boolean,
    /** The heartbeat table (`schema.table`): its changes are counted apart. */
    private readonly heartbeatTable: string | null = null,
  ) {}

  /** The keys (key payload texts) a row change touches: old and new key, deduplicated; empty for keyless tables. */
  static keysOf(table: TableSchema, msg: RowMessage): string[] {
    const keys: string[] = [];
    const add = (k: string | null) => {
      if (k !== null && !keys.includes(k)) keys.push(k);
    };
    if (msg.tag !== 'delete') add(table.keyPayload(msg.newTuple));
    if (msg.tag !== 'insert' && msg.oldTuple) add(table.keyPayload(msg.oldTuple));
    return keys;
  }

  /** Appends the records of one INSERT/UPDATE/DELETE to `out` (nothing when its operation is skipped). */
  rowChange(table: TableSchema, msg: RowMessage, source: string, out: CapturedRecord[]): void {
    const op = msg.tag === 'insert' ? 'c' : msg.tag === 'update' ? 'u' : 'd';
    if (this.skipped.has(op)) return;
    const { records } = this;
    if (
      msg.tag !== 'delete' &&
      this.heartbeatTable !== null &&
      `${table.schema}.${table.table}` === this.heartbeatTable
    ) {
      // The heartbeat action's upsert: an ordinary record, counted apart so it never reads as a user's change.
      const before = msg.tag === 'update' && msg.oldTuple ? table.rowJson(msg.oldTuple) : null;
      const key = table.keyPayload(msg.newTuple);
      out.push(
        records.change(table, msg.tag === 'insert' ? 'c' : 'u', key, before, table.rowJson(msg.newTuple), source),
      );
      this.counts.heartbeatAction++;
      return;
    }
    if (msg.tag === 'insert') {
      out.push(records.change(table, 'c', table.keyPayload(msg.newTuple), null, table.rowJson(msg.newTuple), source));
      this.counts.create++;
      return;
    }
    if (msg.tag === 'delete') {
      const key = table.keyPayload(msg.oldTuple);
      this.pushDelete(records.change(table, 'd', key, table.rowJson(msg.oldTuple), null, source), out);
      return;
    }
    // UPDATE. REPLICA IDENTITY DEFAULT sends no old tuple unless the key changed ('K': key columns only);
    // FULL sends the whole old row ('O'). RelationalChangeRecordEmitter.emitUpdateRecord compares old and new keys.
    const newKey = table.keyPayload(msg.newTuple);
    const before = msg.oldTuple ? table.rowJson(msg.oldTuple) : null;
    const after = table.rowJson(msg.newTuple, msg.oldKind === 'O' ? msg.oldTuple : null);
    const oldKey = msg.oldTuple ? table.keyPayload(msg.oldTuple) : null;
    if (oldKey === null || newKey === null || oldKey === newKey) {
      out.push(records.change(table, 'u', newKey, before, after, source));
      this.counts.update++;
      return;
    }
    // Primary-key change: delete (old key) + tombstone + create (new key), with the other key in a header.
    this.pushDelete(
      records.change(table, 'd', oldKey, before, null, source, [records.keyHeader('__debezium.newkey', newKey)]),
      out,
    );
    out.push(records.change(table, 'c', newKey, null, after, source, [records.keyHeader('__debezium.oldkey', oldKey)]));
    this.counts.create++;
  }

  /** Appends a truncate event for one table (Debezium: key null, before and after null). */
  truncate(table: TableSchema, source: string, out: CapturedRecord[]): void {
    if (this.skipped.has('t')) return;
    out.push(this.records.change(table, 't', null, null, null, source));
    this.counts.truncate++;
  }

  private pushDelete(record: CapturedRecord, out: CapturedRecord[]): void {
    out.push(record);
    this.counts.delete++;
    if (this.tombstonesOnDelete) {
      out.push(this.records.tombstone(record));
      this.counts.tombstone++;
    }
  }
}
