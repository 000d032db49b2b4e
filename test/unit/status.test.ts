/**
 * The status page's data layer for a local run (RunStatus) and its server: the report follows the contract, lanes'
 * rates and windowed latencies come from the pipeline's totals, freshness from what every lane wrote, the verdict
 * from the run's checks; the server answers the page, uPlot from node_modules and the one JSON endpoint.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { emptyCounts } from '../../functions/core/pipeline';
import type { Lane } from '../../functions/core/types';
import type { CaptureStatus } from '../../tools/local/capture';
import { emptyCaptureCounts } from '../../tools/local/capture/types';
import { WRITTEN_FIELDS } from '../../tools/local/runner/lane-host';
import { LatencyHistogram } from '../../tools/local/runner/latency';
import type { RunResult } from '../../tools/local/runner/result';
import { RunStatus, sourceState, verdictChecks } from '../../tools/local/runner/status';
import type { LaneTotals, LocalPipeline } from '../../tools/local/runner/system';
import { emptyStreamSummary, type StreamSummary } from '../../tools/local/runner/verify';
import { StatusReportSchema } from '../../tools/status/report';
import { type StatusServer, startStatusServer } from '../../tools/status/server';

const LANES: Lane[] = ['warehouse', 'audit'];

function captureStatus(overrides: Partial<CaptureStatus> = {}): CaptureStatus {
  return {
    phase: 'streaming',
    slotName: 's',
    publicationName: 'p',
    consistentPoint: null,
    receivedLsn: 0n,
    producedLsn: 0x16_b374d848n,
    savedOffset: null,
    acknowledgedLsn: 0n,
    queued: 0,
    emitted: emptyCaptureCounts(),
    incrementalSnapshot: null,
    ...overrides,
  };
}

/** The parts of a running pipeline RunStatus reads, with totals and lag the test moves. */
function pipelineOf(totals: Record<string, LaneTotals>, lag: Record<string, number>, status: () => CaptureStatus) {
  const stream: StreamSummary = emptyStreamSummary();
  return {
    totals: () => totals,
    esmStats: () => Object.fromEntries(Object.entries(lag).map(([lane, n]) => [lane, { lag: n }])),
    capture: () => ({ status }),
    captureEmitted: () => 1234,
    failure: () => null,
    streamSoFar: () => stream,
  } as unknown as LocalPipeline;
}

const totalsOf = (): LaneTotals => ({
  ...emptyCounts(),
  batches: 0,
  onFailureRecords: 0,
  latency: new LatencyHistogram(),
});

/** WrittenChanges rows: one streamed change committed at `commit`, one snapshot read (ignored for freshness). */
function written(commit: number) {
  const row = (snapshot: number, ts: number) =>
    WRITTEN_FIELDS.map((f) => (f === 'snapshot' ? snapshot : f === 'commitTs' ? ts : 0));
  return { topics: ['pg.public.t'], rows: Float64Array.from([...row(0, commit), ...row(1, commit + 99_999)]) };
}

describe('RunStatus', () => {
  it('reports per-lane rates, lag and the last second’s latency percentiles, in the contract', () => {
    // Arrange
    let now = 1_000_000;
    const totals = { warehouse: totalsOf(), audit: totalsOf() };
    const lag = { warehouse: 5, audit: 0 };
    const status = new RunStatus('pg', () => now);
    status.attach(
      pipelineOf(totals, lag, () => captureStatus()),
      LANES,
      60_000,
    );

    // Act: in the next second the warehouse finishes 300 records at 10–30 ms, the audit lane 100 at 50 ms
    totals.warehouse.processed += 250;
    totals.warehouse.skipped += 50;
    totals.warehouse.latency.addAll([10, 10, 20, 30]);
    totals.audit.processed += 100;
    totals.audit.latency.addAll([50, 50]);
    now += 1000;
    status.sample();
    const report = status.report();
    status.stop();

    // Assert
    expect(StatusReportSchema.parse(report)).toEqual(report);
    const warehouse = report.lanes.find((l) => l.lane === 'warehouse');
    expect(warehouse).toMatchObject({
      recordsPerSec: 300,
      lag: 5,
      latencyMs: { p50: 10, p99: 30 },
      processed: 250,
      skipped: 50,
    });
    expect(report.lanes.find((l) => l.lane === 'audit')).toMatchObject({
      recordsPerSec: 100,
      latencyMs: { p50: 50, p99: 50 },
    });
    expect(report.series).toHaveLength(2);
    expect(report.series[1]?.lanes.warehouse).toEqual({ rate: 300, lag: 5, p50: 10, p99: 30 });
    expect(report.sources[0]).toMatchObject({ name: 'pg', state: 'streaming', position: '16/B374D848', emitted: 1234 });
  });

  it('freshness is now minus the newest streamed commit every lane applied; null until each lane applied one', () => {
    // Arrange
    let now = 5_000_000;
    const status = new RunStatus('pg', () => now);
    status.attach(
      pipelineOf({ warehouse: totalsOf(), audit: totalsOf() }, {}, () => captureStatus()),
      LANES,
      60_000,
    );

    // Act / Assert
    status.written('warehouse', written(now - 200));
    expect(status.report().sources[0]?.freshnessMs).toBeNull();
    status.written('audit', written(now - 900));
    now += 100;
    expect(status.report().sources[0]?.freshnessMs).toBe(1000);
    expect(status.report().lanes.find((l) => l.lane === 'audit')?.freshnessMs).toBe(1000);

    // Act / Assert: once the run ended, freshness is as of its end, not growing while a kept page is read
    status.fail('stopped');
    now += 5000;
    expect(status.report().sources[0]?.freshnessMs).toBe(1000);
    expect(status.report().lanes.find((l) => l.lane === 'warehouse')?.freshnessMs).toBe(300);
  });

  it('shows snapshots, restarts and a failure in the source state', () => {
    const incremental = {
      id: 'x',
      tables: ['public.a', 'public.b'],
      currentTable: 'public.a',
      rowsRead: 42,
      rowsEmitted: 40,
      chunks: 1,
    };
    expect(sourceState(captureStatus({ phase: 'snapshot' }), false)).toBe('snapshotting');
    expect(sourceState(captureStatus({ incrementalSnapshot: incremental }), false)).toBe('snapshotting');
    expect(sourceState(captureStatus({ phase: 'stopped' }), false)).toBe('restarting');
    expect(sourceState(captureStatus({ phase: 'stopped' }), true)).toBe('stopped');
    expect(sourceState(captureStatus({ phase: 'failed' }), false)).toBe('failed');

    // Arrange: a run that failed while an incremental snapshot was running
    const status = new RunStatus('pg');
    status.attach(
      pipelineOf({ warehouse: totalsOf(), audit: totalsOf() }, {}, () =>
        captureStatus({ incrementalSnapshot: incremental }),
      ),
      LANES,
      60_000,
    );

    // Act
    status.fail('schema change of public.a refused by the schema registry');
    const report = status.report();

    // Assert
    expect(report.phase).toBe('failed');
    expect(report.sources[0]).toMatchObject({
      state: 'failed',
      snapshot: { kind: 'incremental', table: 'public.a', rowsRead: 42 },
    });
    expect(report.problems).toEqual(['schema change of public.a refused by the schema registry']);
  });

  it('the verdict lists every sink and table with its differences, and sinks that were not checked', () => {
    // Arrange
    const table = (missing: number) => ({
      kind: 'keyed' as const,
      sourceRows: 10,
      sinkRows: 10 - missing,
      missing,
      extra: 0,
      different: 0,
      samples: missing ? ['id=3: missing'] : [],
    });
    const checks = {
      warehouse: {
        checked: true as const,
        consistent: true,
        rowsCompared: 10,
        tables: { 'pg.public.t': table(0) },
        problems: [],
        files: 1,
        changes: 10,
      },
      currentState: { checked: false as const, consistent: false as const, reason: 'verification was not asked for' },
      cache: {
        checked: true as const,
        consistent: false,
        rowsCompared: 10,
        tables: { 'pg.public.t': table(1) },
        problems: [],
      },
      audit: { checked: false as const, consistent: false as const, reason: 'no audit lane' },
    } as unknown as RunResult['checks'];

    // Act
    const rows = verdictChecks(checks);

    // Assert
    expect(rows).toEqual([
      expect.objectContaining({ sink: 'warehouse', table: 'pg.public.t', ok: true, missing: 0 }),
      expect.objectContaining({ sink: 'currentState', ok: false, note: 'not checked: verification was not asked for' }),
      expect.objectContaining({ sink: 'cache', table: 'pg.public.t', ok: false, missing: 1, note: 'id=3: missing' }),
      expect.objectContaining({ sink: 'audit', ok: false, note: 'not checked: no audit lane' }),
    ]);
  });
});

describe('status server', () => {
  let server: StatusServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('serves the page, uPlot from node_modules and the report, on 127.0.0.1', async () => {
    // Arrange
    const status = new RunStatus('pg');
    server = await startStatusServer({ read: () => status.report() });

    // Act
    const [page, script, chart, api, missing] = await Promise.all(
      ['', 'app.js', 'vendor/uplot.js', 'api/status', 'nope'].map((path) => fetch(`${server?.url}${path}`)),
    );

    // Assert
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(await page?.text()).toContain('<script src="/vendor/uplot.js">');
    expect(script?.headers.get('content-type')).toContain('javascript');
    expect(await chart?.text()).toContain('uPlot');
    const report = StatusReportSchema.parse(await api?.json());
    expect(report).toMatchObject({
      environment: 'local',
      phase: 'starting',
      sources: [{ name: 'pg', state: 'starting' }],
    });
    expect(missing?.status).toBe(404);
  });

  it('takes another free port when the asked one is taken', async () => {
    // Arrange
    server = await startStatusServer({ read: () => new RunStatus('pg').report() });

    // Act
    const second = await startStatusServer({ read: () => new RunStatus('pg').report(), port: server.port });

    // Assert
    expect(second.port).not.toBe(server.port);
    expect((await fetch(`${second.url}api/status`)).status).toBe(200);
    await second.close();
  });
});
