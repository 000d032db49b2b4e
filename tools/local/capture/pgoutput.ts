/**
 * A parser for the pgoutput logical replication protocol, version 1
 * (https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html).
 *
 * Why not pg-logical-replication's PgoutputPlugin: it runs every column through node-postgres' type parsers (a
 * `timestamp` becomes a JS Date and loses its microseconds, `jsonb` is parsed and re-serialised, `int8` precision
 * depends on the parser), it turns the "unchanged TOAST" marker into `undefined`, and its service acknowledges the
 * last *received* LSN on a timer. Debezium needs the raw text of each column, the TOAST marker and acknowledgement
 * under our control, so the protocol is read here and the stream is handled in `replication.ts`.
 */
import { PG_EPOCH_OFFSET_US } from './lsn';

/** Marker for a column whose TOASTed value did not change (pgoutput sends kind `u` without data). */
export const UNCHANGED_TOAST: unique symbol = Symbol('unchanged-toast');

/** One column of a tuple: the text-format value, SQL NULL, or the unchanged-TOAST marker. */
export type TupleValue = string | null | typeof UNCHANGED_TOAST;
export type Tuple = TupleValue[];

export interface RelationColumn {
  /** Part of the replica identity (flag bit 1). */
  key: boolean;
  name: string;
  typeOid: number;
  typmod: number;
}

export type PgOutputMessage =
  | { tag: 'begin'; finalLsn: bigint; commitTimeUs: bigint; xid: number }
  | { tag: 'commit'; commitLsn: bigint; endLsn: bigint; commitTimeUs: bigint }
  | { tag: 'origin'; originLsn: bigint; name: string }
  | {
      tag: 'relation';
      relationId: number;
      schema: string;
      name: string;
      replicaIdentity: 'd' | 'n' | 'f' | 'i';
      columns: RelationColumn[];
    }
  | { tag: 'type'; typeOid: number; schema: string; name: string }
  | { tag: 'insert'; relationId: number; newTuple: Tuple }
  | { tag: 'update'; relationId: number; oldKind: 'K' | 'O' | null; oldTuple: Tuple | null; newTuple: Tuple }
  | { tag: 'delete'; relationId: number; oldKind: 'K' | 'O'; oldTuple: Tuple }
  | { tag: 'truncate'; relationIds: number[]; cascade: boolean; restartIdentity: boolean }
  | { tag: 'message'; transactional: boolean; lsn: bigint; prefix: string; content: Buffer };

class Reader {
  pos = 0;
  constructor(private readonly buf: Buffer) {}

  u8(): number {
    return this.buf.readUInt8(this.pos++);
  }
  i16(): number {
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  i32(): number {
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u32(): number {
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  i64(): bigint {
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  cstring(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new Error('pgoutput: unterminated string');
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }
  bytes(n: number): Buffer {
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  text(n: number): string {
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  tuple(): Tuple {
    const n = this.i16();
    const values: Tuple = new Array(n);
    for (let i = 0; i < n; i++) {
      const kind = this.u8();
      if (kind === 0x74 /* t */) values[i] = this.text(this.i32());
      else if (kind === 0x6e /* n */) values[i] = null;
      else if (kind === 0x75 /* u */) values[i] = UNCHANGED_TOAST;
      // We never ask for binary mode, so `b` is not expected; keep its bytes as latin1 to stay in sync.
      else if (kind === 0x62 /* b */) values[i] = this.bytes(this.i32()).toString('latin1');
      else throw new Error(`pgoutput: unknown tuple data kind ${kind}`);
    }
    return values;
  }
}

/** Protocol timestamps are microseconds since 2000-01-01; returns microseconds since the Unix epoch. */
function unixMicros(pgMicros: bigint): bigint {
  return pgMicros + PG_EPOCH_OFFSET_US;
}

/** Parses one pgoutput message (the payload of an XLogData frame). */
export function parsePgOutput(buf: Buffer): PgOutputMessage {
  const r = new Reader(buf);
  const tag = r.u8();
  switch (tag) {
    case 0x42 /* B */:
      return { tag: 'begin', finalLsn: r.u64(), commitTimeUs: unixMicros(r.i64()), xid: r.u32() };
    case 0x43 /* C */:
      {
        r.u8(); // flags, unused
        return { tag: 'commit', commitLsn: r.u64(), endLsn: r.u64(), commitTimeUs: unixMicros(r.i64()) };
      }
    case 0x4f /* O */:
      return { tag: 'origin', originLsn: r.u64(), name: r.cstring() };
    case 0x52 /* R */:
      {
        const relationId = r.u32();
        const schema = r.cstring();
        const name = r.cstring();
        const replicaIdentity = String.fromCharCode(r.u8()) as 'd' | 'n' | 'f' | 'i';
        const n = r.i16();
        const columns: RelationColumn[] = [];
        for (let i = 0; i < n; i++) {
          const flags = r.u8();
          columns.push({ key: (flags & 1) === 1, name: r.cstring(), typeOid: r.u32(), typmod: r.i32() });
        }
        return { tag: 'relation', relationId, schema, name, replicaIdentity, columns };
      }
    case 0x59 /* Y */:
      return { tag: 'type', typeOid: r.u32(), schema: r.cstring(), name: r.cstring() };
    case 0x49 /* I */:
      {
        const relationId = r.u32();
        r.u8(); // 'N'
        return { tag: 'insert', relationId, newTuple: r.tuple() };
      }
    case 0x55 /* U */:
      {
        const relationId = r.u32();
        let kind = r.u8();
        let oldKind: 'K' | 'O' | null = null;
        let oldTuple: Tuple | null = null;
        if (kind === 0x4b /* K */ || kind === 0x4f /* O */) {
          oldKind = kind === 0x4b ? 'K' : 'O';
          oldTuple = r.tuple();
          kind = r.u8();
        }
        if (kind !== 0x4e /* N */) throw new Error(`pgoutput: unexpected update submessage ${kind}`);
        return { tag: 'update', relationId, oldKind, oldTuple, newTuple: r.tuple() };
      }
    case 0x44 /* D */:
      {
        const relationId = r.u32();
        const kind = r.u8();
        if (kind !== 0x4b && kind !== 0x4f) throw new Error(`pgoutput: unexpected delete submessage ${kind}`);
        return { tag: 'delete', relationId, oldKind: kind === 0x4b ? 'K' : 'O', oldTuple: r.tuple() };
      }
    case 0x54 /* T */:
      {
        const n = r.i32();
        const flags = r.u8();
        const relationIds: number[] = [];
        for (let i = 0; i < n; i++) relationIds.push(r.u32());
        return { tag: 'truncate', relationIds, cascade: (flags & 1) !== 0, restartIdentity: (flags & 2) !== 0 };
      }
    case 0x4d /* M */:
      {
        const flags = r.u8();
        const lsn = r.u64();
        const prefix = r.cstring();
        const content = r.bytes(r.i32());
        return { tag: 'message', transactional: (flags & 1) !== 0, lsn, prefix, content };
      }
    default:
      throw new Error(`pgoutput: unknown message type ${String.fromCharCode(tag)}`);
  }
}
