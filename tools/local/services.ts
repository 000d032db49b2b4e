import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { startFauxqs } from 'fauxqs';
import S3rver from 's3rver';
import type { Lane } from '../../functions/core/types';
import { LANES } from '../../functions/core/types';
import { dynaliteWithTransactions } from './dynalite-transactions';
import { fixFauxqsListing } from './memory-s3';
import { ensureRedis } from './redis';

/**
 * Local stand-ins for the AWS services a lane talks to, all in this process: DynamoDB (dynalite, with the
 * TransactWriteItems that dynalite-transactions.ts adds), S3 and SQS (fauxqs), plus the machine's Redis. With `dir`,
 * state survives between runs (dynalite's LevelDB, S3 objects as files with s3rver, the dead-letter queues saved on
 * stop), so invoking the same event twice finds the first run's checkpoints and reports duplicates. Without it, S3
 * lives in fauxqs's memory (see memory-s3.ts for why).
 */

export const LOCAL_NAMES = {
  dedupeTable: 'cdc-sync-local-dedupe',
  warehouseBucket: 'cdc-sync-local-warehouse',
  auditBucket: 'cdc-sync-local-audit',
  deadLetterBucket: 'cdc-sync-local-dead-letters',
  queue: (lane: Lane) => `cdc-sync-local-${lane}-dlq`,
};

/** The emulators' region and credentials (they accept any; these are not secrets). */
export const LOCAL_REGION = 'eu-west-1';
export const LOCAL_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const REGION = LOCAL_REGION;
const CREDENTIALS = LOCAL_CREDENTIALS;

export interface LocalServicesOptions {
  /** Keep state in this folder (created if missing); omit for throw-away state in memory and a temp folder. */
  dir?: string;
  /** Delete the folder's state first. */
  fresh?: boolean;
  /** Redis URL, `null` for none, or `'auto'` (REDIS_URL, 127.0.0.1:6379, or start redis-server). */
  redis?: string | null | 'auto';
  /** Where S3 objects live: `files` (s3rver, in `dir` or a temp folder) or `memory` (fauxqs). Default: files with `dir`. */
  s3?: 'files' | 'memory';
}

export interface LocalServices {
  endpoints: { dynamodb: string; s3: string; sqs: string };
  redisUrl: string | null;
  /** Why Redis is missing, when it is. */
  redisProblem?: string;
  clients: { dynamodb: DynamoDBClient; s3: S3Client; sqs: SQSClient };
  queueUrls: Record<Lane, string>;
  /** Environment variables that point a lane at these services (what CDK sets in AWS). */
  laneEnv(lane: Lane): Record<string, string>;
  stop(): Promise<void>;
}

async function listen(server: import('node:http').Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

async function ensureTable(client: DynamoDBClient): Promise<void> {
  try {
    await client.send(new DescribeTableCommand({ TableName: LOCAL_NAMES.dedupeTable }));
  } catch {
    await client.send(
      new CreateTableCommand({
        TableName: LOCAL_NAMES.dedupeTable,
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
  }
}

interface SavedMessage {
  body: string;
  attributes: Record<string, { DataType: string; StringValue?: string }>;
}

export async function startLocalServices(options: LocalServicesOptions = {}): Promise<LocalServices> {
  const inMemory = (options.s3 ?? (options.dir ? 'files' : 'memory')) === 'memory';
  // A folder only for state on disk: kept with `dir`, or a temp folder for s3rver's files.
  const dir =
    options.dir ??
    (inMemory ? undefined : join((await import('node:os')).tmpdir(), `cdc-sync-${process.pid}-${Date.now()}`));
  if (dir && options.fresh) await rm(dir, { recursive: true, force: true });
  const s3Dir = dir && !inMemory ? join(dir, 's3') : undefined;
  if (s3Dir) await mkdir(s3Dir, { recursive: true });

  const ddbServer = dynaliteWithTransactions(
    options.dir ? { path: join(options.dir, 'dynamodb'), createTableMs: 0 } : { createTableMs: 0 },
  );
  const ddbPort = await listen(ddbServer);
  const buckets = [LOCAL_NAMES.warehouseBucket, LOCAL_NAMES.auditBucket, LOCAL_NAMES.deadLetterBucket];
  if (inMemory) await fixFauxqsListing();
  const s3Server = s3Dir
    ? new S3rver({
        address: '127.0.0.1',
        port: 0,
        silent: true,
        directory: s3Dir,
        resetOnClose: !options.dir,
        // The lanes' local clients send an unchecked signature (tools/local/aws-clients.ts).
        allowMismatchedSignatures: true,
        configureBuckets: buckets.map((name) => ({ name })),
      })
    : undefined;
  const s3Port = s3Server ? (await s3Server.run()).port : undefined;
  const sqsServer = await startFauxqs({ port: 0, logger: false, defaultRegion: REGION });
  if (inMemory) for (const name of buckets) sqsServer.createBucket(name);

  const endpoints = {
    dynamodb: `http://127.0.0.1:${ddbPort}`,
    s3: s3Port === undefined ? sqsServer.address : `http://127.0.0.1:${s3Port}`,
    sqs: sqsServer.address,
  };
  const clients = {
    dynamodb: new DynamoDBClient({ endpoint: endpoints.dynamodb, region: REGION, credentials: CREDENTIALS }),
    s3: new S3Client({ endpoint: endpoints.s3, region: REGION, credentials: CREDENTIALS, forcePathStyle: true }),
    sqs: new SQSClient({ endpoint: endpoints.sqs, region: REGION, credentials: CREDENTIALS }),
  };
  await ensureTable(clients.dynamodb);

  const queueUrls = {} as Record<Lane, string>;
  for (const lane of LANES) queueUrls[lane] = sqsServer.createQueue(LOCAL_NAMES.queue(lane)).queueUrl;
  // fauxqs keeps messages in memory: dead letters of earlier runs are saved on stop and sent again here.
  const sqsFile = options.dir ? join(options.dir, 'sqs.json') : undefined;
  if (sqsFile) {
    const saved: Record<string, SavedMessage[]> = await readFile(sqsFile, 'utf8').then(
      (t) => JSON.parse(t) as Record<string, SavedMessage[]>,
      () => ({}),
    );
    for (const lane of LANES) {
      const messages = saved[lane] ?? [];
      for (let i = 0; i < messages.length; i += 10) {
        await clients.sqs.send(
          new SendMessageBatchCommand({
            QueueUrl: queueUrls[lane],
            Entries: messages
              .slice(i, i + 10)
              .map((m, j) => ({ Id: String(j), MessageBody: m.body, MessageAttributes: m.attributes })),
          }),
        );
      }
    }
  }

  let redisUrl: string | null = null;
  let redisProblem: string | undefined;
  if (options.redis === 'auto' || options.redis === undefined) {
    const found = await ensureRedis();
    redisUrl = found.url;
    if (found.url === null) redisProblem = found.reason;
  } else {
    redisUrl = options.redis;
  }

  const laneEnv = (lane: Lane): Record<string, string> => {
    const env: Record<string, string> = {
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
      AWS_ENDPOINT_URL_DYNAMODB: endpoints.dynamodb,
      AWS_ENDPOINT_URL_S3: endpoints.s3,
      AWS_ENDPOINT_URL_SQS: endpoints.sqs,
      DEDUPE_TABLE_NAME: LOCAL_NAMES.dedupeTable,
      DLQ_URL: queueUrls[lane],
      DLQ_PAYLOAD_BUCKET: LOCAL_NAMES.deadLetterBucket,
      REPORT_BATCH_ITEM_FAILURES: 'true',
      POWERTOOLS_METRICS_NAMESPACE: 'cdc-sync',
      POWERTOOLS_TRACE_ENABLED: 'false',
      WAREHOUSE_BUCKET: LOCAL_NAMES.warehouseBucket,
      AUDIT_BUCKET: LOCAL_NAMES.auditBucket,
    };
    if (redisUrl) env.REDIS_URL = redisUrl;
    return env;
  };

  const stop = async () => {
    if (sqsFile) {
      const saved: Record<string, SavedMessage[]> = {};
      for (const lane of LANES) {
        const state = sqsServer.inspectQueue(LOCAL_NAMES.queue(lane));
        const all = [
          ...(state?.messages.ready ?? []),
          ...(state?.messages.delayed ?? []),
          ...(state?.messages.inflight ?? []).map((m) => m.message),
        ];
        saved[lane] = all.map((m) => ({ body: m.body, attributes: m.messageAttributes as SavedMessage['attributes'] }));
      }
      await writeFile(sqsFile, JSON.stringify(saved));
    }
    for (const client of Object.values(clients)) client.destroy();
    await sqsServer.stop();
    await s3Server?.close();
    await new Promise<void>((resolve) => ddbServer.close(() => resolve()));
    if (dir && !options.dir) await rm(dir, { recursive: true, force: true });
  };

  return { endpoints, redisUrl, redisProblem, clients, queueUrls, laneEnv, stop };
}
