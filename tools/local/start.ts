/**
 * npm start -- [options]   (see --help, or tools/local/runner/options.ts)
 *
 * The whole pipeline on a laptop, no Docker, no AWS: embedded PostgreSQL (or --source) → Debezium-compatible capture
 * → local broker and event source mappings → the three real lane handlers against local DynamoDB/S3/SQS emulators
 * and Redis; a workload at --rate for --duration, then every sink verified against the source.
 *
 * Output: progress and messages on stderr; the summary on stdout, or with --json exactly one JSON object on stdout
 * (see RunResult in tools/local/runner/result.ts; a run that did not finish prints `{"consistent": false, "error"}`).
 * Exit code 0 consistent, 1 inconsistent, 2 usage or runtime error, 128 + the signal when interrupted.
 */
import { relative } from 'node:path';
import { reserveStdout } from '../lib/cli';
import { SourceError } from './capture/types';
import { RUN_FILE } from './runner/control';
import { parseRunOptions, type RunOptions, USAGE, UsageError } from './runner/options';
import { formatSummary } from './runner/progress';
import type { RunResult } from './runner/result';

// Set before the lanes are loaded (hence the dynamic import of the runner in main): in its default automatic mode the
// X-Ray SDK that Powertools Tracer loads installs an async hook with destroy tracking, which taxes every promise in
// the process (about a tenth of its CPU here). Tracing is off locally, so there is no context to propagate.
process.env.AWS_XRAY_MANUAL_MODE ??= 'true';

function exploreLines(result: RunResult): string[] {
  const tables = Object.keys(result.checks.warehouse.checked ? result.checks.warehouse.tables : {});
  const orders = tables.find((t) => t.endsWith('.orders'));
  const example = orders
    ? `SELECT status, count(*) AS orders, sum(CAST(total AS DECIMAL(12,2))) AS revenue FROM orders GROUP BY 1 ORDER BY 1`
    : `SELECT _cdc_table, _cdc_op, count(*) FROM changes GROUP BY ALL ORDER BY ALL`;
  if (!result.details.stateDir) {
    return [
      'the change log was removed with the run; run again with --keep to explore it afterwards, e.g.:',
      `npx tsx tools/local/runner/query.ts "${example}"`,
    ];
  }
  const dir = relative(process.cwd(), `${result.details.stateDir}/warehouse`) || '.';
  return [
    `current rows per table (its current-state table) and the raw log, with DuckDB (views: <table>, <table>_changes, changes):`,
    `npx tsx tools/local/runner/query.ts "${example}"`,
    `npx tsx tools/local/runner/query.ts "SELECT _cdc_op, count(*) FROM changes GROUP BY ALL ORDER BY ALL"`,
    `or plain DuckDB SQL: SELECT * FROM read_parquet('${dir}/**/*.parquet', union_by_name = true) LIMIT 10`,
    `cache keys stay in Redis under ${result.details.cachePrefix}:* ; audit log, broker and checkpoints under ${relative(process.cwd(), result.details.stateDir)}/`,
  ];
}

/**
 * A crash (a bug: an uncaught exception or an unhandled rejection) must not leave the run's replication slot in
 * someone else's database either: the error is printed, the run cleans up as on Ctrl-C (at most 10 s), and the exit
 * code is 2 as for any failed run. A further error during that cleanup is printed and does not cut it short.
 */
function cleanUpOnCrash(
  abortRun: (why: string) => Promise<void>,
  log: (message: string) => void,
  failed: (why: string) => void,
): void {
  let crashed = false;
  const onCrash = (error: unknown) => {
    const what = error instanceof Error ? (error.stack ?? error.message) : String(error);
    log(crashed ? `npm start: another error while cleaning up after the crash: ${what}` : `npm start crashed: ${what}`);
    if (crashed) return;
    crashed = true;
    failed(`crashed: ${error instanceof Error ? error.message : String(error)}`);
    setTimeout(() => process.exit(2), 10_000).unref();
    abortRun('crashed').finally(() => process.exit(2));
  };
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
}

/**
 * What --json prints when there is no result (a bad command line, a run that failed, was interrupted or crashed): one
 * object still, so that stdout always parses, saying why. The exit code says which kind.
 */
function failureJson(error: string): string {
  return `${JSON.stringify({ consistent: false, error })}\n`;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let options: RunOptions | 'help';
  try {
    options = parseRunOptions(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`npm start: ${error.message}\n\n${USAGE}\n`);
    if (argv.includes('--json')) process.stdout.write(failureJson(error.message));
    process.exit(2);
  }
  if (options === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const json = options.json;
  // With --json, stdout is only ours: library and Powertools output goes to stderr.
  const out = json ? reserveStdout() : (text: string) => void process.stdout.write(text);
  const log = (message: string) => void process.stderr.write(`${message}\n`);
  // Once: after a crash, the run's own failure (it was aborted) must not print a second object.
  let reported = false;
  const failed = (why: string) => {
    if (!json || reported) return;
    reported = true;
    out(failureJson(why));
  };
  const { abortRun, runLocal, wasInterrupted } = await import('./runner/run');
  const { EmbeddedPostgresError } = await import('./postgres');
  const { onInterrupted } = await import('./runner/interrupts');
  const { openStatusPage } = await import('./runner/status-page');
  cleanUpOnCrash(abortRun, log, failed);
  onInterrupted(failed);
  // First, so that its address is the first thing the run prints.
  const page = await openStatusPage(options, log);
  let result: RunResult;
  try {
    // The control endpoint for `npm run backfill` (CDC_SYNC_RUN_FILE: another run file, for tests running several).
    const runFile = process.env.CDC_SYNC_RUN_FILE ?? RUN_FILE;
    result = await runLocal({ ...options, runFile }, { log, progress: process.stderr, status: page.status });
  } catch (error) {
    // Interrupted (Ctrl-C): the run cleans up and the signal's hook exits with 128 + the signal number (after a crash,
    // the crash handler exits).
    if (wasInterrupted()) {
      failed('interrupted');
      return;
    }
    // A problem with what was asked for, with the source database (say, a table that cannot be captured safely, or
    // wal_level) or with starting the embedded one on this machine: the message is the whole story.
    const known = error instanceof UsageError || error instanceof SourceError || error instanceof EmbeddedPostgresError;
    if (known) log(`npm start: ${error.message}`);
    else log(`npm start failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    failed(error instanceof Error ? error.message : String(error));
    await page.close();
    process.exit(2);
  }
  if (wasInterrupted()) {
    failed('interrupted');
    return;
  }
  if (json) {
    const { details, ...contract } = result;
    out(`${JSON.stringify({ ...contract, details })}\n`);
  } else {
    const warnings = result.details.problems;
    out(formatSummary(result, { explore: exploreLines(result), warnings }));
  }
  // --keep keeps the page (with the verdict) until Ctrl-C, as it keeps the state.
  if (options.keep) await page.linger(log);
  await page.close();
  process.exit(result.consistent ? 0 : 1);
}

await main();
