/**
 * `npm run chaos`, short: three runs of the whole local pipeline under seeded faults through the command as a user
 * runs it, every run consistent, every kind of fault injected at least once over the three; and the checker itself:
 * a run whose flushed cache is not rebuilt must be reported stale.
 */
import { describe, expect, it } from 'vitest';
import { chaosRun } from '../../tools/chaos/run';
import { FAULT_KINDS } from '../../tools/local/faults/injector';
import { runTool } from '../support/tool';

const SEED = 20261203;

const chaos = (...args: string[]) => runTool('tools/chaos.ts', args);

describe('npm run chaos', () => {
  it('3 runs × 2,000 changes under every kind of fault: nothing lost, duplicated or stale', async () => {
    const { stdout, stderr, code } = await chaos('--runs', '3', '--changes', '2000', '--seed', String(SEED), '--json');

    expect(code, stderr).toBe(0);
    const report = JSON.parse(stdout);
    expect(Object.keys(report)).toEqual([
      'runs',
      'changes',
      'faults',
      'consistentRuns',
      'lost',
      'duplicated',
      'stale',
      'failures',
      'seconds',
    ]);
    expect(report.failures).toEqual([]);
    expect(report).toMatchObject({ runs: 3, consistentRuns: 3, lost: 0, duplicated: 0, stale: 0 });
    expect(report.changes).toBeGreaterThanOrEqual(3 * 2000);
    expect(Object.keys(report.faults)).toEqual([...FAULT_KINDS]);
    expect(FAULT_KINDS.filter((kind) => report.faults[kind] === 0)).toEqual([]);
  }, 420_000);

  it('reports a run whose flushed cache was not rebuilt as stale, with what it found', async () => {
    const result = await chaosRun(SEED, { runs: 1, changes: 500, seed: SEED, sabotage: 'skipCacheRebuild' });

    expect(result.faults.cacheFlushed).toBe(1);
    expect(result.consistent).toBe(false);
    expect(result.stale).toBeGreaterThan(0);
    expect(result.problems.join('\n')).toMatch(/^cache .*missing/m);
    // Bad records still reach every lane's dead-letter queue, and nothing else does.
    expect(result.badRecords).toMatchObject({ sent: 3, unexpectedLetters: 0 });
    expect(result.badRecords.deadLettered).toBeGreaterThanOrEqual(9);
  }, 180_000);

  it('refuses a bad command line with one line and exit code 2', async () => {
    const { stderr, code } = await chaos('--runs', 'many');
    expect(code).toBe(2);
    expect(stderr).toMatch(/--runs must be a whole number/);
  });
});
