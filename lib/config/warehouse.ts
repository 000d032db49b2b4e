import { dataTopics, laneSources } from './topics';
import type { EnvironmentConfig, SourceConfig, TableConfig } from './types';

/**
 * Names of the warehouse's Glue tables, derived from the configuration in one place so the data stack, the
 * current-state function's settings, the named queries and the docs cannot disagree.
 *
 * Every table listed in `sources[].tables` of a source the warehouse lane reads has a change-log table; the ones with
 * a key and a schema catalog entry also have a current-state table (lib/constructs/warehouse-catalog.ts decides).
 * Tables the connectors capture without being listed (new tables of a `captureSchemas` schema, on the catch-all
 * topic) have no Glue table until they are listed.
 */

/** One listed table of the warehouse lane, with its Glue names. */
export interface WarehouseTable {
  readonly source: SourceConfig;
  readonly table: TableConfig;
  /**
   * The table id the warehouse lane writes under (`table=<id>/`): the topic name, `<prefix>.<schema|db>.<table>`
   * (SQL Server `<prefix>.<db>.<schema>.<table>`), functions/core/change.ts `tableIdOf`.
   */
  readonly tableId: string;
  /** The Glue change-log table: `<id>_changes`, the id in lower case with every other character than a-z0-9 as `_`. */
  readonly changesTable: string;
  /** The Iceberg current-state table: `<id>_current`. */
  readonly currentTable: string;
  /** The Iceberg table of the current-state table's deleted keys and last truncate: `<id>_deleted`. */
  readonly deletedTable: string;
}

/** The Glue database of an environment's warehouse: `cdc_sync_<env>`. */
export function glueDatabaseName(env: EnvironmentConfig): string {
  return `cdc_sync_${env.name.replaceAll('-', '_')}`;
}

/** A table id as a Glue/Athena identifier stem: lower case letters, digits and `_`. */
export function glueNameStem(tableId: string): string {
  return tableId.toLowerCase().replace(/[^a-z0-9_]/g, '_');
}

/** The Athena workgroup of an environment's warehouse queries (the current-state merges and the named queries). */
export function athenaWorkGroupName(env: EnvironmentConfig): string {
  return `cdc-sync-${env.name}`;
}

/** Every listed table of the sources the warehouse lane reads, in configuration order. */
export function warehouseTables(env: EnvironmentConfig): WarehouseTable[] {
  return laneSources(env, 'warehouse').flatMap((source) =>
    dataTopics(source).map(({ table, topicName }) => {
      const stem = glueNameStem(topicName);
      return {
        source,
        table,
        tableId: topicName,
        changesTable: `${stem}_changes`,
        currentTable: `${stem}_current`,
        deletedTable: `${stem}_deleted`,
      };
    }),
  );
}
