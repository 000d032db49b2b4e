import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { ConfluentRegistryClient } from '../adapters/confluent-registry-client';
import { DynamoDedupeStore } from '../adapters/dynamodb-dedupe-store';
import { DynamoSchemaRegistry } from '../adapters/dynamodb-schema-registry';
import { SqsDeadLetterQueue } from '../adapters/sqs-dead-letter-queue';
import { SqsSnapshotSignaller } from '../adapters/sqs-snapshot-signaller';
import { JsonDebeziumDecoder } from '../core/decode';
import { AvroDebeziumDecoder } from '../core/decode/avro/decoder';
import type { SchemaRegistryClient } from '../core/decode/avro/registry';
import { FormatRoutingDecoder } from '../core/decode/format-routing';
import { createEnricher } from '../core/enrich';
import type { PipelineDeps } from '../core/pipeline';
import { SchemaHistory, type SchemaHistoryOptions } from '../core/schema-history';
import type { Decoder, Lane, Sink, SnapshotSignaller } from '../core/types';
import type { AvroRegistryConfig, LaneEnv } from './config';

/** Wraps AWS clients for X-Ray; identity when tracing is off (local runs, tests). */
export type CaptureClient = <T>(client: T) => T;

export interface Clients {
  dynamodb: DynamoDBClient;
  s3: S3Client;
  sqs: SQSClient;
  /** How clients created later (the Glue registry client, on first use) are wrapped for X-Ray. */
  capture?: CaptureClient;
}

/** The AWS services a lane's clients talk to. */
export type AwsService = 'dynamodb' | 's3' | 'sqs';

/**
 * Client settings laid over a service's defaults. In AWS there are none: the clients use the function's role and
 * region. Tools that run a lane on a machine pass them (an emulator's endpoint and credentials: `localClientConfig`
 * in tools/local/aws-clients.ts).
 */
export type ClientConfigFor = (service: AwsService) => Record<string, unknown>;

/** The lane's AWS clients, wrapped by `capture` (X-Ray). */
export function createClients(capture: CaptureClient, configFor: ClientConfigFor = () => ({})): Clients {
  // The clients' middleware stacks never change after construction (X-Ray capture adds its middleware before the
  // first request), so each command's resolved handler is built once instead of per request: the SDK re-resolves and
  // sorts the whole stack on every call otherwise, about a tenth of a lane's CPU per call (see docs/benchmarks.md).
  const config = (service: AwsService) => ({ cacheMiddleware: true, ...configFor(service) });
  return {
    dynamodb: capture(new DynamoDBClient(config('dynamodb'))),
    s3: capture(new S3Client(config('s3'))),
    sqs: capture(new SQSClient(config('sqs'))),
    capture,
  };
}

/**
 * The Glue registry client, loaded on its first schema fetch: `@aws-sdk/client-glue` stays out of the lane's module
 * init (cold start, measured by `npm run bench`, `initVsUnbundled`) for lanes whose sources are all JSON, and for
 * Avro lanes until a batch names a schema version not cached yet. A failed load is retried on the next fetch.
 */
export class LazyGlueRegistryClient implements SchemaRegistryClient {
  readonly kind = 'glue' as const;
  private client: Promise<SchemaRegistryClient> | undefined;

  constructor(
    options: { region?: string | undefined; capture?: CaptureClient | undefined },
    /** Injected by tests; the default imports the SDK and the adapter. */
    private readonly load: () => Promise<SchemaRegistryClient> = () => loadGlueRegistryClient(options),
  ) {}

  getSchema(id: string): Promise<string> {
    if (!this.client) {
      this.client = this.load();
      this.client.catch(() => {
        this.client = undefined;
      });
    }
    return this.client.then((client) => client.getSchema(id));
  }
}

async function loadGlueRegistryClient(options: {
  region?: string | undefined;
  capture?: CaptureClient | undefined;
}): Promise<SchemaRegistryClient> {
  const [{ GlueClient }, { GlueRegistryClient }] = await Promise.all([
    import('@aws-sdk/client-glue'),
    import('../adapters/glue-registry-client'),
  ]);
  const glue = new GlueClient({ cacheMiddleware: true, ...(options.region ? { region: options.region } : {}) });
  return new GlueRegistryClient(options.capture ? options.capture(glue) : glue);
}

/** The registry client `AVRO_REGISTRY` describes. */
export function registryClientOf(config: AvroRegistryConfig, capture?: CaptureClient): SchemaRegistryClient {
  switch (config.kind) {
    case 'glue':
      return new LazyGlueRegistryClient({ region: config.region, capture });
    case 'confluent':
      return new ConfluentRegistryClient({ url: config.url });
  }
}

/**
 * The lane's decoder: per record, registry-framed (Avro) values to AvroDebeziumDecoder with the `AVRO_REGISTRY`
 * client, everything else to JsonDebeziumDecoder (a lane may consume JSON and Avro sources at once).
 */
export function createDecoder(
  env: Pick<LaneEnv<Lane>, 'MAX_RECORD_BYTES' | 'UNAVAILABLE_VALUE_PLACEHOLDER' | 'AVRO_REGISTRY'>,
  capture?: CaptureClient,
  overrides: { registry?: SchemaRegistryClient } = {},
): Decoder {
  const options = { maxRecordBytes: env.MAX_RECORD_BYTES, placeholder: env.UNAVAILABLE_VALUE_PLACEHOLDER };
  const config = env.AVRO_REGISTRY;
  const registry = config && (overrides.registry ?? registryClientOf(config, capture));
  return new FormatRoutingDecoder({
    json: new JsonDebeziumDecoder(options),
    avro: registry ? new AvroDebeziumDecoder({ ...options, registries: [registry] }) : undefined,
    maxRecordBytes: env.MAX_RECORD_BYTES,
  });
}

/** Builds a lane's sink from its configuration and the shared AWS clients. */
export type SinkFactory<L extends Lane> = (env: LaneEnv<L>, clients: Clients) => Sink;

/** What a caller may inject instead of what the environment describes. */
export interface LaneDepsOptions {
  /**
   * Where incremental snapshot signals go (the local runner passes its capture's): one signaller for every connector,
   * or one per connector `topic.prefix`. Default: the signals queue SIGNAL_QUEUE_URL when set (the signaller
   * function produces them to Kafka), else none.
   */
  signaller?: SchemaHistoryOptions['signaller'];
}

/** A lane's pipeline ports, and how to release the connections they opened. */
export type LaneDeps = PipelineDeps & { close(): Promise<void> };

/**
 * The signals queue from the environment: one signaller per connector prefix, all sending to the one queue. The
 * lanes never talk to Kafka themselves (see adapters/sqs-snapshot-signaller.ts for why).
 */
export function queueSignallerFrom(
  env: { SIGNAL_QUEUE_URL?: string | undefined },
  sqs: SQSClient,
): ((topicPrefix: string) => SnapshotSignaller) | undefined {
  const queueUrl = env.SIGNAL_QUEUE_URL;
  if (!queueUrl) return undefined;
  const byPrefix = new Map<string, SnapshotSignaller>();
  return (topicPrefix) => {
    let signaller = byPrefix.get(topicPrefix);
    if (!signaller) {
      signaller = new SqsSnapshotSignaller(sqs, { queueUrl, topicPrefix });
      byPrefix.set(topicPrefix, signaller);
    }
    return signaller;
  };
}

/** Everything the pipeline needs for one lane, built once per cold start. */
export function createLaneDeps<L extends Lane>(
  lane: L,
  env: LaneEnv<L>,
  clients: Clients,
  sink: SinkFactory<L>,
  options: LaneDepsOptions = {},
): LaneDeps {
  const built = sink(env, clients);
  return {
    lane,
    decoder: createDecoder(env, clients.capture),
    enricher: createEnricher(env.TABLE_RULES, { lane, salt: env.PII_HASH_SALT }),
    dedupe: new DynamoDedupeStore(clients.dynamodb, {
      tableName: env.DEDUPE_TABLE_NAME,
      ttlDays: env.CHECKPOINT_TTL_DAYS,
    }),
    sink: built,
    deadLetters: new SqsDeadLetterQueue(clients.sqs, clients.s3, {
      queueUrl: env.DLQ_URL,
      payloadBucket: env.DLQ_PAYLOAD_BUCKET,
    }),
    parkAfterAttempts: env.PARK_AFTER_ATTEMPTS,
    schemaHistory: new SchemaHistory({
      registry: new DynamoSchemaRegistry(clients.dynamodb, { tableName: env.DEDUPE_TABLE_NAME }),
      signaller: options.signaller ?? queueSignallerFrom(env, clients.sqs),
      policy: env.SCHEMA_CHANGE_POLICY,
    }),
    async close() {
      await built.close?.();
    },
  };
}
