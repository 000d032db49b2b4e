/**
 * Rebuilding the cache: every change of a table replayed in source order through the cache sink's own write path
 * (RedisCacheSink.write), so its version guard decides as it does for the lane: a replayed change older than what the
 * row holds — a newer change the running lane applied meanwhile — is refused, and the newer one stays.
 *
 * One case the guard alone cannot settle: a change that left TOASTed columns out (`unchanged`) keeps the values the
 * row has. If the lane applies such a change to a row that was lost and not rebuilt yet, those columns are missing
 * (or stale, when the rebuild had reached an older change of the row), and every replayed change of the row is older,
 * so refused. So after the replay, every row whose stored version is such a merge is compared with the state its
 * audited changes give up to that version ({@link expectedRow}); a row that differs is lost again — only if its
 * version is still the one compared (a small script: a newer lane write meanwhile wins) — and its changes are
 * replayed again through the sink.
 *
 * And one the replay cannot see: a change the lane wrote just before the loss whose checkpoint it committed only
 * after the rebuild read the lane's offsets. The lane will not write it again, and the audit log may not have held it
 * when the replay read it. Each round reads the audit log again (once it caught up with the lane's offsets as they are
 * then), and a row whose stored version is older than its newest audited change, or that is missing while that
 * change is not a delete, is behind: its changes are replayed again (the guard makes that harmless when the lane was
 * merely on its way). Rounds repeat while rows differ, lag or their version is not audited yet.
 */
import type { RedisCacheSink, RedisLike } from '../../functions/adapters/redis-cache-sink';
import type { ChangeEvent, SinkPartition } from '../../functions/core/types';
import { bySourceOrder, type CachedRow, expectedRow, notNewer, storedOrder } from './order';

/** Changes per sink write: small enough for one pipelined round trip, large enough to keep Redis busy. */
const CHUNK = 500;
/** Reads of row versions or rows in one go (pipelined). */
const READS = 1000;

export interface CacheCounts {
  /** Replayed changes the guard applied (as seen just before each write: see {@link replayTable}). */
  applied: number;
  /** Replayed changes refused: the row held the same or a newer version, or the table a newer truncate. */
  refusedOlder: number;
  /** Changes of rows without a key: never cached (skip reason `no-key`). */
  skipped: number;
}

/**
 * Writes one batch of a table's changes through the sink; a failed write is tried again (the guard makes a repeat
 * harmless). A change the sink could not apply now (`retryableRejected`: its row's script failed) counts as a failed
 * write.
 */
async function write(sink: RedisCacheSink, table: string, events: ChangeEvent[]): Promise<void> {
  const partition: SinkPartition = {
    partition: { id: `rebuild:${table}`, topic: table, partition: 0, records: [] },
    events,
    columns: [],
    state: undefined,
  };
  let last = '';
  for (let attempt = 1; attempt <= 3; attempt++) {
    const result = await sink.write(partition);
    const retry = result.ok ? (result as { retryableRejected?: unknown[] }).retryableRejected : undefined;
    if (result.ok && !retry?.length) return;
    last = result.ok ? `${retry?.length} change(s) could not be applied now` : result.error.message;
    await new Promise((r) => setTimeout(r, 200 * attempt));
  }
  throw new Error(`the cache refused the rebuild's writes of ${table}: ${last}`);
}

/**
 * Replays a table's changes (sorted by source order) into the cache. A truncate goes alone, between what comes
 * before it and what comes after. The counts come from the versions read just before each write, with the guard's
 * rule applied in order; a lane write landing between that read and the write can make one refused change count as
 * applied (what the row ends as is the guard's decision either way).
 */
export async function replayTable(
  sink: RedisCacheSink,
  redis: RedisLike,
  table: string,
  changes: readonly ChangeEvent[],
): Promise<CacheCounts> {
  const counts: CacheCounts = { applied: 0, refusedOlder: 0, skipped: 0 };
  let chunk: ChangeEvent[] = [];
  const flush = async () => {
    if (chunk.length === 0) return;
    const events = chunk;
    chunk = [];
    const rows = [...new Set(events.flatMap((e) => (e.key === null ? [] : [sink.rowKey(table, e.key)])))];
    const [versions, watermark] = await Promise.all([
      readAll(rows, (row) => redis.get(`${row}:v`)),
      redis.get(sink.watermarkKey(table)),
    ]);
    const stored = new Map(rows.map((row, i) => [row, versions[i] ? storedOrder(versions[i] as string) : null]));
    let mark = watermark;
    for (const event of events) {
      const order = event.source.order;
      if (event.op === 't') {
        if (mark !== null && notNewer(order, mark)) counts.refusedOlder++;
        else counts.applied++;
        if (mark === null || !notNewer(order, mark)) mark = order;
        continue;
      }
      if (event.key === null) {
        counts.skipped++;
        continue;
      }
      const row = sink.rowKey(table, event.key);
      const current = stored.get(row) ?? null;
      const older =
        (current !== null && notNewer(order, current)) || (event.op !== 'd' && mark !== null && notNewer(order, mark));
      if (older) {
        counts.refusedOlder++;
        continue;
      }
      counts.applied++;
      stored.set(row, order);
    }
    await write(sink, table, events);
  };
  for (const event of changes) {
    if (event.op === 't') {
      await flush();
      chunk.push(event);
      await flush();
      continue;
    }
    chunk.push(event);
    if (chunk.length >= CHUNK) await flush();
  }
  await flush();
  return counts;
}

async function readAll<T>(keys: readonly string[], read: (key: string) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < keys.length; i += READS) {
    out.push(...(await Promise.all(keys.slice(i, i + READS).map(read))));
  }
  return out;
}

/** Removes a row and its version only while the version is still `version`: a newer write meanwhile stays. */
const RESET_IF_UNCHANGED = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
`;

export interface RepairRound {
  /** Rows whose stored version is a change that kept columns (checked against their audited changes). */
  checked: number;
  /** Of which differed, and were lost and replayed again. */
  repaired: number;
  /** Rows older than their newest audited change, or missing (see the module comment): replayed again. */
  behind: number;
  /** Rows whose stored version is a change the audit log does not hold yet (checked in a later round). */
  unaudited: number;
}

/**
 * One repair round over the rows of a table's changes (see the module comment). `changes` are every audited change
 * of the table read so far.
 */
export async function repairTable(
  sink: RedisCacheSink,
  redis: RedisLike,
  table: string,
  changes: readonly ChangeEvent[],
): Promise<RepairRound> {
  const round: RepairRound = { checked: 0, repaired: 0, behind: 0, unaudited: 0 };
  const truncates = changes.filter((e) => e.op === 't');
  const byRow = new Map<string, ChangeEvent[]>();
  for (const event of changes) {
    if (event.key === null) continue;
    const row = sink.rowKey(table, event.key);
    const own = byRow.get(row);
    if (own) own.push(event);
    else byRow.set(row, [event]);
  }
  const rows = [...byRow.keys()];
  const versions = await readAll(rows, (row) => redis.get(`${row}:v`));
  const suspects: Array<{ row: string; version: string; expected: CachedRow | null; hollow?: boolean }> = [];
  const lastTruncate = truncates.reduce<string | null>(
    (last, e) => (last === null || !notNewer(e.source.order, last) ? e.source.order : last),
    null,
  );
  const behind: string[] = [];
  // A live version whose row hash is gone (the loss took one key and not the other: a flush that raced the lane's
  // writes, an eviction) makes every replayed change look older: such a row is lost again and replayed too.
  const live = rows.filter((_, i) => versions[i] && !(versions[i] as string).includes('|'));
  const present = await readAll(live, (row) => redis.exists(row));
  const hollow = new Set(live.filter((_, i) => present[i] === 0));
  rows.forEach((row, i) => {
    const version = versions[i];
    const newest = (byRow.get(row) as ChangeEvent[]).reduce((a, b) => (bySourceOrder(a, b) >= 0 ? a : b));
    const cleared = lastTruncate !== null && notNewer(newest.source.order, lastTruncate);
    const stored = version ? storedOrder(version) : null;
    if (!cleared && (stored === null ? newest.op !== 'd' : !notNewer(newest.source.order, stored))) {
      behind.push(row);
      return;
    }
    if (!version || version.includes('|')) return; // no row, or a tombstone: nothing kept from before
    const own = byRow.get(row) as ChangeEvent[];
    const at = own.find((e) => e.source.order === version);
    if (!at) {
      round.unaudited++;
      return;
    }
    if (hollow.has(row)) {
      suspects.push({ row, version, expected: null, hollow: true });
      return;
    }
    if (at.unchanged.length === 0) return; // a full image: the row is that image, whoever wrote it
    const upTo = [...own, ...truncates].filter(
      (e) => Buffer.compare(Buffer.from(e.source.order), Buffer.from(version)) <= 0,
    );
    suspects.push({ row, version, expected: expectedRow(upTo).row });
  });
  for (const row of behind) {
    await write(sink, table, (byRow.get(row) as ChangeEvent[]).slice().sort(bySourceOrder));
    round.behind++;
  }
  round.checked = suspects.length;
  const actual = await readAll(
    suspects.map((s) => s.row),
    (row) => redis.hgetall(row),
  );
  for (const [i, suspect] of suspects.entries()) {
    if (!suspect.hollow && sameRow(actual[i] as Record<string, string>, suspect.expected)) continue;
    const reset = (await redis.eval(RESET_IF_UNCHANGED, 2, suspect.row, `${suspect.row}:v`, suspect.version)) as number;
    if (reset !== 1) continue; // the lane wrote the row meanwhile: the next round looks again
    const own = (byRow.get(suspect.row) as ChangeEvent[]).slice().sort(bySourceOrder);
    await write(sink, table, own);
    round.repaired++;
  }
  return round;
}

function sameRow(actual: Record<string, string>, expected: CachedRow | null): boolean {
  const fields = Object.keys(actual);
  if (expected === null) return fields.length === 0;
  return fields.length === expected.size && fields.every((f) => expected.get(f) === actual[f]);
}
