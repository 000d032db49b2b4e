import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { DynamoDedupeStore } from '../../functions/adapters/dynamodb-dedupe-store';
import { processBatch } from '../../functions/core/pipeline';
import { LOCAL_NAMES, startLocalServices } from '../local/services';
import { coreDeps } from './cpu';
import { benchEvent } from './fixtures';

/** Counts the HTTP requests a DynamoDB client sends. */
class CountingHandler extends NodeHttpHandler {
  requests = 0;
  override handle(...args: Parameters<NodeHttpHandler['handle']>) {
    this.requests++;
    return super.handle(...args);
  }
}

/**
 * DynamoDB requests per record spent on dedupe, against dynalite: a fresh 10,000-record batch (0% duplicates), the
 * same batch after its first half was committed (50% redelivered), and the batch again at new offsets after the first
 * half was committed (50% re-emitted by Debezium: same positions, new offsets).
 */
export async function measureDdbCalls(count = 10_000) {
  const services = await startLocalServices({ redis: null });
  try {
    const run = async (prepare: number | undefined, event = benchEvent(count)) => {
      const http = new CountingHandler();
      const client = new DynamoDBClient({
        endpoint: services.endpoints.dynamodb,
        region: 'eu-west-1',
        credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
        requestHandler: http,
      });
      const topic = `bench-${Math.random().toString(36).slice(2)}`;
      const retopic = (e: ReturnType<typeof benchEvent>) => {
        for (const records of Object.values(e.records)) for (const r of records) r.topic = topic;
        return e;
      };
      const deps = {
        ...coreDeps(),
        dedupe: new DynamoDedupeStore(client, { tableName: LOCAL_NAMES.dedupeTable, ttlDays: 1 }),
      };
      if (prepare !== undefined) await processBatch(retopic(benchEvent(prepare)), deps);
      http.requests = 0;
      const result = await processBatch(retopic(event), deps);
      client.destroy();
      return { callsPerRecord: http.requests / result.records, duplicates: result.duplicates / result.records };
    };
    const fresh = await run(undefined);
    const redelivered = await run(count / 2);
    const reemitted = await run(count / 2, benchEvent(count, { offsetBase: 1_000_000 }));
    return { fresh, redelivered, reemitted };
  } finally {
    await services.stop();
  }
}
