import * as z from 'zod/mini';
import '../core/zod';
import { TableRulesSchema } from '../core/enrich';
import { ConfigError } from '../core/errors';
import { DEFAULT_PARK_AFTER_ATTEMPTS } from '../core/parking';
import type { Lane } from '../core/types';

/**
 * Runtime configuration of a lane function: environment variables set by the CDK construct that also grants the
 * access (lib/constructs/lane-function.ts), parsed once at cold start. A missing or bad variable fails with its name.
 */
const bool = z.pipe(
  z.enum(['true', 'false']),
  z.transform((v: 'true' | 'false') => v === 'true'),
);
const positiveInt = z.pipe(z.coerce.number(), z.int().check(z.positive()));
const nonNegativeInt = z.pipe(z.coerce.number(), z.int().check(z.nonnegative()));
const text = z.string().check(z.minLength(1));
const url = z.url();
const json = <T extends z.ZodMiniType>(schema: T) =>
  z.pipe(
    z.pipe(
      z.string(),
      z.transform((input: string, ctx) => {
        try {
          return JSON.parse(input) as unknown;
        } catch {
          ctx.issues.push({ code: 'custom', message: 'is not valid JSON', input });
          return z.NEVER;
        }
      }),
    ),
    schema,
  );

const policyAction = z.enum(['auto', 'alarm', 'off']);
/** `SCHEMA_CHANGE_POLICY`: `{ "default": "auto", "tables": { "<schema>.<table>": "alarm" } }` (see core/schema-history). */
export const SchemaChangePolicySchema = z.object({
  default: z._default(policyAction, 'auto'),
  tables: z.optional(z.record(z.string(), policyAction)),
});

/**
 * `AVRO_REGISTRY`: where the writer schemas of Avro-framed records come from. `glue`: the AWS Glue Schema Registry
 * the connectors' `AWSKafkaAvroConverter` registers in (versions are read with `glue:GetSchemaVersion`, which the CDK
 * grants on this registry only); `confluent`: a Confluent-compatible REST registry (the local run's, or a
 * self-managed one). Unset: the lane reads JSON only, and an Avro-framed record is dead-lettered as
 * UNSUPPORTED_FORMAT.
 */
export const AvroRegistrySchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('glue'), registryName: text, region: z.optional(text) }),
  z.object({ kind: z.literal('confluent'), url }),
]);

/** The parsed `AVRO_REGISTRY`. */
export type AvroRegistryConfig = z.infer<typeof AvroRegistrySchema>;

const common = {
  /** DynamoDB table holding the per-lane, per-partition checkpoints. */
  DEDUPE_TABLE_NAME: text,
  /** SQS queue URL of this lane's dead-letter queue. */
  DLQ_URL: url,
  /** S3 bucket for dead-letter payloads too large for an SQS message (claim check). */
  DLQ_PAYLOAD_BUCKET: text,
  /** Must match the event source mapping's FunctionResponseTypes. */
  REPORT_BATCH_ITEM_FAILURES: z._default(bool, true),
  /** Include/exclude tables and columns, mask or hash PII (see functions/core/enrich.ts). */
  TABLE_RULES: z.optional(json(TableRulesSchema)),
  /** Salt for `sha256` PII hashing, inline (local runs)… */
  PII_HASH_SALT: z._default(z.string(), ''),
  /** …or the Secrets Manager secret holding it (AWS): read once at the first invocation. */
  PII_HASH_SALT_SECRET_ARN: z.optional(text),
  /** Records whose value is larger are dead-lettered (Kafka's default message.max.bytes is 1 MiB). */
  MAX_RECORD_BYTES: z._default(positiveInt, 1_048_576),
  /** Debezium's unavailable.value.placeholder. */
  UNAVAILABLE_VALUE_PLACEHOLDER: z._default(text, '__debezium_unavailable_value'),
  /** Days a checkpoint of an idle partition is kept (the audit lane's never expire: they hold the chain head). */
  CHECKPOINT_TTL_DAYS: z._default(positiveInt, 30),
  /**
   * Deliveries a change the sink rejects retryably (one row, not an outage) may fail in before its key is parked:
   * its changes then go to the DLQ as PARKED, in order, and the partition moves on (functions/core/parking.ts). 0 never
   * parks: the partition is retried until the event source mapping's retries run out.
   */
  PARK_AFTER_ATTEMPTS: z._default(nonNegativeInt, DEFAULT_PARK_AFTER_ATTEMPTS),
  /** What to do about a schema change the sinks cannot reconcile from the stream alone, per table. */
  SCHEMA_CHANGE_POLICY: z._default(json(SchemaChangePolicySchema), { default: 'auto' }),
  /**
   * The signals queue (SQS FIFO): where policy `auto` sends incremental snapshot signals, as `{ topicPrefix, signal }`,
   * for the signaller function to produce to the connector's Kafka signal topic. Unset: the lane cannot signal, and
   * changes needing a reconciliation are reported by the metric SchemaChangeUnreconciled instead.
   */
  SIGNAL_QUEUE_URL: z.optional(url),
  /** The schema registry of the lane's Avro sources, JSON (see AvroRegistrySchema). Unset: JSON sources only. */
  AVRO_REGISTRY: z.optional(json(AvroRegistrySchema)),
};

export const LaneEnvSchemas = {
  warehouse: z.object({
    ...common,
    WAREHOUSE_BUCKET: text,
    WAREHOUSE_PREFIX: z._default(z.string(), 'changes/'),
  }),
  cache: z.object({
    ...common,
    /** redis:// or rediss:// (TLS, as ElastiCache Serverless requires). */
    REDIS_URL: z.string().check(z.regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')),
    /** ElastiCache Serverless speaks the cluster protocol. */
    REDIS_CLUSTER: z._default(bool, false),
    CACHE_KEY_PREFIX: z._default(text, 'cdc'),
    /** How long a deleted row's version is kept so a late older change cannot resurrect it. */
    CACHE_TOMBSTONE_TTL_SECONDS: z._default(positiveInt, 7 * 24 * 3600),
  }),
  audit: z.object({
    ...common,
    AUDIT_BUCKET: text,
    AUDIT_PREFIX: z._default(z.string(), 'audit/'),
  }),
} as const;

export type LaneEnv<L extends Lane> = z.infer<(typeof LaneEnvSchemas)[L]>;

/**
 * Runtime configuration of the signaller function (functions/signaller): set by lib/constructs/signaller-function.ts
 * together with the Kafka grants on exactly these topics.
 */
export const SignallerEnvSchema = z.object({
  /**
   * Debezium's Kafka signal channel: each connector's `signal.kafka.topic`, by its `topic.prefix` (JSON
   * `{"<topicPrefix>": "<signal topic>"}`). A signal for a prefix missing here cannot be produced.
   */
  SIGNAL_TOPICS: json(z.record(z.string(), text)),
  /** Bootstrap servers of the signal topics' cluster, comma-separated (MSK IAM: port 9098). */
  SIGNAL_BOOTSTRAP_SERVERS: text,
  /** How the signaller authenticates to the cluster. */
  SIGNAL_AUTH: z._default(z.enum(['aws-iam', 'none']), 'aws-iam'),
});

export type SignallerEnv = z.infer<typeof SignallerEnvSchema>;

/** Parses with `schema` or throws a ConfigError naming every missing or bad variable. */
function parseEnv<S extends z.ZodMiniType>(schema: S, env: NodeJS.ProcessEnv, what: string): z.infer<S> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data as z.infer<S>;
  const problems = parsed.error.issues.map((issue) => {
    const name = issue.path.join('.');
    const value = env[String(issue.path[0])];
    return value === undefined ? `${name} is missing` : `${name} ${issue.message}`;
  });
  throw new ConfigError(`${what} configuration: ${problems.join('; ')}`);
}

/** Parses the lane's environment or throws a ConfigError naming every missing or bad variable. */
export function loadLaneEnv<L extends Lane>(lane: L, env: NodeJS.ProcessEnv = process.env): LaneEnv<L> {
  return parseEnv(LaneEnvSchemas[lane], env, `${lane} lane`) as LaneEnv<L>;
}

/** Parses the signaller function's environment or throws a ConfigError naming every missing or bad variable. */
export function loadSignallerEnv(env: NodeJS.ProcessEnv = process.env): SignallerEnv {
  return parseEnv(SignallerEnvSchema, env, 'signaller');
}
