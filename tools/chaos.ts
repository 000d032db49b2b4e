/**
 * npm run chaos -- [--runs <n>] [--changes <m>] [--seed <s>] [--rate <changes/s>] [--keep] [--json]
 *
 * Runs the local pipeline of `npm start` under the demo workload `--runs` times, each with faults injected at points
 * drawn from its seed (run i has seed s+i): sink writes that fail before and after they took effect, Redis
 * connections reset around a script, DynamoDB throttling, checkpoint conflicts and cancelled transactions, a lane
 * runtime killed between its sink write and its checkpoint commit, an invocation timing out, batches redelivered,
 * bisected and moved to another environment, the capture crashing, the broker restarting, dead-letter sends failing,
 * the cache flushed and a table's change log deleted (both rebuilt from the audit log while the lanes run). Each run
 * ends with the run's verification: nothing lost, nothing duplicated, nothing stale, dead letters only for the bad
 * records it sent (tools/chaos/run.ts). `--keep` leaves the last run's state in .local/start, as `npm start -- --keep`
 * does (the change log, the S3 objects as files, the cache keys): replay a failing seed with it to look inside.
 *
 * --json prints exactly one JSON object on stdout:
 *   {"runs","changes","faults":{kind:n},"consistentRuns","lost","duplicated","stale","failures":[{seed,what}],
 *    "seconds"}
 * Exit code 0: every run consistent; 1: a run was not (its seed and the command that replays it on stderr);
 * 2: a bad command line.
 */
import { type ChaosReport, runChaos } from './chaos/run';
import { parseFlagsOrExit, wholeNumber } from './lib/args';
import { fail } from './lib/cli';

const USAGE =
  'usage: npm run chaos -- [--runs <n>] [--changes <m>] [--seed <s>] [--rate <changes/s>] [--keep] [--json]';

const FLAGS = {
  runs: { type: 'string' },
  changes: { type: 'string' },
  seed: { type: 'string' },
  rate: { type: 'string' },
  keep: { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

function humanReport(report: ChaosReport, seconds: number): string {
  const lines = [
    `chaos: ${report.consistentRuns}/${report.runs} runs consistent, ${report.changes} changes, ${seconds.toFixed(0)} s`,
    `  lost ${report.lost}, duplicated ${report.duplicated}, stale ${report.stale}`,
    `  faults: ${Object.entries(report.faults)
      .map(([kind, n]) => `${kind} ${n}`)
      .join(', ')}`,
  ];
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const write = process.stdout.write.bind(process.stdout);
  const { positionals, values: flags } = parseFlagsOrExit(process.argv.slice(2), FLAGS, USAGE);
  if (positionals.length > 0) fail(`unexpected argument "${positionals[0]}"\n${USAGE}`);
  const runs = wholeNumber(flags.runs, 'runs', 3, 10_000, USAGE);
  const changes = wholeNumber(flags.changes, 'changes', 2_000, 10_000_000, USAGE);
  const rate = wholeNumber(flags.rate, 'rate', 500, 100_000, USAGE);
  if (runs === 0 || changes === 0 || rate === 0) fail(`--runs, --changes and --rate must be at least 1\n${USAGE}`);
  const seed = wholeNumber(flags.seed, 'seed', Math.floor(Math.random() * 2 ** 31), 2 ** 32 - 1 - runs, USAGE);
  // The lanes' metrics and logs would bury the result on stdout: stdout is this command's answer.
  process.stdout.write = (() => true) as typeof process.stdout.write;
  process.stderr.write(`chaos: ${runs} runs × ${changes} changes at ${rate}/s, seeds ${seed}…${seed + runs - 1}\n`);
  const started = performance.now();
  const report = await runChaos({
    runs,
    changes,
    seed,
    rate,
    keep: flags.keep === true,
    log: (message) => process.stderr.write(`chaos: ${message}\n`),
  });
  const seconds = (performance.now() - started) / 1000;
  const { results: _results, ...summary } = report;
  if (flags.json) write(`${JSON.stringify({ ...summary, seconds: Math.round(seconds) })}\n`);
  else write(humanReport(report, seconds));
  for (const failure of report.failures) {
    process.stderr.write(
      `chaos: seed ${failure.seed}: ${failure.what}\n  replay: npm run chaos -- --runs 1 --changes ${changes} --rate ${rate} --seed ${failure.seed} --keep\n`,
    );
  }
  process.exitCode = report.failures.length > 0 ? 1 : 0;
}

await main();
