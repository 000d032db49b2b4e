/**
 * The middle of a run: the workload (or the wait for changes made by others) under the progress line, with the
 * optional crash of the capture and the test's hook beside it; then the drain, until every lane committed everything.
 */
import type { RunContext } from './context';
import type { LiveProgress } from './progress';
import type { Run } from './setup';
import type { StartedPipeline } from './startup';
import type { LocalPipeline } from './system';
import type { WorkloadResult } from './workload';
import { startWorkloadProcess } from './workload-host';

/** What the run did while it drove the pipeline. */
export interface Driven {
  workload: WorkloadResult | null;
  /** Changes the capture had emitted when the workload began: the initial snapshot's reads. */
  emittedAtStart: number;
  /** When the workload began (`performance.now()`). */
  startedAt: number;
}

/** The readable form of a snapshot's progress for the progress line. */
function snapshotNote(pipeline: LocalPipeline): string | undefined {
  const snapshot = pipeline.capture().status().incrementalSnapshot;
  if (!snapshot) return undefined;
  return `re-reading ${snapshot.currentTable ?? snapshot.tables.join(', ')}: ${snapshot.rowsRead} rows`;
}

/**
 * Runs the workload, or waits for changes, with the progress line showing (it goes on through the drain).
 * `onWorkload` learns of the workload process once it started (the context counts its changes).
 */
export async function drive(
  run: Run,
  started: StartedPipeline,
  context: RunContext,
  progress: LiveProgress,
  onWorkload: (workload: { changes(): number }) => void,
): Promise<Driven> {
  const { options, hooks, log } = run;
  const { running, lanes } = started;
  const emittedAtStart = running.captureEmitted();
  const processedAtStart = Object.fromEntries(lanes.map((l) => [l, running.totals()[l]?.processed ?? 0]));
  const startedAt = performance.now();
  progress.phase = options.workload ? 'workload' : 'waiting for changes';
  if (hooks.progress) {
    progress.show(hooks.progress, () => {
      const esm = running.esmStats();
      const note = snapshotNote(running);
      return {
        elapsedMs: performance.now() - startedAt,
        captured: running.captureEmitted() - emittedAtStart,
        delivered: Object.fromEntries(
          lanes.map((l) => [l, (running.totals()[l]?.processed ?? 0) - (processedAtStart[l] ?? 0)]),
        ),
        lag: Math.max(0, ...lanes.map((l) => esm[l]?.lag ?? 0)),
        p99: running.latency().percentile(0.99),
        ...(note ? { note } : {}),
      };
    });
  }
  log(
    options.workload
      ? `workload: ${options.rate} changes/s for ${options.durationMs / 1000} s`
      : `waiting for changes (up to ${options.durationMs / 1000} s, or ${options.idleMs / 1000} s of quiet)…`,
  );
  const workload = await driveWorkload(run, context, progress, onWorkload);
  return { workload, emittedAtStart, startedAt };
}

/** The workload (or the wait for changes made by others), with the optional capture crash and the test's hook. */
async function driveWorkload(
  run: Run,
  context: RunContext,
  progress: LiveProgress,
  onWorkload: (running: { changes(): number }) => void,
): Promise<WorkloadResult | null> {
  const { options, hooks } = run;
  const running = context.pipeline;
  const startedAt = performance.now();
  let restart: Promise<void> | undefined;
  let restartTimer: NodeJS.Timeout | undefined;
  if (options.restartCaptureAtMs !== undefined) {
    const at = options.restartCaptureAtMs;
    restartTimer = setTimeout(() => {
      progress.aside(`crashing the capture on purpose at ${at / 1000} s and restarting it…`);
      restart = running.restartCapture({ crash: true });
      restart.catch(() => undefined);
    }, at);
  }
  const beside = hooks.whileRunning?.(context);
  beside?.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
  let workload: WorkloadResult | null = null;
  try {
    if (options.workload) {
      const started = startWorkloadProcess({
        connectionString: context.connectionString,
        schema: options.schema,
        rate: options.rate,
        durationMs: options.durationMs,
        schemaChange: options.schemaChange,
      });
      onWorkload(started);
      workload = await started.done;
    } else {
      let last = running.captureEmitted();
      let lastChange = performance.now();
      while (
        performance.now() - startedAt < options.durationMs &&
        performance.now() - lastChange < options.idleMs &&
        !running.failure() // nothing more will come: the drain below reports why
      ) {
        await new Promise((r) => setTimeout(r, 100));
        const now = running.captureEmitted();
        if (now !== last) {
          last = now;
          lastChange = performance.now();
        }
      }
    }
  } finally {
    clearTimeout(restartTimer);
  }
  await beside;
  if (restart) await restart;
  return workload;
}

/**
 * Waits until every lane committed everything the capture produced, every incremental snapshot the run triggered
 * included (the sinks are read only once they completed), then clears the progress line.
 */
export async function drain(run: Run, running: LocalPipeline, progress: LiveProgress): Promise<void> {
  progress.phase = 'draining';
  run.hooks.status?.setPhase('draining');
  // The source holds still from here: the sinks are compared with it once everything is drained.
  running.pauseHeartbeatAction(true);
  await running.drain();
  progress.stop();
}
