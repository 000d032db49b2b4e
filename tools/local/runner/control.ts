/**
 * The control endpoint of a running `npm start`: how `npm run backfill` reaches the run. An HTTP server on the
 * loopback interface only, on a free port, announced in a small run file (`.local/run.json`, removed at exit) with a
 * random token the requests must carry, so only someone who can read that file (its owner: mode 0600) can signal.
 *
 * - `GET /run`: the run's captured tables (`schema.table`, Debezium's data-collection names) and its schema.
 * - `POST /signals`: a Debezium signal (JSON); an execute-snapshot of a table the run does not capture is refused
 *   with 404 and the names it does capture.
 * - `GET /snapshots/<id>`: what the capture reported about that snapshot so far (see snapshots.ts).
 *
 * Hand-written over node:http: three routes, no dependency worth its weight.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, resolve } from 'node:path';
import type { SnapshotSignal } from '../../../functions/core/types';
import type { IncrementalSnapshotSummary } from './snapshots';

/** Where a local run announces itself, relative to the working directory. */
export const RUN_FILE = '.local/run.json';

/**
 * Where a local run's source and sinks are, for `npm run smoke` (a canary row through every sink) and other tools.
 * The credentials are the local emulators' fixed ones, never real ones.
 */
export interface RunCoordinates {
  /** The source database, and its heartbeat table (`schema.table`) where the canary row goes. */
  source: { connectionString: string; heartbeatTable: string | null; topicPrefix: string };
  /** The cache lane's Redis and key prefix; null when the run has no cache lane. */
  cache: { url: string; prefix: string } | null;
  /** The local S3 (path-style) and where the warehouse and audit lanes write. */
  s3: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string };
  warehouse: { bucket: string; prefix: string };
  audit: { bucket: string; prefix: string };
  /** The lanes' checkpoints (local DynamoDB, same region and credentials): how far each lane has committed. */
  dedupe?: { endpoint: string; table: string };
}

/** What the run file holds. */
export interface RunFile {
  pid: number;
  /** http://127.0.0.1:<port> */
  url: string;
  token: string;
  /** The schema `npm start` captures (bare table names are resolved in it). */
  schema: string;
  startedAt: string;
  /** Where the run's source and sinks are (see {@link RunCoordinates}). */
  coordinates?: RunCoordinates;
}

/** What the control endpoint needs from the run. */
export interface ControlTarget {
  schema: string;
  /** The captured tables as `schema.table`, read afresh (a table created during the run counts). */
  tables(): Promise<string[]>;
  signal(signal: SnapshotSignal): void;
  snapshot(id: string): IncrementalSnapshotSummary | undefined;
  /** Written into the run file for the tools that reach the run's source and sinks directly. */
  coordinates?: RunCoordinates;
}

export interface ControlServer {
  url: string;
  /** Closes the server and removes the run file. */
  close(): Promise<void>;
}

const MAX_BODY = 64 * 1024;

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new Error('request body too large');
    chunks.push(chunk as Buffer);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

/** A well-formed execute-snapshot signal, or a message saying what is wrong with it. */
export function parseSignal(body: unknown): SnapshotSignal | string {
  const s = body as Partial<SnapshotSignal> | null;
  if (!s || typeof s !== 'object' || typeof s.id !== 'string' || s.id === '') return 'a signal needs an id';
  if (s.type !== 'execute-snapshot') return 'only execute-snapshot signals are taken here';
  const tables = s.data?.['data-collections'];
  if (!Array.isArray(tables) || tables.length === 0 || !tables.every((t) => typeof t === 'string')) {
    return 'data.data-collections must list tables';
  }
  return s as SnapshotSignal;
}

/** Starts the control endpoint and writes the run file (`file`, default {@link RUN_FILE} in the working directory). */
export async function startControlServer(target: ControlTarget, file = RUN_FILE): Promise<ControlServer> {
  const token = randomBytes(16).toString('hex');
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (req.headers.authorization !== `Bearer ${token}`) return reply(res, 401, { error: 'bad or missing token' });
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (req.method === 'GET' && path === '/run') {
      return reply(res, 200, { schema: target.schema, tables: await target.tables() });
    }
    if (req.method === 'POST' && path === '/signals') {
      const signal = parseSignal(await readJson(req));
      if (typeof signal === 'string') return reply(res, 400, { error: signal });
      const known = new Set(await target.tables());
      const unknown = signal.data['data-collections'].filter((t) => !known.has(t));
      if (unknown.length > 0) {
        return reply(res, 404, { error: `not captured by this run: ${unknown.join(', ')}`, tables: [...known].sort() });
      }
      target.signal(signal);
      return reply(res, 202, { id: signal.id });
    }
    const snapshot = /^\/snapshots\/([^/]+)$/.exec(path);
    if (req.method === 'GET' && snapshot) {
      const found = target.snapshot(decodeURIComponent(snapshot[1] as string));
      return found ? reply(res, 200, found) : reply(res, 404, { error: 'no such snapshot' });
    }
    return reply(res, 404, { error: `no route ${req.method} ${path}` });
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => reply(res, 400, { error: (error as Error).message }));
  });
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => done());
  });
  server.unref(); // never what keeps a finished run alive
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const path = resolve(file);
  const content: RunFile = {
    pid: process.pid,
    url,
    token,
    schema: target.schema,
    startedAt: new Date().toISOString(),
    ...(target.coordinates ? { coordinates: target.coordinates } : {}),
  };
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600 });
  return {
    url,
    async close() {
      await rm(path, { force: true });
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}
