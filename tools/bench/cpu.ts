import { kafkaConsumer, SchemaType } from '@aws-lambda-powertools/kafka';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { z } from 'zod';
import { DynamoDedupeStore } from '../../functions/adapters/dynamodb-dedupe-store';
import { S3AuditSink } from '../../functions/adapters/s3-audit-sink';
import { S3WarehouseSink } from '../../functions/adapters/s3-warehouse-sink';
import { SqsDeadLetterQueue } from '../../functions/adapters/sqs-dead-letter-queue';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import { createEnricher } from '../../functions/core/enrich';
import { type PipelineDeps, processBatch } from '../../functions/core/pipeline';
import type { Checkpoint, DedupeStore, KafkaEvent, KafkaRecord, Lane, Sink } from '../../functions/core/types';
import { StubHttpHandler } from './stub-http';

export interface Timing {
  /** The fastest run (ms): the one least disturbed by other processes; the headline ratios use it. */
  min: number;
  median: number;
}

/**
 * CPU time (ms, user + system of this process) per run of each subject, the subjects run alternately ("side by
 * side") so a change in the machine's load hits all of them alike. CPU time rather than wall time: the figures are
 * about work, and the machine may be busy with other processes.
 */
export async function measure(
  subjects: Record<string, () => unknown | Promise<unknown>>,
  iterations: number,
  warmup = 3,
): Promise<Record<string, Timing>> {
  const names = Object.keys(subjects);
  const samples = new Map<string, number[]>(names.map((n) => [n, []]));
  for (let i = 0; i < warmup + iterations; i++) {
    for (const name of names) {
      const start = process.cpuUsage();
      await subjects[name]?.();
      const used = process.cpuUsage(start);
      if (i >= warmup) samples.get(name)?.push((used.user + used.system) / 1000);
    }
  }
  return Object.fromEntries(
    names.map((n) => {
      const s = [...(samples.get(n) ?? [])].sort((a, b) => a - b);
      return [n, { min: s[0] ?? Number.NaN, median: s[Math.floor(s.length / 2)] ?? Number.NaN }];
    }),
  );
}

function records(event: KafkaEvent): KafkaRecord[] {
  return Object.values(event.records).flat();
}

/** The floor: base64 → UTF-8 → JSON.parse of every key and value, nothing else. */
export function rawFloor(event: KafkaEvent): number {
  let n = 0;
  for (const r of records(event)) {
    if (r.key) n += JSON.parse(Buffer.from(r.key, 'base64').toString('utf8')) ? 1 : 0;
    if (r.value) n += JSON.parse(Buffer.from(r.value, 'base64').toString('utf8')) ? 1 : 0;
  }
  return n;
}

export function decodeAll(event: KafkaEvent): number {
  const decoder = new JsonDebeziumDecoder();
  const now = Date.now();
  let n = 0;
  for (const r of records(event)) if (decoder.decode(r, now).kind === 'event') n++;
  return n;
}

/** What a Powertools user would write: JSON key and value, the value validated by a zod schema of the envelope. */
const row = z.record(z.string(), z.unknown()).nullable();
const PowertoolsEnvelope = z.object({
  schema: z.unknown().optional(),
  payload: z.object({
    before: row,
    after: row,
    source: z.looseObject({ connector: z.string(), name: z.string(), ts_ms: z.number(), lsn: z.number().nullable() }),
    op: z.enum(['c', 'u', 'd', 'r', 't']),
    ts_ms: z.number().nullable(),
  }),
});

export const powertoolsHandler = kafkaConsumer<unknown, z.infer<typeof PowertoolsEnvelope>>(
  async (event) => {
    let n = 0;
    for (const record of event.records) {
      if (record.key !== undefined && record.value.payload.op) n++;
    }
    return n;
  },
  { key: { type: SchemaType.JSON }, value: { type: SchemaType.JSON, parserSchema: PowertoolsEnvelope } },
);

class AcceptingSink implements Sink {
  async write() {
    return { ok: true as const, writtenAt: Date.now() };
  }
}

class EmptyDedupe implements DedupeStore {
  async load() {
    return new Map<string, Checkpoint>();
  }
  async commit(_lane: Lane, commits: readonly unknown[]) {
    return commits.map(() => undefined);
  }
}

/** The core with in-memory ports: decode, validate, enrich, dedupe classification, orchestration. */
export function coreDeps(): PipelineDeps {
  return {
    lane: 'warehouse',
    decoder: new JsonDebeziumDecoder(),
    enricher: createEnricher(undefined, { lane: 'warehouse' }),
    dedupe: new EmptyDedupe(),
    sink: new AcceptingSink(),
    deadLetters: { send: async () => undefined },
  };
}

/** A lane with its real adapters and AWS SDK clients whose HTTP layer is stubbed. */
export function stubbedLane(lane: Exclude<Lane, 'cache'>): { deps: PipelineDeps; http: StubHttpHandler } {
  const http = new StubHttpHandler();
  const config = {
    region: 'eu-west-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    requestHandler: http as never,
  };
  const dynamodb = new DynamoDBClient(config);
  const s3 = new S3Client({ ...config, forcePathStyle: true });
  const sqs = new SQSClient(config);
  const sink =
    lane === 'warehouse'
      ? new S3WarehouseSink(s3, { bucket: 'bench', prefix: 'changes/' })
      : new S3AuditSink(s3, { bucket: 'bench', prefix: 'audit/' });
  return {
    http,
    deps: {
      lane,
      decoder: new JsonDebeziumDecoder(),
      enricher: createEnricher(undefined, { lane }),
      dedupe: new DynamoDedupeStore(dynamodb, { tableName: 'bench', ttlDays: 30 }),
      sink,
      deadLetters: new SqsDeadLetterQueue(sqs, s3, {
        queueUrl: 'https://sqs.eu-west-1.amazonaws.com/1/dlq',
        payloadBucket: 'bench',
      }),
    },
  };
}

export async function runPipeline(event: KafkaEvent, deps: PipelineDeps): Promise<number> {
  const result = await processBatch(event, deps);
  if (result.processed !== result.records)
    throw new Error(`benchmark batch not fully processed: ${JSON.stringify({ ...result, topics: undefined })}`);
  return result.processed;
}
