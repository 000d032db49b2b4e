import { describe, expect, it, vi } from 'vitest';
import type { BatchResult } from '../../functions/core/pipeline';
import type { Sink } from '../../functions/core/types';
import { createLaneHandler, piiSalt } from '../../functions/shared/lane-handler';
import { lambdaContext } from '../../tools/lib/cli';

/** The handler wiring without AWS: an event with only a tombstone never reaches DynamoDB, the sink or SQS. */
const env = {
  DEDUPE_TABLE_NAME: 'dedupe',
  DLQ_URL: 'https://sqs.eu-west-1.amazonaws.com/111122223333/dlq',
  DLQ_PAYLOAD_BUCKET: 'dead-letters',
  WAREHOUSE_BUCKET: 'lake',
  AWS_REGION: 'eu-west-1',
  POWERTOOLS_LOG_LEVEL: 'SILENT',
  POWERTOOLS_TRACE_ENABLED: 'false',
};
const noSink = (): Sink => ({ write: async () => [] });

describe('createLaneHandler', () => {
  it('fails at cold start naming a missing variable', () => {
    expect(() => createLaneHandler('warehouse', noSink, { ...env, WAREHOUSE_BUCKET: undefined })).toThrow(
      /WAREHOUSE_BUCKET is missing/,
    );
  });

  it('reads the PII salt from Secrets Manager once, retrying after a failed read', async () => {
    // Arrange
    const reads: string[] = [];
    let fail = true;
    const readSecret = async (arn: string) => {
      reads.push(arn);
      if (fail) throw new Error('secrets manager down');
      return 'pepper';
    };
    const results: BatchResult[] = [];
    const handler = createLaneHandler(
      'warehouse',
      noSink,
      { ...env, PII_HASH_SALT_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:salt' },
      { readSecret, onBatch: (r) => results.push(r) },
    );
    const empty = { eventSource: 'aws:kafka', records: {} };
    // Act + Assert: the cold-start read fails, and so does the retry at the first invocation
    await expect(handler(empty, lambdaContext('w') as never)).rejects.toThrow(/secrets manager down/);
    fail = false;
    await expect(handler(empty, lambdaContext('w') as never)).resolves.toEqual({ batchItemFailures: [] });
    await expect(handler(empty, lambdaContext('w') as never)).resolves.toEqual({ batchItemFailures: [] });
    expect(reads).toHaveLength(3); // cold start, first invocation, second invocation; then cached
    expect(results).toHaveLength(2);
  });
});

describe('piiSalt', () => {
  const request = {} as Parameters<NonNullable<ReturnType<typeof piiSalt>['before']>>[0];

  it('reads the salt once, from cold start, and hands it over before the first batch', async () => {
    // Arrange
    const read = vi.fn(async () => 'pepper');
    const use = vi.fn();
    // Act
    const middleware = piiSalt('arn:salt', read, use);
    await middleware.before?.(request);
    await middleware.before?.(request);
    // Assert
    expect(read).toHaveBeenCalledTimes(1);
    expect(use).toHaveBeenCalledWith('pepper');
  });

  it('fails the invocation when the read fails, and reads again for the next one', async () => {
    // Arrange
    const read = vi.fn<(arn: string) => Promise<string>>().mockRejectedValueOnce(new Error('denied'));
    read.mockResolvedValue('pepper');
    const use = vi.fn();
    const middleware = piiSalt('arn:salt', read, use);
    // Act + Assert
    await expect(middleware.before?.(request)).rejects.toThrow('denied');
    await middleware.before?.(request);
    expect(read).toHaveBeenCalledTimes(2);
    expect(use).toHaveBeenCalledWith('pepper');
  });
});
