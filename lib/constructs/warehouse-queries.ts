/**
 * The Athena named queries of one warehouse table, as SQL text (the catalog construct saves them in the workgroup).
 * History queries keep one row per `_cdc_id`: the lane writes each change once, but a compaction that has written a
 * day's merged file and not yet deleted the small files it replaces (a moment), or a redrive interrupted after its
 * write, leaves a change twice. `?` marks a parameter the Athena console asks for when the query runs.
 */

export interface QueryTable {
  readonly database: string;
  readonly tableId: string;
  readonly changesTable: string;
  /** Absent for a table without a key or a schema catalog entry: it has no current-state table. */
  readonly currentTable?: string;
  /** Empty when the table has no key columns in the catalog: keys are then matched as `_cdc_key` JSON text. */
  readonly keyColumns: readonly string[];
}

export interface NamedQuerySql {
  /** Unique in the workgroup, at most 128 characters. */
  readonly name: string;
  readonly description: string;
  readonly sql: string;
}

export const quoteIdentifier = (name: string) => `"${name.replaceAll('"', '""')}"`;

const relation = (database: string, table: string) => `${quoteIdentifier(database)}.${quoteIdentifier(table)}`;

/** The changes of a table from a day on (parameter), one row per change. */
function distinctChanges(t: QueryTable, where: string): string {
  return `SELECT * FROM (
  SELECT c.*, row_number() OVER (PARTITION BY _cdc_id ORDER BY _cdc_processed_at DESC) AS _copy
  FROM ${relation(t.database, t.changesTable)} c
  WHERE ${where}
)
WHERE _copy = 1
ORDER BY _cdc_order, _cdc_offset`;
}

/** Current state, a table's history, a key's history and changes per hour of one table. */
export function namedQueries(t: QueryTable): NamedQuerySql[] {
  const queries: NamedQuerySql[] = [];
  if (t.currentTable !== undefined) {
    queries.push({
      name: `${t.tableId}: current state`,
      description: `The current rows of ${t.tableId} (Iceberg, kept up to date by the current-state merge)`,
      sql: `SELECT * FROM ${relation(t.database, t.currentTable)}`,
    });
  }
  const keyFilter =
    t.keyColumns.length > 0 ? t.keyColumns.map((c) => `${quoteIdentifier(c)} = ?`).join(' AND ') : '_cdc_key = ?';
  queries.push(
    {
      name: `${t.tableId}: history`,
      description: `Every change of ${t.tableId} committed from a day on (parameter 'YYYY-MM-DD'), in source order`,
      sql: distinctChanges(t, 'dt >= ?'),
    },
    {
      name: `${t.tableId}: history of a key`,
      description: `Every change of one row of ${t.tableId} from a day on (parameters: 'YYYY-MM-DD', then ${t.keyColumns.length > 0 ? t.keyColumns.join(', ') : 'the key as JSON text'})`,
      sql: distinctChanges(t, `dt >= ? AND ${keyFilter}`),
    },
    {
      name: `${t.tableId}: changes per hour`,
      description: `Changes of ${t.tableId} per commit hour (UTC) and operation, from a day on (parameter 'YYYY-MM-DD')`,
      sql: `SELECT date_trunc('hour', _cdc_commit_ts) AS hour, _cdc_op AS op, count(DISTINCT _cdc_id) AS changes
FROM ${relation(t.database, t.changesTable)}
WHERE dt >= ?
GROUP BY 1, 2
ORDER BY 1, 2`,
    },
  );
  return queries;
}
