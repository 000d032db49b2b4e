/**
 * npm run bench -- --snapshot [--quick] [--json] [--chunk-size <rows>]
 *
 * An incremental snapshot under load, end to end (what `npm start` runs): a table of 100,000 rows (`bench_items`,
 * created and filled before the capture starts, so the initial snapshot brings it to every sink) and the demo workload
 * at 1,000 changes/s. Runs come in pairs, in the same invocation, each in a fresh process with a fresh database and
 * services:
 * - the snapshot run signals an incremental snapshot of the table a few seconds into the workload, through the
 *   pipeline's `signal` (as `npm run backfill` does through the control endpoint), and measures the rows read per
 *   second (rows scanned ÷ time from the signal to the snapshot's completion) and the workload's commit → every sink
 *   latency from the signal to the completion;
 * - the baseline run is the same without the signal, its latency taken over the same stretch of the workload (same
 *   start, same length as the snapshot run of its pair).
 * The pairs alternate (snapshot, baseline, snapshot, baseline) so a machine whose speed drifts during the benchmark
 * drifts both alike; the headline figures are medians over the pairs, and `p99Ratio` the median of the pairs' ratios.
 * Both runs verify every sink at the end (`consistent`). The workload's own schema change is off in both: it would
 * set off an incremental snapshot of its own. Absolute figures come with the raw floor (CPU µs per record of the
 * pipeline benchmark's base64 → JSON.parse floor) taken at the start and the end, which says which kind of day on a
 * shared machine they come from.
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism, loadavg } from 'node:os';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Lane, SnapshotSignal } from '../../functions/core/types';
import type { LatencyHistogram, LatencySummary } from '../local/runner/latency';
import type { RunContext } from '../local/runner/run';
import { cpuByProcess, rawFloorUsPerRecord, runInChild, serveChild } from './e2e';

const RUN_FLAG = '--cdc-sync-snapshot-run';

/** The table the benchmark snapshots (schema `public` of the embedded database). */
export const BENCH_TABLE = 'bench_items';

export interface SnapshotRunOptions {
  /** Signal the incremental snapshot (the snapshot run) or not (the baseline). */
  snapshot: boolean;
  /** Rows of {@link BENCH_TABLE}. */
  rows: number;
  /** Changes per second of the demo workload. */
  rate: number;
  /** How long the workload runs; long enough to cover the snapshot. */
  durationMs: number;
  /** When the window starts (and the snapshot run signals), counted from the workload's first change. */
  signalAtMs: number;
  /** Baseline: the window's length (the snapshot run's latency window, of its pair). */
  windowMs?: number;
  /** Rows per incremental-snapshot chunk (the capture's default when absent). */
  chunkSize?: number;
}

export interface SnapshotRunResult {
  snapshot: boolean;
  chunkSize: number | null;
  /** From the signal (`signalAtMs` after the workload's first change) to the snapshot's completion (baseline: as long). */
  windowMs: number;
  /**
   * The stretch `latency` and `committedPerSec` cover: the window, or its part before the workload ended when the
   * snapshot outlasted it (after that, only the backlog drains: no changes to measure the workload by).
   */
  latencyWindowMs: number;
  /** Snapshot run: rows the snapshot scanned, its status and rows per second (signal → completion). */
  rowsRead: number | null;
  rowsPerSec: number | null;
  status: string | null;
  /** Whether the window ended before the workload did (otherwise `latencyWindowMs` is shorter than `windowMs`). */
  withinWorkload: boolean;
  /** Commit → every sink (the slowest lane's write) of the workload's changes during the window. */
  latency: LatencySummary;
  /** Changes per second the workload committed during the window. */
  committedPerSec: number;
  /** Records the slowest lane had not committed yet (snapshot reads included), the most during the window. */
  maxLag: number;
  /** Share of the window each event loop was busy: `main` runs the capture, the broker and the mappings. */
  eventLoopBusy: { main: number } & Partial<Record<Lane, number>>;
  /** CPU seconds per second of window, per process kind (Linux; empty elsewhere). */
  cpuPerSec: Record<string, number>;
  consistent: boolean;
  problems: string[];
}

const round = (n: number, digits = 0) => Number(n.toFixed(digits));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Creates and fills {@link BENCH_TABLE}: narrow rows of the kinds the demo tables have, about 150 bytes each. */
async function createBenchTable(connectionString: string, rows: number): Promise<void> {
  const { default: pg } = await import('pg');
  const client = new pg.Client(connectionString);
  await client.connect();
  try {
    await client.query(`CREATE TABLE public.${BENCH_TABLE} (
      id          bigint PRIMARY KEY,
      sku         text NOT NULL,
      name        text NOT NULL,
      quantity    integer NOT NULL,
      price       numeric(10,2) NOT NULL,
      note        text,
      updated_at  timestamptz NOT NULL
    )`);
    await client.query(
      `INSERT INTO public.${BENCH_TABLE}
       SELECT g, 'SKU-' || g, 'Item ' || g, g % 100, (g % 100000) / 100.0, md5(g::text) || md5((g + 1)::text),
              timestamptz '2024-01-01' + g * interval '1 second'
         FROM generate_series(1, $1::int) AS g`,
      [rows],
    );
    await client.query(`ANALYZE public.${BENCH_TABLE}`);
  } finally {
    await client.end();
  }
}

/** One run, in its own process (see the module comment). */
async function runOnce(run: SnapshotRunOptions): Promise<SnapshotRunResult> {
  // Before the lanes load: see tools/local/start.ts.
  process.env.AWS_XRAY_MANUAL_MODE ??= 'true';
  const { parseRunOptions } = await import('../local/runner/options');
  const { runLocal } = await import('../local/runner/run');
  const { performance } = await import('node:perf_hooks');
  const parsed = parseRunOptions(['--rate', String(run.rate), '--seed-rows', '1000']);
  if (parsed === 'help') throw new Error('unexpected --help');
  const options = {
    ...parsed,
    durationMs: run.durationMs,
    schemaChange: false,
    ...(run.chunkSize ? { incrementalChunkSize: run.chunkSize } : {}),
  };
  const table = `public.${BENCH_TABLE}`;

  let measured: Omit<SnapshotRunResult, 'consistent' | 'problems'> | undefined;
  const whileRunning = async (context: RunContext) => {
    const { pipeline } = context;
    // The workload's helper process takes a moment to start: count from its first change.
    while (context.workloadChanges() === 0) await sleep(20);
    const workloadStart = performance.now();
    await sleep(run.signalAtMs);

    const lag = () => Object.values(pipeline.esmStats()).reduce((max, s) => Math.max(max, s.lag), 0);
    const mark = () => ({
      at: performance.now(),
      latency: context.stages.allSinksLatency(),
      committed: context.workloadChanges(),
    });
    const start = {
      ...mark(),
      elu: { main: performance.eventLoopUtilization(), ...pipeline.laneUtilization() },
      cpu: cpuByProcess(),
    };
    // Where the latency window ends if the snapshot outlasts the workload.
    let workloadEnd: ReturnType<typeof mark> | undefined;
    const endTimer = setTimeout(
      () => {
        workloadEnd = mark();
      },
      Math.max(0, run.durationMs - (start.at - workloadStart)),
    );
    let maxLag = lag();
    const sampler = setInterval(() => {
      maxLag = Math.max(maxLag, lag());
    }, 250);
    let rowsRead: number | null = null;
    let status: string | null = null;
    try {
      if (run.snapshot) {
        const signal: SnapshotSignal = {
          id: `bench-${randomBytes(4).toString('hex')}`,
          type: 'execute-snapshot',
          data: { 'data-collections': [table], type: 'incremental' },
        };
        pipeline.signal(signal, 'runner');
        // Woken by each notification; nothing else signals (the workload's schema change is off).
        await pipeline.snapshots.settled(600_000, () => pipeline.failure());
        const summary = pipeline.snapshots.get(signal.id);
        rowsRead = summary?.tables[table] ?? 0;
        status = summary?.status ?? 'unknown';
      } else {
        await sleep(run.windowMs ?? 0);
      }
    } finally {
      clearInterval(sampler);
      clearTimeout(endTimer);
    }
    const end = performance.now();
    const seconds = (end - start.at) / 1000;
    const latencyEnd = workloadEnd ?? mark();
    const latencySeconds = Math.max(0.001, (latencyEnd.at - start.at) / 1000);
    const latency: LatencyHistogram = latencyEnd.latency.since(start.latency);
    const cpu = cpuByProcess();
    const busy: SnapshotRunResult['eventLoopBusy'] = {
      main: round(performance.eventLoopUtilization(start.elu.main).utilization, 2),
    };
    for (const [lane, now] of Object.entries(pipeline.laneUtilization()) as Array<[Lane, EventLoopUtilization]>) {
      const before = start.elu[lane];
      if (before) busy[lane] = round(performance.eventLoopUtilization(now, before).utilization, 2);
    }
    measured = {
      snapshot: run.snapshot,
      chunkSize: run.chunkSize ?? null,
      windowMs: round(end - start.at),
      latencyWindowMs: round(latencyEnd.at - start.at),
      rowsRead,
      rowsPerSec: rowsRead === null ? null : round(rowsRead / seconds),
      status,
      withinWorkload: workloadEnd === undefined,
      latency: latency.summary(),
      committedPerSec: round((latencyEnd.committed - start.committed) / latencySeconds),
      maxLag,
      eventLoopBusy: busy,
      cpuPerSec: Object.fromEntries(
        Object.entries(cpu).map(([kind, s]) => [kind, round((s - (start.cpu[kind] ?? 0)) / seconds, 2)]),
      ),
    };
  };
  const result = await runLocal(options, {
    // The run's messages (phases, the snapshot's notifications) on stderr, for whoever watches the benchmark.
    log: (message) => void process.stderr.write(`  ${message}\n`),
    beforeCapture: ({ connectionString }) => createBenchTable(connectionString, run.rows),
    whileRunning,
  });
  if (!measured) throw new Error('the run ended before its measurement window closed');
  return { ...measured, consistent: result.consistent, problems: result.details.problems };
}

/** One run in a fresh child process. */
function runInFreshProcess(run: SnapshotRunOptions, log: (message: string) => void): Promise<SnapshotRunResult> {
  log(
    `snapshot bench: ${run.snapshot ? 'incremental snapshot' : 'baseline'} run, ${run.rows} rows, ` +
      `${run.rate} changes/s for ${run.durationMs / 1000} s${run.chunkSize ? `, chunks of ${run.chunkSize}` : ''}…`,
  );
  return runInChild(fileURLToPath(import.meta.url), RUN_FLAG, JSON.stringify(run), 'snapshot bench run', [
    // As npm run bench (and the lanes) run.
    '--max-semi-space-size=64',
  ]);
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

/** A snapshot run and the baseline run measured beside it. */
export interface SnapshotPair {
  snapshot: SnapshotRunResult;
  baseline: SnapshotRunResult;
}

/**
 * The headline figures over the pairs: medians of the snapshot runs' rows/s and latencies and of the baselines'
 * latencies, the median of the pairs' p99 ratios (each pair's runs share a stretch of the day, so the ratio is taken
 * within a pair before the median), and whether every run ended consistent.
 */
export function summarizePairs(pairs: readonly SnapshotPair[]) {
  if (pairs.length === 0) throw new Error('no runs to summarize');
  const during = pairs.map((p) => p.snapshot.latency);
  const before = pairs.map((p) => p.baseline.latency);
  return {
    snapshotRowsPerSec: median(pairs.map((p) => p.snapshot.rowsPerSec ?? 0)),
    latencyDuringSnapshot: { p50: median(during.map((l) => l.p50)), p99: median(during.map((l) => l.p99)) },
    latencyBaseline: { p50: median(before.map((l) => l.p50)), p99: median(before.map((l) => l.p99)) },
    // > 1: the snapshot slows the workload's changes down by that factor at the 99th percentile.
    p99Ratio: round(median(pairs.map((p) => p.snapshot.latency.p99 / Math.max(1, p.baseline.latency.p99))), 2),
    // A snapshot that did not complete is no figure to report, whatever the sinks say.
    consistent: pairs.every((p) => p.snapshot.consistent && p.baseline.consistent && p.snapshot.status === 'completed'),
  };
}

export interface SnapshotBenchOptions {
  quick: boolean;
  /** Rows per incremental-snapshot chunk (the capture's default, 1024, when absent). */
  chunkSize?: number;
}

/** The incremental-snapshot benchmark (see the module comment). */
export async function snapshotBenchmarks({ quick, chunkSize }: SnapshotBenchOptions) {
  const log = (message: string) => void process.stderr.write(`${message}\n`);
  const load = loadavg()[0] ?? 0;
  const floorAtStart = await rawFloorUsPerRecord();
  const base = {
    rows: 100_000,
    rate: 1000,
    durationMs: 40_000,
    signalAtMs: 5000,
    ...(chunkSize ? { chunkSize } : {}),
  };
  const pairs: SnapshotPair[] = [];
  for (let i = 0; i < (quick ? 1 : 2); i++) {
    const snapshot = await runInFreshProcess({ ...base, snapshot: true }, log);
    const baseline = await runInFreshProcess({ ...base, snapshot: false, windowMs: snapshot.latencyWindowMs }, log);
    pairs.push({ snapshot, baseline });
  }
  const floorAtEnd = await rawFloorUsPerRecord();
  const { consistent, ...figures } = summarizePairs(pairs);
  return {
    ...figures,
    rawFloorUsPerRecord: { start: floorAtStart, end: floorAtEnd },
    consistent,
    method:
      `pairs of runs (${pairs.length}), each a fresh process, database and services with default npm start ` +
      `settings: a ${base.rows}-row table (${BENCH_TABLE}, in the initial snapshot) and the demo workload at ` +
      `${base.rate} changes/s for ${base.durationMs / 1000} s without its schema change; the snapshot run signals ` +
      `an incremental snapshot of the table ${base.signalAtMs / 1000} s after the workload's first change ` +
      `(chunks of ${chunkSize ?? 'the default 1024'} rows); rows/s = rows scanned / (signal -> COMPLETED); latency ` +
      'is commit -> every sink of the workload changes in that window, the baseline over the same stretch of a run ' +
      'without the signal; medians over the pairs; both runs verified',
    details: {
      pairs,
      machine: { cores: availableParallelism(), loadAverageAtStart: round(load, 2), node: process.version },
    },
  };
}

await serveChild(RUN_FLAG, (argument) => runOnce(JSON.parse(argument || '{}') as SnapshotRunOptions));
