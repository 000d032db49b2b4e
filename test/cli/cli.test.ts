import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const tsx = join('node_modules', '.bin', 'tsx');
let state: string;

beforeAll(async () => {
  state = await mkdtemp(join(tmpdir(), 'invoke-state-'));
});
afterAll(async () => {
  await rm(state, { recursive: true, force: true });
});

async function cli(...args: string[]): Promise<{ stdout: string; code: number }> {
  try {
    const { stdout } = await run(tsx, args, {
      env: { ...process.env, POWERTOOLS_LOG_LEVEL: 'INFO' },
      maxBuffer: 64 * 1024 * 1024,
    });
    return { stdout, code: 0 };
  } catch (error) {
    const e = error as { stdout: string; code: number };
    return { stdout: e.stdout, code: e.code };
  }
}

describe('npm run invoke', () => {
  it('prints exactly one JSON summary with --json, and reports duplicates the second time', async () => {
    // Act
    const first = await cli('tools/invoke.ts', 'audit', 'events/malformed/not-json.json', '--json', '--state', state);
    const second = await cli('tools/invoke.ts', 'audit', 'events/malformed/not-json.json', '--json', '--state', state);
    // Assert
    expect(first.code).toBe(0);
    const summary = JSON.parse(first.stdout);
    expect(Object.keys(summary)).toEqual([
      'lane',
      'records',
      'processed',
      'skipped',
      'duplicates',
      'deadLettered',
      'batchItemFailures',
    ]);
    expect(summary).toMatchObject({ lane: 'audit', deadLettered: 1, batchItemFailures: 0 });
    expect(summary.processed).toBeGreaterThan(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ processed: 0, duplicates: summary.records, deadLettered: 0 });
    // --fresh forgets the checkpoints: the same event is processed again
    const fresh = await cli(
      'tools/invoke.ts',
      'audit',
      'events/malformed/not-json.json',
      '--json',
      '--fresh',
      '--state',
      state,
    );
    expect(JSON.parse(fresh.stdout)).toMatchObject({ processed: summary.processed, duplicates: 0 });
  });

  it('rejects an unknown lane with its usage', async () => {
    const result = await cli('tools/invoke.ts', 'mailer', 'events/postgres/create.json');
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
  });
});

describe('npm run decode', () => {
  it('prints one JSON line per record, in partition then offset order, and nothing else', async () => {
    // Act
    const { stdout, code } = await cli('tools/decode.ts', 'events/msk/batch.json');
    // Assert
    expect(code).toBe(0);
    const lines = stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { kafka: { topic: string; partition: number; offset: number } });
    const positions = lines.map(
      (l) => `${l.kafka.topic}-${l.kafka.partition}:${String(l.kafka.offset).padStart(8, '0')}`,
    );
    expect(positions).toEqual([...positions].sort());
    expect(lines.length).toBeGreaterThan(3);
  });

  it('decodes a dead letter back to its record', async () => {
    const { stdout } = await cli('tools/decode.ts', 'events/dead-letter/audit-not-json.json');
    expect(JSON.parse(stdout)).toMatchObject({
      error: { code: 'NOT_JSON' },
      kafka: { topic: 'pg.public.orders', partition: 2, offset: 7 },
    });
  });
});
