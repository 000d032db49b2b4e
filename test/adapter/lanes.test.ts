import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DynamoDedupeStore } from '../../functions/adapters/dynamodb-dedupe-store';
import type { DeadLetterMessage } from '../../functions/adapters/sqs-dead-letter-queue';
import { PARKED_KEYS_LIMIT } from '../../functions/core/parking';
import type { BatchResult } from '../../functions/core/pipeline';
import type { KafkaEvent, KafkaRecord, Lane } from '../../functions/core/types';
import type { SinkFactory } from '../../functions/shared/lane-deps';
import { createLaneHandler } from '../../functions/shared/lane-handler';
import { verifyAuditLog } from '../../tools/lib/audit-verify';
import { lambdaContext } from '../../tools/lib/cli';
import { SINKS } from '../../tools/lib/lanes';
import { downloadChangeLog, openWarehouse } from '../../tools/lib/warehouse';
import { localClientConfig } from '../../tools/local/aws-clients';
import { LOCAL_NAMES } from '../../tools/local/services';
import { b64, eventOf, pgMessage } from '../support/builders';
import { type FaultProxy, startFaultProxy } from '../support/fault-proxy';
import { useLocalServices } from '../support/local';

const services = useLocalServices();
let ddbProxy: FaultProxy;
let redis: Redis;
beforeAll(async () => {
  ddbProxy = await startFaultProxy(services().endpoints.dynamodb);
  redis = new Redis(services().redisUrl ?? 'redis://127.0.0.1:6379');
});
afterAll(async () => {
  await ddbProxy.close();
  await redis.quit();
});

/** A lane wired exactly as in Lambda, against the local services; DynamoDB goes through the fault proxy. */
function lane(name: Lane, prefix: string) {
  const results: BatchResult[] = [];
  const env = {
    ...services().laneEnv(name),
    AWS_ENDPOINT_URL_DYNAMODB: ddbProxy.url,
    WAREHOUSE_PREFIX: `${prefix}/`,
    AUDIT_PREFIX: `${prefix}/`,
    CACHE_KEY_PREFIX: prefix,
    POWERTOOLS_LOG_LEVEL: 'SILENT',
  };
  const handler = createLaneHandler(name, SINKS[name] as SinkFactory<Lane>, env, {
    clientConfig: localClientConfig(env),
    onBatch: (r) => results.push(r),
  });
  return {
    results,
    invoke: (event: KafkaEvent) => handler(event, lambdaContext(`cdc-sync-${name}`) as never),
    close: () => handler.close(),
  };
}

/** 12 changes on two partitions of two tables (topic names with dashes, like `<run>.order-lines-1`). */
function changes(run: string): KafkaEvent {
  // Topics are unique per test: checkpoints are per lane and topic-partition, and the dedupe table is shared.
  const orders = Array.from({ length: 8 }, (_, i) =>
    pgMessage({
      op: i % 4 === 3 ? 'u' : 'c',
      after: { id: i % 4 === 3 ? i - 1 : i, n: i },
      lsn: 1000 + i * 10,
      offset: i,
      topic: `${run}.orders`,
    }),
  );
  const lines = Array.from({ length: 4 }, (_, i) =>
    pgMessage({
      op: 'c',
      table: 'order-lines',
      after: { id: i },
      lsn: 1005 + i * 10,
      offset: 20 + i,
      partition: 1,
      topic: `${run}.order-lines`,
    }),
  );
  return eventOf([...orders, ...lines]);
}

function half(event: KafkaEvent, which: 0 | 1): KafkaEvent {
  const records: Record<string, KafkaRecord[]> = {};
  for (const [key, list] of Object.entries(event.records)) {
    const mid = Math.ceil(list.length / 2);
    records[key] = which === 0 ? list.slice(0, mid) : list.slice(mid);
  }
  return { ...event, records };
}

async function warehouseIds(prefix: string): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'lanes-'));
  try {
    await downloadChangeLog(services().clients.s3, LOCAL_NAMES.warehouseBucket, `${prefix}/`, dir);
    const w = await openWarehouse(dir);
    const rows = await w.query(`SELECT _cdc_id FROM read_parquet('${dir}/**/*.parquet', union_by_name = true)`);
    w.close();
    return rows.map((r) => String(r._cdc_id)).sort();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function auditIds(prefix: string): Promise<{ ok: boolean; ids: string[] }> {
  const ids: string[] = [];
  const report = await verifyAuditLog(services().clients.s3, LOCAL_NAMES.auditBucket, `${prefix}/`, (_, events) =>
    ids.push(...events.map((e) => e.id)),
  );
  return { ok: report.ok, ids: ids.sort() };
}

describe('lane handlers against local services', () => {
  it.each(['warehouse', 'cache', 'audit'] as const)(
    'the %s lane leaves exactly one effect when a batch is retried after the checkpoint commit failed, and after a bisected retry',
    async (name) => {
      // Arrange
      const prefix = `retry-${name}-${Date.now()}`;
      const l = lane(name, prefix);
      const event = changes(prefix);
      try {
        // Act 1: sink writes succeed, DynamoDB refuses the checkpoint commits ⇒ partial batch failure
        // (a batch's checkpoints go together in one TransactWriteItems; a single one as a PutItem)
        for (const operation of ['TransactWriteItems', 'PutItem']) ddbProxy.failing.add(operation);
        const failed = (await l.invoke(event)) as { batchItemFailures: unknown[] };
        ddbProxy.failing.clear();
        // Act 2: the event source mapping retries (bisected), then the whole batch once more (redelivery)
        await l.invoke(half(event, 0));
        await l.invoke(half(event, 1));
        await l.invoke(event);
        // Assert
        expect(failed.batchItemFailures).toEqual([
          { itemIdentifier: { partition: `${prefix}.orders-0`, offset: 0 } },
          { itemIdentifier: { partition: `${prefix}.order-lines-1`, offset: 20 } },
        ]);
        expect(l.results.at(-1)).toMatchObject({ records: 12, processed: 0, duplicates: 12 });
        const expectedIds = l.results[0]?.records;
        expect(expectedIds).toBe(12);
        if (name === 'warehouse') {
          const ids = await warehouseIds(prefix);
          expect(ids).toHaveLength(12);
          expect(new Set(ids).size).toBe(12);
        } else if (name === 'audit') {
          const { ok, ids } = await auditIds(prefix);
          expect(ok).toBe(true);
          expect(ids).toHaveLength(12);
          expect(new Set(ids).size).toBe(12);
        } else {
          const keys = await redis.keys(`${prefix}:*:{*}`);
          expect(keys.filter((k) => !k.endsWith(':v')).sort()).toHaveLength(10); // 6 orders rows (2 updated) + 4 lines
          expect(await redis.hgetall(`${prefix}:pg.public.orders:{2}`)).toEqual({ id: '2', n: '3' });
        }
      } finally {
        await l.close();
      }
    },
  );

  it('dead-letters each bad record with its original payload and processes the good neighbours', async () => {
    // Arrange
    const prefix = `bad-${Date.now()}`;
    const l = lane('audit', prefix);
    const event = changes(prefix);
    const orders = event.records[`${prefix}.orders-0`] as KafkaRecord[];
    const template = orders[0] as KafkaRecord;
    const bad: Array<[string, string]> = [
      ['bad base64', '%%%%'],
      ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0x7d]).toString('base64')],
      ['not JSON', b64('hello')],
      ['unknown op', b64('{"op":"z","source":{"connector":"postgresql","name":"pg","lsn":1}}')],
      ['missing source', b64('{"op":"c","after":{"id":1}}')],
      ['2 MB value', b64(`{"op":"c","pad":"${'x'.repeat(2 * 1024 * 1024)}"}`)],
    ];
    for (const [i, [, value]] of bad.entries()) orders.push({ ...template, offset: 100 + i, value });
    try {
      // Act
      const response = (await l.invoke(event)) as { batchItemFailures: unknown[] };
      // Assert
      expect(response.batchItemFailures).toEqual([]);
      expect(l.results[0]).toMatchObject({ records: 18, processed: 12, deadLettered: 6 });
      const messages: DeadLetterMessage[] = [];
      for (;;) {
        const r = await services().clients.sqs.send(
          new ReceiveMessageCommand({ QueueUrl: services().queueUrls.audit, MaxNumberOfMessages: 10 }),
        );
        if (!r.Messages?.length) break;
        messages.push(...r.Messages.map((m) => JSON.parse(m.Body ?? '{}') as DeadLetterMessage));
      }
      expect(messages.map((m) => [m.record.offset, m.error.code]).sort()).toEqual([
        [100, 'BAD_BASE64'],
        [101, 'INVALID_UTF8'],
        [102, 'NOT_JSON'],
        [103, 'UNKNOWN_OP'],
        [104, 'MISSING_SOURCE'],
        [105, 'RECORD_TOO_LARGE'],
      ]);
      const notJson = messages.find((m) => m.record.offset === 102);
      expect(notJson).toMatchObject({
        lane: 'audit',
        record: { topic: `${prefix}.orders`, partition: 0, value: b64('hello'), key: template.key },
      });
      expect(messages.find((m) => m.record.offset === 105)?.payloadLocation?.bucket).toBe(LOCAL_NAMES.deadLetterBucket);
      expect((await auditIds(prefix)).ids).toHaveLength(12);
    } finally {
      await l.close();
    }
  });

  it('hashes PII columns with the salt read from Secrets Manager', async () => {
    // Arrange
    const prefix = `pii-${Date.now()}`;
    const env = {
      ...services().laneEnv('audit'),
      AUDIT_PREFIX: `${prefix}/`,
      POWERTOOLS_LOG_LEVEL: 'SILENT',
      TABLE_RULES: JSON.stringify({ columns: { 'public.customers': { pii: { email: 'sha256' } } } }),
      PII_HASH_SALT_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:salt',
    };
    const handler = createLaneHandler('audit', SINKS.audit, env, {
      clientConfig: localClientConfig(env),
      readSecret: async () => 'pepper',
    });
    const event = eventOf([
      pgMessage({
        op: 'c',
        table: 'customers',
        after: { id: 1, email: 'ann@example.com' },
        lsn: 10,
        topic: `${prefix}.customers`,
      }),
    ]);
    try {
      // Act
      await handler(event, lambdaContext('a') as never);
      // Assert
      const events: unknown[] = [];
      await verifyAuditLog(services().clients.s3, LOCAL_NAMES.auditBucket, `${prefix}/`, (_, e) => events.push(...e));
      const expected = createHash('sha256').update('pepper').update('ann@example.com').digest('hex');
      expect(events).toEqual([expect.objectContaining({ after: { id: 1, email: expected } })]);
    } finally {
      await handler.close();
    }
  });

  it('fails the batch for a retry when the sink is down, then catches up', async () => {
    // Arrange: S3 refuses every PUT while the fault is on
    const s3Proxy = await startFaultProxy(services().endpoints.s3);
    const prefix = `down-${Date.now()}`;
    const results: BatchResult[] = [];
    const env = {
      ...services().laneEnv('warehouse'),
      AWS_ENDPOINT_URL_S3: s3Proxy.url,
      WAREHOUSE_PREFIX: `${prefix}/`,
      POWERTOOLS_LOG_LEVEL: 'SILENT',
    };
    const handler = createLaneHandler('warehouse', SINKS.warehouse, env, {
      clientConfig: localClientConfig(env),
      onBatch: (r) => results.push(r),
    });
    s3Proxy.failing.add(/^PUT /);
    try {
      // Act
      const first = (await handler(changes(prefix), lambdaContext('w') as never)) as { batchItemFailures: unknown[] };
      s3Proxy.failing.clear();
      await handler(changes(prefix), lambdaContext('w') as never);
      // Assert
      expect(first.batchItemFailures).toHaveLength(2);
      expect(results[0]).toMatchObject({ processed: 0, retried: 12, deadLettered: 0 });
      expect(results[0]?.error).toMatchObject({ code: 'SINK_UNAVAILABLE', retryable: true });
      expect(results[1]).toMatchObject({ processed: 12 });
      expect(await warehouseIds(prefix)).toHaveLength(12);
    } finally {
      await handler.close();
      await s3Proxy.close();
    }
  });

  it('throws a retryable error instead of reporting partial failures when ReportBatchItemFailures is off', async () => {
    // Arrange
    const s3Proxy = await startFaultProxy(services().endpoints.s3);
    const prefix = `throws-${Date.now()}`;
    const env = {
      ...services().laneEnv('warehouse'),
      AWS_ENDPOINT_URL_S3: s3Proxy.url,
      WAREHOUSE_PREFIX: `${prefix}/`,
      REPORT_BATCH_ITEM_FAILURES: 'false',
      POWERTOOLS_LOG_LEVEL: 'SILENT',
    };
    const handler = createLaneHandler('warehouse', SINKS.warehouse, env, { clientConfig: localClientConfig(env) });
    s3Proxy.failing.add(/^PUT /);
    try {
      // Act + Assert: the whole batch is retried by the event source mapping
      await expect(handler(changes(prefix), lambdaContext('w') as never)).rejects.toMatchObject({
        code: 'SINK_UNAVAILABLE',
        retryable: true,
      });
      s3Proxy.failing.clear();
      await expect(handler(changes(prefix), lambdaContext('w') as never)).resolves.toEqual({ batchItemFailures: [] });
      expect(await warehouseIds(prefix)).toHaveLength(12);
    } finally {
      await handler.close();
      await s3Proxy.close();
    }
  });

  it('logs the keys it parks and publishes KeysParked; with its parked keys full it logs the key it could not park', async () => {
    // Arrange: a cache lane parking at the first failure; row 2's version key holds a hash (every write of it fails
    // with WRONGTYPE) on two topics, the second one's partition already holding as many parked keys as it may
    const prefix = `parking-${Date.now()}`;
    const env = {
      ...services().laneEnv('cache'),
      CACHE_KEY_PREFIX: prefix,
      PARK_AFTER_ATTEMPTS: '1',
      POWERTOOLS_LOG_LEVEL: 'WARN',
    };
    await redis.hset(`${prefix}:pg.public.poison:{2}:v`, 'not', 'a version');
    await redis.hset(`${prefix}:pg.public.full:{2}:v`, 'not', 'a version');
    const full = { id: `${prefix}.full-0`, topic: `${prefix}.full`, partition: 0, records: [] };
    const parked = Array.from({ length: PARKED_KEYS_LIMIT }, (_, i) => ({
      key: `pg.public.full {"id":${100 + i}}`,
      first: 0,
      last: 0,
      count: 1,
      attempts: 1,
      parkedAt: 1,
    }));
    const dedupe = new DynamoDedupeStore(services().clients.dynamodb, {
      tableName: LOCAL_NAMES.dedupeTable,
      ttlDays: 30,
    });
    await dedupe.commit('cache', [
      { partition: full, previous: undefined, next: { offset: 0, hw: '', hwIds: [], version: 1, parked } },
    ]);
    const handler = createLaneHandler('cache', SINKS.cache, env, { clientConfig: localClientConfig(env) });
    const lines: string[] = [];
    // EMF goes to stdout, warnings and errors to stderr (Powertools' console).
    const capture = (chunk: string | Uint8Array) => {
      lines.push(
        ...String(chunk)
          .split('\n')
          .filter((l) => l.startsWith('{')),
      );
      return true;
    };
    const spies = [
      vi.spyOn(process.stdout, 'write').mockImplementation(capture),
      vi.spyOn(process.stderr, 'write').mockImplementation(capture),
    ];
    try {
      // Act
      await handler(
        eventOf([
          pgMessage({ op: 'c', table: 'poison', after: { id: 2 }, lsn: 100, offset: 1, topic: `${prefix}.poison` }),
          pgMessage({ op: 'c', table: 'full', after: { id: 2 }, lsn: 100, offset: 1, topic: `${prefix}.full` }),
        ]),
        lambdaContext('c') as never,
      );
    } finally {
      for (const spy of spies) spy.mockRestore();
      await handler.close();
    }
    // Assert
    const documents = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(
      documents.find(
        (d) => d.message === 'keys parked: their changes go to the dead-letter queue, in order, until redriven',
      ),
    ).toMatchObject({
      level: 'WARN',
      parked: [{ partition: `${prefix}.poison-0`, key: 'pg.public.poison {"id":2}', offset: 1, attempts: 1 }],
    });
    expect(
      documents.find((d) => d.message === 'keys not parked: their partition is retried until the retries run out'),
    ).toMatchObject({
      level: 'ERROR',
      notParked: [
        expect.objectContaining({ partition: `${prefix}.full-0`, key: 'pg.public.full {"id":2}', attempts: 1 }),
      ],
    });
    expect(documents.find((d) => d.table === `${prefix}.poison`)).toMatchObject({ KeysParked: 1 });
    expect(documents.find((d) => d.KeysParked !== undefined && d.table === undefined)).toMatchObject({ KeysParked: 1 });
  });
});
