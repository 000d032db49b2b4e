/**
 * npm run bench -- --e2e [--quick] [--json]
 *
 * The local pipeline end to end (what `npm start` runs), under load:
 * - `latencyAt1k`: commit → every sink (per change, the slowest of the three lanes' sink writes) at 1,000 changes/s,
 *   p50/p99 over a steady window after a warm-up;
 * - `maxSustainedPerSec`: the highest rate at which the pipeline keeps up on this machine: the workload reaches the
 *   rate and the backlog (changes committed but not yet captured, plus records the slowest lane has not committed)
 *   does not grow: its trend over the window (least squares over a sample every 250 ms, which sees through the
 *   saw-tooth of batches) rises by at most 1% of the rate per second. Rates double from 1,000 until one is not
 *   sustained, then a few bisection steps narrow it down.
 * - `details.latencyAt1kVsInvocationPerPartition`: the 1,000/s latency of the default (one invocation in flight per lane)
 *   divided by that of a baseline run in the same process tree with one invocation in flight per partition;
 * - `details.costModel` (slice-cost.ts): CPU per lane invocation against the real emulators, per partition and per
 *   record, and from it the shortest round in which every lane writes every partition once at 1,000/s.
 * Each measurement runs in a fresh process with a fresh database and services, so steps do not inherit each other's
 * heap, broker contents or backlog. The details say where the time goes: per-stage latencies (stages.ts), event loop
 * utilization of the runner's main thread and of each lane's thread, and CPU seconds per process (Linux).
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Lane } from '../../functions/core/types';
import { firstMessage, spawnHelper, stopHelper } from '../local/runner/child';
import type { LatencySummary } from '../local/runner/latency';
import { DEFAULTS } from '../local/runner/options';
import type { RunContext } from '../local/runner/run';
import { measure, rawFloor } from './cpu';
import { benchEvent } from './fixtures';
import { cpuMsOf, descendants } from './proc';
import { measureSliceCosts, PARTITIONS } from './slice-cost';

const STEP_FLAG = '--cdc-sync-e2e-step';
const COSTS_FLAG = '--cdc-sync-e2e-costs';

export interface StepOptions {
  rate: number;
  warmupMs: number;
  windowMs: number;
  /** Verify the sinks after the run (the 1,000/s run does; ramp steps skip it to save time). */
  verify: boolean;
  /** More `npm start` flags (e.g. `--partitions 1`), to compare settings. */
  args?: string[];
}

export interface StepResult {
  rate: number;
  /** Changes per second the workload committed during the window. */
  committedPerSec: number;
  /** Changes per second every lane finished during the window (the slowest lane). */
  deliveredPerSec: number;
  /** Changes behind: at the window's start and end, its maximum, and its trend (changes per second, least squares). */
  backlog: { start: number; end: number; max: number; trendPerSec: number; limitPerSec: number };
  sustained: boolean;
  /** Commit → every sink, per change (slowest lane), during the window. */
  allSinks: Omit<LatencySummary, 'count'>;
  /** Commit → sink write of every lane's writes together, during the window. */
  anySink: Omit<LatencySummary, 'count'>;
  /** Where the time goes per lane: p50/p99 ms of capture, produce, queue, lane (see stages.ts). */
  stagesMs: Partial<Record<Lane, Record<string, { p50: number; p99: number }>>>;
  /** Share of the window each event loop was busy. */
  eventLoopBusy: { main: number } & Partial<Record<Lane, number>>;
  /** CPU seconds per process during the window, per second of window (Linux only; empty elsewhere). */
  cpuPerSec: Record<string, number>;
  drainMs: number;
  consistent: boolean | null;
}

const round = (n: number, digits = 0) => Number(n.toFixed(digits));

/** Least-squares slope of y over x (0 for fewer than two points). */
export function slope(points: ReadonlyArray<readonly [number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  let sx = 0;
  let sy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
  }
  const mx = sx / n;
  const my = sy / n;
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
  }
  return sxx === 0 ? 0 : sxy / sxx;
}

// --- per-process CPU (Linux /proc) --------------------------------------------------------------------------------

/** CPU seconds so far per process kind: this process, the services and workload helpers, PostgreSQL, others. */
export function cpuByProcess(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pid of [process.pid, ...descendants(process.pid)]) {
    try {
      const seconds = cpuMsOf(pid) / 1000;
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      const kind =
        pid === process.pid
          ? 'runner (capture, broker, mappings, lane threads)'
          : cmd.includes('services-host')
            ? 'emulators (dynalite, fauxqs)'
            : cmd.includes('workload-host')
              ? 'workload'
              : cmd.startsWith('postgres')
                ? `postgres ${cmd.includes('walsender') ? 'walsender' : 'backends'}`
                : cmd.includes('postgres')
                  ? 'postgres backends'
                  : 'other';
      out[kind] = (out[kind] ?? 0) + seconds;
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

// --- one step, in its own process ---------------------------------------------------------------------------------

async function runStep(step: StepOptions): Promise<StepResult> {
  // Before the lanes load: see tools/local/start.ts.
  process.env.AWS_XRAY_MANUAL_MODE ??= 'true';
  const { parseRunOptions } = await import('../local/runner/options');
  const { runLocal } = await import('../local/runner/run');
  const { performance } = await import('node:perf_hooks');
  const parsed = parseRunOptions(['--rate', String(step.rate), '--seed-rows', '1000', ...(step.args ?? [])]);
  if (parsed === 'help') throw new Error('unexpected --help');
  // The workload runs past the window's end: its helper process needs a moment to start. Without the workload's
  // schema change (and the incremental snapshot it sets off), so the figures compare with runs from before it.
  const options = {
    ...parsed,
    durationMs: step.warmupMs + step.windowMs + 2000,
    verify: step.verify,
    schemaChange: false,
  };

  // The backlog may rise by this much per second and still count as not growing (noise of the trend's estimate).
  const limitPerSec = step.rate / 100;
  let measured: Omit<StepResult, 'drainMs' | 'consistent'> | undefined;
  const timers: NodeJS.Timeout[] = [];
  const measure = (context: RunContext) => {
    const { pipeline } = context;
    const emittedAtStart = pipeline.captureEmitted();
    const backlog = () => {
      const lag = Object.values(pipeline.esmStats()).reduce((max, s) => Math.max(max, s.lag), 0);
      const notCaptured = context.workloadChanges() - (pipeline.captureEmitted() - emittedAtStart);
      return Math.max(0, notCaptured) + lag;
    };
    const delivered = () =>
      Math.min(...Object.values(pipeline.totals()).map((t) => t.processed + t.duplicates + t.skipped));
    let start: {
      at: number;
      latency: ReturnType<typeof pipeline.latency>;
      backlog: number;
      committed: number;
      delivered: number;
      elu: { main: EventLoopUtilization } & Partial<Record<Lane, EventLoopUtilization>>;
      cpu: Record<string, number>;
    };
    let maxBacklog = 0;
    const samples: Array<[number, number]> = [];
    timers.push(
      setTimeout(() => {
        context.stages.reset();
        start = {
          at: performance.now(),
          latency: pipeline.latency(),
          backlog: backlog(),
          committed: context.workloadChanges(),
          delivered: delivered(),
          elu: { main: performance.eventLoopUtilization(), ...pipeline.laneUtilization() },
          cpu: cpuByProcess(),
        };
        maxBacklog = start.backlog;
        samples.push([0, start.backlog]);
        timers.push(
          setInterval(() => {
            const now = backlog();
            maxBacklog = Math.max(maxBacklog, now);
            samples.push([(performance.now() - start.at) / 1000, now]);
          }, 250),
        );
      }, step.warmupMs),
      setTimeout(() => {
        const seconds = (performance.now() - start.at) / 1000;
        const end = backlog();
        samples.push([seconds, end]);
        const trendPerSec = slope(samples);
        const committedPerSec = (context.workloadChanges() - start.committed) / seconds;
        const cpu = cpuByProcess();
        const lanes = pipeline.laneUtilization();
        const busy: StepResult['eventLoopBusy'] = {
          main: round(performance.eventLoopUtilization(start.elu.main).utilization, 2),
        };
        for (const [lane, now] of Object.entries(lanes) as Array<[Lane, EventLoopUtilization]>) {
          const before = start.elu[lane];
          if (before) busy[lane] = round(performance.eventLoopUtilization(now, before).utilization, 2);
        }
        const { count: _a, ...anySink } = pipeline.latency().since(start.latency).summary();
        const { count: _b, ...allSinks } = context.stages.allSinksLatency().summary();
        const stagesMs: StepResult['stagesMs'] = {};
        for (const [lane, stages] of Object.entries(context.stages.summary())) {
          stagesMs[lane as Lane] = Object.fromEntries(
            Object.entries(stages).map(([stage, h]) => [stage, { p50: h.p50, p99: h.p99 }]),
          );
        }
        measured = {
          rate: step.rate,
          committedPerSec: round(committedPerSec),
          deliveredPerSec: round((delivered() - start.delivered) / seconds),
          backlog: { start: start.backlog, end, max: maxBacklog, trendPerSec: round(trendPerSec), limitPerSec },
          sustained: committedPerSec >= 0.95 * step.rate && trendPerSec <= limitPerSec,
          allSinks,
          anySink,
          stagesMs,
          eventLoopBusy: busy,
          cpuPerSec: Object.fromEntries(
            Object.entries(cpu).map(([kind, s]) => [kind, round((s - (start.cpu[kind] ?? 0)) / seconds, 2)]),
          ),
        };
        for (const timer of timers) clearInterval(timer);
      }, step.warmupMs + step.windowMs),
    );
  };
  const result = await runLocal(options, { onStarted: measure });
  for (const timer of timers) clearInterval(timer);
  if (!measured) throw new Error('the run ended before the measurement window closed');
  return {
    ...measured,
    drainMs: result.details.timingsMs.drain ?? 0,
    consistent: step.verify ? result.consistent : null,
  };
}

/**
 * Runs `flag`'s work (see {@link serveChild}) of the module `file` in a fresh child process and resolves with its
 * result, so that measurements do not inherit each other's heap, broker contents or backlog.
 */
export async function runInChild<T>(
  file: string,
  flag: string,
  argument: string,
  what: string,
  nodeOptions: string[] = [],
): Promise<T> {
  const child = spawnHelper(file, [flag, argument], process.env, nodeOptions);
  try {
    return await firstMessage(child, (message) => {
      const m = message as { type: string; result?: T; message?: string };
      if (m.type === 'error') throw new Error(`${what} failed: ${m.message}`);
      return m.type === 'result' ? m.result : undefined;
    });
  } finally {
    await stopHelper(child, 60_000);
  }
}

/** Runs this file's `flag` work in a fresh child process (see {@link runInChild}). */
function inChild<T>(flag: string, argument: string, what: string, nodeOptions: string[] = []): Promise<T> {
  return runInChild(fileURLToPath(import.meta.url), flag, argument, `e2e ${what}`, nodeOptions);
}

/** Runs one step in a fresh child process. */
function step(options: StepOptions, log: (message: string) => void): Promise<StepResult> {
  log(`e2e: ${options.rate} changes/s (${options.warmupMs / 1000} s warm-up, ${options.windowMs / 1000} s window)…`);
  return inChild(STEP_FLAG, JSON.stringify(options), `step at ${options.rate}/s`);
}

/** The per-invocation cost model (slice-cost.ts), in a fresh child process like the steps. */
function costModel(quick: boolean, log: (message: string) => void) {
  log('e2e: cost model per lane invocation (partitions, records)…');
  // With the young generation the lanes get (lane-host.ts, lib/constructs/lane-function.ts).
  return inChild<Awaited<ReturnType<typeof measureSliceCosts>>>(COSTS_FLAG, String(quick ? 10 : 30), 'cost model', [
    '--max-semi-space-size=64',
  ]);
}

/**
 * How fast this machine is right now: CPU µs per record of the raw floor of `npm run bench` (base64 → UTF-8 →
 * JSON.parse of a 4.6 KB Debezium event's key and value; the fastest of 5 runs over 2,000 records). The end-to-end
 * figures are wall-clock times on a machine whose speed varies several-fold from day to day; this figure, taken at
 * the start and the end of the run, says which kind of day a report comes from and compares with the raw floor in
 * the pipeline table of docs/benchmarks.md.
 */
export async function rawFloorUsPerRecord(): Promise<number> {
  const event = benchEvent(2000);
  const { raw } = await measure({ raw: () => rawFloor(event) }, 5);
  return round(((raw?.min ?? Number.NaN) * 1000) / 2000, 1);
}

/** The end-to-end benchmark (see the module comment). */
export async function e2eBenchmarks({ quick }: { quick: boolean }) {
  const log = (message: string) => void process.stderr.write(`${message}\n`);
  const load = loadavg()[0] ?? 0;
  const floorAtStart = await rawFloorUsPerRecord();
  const at1k = await step(
    { rate: 1000, warmupMs: quick ? 5000 : 10_000, windowMs: quick ? 10_000 : 25_000, verify: true },
    log,
  );
  // The same load with one partition per topic: fewer, larger batches per lane (see the report in details).
  const at1kOnePartition = await step(
    {
      rate: 1000,
      warmupMs: quick ? 5000 : 10_000,
      windowMs: quick ? 10_000 : 25_000,
      verify: false,
      args: ['--partitions', '1'],
    },
    log,
  );
  // Baseline in the same run: one invocation in flight per partition (a fully scaled-out mapping), against the
  // default of one per lane that gathers every ready partition.
  const at1kPerPartition = await step(
    {
      rate: 1000,
      warmupMs: quick ? 5000 : 10_000,
      windowMs: quick ? 10_000 : 25_000,
      verify: false,
      args: ['--concurrency', String(PARTITIONS)],
    },
    log,
  );
  const ramp: StepResult[] = [];
  const hold = { warmupMs: quick ? 3000 : 5000, windowMs: quick ? 8000 : 20_000, verify: false };
  let good = at1k.sustained ? 1000 : 0;
  let bad: number | undefined = at1k.sustained ? undefined : 1000;
  for (let rate = 2000; bad === undefined && rate <= 32_000; rate *= 2) {
    const r = await step({ rate, ...hold }, log);
    ramp.push(r);
    if (r.sustained) good = rate;
    else bad = rate;
  }
  const low = bad ?? good;
  for (let i = 0; i < (quick ? 2 : 3) && bad !== undefined && bad - good > Math.max(100, good * 0.1); i++) {
    const rate = Math.round((good + (bad ?? low)) / 2 / 50) * 50;
    const r = await step({ rate, ...hold }, log);
    ramp.push(r);
    if (r.sustained) good = rate;
    else bad = rate;
  }
  const costs = await costModel(quick, log);
  const floorAtEnd = await rawFloorUsPerRecord();
  // The cores the lanes and emulators had at 1,000/s: the machine minus PostgreSQL, the workload and the runner's main
  // thread (capture, broker, mappings), as measured in that step.
  const others = Object.entries(at1k.cpuPerSec)
    .filter(([kind]) => kind.startsWith('postgres') || kind === 'workload')
    .reduce((sum, [, cpu]) => sum + cpu, at1k.eventLoopBusy.main);
  const laneCores = Math.max(0.1, availableParallelism() - others);
  return {
    latencyAt1k: { p50: at1k.allSinks.p50, p99: at1k.allSinks.p99 },
    maxSustainedPerSec: good,
    goals: { latencyAt1k: 'p50 <= 50 ms, p99 <= 150 ms', maxSustainedPerSec: '>= 5000' },
    details: {
      latencyAt1k: at1k,
      latencyAt1kOnePartition: at1kOnePartition,
      latencyAt1kInvocationPerPartition: at1kPerPartition,
      // < 1: the default (one invocation per lane) is faster than the scaled-out baseline, measured above.
      latencyAt1kVsInvocationPerPartition: {
        p50: round(at1k.allSinks.p50 / at1kPerPartition.allSinks.p50, 2),
        p99: round(at1k.allSinks.p99 / at1kPerPartition.allSinks.p99, 2),
      },
      // Why latency at 1,000/s is what it is: with a 0 ms window every lane writes every partition about once per
      // round, and a round costs cycleCpuMs of CPU; spread over the cores left to the lanes and emulators, that is the
      // shortest round, and the p50 commit → every sink comes out at about one such round.
      costModel: {
        ...costs,
        coresForLanesAndEmulators: round(laneCores, 2),
        roundFloorMs: round(costs.cycleCpuMs / laneCores),
      },
      ramp: ramp.sort((a, b) => a.rate - b.rate),
      machine: {
        cores: availableParallelism(),
        loadAverageAtStart: round(load, 2),
        node: process.version,
        rawFloorUsPerRecord: { start: floorAtStart, end: floorAtEnd },
      },
      method: `fresh process, database and services per step; default npm start settings (${DEFAULTS.partitions} partitions, batch ${DEFAULTS.batchSize}, window ${DEFAULTS.windowMs} ms, ${DEFAULTS.concurrency} invocation in flight per lane, lanes on worker threads); latencyAt1k is commit -> every sink per change`,
    },
  };
}

/** The child side of runInChild: when started with `flag`, runs `work` on its argument and sends the result. */
export async function serveChild(flag: string, work: (argument: string) => Promise<unknown>): Promise<void> {
  const at = process.argv.indexOf(flag);
  if (at < 0 || !process.send) return;
  const send = (message: unknown) => process.send?.(message);
  process.on('disconnect', () => process.exit(0));
  try {
    send({ type: 'result', result: await work(process.argv[at + 1] ?? '') });
  } catch (error) {
    send({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  }
  process.on('message', (message: { type?: string }) => {
    if (message.type === 'stop') process.exit(0);
  });
}

await serveChild(STEP_FLAG, (argument) => runStep(JSON.parse(argument || '{}') as StepOptions));
await serveChild(COSTS_FLAG, (argument) => measureSliceCosts(Number(argument || 30)));
