/**
 * One chaos run and a series of them: the local pipeline of `npm start` under the demo workload, with the faults of
 * its seed (tools/local/faults/injector.ts) injected while it runs, then the run's own verification (every sink
 * compared with the source, the audit log checked for exactly once) and a check of the dead-letter queues.
 *
 * A run's timeline: the initial snapshot loads without faults; then, at times drawn from the seed while the workload
 * goes on, one of each: the capture crashes and restarts (Debezium's at-least-once re-emission), the broker restarts
 * (every consumer group rejoins, the producer retries a hand-over whose ack it lost: duplicates at new offsets), a
 * lane's runtime crashes between its sink write and its checkpoint commit, a lane's invocation times out, a few bad
 * records arrive (their first dead-letter send fails), the cache is flushed and rebuilt from the audit log, a table's
 * change log is deleted and rebuilt. Background faults (failed sink writes, throttling, checkpoint conflicts,
 * cancelled transactions, Redis resets, lost commits, moved partitions) go on through the drain.
 *
 * What counts: lost (changes the audit log lacks, bad records no dead-letter queue holds), duplicated (changes
 * audited or in the change log twice), stale (rows the cache, the warehouse or its current-state tables hold
 * differently from the source), and unexpected dead letters (anything but the bad records).
 */
import { DeleteObjectsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { LANES, type Lane } from '../../functions/core/types';
import { drainDeadLetters } from '../lib/dead-letters';
import { Prng } from '../lib/prng';
import { deleteKeysWithPrefix } from '../lib/redis-keys';
import { FAULT_KINDS, FaultInjector, type FaultKind, type FaultRates, noFaults } from '../local/faults/injector';
import { parseRunOptions, type RunOptions } from '../local/runner/options';
import type { RunResult } from '../local/runner/result';
import { type RunContext, runLocal } from '../local/runner/run';
import { AUDIT_PREFIX, WAREHOUSE_PREFIX } from '../local/runner/system';
import type { Checks } from '../local/runner/verify';
import { LOCAL_NAMES } from '../local/services';
import { dynamoCheckpoints } from '../rebuild/checkpoints';
import { rebuild } from '../rebuild/rebuild';

export interface ChaosOptions {
  runs: number;
  /** Changes the workload makes per run. */
  changes: number;
  /** The first run's seed; run i has seed + i (and replays alone with that seed). */
  seed: number;
  /** Workload rate (changes/s). @default 500 */
  rate?: number;
  /** The lanes' function timeout. @default 8000 */
  invocationTimeoutMs?: number;
  rates?: FaultRates;
  /** Keep each run's state (as `npm start -- --keep`: the change log, the DuckDB files) for inspection. */
  keep?: boolean;
  /** Powertools log level of the lanes. @default 'SILENT' */
  logLevel?: string;
  /** Progress messages (one per run). */
  log?: (message: string) => void;
  /**
   * A sabotage for the tests of the checker itself: `skipCacheRebuild` leaves the flushed cache as it is, which the
   * verification must report as stale rows.
   */
  sabotage?: 'skipCacheRebuild';
}

export interface ChaosFailure {
  seed: number;
  what: string;
}

export interface ChaosRunResult {
  seed: number;
  changes: number;
  faults: Record<FaultKind, number>;
  consistent: boolean;
  lost: number;
  duplicated: number;
  stale: number;
  badRecords: { sent: number; deadLettered: number; unexpectedLetters: number };
  seconds: number;
  problems: string[];
}

export interface ChaosReport {
  runs: number;
  changes: number;
  faults: Record<FaultKind, number>;
  consistentRuns: number;
  lost: number;
  duplicated: number;
  stale: number;
  failures: ChaosFailure[];
  /** Per run, in order. */
  results: ChaosRunResult[];
}

const BAD_RECORDS = 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Lost, duplicated and stale from the run's checks. */
export function tally(checks: Checks): { lost: number; duplicated: number; stale: number; what: string[] } {
  const what: string[] = [];
  let lost = 0;
  let duplicated = 0;
  let stale = 0;
  const { audit, warehouse, cache, currentState } = checks;
  if (audit.checked) {
    lost += audit.missing;
    duplicated += audit.duplicateIds;
    if (audit.missing > 0) what.push(`${audit.missing} changes missing from the audit log`);
    if (audit.duplicateIds > 0) what.push(`${audit.duplicateIds} changes audited twice`);
    if (!audit.consistent && audit.missing === 0 && audit.duplicateIds === 0) {
      what.push(`audit: ${audit.problems.join('; ') || 'inconsistent'}`);
    }
  } else what.push(`audit not checked: ${audit.reason}`);
  if (warehouse.checked) {
    duplicated += warehouse.duplicateIds;
    if (warehouse.duplicateIds > 0) what.push(`${warehouse.duplicateIds} changes twice in the warehouse change log`);
  }
  for (const [sink, check] of [
    ['warehouse', warehouse],
    ['current-state', currentState],
    ['cache', cache],
  ] as const) {
    if (!check.checked) {
      what.push(`${sink} not checked: ${check.reason}`);
      continue;
    }
    for (const [table, t] of Object.entries(check.tables)) {
      const bad = t.missing + t.extra + t.different;
      stale += bad;
      if (bad > 0) {
        what.push(
          `${sink} ${table}: ${t.missing} missing, ${t.extra} extra, ${t.different} different rows${t.samples[0] ? ` (${t.samples[0]})` : ''}`,
        );
      }
    }
    if (!check.consistent) {
      for (const [table, t] of Object.entries(check.tables)) {
        if (t.missing + t.extra + t.different === 0 && t.samples.length > 0)
          what.push(`${sink} ${table}: ${t.samples[0]}`);
      }
      what.push(...check.problems.map((p) => `${sink}: ${p}`));
      if (what.length === 0) what.push(`${sink}: inconsistent`);
    }
  }
  return { lost, duplicated, stale, what };
}

/** The run's timed faults, in time order, at offsets (ms) drawn within the workload. */
function timeline(prng: Prng, durationMs: number) {
  const kinds = ['captureCrash', 'brokerRestart', 'laneCrash', 'timeout', 'badRecords', 'cacheLoss', 'warehouseLoss'];
  return kinds
    .map((kind) => ({ kind, atMs: Math.round(durationMs * (0.1 + 0.7 * prng.next())), lane: prng.pick(LANES) }))
    .sort((a, b) => a.atMs - b.atMs);
}

/** One run of the pipeline under the faults of `seed`. */
export async function chaosRun(seed: number, options: ChaosOptions): Promise<ChaosRunResult> {
  const started = performance.now();
  const rate = options.rate ?? 500;
  const parsed = parseRunOptions(['--rate', String(rate), '--seed-rows', '100', '--concurrency', '2']);
  if (parsed === 'help') throw new Error('unexpected help');
  const runOptions: RunOptions = {
    ...parsed,
    durationMs: Math.max(1000, (options.changes / rate) * 1000),
    // The lanes log every fault they meet (batches retried, dead letters): expected here, and thousands of lines.
    logLevel: options.logLevel ?? 'SILENT',
    keep: options.keep ?? false,
  };
  const prng = new Prng(seed);
  const injector = new FaultInjector(seed, {
    deadLetterBucket: LOCAL_NAMES.deadLetterBucket,
    invocationTimeoutMs: options.invocationTimeoutMs ?? 8000,
    ...(options.rates ? { rates: options.rates } : {}),
  });
  const problems: string[] = [];
  const sentBad = new Set<string>();
  const letters: Array<{ lane: Lane; value: string | null; code: string }> = [];
  let lanes: readonly Lane[] = [];

  const loseCache = async (context: RunContext) => {
    const redisUrl = context.services.redisUrl;
    if (!redisUrl) return;
    await deleteKeysWithPrefix(redisUrl, context.cachePrefix);
    injector.counts.cacheFlushed++;
    if (options.sabotage === 'skipCacheRebuild') return;
    const redis = new Redis(redisUrl);
    try {
      await rebuild({
        sink: 'cache',
        s3: context.services.clients.s3,
        audit: { bucket: LOCAL_NAMES.auditBucket, prefix: AUDIT_PREFIX },
        cache: { redis, prefix: context.cachePrefix },
        checkpoints: dynamoCheckpoints(context.services.clients.dynamodb, LOCAL_NAMES.dedupeTable),
        catchUpTimeoutMs: 120_000,
      });
    } finally {
      redis.disconnect();
    }
  };

  const loseWarehouseTable = async (context: RunContext) => {
    const s3 = context.services.clients.s3;
    const table = prng.pick(['customers', 'orders', 'order_items', 'products']);
    const prefix = `${WAREHOUSE_PREFIX}table=${runOptions.topicPrefix}.${runOptions.schema}.${table}/`;
    let token: string | undefined;
    do {
      const page = await s3.send(
        new ListObjectsV2Command({ Bucket: LOCAL_NAMES.warehouseBucket, Prefix: prefix, ContinuationToken: token }),
      );
      const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key as string }));
      if (keys.length > 0) {
        await s3.send(new DeleteObjectsCommand({ Bucket: LOCAL_NAMES.warehouseBucket, Delete: { Objects: keys } }));
      }
      token = page.NextContinuationToken;
    } while (token);
    injector.counts.warehouseDeleted++;
    await rebuild({
      sink: 'warehouse',
      tables: [table],
      s3,
      audit: { bucket: LOCAL_NAMES.auditBucket, prefix: AUDIT_PREFIX },
      warehouse: { bucket: LOCAL_NAMES.warehouseBucket, prefix: WAREHOUSE_PREFIX },
      checkpoints: dynamoCheckpoints(context.services.clients.dynamodb, LOCAL_NAMES.dedupeTable),
      catchUpTimeoutMs: 120_000,
    });
  };

  const sendBadRecords = async (context: RunContext, lane: Lane) => {
    const topics = context.pipeline.tableTopics();
    const records = Array.from({ length: BAD_RECORDS }, (_, i) => {
      const topic = prng.pick(topics);
      const value = Buffer.from(`{"chaos": "bad record ${seed}/${i}", truncated`);
      sentBad.add(value.toString('base64'));
      const partitions = context.pipeline.broker.partitionCount(topic) ?? 1;
      return { topic, key: Buffer.from(`{"id":-${i + 1}}`), value, partition: prng.int(0, partitions - 1) };
    });
    injector.arm('deadLetterSend', lane);
    await context.pipeline.broker.produce(records);
  };

  const whileRunning = async (context: RunContext) => {
    lanes = context.pipeline.lanes;
    const start = performance.now();
    for (const event of timeline(prng, runOptions.durationMs)) {
      const wait = event.atMs - (performance.now() - start);
      if (wait > 0) await sleep(wait);
      const lane = lanes.includes(event.lane) ? event.lane : (lanes[0] as Lane);
      switch (event.kind) {
        case 'captureCrash':
          injector.counts.captureCrash++;
          await context.pipeline.restartCapture({ crash: true });
          break;
        case 'brokerRestart':
          injector.counts.brokerRestart++;
          injector.duplicateNextProduce();
          await context.pipeline.restartMappings();
          break;
        case 'laneCrash':
          injector.arm('crash', lane);
          break;
        case 'timeout':
          injector.arm('timeout', lane);
          break;
        case 'badRecords':
          await sendBadRecords(context, lane);
          break;
        case 'cacheLoss':
          await loseCache(context);
          break;
        case 'warehouseLoss':
          await loseWarehouseTable(context);
          break;
      }
    }
    // A shot armed late fires on the lane's next request; the heartbeat keeps every lane writing until the drain.
    const deadline = performance.now() + 30_000;
    while (injector.pendingShots() > 0 && performance.now() < deadline) await sleep(100);
  };

  /** Bisections of failed batches, by every lane's event source mapping (the faults cause them; counted here). */
  let bisected = 0;
  const beforeVerify = async (context: RunContext) => {
    injector.stop();
    for (const stats of Object.values(context.pipeline.esmStats())) bisected += stats.bisections;
    for (const lane of lanes) {
      for (const letter of await drainDeadLetters(context.services, context.services.queueUrls[lane])) {
        const value = letter.record.value;
        letters.push({ lane, value: typeof value === 'string' ? value : null, code: letter.error.code });
      }
    }
  };

  let result: RunResult;
  try {
    result = await runLocal(runOptions, {
      faults: injector.pipelineFaults(),
      onStarted: (context) => {
        injector.crashLane = (lane) => context.pipeline.crashLane(lane);
        injector.start();
      },
      whileRunning,
      beforeVerify,
    });
  } finally {
    await injector.close();
  }

  const counts = { ...injector.counts, batchBisected: bisected };
  const { lost: lostChanges, duplicated, stale, what } = tally(result.checks);
  // Every bad record in every lane's queue; nothing else there.
  let lostBad = 0;
  for (const lane of lanes) {
    for (const value of sentBad) {
      if (!letters.some((l) => l.lane === lane && l.value === value)) {
        lostBad++;
        what.push(`a bad record is missing from the ${lane} dead-letter queue`);
      }
    }
  }
  const unexpected = letters.filter((l) => l.value === null || !sentBad.has(l.value));
  for (const l of unexpected.slice(0, 5)) what.push(`unexpected dead letter in ${l.lane}: ${l.code}`);
  for (const lane of LANES) {
    const onFailure = result.lanes[lane]?.onFailure ?? 0;
    if (onFailure > 0) what.push(`${lane}: ${onFailure} batches given up by the event source mapping`);
  }
  problems.push(...what);
  const lost = lostChanges + lostBad;
  return {
    seed,
    changes: result.changes,
    faults: counts,
    consistent: result.consistent && lost === 0 && duplicated === 0 && stale === 0 && what.length === 0,
    lost,
    duplicated,
    stale,
    badRecords: {
      sent: sentBad.size,
      deadLettered: letters.length - unexpected.length,
      unexpectedLetters: unexpected.length,
    },
    seconds: Math.round((performance.now() - started) / 100) / 10,
    problems,
  };
}

/** `runs` runs with seeds seed, seed+1, …; a run that throws counts as a failure with its error. */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const report: ChaosReport = {
    runs: options.runs,
    changes: 0,
    faults: noFaults(),
    consistentRuns: 0,
    lost: 0,
    duplicated: 0,
    stale: 0,
    failures: [],
    results: [],
  };
  for (let i = 0; i < options.runs; i++) {
    const seed = options.seed + i;
    let run: ChaosRunResult;
    try {
      run = await chaosRun(seed, options);
    } catch (error) {
      report.failures.push({ seed, what: `the run failed: ${error instanceof Error ? error.message : String(error)}` });
      options.log?.(`run ${i + 1}/${options.runs} (seed ${seed}): failed`);
      continue;
    }
    report.results.push(run);
    report.changes += run.changes;
    for (const kind of FAULT_KINDS) report.faults[kind] += run.faults[kind];
    report.lost += run.lost;
    report.duplicated += run.duplicated;
    report.stale += run.stale;
    if (run.consistent) report.consistentRuns++;
    else report.failures.push({ seed, what: run.problems.join('; ') || 'inconsistent' });
    const injected = FAULT_KINDS.reduce((sum, k) => sum + run.faults[k], 0);
    options.log?.(
      `run ${i + 1}/${options.runs} (seed ${seed}): ${run.changes} changes, ${injected} faults, ` +
        `${run.consistent ? 'consistent' : 'INCONSISTENT'} (${run.seconds} s)`,
    );
  }
  return report;
}
