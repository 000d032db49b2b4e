import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP proxy in front of a local AWS emulator that can make chosen operations fail, the way a real service
 * outage or throttling looks to the SDK (HTTP 500 / 400 ThrottlingException after the SDK's own retries).
 */
export interface FaultProxy {
  url: string;
  /** Operations (DynamoDB `X-Amz-Target` suffix like "PutItem", or S3 method+path regexp) that fail while set. */
  failing: Set<string | RegExp>;
  /** How many requests were refused. */
  refused: number;
  close(): Promise<void>;
}

function operationOf(method: string, url: string, target: string | undefined): string {
  if (target) return target.slice(target.lastIndexOf('.') + 1);
  return `${method} ${url}`;
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const target = new URL(upstream);
  const proxy: FaultProxy = { url: '', failing: new Set(), refused: 0, close: async () => undefined };
  const server: Server = createServer((req, res) => {
    const operation = operationOf(
      req.method ?? 'GET',
      req.url ?? '/',
      req.headers['x-amz-target'] as string | undefined,
    );
    const fail = [...proxy.failing].some((f) => (typeof f === 'string' ? f === operation : f.test(operation)));
    if (fail) {
      proxy.refused++;
      req.resume();
      res.writeHead(500, { 'content-type': 'application/x-amz-json-1.0' });
      res.end(
        JSON.stringify({ __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: 'injected outage' }),
      );
      return;
    }
    const forward = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return proxy;
}
