import { describe, expect, it, vi } from 'vitest';
import type { BatchResult } from '../../functions/core/pipeline';
import type { Sink } from '../../functions/core/types';
import { createLaneHandler, secretSalt } from '../../functions/shared/lane-handler';
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
const noSink = (): Sink => ({ write: async () => ({ ok: true, writtenAt: 0 }) });

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

describe('secretSalt', () => {
  it('reads the salt once, starting at cold start', async () => {
    // Arrange
    const read = vi.fn(async () => 'pepper');
    // Act
    const salt = secretSalt('arn:salt', read);
    const calledAtColdStart = read.mock.calls.length;
    const values = [await salt(), await salt()];
    // Assert
    expect(calledAtColdStart).toBe(1);
    expect(values).toEqual(['pepper', 'pepper']);
    expect(read).toHaveBeenCalledTimes(1);
  });

  it('rejects while the read fails, and reads again on the next call', async () => {
    // Arrange
    const read = vi.fn<(arn: string) => Promise<string>>().mockRejectedValueOnce(new Error('denied'));
    read.mockResolvedValue('pepper');
    const salt = secretSalt('arn:salt', read);
    // Act + Assert
    await expect(salt()).rejects.toThrow('denied');
    await expect(salt()).resolves.toBe('pepper');
    expect(read).toHaveBeenCalledTimes(2);
  });
});
