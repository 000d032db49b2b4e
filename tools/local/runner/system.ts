/**
 * The local pipeline, wired the way it runs in AWS: PostgreSQL → dev connector (Debezium-compatible capture) →
 * broker (Kafka-style partitions) → one event source mapping per lane (its own consumer group) → the real lane
 * handlers (middy + Powertools, as in Lambda) → dynalite / fauxqs (S3, SQS) / Redis.
 *
 * Everything runs in this process except PostgreSQL and Redis. The runner (run.ts) adds the source database, the
 * workload and the verification around it; tests and the benchmark drive it directly.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import pg from 'pg';
import { ConfluentRegistryClient } from '../../../functions/adapters/confluent-registry-client';
import { JsonDebeziumDecoder } from '../../../functions/core/decode';
import { AvroDebeziumDecoder } from '../../../functions/core/decode/avro';
import { FormatRoutingDecoder } from '../../../functions/core/decode/format-routing';
import { emptyCounts, type RecordCounts } from '../../../functions/core/pipeline';
import type { Lane, SkipReason, SnapshotSignal } from '../../../functions/core/types';
import { type EsmStats, LocalBroker, LocalEventSourceMapping, type OnFailureRecord } from '../broker';
import {
  type CaptureCounts,
  type CaptureStatus,
  MemoryOffsetStore,
  type OffsetStore,
  type PostgresCapture,
  startPostgresCapture,
} from '../capture';
import type { AddedTable, CaptureOptions, CaptureSignal, SnapshotNotification } from '../capture/types';
import { AvroConverter } from '../registry/avro-converter';
import { LOCAL_NAMES, type LocalServices } from '../services';
import { type BatchSummary, type LaneHost, startLaneInThread, startLaneWorker, type WrittenChanges } from './lane-host';
import { type SupervisedLane, superviseLane } from './lane-supervisor';
import { LatencyHistogram } from './latency';
import { type SnapshotOrigin, SnapshotTracker } from './snapshots';
import { StreamSummarizer, type StreamSummary } from './verify';

/** Where the warehouse and audit lanes write inside their buckets (fresh services per run, so the defaults). */
export const WAREHOUSE_PREFIX = 'changes/';
export const AUDIT_PREFIX = 'audit/';
/** Where on-failure records of the event source mappings go, in the dead-letter bucket. */
export const ON_FAILURE_PREFIX = 'on-failure/';

/**
 * Where `npm run chaos` injects faults into the pipeline (tools/local/faults): the lanes' view of the services,
 * their runtimes, their event source mappings and the capture's producer. Absent, nothing changes.
 */
export interface PipelineFaults {
  /** The lane's environment as its handler sees it: chaos points the service endpoints at fault proxies. */
  laneEnv?(lane: Lane, env: Record<string, string>): Promise<Record<string, string>>;
  /** The lanes' function timeout: an invocation past it fails and its runtime is killed (lane-supervisor.ts). */
  invocationTimeoutMs?: number;
  /** Asked before each invocation: true runs it in a new execution environment (a partition moved). */
  freshEnvironment?(lane: Lane): boolean;
  /** Asked after each successful invocation: true loses its commit, and the batch is delivered again. */
  loseCommit?(lane: Lane): boolean;
  /** Asked at each hand-over of the capture: true produces it twice (a producer retry after a lost acknowledgement). */
  duplicateProduce?(): boolean;
  /** Told when a lane's runtime is killed (a crash or a timeout). */
  onKill?(lane: Lane, reason: string): void;
}

export interface PipelineOptions {
  services: LocalServices;
  connectionString: string;
  /** Debezium `topic.prefix`: topics are `<prefix>.<schema>.<table>`. */
  topicPrefix: string;
  slotName: string;
  publicationName: string;
  /** Schemas to capture (every table in them), unless `tables` is given. */
  schemas?: string[];
  /** `schema.table` names to capture. */
  tables?: string[];
  /** Lanes to run (the cache lane is left out when there is no Redis). */
  lanes: readonly Lane[];
  /** Key prefix of the cache lane in Redis (unique per run: the machine's Redis is shared). */
  cachePrefix: string;
  /** Partitions per topic. */
  partitions: number;
  /** Records per invocation. */
  batchSize: number;
  /** Batching window of the event source mappings. */
  windowMs: number;
  /**
   * Invocations each lane's mapping keeps in flight, each holding its own partitions. In AWS an MSK mapping starts
   * with one poller and adds pollers as the offset lag grows, up to one invocation per partition. Locally a lane runs
   * on one thread, where concurrent invocations share one core and each pays its own fixed costs (the checkpoint
   * read, the handler's set-up): one invocation that gathers every ready partition is cheaper and, at 1,000 changes/s,
   * halved the commit → sink latency. @default 1
   */
  concurrency?: number;
  /** Persist the broker's logs here (otherwise in memory). */
  brokerDir?: string;
  /**
   * In memory, delete the records every lane has committed (after folding them into the stream summary), once a
   * second: without it the broker keeps every record and its base64 copy, about 16 KB per change. Ignored with
   * `brokerDir`. @default true
   */
  releaseConsumed?: boolean;
  /**
   * How far the capture may run ahead of the slowest lane: change records produced to the table topics that not every
   * lane has committed. Beyond it the capture waits before it hands on more (the snapshot stops reading its cursor,
   * streaming stops reading the slot, which keeps the WAL for it), so the in-memory broker stays bounded whatever
   * the size of the source: without it, the initial snapshot of a large database outruns the lanes and the broker
   * holds most of it at once (about 16 KB per change). @default 10_000
   */
  maxBacklog?: number;
  /** Where the capture keeps its offset. @default in memory */
  offsets?: OffsetStore;
  /** Powertools log level of the lane handlers. @default 'WARN' */
  logLevel?: string;
  heartbeatIntervalMs?: number;
  /** How often the capture saves its offset (and acknowledges the slot). @default 200 */
  offsetFlushIntervalMs?: number;
  /**
   * Let Powertools print its EMF metric lines (one JSON document per table per batch, on stdout). Off by default:
   * locally nothing collects them, they would bury the progress line, and printing them costs CPU the benchmark
   * should not pay. @default false
   */
  metrics?: boolean;
  /** Told about every change a sink wrote (per lane), with the sink's write time: for stage timings. */
  onSinkWrite?: (lane: Lane, changes: WrittenChanges, writtenAt: number) => void;
  /**
   * Run each lane on a worker thread of its own (see lane-host.ts); false keeps them on this thread.
   * @default true
   */
  laneThreads?: boolean;
  /**
   * Told about every failed lane invocation and every batch that handed records back for a retry (the mapping
   * redelivers them; onProblem does not hear of these, which are expected while a sink is down).
   */
  onLaneError?: (lane: Lane, message: string) => void;
  /** Told when something goes wrong in the background (capture failure, failed invocation, destination write). */
  onProblem?: (message: string) => void;
  /**
   * The source's signal table (`schema.table`, Debezium's layout), passed to the capture: INSERTs there are signals,
   * and the incremental snapshot writes its watermarks there. Without it (a `--source` database, where the run
   * creates no table) watermarks are logical decoding messages and signals come through {@link LocalPipeline.signal}.
   */
  signalTable?: string;
  /** Told about every incremental-snapshot notification of the capture (after the pipeline recorded it). */
  onNotification?: (notification: SnapshotNotification) => void;
  /** Told about a table the capture found while streaming, after its topic was created. */
  onTableAdded?: (table: AddedTable) => void;
  /** The heartbeat table the capture upserts at every heartbeat (`schema.table`, see CaptureOptions.heartbeatTable). */
  heartbeatTable?: string;
  /** Rows per incremental-snapshot chunk (Debezium `incremental.snapshot.chunk.size`). @default the capture's, 1024 */
  incrementalChunkSize?: number;
  /** Test hook of the capture: after a chunk's SELECT, before its high watermark (see CaptureOptions). */
  beforeHighWatermark?: CaptureOptions['beforeHighWatermark'];
  /**
   * The connector's converters: `json` (JsonConverter, schemas.enable=true) or `avro` (Confluent AvroConverter with
   * the schema registry `registry`: schemas registered per subject, records Confluent-framed, the lanes' decoder
   * reading them from the same registry). @default 'json'
   */
  format?: 'json' | 'avro';
  /** The Confluent-compatible registry of `format: 'avro'` (the run's local one, see tools/local/registry). */
  registry?: { url: string };
  /** Fault injection (`npm run chaos`). */
  faults?: PipelineFaults;
}

/** Totals of one lane since the pipeline started, from every batch's `BatchResult`. */
export interface LaneTotals extends RecordCounts {
  batches: number;
  /** Batches the event source mapping gave up on (written to the on-failure destination). */
  onFailureRecords: number;
  /** Commit → sink write of every processed event (since the last `resetLatency`). */
  latency: LatencyHistogram;
}

/** How far the capture ran ahead of the lanes, and how often it waited for them (see `maxBacklog`). */
export interface Backpressure {
  maxBacklog: number;
  /** Most change records not every lane had committed, right after a hand-over (before any wait). */
  peakBacklog: number;
  /** Most change records the broker held at once (committed ones stay until the next release, once a second). */
  peakRetained: number;
  /** How often the capture waited, and for how long in all (ms). */
  heldTimes: number;
  heldMs: number;
}

export interface LocalPipeline {
  readonly broker: LocalBroker;
  readonly lanes: readonly Lane[];
  /** The running capture (replaced by `restartCapture`). */
  capture(): PostgresCapture;
  /** Status of every capture this pipeline ran, the running one last. */
  captureStatuses(): CaptureStatus[];
  /**
   * Change events (read/create/update/delete/truncate) the captures emitted, summed over restarts: the source's own
   * changes. The heartbeat action's are not among them (they go on while nothing else happens).
   */
  captureEmitted(): number;
  /**
   * Every change record the captures emitted, the heartbeat action's included, and any a producer retry wrote twice
   * (PipelineFaults.duplicateProduce): what the broker should hold.
   */
  captureChangeRecords(): number;
  /** True when a capture was stopped without flushing (a crash): its counts may include records never produced. */
  crashed(): boolean;
  totals(): Record<Lane, LaneTotals>;
  esmStats(): Record<Lane, EsmStats>;
  /** Handler instances ("execution environments") each lane needed: its peak concurrency. */
  environments(): Record<Lane, number>;
  /** Event loop utilization of each lane's thread (cumulative readings; see LaneHost.utilization). */
  laneUtilization(): Partial<Record<Lane, import('node:perf_hooks').EventLoopUtilization>>;
  /** Latency of every lane together since the last reset. */
  latency(): LatencyHistogram;
  /** Starts latency collection afresh (after the initial snapshot, so only streamed changes count). */
  resetLatency(): void;
  /** Topics the lanes consume (table topics only: Lambda ESMs subscribe to those, not to heartbeats). */
  tableTopics(): string[];
  /** What the capture produced to the table topics (released records and those still in the broker), decoded. */
  stream(): Promise<StreamSummary>;
  /** What is folded into the stream summary so far (records every lane committed), without waiting: for live views. */
  streamSoFar(): StreamSummary;
  /**
   * Stops (or resumes) the capture's heartbeat action, for this capture and any restarted one: the runner stops it
   * before it drains, so that the source holds still while the sinks are compared with it.
   */
  pauseHeartbeatAction(paused: boolean): void;
  /** With `format: 'avro'`: records converted and their JsonConverter and Avro sizes. */
  avroStats(): AvroConverter['stats'] | undefined;
  /** Why the capture stopped by itself, if it did (the run cannot complete then). */
  failure(): Error | null;
  /** Barrier: everything committed in PostgreSQL so far is produced, and every lane has committed it. */
  drain(timeoutMs?: number): Promise<void>;
  /**
   * Stops the capture and starts a new one on the same slot and offsets. `crash` drops its connections without
   * flushing, like a killed process, once it has produced changes past its last saved offset (so there is something
   * to re-emit).
   */
  restartCapture(options: { crash: boolean }): Promise<void>;
  /** Topics created with one partition because their table has no primary key (see startLocalPipeline). */
  singlePartitionTopics(): string[];
  /** How far the capture got ahead of the lanes so far, and how often it waited for them. */
  backpressure(): Backpressure;
  /**
   * Sends a signal to the capture (Debezium's Kafka signal channel): an execute-snapshot is tracked until the capture
   * reports it COMPLETED or ABORTED, and {@link drain} waits for that.
   */
  signal(signal: CaptureSignal, origin?: SnapshotOrigin): void;
  /** The incremental snapshots asked for or reported, and their notifications. */
  readonly snapshots: SnapshotTracker;
  /** Tables the capture found while streaming (created during the run), in order. */
  addedTables(): AddedTable[];
  /** Kills a lane's runtime now (invocations in flight fail) and starts another; only with `faults`. */
  crashLane(lane: Lane): void;
  /**
   * Every event source mapping stops and starts again, as consumers do when a broker restarts: what was in flight
   * and not committed is delivered again.
   */
  restartMappings(): Promise<void>;
  /** Stops the capture, the mappings and the handlers (not the services, not the database). */
  stop(): Promise<void>;
}

function emptyTotals(): LaneTotals {
  return {
    ...emptyCounts(),
    batches: 0,
    onFailureRecords: 0,
    latency: new LatencyHistogram(),
  };
}

/** Table topics of the captured tables that have no primary key. */
async function keylessTopics(options: PipelineOptions): Promise<string[]> {
  const client = new pg.Client(options.connectionString);
  await client.connect();
  try {
    const { rows } = await client.query<{ schema: string; name: string }>(
      `SELECT n.nspname AS schema, c.relname AS name
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p')
          AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
          AND (n.nspname = ANY($1::text[]) OR n.nspname || '.' || c.relname = ANY($2::text[]))`,
      [options.tables ? [] : (options.schemas ?? ['public']), options.tables ?? []],
    );
    return rows.map((r) => `${options.topicPrefix}.${r.schema}.${r.name}`);
  } finally {
    await client.end();
  }
}

/**
 * Waits (at most `timeoutMs`) until the capture has produced change records since it last saved its offset: a crash
 * then certainly leaves something to re-emit. `produced` counts change records handed to the broker.
 */
async function producedPastSavedOffset(capture: PostgresCapture, produced: () => number, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let saved = capture.status().savedOffset;
  let count = produced();
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    const now = capture.status().savedOffset;
    if (now !== saved) {
      // Saved meanwhile: what was produced before counts as saved; wait for more.
      saved = now;
      count = produced();
    } else if (produced() > count) return;
  }
}

function changeCount(counts: CaptureCounts): number {
  return counts.read + counts.create + counts.update + counts.delete + counts.truncate;
}

/**
 * Starts the lanes and their event source mappings, then the capture (which snapshots existing rows and streams).
 * Resolves once the capture's initial snapshot has been produced to the broker.
 */
export async function startLocalPipeline(options: PipelineOptions): Promise<LocalPipeline> {
  const { services, topicPrefix } = options;
  const problem = options.onProblem ?? (() => undefined);
  const registry = options.format === 'avro' ? options.registry : undefined;
  if (options.format === 'avro' && !registry) throw new Error("format 'avro' needs a schema registry");
  const converter = registry ? new AvroConverter({ url: registry.url, topicPrefix }) : undefined;
  const broker = options.brokerDir
    ? await LocalBroker.open({ dir: options.brokerDir, defaultPartitions: options.partitions })
    : new LocalBroker({ defaultPartitions: options.partitions });
  const isTableTopic = (topic: string) => topic.startsWith(`${topicPrefix}.`);
  const offsets = options.offsets ?? new MemoryOffsetStore();

  const totals = {} as Record<Lane, LaneTotals>;
  const hosts = new Map<Lane, LaneHost>();
  const supervised = new Map<Lane, SupervisedLane>();
  const faults = options.faults;
  const mappings = new Map<Lane, LocalEventSourceMapping>();
  const setUpLane = async (lane: Lane) => {
    const laneTotals = emptyTotals();
    totals[lane] = laneTotals;
    const baseEnv: Record<string, string> = {
      ...services.laneEnv(lane),
      WAREHOUSE_PREFIX,
      AUDIT_PREFIX,
      CACHE_KEY_PREFIX: options.cachePrefix,
      POWERTOOLS_LOG_LEVEL: options.logLevel ?? 'WARN',
      POWERTOOLS_SERVICE_NAME: `cdc-sync-${lane}`,
      ...(registry ? { AVRO_REGISTRY: JSON.stringify({ kind: 'confluent', url: registry.url }) } : {}),
    };
    const env = faults?.laneEnv ? await faults.laneEnv(lane, baseEnv) : baseEnv;
    const onBatch = (result: BatchSummary) => {
      laneTotals.batches++;
      laneTotals.records += result.records;
      laneTotals.processed += result.processed;
      laneTotals.skipped += result.skipped;
      for (const [reason, n] of Object.entries(result.skippedByReason) as Array<[SkipReason, number]>) {
        laneTotals.skippedByReason[reason] = (laneTotals.skippedByReason[reason] ?? 0) + n;
      }
      laneTotals.duplicates += result.duplicates;
      laneTotals.deadLettered += result.deadLettered;
      laneTotals.retried += result.retried;
      laneTotals.latency.addAll(result.latenciesMs);
      if (result.error)
        options.onLaneError?.(lane, `${result.retried} records handed back for a retry: ${result.error}`);
    };
    const onSinkWrite = options.onSinkWrite;
    const startHost = () =>
      (options.laneThreads === false ? startLaneInThread : startLaneWorker)({
        lane,
        env,
        metrics: options.metrics ?? false,
        observeWrites: onSinkWrite !== undefined,
        onBatch,
        ...(onSinkWrite
          ? { onWrites: (changes: WrittenChanges, writtenAt: number) => onSinkWrite(lane, changes, writtenAt) }
          : {}),
        // A lane that met a schema change the sinks cannot reconcile asks for an incremental snapshot of the table.
        onSignal: (signal: SnapshotSignal) => sendSignal(signal, 'lane'),
        onProblem: problem,
      });
    let host: LaneHost = await startHost();
    if (faults) {
      const lanes = superviseLane(host, startHost, {
        ...(faults.invocationTimeoutMs !== undefined ? { timeoutMs: faults.invocationTimeoutMs } : {}),
        onKill: (reason) => faults.onKill?.(lane, reason),
      });
      supervised.set(lane, lanes);
      host = lanes;
    }
    hosts.set(lane, host);
    const onFailure = async (record: OnFailureRecord) => {
      // Lambda writes the record to the S3 on-failure destination; so do we, so nothing vanishes silently.
      laneTotals.onFailureRecords++;
      problem(`${lane}: a batch was given up after ${record.requestContext.approximateInvokeCount} attempts`);
      await services.clients.s3.send(
        new PutObjectCommand({
          Bucket: LOCAL_NAMES.deadLetterBucket,
          Key: `${ON_FAILURE_PREFIX}${lane}/${record.timestamp}-${record.requestContext.requestId}.json`,
          Body: JSON.stringify(record),
          ContentType: 'application/json',
        }),
      );
    };
    const mapping = new LocalEventSourceMapping({
      broker,
      groupId: lane,
      topics: isTableTopic,
      handler: (event, context) => host.invoke(event, context, { fresh: faults?.freshEnvironment?.(lane) ?? false }),
      ...(faults?.loseCommit ? { loseCommit: () => faults.loseCommit?.(lane) ?? false } : {}),
      ...(faults?.invocationTimeoutMs !== undefined ? { timeoutMs: faults.invocationTimeoutMs } : {}),
      batchSize: options.batchSize,
      maxBatchingWindowMs: options.windowMs,
      maxConcurrency: options.concurrency ?? 1,
      reportBatchItemFailures: true,
      bisectBatchOnError: true,
      onFailure,
      functionName: `cdc-sync-${lane}`,
      onError: (error, info) => {
        if (info.stage === 'invoke') options.onLaneError?.(lane, `invocation failed: ${String(error)}`);
        if (info.stage !== 'invoke' || process.env.CDC_DEBUG)
          problem(`${lane}: ${info.stage} failed: ${String(error)}`);
      },
    });
    mapping.start();
    mappings.set(lane, mapping);
  };
  // The lanes' threads start in parallel (each loads the AWS SDK and the lane code).
  const setUp = await Promise.allSettled(options.lanes.map(setUpLane));
  const failed = setUp.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all([...mappings.values()].map((m) => m.stop()));
    await Promise.all([...hosts.values()].map((h) => h.close()));
    await broker.close();
    throw failed.reason;
  }

  // Tables without a primary key get single-partition topics. Their records have no key, so the producer spreads
  // them over partitions by batch; a copy re-emitted after a connector restart can then land on a partition that
  // never saw the original, where the lanes' per-partition dedupe cannot recognise it (functions/core/dedupe.ts,
  // "Limits"). One partition keeps such a table in order and deduplicated; in AWS, set the same for these topics.
  const singlePartition = await keylessTopics(options);
  for (const topic of singlePartition) broker.createTopic(topic, 1);
  const added: AddedTable[] = [];
  /** A table created while streaming: its topic before its first record, with one partition when it has no key. */
  const onTableAdded = (table: AddedTable) => {
    added.push(table);
    if (broker.partitionCount(table.topic) === undefined) {
      broker.createTopic(table.topic, table.hasKey ? options.partitions : 1);
      if (!table.hasKey) singlePartition.push(table.topic);
    }
    options.onTableAdded?.(table);
  };

  let failure: Error | null = null;
  let producedChanges = 0;
  /** Change records a fault produced a second time (a producer retry): the broker holds them on top of the capture's. */
  let producedTwice = 0;
  const snapshots = new SnapshotTracker();
  /** The running capture, or the restart that will replace it (signals wait for it). */
  let current: Promise<PostgresCapture> | undefined;
  /** Signals sent so far: drain runs again when a lane sent one during a pass. */
  let signalsSent = 0;
  /** Execute signals by id, to send again to a restarted capture while they have not completed. */
  const executeSignals = new Map<string, CaptureSignal>();
  const sendSignal = (signal: CaptureSignal, origin: SnapshotOrigin) => {
    signalsSent++;
    if (signal.type === 'execute-snapshot') {
      snapshots.sent(signal, origin);
      executeSignals.set(signal.id, signal);
    }
    void current?.then(
      (c) => c.signal(signal),
      () => undefined,
    );
  };
  let stopping = false;
  /** Whether records every lane committed are deleted from the broker (see {@link PipelineOptions.releaseConsumed}). */
  const releasing = options.brokerDir === undefined && (options.releaseConsumed ?? true);
  const tablePartitions = function* () {
    for (const topic of broker.topics().filter(isTableTopic)) {
      for (let partition = 0; partition < (broker.partitionCount(topic) ?? 0); partition++) yield { topic, partition };
    }
  };
  /** Change records produced that not every lane has committed yet. */
  const backlog = () => {
    let behind = 0;
    for (const { topic, partition } of tablePartitions()) {
      const end = broker.highWater(topic, partition);
      let slowest = end;
      for (const lane of mappings.keys()) slowest = Math.min(slowest, broker.committed(lane, topic, partition) ?? 0);
      behind += end - slowest;
    }
    return behind;
  };
  /** Change records the broker holds (not yet released). */
  const retained = () => {
    let held = 0;
    for (const { topic, partition } of tablePartitions()) {
      held += broker.highWater(topic, partition) - broker.logStartOffset(topic, partition);
    }
    return held;
  };
  const pressure: Backpressure = {
    maxBacklog: options.maxBacklog ?? 10_000,
    peakBacklog: 0,
    peakRetained: 0,
    heldTimes: 0,
    heldMs: 0,
  };
  /**
   * Backpressure on the capture (see {@link PipelineOptions.maxBacklog}), after each hand-over (its high point). What
   * the lanes committed is released here too once the broker holds more than the limit, so that it holds at most the
   * limit plus one hand-over, also while the lanes commit faster than the once-a-second release frees.
   */
  const roomForMore = async () => {
    const behind = backlog();
    const holding = retained();
    pressure.peakBacklog = Math.max(pressure.peakBacklog, behind);
    pressure.peakRetained = Math.max(pressure.peakRetained, holding);
    if (releasing && holding > pressure.maxBacklog) releaseConsumed();
    if (behind <= pressure.maxBacklog) return;
    const since = performance.now();
    pressure.heldTimes++;
    while (!stopping && failure === null && backlog() > pressure.maxBacklog) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    if (releasing) releaseConsumed(); // what the lanes committed meanwhile
    pressure.heldMs += Math.round(performance.now() - since);
  };
  const startCapture = () =>
    startPostgresCapture({
      connectionString: options.connectionString,
      topicPrefix,
      slotName: options.slotName,
      publicationName: options.publicationName,
      ...(options.tables ? { tables: options.tables } : { schemas: options.schemas ?? ['public'] }),
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 1000,
      offsetFlushIntervalMs: options.offsetFlushIntervalMs ?? 200,
      offsets,
      produce: async (records) => {
        // With Avro, a schema the registry refuses fails the produce, and so the capture (as it fails a Debezium task).
        const produced = converter ? await converter.convert(records) : records;
        await broker.produce(produced);
        if (faults?.duplicateProduce?.()) {
          await broker.produce(produced);
          for (const r of records) if (r.value !== null && isTableTopic(r.topic)) producedTwice++;
        }
        for (const r of records) if (r.value !== null && isTableTopic(r.topic)) producedChanges++;
        await roomForMore();
      },
      onError: (error) => {
        failure = error;
        problem(`capture failed: ${error.message}`);
      },
      onTableAdded,
      onNotification: (notification) => {
        snapshots.notify(notification);
        options.onNotification?.(notification);
      },
      ...(options.signalTable ? { signalTable: options.signalTable } : {}),
      ...(options.heartbeatTable ? { heartbeatTable: options.heartbeatTable } : {}),
      // CDC_DEBUG: the capture's own log lines on stderr (snapshots started, extended, resumed).
      ...(process.env.CDC_DEBUG ? { logger: { info: console.error, warn: console.error, error: console.error } } : {}),
      ...(options.incrementalChunkSize ? { incrementalChunkSize: options.incrementalChunkSize } : {}),
      ...(options.beforeHighWatermark ? { beforeHighWatermark: options.beforeHighWatermark } : {}),
    });

  // Records every lane has committed are folded into the stream summary (what verification compares the sinks with)
  // and deleted: the broker no longer grows with the run (the summary still keeps one id per change). Nothing reads
  // them again: a retry starts at the committed offset, and the lanes report their writes before they commit. This
  // runs from before the capture starts: starting it includes the initial snapshot, whose records must go as the lanes
  // take them.
  const summarizer = new StreamSummarizer(
    registry
      ? new FormatRoutingDecoder({
          json: new JsonDebeziumDecoder(),
          avro: new AvroDebeziumDecoder({ registries: [new ConfluentRegistryClient({ url: registry.url })] }),
        })
      : new JsonDebeziumDecoder(),
  );
  const folded = new Map<string, number>();
  const fold = (topic: string, partition: number, upTo: number) => {
    const id = `${topic}-${partition}`;
    const from = folded.get(id) ?? 0;
    if (upTo <= from) return;
    for (const record of broker.read(topic, partition, from, upTo - from)) summarizer.add(record);
    folded.set(id, upTo);
  };
  const releaseConsumed = () => {
    try {
      for (const { topic, partition } of tablePartitions()) {
        let upTo = Number.POSITIVE_INFINITY;
        for (const lane of mappings.keys()) upTo = Math.min(upTo, broker.committed(lane, topic, partition) ?? 0);
        if (!(upTo > broker.logStartOffset(topic, partition))) continue;
        fold(topic, partition, upTo);
        broker.deleteRecords(topic, partition, upTo);
      }
    } catch (error) {
      problem(`releasing consumed records failed: ${String(error)}`);
    }
  };
  const releaser = releasing ? setInterval(releaseConsumed, 1000) : undefined;
  releaser?.unref();

  const finished: CaptureStatus[] = [];
  let heartbeatPaused = false;
  let crashed = false;
  let capture: PostgresCapture;
  try {
    current = startCapture();
    capture = await current;
  } catch (error) {
    clearInterval(releaser);
    await Promise.all([...mappings.values()].map((m) => m.stop()));
    await Promise.all([...hosts.values()].map((h) => h.close()));
    await broker.close();
    throw error;
  }

  const latencyOfAll = () => {
    const all = new LatencyHistogram();
    for (const lane of options.lanes) all.merge(totals[lane].latency);
    return all;
  };

  return {
    broker,
    lanes: options.lanes,
    capture: () => capture,
    captureStatuses: () => [...finished, capture.status()],
    captureEmitted: () => [...finished, capture.status()].reduce((sum, s) => sum + changeCount(s.emitted), 0),
    captureChangeRecords: () =>
      producedTwice +
      [...finished, capture.status()].reduce((sum, s) => sum + changeCount(s.emitted) + s.emitted.heartbeatAction, 0),
    crashed: () => crashed,
    totals: () => totals,
    esmStats: () => {
      const stats = {} as Record<Lane, EsmStats>;
      for (const [lane, mapping] of mappings) stats[lane] = mapping.stats();
      return stats;
    },
    environments: () => {
      const out = {} as Record<Lane, number>;
      for (const [lane, host] of hosts) out[lane] = host.environments();
      return out;
    },
    laneUtilization: () => {
      const out: Partial<Record<Lane, import('node:perf_hooks').EventLoopUtilization>> = {};
      for (const [lane, host] of hosts) out[lane] = host.utilization();
      return out;
    },
    latency: latencyOfAll,
    resetLatency() {
      for (const lane of options.lanes) totals[lane].latency = new LatencyHistogram();
    },
    tableTopics: () => broker.topics().filter(isTableTopic),
    stream() {
      for (const { topic, partition } of tablePartitions()) fold(topic, partition, broker.highWater(topic, partition));
      return summarizer.settled();
    },
    streamSoFar: () => summarizer.summary,
    avroStats: () => (converter ? { ...converter.stats } : undefined),
    failure: () => failure,
    async drain(timeoutMs = 120_000) {
      // Until a pass sends no new signal: a lane may meet a schema change in the last changes it reads and ask for a
      // snapshot, whose reads must then reach every sink too.
      for (;;) {
        if (failure) throw failure;
        const signalled = signalsSent;
        await snapshots.settled(timeoutMs, () => failure);
        await capture.flushed(timeoutMs);
        await Promise.all([...mappings.values()].map((m) => m.drain(timeoutMs)));
        if (failure) throw failure;
        if (signalsSent === signalled && snapshots.running() === 0) return;
      }
    },
    singlePartitionTopics: () => [...singlePartition],
    async restartCapture({ crash }) {
      if (crash) await producedPastSavedOffset(capture, () => producedChanges, 5000);
      const restarted = (async () => {
        await capture.stop({ flush: !crash });
        if (crash) crashed = true;
        finished.push(capture.status());
        return startCapture();
      })();
      current = restarted;
      capture = await restarted;
      if (heartbeatPaused) capture.pauseHeartbeatAction(true);
      // A signal given through capture.signal() (Debezium's Kafka channel) lives in the capture's offset only once it
      // was saved: one the crash cut off before that is unknown to the new capture. Kafka would deliver it again (the
      // connector's signal consumer had not committed it); do the same. Sending one the capture resumed from its
      // offset again restarts that table's scan: one more scan, never a missed row.
      for (const [id, signal] of executeSignals) {
        const status = snapshots.get(id)?.status;
        if (status === 'pending' || status === 'running') capture.signal(signal);
      }
    },
    pauseHeartbeatAction(paused) {
      heartbeatPaused = paused;
      capture.pauseHeartbeatAction(paused);
    },
    backpressure: () => ({ ...pressure }),
    signal: (signal, origin = 'runner') => sendSignal(signal, origin),
    crashLane(lane) {
      supervised.get(lane)?.crash();
    },
    async restartMappings() {
      await Promise.all([...mappings.values()].map((m) => m.stop()));
      for (const mapping of mappings.values()) mapping.start();
    },
    snapshots,
    addedTables: () => [...added],
    async stop() {
      stopping = true;
      clearInterval(releaser);
      await capture.stop();
      await Promise.all([...mappings.values()].map((m) => m.stop()));
      await Promise.all([...hosts.values()].map((h) => h.close()));
      await broker.close();
    },
  };
}
