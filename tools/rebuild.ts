/**
 * npm run rebuild -- <cache|warehouse> [--tables <t,…>] [--as-of <time>] [--env <env> …] [--json]
 *
 * Restores a lost sink from the audit log while its lane keeps running (tools/rebuild/rebuild.ts), or with --as-of
 * writes the tables' state at that time into a space of its own. Without --env: the local `npm start` that is running,
 * found through `.local/run.json` and the coordinates it announces there (as `npm run smoke` finds it); with --env a
 * deployed environment (tools/rebuild/aws.ts), from a host inside its VPC for the cache.
 *
 * Exit code 0 rebuilt, 1 the rebuild failed (a broken audit chain, the audit lane too far behind, a sink refusing),
 * 2 a bad command line, no run found or a rebuild that cannot start (unknown table, missing sink).
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { createRedis, type RedisLike } from '../functions/adapters/redis-cache-sink';
import { type CommandLine, parseFlags, UsageError } from './lib/args';
import { reserveStdout } from './lib/cli';
import { RUN_FILE, type RunCoordinates } from './local/runner/control';
import type { RebuildAwsClients } from './rebuild/aws';
import { dynamoCheckpoints } from './rebuild/checkpoints';
import { parseAsOf } from './rebuild/order';
import {
  REBUILD_SINKS,
  type RebuildOptions,
  RebuildSetupError,
  type RebuildSink,
  type RebuildSummary,
  type TableSummary,
} from './rebuild/rebuild';
import { localCoordinates } from './smoke';
import { SmokeSetupError } from './smoke/canary';

export const USAGE = `usage: npm run rebuild -- <cache|warehouse> [options]

Restores the sink from the audit log while its lane keeps running: every chain verified as it is read, each table's
changes replayed in source order through the sink's own writes (a newer change the lane applies meanwhile wins).
Without --env: the local npm start that is running.

  --tables <t,…>            only these tables (pg.public.orders, or public.orders, orders); default every table
  --as-of <time>            the tables' state at that time (ISO, with a zone: 2024-05-01T12:00:00Z), written beside
                            the live sink: cache prefix <prefix>-asof-<time>, warehouse prefix asof=<time>/<prefix>
  --env <env>               a deployed environment (dev, staging, prod)
  --redis-url <url>         with --env, for the cache: the ElastiCache endpoint, rediss://<host>:6379
  --warehouse-bucket <b>    with --env: the warehouse bucket (default: looked up in the data stack)
  --audit-bucket <b>        with --env: the audit bucket (default: looked up in the data stack)
  --dedupe-table <t>        with --env: the lanes' dedupe table (default: looked up in the data stack)
  --wait <s>                how long to wait for the audit lane to catch up with the sink's lane (default 60)
  --json                    print one JSON object: {"sink", "tables": {<table>: {"changes", "applied",
                            "refusedOlder", …}}, "asOf", "ms"}
  --help                    this text`;

const FLAGS = {
  tables: { type: 'string' },
  'as-of': { type: 'string' },
  env: { type: 'string' },
  'redis-url': { type: 'string' },
  'warehouse-bucket': { type: 'string' },
  'audit-bucket': { type: 'string' },
  'dedupe-table': { type: 'string' },
  wait: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean' },
} as const;

const ENV_ONLY = ['redis-url', 'warehouse-bucket', 'audit-bucket', 'dedupe-table'] as const;

/** The parsed command line. */
export interface RebuildCommand {
  sink: RebuildSink;
  tables?: string[];
  asOf?: number;
  env?: string;
  redisUrl?: string;
  warehouseBucket?: string;
  auditBucket?: string;
  dedupeTable?: string;
  waitMs: number;
  json: boolean;
}

/** Parses the arguments; throws UsageError (exit 2) on a bad command line. `now` decides what is in the future. */
export function parseRebuildArgs(argv: readonly string[], now = Date.now()): RebuildCommand | 'help' {
  const { positionals, values }: CommandLine<typeof FLAGS> = parseFlags(argv, FLAGS);
  if (values.help) return 'help';
  const [sink, extra] = positionals;
  if (sink === undefined) throw new UsageError('name the sink to rebuild: cache or warehouse');
  if (!REBUILD_SINKS.includes(sink as RebuildSink)) {
    throw new UsageError(
      `the sink is cache or warehouse, got "${sink}" (the audit log is what sinks are rebuilt from)`,
    );
  }
  if (extra !== undefined) throw new UsageError(`unexpected argument ${extra}`);
  let tables: string[] | undefined;
  if (values.tables !== undefined) {
    tables = values.tables.split(',').map((t) => t.trim());
    if (tables.some((t) => t === ''))
      throw new UsageError(`--tables takes table names separated by commas, got "${values.tables}"`);
  }
  let asOf: number | undefined;
  if (values['as-of'] !== undefined) {
    const parsed = parseAsOf(values['as-of'], now);
    if (typeof parsed === 'string') throw new UsageError(parsed);
    asOf = parsed;
  }
  const waitS = values.wait === undefined ? 60 : Number(values.wait);
  if (!(waitS >= 0 && waitS <= 3600)) {
    throw new UsageError(`--wait must be a number of seconds from 0 to 3600, got "${values.wait}"`);
  }
  if (values.env === undefined) {
    const given = ENV_ONLY.find((flag) => values[flag] !== undefined);
    if (given) throw new UsageError(`--${given} needs --env (a local run says where its sinks are)`);
  } else if (values['redis-url'] !== undefined && !/^rediss?:\/\//.test(values['redis-url'])) {
    throw new UsageError(`--redis-url must start with redis:// or rediss://, got "${values['redis-url']}"`);
  }
  return {
    sink: sink as RebuildSink,
    ...(tables ? { tables } : {}),
    ...(asOf !== undefined ? { asOf } : {}),
    ...(values.env !== undefined ? { env: values.env } : {}),
    ...(values['redis-url'] !== undefined ? { redisUrl: values['redis-url'] } : {}),
    ...(values['warehouse-bucket'] !== undefined ? { warehouseBucket: values['warehouse-bucket'] } : {}),
    ...(values['audit-bucket'] !== undefined ? { auditBucket: values['audit-bucket'] } : {}),
    ...(values['dedupe-table'] !== undefined ? { dedupeTable: values['dedupe-table'] } : {}),
    waitMs: waitS * 1000,
    json: values.json ?? false,
  };
}

/**
 * A local run's coordinates, and where its lanes' checkpoints are when the run file says (`dedupe`: the dynalite
 * endpoint and table; without it a live warehouse rebuild cannot run, see rebuild.ts).
 */
export type LocalRebuildCoordinates = RunCoordinates & { dedupe?: { endpoint: string; table: string } };

/** The rebuild's clients and places for a local run. */
export function localRebuildTarget(
  coordinates: LocalRebuildCoordinates,
): Omit<RebuildOptions, 'sink' | 'tables' | 'asOf'> {
  const { s3, cache, dedupe } = coordinates;
  const aws = {
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  };
  return {
    s3: new S3Client({ ...aws, forcePathStyle: true }),
    audit: coordinates.audit,
    warehouse: coordinates.warehouse,
    ...(cache ? { cache: { redis: createRedis(cache.url, false), prefix: cache.prefix } } : {}),
    ...(dedupe
      ? { checkpoints: dynamoCheckpoints(new DynamoDBClient({ ...aws, endpoint: dedupe.endpoint }), dedupe.table) }
      : {}),
  };
}

/** The summary for a human: one line per table. */
export function renderRebuild(summary: RebuildSummary): string {
  const what = summary.asOf ? `as of ${summary.asOf}, into ${summary.target}` : `into ${summary.target}`;
  const lines = [`rebuilt the ${summary.sink} ${what} in ${(summary.ms / 1000).toFixed(1)} s`];
  const detail = (t: TableSummary) =>
    summary.sink === 'cache'
      ? `${t.applied} applied, ${t.refusedOlder} refused as older${t.skipped ? `, ${t.skipped} without a key` : ''}${t.repaired ? `, ${t.repaired} rows repaired` : ''}`
      : `${t.applied} restored, ${t.present ?? 0} already there, ${t.pendingInLane ?? 0} left to the lane${t.rejected ? `, ${t.rejected} rejected` : ''}`;
  for (const [table, t] of Object.entries(summary.tables)) lines.push(`  ${table}: ${t.changes} changes: ${detail(t)}`);
  if (Object.keys(summary.tables).length === 0) lines.push('  the audit log holds no changes of these tables');
  return `${lines.join('\n')}\n`;
}

export interface RebuildIo {
  out: (text: string) => void;
  err: (text: string) => void;
  /** @default CDC_SYNC_RUN_FILE or .local/run.json */
  runFile?: string;
  /** With --env: the AWS clients (tests mock them). */
  awsClients?: (region: string) => RebuildAwsClients;
  now?: () => number;
}

/** The command, with its ways out injected. */
export async function main(argv: string[], io: RebuildIo): Promise<number> {
  let command: RebuildCommand | 'help';
  try {
    command = parseRebuildArgs(argv, (io.now ?? Date.now)());
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err(`npm run rebuild: ${error.message}\n\n${USAGE}\n`);
    return 2;
  }
  if (command === 'help') {
    io.out(`${USAGE}\n`);
    return 0;
  }
  // Loaded once the command line is good: the rebuild pulls in DuckDB and the sinks.
  const { rebuild } = await import('./rebuild/rebuild');
  let target: Omit<RebuildOptions, 'sink' | 'tables' | 'asOf'> | undefined;
  // Clients handed in (tests) are the caller's to close.
  let owned = true;
  try {
    if (command.env === undefined) {
      const coordinates = await localCoordinates(io.runFile ?? process.env.CDC_SYNC_RUN_FILE ?? RUN_FILE);
      target = localRebuildTarget(coordinates as LocalRebuildCoordinates);
    } else {
      const [{ environmentConfig }, aws] = await Promise.all([import('../lib/config'), import('./rebuild/aws')]);
      let config: ReturnType<typeof environmentConfig>;
      try {
        config = environmentConfig(command.env);
      } catch (error) {
        throw new RebuildSetupError((error as Error).message);
      }
      owned = io.awsClients === undefined;
      target = await aws.awsRebuildTarget(config, (io.awsClients ?? aws.createRebuildAwsClients)(config.region), {
        sink: command.sink,
        ...(command.redisUrl !== undefined ? { redisUrl: command.redisUrl } : {}),
        ...(command.warehouseBucket !== undefined ? { warehouseBucket: command.warehouseBucket } : {}),
        ...(command.auditBucket !== undefined ? { auditBucket: command.auditBucket } : {}),
        ...(command.dedupeTable !== undefined ? { dedupeTable: command.dedupeTable } : {}),
      });
    }
    const summary = await rebuild({
      ...target,
      sink: command.sink,
      ...(command.tables ? { tables: command.tables } : {}),
      ...(command.asOf !== undefined ? { asOf: command.asOf } : {}),
      catchUpTimeoutMs: command.waitMs,
      ...(command.json ? {} : { log: (message: string) => io.err(`${message}\n`) }),
    });
    io.out(command.json ? `${JSON.stringify(summary)}\n` : renderRebuild(summary));
    return 0;
  } catch (error) {
    if (error instanceof RebuildSetupError || error instanceof SmokeSetupError) {
      io.err(`npm run rebuild: ${error.message}\n`);
      return 2;
    }
    io.err(`npm run rebuild: ${(error as Error).message}\n`);
    return 1;
  } finally {
    const redis: RedisLike | undefined = target?.cache?.redis;
    await redis?.quit().catch(() => redis.disconnect());
    if (owned) target?.s3.destroy();
  }
}

// Run as a command (not imported by a test).
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = reserveStdout();
  const code = await main(process.argv.slice(2), { out, err: (t) => void process.stderr.write(t) });
  process.exit(code);
}
