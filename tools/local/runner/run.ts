/**
 * `npm start`, as a function: start the source database and the local services, run the pipeline, drive the
 * workload (or wait for changes made by others), drain, verify and report. tools/local/start.ts is the CLI around
 * it; the end-to-end tests call it directly. Each phase is a module of its own; this one only puts them in order.
 */
import type { RunContext, RunHooks } from './context';
import { startCurrentState } from './current-state';
import { drain, drive } from './drive';
import type { RunOptions } from './options';
import { LiveProgress } from './progress';
import type { RunResult } from './result';
import { setUpRun, undoOnInterrupt } from './setup';
import { prepareSource } from './source';
import { startPipeline } from './startup';
import { summarize } from './summary';
import { verifyRun } from './verify-run';

export type { RunContext, RunHooks } from './context';
export { abortRun, wasInterrupted } from './interrupts';
export type { LaneSummary, RunResult } from './result';

/** Runs the whole local pipeline once. Throws on errors (not on inconsistency: that is in the result). */
export async function runLocal(options: RunOptions, hooks: RunHooks = {}): Promise<RunResult> {
  const startedAt = performance.now();
  const timings: Record<string, number> = {};
  const run = await setUpRun(options, hooks);
  const progress = new LiveProgress(run.log);
  const released = undoOnInterrupt(run, () => progress.stop());
  try {
    // Startup: the source and the services, then the pipeline, its initial snapshot in every sink.
    const source = await prepareSource(run);
    await hooks.beforeCapture?.({ connectionString: source.connectionString });
    const started = await startPipeline(run, source, progress);
    const currentState = await startCurrentState(run, source.services.clients.s3);
    let workload: { changes(): number } | undefined;
    const context: RunContext = {
      pipeline: started.running,
      services: source.services,
      connectionString: source.connectionString,
      cachePrefix: run.cachePrefix,
      slotName: run.slotName,
      stages: started.stages,
      workloadChanges: () => workload?.changes() ?? 0,
    };
    await hooks.onStarted?.(context);
    timings.startup = performance.now() - startedAt;

    // The workload, or the wait for changes made by others.
    const driven = await drive(run, started, context, progress, (w) => {
      workload = w;
    });
    timings.workload = performance.now() - driven.startedAt;

    const drainStart = performance.now();
    await drain(run, started.running, progress);
    const drainedAt = performance.now();
    timings.drain = drainedAt - drainStart;
    await currentState.stop();

    const verifyStart = performance.now();
    const topics = started.running.tableTopics();
    const verified = await verifyRun(run, {
      context,
      lanes: started.lanes,
      topics,
      source,
      emittedAtStart: driven.emittedAtStart,
      currentState,
    });
    timings.verify = performance.now() - verifyStart;

    const result = summarize(run, {
      started,
      driven,
      verified,
      sourceText: source.sourceText,
      topics,
      timings,
      activeMs: Math.max(1, drainedAt - driven.startedAt),
      stream: await started.running.stream(),
    });
    hooks.status?.finish(result);
    return result;
  } catch (error) {
    hooks.status?.fail(error instanceof Error ? error.message : String(error));
    throw error;
  } finally {
    // A signal during the cleanup waits for it too (the stack runs once; a second call returns the same promise).
    progress.stop();
    await run.cleanup.run();
    released();
  }
}
