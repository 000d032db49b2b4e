/**
 * npm run backfill -- <table…> [--where <sql>] [--env <env> [--source <name>]] [--json] [--timeout <s>]
 *
 * Re-reads tables through the connector (Debezium's incremental snapshot: chunked by key, de-duplicated against the
 * change stream) so every row reaches every sink again in its current shape, waits until the snapshot completed and
 * prints the rows re-read per table. Without --env it signals the local `npm start` that is running (found through
 * `.local/run.json`); with --env, the deployed environment's connector through its Kafka signal channel.
 *
 * Exit code 0 completed, 1 aborted by the connector, 2 usage error, no run found, unknown table, or timeout.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { SSMClientConfig } from '@aws-sdk/client-ssm';
import type { SignallingParameter } from '../lib/config/topics';
import { reserveStdout } from './lib/cli';
import { backfill, localTransport, SignallingError, type SignalTransport } from './lib/signalling';
import { RUN_FILE } from './local/runner/control';

export const USAGE = `usage: npm run backfill -- <table…> [options]

Re-reads the tables through the connector (an incremental snapshot) and waits until every row was re-read.
Tables are schema.table, or a name in the run's schema.

  --where <sql>     only rows matching this condition (Debezium additional-conditions), for every table given
  --env <env>       a deployed environment (dev, staging, prod) instead of the local npm start
  --source <name>   with --env: which source, when the environment has several
  --timeout <s>     give up waiting after this long (default 600)
  --json            print one JSON object: {"id", "status", "tables": {"<table>": rowsReRead}}
  --help            this text`;

/** The parsed command line. */
export interface BackfillOptions {
  tables: string[];
  where?: string;
  env?: string;
  source?: string;
  timeoutMs: number;
  json: boolean;
}

/** Parses the arguments; throws SignallingError (exit 2) on a bad command line. */
export function parseBackfillArgs(argv: string[]): BackfillOptions | 'help' {
  let parsed: ReturnType<typeof parseArgs<{ allowPositionals: true; strict: true; options: typeof FLAGS }>>;
  try {
    parsed = parseArgs({ args: argv, options: FLAGS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new SignallingError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  if (positionals.length === 0) throw new SignallingError('name at least one table');
  const timeoutS = values.timeout === undefined ? 600 : Number(values.timeout);
  if (!(timeoutS > 0))
    throw new SignallingError(`--timeout must be a positive number of seconds, got "${values.timeout}"`);
  if (values.source !== undefined && values.env === undefined) throw new SignallingError('--source needs --env');
  return {
    tables: positionals,
    ...(values.where !== undefined ? { where: values.where } : {}),
    ...(values.env !== undefined ? { env: values.env } : {}),
    ...(values.source !== undefined ? { source: values.source } : {}),
    timeoutMs: timeoutS * 1000,
    json: values.json ?? false,
  };
}

const FLAGS = {
  where: { type: 'string' },
  env: { type: 'string' },
  source: { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean' },
} as const;

/**
 * The environment's region and signalling parameter (bootstrap brokers, each source's signal and notification
 * topics), read from SSM with the SDK's client: its signing, its standard retry mode for throttling and network
 * blips. Credentials from the default chain (environment variables, `AWS_PROFILE`, SSO, …). `ssm` overrides the
 * client's configuration (the tests point it at a local endpoint). Any failure is a SignallingError (one line, exit 2).
 */
export async function readSignalling(
  env: string,
  ssm: SSMClientConfig = {},
): Promise<{ region: string; signalling: SignallingParameter }> {
  const [{ environmentConfig, signallingParameterName }, { GetParameterCommand, SSMClient }] = await Promise.all([
    import('../lib/config'),
    import('@aws-sdk/client-ssm'),
  ]);
  let config: ReturnType<typeof environmentConfig>;
  try {
    config = environmentConfig(env);
  } catch (error) {
    throw new SignallingError((error as Error).message);
  }
  const name = signallingParameterName(config);
  const client = new SSMClient({ region: config.region, retryMode: 'standard', ...ssm });
  let value: string | undefined;
  try {
    value = (await client.send(new GetParameterCommand({ Name: name }))).Parameter?.Value;
  } catch (error) {
    throw new SignallingError(`cannot read ${name} in ${config.region}: ${(error as Error).message}`);
  } finally {
    client.destroy();
  }
  if (!value) throw new SignallingError(`cannot read ${name} in ${config.region}: the parameter has no value`);
  return { region: config.region, signalling: JSON.parse(value) as SignallingParameter };
}

/** The deployed environment's connector, over MSK with IAM auth. */
async function environmentTransport(options: BackfillOptions & { env: string }): Promise<SignalTransport> {
  const { region, signalling } = await readSignalling(options.env);
  const [{ Kafka, logLevel }, { mskIamTokenProvider }, { kafkaTransport }] = await Promise.all([
    import('kafkajs'),
    import('../lib/custom-resources/topics/index'),
    import('./lib/signalling'),
  ]);
  const kafka = new Kafka({
    clientId: 'cdc-sync-backfill',
    brokers: signalling.bootstrapServers.split(','),
    ssl: true,
    sasl: { mechanism: 'oauthbearer', oauthBearerProvider: mskIamTokenProvider(region) },
    logLevel: logLevel.WARN,
  });
  return kafkaTransport({ kafka, signalling, ...(options.source ? { source: options.source } : {}) });
}

/** The command, with its ways out injected (the tests pass a fake transport). */
export async function main(
  argv: string[],
  io: {
    out: (text: string) => void;
    err: (text: string) => void;
    transport?: (options: BackfillOptions) => Promise<SignalTransport>;
  },
): Promise<number> {
  let options: BackfillOptions | 'help';
  try {
    options = parseBackfillArgs(argv);
  } catch (error) {
    io.err(`npm run backfill: ${(error as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (options === 'help') {
    io.out(`${USAGE}\n`);
    return 0;
  }
  const open =
    io.transport ??
    ((o: BackfillOptions) =>
      o.env === undefined
        ? localTransport(process.env.CDC_SYNC_RUN_FILE ?? RUN_FILE)
        : environmentTransport({ ...o, env: o.env }));
  let transport: SignalTransport | undefined;
  try {
    transport = await open(options);
    const json = options.json;
    const result = await backfill(transport, {
      onSent: (signal) => {
        if (!json) io.err(`incremental snapshot ${signal.id} asked of ${transport?.target}; waiting for it…\n`);
      },
      tables: options.tables,
      ...(options.where !== undefined ? { where: options.where } : {}),
      timeoutMs: options.timeoutMs,
    });
    if (options.json) io.out(`${JSON.stringify(result)}\n`);
    else {
      const width = Math.max(5, ...Object.keys(result.tables).map((t) => t.length));
      io.out(`incremental snapshot ${result.id}: ${result.status.toUpperCase()}\n`);
      for (const [table, rows] of Object.entries(result.tables)) {
        io.out(`  ${table.padEnd(width)}  ${rows.toLocaleString('en-US')} rows re-read\n`);
      }
    }
    return result.status === 'completed' ? 0 : 1;
  } catch (error) {
    if (error instanceof SignallingError) {
      io.err(`npm run backfill: ${error.message}\n`);
      return 2;
    }
    throw error;
  } finally {
    await transport?.close();
  }
}

// Run as a command (not imported by a test).
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = reserveStdout();
  const code = await main(process.argv.slice(2), { out, err: (t) => void process.stderr.write(t) });
  process.exit(code);
}
