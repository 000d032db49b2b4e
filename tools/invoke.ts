/**
 * npm run invoke -- <lane> <event-file> [--json] [--fresh] [--aws] [--state <dir>]
 *
 * Runs one lane's real handler in-process on an event file (a full MSK event, Kafka messages or a bare Debezium
 * value; see tools/lib/event-files.ts) with a Lambda-like context. Locally (default) it talks to dynalite, s3rver
 * and fauxqs started in this process with state under .local/invoke (so a second invocation of the same event
 * reports duplicates; --fresh starts over) and to Redis (REDIS_URL, else 127.0.0.1:6379, else redis-server).
 * --aws uses real AWS: the lane's environment variables (see functions/shared/config.ts) must be set.
 * --json prints exactly one JSON object on stdout:
 *   {"lane","records","processed","skipped","duplicates","deadLettered","batchItemFailures"}
 */
import { resolve } from 'node:path';
import type { BatchResult } from '../functions/core/pipeline';
import { LANES, type Lane } from '../functions/core/types';
import type { SinkFactory } from '../functions/shared/lane-deps';
import { createLaneHandler } from '../functions/shared/lane-handler';
import { parseFlagsOrExit } from './lib/args';
import { fail, lambdaContext, reserveStdout } from './lib/cli';
import { readEventFile } from './lib/event-files';
import { SINKS } from './lib/lanes';
import { localClientConfig } from './local/aws-clients';
import { startLocalServices } from './local/services';

const USAGE =
  'usage: npm run invoke -- <warehouse|cache|audit> <event-file> [--json] [--fresh] [--aws] [--state <dir>]';

const FLAGS = {
  json: { type: 'boolean' },
  fresh: { type: 'boolean' },
  aws: { type: 'boolean' },
  state: { type: 'string' },
} as const;

async function main(): Promise<void> {
  const out = reserveStdout();
  const { positionals, values: flags } = parseFlagsOrExit(process.argv.slice(2), FLAGS, USAGE);
  const [lane, file] = positionals;
  if (!lane || !file) fail(USAGE);
  if (!LANES.includes(lane as Lane)) fail(`unknown lane "${lane}": expected one of ${LANES.join(', ')}\n${USAGE}`);
  const event = await readEventFile(resolve(file)).catch((error: Error) => fail(error.message));

  const services = flags.aws
    ? undefined
    : await startLocalServices({
        dir: resolve(flags.state ?? '.local/invoke'),
        fresh: flags.fresh ?? false,
        redis: 'auto',
      });
  if (services && lane === 'cache' && !services.redisUrl) fail(`the cache lane needs Redis: ${services.redisProblem}`);
  const env = services ? { ...process.env, ...services.laneEnv(lane as Lane) } : process.env;

  let result: BatchResult | undefined;
  let thrown: unknown;
  let response: unknown;
  let handler: ReturnType<typeof createLaneHandler> | undefined;
  try {
    handler = createLaneHandler(lane as Lane, SINKS[lane as Lane] as SinkFactory<Lane>, env, {
      // Locally the emulators started above; with --aws, whatever AWS_ENDPOINT_URL_<SERVICE> the shell sets.
      clientConfig: localClientConfig(env),
      onBatch: (r) => (result = r),
    });
    response = await handler(event, lambdaContext(`cdc-sync-${lane}`) as never);
  } catch (error) {
    thrown = error;
  } finally {
    await handler?.close();
    await services?.stop();
  }
  if (!result) fail(`the handler failed before processing the batch: ${(thrown as Error)?.message ?? thrown}`, 1);
  const summary = {
    lane,
    records: result.records,
    processed: result.processed,
    skipped: result.skipped,
    duplicates: result.duplicates,
    deadLettered: result.deadLettered,
    batchItemFailures: result.batchItemFailures.length,
  };
  if (flags.json) {
    out(`${JSON.stringify(summary)}\n`);
  } else {
    out(
      [
        `${lane}: ${summary.records} records`,
        `  processed      ${summary.processed}`,
        `  skipped        ${summary.skipped}${
          Object.keys(result.skippedByReason).length
            ? ` (${Object.entries(result.skippedByReason)
                .map(([k, v]) => `${k}: ${v}`)
                .join(', ')})`
            : ''
        }`,
        `  duplicates     ${summary.duplicates}`,
        `  dead-lettered  ${summary.deadLettered}${summary.deadLettered ? ` (queue ${services?.queueUrls[lane as Lane] ?? 'DLQ_URL'})` : ''}`,
        `  failures       ${JSON.stringify((response as { batchItemFailures?: unknown })?.batchItemFailures ?? result.batchItemFailures)}`,
        thrown ? `  the handler threw (the ESM would retry the batch): ${(thrown as Error).message}` : '',
      ]
        .filter(Boolean)
        .join('\n') + '\n',
    );
  }
  process.exitCode = thrown ? 1 : 0;
}

await main();
