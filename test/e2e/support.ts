/** Helpers of the end-to-end tests: run options for a small run, and what the capture put into the broker. */
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
