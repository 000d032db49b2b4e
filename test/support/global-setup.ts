import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureRedis } from '../../tools/local/redis';
import { SCRATCH_ENV } from './scratch';

/**
 * Tests that need Redis get it here: the machine's own on 127.0.0.1:6379, started if it is down. And one scratch
 * root for the whole run (see scratch.ts), removed at the end.
 */
export default async function setup(): Promise<() => void> {
  const redis = await ensureRedis();
  if (redis.url === null) throw new Error(`Redis is required by the test suite: ${redis.reason}`);
  process.env.REDIS_URL = redis.url;
  const scratch = mkdtempSync(join(tmpdir(), 'cdc-sync-test-'));
  process.env[SCRATCH_ENV] = scratch;
  return () => rmSync(scratch, { recursive: true, force: true });
}
