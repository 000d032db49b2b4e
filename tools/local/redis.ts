import { spawnSync } from 'node:child_process';
import { createConnection } from 'node:net';

/** Where the local Redis lives unless REDIS_URL says otherwise. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** True when something answers PING with PONG at the URL's host and port. */
export async function redisAnswers(url: string, timeoutMs = 1000): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname, port: Number(port || 6379) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

export type RedisAvailability = { url: string; started: boolean } | { url: null; reason: string };

/**
 * Finds a Redis for local runs and tests: `REDIS_URL` if set, else 127.0.0.1:6379, else a `redis-server` started
 * on PATH (daemonized, no persistence, same command the machine uses). Never throws: says why when none is found.
 * `defaultUrl` and `command` are for tests (another port, a missing binary).
 */
export async function ensureRedis(
  env: NodeJS.ProcessEnv = process.env,
  { defaultUrl = DEFAULT_REDIS_URL, command = 'redis-server' }: { defaultUrl?: string; command?: string } = {},
): Promise<RedisAvailability> {
  const url = env.REDIS_URL ?? defaultUrl;
  if (await redisAnswers(url)) return { url, started: false };
  if (env.REDIS_URL) return { url: null, reason: `REDIS_URL=${env.REDIS_URL} does not answer PING` };
  const { hostname, port } = new URL(url);
  const probe = spawnSync(command, ['--version'], { encoding: 'utf8' });
  if (probe.error) {
    return { url: null, reason: `nothing answers on ${hostname}:${port || 6379} and ${command} is not on PATH` };
  }
  const started = spawnSync(
    command,
    ['--daemonize', 'yes', '--bind', '127.0.0.1', '--port', port || '6379', '--save', '', '--appendonly', 'no'],
    { encoding: 'utf8' },
  );
  if (started.status !== 0) return { url: null, reason: `${command} failed to start: ${started.stderr.trim()}` };
  for (let attempt = 0; attempt < 50; attempt++) {
    if (await redisAnswers(url)) return { url, started: true };
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url: null, reason: `${command} was started but does not answer PING` };
}
