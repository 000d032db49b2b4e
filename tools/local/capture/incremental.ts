/**
 * Incremental snapshots, as Debezium runs them (AbstractIncrementalSnapshotChangeEventSource with the DBLog
 * watermark algorithm, SignalBasedIncrementalSnapshotChangeEventSource for PostgreSQL):
 *
 * 1. an `execute-snapshot` signal (signal-table INSERT seen in the stream, or `signal()`) queues tables;
 * 2. per table, the largest primary key is noted; then, chunk by chunk in key order: a low watermark is written
 *    (window open), the next chunk is SELECTed into a buffer, a high watermark is written (window close);
 * 3. the stream goes on meanwhile. Every streamed change between the two watermarks whose key is in the chunk
 *    supersedes the buffered row (its event carries a state at least as new); when the high watermark arrives in the
 *    stream, the rows left are emitted as reads (`op: r`, `source.snapshot: incremental`) positioned at it.
 *
 * Unlike Debezium, the chunk SELECT does not block the stream: changes seen after the low watermark are collected as
 * "touched" keys and removed from the buffer at the high watermark, which is the same result, because the buffer is
 * complete before the high watermark is written and every change between the watermarks is seen before it.
 *
 * The context (tables left, last key produced, maximum key) is kept in the offset with Debezium's
 * `incremental_snapshot_*` keys, advanced only together with the chunk's reads, so a restart resumes after the last
 * chunk produced and saved. The next chunk is read only once the offset after a chunk's reads is saved, so a crash
 * re-reads at most one chunk (one offset save per chunk, small next to reading it). Two keys of our own ride along:
 * the rows scanned of the current table (so `total_rows_scanned` is the table's total across restarts) and its
 * relation OID (so a rename is recognised). A signal changes the context before anything is saved; no chunk is read
 * until an offset carrying it is saved (`IncrementalHost.persist`), so a crash can never leave reads produced for a
 * snapshot the restarted capture does not know about (the Kafka signal channel is not re-read; Debezium keeps its
 * position in the offset for this).
 *
 * A signal naming the table being scanned (a DDL hit it mid-scan and the lanes ask for it again) restarts that scan
 * from its first key at the next chunk boundary, rather than queueing a second scan after it: rows before the
 * boundary were read in the old shape and are read again, rows after it are read once, the scan's
 * TABLE_SCAN_COMPLETED comes only once every row was read after the signal (what a caller waiting for it needs), and
 * it costs at most one table scan instead of nearly two. A table only queued is read later in full anyway.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { Catalog, TEXT_TYPES } from './catalog';
import type { SourceOffset } from './offsets';
import { quoteIdent, SESSION_OPTIONS } from './replication';
import { buildTableSchema, type TableSchema } from './table-schema';
import type {
  CaptureLogger,
  CaptureOptions,
  CaptureSignal,
  IncrementalSnapshotStatus,
  SnapshotNotification,
} from './types';

/** Prefix of the logical decoding messages that carry watermarks when there is no signal table. */
export const WATERMARK_PREFIX = 'cdc-sync-watermark';

/** Tries of one chunk's statements before the table is given up as SQL_EXCEPTION. */
const CHUNK_ATTEMPTS = 3;

/** Debezium's TableScanCompletionStatus values. */
type ScanStatus = 'EMPTY' | 'NO_PRIMARY_KEY' | 'SKIPPED' | 'SQL_EXCEPTION' | 'SUCCEEDED' | 'UNKNOWN_SCHEMA';

type IncrementalOffset = Pick<
  SourceOffset,
  | 'incremental_snapshot_correlation_id'
  | 'incremental_snapshot_collections'
  | 'incremental_snapshot_primary_key'
  | 'incremental_snapshot_maximum_key'
  | 'incremental_snapshot_rows_scanned'
  | 'incremental_snapshot_table_oid'
>;

interface Collection {
  /** `schema.table` */
  id: string;
  filter?: string;
}

interface Context {
  correlationId: string;
  /** Tables left, the current one first. */
  collections: Collection[];
  /** Key texts of the last row of the last chunk produced (null before the table's first chunk). */
  lastKey: string[] | null;
  maxKey: string[] | null;
  /** Rows the chunks produced so far read of the current table (TABLE_SCAN_COMPLETED `total_rows_scanned`). */
  rowsScanned: number;
  /** Relation OID of the current table once its scan began: a rename keeps it, a drop loses it. */
  oid: number | null;
  /** A signal asked for the current table again: its scan starts over at the next chunk boundary. */
  rescan: boolean;
}

/** One chunk between its low and high watermark. */
interface Chunk {
  id: string;
  oid: number;
  collection: string;
  schema: TableSchema;
  /** The low watermark was seen in the stream: changes from here on supersede buffered rows. */
  opened: boolean;
  touched: Set<string>;
  truncated: boolean;
  /** Rows by key payload, in key order; set once the SELECT returned (before the high watermark is written). */
  rows: Map<string, Array<string | null>> | null;
  lastKey: string[] | null;
  /** The table's scan ends with this chunk. */
  complete: boolean;
}

/** Rows to emit as reads at a high watermark. */
export interface ChunkEmission {
  schema: TableSchema;
  rows: Array<{ key: string; row: Array<string | null> }>;
}

/** What the incremental snapshot needs from the capture. */
export interface IncrementalHost {
  connectionString: string;
  prefix: string;
  logger: CaptureLogger;
  /** The signal table, or null (watermarks as logical decoding messages). */
  signalTable: { schema: string; name: string } | null;
  options: Pick<CaptureOptions, 'incrementalChunkSize' | 'onNotification' | 'beforeHighWatermark'>;
  isCaptured(oid: number): boolean;
  /** The context changed (signal, chunk produced, table done): the next saved offset must carry `fields`. */
  contextChanged(fields: IncrementalOffset): void;
  /**
   * Resolves true once an offset carrying the context as it is now (or a later one) is saved; false when the capture
   * stops first.
   */
  persist(): Promise<boolean>;
  /** A failure the capture cannot go on from. */
  fail(err: Error): void;
}

const CONTEXT_KEYS = [
  'incremental_snapshot_correlation_id',
  'incremental_snapshot_collections',
  'incremental_snapshot_primary_key',
  'incremental_snapshot_maximum_key',
  'incremental_snapshot_rows_scanned',
  'incremental_snapshot_table_oid',
] as const;

/** Splits `schema.table` (Debezium's data-collection id for PostgreSQL). */
export function splitCollection(id: string): { schema: string; name: string } {
  const dot = id.indexOf('.');
  return dot < 0 ? { schema: 'public', name: id } : { schema: id.slice(0, dot), name: id.slice(dot + 1) };
}

function sameCollection(a: Collection, b: Collection): boolean {
  return a.id === b.id && (a.filter ?? '') === (b.filter ?? '');
}

/** The incremental snapshot engine of one capture. */
export class IncrementalSnapshots {
  private context: Context | null = null;
  private chunk: Chunk | null = null;
  private reading = false;
  private streaming = false;
  private stopped = false;
  private client: pg.Client | null = null;
  private catalog: Catalog | null = null;
  private notifications: Promise<void> = Promise.resolve();
  private readonly chunkSize: number;
  /** Key columns of the current table when its scan read its last chunk (a redefined key restarts the scan). */
  private keyColumns: string[] | null = null;
  /** Chunk statements of the current table the server refused in a row. */
  private failures = 0;
  private progress = { rowsRead: 0, rowsEmitted: 0, chunks: 0 };
  /**
   * Context changes that must be saved before the next chunk is read (signals, chunks produced), and how many an
   * offset is known to carry.
   */
  private unsaved = 0;
  private saved = 0;

  constructor(private readonly host: IncrementalHost) {
    this.chunkSize = host.options.incrementalChunkSize ?? 1024;
  }

  // --- context and offsets ----------------------------------------------------------------------------------

  /** Picks up a snapshot that was running when the offset was saved. */
  restore(offset: SourceOffset): void {
    const id = offset.incremental_snapshot_correlation_id;
    const collections = offset.incremental_snapshot_collections;
    if (id === undefined || collections === undefined) return;
    const list = (JSON.parse(collections) as Array<Record<string, string | undefined>>).map((c) => {
      const filter = c.incremental_snapshot_collections_additional_condition;
      return { id: c.incremental_snapshot_collections_id ?? '', ...(filter ? { filter } : {}) };
    });
    if (list.length === 0) return;
    const key = (text: string | undefined) => (text === undefined ? null : (JSON.parse(text) as string[]));
    const oid = Number(offset.incremental_snapshot_table_oid ?? Number.NaN);
    this.context = {
      correlationId: id,
      collections: list,
      lastKey: key(offset.incremental_snapshot_primary_key),
      maxKey: key(offset.incremental_snapshot_maximum_key),
      rowsScanned: Number(offset.incremental_snapshot_rows_scanned ?? 0) || 0,
      oid: Number.isInteger(oid) ? oid : null,
      rescan: false,
    };
    this.host.logger.info(`capture: resuming incremental snapshot ${id} at ${list[0]?.id}`);
  }

  /** The offset fields of the current context (all absent when no snapshot runs). */
  offsetFields(): IncrementalOffset {
    const ctx = this.context;
    if (!ctx) return {};
    const out: IncrementalOffset = {
      incremental_snapshot_correlation_id: ctx.correlationId,
      incremental_snapshot_collections: JSON.stringify(
        ctx.collections.map((c) => ({
          incremental_snapshot_collections_id: c.id,
          ...(c.filter ? { incremental_snapshot_collections_additional_condition: c.filter } : {}),
        })),
      ),
    };
    // A rescan asked for is saved as already begun: a restart before the boundary starts the table over too.
    if (ctx.rescan) return out;
    if (ctx.lastKey) out.incremental_snapshot_primary_key = JSON.stringify(ctx.lastKey);
    if (ctx.maxKey) out.incremental_snapshot_maximum_key = JSON.stringify(ctx.maxKey);
    if (ctx.rowsScanned > 0) out.incremental_snapshot_rows_scanned = String(ctx.rowsScanned);
    if (ctx.oid !== null) out.incremental_snapshot_table_oid = String(ctx.oid);
    return out;
  }

  /** Copies the context fields of `fields` onto `offset` (replacing any there). */
  static applyTo(offset: SourceOffset, fields: IncrementalOffset): void {
    for (const k of CONTEXT_KEYS) {
      const v = fields[k];
      if (v === undefined) delete offset[k];
      else offset[k] = v;
    }
  }

  private changed(): void {
    this.host.contextChanged(this.offsetFields());
  }

  status(): IncrementalSnapshotStatus | null {
    const ctx = this.context;
    if (!ctx) return null;
    return {
      id: ctx.correlationId,
      tables: ctx.collections.map((c) => c.id),
      currentTable: ctx.collections[0]?.id ?? null,
      rowsRead: this.progress.rowsRead,
      rowsEmitted: this.progress.rowsEmitted,
      chunks: this.progress.chunks,
    };
  }

  // --- signals ----------------------------------------------------------------------------------------------

  /** An execute-snapshot or stop-snapshot signal from either channel. */
  signal(signal: CaptureSignal): void {
    const kind = String(signal.data?.type ?? 'incremental').toLowerCase();
    if (kind !== 'incremental') {
      this.host.logger.warn(`capture: ignoring ${signal.type} signal ${signal.id} of type ${kind} (only incremental)`);
      return;
    }
    if (signal.type === 'stop-snapshot') {
      this.stopSnapshot(signal.data['data-collections'] ?? []);
      return;
    }
    if (signal.type !== 'execute-snapshot') return;
    const conditions = new Map(
      (signal.data['additional-conditions'] ?? []).map((c) => [c['data-collection'], c.filter] as const),
    );
    const requested: Collection[] = [];
    for (const id of signal.data['data-collections'] ?? []) {
      const filter = conditions.get(id);
      const c = filter ? { id, filter } : { id };
      if (!requested.some((r) => sameCollection(r, c))) requested.push(c);
    }
    if (requested.length === 0) {
      this.host.logger.warn(`capture: execute-snapshot signal ${signal.id} names no data-collections`);
      return;
    }
    const ctx = this.context;
    if (ctx) {
      // The same signal again (re-read from the WAL after a restart): already in the context.
      if (ctx.correlationId === signal.id) return;
      const [current, ...queued] = ctx.collections;
      for (const c of requested) {
        if (current && sameCollection(current, c)) {
          // Being scanned: chunks already read may have the old shape (see the file comment).
          ctx.rescan = true;
          this.host.logger.info(`capture: ${c.id} is scanned again from its start (signal ${signal.id})`);
        } else if (!queued.some((q) => sameCollection(q, c))) {
          ctx.collections.push(c);
        }
      }
      this.host.logger.info(`capture: incremental snapshot ${ctx.correlationId} extended by signal ${signal.id}`);
      this.unsaved++;
      this.changed();
      this.schedule();
      return;
    }
    this.context = {
      correlationId: signal.id,
      collections: requested,
      lastKey: null,
      maxKey: null,
      rowsScanned: 0,
      oid: null,
      rescan: false,
    };
    this.progress = { rowsRead: 0, rowsEmitted: 0, chunks: 0 };
    this.unsaved++;
    this.host.logger.info(`capture: incremental snapshot ${signal.id} of ${requested.map((c) => c.id).join(', ')}`);
    this.notify('STARTED', { data_collections: requested.map((c) => c.id).join(',') });
    this.changed();
    this.schedule();
  }

  private stopSnapshot(names: string[]): void {
    const ctx = this.context;
    if (!ctx) return;
    const current = ctx.collections[0]?.id;
    if (names.length === 0) {
      this.notify('ABORTED', {});
      this.context = null;
      this.chunk = null;
    } else {
      ctx.collections = ctx.collections.filter((c) => !names.includes(c.id));
      this.notify('ABORTED', { data_collections: names.join(',') });
      if (ctx.collections[0]?.id !== current) {
        this.chunk = null;
        this.resetTable(ctx);
      }
      if (ctx.collections.length === 0) this.context = null;
    }
    this.changed();
    this.schedule();
  }

  // --- stream side --------------------------------------------------------------------------------------------

  /** Streaming has started: a resumed or signalled snapshot may run from now. */
  start(): void {
    this.streaming = true;
    this.schedule();
  }

  /** A streamed change of `oid` with these keys: it supersedes the same rows of an open window. */
  onChange(oid: number, keys: string[]): void {
    const chunk = this.chunk;
    if (!chunk?.opened || chunk.oid !== oid) return;
    for (const k of keys) chunk.touched.add(k);
  }

  /** A streamed truncate of `oid`: nothing buffered for it may be emitted. */
  onTruncate(oid: number): void {
    const chunk = this.chunk;
    if (chunk?.opened && chunk.oid === oid) chunk.truncated = true;
  }

  /**
   * A watermark seen in the stream (`<chunkId>-open` / `<chunkId>-close`). Returns the reads to emit at a high
   * watermark of the current chunk; call `emitted()` once they are handed to the batch. Watermarks of other chunks
   * (a previous run's, seen again after a restart) are ignored.
   */
  onWatermark(text: string): ChunkEmission | null {
    const chunk = this.chunk;
    const m = /^(.*)-(open|close)$/.exec(text);
    if (!chunk || !m || m[1] !== chunk.id) return null;
    if (m[2] === 'open') {
      chunk.opened = true;
      return null;
    }
    const rows: ChunkEmission['rows'] = [];
    if (chunk.rows && !chunk.truncated) {
      for (const [key, row] of chunk.rows) if (!chunk.touched.has(key)) rows.push({ key, row });
    }
    return { schema: chunk.schema, rows };
  }

  /** The reads of the current chunk are in the batch: advance the context and read the next chunk. */
  emitted(count: number): void {
    const chunk = this.chunk;
    const ctx = this.context;
    if (!chunk || !ctx) return;
    this.chunk = null;
    this.progress.rowsEmitted += count;
    ctx.lastKey = chunk.lastKey;
    ctx.rowsScanned += chunk.rows?.size ?? 0;
    this.unsaved++;
    if (ctx.rescan) this.resetTable(ctx);
    else if (chunk.complete) this.tableDone(ctx, 'SUCCEEDED');
    this.changed();
    this.schedule();
  }

  // --- chunk reading ----------------------------------------------------------------------------------------

  private schedule(): void {
    if (!this.streaming || this.stopped || this.reading || this.chunk || !this.context) return;
    this.reading = true;
    void this.readNext()
      .catch((err: Error) => {
        if (!this.stopped) this.host.fail(err);
      })
      .finally(() => {
        this.reading = false;
        // A signal that came while reading (stop, or new tables after completion) may need another look.
        if (!this.chunk) this.schedule();
      });
  }

  private async connection(): Promise<{ client: pg.Client; catalog: Catalog }> {
    if (this.client && this.catalog) return { client: this.client, catalog: this.catalog };
    const client = new pg.Client({
      connectionString: this.host.connectionString,
      types: TEXT_TYPES,
      options: SESSION_OPTIONS,
      application_name: 'cdc-sync-capture-incremental',
    });
    client.on('error', (err) => {
      if (!this.stopped) this.host.fail(err);
    });
    await client.connect();
    this.client = client;
    this.catalog = new Catalog(client);
    return { client, catalog: this.catalog };
  }

  /** Reads chunks until one is windowed (its high watermark written) or the snapshot is over. */
  private async readNext(): Promise<void> {
    const { client, catalog } = await this.connection();
    for (;;) {
      const ctx = this.context;
      if (!ctx || this.stopped || this.chunk) return;
      if (this.saved < this.unsaved) {
        // No chunk is read before an offset carries the signal or the chunk before it (see the file comment).
        const upTo = this.unsaved;
        if (!(await this.host.persist())) return;
        this.saved = Math.max(this.saved, upTo);
        continue;
      }
      if (ctx.rescan) {
        // Between chunks (none is in flight here): the asked-for rescan starts now.
        this.resetTable(ctx);
        this.changed();
      }
      const collection = ctx.collections[0];
      if (!collection) {
        this.finish(ctx);
        return;
      }
      const { schema: schemaName, name } = splitCollection(collection.id);
      try {
        // By OID once the scan began, so a rename mid-scan is seen as one (by name the table would just be gone).
        const oid = ctx.oid ?? (await catalog.oidOf(schemaName, name));
        const table = oid === null ? null : await catalog.tableIfExists(oid);
        if (oid === null || table === null || !this.host.isCaptured(oid)) {
          // Debezium's "schema not found": the table was dropped (mid-scan too) or never captured; the rest goes on.
          this.host.logger.warn(`capture: incremental snapshot: ${collection.id} is not a captured table, skipped`);
          this.tableDone(ctx, 'UNKNOWN_SCHEMA');
          this.changed();
          continue;
        }
        const current = `${table.schema}.${table.name}`;
        if (current !== collection.id) {
          // Renamed mid-scan: streamed changes and reads now go to the new name's topic, which has none of the rows
          // read so far. The old name's scan ends here (SKIPPED); the table is scanned from its start as the new name.
          this.host.logger.warn(
            `capture: incremental snapshot: ${collection.id} was renamed ${current}, scanned again`,
          );
          this.tableDone(ctx, 'SKIPPED', { ...collection, id: current });
          this.changed();
          continue;
        }
        // The current shape, from the catalog now: the reads carry what streamed records of the table carry.
        const schema = await buildTableSchema(this.host.prefix, catalog, table);
        if (schema.keyIndexes.length === 0) {
          this.host.logger.warn(`capture: incremental snapshot: ${collection.id} has no primary key, skipped`);
          this.tableDone(ctx, 'NO_PRIMARY_KEY');
          this.changed();
          continue;
        }
        const keyNames = schema.keyIndexes.map((i) => schema.columns[i]?.name ?? '');
        if (ctx.lastKey && (this.keyColumns ?? keyNames).join('\0') !== keyNames.join('\0')) {
          // The primary key was redefined mid-scan: the last key read means nothing in the new key order.
          this.host.logger.warn(`capture: incremental snapshot: the key of ${collection.id} changed, scanned again`);
          this.resetTable(ctx);
          this.changed();
          continue;
        }
        if (ctx.lastKey && ctx.lastKey.length !== keyNames.length) {
          this.resetTable(ctx); // resumed with a key of another width: same as above
          this.changed();
          continue;
        }
        this.keyColumns = keyNames;
        const from = `${quoteIdent(schema.schema)}.${quoteIdent(schema.table)}`;
        const keyCols = keyNames.map(quoteIdent);
        const keyTypes = schema.keyIndexes.map((i) => {
          const t = catalog.type(schema.columns[i]?.typeOid ?? 0);
          return `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;
        });
        const filter = collection.filter ? `(${collection.filter})` : null;
        if (ctx.maxKey === null) {
          const { rows } = await client.query({
            text: `SELECT ${keyCols.join(', ')} FROM ${from}${filter ? ` WHERE ${filter}` : ''} ORDER BY ${keyCols.map((c) => `${c} DESC`).join(', ')} LIMIT 1`,
            rowMode: 'array',
          });
          if (this.context !== ctx || ctx.collections[0] !== collection) continue; // stopped meanwhile
          const max = rows[0] as unknown as string[] | undefined;
          if (!max) {
            this.tableDone(ctx, 'EMPTY');
            this.changed();
            continue;
          }
          ctx.maxKey = max;
          ctx.oid = oid;
          this.changed();
        }
        const maxKey = ctx.maxKey;
        const chunk: Chunk = {
          id: randomUUID(),
          oid,
          collection: collection.id,
          schema,
          opened: false,
          touched: new Set(),
          truncated: false,
          rows: null,
          lastKey: null,
          complete: false,
        };
        this.chunk = chunk;
        await this.watermark(client, chunk.id, 'open');

        const params: string[] = [];
        const tuple = (values: string[]) =>
          `(${values.map((v, i) => {
            params.push(v);
            return `$${params.length}::${keyTypes[i]}`;
          })})`;
        const where: string[] = [];
        if (ctx.lastKey) where.push(`(${keyCols.join(', ')}) > ${tuple(ctx.lastKey)}`);
        where.push(`(${keyCols.join(', ')}) <= ${tuple(maxKey)}`);
        if (filter) where.push(filter);
        const columns = schema.columns.map((c) => quoteIdent(c.name)).join(', ');
        const result = await client.query({
          text: `SELECT ${columns} FROM ${from} WHERE ${where.join(' AND ')} ORDER BY ${keyCols.join(', ')} LIMIT ${this.chunkSize}`,
          values: params,
          rowMode: 'array',
        });
        if (this.chunk !== chunk) return; // stopped meanwhile
        const selected = result.rows as unknown as Array<Array<string | null>>;
        this.failures = 0;
        if (selected.length === 0) {
          this.chunk = null;
          if (ctx.rescan) this.resetTable(ctx);
          else this.tableDone(ctx, ctx.rowsScanned === 0 ? 'EMPTY' : 'SUCCEEDED');
          this.changed();
          continue;
        }
        const rows = new Map<string, Array<string | null>>();
        for (const row of selected) rows.set(schema.keyPayload(row) ?? '', row);
        const last = selected[selected.length - 1] as Array<string | null>;
        chunk.lastKey = schema.keyIndexes.map((i) => last[i] ?? '');
        chunk.complete = selected.length < this.chunkSize || JSON.stringify(chunk.lastKey) === JSON.stringify(maxKey);
        chunk.rows = rows;
        this.progress.rowsRead += selected.length;
        this.progress.chunks++;
        this.notify('IN_PROGRESS', {
          data_collections: ctx.collections.map((c) => c.id).join(','),
          current_collection_in_progress: collection.id,
          maximum_key: maxKey[0] ?? '',
          last_processed_key: chunk.lastKey[0] ?? '',
        });
        await this.host.options.beforeHighWatermark?.({ table: collection.id, chunkId: chunk.id, rows: rows.size });
        if (this.chunk !== chunk) return;
        await this.watermark(client, chunk.id, 'close');
        return;
      } catch (err) {
        if (this.stopped) return;
        // A statement the server refused (a bad additional condition, a table dropped mid-scan): Debezium reports
        // the table as SQL_EXCEPTION and goes on with the next one. Connection-level failures are fatal.
        if (typeof (err as { code?: unknown }).code !== 'string' || (err as { code: string }).code.length !== 5) {
          throw err;
        }
        this.chunk = null;
        // A DDL between reading the table's shape and the chunk SELECT (a column renamed or dropped, the table
        // dropped) fails it too: the chunk is tried again from the catalog as it is then, a few times.
        if (++this.failures < CHUNK_ATTEMPTS) {
          this.host.logger.warn(
            `capture: incremental snapshot of ${collection.id}: ${(err as Error).message}, retrying`,
          );
          continue;
        }
        this.host.logger.warn(`capture: incremental snapshot of ${collection.id} failed: ${(err as Error).message}`);
        this.tableDone(ctx, 'SQL_EXCEPTION');
        this.changed();
      }
    }
  }

  /** Writes a watermark: a signal-table row (Debezium's insert_insert strategy) or a logical decoding message. */
  private async watermark(client: pg.Client, chunkId: string, kind: 'open' | 'close'): Promise<void> {
    const signal = this.host.signalTable;
    if (signal) {
      const now = new Date().toISOString();
      await client.query(
        `INSERT INTO ${quoteIdent(signal.schema)}.${quoteIdent(signal.name)} (id, type, data) VALUES ($1, $2, $3)`,
        [
          `${chunkId}-${kind}`,
          `snapshot-window-${kind}`,
          JSON.stringify(kind === 'open' ? { openWindowTimestamp: now } : { closeWindowTimestamp: now }),
        ],
      );
      return;
    }
    await client.query('SELECT pg_logical_emit_message(true, $1, $2)', [WATERMARK_PREFIX, `${chunkId}-${kind}`]);
  }

  /**
   * Ends the current table's scan with `status` (TABLE_SCAN_COMPLETED) and goes on with the next table; `next`, when
   * given, takes the ended table's place at the front (a renamed table scanned again under its new name).
   */
  private tableDone(ctx: Context, status: ScanStatus, next?: Collection): void {
    const done = ctx.collections.shift();
    if (next) ctx.collections = [next, ...ctx.collections.filter((c) => !sameCollection(c, next))];
    this.notify('TABLE_SCAN_COMPLETED', {
      data_collections: [done?.id ?? '', ...ctx.collections.map((c) => c.id)].join(','),
      data_collection: done?.id ?? '',
      scanned_collection: done?.id ?? '',
      total_rows_scanned: String(ctx.rowsScanned),
      status,
    });
    this.resetTable(ctx);
    if (ctx.collections.length === 0) this.finish(ctx);
  }

  /** Forgets how far the current table's scan got: it (or the next table) starts from its first key. */
  private resetTable(ctx: Context): void {
    ctx.lastKey = null;
    ctx.maxKey = null;
    ctx.rowsScanned = 0;
    ctx.oid = null;
    ctx.rescan = false;
    this.keyColumns = null;
    this.failures = 0;
  }

  private finish(ctx: Context): void {
    if (this.context !== ctx) return;
    this.notify('COMPLETED', {});
    this.host.logger.info(
      `capture: incremental snapshot ${ctx.correlationId} completed, ${this.progress.rowsEmitted} rows emitted`,
    );
    this.context = null;
    this.changed();
  }

  private notify(type: string, data: Record<string, string>): void {
    const id = this.context?.correlationId ?? '';
    const handler = this.host.options.onNotification;
    if (!handler) return;
    const n: SnapshotNotification = {
      id,
      aggregate_type: 'Incremental Snapshot',
      type,
      additional_data: { ...data, connector_name: this.host.prefix },
      timestamp: String(Date.now()),
    };
    // In order, without holding up the stream; a failing handler is logged, not fatal.
    this.notifications = this.notifications
      .then(() => handler(n))
      .catch((err) => this.host.logger.warn(`capture: onNotification failed: ${String(err)}`));
  }

  /** Stops reading chunks and closes the connection. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.chunk = null;
    await this.client?.end().catch(() => undefined);
  }
}
