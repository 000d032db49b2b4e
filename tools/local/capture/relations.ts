/**
 * Which relations the capture emits, and their current table schemas. pgoutput announces a relation (Relation
 * message) before its first change in a session and again after any DDL invalidated it; each announcement rebuilds
 * the schema from the catalog, and a relation not known yet joins the capture when its table is in scope (a table
 * created in a captured schema while streaming, or one named in `tables`).
 */
import type { Catalog, CatalogTable } from './catalog';
import type { PgOutputMessage, RelationColumn } from './pgoutput';
import { buildTableSchema, type TableSchema } from './table-schema';
import type { CaptureLogger, CaptureOptions } from './types';

type RelationMessage = Extract<PgOutputMessage, { tag: 'relation' }>;

/** The captured tables of one capture, by relation OID. */
export class CapturedTables {
  /** OIDs of captured tables. */
  readonly oids = new Set<number>();
  private readonly schemas = new Map<number, TableSchema>();
  /** OID of the signal table and, from its Relation message, where id/type/data are in its tuples. */
  signalOid: number | null = null;
  signalColumns: { id: number; type: number; data: number } | null = null;

  constructor(
    private readonly prefix: string,
    private readonly catalog: Catalog,
    /** Captured schemas (no explicit `tables`) or `schema.table` names. */
    private readonly scope: { schemas: Set<string> | null; names: Set<string> | null },
    private readonly log: CaptureLogger,
    private readonly onTableAdded: CaptureOptions['onTableAdded'],
  ) {}

  has(oid: number): boolean {
    return this.oids.has(oid);
  }

  /** The schema of a captured table, once announced (or read by the snapshot). */
  get(oid: number): TableSchema | undefined {
    return this.oids.has(oid) ? this.schemas.get(oid) : undefined;
  }

  set(oid: number, table: TableSchema): void {
    this.schemas.set(oid, table);
  }

  /** Handles a Relation message; awaits `onTableAdded` for a table that joins the capture. */
  async onRelation(msg: RelationMessage): Promise<void> {
    const oid = msg.relationId;
    if (oid === this.signalOid) {
      const at = (name: string) => msg.columns.findIndex((c) => c.name === name);
      this.signalColumns = { id: at('id'), type: at('type'), data: at('data') };
      return;
    }
    let added = false;
    if (!this.oids.has(oid)) {
      const inScope = this.scope.schemas
        ? this.scope.schemas.has(msg.schema)
        : this.scope.names?.has(`${msg.schema}.${msg.name}`);
      if (!inScope) return; // another table of the publication
      this.oids.add(oid);
      added = true;
    }
    // Rebuilt from the catalog as it is now, so defaults, NOT NULL and type parameters are current, for the columns
    // the tuples now carry (Debezium refreshes its schema the same way). An identical schema keeps its object.
    const existing = this.schemas.get(oid);
    const table = await this.schemaFor(msg);
    if (!existing || existing.valuePrefix !== table.valuePrefix || existing.keyPrefix !== table.keyPrefix) {
      this.schemas.set(oid, table);
    }
    if (added) {
      this.log.info(`capture: capturing new table ${msg.schema}.${msg.name}`);
      await this.onTableAdded?.({
        schema: table.schema,
        table: table.table,
        topic: table.topic,
        hasKey: table.keyIndexes.length > 0,
      });
    }
  }

  /**
   * The table schema for a Relation message. When the table no longer exists (dropped after the changes being
   * decoded were written), the catalog cannot say more than the message: names, types and the replica identity
   * columns as the key, without defaults or NOT NULL.
   */
  private async schemaFor(msg: RelationMessage): Promise<TableSchema> {
    const found = await this.catalog.tableIfExists(msg.relationId);
    if (found) return buildTableSchema(this.prefix, this.catalog, found, msg.columns);
    this.log.warn(`capture: ${msg.schema}.${msg.name} was dropped; its last changes use the stream's column list`);
    const table: CatalogTable = {
      oid: msg.relationId,
      schema: msg.schema,
      name: msg.name,
      columns: msg.columns.map((c: RelationColumn) => ({
        name: c.name,
        typeOid: c.typeOid,
        typmod: c.typmod,
        notNull: false,
        defaultExpr: null,
        serial: false,
      })),
      primaryKey: msg.replicaIdentity === 'd' ? msg.columns.filter((c) => c.key).map((c) => c.name) : [],
      replicaIdentity: msg.replicaIdentity,
    };
    return buildTableSchema(this.prefix, this.catalog, table, msg.columns);
  }
}
