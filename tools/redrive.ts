/**
 * npm run redrive -- <lane> [--parked [--key <key>]] [--max <n>] [--json] [--aws] [--state <dir>]
 *
 * Puts a lane's dead letters back through the lane (after the cause was fixed: a decoder release, a config change).
 * Locally (default) it reads the DLQ of `npm run invoke`'s state (.local/invoke); --aws uses the lane's environment
 * variables (DLQ_URL, DEDUPE_TABLE_NAME and the rest, see functions/shared/config.ts) and the default AWS credentials.
 * Letters whose records now go through are deleted; records still bad are dead-lettered again with their new reason.
 * PARKED letters are left to --parked, which replays each parked key's changes in order and unparks the key.
 */
import { resolve } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDedupeStore } from '../functions/adapters/dynamodb-dedupe-store';
import type { BatchResult } from '../functions/core/pipeline';
import { LANES, type Lane } from '../functions/core/types';
import { loadLaneEnv } from '../functions/shared/config';
import type { SinkFactory } from '../functions/shared/lane-deps';
import { createLaneHandler } from '../functions/shared/lane-handler';
import { parseFlagsOrExit } from './lib/args';
import { fail, lambdaContext, reserveStdout } from './lib/cli';
import { SINKS } from './lib/lanes';
import { redriveDeadLetters, redriveParkedKeys } from './lib/redrive';
import { localClientConfig } from './local/aws-clients';
import { startLocalServices } from './local/services';

const USAGE =
  'usage: npm run redrive -- <warehouse|cache|audit> [--parked [--key <key>]] [--max <n>] [--json] [--aws] [--state <dir>]';

const FLAGS = {
  parked: { type: 'boolean' },
  key: { type: 'string' },
  max: { type: 'string' },
  json: { type: 'boolean' },
  aws: { type: 'boolean' },
  state: { type: 'string' },
} as const;

async function main(): Promise<void> {
  const out = reserveStdout();
  const { positionals, values: flags } = parseFlagsOrExit(process.argv.slice(2), FLAGS, USAGE);
  const [lane] = positionals;
  if (!lane || !LANES.includes(lane as Lane)) fail(USAGE);
  if (flags.key !== undefined && !flags.parked) fail(`--key names a parked key: it goes with --parked\n${USAGE}`);
  const services = flags.aws
    ? undefined
    : await startLocalServices({
        dir: resolve(flags.state ?? '.local/invoke'),
        redis: 'auto',
      });
  const env = services ? { ...process.env, ...services.laneEnv(lane as Lane) } : process.env;
  const queueUrl = env.DLQ_URL;
  if (!queueUrl) fail('DLQ_URL is not set (see functions/shared/config.ts)');
  let last: BatchResult | undefined;
  const handler = createLaneHandler(lane as Lane, SINKS[lane as Lane] as SinkFactory<Lane>, env, {
    clientConfig: localClientConfig(env),
    mode: 'redrive',
    onBatch: (r) => (last = r),
  });
  const options = {
    sqs: services?.clients.sqs ?? new SQSClient({}),
    s3: services?.clients.s3 ?? new S3Client({}),
    queueUrl,
    max: flags.max !== undefined ? Number(flags.max) : undefined,
    run: async (event: Parameters<typeof handler>[0]) => {
      last = undefined;
      await handler(event, lambdaContext(`cdc-sync-${lane}-redrive`) as never).catch(() => undefined);
      if (!last) throw new Error('the lane did not process the redriven records');
      return last;
    },
  };
  try {
    if (flags.parked) {
      const config = loadLaneEnv(lane as Lane, env);
      const dedupe = new DynamoDedupeStore(services?.clients.dynamodb ?? new DynamoDBClient({}), {
        tableName: config.DEDUPE_TABLE_NAME,
        ttlDays: config.CHECKPOINT_TTL_DAYS,
      });
      const summary = await redriveParkedKeys({ ...options, lane: lane as Lane, dedupe, key: flags.key });
      out(flags.json ? `${JSON.stringify({ lane, ...summary })}\n` : `${lane}: ${JSON.stringify(summary)}\n`);
      process.exitCode = summary.keys.every((k) => k.outcome === 'unparked' || k.outcome === 'not-parked') ? 0 : 1;
    } else {
      const summary = await redriveDeadLetters(options);
      out(flags.json ? `${JSON.stringify({ lane, ...summary })}\n` : `${lane}: ${JSON.stringify(summary)}\n`);
      process.exitCode = summary.kept > 0 ? 1 : 0;
    }
  } finally {
    await handler.close();
    await services?.stop();
  }
}

await main();
