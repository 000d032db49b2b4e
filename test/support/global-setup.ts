import { ensureRedis } from '../../tools/local/redis';

/** Tests that need Redis get it here: the machine's own on 127.0.0.1:6379, started if it is down. */
export default async function setup(): Promise<void> {
  const redis = await ensureRedis();
  if (redis.url === null) throw new Error(`Redis is required by the test suite: ${redis.reason}`);
  process.env.REDIS_URL = redis.url;
}
