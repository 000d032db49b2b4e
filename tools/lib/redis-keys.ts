import { Redis } from 'ioredis';

/**
 * Deletes every key under `<prefix>:` (a run's or a fuzz session's cache rows): the machine's Redis is shared with
 * other runs and tests, so nothing else is touched. SCAN + UNLINK in pages, never KEYS.
 */
export async function deleteKeysWithPrefix(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
