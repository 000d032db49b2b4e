/**
 * The smoke test's sink probes: one per sink, each answering "does the sink hold the canary's change now?". The
 * waiting logic (smoke.ts) only knows this port; local and AWS runs differ only in the clients handed in here.
 *
 * - cache: the row's hash in Redis, at the key the cache lane writes (RedisCacheSink.rowKey).
 * - warehouse: a Parquet change-log file of the table (`<prefix>table=<table id>/date=<day>/…`) with the canary's
 *   change (`_cdc_op`, `_cdc_key`), read with DuckDB like tools/lib/warehouse.ts.
 * - audit: an audit object of the table's topic (`<prefix><topic>/<partition>/<epoch>/<seq>.ndjson.gz`) with an entry
 *   whose event is the canary's change.
 *
 * The S3 probes read only objects written after their start (new-objects.ts), so an earlier canary with the same id
 * in the log cannot be mistaken for this one.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import type { AuditEntry } from '../../functions/adapters/audit-chain';
import { RedisCacheSink, type RedisLike } from '../../functions/adapters/redis-cache-sink';
import { mapInOrder, READS_IN_FLIGHT } from '../lib/concurrency';
import { type KeyStream, type ListedObject, NewObjects, subPrefixes } from './new-objects';

export type SinkName = 'cache' | 'warehouse' | 'audit';
export const SINK_NAMES: readonly SinkName[] = ['cache', 'warehouse', 'audit'];

/** The change a probe looks for. */
export interface Canary {
  /** The canary row's id (negative: never the connector's heartbeat row). */
  id: number;
  /** `c` its insert, `d` its delete (asked only once the sink has shown the insert). */
  op: 'c' | 'd';
  /** The sinks' table id, also the table's topic: `<topic prefix>.<schema>.<table>`. */
  table: string;
  /** When the source acknowledged the commit (this machine's clock, ms). */
  committedAt: number;
}

export interface SinkProbe {
  readonly sink: SinkName;
  /** Called once before the canary is written: what the sink holds then cannot be the canary. */
  start?(table: string): Promise<void>;
  /** Whether the sink holds the canary's change now. */
  seen(canary: Canary): Promise<boolean>;
  close(): Promise<void>;
}

/** The cache lane's row hash: there after the insert, gone after the delete. */
export function cacheProbe(redis: RedisLike, prefix: string): SinkProbe {
  // The lane's own key layout. The sink only registers its scripts on the client (nothing is sent).
  const layout = new RedisCacheSink(redis, { prefix, tombstoneTtlSeconds: 1 });
  return {
    sink: 'cache',
    async seen(canary) {
      const held = (await redis.exists(layout.rowKey(canary.table, { id: canary.id }))) === 1;
      return canary.op === 'c' ? held : !held;
    },
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/** Reads the objects the feed has not read yet; true as soon as one holds the canary (the rest wait for later). */
async function readUnread(
  feed: NewObjects,
  s3: S3Client,
  bucket: string,
  holds: (objects: Array<{ object: ListedObject; bytes: Uint8Array }>) => Promise<boolean>,
): Promise<boolean> {
  const unread = await feed.unread();
  if (unread.length === 0) return false;
  const read = await mapInOrder(unread, READS_IN_FLIGHT, async (object) => {
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: object.key }));
    return { object, bytes: (await got.Body?.transformToByteArray()) ?? new Uint8Array() };
  });
  const found = await holds(read);
  // Only a complete read counts: an object that failed to read (thrown above) is tried again on the next poll.
  for (const { object } of read) feed.read(object);
  return found;
}

const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** The warehouse lane's change log: a file of the table, written after the start, with the canary's change. */
export function warehouseProbe(s3: S3Client, location: { bucket: string; prefix: string }): SinkProbe {
  const { bucket, prefix } = location;
  let feed: NewObjects | undefined;
  /** Days whose folders are listed: the start's, then the commit's and today's (a canary near midnight). */
  const days = new Set<string>();
  let dir: string | undefined;
  let duck: { instance: DuckDBInstance; connection: DuckDBConnection } | undefined;

  const streams = async (table: string): Promise<KeyStream[]> => {
    const found = await Promise.all(
      [...days].map(async (day) => {
        const folder = `${prefix}table=${table}/date=${day}/`;
        // `<topic>+` then `<topic>+<partition>+`: one stream per topic-partition, numbered by first offset.
        const topics = await subPrefixes(s3, bucket, folder, '+');
        const partitions = await Promise.all(topics.map((t) => subPrefixes(s3, bucket, t, '+')));
        return partitions.flat().map((p) => ({ prefix: p, width: 20 }));
      }),
    );
    return found.flat();
  };

  const holds = async (canary: Canary, objects: Array<{ object: ListedObject; bytes: Uint8Array }>) => {
    dir ??= await mkdtemp(join(tmpdir(), 'cdc-sync-smoke-'));
    if (!duck) {
      const { DuckDBInstance } = await import('@duckdb/node-api');
      const instance = await DuckDBInstance.create(':memory:');
      duck = { instance, connection: await instance.connect() };
    }
    const files = await Promise.all(
      objects.map(async ({ bytes }, i) => {
        const file = join(dir as string, `${i}.parquet`);
        await writeFile(file, bytes);
        return file;
      }),
    );
    try {
      const list = files.map((f) => `'${f.replaceAll("'", "''")}'`).join(', ');
      const reader = await duck.connection.runAndReadAll(
        `SELECT count(*) AS n FROM read_parquet([${list}], union_by_name = true, hive_partitioning = false)
         WHERE _cdc_op = $op AND json_extract_string(_cdc_key, '$.id') = $id`,
        { op: canary.op, id: String(canary.id) },
      );
      return Number(reader.getRowObjects()[0]?.n ?? 0) > 0;
    } finally {
      await Promise.all(files.map((f) => rm(f, { force: true })));
    }
  };

  return {
    sink: 'warehouse',
    async start(table) {
      days.add(utcDay(Date.now()));
      feed = new NewObjects(s3, bucket, () => streams(table));
      await feed.baseline();
    },
    async seen(canary) {
      if (!feed) throw new Error('the warehouse probe was not started');
      days.add(utcDay(canary.committedAt));
      days.add(utcDay(Date.now()));
      return readUnread(feed, s3, bucket, (objects) => holds(canary, objects));
    },
    async close() {
      duck?.connection.closeSync();
      duck?.instance.closeSync();
      if (dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The audit lane's log: an object of the table's topic, written after the start, with the canary's change. */
export function auditProbe(s3: S3Client, location: { bucket: string; prefix: string }): SinkProbe {
  const { bucket, prefix } = location;
  let feed: NewObjects | undefined;

  // `<topic>/<partition>/<epoch>/`: one chain per topic-partition and epoch, numbered by first sequence.
  const streams = async (topic: string): Promise<KeyStream[]> => {
    const partitions = await subPrefixes(s3, bucket, `${prefix}${topic}/`, '/');
    const chains = await Promise.all(partitions.map((p) => subPrefixes(s3, bucket, p, '/')));
    return chains.flat().map((chain) => ({ prefix: chain, width: 12 }));
  };

  const holds = (canary: Canary, objects: Array<{ bytes: Uint8Array }>) =>
    objects.some(({ bytes }) =>
      gunzipSync(bytes)
        .toString('utf8')
        .split('\n')
        .some((line) => {
          if (!line.includes(String(canary.id))) return false;
          const { event } = JSON.parse(line) as AuditEntry;
          return event?.op === canary.op && event.key?.id === canary.id;
        }),
    );

  return {
    sink: 'audit',
    async start(table) {
      feed = new NewObjects(s3, bucket, () => streams(table));
      await feed.baseline();
    },
    async seen(canary) {
      if (!feed) throw new Error('the audit probe was not started');
      return readUnread(feed, s3, bucket, async (objects) => holds(canary, objects));
    },
    async close() {},
  };
}
