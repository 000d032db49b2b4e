/**
 * The rules a rebuild shares with the cache sink, written out in TypeScript: how two source orders compare (the Lua
 * guard of functions/adapters/redis-cache-sink.ts), which changes an `--as-of` time keeps, and what row a key's
 * changes leave in the cache (the expected state a rebuilt row is checked against).
 */
import { tableIdOf } from '../../functions/core/change';
import type { ChangeEvent } from '../../functions/core/types';

/** The connector kind an order starts with (`pg`, `my`, `ms`, `kf`): orders of different kinds do not compare. */
function kind(order: string): string {
  const colon = order.indexOf(':');
  return colon < 0 ? order : order.slice(0, colon);
}

/**
 * The cache's guard: `order` is not newer than `stored` (so a write at `order` is refused). Byte by byte, equal
 * counts as not newer; orders of different connector kinds never refuse (the newer write wins), as in the Lua.
 */
export function notNewer(order: string, stored: string): boolean {
  if (kind(order) !== kind(stored)) return false;
  return Buffer.compare(Buffer.from(order), Buffer.from(stored)) <= 0;
}

/** The order part of a stored version (`<order>` or `<order>|d` / `<order>|t` for a tombstone). */
export function storedOrder(version: string): string {
  const bar = version.indexOf('|');
  return bar < 0 ? version : version.slice(0, bar);
}

/** Sorts changes by source order (byte order, as the sinks compare), ties by Kafka partition and offset. */
export function bySourceOrder(a: ChangeEvent, b: ChangeEvent): number {
  const byOrder = Buffer.compare(Buffer.from(a.source.order), Buffer.from(b.source.order));
  if (byOrder !== 0) return byOrder;
  return a.kafka.partition - b.kafka.partition || a.kafka.offset - b.kafka.offset;
}

/**
 * Whether a change belongs to the state at `asOf` (epoch ms): committed at or before it. A change whose connector
 * gave no commit time cannot be placed in time and is left out (counted by the caller).
 */
export function committedBy(event: ChangeEvent, asOf: number): boolean {
  return event.source.commitTs !== null && event.source.commitTs <= asOf;
}

/**
 * An `--as-of` time: ISO 8601 with a time and a zone (`Z` or `±hh:mm`), so that it means one instant wherever the
 * command runs. Returns epoch ms, or a message saying what is wrong.
 */
export function parseAsOf(text: string, now: number): number | string {
  const iso = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/.exec(text);
  if (!iso) return `--as-of takes an ISO time with a zone, like 2024-05-01T12:00:00Z, got "${text}"`;
  const [year, month, day, hour, minute] = iso.slice(1, 6).map(Number) as [number, number, number, number, number];
  // Date.parse rolls 2024-02-30 over into March: the calendar day must exist as written.
  const real = new Date(Date.UTC(year, month - 1, day));
  const ms = Date.parse(text);
  if (real.getUTCMonth() !== month - 1 || real.getUTCDate() !== day || hour > 23 || minute > 59 || Number.isNaN(ms)) {
    return `--as-of "${text}" is not a valid time`;
  }
  if (ms > now) return `--as-of ${new Date(ms).toISOString()} is in the future: the log cannot say what happens then`;
  return ms;
}

/** The name an as-of time gives its key space and prefix: the instant in UTC, milliseconds included. */
export function asOfLabel(asOf: number): string {
  return new Date(asOf).toISOString();
}

/** A cached row as the sink stores it: field → JSON text of the value. */
export type CachedRow = Map<string, string>;

/**
 * The row the cache holds for one key after these changes (the key's own changes and its table's truncates, in any
 * order), applied the way the sink's scripts apply them: a change not newer than the stored version is refused, an
 * upsert not newer than the table's last truncate too; a full image replaces the row, a change with `unchanged`
 * columns keeps those (and drops the fields the row no longer has); a delete or a newer truncate removes it.
 * Returns the row (null when there is none) and the version left behind.
 */
export function expectedRow(changes: readonly ChangeEvent[]): { row: CachedRow | null; version: string | null } {
  let row: CachedRow | null = null;
  let version: string | null = null;
  let watermark: string | null = null;
  for (const event of [...changes].sort(bySourceOrder)) {
    const order = event.source.order;
    if (event.op === 't') {
      if (watermark === null || !notNewer(order, watermark)) watermark = order;
      // The sink's truncate clears the rows it finds (those with a version), each only if older.
      if (version !== null && !notNewer(order, version)) {
        row = null;
        version = order;
      }
      continue;
    }
    if (version !== null && notNewer(order, version)) continue;
    if (event.op === 'd') {
      row = null;
      version = order;
      continue;
    }
    if (watermark !== null && notNewer(order, watermark)) continue;
    const after = Object.entries(event.after ?? {});
    if (event.unchanged.length === 0 || row === null) {
      // A merge onto no row keeps nothing: there is nothing to keep (what the sink does too).
      row = new Map();
    } else {
      const keep = new Set([...event.unchanged, ...after.map(([column]) => column)]);
      for (const field of [...row.keys()]) if (!keep.has(field)) row.delete(field);
    }
    for (const [column, value] of after) row.set(column, JSON.stringify(value ?? null));
    version = order;
  }
  return { row, version };
}

/** The table id of a change (as the sinks and the change log name it). */
export function tableOf(event: ChangeEvent): string {
  return tableIdOf(event.source);
}
