import {
  connectOffsetsTopicName,
  connectorOffsetsTopicName,
  type EnvironmentConfig,
  heartbeatTableName,
  notificationTopicName,
  type SchemaCompatibility,
  type SourceConfig,
  type SqlServerSourceConfig,
  schemaHistoryTopicName,
  signalGroupId,
  signalTableName,
  signalTopicName,
  unlistedTopicName,
  unlistedTopicRegex,
} from '../config';

/** Whether some SQL Server source reads a trust store from S3 (the workers then need the S3 import provider). */
function usesTrustStore(env: EnvironmentConfig): boolean {
  return env.sources.some((s) => s.engine === 'sqlserver' && s.serverCertificate.trust === 'truststore');
}

/** MSK Connect worker properties for every connector of an environment. */
export function workerProperties(env: EnvironmentConfig): string {
  const s3Import = usesTrustStore(env);
  return [
    // JSON with schemas: the lanes decode logical types (decimals, timestamps) from the Connect schema.
    'key.converter=org.apache.kafka.connect.json.JsonConverter',
    'key.converter.schemas.enable=true',
    'value.converter=org.apache.kafka.connect.json.JsonConverter',
    'value.converter.schemas.enable=true',
    // The global offsets topic: each connector writes its own (connector-level offsets.storage.topic) and only reads
    // this one, where connectors deployed before that keep their last offsets (see connectOffsetsTopicName).
    `offset.storage.topic=${connectOffsetsTopicName(env)}`,
    // MSK config providers (aws-samples/msk-config-providers, packaged in the plugin archive): credentials are read
    // from Secrets Manager when the worker starts and never stored in the connector configuration; trust stores are
    // copied from S3 to a local file (S3 import) for the SQL Server sources that use one.
    `config.providers=secretsmanager${s3Import ? ',s3import' : ''}`,
    'config.providers.secretsmanager.class=com.amazonaws.kafka.config.providers.SecretsManagerConfigProvider',
    `config.providers.secretsmanager.param.region=${env.region}`,
    ...(s3Import
      ? [
          'config.providers.s3import.class=com.amazonaws.kafka.config.providers.S3ImportConfigProvider',
          `config.providers.s3import.param.region=${env.region}`,
        ]
      : []),
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
 * `table.include.list`: the listed tables, the signalling table (Debezium only sees signal rows of a captured table),
 * the heartbeat table (its upserts are changes like any other) and, per `captureSchemas` entry, `<schema>\..*` so
 * tables created later are captured from their first row. Debezium matches include lists as anchored regular
 * expressions, so the dots of literal names are escaped. SQL Server entries are `<schema>.<table>` (Debezium matches
 * them without the database).
 */
export function tableIncludeList(source: SourceConfig): string {
  const schemas = source.captureSchemas ?? [];
  const inSchema = (name: string) => schemas.includes(name.split('.')[0] ?? '');
  const heartbeat = heartbeatTableName(source);
  const literal = [
    ...source.tables.map((t) => t.name),
    signalTableName(source),
    ...(heartbeat ? [heartbeat] : []),
  ].filter((name) => !inSchema(name));
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

/**
 * Avro sources: values by the Glue Schema Registry converter, keys by JsonConverter with schemas. The Glue converter
 * names a schema after the topic for keys and values alike (its default `AWSSchemaNamingStrategyDefaultImpl`), so
 * with Avro keys a table's key and value schemas would be versions of one registry schema and fail each other's
 * compatibility check. Naming them apart with `schemaNameGenerationClass` needs a strategy class in the plugin
 * archive (the library ships none that tells keys from values), and `key.converter.schemaName` would put every
 * table's key under one name; a JSON key (a few bytes of primary key) costs little and keeps the key out of the
 * registry altogether. Value schemas are named `<topic>`, one per table topic; the catch-all topic's schema is
 * created by the streaming stack with compatibility NONE (it holds every unlisted table's versions).
 */
function avroConverters(ctx: DebeziumConfigContext): Record<string, string> {
  return {
    'key.converter': 'org.apache.kafka.connect.json.JsonConverter',
    'key.converter.schemas.enable': 'true',
    'value.converter': GLUE_AVRO_CONVERTER,
    'value.converter.region': ctx.env.region,
    'value.converter.registry.name': ctx.schemaRegistryName,
    'value.converter.schemaAutoRegistrationEnabled': 'true',
    'value.converter.compatibility': ctx.compatibility,
    'value.converter.avroRecordType': 'GENERIC_RECORD',
  };
}

/** The Glue Schema Registry's Kafka Connect converter. */
export const GLUE_AVRO_CONVERTER = 'com.amazonaws.services.schemaregistry.kafkaconnect.AWSKafkaAvroConverter';

/**
 * Tables not listed in `tables` (created later in a `captureSchemas` schema) go to the catch-all topic instead of a
 * topic of their own that no lane would subscribe to until a redeploy (an MSK event source mapping takes exactly one
 * topic, chosen at deploy time).
 *
 * Kafka's `RegexRouter`, not Debezium's `ByLogicalTableRouter`: both re-route by a regex over the topic name, but
 * `ByLogicalTableRouter` also renames the key, row and envelope schemas to `<new topic>.Key|Value|Envelope` (and by
 * default adds the source topic to the key, `key.enforce.uniqueness`). Renamed schemas would make every unlisted
 * table's schema one registry schema for Avro sources, and a key field would change the keys. `RegexRouter` changes
 * the topic only, the same as `ByLogicalTableRouter` with `key.enforce.uniqueness=false` minus the renaming. Keys
 * need no table field: the lanes take the table from each event's `source` block (schema/db and table), never from
 * the topic, for event ids, dedupe checkpoints, cache keys and schema history, and two tables' equal keys hashing to
 * one partition only share that partition's order.
 */
function unlistedRouting(source: SourceConfig): Record<string, string> {
  return {
    transforms: 'unlisted',
    'transforms.unlisted.type': 'org.apache.kafka.connect.transforms.RegexRouter',
    'transforms.unlisted.regex': unlistedTopicRegex(source),
    'transforms.unlisted.replacement': unlistedTopicName(source),
  };
}

/**
 * MySQL/MariaDB `database.include.list`: the databases of the tables, the signal and heartbeat tables and
 * `captureSchemas`.
 */
function mysqlDatabaseIncludeList(source: SourceConfig): string {
  const heartbeat = heartbeatTableName(source);
  const names = [...source.tables.map((t) => t.name), signalTableName(source), ...(heartbeat ? [heartbeat] : [])].map(
    (n) => n.split('.')[0] ?? '',
  );
  return [...new Set([...names, ...(source.captureSchemas ?? [])])].map(escapeRegex).join(',');
}

/**
 * The statement Debezium runs on every heartbeat (`heartbeat.action.query`): one row (`id = 1`) upserted with the
 * current time, so the table never grows and the change reaches every lane like any other (the lanes' SourceFreshness
 * stays current while the source is idle; on PostgreSQL it also lets the slot confirm a position and release the WAL
 * the server wrote for other databases). All four Debezium connectors support the property (Debezium 2.7 reference:
 * PostgreSQL, SQL Server, and the shared MySQL/MariaDB properties). Per engine:
 * - PostgreSQL: `INSERT … ON CONFLICT (id) DO UPDATE`.
 * - MySQL/MariaDB: `INSERT … ON DUPLICATE KEY UPDATE ts = UTC_TIMESTAMP(3)` (not `VALUES(ts)`, deprecated in MySQL
 *   8.0.20, nor a row alias, which MariaDB lacks). UTC into a DATETIME(3): no session time zone involved.
 * - SQL Server: a `MERGE` (inserts the row the first time, updates it after), with the database named: the statement
 *   runs on the connector's own JDBC connection. The trailing semicolon is required for MERGE.
 * The table is named as configured (unquoted, `<schema|db>.<table>`, validated), like `table.include.list`.
 */
export function heartbeatActionQuery(source: SourceConfig, table: string): string {
  switch (source.engine) {
    case 'postgresql':
      return `INSERT INTO ${table} (id, ts) VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET ts = EXCLUDED.ts`;
    case 'mysql':
    case 'mariadb':
      return `INSERT INTO ${table} (id, ts) VALUES (1, UTC_TIMESTAMP(3)) ON DUPLICATE KEY UPDATE ts = UTC_TIMESTAMP(3)`;
    case 'sqlserver':
      return `MERGE INTO ${source.database}.${table} AS t USING (SELECT 1 AS id) AS s ON t.id = s.id WHEN MATCHED THEN UPDATE SET ts = SYSUTCDATETIME() WHEN NOT MATCHED THEN INSERT (id, ts) VALUES (s.id, SYSUTCDATETIME());`;
  }
}

/** The driver's certificate check for SQL Server (`database.*` properties reach the JDBC driver). */
function sqlServerTrust(source: SqlServerSourceConfig, secret: string, region: string): Record<string, string> {
  if (source.serverCertificate.trust === 'any') return { 'database.trustServerCertificate': 'true' };
  const { bucketArn, key } = source.serverCertificate.trustStore;
  const bucket = bucketArn.split(':::')[1] ?? bucketArn;
  return {
    'database.trustServerCertificate': 'false',
    // The S3 import provider copies the object to a local file when the worker starts and substitutes its path.
    'database.trustStore': `\${s3import:${region}:${bucket}/${key}}`,
    'database.trustStorePassword': `\${secretsmanager:${secret}:trustStorePassword}`,
  };
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
    // Listed tables' topics, the catch-all, heartbeat-table, schema-change, signal and notification topics exist
    // already (created as code); Kafka Connect creates Debezium's heartbeat, transaction and signalling-table topics
    // with the cluster's replication factor.
    'topic.creation.default.replication.factor': '-1',
    'topic.creation.default.partitions': '1',
    // The connector's own offsets topic (KIP-618): no other connector's role may write it. On its first start after
    // this was added, Kafka Connect finds the connector's last offsets in the workers' global topic and resumes there.
    'offsets.storage.topic': connectorOffsetsTopicName(ctx.env, source),
  };
  if (source.heartbeatIntervalMs !== undefined) config['heartbeat.interval.ms'] = String(source.heartbeatIntervalMs);
  const heartbeat = heartbeatTableName(source);
  if (heartbeat !== undefined) config['heartbeat.action.query'] = heartbeatActionQuery(source, heartbeat);
  if (source.format === 'avro') Object.assign(config, avroConverters(ctx));
  Object.assign(config, unlistedRouting(source));
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
        ...schemaHistory(source, ctx),
      });
      break;
    case 'sqlserver':
      Object.assign(config, {
        'database.names': source.database,
        'database.encrypt': 'true',
        ...sqlServerTrust(source, secret, ctx.env.region),
        ...schemaHistory(source, ctx),
      });
      break;
  }
  return { ...config, ...source.extraConfig };
}

/**
 * MySQL/MariaDB and SQL Server keep their schema history in a Kafka topic of their own (read with IAM like the rest)
 * and publish schema changes to the change topic's consumers.
 */
function schemaHistory(
  source: SourceConfig,
  ctx: { bootstrapServers: string; connectorName: string },
): Record<string, string> {
  return {
    'include.schema.changes': 'true',
    'schema.history.internal.kafka.topic': schemaHistoryTopicName(source),
    'schema.history.internal.kafka.bootstrap.servers': ctx.bootstrapServers,
    'schema.history.internal.consumer.group.id': schemaHistoryGroupId(ctx.connectorName),
    ...schemaHistoryIam(),
  };
}
