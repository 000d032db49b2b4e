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

/**
 * AWS clients. In AWS they use the function's role and region. Locally, AWS_ENDPOINT_URL_<SERVICE> point them at
 * dynalite/s3rver/fauxqs (read from the given env, not process.env, so several local lanes can share a process);
 * S3 emulators need path-style addressing.
 */
export function createClients(env: NodeJS.ProcessEnv, capture: CaptureClient): Clients {
  // The clients' middleware stacks never change after construction (X-Ray capture adds its middleware before the
  // first request), so each command's resolved handler is built once instead of per request: the SDK re-resolves and
  // sorts the whole stack on every call otherwise, about a tenth of a lane's CPU per call (see README, performance).
  const base = { cacheMiddleware: true };
  const local = (endpoint: string | undefined) => {
    if (!endpoint) return base;
    const config: Record<string, unknown> = {
      ...base,
      endpoint,
      region: env.AWS_REGION ?? 'eu-west-1',
      credentials: {
        accessKeyId: env.AWS_ACCESS_KEY_ID ?? 'local',
        secretAccessKey: env.AWS_SECRET_ACCESS_KEY ?? 'local',
      },
    };
    // Emulators on this machine check neither signatures nor checksums, and SigV4 signing plus a JS CRC32 of every
    // body are half of the SDK's CPU per call — on a laptop running the whole pipeline, that is the lanes' budget.
    if (isLoopback(endpoint)) {
      const accessKeyId = env.AWS_ACCESS_KEY_ID ?? 'local';
      config.signer = {
        sign: (request: SignableRequest, options?: SigningOptions) => localSignature(accessKeyId, request, options),
      };
      config.requestChecksumCalculation = 'WHEN_REQUIRED';
    }
    return config;
  };
  return {
    dynamodb: capture(new DynamoDBClient(local(env.AWS_ENDPOINT_URL_DYNAMODB))),
    s3: capture(new S3Client({ ...local(env.AWS_ENDPOINT_URL_S3), forcePathStyle: Boolean(env.AWS_ENDPOINT_URL_S3) })),
    sqs: capture(new SQSClient(local(env.AWS_ENDPOINT_URL_SQS))),
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

/**
 * A well-formed but unchecked SigV4 Authorization header: the emulators read the region from its credential scope
 * and insist that one is there, without verifying the signature.
 */
interface SignableRequest {
  headers: Record<string, string>;
}
interface SigningOptions {
  signingRegion?: string;
  signingService?: string;
}

async function localSignature(
  accessKeyId: string,
  request: SignableRequest,
  options?: SigningOptions,
): Promise<unknown> {
  const now = new Date().toISOString().replace(/[-:]|\.\d{3}/g, ''); // 20240315T103000Z: s3rver checks the skew
  const scope = `${accessKeyId}/${now.slice(0, 8)}/${options?.signingRegion ?? 'eu-west-1'}/${options?.signingService ?? 's3'}/aws4_request`;
  request.headers.authorization = `AWS4-HMAC-SHA256 Credential=${scope}, SignedHeaders=host, Signature=${'0'.repeat(64)}`;
  request.headers['x-amz-date'] = now;
  if (options?.signingService === 's3') request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
  return request;
}

/** Only requests to this machine go unsigned. */
function isLoopback(endpoint: string): boolean {
  const host = new URL(endpoint).hostname;
  return host === '127.0.0.1' || host === 'localhost' || host === '[::1]';
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
