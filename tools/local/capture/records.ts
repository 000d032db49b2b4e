/**
 * Kafka records in Debezium's shapes: change events (envelope + source block), tombstones, heartbeats and the
 * headers Debezium 3.1 adds. Texts are assembled with template strings; int64 values are bigint-derived strings.
 */
import { jsonString } from './json';
import { DEBEZIUM_VERSION, type TableSchema } from './table-schema';
import type { CapturedRecord } from './types';

/** Where an event happened, for the `source` block. */
export interface SourcePosition {
  /** Commit time (stream) or snapshot transaction time (snapshot), microseconds since the epoch. */
  tsUs: bigint;
  /** `source.snapshot`: "false" while streaming; "first"/"true"/"last"/... for snapshot reads. */
  snapshot: string;
  /** End LSN of the last committed transaction before this event (Debezium `lastCommitLsn`), or null. */
  lastCommitLsn: bigint | null;
  lsn: bigint;
  txId: bigint | null;
}

// The wall clock with nanosecond resolution: Debezium 3.x stamps the envelope with Instant.now() and writes ts_ns
// with all nine digits. hrtime gives the sub-millisecond part.
const HR_BASE = process.hrtime.bigint();
const WALL_BASE_NS = BigInt(Date.now()) * 1_000_000n;

/** Now, in nanoseconds since the epoch. */
export function nowNs(): bigint {
  return WALL_BASE_NS + (process.hrtime.bigint() - HR_BASE);
}

/** Builds records for one capture (one topic prefix, one database). */
export class RecordFactory {
  private readonly sourceStart: string;
  /** Debezium 3.1 DebeziumHeaderProducer.contextHeaders(), in its order. */
  private readonly contextHeaders: Array<[string, Buffer]>;
  private readonly heartbeatTopic: string;
  private readonly heartbeatKey: Buffer;

  constructor(
    readonly prefix: string,
    readonly database: string,
  ) {
    this.sourceStart = `{"version":"${DEBEZIUM_VERSION}","connector":"postgresql","name":${jsonString(prefix)},"ts_ms":`;
    this.contextHeaders = [
      ['__debezium.context.connectorLogicalName', Buffer.from(prefix)],
      ['__debezium.context.taskId', Buffer.from('0')],
      ['__debezium.context.connectorName', Buffer.from('postgresql')],
    ];
    this.heartbeatTopic = `__debezium-heartbeat.${prefix}`;
    this.heartbeatKey = Buffer.from(
      `{"schema":{"type":"struct","fields":[{"type":"string","optional":false,"field":"serverName"}],"optional":false,"name":"io.debezium.connector.common.ServerNameKey","version":1},"payload":{"serverName":${jsonString(prefix)}}}`,
    );
  }

  /** The `source` block (io.debezium.connector.postgresql.Source), fields in schema order. */
  source(table: TableSchema, pos: SourcePosition): string {
    const ms = pos.tsUs / 1000n;
    // SourceInfo.sequence(): a JSON array [lastCommitLsn, lsn] of decimal strings, itself sent as a string.
    const sequence = `[${pos.lastCommitLsn === null ? 'null' : `"${pos.lastCommitLsn}"`},"${pos.lsn}"]`;
    return (
      `${this.sourceStart}${ms},"snapshot":"${pos.snapshot}","db":${jsonString(this.database)},` +
      `"sequence":${jsonString(sequence)},"ts_us":${pos.tsUs},"ts_ns":${pos.tsUs}000` +
      `${table.sourceTableJson}${pos.txId === null ? 'null' : pos.txId},"lsn":${pos.lsn},"xmin":null}`
    );
  }

  /** A change event (`op` c/u/d/r/t). Truncate events have null before and after (JsonConverter writes nulls). */
  change(
    table: TableSchema,
    op: 'c' | 'u' | 'd' | 'r' | 't',
    keyPayload: string | null,
    before: string | null,
    after: string | null,
    source: string,
    extraHeaders?: Array<[string, Buffer]>,
  ): CapturedRecord {
    const ns = nowNs();
    const value =
      `${table.valuePrefix}{"before":${before ?? 'null'},"after":${after ?? 'null'},"source":${source},` +
      `"transaction":null,"op":"${op}","ts_ms":${ns / 1_000_000n},"ts_us":${ns / 1000n},"ts_ns":${ns}}}`;
    return {
      topic: table.topic,
      key: keyPayload === null || op === 't' ? null : Buffer.from(table.keyRecord(keyPayload)),
      value: Buffer.from(value),
      headers: extraHeaders ? [...this.contextHeaders, ...extraHeaders] : [...this.contextHeaders],
      timestamp: Number(ns / 1_000_000n),
    };
  }

  /** The tombstone after a delete: same key (and headers), null value, for log compaction. */
  tombstone(deleteRecord: CapturedRecord): CapturedRecord {
    return { ...deleteRecord, value: null, headers: [...deleteRecord.headers] };
  }

  /**
   * A heartbeat (Debezium HeartbeatImpl): topic `__debezium-heartbeat.<prefix>`, key ServerNameKey, value
   * `{"ts_ms":...}`, always partition 0.
   */
  heartbeat(): CapturedRecord {
    const ms = Date.now();
    return {
      topic: this.heartbeatTopic,
      key: this.heartbeatKey,
      value: Buffer.from(
        `{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"ts_ms"}],"optional":false,"name":"io.debezium.connector.common.Heartbeat","version":1},"payload":{"ts_ms":${ms}}}`,
      ),
      headers: [],
      timestamp: ms,
      partition: 0,
    };
  }

  /**
   * A header carrying a key struct (`__debezium.newkey` / `__debezium.oldkey`). Kafka Connect's default
   * SimpleHeaderConverter writes a Struct as `{"field":value,...}` (Values.convertToString).
   */
  keyHeader(name: '__debezium.newkey' | '__debezium.oldkey', keyPayload: string): [string, Buffer] {
    return [name, Buffer.from(keyPayload)];
  }
}
