/**
 * The status page's one data contract: what `GET /api/status` answers, for a local run (`npm start`) and for a
 * deployed environment (`npm run status -- --env <env> --serve`). The page renders nothing else, and tests read the
 * same endpoint and check it with this schema, so the page and its data cannot drift apart.
 */
import { z } from 'zod';

/** A capture's (connector's) state. */
export const SOURCE_STATES = [
  'starting',
  'snapshotting',
  'streaming',
  'restarting',
  'failed',
  'stopped',
  'unknown',
] as const;

const count = z.number().int().nonnegative();
const ms = z.number().nonnegative();

export const SourceStatusSchema = z.object({
  /** The connector or topic prefix. */
  name: z.string(),
  state: z.enum(SOURCE_STATES),
  /** Why it is in that state, when there is more to say (a failure's message, a connector's state detail). */
  detail: z.string().nullable(),
  /** Where the capture is in the source's log (PostgreSQL: the last LSN handed on), when known. */
  position: z.string().nullable(),
  /** Now − the commit time of the newest change every lane has applied (ms); null before the first. */
  freshnessMs: ms.nullable(),
  /** The running snapshot (initial or incremental), if any. */
  snapshot: z
    .object({
      kind: z.enum(['initial', 'incremental']),
      table: z.string().nullable(),
      tables: z.array(z.string()),
      rowsRead: count,
    })
    .nullable(),
  /** Changes the capture emitted (snapshot reads included). */
  emitted: count,
});

export const LaneStatusSchema = z.object({
  lane: z.string(),
  /** Records finished per second over the last sample interval. */
  recordsPerSec: z.number().nonnegative(),
  /** Records produced that the lane has not committed yet (offset lag, all partitions). */
  lag: count.nullable(),
  /** Now − the commit time of the newest streamed change this lane applied (ms); null before the first. */
  freshnessMs: ms.nullable(),
  /** Commit → sink write over the last sample interval (ms); null without writes in it. */
  latencyMs: z.object({ p50: ms, p99: ms }).nullable(),
  processed: count,
  duplicates: count,
  skipped: count,
  deadLettered: count,
  /** Records handed back for a retry (a sink that failed retryably: the mapping delivers them again). */
  retried: count,
  /** The lane's most recent failure (a failed invocation or sink write), while it is recent; null when healthy. */
  lastError: z.string().nullable(),
  /** Messages in the lane's dead-letter queue, where that is known (a deployed environment). */
  dlqDepth: count.nullable(),
});

export const SeriesPointSchema = z.object({
  /** Milliseconds since the epoch. */
  t: z.number(),
  lanes: z.record(
    z.string(),
    z.object({ rate: z.number().nonnegative(), lag: count.nullable(), p50: ms.nullable(), p99: ms.nullable() }),
  ),
});

export const VerdictCheckSchema = z.object({
  sink: z.string(),
  table: z.string(),
  ok: z.boolean(),
  /** Why the row has no counts (a sink not checked, a dropped table), or the first differences found. */
  note: z.string().nullable(),
  sourceRows: count,
  sinkRows: count,
  missing: count,
  extra: count,
  different: count,
});

export const StatusReportSchema = z.object({
  version: z.literal(1),
  /** `local` for `npm start`, the environment's name for a deployed one. */
  environment: z.string(),
  generatedAt: z.string(),
  /** The run's phase (local), or `live` for a deployed environment. */
  phase: z.enum(['starting', 'snapshot', 'running', 'draining', 'verifying', 'finished', 'failed', 'live']),
  sources: z.array(SourceStatusSchema),
  lanes: z.array(LaneStatusSchema),
  /** Sampled once a second (local) or per metric period (deployed), oldest first, at most {@link MAX_POINTS}. */
  series: z.array(SeriesPointSchema),
  schemaChanges: z.array(z.object({ table: z.string(), change: z.string() })),
  alarms: z.array(z.object({ name: z.string(), state: z.string(), reason: z.string() })),
  /** Things that went wrong (a lane's failed invocation, a sink write that failed), newest last. */
  problems: z.array(z.string()),
  /** At the end of a local run: the verification per sink and table. */
  verdict: z.object({ consistent: z.boolean(), checks: z.array(VerdictCheckSchema) }).nullable(),
});

export type SourceState = (typeof SOURCE_STATES)[number];
export type SourceStatus = z.infer<typeof SourceStatusSchema>;
export type LaneStatus = z.infer<typeof LaneStatusSchema>;
export type SeriesPoint = z.infer<typeof SeriesPointSchema>;
export type VerdictCheck = z.infer<typeof VerdictCheckSchema>;
export type StatusReport = z.infer<typeof StatusReportSchema>;

/** Points kept per series: ten minutes at one a second. */
export const MAX_POINTS = 600;
