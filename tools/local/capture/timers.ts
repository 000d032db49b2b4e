/**
 * The capture's clocks while it streams: saving the offset every offsetFlushIntervalMs, a standby status update
 * every 10 s (so the server sees the connection alive and the slot's confirmed position even when nothing moves),
 * and Debezium's heartbeats (`heartbeat.interval.ms`): a heartbeat record, a request for a keepalive (whose WAL end
 * lets the slot advance when nothing captured changes) and the heartbeat action (`heartbeat.action.query`).
 */
import pg from 'pg';
import { splitCollection } from './incremental';
import type { CaptureLogger } from './types';

const STATUS_INTERVAL_MS = 10_000;

/** What the timers drive. */
export interface TimerHost {
  offsetFlushIntervalMs: number;
  /** 0: no heartbeats. */
  heartbeatIntervalMs: number;
  /** `schema.table` the heartbeat action upserts, or null for none. */
  heartbeatTable: string | null;
  /** The capture's own connection, on which the heartbeat action runs. */
  meta: pg.Client;
  logger: CaptureLogger;
  streaming(): boolean;
  flushOffsets(): void;
  /** A standby status update with the acknowledged LSN; `replyRequested` asks the server for a keepalive. */
  sendStatus(replyRequested: boolean): void;
  /** Queues a heartbeat record behind what the stream received so far. */
  heartbeat(): void;
}

/** The intervals of one capture. */
export class CaptureTimers {
  private readonly timers: NodeJS.Timeout[] = [];
  /** Whether the heartbeat action runs (`PostgresCapture.pauseHeartbeatAction`). */
  private heartbeatActionPaused = false;
  private heartbeatActionRunning = false;

  constructor(private readonly host: TimerHost) {}

  start(): void {
    const { host } = this;
    this.every(host.offsetFlushIntervalMs, () => host.flushOffsets());
    this.every(STATUS_INTERVAL_MS, () => host.sendStatus(false));
    if (host.heartbeatIntervalMs > 0) {
      this.every(host.heartbeatIntervalMs, () => {
        host.heartbeat();
        // Ask for a keepalive too: its WAL end lets the slot advance when nothing is captured (DBZ heartbeats).
        host.sendStatus(true);
        void this.heartbeatAction();
      });
    }
  }

  clear(): void {
    for (const t of this.timers) clearInterval(t);
  }

  pauseHeartbeatAction(paused: boolean): void {
    this.heartbeatActionPaused = paused;
  }

  private every(ms: number, fn: () => void): void {
    const timer = setInterval(fn, ms);
    timer.unref();
    this.timers.push(timer);
  }

  /**
   * Debezium's `heartbeat.action.query` (HeartbeatImpl with an action): one upsert of the heartbeat table per
   * heartbeat. A failure is logged and the next heartbeat tries again, as Debezium does (the capture goes on).
   */
  private async heartbeatAction(): Promise<void> {
    const table = this.host.heartbeatTable;
    if (!table || this.heartbeatActionPaused || this.heartbeatActionRunning || !this.host.streaming()) return;
    this.heartbeatActionRunning = true;
    try {
      const { schema, name } = splitCollection(table);
      const target = `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(name)}`;
      await this.host.meta.query(
        `INSERT INTO ${target} (id, ts) VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET ts = EXCLUDED.ts`,
      );
    } catch (error) {
      this.host.logger.warn(`capture: heartbeat action on ${table} failed: ${(error as Error).message}`);
    } finally {
      this.heartbeatActionRunning = false;
    }
  }
}
