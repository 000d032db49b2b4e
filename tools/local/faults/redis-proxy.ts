/**
 * A fault-injecting TCP proxy in front of Redis, for the cache lane: the connection is reset around a script call
 * (the cache sink's writes are Lua scripts, EVALSHA/EVAL), either before the command reaches Redis (nothing ran) or
 * after Redis ran it and before its reply reaches the client (it ran, the client cannot know). ioredis reconnects and
 * sends unanswered commands again, so the second case runs the script twice: the sink's version guard must make that
 * harmless.
 */
import { createServer, type Socket, connect as tcpConnect } from 'node:net';

export type RedisFault = 'resetBefore' | 'resetAfter';

export interface RedisFaultProxy {
  url: string;
  close(): Promise<void>;
}

/** Whether a chunk of RESP from the client calls a script (command names are sent as bulk strings, any case). */
function callsScript(chunk: Buffer): boolean {
  const text = chunk.toString('latin1').toLowerCase();
  return text.includes('\r\nevalsha\r\n') || text.includes('\r\neval\r\n');
}

export async function startRedisFaultProxy(options: {
  upstream: string;
  /** Called for every client chunk that calls a script: a fault, or undefined to pass it. */
  decide(): RedisFault | undefined;
}): Promise<RedisFaultProxy> {
  const target = new URL(options.upstream);
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = tcpConnect({ host: target.hostname, port: Number(target.port || 6379) });
    sockets.add(client);
    sockets.add(upstream);
    const reset = () => {
      client.destroy();
      upstream.destroy();
    };
    let resetOnReply = false;
    client.on('data', (chunk: Buffer) => {
      const fault = callsScript(chunk) ? options.decide() : undefined;
      if (fault === 'resetBefore') {
        reset();
        return;
      }
      if (fault === 'resetAfter') resetOnReply = true;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (resetOnReply) {
        reset();
        return;
      }
      client.write(chunk);
    });
    for (const socket of [client, upstream]) {
      socket.on('error', reset);
      socket.on('close', () => {
        sockets.delete(socket);
        reset();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as import('node:net').AddressInfo;
  return {
    url: `redis://127.0.0.1:${address.port}${target.pathname === '/' ? '' : target.pathname}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
