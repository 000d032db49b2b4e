/** The last phase of a run: its result (result.ts) from what the pipeline counted and the checks found. */
import { LANES, type Lane } from '../../../functions/core/types';
import type { LocalRegistry } from '../registry/server';
import type { Driven } from './drive';
import type { LaneSummary, RunResult } from './result';
import type { Run } from './setup';
import type { Stage } from './stages';
import type { StartedPipeline } from './startup';
import type { LocalPipeline } from './system';
import { type StreamSummary, schemaChanges } from './verify';
import type { Verified } from './verify-run';

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

export interface SummaryInput {
  started: StartedPipeline;
  driven: Driven;
  verified: Verified;
  /** The source, as the summary names it. */
  sourceText: string;
  /** The topics of the tables the run captured. */
  topics: string[];
  /** Milliseconds per phase (startup, workload, drain, verify). */
  timings: Record<string, number>;
  /** From the start of the workload until every lane had committed everything. */
  activeMs: number;
  /** What the capture produced, decoded (schema versions seen). */
  stream: StreamSummary;
}

/** The run's result from what the pipeline counted and the checks found. */
export function summarize(run: Run, input: SummaryInput): RunResult {
  const { options } = run;
  const { running, stages, lanes } = input.started;
  const { checks, changes } = input.verified;
  const { warehouse, currentState, cache, audit } = checks;
  const consistent =
    warehouse.checked &&
    currentState.checked &&
    audit.checked &&
    warehouse.consistent &&
    currentState.consistent &&
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
      format: formatDetails(input.started.registry, running.avroStats(), options.compatibility),
      targetRate: options.rate,
      workload: input.driven.workload,
      captureEmitted: running.captureEmitted(),
      snapshotReads: input.driven.emittedAtStart,
      captureRestarts: statuses.length - 1,
      topics: input.topics.length,
      partitions: options.partitions,
      singlePartitionTopics: running.singlePartitionTopics(),
      addedTables: running.addedTables().map((t) => `${t.schema}.${t.table}`),
      droppedTables: input.verified.dropped,
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
      stateDir: options.keep ? run.stateDir : null,
      cachePrefix: run.cachePrefix,
      problems: run.problems,
    },
  };
}
