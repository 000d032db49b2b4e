/**
 * Verification of a drained run: the sinks against the source and against each other.
 *
 * - warehouse: the change log downloaded from S3 and rebuilt with DuckDB (`rebuildSql`: latest change per key by
 *   source order, truncates and deletes removed, TOAST-unchanged columns from the last change that had them) equals
 *   the source rows, column by column; a keyless table is the multiset its changes leave when replayed in source
 *   order; no change id is in the log twice.
 * - current state: every keyed table's current-state table (current-state.ts, kept by the MERGE statements of
 *   functions/current-state/merge-sql.ts) equals the source rows, compared as the warehouse's rebuild is. Keyless
 *   tables have none: "not applicable".
 * - cache: every source row of a keyed table is the Redis hash at `RedisCacheSink.rowKey`, and no other row hash
 *   exists under the run's prefix. Keyless tables are not cached (skip reason `no-key`): "not applicable".
 * - audit: every hash chain is intact; every change id the capture put into the broker is in the audit log exactly
 *   once and nothing else is; the audited ids are the warehouse's ids (both lanes saw the same stream); and, from
 *   the capture's own counters, the number of distinct changes is what it emitted (after a crash, re-emitted
 *   records make the broker hold more records than distinct changes, never fewer than the capture counted).
 */

import type { S3Client } from '@aws-sdk/client-s3';
import type { Redis } from 'ioredis';
import { RedisCacheSink } from '../../../functions/adapters/redis-cache-sink';
import { JsonDebeziumDecoder } from '../../../functions/core/decode';
import type {
  ColumnType,
  ColumnTypes,
  Decoder,
  KafkaRecord,
  Row,
  TableSchemaVersion,
} from '../../../functions/core/types';
import { verifyAuditLog } from '../../lib/audit-verify';
import { downloadChangeLog, openWarehouse, type Warehouse } from '../../lib/warehouse';
import type { BrokerRecord } from '../broker';
import { CurrentStateTables } from './current-state';
import { comparable, rowDifferences, stableJson } from './normalize';
import type { SourceTable } from './source-rows';

/** Mismatches listed per table and check. */
const SAMPLES = 3;

/** One table's comparison in one sink. */
export interface TableCheck {
  /**
   * `keyed` compares rows by key; `keyless` compares multisets; `not-applicable` was not compared (cache); `dropped`:
   * the table was dropped at the source during the run, so there is nothing to compare it with.
   */
  kind: 'keyed' | 'keyless' | 'not-applicable' | 'dropped';
  sourceRows: number;
  sinkRows: number;
  /** Source rows the sink does not have. */
  missing: number;
  /** Sink rows the source does not have. */
  extra: number;
  /** Rows both have, with different column values. */
  different: number;
  /** The first few mismatches, readable. */
  samples: string[];
}

export interface SinkCheck {
  checked: true;
  consistent: boolean;
  /** Rows compared (source rows of the tables compared). */
  rowsCompared: number;
  tables: Record<string, TableCheck>;
  problems: string[];
}

export interface WarehouseCheck extends SinkCheck {
  /** Parquet files and change rows in the downloaded change log. */
  files: number;
  changeRows: number;
  duplicateIds: number;
  /** Where the change log was downloaded (DuckDB reads it there). */
  dir: string;
}

export interface CurrentStateCheck extends SinkCheck {
  /** Steps that applied the change log (every few seconds during the run, and once after the drain). */
  steps: number;
  /** Change-log objects the steps applied, the changes in them, and the time their statements took (ms). */
  objects: number;
  changes: number;
  mergeMs: number;
  /** The DuckDB file holding the tables. */
  database: string;
}

export interface NotChecked {
  checked: false;
  consistent: false;
  reason: string;
}

export interface AuditCheck {
  checked: true;
  consistent: boolean;
  chains: number;
  entries: number;
  /** Distinct change ids in the audit log. */
  distinctChanges: number;
  /** Ids present more than once. */
  duplicateIds: number;
  /** Changes in the broker (what the capture produced) that are not audited. */
  missing: number;
  /** Audited ids that are not changes in the broker. */
  unexpected: number;
  /** Ids in the audit log but not the warehouse, and the other way round. */
  notInWarehouse: number;
  notInAudit: number;
  /** The capture's counters: change events emitted, summed over restarts. */
  captureEmitted: number;
  /** Change records in the broker (including re-emitted ones) and distinct changes among them. */
  brokerRecords: number;
  brokerDistinct: number;
  problems: string[];
}

export interface Checks {
  warehouse: WarehouseCheck | NotChecked;
  currentState: CurrentStateCheck | NotChecked;
  cache: SinkCheck | NotChecked;
  audit: AuditCheck | NotChecked;
}

/** What the capture put into the broker, decoded with the lanes' decoder. */
export interface StreamSummary {
  ids: Set<string>;
  /** Change records (tombstones and heartbeats excluded), re-emitted ones included. */
  records: number;
  /** Distinct snapshot reads and distinct streamed changes. */
  snapshotReads: number;
  streamed: number;
  /** Latest column types seen per table id. */
  columns: Map<string, ColumnTypes>;
  /** Whether each table's changes carry a row key. */
  keyed: Map<string, boolean>;
  /**
   * Schema versions seen per table (topic), by fingerprint: the columns and the lowest source order that carried it.
   * Records of one table arrive here partition by partition, so versions are put in order by that first order.
   */
  versions: Map<string, Map<string, { columns: TableSchemaVersion['columns']; firstOrder: string }>>;
}

/** A table's move from one schema version to the next, as the change stream showed it. */
export interface SchemaChangeSummary {
  /** Topic (`<prefix>.<schema>.<table>`). */
  table: string;
  from: string;
  to: string;
  /** Source order of the first change in the new version. */
  firstOrder: string;
  added: string[];
  removed: string[];
  /** Columns whose type, optionality, default or parameters changed. */
  changed: string[];
}

/** The schema changes in a stream summary, per table in source order. */
export function schemaChanges(summary: StreamSummary): SchemaChangeSummary[] {
  const out: SchemaChangeSummary[] = [];
  for (const [table, byFingerprint] of [...summary.versions].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const versions = [...byFingerprint].sort(([, a], [, b]) => (a.firstOrder < b.firstOrder ? -1 : 1));
    for (let i = 1; i < versions.length; i++) {
      const [from, before] = versions[i - 1] as (typeof versions)[number];
      const [to, after] = versions[i] as (typeof versions)[number];
      const old = new Map(before.columns.map((c) => [c.name, stableJson(c)]));
      const now = new Map(after.columns.map((c) => [c.name, stableJson(c)]));
      out.push({
        table,
        from,
        to,
        firstOrder: after.firstOrder,
        added: [...now.keys()].filter((c) => !old.has(c)),
        removed: [...old.keys()].filter((c) => !now.has(c)),
        changed: [...now].filter(([c, text]) => old.has(c) && old.get(c) !== text).map(([c]) => c),
      });
    }
  }
  return out;
}

/** A broker record as the lanes' decoder reads it (base64 key and value, as in the Lambda event). */
export function kafkaRecordOf(record: BrokerRecord): KafkaRecord {
  return {
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
    timestamp: record.timestamp,
    key: record.key?.toString('base64') ?? null,
    value: record.value?.toString('base64') ?? null,
  };
}

/** A summary of nothing yet. */
export function emptyStreamSummary(): StreamSummary {
  return {
    ids: new Set(),
    records: 0,
    snapshotReads: 0,
    streamed: 0,
    columns: new Map(),
    keyed: new Map(),
    versions: new Map(),
  };
}

/**
 * Folds change records into a {@link StreamSummary}, decoded with the lanes' decoder: as the runner releases records
 * every lane has committed (system.ts), then whatever is still in the broker at the end. A decoder that fetches
 * schemas first (Avro: `prepare`) decodes in the background, in arrival order; `settled()` waits for it.
 */
export class StreamSummarizer {
  private pending: KafkaRecord[] = [];
  private draining: Promise<void> | undefined;
  readonly summary: StreamSummary = emptyStreamSummary();

  constructor(private readonly decoder: Decoder = new JsonDebeziumDecoder()) {}

  add(record: BrokerRecord): void {
    if (record.value === null) return;
    const kafka = kafkaRecordOf(record);
    if (!this.decoder.prepare) {
      this.fold(kafka);
      return;
    }
    this.pending.push(kafka);
    this.draining ??= this.drain();
  }

  /** The summary once every record added so far is folded in. */
  async settled(): Promise<StreamSummary> {
    while (this.draining) await this.draining;
    return this.summary;
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.pending;
        this.pending = [];
        await this.decoder.prepare?.(batch);
        for (const record of batch) this.fold(record);
      }
    } finally {
      this.draining = undefined;
    }
  }

  private fold(record: KafkaRecord): void {
    const outcome = this.decoder.decode(record, 0);
    if (outcome.kind !== 'event') return;
    const { summary } = this;
    const event = outcome.event;
    summary.records++;
    if (outcome.columns) summary.columns.set(record.topic, outcome.columns);
    if (outcome.schema) {
      const versions = summary.versions.get(record.topic) ?? new Map();
      summary.versions.set(record.topic, versions);
      const seen = versions.get(outcome.schema.fingerprint);
      const order = event.source.order;
      if (!seen) versions.set(outcome.schema.fingerprint, { columns: outcome.schema.columns, firstOrder: order });
      else if (order < seen.firstOrder) seen.firstOrder = order;
    }
    if (event.op !== 't') summary.keyed.set(record.topic, event.key !== null);
    if (summary.ids.has(event.id)) return;
    summary.ids.add(event.id);
    if (event.op === 'r') summary.snapshotReads++;
    else summary.streamed++;
  }
}

function tableCheck(kind: TableCheck['kind']): TableCheck {
  return { kind, sourceRows: 0, sinkRows: 0, missing: 0, extra: 0, different: 0, samples: [] };
}

function note(check: TableCheck, text: string): void {
  if (check.samples.length < SAMPLES) check.samples.push(text);
}

/**
 * The source's current shape is the only right one: a column the sink holds that the source no longer has (dropped,
 * or the old name of a renamed column) is a difference unless it is empty, and so is a source column the sink lacks.
 * Where the sink has no notion of a missing column (the warehouse's union of Parquet schemas reads NULL there) only
 * the first rule can apply; the cache keeps every column of a row as a hash field, so both do (see verifyCache).
 */
function shapeDifferences(
  expected: Row,
  actual: Record<string, unknown>,
  options: { absentIsNull: boolean },
): Array<{ column: string; expected: string | null; actual: string | null }> {
  const out: Array<{ column: string; expected: string | null; actual: string | null }> = [];
  for (const [column, value] of Object.entries(actual)) {
    if (column.startsWith('_cdc_') || column in expected) continue;
    if (options.absentIsNull && (value === null || value === undefined)) continue;
    out.push({ column, expected: '(no such column)', actual: stableJson(value) });
  }
  if (!options.absentIsNull) {
    for (const column of Object.keys(expected)) {
      if (!(column in actual)) out.push({ column, expected: stableJson(expected[column]), actual: '(no such field)' });
    }
  }
  return out;
}

/** A check entry for a table dropped at the source during the run (not compared). */
function droppedCheck(): TableCheck {
  const check = tableCheck('dropped');
  note(check, 'dropped at the source during the run: not compared');
  return check;
}

function finish<T extends SinkCheck>(check: T): T {
  check.consistent =
    check.problems.length === 0 &&
    Object.values(check.tables).every((t) => t.missing === 0 && t.extra === 0 && t.different === 0);
  return check;
}

function describeDiff(diffs: ReturnType<typeof rowDifferences>): string {
  return diffs
    .slice(0, 3)
    .map((d) => `${d.column}: source ${clip(d.expected)}, sink ${clip(d.actual)}`)
    .join('; ');
}

function clip(text: string | null): string {
  if (text === null) return 'null';
  return text.length > 60 ? `${text.slice(0, 57)}…(${text.length} chars)` : text;
}

/** The comparable text of a whole row, over the given columns (for multisets of keyless rows). */
function rowText(row: Row, columns: readonly string[], types: ColumnTypes | undefined, side: 'canonical' | 'duckdb') {
  return stableJson(columns.map((c) => comparable(row[c], types?.get(c) as ColumnType | undefined, side)));
}

/** What every sink's check compares: the source rows, what the stream carried, and which tables. */
interface SinkCheckInput {
  source: Map<string, SourceTable>;
  stream: StreamSummary;
  /** Every table id to compare (source tables and tables with changes). */
  tables: readonly string[];
  /** Table ids dropped at the source during the run: reported as `dropped`, not compared. */
  dropped?: ReadonlySet<string>;
}

export interface VerifyWarehouseOptions extends SinkCheckInput {
  s3: S3Client;
  bucket: string;
  prefix: string;
  /** Folder to download the change log to (kept for exploring with --keep). */
  dir: string;
}

/** Compares the warehouse (change log rebuilt with DuckDB) with the source rows. Also returns the log's ids. */
export async function verifyWarehouse(
  options: VerifyWarehouseOptions,
): Promise<{ check: WarehouseCheck; ids: Map<string, number> }> {
  const files = await downloadChangeLog(options.s3, options.bucket, options.prefix, options.dir);
  return compareChangeLog(options, files);
}

/** {@link verifyWarehouse} over a change log already in `options.dir` (`files` Parquet files). */
export async function compareChangeLog(
  options: Omit<VerifyWarehouseOptions, 's3' | 'bucket' | 'prefix'>,
  files: number,
): Promise<{ check: WarehouseCheck; ids: Map<string, number> }> {
  const check: WarehouseCheck = {
    checked: true,
    consistent: false,
    rowsCompared: 0,
    tables: {},
    problems: [],
    files,
    changeRows: 0,
    duplicateIds: 0,
    dir: options.dir,
  };
  const ids = new Map<string, number>();
  if (files === 0 && options.tables.length === 0) return { check: finish(check), ids };
  const warehouse: Warehouse = await openWarehouse(options.dir);
  try {
    const present = new Set(files > 0 ? await warehouse.tables() : []);
    if (files > 0) {
      const rows = await warehouse.query(
        `SELECT _cdc_id AS id, count(*) AS n FROM read_parquet('${options.dir.replaceAll("'", "''")}/**/*.parquet', union_by_name = true, hive_partitioning = false) GROUP BY 1`,
      );
      for (const row of rows) {
        const n = Number(row.n);
        ids.set(String(row.id), n);
        check.changeRows += n;
        if (n > 1) check.duplicateIds++;
      }
      if (check.duplicateIds > 0) check.problems.push(`${check.duplicateIds} change ids are in the change log twice`);
    }
    for (const table of options.tables) {
      if (options.dropped?.has(table)) {
        check.tables[table] = droppedCheck();
        continue;
      }
      const source = options.source.get(table);
      // The source's types first: they are the current shape (a retyped column's last streamed type may be older).
      const types = source?.columns ?? options.stream.columns.get(table);
      const keyed = source ? source.rows.some((r) => r.key !== null) : (options.stream.keyed.get(table) ?? true);
      const result = tableCheck(keyed ? 'keyed' : 'keyless');
      check.tables[table] = result;
      result.sourceRows = source?.rows.length ?? 0;
      check.rowsCompared += result.sourceRows;
      if (!present.has(table)) {
        result.missing = result.sourceRows;
        if (result.missing > 0) note(result, `no change-log files for this table (${result.missing} source rows)`);
        continue;
      }
      if (keyed) compareKeyed(await warehouse.rebuild(table), source, types, result);
      else await compareKeyless(warehouse, table, source, types, result);
    }
  } finally {
    warehouse.close();
  }
  return { check: finish(check), ids };
}

/** A keyed table's rows in a sink read with DuckDB (each with its `_cdc_key`) against the source rows. */
function compareKeyed(
  rows: ReadonlyArray<Record<string, unknown>>,
  source: SourceTable | undefined,
  types: ColumnTypes | undefined,
  result: TableCheck,
): void {
  const rebuilt = new Map<string, Row>();
  for (const row of rows) {
    rebuilt.set(stableJson(JSON.parse(String(row._cdc_key))), row);
  }
  result.sinkRows = rebuilt.size;
  for (const { key, row } of source?.rows ?? []) {
    const keyText = stableJson(key);
    const actual = rebuilt.get(keyText);
    if (!actual) {
      result.missing++;
      note(result, `missing ${keyText}`);
      continue;
    }
    rebuilt.delete(keyText);
    const diffs = [
      ...rowDifferences(row, actual, types, 'duckdb'),
      ...shapeDifferences(row, actual, { absentIsNull: true }),
    ];
    if (diffs.length > 0) {
      result.different++;
      note(result, `${keyText} differs: ${describeDiff(diffs)}`);
    }
  }
  result.extra = rebuilt.size;
  for (const keyText of [...rebuilt.keys()].slice(0, SAMPLES)) note(result, `extra ${keyText}`);
}

/**
 * A keyless table: replay its changes in source order as a multiset of rows (create/read add the row, delete
 * removes one equal row, update removes the before image and adds the after image, truncate empties it).
 */
async function compareKeyless(
  warehouse: Warehouse,
  table: string,
  source: SourceTable | undefined,
  types: ColumnTypes | undefined,
  result: TableCheck,
): Promise<void> {
  // The source's current columns: a column dropped during the run is not part of any row any more.
  const columns = source?.rows[0] ? Object.keys(source.rows[0].row) : types ? [...types.keys()] : [];
  const bag = new Map<string, number>();
  const add = (text: string) => bag.set(text, (bag.get(text) ?? 0) + 1);
  const remove = (text: string, order: unknown) => {
    const n = bag.get(text) ?? 0;
    if (n === 0) {
      result.different++;
      note(result, `change ${String(order)} removes a row the replay does not have: ${clip(text)}`);
    } else if (n === 1) bag.delete(text);
    else bag.set(text, n - 1);
  };
  for (const change of await warehouse.changes(table)) {
    const op = String(change._cdc_op);
    if (op === 't') bag.clear();
    else if (op === 'r' || op === 'c') add(rowText(change, columns, types, 'duckdb'));
    else if (op === 'd') remove(rowText(change, columns, types, 'duckdb'), change._cdc_order);
    else if (op === 'u') {
      const before = change._cdc_before === null ? null : (JSON.parse(String(change._cdc_before)) as Row);
      if (before === null) {
        result.different++;
        note(result, `update ${String(change._cdc_order)} has no before image (needs REPLICA IDENTITY FULL)`);
      } else remove(rowText(before, columns, types, 'canonical'), change._cdc_order);
      add(rowText(change, columns, types, 'duckdb'));
    }
  }
  result.sinkRows = [...bag.values()].reduce((a, b) => a + b, 0);
  for (const { row } of source?.rows ?? []) {
    const text = rowText(row, columns, types, 'canonical');
    const n = bag.get(text) ?? 0;
    if (n === 0) {
      result.missing++;
      note(result, `missing row ${clip(text)}`);
    } else if (n === 1) bag.delete(text);
    else bag.set(text, n - 1);
  }
  for (const [text, n] of bag) {
    result.extra += n;
    note(result, `extra row ×${n} ${clip(text)}`);
  }
}

export interface VerifyCurrentStateOptions extends SinkCheckInput {
  currentState: CurrentStateTables;
  database: string;
  /** Why the last step failed, if it did: the tables may lag the change log. */
  failure?: string;
}

/** Compares every keyed table's current-state table with the source rows. */
export async function verifyCurrentState(options: VerifyCurrentStateOptions): Promise<CurrentStateCheck> {
  const { currentState } = options;
  const { steps, objects, changes, mergeMs } = currentState.stats;
  const check: CurrentStateCheck = {
    checked: true,
    consistent: false,
    rowsCompared: 0,
    tables: {},
    problems: options.failure ? [`applying the change log failed: ${options.failure}`] : [],
    steps,
    objects,
    changes,
    mergeMs: Math.round(mergeMs),
    database: options.database,
  };
  const present = new Set(currentState.tables());
  for (const table of options.tables) {
    if (options.dropped?.has(table)) {
      check.tables[table] = droppedCheck();
      continue;
    }
    const source = options.source.get(table);
    const keyed = source ? source.rows.some((r) => r.key !== null) : (options.stream.keyed.get(table) ?? true);
    const result = tableCheck(keyed ? 'keyed' : 'not-applicable');
    check.tables[table] = result;
    result.sourceRows = source?.rows.length ?? 0;
    if (!keyed) continue;
    check.rowsCompared += result.sourceRows;
    if (!present.has(table)) {
      result.missing = result.sourceRows;
      if (result.missing > 0) note(result, `no current-state table (${result.missing} source rows)`);
      continue;
    }
    const rows = await currentState.query(`SELECT * FROM ${CurrentStateTables.relation(table)}`);
    compareKeyed(rows, source, source?.columns ?? options.stream.columns.get(table), result);
  }
  return finish(check);
}

export interface VerifyCacheOptions extends SinkCheckInput {
  redis: Redis;
  prefix: string;
}

/** Compares the cache's row hashes with the source rows of every keyed table, and looks for rows that should not be. */
export async function verifyCache(options: VerifyCacheOptions): Promise<SinkCheck> {
  const { redis, prefix } = options;
  // Only rowKey is used: the layout is the sink's own. (The constructor registers its Lua commands; harmless.)
  const layout = new RedisCacheSink(redis, { prefix, tombstoneTtlSeconds: 1 });
  const check: SinkCheck = { checked: true, consistent: false, rowsCompared: 0, tables: {}, problems: [] };
  const expected = new Set<string>();
  const keyedTables: string[] = [];
  for (const table of options.tables) {
    if (options.dropped?.has(table)) {
      check.tables[table] = droppedCheck();
      continue;
    }
    const source = options.source.get(table);
    const keyed = source ? source.rows.some((r) => r.key !== null) : (options.stream.keyed.get(table) ?? true);
    if (!keyed) {
      const skipped = tableCheck('not-applicable');
      skipped.sourceRows = source?.rows.length ?? 0;
      check.tables[table] = skipped;
      continue;
    }
    keyedTables.push(table);
    const result = tableCheck('keyed');
    check.tables[table] = result;
    const rows = source?.rows ?? [];
    const types = source?.columns ?? options.stream.columns.get(table);
    result.sourceRows = rows.length;
    check.rowsCompared += rows.length;
    for (let start = 0; start < rows.length; start += 500) {
      const chunk = rows.slice(start, start + 500);
      const keys = chunk.map(({ key }) => layout.rowKey(table, key ?? {}));
      const pipeline = redis.pipeline();
      for (const key of keys) pipeline.hgetall(key);
      const replies = (await pipeline.exec()) ?? [];
      chunk.forEach(({ key, row }, i) => {
        const redisKey = keys[i] as string;
        expected.add(redisKey);
        const [error, hash] = replies[i] ?? [new Error('no reply'), null];
        if (error) throw error;
        const fields = hash as Record<string, string>;
        if (Object.keys(fields).length === 0) {
          result.missing++;
          note(result, `missing ${stableJson(key)}`);
          return;
        }
        result.sinkRows++;
        const actual = Object.fromEntries(Object.entries(fields).map(([c, v]) => [c, JSON.parse(v) as unknown]));
        const diffs = [
          ...rowDifferences(row, actual, types, 'canonical'),
          ...shapeDifferences(row, actual, { absentIsNull: false }),
        ];
        if (diffs.length > 0) {
          result.different++;
          note(result, `${stableJson(key)} differs: ${describeDiff(diffs)}`);
        }
      });
    }
  }
  // Rows in the cache that the source does not have: every row hash under the run's prefix is accounted for.
  const owners = keyedTables.map((table) => ({ table, start: `${prefix}:${table}:{` }));
  // Rows of a table dropped at the source stay in the cache (nothing tells the lanes a table is gone): not compared,
  // counted as the table's sink rows.
  const droppedOwners = [...(options.dropped ?? [])].map((table) => ({ table, start: `${prefix}:${table}:{` }));
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      if (key.endsWith(':v') || key.endsWith(':truncated') || expected.has(key)) continue;
      const gone = droppedOwners.find((o) => key.startsWith(o.start));
      if (gone) {
        const entry = check.tables[gone.table];
        if (entry && (await redis.type(key)) === 'hash') entry.sinkRows++;
        continue;
      }
      const owner = owners.find((o) => key.startsWith(o.start));
      if (!owner) {
        check.problems.push(`unexpected key ${key}`);
        continue;
      }
      const result = check.tables[owner.table] as TableCheck;
      if ((await redis.type(key)) !== 'hash') continue;
      result.extra++;
      result.sinkRows++;
      note(result, `extra ${key.slice(owner.start.length - 1)}`);
    }
  } while (cursor !== '0');
  if (check.problems.length > SAMPLES) check.problems.splice(SAMPLES, check.problems.length, '…');
  return finish(check);
}

export interface VerifyAuditOptions {
  s3: S3Client;
  bucket: string;
  prefix: string;
  stream: StreamSummary;
  /** Change ids of the warehouse's change log (null when the warehouse was not checked). */
  warehouseIds: Map<string, number> | null;
  captureEmitted: number;
  /** A capture was stopped without flushing: its counters may include records it never produced. */
  crashed: boolean;
}

/** Verifies the audit log's hash chains and that it holds every change exactly once. */
export async function verifyAudit(options: VerifyAuditOptions): Promise<AuditCheck> {
  const seen = new Map<string, number>();
  const report = await verifyAuditLog(options.s3, options.bucket, options.prefix, (_chain, events) => {
    for (const event of events) seen.set(event.id, (seen.get(event.id) ?? 0) + 1);
  });
  const { stream } = options;
  const problems: string[] = [];
  for (const chain of report.chains) {
    for (const problem of chain.problems.slice(0, SAMPLES))
      problems.push(`chain ${chain.chain}: ${stableJson(problem)}`);
  }
  let duplicateIds = 0;
  let unexpected = 0;
  for (const [id, n] of seen) {
    if (n > 1) {
      duplicateIds++;
      if (duplicateIds <= SAMPLES) problems.push(`audited ${n} times: ${id}`);
    }
    if (!stream.ids.has(id)) {
      unexpected++;
      if (unexpected <= SAMPLES) problems.push(`audited but not a captured change: ${id}`);
    }
  }
  let missing = 0;
  for (const id of stream.ids) {
    if (!seen.has(id)) {
      missing++;
      if (missing <= SAMPLES) problems.push(`captured but not audited: ${id}`);
    }
  }
  let notInWarehouse = 0;
  let notInAudit = 0;
  if (options.warehouseIds) {
    for (const id of seen.keys()) if (!options.warehouseIds.has(id)) notInWarehouse++;
    for (const id of options.warehouseIds.keys()) if (!seen.has(id)) notInAudit++;
    if (notInWarehouse + notInAudit > 0) {
      problems.push(
        `audit and warehouse disagree: ${notInWarehouse} only audited, ${notInAudit} only in the warehouse`,
      );
    }
  }
  // Independent of both sinks: the capture's own counters.
  if (options.crashed) {
    if (stream.records > options.captureEmitted) {
      problems.push(
        `the broker holds ${stream.records} change records, the captures counted ${options.captureEmitted}`,
      );
    }
  } else if (options.captureEmitted !== stream.ids.size || stream.records !== stream.ids.size) {
    problems.push(
      `the capture emitted ${options.captureEmitted} changes; the broker holds ${stream.records} records of ${stream.ids.size} distinct changes`,
    );
  }
  const entries = report.chains.reduce((sum, c) => sum + c.entries, 0);
  return {
    checked: true,
    consistent: report.ok && problems.length === 0,
    chains: report.chains.length,
    entries,
    distinctChanges: seen.size,
    duplicateIds,
    missing,
    unexpected,
    notInWarehouse,
    notInAudit,
    captureEmitted: options.captureEmitted,
    brokerRecords: stream.records,
    brokerDistinct: stream.ids.size,
    problems,
  };
}
