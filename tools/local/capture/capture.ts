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
 * Seams: `snapshot.ts` (initial snapshot), `stream.ts` (the stream loop: pgoutput messages → records, positions,
 * resume skipping), `changes.ts` (row changes → records), `handoff.ts` (produce, offsets, acknowledgement),
 * `timers.ts` (offset flushes, status updates, heartbeats), `position.ts`, `incremental.ts` (incremental
 * snapshots), `publication.ts`; this file keeps the lifecycle: start, stop, status, signals, failure.
 */
import pg from 'pg';
import { Catalog, TEXT_TYPES } from './catalog';
import { ChangeTranslator } from './changes';
import { Handoff } from './handoff';
import { IncrementalSnapshots, splitCollection } from './incremental';
import { parseLsn } from './lsn';
import type { SourceOffset } from './offsets';
import { initialPosition, restorePosition, toOffset } from './position';
import { ensurePublication, ensureSignalTable } from './publication';
import { RecordFactory } from './records';
import { CapturedTables } from './relations';
import { ReplicationConnection, SESSION_OPTIONS, type StreamHandlers } from './replication';
import { initialSnapshot } from './snapshot';
import { WalStream } from './stream';
import { CaptureTimers } from './timers';
import {
  type CaptureCounts,
  type CaptureLogger,
  type CaptureOptions,
  type CaptureSignal,
  type CaptureStatus,
  emptyCaptureCounts,
  type PostgresCapture,
  SourceError,
  sourceErrorOf,
} from './types';

const QUIET: CaptureLogger = { info() {}, warn() {}, error() {} };

class Capture implements PostgresCapture {
  private readonly log: CaptureLogger;
  private readonly prefix: string;
  private readonly meta: pg.Client;
  private readonly catalog: Catalog;
  private records!: RecordFactory;
  private readonly incremental: IncrementalSnapshots;
  private repl: ReplicationConnection | null = null;

  private readonly tables: CapturedTables;
  private readonly signalTable: { schema: string; name: string } | null;

  private phase: CaptureStatus['phase'] = 'starting';
  private consistentPoint: bigint | null = null;
  private readonly pos = initialPosition();
  private readonly handoff: Handoff;
  private readonly timers: CaptureTimers;
  /** Created once the database is known (records name it); null until then. */
  private stream: WalStream | null = null;
  /** Ask pgoutput for logical decoding messages (watermarks without a signal table). */
  private messages = false;

  private loopDone: Promise<void> = Promise.resolve();
  private stopping = false;
  private failure: Error | null = null;
  private readonly counts: CaptureCounts = emptyCaptureCounts();

  constructor(private readonly opts: CaptureOptions) {
    this.log = opts.logger ?? QUIET;
    this.prefix = opts.topicPrefix;
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
    this.handoff = new Handoff({
      position: this.pos,
      maxBatch: opts.maxBatchSize ?? 1000,
      produce: (records) => opts.produce(records),
      offsets: opts.offsets,
      logger: this.log,
      replication: () => this.repl,
      stopping: () => this.stopping,
      wake: () => this.stream?.wake(),
    });
    this.incremental = new IncrementalSnapshots({
      connectionString: opts.connectionString,
      prefix: this.prefix,
      logger: this.log,
      signalTable: this.signalTable,
      options: opts,
      isCaptured: (oid) => this.tables.has(oid),
      contextChanged: (fields) => this.handoff.contextChanged(fields),
      persist: () => this.handoff.persistIncremental(),
      fail: (err) => this.fail(err),
    });
    this.timers = new CaptureTimers({
      offsetFlushIntervalMs: opts.offsetFlushIntervalMs ?? 1000,
      heartbeatIntervalMs: opts.heartbeatIntervalMs ?? 0,
      heartbeatTable: opts.heartbeatTable ?? null,
      meta: this.meta,
      logger: this.log,
      streaming: () => this.phase === 'streaming',
      flushOffsets: () => void this.handoff.flushOffsets(),
      sendStatus: (replyRequested) => this.repl?.sendStatus(this.handoff.ackedLsn, replyRequested),
      heartbeat: () => this.stream?.heartbeat(),
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
    const stream = new WalStream({
      position: this.pos,
      handoff: this.handoff,
      records: this.records,
      translator: new ChangeTranslator(
        this.records,
        this.counts,
        new Set(opts.skippedOperations ?? []),
        opts.tombstonesOnDelete ?? true,
        opts.heartbeatTable ?? null,
      ),
      tables: this.tables,
      incremental: this.incremental,
      counts: this.counts,
      logger: this.log,
      replication: () => this.repl,
      stopping: () => this.stopping,
      fail: (err) => this.fail(err),
    });
    this.stream = stream;

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

    this.loopDone = stream.run();
    await this.startStreaming(stream.handlers(), startLsn);
    this.phase = 'streaming';
    this.incremental.start();
    this.timers.start();
  }

  pauseHeartbeatAction(paused: boolean): void {
    this.timers.pauseHeartbeatAction(paused);
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

  private async startStreaming(handlers: StreamHandlers, startLsn: bigint): Promise<void> {
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
    this.stream?.resumeFrom(restorePosition(this.pos, offset));
    this.incremental.restore(offset);
    this.pos.incremental = this.incremental.offsetFields();
    this.handoff.restored(offset);
    this.log.info(
      `capture: resuming after offset ${JSON.stringify(toOffset(this.pos), (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`,
    );
  }

  // --- snapshot -------------------------------------------------------------------------------------------------

  private async snapshot(snapshotName: string, lsn: bigint): Promise<void> {
    const { handoff } = this;
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
          handoff.batch.push(record);
          this.counts.read++;
          Object.assign(this.pos, {
            lsn: position.lsn,
            txId: position.txId,
            tsUs: position.tsUs,
            snapshot: 'INITIAL',
            lastSnapshotRecord: position.final,
          });
          handoff.dirty = true;
          if (handoff.full) await handoff.flushBatch();
        },
      },
      snapshotName,
      lsn,
    );
    await handoff.flushBatch();
    // The snapshot is complete: from here the offset is a streaming one at the consistent point.
    Object.assign(this.pos, {
      lsn,
      snapshot: null,
      lastSnapshotRecord: false,
      processedLsn: lsn,
    });
    handoff.dirty = true;
    await handoff.flushBatch();
    await handoff.flushOffsets();
    if (handoff.saveError) throw handoff.saveError;
    this.log.info(`capture: snapshot done, ${this.counts.read} rows`);
  }

  private fail(err: Error): void {
    if (this.failure || this.stopping) return;
    err = sourceErrorOf(err, 'streaming') ?? err;
    this.failure = err;
    this.phase = 'failed';
    this.stopping = true;
    this.log.error(`capture: failed: ${err.message}`);
    this.timers.clear();
    this.repl?.destroy();
    void this.incremental.stop();
    this.stream?.wake();
    this.handoff.notifyProgress();
    this.opts.onError?.(err);
  }

  // --- public API -------------------------------------------------------------------------------------------

  async flushed(timeoutMs = 30_000): Promise<void> {
    const { handoff } = this;
    const deadline = Date.now() + timeoutMs;
    const target = parseLsn(
      (await this.meta.query('SELECT pg_current_wal_flush_lsn()::text AS lsn')).rows[0]?.lsn ?? '0/0',
    );
    while (handoff.producedLsn < target) {
      if (this.failure) throw this.failure;
      if (Date.now() > deadline) throw new Error(`capture did not catch up with the server within ${timeoutMs} ms`);
      this.repl?.sendStatus(handoff.ackedLsn, true);
      await handoff.waitProgress(50);
    }
    await handoff.flushOffsets();
    if (handoff.saveError) throw handoff.saveError;
    if (this.failure) throw this.failure;
  }

  async stop(options: { flush?: boolean } = {}): Promise<void> {
    if (this.phase === 'stopped') return;
    this.timers.clear();
    const flush = (options.flush ?? true) && !this.failure;
    if (!flush) this.handoff.kill();
    this.stopping = true;
    this.stream?.wake();
    if (flush) {
      this.repl?.pause();
      await this.loopDone;
      if (!this.failure) {
        await this.handoff.flushBatch();
        await this.handoff.flushOffsets();
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
      receivedLsn: this.stream?.receivedLsn ?? 0n,
      producedLsn: this.handoff.producedLsn,
      savedOffset: this.handoff.savedOffset,
      acknowledgedLsn: this.handoff.ackedLsn,
      queued: this.stream?.queued ?? 0,
      emitted: { ...this.counts },
      incrementalSnapshot: this.incremental.status(),
      ...(this.failure ? { error: this.failure.message } : {}),
    };
  }

  /** Releases connections after a failed start. */
  async abort(): Promise<void> {
    this.stopping = true;
    this.handoff.kill();
    this.stream?.wake();
    this.timers.clear();
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
