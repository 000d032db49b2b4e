/**
 * The dev connector: captures a PostgreSQL database with logical replication (pgoutput) and emits the records the
 * Debezium PostgreSQL connector 3.1 emits with JsonConverter and schemas.enable=true. A local stand-in for Debezium
 * on MSK Connect, not a replacement for it.
 *
 * Lifecycle (mirrors Debezium's PostgresConnectorTask / ChangeEventSourceCoordinator):
 * 1. ensure the publication (`FOR TABLES IN SCHEMA` when capturing schemas on PostgreSQL >= 15, so tables created
 *    later are streamed; otherwise FOR TABLE ...; missing tables are added; see `publication.ts`);
 * 2. load the offset; if no completed snapshot exists (snapshotMode=initial), (re)create the slot with an exported
 *    snapshot and read every table in one REPEATABLE READ transaction that imports it, so the snapshot is exactly the
 *    database at the slot's consistent point: nothing is missed or doubled between snapshot and stream;
 * 3. stream from the slot; on restart skip what the offset says was already handed on (Debezium's
 *    WalPositionLocator), so changes after the last saved offset are emitted again: at-least-once.
 *
 * Acknowledgement (PostgresStreamingChangeEventSource.commitOffset): records go to `produce` in order; after it
 * resolves the position is "produced"; every offsetFlushIntervalMs the produced offset is saved, and only then its
 * LSN (lsn_commit, else lsn_proc) is confirmed to the slot. A crash can therefore never lose a change.
 *
 * Seams: `snapshot.ts` (initial snapshot), `changes.ts` (pgoutput changes → records), `incremental.ts` (incremental
 * snapshots), `publication.ts`; this file keeps the lifecycle, the stream loop, positions and acknowledgement.
 */
import pg from 'pg';
import { Catalog, TEXT_TYPES } from './catalog';
import { ChangeTranslator } from './changes';
import { IncrementalSnapshots, splitCollection, WATERMARK_PREFIX } from './incremental';
import { maxLsn, parseLsn } from './lsn';
import type { SourceOffset } from './offsets';
import { type PgOutputMessage, parsePgOutput } from './pgoutput';
import { ensurePublication, ensureSignalTable } from './publication';
import { RecordFactory } from './records';
import { CapturedTables } from './relations';
import { ReplicationConnection, SESSION_OPTIONS } from './replication';
import { initialSnapshot } from './snapshot';
import type { TableSchema } from './table-schema';
import {
  type CaptureCounts,
  type CapturedRecord,
  type CaptureLogger,
  type CaptureOptions,
  type CaptureSignal,
  type CaptureStatus,
  type PostgresCapture,
  SourceError,
} from './types';

type Item =
  | { kind: 'wal'; lsn: bigint; payload: Buffer }
  | { kind: 'keepalive'; walEnd: bigint }
  | { kind: 'heartbeat' };

/** The connector's position, as PostgresOffsetContext tracks it. */
interface Position {
  lsn: bigint | null;
  lsnProc: bigint | null;
  lsnCommit: bigint | null;
  /** SourceInfo.lastCommitLsn: `sequence[0]` of the next events. */
  lastCommitLsn: bigint | null;
  txId: bigint | null;
  tsUs: bigint | null;
  messageType: string | null;
  snapshot: 'INITIAL' | null;
  lastSnapshotRecord: boolean;
  /** WAL end reported by a keepalive while no transaction was open: everything before it was handled. */
  idleLsn: bigint;
  /** Commit end or idle WAL end reached: what `flushed()` compares with the server's flush position. */
  processedLsn: bigint;
  /** The incremental snapshot context that goes with this position (Debezium's `incremental_snapshot_*`). */
  incremental: Partial<SourceOffset>;
  /** Counts context changes: an offset saved from a position of generation n carries every change up to n. */
  incrementalGen: number;
}

const QUIET: CaptureLogger = { info() {}, warn() {}, error() {} };
const STATUS_INTERVAL_MS = 10_000;
const PAUSE_AT = 20_000;
const RESUME_AT = 5_000;
const MESSAGE_TYPES = { insert: 'INSERT', update: 'UPDATE', delete: 'DELETE' } as const;

function toOffset(p: Position): SourceOffset {
  const o: SourceOffset = {};
  if (p.tsUs !== null) o.ts_usec = p.tsUs;
  if (p.txId !== null) o.txId = p.txId;
  if (p.lsn !== null) o.lsn = p.lsn;
  if (p.snapshot !== null) {
    o.snapshot = p.snapshot;
    o.last_snapshot_record = p.lastSnapshotRecord;
  }
  if (p.lsnProc !== null) o.lsn_proc = p.lsnProc;
  if (p.lsnCommit !== null) o.lsn_commit = p.lsnCommit;
  if (p.messageType !== null) o.messageType = p.messageType;
  IncrementalSnapshots.applyTo(o, p.incremental);
  return o;
}

/** The LSN that may be confirmed once `p` is saved: Debezium flushes lsn_commit, else lsn_proc. */
function ackFor(p: Position): bigint {
  if (p.snapshot !== null) return 0n;
  return maxLsn(p.lsnCommit ?? p.lsnProc ?? 0n, p.idleLsn);
}

class Capture implements PostgresCapture {
  private readonly log: CaptureLogger;
  private readonly prefix: string;
  private readonly maxBatch: number;
  private readonly meta: pg.Client;
  private readonly catalog: Catalog;
  private records!: RecordFactory;
  private translator!: ChangeTranslator;
  private readonly incremental: IncrementalSnapshots;
  private repl: ReplicationConnection | null = null;

  private readonly tables: CapturedTables;
  private readonly signalTable: { schema: string; name: string } | null;

  private phase: CaptureStatus['phase'] = 'starting';
  private consistentPoint: bigint | null = null;
  private pos: Position = {
    lsn: null,
    lsnProc: null,
    lsnCommit: null,
    lastCommitLsn: null,
    txId: null,
    tsUs: null,
    messageType: null,
    snapshot: null,
    lastSnapshotRecord: false,
    idleLsn: 0n,
    processedLsn: 0n,
    incremental: {},
    incrementalGen: 0,
  };
  /** Ask pgoutput for logical decoding messages (watermarks without a signal table). */
  private messages = false;
  private inTx = false;
  private txSkip = false;
  private txSkipUpTo: bigint | null = null;
  private resume: { commit: bigint | null; xid: bigint | null; lsnProc: bigint | null } | null = null;

  private queue: Array<Item | undefined> = [];
  private head = 0;
  private paused = false;
  private wake: (() => void) | null = null;
  private batch: CapturedRecord[] = [];
  private dirty = false;
  private produced: Position | null = null;
  private saved: Position | null = null;
  private savedOffset: SourceOffset | null = null;
  private ackedLsn = 0n;
  private receivedLsn = 0n;
  private offsetChain: Promise<void> = Promise.resolve();
  private saveError: Error | null = null;
  private loopDone: Promise<void> = Promise.resolve();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly progressWaiters = new Set<() => void>();
  private stopping = false;
  private killed = false;
  private failure: Error | null = null;
  private readonly counts: CaptureCounts = {
    read: 0,
    create: 0,
    update: 0,
    delete: 0,
    truncate: 0,
    tombstone: 0,
    heartbeat: 0,
    heartbeatAction: 0,
    skippedOnResume: 0,
    incrementalRead: 0,
  };

  constructor(private readonly opts: CaptureOptions) {
    this.log = opts.logger ?? QUIET;
    this.prefix = opts.topicPrefix;
    this.maxBatch = opts.maxBatchSize ?? 1000;
    this.meta = new pg.Client({
      connectionString: opts.connectionString,
      types: TEXT_TYPES,
      options: SESSION_OPTIONS,
      application_name: 'cdc-sync-capture-meta',
    });
    this.meta.on('error', (err) => this.fail(err));
    this.catalog = new Catalog(this.meta);
    this.tables = new CapturedTables(
      this.prefix,
      this.catalog,
      opts.tables
        ? { schemas: null, names: new Set(opts.tables.map((t) => (t.includes('.') ? t : `public.${t}`))) }
        : { schemas: new Set(opts.schemas ?? ['public']), names: null },
      this.log,
      opts.onTableAdded,
    );
    this.signalTable = opts.signalTable ? splitCollection(opts.signalTable) : null;
    this.incremental = new IncrementalSnapshots({
      connectionString: opts.connectionString,
      prefix: this.prefix,
      logger: this.log,
      signalTable: this.signalTable,
      options: opts,
      isCaptured: (oid) => this.tables.has(oid),
      contextChanged: (fields) => {
        this.pos.incremental = fields;
        this.pos.incrementalGen++;
        this.dirty = true;
        this.wake?.();
      },
      persist: () => this.persistIncremental(),
      fail: (err) => this.fail(err),
    });
  }

  // --- start ----------------------------------------------------------------------------------------------------

  async start(): Promise<void> {
    const { opts, meta } = this;
    await meta.connect();
    const walLevel = (await meta.query('SHOW wal_level')).rows[0]?.wal_level;
    if (walLevel !== 'logical') {
      throw new SourceError(
        `wal_level is ${walLevel} on the source database; logical decoding needs wal_level=logical ` +
          '(ALTER SYSTEM SET wal_level = logical, then restart the server)',
      );
    }
    const database = (await meta.query('SELECT current_database() AS db')).rows[0]?.db ?? '';
    const version = Number((await meta.query('SHOW server_version_num')).rows[0]?.server_version_num ?? 0);
    this.records = new RecordFactory(this.prefix, database);
    this.translator = new ChangeTranslator(
      this.records,
      this.counts,
      new Set(opts.skippedOperations ?? []),
      opts.tombstonesOnDelete ?? true,
      opts.heartbeatTable ?? null,
    );

    if (this.signalTable) this.tables.signalOid = await ensureSignalTable(meta, this.signalTable, this.log);
    const isSignal = (t: { schema: string; name: string }) =>
      this.signalTable !== null && t.schema === this.signalTable.schema && t.name === this.signalTable.name;
    const names = (
      opts.tables ? opts.tables.map(splitCollection) : await this.catalog.tablesInSchemas(opts.schemas ?? ['public'])
    ).filter((t) => !isSignal(t));
    // Capturing schemas may start with none of their tables yet: tables created later are streamed.
    if (names.length === 0 && (opts.tables || version < 150000)) throw new SourceError('no tables to capture');
    for (const oid of await this.catalog.tableOids(names)) this.tables.oids.add(oid);
    await ensurePublication(meta, {
      publication: opts.publicationName,
      schemas: opts.tables ? null : (opts.schemas ?? ['public']),
      tables: [...names, ...(this.signalTable ? [this.signalTable] : [])],
      serverVersion: version,
      logger: this.log,
    });
    if (!this.signalTable && version < 140000) {
      this.log.warn(
        'capture: PostgreSQL < 14 streams no logical decoding messages: incremental snapshots need a signalTable',
      );
    }
    this.messages = !this.signalTable && version >= 140000;

    const offset = await opts.offsets.load();
    const slot = (
      await meta.query(
        'SELECT database, plugin, active::text AS active FROM pg_replication_slots WHERE slot_name = $1',
        [opts.slotName],
      )
    ).rows[0];
    if (slot && (slot.plugin !== 'pgoutput' || slot.database !== database)) {
      throw new SourceError(`slot ${opts.slotName} exists for ${slot.plugin} on database ${slot.database}`);
    }
    const snapshotDone = offset !== null && (offset.snapshot === undefined || offset.last_snapshot_record === true);
    const needSnapshot = (opts.snapshotMode ?? 'initial') === 'initial' && !snapshotDone;

    let startLsn = 0n;
    if (needSnapshot) {
      // A snapshot that never completed is redone from scratch, like Debezium. Nothing was acknowledged while it ran,
      // so the old slot can go: a new one exports a snapshot consistent with its own start.
      if (slot) await this.dropSlot(opts.slotName);
      const repl = await this.connectReplication();
      const created = await repl.createSlot(opts.slotName, true);
      this.consistentPoint = parseLsn(created.consistentPoint);
      this.log.info(`capture: slot ${opts.slotName} created at ${created.consistentPoint}, snapshotting`);
      await this.snapshot(created.snapshotName ?? '', this.consistentPoint);
      startLsn = this.consistentPoint;
    } else {
      if (!slot) {
        const repl = await this.connectReplication();
        const created = await repl.createSlot(opts.slotName, false);
        this.consistentPoint = parseLsn(created.consistentPoint);
        if (offset) this.log.warn(`capture: slot ${opts.slotName} was missing and was recreated; changes may be lost`);
      }
      if (offset) this.restorePosition(offset);
    }

    this.loopDone = this.run();
    await this.startStreaming(startLsn);
    this.phase = 'streaming';
    this.incremental.start();
    const flushEvery = opts.offsetFlushIntervalMs ?? 1000;
    this.every(flushEvery, () => void this.flushOffsets());
    this.every(STATUS_INTERVAL_MS, () => this.repl?.sendStatus(this.ackedLsn));
    const heartbeatMs = opts.heartbeatIntervalMs ?? 0;
    if (heartbeatMs > 0) {
      this.every(heartbeatMs, () => {
        this.enqueue({ kind: 'heartbeat' });
        // Ask for a keepalive too: its WAL end lets the slot advance when nothing is captured (DBZ heartbeats).
        this.repl?.sendStatus(this.ackedLsn, true);
        void this.heartbeatAction();
      });
    }
  }

  /** Whether the heartbeat action runs (see {@link PostgresCapture.pauseHeartbeatAction}). */
  private heartbeatActionPaused = false;
  private heartbeatActionRunning = false;

  /**
   * Debezium's `heartbeat.action.query` (HeartbeatImpl with an action): one upsert of the heartbeat table per
   * heartbeat. A failure is logged and the next heartbeat tries again, as Debezium does (the capture goes on).
   */
  private async heartbeatAction(): Promise<void> {
    const table = this.opts.heartbeatTable;
    if (!table || this.heartbeatActionPaused || this.heartbeatActionRunning || this.phase !== 'streaming') return;
    this.heartbeatActionRunning = true;
    try {
      const { schema, name } = splitCollection(table);
      const target = `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(name)}`;
      await this.meta.query(
        `INSERT INTO ${target} (id, ts) VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET ts = EXCLUDED.ts`,
      );
    } catch (error) {
      this.log.warn(`capture: heartbeat action on ${table} failed: ${(error as Error).message}`);
    } finally {
      this.heartbeatActionRunning = false;
    }
  }

  pauseHeartbeatAction(paused: boolean): void {
    this.heartbeatActionPaused = paused;
  }

  private every(ms: number, fn: () => void): void {
    const timer = setInterval(fn, ms);
    timer.unref();
    this.timers.push(timer);
  }

  private async dropSlot(slot: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.meta.query('SELECT pg_drop_replication_slot($1)', [slot]);
        return;
      } catch (err) {
        // A walsender of a killed capture may still hold the slot for a moment.
        if (attempt >= 40 || !/is active/.test(String(err))) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  private async connectReplication(): Promise<ReplicationConnection> {
    const repl = new ReplicationConnection(this.opts.connectionString);
    await repl.connect((err) => this.fail(err));
    this.repl = repl;
    return repl;
  }

  private async startStreaming(startLsn: bigint): Promise<void> {
    const handlers = {
      onData: (lsn: bigint, payload: Buffer) => {
        if (lsn > this.receivedLsn) this.receivedLsn = lsn;
        this.enqueue({ kind: 'wal', lsn, payload: Buffer.from(payload) });
      },
      onKeepalive: (walEnd: bigint, replyRequested: boolean) => {
        if (walEnd > this.receivedLsn) this.receivedLsn = walEnd;
        if (replyRequested) this.repl?.sendStatus(this.ackedLsn);
        this.enqueue({ kind: 'keepalive', walEnd });
      },
      onError: (err: Error) => this.fail(err),
    };
    for (let attempt = 0; ; attempt++) {
      const repl = this.repl ?? (await this.connectReplication());
      try {
        await repl.start(this.opts.slotName, startLsn, this.opts.publicationName, handlers, {
          messages: this.messages,
        });
        return;
      } catch (err) {
        await repl.end();
        this.repl = null;
        if (attempt >= 40 || !/is active/.test(String(err))) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  private restorePosition(offset: SourceOffset): void {
    const p = this.pos;
    p.lsn = offset.lsn ?? null;
    p.lsnProc = offset.lsn_proc ?? null;
    p.lsnCommit = offset.lsn_commit ?? null;
    p.lastCommitLsn = offset.lsn_commit ?? null;
    p.txId = offset.txId ?? null;
    p.tsUs = offset.ts_usec ?? null;
    p.messageType = offset.messageType ?? null;
    const midTransaction = p.messageType !== null && p.messageType !== 'COMMIT';
    this.resume = {
      commit: p.lsnCommit,
      xid: midTransaction ? p.txId : null,
      lsnProc: midTransaction ? (p.lsnProc ?? p.lsn) : null,
    };
    this.incremental.restore(offset);
    p.incremental = this.incremental.offsetFields();
    this.produced = { ...p };
    this.saved = this.produced;
    this.savedOffset = offset;
    this.log.info(
      `capture: resuming after offset ${JSON.stringify(toOffset(p), (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`,
    );
  }

  // --- snapshot -------------------------------------------------------------------------------------------------

  private async snapshot(snapshotName: string, lsn: bigint): Promise<void> {
    this.phase = 'snapshot';
    await initialSnapshot(
      {
        meta: this.meta,
        catalog: this.catalog,
        prefix: this.prefix,
        records: this.records,
        oids: this.tables.oids,
        setTable: (oid, table) => this.tables.set(oid, table),
        emitRead: async (record, position) => {
          this.batch.push(record);
          this.counts.read++;
          Object.assign(this.pos, {
            lsn: position.lsn,
            txId: position.txId,
            tsUs: position.tsUs,
            snapshot: 'INITIAL',
            lastSnapshotRecord: position.final,
          });
          this.dirty = true;
          if (this.batch.length >= this.maxBatch) await this.flushBatch();
        },
      },
      snapshotName,
      lsn,
    );
    await this.flushBatch();
    // The snapshot is complete: from here the offset is a streaming one at the consistent point.
    Object.assign(this.pos, {
      lsn,
      snapshot: null,
      lastSnapshotRecord: false,
      processedLsn: lsn,
    });
    this.dirty = true;
    await this.flushBatch();
    await this.flushOffsets();
    if (this.saveError) throw this.saveError;
    this.log.info(`capture: snapshot done, ${this.counts.read} rows`);
  }

  // --- streaming ------------------------------------------------------------------------------------------------

  private enqueue(item: Item): void {
    if (this.stopping) return;
    this.queue.push(item);
    if (!this.paused && this.queue.length - this.head > PAUSE_AT) {
      this.paused = true;
      this.repl?.pause();
    }
    const wake = this.wake;
    if (wake) {
      this.wake = null;
      wake();
    }
  }

  private async run(): Promise<void> {
    try {
      while (!this.stopping) {
        if (this.head >= this.queue.length) {
          this.queue = [];
          this.head = 0;
          if (this.dirty) {
            await this.flushBatch();
            continue;
          }
          await new Promise<void>((resolve) => {
            this.wake = resolve;
          });
          continue;
        }
        const item = this.queue[this.head] as Item;
        this.queue[this.head++] = undefined;
        const pendingWork = this.handle(item);
        if (pendingWork) await pendingWork;
        if (this.batch.length >= this.maxBatch) await this.flushBatch();
        if (this.paused && this.queue.length - this.head < RESUME_AT) {
          this.paused = false;
          this.repl?.resume();
        }
      }
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private handle(item: Item): Promise<void> | undefined {
    if (item.kind === 'keepalive') {
      if (!this.inTx && item.walEnd > this.pos.idleLsn) {
        this.pos.idleLsn = item.walEnd;
        this.pos.processedLsn = maxLsn(this.pos.processedLsn, item.walEnd);
        this.dirty = true;
      }
      return undefined;
    }
    if (item.kind === 'heartbeat') {
      this.batch.push(this.records.heartbeat());
      this.counts.heartbeat++;
      this.dirty = true;
      return undefined;
    }
    const msg = parsePgOutput(item.payload);
    switch (msg.tag) {
      case 'begin':
        this.inTx = true;
        this.pos.txId = BigInt(msg.xid);
        this.pos.tsUs = msg.commitTimeUs;
        this.txSkip = this.resume?.commit != null && msg.finalLsn < this.resume.commit;
        this.txSkipUpTo =
          !this.txSkip && this.resume?.xid != null && this.resume.xid === this.pos.txId ? this.resume.lsnProc : null;
        return undefined;
      case 'commit': {
        const p = this.pos;
        p.lsn = msg.endLsn;
        p.lsnProc = msg.endLsn;
        p.lsnCommit = msg.endLsn;
        p.lastCommitLsn = msg.endLsn;
        p.messageType = 'COMMIT';
        p.processedLsn = maxLsn(p.processedLsn, msg.endLsn);
        this.inTx = false;
        this.txSkip = false;
        this.txSkipUpTo = null;
        this.dirty = true;
        return undefined;
      }
      case 'relation':
        return this.tables.onRelation(msg);
      case 'insert':
      case 'update':
      case 'delete':
        if (msg.relationId === this.tables.signalOid) return this.onSignalRow(item.lsn, msg);
        this.onRowChange(item.lsn, msg);
        return undefined;
      case 'truncate':
        this.onTruncate(item.lsn, msg.relationIds);
        return undefined;
      case 'message':
        if (msg.prefix !== WATERMARK_PREFIX) return undefined;
        this.advance(item.lsn, 'MESSAGE');
        if (this.skipOnResume(item.lsn)) return undefined;
        return this.onWatermark(item.lsn, msg.content.toString('utf8'));
      default:
        return undefined; // origin and type messages carry nothing Debezium emits
    }
  }

  /** Moves the position to a change at `lsn` (PostgresOffsetContext.updateWalPosition). */
  private advance(lsn: bigint, messageType: string): void {
    const p = this.pos;
    p.lsn = lsn;
    p.lsnProc = lsn;
    p.messageType = messageType;
    this.dirty = true;
  }

  /** The `source` block of an event at `lsn` in the current transaction. */
  private sourceAt(table: TableSchema, lsn: bigint, snapshot: 'false' | 'incremental'): string {
    const p = this.pos;
    return this.records.source(table, {
      tsUs: p.tsUs ?? 0n,
      snapshot,
      lastCommitLsn: p.lastCommitLsn,
      lsn,
      txId: p.txId,
    });
  }

  /**
   * A row of the signal table: `execute-snapshot` / `stop-snapshot` signals, and the incremental snapshot's own
   * window watermarks. Never emitted as a record.
   */
  private onSignalRow(
    lsn: bigint,
    msg: Extract<PgOutputMessage, { tag: 'insert' | 'update' | 'delete' }>,
  ): Promise<void> | undefined {
    this.advance(lsn, MESSAGE_TYPES[msg.tag]);
    const cols = this.tables.signalColumns;
    if (msg.tag !== 'insert' || !cols || this.skipOnResume(lsn)) return undefined;
    const text = (i: number) => {
      const v = msg.newTuple[i];
      return typeof v === 'string' ? v : null;
    };
    const id = text(cols.id) ?? '';
    const type = text(cols.type) ?? '';
    if (type === 'snapshot-window-open' || type === 'snapshot-window-close') return this.onWatermark(lsn, id);
    if (type !== 'execute-snapshot' && type !== 'stop-snapshot') {
      this.log.warn(`capture: signal ${id} of type ${type} is not supported, ignored`);
      return undefined;
    }
    let data: unknown;
    try {
      data = JSON.parse(text(cols.data) ?? '{}');
    } catch {
      this.log.warn(`capture: signal ${id}: data is not JSON, ignored`);
      return undefined;
    }
    this.incremental.signal({ id, type, data } as CaptureSignal);
    return undefined;
  }

  /** A watermark in the stream; at a chunk's high watermark its remaining rows become reads positioned here. */
  private async onWatermark(lsn: bigint, text: string): Promise<void> {
    const emission = this.incremental.onWatermark(text);
    if (!emission) return;
    const { schema, rows } = emission;
    const source = this.sourceAt(schema, lsn, 'incremental');
    for (const { key, row } of rows) {
      this.batch.push(this.records.change(schema, 'r', key, null, schema.rowJson(row), source));
      this.counts.read++;
      this.counts.incrementalRead++;
      if (this.batch.length >= this.maxBatch) await this.flushBatch();
    }
    this.incremental.emitted(rows.length);
  }

  private skipOnResume(lsn: bigint): boolean {
    if (this.txSkip || (this.txSkipUpTo !== null && lsn <= this.txSkipUpTo)) {
      this.counts.skippedOnResume++;
      return true;
    }
    return false;
  }

  private onRowChange(lsn: bigint, msg: Extract<PgOutputMessage, { tag: 'insert' | 'update' | 'delete' }>): void {
    this.advance(lsn, MESSAGE_TYPES[msg.tag]);
    const table = this.tables.get(msg.relationId);
    if (!table || this.skipOnResume(lsn)) return;
    this.incremental.onChange(msg.relationId, ChangeTranslator.keysOf(table, msg));
    this.translator.rowChange(table, msg, this.sourceAt(table, lsn, 'false'), this.batch);
  }

  private onTruncate(lsn: bigint, relationIds: number[]): void {
    this.advance(lsn, 'TRUNCATE');
    if (this.skipOnResume(lsn)) return;
    for (const id of relationIds) {
      const table = this.tables.get(id);
      if (!table) continue;
      this.incremental.onTruncate(id);
      this.translator.truncate(table, this.sourceAt(table, lsn, 'false'), this.batch);
    }
  }

  // --- handing on, offsets, acknowledgement -----------------------------------------------------------------

  private async flushBatch(): Promise<void> {
    const records = this.batch;
    this.batch = [];
    const position = { ...this.pos };
    this.dirty = false;
    if (records.length > 0) await this.opts.produce(records);
    if (this.killed) return;
    this.produced = position;
    this.notifyProgress();
  }

  private flushOffsets(): Promise<void> {
    this.offsetChain = this.offsetChain.then(() => this.saveProduced());
    return this.offsetChain;
  }

  private async saveProduced(): Promise<void> {
    const p = this.produced;
    if (p === null || p === this.saved || this.killed) return;
    const offset = toOffset(p);
    try {
      await this.opts.offsets.save(offset);
      this.saveError = null;
    } catch (err) {
      this.saveError = err as Error;
      this.log.warn(`capture: saving the offset failed: ${String(err)}`);
      return;
    }
    if (this.killed) return;
    this.saved = p;
    this.savedOffset = offset;
    const ack = ackFor(p);
    if (ack > this.ackedLsn) {
      this.ackedLsn = ack;
      this.repl?.sendStatus(ack);
    }
    this.notifyProgress();
  }

  /**
   * Resolves true once an offset carrying the incremental snapshot context as it is now is saved (the batch before it
   * handed on first, as always), false if the capture stops first.
   */
  private async persistIncremental(): Promise<boolean> {
    const gen = this.pos.incrementalGen;
    while ((this.saved?.incrementalGen ?? -1) < gen) {
      if (this.stopping || this.killed) return false;
      if ((this.produced?.incrementalGen ?? -1) >= gen) {
        await this.flushOffsets();
        if ((this.saved?.incrementalGen ?? -1) >= gen) break;
      } else {
        // The loop hands the batch on when it runs dry (dirty); under load, when the batch fills.
        this.dirty = true;
        const wake = this.wake;
        this.wake = null;
        wake?.();
      }
      await this.waitProgress(50);
    }
    return true;
  }

  private notifyProgress(): void {
    for (const waiter of this.progressWaiters) waiter();
    this.progressWaiters.clear();
  }

  private waitProgress(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.progressWaiters.delete(resolve);
        resolve();
      }, ms);
      this.progressWaiters.add(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private fail(err: Error): void {
    if (this.failure || this.stopping) return;
    err = sourceErrorOf(err, 'streaming') ?? err;
    this.failure = err;
    this.phase = 'failed';
    this.stopping = true;
    this.log.error(`capture: failed: ${err.message}`);
    for (const t of this.timers) clearInterval(t);
    this.repl?.destroy();
    void this.incremental.stop();
    this.wake?.();
    this.notifyProgress();
    this.opts.onError?.(err);
  }

  // --- public API -------------------------------------------------------------------------------------------

  async flushed(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const target = parseLsn(
      (await this.meta.query('SELECT pg_current_wal_flush_lsn()::text AS lsn')).rows[0]?.lsn ?? '0/0',
    );
    while ((this.produced?.processedLsn ?? 0n) < target) {
      if (this.failure) throw this.failure;
      if (Date.now() > deadline) throw new Error(`capture did not catch up with the server within ${timeoutMs} ms`);
      this.repl?.sendStatus(this.ackedLsn, true);
      await this.waitProgress(50);
    }
    await this.flushOffsets();
    if (this.saveError) throw this.saveError;
    if (this.failure) throw this.failure;
  }

  async stop(options: { flush?: boolean } = {}): Promise<void> {
    if (this.phase === 'stopped') return;
    for (const t of this.timers) clearInterval(t);
    const flush = (options.flush ?? true) && !this.failure;
    if (!flush) this.killed = true;
    this.stopping = true;
    this.wake?.();
    if (flush) {
      this.repl?.pause();
      await this.loopDone;
      if (!this.failure) {
        await this.flushBatch();
        await this.flushOffsets();
      }
      await this.repl?.end();
    } else {
      this.repl?.destroy();
    }
    await this.incremental.stop();
    await this.meta.end().catch(() => undefined);
    this.phase = 'stopped';
  }

  signal(signal: CaptureSignal): void {
    if (this.phase === 'stopped' || this.phase === 'failed') throw new Error(`capture is ${this.phase}`);
    this.incremental.signal(signal);
  }

  status(): CaptureStatus {
    return {
      phase: this.phase,
      slotName: this.opts.slotName,
      publicationName: this.opts.publicationName,
      consistentPoint: this.consistentPoint,
      receivedLsn: this.receivedLsn,
      producedLsn: this.produced?.processedLsn ?? 0n,
      savedOffset: this.savedOffset,
      acknowledgedLsn: this.ackedLsn,
      queued: this.queue.length - this.head,
      emitted: { ...this.counts },
      incrementalSnapshot: this.incremental.status(),
      ...(this.failure ? { error: this.failure.message } : {}),
    };
  }

  /** Releases connections after a failed start. */
  async abort(): Promise<void> {
    this.stopping = true;
    this.killed = true;
    this.wake?.();
    for (const t of this.timers) clearInterval(t);
    await this.repl?.end().catch(() => undefined);
    await this.incremental.stop();
    await this.meta.end().catch(() => undefined);
  }
}

/**
 * Starts capturing: ensures publication and slot, runs the initial snapshot when needed (the promise resolves after
 * it), then streams in the background until `stop()`.
 */
export async function startPostgresCapture(options: CaptureOptions): Promise<PostgresCapture> {
  const capture = new Capture(options);
  try {
    await capture.start();
  } catch (err) {
    await capture.abort();
    throw sourceErrorOf(err as Error, 'starting') ?? err;
  }
  return capture;
}

/**
 * The source database's part in a failure, as a {@link SourceError} that says what to change: a role without the
 * rights to capture (insufficient_privilege: creating the publication or the slot, reading a table for the
 * snapshot), or, while streaming, the server going away (its connection refused, reset or terminated: a shutdown, a
 * restart, an administrator's terminate). Anything else is the capture's own fault and stays as it is.
 */
function sourceErrorOf(err: Error, phase: 'starting' | 'streaming'): SourceError | undefined {
  if (err instanceof SourceError) return err;
  const code = (err as { code?: string }).code ?? '';
  if (code === '42501') {
    return new SourceError(
      `${err.message} — capturing needs a role with REPLICATION (or a superuser) that may create publications in ` +
        'the database (CREATE on it), owns the captured tables (to publish them) and can read them',
      { cause: err },
    );
  }
  const gone =
    code.startsWith('57P') || // admin_shutdown, crash_shutdown, cannot_connect_now, database_dropped
    code.startsWith('08') || // connection_exception
    ['ECONNREFUSED', 'ECONNRESET', 'EPIPE'].includes(code) ||
    /Connection terminated/.test(err.message);
  if (phase === 'streaming' && gone) {
    return new SourceError(`lost the connection to the source database: ${err.message}`, { cause: err });
  }
  return undefined;
}
