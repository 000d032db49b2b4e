/**
 * npm run fuzz -- [--records <n>] [--seed <s>] [--lanes warehouse,cache,audit] [--events <dir>] [--json] [--verbose]
 *
 * Mutates valid sample events (bit flips, truncation, invalid UTF-8, wrong envelope types, huge and deeply nested
 * values, big numbers, duplicate keys, mismatched keys and schemas, records that are not records) and drives them,
 * mixed with valid neighbours over several partitions, through each lane's real handler against local services
 * started in-process. Checks that no invocation crashes, no fuzzed record makes a partition retry forever, every bad
 * record is dead-lettered with its original bytes and a reason code, every valid neighbour reaches the sink, and the
 * counts add up (tools/fuzz/oracle.ts). Deterministic per seed: a failure prints the command that replays it.
 *
 * --json prints exactly one JSON object on stdout:
 *   {"records","lanes":{lane:{processed,skipped,deadLettered,duplicates,crashes,mismatches}},"mutations":{kind:n},
 *    "failures":[{seed,lane,what}]}
 * Exit code 0: no failure; 1: failures (the first ones on stderr, all with --json); 2: a bad command line, or no
 * Redis for the cache lane.
 */
import { LANES, type Lane } from '../functions/core/types';
import { type FuzzReport, FuzzSetupError, runFuzz } from './fuzz/run';
import { parseFlagsOrExit, wholeNumber } from './lib/args';
import { fail } from './lib/cli';

const USAGE =
  'usage: npm run fuzz -- [--records <n>] [--seed <s>] [--lanes warehouse,cache,audit] [--events <dir>] [--json] [--verbose]';

const FLAGS = {
  records: { type: 'string' },
  seed: { type: 'string' },
  lanes: { type: 'string' },
  events: { type: 'string' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
} as const;

/** Failures printed for a human; --json has them all. */
const SHOWN_FAILURES = 20;

function lanesOf(text: string | undefined): Lane[] {
  if (text === undefined) return [...LANES];
  const lanes = [...new Set(text.split(',').map((l) => l.trim()))];
  const unknown = lanes.filter((l) => !LANES.includes(l as Lane));
  if (lanes.length === 0 || unknown.length > 0) {
    fail(`--lanes: unknown lane "${unknown[0] ?? text}": expected some of ${LANES.join(',')}\n${USAGE}`);
  }
  return lanes as Lane[];
}

function replayCommand(options: { records: number; seed: number; lanes: readonly Lane[]; events?: string }): string {
  const events = options.events === undefined ? '' : ` --events ${options.events}`;
  return `npm run fuzz -- --records ${options.records} --seed ${options.seed} --lanes ${options.lanes.join(',')}${events}`;
}

function humanReport(report: FuzzReport, seed: number, seconds: number): string {
  const lines = [`fuzz: ${report.records} records per lane, seed ${seed}, ${seconds.toFixed(1)} s`];
  const columns = ['processed', 'skipped', 'duplicates', 'deadLettered', 'crashes', 'mismatches'] as const;
  lines.push(`  ${'lane'.padEnd(10)}${columns.map((c) => c.padStart(14)).join('')}`);
  for (const [lane, counts] of Object.entries(report.lanes)) {
    lines.push(`  ${lane.padEnd(10)}${columns.map((c) => String(counts[c]).padStart(14)).join('')}`);
  }
  const kinds = Object.entries(report.mutations).map(([kind, n]) => `${kind} ${n}`);
  lines.push(`  mutations: ${kinds.join(', ')}`);
  lines.push(report.failures.length === 0 ? '  no failures' : `  ${report.failures.length} failures`);
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const write = process.stdout.write.bind(process.stdout);
  const { positionals, values: flags } = parseFlagsOrExit(process.argv.slice(2), FLAGS, USAGE);
  if (positionals.length > 0) fail(`unexpected argument "${positionals[0]}"\n${USAGE}`);
  const records = wholeNumber(flags.records, 'records', 1_000, 1_000_000, USAGE);
  if (records === 0) fail(`--records must be at least 1\n${USAGE}`);
  const seed = wholeNumber(flags.seed, 'seed', Math.floor(Math.random() * 2 ** 31), 2 ** 32 - 1, USAGE);
  const lanes = lanesOf(flags.lanes);
  // The lanes publish metrics (EMF) on stdout for every batch, and log: stdout is this command's result, and
  // thousands of batch lines would bury the failures, so both are dropped (on stderr with --verbose).
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) =>
    flags.verbose
      ? (process.stderr.write as (...args: unknown[]) => boolean)(chunk, ...rest)
      : true) as typeof process.stdout.write;

  process.stderr.write(`fuzz: ${records} records per lane (${lanes.join(', ')}), seed ${seed}\n`);
  const started = performance.now();
  let lastShown = 0;
  let report: FuzzReport;
  try {
    report = await runFuzz({
      records,
      seed,
      lanes,
      ...(flags.events === undefined ? {} : { eventsDir: flags.events }),
      logLevel: flags.verbose ? (process.env.POWERTOOLS_LOG_LEVEL ?? 'WARN') : 'SILENT',
      onProgress: ({ records: done, total, failures }) => {
        if (done === total || performance.now() - lastShown > 2_000) {
          lastShown = performance.now();
          process.stderr.write(`fuzz: ${done}/${total} records, ${failures} failures\n`);
        }
      },
    });
  } catch (error) {
    if (error instanceof FuzzSetupError) fail(`${error.message}\n${USAGE}`);
    throw error;
  }
  const seconds = (performance.now() - started) / 1000;
  if (flags.json) write(`${JSON.stringify(report)}\n`);
  else write(humanReport(report, seed, seconds));
  if (report.failures.length > 0) {
    for (const f of report.failures.slice(0, SHOWN_FAILURES)) process.stderr.write(`  ${f.lane}: ${f.what}\n`);
    if (report.failures.length > SHOWN_FAILURES) {
      process.stderr.write(`  … and ${report.failures.length - SHOWN_FAILURES} more (--json lists them all)\n`);
    }
    process.stderr.write(
      `fuzz: ${report.failures.length} failures with seed ${seed}; replay: ${replayCommand({ records, seed, lanes, events: flags.events })}\n`,
    );
  } else {
    process.stderr.write(`fuzz: done in ${seconds.toFixed(1)} s\n`);
  }
  process.exitCode = report.failures.length > 0 ? 1 : 0;
}

await main();
