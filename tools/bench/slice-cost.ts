/**
 * Where the local pipeline's CPU goes per lane invocation, against the real local services (dynalite, fauxqs for S3
 * and SQS, in their own process, Redis): the cost model behind the end-to-end figures.
 *
 * A lane's invocation costs a fixed part (the BatchGetItem of the checkpoints, middy and Powertools), a part per
 * topic-partition in the batch (its conditional put in the batch's checkpoint transaction and, for the warehouse and
 * audit lanes, a Parquet or gzip object and its S3 PUT) and a part per record. Measured by running each lane's real
 * handler on batches of the same records spread over 13 partitions (the default `npm start` topology: 4 keyed tables
 * × 3 partitions + 1 keyless table) or kept in one, and timing CPU in this process (the handler, the SDK) and in the
 * emulators' process.
 *
 * From it, `cycleCpuMs`: the CPU of one round in which each lane writes every partition once, which is what 1,000
 * changes/s with a 0 ms batching window makes the lanes do continuously. Commit → sink latency cannot be shorter
 * than that round divided by the cores left to the lanes.
 */
import type { Context } from 'aws-lambda';
import { LANES, type Lane } from '../../functions/core/types';
import { startServicesProcess } from '../local/runner/services-host';
import { benchEvent } from './fixtures';
import { cpuMsOf, descendants } from './proc';

/** Topic-partitions of the demo at the default 3 partitions: 4 keyed tables × 3 + 1 keyless table. */
export const PARTITIONS = 13;
const round = (n: number) => Number(n.toFixed(2));

/** CPU milliseconds of this process's descendants so far (the emulators' process); 0 off Linux. */
function childrenCpuMs(): number {
  let total = 0;
  for (const pid of descendants(process.pid)) {
    try {
      total += cpuMsOf(pid);
    } catch {
      // gone meanwhile, or not Linux
    }
  }
  return total;
}

export interface LaneCost {
  /** CPU per invocation on the lane's side (handler, SDK) and in the emulators, by batch shape. */
  perInvocationMs: Record<string, { lane: number; emulators: number }>;
  /** Extra CPU per topic-partition in a batch (lane + emulators). */
  perPartitionMs: number;
  /** Extra CPU per record (lane + emulators). */
  perRecordUs: number;
  processed: number;
  duplicates: number;
}

/** Measures every lane (cache only when Redis is there); `reps` invocations per batch shape. */
export async function measureSliceCosts(reps = 30): Promise<{
  lanes: Partial<Record<Lane, LaneCost>>;
  partitions: number;
  cycleCpuMs: number;
  method: string;
}> {
  process.env.AWS_XRAY_MANUAL_MODE ??= 'true';
  // As `npm start` runs them: throw-away state, S3 in memory.
  const services = await startServicesProcess();
  const [{ createLaneHandler }, { SINKS }, { localClientConfig }] = await Promise.all([
    import('../../functions/shared/lane-handler'),
    import('../lib/lanes'),
    import('../local/aws-clients'),
  ]);
  const lanes: Partial<Record<Lane, LaneCost>> = {};
  let offsetBase = 0;
  let lsnBase = 30_000_000;
  try {
    for (const lane of LANES) {
      if (lane === 'cache' && !services.redisUrl) continue;
      let processed = 0;
      let duplicates = 0;
      const handler = createLaneHandler(
        lane,
        SINKS[lane] as never,
        { ...services.laneEnv(lane), POWERTOOLS_LOG_LEVEL: 'ERROR', POWERTOOLS_METRICS_NAMESPACE: 'cdc-sync-bench' },
        {
          clientConfig: localClientConfig(services.laneEnv(lane)),
          onBatch: (result) => {
            processed += result.processed;
            duplicates += result.duplicates;
          },
        },
      );
      const context = {
        functionName: `bench-${lane}`,
        awsRequestId: 'bench',
        getRemainingTimeInMillis: () => 60_000,
      } as unknown as Context;
      // Powertools Metrics prints EMF lines to stdout; keep stdout for the JSON result.
      const write = process.stdout.write;
      const run = async (partitions: number, records: number) => {
        const event = benchEvent(partitions * records, { lsnBase });
        // In source order (benchEvent groups by its own partitions), so that no record is older than its partition.
        const all = Object.values(event.records)
          .flat()
          .sort((a, b) => a.timestamp - b.timestamp);
        const spread: typeof event.records = {};
        all.forEach((record, i) => {
          record.partition = i % partitions;
          record.offset = offsetBase + Math.floor(i / partitions);
          const id = `${record.topic}-${record.partition}`;
          spread[id] ??= [];
          spread[id].push(record);
        });
        event.records = spread;
        offsetBase += records + 1;
        lsnBase += partitions * records * 200;
        process.stdout.write = (() => true) as typeof process.stdout.write;
        try {
          await handler(event as never, context);
        } finally {
          process.stdout.write = write;
        }
      };
      const shape = async (partitions: number, records: number) => {
        for (let i = 0; i < 3; i++) await run(partitions, records); // warm-up
        const cpu = process.cpuUsage();
        const emulators = childrenCpuMs();
        for (let i = 0; i < reps; i++) await run(partitions, records);
        const used = process.cpuUsage(cpu);
        return {
          lane: round((used.user + used.system) / 1000 / reps),
          emulators: round((childrenCpuMs() - emulators) / reps),
        };
      };
      const spreadOut = await shape(PARTITIONS, 1);
      const together = await shape(1, PARTITIONS);
      const large = await shape(1, 20 * PARTITIONS);
      const total = (s: { lane: number; emulators: number }) => s.lane + s.emulators;
      lanes[lane] = {
        perInvocationMs: {
          [`${PARTITIONS}x1`]: spreadOut,
          [`1x${PARTITIONS}`]: together,
          [`1x${20 * PARTITIONS}`]: large,
        },
        perPartitionMs: round((total(spreadOut) - total(together)) / (PARTITIONS - 1)),
        perRecordUs: round(((total(large) - total(together)) * 1000) / (19 * PARTITIONS)),
        processed,
        duplicates,
      };
    }
  } finally {
    await services.stop();
  }
  const cycleCpuMs = Object.values(lanes).reduce(
    (sum, cost) =>
      sum +
      (cost.perInvocationMs[`${PARTITIONS}x1`]?.lane ?? 0) +
      (cost.perInvocationMs[`${PARTITIONS}x1`]?.emulators ?? 0),
    0,
  );
  return {
    lanes,
    partitions: PARTITIONS,
    cycleCpuMs: Number(cycleCpuMs.toFixed(1)),
    method: `each lane's real handler in this process against the emulators' process, ${reps} invocations per shape (after 3 warm-ups): ${PARTITIONS} partitions x 1 record, 1 x ${PARTITIONS}, 1 x ${20 * PARTITIONS}; CPU = user + system of both processes`,
  };
}
