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

const str = (value: unknown): string | null => (value === null || value === undefined ? null : String(value));

/** PostgreSQL `sequence` is a stringified JSON array `["<lastCommitLsn>","<lsn>"]`; either may be null. */
function lastCommitLsnOf(sequence: string | null | undefined): string | null {
  if (!sequence) return null;
  try {
    const parsed: unknown = JSON.parse(sequence);
    return Array.isArray(parsed) && parsed[0] !== null && parsed[0] !== undefined ? String(parsed[0]) : null;
  } catch {
    return null;
  }
}

/** The numeric suffix of a binlog file name: `mysql-bin.000003` → "3" (so 1000000 sorts after 999999). */
function binlogSequence(file: string): string {
  const match = /(\d+)$/.exec(file);
  return match ? String(Number(match[1])) : '0';
}

function invalid(message: string): never {
  throw new DecodeError('INVALID_ENVELOPE', message);
}

/**
 * Reads the connector's position and derives the sortable `order`:
 * - PostgreSQL: (lastCommitLsn, lsn). pgoutput streams whole transactions in commit order, but a change's own LSN
 *   is where it was written, so concurrent transactions interleave; Debezium's `sequence[0]` (commit LSN of the
 *   previous transaction) increases with every transaction and `lsn` within one, so the pair follows the stream.
 * - MySQL/MariaDB: (binlog file number, pos, row): binlog order is commit order.
 * - SQL Server: (commit_lsn, change_lsn, event_serial_no): fixed-width hex LSNs sort as strings.
 * - anything else: the Kafka offset, which orders the records of one partition (and so of one row key).
 */
export function readSource(block: SourceBlock, kafka: KafkaCoordinates): ChangeSource {
  const connector = block.connector;
  let position: Record<string, string>;
  let order: string;
  let txId = str(block.txId);
  switch (connector) {
    case 'postgresql': {
      const lsn = str(block.lsn);
      if (lsn === null) invalid('postgresql source has no lsn');
      const lastCommitLsn = lastCommitLsnOf(block.sequence);
      position = lastCommitLsn === null ? { lsn } : { lsn, lastCommitLsn };
      order = `pg:${pad(lastCommitLsn ?? '0', 20)}:${pad(lsn, 20)}`;
      break;
    }
    case 'mysql':
    case 'mariadb': {
      const file = str(block.file);
      const pos = str(block.pos);
      if (file === null || pos === null) invalid(`${connector} source has no binlog file/pos`);
      const row = str(block.row) ?? '0';
      position = { file, pos, row };
      if (block.gtid) position.gtid = block.gtid;
      order = `my:${pad(binlogSequence(file), 20)}:${pad(pos, 20)}:${pad(row, 10)}`;
      txId = block.gtid ?? null;
      break;
    }
    case 'sqlserver': {
      const commitLsn = str(block.commit_lsn)?.toLowerCase() ?? null;
      if (commitLsn === null) invalid('sqlserver source has no commit_lsn');
      const changeLsn = str(block.change_lsn)?.toLowerCase() ?? null;
      const serial = str(block.event_serial_no);
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
