import {
  connectOffsetsTopicName,
  type EnvironmentConfig,
  notificationTopicName,
  type SchemaCompatibility,
  type SourceConfig,
  schemaHistoryTopicName,
  signalGroupId,
  signalTableName,
  signalTopicName,
} from '../config';

/** MSK Connect worker properties for every connector of an environment. */
export function workerProperties(env: EnvironmentConfig): string {
  return [
    // JSON with schemas: the lanes decode logical types (decimals, timestamps) from the Connect schema.
    'key.converter=org.apache.kafka.connect.json.JsonConverter',
    'key.converter.schemas.enable=true',
    'value.converter=org.apache.kafka.connect.json.JsonConverter',
    'value.converter.schemas.enable=true',
    // A named offset topic survives connector re-creation (see connectOffsetsTopicName).
    `offset.storage.topic=${connectOffsetsTopicName(env)}`,
    // MSK config provider (aws-samples/msk-config-providers, packaged in the plugin archive): credentials are read
    // from Secrets Manager when the worker starts and never stored in the connector configuration.
    'config.providers=secretsmanager',
    'config.providers.secretsmanager.class=com.amazonaws.kafka.config.providers.SecretsManagerConfigProvider',
    `config.providers.secretsmanager.param.region=${env.region}`,
  ].join('\n');
}

/**
 * The secret's name, from its ARN (`…:secret:<name>-<6 random chars>`). Kafka's `${provider:path:key}` syntax splits
 * on colons, so the config provider is given the name, never the ARN.
 */
export function secretNameFromArn(arn: string): string {
  const match = /^arn:aws[a-z-]*:secretsmanager:[^:]+:\d{12}:secret:(.+)-[A-Za-z0-9]{6}$/.exec(arn);
  if (match?.[1] === undefined) {
    throw new Error(`'${arn}' is not a complete Secrets Manager secret ARN (…:secret:<name>-<6 characters>)`);
  }
  return match[1];
}

const escapeRegex = (value: string) => value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Default rows per incremental snapshot chunk (Debezium's own default). */
export const DEFAULT_INCREMENTAL_SNAPSHOT_CHUNK_SIZE = 1024;

/**
 * `table.include.list`: the listed tables, the signalling table (Debezium only sees signal rows of a captured table)
 * and, per `captureSchemas` entry, `<schema>\..*` so tables created later are captured from their first row.
 * Debezium matches include lists as anchored regular expressions, so the dots of literal names are escaped. SQL
 * Server entries are `<schema>.<table>` (Debezium matches them without the database).
 */
export function tableIncludeList(source: SourceConfig): string {
  const schemas = source.captureSchemas ?? [];
  const inSchema = (name: string) => schemas.includes(name.split('.')[0] ?? '');
  const literal = [...source.tables.map((t) => t.name), signalTableName(source)].filter((name) => !inSchema(name));
  const entries = [...schemas.map((schema) => `${escapeRegex(schema)}\\..*`), ...literal.map(escapeRegex)];
  return [...new Set(entries)].join(',');
}

const CONNECTOR_CLASS: Record<SourceConfig['engine'], string> = {
  postgresql: 'io.debezium.connector.postgresql.PostgresConnector',
  mysql: 'io.debezium.connector.mysql.MySqlConnector',
  mariadb: 'io.debezium.connector.mariadb.MariaDbConnector',
  sqlserver: 'io.debezium.connector.sqlserver.SqlServerConnector',
};

export interface DebeziumConfigContext {
  readonly env: EnvironmentConfig;
  readonly connectorName: string;
  /** IAM bootstrap brokers (for Debezium's own clients: schema history, the Kafka signal reader). */
  readonly bootstrapServers: string;
  readonly schemaRegistryName: string;
  readonly compatibility: SchemaCompatibility;
}

/**
 * Debezium's own Kafka clients (schema history, the Kafka signal reader) do not inherit the worker's IAM auth:
 * configure it explicitly for each client prefix.
 */
function mskIamClient(...prefixes: string[]): Record<string, string> {
  const config: Record<string, string> = {};
  for (const p of prefixes) {
    config[`${p}.security.protocol`] = 'SASL_SSL';
    config[`${p}.sasl.mechanism`] = 'AWS_MSK_IAM';
    config[`${p}.sasl.jaas.config`] = 'software.amazon.msk.auth.iam.IAMLoginModule required;';
    config[`${p}.sasl.client.callback.handler.class`] = 'software.amazon.msk.auth.iam.IAMClientCallbackHandler';
  }
  return config;
}

const schemaHistoryIam = () => mskIamClient('schema.history.internal.producer', 'schema.history.internal.consumer');

/**
 * Signals and notifications (issue 14): the `source` channel (rows inserted into the signalling table, which also
 * holds the incremental snapshot watermarks) and the `kafka` channel (the lanes' automatic reconciliation and
 * `npm run backfill -- --env` produce there), and progress notifications to a topic so the backfill command can
 * wait for COMPLETED.
 */
function signalling(source: SourceConfig, ctx: DebeziumConfigContext): Record<string, string> {
  const table = signalTableName(source);
  return {
    'signal.enabled.channels': 'source,kafka',
    'signal.data.collection': source.engine === 'sqlserver' ? `${source.database}.${table}` : table,
    'signal.kafka.topic': signalTopicName(source),
    'signal.kafka.bootstrap.servers': ctx.bootstrapServers,
    'signal.kafka.groupId': signalGroupId(ctx.env, source),
    ...mskIamClient('signal.consumer'),
    'incremental.snapshot.chunk.size': String(
      source.incrementalSnapshotChunkSize ?? DEFAULT_INCREMENTAL_SNAPSHOT_CHUNK_SIZE,
    ),
    'notification.enabled.channels': 'sink',
    'notification.sink.topic.name': notificationTopicName(source),
  };
}

function avroConverters(ctx: DebeziumConfigContext): Record<string, string> {
  const config: Record<string, string> = {};
  for (const side of ['key', 'value']) {
    const p = `${side}.converter`;
    config[p] = 'com.amazonaws.services.schemaregistry.kafkaconnect.AWSKafkaAvroConverter';
    config[`${p}.region`] = ctx.env.region;
    config[`${p}.registry.name`] = ctx.schemaRegistryName;
    config[`${p}.schemaAutoRegistrationEnabled`] = 'true';
    config[`${p}.compatibility`] = ctx.compatibility;
    config[`${p}.avroRecordType`] = 'GENERIC_RECORD';
  }
  return config;
}

/** MySQL/MariaDB `database.include.list`: the databases of the tables, the signal table and `captureSchemas`. */
function mysqlDatabaseIncludeList(source: SourceConfig): string {
  const names = [...source.tables.map((t) => t.name), signalTableName(source)].map((n) => n.split('.')[0] ?? '');
  return [...new Set([...names, ...(source.captureSchemas ?? [])])].map(escapeRegex).join(',');
}

/** Consumer group of a connector's schema history reader, named so IAM can scope it. */
export function schemaHistoryGroupId(connectorName: string): string {
  return `${connectorName}-schemahistory`;
}

/** The complete Debezium connector configuration of one source. */
export function debeziumConnectorConfig(source: SourceConfig, ctx: DebeziumConfigContext): Record<string, string> {
  const secret = secretNameFromArn(source.credentialsSecretArn);
  const config: Record<string, string> = {
    'connector.class': CONNECTOR_CLASS[source.engine],
    // Debezium runs one task per connector (MySQL/MariaDB cannot run more; validated).
    'tasks.max': String(source.tasksMax ?? 1),
    'topic.prefix': source.topicPrefix,
    'database.hostname': source.hostname,
    'database.port': String(source.port),
    'database.user': `\${secretsmanager:${secret}:username}`,
    'database.password': `\${secretsmanager:${secret}:password}`,
    'table.include.list': tableIncludeList(source),
    'tombstones.on.delete': String(source.tombstonesOnDelete ?? true),
    'provide.transaction.metadata': String(source.provideTransactionMetadata ?? true),
    'snapshot.mode': source.snapshotMode ?? 'initial',
    // Listed tables' topics, the schema-change, signal and notification topics exist already (created as code);
    // Kafka Connect creates the heartbeat and transaction topics, and the topic of a table that appears in a
    // `captureSchemas` schema, with the cluster's replication factor.
    'topic.creation.default.replication.factor': '-1',
    'topic.creation.default.partitions': '1',
  };
  if (source.heartbeatIntervalMs !== undefined) config['heartbeat.interval.ms'] = String(source.heartbeatIntervalMs);
  if (source.format === 'avro') Object.assign(config, avroConverters(ctx));
  Object.assign(config, signalling(source, ctx));

  switch (source.engine) {
    case 'postgresql':
      Object.assign(config, {
        'database.dbname': source.database,
        'plugin.name': 'pgoutput',
        'slot.name': source.slotName,
        'publication.name': source.publicationName,
        'publication.autocreate.mode': source.publicationAutocreateMode ?? 'filtered',
      });
      break;
    case 'mysql':
    case 'mariadb':
      Object.assign(config, {
        'database.server.id': String(source.serverId),
        'database.include.list': mysqlDatabaseIncludeList(source),
        'include.schema.changes': 'true',
        'schema.history.internal.kafka.topic': schemaHistoryTopicName(source),
        'schema.history.internal.kafka.bootstrap.servers': ctx.bootstrapServers,
        'schema.history.internal.consumer.group.id': schemaHistoryGroupId(ctx.connectorName),
        ...schemaHistoryIam(),
      });
      break;
    case 'sqlserver':
      Object.assign(config, {
        'database.names': source.database,
        'database.encrypt': 'true',
        'include.schema.changes': 'true',
        'schema.history.internal.kafka.topic': schemaHistoryTopicName(source),
        'schema.history.internal.kafka.bootstrap.servers': ctx.bootstrapServers,
        'schema.history.internal.consumer.group.id': schemaHistoryGroupId(ctx.connectorName),
        ...schemaHistoryIam(),
      });
      break;
  }
  return { ...config, ...source.extraConfig };
}
