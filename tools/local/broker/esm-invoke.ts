import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { type Batch, recordCount, type Slice } from './esm-batching';
import { type EsmCounters, type EsmErrorHook, type EsmStats, EventSourceMappingError } from './esm-types';
import type { MskEventFormat, MskHandler } from './esm-wire';

/**
 * One invocation: the event and context for a batch, the handler's call, and its answer read as an {@link Outcome}
 * (what to do with the outcome is the failure policy's concern, esm-failure.ts).
 *
 * A partial batch response (kafka-retry-configurations, docs/formats.md §1.7) is read only with
 * `reportBatchItemFailures`: `{ batchItemFailures: [{ itemIdentifier: { partition, offset } }] }`; an identifier
 * that was not in the batch fails the whole batch.
 */

/** What the failure policy has to know of a batch's attempts so far. */
export interface AttemptState {
  /** Retries consumed so far (the first attempt is not a retry). */
  retries: number;
  invokeCount: number;
  lastRequestId: string | undefined;
  /** Whether the last attempt threw (→ `functionError: 'Unhandled'` in the destination record). */
  lastThrew: boolean;
}

/** How an invocation went: all done, some partitions to redeliver from an index of their slice, or failed. */
export type Outcome =
  | { kind: 'success' }
  | { kind: 'partial'; failures: Map<Slice, number> }
  | { kind: 'error'; threw: boolean };

export interface InvokeSettings {
  handler: MskHandler;
  reportBatchItemFailures: boolean;
  onError: EsmErrorHook | undefined;
}

const LATENCY_WINDOW = 1024;

/** Handler latency over the last {@link LATENCY_WINDOW} invocations. */
class LatencyWindow {
  private readonly samples = new Float64Array(LATENCY_WINDOW);
  private count = 0;

  add(ms: number): void {
    this.samples[this.count % LATENCY_WINDOW] = ms;
    this.count++;
  }

  summary(): EsmStats['latencyMs'] {
    const count = Math.min(this.count, LATENCY_WINDOW);
    if (count === 0) return null;
    const sorted = Array.from(this.samples.subarray(0, count)).sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(count - 1, Math.floor(q * count))]!;
    return { count: this.count, p50: at(0.5), p99: at(0.99), max: sorted[count - 1]! };
  }
}

/** Calls one mapping's handler. */
export class Invoker {
  private readonly latency = new LatencyWindow();

  constructor(
    private readonly settings: Readonly<InvokeSettings>,
    private readonly format: MskEventFormat,
    private readonly counters: EsmCounters,
  ) {}

  async invoke(batch: Batch, state: AttemptState): Promise<Outcome> {
    const event = this.format.event(batch.slices);
    const requestId = randomUUID();
    state.invokeCount++;
    state.lastRequestId = requestId;
    this.counters.invocations++;
    this.counters.recordsDelivered += recordCount(batch);
    const started = performance.now();
    let result: unknown;
    try {
      result = await this.settings.handler(event, this.format.context(requestId));
    } catch (error) {
      this.latency.add(performance.now() - started);
      state.lastThrew = true;
      this.settings.onError?.(error, { requestId, stage: 'invoke' });
      return { kind: 'error', threw: true };
    }
    this.latency.add(performance.now() - started);
    state.lastThrew = false;
    if (!this.settings.reportBatchItemFailures) return { kind: 'success' };
    const outcome = parseResponse(result, batch);
    if (outcome.kind === 'error') {
      this.counters.invalidResponses++;
      this.settings.onError?.(
        new EventSourceMappingError(
          'INVALID_PARTIAL_RESPONSE',
          `batchItemFailures names a partition or offset that was not in the batch, or is malformed: ${safeJson(result)}`,
        ),
        { requestId, stage: 'response' },
      );
    } else if (outcome.kind === 'partial') {
      this.counters.partialFailures++;
    }
    return outcome;
  }

  latencySummary(): EsmStats['latencyMs'] {
    return this.latency.summary();
  }
}

/**
 * Reads a partial batch response (kafka-retry-configurations): null, `{}` and an empty list mean success; every
 * `itemIdentifier` must be `{ partition: "<topic>-<n>", offset: <number> }` naming a record of this batch, or the
 * whole batch failed. Several failures on one partition: the lowest offset wins (everything after it is redelivered
 * anyway).
 */
function parseResponse(result: unknown, batch: Batch): Outcome {
  if (result === null || typeof result !== 'object') return { kind: 'success' };
  const list = (result as { batchItemFailures?: unknown }).batchItemFailures;
  if (list === undefined || list === null) return { kind: 'success' };
  if (!Array.isArray(list)) return { kind: 'error', threw: false };
  if (list.length === 0) return { kind: 'success' };
  const failures = new Map<Slice, number>();
  for (const item of list) {
    const id = (item as { itemIdentifier?: unknown } | null)?.itemIdentifier as
      | { partition?: unknown; offset?: unknown }
      | null
      | undefined;
    if (typeof id !== 'object' || id === null) return { kind: 'error', threw: false };
    const { partition, offset } = id;
    if (typeof partition !== 'string' || typeof offset !== 'number') return { kind: 'error', threw: false };
    const slice = batch.slices.find((s) => s.part.id === partition);
    if (slice === undefined) return { kind: 'error', threw: false };
    const index = offset - slice.records[0]!.offset;
    if (!Number.isInteger(index) || index < 0 || index >= slice.records.length) return { kind: 'error', threw: false };
    const previous = failures.get(slice);
    if (previous === undefined || index < previous) failures.set(slice, index);
  }
  return { kind: 'partial', failures };
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value)?.slice(0, 500) ?? String(value);
  } catch {
    return String(value);
  }
}
