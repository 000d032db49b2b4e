import type { LocalMskEvent } from '../../tools/local/broker';

/** A promise with its resolve exposed: lets a test hold a handler mid-invocation. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Offsets of an event as "<topic>-<partition>:<offset>" strings, in delivery order. */
export function offsetsOf(event: LocalMskEvent): string[] {
  return Object.entries(event.records).flatMap(([id, records]) => records.map((r) => `${id}:${r.offset}`));
}

/** Lets queued microtasks and immediate callbacks run (the mapping wakes up on the microtask queue). */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** A JSON buffer, the way Debezium's JsonConverter writes keys and values. */
export function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}
