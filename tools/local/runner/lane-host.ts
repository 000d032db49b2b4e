/**
 * Where a lane's real Lambda handler runs locally: a pool of handler instances ("execution environments"), by
 * default on a worker thread of its own per lane.
 *
 * Why a pool: Lambda never runs two batches in one execution environment at once (Powertools' Metrics and Logger
 * keep per-invocation state), but the event source mapping runs one batch per partition concurrently; so an idle
 * instance is reused and a new one is made when all are busy, as Lambda scales out.
 *
 * Why a thread: the three lanes, the capture, the broker and the mappings would otherwise share one event loop, and
 * one thread would be the bottleneck long before the machine is. The event crosses to the thread as a structured
 * clone (a deep copy, as a Lambda runtime gets its own parsed copy; cheaper for this thread than JSON text); the
 * handler, its clients and its sink live there. What comes back is the handler's response, each batch's counters
 * (from `onBatch`) and, when asked for, what the sink wrote.
 */

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { type EventLoopUtilization, performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { Context } from 'aws-lambda';
import { type BatchResult, countsOf, type RecordCounts } from '../../../functions/core/pipeline';
import type { ChangeEvent, Lane, SnapshotSignal, SnapshotSignaller } from '../../../functions/core/types';

/** A batch's counters, as the runner keeps them (BatchResult without the parts that do not cross threads). */
export interface BatchSummary extends RecordCounts {
  /** Commit → sink write of every processed event, all topics. */
  latenciesMs: number[];
  /** The first retryable error when a partition was handed back for a retry (a sink down, say). */
  error?: string;
}

/**
 * The changes of one sink write, with the timestamps the stage timings need, column-packed so that crossing from
 * the lane's thread costs one transferred buffer instead of an object per change: per change {@link WRITTEN_FIELDS}
 * numbers (NaN for a missing time), `topic` an index into `topics`.
 */
export interface WrittenChanges {
  topics: string[];
  rows: Float64Array;
}

/** Field order of a row in {@link WrittenChanges.rows}; `snapshot` is 1 for snapshot reads. */
export const WRITTEN_FIELDS = [
  'topic',
  'partition',
  'offset',
  'snapshot',
  'commitTs',
  'capturedAt',
  'timestamp',
  'processedAt',
] as const;

function packWrites(events: readonly ChangeEvent[]): WrittenChanges {
  const topics: string[] = [];
  const index = new Map<string, number>();
  const width = WRITTEN_FIELDS.length;
  const rows = new Float64Array(events.length * width);
  events.forEach((e, i) => {
    let t = index.get(e.kafka.topic);
    if (t === undefined) {
      t = topics.push(e.kafka.topic) - 1;
      index.set(e.kafka.topic, t);
    }
    // Field by field (WRITTEN_FIELDS order), without an array per change.
    const at = i * width;
    rows[at] = t;
    rows[at + 1] = e.kafka.partition;
    rows[at + 2] = e.kafka.offset;
    rows[at + 3] = e.op === 'r' ? 1 : 0;
    rows[at + 4] = e.source.commitTs ?? Number.NaN;
    rows[at + 5] = e.capturedAt ?? Number.NaN;
    rows[at + 6] = e.kafka.timestamp;
    rows[at + 7] = e.processedAt;
  });
  return { topics, rows };
}

export interface LaneHostOptions {
  lane: Lane;
  /** The lane's environment variables (what CDK sets in AWS). */
  env: Record<string, string>;
  /** Let Powertools print EMF metric lines. @default false */
  metrics?: boolean;
  /** Report what the sink wrote (costs a little per event). */
  observeWrites?: boolean;
  onBatch: (summary: BatchSummary) => void;
  onWrites?: (changes: WrittenChanges, writtenAt: number) => void;
  /**
   * The lane asks for an incremental snapshot (its `SnapshotSignaller`): the runner hands the signal to the capture,
   * as Debezium's Kafka signal channel does in AWS. From a worker thread the signal travels in its own message, which
   * the main thread receives before the result of the invocation that sent it (one port keeps order), so a drain
   * that waits for that invocation also sees the signal.
   */
  onSignal?: (signal: SnapshotSignal) => void;
  /** Something went wrong outside an invocation (the worker died). */
  onProblem?: (message: string) => void;
}

/** A lane's handler, wherever it runs. */
export interface LaneHost {
  /** Runs one invocation; `fresh` runs it in a new execution environment (a partition moved to another poller). */
  invoke(event: unknown, context: Context, options?: { fresh?: boolean }): Promise<unknown>;
  /** Handler instances made so far: the lane's peak concurrency. */
  environments(): number;
  /** Event loop utilization of the thread the lane runs on (cumulative; diff two readings for a window). */
  utilization(): EventLoopUtilization;
  close(): Promise<void>;
  /**
   * Ends the lane at once, like a crashed or timed-out Lambda runtime: invocations in flight fail, their requests
   * are cut off. (On the main thread, where nothing can be cut off, the same as close.)
   */
  kill(): Promise<void>;
}

interface PoolOptions {
  lane: Lane;
  env: Record<string, string>;
  metrics: boolean;
  observeWrites: boolean;
  onBatch: (summary: BatchSummary) => void;
  onWrites: (changes: WrittenChanges, writtenAt: number) => void;
  onSignal: (signal: SnapshotSignal) => void;
}

function summarise(result: BatchResult): BatchSummary {
  const latenciesMs: number[] = [];
  for (const counters of result.topics.values()) for (const v of counters.latenciesMs) latenciesMs.push(v);
  return { ...countsOf(result), latenciesMs, ...(result.error ? { error: result.error.message } : {}) };
}

/**
 * The pool of handler instances, on the current thread. Loads the lane modules lazily so that the X-Ray setting
 * below is in place before Powertools Tracer loads the X-Ray SDK.
 */
async function createPool(options: PoolOptions): Promise<LaneHost> {
  // Tracing is off locally; in its default automatic mode the X-Ray SDK adds an async hook with destroy tracking
  // that taxes every promise on the thread.
  process.env.AWS_XRAY_MANUAL_MODE ??= 'true';
  // A lane thread has its own copy of process.env: the SDK's Node version notice was printed once already.
  if (!isMainThread) process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const [{ createLaneHandler }, { SINKS }, { localClientConfig }] = await Promise.all([
    import('../../../functions/shared/lane-handler'),
    import('../../lib/lanes'),
    import('../aws-clients'),
  ]);
  type Handler = ReturnType<typeof createLaneHandler>;
  const { lane, env } = options;
  // The lane's clients talk to the local emulators its environment names.
  const clientConfig = localClientConfig(env);
  const sinkFactory = SINKS[lane] as import('../../../functions/shared/lane-deps').SinkFactory<Lane>;
  const sink: typeof sinkFactory = options.observeWrites
    ? (config, clients) => {
        const real = sinkFactory(config, clients);
        return {
          close: real.close?.bind(real),
          async write(partition) {
            const result = await real.write(partition);
            if (result.ok) options.onWrites(packWrites(partition.events), result.writtenAt);
            return result;
          },
        };
      }
    : sinkFactory;
  const signaller: SnapshotSignaller = {
    async send(signal) {
      options.onSignal(signal);
    },
  };
  const build = (): Handler => {
    // Powertools reads POWERTOOLS_METRICS_DISABLED from process.env when Metrics is constructed. EMF lines are for
    // CloudWatch: locally nothing collects them, they would bury the progress line and cost CPU.
    const before = process.env.POWERTOOLS_METRICS_DISABLED;
    if (!options.metrics) process.env.POWERTOOLS_METRICS_DISABLED = 'true';
    try {
      return createLaneHandler(lane, sink, env, {
        clientConfig,
        onBatch: (result) => options.onBatch(summarise(result)),
        // Every table's changes go to the one local capture, whatever their topic prefix.
        signaller,
      });
    } finally {
      if (before === undefined) delete process.env.POWERTOOLS_METRICS_DISABLED;
      else process.env.POWERTOOLS_METRICS_DISABLED = before;
    }
  };
  // The first environment is made now: a bad configuration fails here, not at the first batch.
  const instances: Handler[] = [build()];
  let idle: Handler[] = [...instances];
  let made = instances.length;
  return {
    async invoke(event, context, invokeOptions) {
      let instance = invokeOptions?.fresh ? undefined : idle.pop();
      if (invokeOptions?.fresh) {
        // A new environment takes over from an idle one (which goes, as Lambda retires it), so the pool stays small.
        const retired = idle.shift();
        if (retired) {
          idle = idle.filter((i) => i !== retired);
          instances.splice(instances.indexOf(retired), 1);
          void retired.close().catch(() => undefined);
        }
      }
      if (!instance) {
        instance = build();
        instances.push(instance);
        made++;
      }
      try {
        return await instance(event, context);
      } finally {
        idle.push(instance);
      }
    },
    environments: () => made,
    utilization: () => performance.eventLoopUtilization(),
    async close() {
      await Promise.all(instances.map((i) => i.close()));
    },
    async kill() {
      await Promise.all(instances.map((i) => i.close()));
    },
  };
}

// --- worker thread -------------------------------------------------------------------------------------------

type ContextFields = Pick<
  Context,
  | 'functionName'
  | 'functionVersion'
  | 'invokedFunctionArn'
  | 'memoryLimitInMB'
  | 'awsRequestId'
  | 'logGroupName'
  | 'logStreamName'
> & { deadline: number };

type ToWorker =
  | { type: 'invoke'; id: number; event: unknown; context: ContextFields; fresh: boolean }
  | { type: 'close' };
/** What the lane reports while it runs an invocation: each batch's counters, each sink write. */
type Report = { type: 'batch'; summary: BatchSummary } | { type: 'writes'; changes: WrittenChanges; writtenAt: number };
type FromWorker =
  | { type: 'ready'; environments: number }
  | { type: 'signal'; signal: SnapshotSignal }
  | { type: 'failed'; message: string }
  | ({ type: 'result'; id: number; reports: Report[] } & (
      | { ok: true; response: unknown; environments: number }
      | { ok: false; error: { name: string; message: string; code?: string } }
    ))
  | { type: 'closed' };

interface WorkerData {
  kind: 'cdc-sync-lane';
  options: Omit<PoolOptions, 'onBatch' | 'onWrites' | 'onSignal'>;
}

function contextOf(fields: ContextFields): Context {
  const unsupported = (): never => {
    throw new Error('context.done/fail/succeed are not supported: return or throw from an async handler');
  };
  const { deadline, ...rest } = fields;
  return {
    ...rest,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: unsupported,
    fail: unsupported,
    succeed: unsupported,
  };
}

async function serveLane(data: WorkerData): Promise<void> {
  const port = parentPort;
  if (!port) return;
  const post = (message: FromWorker) => port.postMessage(message);
  // Reports travel with the invocation's result, in one message: a message per sink write woke the main thread once
  // per topic-partition of every batch. Sink writes carry their own time, so latencies are unchanged.
  let reports: Report[] = [];
  let transfer: ArrayBuffer[] = [];
  const postResult = (result: Extract<FromWorker, { type: 'result' }>) => {
    port.postMessage(result, transfer); // the rows' buffers are transferred, not copied
    reports = [];
    transfer = [];
  };
  let pool: LaneHost;
  try {
    pool = await createPool({
      ...data.options,
      onBatch: (summary) => reports.push({ type: 'batch', summary }),
      onWrites: (changes, writtenAt) => {
        reports.push({ type: 'writes', changes, writtenAt });
        transfer.push(changes.rows.buffer as ArrayBuffer);
      },
      onSignal: (signal) => post({ type: 'signal', signal }),
    });
  } catch (error) {
    post({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
    return;
  }
  port.on('message', (message: ToWorker) => {
    if (message.type === 'close') {
      void pool.close().finally(() => post({ type: 'closed' }));
      return;
    }
    const { id } = message;
    pool.invoke(message.event, contextOf(message.context), { fresh: message.fresh }).then(
      (response) => postResult({ type: 'result', id, reports, ok: true, response, environments: pool.environments() }),
      (error: unknown) => {
        const e = error instanceof Error ? error : new Error(String(error));
        const code = (e as { code?: unknown }).code;
        postResult({
          type: 'result',
          id,
          reports,
          ok: false,
          error: { name: e.name, message: e.message, ...(typeof code === 'string' ? { code } : {}) },
        });
      },
    );
  });
  post({ type: 'ready', environments: pool.environments() });
}

if (!isMainThread && (workerData as WorkerData | undefined)?.kind === 'cdc-sync-lane') {
  await serveLane(workerData as WorkerData);
}

// --- main thread -------------------------------------------------------------------------------------------------

/** The lane in this thread (no worker): for debugging and for comparison in the benchmark. */
export function startLaneInThread(options: LaneHostOptions): Promise<LaneHost> {
  return createPool({
    lane: options.lane,
    env: options.env,
    metrics: options.metrics ?? false,
    observeWrites: options.observeWrites ?? false,
    onBatch: options.onBatch,
    onWrites: options.onWrites ?? (() => undefined),
    onSignal: options.onSignal ?? (() => undefined),
  });
}

/**
 * Semi-space of a lane's thread (MiB): what CDK sets for a 1 GiB lane (`semiSpaceMiB(1024)` in
 * lib/constructs/lane-function.ts; not imported, so the runner does not load aws-cdk-lib).
 */
const LANE_SEMI_SPACE_MIB = 64;

/** The lane on a worker thread of its own. Resolves once its first handler instance is built. */
export async function startLaneWorker(options: LaneHostOptions): Promise<LaneHost> {
  // A worker starts without the parent's TypeScript loader: it registers tsx itself, then loads this file.
  const tsxApi = pathToFileURL(
    join(dirname(createRequire(import.meta.url).resolve('tsx')), 'esm', 'api', 'index.mjs'),
  ).href;
  const self = pathToFileURL(fileURLToPath(import.meta.url)).href;
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(self)}); });`;
  const data: WorkerData = {
    kind: 'cdc-sync-lane',
    options: {
      lane: options.lane,
      env: options.env,
      metrics: options.metrics ?? false,
      observeWrites: options.observeWrites ?? false,
    },
  };
  const worker = new Worker(bootstrap, {
    eval: true,
    workerData: data,
    name: `lane-${options.lane}`,
    // What the lane gets in AWS (lib/constructs/lane-function.ts: `--max-semi-space-size=64` at 1 GiB): V8's young
    // generation is three semi-spaces. A batch's events are short-lived; with the default young generation most of
    // them would survive a scavenge or two and be copied, and GC took a quarter of a lane's CPU.
    resourceLimits: { maxYoungGenerationSizeMb: 3 * LANE_SEMI_SPACE_MIB },
  });
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  let nextId = 0;
  let environments = 0;
  let closed: (() => void) | undefined;
  let failure: Error | undefined;

  const ready = new Promise<void>((resolve, reject) => {
    worker.on('message', (message: FromWorker) => {
      switch (message.type) {
        case 'ready':
          environments = message.environments;
          resolve();
          break;
        case 'failed':
          reject(new Error(`the ${options.lane} lane did not start: ${message.message}`));
          break;
        case 'signal':
          options.onSignal?.(message.signal);
          break;
        case 'result': {
          for (const report of message.reports) {
            if (report.type === 'batch') options.onBatch(report.summary);
            else options.onWrites?.(report.changes, report.writtenAt);
          }
          const call = pending.get(message.id);
          pending.delete(message.id);
          if (message.ok) {
            environments = message.environments;
            call?.resolve(message.response);
          } else {
            const error = Object.assign(new Error(message.error.message), { name: message.error.name });
            if (message.error.code) Object.assign(error, { code: message.error.code });
            call?.reject(error);
          }
          break;
        }
        case 'closed':
          closed?.();
          break;
      }
    });
    worker.once('error', (error) => {
      failure = error;
      reject(error);
      options.onProblem?.(`the ${options.lane} lane's worker failed: ${error.message}`);
      for (const call of pending.values()) call.reject(error);
      pending.clear();
    });
    worker.once('exit', (code) => {
      failure ??= new Error(`the ${options.lane} lane's worker exited (code ${code})`);
      reject(failure);
      for (const call of pending.values()) call.reject(failure);
      pending.clear();
      closed?.();
    });
  });
  try {
    await ready;
  } catch (error) {
    await worker.terminate();
    throw error;
  }

  return {
    invoke(event, context, invokeOptions) {
      if (failure) return Promise.reject(failure);
      const id = nextId++;
      const fields: ContextFields = {
        functionName: context.functionName,
        functionVersion: context.functionVersion,
        invokedFunctionArn: context.invokedFunctionArn,
        memoryLimitInMB: context.memoryLimitInMB,
        awsRequestId: context.awsRequestId,
        logGroupName: context.logGroupName,
        logStreamName: context.logStreamName,
        deadline: Date.now() + context.getRemainingTimeInMillis(),
      };
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        const message: ToWorker = { type: 'invoke', id, event, context: fields, fresh: invokeOptions?.fresh ?? false };
        worker.postMessage(message);
      });
    },
    environments: () => environments,
    utilization: () => worker.performance.eventLoopUtilization(),
    async close() {
      if (!failure) {
        await new Promise<void>((resolve) => {
          closed = resolve;
          worker.postMessage({ type: 'close' } satisfies ToWorker);
        });
      }
      await worker.terminate();
    },
    async kill() {
      failure ??= new Error(`the ${options.lane} lane's runtime was killed`);
      await worker.terminate();
    },
  };
}
