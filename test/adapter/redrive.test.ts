import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { DynamoDedupeStore } from '../../functions/adapters/dynamodb-dedupe-store';
import type { DeadLetterMessage } from '../../functions/adapters/sqs-dead-letter-queue';
import type { BatchResult } from '../../functions/core/pipeline';
import type { KafkaEvent, KafkaRecord } from '../../functions/core/types';
import { createLaneHandler } from '../../functions/shared/lane-handler';
import { verifyAuditLog } from '../../tools/lib/audit-verify';
import { lambdaContext } from '../../tools/lib/cli';
import { SINKS } from '../../tools/lib/lanes';
import { redriveDeadLetters, redriveParkedKeys } from '../../tools/lib/redrive';
import { localClientConfig } from '../../tools/local/aws-clients';
import { LOCAL_NAMES } from '../../tools/local/services';
import { b64, eventOf, pgMessage } from '../support/builders';
import { useLocalServices } from '../support/local';

const services = useLocalServices();

describe('redriving dead letters (fauxqs, dynalite)', () => {
  it('puts fixed records back through the lane, keeps still-bad ones in the queue, and loses nothing', async () => {
    // Arrange: a lane whose MAX_RECORD_BYTES is too small for two of the records, and one record that is not JSON
    const prefix = `redrive-${Date.now()}`;
    const env = { ...services().laneEnv('audit'), AUDIT_PREFIX: `${prefix}/`, POWERTOOLS_LOG_LEVEL: 'SILENT' };
    const clientConfig = localClientConfig(env);
    const strict = createLaneHandler('audit', SINKS.audit, { ...env, MAX_RECORD_BYTES: '900' }, { clientConfig });
    const event = eventOf([
      pgMessage({ op: 'c', after: { id: 1 }, lsn: 100, offset: 0, topic: `${prefix}.orders` }),
      pgMessage({ op: 'c', after: { id: 2, note: 'x'.repeat(2000) }, lsn: 110, offset: 1, topic: `${prefix}.orders` }),
      pgMessage({ op: 'c', after: { id: 3, note: 'y'.repeat(2000) }, lsn: 120, offset: 2, topic: `${prefix}.orders` }),
      pgMessage({ op: 'c', after: { id: 4 }, lsn: 130, offset: 3, topic: `${prefix}.orders` }),
    ]);
    const records = event.records[`${prefix}.orders-0`] as KafkaRecord[];
    records.push({ ...(records[0] as KafkaRecord), offset: 4, value: b64('not json') });
    await strict(event, lambdaContext('a') as never);
    await strict.close();
    let last: BatchResult | undefined;
    const relaxed = createLaneHandler('audit', SINKS.audit, env, {
      clientConfig,
      mode: 'redrive',
      onBatch: (r) => (last = r),
    });
    const redrive = () =>
      redriveDeadLetters({
        sqs: services().clients.sqs,
        s3: services().clients.s3,
        queueUrl: services().queueUrls.audit,
        run: async (e) => {
          await relaxed(e, lambdaContext('a') as never);
          return last as BatchResult;
        },
      });
    try {
      // Act
      const first = await redrive();
      const second = await redrive();
      // Assert: the two oversize records went through; the bad one is back in the queue with its reason
      expect(first).toEqual({
        letters: 3,
        processed: 2,
        skipped: 0,
        duplicates: 0,
        deadLetteredAgain: 1,
        kept: 0,
        parked: 0,
      });
      expect(second).toMatchObject({ letters: 1, processed: 0, deadLetteredAgain: 1 });
      const left = await services().clients.sqs.send(
        new ReceiveMessageCommand({ QueueUrl: services().queueUrls.audit, MaxNumberOfMessages: 10 }),
      );
      expect(left.Messages?.map((m) => JSON.parse(m.Body ?? '{}') as DeadLetterMessage)).toEqual([
        expect.objectContaining({
          error: expect.objectContaining({ code: 'NOT_JSON' }),
          record: expect.objectContaining({ offset: 4 }),
        }),
      ]);
      const ids: string[] = [];
      const report = await verifyAuditLog(services().clients.s3, LOCAL_NAMES.auditBucket, `${prefix}/`, (_, events) =>
        ids.push(...events.map((e) => JSON.stringify(e.key))),
      );
      expect(report.ok).toBe(true);
      expect(ids.sort()).toEqual(['{"id":1}', '{"id":2}', '{"id":3}', '{"id":4}']);
    } finally {
      await relaxed.close();
    }
  });
});

/** A cache lane on the local services parking after `attempts`, its client settings, and a Redis to look with. */
function parkingLane(prefix: string, attempts: number) {
  const env: Record<string, string> = {
    ...services().laneEnv('cache'),
    CACHE_KEY_PREFIX: prefix,
    PARK_AFTER_ATTEMPTS: String(attempts),
    POWERTOOLS_LOG_LEVEL: 'SILENT',
  };
  return { env, clientConfig: localClientConfig(env), redis: new Redis(env.REDIS_URL ?? 'redis://127.0.0.1:6379') };
}

describe('redriving a parked key (fauxqs, dynalite, Redis)', () => {
  it('replays its letters in order, unparks it, and then applies a later change of the key normally', async () => {
    // Arrange: a cache lane parking after 2 attempts; something else wrote a hash where row 2's version lives, so
    // every write of row 2 fails (WRONGTYPE) while rows 1, 3 and 4 go through
    const prefix = `parked-${Date.now()}-a`;
    const { env, clientConfig, redis } = parkingLane(prefix, 2);
    const row = async (id: number) => redis.hgetall(`${prefix}:pg.public.orders:{${id}}`);
    const versionKey = `${prefix}:pg.public.orders:{2}:v`;
    await redis.hset(versionKey, 'not', 'a version');
    const topic = `${prefix}.orders`;
    const change = (id: number, v: string, offset: number) =>
      pgMessage({ op: 'u', after: { id, v }, lsn: 100 + offset, offset, topic });
    const streamed: BatchResult[] = [];
    const stream = createLaneHandler('cache', SINKS.cache, env, { clientConfig, onBatch: (r) => streamed.push(r) });
    let last: BatchResult | undefined;
    const redrive = createLaneHandler('cache', SINKS.cache, env, {
      clientConfig,
      mode: 'redrive',
      onBatch: (r) => (last = r),
    });
    const dedupe = new DynamoDedupeStore(services().clients.dynamodb, {
      tableName: LOCAL_NAMES.dedupeTable,
      ttlDays: 30,
    });
    const checkpoint = async () =>
      (await dedupe.load('cache', [{ id: `${topic}-0`, topic, partition: 0, records: [] }])).get(`${topic}-0`);
    try {
      const first = eventOf([change(1, 'a', 0), change(2, 'b', 1), change(2, 'c', 2), change(3, 'd', 3)]);
      await stream(first, lambdaContext('c') as never);
      await stream(first, lambdaContext('c') as never); // the second delivery parks row 2
      await stream(eventOf([change(2, 'e', 4), change(4, 'f', 5)]), lambdaContext('c') as never); // held behind
      const parkedCheckpoint = await checkpoint();
      await redis.del(versionKey); // the cause fixed
      const handed: KafkaEvent[] = [];

      // Act
      const summary = await redriveParkedKeys({
        sqs: services().clients.sqs,
        s3: services().clients.s3,
        queueUrl: services().queueUrls.cache,
        lane: 'cache',
        dedupe,
        run: async (e) => {
          handed.push(e);
          await redrive(e, lambdaContext('r') as never);
          return last as BatchResult;
        },
      });
      const afterRedrive = await row(2);
      await stream(eventOf([change(2, 'g', 6)]), lambdaContext('c') as never);

      // Assert: parked on the second delivery, its later change held, the neighbours applied
      expect(streamed.map((r) => r.batchItemFailures.length)).toEqual([1, 0, 0, 0]);
      expect(streamed[1]?.parked).toEqual([
        { partition: `${topic}-0`, key: 'pg.public.orders {"id":2}', offset: 1, attempts: 2 },
      ]);
      expect(parkedCheckpoint?.parked).toEqual([expect.objectContaining({ first: 1, last: 4, count: 3 })]);
      expect([await row(1), await row(3), await row(4)]).toEqual([
        { id: '1', v: '"a"' },
        { id: '3', v: '"d"' },
        { id: '4', v: '"f"' },
      ]);
      // The letters replayed in offset order, the key unparked, the queue empty
      expect(summary).toEqual({
        letters: 3,
        keys: [{ partition: `${topic}-0`, key: 'pg.public.orders {"id":2}', outcome: 'unparked', replayed: 3 }],
        processed: 3,
        deadLetteredAgain: 0,
        stale: 0,
        kept: 0,
      });
      expect(handed.map((e) => e.records[`${topic}-0`]?.map((r) => r.offset))).toEqual([[1, 2, 4]]);
      expect(afterRedrive).toEqual({ id: '2', v: '"e"' });
      expect((await checkpoint())?.parked).toBeUndefined();
      const left = await services().clients.sqs.send(
        new ReceiveMessageCommand({ QueueUrl: services().queueUrls.cache, MaxNumberOfMessages: 10 }),
      );
      expect(left.Messages ?? []).toEqual([]);
      // A later change of the key is applied normally again
      expect(streamed[3]).toMatchObject({ processed: 1, deadLettered: 0 });
      expect(await row(2)).toEqual({ id: '2', v: '"g"' });
    } finally {
      await stream.close();
      await redrive.close();
      await redis.quit();
    }
  });

  it('keeps the key parked and its letters in the queue while the replay still fails; a plain redrive leaves them', async () => {
    // Arrange: row 2 parked at its first failure, and the cause not fixed
    const prefix = `parked-${Date.now()}-b`;
    const { env, clientConfig, redis } = parkingLane(prefix, 1);
    await redis.hset(`${prefix}:pg.public.orders:{2}:v`, 'not', 'a version');
    const topic = `${prefix}.orders`;
    const stream = createLaneHandler('cache', SINKS.cache, env, { clientConfig });
    let last: BatchResult | undefined;
    const redrive = createLaneHandler('cache', SINKS.cache, env, {
      clientConfig,
      mode: 'redrive',
      onBatch: (r) => (last = r),
    });
    const dedupe = new DynamoDedupeStore(services().clients.dynamodb, {
      tableName: LOCAL_NAMES.dedupeTable,
      ttlDays: 30,
    });
    const options = {
      sqs: services().clients.sqs,
      s3: services().clients.s3,
      queueUrl: services().queueUrls.cache,
      run: async (e: KafkaEvent) => {
        await redrive(e, lambdaContext('r') as never);
        return last as BatchResult;
      },
    };
    try {
      await stream(
        eventOf([
          pgMessage({ op: 'c', after: { id: 2, v: 'a' }, lsn: 100, offset: 0, topic }),
          pgMessage({ op: 'u', after: { id: 2, v: 'b' }, lsn: 110, offset: 1, topic }),
        ]),
        lambdaContext('c') as never,
      );

      // Act
      const plain = await redriveDeadLetters(options);
      const parked = await redriveParkedKeys({ ...options, lane: 'cache', dedupe });

      // Assert
      expect(plain).toMatchObject({ letters: 0, processed: 0, parked: 2 });
      expect(parked).toMatchObject({ letters: 2, processed: 0, kept: 2 });
      expect(parked.keys).toEqual([
        expect.objectContaining({ outcome: 'failed', replayed: 0, detail: expect.stringMatching(/WRONGTYPE/) }),
      ]);
      const checkpoint = (await dedupe.load('cache', [{ id: `${topic}-0`, topic, partition: 0, records: [] }])).get(
        `${topic}-0`,
      );
      expect(checkpoint?.parked).toEqual([expect.objectContaining({ key: 'pg.public.orders {"id":2}', count: 2 })]);
      const left = await services().clients.sqs.send(
        new ReceiveMessageCommand({ QueueUrl: services().queueUrls.cache, MaxNumberOfMessages: 10 }),
      );
      expect(left.Messages?.map((m) => (JSON.parse(m.Body ?? '{}') as DeadLetterMessage).record.offset).sort()).toEqual(
        [0, 1],
      );
    } finally {
      await stream.close();
      await redrive.close();
      await redis.quit();
    }
  });
});
