/**
 * The command lines of the change-log query (tools/local/runner/query.ts) and of `npm run bench`: the flags each
 * reads, and a command line it cannot run refused in a line with the usage (exit 2) before any work.
 */
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { openWarehouse } from '../../tools/lib/warehouse';
import { throwawayDir } from '../support/scratch';

const run = promisify(execFile);
const tsx = join('node_modules', '.bin', 'tsx');

async function cli(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(tsx, args);
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

describe('the change-log query', () => {
  let dir: string;
  beforeAll(async () => {
    // A change log of one keyless table, as the warehouse lane lays it out (one folder per table).
    dir = throwawayDir('query-');
    await mkdir(join(dir, 'table=pg.public.notes'));
    const warehouse = await openWarehouse(dir);
    try {
      await warehouse.query(
        `COPY (SELECT 'pg.public.notes' AS _cdc_table, NULL::VARCHAR AS _cdc_key, i AS _cdc_order, i AS _cdc_offset, ` +
          `'note ' || i AS body FROM range(3) t(i)) TO '${join(dir, 'table=pg.public.notes', 'part-0.parquet')}' (FORMAT parquet)`,
      );
    } finally {
      warehouse.close();
    }
  });

  it('runs the SQL over the change log in --dir and prints JSON lines with --json', async () => {
    // Act
    const { stdout, code } = await cli(
      'tools/local/runner/query.ts',
      '--dir',
      dir,
      '--json',
      'SELECT body FROM notes_changes ORDER BY body DESC LIMIT 2',
    );

    // Assert
    expect(code).toBe(0);
    expect(stdout).toBe('{"body":"note 2"}\n{"body":"note 1"}\n');
  });

  it.each([
    [['--bogus', 'SELECT 1'], 'unknown option --bogus'],
    [['SELECT 1', '--dir'], '--dir needs a value'],
    [['--json=yes', 'SELECT 1'], '--json takes no value'],
  ])('%j fails with a one-line reason and the usage, exit 2, nothing on stdout', async (args, reason) => {
    // Act
    const { stdout, stderr, code } = await cli('tools/local/runner/query.ts', ...args);

    // Assert
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.split('\n').slice(0, 2)).toEqual([reason, expect.stringMatching(/^usage: npx tsx .*query\.ts /)]);
  });

  it('without SQL prints the usage, and without a change log says how to make one, exit 2', async () => {
    // Act
    const bare = await cli('tools/local/runner/query.ts', '--dir', dir);
    const missing = await cli('tools/local/runner/query.ts', '--dir', join(dir, 'nothing'), 'SELECT 1');

    // Assert
    expect([bare.code, bare.stderr.trim()]).toEqual([2, expect.stringMatching(/^usage: npx tsx .*query\.ts /)]);
    expect([missing.code, missing.stderr.trim()]).toEqual([
      2,
      `no change log at ${join(dir, 'nothing')}: run "npm start -- --keep" first (or pass --dir)`,
    ]);
  });
});

describe('npm run bench', () => {
  it.each([
    [['--e2e', '--bogus'], 'unknown option --bogus'],
    [['--snapshot', '--chunk-size'], '--chunk-size needs a value'],
    [['--quick=yes'], '--quick takes no value'],
  ])('%j fails with a one-line reason and the usage, exit 2, before measuring anything', async (args, reason) => {
    // Act
    const { stdout, stderr, code } = await cli('tools/bench/index.ts', ...args);

    // Assert
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.split('\n').slice(0, 2)).toEqual([reason, expect.stringContaining('usage: npm run bench -- ')]);
  });
});
