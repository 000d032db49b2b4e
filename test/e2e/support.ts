/**
 * Helpers of the end-to-end tests: run options for a small run, `npm start` as a child process, and what the capture
 * put into the broker.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import type { ChangeEvent } from '../../functions/core/types';
import type { LocalBroker } from '../../tools/local/broker';
import { parseRunOptions, type RunOptions } from '../../tools/local/runner/options';
import { kafkaRecordOf } from '../../tools/local/runner/verify';

/** Options of a small run: a few seconds of every workload operation against a small seeded database. */
export function smallRun(overrides: Partial<RunOptions> = {}, args: string[] = []): RunOptions {
  const options = parseRunOptions(['--rate', '150', '--duration', '4', '--seed-rows', '40', ...args]);
  if (options === 'help') throw new Error('unexpected --help');
  return { ...options, ...overrides };
}

const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/** `npm start` as a user runs it, started: the process (to signal it), its output so far, and its exit. */
export interface StartedCommand {
  child: ChildProcess;
  output: { stdout: string; stderr: string };
  exit: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

const START = fileURLToPath(new URL('../../tools/local/start.ts', import.meta.url));

/**
 * `launch`: more Node options before the command (say, a module to preload), its environment, and the directory it
 * runs in (where `--keep` keeps its state and the run announces itself under `.local/`).
 */
export function spawnStart(
  args: string[],
  launch: { nodeArgs?: string[]; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): StartedCommand {
  const child = spawn(process.execPath, [...(launch.nodeArgs ?? []), '--import', TSX, START, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: launch.env ?? process.env,
    ...(launch.cwd ? { cwd: launch.cwd } : {}),
  });
  const output = { stdout: '', stderr: '' };
  child.stdout?.on('data', (chunk: Buffer) => {
    output.stdout += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output.stderr += chunk.toString('utf8');
  });
  const exit = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, ...output }));
  });
  return { child, output, exit };
}

/** `npm start` run to its end: exit code, stdout and stderr. */
export function runStart(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return spawnStart(args).exit;
}

/** One statement (or several, without parameters) on a connection of its own: for a test looking at a database. */
export async function sql<T extends pg.QueryResultRow = pg.QueryResultRow>(
  url: string,
  text: string,
): Promise<pg.QueryResult<T>> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    return await client.query<T>(text);
  } finally {
    await client.end();
  }
}

/** A change event as the lanes decode it, with the Kafka headers of its record. */
export interface StreamedChange {
  event: ChangeEvent;
  headers: string[];
}

/** Every change record of the table topics, decoded with the lanes' decoder, in partition order. */
export function streamedChanges(broker: LocalBroker, topics: readonly string[]): StreamedChange[] {
  const decoder = new JsonDebeziumDecoder();
  const out: StreamedChange[] = [];
  for (const topic of topics) {
    for (let p = 0; p < (broker.partitionCount(topic) ?? 0); p++) {
      for (const record of broker.read(topic, p, 0, broker.highWater(topic, p))) {
        if (record.value === null) continue;
        const outcome = decoder.decode(kafkaRecordOf(record), 0);
        if (outcome.kind === 'event') out.push({ event: outcome.event, headers: record.headers.map(([h]) => h) });
      }
    }
  }
  return out;
}
