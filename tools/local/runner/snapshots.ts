/**
 * The incremental snapshots of a run: which were asked for (by a lane that met a schema change, by `npm run
 * backfill`, by a test), what the capture reported about each (Debezium's notifications), and a barrier that waits
 * until none is running. Verification waits on it: "ends consistent" must not depend on whether a re-read the run
 * triggered happened to finish before the sinks were read.
 */
import type { SnapshotSignal } from '../../../functions/core/types';
import type { SnapshotNotification } from '../capture/types';

/** Who asked for an incremental snapshot. */
export type SnapshotOrigin = 'lane' | 'control' | 'runner';

/** One incremental snapshot as the run saw it (`--json`: `incrementalSnapshots`). */
export interface IncrementalSnapshotSummary {
  id: string;
  origin: SnapshotOrigin;
  /** `schema.table` → rows the snapshot scanned (TABLE_SCAN_COMPLETED `total_rows_scanned`; 0 until then). */
  tables: Record<string, number>;
  /** `pending` until the capture reports STARTED; `completed` or `aborted` at the end. */
  status: 'pending' | 'running' | 'completed' | 'aborted';
}

/** A notification in arrival order, numbered from 1, for pollers that ask for what came after the last they saw. */
export interface NumberedNotification {
  seq: number;
  notification: SnapshotNotification;
}

/** Keeps the run's incremental snapshots and their notifications. */
export class SnapshotTracker {
  private readonly snapshots = new Map<string, IncrementalSnapshotSummary>();
  private readonly log: NumberedNotification[] = [];
  /** Per snapshot, the tables already scanned to the end. */
  private readonly done = new Map<string, Set<string>>();
  private waiters: Array<() => void> = [];

  /** A signal was sent to the capture. */
  sent(signal: SnapshotSignal, origin: SnapshotOrigin): void {
    if (this.snapshots.has(signal.id)) return;
    this.snapshots.set(signal.id, {
      id: signal.id,
      origin,
      tables: Object.fromEntries(signal.data['data-collections'].map((t) => [t, 0])),
      status: 'pending',
    });
    this.done.set(signal.id, new Set());
  }

  /**
   * A notification from the capture. A signal that arrives while a snapshot runs extends that snapshot (Debezium:
   * its tables are appended, and the notifications keep the running snapshot's id), so a signal is completed table by
   * table: when each of its tables was scanned to the end after it was sent, whichever snapshot did it.
   */
  notify(notification: SnapshotNotification): void {
    this.log.push({ seq: this.log.length + 1, notification });
    const data = notification.additional_data;
    let own = this.snapshots.get(notification.id);
    if (!own) {
      // Started through the signal table by someone else (an INSERT at the source): tracked all the same.
      const tables = (data.data_collections ?? '').split(',').filter(Boolean);
      own = {
        id: notification.id,
        origin: 'runner',
        tables: Object.fromEntries(tables.map((t) => [t, 0])),
        status: 'pending',
      };
      this.snapshots.set(notification.id, own);
      this.done.set(own.id, new Set());
    }
    const open = [...this.snapshots.values()].filter((s) => s.status === 'pending' || s.status === 'running');
    switch (notification.type) {
      case 'STARTED':
      case 'IN_PROGRESS':
        if (own.status === 'pending') own.status = 'running';
        break;
      case 'TABLE_SCAN_COMPLETED': {
        const table = data.scanned_collection ?? data.data_collection;
        if (!table) break;
        for (const s of open) {
          const done = this.done.get(s.id) as Set<string>;
          if (!(table in s.tables) || done.has(table)) continue;
          s.tables[table] = Number(data.total_rows_scanned ?? 0);
          done.add(table);
          if (done.size === Object.keys(s.tables).length) s.status = 'completed';
        }
        break;
      }
      case 'COMPLETED':
        own.status = 'completed';
        break;
      case 'ABORTED': {
        // Stopped tables (or all of them): a signal still waiting for one of them will not complete.
        const stopped = (data.data_collections ?? '').split(',').filter(Boolean);
        for (const s of open) {
          const done = this.done.get(s.id) as Set<string>;
          const waiting = Object.keys(s.tables).filter((t) => !done.has(t));
          if (s === own || waiting.some((t) => stopped.length === 0 || stopped.includes(t))) s.status = 'aborted';
        }
        break;
      }
    }
    this.wake();
  }

  /** Snapshots asked for or reported, in the order they were first seen. */
  summary(): IncrementalSnapshotSummary[] {
    return [...this.snapshots.values()].map((s) => ({ ...s, tables: { ...s.tables } }));
  }

  get(id: string): IncrementalSnapshotSummary | undefined {
    return this.snapshots.get(id);
  }

  /** Snapshots not completed or aborted yet. */
  running(): number {
    let n = 0;
    for (const s of this.snapshots.values()) if (s.status === 'pending' || s.status === 'running') n++;
    return n;
  }

  /** Notifications after `seq` (0: all). */
  notificationsAfter(seq: number): NumberedNotification[] {
    return this.log.slice(Math.max(0, seq));
  }

  /** Rows scanned by every incremental snapshot so far. */
  rowsScanned(): number {
    let n = 0;
    for (const s of this.snapshots.values()) for (const rows of Object.values(s.tables)) n += rows;
    return n;
  }

  /**
   * Resolves when no snapshot is running (at once if none is); rejects after `timeoutMs`, or at once when `failed()`
   * says the capture stopped (nothing would complete them then).
   */
  async settled(timeoutMs: number, failed: () => Error | null = () => null): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.running() > 0) {
      const failure = failed();
      if (failure) throw failure;
      const left = deadline - Date.now();
      if (left <= 0) {
        const open = [...this.snapshots.values()].filter((s) => s.status === 'pending' || s.status === 'running');
        throw new Error(
          `incremental snapshots still running after ${timeoutMs} ms: ${open.map((s) => `${s.id} (${Object.keys(s.tables).join(', ')}, ${s.status})`).join('; ')}`,
        );
      }
      // Woken by the next notification, or every 200 ms to look at `failed()`.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(left, 200));
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.push(done);
      });
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
