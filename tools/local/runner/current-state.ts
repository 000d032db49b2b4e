/**
 * Current-state tables during `npm start`: one DuckDB table per keyed captured table, kept up to date from the
 * warehouse's change log with the same MERGE statements Athena runs in AWS (functions/current-state/merge-sql.ts,
 * dialect `duckdb`). A step lists the change log in the local S3, downloads the objects it has not applied yet (new
 * ones, and ones rewritten since: a bisected retry rewrites its own object), and per table applies them as one range:
 * new columns are added and widened types widened first, then the statements run in one transaction. The position
 * of a table is the set of objects applied (key and ETag), so nothing depends on timing; applying an object again
 * is harmless (the statements are idempotent).
 *
 * The tables are `main."<table id>"` in `<state dir>/current-state.duckdb`, their deleted keys
 * `deleted_keys."<table id>"`. Tables without a key get none: their changes stay history-only in the change log.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { GetObjectCommand, ListObjectsCommand, type S3Client } from '@aws-sdk/client-s3';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { META_COLUMNS } from '../../../functions/adapters/change-log-parquet';
import {
  type CurrentStateColumn,
  type CurrentStateTable,
  type CurrentStateType,
  createDeletedTableStatement,
  createTableStatement,
  evolveTable,
  mergeStatements,
} from '../../../functions/current-state/merge-sql';
import { mapInOrder, READS_IN_FLIGHT } from '../../lib/concurrency';
import { LOCAL_NAMES } from '../services';
import type { Run } from './setup';
import { WAREHOUSE_PREFIX } from './system';

/** The DuckDB file of a run's current-state tables, in its state directory. */
export const CURRENT_STATE_FILE = 'current-state.duckdb';
/** The schema of the deleted keys tables. */
export const DELETED_KEYS_SCHEMA = 'deleted_keys';

/** The temporary table a table's new changes are read into for its step. */
const RANGE = 'range_rows';

const quote = (identifier: string) => `"${identifier.replaceAll('"', '""')}"`;
const literal = (text: string) => `'${text.replaceAll("'", "''")}'`;

/** How often the tables catch up with the change log while a run goes on. */
const STEP_EVERY_MS = 2000;

/** The change log's column types as DuckDB reads them from Parquet. Anything else is read as text. */
const TYPES: Record<string, CurrentStateType> = {
  BOOLEAN: 'boolean',
  INTEGER: 'int32',
  BIGINT: 'int64',
  DOUBLE: 'double',
  VARCHAR: 'string',
  JSON: 'json',
  DATE: 'date',
  TIMESTAMP: 'timestamp',
  'TIMESTAMP WITH TIME ZONE': 'timestamptz',
};

/** What the steps did so far. */
export interface CurrentStateStats {
  steps: number;
  /** Change-log objects applied (an object rewritten since counts again). */
  objects: number;
  /** Changes in those objects, of keyed tables. */
  changes: number;
  /** Time spent reading the new objects and running the statements (schema changes and merges), ms. */
  mergeMs: number;
  /** Why the last step failed, until a step succeeds. */
  lastError: string | null;
}

export interface CurrentStateOptions {
  s3: S3Client;
  bucket: string;
  /** The change log's key prefix (`changes/`). */
  prefix: string;
  /** Where a step downloads the objects it applies (same layout as under the prefix; emptied after the step). */
  dir: string;
  /** The DuckDB file. */
  database: string;
}

/** A run's current-state tables and the steps that keep them up to date. */
export class CurrentStateTables {
  readonly stats: CurrentStateStats = { steps: 0, objects: 0, changes: 0, mergeMs: 0, lastError: null };
  /** Object key → the ETag applied. */
  private readonly applied = new Map<string, string>();
  /** Table id → the current-state table's shape. */
  private readonly shapes = new Map<string, CurrentStateTable>();
  private inFlight: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private readonly options: CurrentStateOptions,
    private readonly instance: DuckDBInstance,
    private readonly connection: DuckDBConnection,
  ) {}

  static async open(options: CurrentStateOptions): Promise<CurrentStateTables> {
    await mkdir(dirname(options.database), { recursive: true });
    // One thread: the steps run beside the pipeline, whose lanes need the cores more.
    const instance = await DuckDBInstance.create(options.database, { threads: '1' });
    const connection = await instance.connect();
    await connection.run(`CREATE SCHEMA IF NOT EXISTS ${DELETED_KEYS_SCHEMA}`);
    return new CurrentStateTables(options, instance, connection);
  }

  /** The current-state table of a table id, as SQL. */
  static relation(table: string): string {
    return `main.${quote(table)}`;
  }

  /** Table ids that have a current-state table. */
  tables(): string[] {
    return [...this.shapes.keys()].sort();
  }

  /** Rows of a query, in DuckDB's JSON-friendly form. */
  async query(sql: string): Promise<Array<Record<string, unknown>>> {
    return (await this.connection.runAndReadAll(sql)).getRowObjectsJson() as Array<Record<string, unknown>>;
  }

  /** Applies what the change log holds beyond the last step (after any step in flight). Throws what failed. */
  step(): Promise<void> {
    const next = this.inFlight.then(() => this.applyNewObjects());
    this.inFlight = next.catch(() => undefined);
    return next;
  }

  /** Runs a step every `ms` until {@link stop}; a failed step is remembered in the stats and tried again. */
  every(ms: number): void {
    const tick = () => {
      this.timer = undefined;
      this.step()
        .catch(() => undefined) // in stats.lastError
        .finally(() => {
          if (!this.closed && this.timer === undefined) this.timer = setTimeout(tick, ms).unref();
        });
    };
    this.timer = setTimeout(tick, ms).unref();
  }

  /** Stops the periodic steps and waits for one in flight. */
  async stop(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.inFlight;
  }

  async close(): Promise<void> {
    await this.stop();
    this.connection.closeSync();
    this.instance.closeSync();
  }

  private async applyNewObjects(): Promise<void> {
    try {
      const byTable = new Map<string, Array<{ key: string; etag: string; file: string }>>();
      for (const object of await this.newObjects()) {
        const table = /^table=([^/]+)\//.exec(object.key.slice(this.options.prefix.length))?.[1];
        if (!table) continue;
        const files = byTable.get(table) ?? [];
        files.push(object);
        byTable.set(table, files);
      }
      const objects = [...byTable.values()].flat();
      await mapInOrder(objects, READS_IN_FLIGHT, (object) => this.download(object.key, object.file));
      for (const [table, files] of byTable) {
        const done = await this.applyTable(
          table,
          files.map((f) => f.file),
        );
        if (!done) continue;
        for (const file of files) this.applied.set(file.key, file.etag);
        this.stats.objects += files.length;
      }
      this.stats.steps++;
      this.stats.lastError = null;
    } catch (error) {
      this.stats.lastError = error instanceof Error ? error.message : String(error);
      throw error;
    } finally {
      await rm(this.options.dir, { recursive: true, force: true });
    }
  }

  /** Parquet objects under the prefix not applied in their current version. */
  private async newObjects(): Promise<Array<{ key: string; etag: string; file: string }>> {
    const { s3, bucket, prefix, dir } = this.options;
    const out: Array<{ key: string; etag: string; file: string }> = [];
    let marker: string | undefined;
    do {
      const page = await s3.send(new ListObjectsCommand({ Bucket: bucket, Prefix: prefix, Marker: marker }));
      for (const object of page.Contents ?? []) {
        const key = object.Key;
        if (!key?.endsWith('.parquet')) continue;
        const etag = object.ETag ?? `${object.Size}@${object.LastModified?.getTime()}`;
        if (this.applied.get(key) !== etag) out.push({ key, etag, file: join(dir, key.slice(prefix.length)) });
      }
      marker = page.IsTruncated ? page.Contents?.at(-1)?.Key : undefined;
    } while (marker);
    return out;
  }

  private async download(key: string, file: string): Promise<void> {
    const object = await this.options.s3.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: key }));
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, await (object.Body?.transformToByteArray() ?? new Uint8Array()));
  }

  /**
   * Applies one table's new files as one range. Returns whether they are done with: false when the table's keyness
   * is not known yet (only truncates so far), so the files wait for the next step.
   */
  private async applyTable(table: string, files: string[]): Promise<boolean> {
    const started = performance.now();
    // The files are read once, into a temporary table that every statement then reads.
    await this.connection.run(
      `CREATE OR REPLACE TEMP TABLE ${RANGE} AS SELECT * FROM read_parquet([${files.map(literal).join(', ')}], union_by_name = true, hive_partitioning = false)`,
    );
    try {
      const [counts] = await this.query(
        `SELECT count(*) AS changes, count(*) FILTER (WHERE _cdc_op <> 't') AS rows, min(CAST(_cdc_key AS VARCHAR)) AS key FROM ${RANGE}`,
      );
      const key = counts?.key === null || counts?.key === undefined ? null : String(counts.key);
      const current = this.shapes.get(table);
      if (!current && key === null) return Number(counts?.rows ?? 0) > 0; // keyless: history only
      const seen: CurrentStateTable = {
        table,
        keyColumns: current?.keyColumns ?? Object.keys(JSON.parse(key ?? '{}') as object),
        columns: await this.columnsOf(RANGE),
      };
      const target = CurrentStateTables.relation(table);
      const deleted = `${DELETED_KEYS_SCHEMA}.${quote(table)}`;
      const shape = current ? evolveTable(current, seen, target, 'duckdb') : { table: seen, statements: [] };
      const statements = current
        ? shape.statements
        : [
            createTableStatement(seen, { relation: target }, 'duckdb'),
            createDeletedTableStatement({ relation: deleted }, 'duckdb'),
          ];
      // Columns these files lack (added in later files, or dropped before them) read NULL, as across the whole log.
      const present = new Set(seen.columns.map((c) => c.name));
      const missing = shape.table.columns.filter((c) => !present.has(c.name)).map((c) => `, NULL AS ${quote(c.name)}`);
      const changes = missing.length ? `(SELECT *${missing.join('')} FROM ${RANGE})` : RANGE;
      statements.push(
        ...mergeStatements(
          shape.table,
          { changesRelation: changes, targetRelation: target, deletedRelation: deleted },
          {},
          'duckdb',
        ),
      );
      await this.connection.run('BEGIN TRANSACTION');
      try {
        for (const statement of statements) await this.connection.run(statement);
        await this.connection.run('COMMIT');
      } catch (error) {
        await this.connection.run('ROLLBACK');
        throw error;
      }
      this.stats.changes += Number(counts?.changes ?? 0);
      this.shapes.set(table, shape.table);
      return true;
    } finally {
      await this.connection.run(`DROP TABLE IF EXISTS ${RANGE}`);
      this.stats.mergeMs += performance.now() - started;
    }
  }

  /** The table's columns in these files (the change log's `_cdc_*` metadata left out). */
  private async columnsOf(source: string): Promise<CurrentStateColumn[]> {
    const rows = await this.query(`DESCRIBE SELECT * FROM ${source}`);
    return rows
      .map((r) => ({ name: String(r.column_name), type: TYPES[String(r.column_type)] ?? 'string' }))
      .filter((c) => !META_COLUMNS.includes(c.name));
  }
}

/**
 * Opens a run's current-state tables (in its state directory: kept with `--keep`) and starts their periodic steps;
 * they are closed with the run.
 */
export async function startCurrentState(run: Run, s3: S3Client): Promise<CurrentStateTables> {
  const tables = await CurrentStateTables.open({
    s3,
    bucket: LOCAL_NAMES.warehouseBucket,
    prefix: WAREHOUSE_PREFIX,
    dir: join(run.stateDir, 'current-state-objects'),
    database: join(run.stateDir, CURRENT_STATE_FILE),
  });
  run.cleanup.push('current-state tables', () => tables.close());
  tables.every(STEP_EVERY_MS);
  return tables;
}
