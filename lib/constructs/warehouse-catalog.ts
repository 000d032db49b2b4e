import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as glue from 'aws-cdk-lib/aws-glue';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import {
  athenaWorkGroupName,
  DEFAULT_BYTES_SCANNED_CUTOFF_GIB,
  DEFAULT_SCHEMA_CATALOG_DIR,
  type EnvironmentConfig,
  glueNameStem,
  type WarehouseTable,
  warehouseTables,
} from '../config';
import { type CatalogTableSchema, CHANGE_LOG_META_COLUMNS, catalogTableSchema } from './change-log-schema';
import { REPO_ROOT } from './node-function';
import { SecureBucket } from './secure-bucket';
import { namedQueries } from './warehouse-queries';

/** Key prefix of the Iceberg current-state tables in the warehouse bucket (`current/<table>/`). */
export const CURRENT_STATE_PREFIX = 'current/';
/** Key prefix of Athena's query results in the results bucket. */
export const ATHENA_RESULTS_PREFIX = 'results/';
/** Days Athena query results are kept. */
const ATHENA_RESULTS_DAYS = 30;

/** Glue table parameters the current-state function reads (functions/current-state/handler.ts). */
export const TABLE_PARAMETERS = {
  tableId: 'cdc_sync.table_id',
  topic: 'cdc_sync.topic',
  partitions: 'cdc_sync.partitions',
  keyColumns: 'cdc_sync.key_columns',
  currentTable: 'cdc_sync.current_table',
  deletedTable: 'cdc_sync.deleted_table',
} as const;

/** A listed table with what the catalog knows of it. */
export interface CatalogedTable extends WarehouseTable {
  /** Undefined when the schema catalog has no file for the table: its change-log table has the metadata columns only. */
  readonly schema?: CatalogTableSchema;
  /** A current-state table exists for it: the catalog knows its columns and it has a key. */
  readonly hasCurrentState: boolean;
}

export interface WarehouseCatalogProps {
  readonly config: EnvironmentConfig;
  /** The Glue database (created by the data stack). */
  readonly database: glue.CfnDatabase;
  /** Its name. */
  readonly databaseName: string;
  readonly warehouseBucket: s3.IBucket;
  /** The change log's key prefix (the lane's WAREHOUSE_PREFIX). */
  readonly warehousePrefix: string;
  readonly dataKey: kms.IKey;
  readonly accessLogsBucket: s3.IBucket;
  readonly removalPolicy: RemovalPolicy;
}

/**
 * The warehouse as Athena sees it: one Glue table per listed table over its Parquet change log, defined here with
 * columns from the schema catalog and partition projection on the commit day (no crawler: types are the ones the
 * lane writes, and partitions need no upkeep); the Athena workgroup the current-state merges and analysts use
 * (results encrypted with the data key in their own bucket, configuration enforced, a per-query scan limit); and
 * per table the named queries: current state, history, a key's history, changes per hour.
 *
 * The Iceberg current-state tables are not CloudFormation resources: the current-state function creates them with
 * Athena DDL (`CREATE TABLE … TBLPROPERTIES ('table_type'='ICEBERG')`) the first time it runs. Every Iceberg commit
 * moves the table's `metadata_location` in Glue; a CloudFormation update of an `AWS::Glue::Table` writes the
 * parameters it was given and would point the table back at an old snapshot. Created by Athena, they are Athena's
 * alone to change. Their data lives under `current/<table>/` in the warehouse bucket.
 */
export class WarehouseCatalog extends Construct {
  readonly tables: readonly CatalogedTable[];
  readonly resultsBucket: s3.Bucket;
  readonly workGroup: athena.CfnWorkGroup;
  readonly workGroupName: string;
  readonly databaseName: string;
  readonly changeLogTables: readonly glue.CfnTable[];

  constructor(scope: Construct, id: string, props: WarehouseCatalogProps) {
    super(scope, id);
    const { config, databaseName, warehouseBucket, warehousePrefix } = props;
    const stack = Stack.of(this);
    this.databaseName = databaseName;
    const catalogDir = config.data.schemaCatalogDir ?? DEFAULT_SCHEMA_CATALOG_DIR;
    this.tables = warehouseTables(config).map((table) => {
      const schema = catalogTableSchema(REPO_ROOT, catalogDir, table.table.name);
      return {
        ...table,
        ...(schema === undefined ? {} : { schema }),
        hasCurrentState: schema !== undefined && schema.keyColumns.length > 0,
      };
    });

    this.changeLogTables = this.tables.map((table) => {
      const location = `s3://${warehouseBucket.bucketName}/${warehousePrefix}table=${table.tableId}/`;
      const parameters: Record<string, string> = {
        classification: 'parquet',
        EXTERNAL: 'TRUE',
        'projection.enabled': 'true',
        'projection.dt.type': 'date',
        'projection.dt.format': 'yyyy-MM-dd',
        'projection.dt.range': `${config.data.changeLogStartDate},NOW`,
        'projection.dt.interval': '1',
        'projection.dt.interval.unit': 'DAYS',
        // The lane's folders are `date=<day>`; the column is `dt` because DATE is a reserved word in Athena.
        'storage.location.template': `${location}date=\${dt}/`,
        [TABLE_PARAMETERS.tableId]: table.tableId,
        [TABLE_PARAMETERS.topic]: table.tableId,
        [TABLE_PARAMETERS.partitions]: String(table.table.partitions),
        [TABLE_PARAMETERS.keyColumns]: (table.schema?.keyColumns ?? []).join(','),
      };
      if (table.hasCurrentState) {
        parameters[TABLE_PARAMETERS.currentTable] = table.currentTable;
        parameters[TABLE_PARAMETERS.deletedTable] = table.deletedTable;
      }
      const cfnTable = new glue.CfnTable(this, `Changes-${glueNameStem(table.tableId)}`, {
        catalogId: stack.account,
        databaseName,
        tableInput: {
          name: table.changesTable,
          description: `Change log of ${table.tableId}: one row per change, partitioned by commit day (dt)${table.schema === undefined ? '; no schema catalog entry, so metadata columns only' : ''}`,
          tableType: 'EXTERNAL_TABLE',
          parameters,
          partitionKeys: [{ name: 'dt', type: 'string', comment: 'the day (UTC) the source committed the change' }],
          storageDescriptor: {
            location,
            inputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
            outputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
            serdeInfo: {
              serializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe',
              parameters: { 'serialization.format': '1' },
            },
            columns: [...CHANGE_LOG_META_COLUMNS, ...(table.schema?.columns ?? [])].map((c) => ({ ...c })),
          },
        },
      });
      cfnTable.node.addDependency(props.database);
      return cfnTable;
    });

    this.resultsBucket = new SecureBucket(this, 'AthenaResults', {
      encryptionKey: props.dataKey,
      accessLogsBucket: props.accessLogsBucket,
      accessLogsPrefix: 'athena-results/',
      removalPolicy: props.removalPolicy,
      expireAfterDays: ATHENA_RESULTS_DAYS,
    }).bucket;
    this.workGroupName = athenaWorkGroupName(config);
    const cutoffGiB = config.currentState.bytesScannedCutoffGiB ?? DEFAULT_BYTES_SCANNED_CUTOFF_GIB;
    this.workGroup = new athena.CfnWorkGroup(this, 'WorkGroup', {
      name: this.workGroupName,
      description: `cdc-sync ${config.name}: current-state merges and queries of the warehouse`,
      state: 'ENABLED',
      // Lets the stack delete a workgroup that has run queries (destroy environments only).
      recursiveDeleteOption: props.removalPolicy === RemovalPolicy.DESTROY,
      workGroupConfiguration: {
        enforceWorkGroupConfiguration: true,
        publishCloudWatchMetricsEnabled: true,
        bytesScannedCutoffPerQuery: cutoffGiB * 1024 ** 3,
        engineVersion: { selectedEngineVersion: 'Athena engine version 3' },
        resultConfiguration: {
          outputLocation: `s3://${this.resultsBucket.bucketName}/${ATHENA_RESULTS_PREFIX}`,
          encryptionConfiguration: { encryptionOption: 'SSE_KMS', kmsKey: props.dataKey.keyArn },
          expectedBucketOwner: stack.account,
        },
      },
    });

    for (const table of this.tables) {
      const queries = namedQueries({
        database: databaseName,
        tableId: table.tableId,
        changesTable: table.changesTable,
        ...(table.hasCurrentState ? { currentTable: table.currentTable } : {}),
        keyColumns: table.schema?.keyColumns ?? [],
      });
      queries.forEach((query, i) => {
        const named = new athena.CfnNamedQuery(this, `Query-${glueNameStem(table.tableId)}-${i}`, {
          name: query.name.slice(0, 128),
          description: query.description.slice(0, 1024),
          database: databaseName,
          workGroup: this.workGroupName,
          queryString: query.sql,
        });
        named.node.addDependency(this.workGroup, props.database);
      });
    }
  }

  /** The tables that have a current-state table. */
  get currentStateTables(): CatalogedTable[] {
    return this.tables.filter((t) => t.hasCurrentState);
  }
}
