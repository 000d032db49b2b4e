/**
 * Current-state tables: the SQL that keeps one table per keyed captured table equal to the latest state of each row,
 * from the warehouse's change log (functions/adapters/change-log-parquet.ts). One generator for two engines: Athena
 * (Trino, engine version 3, Iceberg `MERGE INTO`) in AWS and DuckDB (1.4 or later) for `npm start`; everything the
 * two spell differently is in {@link DIALECTS}, and nothing else here depends on the engine.
 *
 * A step applies the changes of one range (see {@link ChangeRange}) to a table with {@link mergeStatements}:
 * - per key (`_cdc_key`, the row key as JSON text, as the change log and the cache have it) the latest change by
 *   source order (`_cdc_order`); identical replays of a change tie and agree;
 * - a delete removes the row; a truncate removes every row older than it, and changes older than it are ignored;
 * - columns a change did not send (TOAST, listed in `_cdc_unchanged`) keep the value of the newest change that sent
 *   them, in the range or before it (the row records where each kept value came from: `_cdc_kept`); a row inserted
 *   without any change sending such a column gets NULL there (as rebuilding from the whole log would: no change had
 *   it);
 * - the version guard: the row's order, op and sent columns move only to a newer change (a delete only for a newer
 *   one), and an older change only replaces kept values older than itself; deleted keys and the last truncate are
 *   remembered in a companion table (the deleted keys table: `_cdc_key`, `_cdc_order`; key `*` is the last truncate)
 *   so that an older change arriving later (a range applied again, a redriven dead letter, a rebuilt file) cannot
 *   bring a deleted row back.
 * So a range applied twice, overlapping ranges, or ranges applied out of order leave the same table: each column's
 * value comes from the newest change that sent it, and a row remembers where its kept (TOAST) values came from
 * (`_cdc_kept`), so a change older than the row's (a rebuilt file, a redriven dead letter) replaces exactly the kept
 * values older than itself, and nothing else.
 * Each statement is idempotent on its own: after a failure, run the list again from the start.
 *
 * Tables without a key have no current-state table (their changes cannot be told apart by row): they stay
 * history-only in the change log. The generator refuses them.
 */
import { CdcError } from '../core/errors';

export type Dialect = 'athena' | 'duckdb';

/**
 * A column's type: the change log's Parquet column kinds. Decimals (exact text), times, byte strings (base64) and
 * strings are `string`; JSON columns are JSON text.
 */
export type CurrentStateType =
  | 'boolean'
  | 'int32'
  | 'int64'
  | 'double'
  | 'string'
  | 'json'
  | 'date'
  | 'timestamp'
  | 'timestamptz';

export interface CurrentStateColumn {
  name: string;
  type: CurrentStateType;
}

/** A captured table's current-state table: which table, its key and its columns (the change log's column names). */
export interface CurrentStateTable {
  /** The table id as in `_cdc_table`: `<topic prefix>.<schema>.<table>`. */
  table: string;
  /** The key's columns, in key order (non-empty: keyless tables have no current-state table). They come first. */
  keyColumns: string[];
  columns: CurrentStateColumn[];
}

/**
 * Which changes a step applies, by `_cdc_processed_at` (when the warehouse lane processed them; epoch milliseconds):
 * after `fromProcessedAt` (exclusive) up to `toProcessedAt` (inclusive); either bound may be left out. A lane writes
 * a batch's changes before its invocation ends, so a change with a given processing time is in S3 at most one lane
 * timeout later: end a range at least that long before now, and start the next where it ended (overlapping ranges
 * are harmless). With no bounds, every change of the relation is applied (the local runner hands over only the files
 * written since its last step).
 */
export interface ChangeRange {
  fromProcessedAt?: number;
  toProcessedAt?: number;
}

/** Where a step reads and writes: SQL relations, as the engine should see them (quoted if need be). */
export interface MergeRelations {
  /** A table, view or table function with the change-log rows (`_cdc_*` columns and the table's columns). */
  changesRelation: string;
  /** The current-state table. */
  targetRelation: string;
  /** Its deleted keys table. */
  deletedRelation: string;
}

/** A table to create: the relation, and for Athena its S3 location (Iceberg tables need one). */
export interface TableToCreate {
  relation: string;
  location?: string;
}

/** The columns every current-state table has after the table's own: what the row's latest applied change was. */
export const CURRENT_STATE_META: readonly CurrentStateColumn[] = [
  { name: '_cdc_key', type: 'string' },
  { name: '_cdc_order', type: 'string' },
  { name: '_cdc_op', type: 'string' },
  { name: '_cdc_commit_ts', type: 'timestamptz' },
  /**
   * Where the values of the columns the row's latest change did not send come from (TOAST-unchanged, kept from an
   * earlier change): `,<column>@<source order of the change that sent the value>,…` (`<column>@` with no order: never
   * sent, NULL); `,` when the latest change sent every column. An older change applied later (a rebuilt file, a
   * redriven dead letter) replaces such a value when it is newer than the value's own change, and nothing else.
   */
  { name: '_cdc_kept', type: 'string' },
];

/** The deleted keys table's columns. */
export const DELETED_KEYS_COLUMNS: readonly CurrentStateColumn[] = [
  { name: '_cdc_key', type: 'string' },
  { name: '_cdc_order', type: 'string' },
];

/** The deleted keys table's key for the table's last truncate: no JSON object is written like it. */
export const TRUNCATED_KEY = '*';

export type CurrentStateErrorCode = 'KEYLESS_TABLE' | 'INVALID_TABLE' | 'UNSUPPORTED_TYPE_CHANGE';

/** A table the generator cannot make SQL for. Not retryable: the input must change. */
export class CurrentStateError extends CdcError {
  readonly retryable = false;
  constructor(
    readonly code: CurrentStateErrorCode,
    message: string,
  ) {
    super(message);
  }
}

interface DialectRules {
  /** An identifier in queries and DML. */
  quote(name: string): string;
  /** An identifier in CREATE and ALTER TABLE (Athena's DDL is Hive's: backticks). */
  ddlQuote(name: string): string;
  /** Types in queries and DML (casts) and in DDL. */
  dmlType: Record<CurrentStateType, string>;
  ddlType: Record<CurrentStateType, string>;
  /** The aggregate `f(x, y)`: x at the largest y, NULL when that x is NULL (rows whose y is NULL are skipped). */
  maxBy: string;
  /** SQL true when the change left `column` out (it is in the JSON array `_cdc_unchanged`). */
  unchanged(column: string): string;
  /** A literal comparable with `_cdc_processed_at`. */
  processedAt(epochMs: number): string;
  createTable(table: TableToCreate, columns: string): string;
  addColumn(relation: string, column: string, type: string): string;
  dropColumn(relation: string, column: string): string;
  changeType(relation: string, column: string, type: string): string;
  /** Type changes the engine can make in place (`from>to`); others need the table rebuilt. */
  typeChanges: ReadonlySet<string>;
}

const literal = (text: string) => `'${text.replaceAll("'", "''")}'`;
const doubleQuoted = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** Every type change {@link widened} can ask for. */
const ALL_WIDENINGS = new Set([
  'int32>int64',
  'int32>double',
  'int64>double',
  ...(['boolean', 'int32', 'int64', 'double', 'json', 'date', 'timestamp', 'timestamptz'] as const).map(
    (from) => `${from}>string`,
  ),
]);

/** DuckDB spells a column's type the same in DDL and in casts. */
const DUCKDB_TYPES: Record<CurrentStateType, string> = {
  boolean: 'BOOLEAN',
  int32: 'INTEGER',
  int64: 'BIGINT',
  double: 'DOUBLE',
  string: 'VARCHAR',
  json: 'JSON',
  date: 'DATE',
  timestamp: 'TIMESTAMP',
  timestamptz: 'TIMESTAMPTZ',
};

const DIALECTS: Record<Dialect, DialectRules> = {
  duckdb: {
    quote: doubleQuoted,
    ddlQuote: doubleQuoted,
    dmlType: DUCKDB_TYPES,
    ddlType: DUCKDB_TYPES,
    maxBy: 'arg_max_null',
    unchanged: (column) =>
      `coalesce(list_contains(from_json(_cdc_unchanged, '["VARCHAR"]'), ${literal(column)}), false)`,
    processedAt: (ms) => `TIMESTAMPTZ ${literal(new Date(ms).toISOString().replace('T', ' ').replace('Z', '+00'))}`,
    createTable: (table, columns) => `CREATE TABLE IF NOT EXISTS ${table.relation} (${columns})`,
    addColumn: (relation, column, type) => `ALTER TABLE ${relation} ADD COLUMN ${column} ${type}`,
    dropColumn: (relation, column) => `ALTER TABLE ${relation} DROP COLUMN ${column}`,
    changeType: (relation, column, type) => `ALTER TABLE ${relation} ALTER COLUMN ${column} SET DATA TYPE ${type}`,
    typeChanges: ALL_WIDENINGS,
  },
  athena: {
    quote: doubleQuoted,
    ddlQuote: (name) => `\`${name.replaceAll('`', '``')}\``,
    dmlType: {
      boolean: 'BOOLEAN',
      int32: 'INTEGER',
      int64: 'BIGINT',
      double: 'DOUBLE',
      string: 'VARCHAR',
      json: 'VARCHAR',
      date: 'DATE',
      timestamp: 'TIMESTAMP(6)',
      timestamptz: 'TIMESTAMP(6)',
    },
    // Athena's Iceberg DDL has no timestamptz: zoned timestamps are kept in UTC in a timestamp column.
    ddlType: {
      boolean: 'boolean',
      int32: 'int',
      int64: 'bigint',
      double: 'double',
      string: 'string',
      json: 'string',
      date: 'date',
      timestamp: 'timestamp',
      timestamptz: 'timestamp',
    },
    maxBy: 'max_by',
    unchanged: (column) => `coalesce(json_array_contains(_cdc_unchanged, ${literal(column)}), false)`,
    processedAt: (ms) => `TIMESTAMP ${literal(new Date(ms).toISOString().replace('T', ' ').replace('Z', ''))}`,
    createTable: (table, columns) => {
      if (!table.location) throw new CurrentStateError('INVALID_TABLE', `${table.relation}: Athena needs a location`);
      return (
        `CREATE TABLE IF NOT EXISTS ${table.relation} (${columns}) LOCATION ${literal(table.location)} ` +
        `TBLPROPERTIES ('table_type' = 'ICEBERG', 'format' = 'parquet', 'write_compression' = 'zstd')`
      );
    },
    addColumn: (relation, column, type) => `ALTER TABLE ${relation} ADD COLUMNS (${column} ${type})`,
    dropColumn: (relation, column) => `ALTER TABLE ${relation} DROP COLUMN ${column}`,
    changeType: (relation, column, type) => `ALTER TABLE ${relation} CHANGE COLUMN ${column} ${column} ${type}`,
    // Iceberg promotes int to long in place; nothing else of ours.
    typeChanges: new Set(['int32>int64']),
  },
};

const RESERVED = /^_cdc_(key|order|op|commit_ts|unchanged|deleted_at|sent_\d+)$/;

function checked(t: CurrentStateTable): CurrentStateTable {
  if (t.keyColumns.length === 0) {
    throw new CurrentStateError('KEYLESS_TABLE', `${t.table} has no key: it has no current-state table`);
  }
  const names = new Set<string>();
  for (const { name } of t.columns) {
    if (names.has(name)) throw new CurrentStateError('INVALID_TABLE', `${t.table}: column ${name} is listed twice`);
    if (RESERVED.test(name)) throw new CurrentStateError('INVALID_TABLE', `${t.table}: column ${name} is reserved`);
    names.add(name);
  }
  return t;
}

/** The table's columns in table order: key columns first, then the others as given. */
function ordered(t: CurrentStateTable): CurrentStateColumn[] {
  const keys = t.keyColumns.flatMap((k) => t.columns.filter((c) => c.name === k));
  return [...keys, ...t.columns.filter((c) => !t.keyColumns.includes(c.name))];
}

function columnList(columns: readonly CurrentStateColumn[], rules: DialectRules): string {
  return columns.map((c) => `${rules.ddlQuote(c.name)} ${rules.ddlType[c.type]}`).join(', ');
}

/** CREATE TABLE (if it does not exist) of a table's current-state table. */
export function createTableStatement(t: CurrentStateTable, target: TableToCreate, dialect: Dialect): string {
  const rules = DIALECTS[dialect];
  return rules.createTable(target, columnList([...ordered(checked(t)), ...CURRENT_STATE_META], rules));
}

/** CREATE TABLE (if it does not exist) of a current-state table's deleted keys table. */
export function createDeletedTableStatement(target: TableToCreate, dialect: Dialect): string {
  const rules = DIALECTS[dialect];
  return rules.createTable(target, columnList(DELETED_KEYS_COLUMNS, rules));
}

/** The type holding values of both (the change log's own rule for one column across files). */
export function widened(a: CurrentStateType, b: CurrentStateType): CurrentStateType {
  if (a === b) return a;
  const pair = new Set([a, b]);
  if (pair.has('int32') && pair.has('int64')) return 'int64';
  if ((pair.has('int32') || pair.has('int64')) && pair.has('double')) return 'double';
  return 'string';
}

/**
 * What it takes to change a current-state table from shape `current` to hold `next` (the columns seen in newer
 * changes): new columns are added, a column whose values need a wider type is widened; columns `next` lacks stay
 * (later changes set them NULL) unless `dropMissing` says `next` is the table's whole current shape (in AWS, the Glue
 * change-log table defined from the schema catalog: a column dropped at the source is dropped here too). Returns the
 * table's new shape and the ALTER statements. A widening the engine cannot make in place (on Athena, anything but int
 * → bigint) throws: recreate the table and apply the log from its start.
 */
export function evolveTable(
  current: CurrentStateTable,
  next: CurrentStateTable,
  targetRelation: string,
  dialect: Dialect,
  options: { dropMissing?: boolean } = {},
): { table: CurrentStateTable; statements: string[] } {
  const rules = DIALECTS[dialect];
  const statements: string[] = [];
  const dropped = new Set(
    options.dropMissing
      ? current.columns
          .filter((c) => !next.columns.some((n) => n.name === c.name) && !current.keyColumns.includes(c.name))
          .map((c) => c.name)
      : [],
  );
  for (const name of dropped) statements.push(rules.dropColumn(targetRelation, rules.ddlQuote(name)));
  const columns = current.columns
    .filter((c) => !dropped.has(c.name))
    .map((column) => {
      const seen = next.columns.find((c) => c.name === column.name);
      if (!seen) return column;
      const type = widened(column.type, seen.type);
      if (type === column.type) return column;
      if (!rules.typeChanges.has(`${column.type}>${type}`)) {
        throw new CurrentStateError(
          'UNSUPPORTED_TYPE_CHANGE',
          `${current.table}.${column.name}: ${dialect} cannot change ${column.type} to ${type} in place; recreate the table`,
        );
      }
      statements.push(rules.changeType(targetRelation, rules.ddlQuote(column.name), rules.ddlType[type]));
      return { name: column.name, type };
    });
  for (const column of next.columns) {
    if (columns.some((c) => c.name === column.name)) continue;
    statements.push(rules.addColumn(targetRelation, rules.ddlQuote(column.name), rules.ddlType[column.type]));
    columns.push(column);
  }
  return { table: checked({ ...current, columns }), statements };
}

/** A column name as a literal part of a regular expression. */
function regexEscape(name: string): string {
  return name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The WHERE condition selecting the table's changes in the range. */
function rangeFilter(t: CurrentStateTable, range: ChangeRange, rules: DialectRules): string {
  const parts = [`_cdc_table = ${literal(t.table)}`];
  if (range.fromProcessedAt !== undefined) {
    parts.push(`_cdc_processed_at > ${rules.processedAt(range.fromProcessedAt)}`);
  }
  if (range.toProcessedAt !== undefined) {
    parts.push(`_cdc_processed_at <= ${rules.processedAt(range.toProcessedAt)}`);
  }
  return parts.join(' AND ');
}

/**
 * The statements that apply the table's changes in `range` to its current-state table, in order:
 * 1. the range's latest truncate becomes the deleted keys table's `*` entry (if newer);
 * 2. rows older than that truncate are deleted;
 * 3. the MERGE of the latest change per key newer than the truncate (delete, update or insert, guarded);
 * 4. the MERGE of the deleted keys: a key whose latest change is a delete is remembered with its order, a key changed
 *    since is forgotten.
 */
export function mergeStatements(
  t: CurrentStateTable,
  relations: MergeRelations,
  range: ChangeRange,
  dialect: Dialect,
): string[] {
  checked(t);
  const rules = DIALECTS[dialect];
  const { changesRelation: changes, targetRelation: target, deletedRelation: deleted } = relations;
  const filter = rangeFilter(t, range, rules);
  const truncatedAt = `(SELECT _cdc_order FROM ${deleted} WHERE _cdc_key = ${literal(TRUNCATED_KEY)})`;
  const live = `_cdc_op <> 't' AND _cdc_key IS NOT NULL AND _cdc_order > coalesce(${truncatedAt}, '')`;
  const key = `CAST(_cdc_key AS ${rules.dmlType.string})`;
  const columns = ordered(t);
  const q = rules.quote;
  /** The source order of the change that sent the range's value of column i (NULL: none in the range sent it). */
  const origin = (i: number) => `_cdc_origin_${i}`;
  /** The source order of the change `t`'s value of a column came from (see CURRENT_STATE_META `_cdc_kept`). */
  const kept = (c: CurrentStateColumn) =>
    `CASE WHEN strpos(coalesce(t._cdc_kept, ','), ${literal(`,${c.name}@`)}) > 0 THEN regexp_extract(t._cdc_kept, ${literal(`,${regexEscape(c.name)}@([^,]*),`)}, 1) ELSE t._cdc_order END`;
  /** The range's value of column i is newer than `t`'s. */
  const newer = (c: CurrentStateColumn, i: number) => `(s.${origin(i)} IS NOT NULL AND s.${origin(i)} > ${kept(c)})`;
  const merged = (c: CurrentStateColumn, i: number) =>
    `CASE WHEN ${newer(c, i)} THEN s.${origin(i)} ELSE ${kept(c)} END`;
  const order = 'greatest(t._cdc_order, s._cdc_order)';
  /** The `_cdc_kept` list: every column whose value's order `from(c, i)` is not the row's order `at`. */
  const keptList = (from: (c: CurrentStateColumn, i: number) => string, at: string) =>
    [
      "','",
      ...columns.map(
        (c, i) =>
          `CASE WHEN ${from(c, i)} IS NULL THEN ${literal(`${c.name}@,`)} WHEN ${from(c, i)} <> ${at} THEN ${literal(`${c.name}@`)} || ${from(c, i)} || ',' ELSE '' END`,
      ),
    ].join(' || ');

  const truncate = `MERGE INTO ${deleted} AS d
USING (
  SELECT ${literal(TRUNCATED_KEY)} AS _cdc_key, max(_cdc_order) AS _cdc_order
  FROM ${changes}
  WHERE ${filter} AND _cdc_op = 't'
  HAVING max(_cdc_order) IS NOT NULL
) AS s
ON d._cdc_key = s._cdc_key
WHEN MATCHED AND s._cdc_order > d._cdc_order THEN UPDATE SET _cdc_order = s._cdc_order
WHEN NOT MATCHED THEN INSERT (_cdc_key, _cdc_order) VALUES (s._cdc_key, s._cdc_order)`;

  const olderThanTruncate = `DELETE FROM ${target} WHERE _cdc_order < ${truncatedAt}`;

  const latestColumns = columns.flatMap((c, i) => [
    `${rules.maxBy}(${q(c.name)}, _cdc_order) FILTER (WHERE NOT ${rules.unchanged(c.name)}) AS ${q(c.name)}`,
    `max(_cdc_order) FILTER (WHERE NOT ${rules.unchanged(c.name)}) AS ${origin(i)}`,
  ]);
  const rows = `MERGE INTO ${target} AS t
USING (
  WITH range_changes AS (
    SELECT ${key} AS _cdc_key, _cdc_op, _cdc_order, _cdc_commit_ts, _cdc_unchanged${columns
      .map((c) => `,\n      CAST(${q(c.name)} AS ${rules.dmlType[c.type]}) AS ${q(c.name)}`)
      .join('')}
    FROM ${changes}
    WHERE ${filter}
  ),
  range_latest AS (
    SELECT _cdc_key, max(_cdc_order) AS _cdc_order, ${rules.maxBy}(_cdc_op, _cdc_order) AS _cdc_op,
      ${rules.maxBy}(_cdc_commit_ts, _cdc_order) AS _cdc_commit_ts${latestColumns.map((c) => `,\n      ${c}`).join('')}
    FROM range_changes
    WHERE ${live}
    GROUP BY _cdc_key
  )
  SELECT range_latest.*, gone._cdc_order AS _cdc_deleted_at,
    ${keptList((_, i) => `range_latest.${origin(i)}`, 'range_latest._cdc_order')} AS _cdc_kept
  FROM range_latest LEFT JOIN ${deleted} AS gone ON gone._cdc_key = range_latest._cdc_key
) AS s
ON t._cdc_key = s._cdc_key
WHEN MATCHED AND s._cdc_order > t._cdc_order AND s._cdc_op = 'd' THEN DELETE
WHEN MATCHED AND s._cdc_order <> t._cdc_order AND s._cdc_op <> 'd' THEN UPDATE SET
  ${[
    ...columns.map((c, i) => `${q(c.name)} = CASE WHEN ${newer(c, i)} THEN s.${q(c.name)} ELSE t.${q(c.name)} END`),
    `_cdc_kept = ${keptList(merged, order)}`,
    `_cdc_order = ${order}`,
    '_cdc_op = CASE WHEN s._cdc_order > t._cdc_order THEN s._cdc_op ELSE t._cdc_op END',
    '_cdc_commit_ts = CASE WHEN s._cdc_order > t._cdc_order THEN s._cdc_commit_ts ELSE t._cdc_commit_ts END',
  ].join(',\n  ')}
WHEN NOT MATCHED AND s._cdc_op <> 'd' AND (s._cdc_deleted_at IS NULL OR s._cdc_order > s._cdc_deleted_at) THEN INSERT
  (${[...columns.map((c) => q(c.name)), ...CURRENT_STATE_META.map((c) => c.name)].join(', ')})
  VALUES (${[...columns.map((c) => `s.${q(c.name)}`), ...CURRENT_STATE_META.map((c) => `s.${c.name}`)].join(', ')})`;

  const deletes = `MERGE INTO ${deleted} AS d
USING (
  SELECT ${key} AS _cdc_key, max(_cdc_order) AS _cdc_order, ${rules.maxBy}(_cdc_op, _cdc_order) AS _cdc_op
  FROM ${changes}
  WHERE ${filter} AND ${live}
  GROUP BY ${key}
) AS s
ON d._cdc_key = s._cdc_key
WHEN MATCHED AND s._cdc_order > d._cdc_order AND s._cdc_op <> 'd' THEN DELETE
WHEN MATCHED AND s._cdc_order > d._cdc_order THEN UPDATE SET _cdc_order = s._cdc_order
WHEN NOT MATCHED AND s._cdc_op = 'd' THEN INSERT (_cdc_key, _cdc_order) VALUES (s._cdc_key, s._cdc_order)`;

  return [truncate, olderThanTruncate, rows, deletes];
}
