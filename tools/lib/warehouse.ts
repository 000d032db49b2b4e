import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { GetObjectCommand, ListObjectsCommand, type S3Client } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import { mapInOrder, READS_IN_FLIGHT } from './concurrency';

/**
 * Reading the warehouse's Parquet change log with DuckDB. DuckDB's S3 support (httpfs) is an extension it downloads
 * at run time, which this machine cannot; so the objects are copied to a local folder first (same layout,
 * `table=<id>/date=<day>/…parquet`) and DuckDB reads the files. In AWS, query the same data with Athena.
 */

/** Copies every Parquet object under the prefix to `dir`; returns the number of files. */
export async function downloadChangeLog(s3: S3Client, bucket: string, prefix: string, dir: string): Promise<number> {
  let token: string | undefined;
  let count = 0;
  do {
    const page = await s3.send(new ListObjectsCommand({ Bucket: bucket, Prefix: prefix, Marker: token }));
    const keys = (page.Contents ?? []).map((o) => o.Key as string).filter((key) => key?.endsWith('.parquet'));
    await mapInOrder(keys, READS_IN_FLIGHT, async (key) => {
      const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const target = join(dir, key.slice(prefix.length));
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, await (object.Body?.transformToByteArray() ?? new Uint8Array()));
      count++;
    });
    // ListObjects (v1) pages by the last key: s3rver cannot make v2 continuation tokens on Node 20 (DES).
    token = page.IsTruncated ? page.Contents?.at(-1)?.Key : undefined;
  } while (token);
  return count;
}

const quote = (identifier: string) => `"${identifier.replaceAll('"', '""')}"`;
const literal = (text: string) => `'${text.replaceAll("'", "''")}'`;

/** The files of one table's change log. */
export function tableGlob(dir: string, table: string): string {
  return join(dir, `table=${table}`, '**', '*.parquet');
}

/**
 * SQL that rebuilds a keyed table's current state from its change log: the latest change per key by source order,
 * rows older than the last truncate and deleted keys removed, and columns Debezium did not send (TOAST, listed in
 * `_cdc_unchanged`) taken from the latest change that had them.
 */
export function rebuildSql(glob: string, columns: readonly string[]): string {
  const source = `read_parquet(${literal(glob)}, union_by_name = true, hive_partitioning = false)`;
  const perColumn = columns.map(
    (c) =>
      `arg_max_null(${quote(c)}, _cdc_order) FILTER (WHERE NOT list_contains(coalesce(from_json(_cdc_unchanged, '["VARCHAR"]'), []), ${literal(c)})) AS ${quote(c)}`,
  );
  return `WITH changes AS (SELECT * FROM ${source}),
truncated AS (SELECT max(_cdc_order) AS truncated_at FROM changes WHERE _cdc_op = 't'),
live AS (
  SELECT * FROM changes
  WHERE _cdc_op <> 't' AND _cdc_key IS NOT NULL AND _cdc_order > coalesce((SELECT truncated_at FROM truncated), '')
),
latest AS (
  SELECT CAST(_cdc_key AS VARCHAR) AS _cdc_key, arg_max(_cdc_op, _cdc_order) AS _cdc_op${perColumn.length ? `,\n  ${perColumn.join(',\n  ')}` : ''}
  FROM live GROUP BY CAST(_cdc_key AS VARCHAR)
)
SELECT * FROM latest WHERE _cdc_op <> 'd' ORDER BY _cdc_key`;
}

export interface Warehouse {
  /** Table ids present in the change log (the `table=` folders). */
  tables(): Promise<string[]>;
  /** The table's row columns (without `_cdc_*`). */
  columns(table: string): Promise<string[]>;
  /** Current rows of a keyed table (see rebuildSql), values as DuckDB's JSON-friendly form. */
  rebuild(table: string): Promise<Array<Record<string, unknown>>>;
  /** Every change of a table in source order (for keyless tables and audits). */
  changes(table: string): Promise<Array<Record<string, unknown>>>;
  query(sql: string): Promise<Array<Record<string, unknown>>>;
  close(): void;
}

/** Opens an in-memory DuckDB over a folder of change-log files. */
export async function openWarehouse(dir: string): Promise<Warehouse> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  const query = async (sql: string) =>
    (await connection.runAndReadAll(sql)).getRowObjectsJson() as Array<Record<string, unknown>>;
  const columns = async (table: string) => {
    const rows = await query(
      `DESCRIBE SELECT * FROM read_parquet(${literal(tableGlob(dir, table))}, union_by_name = true, hive_partitioning = false)`,
    );
    return rows.map((r) => String(r.column_name)).filter((c) => !c.startsWith('_cdc_'));
  };
  return {
    async tables() {
      const rows = await query(
        `SELECT DISTINCT _cdc_table AS t FROM read_parquet(${literal(join(dir, '**', '*.parquet'))}, union_by_name = true) ORDER BY 1`,
      ).catch(() => []);
      return rows.map((r) => String(r.t));
    },
    columns,
    async rebuild(table) {
      return query(rebuildSql(tableGlob(dir, table), await columns(table)));
    },
    async changes(table) {
      return query(
        `SELECT * FROM read_parquet(${literal(tableGlob(dir, table))}, union_by_name = true, hive_partitioning = false) ORDER BY _cdc_order, _cdc_offset`,
      );
    },
    query,
    close() {
      connection.closeSync();
      instance.closeSync();
    },
  };
}
