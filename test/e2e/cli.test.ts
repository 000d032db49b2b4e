/** `npm start` as a user runs it: a child process, its stdout, stderr and exit code. */
import { describe, expect, it } from 'vitest';
import { parseRunOptions, UsageError } from '../../tools/local/runner/options';
import { runStart } from './support';

describe('npm start command line', () => {
  it('--json prints exactly one JSON object on stdout, with the documented fields, and exits 0 when consistent', async () => {
    // Act
    const { code, stdout, stderr } = await runStart(['--json', '--rate', '60', '--duration', '2', '--seed-rows', '20']);

    // Assert
    expect(code, stderr.slice(-2000)).toBe(0);
    const lines = stdout.split('\n').filter((l) => l.trim() !== '');
    expect(lines).toHaveLength(1);
    const result = JSON.parse(lines[0] ?? '');
    expect(result).toMatchObject({
      changes: expect.any(Number),
      throughputPerSec: expect.any(Number),
      latencyMs: { p50: expect.any(Number), p95: expect.any(Number), p99: expect.any(Number), max: expect.any(Number) },
      consistent: true,
    });
    for (const lane of ['warehouse', 'cache', 'audit']) {
      expect(result.lanes[lane], lane).toMatchObject({
        processed: expect.any(Number),
        duplicates: expect.any(Number),
        deadLettered: expect.any(Number),
      });
      expect(result.checks[lane], lane).toMatchObject({ checked: true, consistent: true });
    }
    expect(result.changes).toBeGreaterThan(0);
    expect(stderr).toContain('verifying');
    // The workload's schema change, and the incremental snapshot that reconciled it, are in the summary
    expect(result.schemaChanges).toEqual([expect.objectContaining({ table: 'pg.public.customers', added: ['tier'] })]);
    expect(result.incrementalSnapshots).toEqual([
      expect.objectContaining({
        origin: 'lane',
        status: 'completed',
        tables: { 'public.customers': expect.any(Number) },
      }),
    ]);
  }, 120_000);

  it.each([
    [['--bogus'], 'unknown option --bogus'],
    [['--rate', 'fast'], '--rate must be a number'],
    [['--rate'], '--rate needs a value'],
    [['stray'], 'unexpected argument "stray"'],
    [['--workload', '--no-workload'], 'conflict'],
  ])('rejects %j with a clear message and the usage, exit code 2', async (args, message) => {
    // Act
    const { code, stdout, stderr } = await runStart(args);

    // Assert
    expect(code).toBe(2);
    expect(stderr).toContain(message);
    expect(stderr).toContain('usage: npm start');
    expect(stdout).toBe('');
  });

  it('with --json, a bad command line still prints one JSON object saying why, exit code 2', async () => {
    // Act
    const { code, stdout, stderr } = await runStart(['--json', '--rate', 'fast']);

    // Assert
    expect(code).toBe(2);
    expect(JSON.parse(stdout)).toEqual({
      consistent: false,
      error: expect.stringContaining('--rate must be a number'),
    });
    expect(stderr).toContain('usage: npm start');
  });

  it('reads defaults and flags into run options', () => {
    // Act
    const defaults = parseRunOptions([]);
    const custom = parseRunOptions([
      '--rate=500',
      '--duration',
      '3',
      '--source',
      'postgres://u:p@db:5432/app',
      '--tables',
      'orders,sales.items',
      '--partitions',
      '6',
      '--concurrency',
      '4',
      '--no-cache',
      '--keep',
    ]);

    // Assert
    expect(defaults).toMatchObject({
      rate: 200,
      durationMs: 20_000,
      workload: true,
      partitions: 3,
      concurrency: 1,
      redis: 'auto',
    });
    expect(custom).toMatchObject({
      rate: 500,
      durationMs: 3000,
      source: 'postgres://u:p@db:5432/app',
      workload: false, // someone else's database: capture only, unless --workload
      tables: ['public.orders', 'sales.items'],
      partitions: 6,
      concurrency: 4,
      redis: null,
      keep: true,
    });
    expect(() => parseRunOptions(['--source', 'mysql://x'])).toThrow(UsageError);
    expect(() => parseRunOptions(['--concurrency', '0'])).toThrow(UsageError);
  });
});
