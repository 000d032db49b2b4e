/**
 * Objects read at once when a tool reads a whole log (audit verification, the change-log download). A log can hold
 * thousands of objects (one per batch); reading them all at once queued thousands of requests on the client's sockets
 * and made the local s3rver time out during `npm start`'s verification, and against S3 it invites throttling.
 */
export const READS_IN_FLIGHT = 16;

/** `Promise.all(items.map(fn))` with at most `limit` calls in flight; results in the items' order. */
export async function mapInOrder<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
