/**
 * npm start -- [options]   (see --help, or tools/local/runner/options.ts)
 *
 * The whole pipeline on a laptop, no Docker, no AWS: embedded PostgreSQL (or --source) → Debezium-compatible capture
 * → local broker and event source mappings → the three real lane handlers against local DynamoDB/S3/SQS emulators
 * and Redis; a workload at --rate for --duration, then every sink verified against the source.
 *
 * Output: progress and messages on stderr; the summary on stdout, or with --json exactly one JSON object on stdout
 * (see RunResult in tools/local/runner/run.ts). Exit code 0 consistent, 1 inconsistent, 2 usage or runtime error.
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
    `current rows per table (rebuilt from the change log) and the raw log, with DuckDB (views: <table>, <table>_changes, changes):`,
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
function cleanUpOnCrash(abortRun: (why: string) => Promise<void>, log: (message: string) => void): void {
  let crashed = false;
  const onCrash = (error: unknown) => {
    const what = error instanceof Error ? (error.stack ?? error.message) : String(error);
    log(crashed ? `npm start: another error while cleaning up after the crash: ${what}` : `npm start crashed: ${what}`);
    if (crashed) return;
    crashed = true;
    setTimeout(() => process.exit(2), 10_000).unref();
    abortRun('crashed').finally(() => process.exit(2));
  };
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
}

async function main(): Promise<void> {
  let options: RunOptions | 'help';
  try {
    options = parseRunOptions(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`npm start: ${error.message}\n\n${USAGE}\n`);
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
  const { abortRun, runLocal, wasInterrupted } = await import('./runner/run');
  cleanUpOnCrash(abortRun, log);
  let result: RunResult;
  try {
    // The control endpoint for `npm run backfill` (CDC_SYNC_RUN_FILE: another run file, for tests running several).
    const runFile = process.env.CDC_SYNC_RUN_FILE ?? RUN_FILE;
    result = await runLocal({ ...options, runFile }, { log, progress: process.stderr });
  } catch (error) {
    // Interrupted (Ctrl-C): the run cleans up and the signal's hook exits with 128 + the signal number (after a crash,
    // the crash handler exits).
    if (wasInterrupted()) return;
    // A problem with what was asked for or with the source database (say, a table that cannot be captured safely,
    // or wal_level): the message is the whole story.
    if (error instanceof UsageError || error instanceof SourceError) log(`npm start: ${error.message}`);
    else log(`npm start failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(2);
  }
  if (wasInterrupted()) return;
  if (json) {
    const { details, ...contract } = result;
    out(`${JSON.stringify({ ...contract, details })}\n`);
  } else {
    const warnings = result.details.problems;
    out(formatSummary(result, { explore: exploreLines(result), warnings }));
  }
  process.exit(result.consistent ? 0 : 1);
}

await main();
