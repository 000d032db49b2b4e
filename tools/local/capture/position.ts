/**
 * The connector's position, as PostgresOffsetContext tracks it: the event last handled (`lsn`, `lsn_proc`), the last
 * commit (`lsn_commit`), its transaction, and while the initial snapshot runs the snapshot marker. One `Position`
 * object lives as long as the capture and is changed in place (by the stream, the snapshot and the incremental
 * snapshot's context); the hand-off copies it when a batch is produced.
 */
import { IncrementalSnapshots } from './incremental';
import { maxLsn } from './lsn';
import type { SourceOffset } from './offsets';

export interface Position {
  lsn: bigint | null;
  lsnProc: bigint | null;
  lsnCommit: bigint | null;
  /** SourceInfo.lastCommitLsn: `sequence[0]` of the next events. */
  lastCommitLsn: bigint | null;
  txId: bigint | null;
  tsUs: bigint | null;
  messageType: string | null;
  snapshot: 'INITIAL' | null;
  lastSnapshotRecord: boolean;
  /** WAL end reported by a keepalive while no transaction was open: everything before it was handled. */
  idleLsn: bigint;
  /** Commit end or idle WAL end reached: what `flushed()` compares with the server's flush position. */
  processedLsn: bigint;
  /** The incremental snapshot context that goes with this position (Debezium's `incremental_snapshot_*`). */
  incremental: Partial<SourceOffset>;
  /** Counts context changes: an offset saved from a position of generation n carries every change up to n. */
  incrementalGen: number;
}

/**
 * Where a restarted stream stops skipping (Debezium's WalPositionLocator): transactions that committed before
 * `commit` were handed on; inside transaction `xid`, the changes up to `lsnProc` were too.
 */
export interface ResumePoint {
  commit: bigint | null;
  xid: bigint | null;
  lsnProc: bigint | null;
}

/** The position of a capture that has handled nothing yet. */
export function initialPosition(): Position {
  return {
    lsn: null,
    lsnProc: null,
    lsnCommit: null,
    lastCommitLsn: null,
    txId: null,
    tsUs: null,
    messageType: null,
    snapshot: null,
    lastSnapshotRecord: false,
    idleLsn: 0n,
    processedLsn: 0n,
    incremental: {},
    incrementalGen: 0,
  };
}

/** The offset saved for `p`. */
export function toOffset(p: Position): SourceOffset {
  const o: SourceOffset = {};
  if (p.tsUs !== null) o.ts_usec = p.tsUs;
  if (p.txId !== null) o.txId = p.txId;
  if (p.lsn !== null) o.lsn = p.lsn;
  if (p.snapshot !== null) {
    o.snapshot = p.snapshot;
    o.last_snapshot_record = p.lastSnapshotRecord;
  }
  if (p.lsnProc !== null) o.lsn_proc = p.lsnProc;
  if (p.lsnCommit !== null) o.lsn_commit = p.lsnCommit;
  if (p.messageType !== null) o.messageType = p.messageType;
  IncrementalSnapshots.applyTo(o, p.incremental);
  return o;
}

/** The LSN that may be confirmed once `p` is saved: Debezium flushes lsn_commit, else lsn_proc. */
export function ackFor(p: Position): bigint {
  if (p.snapshot !== null) return 0n;
  return maxLsn(p.lsnCommit ?? p.lsnProc ?? 0n, p.idleLsn);
}

/**
 * Sets `p` to the streaming position a saved offset records (the incremental context aside: the caller restores
 * it) and returns where the stream stops skipping what that offset says was already handed on.
 */
export function restorePosition(p: Position, offset: SourceOffset): ResumePoint {
  p.lsn = offset.lsn ?? null;
  p.lsnProc = offset.lsn_proc ?? null;
  p.lsnCommit = offset.lsn_commit ?? null;
  p.lastCommitLsn = offset.lsn_commit ?? null;
  p.txId = offset.txId ?? null;
  p.tsUs = offset.ts_usec ?? null;
  p.messageType = offset.messageType ?? null;
  const midTransaction = p.messageType !== null && p.messageType !== 'COMMIT';
  return {
    commit: p.lsnCommit,
    xid: midTransaction ? p.txId : null,
    lsnProc: midTransaction ? (p.lsnProc ?? p.lsn) : null,
  };
}
