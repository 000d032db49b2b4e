/**
 * Handing records on, saving offsets and acknowledging the slot (PostgresStreamingChangeEventSource.commitOffset):
 * records collect in a batch and go to `produce` in order; once it resolves, the position as it was when the batch
 * was taken is "produced". Saving (every offsetFlushIntervalMs, and at barriers) stores the produced position's
 * offset, and only after the store resolved is its LSN (lsn_commit, else lsn_proc) confirmed to the slot. So a crash
 * can never lose a change: the slot never moves past an offset that is not saved, nor an offset past what `produce`
 * took. After `kill()` (a simulated crash) nothing more is marked produced, saved or acknowledged.
 */
import type { OffsetStore, SourceOffset } from './offsets';
import { ackFor, type Position, toOffset } from './position';
import type { ReplicationConnection } from './replication';
import type { CapturedRecord, CaptureLogger } from './types';

/** What the hand-off needs from the capture. */
export interface HandoffHost {
  /** The capture's live position (changed in place by the stream and the snapshot). */
  position: Position;
  maxBatch: number;
  produce(records: CapturedRecord[]): Promise<void>;
  offsets: OffsetStore;
  logger: CaptureLogger;
  /** The replication connection to confirm LSNs on, when there is one. */
  replication(): ReplicationConnection | null;
  stopping(): boolean;
  /** Wakes the stream loop, which hands a dirty batch on when it runs dry. */
  wake(): void;
}

/** The batch, the produced and saved positions and the acknowledged LSN of one capture. */
export class Handoff {
  /** Records not handed on yet. Replaced (never emptied in place) when handed on. */
  batch: CapturedRecord[] = [];
  /** The position moved since the batch was last handed on: handing on even an empty batch produces it. */
  dirty = false;
  /** Position of the last batch `produce` took. */
  private produced: Position | null = null;
  /** Position of the last saved offset. */
  private saved: Position | null = null;
  savedOffset: SourceOffset | null = null;
  /** Last LSN confirmed to the slot. */
  ackedLsn = 0n;
  /** The last save's failure, cleared by the next save that works. */
  saveError: Error | null = null;
  private killed = false;
  private offsetChain: Promise<void> = Promise.resolve();
  private readonly progressWaiters = new Set<() => void>();

  constructor(private readonly host: HandoffHost) {}

  /** Where everything handed on reaches (`status().producedLsn`, the `flushed()` barrier). */
  get producedLsn(): bigint {
    return this.produced?.processedLsn ?? 0n;
  }

  /** Starts from a saved offset: its position counts as produced and saved. */
  restored(offset: SourceOffset): void {
    this.produced = { ...this.host.position };
    this.saved = this.produced;
    this.savedOffset = offset;
  }

  /** The incremental snapshot's context changed: the next offset saved must carry `fields`. */
  contextChanged(fields: Partial<SourceOffset>): void {
    const p = this.host.position;
    p.incremental = fields;
    p.incrementalGen++;
    this.dirty = true;
    this.host.wake();
  }

  /** Like a crashed process: nothing more is produced, saved or acknowledged. */
  kill(): void {
    this.killed = true;
  }

  /** The batch is full: hand it on before adding more. */
  get full(): boolean {
    return this.batch.length >= this.host.maxBatch;
  }

  /** Hands the batch on and, once `produce` resolved, marks the position taken with it produced. */
  async flushBatch(): Promise<void> {
    const records = this.batch;
    this.batch = [];
    const position = { ...this.host.position };
    this.dirty = false;
    if (records.length > 0) await this.host.produce(records);
    if (this.killed) return;
    this.produced = position;
    this.notifyProgress();
  }

  /** Saves the produced position's offset, then acknowledges; saves run one after the other. */
  flushOffsets(): Promise<void> {
    this.offsetChain = this.offsetChain.then(() => this.saveProduced());
    return this.offsetChain;
  }

  private async saveProduced(): Promise<void> {
    const p = this.produced;
    if (p === null || p === this.saved || this.killed) return;
    const offset = toOffset(p);
    try {
      await this.host.offsets.save(offset);
      this.saveError = null;
    } catch (err) {
      this.saveError = err as Error;
      this.host.logger.warn(`capture: saving the offset failed: ${String(err)}`);
      return;
    }
    if (this.killed) return;
    this.saved = p;
    this.savedOffset = offset;
    const ack = ackFor(p);
    if (ack > this.ackedLsn) {
      this.ackedLsn = ack;
      this.host.replication()?.sendStatus(ack);
    }
    this.notifyProgress();
  }

  /**
   * Resolves true once an offset carrying the incremental snapshot context as it is now is saved (the batch before it
   * handed on first, as always), false if the capture stops first.
   */
  async persistIncremental(): Promise<boolean> {
    const gen = this.host.position.incrementalGen;
    while ((this.saved?.incrementalGen ?? -1) < gen) {
      if (this.host.stopping() || this.killed) return false;
      if ((this.produced?.incrementalGen ?? -1) >= gen) {
        await this.flushOffsets();
        if ((this.saved?.incrementalGen ?? -1) >= gen) break;
      } else {
        // The loop hands the batch on when it runs dry (dirty); under load, when the batch fills.
        this.dirty = true;
        this.host.wake();
      }
      await this.waitProgress(50);
    }
    return true;
  }

  /** Wakes whoever waits for a batch produced or an offset saved (and, on failure, for anything). */
  notifyProgress(): void {
    for (const waiter of this.progressWaiters) waiter();
    this.progressWaiters.clear();
  }

  /** Resolves at the next progress, or after `ms`. */
  waitProgress(ms: number): Promise<void> {
    return new Promise((resolve) => {
      // The waiter itself is what the set holds, so a timed-out one leaves it (a flush waiting long adds one every 50 ms).
      const waiter = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.progressWaiters.delete(waiter);
        resolve();
      }, ms);
      this.progressWaiters.add(waiter);
    });
  }
}
