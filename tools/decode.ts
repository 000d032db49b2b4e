/**
 * npm run decode -- <event-file>
 *
 * Prints one JSON line per record of the event file, in input order (by partition key, then offset): the canonical
 * change event, or {"schemaChange": [<one entry per table the DDL changed>], "kafka": {topic, partition, offset}} for a
 * record of Debezium's schema-change topic, or {"skipped": "<reason>", "kafka": {topic, partition, offset}}, or
 * {"error": {"code", "message"}, "kafka": {topic, partition, offset}}. Nothing else goes to stdout.
 */
import { resolve } from 'node:path';
import { JsonDebeziumDecoder } from '../functions/core/decode';
import type { DecodeOutcome, KafkaRecord } from '../functions/core/types';
import { parseFlagsOrExit } from './lib/args';
import { fail, reserveStdout } from './lib/cli';
import { readEventFile } from './lib/event-files';

/** The line the CLI prints for one outcome (also the format of events/expected/*.jsonl). */
export function decodeLine(record: KafkaRecord, outcome: DecodeOutcome): unknown {
  const kafka = { topic: record.topic, partition: record.partition, offset: record.offset };
  switch (outcome.kind) {
    case 'event':
      return outcome.event;
    case 'schema-change':
      return { schemaChange: outcome.changes, kafka };
    case 'skip':
      return { skipped: outcome.reason, kafka };
    case 'error':
      return { error: { code: outcome.error.code, message: outcome.error.message }, kafka };
  }
}

const USAGE = 'usage: npm run decode -- <event-file>';

async function main(): Promise<void> {
  const out = reserveStdout();
  const { positionals } = parseFlagsOrExit(process.argv.slice(2), {}, USAGE);
  const [file] = positionals;
  if (!file) fail(USAGE);
  const event = await readEventFile(resolve(file)).catch((error: Error) => fail(error.message));
  const decoder = new JsonDebeziumDecoder({
    maxRecordBytes: process.env.MAX_RECORD_BYTES ? Number(process.env.MAX_RECORD_BYTES) : undefined,
  });
  const processedAt = Date.now();
  for (const key of Object.keys(event.records).sort()) {
    const records = [...(event.records[key] ?? [])].sort((a, b) => a.offset - b.offset);
    for (const record of records) out(`${JSON.stringify(decodeLine(record, decoder.decode(record, processedAt)))}\n`);
  }
}

await main();
