import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeadLetterMessage } from '../../functions/adapters/sqs-dead-letter-queue';
import { emptyCounts } from '../../functions/core/pipeline';
import type { ChangeEvent, KafkaRecord, SinkPartition } from '../../functions/core/types';
import type { FuzzBatch, SentRecord } from '../../tools/fuzz/batches';
import { MUTATION_KINDS } from '../../tools/fuzz/mutations';
import { type Failure, type LaneCounts, LaneOracle, mayBeReEmission } from '../../tools/fuzz/oracle';
import { runTool } from '../support/tool';

const fuzz = (...args: string[]) => runTool('tools/fuzz.ts', args);

describe('npm run fuzz', () => {
  it('drives 1,000 fuzzed records per lane through the three lanes without a failure, and the counts add up', async () => {
    // Act
    const { stdout, code, stderr } = await fuzz('--records', '1000', '--seed', '1', '--json');
    // Assert
    expect(code, stderr).toBe(0);
    const report = JSON.parse(stdout);
    expect(Object.keys(report)).toEqual(['records', 'lanes', 'mutations', 'failures']);
    expect(report.records).toBe(1000);
    expect(report.failures).toEqual([]);
    expect(Object.keys(report.lanes)).toEqual(['warehouse', 'cache', 'audit']);
    for (const counts of Object.values(report.lanes) as LaneCounts[]) {
      expect(Object.keys(counts)).toEqual([
        'processed',
        'skipped',
        'deadLettered',
        'duplicates',
        'crashes',
        'mismatches',
      ]);
      expect(counts.processed + counts.skipped + counts.duplicates + counts.deadLettered).toBe(1000);
      expect(counts).toMatchObject({ crashes: 0, mismatches: 0 });
      expect(counts.processed).toBeGreaterThan(0);
      expect(counts.deadLettered).toBeGreaterThan(0);
    }
    expect(Object.keys(report.mutations).sort()).toEqual([...MUTATION_KINDS].sort());
  });

  describe('with a sample the warehouse cannot hold', () => {
    let dir: string;
    beforeAll(async () => {
      // A valid change event committed in the year 287,000: the decoder takes it, the change log refuses it.
      dir = await mkdtemp(join(tmpdir(), 'fuzz-events-'));
      const sample = JSON.parse(await readFile('events/postgres/create.json', 'utf8'));
      sample.value.payload.source.ts_ms = 9_000_000_000_000_000;
      await writeFile(join(dir, 'far-future.json'), JSON.stringify(sample));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('fails (exit 1), lists what failed and prints the command that replays it', async () => {
      // Act
      const { stdout, stderr, code } = await fuzz(
        '--records',
        '60',
        '--seed',
        '5',
        '--lanes',
        'warehouse',
        '--events',
        dir,
        '--json',
      );
      // Assert
      expect(code).toBe(1);
      const report = JSON.parse(stdout);
      expect(report.lanes.warehouse.mismatches).toBeGreaterThan(0);
      expect(report.failures[0]).toMatchObject({ seed: 5, lane: 'warehouse' });
      expect(report.failures.map((f: Failure) => f.what).join('\n')).toContain(
        'a valid record was dead-lettered: SINK_REJECTED',
      );
      expect(stderr).toContain(`replay: npm run fuzz -- --records 60 --seed 5 --lanes warehouse --events ${dir}`);
    });
  });

  it.each([
    [['--records', 'many']],
    [['--lanes', 'warehouse,mailer']],
    [['--bogus']],
    [['--events', 'no/such/folder']],
  ])('exits 2 on a bad command line: %j', async (args) => {
    // Act
    const { stdout, stderr, code } = await fuzz(...args);
    // Assert
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain('usage: npm run fuzz');
  });
});

describe('the fuzz oracle', () => {
  const partition = 'pg.public.orders-0';
  const record = (offset: number, value = 'eyJ9'): KafkaRecord => ({
    topic: 'pg.public.orders',
    partition: 0,
    offset,
    timestamp: 1,
    key: null,
    value,
    headers: [],
  });
  const sent = (offset: number, expect: SentRecord['expect'], codes?: string[]): SentRecord => ({
    partition,
    offset,
    role: expect === 'applied' ? 'valid' : 'truncation',
    expect,
    ...(codes ? { codes } : {}),
    text: JSON.stringify(record(offset)),
    origin: 'test',
  });
  const batch = (records: SentRecord[]): FuzzBatch => ({
    index: 0,
    event: { eventSource: 'aws:kafka', records: {} },
    records,
  });
  const letter = (rec: unknown, code: string): DeadLetterMessage => ({
    lane: 'cache',
    error: { code, message: 'bad' },
    record: rec as KafkaRecord,
    failedAt: '2024-01-01T00:00:00.000Z',
  });
  const counts = (over: Partial<ReturnType<typeof emptyCounts>>) => ({ ...emptyCounts(), ...over });
  const event = (offset: number, order: string, id = `id-${offset}`) =>
    ({ id, source: { order }, kafka: { offset } }) as unknown as ChangeEvent;
  const written = (events: ChangeEvent[]) => ({ partition: { id: partition }, events }) as unknown as SinkPartition;

  it('accepts a batch whose bad record was dead-lettered as it came and whose valid record reached the sink', () => {
    // Arrange
    const failures: Failure[] = [];
    const oracle = new LaneOracle('cache', 1, failures);
    oracle.begin(batch([sent(0, 'dead-letter', ['NOT_JSON']), sent(1, 'applied')]));
    // Act
    oracle.sinkWrite(written([event(1, 'pg:1:a')]), { ok: true, writtenAt: 0 });
    oracle.attempt(0, 2, counts({ records: 2, processed: 1, deadLettered: 1 }), undefined, [
      letter(record(0), 'NOT_JSON'),
    ]);
    oracle.end();
    // Assert
    expect(oracle.finish()).toMatchObject({ processed: 1, deadLettered: 1, crashes: 0, mismatches: 0 });
    expect(failures).toEqual([]);
  });

  it('reports a dead letter that does not hold the original bytes, a lost valid record, and counts that do not add up', () => {
    // Arrange
    const failures: Failure[] = [];
    const oracle = new LaneOracle('cache', 7, failures);
    oracle.begin(batch([sent(0, 'dead-letter', ['NOT_JSON']), sent(1, 'applied')]));
    // Act
    oracle.attempt(0, 2, counts({ records: 2, processed: 0, deadLettered: 1 }), undefined, [
      letter(record(0, 'e30='), 'NOT_JSON'),
    ]);
    oracle.end();
    oracle.finish();
    // Assert
    const what = failures.map((f) => f.what).join('\n');
    expect(what).toContain('does not hold the original record: value differ');
    expect(what).toContain('a valid record');
    expect(what).toContain('≠ 2 records');
    expect(failures.every((f) => f.seed === 7 && f.lane === 'cache')).toBe(true);
  });

  it('reports a crash, and a record that must be dead-lettered but was not', () => {
    // Arrange
    const failures: Failure[] = [];
    const oracle = new LaneOracle('audit', 1, failures);
    oracle.begin(batch([sent(0, 'dead-letter', ['UNKNOWN_OP'])]));
    // Act
    oracle.attempt(0, 1, counts({ records: 1, skipped: 1 }), undefined, []);
    oracle.end();
    oracle.begin(batch([sent(1, 'applied')]));
    oracle.attempt(0, 1, undefined, new Error('boom'), []);
    oracle.crashed();
    oracle.end();
    // Assert
    expect(failures.map((f) => f.what)).toEqual([
      expect.stringContaining('not dead-lettered'),
      expect.stringContaining('the handler threw: boom'),
    ]);
    expect(oracle.finish()).toMatchObject({ crashes: 1 });
  });

  it('lets a valid record be a duplicate only below the partition high-water order of its own connector', () => {
    const applied = (order: string) => [{ offset: 1, order, id: 'x' }];
    expect(mayBeReEmission({ order: 'my:01:05', id: 'a' }, applied('my:01:09'))).toBe(true);
    expect(mayBeReEmission({ order: 'my:01:09', id: 'x' }, applied('my:01:09'))).toBe(true);
    expect(mayBeReEmission({ order: 'my:01:09', id: 'a' }, applied('my:01:09'))).toBe(false);
    expect(mayBeReEmission({ order: 'my:01:05', id: 'a' }, applied('kf:01:09'))).toBe(false);
    expect(mayBeReEmission({ order: 'my:01:05', id: 'a' }, [])).toBe(false);
    const unknown = `pg:1:${'0'.repeat(20)}:${'5'.repeat(20)}`;
    expect(mayBeReEmission({ order: unknown, id: 'a' }, applied(`pg:1:${'1'.repeat(20)}:${'1'.repeat(20)}`))).toBe(
      true,
    );
    expect(mayBeReEmission({ order: unknown, id: 'a' }, applied('kf:0000000003:00000000000000000108'))).toBe(false);
  });
});
