/**
 * Serves the status page on 127.0.0.1: the page itself (tools/status/page/, plain HTML, CSS and JavaScript, no build
 * step), uPlot from node_modules (charts work offline: nothing comes from a CDN) and its one data endpoint,
 * `GET /api/status` (a {@link StatusReport}), which the page polls once a second.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StatusReport } from './report';

const PAGE_DIR = fileURLToPath(new URL('./page/', import.meta.url));
const UPLOT_DIR = join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');

/** URL path → file and content type. */
const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: join(PAGE_DIR, 'index.html'), type: 'text/html; charset=utf-8' },
  '/app.js': { file: join(PAGE_DIR, 'app.js'), type: 'text/javascript; charset=utf-8' },
  '/app.css': { file: join(PAGE_DIR, 'app.css'), type: 'text/css; charset=utf-8' },
  '/vendor/uplot.js': { file: join(UPLOT_DIR, 'uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  '/vendor/uplot.css': { file: join(UPLOT_DIR, 'uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

export interface StatusServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface StatusServerOptions {
  /** The report served at `/api/status`, read at every request. */
  read: () => StatusReport | Promise<StatusReport>;
  /** @default 0 (any free port); when this one is taken, any free port is used instead */
  port?: number;
}

/** Starts the page's server on 127.0.0.1 (never on other interfaces: the page shows table names and problems). */
export async function startStatusServer(options: StatusServerOptions): Promise<StatusServer> {
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    void answer(request, response, options).catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(500, { 'content-type': 'text/plain' });
      response.end(String((error as Error)?.message ?? error));
    });
  });
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  try {
    await listen(options.port ?? 0);
  } catch (error) {
    // Another run (or anything else) has the port: the page still comes up, on the address printed.
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || !options.port) throw error;
    await listen(0);
  }
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function answer(request: IncomingMessage, response: ServerResponse, options: StatusServerOptions) {
  const path = new URL(request.url ?? '/', 'http://localhost').pathname;
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  if (path === '/api/status') {
    const body = JSON.stringify(await options.read());
    response.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
    response.end(body);
    return;
  }
  const file = FILES[path];
  if (!file) {
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    return;
  }
  const content = await readFile(file.file);
  response.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-cache' });
  response.end(content);
}
