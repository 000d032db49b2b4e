/**
 * npm run smoke -- [--env <env> --redis-url <url> [--source <name>] [--warehouse-bucket <b>] [--audit-bucket <b>]]
 *                  [--timeout <s>] [--json]
 *
 * A canary row through every sink: written into the source's heartbeat table, waited for in the cache, the warehouse
 * and the audit log (latency from the commit to each), then deleted and waited for again (tools/smoke/smoke.ts).
 * Without --env it smokes the local `npm start` that is running, found through `.local/run.json` and the coordinates
 * it announces there; with --env a deployed environment (tools/smoke/aws.ts), from a host inside its VPC.
 *
 * Exit code 0 every sink showed the canary and its delete in time, 1 one did not (named), 2 a bad command line, no run
 * found, or a smoke test that could not start (no heartbeat table, source or sink unreachable), 130 interrupted.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CommandLine, parseFlags, UsageError } from './lib/args';
import { reserveStdout } from './lib/cli';
import { RUN_FILE, type RunCoordinates, type RunFile } from './local/runner/control';
import type { SmokeAwsClients } from './smoke/aws';
import { SmokeSetupError } from './smoke/canary';
import type { SmokeOptions, SmokeResult, SmokeTarget } from './smoke/smoke';

export const USAGE = `usage: npm run smoke -- [options]

Writes a canary row into the source's heartbeat table, waits until the cache, the warehouse and the audit log hold
it (reporting commit → seen latency per sink), deletes it and waits until they show the delete.
Without --env: the local npm start that is running.

  --env <env>               a deployed environment (dev, staging, prod); run it inside the environment's VPC
  --redis-url <url>         with --env: the ElastiCache endpoint, rediss://<host>:6379 (required with --env)
  --source <name>           with --env: which PostgreSQL source, when the environment has several
  --warehouse-bucket <b>    with --env: the warehouse bucket (default: looked up in the data stack)
  --audit-bucket <b>        with --env: the audit bucket (default: looked up in the data stack)
  --timeout <s>             how long each sink may take, for the canary and again for its delete (default 60)
  --json                    print one JSON object: {"ok", "canaryId", "sinks", "deleted"}
  --help                    this text`;

const FLAGS = {
  env: { type: 'string' },
  'redis-url': { type: 'string' },
  source: { type: 'string' },
  'warehouse-bucket': { type: 'string' },
  'audit-bucket': { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean' },
} as const;

/** The parsed command line. */
export interface SmokeCommand {
  env?: string;
  redisUrl?: string;
  source?: string;
  warehouseBucket?: string;
  auditBucket?: string;
  timeoutMs: number;
  json: boolean;
}

const ENV_ONLY = ['redis-url', 'source', 'warehouse-bucket', 'audit-bucket'] as const;

/** Parses the arguments; throws UsageError (exit 2) on a bad command line. */
export function parseSmokeArgs(argv: readonly string[]): SmokeCommand | 'help' {
  const { positionals, values }: CommandLine<typeof FLAGS> = parseFlags(argv, FLAGS);
  if (values.help) return 'help';
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
  const timeoutS = values.timeout === undefined ? 60 : Number(values.timeout);
  if (!(timeoutS > 0 && timeoutS <= 3600)) {
    throw new UsageError(`--timeout must be a number of seconds from 0 to 3600, got "${values.timeout}"`);
  }
  if (values.env === undefined) {
    const given = ENV_ONLY.find((flag) => values[flag] !== undefined);
    if (given) throw new UsageError(`--${given} needs --env (a local run says where its sinks are)`);
  } else if (values['redis-url'] === undefined) {
    throw new UsageError('--env needs --redis-url: the ElastiCache endpoint, reachable inside the VPC');
  } else if (!/^rediss?:\/\//.test(values['redis-url'])) {
    throw new UsageError(`--redis-url must start with redis:// or rediss://, got "${values['redis-url']}"`);
  }
  return {
    ...(values.env !== undefined ? { env: values.env } : {}),
    ...(values['redis-url'] !== undefined ? { redisUrl: values['redis-url'] } : {}),
    ...(values.source !== undefined ? { source: values.source } : {}),
    ...(values['warehouse-bucket'] !== undefined ? { warehouseBucket: values['warehouse-bucket'] } : {}),
    ...(values['audit-bucket'] !== undefined ? { auditBucket: values['audit-bucket'] } : {}),
    timeoutMs: timeoutS * 1000,
    json: values.json ?? false,
  };
}

/** The coordinates of the local run that is going on; a SmokeSetupError when there is none. */
export async function localCoordinates(runFile: string): Promise<RunCoordinates> {
  let run: RunFile;
  try {
    run = JSON.parse(await readFile(runFile, 'utf8')) as RunFile;
  } catch {
    throw new SmokeSetupError(`no local run found (${runFile} is missing): start one with npm start, or use --env`);
  }
  try {
    process.kill(run.pid, 0);
  } catch (error) {
    // EPERM: the process is there, someone else's.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') {
      throw new SmokeSetupError(`no local run found: ${runFile} is left from a run that ended (pid ${run.pid})`);
    }
  }
  if (!run.coordinates) {
    throw new SmokeSetupError(`the local run (pid ${run.pid}) does not say where its sinks are: restart npm start`);
  }
  return run.coordinates;
}

export interface SmokeIo {
  out: (text: string) => void;
  err: (text: string) => void;
  /** @default CDC_SYNC_RUN_FILE or .local/run.json */
  runFile?: string;
  /** With --env: the AWS clients (tests mock them). */
  awsClients?: (region: string) => SmokeAwsClients;
  /** Runs the smoke test against a target (tests of the command line pass a stand-in). */
  smoke?: (target: SmokeTarget, options: SmokeOptions) => Promise<SmokeResult>;
  /** Ctrl-C: aborts the waiting (the canary row is deleted all the same). */
  signal?: AbortSignal;
}

/** The command, with its ways out injected. */
export async function main(argv: string[], io: SmokeIo): Promise<number> {
  let command: SmokeCommand | 'help';
  try {
    command = parseSmokeArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err(`npm run smoke: ${error.message}\n\n${USAGE}\n`);
    return 2;
  }
  if (command === 'help') {
    io.out(`${USAGE}\n`);
    return 0;
  }
  const { smokeTarget, localTarget, renderSmoke } = await import('./smoke/smoke');
  const options: SmokeOptions = {
    timeoutMs: command.timeoutMs,
    pollMs: command.env === undefined ? 100 : 250,
    ...(command.json ? {} : { log: (message: string) => io.err(`${message}\n`) }),
    ...(io.signal ? { signal: io.signal } : {}),
  };
  let target: SmokeTarget | undefined;
  let where: string;
  try {
    if (command.env === undefined) {
      target = localTarget(await localCoordinates(io.runFile ?? process.env.CDC_SYNC_RUN_FILE ?? RUN_FILE));
      where = 'the local run';
    } else {
      // Loaded only for a deployed environment: the local path needs no CloudFormation or Secrets Manager client.
      const [{ environmentConfig }, aws] = await Promise.all([import('../lib/config'), import('./smoke/aws')]);
      let config: ReturnType<typeof environmentConfig>;
      try {
        config = environmentConfig(command.env);
      } catch (error) {
        throw new SmokeSetupError((error as Error).message);
      }
      target = await aws.awsTarget(config, (io.awsClients ?? aws.createSmokeAwsClients)(config.region), {
        redisUrl: command.redisUrl as string,
        ...(command.source !== undefined ? { source: command.source } : {}),
        ...(command.warehouseBucket !== undefined ? { warehouseBucket: command.warehouseBucket } : {}),
        ...(command.auditBucket !== undefined ? { auditBucket: command.auditBucket } : {}),
      });
      where = config.name;
    }
    const result = await (io.smoke ?? smokeTarget)(target, options);
    const table = `${target.source.topicPrefix}.${target.source.heartbeatTable}, ${where}`;
    io.out(command.json ? `${JSON.stringify(result)}\n` : renderSmoke(result, table, command.timeoutMs));
    if (io.signal?.aborted) return 130;
    return result.ok ? 0 : 1;
  } catch (error) {
    if (error instanceof SmokeSetupError) {
      io.err(`npm run smoke: ${error.message}\n`);
      return 2;
    }
    throw error;
  } finally {
    target?.s3.destroy();
  }
}

// Run as a command (not imported by a test).
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = reserveStdout();
  const interrupt = new AbortController();
  process.once('SIGINT', () => interrupt.abort());
  process.once('SIGTERM', () => interrupt.abort());
  const code = await main(process.argv.slice(2), {
    out,
    err: (t) => void process.stderr.write(t),
    signal: interrupt.signal,
  });
  process.exit(code);
}
