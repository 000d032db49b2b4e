import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDedupeStore } from '../adapters/dynamodb-dedupe-store';
import { SqsDeadLetterQueue } from '../adapters/sqs-dead-letter-queue';
import { JsonDebeziumDecoder } from '../core/decode';
import { createEnricher } from '../core/enrich';
import type { PipelineDeps } from '../core/pipeline';
import type { Lane, Sink } from '../core/types';
import type { LaneEnv } from './config';

/** Wraps AWS clients for X-Ray; identity when tracing is off (local runs, tests). */
export type CaptureClient = <T>(client: T) => T;

export interface Clients {
  dynamodb: DynamoDBClient;
  s3: S3Client;
  sqs: SQSClient;
}

/**
 * AWS clients. In AWS they use the function's role and region. Locally, AWS_ENDPOINT_URL_<SERVICE> point them at
 * dynalite/s3rver/fauxqs (read from the given env, not process.env, so several local lanes can share a process);
 * S3 emulators need path-style addressing.
 */
export function createClients(env: NodeJS.ProcessEnv, capture: CaptureClient): Clients {
  const local = (endpoint: string | undefined) =>
    endpoint
      ? {
          endpoint,
          region: env.AWS_REGION ?? 'eu-west-1',
          credentials: {
            accessKeyId: env.AWS_ACCESS_KEY_ID ?? 'local',
            secretAccessKey: env.AWS_SECRET_ACCESS_KEY ?? 'local',
          },
        }
      : {};
  return {
    dynamodb: capture(new DynamoDBClient(local(env.AWS_ENDPOINT_URL_DYNAMODB))),
    s3: capture(new S3Client({ ...local(env.AWS_ENDPOINT_URL_S3), forcePathStyle: Boolean(env.AWS_ENDPOINT_URL_S3) })),
    sqs: capture(new SQSClient(local(env.AWS_ENDPOINT_URL_SQS))),
  };
}

/** Builds a lane's sink from its configuration and the shared AWS clients. */
export type SinkFactory<L extends Lane> = (env: LaneEnv<L>, clients: Clients) => Sink;

/** Everything the pipeline needs for one lane, built once per cold start. */
export function createLaneDeps<L extends Lane>(
  lane: L,
  env: LaneEnv<L>,
  clients: Clients,
  sink: SinkFactory<L>,
): PipelineDeps {
  return {
    lane,
    decoder: new JsonDebeziumDecoder({
      maxRecordBytes: env.MAX_RECORD_BYTES,
      placeholder: env.UNAVAILABLE_VALUE_PLACEHOLDER,
    }),
    enricher: createEnricher(env.TABLE_RULES, { lane, salt: env.PII_HASH_SALT }),
    dedupe: new DynamoDedupeStore(clients.dynamodb, {
      tableName: env.DEDUPE_TABLE_NAME,
      ttlDays: env.CHECKPOINT_TTL_DAYS,
    }),
    sink: sink(env, clients),
    deadLetters: new SqsDeadLetterQueue(clients.sqs, clients.s3, {
      queueUrl: env.DLQ_URL,
      payloadBucket: env.DLQ_PAYLOAD_BUCKET,
    }),
    reportBatchItemFailures: env.REPORT_BATCH_ITEM_FAILURES,
  };
}
