import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { createEnricher } from '../core/enrich';
import { ConfigError } from '../core/errors';
import { type BatchItemFailure, type BatchResult, countsOf, processBatch } from '../core/pipeline';
import { isUnreconciled } from '../core/schema-history';
import type { Lane } from '../core/types';
import { loadLaneEnv } from './config';
import {
  type ClientConfigFor,
  createClients,
  createLaneDeps,
  type LaneDepsOptions,
  type SinkFactory,
} from './lane-deps';
import { createObservability, recordBatchMetrics } from './observability';

/** What a lane returns to the event source mapping (the Kafka partial batch response). */
export interface LaneResponse {
  batchItemFailures: BatchItemFailure[];
}

function summary(result: BatchResult) {
  return {
    ...countsOf(result),
    batchItemFailures: result.batchItemFailures.length,
    sinkWriteMs: result.sinkWriteMs,
    partitions: result.partitions,
  };
}

/**
 * A lane's Lambda handler: configuration parsed and clients built once at cold start (a bad variable fails here,
 * with its name), the pure core per invocation, Powertools logging/metrics/tracing around it via middy.
 */
export interface LaneHandlerOptions {
  /** Called with every batch's full result (local runner and invoke CLI report from it). */
  onBatch?: (result: BatchResult) => void;
  /** Reads a secret's value (default: Powertools Parameters' cached getSecret). */
  readSecret?: (arn: string) => Promise<string>;
  /** `redrive` for records coming back from the dead-letter queue (tools/redrive.ts). */
  mode?: 'stream' | 'redrive';
  /** Where incremental snapshot signals go instead of the signals queue the environment names (local runs). */
  signaller?: LaneDepsOptions['signaller'];
  /** AWS client settings per service (tools running a lane on a machine point the clients at emulators). */
  clientConfig?: ClientConfigFor;
}

/** The salt stays in Secrets Manager; Powertools caches it, and it never rotates (hashes must stay comparable). */
async function readSecretValue(arn: string): Promise<string> {
  const { getSecret } = await import('@aws-lambda-powertools/parameters/secrets');
  const value = await getSecret<string>(arn, { maxAge: 3600 });
  if (typeof value !== 'string') throw new ConfigError(`PII_HASH_SALT_SECRET_ARN: secret ${arn} has no string value`);
  return value;
}

/**
 * A salt kept in Secrets Manager, read once: the read starts now (at cold start, so the first invocation rarely
 * waits), and a failed read is tried again by the next call.
 */
export function secretSalt(arn: string, read: (arn: string) => Promise<string>): () => Promise<string> {
  let salt: Promise<string> | undefined;
  const load = (): Promise<string> => {
    salt ??= read(arn).catch((error: unknown) => {
      salt = undefined;
      throw error;
    });
    return salt;
  };
  load().catch(() => undefined);
  return load;
}

export function createLaneHandler<L extends Lane>(
  lane: L,
  sink: SinkFactory<L>,
  env: NodeJS.ProcessEnv = process.env,
  options: LaneHandlerOptions = {},
) {
  const config = loadLaneEnv(lane, env);
  const { logger, metrics, tracer } = createObservability(lane, env);
  const deps = createLaneDeps(
    lane,
    config,
    createClients((client) => tracer.captureAWSv3Client(client), options.clientConfig),
    sink,
    options.signaller ? { signaller: options.signaller } : {},
  );
  if (options.mode) deps.mode = options.mode;

  const handle = async (event: unknown, _context: Context): Promise<LaneResponse> => {
    const result = await processBatch(event, deps);
    recordBatchMetrics(metrics, result);
    options.onBatch?.(result);
    for (const change of result.schemaChanges) {
      // One line per table schema change this lane registered first: what changed, column by column.
      const log = isUnreconciled(change) ? logger.warn.bind(logger) : logger.info.bind(logger);
      log('schema changed', { schemaChange: change });
    }
    if (result.error || result.fatal) {
      logger.error('batch partly failed; the event source mapping will retry', {
        ...summary(result),
        error: { code: (result.fatal ?? result.error)?.code, message: (result.fatal ?? result.error)?.message },
        failures: result.batchItemFailures,
      });
    } else {
      logger.info('batch done', summary(result));
    }
    if (result.parked.length > 0) {
      // The KeysParked alarm fires; `npm run redrive -- <lane> --parked` replays their changes in order.
      logger.warn('keys parked: their changes go to the dead-letter queue, in order, until redriven', {
        parked: result.parked,
      });
    }
    if (result.notParked.length > 0) {
      logger.error('keys not parked: their partition is retried until the retries run out', {
        notParked: result.notParked,
      });
    }
    if (result.deadLetters.length > 0) {
      // One line per batch, by Kafka coordinates, so a dead letter can be found from the log and vice versa.
      logger.warn('records dead-lettered', {
        deadLetters: result.deadLetters.slice(0, 100),
        total: result.deadLetters.length,
      });
    }
    if (result.fatal) throw result.fatal;
    if (result.error && !config.REPORT_BATCH_ITEM_FAILURES) throw result.error;
    return { batchItemFailures: result.batchItemFailures };
  };

  const handler = middy(handle)
    .use(captureLambdaHandler(tracer, { captureResponse: false }))
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics));
  const saltArn = config.PII_HASH_SALT_SECRET_ARN;
  if (saltArn) {
    // PII columns are hashed with a salt kept in Secrets Manager: until it is read, the lane's enricher (built
    // without it) must not see a batch. A failed read fails the invocation (the event source mapping retries it).
    const salt = secretSalt(saltArn, options.readSecret ?? readSecretValue);
    let salted = false;
    handler.before(async function loadPiiSalt() {
      if (salted) return;
      deps.enricher = createEnricher(config.TABLE_RULES, { lane, salt: await salt() });
      salted = true;
    });
  }
  /** Closes the sink's connections (Redis) so a local process can exit; Lambda never calls it. */
  const close = () => deps.close();
  return Object.assign(handler, { close });
}
