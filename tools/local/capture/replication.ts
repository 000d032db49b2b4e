/**
 * The streaming replication protocol on top of node-postgres' replication connection (`replication: 'database'`):
 * slot creation with an exported snapshot, START_REPLICATION with pgoutput, XLogData / keepalive frames, and
 * standby status updates (the only way the slot's confirmed_flush_lsn moves). Acknowledgement is entirely the
 * caller's decision: nothing here acknowledges on its own.
 * Protocol: https://www.postgresql.org/docs/current/protocol-replication.html
 */
import pg from 'pg';
import { formatLsn, PG_EPOCH_OFFSET_US } from './lsn';

/** Session settings that make PostgreSQL's text output the format the codecs parse. */
export const SESSION_OPTIONS =
  '-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=postgres -c extra_float_digits=1 -c bytea_output=hex';

export interface StreamHandlers {
  /** One XLogData frame: WAL start of the message and the pgoutput payload. */
  onData(lsn: bigint, payload: Buffer): void;
  /** A primary keepalive: the server's WAL end (everything before it was sent) and whether it wants a reply. */
  onKeepalive(walEnd: bigint, replyRequested: boolean): void;
  /** The connection failed or the server ended the stream. */
  onError(err: Error): void;
}

interface PgConnectionInternals {
  on(event: 'copyData', listener: (msg: { chunk: Buffer }) => void): void;
  once(event: 'replicationStart', listener: () => void): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
  stream: { pause(): void; resume(): void; destroy(): void };
}

/** Quotes an identifier for replication commands and SQL. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A logical replication connection. */
export class ReplicationConnection {
  private readonly client: pg.Client;
  private streaming: Promise<unknown> | null = null;
  private ended = false;

  constructor(connectionString: string) {
    this.client = new pg.Client({
      connectionString,
      // node-postgres forwards `replication` as a startup parameter (types lag behind).
      ...({ replication: 'database' } as object),
      options: SESSION_OPTIONS,
      application_name: 'cdc-sync-capture',
    });
  }

  private get connection(): PgConnectionInternals {
    return (this.client as unknown as { connection: PgConnectionInternals }).connection;
  }

  async connect(onError: (err: Error) => void): Promise<void> {
    this.client.on('error', (err) => {
      if (!this.ended) onError(err);
    });
    await this.client.connect();
  }

  /**
   * Creates a pgoutput slot. With `exportSnapshot` the result names a snapshot that another session can import
   * with SET TRANSACTION SNAPSHOT; it stays valid until this connection runs its next command, which is what makes
   * the initial snapshot line up exactly with the slot's consistent point.
   */
  async createSlot(
    slot: string,
    exportSnapshot: boolean,
  ): Promise<{ consistentPoint: string; snapshotName: string | null }> {
    // The pre-PG15 keyword syntax is still accepted by newer servers, so one form covers PG 10+.
    const { rows } = await this.client.query(
      `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput ${exportSnapshot ? 'EXPORT_SNAPSHOT' : 'NOEXPORT_SNAPSHOT'}`,
    );
    const row = rows[0] as { consistent_point: string; snapshot_name: string | null } | undefined;
    if (!row) throw new Error(`CREATE_REPLICATION_SLOT ${slot} returned nothing`);
    return { consistentPoint: row.consistent_point, snapshotName: row.snapshot_name };
  }

  /**
   * Starts streaming; resolves once the server switched to CopyBoth mode. `messages` asks pgoutput for logical
   * decoding messages (`pg_logical_emit_message`, PostgreSQL >= 14), which carry the incremental snapshot's
   * watermarks when there is no signal table.
   */
  async start(
    slot: string,
    startLsn: bigint,
    publication: string,
    handlers: StreamHandlers,
    options: { messages?: boolean } = {},
  ): Promise<void> {
    const conn = this.connection;
    conn.on('copyData', ({ chunk }) => {
      const kind = chunk[0];
      if (kind === 0x77 /* w: XLogData */) {
        handlers.onData(chunk.readBigUInt64BE(1), chunk.subarray(25));
      } else if (kind === 0x6b /* k: primary keepalive */) {
        handlers.onKeepalive(chunk.readBigUInt64BE(1), chunk[17] === 1);
      }
    });
    const started = new Promise<void>((resolve) => conn.once('replicationStart', resolve));
    const pubNames = quoteIdent(publication).replace(/'/g, "''");
    this.streaming = this.client
      .query(
        `START_REPLICATION SLOT ${quoteIdent(slot)} LOGICAL ${formatLsn(startLsn)} ` +
          `(proto_version '1', publication_names '${pubNames}'${options.messages ? ", messages 'true'" : ''})`,
      )
      .then(
        () => {
          if (!this.ended) handlers.onError(new Error('the server ended the replication stream'));
        },
        (err: Error) => {
          if (!this.ended) handlers.onError(err);
        },
      );
    await Promise.race([
      started,
      this.streaming.then(() => {
        throw new Error(`START_REPLICATION on slot ${slot} failed`);
      }),
    ]);
  }

  /**
   * Standby status update. PostgreSQL moves a logical slot's confirmed_flush_lsn to `flushLsn` (0 leaves it);
   * `replyRequested` asks for an immediate keepalive, which reports how far the server has sent WAL.
   */
  sendStatus(flushLsn: bigint, replyRequested = false): void {
    if (this.ended || !this.streaming) return;
    const msg = Buffer.alloc(34);
    msg[0] = 0x72; // r
    msg.writeBigUInt64BE(flushLsn, 1); // written
    msg.writeBigUInt64BE(flushLsn, 9); // flushed
    msg.writeBigUInt64BE(flushLsn, 17); // applied
    msg.writeBigInt64BE(BigInt(Date.now()) * 1000n - PG_EPOCH_OFFSET_US, 25);
    msg[33] = replyRequested ? 1 : 0;
    this.connection.sendCopyFromChunk(msg);
  }

  pause(): void {
    this.connection.stream.pause();
  }

  resume(): void {
    this.connection.stream.resume();
  }

  /** Runs a replication command or query (before streaming). */
  query(text: string): Promise<pg.QueryResult> {
    return this.client.query(text);
  }

  /** Ends the stream politely (CopyDone) and closes the connection. */
  async end(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    if (this.streaming) {
      try {
        // Reading must go on for the server's CopyDone/CommandComplete to arrive.
        this.connection.stream.resume();
        this.connection.endCopyFrom();
        await Promise.race([this.streaming, new Promise((r) => setTimeout(r, 2000).unref())]);
      } catch {
        // closing anyway
      }
    }
    await this.client.end().catch(() => undefined);
  }

  /** Drops the connection without a goodbye, like a crashed process would. */
  destroy(): void {
    this.ended = true;
    this.connection.stream.destroy();
  }
}
