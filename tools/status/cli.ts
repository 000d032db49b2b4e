/**
 * npm run status -- [--env <env> [--window <min>] [--serve [--port <n>]]] [--json]
 *
 * One screen for whoever runs the pipeline. With --env, a deployed environment read from the AWS APIs
 * (tools/status/aws.ts): connector states, per lane the rate, offset lag, latency, counts and DLQ depth, failed batches
 * in the on-failure bucket, alarms in ALARM. Without --env, the local `npm start` that is running: its own status page
 * answers the report (found through `.local/run.json`'s `statusUrl`, or `.local/status.json`).
 *
 * Both print a table, or with --json exactly one {@link StatusReport} on stdout. --serve (with --env) serves the page
 * `npm start` shows, fed from AWS, until Ctrl-C.
 *
 * Exit code 0 printed (or served and stopped), 1 the local run answered something that is not a report, 2 usage
 * error, unknown environment, or no local run going on.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CommandLine, parseFlags, UsageError } from '../lib/args';
import { reserveStdout } from '../lib/cli';
import type { AwsClients, EnvironmentStatus } from './aws';
import { formatAge, formatCount } from './format';
import { type StatusReport, StatusReportSchema } from './report';

export const USAGE = `usage: npm run status -- [options]

The pipeline on one screen: sources, lanes, dead-letter queues, failed batches, alarms.
Without --env: the local npm start that is running.

  --env <env>       a deployed environment (dev, staging, prod), read from the AWS APIs
  --window <min>    with --env: minutes the sums, the series and the failed batches cover (default 30)
  --serve           with --env: serve the status page (the one npm start shows) until Ctrl-C
  --port <n>        with --serve: the port (default: any free one)
  --json            print one JSON status report instead of the table
  --help            this text`;

const FLAGS = {
  env: { type: 'string' },
  window: { type: 'string' },
  serve: { type: 'boolean' },
  port: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean' },
} as const;

/** The parsed command line. */
export interface StatusOptions {
  env?: string;
  windowMinutes: number;
  serve: boolean;
  port?: number;
  json: boolean;
}

/** Parses the arguments; throws UsageError (exit 2) on a bad command line. */
export function parseStatusArgs(argv: readonly string[]): StatusOptions | 'help' {
  const { positionals, values }: CommandLine<typeof FLAGS> = parseFlags(argv, FLAGS);
  if (values.help) return 'help';
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
  const windowMinutes = values.window === undefined ? 30 : Number(values.window);
  // One point a minute, and the page keeps at most 600 (report.ts MAX_POINTS).
  if (!Number.isInteger(windowMinutes) || windowMinutes < 1 || windowMinutes > 600) {
    throw new UsageError(`--window must be a whole number of minutes from 1 to 600, got "${values.window}"`);
  }
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65_535)) {
    throw new UsageError(`--port must be a port number, got "${values.port}"`);
  }
  if (values.env === undefined) {
    if (values.serve) throw new UsageError('--serve needs --env (a local npm start serves its own page)');
    if (values.window !== undefined) throw new UsageError('--window needs --env');
  }
  if (port !== undefined && !values.serve) throw new UsageError('--port needs --serve');
  return {
    ...(values.env !== undefined ? { env: values.env } : {}),
    windowMinutes,
    serve: values.serve ?? false,
    ...(port !== undefined ? { port } : {}),
    json: values.json ?? false,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The screen
// ---------------------------------------------------------------------------------------------------------------

const num = formatCount;
const ago = formatAge;

/** Left-aligned columns, two spaces apart; numbers (`right`) right-aligned. */
function table(header: string[], rows: string[][], right: ReadonlySet<number> = new Set()): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** The report as a screen of text; `extra` (a deployed environment) adds the queues and the failure bucket. */
export function renderStatus(
  report: StatusReport,
  extra?: Omit<EnvironmentStatus, 'report'>,
  windowMinutes = 30,
): string {
  const out: string[] = [];
  const scope = report.phase === 'live' ? `, counts over the last ${windowMinutes} min` : '';
  out.push(`cdc-sync ${report.environment} — ${report.phase} — ${report.generatedAt}${scope}`, '');

  out.push(
    ...table(
      ['SOURCE', 'STATE', 'FRESHNESS', report.phase === 'live' ? 'EMITTED~' : 'EMITTED', 'DETAIL'],
      report.sources.map((s) => [
        s.name,
        s.state,
        ago(s.freshnessMs),
        num(s.emitted),
        [s.snapshot ? `${s.snapshot.kind} snapshot ${s.snapshot.table ?? ''}`.trim() : '', s.detail ?? '']
          .filter(Boolean)
          .join('; '),
      ]),
      new Set([2, 3]),
    ),
  );
  if (report.sources.length === 0) out.push('(no sources)');
  out.push('');

  const laneRows = report.lanes.map((l) => [
    l.lane,
    l.recordsPerSec.toFixed(l.recordsPerSec < 10 ? 1 : 0),
    num(l.lag),
    ago(l.freshnessMs),
    num(l.latencyMs?.p50),
    num(l.latencyMs?.p99),
    num(l.processed),
    num(l.duplicates),
    num(l.skipped),
    num(l.deadLettered),
    num(l.retried),
    num(l.dlqDepth),
  ]);
  out.push(
    ...table(
      [
        'LANE',
        'REC/S',
        'LAG',
        'FRESHNESS',
        'P50 MS',
        'P99 MS',
        'PROCESSED',
        'DUPS',
        'SKIPPED',
        'DEAD',
        'RETRIED',
        'DLQ',
      ],
      laneRows,
      new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
    ),
  );
  for (const l of report.lanes) if (l.lastError) out.push(`  ! ${l.lane}: ${l.lastError}`);
  out.push('');

  if (extra) {
    out.push('DEAD-LETTER QUEUES');
    const width = Math.max(...extra.deadLetterQueues.map((q) => q.name.length));
    for (const q of extra.deadLetterQueues) {
      const depth = q.depth === null ? 'depth unknown' : q.depth === 0 ? 'empty' : `${num(q.depth)} message(s)`;
      out.push(`  ${q.lane.padEnd(10)} ${q.name.padEnd(width)}  ${depth}`);
    }
    const f = extra.failedBatches;
    if (f === null) out.push('FAILED BATCHES  unknown (see problems)');
    else {
      out.push(
        `FAILED BATCHES  s3://${f.bucket}/aws/lambda/: ${f.recent === 0 ? 'none' : `${f.recent}${f.truncated ? '+' : ''}`} in the last ${windowMinutes} min`,
      );
      for (const b of f.newest) out.push(`  ${b.lastModified}  ${(b.lane ?? '?').padEnd(9)}  ${b.key}`);
    }
    out.push('');
  }

  out.push(`ALARMS${report.alarms.length === 0 ? '  none in ALARM' : ''}`);
  for (const a of report.alarms) out.push(`  ${a.name}: ${a.state} — ${a.reason}`);
  if (report.problems.length > 0) {
    out.push('PROBLEMS');
    for (const p of report.problems) out.push(`  ${p}`);
  }
  if (report.verdict) {
    const bad = report.verdict.checks.filter((c) => !c.ok);
    out.push(`VERDICT  ${report.verdict.consistent ? 'CONSISTENT' : 'INCONSISTENT'}`);
    for (const c of bad) out.push(`  ${c.sink} ${c.table}: ${c.note ?? 'mismatch'}`);
  }
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------------------------
// The local run
// ---------------------------------------------------------------------------------------------------------------

/** Where a local run announces itself (tools/local/runner/control.ts RUN_FILE; CDC_SYNC_RUN_FILE overrides it). */
const RUN_FILE = '.local/run.json';

/** A problem with the local run: one line, exit code 2 (or 1: the run answered, but not with a report). */
class LocalRunError extends Error {
  constructor(
    message: string,
    readonly code: 1 | 2,
  ) {
    super(message);
  }
}

async function readJson(path: string): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/**
 * The local run's status page address: `statusUrl` in the run file, else `.local/status.json` beside it (what the
 * status page writes, which also stays while a `--keep` run lingers after its control endpoint has closed).
 */
async function localStatusUrl(runFile: string): Promise<string> {
  const run = await readJson(runFile);
  if (typeof run?.statusUrl === 'string') return run.statusUrl;
  const page = await readJson(join(dirname(runFile), 'status.json'));
  if (typeof page?.url === 'string') return page.url;
  throw new LocalRunError(
    `no local run is going on (no status page announced in ${runFile}): start one with npm start, or use --env`,
    2,
  );
}

/** The report a local run's page serves. */
export async function readLocalReport(runFile: string): Promise<StatusReport> {
  const url = new URL('api/status', await localStatusUrl(runFile));
  let body: unknown;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    if (!response.ok) throw new LocalRunError(`the local run's status page answered ${response.status} at ${url}`, 1);
    body = await response.json();
  } catch (error) {
    if (error instanceof LocalRunError) throw error;
    throw new LocalRunError(`no local run is going on (nothing answers at ${url}: left from a run that ended?)`, 2);
  }
  const parsed = StatusReportSchema.safeParse(body);
  if (!parsed.success) {
    throw new LocalRunError(`the local run answered something that is not a status report at ${url}`, 1);
  }
  return parsed.data;
}

// ---------------------------------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------------------------------

export interface StatusIo {
  out: (text: string) => void;
  err: (text: string) => void;
  /** The AWS clients (tests pass mocked ones). @default clients for the environment's region */
  clients?: (region: string) => AwsClients;
  /** With --serve: resolves when serving should stop. @default the first SIGINT or SIGTERM */
  stop?: Promise<void>;
  /** @default CDC_SYNC_RUN_FILE, else `.local/run.json` */
  runFile?: string;
  /** Waits between retries of throttled calls (tests). */
  sleep?: (ms: number) => Promise<void>;
}

/** The command, with its ways out injected. */
export async function main(argv: string[], io: StatusIo): Promise<number> {
  let options: StatusOptions | 'help';
  try {
    options = parseStatusArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err(`npm run status: ${error.message}\n\n${USAGE}\n`);
    return 2;
  }
  if (options === 'help') {
    io.out(`${USAGE}\n`);
    return 0;
  }

  if (options.env === undefined) {
    try {
      const report = await readLocalReport(io.runFile ?? process.env.CDC_SYNC_RUN_FILE ?? RUN_FILE);
      io.out(options.json ? `${JSON.stringify(report)}\n` : renderStatus(report));
      return 0;
    } catch (error) {
      if (!(error instanceof LocalRunError)) throw error;
      io.err(`npm run status: ${error.message}\n`);
      return error.code;
    }
  }

  // Loaded only for a deployed environment: the local path stays quick and needs no AWS SDK.
  const [{ environmentConfig }, aws] = await Promise.all([import('../../lib/config'), import('./aws')]);
  let config: ReturnType<typeof environmentConfig>;
  try {
    config = environmentConfig(options.env);
  } catch (error) {
    io.err(`npm run status: ${(error as Error).message}\n`);
    return 2;
  }
  const collector = new aws.AwsStatusCollector({
    config,
    clients: (io.clients ?? aws.createAwsClients)(config.region),
    windowMinutes: options.windowMinutes,
    ...(io.sleep ? { sleep: io.sleep } : {}),
  });

  if (options.serve) {
    const { startStatusServer } = await import('./server');
    const read = aws.cachedReader(() => collector.report());
    const server = await startStatusServer({ read, ...(options.port !== undefined ? { port: options.port } : {}) });
    io.out(`status page of ${config.name}: ${server.url} (Ctrl-C to stop)\n`);
    await (io.stop ?? interrupted());
    await server.close();
    return 0;
  }

  const status = await collector.collect();
  io.out(
    options.json ? `${JSON.stringify(status.report)}\n` : renderStatus(status.report, status, options.windowMinutes),
  );
  return 0;
}

function interrupted(): Promise<void> {
  return new Promise((done) => {
    process.once('SIGINT', () => done());
    process.once('SIGTERM', () => done());
  });
}

// Run as a command (not imported by a test).
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = reserveStdout();
  const code = await main(process.argv.slice(2), { out, err: (t) => void process.stderr.write(t) });
  process.exit(code);
}
