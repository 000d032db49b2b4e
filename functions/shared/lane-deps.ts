import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { Cluster, Redis } from 'ioredis';
import { DynamoDedupeStore } from '../adapters/dynamodb-dedupe-store';
import { RedisCacheSink } from '../adapters/redis-cache-sink';
import { S3AuditSink } from '../adapters/s3-audit-sink';
import { S3WarehouseSink } from '../adapters/s3-warehouse-sink';
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

/** A Redis or Valkey client; cluster mode for ElastiCache Serverless (TLS via rediss://). */
export function createRedis(url: string, cluster: boolean): Redis | Cluster {
  const parsed = new URL(url);
  const tls = parsed.protocol === 'rediss:' ? {} : undefined;
  const common = { enableAutoPipelining: true, maxRetriesPerRequest: 2, connectTimeout: 5000 };
  if (!cluster) return new Redis(url, { ...common, lazyConnect: true });
  return new Cluster([{ host: parsed.hostname, port: Number(parsed.port || 6379) }], {
    ...common,
    lazyConnect: true,
    // ElastiCache's TLS certificates name the configuration endpoint, not the node IPs it returns.
    dnsLookup: (address, callback) => callback(null, address),
    redisOptions: { tls, username: parsed.username || undefined, password: parsed.password || undefined },
  });
}

function sinkFor(lane: Lane, env: LaneEnv<Lane>, clients: Clients): Sink {
  switch (lane) {
    case 'warehouse': {
      const e = env as LaneEnv<'warehouse'>;
      return new S3WarehouseSink(clients.s3, { bucket: e.WAREHOUSE_BUCKET, prefix: e.WAREHOUSE_PREFIX });
    }
    case 'audit': {
      const e = env as LaneEnv<'audit'>;
      return new S3AuditSink(clients.s3, { bucket: e.AUDIT_BUCKET, prefix: e.AUDIT_PREFIX });
    }
    case 'cache': {
      const e = env as LaneEnv<'cache'>;
      return new RedisCacheSink(createRedis(e.REDIS_URL, e.REDIS_CLUSTER), {
        prefix: e.CACHE_KEY_PREFIX,
        tombstoneTtlSeconds: e.CACHE_TOMBSTONE_TTL_SECONDS,
      });
    }
  }
}

/** Everything the pipeline needs for one lane, built once per cold start. */
export function createLaneDeps(lane: Lane, env: LaneEnv<Lane>, clients: Clients): PipelineDeps {
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
    sink: sinkFor(lane, env, clients),
    deadLetters: new SqsDeadLetterQueue(clients.sqs, clients.s3, {
      queueUrl: env.DLQ_URL,
      payloadBucket: env.DLQ_PAYLOAD_BUCKET,
    }),
    reportBatchItemFailures: env.REPORT_BATCH_ITEM_FAILURES,
  };
}
