import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { LogLevel } from '@aws-lambda-powertools/logger/types';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import { S3Client } from '@aws-sdk/client-s3';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import * as z from 'zod/mini';
import '../core/zod';
import { ConfigError } from '../core/errors';
import { ChangeLogCompactor, type CompactionSummary } from './compact';

const text = z.string().check(z.minLength(1));
const positiveInt = z.pipe(z.coerce.number(), z.int().check(z.positive()));

/** Runtime configuration, set by lib/constructs/compaction-function.ts together with the grants. */
export const CompactionEnvSchema = z.object({
  WAREHOUSE_BUCKET: text,
  WAREHOUSE_PREFIX: z._default(z.string(), 'changes/'),
  /** A day is compacted this many hours after it ended (UTC). */
  CLOSED_AFTER_HOURS: positiveInt,
});

/** What the schedule sends (`{}`); an operator may widen the window once, e.g. after a redrive into old days. */
export const CompactionEventSchema = z.object({
  /** Days back from today whose closed partitions are looked at. */
  days: z._default(z.int().check(z.positive()), 7),
});

/** Time kept at the end of an invocation: a partition is not started with less left. */
const STOP_MARGIN_MS = 120_000;

/**
 * The compaction function: hourly, compacts the change log's closed day partitions (./compact.ts) and publishes what it
 * did (`CompactionInputFiles`, `CompactionOutputFiles`, `CompactionInputBytes`, `CompactionOutputBytes`). Partitions
 * it had no time for are left to the next run.
 */
export function createCompactionHandler(
  env: NodeJS.ProcessEnv = process.env,
  options: { s3?: S3Client; clock?: () => number } = {},
) {
  const parsed = CompactionEnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      `compaction configuration: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`,
    );
  }
  const config = parsed.data;
  const logLevel = env.POWERTOOLS_LOG_LEVEL as LogLevel | undefined;
  const logger = new Logger({ serviceName: 'cdc-sync-compaction', ...(logLevel ? { logLevel } : {}) });
  const metrics = new Metrics({ namespace: 'cdc-sync', serviceName: 'cdc-sync-compaction' });
  const tracer = new Tracer({ serviceName: 'cdc-sync-compaction' });
  const clock = options.clock ?? Date.now;
  const compactor = new ChangeLogCompactor(options.s3 ?? new S3Client({}), {
    bucket: config.WAREHOUSE_BUCKET,
    prefix: config.WAREHOUSE_PREFIX,
    closedAfterHours: config.CLOSED_AFTER_HOURS,
  });

  const handle = async (event: unknown, context: Context): Promise<CompactionSummary> => {
    const parsedEvent = CompactionEventSchema.safeParse(event ?? {});
    if (!parsedEvent.success) throw new ConfigError(`compaction event: ${parsedEvent.error.message}`);
    const now = clock();
    const deadline = now + context.getRemainingTimeInMillis() - STOP_MARGIN_MS;
    const summary = await compactor.run(now, parsedEvent.data.days, deadline, clock);
    metrics.addMetric('CompactionInputFiles', MetricUnit.Count, summary.inputFiles);
    metrics.addMetric('CompactionOutputFiles', MetricUnit.Count, summary.outputFiles);
    metrics.addMetric('CompactionInputBytes', MetricUnit.Bytes, summary.inputBytes);
    metrics.addMetric('CompactionOutputBytes', MetricUnit.Bytes, summary.outputBytes);
    logger.info('compaction done', { ...summary });
    return summary;
  };

  return middy(handle)
    .use(captureLambdaHandler(tracer, { captureResponse: false }))
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics));
}
