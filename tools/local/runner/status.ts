/**
 * The status page's data for a local run (`npm start`): samples the running pipeline once a second into the
 * {@link StatusReport} contract (tools/status/report.ts) — the capture's state, snapshot progress, position and
 * freshness; per lane the records per second, lag, commit → sink latency of the last second, the counters; schema
 * changes seen; problems; and at the end the verification verdict per sink and table.
 */
import type { Lane } from '../../../functions/core/types';
import {
  MAX_POINTS,
  type SeriesPoint,
  type SourceStatus,
  type StatusReport,
  type VerdictCheck,
} from '../../status/report';
import type { CaptureStatus } from '../capture';
import { formatLsn } from '../capture/lsn';
import { WRITTEN_FIELDS, type WrittenChanges } from './lane-host';
import type { LatencyHistogram } from './latency';
import type { RunResult } from './result';
import type { LocalPipeline } from './system';
import { type Checks, type SchemaChangeSummary, schemaChanges } from './verify';

const WIDTH = WRITTEN_FIELDS.length;
/** A lane's failure stays on its row this long after the last one. */
const ERROR_SHOWN_MS = 15_000;
/** A lane's failures reach the problems list at most this often. */
const ERROR_REPEAT_MS = 10_000;
const SNAPSHOT = WRITTEN_FIELDS.indexOf('snapshot');
const COMMIT_TS = WRITTEN_FIELDS.indexOf('commitTs');

/** The report's source state for a capture status; `stopped` while the run still goes on is a restart. */
export function sourceState(status: CaptureStatus, runEnded: boolean): SourceStatus['state'] {
  switch (status.phase) {
    case 'starting':
      return 'starting';
    case 'snapshot':
      return 'snapshotting';
    case 'streaming':
      return status.incrementalSnapshot ? 'snapshotting' : 'streaming';
    case 'failed':
      return 'failed';
    case 'stopped':
      return runEnded ? 'stopped' : 'restarting';
  }
}

/** The verdict rows of a run's checks: one per sink and table, or one per sink that was not checked. */
export function verdictChecks(checks: Checks): VerdictCheck[] {
  const rows: VerdictCheck[] = [];
  const empty = { sourceRows: 0, sinkRows: 0, missing: 0, extra: 0, different: 0 };
  for (const sink of ['warehouse', 'currentState', 'cache'] as const) {
    const check = checks[sink];
    if (!check.checked) {
      rows.push({ sink, table: '(all)', ok: false, note: `not checked: ${check.reason}`, ...empty });
      continue;
    }
    for (const problem of check.problems) rows.push({ sink, table: '(all)', ok: false, note: problem, ...empty });
    for (const [table, t] of Object.entries(check.tables)) {
      const ok = t.missing === 0 && t.extra === 0 && t.different === 0;
      const note = t.kind === 'dropped' || t.kind === 'not-applicable' ? t.kind : ok ? null : (t.samples[0] ?? null);
      rows.push({
        sink,
        table,
        ok,
        note,
        sourceRows: t.sourceRows,
        sinkRows: t.sinkRows,
        missing: t.missing,
        extra: t.extra,
        different: t.different,
      });
    }
  }
  const audit = checks.audit;
  rows.push(
    audit.checked
      ? {
          sink: 'audit',
          table: '(all)',
          ok: audit.consistent,
          note: audit.consistent ? null : 'the audit log does not hold every change exactly once with intact chains',
          ...empty,
          sourceRows: audit.entries,
          sinkRows: audit.entries,
        }
      : { sink: 'audit', table: '(all)', ok: false, note: `not checked: ${audit.reason}`, ...empty },
  );
  return rows;
}

function describeChange(change: SchemaChangeSummary): string {
  const parts = [
    change.added.length ? `added ${change.added.join(', ')}` : '',
    change.removed.length ? `removed ${change.removed.join(', ')}` : '',
    change.changed.length ? `changed ${change.changed.join(', ')}` : '',
  ].filter(Boolean);
  return `new version ${change.to} (${parts.join('; ') || 'same columns'})`;
}

interface LaneSample {
  /** Records the lane had finished (processed, skipped, duplicate or dead-lettered). */
  finished: number;
  /** The lane's live histogram (replaced by resetLatency()) and a copy of it, to take the window's difference. */
  histogram: LatencyHistogram;
  copy: LatencyHistogram;
}

/** Samples a running local pipeline for the status page. */
export class RunStatus {
  private phase: StatusReport['phase'] = 'starting';
  private pipeline: LocalPipeline | undefined;
  private lanes: readonly Lane[] = [];
  private readonly series: SeriesPoint[] = [];
  private readonly last = new Map<Lane, LaneSample>();
  private lastAt = 0;
  private current: Map<Lane, { rate: number; p50: number | null; p99: number | null }> = new Map();
  /** Per lane, the commit time (ms) of the newest streamed change it wrote. */
  private readonly newestCommit = new Map<Lane, number>();
  private readonly problems: string[] = [];
  /** Per lane, its most recent failure and when (shown while recent). */
  private readonly laneErrors = new Map<Lane, { message: string; at: number }>();
  private verdict: StatusReport['verdict'] = null;
  private finalChanges: SchemaChangeSummary[] | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** When the run ended: freshness is measured up to then, not on and on while a kept page is read. */
  private endedAt: number | undefined;

  constructor(
    private readonly sourceName: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Starts sampling the pipeline once a second. */
  attach(pipeline: LocalPipeline, lanes: readonly Lane[], everyMs = 1000): void {
    this.pipeline = pipeline;
    this.lanes = lanes;
    this.phase = 'running';
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  setPhase(phase: StatusReport['phase']): void {
    this.phase = phase;
  }

  problem(message: string): void {
    this.problems.push(message);
    if (this.problems.length > 100) this.problems.shift();
  }

  /**
   * A lane failed (an invocation, or a sink that made it hand records back): shown on its row while recent, and once
   * every {@link ERROR_REPEAT_MS} per lane among the problems, so that a sink that stays down does not flood them.
   */
  laneError(lane: Lane, message: string): void {
    const at = this.now();
    const before = this.laneErrors.get(lane);
    this.laneErrors.set(lane, { message, at });
    if (!before || at - before.at >= ERROR_REPEAT_MS) this.problem(`${lane}: ${message}`);
  }

  /** What a lane wrote (the runner's onSinkWrite): the newest commit time it applied, for freshness. */
  written(lane: Lane, changes: WrittenChanges): void {
    const { rows } = changes;
    let newest = this.newestCommit.get(lane) ?? 0;
    for (let i = 0; i < rows.length; i += WIDTH) {
      const commit = rows[i + COMMIT_TS] as number;
      if (rows[i + SNAPSHOT] === 1 || Number.isNaN(commit)) continue;
      if (commit > newest) newest = commit;
    }
    if (newest > 0) this.newestCommit.set(lane, newest);
  }

  /** The run ended: its verdict, and the last sample. */
  finish(result: RunResult): void {
    this.sample();
    this.stop();
    this.endedAt = this.now();
    this.finalChanges = result.schemaChanges;
    this.verdict = { consistent: result.consistent, checks: verdictChecks(result.checks) };
    this.phase = 'finished';
  }

  /** The run failed (the message is the one line the command prints). */
  fail(message: string): void {
    if (this.pipeline) this.sample();
    this.stop();
    this.endedAt = this.now();
    this.problem(message);
    this.phase = 'failed';
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Takes one sample (the timer's job; tests call it to step time). */
  sample(): void {
    const pipeline = this.pipeline;
    if (!pipeline) return;
    const at = this.now();
    const seconds = this.lastAt ? Math.max(0.001, (at - this.lastAt) / 1000) : 0;
    const totals = pipeline.totals();
    const esm = pipeline.esmStats();
    const point: SeriesPoint = { t: at, lanes: {} };
    for (const lane of this.lanes) {
      const t = totals[lane];
      if (!t) continue;
      const finished = t.processed + t.skipped + t.duplicates + t.deadLettered;
      const before = this.last.get(lane);
      // resetLatency() gives the lane a fresh histogram: then the window starts from it.
      const window = before && before.histogram === t.latency ? t.latency.since(before.copy) : undefined;
      const rate = before && seconds > 0 ? Math.max(0, (finished - before.finished) / seconds) : 0;
      const p50 = window && window.count > 0 ? window.percentile(0.5) : null;
      const p99 = window && window.count > 0 ? window.percentile(0.99) : null;
      this.last.set(lane, { finished, histogram: t.latency, copy: t.latency.snapshot() });
      this.current.set(lane, { rate, p50, p99 });
      point.lanes[lane] = { rate, lag: esm[lane]?.lag ?? null, p50, p99 };
    }
    this.lastAt = at;
    this.series.push(point);
    if (this.series.length > MAX_POINTS) this.series.shift();
  }

  private recentError(lane: Lane): string | null {
    const error = this.laneErrors.get(lane);
    return error && this.now() - error.at <= ERROR_SHOWN_MS ? error.message : null;
  }

  report(): StatusReport {
    const pipeline = this.pipeline;
    const asOf = this.endedAt ?? this.now();
    const ended = this.phase === 'finished' || this.phase === 'failed';
    const sources: SourceStatus[] = [];
    if (pipeline) {
      const status = pipeline.capture().status();
      const newest = this.lanes.map((l) => this.newestCommit.get(l));
      const applied = newest.every((n) => n !== undefined) ? Math.min(...(newest as number[])) : undefined;
      const incremental = status.incrementalSnapshot;
      sources.push({
        name: this.sourceName,
        state: this.phase === 'failed' && status.phase !== 'failed' ? 'failed' : sourceState(status, ended),
        detail: status.error ?? pipeline.failure()?.message ?? null,
        position: status.producedLsn > 0n ? formatLsn(status.producedLsn) : null,
        freshnessMs: applied === undefined ? null : Math.max(0, asOf - applied),
        snapshot: incremental
          ? {
              kind: 'incremental',
              table: incremental.currentTable,
              tables: incremental.tables,
              rowsRead: incremental.rowsRead,
            }
          : status.phase === 'snapshot'
            ? { kind: 'initial', table: null, tables: [], rowsRead: status.emitted.read }
            : null,
        emitted: pipeline.captureEmitted(),
      });
    } else {
      sources.push({
        name: this.sourceName,
        state: 'starting',
        detail: null,
        position: null,
        freshnessMs: null,
        snapshot: null,
        emitted: 0,
      });
    }
    const totals = pipeline?.totals();
    const esm = pipeline?.esmStats();
    const lanes = this.lanes.map((lane) => {
      const t = totals?.[lane];
      const now = this.current.get(lane);
      return {
        lane,
        recordsPerSec: Math.round((now?.rate ?? 0) * 10) / 10,
        lag: esm?.[lane]?.lag ?? null,
        freshnessMs: this.newestCommit.has(lane) ? Math.max(0, asOf - (this.newestCommit.get(lane) as number)) : null,
        latencyMs: now && now.p50 !== null && now.p99 !== null ? { p50: now.p50, p99: now.p99 } : null,
        processed: t?.processed ?? 0,
        duplicates: t?.duplicates ?? 0,
        skipped: t?.skipped ?? 0,
        deadLettered: t?.deadLettered ?? 0,
        retried: t?.retried ?? 0,
        lastError: this.recentError(lane),
        dlqDepth: null,
      };
    });
    const changes = this.finalChanges ?? (pipeline ? schemaChanges(pipeline.streamSoFar()) : []);
    return {
      version: 1,
      environment: 'local',
      generatedAt: new Date(this.now()).toISOString(),
      phase: this.phase,
      sources,
      lanes,
      series: [...this.series],
      schemaChanges: changes.map((c) => ({ table: c.table, change: describeChange(c) })),
      alarms: [],
      problems: [...this.problems],
      verdict: this.verdict,
    };
  }
}
