import { Metrics } from '@aws-lambda-powertools/metrics';
import { vi } from 'vitest';

/**
 * A cache lane's Metrics whose EMF documents (one JSON line each) are captured instead of printed. The spy on stdout
 * stays until the test file's `vi.restoreAllMocks()`.
 */
export function captureEmf(): { lines: string[]; metrics: Metrics } {
  const lines: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(
      ...String(chunk)
        .split('\n')
        .filter((l) => l.startsWith('{')),
    );
    return true;
  });
  const metrics = new Metrics({ namespace: 'cdc-sync', serviceName: 'cdc-sync', defaultDimensions: { lane: 'cache' } });
  return { lines, metrics };
}
