/**
 * The stream loop: what the replication connection delivers (pgoutput messages, keepalives) and the heartbeats are
 * queued and handled strictly in order by one loop, which translates them into records in the hand-off's batch and
 * moves the position with them (PostgresStreamingChangeEventSource.processMessages):
 *
 * - BEGIN opens a transaction (its xid and commit time go into every `source` block), each change moves `lsn` /
 *   `lsn_proc` to its own LSN, COMMIT moves `lsn_commit` and `lastCommitLsn` to the commit's end;
 * - a keepalive's WAL end, seen while no transaction is open, lets the slot advance past WAL with nothing captured;
 * - after a restart, what the saved offset says was handed on is skipped (Debezium's WalPositionLocator);
 * - rows of the signal table are signals or watermarks, never records; at a chunk's high watermark the incremental
 *   snapshot's reads are emitted, positioned at it.
 *
 * The loop hands the batch on when it is full, and when the queue runs dry with the position moved (`dirty`). A
 * queue longer than PAUSE_AT pauses reading from the server until it drains below RESUME_AT.
 */
import { ChangeTranslator } from './changes';
import type { Handoff } from './handoff';
import { type IncrementalSnapshots, WATERMARK_PREFIX } from './incremental';
import { maxLsn } from './lsn';
import { type PgOutputMessage, parsePgOutput } from './pgoutput';
import type { Position, ResumePoint } from './position';
import type { RecordFactory } from './records';
import type { CapturedTables } from './relations';
import type { ReplicationConnection, StreamHandlers } from './replication';
import type { TableSchema } from './table-schema';
import type { CaptureCounts, CaptureLogger, CaptureSignal } from './types';

type Item =
  | { kind: 'wal'; lsn: bigint; payload: Buffer }
  | { kind: 'keepalive'; walEnd: bigint }
  | { kind: 'heartbeat' };

type RowMessage = Extract<PgOutputMessage, { tag: 'insert' | 'update' | 'delete' }>;

const PAUSE_AT = 20_000;
const RESUME_AT = 5_000;
const MESSAGE_TYPES = { insert: 'INSERT', update: 'UPDATE', delete: 'DELETE' } as const;

/** What the stream needs from the capture. */
export interface StreamHost {
  /** The capture's live position, moved in place. */
  position: Position;
  handoff: Handoff;
  records: RecordFactory;
  translator: ChangeTranslator;
  tables: CapturedTables;
  incremental: IncrementalSnapshots;
  counts: CaptureCounts;
  logger: CaptureLogger;
  /** The replication connection, to pause and resume reading and to answer keepalives. */
  replication(): ReplicationConnection | null;
  stopping(): boolean;
  fail(err: Error): void;
}

/** The queue and the loop of one capture's stream. */
export class WalStream {
  /** Last WAL position the server reported (data or keepalive). */
  receivedLsn = 0n;
  private queue: Array<Item | undefined> = [];
  private head = 0;
  private paused = false;
  private wakeLoop: (() => void) | null = null;
  private inTx = false;
  private txSkip = false;
  private txSkipUpTo: bigint | null = null;
  private resume: ResumePoint | null = null;
  private readonly pos: Position;
  private readonly handoff: Handoff;

  constructor(private readonly host: StreamHost) {
    this.pos = host.position;
    this.handoff = host.handoff;
  }

  /** Messages received and not handled yet. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  /** Skips what a saved offset says was handed on (set before the stream starts). */
  resumeFrom(point: ResumePoint): void {
    this.resume = point;
  }

  /** What the replication connection calls. */
  handlers(): StreamHandlers {
    return {
      onData: (lsn: bigint, payload: Buffer) => {
        if (lsn > this.receivedLsn) this.receivedLsn = lsn;
        this.enqueue({ kind: 'wal', lsn, payload: Buffer.from(payload) });
      },
      onKeepalive: (walEnd: bigint, replyRequested: boolean) => {
        if (walEnd > this.receivedLsn) this.receivedLsn = walEnd;
        if (replyRequested) this.host.replication()?.sendStatus(this.handoff.ackedLsn);
        this.enqueue({ kind: 'keepalive', walEnd });
      },
      onError: (err: Error) => this.host.fail(err),
    };
  }

  /** Queues a heartbeat record behind everything received so far. */
  heartbeat(): void {
    this.enqueue({ kind: 'heartbeat' });
  }

  /** Wakes the loop when it waits for work (new items, a dirty batch, stopping). */
  wake(): void {
    const wake = this.wakeLoop;
    this.wakeLoop = null;
    wake?.();
  }

  /** The loop; resolves once the capture stops (or fails: the failure goes to `fail`). */
  async run(): Promise<void> {
    const { handoff } = this;
    try {
      while (!this.host.stopping()) {
        if (this.head >= this.queue.length) {
          this.queue = [];
          this.head = 0;
          if (handoff.dirty) {
            await handoff.flushBatch();
            continue;
          }
          await new Promise<void>((resolve) => {
            this.wakeLoop = resolve;
          });
          continue;
        }
        const item = this.queue[this.head] as Item;
        this.queue[this.head++] = undefined;
        const pendingWork = this.handle(item);
        if (pendingWork) await pendingWork;
        if (handoff.full) await handoff.flushBatch();
        if (this.paused && this.queue.length - this.head < RESUME_AT) {
          this.paused = false;
          this.host.replication()?.resume();
        }
      }
    } catch (err) {
      this.host.fail(err as Error);
    }
  }

  private enqueue(item: Item): void {
    if (this.host.stopping()) return;
    this.queue.push(item);
    if (!this.paused && this.queue.length - this.head > PAUSE_AT) {
      this.paused = true;
      this.host.replication()?.pause();
    }
    this.wake();
  }

  private handle(item: Item): Promise<void> | undefined {
    if (item.kind === 'keepalive') {
      if (!this.inTx && item.walEnd > this.pos.idleLsn) {
        this.pos.idleLsn = item.walEnd;
        this.pos.processedLsn = maxLsn(this.pos.processedLsn, item.walEnd);
        this.handoff.dirty = true;
      }
      return undefined;
    }
    if (item.kind === 'heartbeat') {
      this.handoff.batch.push(this.host.records.heartbeat());
      this.host.counts.heartbeat++;
      this.handoff.dirty = true;
      return undefined;
    }
    const msg = parsePgOutput(item.payload);
    switch (msg.tag) {
      case 'begin':
        this.inTx = true;
        this.pos.txId = BigInt(msg.xid);
        this.pos.tsUs = msg.commitTimeUs;
        this.txSkip = this.resume?.commit != null && msg.finalLsn < this.resume.commit;
        this.txSkipUpTo =
          !this.txSkip && this.resume?.xid != null && this.resume.xid === this.pos.txId ? this.resume.lsnProc : null;
        return undefined;
      case 'commit': {
        const p = this.pos;
        p.lsn = msg.endLsn;
        p.lsnProc = msg.endLsn;
        p.lsnCommit = msg.endLsn;
        p.lastCommitLsn = msg.endLsn;
        p.messageType = 'COMMIT';
        p.processedLsn = maxLsn(p.processedLsn, msg.endLsn);
        this.inTx = false;
        this.txSkip = false;
        this.txSkipUpTo = null;
        this.handoff.dirty = true;
        return undefined;
      }
      case 'relation':
        return this.host.tables.onRelation(msg);
      case 'insert':
      case 'update':
      case 'delete':
        if (msg.relationId === this.host.tables.signalOid) return this.onSignalRow(item.lsn, msg);
        this.onRowChange(item.lsn, msg);
        return undefined;
      case 'truncate':
        this.onTruncate(item.lsn, msg.relationIds);
        return undefined;
      case 'message':
        if (msg.prefix !== WATERMARK_PREFIX) return undefined;
        this.advance(item.lsn, 'MESSAGE');
        if (this.skipOnResume(item.lsn)) return undefined;
        return this.onWatermark(item.lsn, msg.content.toString('utf8'));
      default:
        return undefined; // origin and type messages carry nothing Debezium emits
    }
  }

  /** Moves the position to a change at `lsn` (PostgresOffsetContext.updateWalPosition). */
  private advance(lsn: bigint, messageType: string): void {
    const p = this.pos;
    p.lsn = lsn;
    p.lsnProc = lsn;
    p.messageType = messageType;
    this.handoff.dirty = true;
  }

  /** The `source` block of an event at `lsn` in the current transaction. */
  private sourceAt(table: TableSchema, lsn: bigint, snapshot: 'false' | 'incremental'): string {
    const p = this.pos;
    return this.host.records.source(table, {
      tsUs: p.tsUs ?? 0n,
      snapshot,
      lastCommitLsn: p.lastCommitLsn,
      lsn,
      txId: p.txId,
    });
  }

  /**
   * A row of the signal table: `execute-snapshot` / `stop-snapshot` signals, and the incremental snapshot's own
   * window watermarks. Never emitted as a record.
   */
  private onSignalRow(lsn: bigint, msg: RowMessage): Promise<void> | undefined {
    this.advance(lsn, MESSAGE_TYPES[msg.tag]);
    const cols = this.host.tables.signalColumns;
    if (msg.tag !== 'insert' || !cols || this.skipOnResume(lsn)) return undefined;
    const text = (i: number) => {
      const v = msg.newTuple[i];
      return typeof v === 'string' ? v : null;
    };
    const id = text(cols.id) ?? '';
    const type = text(cols.type) ?? '';
    if (type === 'snapshot-window-open' || type === 'snapshot-window-close') return this.onWatermark(lsn, id);
    if (type !== 'execute-snapshot' && type !== 'stop-snapshot') {
      this.host.logger.warn(`capture: signal ${id} of type ${type} is not supported, ignored`);
      return undefined;
    }
    let data: unknown;
    try {
      data = JSON.parse(text(cols.data) ?? '{}');
    } catch {
      this.host.logger.warn(`capture: signal ${id}: data is not JSON, ignored`);
      return undefined;
    }
    this.host.incremental.signal({ id, type, data } as CaptureSignal);
    return undefined;
  }

  /** A watermark in the stream; at a chunk's high watermark its remaining rows become reads positioned here. */
  private async onWatermark(lsn: bigint, text: string): Promise<void> {
    const { incremental, records, counts } = this.host;
    const emission = incremental.onWatermark(text);
    if (!emission) return;
    const { schema, rows } = emission;
    const source = this.sourceAt(schema, lsn, 'incremental');
    for (const { key, row } of rows) {
      this.handoff.batch.push(records.change(schema, 'r', key, null, schema.rowJson(row), source));
      counts.read++;
      counts.incrementalRead++;
      if (this.handoff.full) await this.handoff.flushBatch();
    }
    incremental.emitted(rows.length);
  }

  private skipOnResume(lsn: bigint): boolean {
    if (this.txSkip || (this.txSkipUpTo !== null && lsn <= this.txSkipUpTo)) {
      this.host.counts.skippedOnResume++;
      return true;
    }
    return false;
  }

  private onRowChange(lsn: bigint, msg: RowMessage): void {
    this.advance(lsn, MESSAGE_TYPES[msg.tag]);
    const table = this.host.tables.get(msg.relationId);
    if (!table || this.skipOnResume(lsn)) return;
    this.host.incremental.onChange(msg.relationId, ChangeTranslator.keysOf(table, msg));
    this.host.translator.rowChange(table, msg, this.sourceAt(table, lsn, 'false'), this.handoff.batch);
  }

  private onTruncate(lsn: bigint, relationIds: number[]): void {
    this.advance(lsn, 'TRUNCATE');
    if (this.skipOnResume(lsn)) return;
    for (const id of relationIds) {
      const table = this.host.tables.get(id);
      if (!table) continue;
      this.host.incremental.onTruncate(id);
      this.host.translator.truncate(table, this.sourceAt(table, lsn, 'false'), this.handoff.batch);
    }
  }
}
