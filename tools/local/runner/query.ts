/**
 * npx tsx tools/local/runner/query.ts [--dir <change-log folder>] [--db <current-state file>] [--json] "<sql>"
 *
 * Runs DuckDB SQL over what `npm start -- --keep` leaves in .local/start/: the warehouse change log in `warehouse/`
 * (the Parquet files as the warehouse lane wrote them to S3) and the current-state tables the run kept up to date in
 * `current-state.duckdb` (attached read-only as `current_state`). Views make it easy to explore:
 * - `changes`: every change of every table (`_cdc_*` metadata columns + row columns);
 * - `<table>_changes`: one table's changes (bare table name, e.g. `orders_changes`);
 * - `<table>`: the table's current rows — its current-state table (current-state.ts), or for a change log without
 *   one, the rows rebuilt from the log (latest change per key, deletes and truncates applied, unchanged TOAST columns
 *   filled from earlier changes) — keyed tables only.
 * Prints a table, or JSON lines with --json.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseFlagsOrExit } from '../../lib/args';
import { fail } from '../../lib/cli';
import { openWarehouse, rebuildSql, tableGlob } from '../../lib/warehouse';
import { CURRENT_STATE_FILE } from './current-state';

const USAGE =
  'usage: npx tsx tools/local/runner/query.ts [--dir .local/start/warehouse] [--db .local/start/current-state.duckdb] [--json] "<sql>"';
const FLAGS = { dir: { type: 'string' }, db: { type: 'string' }, json: { type: 'boolean' } } as const;
const quote = (identifier: string) => `"${identifier.replaceAll('"', '""')}"`;
const literal = (text: string) => `'${text.replaceAll("'", "''")}'`;

async function main(): Promise<void> {
  const { positionals, values } = parseFlagsOrExit(process.argv.slice(2), FLAGS, USAGE);
  const sql = positionals.join(' ').trim();
  if (!sql) fail(USAGE);
  const dir = resolve(values.dir ?? '.local/start/warehouse');
  if (!existsSync(dir)) fail(`no change log at ${dir}: run "npm start -- --keep" first (or pass --dir)`);

  const db = resolve(values.db ?? join(dirname(dir), CURRENT_STATE_FILE));

  const warehouse = await openWarehouse(dir);
  try {
    const tables = await warehouse.tables();
    const current = new Set<string>();
    if (existsSync(db)) {
      await warehouse.query(`ATTACH ${literal(db)} AS current_state (READ_ONLY)`);
      const rows = await warehouse.query(
        `SELECT table_name FROM duckdb_tables() WHERE database_name = 'current_state' AND schema_name = 'main'`,
      );
      for (const row of rows) current.add(String(row.table_name));
    }
    await warehouse.query(
      `CREATE VIEW changes AS SELECT * FROM read_parquet(${literal(join(dir, '**', '*.parquet'))}, union_by_name = true, hive_partitioning = false)`,
    );
    const bare = tables.map((t) => t.slice(t.lastIndexOf('.') + 1));
    for (const [i, table] of tables.entries()) {
      // Bare names when they are unambiguous across schemas, full table ids always.
      const names = bare.filter((b) => b === bare[i]).length === 1 ? [table, bare[i] as string] : [table];
      const keyed = await warehouse.query(
        `SELECT count(*) AS n FROM read_parquet(${literal(tableGlob(dir, table))}, union_by_name = true, hive_partitioning = false) WHERE _cdc_key IS NOT NULL`,
      );
      const columns = await warehouse.columns(table);
      for (const name of names) {
        await warehouse.query(
          `CREATE VIEW ${quote(`${name}_changes`)} AS SELECT * FROM read_parquet(${literal(tableGlob(dir, table))}, union_by_name = true, hive_partitioning = false) ORDER BY _cdc_order, _cdc_offset`,
        );
        if (current.has(table)) {
          await warehouse.query(`CREATE VIEW ${quote(name)} AS SELECT * FROM current_state.main.${quote(table)}`);
        } else if (Number(keyed[0]?.n ?? 0) > 0) {
          await warehouse.query(`CREATE VIEW ${quote(name)} AS ${rebuildSql(tableGlob(dir, table), columns)}`);
        }
      }
    }
    const rows = await warehouse.query(sql);
    if (values.json) {
      for (const row of rows) process.stdout.write(`${JSON.stringify(row)}\n`);
    } else if (rows.length === 0) {
      process.stdout.write('(no rows)\n');
    } else {
      console.table(rows);
    }
  } catch (error) {
    fail(`query failed: ${error instanceof Error ? error.message : String(error)}`, 1);
  } finally {
    warehouse.close();
  }
}

await main();
