import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import type { DeadLetterMessage } from '../../functions/adapters/sqs-dead-letter-queue';
import type { BatchResult } from '../../functions/core/pipeline';
import type { KafkaRecord } from '../../functions/core/types';
import { createLaneHandler } from '../../functions/shared/lane-handler';
import { verifyAuditLog } from '../../tools/lib/audit-verify';
import { lambdaContext } from '../../tools/lib/cli';
import { SINKS } from '../../tools/lib/lanes';
import { redriveDeadLetters } from '../../tools/lib/redrive';
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
      expect(first).toEqual({ letters: 3, processed: 2, skipped: 0, duplicates: 0, deadLetteredAgain: 1, kept: 0 });
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
