import { Cluster, Redis } from 'ioredis';
import { tableIdOf } from '../core/change';
import { SinkError } from '../core/errors';
import type { ChangeEvent, Row, Sink, SinkPartition, SinkPartitionResult, SkipReason } from '../core/types';
import { sinkErrorFrom } from './transient-errors';

export type RedisLike = Redis | Cluster;

/** A Redis or Valkey client; cluster mode for ElastiCache Serverless (TLS via rediss://). */
export function createRedis(url: string, cluster: boolean): Redis | Cluster {
  const parsed = new URL(url);
  const tls = parsed.protocol === 'rediss:' ? {} : undefined;
  const common = { enableAutoPipelining: true, maxRetriesPerRequest: 2, connectTimeout: 5000 };
  // A dropped connection also fails (or, once reconnected, resends) the commands it carried, and those failures reach
  // the sink as retryable errors; the client's own 'error' event says nothing more. Without a listener ioredis prints
  // every reset as "Unhandled error event" on stderr.
  const quiet = <C extends Redis | Cluster>(client: C): C => client.on('error', () => undefined) as C;
  if (!cluster) return quiet(new Redis(url, { ...common, lazyConnect: true }));
  return quiet(
    new Cluster([{ host: parsed.hostname, port: Number(parsed.port || 6379) }], {
      ...common,
      lazyConnect: true,
      // ElastiCache's TLS certificates name the configuration endpoint, not the node IPs it returns.
      dnsLookup: (address, callback) => callback(null, address),
      redisOptions: { tls, username: parsed.username || undefined, password: parsed.password || undefined },
    }),
  );
}

export interface RedisCacheSinkOptions {
  /** Key prefix, e.g. "cdc". */
  prefix: string;
  /** How long a deleted row's version is kept so that an older change cannot resurrect it. */
  tombstoneTtlSeconds: number;
  clock?: () => number;
}

/**
 * Lua helpers shared by the scripts. The guard compares one row's versions, where source order is a plain string
 * comparison (see decode/source.ts: per row, PostgreSQL's (last commit LSN, LSN) is commit order, and it places
 * incremental-snapshot reads right). Byte by byte: Lua's `<` on strings uses strcoll, and Redis sets LC_COLLATE from the
 * environment, where punctuation may be ignored. Orders of different connector kinds are not comparable: the newer
 * write wins.
 *
 * `held`: the row's previous change in the same write (its order, '' if none) must have been applied, or be superseded
 * (the stored version is at least its order) or older than the truncate watermark; otherwise it failed, and this
 * change is held back (-2): a row's later change is never applied before an earlier one that failed (the pipeline may
 * park the row's key, see core/parking.ts). Commands stay pipelined: the check reads the version the script reads
 * anyway.
 */
const LUA_COMPARE = `
local function kind(o) local i = string.find(o, ':', 1, true) return i and string.sub(o, 1, i - 1) or o end
local function older(a, b)
  if kind(a) ~= kind(b) then return false end
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a <= #b
end
local function stored(key)
  local v = redis.call('GET', key)
  if not v then return nil end
  local bar = string.find(v, '|', 1, true)
  if bar then return string.sub(v, 1, bar - 1) end
  return v
end
local function held(current, previous, watermark)
  if previous == '' then return false end
  if current and (current == previous or not older(current, previous)) then return false end
  if watermark ~= '' and older(previous, watermark) then return false end
  return true
end
`;

/**
 * Upsert. KEYS: row hash, version. ARGV: order, mode ('replace' | 'merge'), truncate watermark ('' if none), the
 * previous change's order ('' if none, see `held`), the number N of unchanged columns, their N names, then
 * column/value pairs. Returns 1 applied, 0 not newer than the stored version, -1 older than a truncate, -2 held back.
 * A merge (the change left TOASTed columns out: they keep their stored values) still removes the fields the row no
 * longer has: after a DROP COLUMN, a row changed inside the incremental snapshot's window is never re-read, and its
 * streamed change is then what must leave the dropped column behind.
 */
const UPSERT = `${LUA_COMPARE}
local current = stored(KEYS[2])
if current and older(ARGV[1], current) then return 0 end
if ARGV[3] ~= '' and older(ARGV[1], ARGV[3]) then return -1 end
if held(current, ARGV[4], ARGV[3]) then return -2 end
local unchanged = tonumber(ARGV[5])
local first = 6 + unchanged
if ARGV[2] == 'replace' then
  redis.call('DEL', KEYS[1])
else
  local keep = {}
  for i = 6, first - 1 do keep[ARGV[i]] = true end
  for i = first, #ARGV, 2 do keep[ARGV[i]] = true end
  local gone = {}
  for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    if not keep[field] then gone[#gone + 1] = field end
  end
  if #gone > 0 then redis.call('HDEL', KEYS[1], unpack(gone)) end
end
if #ARGV >= first then redis.call('HSET', KEYS[1], unpack(ARGV, first)) end
redis.call('SET', KEYS[2], ARGV[1])
return 1
`;

/**
 * Delete (also used to clear rows older than a truncate). KEYS: row hash, version. ARGV: order, tombstone TTL,
 * marker ('d' delete, 't' truncate), the previous change's order and the truncate watermark (see `held`; '' for
 * none). The version stays behind as a tombstone for TTL seconds. Returns 1, 0 not newer, -2 held back.
 */
const REMOVE = `${LUA_COMPARE}
local current = stored(KEYS[2])
if current and older(ARGV[1], current) then return 0 end
if held(current, ARGV[4] or '', ARGV[5] or '') then return -2 end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1] .. '|' .. ARGV[3], 'EX', tonumber(ARGV[2]))
return 1
`;

/** Raises a table's truncate watermark. KEYS: watermark. ARGV: order. */
const RAISE_WATERMARK = `${LUA_COMPARE}
local current = redis.call('GET', KEYS[1])
if current and older(ARGV[1], current) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
`;

interface CacheCommands {
  cdcUpsert(row: string, version: string, ...args: string[]): Promise<number>;
  cdcRemove(
    row: string,
    version: string,
    order: string,
    ttl: string,
    marker: string,
    previous?: string,
    watermark?: string,
  ): Promise<number>;
  cdcRaiseWatermark(watermark: string, order: string): Promise<number>;
}

/** Percent-encodes the characters that would break the key layout or the cluster hash tag. */
function encodeKeyPart(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.replace(/[%{}|\s]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * A Redis error that concerns one row, not the cache: the row's keys hold another type of value (WRONGTYPE: something
 * else wrote them), so that row's script fails at every attempt while the others go through. Everything else — OOM,
 * READONLY, LOADING, BUSY, cluster redirections, connections, permissions, a script error (the same script runs for
 * every row) — concerns every row and fails the whole partition: parking rows for an outage would park them all.
 */
export function isRowError(error: unknown): boolean {
  return (error as Error | undefined)?.name === 'ReplyError' && (error as Error).message.startsWith('WRONGTYPE');
}

/** A row's change the cache could not apply now (retryable; a key that keeps failing is parked). */
function rowFailed(row: string, why: string, cause?: unknown): SinkError {
  return new SinkError('SINK_ROW_FAILED', `writing the cache row ${row}: ${why}`, { retryable: true, cause });
}

/** Escapes Redis glob characters for SCAN MATCH. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/**
 * Cache lane: keeps the current row of every keyed table in Redis/Valkey (ElastiCache Serverless in AWS).
 *
 * Layout (`<p>` = prefix, `<t>` = table id, `<k>` = key values joined by `|`):
 * - `<p>:<t>:{<k>}` hash: one field per column, value JSON-encoded;
 * - `<p>:<t>:{<k>}:v` the source order of the last change applied (`<order>|d` after a delete, with a TTL);
 * - `<p>:<t>:truncated` the order of the table's last truncate.
 * The row and its version share the `{<k>}` hash tag, so a Lua script updates both atomically in cluster mode.
 * The version guard compares source orders: a redelivered or replayed older change never overwrites a newer one.
 */
export class RedisCacheSink implements Sink {
  private readonly clock: () => number;
  private readonly redis: RedisLike & CacheCommands;
  /**
   * The truncate watermark last read per table. A watermark only rises, so a remembered one is never above the stored
   * one: it is the upserts' early filter, and the read after the writes (recheckTruncates), which a partition with
   * upserts makes anyway, clears whatever a truncate made since. Reading it before the writes too cost every
   * partition of every batch one more Redis round trip.
   */
  private readonly knownWatermarks = new Map<string, string>();

  constructor(
    redis: RedisLike,
    private readonly options: RedisCacheSinkOptions,
  ) {
    this.clock = options.clock ?? Date.now;
    redis.defineCommand('cdcUpsert', { numberOfKeys: 2, lua: UPSERT });
    redis.defineCommand('cdcRemove', { numberOfKeys: 2, lua: REMOVE });
    redis.defineCommand('cdcRaiseWatermark', { numberOfKeys: 1, lua: RAISE_WATERMARK });
    this.redis = redis as RedisLike & CacheCommands;
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  /** The hash key holding a row (exported for tests, verification and readers). */
  rowKey(table: string, key: Row): string {
    return `${this.options.prefix}:${table}:{${Object.values(key).map(encodeKeyPart).join('|')}}`;
  }

  watermarkKey(table: string): string {
    return `${this.options.prefix}:${table}:truncated`;
  }

  /**
   * Commands are issued in the partition's order and auto-pipelined per node; commands for one row key (same slot,
   * same connection) execute in the order issued. A row whose script fails (isRowError) is reported in
   * `retryableRejected`, with its later changes in this write, which its scripts hold back (`held`); any other error
   * fails the partition.
   */
  async write(p: SinkPartition): Promise<SinkPartitionResult> {
    try {
      const skipped: Array<{ index: number; reason: SkipReason }> = [];
      const retryableRejected: Array<{ index: number; error: SinkError }> = [];
      const tables = new Set<string>();
      for (const e of p.events) tables.add(tableIdOf(e.source));
      const watermarks = new Map([...tables].map((t) => [t, this.knownWatermarks.get(t) ?? ''] as const));
      const pending: Array<Promise<unknown>> = [];
      const written: Array<{ table: string; key: Row; order: string }> = [];
      /** Per row, the order of its previous change in this write. */
      const previous = new Map<string, string>();
      const settle = (index: number, row: string, command: Promise<number>) =>
        command.then(
          (outcome) => {
            if (outcome === -2) {
              retryableRejected.push({ index, error: rowFailed(row, 'an earlier change of the row was not applied') });
            }
          },
          (error: unknown) => {
            if (!isRowError(error)) throw error;
            retryableRejected.push({ index, error: rowFailed(row, (error as Error).message, error) });
          },
        );
      p.events.forEach((event, index) => {
        const table = tableIdOf(event.source);
        if (event.op === 't') {
          pending.push(this.truncate(table, event.source.order));
          return;
        }
        if (event.key === null) {
          skipped.push({ index, reason: 'no-key' });
          return;
        }
        const row = this.rowKey(table, event.key);
        const before = previous.get(row) ?? '';
        previous.set(row, event.source.order);
        const watermark = watermarks.get(table) ?? '';
        if (event.op === 'd') {
          const ttl = String(this.options.tombstoneTtlSeconds);
          const command = this.redis.cdcRemove(row, `${row}:v`, event.source.order, ttl, 'd', before, watermark);
          pending.push(settle(index, row, command));
        } else {
          pending.push(settle(index, row, this.upsert(row, event, watermark, before)));
          written.push({ table, key: event.key, order: event.source.order });
        }
      });
      await Promise.all(pending);
      await this.recheckTruncates(tables, watermarks, written);
      // No schema history here: an incremental snapshot's read replaces the whole row hash (upsert 'replace'), which
      // is what reconciles the cache after a schema change.
      const result: SinkPartitionResult = { ok: true, skipped, writtenAt: this.clock(), schemaChangesSkipped: true };
      if (retryableRejected.length > 0) result.retryableRejected = retryableRejected.sort((a, b) => a.index - b.index);
      return result;
    } catch (error) {
      return { ok: false, error: sinkErrorFrom(error, `writing the cache for ${p.partition.id}`) };
    }
  }

  private upsert(row: string, event: ChangeEvent, watermark: string, before: string): Promise<number> {
    const merge = event.unchanged.length > 0;
    const args: string[] = [event.source.order, merge ? 'merge' : 'replace', watermark, before];
    args.push(String(event.unchanged.length), ...event.unchanged);
    for (const [column, value] of Object.entries(event.after ?? {})) args.push(column, JSON.stringify(value ?? null));
    return this.redis.cdcUpsert(row, `${row}:v`, ...args);
  }

  private async readWatermarks(tables: Set<string>): Promise<Map<string, string>> {
    const names = [...tables];
    const values = await Promise.all(names.map((t) => this.redis.get(this.watermarkKey(t))));
    return new Map(names.map((t, i) => [t, values[i] ?? ''] as const));
  }

  /**
   * Truncate: raise the table's watermark first, then clear every row whose version is older. A writer in another
   * partition that read the watermark before it was raised re-checks it after its writes (recheckTruncates), and
   * SCAN returns every key that exists for the whole scan, so no older row survives either way.
   */
  private async truncate(table: string, order: string): Promise<void> {
    await this.redis.cdcRaiseWatermark(this.watermarkKey(table), order);
    const pattern = `${globEscape(`${this.options.prefix}:${table}:{`)}*}:v`;
    const nodes =
      'nodes' in this.redis && typeof this.redis.nodes === 'function' ? this.redis.nodes('master') : [this.redis];
    for (const node of nodes as Redis[]) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        await Promise.all(
          keys.map((versionKey) =>
            this.redis.cdcRemove(
              versionKey.slice(0, -2),
              versionKey,
              order,
              String(this.options.tombstoneTtlSeconds),
              't',
            ),
          ),
        );
      } while (cursor !== '0');
    }
  }

  private async recheckTruncates(
    tables: Set<string>,
    before: Map<string, string>,
    written: Array<{ table: string; key: Row; order: string }>,
  ): Promise<void> {
    if (written.length === 0) return;
    const after = await this.readWatermarks(tables);
    for (const [table, watermark] of after) {
      this.knownWatermarks.set(table, watermark);
      if (watermark === '' || watermark === before.get(table)) continue;
      await Promise.all(
        written
          .filter((w) => w.table === table)
          .map((w) => {
            const row = this.rowKey(table, w.key);
            return this.redis.cdcRemove(row, `${row}:v`, watermark, String(this.options.tombstoneTtlSeconds), 't');
          }),
      );
    }
  }
}
