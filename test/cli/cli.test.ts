import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTool } from '../support/tool';

let state: string;

beforeAll(async () => {
  state = await mkdtemp(join(tmpdir(), 'invoke-state-'));
});
afterAll(async () => {
  await rm(state, { recursive: true, force: true });
});

const cli = (...args: string[]) => runTool(args[0] as string, args.slice(1), { POWERTOOLS_LOG_LEVEL: 'INFO' });

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

describe('npm run verify-audit', () => {
  it('--local <dir> reads the audit log npm run invoke wrote there, and --json after it is still a flag', async () => {
    // Arrange: the audit lane writes its chain into the state directory
    const invoked = await cli('tools/invoke.ts', 'audit', 'events/postgres/create.json', '--fresh', '--state', state);
    expect(invoked.code).toBe(0);

    // Act
    const { stdout, code } = await cli('tools/verify-audit.ts', '--local', state, '--json');

    // Assert
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as { ok: boolean; chains: unknown[] };
    expect(report.ok).toBe(true);
    expect(report.chains.length).toBeGreaterThan(0);
  });
});

describe('flags', () => {
  it.each([
    [['tools/invoke.ts', 'audit', 'events/postgres/create.json', '--jsn'], 'unknown option --jsn', 'npm run invoke'],
    [['tools/invoke.ts', 'audit', 'events/postgres/create.json', '--state'], '--state needs a value', 'npm run invoke'],
    [['tools/decode.ts', 'events/msk/batch.json', '--json'], 'unknown option --json', 'npm run decode'],
    [['tools/verify-audit.ts', '--json=yes'], '--json takes no value', 'npm run verify-audit'],
    [['tools/redrive.ts', 'audit', '--max'], '--max needs a value', 'npm run redrive'],
  ])('%j fails with a one-line reason and the usage, exit 2, nothing on stdout', async (args, reason, tool) => {
    // Act
    const { stdout, stderr, code } = await cli(...args);

    // Assert
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.split('\n').slice(0, 2)).toEqual([reason, expect.stringContaining(`usage: ${tool} -- `)]);
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
