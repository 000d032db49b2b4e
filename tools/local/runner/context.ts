/**
 * What a run shows the code around it: the hooks tests and the benchmark give `runLocal`, and the context they get
 * back while it runs. Types only, in a module of their own so that the phases (run.ts's modules) and the callers
 * depend on them rather than on run.ts.
 */
import type { LocalServices } from '../services';
import type { StageTimings } from './stages';
import type { RunStatus } from './status';
import type { LocalPipeline, PipelineFaults, PipelineOptions } from './system';

/** What tests and tools can reach while a run is under way. */
export interface RunContext {
  pipeline: LocalPipeline;
  services: LocalServices;
  connectionString: string;
  cachePrefix: string;
  /** The capture's slot and publication; names starting with it are the run's (see dropSlotsAndPublications). */
  slotName: string;
  /** Stage timings of streamed changes (the benchmark resets them after its warm-up). */
  stages: StageTimings;
  /** Changes the workload has committed so far (0 without a workload). */
  workloadChanges(): number;
}

export interface RunHooks {
  /** Human-readable messages (the CLI prints them on stderr). */
  log?: (message: string) => void;
  /** Where the progress line goes; none means no progress. */
  progress?: NodeJS.WriteStream;
  /**
   * After the source is ready (embedded: the demo schema seeded), before the capture starts, so the initial snapshot
   * reads what it adds: the incremental-snapshot benchmark creates its 100k-row table here (a table created later
   * would be a new table, whose streamed inserts the lanes reconcile with a snapshot of their own).
   */
  beforeCapture?: (source: { connectionString: string }) => Promise<void>;
  /** After the initial snapshot reached every sink, before the workload. */
  onStarted?: (context: RunContext) => void | Promise<void>;
  /**
   * Runs beside the workload (or the wait for changes), and the run drains only once it is done too: tests make
   * their schema changes here while the workload's DML goes on.
   */
  whileRunning?: (context: RunContext) => Promise<void>;
  /**
   * The capture's test hook: after an incremental-snapshot chunk was read, before its window closes (a test changes
   * a row being re-read here, to see the streamed change win).
   */
  beforeHighWatermark?: PipelineOptions['beforeHighWatermark'];
  /** After the run drained, before the sinks are read (tests break a sink here to see verification catch it). */
  beforeVerify?: (context: RunContext) => Promise<void>;
  /** The status page's data (tools/local/runner/status.ts): the run attaches the pipeline and reports its phases. */
  status?: RunStatus;
  /** Fault injection into the pipeline (`npm run chaos`, tools/chaos/). */
  faults?: PipelineFaults;
}
