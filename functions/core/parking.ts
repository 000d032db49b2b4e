import { tableIdOf } from './change';
import type { CdcError } from './errors';
import type { ChangeEvent, Checkpoint, DeadLetter, KafkaRecord, KeyAttempts, Lane, ParkedKey } from './types';

/**
 * Parking a poison key (docs/architecture.md, "Parking a poison key"). A change the sink rejects retryably for a
 * reason of its own (`retryableRejected`: the cache's script failing on that one row) would hold its whole partition
 * until the event source mapping's retries run out. Instead the partition counts the deliveries that change failed in,
 * per key, in its checkpoint; at `PARK_AFTER_ATTEMPTS` the key is parked: the change and every later change of the
 * same key in that partition go to the dead-letter queue as `PARKED`, in order, never applied, and the partition moves
 * on. `npm run redrive -- <lane> --parked` replays a parked key's letters in order and unparks it.
 */

/** The dead-letter reason of a parked key's changes. */
export const PARKED = 'PARKED';

/** `PARK_AFTER_ATTEMPTS` when unset: deliveries a change may fail in before its key is parked (0: never park). */
export const DEFAULT_PARK_AFTER_ATTEMPTS = 5;

/**
 * Keys one partition may hold parked, and keys it counts attempts for. The whole list is written with every commit of
 * the checkpoint (about 150 bytes a key: 25 keep an item under 4 KB, 4 write units). More keys failing at once than
 * that is not one poison row but the sink: the partition is retried as before, and a log line says so.
 */
export const PARKED_KEYS_LIMIT = 25;

/**
 * The key a change is parked under: its table and its row key (`pg.public.orders {"id":1}`), or null for a change
 * without one (a truncate, a table without a primary key), which cannot be parked.
 */
export function parkingKeyOf(event: ChangeEvent): string | null {
  if (event.key === null || event.op === 't') return null;
  return `${tableIdOf(event.source)} ${JSON.stringify(event.key)}`;
}

/** A key's change the sink rejected retryably in this delivery (the key's first rejected change). */
export interface RejectedChange {
  key: string;
  offset: number;
  error: CdcError;
}

/** A key that reached the attempts but could not be parked: the partition is retried as before (logged). */
export interface ParkingRefusal {
  key: string;
  attempts: number;
  reason: string;
}

/** What a delivery with rejected changes comes to: park them all and move on, or retry the partition. */
export type ParkingDecision = { park: true; parked: ParkedKey[] } | { park: false; refused: ParkingRefusal[] };

/** One partition's parked keys and attempt counts during a batch, from and back to its checkpoint. */
export class PartitionParking {
  private readonly parked: Map<string, ParkedKey>;
  private attempts: Map<string, KeyAttempts>;

  constructor(
    previous: Checkpoint | undefined,
    /** PARK_AFTER_ATTEMPTS; 0 never parks (nor counts). */
    readonly parkAfter: number,
    private readonly clock: () => number,
    private readonly limit = PARKED_KEYS_LIMIT,
  ) {
    this.parked = new Map((previous?.parked ?? []).map((p) => [p.key, { ...p }] as const));
    this.attempts = new Map((previous?.attempts ?? []).map((a) => [a.key, { ...a }] as const));
  }

  /** Whether any key is parked (classifying a batch looks keys up only then). */
  get hasParked(): boolean {
    return this.parked.size > 0;
  }

  isParked(key: string): boolean {
    return this.parked.has(key);
  }

  /** The parked key's entry (undefined when not parked). */
  entry(key: string): ParkedKey | undefined {
    return this.parked.get(key);
  }

  /** Notes a later change of a parked key, dead-lettered behind the ones before it. */
  hold(key: string, offset: number): ParkedKey {
    const entry = this.parked.get(key) as ParkedKey;
    entry.count++;
    if (offset > entry.last) entry.last = offset;
    return entry;
  }

  /**
   * Counts one attempt for each key whose change the sink rejected in this delivery (`delivered`: the highest offset
   * the delivery handed the sink; a counted key whose change was delivered and not rejected went through, and is
   * forgotten). Parks them all when every one reached `parkAfter` and they fit: the partition can then move on.
   * Otherwise the partition is retried and the counts are committed (`keyless`: a change without a key failed too).
   */
  attempt(rejected: readonly RejectedChange[], keyless: boolean, delivered: number): ParkingDecision {
    if (this.parkAfter <= 0) return { park: false, refused: [] };
    const counted = new Map<string, KeyAttempts>();
    let uncounted = 0;
    for (const { key, offset } of [...rejected].sort((a, b) => a.offset - b.offset)) {
      const before = this.attempts.get(key);
      const attempts = before?.offset === offset ? before.attempts + 1 : 1;
      if (counted.size < this.limit) counted.set(key, { key, offset, attempts });
      else uncounted++;
    }
    const next = new Map(counted);
    for (const [key, a] of this.attempts) {
      if (!next.has(key) && a.offset > delivered && next.size < this.limit) next.set(key, a);
    }
    this.attempts = next;

    const due = [...counted.values()].filter((a) => a.attempts >= this.parkAfter);
    const room = this.limit - this.parked.size;
    if (!keyless && uncounted === 0 && due.length === counted.size && due.length <= room) {
      const parkedAt = this.clock();
      const parked = due.map(({ key, offset, attempts }) => {
        const entry: ParkedKey = { key, first: offset, last: offset, count: 1, attempts, parkedAt };
        this.parked.set(key, entry);
        this.attempts.delete(key);
        return entry;
      });
      return { park: true, parked };
    }
    const reason = keyless
      ? 'a change without a key failed in the same delivery (it cannot be parked)'
      : uncounted > 0 || due.length > room
        ? `the partition's parked keys are full (${this.parked.size} of ${this.limit}, ${uncounted + counted.size} keys failing)`
        : 'another key failing in the same delivery has not reached the attempts yet';
    return { park: false, refused: due.map(({ key, attempts }) => ({ key, attempts, reason })) };
  }

  /**
   * The checkpoint's fields once the partition committed through `offset`: counts of changes now behind the
   * checkpoint are dropped (they went through, or were parked).
   */
  toCheckpoint(offset: number): Pick<Checkpoint, 'parked' | 'attempts'> {
    const fields: Pick<Checkpoint, 'parked' | 'attempts'> = {};
    if (this.parked.size > 0) fields.parked = [...this.parked.values()];
    const attempts = [...this.attempts.values()].filter((a) => a.offset > offset);
    if (attempts.length > 0) fields.attempts = attempts;
    return fields;
  }
}

/** The dead letter of a parked key's change: the original record, the key and the attempts (0 for later changes). */
export function parkedLetter(
  lane: Lane,
  record: KafkaRecord,
  entry: ParkedKey,
  at: number,
  cause?: CdcError,
): DeadLetter {
  const message = cause
    ? `key ${entry.key} parked after ${entry.attempts} failed deliveries: ${cause.code}: ${cause.message}`
    : `key ${entry.key} is parked (since offset ${entry.first}): this later change is held behind it, in order`;
  return {
    lane,
    error: { code: PARKED, message },
    record,
    failedAt: new Date(at).toISOString(),
    parked: { key: entry.key, attempts: cause ? entry.attempts : 0 },
  };
}

/**
 * The checkpoint after a redrive replayed a parked key's letters `replayed` (the entry it read): the key unparked, or,
 * when more of its changes were parked meanwhile, still parked with only those left (offsets after the replayed
 * ones). Undefined when the entry moved otherwise (another redrive replayed it): leave it alone.
 */
export function afterReplay(current: Checkpoint, replayed: ParkedKey): Checkpoint | undefined {
  const entry = current.parked?.find((p) => p.key === replayed.key);
  if (!entry || entry.first !== replayed.first) return undefined;
  const unparked = entry.last === replayed.last && entry.count === replayed.count;
  const parked = (current.parked ?? []).flatMap((p) => {
    if (p.key !== replayed.key) return [p];
    return unparked ? [] : [{ ...p, first: replayed.last + 1, count: p.count - replayed.count }];
  });
  const next: Checkpoint = { ...current, version: current.version + 1 };
  if (parked.length > 0) next.parked = parked;
  else delete next.parked;
  return next;
}
