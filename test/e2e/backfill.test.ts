/**
 * `npm run backfill` against a running `npm start`, both as a user runs them (child processes): the run announces its
 * control endpoint in a run file, the command signals an incremental snapshot through it, waits for it to complete and
 * prints the rows re-read; the run then ends consistent and names the snapshot in its summary.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { throwawayDir } from '../support/scratch';
import { spawnStart } from './support';

const exec = promisify(execFile);
const tsx = join('node_modules', '.bin', 'tsx');

async function backfill(args: string[], runFile: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(tsx, ['tools/backfill.ts', ...args], {
      env: { ...process.env, CDC_SYNC_RUN_FILE: runFile },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('npm run backfill against a local run', () => {
  it('re-reads the rows --where selects, prints them per table, and the run ends consistent', async () => {
    // Arrange: a run long enough for the commands below, with its run file in a place of its own
    const runFile = join(throwawayDir('backfill-'), 'run.json');
    const started = spawnStart(
      ['--json', '--rate', '60', '--duration', '18', '--seed-rows', '40', '--no-schema-change'],
      {
        env: { ...process.env, CDC_SYNC_RUN_FILE: runFile },
      },
    );
    const deadline = Date.now() + 90_000;
    while (!existsSync(runFile)) {
      if (Date.now() > deadline || started.child.exitCode !== null) throw new Error(started.output.stderr.slice(-2000));
      await new Promise((r) => setTimeout(r, 200));
    }

    // Act
    const done = await backfill(['customers', 'public.products', '--where', 'id <= 10', '--json'], runFile);
    const unknown = await backfill(['no_such_table'], runFile);
    const readable = await backfill(['orders'], runFile);
    const run = await started.exit;

    // Assert: rows re-read per table (ids 1-10 exist in both seeded tables)
    expect(done.code, done.stderr).toBe(0);
    const result = JSON.parse(done.stdout);
    expect(result).toMatchObject({ status: 'completed', tables: { 'public.customers': 10, 'public.products': 10 } });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^npm run backfill: unknown table public\.no_such_table \(captured: .*public\.orders/),
    ]);
    expect(readable.code, readable.stderr).toBe(0);
    expect(readable.stdout).toMatch(/incremental snapshot .*: COMPLETED\n\s+public\.orders\s+\d+ rows re-read\n/);

    // Assert: the run ended consistent, knew both snapshots, and removed its run file
    expect(run.code, run.stderr.slice(-2000)).toBe(0);
    const summary = JSON.parse(run.stdout);
    expect(summary.consistent).toBe(true);
    const snapshots = summary.incrementalSnapshots as Array<{ id: string; origin: string; status: string }>;
    expect(snapshots.find((s) => s.id === result.id)).toMatchObject({ origin: 'control', status: 'completed' });
    expect(snapshots.filter((s) => s.origin === 'control')).toHaveLength(2);
    expect(existsSync(runFile)).toBe(false);
  }, 180_000);
});
