import { pad } from '../change';
import { DecodeError } from '../errors';
import type { ChangeSource } from '../types';

/** The `source` block fields we read; the rest of Debezium's block is ignored. */
export interface SourceBlock {
  connector: string;
  name: string;
  ts_ms?: number | string | null;
  ts_ns?: number | string | null;
  snapshot?: string | boolean | null;
  db?: string | null;
  schema?: string | null;
  table?: string | null;
  lsn?: number | string | null;
  txId?: number | string | null;
  sequence?: string | null;
  file?: string | null;
  pos?: number | string | null;
  row?: number | string | null;
  gtid?: string | null;
  commit_lsn?: string | null;
  change_lsn?: string | null;
  event_serial_no?: number | string | null;
}

export interface KafkaCoordinates {
  topic: string;
  partition: number;
  offset: number;
}

/** A position field as an exact string; numbers and strings only (anything else is a malformed source block). */
function str(value: unknown, field?: string): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number' || typeof value === 'string') return String(value);
  throw new DecodeError('INVALID_ENVELOPE', `source.${field ?? 'field'}: must be a number or a string`);
}

/**
 * PostgreSQL `sequence` is a stringified JSON array `["<lastCommitLsn>","<lsn>"]`; either may be null. Read without
 * JSON.parse (it runs per record): the first element is a quoted run of digits, or null.
 */
function lastCommitLsnOf(sequence: string | null | undefined): string | null {
  if (sequence?.charCodeAt(0) !== 91 /* [ */) return null;
  const quoted = sequence.charCodeAt(1) === 34; /* " */
  const start = quoted ? 2 : 1;
  let end = start;
  while (end < sequence.length && sequence.charCodeAt(end) >= 48 && sequence.charCodeAt(end) <= 57) end++;
  return end > start ? sequence.slice(start, end) : null;
}

/** The numeric suffix of a binlog file name: `mysql-bin.000003` → "3" (so 1000000 sorts after 999999). */
function binlogSequence(file: string): string {
  const match = /(\d+)$/.exec(file);
  return match ? String(Number(match[1])) : '0';
}

/** Snapshot markers of the initial/blocking snapshot ("incremental" reads are interleaved with the stream). */
function isSnapshotRead(snapshot: SourceBlock['snapshot']): boolean {
  if (snapshot === true) return true;
  return typeof snapshot === 'string' && snapshot !== 'false' && snapshot !== 'incremental';
}

function invalid(message: string): never {
  throw new DecodeError('INVALID_ENVELOPE', message);
}

/**
 * Reads the connector's position and derives the sortable `order`:
 * - PostgreSQL: `pg:<phase>:<lastCommitLsn>:<lsn>`. pgoutput streams whole transactions in commit order, but a
 *   change's own LSN is where it was written, so concurrent transactions interleave; Debezium's `sequence[0]`
 *   (commit LSN of the previous transaction) increases with every transaction and `lsn` within one, so the pair
 *   (lastCommitLsn, lsn) follows the stream, and places incremental-snapshot reads (see below).
 * - MySQL/MariaDB: (binlog file number, pos, row): binlog order is commit order.
 * - SQL Server: (commit_lsn, change_lsn, event_serial_no): fixed-width hex LSNs sort as strings.
 * - anything else: the Kafka offset, which orders the records of one partition (and so of one row key).
 */
export function readSource(block: SourceBlock, kafka: KafkaCoordinates, op?: string): ChangeSource {
  const connector = block.connector;
  let position: Record<string, string>;
  let order: string;
  let txId = str(block.txId, 'txId');
  switch (connector) {
    case 'postgresql': {
      const lsn = str(block.lsn, 'lsn');
      if (lsn === null) invalid('postgresql source has no lsn');
      const lastCommitLsn = lastCommitLsnOf(block.sequence);
      position = lastCommitLsn === null ? { lsn } : { lsn, lastCommitLsn };
      // Phase 0 = a read of the initial (or a blocking) snapshot, 1 = a streamed change or an incremental-snapshot
      // read. Every streamed change was committed after the snapshot's consistent point, yet the first transaction
      // streamed has no lastCommitLsn and may have changes written (LSN) before that point: the phase keeps any
      // snapshot read below it (phase 0 orders carry a zero commit part and sort by LSN among themselves).
      // Within phase 1 the commit part comes first: (lastCommitLsn, lsn) follows the stream, and it is the only
      // pair that places an incremental read right. Such a read carries the LSN of the event that closed its chunk
      // window (the high watermark) and the last commit LSN at that point; a transaction that wrote the row before
      // the chunk's SELECT (lower LSN) but committed after the window has a higher lastCommitLsn, so it sorts after
      // the read, while everything committed before the window sorts below it. For streamed changes of one row the
      // pair is also commit order (row locks: a later writer's lastCommitLsn is at least the earlier writer's commit,
      // which is above the earlier writer's lastCommitLsn; inside one transaction the LSN decides). Unknown commit
      // = 20 zeros: only the first transaction a connector ever streams lacks it (Debezium restores lastCommitLsn
      // from its offsets on restart), and for any row everything before that is a phase-0 read. So per-row
      // comparisons (cache guard, warehouse "latest per key", verification) stay plain string comparisons; the
      // dedupe, which compares across rows, treats an unknown commit part as incomparable (core/dedupe.ts).
      const phase = op === 'r' && isSnapshotRead(block.snapshot) ? '0' : '1';
      order = `pg:${phase}:${pad(phase === '0' ? '0' : (lastCommitLsn ?? '0'), 20)}:${pad(lsn, 20)}`;
      break;
    }
    case 'mysql':
    case 'mariadb': {
      const file = str(block.file, 'file');
      const pos = str(block.pos, 'pos');
      if (file === null || pos === null) invalid(`${connector} source has no binlog file/pos`);
      const row = str(block.row, 'row') ?? '0';
      position = { file, pos, row };
      if (block.gtid) position.gtid = block.gtid;
      order = `my:${pad(binlogSequence(file), 20)}:${pad(pos, 20)}:${pad(row, 10)}`;
      txId = block.gtid ?? null;
      break;
    }
    case 'sqlserver': {
      const commitLsn = str(block.commit_lsn, 'commit_lsn')?.toLowerCase() ?? null;
      if (commitLsn === null) invalid('sqlserver source has no commit_lsn');
      const changeLsn = str(block.change_lsn, 'change_lsn')?.toLowerCase() ?? null;
      const serial = str(block.event_serial_no, 'event_serial_no');
      position = { commitLsn };
      if (changeLsn !== null) position.changeLsn = changeLsn;
      if (serial !== null) position.eventSerialNo = serial;
      order = `ms:${commitLsn}:${changeLsn ?? ''}:${pad(serial ?? '0', 20)}`;
      txId = commitLsn;
      break;
    }
    default:
      position = { topic: kafka.topic, partition: String(kafka.partition), offset: String(kafka.offset) };
      order = `kf:${pad(kafka.partition, 10)}:${pad(kafka.offset, 20)}`;
  }
  const snapshot = block.snapshot;
  const commitTs = block.ts_ms === null || block.ts_ms === undefined ? null : Number(block.ts_ms);
  const source: ChangeSource = {
    connector,
    name: block.name,
    db: block.db ?? null,
    schema: block.schema ?? null,
    table: block.table ?? null,
    position,
    order,
    snapshot: snapshot === null || snapshot === undefined ? 'false' : String(snapshot),
    txId,
    commitTs,
  };
  if (block.ts_ns !== null && block.ts_ns !== undefined) source.commitTsNs = String(block.ts_ns);
  return source;
}
