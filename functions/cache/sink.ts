import { createRedis, RedisCacheSink } from '../adapters/redis-cache-sink';
import type { SinkFactory } from '../shared/lane-deps';

/** The cache lane's sink: current rows in Redis/Valkey (ElastiCache Serverless in AWS). */
export const createCacheSink: SinkFactory<'cache'> = (env) =>
  new RedisCacheSink(createRedis(env.REDIS_URL, env.REDIS_CLUSTER), {
    prefix: env.CACHE_KEY_PREFIX,
    tombstoneTtlSeconds: env.CACHE_TOMBSTONE_TTL_SECONDS,
  });
