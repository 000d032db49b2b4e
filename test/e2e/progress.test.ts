/** What `npm start` shows while it runs: a live line on a terminal, plain lines otherwise (always on stderr). */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { formatProgress, ProgressReporter, type ProgressSnapshot } from '../../tools/local/runner/progress';

const CLEAR = '\r\x1b[2K';

function stream(isTTY: boolean) {
  const writes: string[] = [];
  const fake = { isTTY, columns: 200, write: (text: string) => writes.push(text) > 0 };
  return { fake: fake as unknown as NodeJS.WriteStream, writes };
}

describe('npm start progress', () => {
  let now: ProgressSnapshot;
  beforeEach(() => {
    vi.useFakeTimers();
    now = {
      phase: 'workload',
      elapsedMs: 0,
      captured: 0,
      delivered: { warehouse: 0, cache: 0, audit: 0 },
      lag: 0,
      p99: 0,
    };
  });
  afterEach(() => vi.useRealTimers());

  it('says what was captured and how fast, what each lane delivered, the lag and the p99 latency', () => {
    const line = formatProgress(
      {
        ...now,
        elapsedMs: 12_345,
        captured: 12_000,
        delivered: { warehouse: 11_500, cache: 11_990 },
        lag: 42,
        p99: 87,
      },
      1003.4,
    );
    expect(line).toBe(
      '[12.3s workload] captured 12,000 (1,003/s)  delivered: warehouse 11,500  cache 11,990  lag 42  p99 87 ms',
    );
  });

  it('on a terminal redraws one line in place, keeps it under log messages, and clears it when stopped', () => {
    const { fake, writes } = stream(true);
    const reporter = new ProgressReporter(fake, () => now);
    reporter.start();
    now = { ...now, elapsedMs: 250, captured: 250, delivered: { warehouse: 200 } };
    vi.advanceTimersByTime(250);
    now = { ...now, elapsedMs: 500, captured: 500, delivered: { warehouse: 450 } };
    vi.advanceTimersByTime(250);
    reporter.log('! something happened');
    reporter.stop();

    expect(writes.slice(0, 2).every((w) => w.startsWith(CLEAR) && !w.includes('\n'))).toBe(true);
    expect(writes[1]).toContain('captured 500 (1,000/s)');
    expect(writes[1]).toContain('warehouse 450');
    expect(writes.slice(2)).toEqual([CLEAR, '! something happened\n']);
  });

  it('elsewhere (a pipe, a CI log) prints a plain line every few seconds', () => {
    const { fake, writes } = stream(false);
    const reporter = new ProgressReporter(fake, () => now, 2000);
    reporter.start();
    for (let t = 500; t <= 5000; t += 500) {
      now = { ...now, elapsedMs: t, captured: t };
      vi.advanceTimersByTime(500);
    }
    reporter.stop();

    expect(writes.length).toBe(2);
    expect(writes.every((w) => w.endsWith('\n') && !w.includes('\x1b'))).toBe(true);
    expect(writes[0]).toContain('[2.0s workload]');
    expect(writes[1]).toContain('[4.0s workload]');
  });
});
