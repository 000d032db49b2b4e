/**
 * Drives the fuzz stream through each lane's real handler (createLaneHandler with the lane's real sink, dedupe store
 * and dead-letter queue) against local services started in this process: dynalite, fauxqs (SQS, and S3 in memory)
 * and Redis. Each batch goes to every lane, as the event source mapping delivers a topic to each consumer group; a
 * partition the handler reports failed is delivered again from the reported offset, as the event source mapping
 * would, twice, then record by record to find what keeps failing. The lane's sink is observed (what it was handed,
 * what it applied) without changing what it does.
 */

import type { DeadLetterMessage } from '../../functions/adapters/sqs-dead-letter-queue';
import { type BatchResult, emptyCounts } from '../../functions/core/pipeline';
import type { KafkaEvent, KafkaRecord, Lane, SinkPartition, SinkPartitionResult } from '../../functions/core/types';
import type { SinkFactory } from '../../functions/shared/lane-deps';
import { createLaneHandler } from '../../functions/shared/lane-handler';
import { lambdaContext } from '../lib/cli';
import { drainDeadLetters } from '../lib/dead-letters';
import { SINKS } from '../lib/lanes';
import { deleteKeysWithPrefix } from '../lib/redis-keys';
import { localClientConfig } from '../local/aws-clients';
import { type LocalServices, startLocalServices } from '../local/services';
import { type FuzzBatch, fuzzBatches, type MutationCounts, type SentRecord } from './batches';
import { loadCorpus } from './corpus';
import { type Failure, type LaneCounts, LaneOracle } from './oracle';

export interface FuzzOptions {
  records: number;
  seed: number;
  lanes: readonly Lane[];
  /** Where the valid samples are (default: events/). */
  eventsDir?: string;
  /** The lanes' Powertools log level (default SILENT: a run has thousands of batches). */
  logLevel?: string;
  /** Called after each batch. */
  onProgress?: (progress: { records: number; total: number; failures: number }) => void;
}

export interface FuzzReport {
  /** Records per lane. */
  records: number;
  lanes: Partial<Record<Lane, LaneCounts>>;
  mutations: MutationCounts;
  failures: Failure[];
}

/** The lanes' MAX_RECORD_BYTES in the run (the default): the mutations size records around it. */
export const MAX_RECORD_BYTES = 1_048_576;

/** Deliveries of a batch (the first and two retries) before a partition still failing is delivered record by record. */
const ATTEMPTS = 3;

/**
 * A delivery slower than this is a failure: batches take a fraction of a second here, and a record that makes one take
 * minutes times the Lambda out (dev lanes have 60 s) at every retry of its batch, forever.
 */
const SLOW_MS = 15_000;

/** A run that cannot start: no valid samples, or no Redis for the cache lane. */
export class FuzzSetupError extends Error {
  override readonly name = 'FuzzSetupError';
}

/** The lane's sink, reporting each write it was handed and what came of it. */
function observedSink<L extends Lane>(
  lane: L,
  observe: (partition: SinkPartition, result: SinkPartitionResult) => void,
): SinkFactory<L> {
  return (env, clients) => {
    const sink = (SINKS[lane] as SinkFactory<L>)(env, clients);
    return {
      async write(partition) {
        const result = await sink.write(partition);
        observe(partition, result);
        return result;
      },
      close: sink.close ? () => (sink.close as () => Promise<void>).call(sink) : undefined,
    };
  };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error ?? 'no result');
}

/** A lane under test: its handler, its oracle, and how one delivery goes. */
class LaneUnderTest {
  readonly oracle: LaneOracle;
  private readonly handler: ReturnType<typeof createLaneHandler>;
  private result: BatchResult | undefined;

  constructor(
    readonly lane: Lane,
    private readonly services: LocalServices,
    env: Record<string, string | undefined>,
    seed: number,
    failures: Failure[],
  ) {
    this.oracle = new LaneOracle(lane, seed, failures);
    this.handler = createLaneHandler(
      lane,
      observedSink(lane, (p, r) => this.oracle.sinkWrite(p, r)),
      env,
      { clientConfig: localClientConfig(env), onBatch: (r) => (this.result = r) },
    );
  }

  private async deliver(event: KafkaEvent): Promise<{ result: BatchResult | undefined; thrown: unknown }> {
    this.result = undefined;
    let thrown: unknown;
    const started = performance.now();
    try {
      await this.handler(event, lambdaContext(`cdc-sync-${this.lane}`) as never);
    } catch (error) {
      thrown = error ?? new Error('undefined thrown');
    }
    const ms = performance.now() - started;
    if (ms > SLOW_MS) this.oracle.slow(ms, Object.values(event.records).flat());
    return { result: this.result, thrown };
  }

  async run(batch: FuzzBatch, eventText: string): Promise<void> {
    this.oracle.begin(batch);
    let event = JSON.parse(eventText) as KafkaEvent;
    let sent = batch.records.length;
    for (let attempt = 0; ; attempt++) {
      const { result, thrown } = await this.deliver(event);
      const letters = await drainDeadLetters(this.services, this.services.queueUrls[this.lane]);
      this.oracle.attempt(attempt, sent, result, thrown, letters);
      if (thrown !== undefined || !result) {
        this.oracle.crashed();
        break;
      }
      if (result.batchItemFailures.length === 0) break;
      // The event source mapping resumes each failed partition from the offset reported.
      const pending = this.pendingAfter(batch, result);
      sent = pending.length;
      if (attempt + 1 < ATTEMPTS) {
        const records: Record<string, KafkaRecord[]> = {};
        for (const r of pending) {
          records[r.partition] ??= [];
          records[r.partition]?.push(JSON.parse(r.text) as KafkaRecord);
        }
        event = { ...event, records };
        continue;
      }
      // Still failing: one record at a time (as bisecting would), to find the records that never go through.
      await this.oneByOne(pending, attempt + 1);
      break;
    }
    this.oracle.end();
  }

  /** The records of the failed partitions from the offsets reported (never a record that is not a record). */
  private pendingAfter(batch: FuzzBatch, result: BatchResult): SentRecord[] {
    const from = new Map(result.batchItemFailures.map((f) => [f.itemIdentifier.partition, f.itemIdentifier.offset]));
    return batch.records.filter((r) => {
      const offset = from.get(r.partition);
      return offset !== undefined && r.role !== 'not-a-record' && r.offset >= offset;
    });
  }

  /**
   * Delivers each pending record alone, twice at most; one that still fails is stuck: it would stall its partition
   * for good. The deliveries count as one more attempt of the batch.
   */
  private async oneByOne(pending: readonly SentRecord[], attempt: number): Promise<void> {
    const total = { ...emptyCounts(), records: pending.length };
    const letters: DeadLetterMessage[] = [];
    for (const r of pending) {
      const event: KafkaEvent = {
        eventSource: 'aws:kafka',
        records: { [r.partition]: [JSON.parse(r.text) as KafkaRecord] },
      };
      for (let tries = 1; ; tries++) {
        const { result, thrown } = await this.deliver(event);
        letters.push(...(await drainDeadLetters(this.services, this.services.queueUrls[this.lane])));
        if (thrown !== undefined || !result) {
          // Counted as retried (the event source mapping would deliver it again), reported as a crash.
          total.retried++;
          this.oracle.stuck(r.partition, r.offset, { code: 'CRASH', message: messageOf(thrown) }, true);
          break;
        }
        if (result.batchItemFailures.length > 0 && tries < 2) continue;
        for (const key of ['processed', 'skipped', 'duplicates', 'deadLettered', 'retried'] as const) {
          total[key] += result[key];
        }
        if (result.batchItemFailures.length > 0) this.oracle.stuck(r.partition, r.offset, result.error);
        break;
      }
    }
    this.oracle.attempt(attempt, total.records, total, undefined, letters);
  }

  close(): Promise<void> {
    return this.handler.close();
  }
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const corpus = await loadCorpus(options.eventsDir ?? 'events').catch((error: Error) => {
    throw new FuzzSetupError(error.message);
  });
  const services = await startLocalServices({ redis: options.lanes.includes('cache') ? 'auto' : null, s3: 'memory' });
  const failures: Failure[] = [];
  const mutations: MutationCounts = {};
  // A prefix of its own: cache rows of other runs (or of tests sharing this Redis) neither meet nor outlive this one.
  const cachePrefix = `cdc-fuzz-${options.seed}-${process.pid}-${Date.now().toString(36)}`;
  const lanes: LaneUnderTest[] = [];
  try {
    if (options.lanes.includes('cache') && !services.redisUrl) {
      throw new FuzzSetupError(`the cache lane needs Redis: ${services.redisProblem}`);
    }
    for (const lane of options.lanes) {
      const env = {
        ...process.env,
        ...services.laneEnv(lane),
        CACHE_KEY_PREFIX: cachePrefix,
        MAX_RECORD_BYTES: String(MAX_RECORD_BYTES),
        POWERTOOLS_LOG_LEVEL: options.logLevel ?? 'SILENT',
      };
      lanes.push(new LaneUnderTest(lane, services, env, options.seed, failures));
    }
    let done = 0;
    const stream = fuzzBatches(
      { seed: options.seed, records: options.records, corpus, maxRecordBytes: MAX_RECORD_BYTES },
      mutations,
    );
    for (const batch of stream) {
      const eventText = JSON.stringify(batch.event);
      await Promise.all(lanes.map((lane) => lane.run(batch, eventText)));
      done += batch.records.length;
      options.onProgress?.({ records: done, total: options.records, failures: failures.length });
    }
    const report: FuzzReport = { records: options.records, lanes: {}, mutations, failures };
    for (const lane of lanes) report.lanes[lane.lane] = lane.oracle.finish();
    return report;
  } finally {
    await Promise.allSettled(lanes.map((lane) => lane.close()));
    if (services.redisUrl && options.lanes.includes('cache')) {
      await deleteKeysWithPrefix(services.redisUrl, cachePrefix).catch(() => undefined);
    }
    await services.stop();
  }
}
