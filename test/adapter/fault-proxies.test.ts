/**
 * The fault proxies of `npm run chaos` against the real local services: each fault does to the caller and to the
 * service what the real outage does (a write that failed after it took effect is stored; one that failed before is
 * not; a refused checkpoint reaches the lane as a retryable conflict; a reset after a Redis script ran makes ioredis
 * run it again), and requests are classified by what they do to the pipeline.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { DynamoDedupeStore } from '../../functions/adapters/dynamodb-dedupe-store';
import type { Checkpoint, PartitionBatch } from '../../functions/core/types';
import {
  type FaultProxy,
  type HttpFault,
  type ProxiedRequest,
  startFaultProxy,
} from '../../tools/local/faults/http-proxy';
import { type RedisFault, startRedisFaultProxy } from '../../tools/local/faults/redis-proxy';
import { LOCAL_NAMES } from '../../tools/local/services';
import { useLocalServices } from '../support/local';

const services = useLocalServices();
const proxies: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

/** A proxy in front of one service whose faults come from `faults` in order (undefined: pass), recording requests. */
async function proxy(service: 'dynamodb' | 's3' | 'sqs', faults: Array<HttpFault | undefined>) {
  const seen: ProxiedRequest[] = [];
  const started: FaultProxy = await startFaultProxy({
    upstream: services().endpoints[service],
    service,
    deadLetterBucket: LOCAL_NAMES.deadLetterBucket,
    decide: (request) => {
      seen.push(request);
      return faults.shift();
    },
  });
  proxies.push(started);
  return { url: started.url, seen };
}

const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
/** Clients without the SDK's own retries: each fault reaches the caller. */
const s3Via = (url: string) =>
  new S3Client({ endpoint: url, region: 'eu-west-1', credentials, forcePathStyle: true, maxAttempts: 1 });
const dynamoVia = (url: string) =>
  new DynamoDBClient({ endpoint: url, region: 'eu-west-1', credentials, maxAttempts: 1 });

async function stored(key: string): Promise<string | undefined> {
  try {
    const object = await services().clients.s3.send(
      new GetObjectCommand({ Bucket: LOCAL_NAMES.warehouseBucket, Key: key }),
    );
    return await object.Body?.transformToString();
  } catch {
    return undefined;
  }
}

describe('HTTP fault proxy (S3, DynamoDB, SQS)', () => {
  it('failAfter: the write is stored, the caller gets a 500', async () => {
    const { url, seen } = await proxy('s3', ['failAfter']);
    const put = s3Via(url).send(
      new PutObjectCommand({ Bucket: LOCAL_NAMES.warehouseBucket, Key: 'chaos/after.txt', Body: 'written' }),
    );
    await expect(put).rejects.toMatchObject({ name: 'InternalError', $metadata: { httpStatusCode: 500 } });
    expect(await stored('chaos/after.txt')).toBe('written');
    expect(seen[0]).toMatchObject({ service: 's3', operation: 'PUT', class: 'sinkWrite' });
  });

  it('failBefore: nothing is stored, the caller gets a 500; a PUT to the dead-letter bucket is a dead-letter send', async () => {
    const { url, seen } = await proxy('s3', ['failBefore']);
    const put = s3Via(url).send(
      new PutObjectCommand({ Bucket: LOCAL_NAMES.warehouseBucket, Key: 'chaos/before.txt', Body: 'lost' }),
    );
    await expect(put).rejects.toMatchObject({ name: 'InternalError' });
    expect(await stored('chaos/before.txt')).toBeUndefined();
    await s3Via(url).send(new PutObjectCommand({ Bucket: LOCAL_NAMES.deadLetterBucket, Key: 'x.json', Body: '{}' }));
    expect(seen.map((r) => r.class)).toEqual(['sinkWrite', 'deadLetterSend']);
  });

  it('a refused or cancelled checkpoint commit reaches the lane as a retryable error and changes nothing', async () => {
    const { url, seen } = await proxy('dynamodb', ['conditionFailed', 'transactionConflict', 'throttle']);
    const store = new DynamoDedupeStore(dynamoVia(url), { tableName: LOCAL_NAMES.dedupeTable, ttlDays: 1 });
    const part = (n: number): PartitionBatch => ({ id: `chaos.t-${n}`, topic: 'chaos.t', partition: n, records: [] });
    const next: Checkpoint = { offset: 5, hw: '', hwIds: [], version: 1 };
    const commits = [0, 1].map((n) => ({ partition: part(n), previous: undefined, next }));

    const refused = await store.commit('cache', commits);
    const cancelled = await store.commit('cache', commits);
    const throttled = await store.load('cache', [part(0)]).catch((e: unknown) => e);

    expect(refused.map((e) => e?.code)).toEqual(['CHECKPOINT_CONFLICT', 'CHECKPOINT_CONFLICT']);
    expect(cancelled.map((e) => e?.code)).toEqual(['DEDUPE_UNAVAILABLE', 'DEDUPE_UNAVAILABLE']);
    expect([...refused, ...cancelled].every((e) => e?.retryable === true)).toBe(true);
    expect(throttled).toMatchObject({
      code: 'DEDUPE_UNAVAILABLE',
      retryable: true,
      cause: { name: 'ThrottlingException' },
    });
    expect(seen.map((r) => `${r.operation}:${r.class}`)).toEqual([
      'TransactWriteItems:checkpointCommit',
      'TransactWriteItems:checkpointCommit',
      'BatchGetItem:checkpointRead',
    ]);
    // Nothing was forwarded: a load without faults finds no checkpoint.
    expect((await store.load('cache', [part(0), part(1)])).size).toBe(0);
  });

  it('hold: the request is never answered and never reaches the service', async () => {
    const { url } = await proxy('s3', ['hold']);
    const abort = new AbortController();
    const put = s3Via(url).send(
      new PutObjectCommand({ Bucket: LOCAL_NAMES.warehouseBucket, Key: 'chaos/held.txt', Body: 'held' }),
      { abortSignal: abort.signal },
    );
    const outcome = await Promise.race([put.then(() => 'answered'), new Promise((r) => setTimeout(r, 300, 'held'))]);
    abort.abort();
    await put.catch(() => undefined);
    expect(outcome).toBe('held');
    expect(await stored('chaos/held.txt')).toBeUndefined();
  });

  it('classifies SQS sends as dead-letter sends', async () => {
    const { url, seen } = await proxy('sqs', [undefined]);
    const sqs = new SQSClient({ endpoint: url, region: 'eu-west-1', credentials, maxAttempts: 1 });
    await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: services().queueUrls.cache,
        Entries: [{ Id: '0', MessageBody: '{}' }],
      }),
    );
    expect(seen[0]).toMatchObject({ service: 'sqs', operation: 'SendMessageBatch', class: 'deadLetterSend' });
  });
});

describe('Redis fault proxy', () => {
  const key = `chaos-proxy-test:${process.pid}`;

  /** Runs one INCR script through a proxy whose first script call meets `fault`; the counter's value after it. */
  async function incrementThrough(fault: RedisFault): Promise<number> {
    const redisUrl = services().redisUrl;
    if (!redisUrl) throw new Error('these tests need Redis');
    const direct = new Redis(redisUrl);
    await direct.del(key);
    const faults: Array<RedisFault | undefined> = [fault];
    const started = await startRedisFaultProxy({ upstream: redisUrl, decide: () => faults.shift() });
    proxies.push(started);
    // The cache sink's client settings (functions/adapters/redis-cache-sink.ts): ioredis resends what was unanswered.
    const client = new Redis(started.url, { maxRetriesPerRequest: 2, enableAutoPipelining: true });
    try {
      await client.eval("return redis.call('INCR', KEYS[1])", 1, key);
      return Number(await direct.get(key));
    } finally {
      client.disconnect();
      await direct.del(key);
      direct.disconnect();
    }
  }

  it('resetAfter: the script ran, the reply was lost, and ioredis ran it again', async () => {
    expect(await incrementThrough('resetAfter')).toBe(2);
  });

  it('resetBefore: the script never reached Redis; ioredis ran it once on the new connection', async () => {
    expect(await incrementThrough('resetBefore')).toBe(1);
  });
});
