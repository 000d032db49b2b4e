/**
 * What `npm start` shows while it runs (a live line on a terminal, plain lines every few seconds otherwise, always
 * on stderr) and the readable summary at the end.
 */
import type { Lane } from '../../../functions/core/types';
import type { RunResult } from './result';

/** One progress reading. */
export interface ProgressSnapshot {
  phase: string;
  elapsedMs: number;
  /** Changes captured since the workload began (snapshot reads excluded). */
  captured: number;
  /** Records each lane has finished (processed, skipped or duplicate) since the workload began. */
  delivered: Partial<Record<Lane, number>>;
  /** Records the slowest lane has not committed yet. */
  lag: number;
  p99: number;
  workloadChanges?: number;
  /** What else is going on (an incremental snapshot re-reading a table). */
  note?: string;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

/** Prints progress to a stream: overwriting one line on a TTY, a line every `plainEveryMs` otherwise. */
export class ProgressReporter {
  private timer: NodeJS.Timeout | undefined;
  private lastPlain = 0;
  private lastCaptured = 0;
  private lastAt = 0;
  private rate = 0;
  private drawn = false;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly read: () => ProgressSnapshot,
    private readonly plainEveryMs = 2000,
  ) {}

  start(): void {
    const tty = this.stream.isTTY === true;
    this.timer = setInterval(() => this.tick(tty), tty ? 250 : 500);
    this.timer.unref();
  }

  /** Stops and clears the live line. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.drawn) this.stream.write('\r\x1b[2K');
    this.drawn = false;
  }

  /** A message between progress lines (keeps the live line intact). */
  log(message: string): void {
    if (this.drawn) this.stream.write('\r\x1b[2K');
    this.drawn = false;
    this.stream.write(`${message}\n`);
  }

  private tick(tty: boolean): void {
    const s = this.read();
    const now = s.elapsedMs;
    if (now > this.lastAt) {
      const instant = ((s.captured - this.lastCaptured) / (now - this.lastAt)) * 1000;
      this.rate = this.lastAt === 0 ? instant : this.rate * 0.6 + instant * 0.4;
      this.lastCaptured = s.captured;
      this.lastAt = now;
    }
    const line = formatProgress(s, this.rate);
    if (tty) {
      const width = this.stream.columns ?? 120;
      this.stream.write(`\r\x1b[2K${line.slice(0, width - 1)}`);
      this.drawn = true;
    } else if (now - this.lastPlain >= this.plainEveryMs) {
      this.lastPlain = now;
      this.stream.write(`${line}\n`);
    }
  }
}

/**
 * The run's progress line while it shows (from the workload until the drain is done): messages go above it rather
 * than through it, and the phase it names moves on with the run.
 */
export class LiveProgress {
  /** What the line says the run is doing. */
  phase = '';
  private reporter: ProgressReporter | undefined;

  constructor(private readonly log: (message: string) => void) {}

  /** Shows the line on `stream`, read from `read` (whose snapshot's phase is {@link phase}). */
  show(stream: NodeJS.WriteStream, read: () => Omit<ProgressSnapshot, 'phase'>): void {
    this.reporter = new ProgressReporter(stream, () => ({ phase: this.phase, ...read() }));
    this.reporter.start();
  }

  /** A message: above the line while it shows, else to the run's log. */
  say(message: string): void {
    if (this.reporter) this.reporter.log(message);
    else this.log(message);
  }

  /** A message worth telling only beside the line: nowhere while it does not show. */
  aside(message: string): void {
    this.reporter?.log(message);
  }

  /** Stops and clears the line (again is harmless). */
  stop(): void {
    this.reporter?.stop();
    this.reporter = undefined;
  }
}

export function formatProgress(s: ProgressSnapshot, rate: number): string {
  const lanes = Object.entries(s.delivered)
    .map(([lane, n]) => `${lane} ${fmt(n ?? 0)}`)
    .join('  ');
  return (
    `[${(s.elapsedMs / 1000).toFixed(1)}s ${s.phase}] captured ${fmt(s.captured)} (${fmt(rate)}/s)  ` +
    `delivered: ${lanes}  lag ${fmt(s.lag)}  p99 ${fmt(s.p99)} ms${s.note ? `  | ${s.note}` : ''}`
  );
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}
function lpad(text: string, width: number): string {
  return text.length >= width ? text : ' '.repeat(width - text.length) + text;
}

/** The readable summary at the end of a run. */
export function formatSummary(result: RunResult, info: { explore: string[]; warnings: string[] }): string {
  const out: string[] = [];
  const mark = (ok: boolean) => (ok ? 'ok' : 'MISMATCH');
  out.push('');
  out.push(
    result.consistent
      ? `cdc-sync local pipeline: CONSISTENT${result.checks.cache.checked ? '' : ' (warehouse, current state and audit only: the cache was NOT checked)'}`
      : 'cdc-sync local pipeline: INCONSISTENT',
  );
  out.push('');
  const d = result.details;
  out.push(`source      ${d.source}`);
  if (d.workload) {
    const w = d.workload;
    const ops = Object.entries(w.ops)
      .filter(([, n]) => n > 0)
      .map(([op, n]) => `${op} ${n}`)
      .join(', ');
    out.push(
      `workload    ${fmt(w.changes)} changes in ${fmt(w.transactions)} transactions over ${(w.elapsedMs / 1000).toFixed(1)} s ` +
        `(target ${fmt(d.targetRate)}/s, achieved ${fmt(w.achievedPerSec)}/s, ${w.connections} connections)`,
    );
    out.push(`            ${ops}`);
  } else {
    out.push('workload    none (changes made by others were captured)');
  }
  out.push(
    `pipeline    ${d.topics} topics × ${d.partitions} partitions${d.singlePartitionTopics.length ? ` (1 for ${d.singlePartitionTopics.map((t) => t.slice(t.lastIndexOf('.') + 1)).join(', ')}: no primary key)` : ''}; batches ≤ ${d.batchSize} records, window ${d.windowMs} ms, ${d.concurrency} in flight per lane; ` +
      `capture emitted ${fmt(d.captureEmitted)} (${fmt(d.snapshotReads)} snapshot reads)${d.captureRestarts ? `, restarted ${d.captureRestarts}× after a crash` : ''}`,
  );
  if (d.format.kind === 'avro') {
    const f = d.format;
    out.push(
      `format      Avro through the local schema registry (${f.compatibility}): ${f.subjects} subjects, ${f.schemas} schemas; ` +
        `${fmt(f.records)} records ${fmt(Math.round(f.avroBytes / 1024))} KiB (JSON with schemas: ${fmt(Math.round(f.jsonBytes / 1024))} KiB, ${(f.jsonBytes / Math.max(1, f.avroBytes)).toFixed(1)}× larger)`,
    );
  }
  for (const [lane, l] of Object.entries(result.lanes)) {
    out.push(
      `  ${pad(lane, 10)}${
        l.running
          ? `processed ${fmt(l.processed)}, duplicates ${fmt(l.duplicates)}, skipped ${fmt(l.skipped)}, dead-lettered ${fmt(l.deadLettered)}${l.onFailure ? `, on-failure ${l.onFailure}` : ''}`
          : 'NOT RUNNING (no Redis)'
      }`,
    );
  }
  out.push(...schemaLines(result));
  out.push(
    `latency     commit → sink write, all lanes: p50 ${result.latencyMs.p50} ms, p95 ${result.latencyMs.p95} ms, ` +
      `p99 ${result.latencyMs.p99} ms, max ${result.latencyMs.max} ms (${fmt(d.latencySamples)} writes)`,
  );
  out.push(
    `            commit → every sink (per change, slowest lane): p50 ${d.latencyAllSinks.p50} ms, p99 ${d.latencyAllSinks.p99} ms`,
  );
  for (const [lane, stages] of Object.entries(d.stagesMs)) {
    out.push(
      `            ${pad(lane, 10)} p50/p99 ms: ${Object.entries(stages)
        .filter(([stage]) => stage !== 'total')
        .map(([stage, v]) => `${stage} ${v.p50}/${v.p99}`)
        .join(', ')}`,
    );
  }
  out.push(
    `throughput  ${fmt(result.changes)} changes, ${fmt(result.throughputPerSec)}/s from first change to drained`,
  );
  out.push(
    `timings     ${Object.entries(d.timingsMs)
      .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`)
      .join(', ')}`,
  );
  out.push('');
  out.push('checks');
  const { warehouse, currentState, cache, audit } = result.checks;
  if (warehouse.checked) {
    out.push(
      `  warehouse ${mark(warehouse.consistent)}: ${fmt(warehouse.rowsCompared)} source rows compared with the change log ` +
        `rebuilt by DuckDB (${fmt(warehouse.files)} Parquet files, ${fmt(warehouse.changeRows)} changes)`,
    );
    out.push(...tableLines(warehouse.tables));
    for (const p of warehouse.problems) out.push(`    ! ${p}`);
  } else out.push(`  warehouse NOT CHECKED: ${warehouse.reason}`);
  if (currentState.checked) {
    out.push(
      `  current   ${mark(currentState.consistent)}: ${fmt(currentState.rowsCompared)} source rows compared with the current-state tables ` +
        `(DuckDB MERGE of the change log: ${fmt(currentState.steps)} steps, ${fmt(currentState.changes)} changes, ${fmt(currentState.mergeMs)} ms)`,
    );
    out.push(...tableLines(currentState.tables));
    for (const p of currentState.problems) out.push(`    ! ${p}`);
  } else out.push(`  current   NOT CHECKED: ${currentState.reason}`);
  if (cache.checked) {
    out.push(
      `  cache     ${mark(cache.consistent)}: ${fmt(cache.rowsCompared)} source rows compared with Redis hashes`,
    );
    out.push(...tableLines(cache.tables));
    for (const p of cache.problems) out.push(`    ! ${p}`);
  } else out.push(`  cache     NOT CHECKED: ${cache.reason}`);
  if (audit.checked) {
    out.push(
      `  audit     ${mark(audit.consistent)}: ${audit.chains} hash chains intact=${audit.problems.every((p) => !p.startsWith('chain')) ? 'yes' : 'NO'}, ` +
        `${fmt(audit.distinctChanges)} changes audited (${fmt(audit.brokerDistinct)} captured, ${audit.duplicateIds} twice, ` +
        `${audit.missing} missing, ${audit.notInWarehouse + audit.notInAudit} differ from the warehouse)`,
    );
    for (const p of audit.problems) out.push(`    ! ${p}`);
  } else out.push(`  audit     NOT CHECKED: ${audit.reason}`);
  for (const w of info.warnings) out.push(`  ! ${w}`);
  if (info.explore.length > 0) {
    out.push('');
    out.push('explore the warehouse');
    out.push(...info.explore.map((line) => `  ${line}`));
  }
  out.push('');
  return out.join('\n');
}

/** What the run saw of schema changes, new and dropped tables, and the incremental snapshots that reconciled them. */
function schemaLines(result: RunResult): string[] {
  const lines: string[] = [];
  const d = result.details;
  const short = (topic: string) => topic.split('.').slice(1).join('.');
  for (const change of result.schemaChanges) {
    const parts = [
      change.added.length ? `added ${change.added.join(', ')}` : '',
      change.removed.length ? `removed ${change.removed.join(', ')}` : '',
      change.changed.length ? `changed ${change.changed.join(', ')}` : '',
    ].filter(Boolean);
    lines.push(`schema      ${short(change.table)}: new version ${change.to} (${parts.join('; ') || 'same columns'})`);
  }
  if (d.addedTables.length)
    lines.push(`            new tables captured from their first row: ${d.addedTables.join(', ')}`);
  if (d.droppedTables.length)
    lines.push(`            dropped during the run: ${d.droppedTables.map(short).join(', ')}`);
  for (const s of result.incrementalSnapshots) {
    const tables = Object.entries(s.tables)
      .map(([table, rows]) => `${table} ${fmt(rows)} rows`)
      .join(', ');
    lines.push(
      `snapshot    ${s.id} (asked by ${s.origin === 'lane' ? 'a lane, after a schema change' : s.origin}): ${s.status}, re-read ${tables || 'nothing'}`,
    );
  }
  return lines;
}

function tableLines(tables: Record<string, import('./verify').TableCheck>): string[] {
  const lines: string[] = [];
  const names = Object.keys(tables);
  const width = Math.max(10, ...names.map((n) => n.length)) + 2;
  lines.push(
    `    ${pad('table', width)}${pad('kind', 16)}${lpad('source', 8)}${lpad('sink', 8)}${lpad('missing', 9)}${lpad('extra', 7)}${lpad('differ', 8)}`,
  );
  for (const [name, t] of Object.entries(tables)) {
    const na = t.kind === 'not-applicable' || t.kind === 'dropped';
    lines.push(
      `    ${pad(name, width)}${pad(t.kind === 'not-applicable' ? 'not applicable' : t.kind, 16)}${lpad(fmt(t.sourceRows), 8)}${lpad(na ? '-' : fmt(t.sinkRows), 8)}` +
        `${lpad(na ? '-' : fmt(t.missing), 9)}${lpad(na ? '-' : fmt(t.extra), 7)}${lpad(na ? '-' : fmt(t.different), 8)}`,
    );
    for (const sample of t.samples) lines.push(`      - ${sample}`);
  }
  return lines;
}
