/**
 * Types every part of the local event source mapping shares: its counters and stats, its error, the error hook.
 * esm.ts re-exports the public ones; the parts import them from here so that none of them imports esm.ts.
 */

/** Per-partition numbers in {@link EsmStats}. */
export interface PartitionStats {
  /** `"<topic>-<partition>"`, the event's map key. */
  id: string;
  topic: string;
  partition: number;
  committed: number;
  highWater: number;
  lag: number;
  inFlight: boolean;
}

/** The counters in {@link EsmStats}: totals since construction, kept by the invocation and failure parts. */
export interface EsmCounters {
  invocations: number;
  recordsDelivered: number;
  retries: number;
  bisections: number;
  partialFailures: number;
  invalidResponses: number;
  /** Records handed to `onFailure` (or skipped without one). */
  recordsSentToDestination: number;
  destinationRecords: number;
}

/** What `LocalEventSourceMapping.stats()` reports. Counters are totals since construction. */
export interface EsmStats extends EsmCounters {
  groupId: string;
  partitions: PartitionStats[];
  lag: number;
  inFlightBatches: number;
  /** Handler latency over the last 1,024 invocations, in ms. */
  latencyMs: { count: number; p50: number; p99: number; max: number } | null;
}

/** Counters at zero. */
export function newCounters(): EsmCounters {
  return {
    invocations: 0,
    recordsDelivered: 0,
    retries: 0,
    bisections: 0,
    partialFailures: 0,
    invalidResponses: 0,
    recordsSentToDestination: 0,
    destinationRecords: 0,
  };
}

/** The `onError` option: told about every failed invocation and failed destination write or commit. */
export type EsmErrorHook = (
  error: unknown,
  info: { requestId?: string; stage: 'invoke' | 'response' | 'destination' | 'commit' },
) => void;

/** Errors the mapping raises itself; `code` is stable. */
export class EventSourceMappingError extends Error {
  override readonly name = 'EventSourceMappingError';
  constructor(
    readonly code: 'INVALID_OPTION' | 'INVALID_PARTIAL_RESPONSE' | 'DRAIN_TIMEOUT' | 'NOT_STARTED' | 'STOPPED',
    message: string,
  ) {
    super(message);
  }
}
