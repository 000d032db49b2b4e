/** How `npm start` (and the test suite) finds its Redis: REDIS_URL, else the default address, else redis-server. */
import { createConnection } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../tools/local/postgres';
import { DEFAULT_REDIS_URL, ensureRedis, redisAnswers } from '../../tools/local/redis';

/** Stops the Redis at the URL (a plain socket: a client library would keep reconnecting to the server it stopped). */
function shutdown(url: string): Promise<void> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname, port: Number(port) }, () => socket.write('SHUTDOWN NOSAVE\r\n'));
    socket.once('close', () => resolve());
    socket.once('error', () => resolve());
  });
}

describe('finding a Redis for local runs', () => {
  it('uses REDIS_URL when it answers', async () => {
    const url = process.env.REDIS_URL ?? DEFAULT_REDIS_URL;
    await expect(ensureRedis({ REDIS_URL: url })).resolves.toEqual({ url, started: false });
  });

  it('says why, and starts nothing, when REDIS_URL does not answer', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const found = await ensureRedis({ REDIS_URL: url });
    expect(found).toEqual({ url: null, reason: `REDIS_URL=${url} does not answer PING` });
    expect(await redisAnswers(url)).toBe(false);
  });

  it('uses the default address when something answers there', async () => {
    const url = process.env.REDIS_URL ?? DEFAULT_REDIS_URL;
    await expect(ensureRedis({}, { defaultUrl: url })).resolves.toEqual({ url, started: false });
  });

  it('starts redis-server on the default address when nothing answers there', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const found = await ensureRedis({}, { defaultUrl: url });
    try {
      expect(found).toEqual({ url, started: true });
      expect(await redisAnswers(url)).toBe(true);
    } finally {
      await shutdown(url);
    }
  });

  it('says why when nothing answers and there is no redis-server to start', async () => {
    const port = await freePort();
    const found = await ensureRedis({}, { defaultUrl: `redis://127.0.0.1:${port}`, command: 'no-such-redis-server' });
    expect(found).toEqual({
      url: null,
      reason: `nothing answers on 127.0.0.1:${port} and no-such-redis-server is not on PATH`,
    });
  });
});
